"""Cross-entropy with probability targets against PyTorch eager, torch.compile and timm.

    python benchmarks/bench_soft_target_cross_entropy.py [--device cpu|cuda] [--quick]
        [--out DIR] [--shapes 4096x1000,...] [--dtypes fp32,bf16] [--impls eager,cpu,...]

The loss of mixup/CutMix soft targets and of distillation: ``F.cross_entropy(x, q)`` with q a
probability distribution per row (the logits' shape and dtype), mean over rows.
Implementations: PyTorch eager ``F.cross_entropy(x, q)``, torch.compile of that function,
every backend of ours that ``cookbook_ops.available_backends(device, op)`` reports, and timm's
``SoftTargetCrossEntropy`` (``-sum(q * log_softmax(x), -1).mean()``) when importable. Passes:
``fwd`` (logits without grad) and ``fwd+bwd`` (mean loss, backward, ``.grad`` dropped untimed
between calls).

Memory floor: forward must read logits and targets once (2*N*C elements); forward+backward
must also write the gradient once (3*N*C). floor time = floor bytes / copy bandwidth measured
in this run.

Writes <out>/soft_target_cross_entropy-<device>[-quick].{json,md,png}.
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

BENCHMARK = "soft_target_cross_entropy"
FORWARD_OP = "soft_target_cross_entropy_forward"
PASSES = spec.PASSES
COMPILED_BACKENDS = ("cpu", "cuda", "triton")
IMPLS = ("eager", "compile", *OUR_BACKENDS, "timm")


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
        Shape(256, 1000, "ImageNet-1k"),
        Shape(4096, 1000, "ImageNet-1k, large batch"),
        Shape(1024, 21843, "ImageNet-21k"),
    ],
    "cpu": [
        Shape(4096, 1000, "ImageNet-1k, large batch (headline CPU case)"),
        Shape(256, 21843, "ImageNet-21k (headline CPU case)"),
        Shape(256, 1000, "ImageNet-1k"),
    ],
}
HEADLINE_SHAPES = {
    "cuda": [Shape(4096, 1000, "ImageNet-1k, large batch"), Shape(1024, 21843, "ImageNet-21k")],
    "cpu": [
        Shape(4096, 1000, "ImageNet-1k, large batch (headline CPU case)"),
        Shape(256, 21843, "ImageNet-21k (headline CPU case)"),
    ],
}
QUICK_SHAPES = {
    "cuda": [Shape(256, 1000, "ImageNet-1k")],
    "cpu": [Shape(256, 1000, "ImageNet-1k")],
}

# How far an implementation may sit from eager (same dtype) before its row is flagged: loss
# relative to |loss|, gradient relative to max |gradient|.
TOLERANCE = {torch.float32: (1e-4, 1e-3), torch.float64: (1e-8, 1e-7)}
TOLERANCE_16BIT = (2e-2, 5e-2)


# --- implementations -------------------------------------------------------------------------


def eager_loss(x, q):
    return F.cross_entropy(x, q)


def _ours(backend: str):
    return functools.partial(cookbook_ops.label_smoothing_cross_entropy, backend=backend)


def _probe(backend: str, device: str) -> None:
    x = torch.zeros(1, 2, device=device)
    cookbook_ops.label_smoothing_cross_entropy(x, torch.full_like(x, 0.5), backend=backend)


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
    raise unknown_impl(impl, IMPLS)


def _timm_loss():
    from timm.loss import SoftTargetCrossEntropy

    return SoftTargetCrossEntropy()


def make_loss_fn(impl: str):
    """A fresh ``loss(x, q) -> scalar mean loss`` for one (shape, dtype, pass) group."""
    return impl_fn(impl, eager_loss, _ours, timm=_timm_loss)


# --- bytes ----------------------------------------------------------------------------------


def floor_bytes(shape: Shape, dtype: torch.dtype, pass_: str) -> int:
    return shape.n * shape.c * element_size(dtype) * (2 if pass_ == "fwd" else 3)


def bytes_moved_estimate(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> int | None:
    """Traffic of the logits-sized tensors as the implementation is written; None if unknown.

    Our forward reads logits and targets once; backward reads both again and writes the
    gradient (per-row scalars are negligible).
    """
    if impl not in COMPILED_BACKENDS:
        return None
    return shape.n * shape.c * element_size(dtype) * (2 if pass_ == "fwd" else 5)


def record_fields(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> dict:
    return {
        "floor_bytes": floor_bytes(shape, dtype, pass_),
        "bytes_moved_est": bytes_moved_estimate(impl, shape, dtype, pass_),
    }


# --- one case ---------------------------------------------------------------------------------


def make_case(shape: Shape, dtype: torch.dtype, pass_: str, device: str) -> Case:
    """Logits and soft targets of one group (a mixup of two smoothed one-hot rows, as timm's
    mixup_target builds them), with eager's loss (and gradient) on them."""
    dev = torch.device(device)
    x0 = torch.randn(shape.n, shape.c, device=dev, dtype=torch.float32).to(dtype)
    pick = torch.randint(0, shape.c, (2, shape.n), device=dev)
    off = 0.1 / shape.c
    rows = torch.arange(shape.n, device=dev)
    q = torch.full((shape.n, shape.c), off, device=dev, dtype=torch.float32)
    q[rows, pick[0]] += 0.7 * (1.0 - 0.1)
    q[rows, pick[1]] += 0.3 * (1.0 - 0.1)
    q = q.to(dtype)
    xe = x0.clone().requires_grad_(pass_ != "fwd")
    expected_loss = eager_loss(xe, q)
    expected_grad = None
    if pass_ != "fwd":
        expected_loss.backward()
        expected_grad = xe.grad
    return Case(shape, dtype, pass_, device, (x0, q), (expected_loss.detach(), expected_grad))


def prepare(impl: str, case: Case) -> Prepared:
    """Build the timed callable, run it once (compiling if needed) and compare with eager."""
    loss_fn = make_loss_fn(impl)
    x0, q = case.inputs
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
    return prepare_call(impl, lambda: loss_fn(x, q), [x], case, check, limits, "eager")


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
    """``--overhead``: 8 rows of 10 classes with probability targets, nearly all host work."""
    x = torch.randn(8, 10, device=device, requires_grad=True)
    q = torch.softmax(torch.randn(8, 10, device=device), dim=1)
    ours = _ours("auto")
    return both_passes("8x10", lambda: eager_loss(x, q), lambda: ours(x, q))


SPEC = BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call="F.cross_entropy(x, q) with probability targets q, mean",
    impls=IMPLS,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    headline_shapes=HEADLINE_SHAPES,
    shapes_help="NxC list, e.g. 4096x1000,256x21843",
    parse_shapes=parse_shapes,
    shape_dict=shape_dict,
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    config={"smoothing": 0.0},
    overhead_cases=overhead_cases,
)


def main(argv=None) -> int:
    return driver.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
