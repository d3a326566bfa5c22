"""Batch-level Mixup / CutMix (timm's ``Mixup`` semantics) and the matching loss.

This file is the module: its arguments, their checks, and the blends. The draws (pairings,
Beta lam, CutMix boxes, ``correct_lam``) are functions in
:mod:`cookbook_ops.ops.mixup_sampling`. Every random choice is drawn on the device of the
batch, from an optional ``torch.Generator``, and every branch on a random choice is a tensor
op (a no-mix sample has lam = 1 and an empty box), so nothing here waits for the device: no
``.item()``, no ``bool(tensor)``. Only the configuration (which alphas are active, mode,
pairing) picks Python branches, so a given ``Mixup`` always runs the same ops.

Cost per call: a few tiny (N,)-sized ops to draw the parameters, then one blend kernel when
only mixup or only CutMix is active (mixup reads x twice and writes once; CutMix reads once
and writes once). With both active, in "batch" and "pair" mode partners share the mixup/CutMix
choice, so a mixup pass (lam = 1 for CutMix samples) followed by a CutMix pass (empty boxes
for mixup samples) gives the mix: two launches, five batch-sized transfers. In "elem" mode a
sample's partner may have made the other choice, so both blends run over the whole batch and
``torch.where(use_cutmix, cutmix(x), mixup(x))`` picks per sample: three launches and eight
transfers (x read three times, both blends written and read back, the result written), about
2.7x the bytes of mixup alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import nn

from cookbook_ops._validation import check_options
from cookbook_ops.ops.label_smoothing_cross_entropy import label_smoothing_cross_entropy
from cookbook_ops.ops.mixup import cutmix, mixup, mixup_pairs_
from cookbook_ops.ops.mixup_cross_entropy import mixup_cross_entropy
from cookbook_ops.ops.mixup_sampling import (  # noqa: F401  (beta_sample, cutmix_boxes: old path)
    MODES,
    PAIRINGS,
    MixParams,
    beta_sample,
    cutmix_boxes,
    identity_params,
    sample_mix_params,
)

__all__ = ["MixParams", "MixedTarget", "Mixup", "MixupCrossEntropy"]

_BLEND_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8)


@dataclasses.dataclass
class MixedTarget:
    """The targets of a mixed batch: sample i is ``lam[i]`` of class ``target_a[i]`` and
    ``1 - lam[i]`` of class ``target_b[i]``. lam is an (N,) float32 tensor on the batch's
    device. ``num_classes`` and ``smoothing`` are the defaults of :meth:`dense`."""

    target_a: torch.Tensor
    target_b: torch.Tensor
    lam: torch.Tensor
    num_classes: int | None = None
    smoothing: float = 0.0

    def dense(
        self,
        num_classes: int | None = None,
        smoothing: float | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """timm's soft target: ``lam * y(a) + (1 - lam) * y(b)`` with y a one-hot target
        smoothed to ``on = 1 - s + s/C`` and ``off = s/C``. (N, C) in ``dtype``."""
        num_classes = self.num_classes if num_classes is None else num_classes
        smoothing = self.smoothing if smoothing is None else smoothing
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)):
            raise TypeError(f"smoothing must be a float; got {type(smoothing).__name__}")
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"smoothing must be in [0, 1]; got {smoothing}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype; got {dtype!r}")
        targets = torch.stack([self.target_a, self.target_b])
        if targets.device.type == "cpu" and not torch.compiler.is_compiling():
            # On a GPU an out-of-range class would be a device-side assert; on CPU say which.
            if targets.numel() > 0 and bool(((targets < 0) | (targets >= num_classes)).any()):
                raise ValueError(f"targets must be class indices in [0, {num_classes})")
        off = smoothing / num_classes
        on = 1.0 - smoothing + off
        n = self.target_a.shape[0]

        def smoothed_one_hot(target):
            y = torch.full((n, num_classes), off, dtype=dtype, device=target.device)
            return y.scatter_(1, target.unsqueeze(1), on)

        lam = self.lam.to(dtype).unsqueeze(1)
        return lam * smoothed_one_hot(self.target_a) + (1 - lam) * smoothed_one_hot(self.target_b)

    def to(self, device) -> MixedTarget:
        """The same targets on another device (three small copies)."""
        return dataclasses.replace(
            self,
            target_a=self.target_a.to(device),
            target_b=self.target_b.to(device),
            lam=self.lam.to(device),
        )


def _check_fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float; got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; got {value}")
    return float(value)


def _check_alpha(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float; got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0; got {value}")
    return float(value)


def _check_minmax(value) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, torch.Tensor)) or not isinstance(value, Sequence):
        raise TypeError(f"cutmix_minmax must be None or a (min, max) pair; got {value!r}")
    if len(value) != 2:
        raise ValueError(f"cutmix_minmax must have two entries (min, max); got {value!r}")
    low, high = value
    for v in (low, high):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"cutmix_minmax entries must be floats; got {value!r}")
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"cutmix_minmax must satisfy 0 <= min < max <= 1; got {value!r}")
    return float(low), float(high)


class Mixup(nn.Module):
    """Mixup / CutMix of a batch and its targets: ``mixed_x, mixed_target = mixup(x, target)``.

    Same parameters and semantics as timm's ``timm.data.Mixup``: lam ~ Beta(alpha, alpha);
    with both ``mixup_alpha`` and ``cutmix_alpha`` > 0, CutMix is chosen with probability
    ``switch_prob``; a sample (or batch) is mixed at all with probability ``prob`` (else
    lam = 1); CutMix boxes have sides sqrt(1 - lam) of the image's around a random centre,
    clipped to the image, and ``correct_lam`` resets lam to 1 - box area / (H*W);
    ``cutmix_minmax=(min, max)`` draws the box sides uniformly in those fractions of the
    image instead (this turns CutMix on and implies ``correct_lam``, as in timm).

    mode: "batch" (one draw for the whole batch), "pair" (one draw per pair of partners),
    "elem" (one draw per sample).
    pairing: who mixes with whom. "permutation": a random permutation (the cookbook's
    ``torch.randperm``); "flip": sample i with N-1-i (timm); "pairs": random disjoint pairs
    blended in place with :func:`cookbook_ops.mixup_pairs_` (x is overwritten when only mixup
    is active, x is dense and needs no gradient; use the returned tensor either way).
    "pair" mode needs mutual partners, so it takes "flip" or "pairs", not "permutation".
    Unlike timm, odd batches are allowed: a sample that is its own partner (the middle one
    with "flip", the left-over one with "pairs", a fixed point of a permutation) is not mixed
    (lam = 1, empty box), exactly unchanged.

    x: (N, ...) float16/bfloat16/float32/float64/uint8 in any layout (channels_last stays
    channels_last); CutMix needs (N, C, H, W). target: (N,) int64 class indices on x's device.
    Returns the mixed batch and a :class:`MixedTarget` (``label_smoothing`` and
    ``num_classes`` are the defaults of its ``dense()``). ``generator``, if given, must be on
    x's device; the same generator state gives the same result.
    """

    def __init__(
        self,
        mixup_alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        cutmix_minmax: Sequence[float] | None = None,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        mode: str = "batch",
        correct_lam: bool = True,
        label_smoothing: float = 0.1,
        num_classes: int = 1000,
        pairing: str = "permutation",
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ):
        super().__init__()
        self.mixup_alpha = _check_alpha("mixup_alpha", mixup_alpha)
        self.cutmix_alpha = _check_alpha("cutmix_alpha", cutmix_alpha)
        self.cutmix_minmax = _check_minmax(cutmix_minmax)
        if self.cutmix_minmax is not None and self.cutmix_alpha == 0.0:
            self.cutmix_alpha = 1.0  # timm: minmax turns CutMix on (its alpha is then unused)
        if self.mixup_alpha == 0.0 and self.cutmix_alpha == 0.0:
            raise ValueError(
                "nothing to mix: set mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax"
            )
        self.prob = _check_fraction("prob", prob)
        self.switch_prob = _check_fraction("switch_prob", switch_prob)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        if pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}; got {pairing!r}")
        if mode == "pair" and pairing == "permutation":
            raise ValueError(
                'mode="pair" shares one draw between mutual partners: use pairing="flip" or '
                '"pairs" (a permutation is not made of pairs)'
            )
        if not isinstance(correct_lam, bool):
            raise TypeError(f"correct_lam must be a bool; got {type(correct_lam).__name__}")
        self.label_smoothing = _check_fraction("label_smoothing", label_smoothing)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None; got {type(generator).__name__}"
            )
        self.mode = mode
        self.pairing = pairing
        self.correct_lam = correct_lam
        self.num_classes = num_classes
        self.generator = generator
        self.backend = backend
        self.mixup_enabled = True  # as timm: a training loop may switch mixing off

    @property
    def _uses_mixup(self) -> bool:
        return self.mixup_alpha > 0.0

    @property
    def _uses_cutmix(self) -> bool:
        return self.cutmix_alpha > 0.0

    def _check_call(self, x, target) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
        if x.dtype not in _BLEND_DTYPES:
            raise TypeError(f"x must be float16/bfloat16/float32/float64 or uint8; got {x.dtype}")
        if x.dim() < 1:
            raise ValueError("x must have a batch dimension (N, ...)")
        if self._uses_cutmix and x.dim() != 4:
            raise ValueError(f"CutMix needs x of shape (N, C, H, W); got {tuple(x.shape)}")
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"target must be a torch.Tensor; got {type(target).__name__}")
        if target.dtype != torch.int64:
            raise TypeError(f"target must be int64 class indices; got {target.dtype}")
        if target.shape != (x.shape[0],):
            raise ValueError(
                f"target must have shape ({x.shape[0]},) for x of shape {tuple(x.shape)}; "
                f"got {tuple(target.shape)}"
            )
        if target.device != x.device:
            raise ValueError(f"target is on {target.device} but x is on {x.device}")
        self._check_generator(x.device)

    def _check_generator(self, device: torch.device) -> None:
        g = self.generator
        if g is None:
            return
        gen_device = g.device
        same = gen_device.type == device.type and (
            device.type == "cpu" or (gen_device.index or 0) == (device.index or 0)
        )
        if not same:
            raise ValueError(f"generator is on {gen_device} but x is on {device}")

    def sample(self, x: torch.Tensor) -> MixParams:
        """Draw one set of mixing parameters for a batch shaped like x, on x's device, with
        tensor ops only (no host sync). Deterministic given the generator's state. The math
        is :func:`cookbook_ops.ops.mixup_sampling.sample_mix_params`."""
        self._check_generator(x.device)
        if not self.mixup_enabled:
            return identity_params(x.shape[0], x.device, self._uses_mixup, self._uses_cutmix)
        return sample_mix_params(
            x.shape,
            x.device,
            mixup_alpha=self.mixup_alpha,
            cutmix_alpha=self.cutmix_alpha,
            cutmix_minmax=self.cutmix_minmax,
            prob=self.prob,
            switch_prob=self.switch_prob,
            mode=self.mode,
            pairing=self.pairing,
            correct_lam=self.correct_lam,
            generator=self.generator,
        )

    def blend(self, x: torch.Tensor, params: MixParams) -> torch.Tensor:
        """Mix x with the drawn parameters (see the module docstring for what each case
        costs)."""
        backend = self.backend
        if not self._uses_cutmix:
            in_place = not (x.requires_grad and torch.is_grad_enabled()) and (
                x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
            )
            if self.pairing == "pairs" and in_place:
                return mixup_pairs_(x, params.lam, params.index, backend=backend)
            return mixup(x, params.lam, params.index, backend=backend)
        if not self._uses_mixup:
            return cutmix(x, params.boxes, params.index, backend=backend)[0]
        if self.mode != "elem":
            # A CutMix sample's partner is a CutMix sample too, left as it was by the mixup
            # pass, so the CutMix pass copies original pixels into the box.
            lam = torch.where(params.use_cutmix, 1.0, params.lam)
            mixed = mixup(x, lam, params.index, backend=backend)
            return cutmix(mixed, params.boxes, params.index, backend=backend)[0]
        cut, _ = cutmix(x, params.boxes, params.index, backend=backend)
        mixed = mixup(x, params.lam, params.index, backend=backend)
        return torch.where(params.use_cutmix.view(-1, 1, 1, 1), cut, mixed)

    def forward(self, x: torch.Tensor, target: torch.Tensor):
        self._check_call(x, target)
        params = self.sample(x)
        mixed = self.blend(x, params) if self.mixup_enabled else x
        mixed_target = MixedTarget(
            target_a=target,
            target_b=target[params.index],
            lam=params.lam,
            num_classes=self.num_classes,
            smoothing=self.label_smoothing,
        )
        return mixed, mixed_target

    def extra_repr(self) -> str:
        return (
            f"mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, "
            f"cutmix_minmax={self.cutmix_minmax}, prob={self.prob}, "
            f"switch_prob={self.switch_prob}, mode={self.mode!r}, pairing={self.pairing!r}, "
            f"correct_lam={self.correct_lam}, label_smoothing={self.label_smoothing}, "
            f"num_classes={self.num_classes}"
        )


class MixupCrossEntropy(nn.Module):
    """``lam * CE_s(logits, target_a) + (1 - lam) * CE_s(logits, target_b)`` for a
    :class:`MixedTarget`, in one fused pass over the logits and without a dense target; equal
    to timm's ``SoftTargetCrossEntropy`` on ``mixed_target.dense(C, label_smoothing)`` for
    ``convention="uniform"`` and ``reduction="mean"``. A plain (N,) int64 target gives the
    label-smoothed cross-entropy. The smoothing used is this module's ``label_smoothing``
    (pass the Mixup's to reproduce timm's mixed soft targets)."""

    def __init__(
        self,
        label_smoothing: float = 0.0,
        convention: str = "uniform",
        reduction: str = "mean",
        backend: str = "auto",
    ):
        super().__init__()
        check_options(label_smoothing, reduction, convention, -100)
        self.label_smoothing = float(label_smoothing)
        self.convention = convention
        self.reduction = reduction
        self.backend = backend

    def forward(self, logits: torch.Tensor, target) -> torch.Tensor:
        if isinstance(target, MixedTarget):
            return mixup_cross_entropy(
                logits,
                target.target_a,
                target.target_b,
                target.lam,
                self.label_smoothing,
                convention=self.convention,
                reduction=self.reduction,
                backend=self.backend,
            )
        if isinstance(target, torch.Tensor):
            return label_smoothing_cross_entropy(
                logits,
                target,
                self.label_smoothing,
                convention=self.convention,
                reduction=self.reduction,
                backend=self.backend,
            )
        raise TypeError(
            f"target must be a MixedTarget or an int64 tensor; got {type(target).__name__}"
        )

    def extra_repr(self) -> str:
        return (
            f"label_smoothing={self.label_smoothing}, convention={self.convention!r}, "
            f"reduction={self.reduction!r}"
        )
