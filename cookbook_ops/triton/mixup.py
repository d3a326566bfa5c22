"""mixup and CutMix blends in Triton: one streaming pass, every sample one dense block.

Each program owns a (BLOCK_N samples, BLOCK_S elements) tile of the per-sample blocks in memory
order (contiguous, or channels_last for 4-D inputs): large samples get one program per chunk,
small ones (an (N, D) batch with small D) are packed several to a program.

- ``_mixup_kernel``: out_i = lam_i a_i + (1 - lam_c) a_s. Forward: s = index[i], c = i.
  Backward: s = c = inv[i] (index[inv[i]] = i), so the gradient is one gather-and-blend too.
- ``_mixup_pairs_kernel``: in place over an involution; the program of the smaller index of a
  pair reads both samples and writes both, so every element is read and written once.
- ``_cutmix_kernel``: out_i = a_s inside box_i, a_i outside (forward), or
  g_j outside box_j + g_k inside box_k (backward, k = inv[j]). Each source is loaded only where
  it is needed, with masks decided per vector so the loads stay vectorised.

Indices are clamped into [0, N) and boxes into the image in the kernels, so no value can make
a kernel read or write outside its tensors; row indices are int64, so batches of 2**31 rows or
more do not wrap, and the chunk count is formed without overflow, so samples may have up to
2**31 - 1 elements. Blends round each product and the sum separately, as the reference and the
CUDA kernels do: the launches turn off FMA contraction (an FMA would round once and differ by
an ulp, or by one uint8 step). Nothing here synchronises with the host.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cookbook_ops import _library
from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops.triton._common import (
    INTERPRETED,
    cdiv_positive,
    device_context,
    register,
)

# libdevice is not available to the interpreter; there uint8 rounding is emulated.
_NATIVE_RINT: tl.constexpr = tl.constexpr(not INTERPRETED)

# Elements of one tile. 4096 is 32 per thread with 4 warps: eight 16-byte loads per source in
# fp32, enough bytes in flight per program for a pure streaming kernel.
_TILE = 4096
_TILE_FP64 = 2048
_NUM_WARPS = 4

# A batch size change must not recompile.
_NO_SPECIALIZE = ["n_samples"]

_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8)
_GRAD_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# --- shared pieces --------------------------------------------------------------------------


@triton.jit
def _tile(n_samples, S, ALIGN: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr):
    return _program_tile(tl.program_id(0), n_samples, S, ALIGN, BLOCK_N, BLOCK_S)


@triton.jit
def _program_tile(
    pid, n_samples, S, ALIGN: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr
):
    """Program pid's rows and columns. S >= 1 (the launchers return early on empty samples)."""
    # Not tl.cdiv: S + BLOCK_S - 1 wraps negative for S within a block of 2**31, and the rows
    # and columns derived from a negative chunk count point outside the tensor.
    chunks = cdiv_positive(S, BLOCK_S)
    group = pid // chunks
    chunk = pid - group * chunks
    # int64: past 2**31 rows an int32 index would wrap negative and pass both guards below.
    rows = group.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < n_samples
    # Tail rows re-read the last sample (their stores are masked), so loads need column masks
    # only, and those stay constant over ALIGN-wide vectors.
    rows = tl.minimum(rows, n_samples - 1)
    cols = chunk * BLOCK_S + tl.arange(0, BLOCK_S)
    # Equal to S (the host picks ALIGN dividing it), written so the compiler sees that ALIGN
    # divides it: multiple_of cannot carry that hint on a kernel argument. Sample starts are
    # then as aligned as the base pointer and the column mask is uniform over each vector.
    S_aligned = (S // ALIGN) * ALIGN
    col_mask = cols < S_aligned
    return rows, row_mask, cols, col_mask, S_aligned


@triton.jit
def _sample_start(sample, S_aligned, ALIGN: tl.constexpr):
    return tl.multiple_of(sample.to(tl.int64) * S_aligned, [ALIGN])


@triton.jit
def _load_index(index_ptr, rows, n_samples):
    # Indices are not validated on the device (that would need a sync); clamping keeps every
    # gather inside the tensor whatever they hold.
    s = tl.load(index_ptr + rows)
    return tl.minimum(tl.maximum(s, 0), n_samples - 1)


@triton.jit
def _round_half_even(v):
    if _NATIVE_RINT:
        return tl.extra.cuda.libdevice.rint(v)
    else:
        f = tl.floor(v)
        d = v - f
        odd = (f - 2.0 * tl.floor(f * 0.5)) != 0.0
        return tl.where((d > 0.5) | ((d == 0.5) & odd), f + 1.0, f)


@triton.jit
def _to_output(v, dtype: tl.constexpr):
    if dtype == tl.uint8:
        # Clamping first is equivalent (rounding is monotone, the bounds are integers) and keeps
        # the conversion in range.
        v = _round_half_even(tl.minimum(tl.maximum(v, 0.0), 255.0))
    return v.to(dtype)


# --- mixup ----------------------------------------------------------------------------------


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _mixup_kernel(
    x_ptr,
    out_ptr,
    lam_ptr,
    src_ptr,
    n_samples,
    S,
    LAM_FROM_SOURCE: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    acc_dtype: tl.constexpr = lam_ptr.dtype.element_ty
    rows, row_mask, cols, col_mask, S_aligned = _tile(n_samples, S, ALIGN, BLOCK_N, BLOCK_S)
    src = _load_index(src_ptr, rows, n_samples)
    lam = tl.load(lam_ptr + rows)
    if LAM_FROM_SOURCE:
        lam_src = tl.load(lam_ptr + src)
    else:
        lam_src = lam
    own = _sample_start(rows, S_aligned, ALIGN)[:, None] + cols[None, :]
    other = _sample_start(src, S_aligned, ALIGN)[:, None] + cols[None, :]
    a = tl.load(x_ptr + own, mask=col_mask[None, :]).to(acc_dtype)
    b = tl.load(x_ptr + other, mask=col_mask[None, :]).to(acc_dtype)
    # Same operation order and roundings as the reference (no FMA: see the launch parameters),
    # so fp32/fp64 results match it exactly.
    out = lam[:, None] * a + (1 - lam_src)[:, None] * b
    tl.store(
        out_ptr + own,
        _to_output(out, out_ptr.dtype.element_ty),
        mask=row_mask[:, None] & col_mask[None, :],
    )


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _mixup_pairs_kernel(
    x_ptr,
    lam_ptr,
    pairs_ptr,
    n_samples,
    S,
    ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    acc_dtype: tl.constexpr = lam_ptr.dtype.element_ty
    rows, row_mask, cols, col_mask, S_aligned = _tile(n_samples, S, ALIGN, BLOCK_N, BLOCK_S)
    partner = _load_index(pairs_ptr, rows, n_samples)
    # Only the smaller index of a pair works on it, so no element has two writers; fixed points
    # are left alone. The mask is uniform along a sample, so the loads stay vectorised.
    lead = row_mask & (partner > rows)
    lam_i = tl.load(lam_ptr + rows)
    lam_j = tl.load(lam_ptr + partner)
    mask = lead[:, None] & col_mask[None, :]
    off_i = _sample_start(rows, S_aligned, ALIGN)[:, None] + cols[None, :]
    off_j = _sample_start(partner, S_aligned, ALIGN)[:, None] + cols[None, :]
    a = tl.load(x_ptr + off_i, mask=mask).to(acc_dtype)
    b = tl.load(x_ptr + off_j, mask=mask).to(acc_dtype)
    out_dtype: tl.constexpr = x_ptr.dtype.element_ty
    new_a = lam_i[:, None] * a + (1 - lam_i)[:, None] * b
    new_b = lam_j[:, None] * b + (1 - lam_j)[:, None] * a
    tl.store(x_ptr + off_i, _to_output(new_a, out_dtype), mask=mask)
    tl.store(x_ptr + off_j, _to_output(new_b, out_dtype), mask=mask)


# --- CutMix ---------------------------------------------------------------------------------


@triton.jit
def _load_box(boxes_ptr, sample, H, W):
    # Clamped into the image: any box then selects a subset of in-bounds elements, and the
    # comparisons below run in int32.
    base = boxes_ptr + sample.to(tl.int64) * 4
    y0 = tl.minimum(tl.maximum(tl.load(base + 0), 0), H).to(tl.int32)
    x0 = tl.minimum(tl.maximum(tl.load(base + 1), 0), W).to(tl.int32)
    y1 = tl.minimum(tl.maximum(tl.load(base + 2), 0), H).to(tl.int32)
    x1 = tl.minimum(tl.maximum(tl.load(base + 3), 0), W).to(tl.int32)
    return y0[:, None], x0[:, None], y1[:, None], x1[:, None]


@triton.jit
def _box_masks(boxes_ptr, sample, h, w_lo, w_hi, w, H, W):
    """(any, all, exact) for each element's vector: whether any / every element of the vector
    lies in the sample's box, and whether the element itself does. any and all only depend on
    the vector, so loads masked by them can stay vector loads."""
    y0, x0, y1, x1 = _load_box(boxes_ptr, sample, H, W)
    row_in = (h[None, :] >= y0) & (h[None, :] < y1)
    any_in = row_in & (w_lo[None, :] < x1) & (w_hi[None, :] > x0)
    all_in = row_in & (w_lo[None, :] >= x0) & (w_hi[None, :] <= x1)
    exact = row_in & (w[None, :] >= x0) & (w[None, :] < x1)
    return any_in, all_in, exact


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _cutmix_kernel(
    x_ptr,
    out_ptr,
    boxes_ptr,
    src_ptr,
    n_samples,
    S,
    C,
    H,
    W,
    BACKWARD: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    ALIGN: tl.constexpr,
    VEC: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    rows, row_mask, cols, col_mask, S_aligned = _tile(n_samples, S, ALIGN, BLOCK_N, BLOCK_S)
    src = _load_index(src_ptr, rows, n_samples)
    # VEC divides the innermost dimension (W in NCHW, C in channels_last), so a VEC-wide vector
    # never crosses an image row and the position of its first element locates all of it.
    first = (cols // VEC) * VEC
    if CHANNELS_LAST:
        pixel = first // C
        w_lo = pixel % W
        h = pixel // W
        w = w_lo
        w_hi = w_lo + 1
    else:
        w_lo = first % W
        h = (first // W) % H
        w = w_lo + (cols - first)
        w_hi = w_lo + VEC
    own = _sample_start(rows, S_aligned, ALIGN)[:, None] + cols[None, :]
    other = _sample_start(src, S_aligned, ALIGN)[:, None] + cols[None, :]
    valid = col_mask[None, :]
    if BACKWARD:
        # grad_j = g_j outside box_j + g_k inside box_k, with k = src.
        acc_dtype: tl.constexpr = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
        _, all_own, in_own = _box_masks(boxes_ptr, rows, h, w_lo, w_hi, w, H, W)
        any_src, _, in_src = _box_masks(boxes_ptr, src, h, w_lo, w_hi, w, H, W)
        a = tl.load(x_ptr + own, mask=valid & ~all_own, other=0.0).to(acc_dtype)
        b = tl.load(x_ptr + other, mask=valid & any_src, other=0.0).to(acc_dtype)
        out = tl.where(in_own, 0.0, a) + tl.where(in_src, b, 0.0)
    else:
        any_in, all_in, inside = _box_masks(boxes_ptr, rows, h, w_lo, w_hi, w, H, W)
        a = tl.load(x_ptr + own, mask=valid & ~all_in)
        b = tl.load(x_ptr + other, mask=valid & any_in)
        out = tl.where(inside, b, a)
    tl.store(
        out_ptr + own,
        out.to(out_ptr.dtype.element_ty),
        mask=row_mask[:, None] & col_mask[None, :],
    )


# --- launch heuristics ----------------------------------------------------------------------


def _vector_width(length: int, dtype: torch.dtype) -> int:
    """Elements per 16-byte vector, halved until it divides ``length``."""
    width = max(1, 16 // dtype.itemsize)
    while width > 1 and length % width:
        width //= 2
    return width


def _launch_params(S: int, dtype: torch.dtype) -> dict:
    """Block sizes and warps for samples of S elements; shared by launchers and compile specs."""
    tile = _TILE_FP64 if dtype == torch.float64 else _TILE
    block_s = min(triton.next_power_of_2(max(S, 1)), tile)
    return {
        "ALIGN": _vector_width(S, dtype),
        "BLOCK_N": max(1, tile // block_s),
        "BLOCK_S": block_s,
        "num_warps": _NUM_WARPS,
        # lam a + (1 - lam) b with two rounded products, as the reference: Triton's default
        # contracts it into an FMA (rounded once), which moves uint8 results by one step in a
        # few pixels and fp32 ones by an ulp in many. CutMix has no multiply: no effect there.
        "enable_fp_fusion": False,
    }


def _grid(n: int, S: int, params: dict) -> tuple[int]:
    return (triton.cdiv(n, params["BLOCK_N"]) * triton.cdiv(S, params["BLOCK_S"]),)


def _is_channels_last(x: torch.Tensor) -> bool:
    return (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def _dense(x: torch.Tensor) -> torch.Tensor:
    # The kernels walk each sample's block in memory order, which needs x contiguous or 4-D
    # channels_last; any other layout is copied to contiguous first.
    if x.is_contiguous() or _is_channels_last(x):
        return x
    return x.contiguous()


def _check_tensor(name, t, dtypes, device):
    if t.dtype not in dtypes:
        names = "/".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must be {names}, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but the input is on {device}")


def _check_per_sample(name, t, n, device, dtype=torch.int64, trailing=()):
    if tuple(t.shape) != (n, *trailing):
        raise ValueError(f"{name} must have shape {(n, *trailing)}, got {tuple(t.shape)}")
    _check_tensor(name, t, (dtype,), device)
    return t.contiguous()


def _prepare_lam(lam, x):
    n = x.shape[0]
    if lam.dim() != 1 or lam.shape[0] != n:
        raise ValueError(f"lam must have shape ({n},), got {tuple(lam.shape)}")
    if not lam.is_floating_point():
        raise TypeError(f"lam must be a floating-point tensor, got {lam.dtype}")
    if lam.device != x.device:
        raise ValueError(f"lam is on {lam.device} but the input is on {x.device}")
    return lam.to(opmath_dtype(x.dtype)).contiguous()


def _sample_size(x: torch.Tensor) -> int:
    if x.dim() == 0:
        raise ValueError("the input must have a leading batch dimension, got a 0-d tensor")
    S = x[0].numel() if x.shape[0] else 0
    if S >= 2**31:
        raise ValueError(f"samples of {S} elements are too large (at most 2**31 - 1)")
    return S


def _inverse_permutation(index: torch.Tensor) -> torch.Tensor:
    # Built on the device with no sync. Clamped first so a bad index cannot fault here; the
    # kernel clamps whatever the unset entries of a non-permutation hold.
    n = index.shape[0]
    inv = torch.empty_like(index)
    inv.scatter_(0, index.clamp(0, n - 1), torch.arange(n, device=index.device))
    return inv


def _blend(name, t, dtypes, lam, index, backward):
    """One launch of _mixup_kernel over t: the forward blend, or (backward) the gradient, which
    gathers through the inverse permutation with lam taken from the source sample."""
    _check_tensor(name, t, dtypes, t.device)
    t = _dense(t)
    S = _sample_size(t)
    n = t.shape[0]
    lam = _prepare_lam(lam, t)
    index = _check_per_sample("index", index, n, t.device)
    context = device_context(t.device, "mixup/cutmix")
    out = torch.empty_like(t)
    if n == 0 or S == 0:
        return out
    params = _launch_params(S, t.dtype)
    with context:
        source = _inverse_permutation(index) if backward else index
        _mixup_kernel[_grid(n, S, params)](
            t, out, lam, source, n, S, LAM_FROM_SOURCE=backward, **params
        )
    return out


def mixup_forward(x, lam, index):
    return _blend("x", x, _DTYPES, lam, index, backward=False)


def mixup_backward(grad_out, lam, index):
    return _blend("grad_out", grad_out, _GRAD_DTYPES, lam, index, backward=True)


def mixup_pairs(x, lam, pairs):
    _check_tensor("x", x, _DTYPES, x.device)
    S = _sample_size(x)
    n = x.shape[0]
    lam = _prepare_lam(lam, x)
    pairs = _check_per_sample("pairs", pairs, n, x.device)
    context = device_context(x.device, "mixup/cutmix")
    if n == 0 or S == 0:
        return
    # The kernel needs dense sample blocks; another layout is blended in a contiguous copy.
    work = _dense(x)
    params = _launch_params(S, x.dtype)
    with context:
        _mixup_pairs_kernel[_grid(n, S, params)](work, lam, pairs, n, S, **params)
    if work is not x:
        x.copy_(work)


def _cutmix_launch(x, boxes, index, backward):
    n, C, H, W = x.shape
    S = _sample_size(x)
    boxes = _check_per_sample("boxes", boxes, n, x.device, trailing=(4,))
    index = _check_per_sample("index", index, n, x.device)
    context = device_context(x.device, "mixup/cutmix")
    out = torch.empty_like(x)
    if n == 0 or S == 0:
        return out
    channels_last = _is_channels_last(x)
    params = _launch_params(S, x.dtype)
    vec = _vector_width(C if channels_last else W, x.dtype)
    with context:
        src = _inverse_permutation(index) if backward else index
        _cutmix_kernel[_grid(n, S, params)](
            x, out, boxes, src, n, S, C, H, W,
            BACKWARD=backward, CHANNELS_LAST=channels_last, VEC=vec, **params,
        )  # fmt: skip
    return out


def cutmix_forward(x, boxes, index):
    _check_tensor("x", x, _DTYPES, x.device)
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    return _cutmix_launch(_dense(x), boxes, index, backward=False)


def cutmix_backward(grad_out, boxes, index):
    _check_tensor("grad_out", grad_out, _GRAD_DTYPES, grad_out.device)
    if grad_out.dim() != 4:
        raise ValueError(f"grad_out must be (N, C, H, W), got shape {tuple(grad_out.shape)}")
    return _cutmix_launch(_dense(grad_out), boxes, index, backward=True)


register(
    {
        _library.MIXUP_FORWARD: mixup_forward,
        _library.MIXUP_BACKWARD: mixup_backward,
        _library.MIXUP_PAIRS: mixup_pairs,
        _library.CUTMIX_FORWARD: cutmix_forward,
        _library.CUTMIX_BACKWARD: cutmix_backward,
    }
)
