"""Label-smoothed cross-entropy (smoothing 0.1) against PyTorch eager, torch.compile and peers.

    python benchmarks/bench_label_smoothing_cross_entropy.py [--device cpu|cuda] [--quick]
        [--out DIR] [--shapes 256x1000,...] [--dtypes fp32,bf16] [--impls eager,cuda,...]

Implementations: PyTorch eager ``F.cross_entropy(x, t, label_smoothing=0.1)``, torch.compile
of that function, every backend of ours that ``cookbook_ops.available_backends(device, op)``
reports, timm's ``LabelSmoothingCrossEntropy`` and Liger-Kernel's ``LigerCrossEntropyLoss``
when importable. Passes: ``fwd`` (logits without grad) and ``fwd+bwd`` (mean loss, backward,
``.grad`` dropped untimed between calls).

Memory floor: forward must read the logits once (N*C elements); forward+backward must also
write the gradient once (2*N*C). floor time = floor bytes / copy bandwidth measured in this run.
"GB/s" below is floor bytes / time, so every implementation is scored against the same work.

Writes <out>/label_smoothing_cross_entropy-<device>[-quick].{json,md,png}; the JSON is
rewritten after every shape, so a run cut short still leaves its finished shapes, and
--time-budget skips (and records) the cases it has no time left for.
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

SMOOTHING = 0.1
BENCHMARK = "label_smoothing_cross_entropy"
PASSES = ("fwd", "fwd+bwd")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
OUR_BACKENDS = ("reference", "cpu", "cuda", "triton")
COMPILED_BACKENDS = ("cpu", "cuda", "triton")
IMPLS = ("eager", "compile", *OUR_BACKENDS, "timm", "liger")


@dataclass(frozen=True)
class Shape:
    n: int
    c: int
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.n}x{self.c}"


SHAPES = {
    "cuda": [
        Shape(256, 1000, "image classification, ImageNet-1k"),
        Shape(1024, 21843, "image classification, ImageNet-21k"),
        Shape(8192, 128256, "large vocabulary (Llama 3)"),
        Shape(4096, 128256, "large vocabulary (Llama 3)"),
    ],
    # Scaled down so the default run stays within a few minutes on two cores.
    "cpu": [
        Shape(4096, 1000, "ImageNet-1k, large batch (headline CPU case)"),
        Shape(256, 1000, "image classification, ImageNet-1k"),
        Shape(256, 21843, "image classification, ImageNet-21k"),
        Shape(512, 32000, "vocabulary 32k"),
    ],
}
QUICK_SHAPES = {
    "cuda": [
        Shape(256, 1000, "image classification, ImageNet-1k"),
        Shape(1024, 21843, "image classification, ImageNet-21k"),
    ],
    "cpu": [Shape(256, 1000, "image classification, ImageNet-1k")],
}

# Per-implementation timing effort: (warmup, max reps, min reps, seconds of timed calls).
EFFORT = {
    ("cuda", False): dict(warmup=5, reps=100, min_reps=10, budget_s=0.2),
    ("cuda", True): dict(warmup=3, reps=20, min_reps=5, budget_s=0.05),
    ("cpu", False): dict(warmup=2, reps=40, min_reps=7, budget_s=1.5),
    ("cpu", True): dict(warmup=1, reps=8, min_reps=3, budget_s=0.2),
}

# How far an implementation may sit from eager (same dtype) before its row is flagged: loss
# relative to |loss|, gradient relative to max |gradient|. Both sides round to the dtype.
TOLERANCE = {torch.float32: (1e-4, 1e-3), torch.float64: (1e-8, 1e-7)}
TOLERANCE_16BIT = (2e-2, 5e-2)


class Unavailable(Exception):
    """An implementation that cannot run here; the message says why."""


# --- implementations -------------------------------------------------------------------------


def eager_loss(x, t):
    return F.cross_entropy(x, t, label_smoothing=SMOOTHING)


def _ours(backend: str):
    return functools.partial(
        cookbook_ops.label_smoothing_cross_entropy, smoothing=SMOOTHING, backend=backend
    )


def _why_backend_unavailable(backend: str, device: str) -> str:
    try:
        x = torch.zeros(1, 2, device=device)
        cookbook_ops.label_smoothing_cross_entropy(
            x, torch.zeros(1, dtype=torch.long, device=device), backend=backend
        )
    except Exception as exc:  # the op's own message names the missing piece
        return str(exc)
    return "not reported by cookbook_ops.available_backends()"


def unavailable_reason(impl: str, device: str) -> str | None:
    """None if ``impl`` can be benchmarked on ``device``, else why not."""
    device_type = torch.device(device).type
    if impl in ("eager", "compile"):
        return None
    if impl in OUR_BACKENDS:
        if impl == "triton" and device_type == "cpu":
            return "Triton on CPU tensors runs only in the interpreter, not a performance path"
        if impl in cookbook_ops.available_backends(
            device, op="label_smoothing_cross_entropy_forward"
        ):
            return None
        return _why_backend_unavailable(impl, device)
    if impl == "timm":
        try:
            import timm.loss  # noqa: F401
        except Exception as exc:
            return f"timm is not importable ({type(exc).__name__}: {exc})"
        return None
    if impl == "liger":
        if device_type != "cuda":
            return "Liger-Kernel runs on CUDA only"
        try:
            import liger_kernel.transformers  # noqa: F401
        except Exception as exc:
            return f"liger_kernel is not importable ({type(exc).__name__}: {exc})"
        return None
    raise ValueError(f"unknown implementation {impl!r}; known: {', '.join(IMPLS)}")


def make_loss_fn(impl: str):
    """A fresh ``loss(x, t) -> scalar mean loss`` for one (shape, dtype, pass) group."""
    if impl == "eager":
        return eager_loss
    if impl == "compile":
        # Static shapes: one specialized graph per group, as a training job with a fixed batch
        # would get (the caller resets dynamo between groups).
        return torch.compile(eager_loss, dynamic=False)
    if impl in OUR_BACKENDS:
        return _ours(impl)
    if impl == "timm":
        from timm.loss import LabelSmoothingCrossEntropy

        return LabelSmoothingCrossEntropy(smoothing=SMOOTHING)
    if impl == "liger":
        from liger_kernel.transformers import LigerCrossEntropyLoss

        return LigerCrossEntropyLoss(label_smoothing=SMOOTHING)
    raise ValueError(f"unknown implementation {impl!r}")


def impl_label(impl: str) -> str:
    return make_report.IMPL_LABELS.get(impl, impl)


# --- bytes ----------------------------------------------------------------------------------


def floor_bytes(shape: Shape, dtype: torch.dtype, pass_: str) -> int:
    elem = torch.empty((), dtype=dtype).element_size()
    return shape.n * shape.c * elem * (1 if pass_ == "fwd" else 2)


def bytes_moved_estimate(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> int | None:
    """Traffic of the logits-sized tensors as the implementation is written; None if unknown.

    Our kernels read the logits once in forward; backward reads them again and writes the
    gradient (per-row scalars are negligible).
    """
    if impl not in COMPILED_BACKENDS:
        return None
    elem = torch.empty((), dtype=dtype).element_size()
    return shape.n * shape.c * elem * (1 if pass_ == "fwd" else 3)


# --- one case ---------------------------------------------------------------------------------


@dataclass
class Prepared:
    fn: object
    reset: object
    compile_s: float | None
    loss_err: float | None
    grad_err: float | None


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def prepare(impl, pass_, x0, target, expected_loss, expected_grad, device) -> Prepared:
    """Build the timed callable, run it once (compiling if needed) and compare with eager."""
    loss_fn = make_loss_fn(impl)
    # Each implementation gets its own copy of the logits: Liger writes the gradient into its
    # input during forward, which would otherwise corrupt every later implementation's input.
    x = x0.detach().clone()
    if pass_ == "fwd":

        def fn():
            return loss_fn(x, target)

        reset = None
    else:
        x.requires_grad_(True)

        def fn():
            loss_fn(x, target).backward()

        def reset():
            x.grad = None

    t0 = time.perf_counter()
    if pass_ == "fwd":
        loss = fn()
    else:
        loss = loss_fn(x, target)
        loss.backward()
    _sync(device)
    first_call_s = time.perf_counter() - t0

    loss_err = grad_err = None
    if expected_loss is not None:
        ref = expected_loss.float()
        loss_err = float((loss.detach().float() - ref).abs() / ref.abs().clamp_min(1.0))
    if pass_ != "fwd" and expected_grad is not None and x.grad is not None:
        g_ref = expected_grad.float()
        scale = g_ref.abs().max().clamp_min(1e-30)
        grad_err = float((x.grad.float() - g_ref).abs().max() / scale)
    if reset is not None:
        reset()
    return Prepared(
        fn=fn,
        reset=reset,
        compile_s=first_call_s if impl == "compile" else None,
        loss_err=loss_err,
        grad_err=grad_err,
    )


def finish_record(rec: dict, timing: common.Timing, copy_gbps: float) -> dict:
    median = timing.median_ms
    floor = rec["floor_bytes"]
    rec["timing"] = timing.to_dict()
    rec["median_ms"] = median
    rec["floor_ms"] = floor / (copy_gbps * 1e9) * 1e3
    rec["achieved_GBps"] = floor / (median * 1e-3) / 1e9
    rec["fraction_of_floor"] = rec["floor_ms"] / median
    est = rec["bytes_moved_est"]
    rec["est_GBps"] = est / (median * 1e-3) / 1e9 if est is not None else None
    return rec


def check_status(rec: dict, dtype: torch.dtype) -> None:
    loss_tol, grad_tol = TOLERANCE.get(dtype, TOLERANCE_16BIT)
    bad = []
    if rec.get("loss_err") is not None and not rec["loss_err"] <= loss_tol:
        bad.append(f"loss off by {rec['loss_err']:.2e} (relative)")
    if rec.get("grad_err") is not None and not rec["grad_err"] <= grad_tol:
        bad.append(f"grad off by {rec['grad_err']:.2e} (of max |grad|)")
    if bad:
        rec["status"] = "mismatch"
        rec["reason"] = "vs eager: " + "; ".join(bad)


def run_group(shape, dtype, pass_, impls, device, effort, copy_gbps, progress) -> list[dict]:
    """Every implementation on one (shape, dtype, pass); eager first, ratios against it."""
    torch._dynamo.reset()  # compiled graphs of earlier groups must not count toward the limit
    dev = torch.device(device)
    x0 = torch.randn(shape.n, shape.c, device=dev, dtype=torch.float32).to(dtype)
    target = torch.randint(0, shape.c, (shape.n,), device=dev)

    xe = x0.clone().requires_grad_(pass_ != "fwd")
    expected_loss = eager_loss(xe, target)
    expected_grad = None
    if pass_ != "fwd":
        expected_loss.backward()
        expected_grad = xe.grad
    expected_loss = expected_loss.detach()
    del xe

    records = [
        {
            "shape": {"n": shape.n, "c": shape.c, "name": shape.name},
            "dtype": str(dtype).removeprefix("torch."),
            "pass": pass_,
            "impl": impl,
            "label": impl_label(impl),
            "status": "ok",
            "reason": None,
            "floor_bytes": floor_bytes(shape, dtype, pass_),
            "bytes_moved_est": bytes_moved_estimate(impl, shape, dtype, pass_),
        }
        for impl in impls
    ]

    def prepare_record(rec):
        p = prepare(rec["impl"], pass_, x0, target, expected_loss, expected_grad, device)
        rec.update(compile_s=p.compile_s, loss_err=p.loss_err, grad_err=p.grad_err)
        check_status(rec, dtype)
        return p.fn, p.reset

    common.measure_group(
        records,
        prepare_record,
        lambda rec, timing: finish_record(rec, timing, copy_gbps),
        device,
        effort,
        progress,
        f"{shape.label} {records[0]['dtype']} {pass_}",
    )
    common.add_speedups(records, "eager", "speedup_vs_eager")
    return records


# --- driver -----------------------------------------------------------------------------------


def parse_shapes(text: str) -> list[Shape]:
    shapes = []
    for item in text.split(","):
        n, c = item.lower().split("x")
        shapes.append(Shape(int(n), int(c), "custom"))
    return shapes


SPEC = common.BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call=f"F.cross_entropy(x, t, label_smoothing={SMOOTHING}) and equivalents, mean",
    impls=IMPLS,
    passes=PASSES,
    dtypes=DTYPES,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    effort=EFFORT,
    shapes_help="NxC list, e.g. 256x1000,4096x1000",
    parse_shapes=parse_shapes,
    shape_dict=lambda s: {"n": s.n, "c": s.c, "name": s.name},
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    config={"smoothing": SMOOTHING},
)


def parse_args(argv=None):
    return common.parse_args(SPEC, argv)


def main(argv=None) -> int:
    return common.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
