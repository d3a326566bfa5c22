"""Cross-entropy against probability targets in Triton: one streaming pass each way.

Row i, target q: a_c = w_c ((on - off) q_c + off), S = sum_c a_c (w = 1 without class weights).
Forward reads every logit and target once: the online softmax of the label-smoothed kernels
(running max, first argmax, per-lane sums of exp rescaled when the max grows) fused with
sum_c a_c (x_c - ref), S and the first argmax of q, then
    loss = S (lse - ref) - sum_c a_c (x_c - ref),   ref = x_0 (0 if not finite),
in IEEE arithmetic, as F.cross_entropy: a -inf logit gives +inf where a_c > 0, NaN where
a_c == 0. Backward reads logits and targets once more, with lse and S saved by forward, and
writes grad_c = g (S p_c - a_c).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from cookbook_ops import _library
from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops.triton._common import (
    device_context,
    register,
    split_double,
    split_scalar,
)
from cookbook_ops.triton.cross_entropy import (
    MAX_CLASSES,
    _exp,
    _launch_params,
    _load_class_weights,
    _max_keep_nan,
    _online_softmax_chunk,
    _row_offsets,
)

_NO_SPECIALIZE = ["n_rows"]


@triton.jit
def _coefficients(q, weight_ptr, cols, col_mask, delta, off, HAS_WEIGHT: tl.constexpr):
    """a = w (delta q + off) for a (BLOCK_N, BLOCK_C) chunk; 0 past the row end."""
    a = delta * q + off
    if HAS_WEIGHT:
        a = a * _load_class_weights(weight_ptr, cols, col_mask, True, q.dtype)
    return tl.where(col_mask[None, :], a, 0.0)


@triton.jit
def _argmax_chunk(v, cols, m, best):
    """Fold a chunk into a running max and first argmax (NaN largest, as torch.argmax)."""
    chunk_max = tl.reduce(v, 1, _max_keep_nan)
    grows = (chunk_max > m) | ((chunk_max != chunk_max) & (m == m))
    hit = (v == chunk_max[:, None]) | (v != v)
    first = tl.min(tl.where(hit, cols[None, :], 2147483647), axis=1)
    return _max_keep_nan(m, chunk_max), tl.where(grows, first, best)


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _soft_ce_forward_kernel(
    logits_ptr,
    target_ptr,
    weight_ptr,
    loss_ptr,
    lse_ptr,
    target_sum_ptr,
    correct_ptr,
    n_rows,
    n_cols,
    stride_row,
    stride_target,
    delta_hi,
    delta_lo,
    off_hi,
    off_lo,
    HAS_WEIGHT: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    acc_dtype: tl.constexpr = lse_ptr.dtype.element_ty
    rows, row_mask, row_start = _row_offsets(tl.program_id(0), n_rows, stride_row, BLOCK_N, ALIGN)
    target_start = tl.multiple_of(rows.to(tl.int64) * stride_target, [ALIGN])
    delta = split_scalar(delta_hi, delta_lo, acc_dtype)
    off = split_scalar(off_hi, off_lo, acc_dtype)
    x0 = tl.load(logits_ptr + row_start).to(acc_dtype)
    ref = tl.where(x0 - x0 == 0.0, x0, 0.0)  # x0 unless inf or NaN

    cols0 = tl.arange(0, BLOCK_C)
    m = tl.full([BLOCK_N], float("-inf"), acc_dtype)
    best = tl.zeros([BLOCK_N], tl.int32)
    q_max = tl.full([BLOCK_N], float("-inf"), acc_dtype)
    q_best = tl.zeros([BLOCK_N], tl.int32)
    s_lane = tl.zeros([BLOCK_N, BLOCK_C], acc_dtype)
    adx_lane = tl.zeros([BLOCK_N, BLOCK_C], acc_dtype)
    a_lane = tl.zeros([BLOCK_N, BLOCK_C], acc_dtype)
    n_cols_aligned = (n_cols // ALIGN) * ALIGN
    for start in range(0, n_cols_aligned, BLOCK_C):
        cols = start + cols0
        col_mask = cols < n_cols_aligned
        x = tl.load(
            logits_ptr + row_start[:, None] + cols[None, :],
            mask=col_mask[None, :],
            other=float("-inf"),
        ).to(acc_dtype)
        q = tl.load(
            target_ptr + target_start[:, None] + cols[None, :], mask=col_mask[None, :], other=0.0
        ).to(acc_dtype)
        a = _coefficients(q, weight_ptr, cols, col_mask, delta, off, HAS_WEIGHT)
        a_lane += a
        adx = tl.where(col_mask[None, :], a * (x - ref[:, None]), 0.0)
        m, best, s_lane, adx_lane = _online_softmax_chunk(x, adx, cols, m, best, s_lane, adx_lane)
        q_max, q_best = _argmax_chunk(
            tl.where(col_mask[None, :], q, float("-inf")), cols, q_max, q_best
        )
    lse = m + tl.log(tl.sum(s_lane, axis=1))
    target_sum = tl.sum(a_lane, axis=1)
    loss = target_sum * (lse - ref) - tl.sum(adx_lane, axis=1)
    tl.store(loss_ptr + rows, loss, mask=row_mask)
    tl.store(lse_ptr + rows, lse, mask=row_mask)
    tl.store(target_sum_ptr + rows, target_sum, mask=row_mask)
    tl.store(correct_ptr + rows, best == q_best, mask=row_mask)


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _soft_ce_backward_kernel(
    grad_logits_ptr,
    grad_loss_ptr,
    logits_ptr,
    target_ptr,
    weight_ptr,
    lse_ptr,
    target_sum_ptr,
    n_rows,
    n_cols,
    stride_row,
    stride_target,
    delta_hi,
    delta_lo,
    off_hi,
    off_lo,
    HAS_WEIGHT: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    acc_dtype: tl.constexpr = lse_ptr.dtype.element_ty
    out_dtype: tl.constexpr = grad_logits_ptr.dtype.element_ty
    rows, row_mask, row_start = _row_offsets(tl.program_id(0), n_rows, stride_row, BLOCK_N, ALIGN)
    n_cols_aligned = (n_cols // ALIGN) * ALIGN
    target_start = tl.multiple_of(rows.to(tl.int64) * stride_target, [ALIGN])
    out_start = tl.multiple_of(rows.to(tl.int64) * n_cols_aligned, [ALIGN])
    delta = split_scalar(delta_hi, delta_lo, acc_dtype)
    off = split_scalar(off_hi, off_lo, acc_dtype)
    g = tl.load(grad_loss_ptr + rows).to(acc_dtype)
    lse = tl.load(lse_ptr + rows).to(acc_dtype)
    g_sum = g * tl.load(target_sum_ptr + rows).to(acc_dtype)
    cols0 = tl.arange(0, BLOCK_C)
    for start in range(0, n_cols_aligned, BLOCK_C):
        cols = start + cols0
        col_mask = cols < n_cols_aligned
        x = tl.load(
            logits_ptr + row_start[:, None] + cols[None, :], mask=col_mask[None, :], other=0.0
        ).to(acc_dtype)
        q = tl.load(
            target_ptr + target_start[:, None] + cols[None, :], mask=col_mask[None, :], other=0.0
        ).to(acc_dtype)
        a = _coefficients(q, weight_ptr, cols, col_mask, delta, off, HAS_WEIGHT)
        grad = g_sum[:, None] * _exp(x - lse[:, None]) - g[:, None] * a
        tl.store(
            grad_logits_ptr + out_start[:, None] + cols[None, :],
            grad.to(out_dtype),
            mask=row_mask[:, None] & col_mask[None, :],
        )


def _params(logits, target):
    stride = math.gcd(logits.stride(0), target.stride(0))
    return _launch_params(logits.shape[1], stride, logits.dtype)


def _prepare(logits, target, weight):
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    if logits.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"logits must be float16/bfloat16/float32/float64, got {logits.dtype}")
    if target.shape != logits.shape:
        raise ValueError(
            f"target must have the shape of logits {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    if target.dtype != logits.dtype:
        raise TypeError(
            f"target must have the dtype of logits ({logits.dtype}), got {target.dtype}"
        )
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits is on {logits.device}")
    n_cols = logits.shape[1]
    if n_cols > MAX_CLASSES:
        raise ValueError(
            f"logits has {n_cols} classes; the Triton kernels take at most {MAX_CLASSES}"
        )
    if weight is not None:
        if weight.dim() != 1 or weight.shape[0] != n_cols:
            raise ValueError(f"weight must be ({n_cols},), got {tuple(weight.shape)}")
        if weight.device != logits.device:
            raise ValueError(f"weight is on {weight.device} but logits is on {logits.device}")
        weight = weight.to(opmath_dtype(logits.dtype)).contiguous()
    if n_cols > 1:
        logits = logits if logits.stride(1) == 1 else logits.contiguous()
        target = target if target.stride(1) == 1 else target.contiguous()
    return logits, target, weight


def _scalars(on_value, off_value):
    return (*split_double(float(on_value) - float(off_value)), *split_double(float(off_value)))


def soft_target_cross_entropy_forward(logits, target, weight, on_value, off_value):
    logits, target, weight = _prepare(logits, target, weight)
    n_rows, n_cols = logits.shape
    acc_dtype = opmath_dtype(logits.dtype)
    context = device_context(logits.device, "soft_target_cross_entropy")
    loss, lse, target_sum = (logits.new_empty((n_rows,), dtype=acc_dtype) for _ in range(3))
    correct = logits.new_empty((n_rows,), dtype=torch.bool)
    if n_rows == 0:
        return loss, lse, target_sum, correct
    if n_cols == 0:
        loss.zero_()
        lse.fill_(float("-inf"))
        target_sum.zero_()
        correct.fill_(False)
        return loss, lse, target_sum, correct
    params = _params(logits, target)
    grid = (triton.cdiv(n_rows, params["BLOCK_N"]),)
    with context:
        _soft_ce_forward_kernel[grid](
            logits, target, lse if weight is None else weight, loss, lse, target_sum, correct,
            n_rows, n_cols, logits.stride(0), target.stride(0), *_scalars(on_value, off_value),
            HAS_WEIGHT=weight is not None, **params,
        )  # fmt: skip
    return loss, lse, target_sum, correct


def soft_target_cross_entropy_backward(
    grad_loss, logits, target, weight, lse, target_sum, on_value, off_value
):
    logits, target, weight = _prepare(logits, target, weight)
    n_rows, n_cols = logits.shape
    acc_dtype = opmath_dtype(logits.dtype)
    for name, t in (("grad_loss", grad_loss), ("lse", lse), ("target_sum", target_sum)):
        if tuple(t.shape) != (n_rows,):
            raise ValueError(f"{name} must be ({n_rows},), got {tuple(t.shape)}")
        if t.device != logits.device:
            raise ValueError(f"{name} is on {t.device} but logits is on {logits.device}")
    context = device_context(logits.device, "soft_target_cross_entropy")
    grad_logits = torch.empty((n_rows, n_cols), dtype=logits.dtype, device=logits.device)
    if n_rows == 0 or n_cols == 0:
        return grad_logits
    grad_loss, lse, target_sum = (
        t.to(acc_dtype).contiguous() for t in (grad_loss, lse, target_sum)
    )
    params = _params(logits, target)
    grid = (triton.cdiv(n_rows, params["BLOCK_N"]),)
    with context:
        _soft_ce_backward_kernel[grid](
            grad_logits, grad_loss, logits, target, lse if weight is None else weight, lse,
            target_sum, n_rows, n_cols, logits.stride(0), target.stride(0),
            *_scalars(on_value, off_value), HAS_WEIGHT=weight is not None, **params,
        )  # fmt: skip
    return grad_logits


register(
    {
        _library.SOFT_CE_FORWARD: soft_target_cross_entropy_forward,
        _library.SOFT_CE_BACKWARD: soft_target_cross_entropy_backward,
    }
)
