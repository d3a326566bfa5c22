"""Mixup and CutMix blends against the cookbook's eager expressions, torch.compile and timm.

    python benchmarks/bench_mixup.py [--device cpu|cuda] [--quick] [--out DIR]
        [--shapes 64x3x224x224,cutmix:64x3x224x224,...] [--dtypes fp32,bf16] [--impls eager,...]

Each "shape" is one blend variant on an N x C x H x W batch (a plain NxCxHxW in --shapes means
every variant):

- ``mixup``: ``lam * x + (1 - lam) * x[index]``, lam a Python float, index a random permutation;
  ours: ``cookbook_ops.mixup(x, lam, index)``.
- ``mixup_per_sample``: the same with one lam per sample (an (N,) tensor, broadcast as
  ``lam.view(-1, 1, 1, 1)``).
- ``pairs_inplace``: the blend written back into x for random pairs (an involution); eager is
  the in-place form ``xp = x[pairs]; x.mul_(lam).add_(xp, alpha=1 - lam)``; ours:
  ``cookbook_ops.mixup_pairs_``. Forward only (it works on data).
- ``cutmix``: one random box per sample, eager as the mask-based ``torch.where(inside,
  x[index], x)`` (the vectorized form of the per-sample loop), plus lam = 1 - box area / image
  area; ours: ``cookbook_ops.cutmix(x, boxes, index)``.
- ``cutmix_one_box``: the cookbook's ``x2 = x.clone(); x2[:, :, y0:y1, x0:x1] =
  x[index, :, y0:y1, x0:x1]`` with one box for the whole batch; ours: the same op with that
  box in every row.

Implementations: the eager expression, torch.compile of it, every backend of ours that
``cookbook_ops.available_backends(device, op=...)`` reports for the op, and timm's ``Mixup``
(forward only, when importable) in the mode that does the same kind of work: ``batch`` for
mixup and the one-box CutMix, ``elem`` for per-sample lam and per-sample boxes, ``pair`` for
pairs. timm mixes in place with the flipped batch as partner, draws its own lam and boxes with
NumPy on the host, and builds the dense (N, 1000) mixed targets in the same call; its output
is checked against the blend its returned targets imply. Passes: ``fwd`` and ``fwd+bwd``
(backward from a fixed random upstream gradient, ``.grad`` dropped untimed between calls).

Memory floor (E = N*C*H*W elements, floor time = floor bytes / copy bandwidth measured in this
run): mixup reads two samples and writes one per element, fwd 3E; its backward is the same
gather-blend of the gradient with the inverse permutation, so fwd+bwd 6E. The in-place pair
swap reads and writes each element once, 2E. CutMix reads one source per element and writes
it, fwd 2E; its backward routes each gradient element to one place, fwd+bwd 4E. Index, lam and
boxes are negligible. Every output (and input gradient) is checked against the reference
evaluated in float64.

Writes <out>/mixup-<device>[-quick].{json,md,png}; the JSON is rewritten after every shape,
so a run cut short still leaves its finished shapes, and --time-budget skips (and records)
the cases it has no time left for.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import make_report
import torch
from harness import driver, spec
from harness.cases import GRAD_LIMIT_MESSAGE, Case, Prepared, max_relative_error, prepare_call
from harness.environment import import_cookbook_ops
from harness.floors import element_size, memory_floor_numbers
from harness.groups import new_records, time_group
from harness.impls import (
    OUR_BACKENDS,
    available_backends,
    backend_unavailable_reason,
    import_failure,
    unknown_impl,
)
from harness.overhead import both_passes
from harness.spec import BenchSpec, dtype_name, parse_kind_sizes
from mixup_impls import (
    NUM_CLASSES,
    TIMM_MODE,
    eager_cutmix,
    eager_mixup,
    make_blend_fn,
    make_inputs,
    timm_error,
)

cookbook_ops = import_cookbook_ops()

BENCHMARK = "mixup"
PASSES = spec.PASSES
IMPLS = ("eager", "compile", *OUR_BACKENDS, "timm")
VARIANTS = ("mixup", "mixup_per_sample", "pairs_inplace", "cutmix", "cutmix_one_box")
FORWARD_ONLY = ("pairs_inplace",)
# Elements moved per batch element: (fwd, fwd+bwd); see the module docstring.
FLOOR_ELEMENTS = {
    "mixup": (3, 6),
    "mixup_per_sample": (3, 6),
    "pairs_inplace": (2, None),
    "cutmix": (2, 4),
    "cutmix_one_box": (2, 4),
}


@dataclass(frozen=True)
class Shape:
    variant: str
    n: int
    c: int
    h: int
    w: int
    name: str = ""

    @property
    def numel(self) -> int:
        return self.n * self.c * self.h * self.w

    @property
    def label(self) -> str:
        return f"{self.variant}-{self.n}x{self.c}x{self.h}x{self.w}"


def _all_variants(n, c, h, w, what) -> list[Shape]:
    return [Shape(v, n, c, h, w, f"{v.replace('_', ' ')}, {what}") for v in VARIANTS]


SHAPES = {
    "cuda": _all_variants(256, 3, 224, 224, "ImageNet batch of 256"),
    # N=64 so the default run stays within a few minutes on two cores.
    "cpu": _all_variants(64, 3, 224, 224, "ImageNet batch of 64")
    # Degenerate: many samples of 3 values, where per-sample overheads and the eager
    # permutation check dominate.
    + [Shape("mixup", 100_000, 3, 1, 1, "degenerate: 100,000 samples of 3 values")],
}
# The two blends the cookbook's recipe runs: mixup with one lam, and CutMix with a box per sample.
HEADLINE_SHAPES = {
    "cuda": [
        Shape(v, 256, 3, 224, 224, f"{v}, ImageNet batch of 256") for v in ("mixup", "cutmix")
    ],
    "cpu": [Shape(v, 64, 3, 224, 224, f"{v}, ImageNet batch of 64") for v in ("mixup", "cutmix")],
}
QUICK_SHAPES = {
    "cuda": _all_variants(64, 3, 224, 224, "ImageNet batch of 64"),
    "cpu": _all_variants(16, 3, 112, 112, "batch of 16 at 112x112"),
}

# The default effort, with fewer and shorter CPU rounds: five variants per size.
EFFORT = {**spec.EFFORT, ("cpu", False): dict(warmup=2, reps=30, min_reps=7, budget_s=1.0)}

# Max |error| over max |float64 reference| for the output and the input gradient. A blend
# rounds once to the dtype, so 16-bit results sit within one rounding step.
TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.float64: (1e-12, 1e-12)}
TOLERANCE_16BIT = (1e-2, 1e-2)
# timm's CutMix cannot be replayed exactly: it is checked by the share of each sample taken
# from the partner (ties between equal 16-bit values can hide a few pasted elements).
TIMM_CUTMIX_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-4}
TIMM_CUTMIX_TOLERANCE_16BIT = 2e-2

NOTES: list[str] = []


# --- availability -------------------------------------------------------------------------------


def forward_op(variant: str) -> str:
    return "cutmix_forward" if variant.startswith("cutmix") else "mixup_forward"


def _probe(backend: str, device: str) -> None:
    x = torch.zeros(2, 1, 1, 1, device=device)
    cookbook_ops.mixup(x, 0.5, torch.tensor([1, 0], device=device), backend=backend)


def unavailable_reason(impl: str, device: str) -> str | None:
    """None if ``impl`` can be benchmarked on ``device`` (for some variant), else why not."""
    if impl in ("eager", "compile"):
        return None
    if impl in OUR_BACKENDS:
        ops = tuple(dict.fromkeys(forward_op(v) for v in VARIANTS))
        probe = functools.partial(_probe, impl, device)
        return backend_unavailable_reason(impl, device, ops, probe)
    if impl == "timm":
        return import_failure("timm", "timm.data:Mixup")
    raise unknown_impl(impl, IMPLS)


def not_applicable(impl: str, variant: str, pass_: str, device: str, n: int = 2) -> str | None:
    """Why ``impl`` has no row in one (variant, pass) group, or None if it has one."""
    if pass_ != "fwd" and variant in FORWARD_ONLY:
        return "forward only (works in place on data)"
    if impl == "timm" and pass_ != "fwd":
        return "timm's Mixup mixes in place, without gradients"
    if impl == "timm" and n % 2:
        return "timm's Mixup needs an even batch"
    if impl in OUR_BACKENDS and impl not in available_backends(device, forward_op(variant)):
        return f"no {impl} kernel for {forward_op(variant)}"
    return None


def impl_label(impl: str, variant: str) -> str:
    return make_report.impl_label(
        impl,
        {
            "eager": "torch eager (cookbook expression)",
            "timm": f"timm Mixup(mode={TIMM_MODE[variant][0]}) + targets",
        },
    )


# --- floor and checks -------------------------------------------------------------------------


def floor_bytes(shape: Shape, dtype: torch.dtype, pass_: str) -> int | None:
    fwd, fwd_bwd = FLOOR_ELEMENTS[shape.variant]
    per_element = fwd if pass_ == "fwd" else fwd_bwd
    return None if per_element is None else per_element * shape.numel * element_size(dtype)


def record_fields(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> dict:
    return {"floor_bytes": floor_bytes(shape, dtype, pass_)}


def make_case(shape: Shape, dtype: torch.dtype, pass_: str, device: str) -> Case:
    """The inputs of one group, with the output and input gradient of the reference evaluated
    in float64."""
    from cookbook_ops.reference import mixup as reference

    inp = make_inputs(shape, dtype, device)
    x = inp.x0.double().requires_grad_(pass_ != "fwd")
    v = shape.variant
    if v == "mixup":
        out = reference.mixup_forward(x, torch.full_like(inp.lam_t, inp.lam), inp.index)
    elif v == "mixup_per_sample":
        out = reference.mixup_forward(x, inp.lam_t, inp.index)
    elif v == "pairs_inplace":
        out = reference.mixup_forward(x, torch.full_like(inp.lam_t, inp.lam), inp.index)
    else:
        out = reference.cutmix_forward(x, inp.boxes, inp.index)
    grad = None
    if pass_ != "fwd":
        out.backward(inp.grad_out.double())
        grad = x.grad
    return Case(shape, dtype, pass_, device, inp, (out.detach(), grad))


# --- one case ---------------------------------------------------------------------------------


def prepare(impl: str, case: Case) -> Prepared:
    """Build the timed callable, run it once (compiling if needed) and check it."""
    inp, variant = case.inputs, case.shape.variant
    blend = make_blend_fn(impl, variant, inp, case.dtype)
    x = inp.x0.detach().clone()  # each implementation its own copy: some work in place
    x_before = x.detach().clone() if impl == "timm" else None
    out_ref, grad_ref = case.expected

    def check(out):
        if impl == "timm":
            out, target = out
            out_err = timm_error(variant, x_before, out, target, inp.labels)
        else:
            out_err = max_relative_error(out.detach(), out_ref)
        grad_err = None if grad_ref is None else max_relative_error(x.grad, grad_ref)
        return {"out_err": out_err, "grad_err": grad_err}

    out_tol, grad_tol = TOLERANCE.get(case.dtype, TOLERANCE_16BIT)
    if impl == "timm" and TIMM_MODE[variant][1]:
        out_tol = TIMM_CUTMIX_TOLERANCE.get(case.dtype, TIMM_CUTMIX_TOLERANCE_16BIT)
    limits = {
        "out_err": (out_tol, "output off by {:.2e}"),
        "grad_err": (grad_tol, GRAD_LIMIT_MESSAGE),
    }
    return prepare_call(
        impl,
        lambda: blend(x),
        [x],
        case,
        check,
        limits,
        "float64 reference",
        grad_output=inp.grad_out,
    )


def run_group(shape, dtype, pass_, impls, device, effort, copy_gbps, progress) -> list[dict]:
    """Every implementation on one (variant shape, dtype, pass); eager first, ratios against it."""
    label = f"{shape.label} {dtype_name(dtype)} {pass_}"
    if pass_ != "fwd" and shape.variant in FORWARD_ONLY:
        progress.update(f"{label}: forward only", n=len(impls))
        note = f"{shape.variant} is timed forward only: it works in place on data"
        if note not in NOTES:
            NOTES.append(note)
        return []
    case = make_case(shape, dtype, pass_, device)
    timed, skipped = [], []
    for impl in impls:
        reason = not_applicable(impl, shape.variant, pass_, device, shape.n)
        (skipped if reason else timed).append(impl)
    if skipped:
        progress.update(f"{label}: not applicable: {', '.join(skipped)}", n=len(skipped))
        for impl in skipped:
            why = not_applicable(impl, shape.variant, pass_, device, shape.n)
            note = f"{impl} has no row where {why}"
            if note not in NOTES:
                NOTES.append(note)

    records = new_records(
        case, timed, functools.partial(impl_label, variant=shape.variant), record_fields
    )
    finish = functools.partial(memory_floor_numbers, copy_gbps=copy_gbps)
    return time_group(case, records, prepare, finish, effort, progress)


# --- driver -----------------------------------------------------------------------------------


def parse_shapes(text: str) -> list[Shape]:
    """``[variant:]NxCxHxW`` items; without a variant, every variant of that size."""
    items = parse_kind_sizes(text, VARIANTS, "variant")
    return [Shape(v, n, c, h, w, "custom") for v, (n, c, h, w) in items]


def overhead_cases(device: str):
    """``--overhead``: 8 samples of 3x4x4, where a call is nearly all host work."""
    x = torch.randn(8, 3, 4, 4, device=device, requires_grad=True)
    index = torch.randperm(8, device=device)
    boxes = torch.tensor([[1, 1, 3, 3]] * 8, device=device)
    grad = torch.randn(8, 3, 4, 4, device=device)
    mix = cookbook_ops.mixup
    cut = cookbook_ops.cutmix
    return both_passes(
        "mixup 8x3x4x4", lambda: eager_mixup(x, 0.3, index), lambda: mix(x, 0.3, index), grad
    ) + both_passes(
        "cutmix 8x3x4x4",
        lambda: eager_cutmix(x, boxes, index)[0],
        lambda: cut(x, boxes, index)[0],
        grad,
    )


SPEC = BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call=(
        "cookbook_ops.mixup / mixup_pairs_ / cutmix and the cookbook's expressions "
        "(lam * x + (1 - lam) * x[index]; x2[:, :, y0:y1, x0:x1] = x[index, :, y0:y1, x0:x1])"
    ),
    impls=IMPLS,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    headline_shapes=HEADLINE_SHAPES,
    effort=EFFORT,
    shapes_help=(
        "[variant:]NxCxHxW list, e.g. 64x3x224x224,cutmix:256x3x224x224; variants: "
        + ", ".join(VARIANTS)
    ),
    parse_shapes=parse_shapes,
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    config={"num_classes_for_timm_targets": NUM_CLASSES},
    extra={
        "floor_note": (
            "memory floor, E = N*C*H*W elements: mixup fwd 3E (read x_i and x_index[i], write "
            "out), fwd+bwd 6E (the backward gathers the gradient the same way); pairs in place "
            "2E (read and write each element once); CutMix fwd 2E (one source per element), "
            "fwd+bwd 4E. GB/s = floor bytes / time; of floor = floor time / time."
        ),
        "notes": NOTES,
    },
    auto_backend_ops=("mixup_forward", "cutmix_forward"),
    overhead_cases=overhead_cases,
)


def main(argv=None) -> int:
    return driver.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
