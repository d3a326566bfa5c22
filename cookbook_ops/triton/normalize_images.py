"""uint8 images to a normalized float batch in Triton: one streaming pass, output in memory order.

Each program writes BLOCK consecutive values of one output run: a (sample, channel, row) run
of W values for an NCHW result, a (sample, row) run of W * C values for a channels_last one.
The value at each position is ``(x / 255 - mean_c) / std_c`` with correctly rounded float32
divisions (ToTensor + Normalize), of the mirrored source pixel where the sample is flipped,
blended ``lam_i v_i + (1 - lam_i) v_index[i]`` in float32 with separate roundings (the
launch turns off FMA contraction), then rounded once to the output dtype.

Loads: the same-layout cases (NCHW -> NCHW, NHWC -> channels_last) read their source run as
one contiguous block: 16-byte vector loads when the run length is a multiple of 16. A
mirrored NCHW run is the contiguous block at the mirrored position, reversed in registers; a
mirrored NHWC pixel run (channels stay in order) is gathered byte by byte. The transposing
cases (NHWC -> NCHW, NCHW -> channels_last) gather their source bytes with a stride (coalesced
across the warp, one byte per load); the CUDA kernel stages those through shared memory.
Stores are always contiguous and vectorised.

A partner index outside [0, N) leaves the sample unmixed; the launcher rejects such indices
for CPU tensors, where checking costs no device sync.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cookbook_ops import _library
from cookbook_ops.triton._common import (
    INTERPRETED,
    cdiv_positive,
    device_context,
    register,
)

_OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MAX_BLOCK = 2048  # 16 values per thread with 4 warps: one 16-byte uint8 load each
_NUM_WARPS = 4
# The blend rounds lam * v and (1 - lam) * y and their sum separately, as the reference does;
# Triton's default would contract it into one FMA.
_ENABLE_FP_FUSION = False

# The interpreter's float32 -> bfloat16 conversion does not round to nearest even.
_EMULATE_BF16: tl.constexpr = tl.constexpr(INTERPRETED)

# A batch size change must not recompile.
_NO_SPECIALIZE = ["n_samples", "runs"]


@triton.jit
def _bf16_round_even(v):
    # float32 -> bfloat16 with round to nearest even on the bits: the interpreter's own
    # conversion rounds ties away and so differs from the GPU's. NaN stays a quiet NaN.
    bits = v.to(tl.uint32, bitcast=True)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    rounded = tl.where(v != v, 0x7FC0, rounded)
    return rounded.to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def _normalize(x, mean, std):
    # Exactly ToTensor + Normalize: each step rounded on its own.
    t = tl.div_rn(x.to(tl.float32), 255.0)
    return tl.div_rn(t - mean, std)


@triton.jit
def _source_bytes(
    images_ptr, sample, mirrored, c, h, w, pos, start, valid, C, H, W,
    NHWC: tl.constexpr, CHANNELS_LAST: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """The source uint8 of each output position of the block, from sample ``sample``."""
    s = sample.to(tl.int64)
    if NHWC and CHANNELS_LAST:
        # Same layout: the run is contiguous, pos = w * C + c. A mirrored sample reverses the
        # pixel order but not the channels, so it is gathered.
        row = images_ptr + (s * H + h) * W * C
        plain = tl.load(row + pos, mask=valid & (mirrored == 0), other=0)
        flipped = tl.load(row + (W - 1 - w) * C + c, mask=valid & (mirrored != 0), other=0)
        x = tl.where(mirrored != 0, flipped, plain)
    elif not NHWC and not CHANNELS_LAST:
        # Same layout: a mirrored run is the contiguous block that ends where this one starts
        # from the right, reversed.
        row = images_ptr + ((s * C + c) * H + h) * W
        plain = tl.load(row + pos, mask=valid & (mirrored == 0), other=0)
        back = (W - start - BLOCK) + tl.arange(0, BLOCK)[None, :]
        flipped = tl.load(row + back, mask=(back >= 0) & (mirrored != 0), other=0)
        x = tl.where(mirrored != 0, tl.flip(flipped, 1), plain)
    else:
        # int64 sample base, int32 offset inside the sample.
        w_src = tl.where(mirrored != 0, W - 1 - w, w)
        if NHWC:
            offset = ((h * W + w_src) * C + c).to(tl.int32)
        else:
            offset = ((c * H + h) * W + w_src).to(tl.int32)
        x = tl.load(images_ptr + s * (C * H * W) + offset, mask=valid, other=0)
    return x


@triton.jit
def _run_block(pid, length, BLOCK: tl.constexpr):
    """Program pid's group of runs and first position in them, for runs of length >= 1
    values (the launcher returns early on an empty output)."""
    # Not tl.cdiv: length + BLOCK - 1 wraps negative for a run within a block of 2**31 (one
    # row of a very wide channels_last image), which would point the program elsewhere.
    blocks = cdiv_positive(length, BLOCK)
    group = pid // blocks
    return group, (pid - group * blocks) * BLOCK


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _normalize_images_kernel(
    images_ptr,
    mean_ptr,
    std_ptr,
    flip_ptr,
    lam_ptr,
    index_ptr,
    out_ptr,
    n_samples,
    runs,
    C,
    H,
    W,
    NHWC: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    HAS_FLIP: tl.constexpr,
    HAS_MIX: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # Each program: ROWS consecutive output runs times BLOCK positions of each.
    # In-run positions (< C * H * W < 2**31) stay int32; sample and run bases are int64.
    if CHANNELS_LAST:
        length = W * C
    else:
        length = W
    group, start = _run_block(tl.program_id(0), length, BLOCK)
    # The run index is formed and guarded in int64 (in int32 it would wrap negative near 2**31
    # runs and pass the guards); once clamped it is below runs < 2**31 (checked on the host),
    # so the arithmetic inside the image stays int32.
    run = group.to(tl.int64) * ROWS + tl.arange(0, ROWS)[:, None]
    run_valid = run < runs
    # Tail runs repeat the last one (their stores are masked), so loads need no run mask.
    run = tl.minimum(run, runs - 1).to(tl.int32)
    pos = start + tl.arange(0, BLOCK)[None, :]
    valid = pos < length
    if CHANNELS_LAST:
        n = run // H
        h = run - n * H
        w = pos // C
        c = pos - w * C
        out_row = out_ptr + run.to(tl.int64) * W * C
    else:
        n = run // (C * H)
        h = run % H
        c = (run // H) % C
        w = pos
        out_row = out_ptr + run.to(tl.int64) * W
    mean = tl.load(mean_ptr + c)
    std = tl.load(std_ptr + c)

    mirrored = tl.zeros((ROWS, 1), tl.uint8)
    if HAS_FLIP:
        mirrored = tl.load(flip_ptr + n)
    x = _source_bytes(
        images_ptr, n, mirrored, c, h, w, pos, start, valid, C, H, W, NHWC, CHANNELS_LAST, BLOCK
    )
    v = _normalize(x, mean, std)
    if HAS_MIX:
        k = tl.load(index_ptr + n)
        mixed = (k >= 0) & (k < n_samples)
        partner = tl.where(mixed, k, n)
        lam = tl.load(lam_ptr + n)
        other_mirrored = tl.zeros((ROWS, 1), tl.uint8)
        if HAS_FLIP:
            other_mirrored = tl.load(flip_ptr + partner)
        y = _source_bytes(
            images_ptr, partner, other_mirrored, c, h, w, pos, start, valid & mixed, C, H, W,
            NHWC, CHANNELS_LAST, BLOCK,
        )  # fmt: skip
        blended = lam * v + (1.0 - lam) * _normalize(y, mean, std)
        v = tl.where(mixed, blended, v)
    out_dtype: tl.constexpr = out_ptr.dtype.element_ty
    if out_dtype == tl.bfloat16 and _EMULATE_BF16:
        v = _bf16_round_even(v)
    tl.store(out_row + pos, v.to(out_dtype), mask=valid & run_valid)


# --- launcher -------------------------------------------------------------------------------


def _block(length: int) -> tuple[int, int]:
    """(BLOCK, ROWS): positions per run and runs per program, _MAX_BLOCK values in all so that
    each thread moves 16 source bytes. BLOCK is at least 16 (tl.flip needs two elements)."""
    block = min(triton.next_power_of_2(max(length, 16)), _MAX_BLOCK)
    return block, _MAX_BLOCK // block


def _check_vector(name, t, length, dtype, device, what):
    if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.shape[0] != length:
        shape = None if not isinstance(t, torch.Tensor) else tuple(t.shape)
        raise ValueError(f"{name} must be ({what},) with {what} = {length}, got {shape}")
    if t.dtype != dtype:
        raise TypeError(f"{name} must be {dtype}, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but images is on {device}")
    return t.contiguous()


def normalize_images_forward(
    images, mean, std, flip, lam, index, nhwc, out_dtype, channels_last
):  # fmt: skip
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    if images.dim() != 4:
        dims = "(N, H, W, C)" if nhwc else "(N, C, H, W)"
        raise ValueError(f"images must be {dims}, got shape {tuple(images.shape)}")
    if out_dtype not in _OUT_DTYPES:
        raise ValueError(f"out_dtype must be float32, bfloat16 or float16, got {out_dtype}")
    if (lam is None) != (index is None):
        raise ValueError("lam and index must be given together (both or neither)")
    n = images.shape[0]
    if nhwc:
        _, H, W, C = images.shape
    else:
        _, C, H, W = images.shape
    device = images.device
    mean = _check_vector("mean", mean, C, torch.float32, device, "C")
    std = _check_vector("std", std, C, torch.float32, device, "C")
    if flip is not None:
        # Read as bytes: Triton's bool pointers are 1-bit on some paths.
        flip = _check_vector("flip", flip, n, torch.bool, device, "N").view(torch.uint8)
    if lam is not None:
        lam = _check_vector("lam", lam, n, torch.float32, device, "N")
        index = _check_vector("index", index, n, torch.int64, device, "N")
        if device.type == "cpu" and n and bool(((index < 0) | (index >= n)).any()):
            raise IndexError(f"index values must lie in [0, {n})")
    if C * H * W >= 2**31:
        raise ValueError(f"samples of {C * H * W} values are too large (at most 2**31 - 1)")
    if n * H * C >= 2**31:
        raise ValueError(f"too many image rows ({n} x {C} x {H}); split the batch")
    context = device_context(device, "normalize_images")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((n, C, H, W), dtype=out_dtype, device=device, memory_format=memory_format)
    if out.numel() == 0:
        return out
    images = images.contiguous()
    length = W * C if channels_last else W
    block, rows = _block(length)
    runs = n * H * (1 if channels_last else C)
    grid = (triton.cdiv(runs, rows) * triton.cdiv(length, block),)
    with context:
        _normalize_images_kernel[grid](
            images, mean, std,
            flip if flip is not None else mean,  # unread when HAS_FLIP is False
            lam if lam is not None else mean,
            index if index is not None else mean,
            out, n, runs, C, H, W,
            NHWC=bool(nhwc), CHANNELS_LAST=bool(channels_last),
            HAS_FLIP=flip is not None, HAS_MIX=lam is not None,
            ROWS=rows, BLOCK=block, num_warps=_NUM_WARPS, enable_fp_fusion=_ENABLE_FP_FUSION,
        )  # fmt: skip
    return out


register({_library.NORMALIZE_IMAGES: normalize_images_forward})
