"""Label-smoothed cross-entropy in Triton: one streaming pass over the logits each way.

Forward reads every logit once: an online softmax over BLOCK_C chunks (running row max, per-lane
sums of exp rescaled when the max grows) fused with sum x (or sum w x) and the first argmax, then
    loss = (on-off) w_y ((m - x_y) + log s) + off (W lse - sum_c w_c x_c)
with w = 1 and W = C without class weights. Backward reads the logits once more, with the lse
saved by forward, and writes
    grad_c = g (((on-off) w_y + off W) p_c - (on-off) w_y [c == y] - off w_c).

The target enters only through ``_load_target``, ``_gather_class_weight`` and the target
subtraction, so the mixup cross-entropy kernels are the same loops with a second target slot:
forward gathers one more logit per row and writes loss (N, 2); backward folds both slots into
per-row constants, g_k being slot k's incoming gradient (0 where ignored),
    grad_c = (sum_k g_k ((on-off) w_yk + off W)) p_c - sum_k (on-off) g_k w_yk [c == y_k]
             - off (sum_k g_k) w_c,
where sum_k g_k is not 1 in general (lam, the reduction and ignored slots all enter it).

``on``/``off``/``ignore_index`` are runtime arguments: a smoothing schedule never recompiles.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cookbook_ops import _library
from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops._validation import check_target_range
from cookbook_ops.triton._common import (
    device_context,
    register,
    split_double,
    split_scalar,
)

# Largest chunk of a row one program holds at once. Bigger chunks mean fewer trips around the
# loop but more registers per thread for the per-lane accumulators.
_MAX_BLOCK_C = 4096
_MAX_BLOCK_C_FP64 = 1024
# Most classes a row may have. The chunk loops step an int32 column BLOCK_C at a time, and the
# step past a row's last chunk must not wrap past 2**31 - 1 (a wrapped column is negative, so
# the loop would go on, below the row): rows stay a whole largest chunk short of 2**31.
MAX_CLASSES = 2**31 - _MAX_BLOCK_C
# Small rows are packed several to a program so that a program still streams ~this many logits.
_TARGET_TILE = 1024
_MAX_BLOCK_N = 64

# Arguments that must not be specialised: a batch of 1 or a ragged last batch, or an unusual
# ignore_index, should reuse the compiled kernel.
_NO_SPECIALIZE = ["n_rows", "ignore_index"]


# --- target helpers (the part a mixup variant calls once per target) -----------------------


@triton.jit
def _load_target(target_ptr, rows, n_cols, ignore_index):
    y = tl.load(target_ptr + rows)
    keep = y != ignore_index
    in_range = (y >= 0) & (y < n_cols)
    # Ignored and out-of-range rows gather column 0: no load ever leaves the row.
    y_safe = tl.where(keep & in_range, y, 0)
    return y, y_safe, keep, in_range


@triton.jit
def _gather_class_weight(weight_ptr, y_safe, dtype: tl.constexpr, HAS_WEIGHT: tl.constexpr):
    if HAS_WEIGHT:
        w_y = tl.load(weight_ptr + y_safe).to(dtype)
    else:
        w_y = tl.full(y_safe.shape, 1.0, dtype)
    return w_y


@triton.jit
def _target_nll(logits_ptr, row_start, weight_ptr, y_safe, m, log_s, HAS_WEIGHT: tl.constexpr):
    """w_y * -log p_y for one target per row, from the row max m and log sum exp(x - m)."""
    x_y = tl.load(logits_ptr + row_start + y_safe).to(m.dtype)
    w_y = _gather_class_weight(weight_ptr, y_safe, m.dtype, HAS_WEIGHT)
    # (m - x_y) + log s rather than lse - x_y: exact 0 + tiny when the target is the max.
    return w_y * ((m - x_y) + log_s)


@triton.jit
def _subtract_target(grad, cols, y_safe, amount):
    # y_safe is in [0, n_cols): comparing in int32 saves a sign extension and a second
    # compare per element over the int64 target.
    hit = cols[None, :] == y_safe.to(tl.int32)[:, None]
    return tl.where(hit, grad - amount[:, None], grad)


@triton.jit
def _row_offsets(pid, n_rows, stride_row, BLOCK_N: tl.constexpr, ALIGN: tl.constexpr):
    # int64: past 2**31 rows an int32 index would wrap negative and pass both guards below.
    rows = pid.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < n_rows
    # Tail rows of the last program re-read the last row (stores are masked), so column masks
    # alone guard the loads and stay constant over ALIGN-wide vectors.
    rows = tl.minimum(rows, n_rows - 1)
    # ALIGN divides the row stride (checked on the host): each row start is as aligned as the
    # base pointer, which is what lets the chunk loads become 16-byte vector loads.
    row_start = tl.multiple_of(rows.to(tl.int64) * stride_row, [ALIGN])
    return rows, row_mask, row_start


@triton.jit
def _load_class_weights(weight_ptr, cols, col_mask, MASKED: tl.constexpr, dtype: tl.constexpr):
    # Loaded directly as a (1, BLOCK_C) row: a 1-D load broadcast afterwards would need a
    # layout conversion through shared memory (and a barrier) on every chunk.
    if MASKED:
        w = tl.load(weight_ptr + cols[None, :], mask=col_mask[None, :], other=0.0)
    else:
        w = tl.load(weight_ptr + cols[None, :])
    return w.to(dtype)


@triton.jit
def _aligned_length(n_cols, ALIGN: tl.constexpr):
    # Equal to n_cols (the host picks ALIGN dividing it), but written so the compiler can see
    # the divisibility: column masks then stay constant over ALIGN-wide vectors. multiple_of
    # cannot carry this hint on a kernel argument.
    return (n_cols // ALIGN) * ALIGN


@triton.jit
def _exp(x):
    if x.dtype == tl.float64:
        return tl.exp(x)
    else:
        # exp2 lowers to a bare ex2.approx.ftz; tl.exp adds a denormal-range fixup around it
        # (~3 extra instructions per logit in a loop that is close to issue-bound).
        return tl.exp2(x * 1.4426950408889634)


@triton.jit
def _max_keep_nan(a, b):
    # max.NaN.f32: the plain tl.max / tl.maximum compile to max.f32, which returns the other
    # operand when one is NaN, so a row [nan, 5, 1] would get max 5 and argmax 1.
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _online_softmax_chunk(x, x_weighted, cols, m, best, s_lane, sx_lane):
    """Fold one (BLOCK_N, BLOCK_C) chunk into the running row max m, first argmax best and the
    per-lane partial sums of exp(x - m) and (w) x. x is -inf, x_weighted 0, past the row end.
    NaN is the largest value, as in torch.argmax and the other backends: the first NaN is the
    argmax and m stays NaN from there on (so lse, the loss and the gradient row are NaN)."""
    chunk_max = tl.reduce(x, 1, _max_keep_nan)
    chunk_nan = chunk_max != chunk_max
    # Strict: an equal maximum in a later chunk must not move the first argmax, nor a NaN
    # after the first. The index search is a second reduction, paid only on the few chunks
    # that raise some row's max.
    grows = (chunk_max > m) | (chunk_nan & (m == m))
    if tl.max(grows.to(tl.int32), axis=0) > 0:
        # x != x only holds in a chunk whose max is NaN.
        hit = (x == chunk_max[:, None]) | (x != x)
        first = tl.min(tl.where(hit, cols[None, :], 2147483647), axis=1)
        best = tl.where(grows, first, best)
    m_new = _max_keep_nan(m, chunk_max)
    # A row that is all -inf so far shifts by 0 instead, so exp never sees -inf - -inf.
    shift = tl.where(m_new == float("-inf"), 0.0, m_new)
    s_lane = s_lane * _exp(m - shift)[:, None] + _exp(x - shift[:, None])
    sx_lane += x_weighted
    return m_new, best, s_lane, sx_lane


@triton.jit
def _row_softmax_stats(
    logits_ptr,
    row_start,
    weight_ptr,
    n_cols,
    acc_dtype: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """One pass over BLOCK_N rows: row max m, log sum exp(x - m), sum (w) x and the first
    argmax. Everything the loss needs except the target terms."""
    n_cols_aligned = _aligned_length(n_cols, ALIGN)
    cols0 = tl.arange(0, BLOCK_C)
    m = tl.full([BLOCK_N], float("-inf"), acc_dtype)
    best = tl.zeros([BLOCK_N], tl.int32)
    # Per-lane partial sums, reduced across the row once after the loop: the loop body then
    # has a single cross-thread reduction (the max) per chunk.
    s_lane = tl.zeros([BLOCK_N, BLOCK_C], acc_dtype)
    sx_lane = tl.zeros([BLOCK_N, BLOCK_C], acc_dtype)
    # Whole chunks first, then at most one masked tail. Each whole chunk's load is issued one
    # iteration ahead, so it is in flight while the previous chunk is reduced: without it a
    # program has nothing outstanding between its reductions, and with ~2 programs per SM
    # (register-bound) too few bytes are in flight to cover HBM latency. Its mask is all-or-
    # nothing (n_full and start are multiples of BLOCK_C), so it stays a plain vector load.
    n_full = (n_cols // BLOCK_C) * BLOCK_C
    row_ptrs = logits_ptr + row_start[:, None]
    x_next = tl.load(row_ptrs + cols0[None, :], mask=(cols0 < n_full)[None, :])
    for start in range(0, n_full, BLOCK_C):
        cols = start + cols0
        x = x_next.to(acc_dtype)
        x_next = tl.load(
            row_ptrs + (cols + BLOCK_C)[None, :], mask=(cols + BLOCK_C < n_full)[None, :]
        )
        x_weighted = x
        if HAS_WEIGHT:
            x_weighted = _load_class_weights(weight_ptr, cols, None, False, acc_dtype) * x
        m, best, s_lane, sx_lane = _online_softmax_chunk(
            x, x_weighted, cols, m, best, s_lane, sx_lane
        )
    if n_full < n_cols:
        cols = n_full + cols0
        col_mask = cols < n_cols_aligned
        x = tl.load(row_ptrs + cols[None, :], mask=col_mask[None, :], other=float("-inf"))
        x = x.to(acc_dtype)
        x_weighted = tl.where(col_mask[None, :], x, 0.0)
        if HAS_WEIGHT:
            x_weighted *= _load_class_weights(weight_ptr, cols, col_mask, True, acc_dtype)
        m, best, s_lane, sx_lane = _online_softmax_chunk(
            x, x_weighted, cols, m, best, s_lane, sx_lane
        )
    return m, tl.log(tl.sum(s_lane, axis=1)), tl.sum(sx_lane, axis=1), best


@triton.jit
def _target_loss(
    logits_ptr,
    row_start,
    target_ptr,
    rows,
    weight_ptr,
    n_cols,
    ignore_index,
    m,
    log_s,
    delta,
    off,
    smooth,
    HAS_WEIGHT: tl.constexpr,
):
    """One target slot's loss per row from the shared row statistics: 0 where the target is
    ignored, NaN where it is out of range (only reachable on CUDA: CPU targets are checked)."""
    y, y_safe, keep, in_range = _load_target(target_ptr, rows, n_cols, ignore_index)
    nll = _target_nll(logits_ptr, row_start, weight_ptr, y_safe, m, log_s, HAS_WEIGHT)
    # No smoothing term at all when off is 0 (not 0 * smooth): a masked (-inf) logit makes
    # smooth infinite, and plain cross-entropy stays finite there.
    loss = delta * nll + tl.where(off == 0.0, 0.0, off * smooth)
    loss = tl.where(in_range, loss, float("nan"))
    loss = tl.where(keep, loss, 0.0)
    return loss, y


@triton.jit
def _target_grad_scale(
    grad_loss_ptrs,
    target_ptr,
    rows,
    weight_ptr,
    n_cols,
    ignore_index,
    acc_dtype: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
):
    """One target slot's incoming gradient per row (0 where ignored), its safe target index
    and the target's class weight."""
    y, y_safe, keep, in_range = _load_target(target_ptr, rows, n_cols, ignore_index)
    w_y = _gather_class_weight(weight_ptr, y_safe, acc_dtype, HAS_WEIGHT)
    g = tl.load(grad_loss_ptrs).to(acc_dtype)
    g = tl.where(keep, g, 0.0)
    # An out-of-range target poisons its whole row, as the forward loss does.
    g = tl.where(in_range | (~keep), g, float("nan"))
    return g, y_safe, w_y


@triton.jit
def _store_softmax_grad(
    grad_logits_ptr,
    logits_ptr,
    weight_ptr,
    row_start,
    out_start,
    row_mask,
    n_cols_aligned,
    lse,
    softmax_coef,
    uniform_coef,
    y_a_safe,
    coef_a,
    y_b_safe,
    coef_b,
    HAS_WEIGHT: tl.constexpr,
    TWO_TARGETS: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Stream BLOCK_N rows once, writing
        grad_c = softmax_coef p_c - uniform_coef w_c - coef_a [c == y_a] - coef_b [c == y_b]
    (the y_b term only with TWO_TARGETS; w = 1 without class weights)."""
    acc_dtype: tl.constexpr = lse.dtype
    out_dtype: tl.constexpr = grad_logits_ptr.dtype.element_ty
    cols0 = tl.arange(0, BLOCK_C)
    for start in range(0, n_cols_aligned, BLOCK_C):
        cols = start + cols0
        col_mask = cols < n_cols_aligned
        x = tl.load(
            logits_ptr + row_start[:, None] + cols[None, :], mask=col_mask[None, :], other=0.0
        ).to(acc_dtype)
        p = _exp(x - lse[:, None])
        if HAS_WEIGHT:
            w = _load_class_weights(weight_ptr, cols, col_mask, True, acc_dtype)
            grad = softmax_coef[:, None] * p - uniform_coef[:, None] * w
        else:
            grad = softmax_coef[:, None] * p - uniform_coef[:, None]
        if TWO_TARGETS:
            # Compared against the chunk-relative target (one subtraction per row per chunk)
            # rather than the absolute column: sm_90 then keeps the long-row loop at ~40
            # registers instead of ~55, the occupancy of the one-target kernel. Two selects,
            # not one: when y_a == y_b both slots' terms apply.
            rel_a = y_a_safe.to(tl.int32) - start
            rel_b = y_b_safe.to(tl.int32) - start
            grad = tl.where(cols0[None, :] == rel_a[:, None], grad - coef_a[:, None], grad)
            grad = tl.where(cols0[None, :] == rel_b[:, None], grad - coef_b[:, None], grad)
        else:
            grad = _subtract_target(grad, cols, y_a_safe, coef_a)
        tl.store(
            grad_logits_ptr + out_start[:, None] + cols[None, :],
            grad.to(out_dtype),
            mask=row_mask[:, None] & col_mask[None, :],
        )


@triton.jit
def _total_weight(weight_sum_ptr, n_cols, acc_dtype: tl.constexpr, HAS_WEIGHT: tl.constexpr):
    """W of the module docstring: the class-weight sum, or C without class weights."""
    if HAS_WEIGHT:
        total_weight = tl.load(weight_sum_ptr).to(acc_dtype)
    else:
        total_weight = tl.cast(n_cols, acc_dtype)
    return total_weight


@triton.jit
def _forward_rows(
    logits_ptr,
    weight_ptr,
    weight_sum_ptr,
    n_rows,
    n_cols,
    stride_row,
    delta_hi,
    delta_lo,
    off_hi,
    off_lo,
    acc_dtype: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Everything the forward kernels share, before any target is read: this program's rows,
    the streaming pass, lse, the smoothing sum W lse - sum_c w_c x_c and the smoothing
    scalars. Inlined into each kernel, so it costs nothing at run time."""
    rows, row_mask, row_start = _row_offsets(tl.program_id(0), n_rows, stride_row, BLOCK_N, ALIGN)
    m, log_s, sum_wx, best = _row_softmax_stats(
        logits_ptr, row_start, weight_ptr, n_cols, acc_dtype, HAS_WEIGHT, ALIGN, BLOCK_N, BLOCK_C
    )
    lse = m + log_s
    total_weight = _total_weight(weight_sum_ptr, n_cols, acc_dtype, HAS_WEIGHT)
    smooth = total_weight * lse - sum_wx

    delta = split_scalar(delta_hi, delta_lo, acc_dtype)
    off = split_scalar(off_hi, off_lo, acc_dtype)
    return rows, row_mask, row_start, m, log_s, lse, best, smooth, delta, off


@triton.jit
def _backward_rows(
    n_rows,
    n_cols,
    stride_row,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """This program's rows in the logits and in the contiguous gradient, for both backward
    kernels."""
    rows, row_mask, row_start = _row_offsets(tl.program_id(0), n_rows, stride_row, BLOCK_N, ALIGN)
    n_cols_aligned = _aligned_length(n_cols, ALIGN)
    # The gradient is contiguous: its rows start at multiples of n_cols, and ALIGN divides it.
    out_start = tl.multiple_of(rows.to(tl.int64) * n_cols_aligned, [ALIGN])
    return rows, row_mask, row_start, n_cols_aligned, out_start


@triton.jit
def _backward_row_scalars(
    weight_sum_ptr,
    lse_ptr,
    rows,
    n_cols,
    delta_hi,
    delta_lo,
    off_hi,
    off_lo,
    acc_dtype: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
):
    """The smoothing scalars, W and the saved lse per row: what both backward kernels fold
    their target slots into."""
    delta = split_scalar(delta_hi, delta_lo, acc_dtype)
    off = split_scalar(off_hi, off_lo, acc_dtype)
    total_weight = _total_weight(weight_sum_ptr, n_cols, acc_dtype, HAS_WEIGHT)
    lse = tl.load(lse_ptr + rows).to(acc_dtype)
    return delta, off, total_weight, lse


# --- kernels -------------------------------------------------------------------------------


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _lsce_forward_kernel(
    logits_ptr,
    target_ptr,
    weight_ptr,
    weight_sum_ptr,
    loss_ptr,
    lse_ptr,
    correct_ptr,
    n_rows,
    n_cols,
    stride_row,
    delta_hi,
    delta_lo,
    off_hi,
    off_lo,
    ignore_index,
    HAS_WEIGHT: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    acc_dtype: tl.constexpr = lse_ptr.dtype.element_ty
    rows, row_mask, row_start, m, log_s, lse, best, smooth, delta, off = _forward_rows(
        logits_ptr, weight_ptr, weight_sum_ptr, n_rows, n_cols, stride_row,
        delta_hi, delta_lo, off_hi, off_lo, acc_dtype, HAS_WEIGHT, ALIGN, BLOCK_N, BLOCK_C,
    )  # fmt: skip
    loss, y = _target_loss(
        logits_ptr, row_start, target_ptr, rows, weight_ptr, n_cols, ignore_index,
        m, log_s, delta, off, smooth, HAS_WEIGHT,
    )  # fmt: skip

    tl.store(loss_ptr + rows, loss, mask=row_mask)
    tl.store(lse_ptr + rows, lse, mask=row_mask)
    tl.store(correct_ptr + rows, best.to(tl.int64) == y, mask=row_mask)


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _lsce_backward_kernel(
    grad_logits_ptr,
    grad_loss_ptr,
    logits_ptr,
    target_ptr,
    weight_ptr,
    weight_sum_ptr,
    lse_ptr,
    n_rows,
    n_cols,
    stride_row,
    stride_grad_loss,
    delta_hi,
    delta_lo,
    off_hi,
    off_lo,
    ignore_index,
    HAS_WEIGHT: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    acc_dtype: tl.constexpr = lse_ptr.dtype.element_ty
    rows, row_mask, row_start, n_cols_aligned, out_start = _backward_rows(
        n_rows, n_cols, stride_row, ALIGN, BLOCK_N
    )

    g, y_safe, w_y = _target_grad_scale(
        grad_loss_ptr + rows.to(tl.int64) * stride_grad_loss,
        target_ptr, rows, weight_ptr, n_cols, ignore_index, acc_dtype, HAS_WEIGHT,
    )  # fmt: skip
    delta, off, total_weight, lse = _backward_row_scalars(
        weight_sum_ptr, lse_ptr, rows, n_cols,
        delta_hi, delta_lo, off_hi, off_lo, acc_dtype, HAS_WEIGHT,
    )  # fmt: skip
    target_coef = g * delta * w_y
    softmax_coef = target_coef + g * off * total_weight
    uniform_coef = g * off
    _store_softmax_grad(
        grad_logits_ptr, logits_ptr, weight_ptr, row_start, out_start, row_mask, n_cols_aligned,
        lse, softmax_coef, uniform_coef, y_safe, target_coef, y_safe, target_coef,
        HAS_WEIGHT, False, BLOCK_C,
    )  # fmt: skip


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _mixup_ce_forward_kernel(
    logits_ptr,
    target_a_ptr,
    target_b_ptr,
    weight_ptr,
    weight_sum_ptr,
    loss_ptr,
    lse_ptr,
    correct_ptr,
    n_rows,
    n_cols,
    stride_row,
    delta_hi,
    delta_lo,
    off_hi,
    off_lo,
    ignore_index,
    HAS_WEIGHT: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """The forward kernel with two target slots: the streaming pass is shared, each slot
    adds one gathered logit (and class weight). loss is (n_rows, 2), contiguous."""
    acc_dtype: tl.constexpr = lse_ptr.dtype.element_ty
    rows, row_mask, row_start, m, log_s, lse, best, smooth, delta, off = _forward_rows(
        logits_ptr, weight_ptr, weight_sum_ptr, n_rows, n_cols, stride_row,
        delta_hi, delta_lo, off_hi, off_lo, acc_dtype, HAS_WEIGHT, ALIGN, BLOCK_N, BLOCK_C,
    )  # fmt: skip
    loss_a, y_a = _target_loss(
        logits_ptr, row_start, target_a_ptr, rows, weight_ptr, n_cols, ignore_index,
        m, log_s, delta, off, smooth, HAS_WEIGHT,
    )  # fmt: skip
    loss_b, y_b = _target_loss(
        logits_ptr, row_start, target_b_ptr, rows, weight_ptr, n_cols, ignore_index,
        m, log_s, delta, off, smooth, HAS_WEIGHT,
    )  # fmt: skip

    loss_row = loss_ptr + rows.to(tl.int64) * 2
    tl.store(loss_row, loss_a, mask=row_mask)
    tl.store(loss_row + 1, loss_b, mask=row_mask)
    tl.store(lse_ptr + rows, lse, mask=row_mask)
    tl.store(correct_ptr + rows, best.to(tl.int64) == y_a, mask=row_mask)


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _mixup_ce_backward_kernel(
    grad_logits_ptr,
    grad_loss_ptr,
    logits_ptr,
    target_a_ptr,
    target_b_ptr,
    weight_ptr,
    weight_sum_ptr,
    lse_ptr,
    n_rows,
    n_cols,
    stride_row,
    stride_grad_loss_row,
    stride_grad_loss_slot,
    delta_hi,
    delta_lo,
    off_hi,
    off_lo,
    ignore_index,
    HAS_WEIGHT: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """The backward kernel with both slots folded into per-row constants (module docstring).
    grad_loss may have any strides; an out-of-range target in either slot makes the row NaN."""
    acc_dtype: tl.constexpr = lse_ptr.dtype.element_ty
    rows, row_mask, row_start, n_cols_aligned, out_start = _backward_rows(
        n_rows, n_cols, stride_row, ALIGN, BLOCK_N
    )

    grad_loss_row = grad_loss_ptr + rows.to(tl.int64) * stride_grad_loss_row
    g_a, y_a_safe, w_a = _target_grad_scale(
        grad_loss_row, target_a_ptr, rows, weight_ptr, n_cols, ignore_index, acc_dtype, HAS_WEIGHT
    )
    g_b, y_b_safe, w_b = _target_grad_scale(
        grad_loss_row + stride_grad_loss_slot,
        target_b_ptr, rows, weight_ptr, n_cols, ignore_index, acc_dtype, HAS_WEIGHT,
    )  # fmt: skip
    delta, off, total_weight, lse = _backward_row_scalars(
        weight_sum_ptr, lse_ptr, rows, n_cols,
        delta_hi, delta_lo, off_hi, off_lo, acc_dtype, HAS_WEIGHT,
    )  # fmt: skip
    coef_a = g_a * delta * w_a
    coef_b = g_b * delta * w_b
    uniform_coef = (g_a + g_b) * off
    softmax_coef = (coef_a + coef_b) + uniform_coef * total_weight
    _store_softmax_grad(
        grad_logits_ptr, logits_ptr, weight_ptr, row_start, out_start, row_mask, n_cols_aligned,
        lse, softmax_coef, uniform_coef, y_a_safe, coef_a, y_b_safe, coef_b,
        HAS_WEIGHT, True, BLOCK_C,
    )  # fmt: skip


# --- launch heuristics ---------------------------------------------------------------------


def _launch_params(n_cols: int, row_stride: int, dtype: torch.dtype) -> dict:
    """Block sizes and warps for a row length; shared by the launchers and the compile specs."""
    element_size = dtype.itemsize
    max_block = _MAX_BLOCK_C_FP64 if dtype == torch.float64 else _MAX_BLOCK_C
    block_c = min(triton.next_power_of_2(max(n_cols, 1)), max_block)
    block_n = max(1, min(_MAX_BLOCK_N, _TARGET_TILE // block_c))
    # 4 warps for a 1024-logit tile (8 per thread: one 16-byte load in 16-bit), 8 for the
    # 4096-logit chunks of long rows (16 per thread), so long rows keep enough loads in flight.
    num_warps = min(8, max(1, (block_n * block_c) // 256))
    # Elements per 16-byte vector, halved until it divides both the row stride and the row
    # length: the widest access every row start and the row end are guaranteed to allow.
    align = 16 // element_size
    while align > 1 and (n_cols % align or row_stride % align):
        align //= 2
    return {"ALIGN": align, "BLOCK_N": block_n, "BLOCK_C": block_c, "num_warps": num_warps}


def _prepare(logits, targets: dict, weight):
    """Validate and normalise the arguments shared by forward and backward; ``targets`` maps
    each target's argument name to it (messages name the argument)."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    if logits.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"logits must be float16/bfloat16/float32/float64, got {logits.dtype}")
    for name, target in targets.items():
        if target.dim() != 1 or target.shape[0] != logits.shape[0]:
            raise ValueError(
                f"{name} must be ({logits.shape[0]},) for logits of shape "
                f"{tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        if target.dtype != torch.int64:
            raise TypeError(f"{name} must be int64, got {target.dtype}")
        if target.device != logits.device:
            raise ValueError(f"{name} is on {target.device} but logits is on {logits.device}")
    n_cols = logits.shape[1]
    if n_cols > MAX_CLASSES:
        raise ValueError(
            f"logits has {n_cols} classes; the Triton kernels take at most {MAX_CLASSES} "
            f"(2**31 - {_MAX_BLOCK_C})"
        )
    if weight is not None:
        if weight.dim() != 1 or weight.shape[0] != n_cols:
            raise ValueError(f"weight must be ({n_cols},), got {tuple(weight.shape)}")
        if weight.device != logits.device:
            raise ValueError(f"weight is on {weight.device} but logits is on {logits.device}")
        weight = weight.to(opmath_dtype(logits.dtype)).contiguous()
    if n_cols > 1 and logits.stride(1) != 1:
        logits = logits.contiguous()
    return logits, [t.contiguous() for t in targets.values()], weight


def _check_saved(logits, **tensors):
    """Shape (first dimension N, then the given sizes) and device of backward's inputs."""
    n_rows = logits.shape[0]
    for name, (t, trailing) in tensors.items():
        expected = (n_rows, *trailing)
        if tuple(t.shape) != expected:
            raise ValueError(f"{name} must be {expected}, got {tuple(t.shape)}")
        if t.device != logits.device:
            raise ValueError(f"{name} is on {t.device} but logits is on {logits.device}")


def _scalar_args(weight, lse, on_value, off_value):
    """Weight pointers and the fp32-pair smoothing scalars. Unweighted launches pass lse for
    the unused weight pointers; the kernels never read them."""
    weight_arg = lse if weight is None else weight
    weight_sum = lse if weight is None else weight.sum()
    delta_hi, delta_lo = split_double(float(on_value) - float(off_value))
    off_hi, off_lo = split_double(float(off_value))
    return weight_arg, weight_sum, (delta_hi, delta_lo, off_hi, off_lo)


def _forward(op_name, kernel, logits, targets: dict, weight, on_value, off_value, ignore_index):
    """Launch ``kernel`` (one forward kernel per number of target slots; ``targets`` maps each
    slot's argument name to it). loss is (N,) for one slot, (N, slots) otherwise."""
    logits, target_list, weight = _prepare(logits, targets, weight)
    n_rows, n_cols = logits.shape
    acc_dtype = opmath_dtype(logits.dtype)
    context = device_context(logits.device, op_name)
    for name, target in zip(targets, target_list):
        check_target_range(target, n_cols, ignore_index, name)
    loss_shape = (n_rows,) if len(target_list) == 1 else (n_rows, len(target_list))
    loss = logits.new_empty(loss_shape, dtype=acc_dtype)
    lse = logits.new_empty((n_rows,), dtype=acc_dtype)
    correct = logits.new_empty((n_rows,), dtype=torch.bool)
    if n_rows == 0:
        return loss, lse, correct
    if n_cols == 0:  # no class to point at: every kept slot is out of range
        keep = torch.stack(target_list, dim=1).reshape(loss_shape) != ignore_index
        loss.copy_(torch.where(keep, float("nan"), 0.0))
        lse.fill_(float("-inf"))
        correct.fill_(False)
        return loss, lse, correct
    params = _launch_params(n_cols, logits.stride(0), logits.dtype)
    weight_arg, weight_sum, scalars = _scalar_args(weight, lse, on_value, off_value)
    grid = (triton.cdiv(n_rows, params["BLOCK_N"]),)
    with context:
        kernel[grid](
            logits, *target_list, weight_arg, weight_sum, loss, lse, correct,
            n_rows, n_cols, logits.stride(0), *scalars, int(ignore_index),
            HAS_WEIGHT=weight is not None, **params,
        )  # fmt: skip
    return loss, lse, correct


def _backward(
    op_name,
    kernel,
    grad_loss,
    logits,
    targets: dict,
    weight,
    lse,
    on_value,
    off_value,
    ignore_index,
):
    """Launch ``kernel`` (as ``_forward``); grad_loss is shaped like forward's loss and passed
    with all its strides."""
    logits, target_list, weight = _prepare(logits, targets, weight)
    n_rows, n_cols = logits.shape
    acc_dtype = opmath_dtype(logits.dtype)
    slots = () if len(target_list) == 1 else (len(target_list),)
    _check_saved(logits, grad_loss=(grad_loss, slots), lse=(lse, ()))
    context = device_context(logits.device, op_name)
    for name, target in zip(targets, target_list):
        check_target_range(target, n_cols, ignore_index, name)
    grad_logits = torch.empty((n_rows, n_cols), dtype=logits.dtype, device=logits.device)
    if n_rows == 0 or n_cols == 0:
        return grad_logits
    lse = lse.to(acc_dtype).contiguous()
    params = _launch_params(n_cols, logits.stride(0), logits.dtype)
    weight_arg, weight_sum, scalars = _scalar_args(weight, lse, on_value, off_value)
    grid = (triton.cdiv(n_rows, params["BLOCK_N"]),)
    with context:
        kernel[grid](
            grad_logits, grad_loss, logits, *target_list, weight_arg, weight_sum, lse,
            n_rows, n_cols, logits.stride(0), *grad_loss.stride(), *scalars, int(ignore_index),
            HAS_WEIGHT=weight is not None, **params,
        )  # fmt: skip
    return grad_logits


def label_smoothing_cross_entropy_forward(
    logits, target, weight, on_value, off_value, ignore_index
):
    return _forward(
        "label_smoothing_cross_entropy", _lsce_forward_kernel,
        logits, {"target": target}, weight, on_value, off_value, ignore_index,
    )  # fmt: skip


def label_smoothing_cross_entropy_backward(
    grad_loss, logits, target, weight, lse, on_value, off_value, ignore_index
):
    return _backward(
        "label_smoothing_cross_entropy", _lsce_backward_kernel,
        grad_loss, logits, {"target": target}, weight, lse, on_value, off_value, ignore_index,
    )  # fmt: skip


def mixup_cross_entropy_forward(
    logits, target_a, target_b, weight, on_value, off_value, ignore_index
):
    return _forward(
        "mixup_cross_entropy", _mixup_ce_forward_kernel,
        logits, {"target_a": target_a, "target_b": target_b},
        weight, on_value, off_value, ignore_index,
    )  # fmt: skip


def mixup_cross_entropy_backward(
    grad_loss, logits, target_a, target_b, weight, lse, on_value, off_value, ignore_index
):
    return _backward(
        "mixup_cross_entropy", _mixup_ce_backward_kernel,
        grad_loss, logits, {"target_a": target_a, "target_b": target_b},
        weight, lse, on_value, off_value, ignore_index,
    )  # fmt: skip


register(
    {
        _library.LSCE_FORWARD: label_smoothing_cross_entropy_forward,
        _library.LSCE_BACKWARD: label_smoothing_cross_entropy_backward,
        _library.MIXUP_CE_FORWARD: mixup_cross_entropy_forward,
        _library.MIXUP_CE_BACKWARD: mixup_cross_entropy_backward,
    }
)
