"""Drop-in loss modules backed by the fused cross-entropy kernels."""

from __future__ import annotations

import torch
from torch import nn

from cookbook_ops._validation import REDUCTIONS
from cookbook_ops.ops.label_smoothing_cross_entropy import label_smoothing_cross_entropy

__all__ = ["LSR", "LabelSmoothingCrossEntropy"]


class LabelSmoothingCrossEntropy(nn.Module):
    """Drop-in for ``nn.CrossEntropyLoss(weight, ignore_index=..., reduction=...,
    label_smoothing=...)`` with class-index targets or, as PyTorch, probability targets of the
    input's shape (soft labels: mixup/CutMix, distillation); ``convention`` picks how the
    smoothing mass is spread ("uniform" is PyTorch's)."""

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        convention: str = "uniform",
        backend: str = "auto",
    ):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing}")
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.convention = convention
        self.backend = backend

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return label_smoothing_cross_entropy(
            input,
            target,
            self.label_smoothing,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            convention=self.convention,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return (
            f"label_smoothing={self.label_smoothing}, convention={self.convention!r}, "
            f"reduction={self.reduction!r}, ignore_index={self.ignore_index}"
        )


class LSR(nn.Module):
    """Drop-in for the cookbook's ``LSR`` class: target 1-e+e/(C-1) on the true class and
    e/(C-1) elsewhere (its rows sum to 1+e/(C-1), reproduced exactly), same checks and the
    same ValueErrors, without building the one-hot matrix."""

    def __init__(self, e: float = 0.1, reduction: str = "mean", backend: str = "auto"):
        super().__init__()
        self.e = e
        self.reduction = reduction
        self.backend = backend

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if x.size(0) != target.size(0):
            raise ValueError(
                "Expected input batchsize ({}) to match target batch_size({})".format(
                    x.size(0), target.size(0)
                )
            )
        if x.dim() < 2:
            raise ValueError(
                "Expected input tensor to have least 2 dimensions(got {})".format(x.size(0))
            )
        if x.dim() != 2:
            raise ValueError("Only 2 dimension tensor are implemented, (got {})".format(x.size()))
        if self.reduction not in REDUCTIONS:
            raise ValueError("unrecognized option, expect reduction to be one of none, mean, sum")
        # The cookbook multiplies log-probabilities by a float32 one-hot: 16-bit inputs give a
        # float32 loss there, so they do here.
        loss = label_smoothing_cross_entropy(
            x,
            target.reshape(x.size(0)),
            self.e,
            reduction=self.reduction,
            convention="lsr",
            ignore_index=-(2**63),  # the cookbook's LSR has no ignore_index
            backend=self.backend,
        )
        return loss.to(torch.promote_types(x.dtype, torch.float32))
