"""Bilinear pooling (signed sqrt + L2 normalization) against PyTorch eager and torch.compile.

    python benchmarks/bench_bilinear_pool.py [--device cpu|cuda] [--quick] [--out DIR]
        [--shapes 32x512x28x28,32x512+256x28x28,...] [--dtypes fp32,bf16] [--impls eager,...]

Implementations: the cookbook's snippet in PyTorch eager (``bmm(A, B^T) / M``, signed sqrt,
``F.normalize``), torch.compile of that snippet, and every backend of ours that
``cookbook_ops.available_backends(device)`` reports for the op (the pure-PyTorch reference
included). Shapes are NxD1xHxW (one stream, y=None) or NxD1+D2xHxW (two streams). Passes:
``fwd`` (inputs without grad) and ``fwd+bwd`` (backward from a random upstream gradient that
is fixed across calls, ``.grad`` dropped untimed between calls).

Roofline floor, both measured in this run: floor time = max(FLOPs / matmul rate, bytes / copy
bandwidth). FLOPs: forward 2*N*D1*D2*M (the full product even for one stream, where symmetry
could halve it); forward+backward adds 2*N*D1*D2*M per input gradient. Bytes: forward reads x
(and y) and writes z; backward reads grad_z, z, x (and y) and writes grad_x (and grad_y). The
matmul rate is torch.bmm on the forward product of the same shape and dtype (its fastest call).

Every output is checked against the reference evaluated in float64 (scaled by the largest
reference magnitude); rows beyond the dtype's tolerance are flagged as mismatches.

Writes <out>/bilinear_pool-<device>[-quick].{json,md,png}; the JSON is rewritten after every
shape, so a run cut short still leaves its finished shapes, and --time-budget skips (and
records) the cases it has no time left for.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass

import common
import make_report
import torch
import torch.nn.functional as F

cookbook_ops = common.import_cookbook_ops()

EPS = 1e-5
BENCHMARK = "bilinear_pool"
FORWARD_OP = "bilinear_pool_forward"
PASSES = ("fwd", "fwd+bwd")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
OUR_BACKENDS = ("reference", "cpu", "cuda", "triton")
IMPLS = ("eager", "compile", *OUR_BACKENDS)


@dataclass(frozen=True)
class Shape:
    n: int
    d1: int
    d2: int | None  # None: one stream (y is x)
    h: int
    w: int
    name: str = ""

    @property
    def m(self) -> int:
        return self.h * self.w

    @property
    def d2_eff(self) -> int:
        return self.d1 if self.d2 is None else self.d2

    @property
    def label(self) -> str:
        d = f"{self.d1}" if self.d2 is None else f"{self.d1}+{self.d2}"
        return f"{self.n}x{d}x{self.h}x{self.w}"


SHAPES = {
    "cuda": [
        Shape(32, 512, None, 28, 28, "one stream, 512 channels at 28x28 (B-CNN head)"),
        Shape(32, 512, 256, 28, 28, "two streams, 512 and 256 channels at 28x28"),
    ],
    # Scaled down so the default run stays within a few minutes on two cores.
    "cpu": [
        Shape(16, 256, None, 14, 14, "one stream, 256 channels at 14x14"),
        Shape(16, 256, 128, 14, 14, "two streams, 256 and 128 channels at 14x14"),
    ],
}
QUICK_SHAPES = {
    "cuda": SHAPES["cuda"],
    "cpu": [
        Shape(8, 128, None, 14, 14, "one stream, 128 channels at 14x14"),
        Shape(8, 128, 64, 14, 14, "two streams, 128 and 64 channels at 14x14"),
    ],
}

# Per-implementation timing effort: (warmup, max reps, min reps, seconds of timed calls).
EFFORT = {
    ("cuda", False): dict(warmup=5, reps=100, min_reps=10, budget_s=0.2),
    ("cuda", True): dict(warmup=3, reps=20, min_reps=5, budget_s=0.05),
    ("cpu", False): dict(warmup=2, reps=40, min_reps=7, budget_s=1.5),
    ("cpu", True): dict(warmup=1, reps=8, min_reps=3, budget_s=0.2),
}

# How far an implementation may sit from the float64 reference before its row is flagged:
# max |error| over max |reference|, for z and for the input gradients.
TOLERANCE = {torch.float32: (1e-4, 1e-3), torch.float64: (1e-10, 1e-8)}
TOLERANCE_16BIT = (2e-2, 5e-2)

FLOOR_NOTE = (
    "roofline floor = max(FLOPs / matmul rate, bytes / copy bandwidth), both measured in this "
    "run. FLOPs: fwd 2*N*D1*D2*M (full count, even for one stream), +2*N*D1*D2*M per input "
    "gradient in fwd+bwd. Bytes: fwd reads x (y), writes z; bwd reads grad_z, z, x (y), writes "
    "grad_x (grad_y). Matmul rate: fastest torch.bmm call on the forward product of the same "
    "shape and dtype. GB/s and TFLOP/s = floor bytes and FLOPs / time; of floor = floor time / "
    "time; bound: the term that sets the floor."
)
# Filled during the run; the run's JSON holds these very objects, so what each group measures
# is written with it and the report can list it.
MATMUL_RATES: dict[str, dict] = {}
NOTES: list[str] = []


# --- implementations -------------------------------------------------------------------------


def eager_pool(x, y=None):
    """The cookbook's snippet, extended to two streams as ``bmm(A, B^T)``."""
    n, d, h, w = x.shape
    a = x.reshape(n, d, h * w)
    b = a if y is None else y.reshape(n, y.shape[1], h * w)
    g = torch.bmm(a, b.transpose(1, 2)) / (h * w)
    g = g.reshape(n, -1)
    g = torch.sign(g) * torch.sqrt(torch.abs(g) + EPS)
    return F.normalize(g)


def _reference_rows(x, y=None):
    from cookbook_ops.reference.bilinear_pool import bilinear_pool_rows

    n, d, h, w = x.shape
    rows_y = None if y is None else y.reshape(n, y.shape[1], h * w)
    return bilinear_pool_rows(x.reshape(n, d, h * w), rows_y, EPS)


def _has_public_op() -> bool:
    return hasattr(cookbook_ops, "bilinear_pool")


def _has_reference_module() -> bool:
    try:
        from cookbook_ops.reference.bilinear_pool import bilinear_pool_rows  # noqa: F401
    except ImportError:
        return False
    return True


def _ours(backend: str):
    if backend == "reference" and not _has_public_op():
        return _reference_rows  # the same math, so the reference is timed before the op lands
    return functools.partial(cookbook_ops.bilinear_pool, eps=EPS, backend=backend)


def _available_backends(device: str) -> list[str]:
    try:
        return list(cookbook_ops.available_backends(device, op=FORWARD_OP))
    except (TypeError, KeyError):  # a build whose registry does not know the op (or op=)
        return list(cookbook_ops.available_backends(device))


def _why_backend_unavailable(backend: str, device: str) -> str:
    try:
        cookbook_ops.bilinear_pool(torch.ones(1, 2, 1, 1, device=device), backend=backend)
    except Exception as exc:  # the op's own message names the missing piece
        return str(exc)
    return "not reported by cookbook_ops.available_backends()"


def unavailable_reason(impl: str, device: str) -> str | None:
    """None if ``impl`` can be benchmarked on ``device``, else why not."""
    device_type = torch.device(device).type
    if impl in ("eager", "compile"):
        return None
    if impl in OUR_BACKENDS:
        if impl == "reference" and (_has_public_op() or _has_reference_module()):
            return None
        if not _has_public_op():
            return "not available: cookbook_ops.bilinear_pool is not in this build"
        if impl == "triton" and device_type == "cpu":
            return "Triton on CPU tensors runs only in the interpreter, not a performance path"
        if impl in _available_backends(device):
            return None
        return _why_backend_unavailable(impl, device)
    raise ValueError(f"unknown implementation {impl!r}; known: {', '.join(IMPLS)}")


def make_pool_fn(impl: str):
    """A fresh ``pool(x, y) -> z`` for one (shape, dtype, pass) group."""
    if impl == "eager":
        return eager_pool
    if impl == "compile":
        # Static shapes: one specialized graph per group, as a training job with a fixed batch
        # would get (the caller resets dynamo between groups).
        return torch.compile(eager_pool, dynamic=False)
    if impl in OUR_BACKENDS:
        return _ours(impl)
    raise ValueError(f"unknown implementation {impl!r}")


def impl_label(impl: str) -> str:
    if impl == "eager":
        return "torch eager (snippet)"
    return make_report.IMPL_LABELS.get(impl, impl)


# --- floor ------------------------------------------------------------------------------------


def _elem(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def floor_flops(shape: Shape, pass_: str) -> int:
    product = 2 * shape.n * shape.d1 * shape.d2_eff * shape.m
    if pass_ == "fwd":
        return product
    return product * (2 if shape.d2 is None else 3)


def floor_bytes(shape: Shape, dtype: torch.dtype, pass_: str) -> int:
    inputs = shape.n * shape.m * (shape.d1 + (shape.d2 or 0))
    z = shape.n * shape.d1 * shape.d2_eff
    fwd = inputs + z
    bwd = 2 * z + 2 * inputs  # grad_z and z in; inputs in, their gradients out
    return _elem(dtype) * (fwd if pass_ == "fwd" else fwd + bwd)


def matmul_rate(shape: Shape, dtype: torch.dtype, device: str, effort: dict) -> dict:
    """FLOP/s of torch.bmm on the forward product of this shape and dtype, timed here and now
    (cached per shape and dtype, so both passes of a shape share one measurement).

    From the fastest call, not the median: load from other processes only ever slows a call,
    and a floor inflated by one busy moment would credit every implementation with beating it.
    """
    key = f"{shape.label} {str(dtype).removeprefix('torch.')}"
    if key in MATMUL_RATES:
        return MATMUL_RATES[key]
    dev = torch.device(device)
    a = torch.randn(shape.n, shape.d1, shape.m, device=dev).to(dtype)
    b = a if shape.d2 is None else torch.randn(shape.n, shape.d2, shape.m, device=dev).to(dtype)
    bt = b.transpose(1, 2)
    fn = functools.partial(torch.bmm, a, bt)
    if dev.type == "cuda":
        timing = common.time_cuda(fn, **effort)
    else:
        timing = common.time_cpu(
            fn,
            warmup=max(effort["warmup"], 2),
            reps=max(effort["reps"], 30),
            min_reps=max(effort["min_reps"], 10),
            budget_s=max(effort["budget_s"], 0.5),
        )
    flops = 2 * shape.n * shape.d1 * shape.d2_eff * shape.m
    rate = {
        "flops": flops,
        "min_ms": timing.min_ms,
        "median_ms": timing.median_ms,
        "TFLOPs": flops / (timing.min_ms * 1e-3) / 1e12,
        "timing": timing.to_dict(),
    }
    MATMUL_RATES[key] = rate
    NOTES.append(
        f"matmul rate {key}: torch.bmm (N, D1, M) x (N, M, D2) {rate['TFLOPs']:.2f} TFLOP/s "
        f"(fastest of {len(timing.samples_ms)} calls {timing.min_ms:.3f} ms, median "
        f"{timing.median_ms:.3f} ms)"
    )
    return rate


# --- one case ---------------------------------------------------------------------------------


@dataclass
class Prepared:
    fn: object
    reset: object
    compile_s: float | None
    out_err: float | None
    grad_err: float | None


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _rel_err(actual: torch.Tensor | None, expected: torch.Tensor) -> float:
    if actual is None:
        return float("inf")
    scale = expected.abs().max().clamp_min(1e-30)
    return float((actual.double() - expected).abs().max() / scale)


def expected_outputs(x0, y0, grad_z, pass_):
    """z and the input gradients of the reference evaluated in float64."""
    x = x0.double().requires_grad_(pass_ != "fwd")
    y = None if y0 is None else y0.double().requires_grad_(pass_ != "fwd")
    z = _reference_rows(x, y)
    grads = None
    if pass_ != "fwd":
        z.backward(grad_z.double())
        grads = [x.grad] + ([] if y is None else [y.grad])
    return z.detach(), grads


def prepare(impl, pass_, x0, y0, grad_z, expected, device) -> Prepared:
    """Build the timed callable, run it once (compiling if needed) and compare with float64."""
    pool = make_pool_fn(impl)
    x = x0.detach().clone()
    y = None if y0 is None else y0.detach().clone()
    inputs = [x] + ([] if y is None else [y])
    if pass_ == "fwd":

        def fn():
            return pool(x, y)

        reset = None
    else:
        for t in inputs:
            t.requires_grad_(True)

        def fn():
            pool(x, y).backward(grad_z)

        def reset():
            for t in inputs:
                t.grad = None

    t0 = time.perf_counter()
    z = pool(x, y)
    if pass_ != "fwd":
        z.backward(grad_z)
    _sync(device)
    first_call_s = time.perf_counter() - t0

    z_ref, grads_ref = expected
    out_err = _rel_err(z.detach(), z_ref)
    grad_err = None
    if grads_ref is not None:
        grad_err = max(_rel_err(t.grad, g) for t, g in zip(inputs, grads_ref))
    if reset is not None:
        reset()
    return Prepared(
        fn=fn,
        reset=reset,
        compile_s=first_call_s if impl == "compile" else None,
        out_err=out_err,
        grad_err=grad_err,
    )


def finish_record(rec: dict, timing: common.Timing, copy_gbps: float, rate: dict) -> dict:
    median = timing.median_ms
    compute_ms = rec["floor_flops"] / (rate["TFLOPs"] * 1e12) * 1e3
    memory_ms = rec["floor_bytes"] / (copy_gbps * 1e9) * 1e3
    rec["timing"] = timing.to_dict()
    rec["median_ms"] = median
    rec["matmul_TFLOPs"] = rate["TFLOPs"]
    rec["floor_compute_ms"] = compute_ms
    rec["floor_memory_ms"] = memory_ms
    rec["floor_ms"] = max(compute_ms, memory_ms)
    rec["bound"] = "compute" if compute_ms >= memory_ms else "memory"
    rec["achieved_GBps"] = rec["floor_bytes"] / (median * 1e-3) / 1e9
    rec["achieved_TFLOPs"] = rec["floor_flops"] / (median * 1e-3) / 1e12
    rec["fraction_of_floor"] = rec["floor_ms"] / median
    return rec


def check_status(rec: dict, dtype: torch.dtype) -> None:
    out_tol, grad_tol = TOLERANCE.get(dtype, TOLERANCE_16BIT)
    bad = []
    if rec.get("out_err") is not None and not rec["out_err"] <= out_tol:
        bad.append(f"z off by {rec['out_err']:.2e} (of max |z|)")
    if rec.get("grad_err") is not None and not rec["grad_err"] <= grad_tol:
        bad.append(f"grad off by {rec['grad_err']:.2e} (of max |grad|)")
    if bad:
        rec["status"] = "mismatch"
        rec["reason"] = "vs float64 reference: " + "; ".join(bad)


def make_inputs(shape: Shape, dtype: torch.dtype, device: str):
    dev = torch.device(device)
    # Post-ReLU features, as the layer sees them in a CNN: the Gram matrix is then positive,
    # unlike with centred inputs, and its entries have the magnitudes training produces.
    x0 = torch.randn(shape.n, shape.d1, shape.h, shape.w, device=dev).relu_().to(dtype)
    y0 = None
    if shape.d2 is not None:
        y0 = torch.randn(shape.n, shape.d2, shape.h, shape.w, device=dev).relu_().to(dtype)
    grad_z = torch.randn(shape.n, shape.d1 * shape.d2_eff, device=dev).to(dtype)
    return x0, y0, grad_z


def run_group(shape, dtype, pass_, impls, device, effort, copy_gbps, progress) -> list[dict]:
    """Every implementation on one (shape, dtype, pass); eager first, ratios against it."""
    torch._dynamo.reset()  # compiled graphs of earlier groups must not count toward the limit
    x0, y0, grad_z = make_inputs(shape, dtype, device)
    expected = expected_outputs(x0, y0, grad_z, pass_)
    rate = matmul_rate(shape, dtype, device, effort)
    dtype_name = str(dtype).removeprefix("torch.")

    records = [
        {
            "shape": shape_dict(shape),
            "dtype": dtype_name,
            "pass": pass_,
            "impl": impl,
            "label": impl_label(impl),
            "status": "ok",
            "reason": None,
            "floor_flops": floor_flops(shape, pass_),
            "floor_bytes": floor_bytes(shape, dtype, pass_),
        }
        for impl in impls
    ]

    def prepare_record(rec):
        p = prepare(rec["impl"], pass_, x0, y0, grad_z, expected, device)
        rec.update(compile_s=p.compile_s, out_err=p.out_err, grad_err=p.grad_err)
        check_status(rec, dtype)
        return p.fn, p.reset

    common.measure_group(
        records,
        prepare_record,
        lambda rec, timing: finish_record(rec, timing, copy_gbps, rate),
        device,
        effort,
        progress,
        f"{shape.label} {dtype_name} {pass_}",
    )
    common.add_speedups(records, "eager", "speedup_vs_eager")
    common.add_speedups(records, "compile", "speedup_vs_compile")
    return records


# --- driver -----------------------------------------------------------------------------------


def shape_dict(shape: Shape) -> dict:
    return {
        "n": shape.n,
        "d1": shape.d1,
        "d2": shape.d2,
        "h": shape.h,
        "w": shape.w,
        "label": shape.label,
        "name": shape.name,
    }


def parse_shapes(text: str) -> list[Shape]:
    shapes = []
    for item in text.split(","):
        n, d, h, w = item.lower().split("x")
        d1, _, d2 = d.partition("+")
        shapes.append(Shape(int(n), int(d1), int(d2) if d2 else None, int(h), int(w), "custom"))
    return shapes


SPEC = common.BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call=f"cookbook_ops.bilinear_pool(x, y, eps={EPS}) and the cookbook's snippet",
    impls=IMPLS,
    passes=PASSES,
    dtypes=DTYPES,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    effort=EFFORT,
    shapes_help="NxD1xHxW (one stream) or NxD1+D2xHxW list, e.g. 32x512x28x28,32x512+256x28x28",
    parse_shapes=parse_shapes,
    shape_dict=shape_dict,
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    config={"eps": EPS},
    extra={"floor_note": FLOOR_NOTE, "notes": NOTES, "matmul_rates": MATMUL_RATES},
)


def parse_args(argv=None):
    return common.parse_args(SPEC, argv)


def main(argv=None) -> int:
    return common.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
