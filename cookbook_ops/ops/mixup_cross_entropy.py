"""Public mixup cross-entropy: argument checks, backend choice, lam and the reduction.

The kernels are the label-smoothed cross-entropy kernels with a second target slot: one pass
over each row of logits gives the loss against both targets. lam and the reduction are a few
tiny PyTorch ops on (N,) vectors here, so a per-sample lam, class weights and every reduction
cost the kernels nothing, and no N x C target tensor is ever built.
"""

from __future__ import annotations

import torch

from cookbook_ops import _backend, _library
from cookbook_ops._dtypes import opmath_dtype, output_dtype
from cookbook_ops._smoothing import mean_denominator, smoothing_weights
from cookbook_ops._validation import (
    check_index_target,
    check_loss_lam,
    check_num_classes,
    check_options,
    check_target_range,
    check_weight,
)
from cookbook_ops.ops.cross_entropy import loss_rows

# --- public API ----------------------------------------------------------------------------


def mixup_cross_entropy(
    logits: torch.Tensor,
    target_a: torch.Tensor,
    target_b: torch.Tensor,
    lam,
    smoothing: float = 0.0,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    convention: str = "uniform",
    reduction: str = "mean",
    return_correct: bool = False,
    backend: str = "auto",
):
    """``lam * CE_s(logits, target_a) + (1 - lam) * CE_s(logits, target_b)`` in one fused
    pass over the logits, CE_s the label-smoothed cross-entropy of
    :func:`cookbook_ops.label_smoothing_cross_entropy` (same ``smoothing``, ``convention``,
    ``weight``, ``ignore_index``).

    logits: (N, C); target_a, target_b: (N,) int64; lam: a float, a 0-d tensor or an (N,)
    tensor (per-sample lam), in [0, 1]; differentiable (d/d lam_i = CE_a_i - CE_b_i, scaled
    by the reduction). With ``reduction="mean"`` each
    term is the mean of its own cross-entropy (divided by its own count of non-ignored rows,
    or sum of target weights), exactly the cookbook's expression; without weights and ignored
    rows this is also the mean over rows of ``lam_i CE_a_i + (1 - lam_i) CE_b_i``, which equals
    timm's ``SoftTargetCrossEntropy`` on its ``mixup_target``. No N x C target is built.
    ``return_correct=True`` also returns argmax(logits) == target_a per row.
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    check_options(smoothing, reduction, convention, ignore_index)
    check_num_classes(logits.shape[1])
    check_index_target("target_a", target_a, logits, "logits")
    check_index_target("target_b", target_b, logits, "logits")
    dtype = opmath_dtype(logits.dtype)
    lam = check_loss_lam(lam, logits, "logits", dtype)
    weight = check_weight(weight, logits)
    num_classes = logits.shape[1]
    on_value, off_value = smoothing_weights(convention, smoothing, num_classes)

    chosen = _backend.resolve_backend(backend, logits.device, _library.MIXUP_CE_FORWARD)
    if chosen == "reference":  # the C++ and Triton ops check CPU targets themselves
        check_target_range(target_a, num_classes, ignore_index, "target_a")
        check_target_range(target_b, num_classes, ignore_index, "target_b")
    loss, correct = loss_rows(
        _library.MIXUP_CE_FORWARD,
        chosen,
        logits,
        target_a,
        target_b,
        weight,
        on_value,
        off_value,
        ignore_index,
    )
    loss_a, loss_b = loss[:, 0], loss[:, 1]

    out_dtype = output_dtype(logits)
    if reduction == "none":
        result = (lam * loss_a + (1 - lam) * loss_b).to(out_dtype)
    elif reduction == "sum":
        result = (lam * loss_a + (1 - lam) * loss_b).sum().to(out_dtype)
    else:
        denom_a = mean_denominator(target_a, weight, ignore_index, dtype)
        denom_b = mean_denominator(target_b, weight, ignore_index, dtype)
        result = ((lam * loss_a).sum() / denom_a + ((1 - lam) * loss_b).sum() / denom_b).to(
            out_dtype
        )
    if return_correct:
        return result, correct
    return result
