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
from dataclasses import dataclass

import make_report
import torch
import torch.nn.functional as F
from harness import driver, spec
from harness.cases import GRAD_LIMIT_MESSAGE, Case, Prepared, prepare_call
from harness.environment import import_cookbook_ops
from harness.floors import element_size, memory_floor_numbers
from harness.groups import new_records, time_group
from harness.impls import (
    OUR_BACKENDS,
    backend_unavailable_reason,
    impl_fn,
    import_failure,
    unknown_impl,
)
from harness.overhead import both_passes
from harness.spec import BenchSpec

cookbook_ops = import_cookbook_ops()

SMOOTHING = 0.1
BENCHMARK = "label_smoothing_cross_entropy"
FORWARD_OP = "label_smoothing_cross_entropy_forward"
PASSES = spec.PASSES
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
        Shape(100_000, 2, "degenerate: binary head, many short rows"),
    ],
}
HEADLINE_SHAPES = {
    "cuda": [Shape(8192, 128256, "large vocabulary (Llama 3)")],
    "cpu": [Shape(4096, 1000, "ImageNet-1k, large batch (headline CPU case)")],
}
QUICK_SHAPES = {
    "cuda": [
        Shape(256, 1000, "image classification, ImageNet-1k"),
        Shape(1024, 21843, "image classification, ImageNet-21k"),
    ],
    "cpu": [Shape(256, 1000, "image classification, ImageNet-1k")],
}

# How far an implementation may sit from eager (same dtype) before its row is flagged: loss
# relative to |loss|, gradient relative to max |gradient|. Both sides round to the dtype.
TOLERANCE = {torch.float32: (1e-4, 1e-3), torch.float64: (1e-8, 1e-7)}
TOLERANCE_16BIT = (2e-2, 5e-2)


# --- implementations -------------------------------------------------------------------------


def eager_loss(x, t):
    return F.cross_entropy(x, t, label_smoothing=SMOOTHING)


def _ours(backend: str):
    return functools.partial(
        cookbook_ops.label_smoothing_cross_entropy, smoothing=SMOOTHING, backend=backend
    )


def _probe(backend: str, device: str) -> None:
    x = torch.zeros(1, 2, device=device)
    t = torch.zeros(1, dtype=torch.long, device=device)
    cookbook_ops.label_smoothing_cross_entropy(x, t, backend=backend)


def unavailable_reason(impl: str, device: str) -> str | None:
    """None if ``impl`` can be benchmarked on ``device``, else why not."""
    if impl in ("eager", "compile"):
        return None
    if impl in OUR_BACKENDS:
        return backend_unavailable_reason(
            impl, device, (FORWARD_OP,), functools.partial(_probe, impl, device)
        )
    if impl == "timm":
        return import_failure("timm", "timm.loss")
    if impl == "liger":
        if torch.device(device).type != "cuda":
            return "Liger-Kernel runs on CUDA only"
        return import_failure("liger_kernel", "liger_kernel.transformers")
    raise unknown_impl(impl, IMPLS)


def _timm_loss():
    from timm.loss import LabelSmoothingCrossEntropy

    return LabelSmoothingCrossEntropy(smoothing=SMOOTHING)


def _liger_loss():
    from liger_kernel.transformers import LigerCrossEntropyLoss

    return LigerCrossEntropyLoss(label_smoothing=SMOOTHING)


def make_loss_fn(impl: str):
    """A fresh ``loss(x, t) -> scalar mean loss`` for one (shape, dtype, pass) group."""
    return impl_fn(impl, eager_loss, _ours, timm=_timm_loss, liger=_liger_loss)


# --- bytes ----------------------------------------------------------------------------------


def floor_bytes(shape: Shape, dtype: torch.dtype, pass_: str) -> int:
    return shape.n * shape.c * element_size(dtype) * (1 if pass_ == "fwd" else 2)


def bytes_moved_estimate(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> int | None:
    """Traffic of the logits-sized tensors as the implementation is written; None if unknown.

    Our kernels read the logits once in forward; backward reads them again and writes the
    gradient (per-row scalars are negligible).
    """
    if impl not in COMPILED_BACKENDS:
        return None
    return shape.n * shape.c * element_size(dtype) * (1 if pass_ == "fwd" else 3)


def record_fields(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> dict:
    return {
        "floor_bytes": floor_bytes(shape, dtype, pass_),
        "bytes_moved_est": bytes_moved_estimate(impl, shape, dtype, pass_),
    }


# --- one case ---------------------------------------------------------------------------------


def make_case(shape: Shape, dtype: torch.dtype, pass_: str, device: str) -> Case:
    """Logits and targets of one group, with eager's loss (and gradient) on them."""
    dev = torch.device(device)
    x0 = torch.randn(shape.n, shape.c, device=dev, dtype=torch.float32).to(dtype)
    target = torch.randint(0, shape.c, (shape.n,), device=dev)
    xe = x0.clone().requires_grad_(pass_ != "fwd")
    expected_loss = eager_loss(xe, target)
    expected_grad = None
    if pass_ != "fwd":
        expected_loss.backward()
        expected_grad = xe.grad
    expected = (expected_loss.detach(), expected_grad)
    return Case(shape, dtype, pass_, device, (x0, target), expected)


def prepare(impl: str, case: Case) -> Prepared:
    """Build the timed callable, run it once (compiling if needed) and compare with eager."""
    loss_fn = make_loss_fn(impl)
    x0, target = case.inputs
    # Each implementation gets its own copy of the logits: Liger writes the gradient into its
    # input during forward, which would otherwise corrupt every later implementation's input.
    x = x0.detach().clone()
    expected_loss, expected_grad = case.expected

    def check(loss):
        ref = expected_loss.float()
        grad_err = None
        if case.pass_ != "fwd" and expected_grad is not None and x.grad is not None:
            g_ref = expected_grad.float()
            scale = g_ref.abs().max().clamp_min(1e-30)
            grad_err = float((x.grad.float() - g_ref).abs().max() / scale)
        return {
            "loss_err": float((loss.detach().float() - ref).abs() / ref.abs().clamp_min(1.0)),
            "grad_err": grad_err,
        }

    loss_tol, grad_tol = TOLERANCE.get(case.dtype, TOLERANCE_16BIT)
    limits = {
        "loss_err": (loss_tol, "loss off by {:.2e} (relative)"),
        "grad_err": (grad_tol, GRAD_LIMIT_MESSAGE),
    }
    return prepare_call(impl, lambda: loss_fn(x, target), [x], case, check, limits, "eager")


def run_group(shape, dtype, pass_, impls, device, effort, copy_gbps, progress) -> list[dict]:
    """Every implementation on one (shape, dtype, pass); eager first, ratios against it."""
    case = make_case(shape, dtype, pass_, device)
    records = new_records(
        case, impls, make_report.impl_label, record_fields, shape=shape_dict(shape)
    )
    finish = functools.partial(memory_floor_numbers, copy_gbps=copy_gbps)
    return time_group(case, records, prepare, finish, effort, progress, baselines=("eager",))


# --- driver -----------------------------------------------------------------------------------


shape_dict = functools.partial(spec.shape_dict, with_label=False)


def parse_shapes(text: str) -> list[Shape]:
    shapes = []
    for item in text.split(","):
        n, c = item.lower().split("x")
        shapes.append(Shape(int(n), int(c), "custom"))
    return shapes


def overhead_cases(device: str):
    """``--overhead``: 8 rows of 10 classes, where a call is nearly all host work."""
    x = torch.randn(8, 10, device=device, requires_grad=True)
    t = torch.randint(0, 10, (8,), device=device)
    ours = _ours("auto")
    return both_passes("8x10", lambda: eager_loss(x, t), lambda: ours(x, t))


SPEC = BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call=f"F.cross_entropy(x, t, label_smoothing={SMOOTHING}) and equivalents, mean",
    impls=IMPLS,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    headline_shapes=HEADLINE_SHAPES,
    shapes_help="NxC list, e.g. 256x1000,4096x1000",
    parse_shapes=parse_shapes,
    shape_dict=shape_dict,
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    config={"smoothing": SMOOTHING},
    overhead_cases=overhead_cases,
)


def main(argv=None) -> int:
    return driver.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
