"""The blends ``bench_mixup.py`` times: its inputs, the cookbook's eager expressions, ours and
timm's ``Mixup``, each as ``f(x) -> output`` for one (shape, dtype, pass) group, and the check
of timm's result, which cannot be replayed exactly."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from harness.cases import max_relative_error
from harness.environment import import_cookbook_ops
from harness.impls import impl_fn

if TYPE_CHECKING:
    from bench_mixup import Shape

cookbook_ops = import_cookbook_ops()

NUM_CLASSES = 1000  # for the dense targets timm's Mixup builds in the same call
# timm.data.Mixup mode doing the same kind of work as each variant, and whether it is CutMix.
TIMM_MODE = {
    "mixup": ("batch", False),
    "mixup_per_sample": ("elem", False),
    "pairs_inplace": ("pair", False),
    "cutmix": ("elem", True),
    "cutmix_one_box": ("batch", True),
}


# --- inputs -----------------------------------------------------------------------------------


@dataclass
class Inputs:
    x0: torch.Tensor
    index: torch.Tensor  # a permutation; an involution for pairs_inplace
    lam: float  # the blend weight of the scalar variants
    lam_t: torch.Tensor  # (N,) float32, per-sample variant
    boxes: torch.Tensor  # (N, 4) int64 (y0, x0, y1, x1); all rows equal for cutmix_one_box
    grad_out: torch.Tensor
    labels: torch.Tensor  # (N,) distinct class ids, for timm's targets


def random_involution(n: int, gen: torch.Generator) -> torch.Tensor:
    """Random pairs: a random permutation read two by two; an odd batch leaves one fixed."""
    order = torch.randperm(n, generator=gen)
    pairs = torch.arange(n)
    a, b = order[0 : n - 1 : 2], order[1:n:2]
    pairs[a], pairs[b] = b, a
    return pairs


def random_boxes(n: int, h: int, w: int, gen: torch.Generator, one_box: bool) -> torch.Tensor:
    """CutMix boxes as the paper draws them: area share 1 - lam, lam ~ U(0, 1), clipped."""
    rows = 1 if one_box else n
    ratio = torch.rand(rows, generator=gen).sqrt()
    cut_h, cut_w = (ratio * h).long(), (ratio * w).long()
    cy = torch.randint(0, h, (rows,), generator=gen)
    cx = torch.randint(0, w, (rows,), generator=gen)
    y0, y1 = (cy - cut_h // 2).clamp(0, h), (cy + (cut_h + 1) // 2).clamp(0, h)
    x0, x1 = (cx - cut_w // 2).clamp(0, w), (cx + (cut_w + 1) // 2).clamp(0, w)
    return torch.stack((y0, x0, y1, x1), dim=1).expand(n, 4).contiguous()


def make_inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0) -> Inputs:
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    x0 = torch.randn(shape.n, shape.c, shape.h, shape.w, generator=gen).to(dev, dtype)
    if shape.variant == "pairs_inplace":
        index = random_involution(shape.n, gen)
    else:
        index = torch.randperm(shape.n, generator=gen)
    lam = float(torch.rand((), generator=gen))
    lam_t = torch.rand(shape.n, generator=gen)
    boxes = random_boxes(shape.n, shape.h, shape.w, gen, shape.variant == "cutmix_one_box")
    grad_out = torch.randn(shape.n, shape.c, shape.h, shape.w, generator=gen).to(dev, dtype)
    labels = torch.randperm(max(NUM_CLASSES, shape.n), generator=gen)[: shape.n]
    return Inputs(x0, index.to(dev), lam, lam_t.to(dev), boxes.to(dev), grad_out, labels.to(dev))


# --- the cookbook's expressions ----------------------------------------------------------------


def eager_mixup(x, lam, index):
    return lam * x + (1 - lam) * x[index]


def eager_mixup_per_sample(x, lam, index):
    lam = lam.view(-1, 1, 1, 1)
    return lam * x + (1 - lam) * x[index]


def eager_pairs_inplace(x, lam, pairs):
    partner = x[pairs]  # gathered first: x is overwritten next
    return x.mul_(lam).add_(partner, alpha=1 - lam)


def eager_cutmix(x, boxes, index):
    _, _, h, w = x.shape
    y0, x0, y1, x1 = (boxes[:, k].view(-1, 1) for k in range(4))
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    inside = ((rows >= y0) & (rows < y1)).unsqueeze(2) & ((cols >= x0) & (cols < x1)).unsqueeze(1)
    lam = 1 - ((y1 - y0) * (x1 - x0)).view(-1).float() / (h * w)
    return torch.where(inside.unsqueeze(1), x[index], x), lam


def eager_cutmix_one_box(x, box, index):
    y0, x0, y1, x1 = box
    x2 = x.clone()
    x2[:, :, y0:y1, x0:x1] = x[index, :, y0:y1, x0:x1]
    return x2


def _eager_fn(variant: str, inp: Inputs, dtype: torch.dtype):
    """The eager expression of ``variant`` as ``f(x) -> output``, its parameters bound."""
    if variant == "mixup":
        return functools.partial(eager_mixup, lam=inp.lam, index=inp.index)
    if variant == "mixup_per_sample":
        # lam in x's dtype, as user code would hold it: a float32 lam would promote a 16-bit
        # blend to a float32 result.
        return functools.partial(eager_mixup_per_sample, lam=inp.lam_t.to(dtype), index=inp.index)
    if variant == "pairs_inplace":
        return functools.partial(eager_pairs_inplace, lam=inp.lam, pairs=inp.index)
    if variant == "cutmix":
        return lambda x: eager_cutmix(x, inp.boxes, inp.index)[0]
    if variant == "cutmix_one_box":
        box = tuple(int(v) for v in inp.boxes[0].tolist())  # host ints: the seed's slice bounds
        return functools.partial(eager_cutmix_one_box, box=box, index=inp.index)
    raise ValueError(f"unknown variant {variant!r}")


def _ours_fn(variant: str, inp: Inputs, backend: str):
    if variant == "mixup":
        return lambda x: cookbook_ops.mixup(x, inp.lam, inp.index, backend=backend)
    if variant == "mixup_per_sample":
        return lambda x: cookbook_ops.mixup(x, inp.lam_t, inp.index, backend=backend)
    if variant == "pairs_inplace":
        return lambda x: cookbook_ops.mixup_pairs_(x, inp.lam, inp.index, backend=backend)
    if variant in ("cutmix", "cutmix_one_box"):
        return lambda x: cookbook_ops.cutmix(x, inp.boxes, inp.index, backend=backend)[0]
    raise ValueError(f"unknown variant {variant!r}")


def _timm_mixup(variant: str):
    from timm.data import Mixup

    mode, is_cutmix = TIMM_MODE[variant]
    return Mixup(
        mixup_alpha=0.0 if is_cutmix else 1.0,
        cutmix_alpha=1.0 if is_cutmix else 0.0,
        prob=1.0,
        mode=mode,
        label_smoothing=0.0,
        num_classes=NUM_CLASSES,
    )


def make_blend_fn(impl: str, variant: str, inp: Inputs, dtype: torch.dtype):
    """A fresh ``f(x) -> output`` for one (shape, dtype, pass) group (timm: ``(x, target)``)."""

    def timm():
        mixer = _timm_mixup(variant)
        return lambda x: mixer(x, inp.labels)

    ours = functools.partial(_ours_fn, variant, inp)
    return impl_fn(impl, _eager_fn(variant, inp, dtype), ours, timm=timm)


# --- timm's result -------------------------------------------------------------------------------


def timm_error(variant, x_before, out, target, labels) -> float:
    """How far timm's in-place result is from the blend its targets say it did.

    timm pairs sample i with sample N-1-i and returns targets lam_i*onehot(y_i) +
    (1-lam_i)*onehot(y_{N-1-i}); the labels are distinct, so lam_i = target[i, y_i]. Mixup
    modes are compared with the float64 blend; CutMix by the share of each sample that differs
    from itself (1 - lam_i), every element coming from the sample or its partner."""
    n = x_before.shape[0]
    rows = torch.arange(n, device=x_before.device)
    lam = target.double()[rows, labels]
    a = x_before.double()
    b = a.flip(0)
    result = out.detach().double()
    if TIMM_MODE[variant][1]:
        if not ((result == a) | (result == b)).all():
            return float("inf")
        changed = (result != a).flatten(1).double().mean(1)
        return float((changed - (1 - lam)).abs().max())
    lam = lam.view(-1, *([1] * (a.dim() - 1)))
    return max_relative_error(result, lam * a + (1 - lam) * b)
