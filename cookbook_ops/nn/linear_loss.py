"""The classifier head and its loss in one module: ``nn.Linear`` + cross-entropy, fused."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from cookbook_ops._validation import check_options
from cookbook_ops.nn.mixup import MixedTarget
from cookbook_ops.ops.linear_cross_entropy import linear_cross_entropy, linear_mixup_cross_entropy

__all__ = ["LinearCrossEntropy"]


class LinearCrossEntropy(nn.Module):
    """``nn.Linear(in_features, num_classes, bias)`` followed by the label-smoothed
    cross-entropy, computed chunk by chunk without the N x C logits
    (:func:`cookbook_ops.linear_cross_entropy`). ``weight`` (num_classes, in_features) and
    ``bias`` (num_classes,) are initialised as ``nn.Linear`` initialises them, so a state dict
    moves between the two. ``forward(x, target)`` takes an (N,) int64 target or a
    :class:`~cookbook_ops.nn.MixedTarget` (the mixup loss, as ``MixupCrossEntropy``);
    :meth:`logits` is the plain linear layer, for inference."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        bias: bool = True,
        label_smoothing: float = 0.0,
        *,
        convention: str = "uniform",
        reduction: str = "mean",
        ignore_index: int = -100,
        class_weight: torch.Tensor | None = None,
        chunk_size: int | None = None,
        backend: str = "auto",
        device=None,
        dtype=None,
    ):
        super().__init__()
        for name, value in (("in_features", in_features), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        check_options(label_smoothing, reduction, convention, ignore_index)
        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.empty((num_classes, in_features), **factory))
        self.bias = nn.Parameter(torch.empty(num_classes, **factory)) if bias else None
        self.register_buffer("class_weight", class_weight)
        self.label_smoothing = float(label_smoothing)
        self.convention = convention
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.chunk_size = chunk_size
        self.backend = backend
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation: kaiming-uniform weight, bias uniform in +-1/sqrt(fan_in)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def forward(self, x: torch.Tensor, target) -> torch.Tensor:
        options = dict(
            class_weight=self.class_weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            convention=self.convention,
            chunk_size=self.chunk_size,
            backend=self.backend,
        )
        if isinstance(target, MixedTarget):
            return linear_mixup_cross_entropy(
                x, self.weight, target.target_a, target.target_b, target.lam, self.bias,
                self.label_smoothing, **options,
            )  # fmt: skip
        if isinstance(target, torch.Tensor):
            return linear_cross_entropy(
                x, self.weight, target, self.bias, self.label_smoothing, **options
            )
        raise TypeError(
            f"target must be a MixedTarget or an int64 tensor; got {type(target).__name__}"
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"bias={self.bias is not None}, label_smoothing={self.label_smoothing}, "
            f"convention={self.convention!r}, reduction={self.reduction!r}"
        )
