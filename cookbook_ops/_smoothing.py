"""Label-smoothing arithmetic the cross-entropy ops share outside the kernels: the weights of
the target distribution and what a ``mean`` reduction divides by.
"""

from __future__ import annotations

import torch


def smoothing_weights(convention: str, smoothing: float, num_classes: int) -> tuple[float, float]:
    """(on, off): weight of the true class and of each other class in the target distribution."""
    e = float(smoothing)
    if convention == "uniform":  # PyTorch's label_smoothing, timm, apex
        return 1.0 - e + e / num_classes, e / num_classes
    if convention in ("others", "lsr"):
        if num_classes < 2:
            raise ValueError(
                f"convention={convention!r} spreads the smoothing over the C-1 other classes "
                f"and needs at least 2 classes; got C={num_classes}"
            )
        off = e / (num_classes - 1)
        # "lsr" is the seed's LSR class: 1-e is scattered on the target and e/(C-1) then added
        # to every entry, so its target row sums to 1 + e/(C-1). Reproduced on purpose.
        return (1.0 - e, off) if convention == "others" else (1.0 - e + off, off)
    raise ValueError(f"convention must be 'uniform', 'others' or 'lsr'; got {convention!r}")


def mean_denominator(target, weight, ignore_index: int, dtype: torch.dtype) -> torch.Tensor:
    """What ``mean`` divides by: the count of non-ignored rows, or the sum of their target
    class weights (0 when every row is ignored, so the mean is NaN as in PyTorch)."""
    valid = target != ignore_index
    if weight is None:
        # an int64 count: dividing the op-math loss by it gives the op-math dtype, and
        # count_nonzero is the cheapest count of a small batch (host cost is the call here)
        return torch.count_nonzero(valid)
    safe = torch.where(valid, target, 0).clamp(0, weight.shape[0] - 1)
    return torch.where(valid, weight.to(dtype)[safe], 0).sum()
