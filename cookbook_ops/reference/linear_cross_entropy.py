"""Pure-PyTorch classifier head: ``F.linear`` then the label-smoothed cross-entropy, the N x C
logits built in full. The oracle of :mod:`cookbook_ops.ops.linear_cross_entropy`.

``mean`` divides by the count of non-ignored rows (or the sum of their target class weights);
the two-target form weighs the per-target losses with lam and 1 - lam, each term with its own
denominator, as :func:`cookbook_ops.mixup_cross_entropy`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops._smoothing import mean_denominator, smoothing_weights
from cookbook_ops.reference.label_smoothing_cross_entropy import (
    label_smoothing_cross_entropy_rows,
)


def _rows(logits, target, class_weight, smoothing, convention, ignore_index):
    on_value, off_value = smoothing_weights(convention, smoothing, logits.shape[1])
    loss, _ = label_smoothing_cross_entropy_rows(
        logits, target, class_weight, on_value, off_value, ignore_index
    )
    return loss


def _reduce(terms, reduction):
    """terms: (lam_k, loss_k, target_k) triples; lam_k a float or a tensor."""
    if reduction == "none":
        return sum(lam * loss for lam, loss, _ in terms)
    if reduction == "sum":
        return sum((lam * loss).sum() for lam, loss, _ in terms)
    return sum((lam * loss).sum() / denominator for lam, loss, denominator in terms)


def linear_cross_entropy(
    input, weight, target, bias=None, smoothing=0.0, *, class_weight=None, ignore_index=-100,
    reduction="mean", convention="uniform",
):  # fmt: skip
    """``F.cross_entropy(F.linear(input, weight, bias), target, ...)`` with the smoothing
    ``convention`` of label_smoothing_cross_entropy; the loss in the dtype of input."""
    logits = F.linear(input, weight, bias)
    dtype = opmath_dtype(logits.dtype)
    loss = _rows(logits, target, class_weight, smoothing, convention, ignore_index)
    denominator = None
    if reduction == "mean":
        denominator = mean_denominator(target, class_weight, ignore_index, dtype)
    return _reduce([(1.0, loss, denominator)], reduction).to(logits.dtype)


def linear_mixup_cross_entropy(
    input, weight, target_a, target_b, lam, bias=None, smoothing=0.0, *, class_weight=None,
    ignore_index=-100, reduction="mean", convention="uniform",
):  # fmt: skip
    """``lam * CE(logits, target_a) + (1 - lam) * CE(logits, target_b)`` of
    ``logits = F.linear(input, weight, bias)``; lam a float, 0-d or (N,) tensor."""
    logits = F.linear(input, weight, bias)
    dtype = opmath_dtype(logits.dtype)
    if isinstance(lam, torch.Tensor):
        lam = lam.to(dtype)
    terms = []
    for lam_k, target in ((lam, target_a), (1 - lam, target_b)):
        loss = _rows(logits, target, class_weight, smoothing, convention, ignore_index)
        denominator = None
        if reduction == "mean":
            denominator = mean_denominator(target, class_weight, ignore_index, dtype)
        terms.append((lam_k, loss, denominator))
    return _reduce(terms, reduction).to(logits.dtype)
