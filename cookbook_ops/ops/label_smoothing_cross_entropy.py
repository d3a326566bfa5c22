"""Public label-smoothed cross-entropy: argument checks, backend choice and the reduction.

The kernels (registered in :mod:`cookbook_ops.ops.cross_entropy`) compute per-row losses in
op-math precision plus the per-row log-sum-exp that backward needs; the reduction (a sum over N
values and, for ``mean``, the sum of target weights) is a few tiny PyTorch ops here, so every
reduction and any ``grad_output`` cost the kernels nothing extra.
"""

from __future__ import annotations

import torch

from cookbook_ops import _backend, _library
from cookbook_ops._dtypes import output_dtype
from cookbook_ops._smoothing import mean_denominator, smoothing_weights
from cookbook_ops._validation import (
    check_num_classes,
    check_options,
    check_target_range,
    check_weight,
)
from cookbook_ops.ops.cross_entropy import loss_rows


def label_smoothing_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    smoothing: float = 0.0,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    convention: str = "uniform",
    return_correct: bool = False,
    backend: str = "auto",
):
    """Cross-entropy against a label-smoothed target, in one fused pass over the logits.

    Equal to ``F.cross_entropy(logits, target, weight, ignore_index=..., reduction=...,
    label_smoothing=smoothing)`` for ``convention="uniform"``. ``"others"`` puts 1-e on the
    target and e/(C-1) on every other class (the cookbook's inline loop); ``"lsr"`` is the
    cookbook's ``LSR`` class (1-e+e/(C-1) on the target, e/(C-1) elsewhere).

    logits: (N, C), (C,) or (N, C, d1, ...); target: int64 of the matching shape without C, or
    class probabilities shaped like ``logits`` (floating; see :func:`_probability_target_loss`).
    Returns the loss in the dtype of ``logits`` (float32 under autocast); with
    ``return_correct=True`` also a bool tensor shaped like ``target`` without C: argmax over C
    == target (== the target's argmax over C for probability targets).
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if target.is_floating_point():
        check_options(smoothing, reduction, convention, ignore_index)
        return _probability_target_loss(
            logits, target, smoothing, weight, reduction, convention, return_correct, backend
        )
    if target.dtype != torch.int64:
        raise TypeError(
            "target must be an int64 tensor of class indices or a floating tensor of class "
            f"probabilities shaped like logits, got {target.dtype}"
        )
    check_options(smoothing, reduction, convention, ignore_index)
    if logits.dim() == 0:
        raise ValueError("logits must have at least 1 dimension (C,) or (N, C, ...)")

    unbatched = logits.dim() == 1
    if unbatched:
        if target.dim() != 0:
            raise ValueError(
                f"for unbatched logits of shape {tuple(logits.shape)} target must be 0-d, "
                f"got shape {tuple(target.shape)}"
            )
        logits2d, target1d = logits.unsqueeze(0), target.reshape(1)
        batch_shape = ()
    else:
        expected = (logits.shape[0],) + tuple(logits.shape[2:])
        if tuple(target.shape) != expected:
            raise ValueError(
                f"target must have shape {expected} for logits of shape {tuple(logits.shape)}, "
                f"got {tuple(target.shape)}"
            )
        batch_shape = expected
        if logits.dim() == 2:
            logits2d, target1d = logits, target
        else:  # class dim at 1, as F.cross_entropy
            logits2d = logits.movedim(1, -1).reshape(-1, logits.shape[1])
            target1d = target.reshape(-1)
    num_classes = logits2d.shape[1]
    check_num_classes(num_classes)
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits is on {logits.device}")
    weight = check_weight(weight, logits)
    on_value, off_value = smoothing_weights(convention, smoothing, num_classes)

    chosen = _backend.resolve_backend(backend, logits.device, _library.LSCE_FORWARD)
    if chosen == "reference":
        # the C++ and Triton ops check CPU targets themselves
        check_target_range(target1d, num_classes, ignore_index)
    loss, correct = loss_rows(
        _library.LSCE_FORWARD, chosen, logits2d, target1d, weight, on_value, off_value, ignore_index
    )
    denominator = None
    if reduction == "mean":
        denominator = mean_denominator(target1d, weight, ignore_index, loss.dtype)
    return _reduce(loss, correct, logits, reduction, denominator, batch_shape, return_correct)


def _probability_target_loss(
    logits, target, smoothing, weight, reduction, convention, return_correct, backend
):
    """``F.cross_entropy`` with a probability target q shaped like ``logits``: the target
    distribution is a = (on - off) q + off per class, which is the convention's smoothed target
    when q is one-hot (uniform: (1 - e) q + e / C, exactly PyTorch's label_smoothing); class
    weights weight each class's term; ``mean`` divides by the number of rows; ignore_index does
    not apply. A target of another floating dtype is converted to that of logits (a copy). A
    target that requires grad is differentiated through the reference formula."""
    if target.dim() == logits.dim() - 1 and logits.dim() >= 1:
        # shaped like class indices: as PyTorch, a dtype error
        raise TypeError(
            f"target of shape {tuple(target.shape)} holds class indices and must be int64, got "
            f"{target.dtype} (probability targets have the shape of logits "
            f"{tuple(logits.shape)})"
        )
    if tuple(target.shape) != tuple(logits.shape):
        raise ValueError(
            f"a probability target must have the shape of logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits is on {logits.device}")
    if logits.dim() == 0:
        raise ValueError("logits must have at least 1 dimension (C,) or (N, C, ...)")
    if target.dtype != logits.dtype:
        target = target.to(logits.dtype)
    if logits.dim() == 1:
        logits2d, target2d, batch_shape = logits.unsqueeze(0), target.unsqueeze(0), ()
    elif logits.dim() == 2:
        logits2d, target2d, batch_shape = logits, target, (logits.shape[0],)
    else:  # class dim at 1, as F.cross_entropy
        num = logits.shape[1]
        batch_shape = (logits.shape[0],) + tuple(logits.shape[2:])
        logits2d = logits.movedim(1, -1).reshape(-1, num)
        target2d = target.movedim(1, -1).reshape(-1, num)
    num_classes = logits2d.shape[1]
    check_num_classes(num_classes)
    weight = check_weight(weight, logits2d)
    on_value, off_value = smoothing_weights(convention, smoothing, num_classes)
    if num_classes > 1 and target2d.stride(1) != 1:
        target2d = target2d.contiguous()

    chosen = _backend.resolve_backend(backend, logits.device, _library.SOFT_CE_FORWARD)
    if target.requires_grad and torch.is_grad_enabled():
        chosen = "reference"  # the kernels differentiate the logits only
    loss, correct = loss_rows(
        _library.SOFT_CE_FORWARD, chosen, logits2d, target2d, weight, on_value, off_value
    )
    # mean divides by the number of rows (ignore_index does not apply)
    return _reduce(loss, correct, logits, reduction, loss.shape[0], batch_shape, return_correct)


def _reduce(loss, correct, logits, reduction, denominator, batch_shape, return_correct):
    """The per-row losses reduced (``mean``: their sum over ``denominator``) in the loss dtype,
    and the correct flags shaped like the batch when asked for."""
    out_dtype = output_dtype(logits)
    if reduction == "none":
        result = loss.to(out_dtype).reshape(batch_shape)
    elif reduction == "sum":
        result = loss.sum().to(out_dtype)
    else:
        result = (loss.sum() / denominator).to(out_dtype)
    if return_correct:
        return result, correct.reshape(batch_shape)
    return result
