"""Pure-PyTorch label-smoothed cross-entropy: the test oracle and the no-kernel fallback.

Row i, logits x (C values), target y, lse = log sum exp x, smoothing weights ``on``/``off``:
    loss_i = (on - off) * w_y * (lse - x_y) + off * sum_c w_c * (lse - x_c)
(w = 1 without class weights), 0 where y == ignore_index. Everything is computed in the op-math
dtype (float32 for 16-bit inputs, float64 for float64).
"""

from __future__ import annotations

import torch

from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops._smoothing import smoothing_weights  # noqa: F401  (its old home)


def _valid_and_safe_target(target: torch.Tensor, num_classes: int, ignore_index: int):
    valid = target != ignore_index
    # Ignored (and, on devices that do not check, out-of-range) rows gather a harmless index.
    safe = torch.where(valid, target, 0).clamp(0, max(num_classes - 1, 0))
    return valid, safe


def label_smoothing_cross_entropy_rows(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    on_value: float,
    off_value: float,
    ignore_index: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable per-row loss (op-math dtype) and the correct flags. logits is (N, C)."""
    num_classes = logits.shape[1]
    x = logits.to(opmath_dtype(logits.dtype))
    valid, safe = _valid_and_safe_target(target, num_classes, ignore_index)
    # An ignored row contributes nothing, to the loss or to the gradient, whatever it holds:
    # the kernels write a zero gradient row, where autograd through log_softmax would give a
    # row with +inf or NaN logits NaN (0 * NaN).
    x = torch.where(valid.unsqueeze(1), x, torch.zeros((), dtype=x.dtype, device=x.device))
    logp = torch.log_softmax(x, dim=1)
    nll = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    if weight is None:
        smooth = -logp.sum(dim=1)
        w_y = 1.0
    else:
        w = weight.to(x.dtype)
        smooth = -(logp * w).sum(dim=1)
        w_y = w[safe]
    loss = (on_value - off_value) * w_y * nll
    if off_value != 0.0:
        # Without smoothing the term is absent, not 0 * smooth: a masked (-inf) logit makes
        # smooth infinite, and PyTorch's loss stays finite there.
        loss = loss + off_value * smooth
    # where, not multiply: an ignored row must not pass NaN/inf into the sum or its gradient.
    loss = torch.where(valid, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
    if num_classes > 0:
        correct = logits.argmax(dim=1) == target
    else:
        correct = torch.zeros(target.shape, dtype=torch.bool, device=target.device)
    return loss, correct


def label_smoothing_cross_entropy_forward(
    logits, target, weight, on_value, off_value, ignore_index
):
    """Reference of the forward op: (loss, lse, correct)."""
    with torch.no_grad():
        loss, correct = label_smoothing_cross_entropy_rows(
            logits, target, weight, on_value, off_value, ignore_index
        )
        lse = torch.logsumexp(logits.to(opmath_dtype(logits.dtype)), dim=1)
    return loss, lse, correct


def label_smoothing_cross_entropy_backward(
    grad_loss, logits, target, weight, lse, on_value, off_value, ignore_index
):
    """Reference of the backward op, written as the closed form the kernels use:
    d loss_i / d x_c = g_i * (((on-off) w_y + off W) p_c - (on-off) w_y [c == y] - off w_c)
    with W = sum_c w_c and p = softmax(x) = exp(x - lse)."""
    num_classes = logits.shape[1]
    dtype = opmath_dtype(logits.dtype)
    x = logits.to(dtype)
    p = torch.exp(x - lse.to(dtype).unsqueeze(1))
    valid, safe = _valid_and_safe_target(target, num_classes, ignore_index)
    on_off = on_value - off_value
    if weight is None:
        w_y = torch.ones(target.shape, dtype=dtype, device=logits.device)
        w = torch.ones((), dtype=dtype, device=logits.device)
        total_w = float(num_classes)
    else:
        w = weight.to(dtype)
        w_y = w[safe]
        total_w = w.sum()
    scale = on_off * w_y + off_value * total_w
    grad = scale.unsqueeze(1) * p - off_value * w
    grad = grad.scatter_add(1, safe.unsqueeze(1), (-on_off * w_y).unsqueeze(1))
    g = torch.where(valid, grad_loss.to(dtype), torch.zeros((), dtype=dtype, device=logits.device))
    return (g.unsqueeze(1) * grad).to(logits.dtype)


# --- probability targets ----------------------------------------------------------------------
# Row i, probability target q (the logits' shape): a_c = w_c ((on - off) q_c + off), which is the
# smoothed target of the index form when q is one-hot (uniform: (1 - e) q + e / C, PyTorch's
# label_smoothing for probability targets), and loss_i = -sum_c a_c log p_c. Plain IEEE
# arithmetic, as F.cross_entropy: a masked (-inf) logit gives +inf where a_c > 0 and NaN where
# a_c == 0 (0 * -inf), while the gradient stays finite.


def soft_target_coefficients(target, weight, on_value, off_value, dtype):
    """a = w ((on - off) q + off) in ``dtype`` (N x C: the reference allocates freely)."""
    a = (on_value - off_value) * target.to(dtype) + off_value
    if weight is not None:
        a = a * weight.to(dtype)
    return a


def _argmax_or_false(logits, target):
    if logits.shape[1] == 0:
        return torch.zeros(logits.shape[:1], dtype=torch.bool, device=logits.device)
    return logits.argmax(dim=1) == target.argmax(dim=1)


def soft_target_cross_entropy_rows(logits, target, weight, on_value, off_value):
    """Differentiable per-row loss (op-math dtype; in logits and target) and the correct flags
    (argmax of the logits == argmax of the target). logits and target are (N, C)."""
    x = logits.to(opmath_dtype(logits.dtype))
    a = soft_target_coefficients(target, weight, on_value, off_value, x.dtype)
    loss = -(torch.log_softmax(x, dim=1) * a).sum(dim=1)
    return loss, _argmax_or_false(logits, target)


def soft_target_cross_entropy_forward(logits, target, weight, on_value, off_value):
    """Reference of the forward op: (loss, lse, target_sum, correct)."""
    with torch.no_grad():
        loss, correct = soft_target_cross_entropy_rows(logits, target, weight, on_value, off_value)
        dtype = opmath_dtype(logits.dtype)
        lse = _nan_for_plus_inf(torch.logsumexp(logits.to(dtype), dim=1))
        target_sum = soft_target_coefficients(target, weight, on_value, off_value, dtype).sum(1)
    return loss, lse, target_sum, correct


def _nan_for_plus_inf(lse):
    # A +inf logit makes the whole row of log_softmax NaN (inf - inf), so PyTorch's gradient
    # row is NaN: a NaN lse carries that through exp(x - lse) to every class.
    return torch.where(lse == float("inf"), float("nan"), lse)


def soft_target_cross_entropy_backward(
    grad_loss, logits, target, weight, lse, target_sum, on_value, off_value
):
    """Reference of the backward op, the closed form the kernels use:
    d loss_i / d x_c = g_i (S_i p_c - a_c), p = exp(x - lse), S_i = sum_c a_c."""
    dtype = opmath_dtype(logits.dtype)
    x = logits.to(dtype)
    p = torch.exp(x - _nan_for_plus_inf(lse.to(dtype)).unsqueeze(1))
    a = soft_target_coefficients(target, weight, on_value, off_value, dtype)
    grad = target_sum.to(dtype).unsqueeze(1) * p - a
    return (grad_loss.to(dtype).unsqueeze(1) * grad).to(logits.dtype)
