"""Mixup loss (two targets, smoothing 0.1) against the cookbook's two-CE expression and timm.

    python benchmarks/bench_mixup_cross_entropy.py [--device cpu|cuda] [--quick] [--out DIR]
        [--shapes 4096x1000,per_sample:256x1000,...] [--dtypes fp32,bf16] [--impls eager,...]

Each "shape" is N x C logits with one kind of lam (a plain NxC in --shapes means both):
``scalar`` (a Python float) or ``per_sample`` (an (N,) tensor). target_b is target_a flipped
along the batch, the partner timm's Mixup uses, so every implementation does the same work.

Implementations: the cookbook's expression in PyTorch eager, ``lam * F.cross_entropy(x, ya,
label_smoothing=0.1) + (1 - lam) * F.cross_entropy(x, yb, label_smoothing=0.1)`` (per-sample
lam: the same with ``reduction="none"`` and a mean); torch.compile of it; every backend of
ours that ``cookbook_ops.available_backends(device, op="mixup_cross_entropy_forward")``
reports, ``cookbook_ops.mixup_cross_entropy(x, ya, yb, lam, 0.1)`` (the reference is the
pure-PyTorch fallback that ``auto`` uses where no kernel is built); the dense-target formula
``sum(-mixup_target * log_softmax(x)).mean()`` written out in PyTorch (``dense``), and timm's
``SoftTargetCrossEntropy`` on timm's ``mixup_target`` when timm is importable. Both dense
forms build their (N, C) target inside the timed call, as the training step does. Passes:
``fwd`` (mean loss, logits without grad) and ``fwd+bwd`` (mean loss, backward, ``.grad`` dropped
untimed between calls).

Memory floor, the model of the label-smoothed cross-entropy benchmark: forward must read the
logits once (N*C elements); forward+backward must also write the gradient once (2*N*C: a
kernel that writes the gradient during its forward pass reads the logits once). Our kernels
run forward and backward as two passes, reading the logits twice: 3*N*C, given as "est"
traffic in the JSON. floor time = floor bytes / copy bandwidth measured in this run.

Every loss and gradient is checked against the cookbook's expression evaluated in float64.

Writes <out>/mixup_cross_entropy-<device>[-quick].{json,md,png}; the JSON is rewritten after
every shape, so a run cut short still leaves its finished shapes, and --time-budget skips (and
records) the cases it has no time left for.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import make_report
import torch
import torch.nn.functional as F

# The logits-sized traffic is that of the label-smoothed cross-entropy: the same model.
from bench_label_smoothing_cross_entropy import record_fields
from harness import driver, spec
from harness.cases import GRAD_LIMIT_MESSAGE, Case, Prepared, max_relative_error, prepare_call
from harness.environment import import_cookbook_ops
from harness.floors import memory_floor_numbers
from harness.groups import new_records, time_group
from harness.impls import (
    OUR_BACKENDS,
    backend_unavailable_reason,
    impl_fn,
    import_failure,
    unknown_impl,
)
from harness.overhead import both_passes
from harness.spec import BenchSpec, parse_kind_sizes

cookbook_ops = import_cookbook_ops()

SMOOTHING = 0.1
BENCHMARK = "mixup_cross_entropy"
FORWARD_OP = "mixup_cross_entropy_forward"
PASSES = spec.PASSES
IMPLS = ("eager", "compile", *OUR_BACKENDS, "dense", "timm")
LAM_KINDS = ("scalar", "per_sample")


@dataclass(frozen=True)
class Shape:
    n: int
    c: int
    lam: str  # "scalar" or "per_sample"
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.n}x{self.c}-lam_{self.lam}"


def _both(n, c, what) -> list[Shape]:
    return [Shape(n, c, lam, f"{what}, {lam.replace('_', '-')} lam") for lam in LAM_KINDS]


SHAPES = {
    "cuda": _both(4096, 1000, "ImageNet-1k, batch 4096")
    + _both(256, 1000, "ImageNet-1k, batch 256")
    + _both(1024, 21843, "ImageNet-21k, batch 1024"),
    "cpu": _both(4096, 1000, "ImageNet-1k, batch 4096") + _both(256, 1000, "ImageNet-1k"),
}
HEADLINE_SHAPES = {
    "cuda": [Shape(4096, 1000, "scalar", "ImageNet-1k, batch 4096, scalar lam")],
    "cpu": [Shape(4096, 1000, "scalar", "ImageNet-1k, batch 4096, scalar lam")],
}
QUICK_SHAPES = {
    "cuda": _both(4096, 1000, "ImageNet-1k, batch 4096"),
    "cpu": _both(256, 1000, "ImageNet-1k, batch 256"),
}

# Loss relative to max(|loss|, 1), gradient relative to max |gradient|, both against float64.
TOLERANCE = {torch.float32: (1e-4, 1e-3), torch.float64: (1e-10, 1e-8)}
TOLERANCE_16BIT = (2e-2, 5e-2)

NOTES: list[str] = []


# --- implementations -------------------------------------------------------------------------


def eager_loss(x, ya, yb, lam):
    """The cookbook's two cross-entropies; a per-sample lam weighs each row's pair."""
    if isinstance(lam, torch.Tensor):
        loss_a = F.cross_entropy(x, ya, reduction="none", label_smoothing=SMOOTHING)
        loss_b = F.cross_entropy(x, yb, reduction="none", label_smoothing=SMOOTHING)
        return (lam * loss_a + (1 - lam) * loss_b).mean()
    return lam * F.cross_entropy(x, ya, label_smoothing=SMOOTHING) + (1 - lam) * F.cross_entropy(
        x, yb, label_smoothing=SMOOTHING
    )


def dense_loss(x, ya, yb, lam):
    """The dense-target route (timm's mixup_target + SoftTargetCrossEntropy), spelled out:
    an (N, C) smoothed, mixed target, then the soft-target cross-entropy."""
    c = x.shape[1]
    off = SMOOTHING / c
    on = 1.0 - SMOOTHING + off
    y1 = torch.full((x.shape[0], c), off, device=x.device).scatter_(1, ya.view(-1, 1), on)
    y2 = torch.full((x.shape[0], c), off, device=x.device).scatter_(1, yb.view(-1, 1), on)
    if isinstance(lam, torch.Tensor):
        lam = lam.view(-1, 1)
    target = y1 * lam + y2 * (1 - lam)
    return torch.sum(-target * F.log_softmax(x, dim=-1), dim=-1).mean()


def _timm_loss():
    from timm.data.mixup import mixup_target
    from timm.loss import SoftTargetCrossEntropy

    criterion = SoftTargetCrossEntropy()

    def loss(x, ya, yb, lam):
        # timm pairs each sample with the flipped batch, so target_b is implied by target_a.
        if isinstance(lam, torch.Tensor):
            lam = lam.view(-1, 1)
        return criterion(x, mixup_target(ya, x.shape[1], lam, SMOOTHING))

    return loss


def _ours(backend: str):
    return functools.partial(cookbook_ops.mixup_cross_entropy, smoothing=SMOOTHING, backend=backend)


def _probe(backend: str, device: str) -> None:
    x = torch.zeros(1, 2, device=device)
    t = torch.zeros(1, dtype=torch.long, device=device)
    cookbook_ops.mixup_cross_entropy(x, t, t, 0.5, backend=backend)


def unavailable_reason(impl: str, device: str) -> str | None:
    """None if ``impl`` can be benchmarked on ``device``, else why not."""
    if impl in ("eager", "compile", "dense"):
        return None
    if impl in OUR_BACKENDS:
        probe = functools.partial(_probe, impl, device)
        return backend_unavailable_reason(impl, device, (FORWARD_OP,), probe)
    if impl == "timm":
        return import_failure(
            "timm", "timm.data.mixup:mixup_target", "timm.loss:SoftTargetCrossEntropy"
        )
    raise unknown_impl(impl, IMPLS)


def make_loss_fn(impl: str):
    """A fresh ``loss(x, ya, yb, lam) -> mean loss`` for one (shape, dtype, pass) group."""
    return impl_fn(impl, eager_loss, _ours, dense=lambda: dense_loss, timm=_timm_loss)


IMPL_LABELS = {
    "eager": "torch eager (two CEs)",
    "dense": "dense target + soft CE (eager)",
    "timm": "timm mixup_target + SoftTargetCrossEntropy",
}
impl_label = functools.partial(make_report.impl_label, overrides=IMPL_LABELS)


# --- one case ---------------------------------------------------------------------------------


@dataclass
class Inputs:
    x0: torch.Tensor
    target_a: torch.Tensor
    target_b: torch.Tensor
    lam: float | torch.Tensor


def make_inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0) -> Inputs:
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    x0 = torch.randn(shape.n, shape.c, generator=gen).to(dev, dtype)
    target_a = torch.randint(0, shape.c, (shape.n,), generator=gen).to(dev)
    if shape.lam == "per_sample":
        lam = torch.rand(shape.n, generator=gen).to(dev)
    else:
        lam = float(torch.rand((), generator=gen))
    return Inputs(x0, target_a, target_a.flip(0), lam)


def make_case(shape: Shape, dtype: torch.dtype, pass_: str, device: str) -> Case:
    """The inputs of one group, with the loss and gradient of the cookbook's expression in
    float64."""
    inp = make_inputs(shape, dtype, device)
    x = inp.x0.double().requires_grad_(pass_ != "fwd")
    lam = inp.lam.double() if isinstance(inp.lam, torch.Tensor) else inp.lam
    loss = eager_loss(x, inp.target_a, inp.target_b, lam)
    grad = None
    if pass_ != "fwd":
        loss.backward()
        grad = x.grad
    return Case(shape, dtype, pass_, device, inp, (loss.detach(), grad))


def prepare(impl: str, case: Case) -> Prepared:
    """Build the timed callable, run it once (compiling if needed) and compare with float64."""
    loss_fn = make_loss_fn(impl)
    inp = case.inputs
    x = inp.x0.detach().clone()
    loss_ref, grad_ref = case.expected

    def check(loss):
        loss_err = float((loss.detach().double() - loss_ref).abs() / loss_ref.abs().clamp_min(1.0))
        grad_err = None if grad_ref is None else max_relative_error(x.grad, grad_ref)
        return {"loss_err": loss_err, "grad_err": grad_err}

    loss_tol, grad_tol = TOLERANCE.get(case.dtype, TOLERANCE_16BIT)
    limits = {
        "loss_err": (loss_tol, "loss off by {:.2e} (relative)"),
        "grad_err": (grad_tol, GRAD_LIMIT_MESSAGE),
    }
    forward = lambda: loss_fn(x, inp.target_a, inp.target_b, inp.lam)
    return prepare_call(impl, forward, [x], case, check, limits, "float64 expression")


def run_group(shape, dtype, pass_, impls, device, effort, copy_gbps, progress) -> list[dict]:
    """Every implementation on one (shape, dtype, pass); eager first, ratios against it."""
    case = make_case(shape, dtype, pass_, device)
    records = new_records(case, impls, impl_label, record_fields)
    finish = functools.partial(memory_floor_numbers, copy_gbps=copy_gbps)
    return time_group(case, records, prepare, finish, effort, progress)


# --- driver -----------------------------------------------------------------------------------


def parse_shapes(text: str) -> list[Shape]:
    """``[scalar:|per_sample:]NxC`` items; without a lam kind, both kinds of that size."""
    items = parse_kind_sizes(text, LAM_KINDS, "lam kind")
    return [Shape(n, c, lam, "custom") for lam, (n, c) in items]


def overhead_cases(device: str):
    """``--overhead``: 8 rows of 10 classes, a float lam, where a call is nearly all host work."""
    x = torch.randn(8, 10, device=device, requires_grad=True)
    ya = torch.randint(0, 10, (8,), device=device)
    yb = ya.roll(1)
    ours = _ours("auto")
    return both_passes("8x10", lambda: eager_loss(x, ya, yb, 0.3), lambda: ours(x, ya, yb, 0.3))


SPEC = BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call=(
        f"cookbook_ops.mixup_cross_entropy(x, ya, yb, lam, {SMOOTHING}) and "
        f"lam * F.cross_entropy(x, ya, label_smoothing={SMOOTHING}) + (1 - lam) * "
        f"F.cross_entropy(x, yb, label_smoothing={SMOOTHING}), mean"
    ),
    impls=IMPLS,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    headline_shapes=HEADLINE_SHAPES,
    shapes_help="[scalar:|per_sample:]NxC list, e.g. 4096x1000,per_sample:256x1000",
    parse_shapes=parse_shapes,
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    config={"smoothing": SMOOTHING, "target_b": "target_a flipped along the batch"},
    extra={
        "floor_note": (
            "memory floor: fwd reads the logits once (N*C*elem bytes); fwd+bwd also writes the "
            "gradient once (2*N*C*elem); our kernels' own traffic is 3*N*C*elem for fwd+bwd "
            "(backward rereads the logits). GB/s = floor bytes / time; of floor = floor time "
            "/ time. Dense-target rows build their (N, C) target inside the timed call."
        ),
        "notes": NOTES,
    },
    auto_backend_ops=(FORWARD_OP,),
    overhead_cases=overhead_cases,
)


def main(argv=None) -> int:
    return driver.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
