"""Resized crop + flip + normalize (+ mixup) of a list of uint8 images in Triton: one launch.

The images have different sizes and live in separate allocations, so the launcher passes a
table of (base address, height, width) per image, built on the host from tensor metadata (no
device value is read) and copied with a non-blocking copy from pinned memory; the kernel turns
each base address back into a uint8 pointer. The boxes stay on the device and are read, and
clamped into their image, by the kernel: a bad box can give a wrong result but never an
out-of-bounds read (the launcher rejects bad boxes of CPU tensors, where checking is free).

Each program computes a tile of TILE_H output rows x PIXELS output pixels (all channels) of one
sample, separably: for every source row under the tile, the horizontal pass resamples its
pixels at the tile's columns (one gathered byte per tap), and the vertical pass adds that row,
weighted per output row, into the tile's float32 accumulators. Source rows shared by adjacent
output rows are resampled once per tile instead of once per output row. Tap windows and
weights come from the formulas of ATen's float32 code (see csrc/cpu/resized_crop_normalize.cpp
and cookbook_ops/reference/resized_crop_normalize.py): plain bilinear positions are
fma(scale, o + 0.5, -0.5); antialiased weights are summed unnormalized and the sums divided by
the weight total at the end (the same value up to float32 rounding).

Mirroring reads the resampled image at column out_w - 1 - ox; with mixup, the program computes
the partner sample's tile as well and blends before the one rounding to the output dtype. A
partner index outside [0, N) leaves the sample unmixed (the launcher rejects such indices for
CPU tensors).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cookbook_ops import _library
from cookbook_ops.triton._common import INTERPRETED, device_context, register
from cookbook_ops.triton.normalize_images import _bf16_round_even

_OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_TILE_H = 8
_BLOCK = 128  # channel values per output row of a tile: PIXELS = _BLOCK // C pixels
_NUM_WARPS = 4
# Positions, weights and the blend use explicit roundings; keep the compiler from contracting.
_ENABLE_FP_FUSION = False
_EMULATE_BF16: tl.constexpr = tl.constexpr(INTERPRETED)
# A batch size or image size change must not recompile.
_NO_SPECIALIZE = ["n_samples", "out_h", "out_w"]


@triton.jit
def _axis_window(o, length, n_out, ANTIALIAS: tl.constexpr):
    """For output positions o (int32 tensor) along an axis of `length` source pixels resized to
    n_out: (scale, center, first tap, end of the taps), float32 as ATen computes them. Plain
    bilinear reports its two taps [i0, i0 + 2) clipped to the axis."""
    scale = tl.div_rn(length.to(tl.float32), n_out.to(tl.float32))
    half = o.to(tl.float32) + 0.5
    if ANTIALIAS:
        support = tl.maximum(scale, 1.0)
        center = scale * half
        lo = tl.maximum((center - support + 0.5).to(tl.int32), 0)
        hi = tl.minimum((center + support + 0.5).to(tl.int32), length)
    else:
        center = tl.maximum(tl.fma(scale, half, -0.5), 0.0)  # the source position
        lo = tl.minimum(center.to(tl.int32), length - 1)
        hi = tl.minimum(lo + 2, length)
    return scale, center, lo, hi


@triton.jit
def _row_weight(y, scale, center, lo, hi, length, ANTIALIAS: tl.constexpr):
    """The weight of source row y for the output rows whose windows are given (unnormalized
    with antialias). Plain bilinear: 1 - frac on i0, frac on min(i0 + 1, length - 1), so the
    last row takes both where the second tap would leave the box, as in ATen."""
    if ANTIALIAS:
        inv = tl.div_rn(1.0, tl.maximum(scale, 1.0))
        w = tl.maximum(1.0 - tl.abs((y.to(tl.float32) - center + 0.5) * inv), 0.0)
        w = tl.where((y >= lo) & (y < hi), w, 0.0)
    else:
        frac = tl.minimum(tl.maximum(center - lo.to(tl.float32), 0.0), 1.0)
        w = tl.where(y == lo, 1.0 - frac, 0.0)
        w += tl.where(y == tl.minimum(lo + 1, length - 1), frac, 0.0)
    return w


@triton.jit
def _column_tap(k, scale, center, lo, hi, length, ANTIALIAS: tl.constexpr):
    """Tap k of each output column: (source column, weight), the column clamped into the box
    (a bilinear second tap past the edge reads the last column, as in ATen)."""
    j = lo + k
    if ANTIALIAS:
        inv = tl.div_rn(1.0, tl.maximum(scale, 1.0))
        w = tl.maximum(1.0 - tl.abs((j.to(tl.float32) - center + 0.5) * inv), 0.0)
        w = tl.where(j < hi, w, 0.0)
    else:
        frac = tl.minimum(tl.maximum(center - lo.to(tl.float32), 0.0), 1.0)
        w = tl.where(k == 0, 1.0 - frac, frac)
    return tl.minimum(j, length - 1), w


@triton.jit
def _resampled_tile(
    table_ptr, boxes_ptr, sample, mirrored, oy, ox, c, valid_x,
    out_h, out_w, C: tl.constexpr, NHWC: tl.constexpr, ANTIALIAS: tl.constexpr,
):  # fmt: skip
    """Resampled bytes (0..255 scale) of sample `sample` at output rows oy (TILE_H, 1) and the
    (pixel, channel) columns ox, c (1, BLOCK), mirrored along W when `mirrored`."""
    s = sample.to(tl.int64)
    base = tl.load(table_ptr + s * 4).to(tl.pointer_type(tl.uint8))
    H = tl.load(table_ptr + s * 4 + 1).to(tl.int32)
    W = tl.load(table_ptr + s * 4 + 2).to(tl.int32)
    # The box, clamped into the image so that no read leaves it.
    top = tl.minimum(tl.maximum(tl.load(boxes_ptr + s * 4).to(tl.int32), 0), H - 1)
    left = tl.minimum(tl.maximum(tl.load(boxes_ptr + s * 4 + 1).to(tl.int32), 0), W - 1)
    bh = tl.minimum(tl.maximum(tl.load(boxes_ptr + s * 4 + 2).to(tl.int32), 1), H - top)
    bw = tl.minimum(tl.maximum(tl.load(boxes_ptr + s * 4 + 3).to(tl.int32), 1), W - left)
    if NHWC:
        row_stride = W.to(tl.int64) * C
        pixel_stride = C
        channel_offset = c.to(tl.int64)
    else:
        row_stride = W.to(tl.int64)
        pixel_stride = 1
        channel_offset = c.to(tl.int64) * H * W
    # Columns: the source window of each (possibly mirrored) output pixel.
    ox_src = tl.where(mirrored != 0, out_w - 1 - ox, ox)
    sx, cx, lo_x, hi_x = _axis_window(ox_src, bw, out_w, ANTIALIAS)
    # Rows: the source windows of the tile's rows.
    sy, cy, lo_y, hi_y = _axis_window(oy, bh, out_h, ANTIALIAS)
    if ANTIALIAS:
        scale_x = tl.div_rn(bw.to(tl.float32), out_w.to(tl.float32))
        taps_x = 2 * tl.math.ceil(tl.maximum(scale_x, 1.0)).to(tl.int32) + 1
        total_x = tl.zeros_like(cx)
        for k in range(0, taps_x):
            total_x += _column_tap(k, sx, cx, lo_x, hi_x, bw, ANTIALIAS)[1]
    else:
        taps_x = 2
    row0 = base + channel_offset + left.to(tl.int64) * pixel_stride
    acc = tl.zeros((oy.shape[0], ox.shape[1]), tl.float32)
    total_y = tl.zeros_like(cy)
    for y in range(tl.min(lo_y), tl.max(hi_y)):
        src_row = row0 + (top + y).to(tl.int64) * row_stride
        h = tl.zeros_like(cx)
        for k in range(0, taps_x):
            j, w = _column_tap(k, sx, cx, lo_x, hi_x, bw, ANTIALIAS)
            x = tl.load(src_row + j * pixel_stride, mask=valid_x, other=0)
            h += w * x.to(tl.float32)
        wy = _row_weight(tl.zeros_like(lo_y) + y, sy, cy, lo_y, hi_y, bh, ANTIALIAS)
        total_y += wy
        acc += wy * h
    if ANTIALIAS:
        acc = tl.div_rn(acc, total_y * total_x)
    return acc


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _resized_crop_normalize_kernel(
    table_ptr,
    boxes_ptr,
    mean_ptr,
    std_ptr,
    flip_ptr,
    lam_ptr,
    index_ptr,
    out_ptr,
    n_samples,
    out_h,
    out_w,
    C: tl.constexpr,
    NHWC: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    ANTIALIAS: tl.constexpr,
    HAS_FLIP: tl.constexpr,
    HAS_MIX: tl.constexpr,
    TILE_H: tl.constexpr,
    BLOCK: tl.constexpr,
):
    PIXELS: tl.constexpr = BLOCK // C
    n = tl.program_id(1)
    tiles_x = (out_w - 1) // PIXELS + 1
    tile = tl.program_id(0)
    tile_y = tile // tiles_x
    tile_x = tile - tile_y * tiles_x
    oy = tile_y * TILE_H + tl.arange(0, TILE_H)[:, None]
    p = tl.arange(0, BLOCK)[None, :]
    ox = tile_x * PIXELS + p // C
    c = p % C
    valid_x = (p < PIXELS * C) & (ox < out_w)
    valid = valid_x & (oy < out_h)
    oy = tl.minimum(oy, out_h - 1)  # rows past the end repeat the last one (stores masked)
    ox = tl.minimum(ox, out_w - 1)
    mean = tl.load(mean_ptr + c)
    std = tl.load(std_ptr + c)

    mirrored = tl.zeros((1, 1), tl.uint8)
    if HAS_FLIP:
        mirrored = tl.load(flip_ptr + n)
    r = _resampled_tile(
        table_ptr, boxes_ptr, n, mirrored, oy, ox, c, valid_x, out_h, out_w, C, NHWC, ANTIALIAS
    )
    v = tl.div_rn(tl.div_rn(r, 255.0) - mean, std)
    if HAS_MIX:
        k = tl.load(index_ptr + n)
        mixed = (k >= 0) & (k < n_samples)
        partner = tl.where(mixed, k, n)
        lam = tl.where(mixed, tl.load(lam_ptr + n), 1.0)
        other_mirrored = tl.zeros((1, 1), tl.uint8)
        if HAS_FLIP:
            other_mirrored = tl.load(flip_ptr + partner)
        r2 = _resampled_tile(
            table_ptr, boxes_ptr, partner, other_mirrored, oy, ox, c, valid_x, out_h, out_w,
            C, NHWC, ANTIALIAS,
        )  # fmt: skip
        v2 = tl.div_rn(tl.div_rn(r2, 255.0) - mean, std)
        v = lam * v + (1.0 - lam) * v2
    n64 = n.to(tl.int64)
    if CHANNELS_LAST:
        offset = ((n64 * out_h + oy) * out_w + ox) * C + c
    else:
        offset = ((n64 * C + c) * out_h + oy) * out_w + ox
    out_dtype: tl.constexpr = out_ptr.dtype.element_ty
    if out_dtype == tl.bfloat16 and _EMULATE_BF16:
        v = _bf16_round_even(v)
    tl.store(out_ptr + offset, v.to(out_dtype), mask=valid)


# --- launcher -------------------------------------------------------------------------------


def _check_vector(name, t, length, dtype, device, what):
    if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.shape[0] != length:
        shape = None if not isinstance(t, torch.Tensor) else tuple(t.shape)
        raise ValueError(f"{name} must be ({what},) with {what} = {length}, got {shape}")
    if t.dtype != dtype:
        raise TypeError(f"{name} must be {dtype}, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but the images are on {device}")
    return t.contiguous()


def _image_table(images, nhwc: bool, device: torch.device) -> torch.Tensor:
    """(N, 4) int64 (base address, height, width, 0) on the device, from host metadata only."""
    rows = []
    for im in images:
        h, w = (im.shape[0], im.shape[1]) if nhwc else (im.shape[1], im.shape[2])
        rows.append((im.data_ptr(), h, w, 0))
    table = torch.tensor(rows, dtype=torch.int64)
    if device.type == "cuda":
        # Pinned, so the copy is asynchronous on the current stream; the caching host
        # allocator keeps the buffer until that copy has run.
        return table.pin_memory().to(device, non_blocking=True)
    return table


def resized_crop_normalize_forward(
    images, boxes, out_h, out_w, mean, std, flip, lam, index, nhwc, antialias, out_dtype,
    channels_last,
):  # fmt: skip
    if out_dtype not in _OUT_DTYPES:
        raise ValueError(f"out_dtype must be float32, bfloat16 or float16, got {out_dtype}")
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"out_h and out_w must be positive, got {out_h} and {out_w}")
    if (lam is None) != (index is None):
        raise ValueError("lam and index must be given together (both or neither)")
    if not isinstance(mean, torch.Tensor) or mean.dim() != 1:
        raise ValueError("mean must be a (C,) tensor")
    C = mean.shape[0]
    device = mean.device
    n = len(images)
    images = list(images)
    for i, im in enumerate(images):
        if im.dtype != torch.uint8:
            raise TypeError(f"images[{i}] must be uint8, got {im.dtype}")
        if im.dim() != 3 or im.shape[2 if nhwc else 0] != C:
            dims = "(H, W, C)" if nhwc else "(C, H, W)"
            raise ValueError(
                f"images[{i}] must be {dims} with C = {C} (the length of mean), got "
                f"{tuple(im.shape)}"
            )
        if im.device != device:
            raise ValueError(f"images[{i}] is on {im.device} but mean is on {device}")
        if im.numel() >= 2**31:
            raise ValueError(f"images[{i}] has {im.numel()} values (at most 2**31 - 1)")
        images[i] = im.contiguous()
    mean = _check_vector("mean", mean, C, torch.float32, device, "C")
    std = _check_vector("std", std, C, torch.float32, device, "C")
    if not isinstance(boxes, torch.Tensor) or boxes.shape != (n, 4):
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else None
        raise ValueError(f"boxes must be (N, 4) with N = {n} (the number of images), got {shape}")
    if boxes.dtype != torch.int64:
        raise TypeError(f"boxes must be int64, got {boxes.dtype}")
    if boxes.device != device:
        raise ValueError(f"boxes is on {boxes.device} but the images are on {device}")
    boxes = boxes.contiguous()
    if device.type == "cpu" and n:
        for i, (top, left, h, w) in enumerate(boxes.tolist()):
            H, W = images[i].shape[:2] if nhwc else images[i].shape[1:]
            if not (h >= 1 and w >= 1 and 0 <= top <= H - h and 0 <= left <= W - w):
                raise ValueError(
                    f"boxes[{i}] = {(top, left, h, w)} must be non-empty and inside images[{i}] "
                    f"of {H} x {W} pixels"
                )
    if flip is not None:
        flip = _check_vector("flip", flip, n, torch.bool, device, "N").view(torch.uint8)
    if lam is not None:
        lam = _check_vector("lam", lam, n, torch.float32, device, "N")
        index = _check_vector("index", index, n, torch.int64, device, "N")
        if device.type == "cpu" and n and bool(((index < 0) | (index >= n)).any()):
            raise IndexError(f"index values must lie in [0, {n})")
    if C > _BLOCK:
        raise ValueError(f"at most {_BLOCK} channels, got {C}")
    context = device_context(device, "resized_crop_normalize")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(
        (n, C, out_h, out_w), dtype=out_dtype, device=device, memory_format=memory_format
    )
    if n == 0:
        return out
    pixels = _BLOCK // C
    tiles = triton.cdiv(out_h, _TILE_H) * triton.cdiv(out_w, pixels)
    if n > 65535:
        raise ValueError(f"at most 65535 images per call, got {n}")
    with context:
        table = _image_table(images, nhwc, device)
        _resized_crop_normalize_kernel[(tiles, n)](
            table, boxes, mean, std,
            flip if flip is not None else mean,  # unread when HAS_FLIP is False
            lam if lam is not None else mean,
            index if index is not None else mean,
            out, n, out_h, out_w,
            C=C, NHWC=bool(nhwc), CHANNELS_LAST=bool(channels_last), ANTIALIAS=bool(antialias),
            HAS_FLIP=flip is not None, HAS_MIX=lam is not None,
            TILE_H=_TILE_H, BLOCK=_BLOCK, num_warps=_NUM_WARPS,
            enable_fp_fusion=_ENABLE_FP_FUSION,
        )  # fmt: skip
    # The table's addresses are read by the kernel: keep the images alive until it has run.
    # (The caller holds them; `images` here is the caller's list or contiguous copies of it.)
    _keep_alive(out, images)
    return out


def _keep_alive(out: torch.Tensor, images: list) -> None:
    """Contiguous copies made above must outlive the kernel: on CUDA, tell the caching
    allocator they are used on the current stream (their memory is not reused before the
    kernel has run)."""
    if out.device.type != "cuda":
        return
    stream = torch.cuda.current_stream(out.device)
    for im in images:
        im.record_stream(stream)


register({_library.RESIZED_CROP_NORMALIZE: resized_crop_normalize_forward})
