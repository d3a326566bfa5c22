"""Pure-PyTorch mixup cross-entropy: the test oracle and the no-kernel fallback.

Row i has two targets (a_i, b_i). The forward op returns both per-target losses of the
label-smoothed cross-entropy (:mod:`cookbook_ops.reference.label_smoothing_cross_entropy`);
the public function weighs them with lam and 1 - lam. A target equal to ``ignore_index``
contributes nothing, slot by slot.
"""

from __future__ import annotations

import torch

from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops.reference.label_smoothing_cross_entropy import (
    label_smoothing_cross_entropy_backward,
    label_smoothing_cross_entropy_rows,
)


def mixup_cross_entropy_rows(logits, target_a, target_b, weight, on_value, off_value, ignore_index):
    """Differentiable per-row losses (N, 2) in op-math dtype and the correct flags (vs target_a)."""
    loss_a, correct = label_smoothing_cross_entropy_rows(
        logits, target_a, weight, on_value, off_value, ignore_index
    )
    loss_b, _ = label_smoothing_cross_entropy_rows(
        logits, target_b, weight, on_value, off_value, ignore_index
    )
    return torch.stack((loss_a, loss_b), dim=1), correct


def mixup_cross_entropy_forward(
    logits, target_a, target_b, weight, on_value, off_value, ignore_index
):
    """Reference of the forward op: (loss (N, 2), lse (N,), correct (N,))."""
    with torch.no_grad():
        loss, correct = mixup_cross_entropy_rows(
            logits, target_a, target_b, weight, on_value, off_value, ignore_index
        )
        lse = torch.logsumexp(logits.to(opmath_dtype(logits.dtype)), dim=1)
    return loss, lse, correct


def mixup_cross_entropy_backward(
    grad_loss, logits, target_a, target_b, weight, lse, on_value, off_value, ignore_index
):
    """Reference of the backward op: the sum of the one-target gradients, each in op-math
    precision, rounded once to the dtype of logits."""
    dtype = opmath_dtype(logits.dtype)
    x = logits.to(dtype)
    grads = [
        label_smoothing_cross_entropy_backward(
            grad_loss[:, k], x, t, weight, lse, on_value, off_value, ignore_index
        )
        for k, t in enumerate((target_a, target_b))
    ]
    return (grads[0] + grads[1]).to(logits.dtype)
