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
from dataclasses import dataclass

import make_report
import torch
import torch.nn.functional as F
from harness import driver, spec
from harness.cases import GRAD_LIMIT_MESSAGE, Case, Prepared, max_relative_error, prepare_call
from harness.environment import import_cookbook_ops
from harness.floors import element_size
from harness.groups import new_records, time_group
from harness.impls import OUR_BACKENDS, backend_unavailable_reason, impl_fn, unknown_impl
from harness.overhead import both_passes
from harness.spec import BenchSpec, dtype_name
from harness.timing import Timing, time_cpu, time_cuda

cookbook_ops = import_cookbook_ops()

EPS = 1e-5
BENCHMARK = "bilinear_pool"
FORWARD_OP = "bilinear_pool_forward"
PASSES = spec.PASSES
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
        # Degenerate: many tiny problems, where per-sample GEMM calls once cost 20-40x.
        Shape(4096, 4, None, 2, 2, "degenerate: 4096 samples of 4 channels at 2x2"),
    ],
}
HEADLINE_SHAPES = {
    "cuda": [Shape(32, 512, None, 28, 28, "one stream, 512 channels at 28x28 (B-CNN head)")],
    "cpu": [Shape(16, 256, None, 14, 14, "one stream, 256 channels at 14x14")],
}
QUICK_SHAPES = {
    "cuda": SHAPES["cuda"],
    "cpu": [
        Shape(8, 128, None, 14, 14, "one stream, 128 channels at 14x14"),
        Shape(8, 128, 64, 14, 14, "two streams, 128 and 64 channels at 14x14"),
    ],
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


def _probe(backend: str, device: str) -> None:
    cookbook_ops.bilinear_pool(torch.ones(1, 2, 1, 1, device=device), backend=backend)


def unavailable_reason(impl: str, device: str) -> str | None:
    """None if ``impl`` can be benchmarked on ``device``, else why not."""
    if impl in ("eager", "compile"):
        return None
    if impl in OUR_BACKENDS:
        if impl == "reference" and (_has_public_op() or _has_reference_module()):
            return None
        if not _has_public_op():
            return "not available: cookbook_ops.bilinear_pool is not in this build"
        probe = functools.partial(_probe, impl, device)
        return backend_unavailable_reason(impl, device, (FORWARD_OP,), probe)
    raise unknown_impl(impl, IMPLS)


def make_pool_fn(impl: str):
    """A fresh ``pool(x, y) -> z`` for one (shape, dtype, pass) group."""
    return impl_fn(impl, eager_pool, _ours)


IMPL_LABELS = {"eager": "torch eager (snippet)"}
impl_label = functools.partial(make_report.impl_label, overrides=IMPL_LABELS)


# --- floor ------------------------------------------------------------------------------------


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
    return element_size(dtype) * (fwd if pass_ == "fwd" else fwd + bwd)


def record_fields(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> dict:
    return {
        "floor_flops": floor_flops(shape, pass_),
        "floor_bytes": floor_bytes(shape, dtype, pass_),
    }


def matmul_rate(shape: Shape, dtype: torch.dtype, device: str, effort: dict) -> dict:
    """FLOP/s of torch.bmm on the forward product of this shape and dtype, timed here and now
    (cached per shape and dtype, so both passes of a shape share one measurement).

    From the fastest call, not the median: load from other processes only ever slows a call,
    and a floor inflated by one busy moment would credit every implementation with beating it.
    """
    key = f"{shape.label} {dtype_name(dtype)}"
    if key in MATMUL_RATES:
        return MATMUL_RATES[key]
    dev = torch.device(device)
    a = torch.randn(shape.n, shape.d1, shape.m, device=dev).to(dtype)
    b = a if shape.d2 is None else torch.randn(shape.n, shape.d2, shape.m, device=dev).to(dtype)
    bt = b.transpose(1, 2)
    fn = functools.partial(torch.bmm, a, bt)
    if dev.type == "cuda":
        timing = time_cuda(fn, **effort)
    else:
        timing = time_cpu(
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


def make_case(shape: Shape, dtype: torch.dtype, pass_: str, device: str) -> Case:
    """The inputs of one group, with z and the input gradients of the reference evaluated in
    float64."""
    x0, y0, grad_z = make_inputs(shape, dtype, device)
    x = x0.double().requires_grad_(pass_ != "fwd")
    y = None if y0 is None else y0.double().requires_grad_(pass_ != "fwd")
    z = _reference_rows(x, y)
    grads = None
    if pass_ != "fwd":
        z.backward(grad_z.double())
        grads = [x.grad] + ([] if y is None else [y.grad])
    return Case(shape, dtype, pass_, device, (x0, y0, grad_z), (z.detach(), grads))


def prepare(impl: str, case: Case) -> Prepared:
    """Build the timed callable, run it once (compiling if needed) and compare with float64."""
    pool = make_pool_fn(impl)
    x0, y0, grad_z = case.inputs
    x = x0.detach().clone()
    y = None if y0 is None else y0.detach().clone()
    inputs = [x] + ([] if y is None else [y])
    z_ref, grads_ref = case.expected

    def check(z):
        grad_err = None
        if grads_ref is not None:
            grad_err = max(max_relative_error(t.grad, g) for t, g in zip(inputs, grads_ref))
        return {"out_err": max_relative_error(z.detach(), z_ref), "grad_err": grad_err}

    out_tol, grad_tol = TOLERANCE.get(case.dtype, TOLERANCE_16BIT)
    limits = {
        "out_err": (out_tol, "z off by {:.2e} (of max |z|)"),
        "grad_err": (grad_tol, GRAD_LIMIT_MESSAGE),
    }
    return prepare_call(
        impl,
        lambda: pool(x, y),
        inputs,
        case,
        check,
        limits,
        "float64 reference",
        grad_output=grad_z,
    )


def finish_record(rec: dict, timing: Timing, copy_gbps: float, rate: dict) -> dict:
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
    case = make_case(shape, dtype, pass_, device)
    rate = matmul_rate(shape, dtype, device, effort)
    records = new_records(case, impls, impl_label, record_fields)
    finish = functools.partial(finish_record, copy_gbps=copy_gbps, rate=rate)
    return time_group(case, records, prepare, finish, effort, progress)


# --- driver -----------------------------------------------------------------------------------


def parse_shapes(text: str) -> list[Shape]:
    shapes = []
    for item in text.split(","):
        n, d, h, w = item.lower().split("x")
        d1, _, d2 = d.partition("+")
        shapes.append(Shape(int(n), int(d1), int(d2) if d2 else None, int(h), int(w), "custom"))
    return shapes


def overhead_cases(device: str):
    """``--overhead``: 2 samples of 8 channels on a 4x4 map, nearly all host work."""
    x = torch.randn(2, 8, 4, 4, device=device, requires_grad=True)
    ours = _ours("auto")
    grad = torch.randn(2, 64, device=device)
    return both_passes("2x8x4x4", lambda: eager_pool(x), lambda: ours(x), grad)


SPEC = BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call=f"cookbook_ops.bilinear_pool(x, y, eps={EPS}) and the cookbook's snippet",
    impls=IMPLS,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    headline_shapes=HEADLINE_SHAPES,
    shapes_help="NxD1xHxW (one stream) or NxD1+D2xHxW list, e.g. 32x512x28x28,32x512+256x28x28",
    parse_shapes=parse_shapes,
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    config={"eps": EPS},
    extra={"floor_note": FLOOR_NOTE, "notes": NOTES, "matmul_rates": MATMUL_RATES},
    overhead_cases=overhead_cases,
)


def main(argv=None) -> int:
    return driver.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
