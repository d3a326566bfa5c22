"""Pure-PyTorch resized crop + flip + normalize (+ mixup): the test oracle and the fallback.

The formula, per image i with box (top, left, height, width) and output size (oh, ow); every
backend computes it, in float32:

1. region = image[top:top+height, left:left+width] as float, x / 255 (C channels).
2. Resize separably, one axis at a time (y then x here, ATen x then y: the order changes
   float32 rounding only), with align_corners=False. Along an axis with ``n_in`` source pixels (the
   box's height or width) and ``n_out`` output pixels, scale = float32(n_in) / n_out in
   float32, and output pixel k is sum_j w_kj * region_j over the taps j below:

   - antialias and scale >= 1 (a downscale, or no scaling): ATen's antialiased bilinear, the
     filter of ``F.interpolate(mode="bilinear", antialias=True)``: support = scale,
     center = scale * (k + 0.5) (float32), taps j in [max(int(center - support + 0.5), 0),
     min(int(center + support + 0.5), n_in)), w_kj = max(0, 1 - |(j - center + 0.5) / scale|),
     then divided by their sum (``int`` truncates toward zero).
   - otherwise (antialias off, or an upscale): plain bilinear,
     src = max(scale * (k + 0.5) - 0.5, 0) rounded once to float32 (a fused multiply-add, as
     ATen's compiled kernels compute it), j0 = int(src), j1 = min(j0 + 1, n_in - 1),
     w = (1 - (src - j0), src - j0). On an upscale with antialias, ATen runs the first filter
     with support 1 instead of scale; its normalized weights are these (the reference uses
     that form; the two agree to float32 rounding).

   This is what torchvision's ``transforms.v2.functional.resized_crop(image, top, left,
   height, width, [oh, ow], antialias=antialias)`` computes on the float image (it crops, then
   calls ``F.interpolate``): float32 results agree to about 1e-6. The filter never reads
   outside the box: taps past its edges are dropped and the remaining weights renormalized, as
   ATen does at the image edges. One known difference: ATen's CPU antialiased kernel gives
   every output row the first row's value when the output width is 1; this formula does not.
3. Mirror along W where flip[i] is set.
4. v = (v - mean_c) / std_c.
5. With mixup: out_i = lam_i v_i + (1 - lam_i) v_index[i] (as normalize_images blends).
6. One rounding to out_dtype; (N, C, oh, ow), channels_last in memory when asked.

The taps and weights are computed on the device from the boxes (no box value is read on the
host), with a tap count bounded by each image's size, so this runs without a host sync and
under torch.compile.
"""

from __future__ import annotations

import math

import torch

# Gathered float32 values per chunk of images (bounds the fallback's temporary memory).
_CHUNK_ELEMENTS = 1 << 25


def max_taps(n_image: int, n_out: int, antialias: bool) -> int:
    """An upper bound on the taps of one output pixel along an axis of ``n_image`` pixels (the
    box is at most the image) resized to ``n_out``."""
    if not antialias:
        return 2
    scale = max(n_image / n_out, 1.0)
    return min(int(math.ceil(2.0 * scale)) + 2, n_image + 1)


def resize_taps(
    start: torch.Tensor, length: torch.Tensor, n_out: int, n_image: int, antialias: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Taps of one axis for a group of boxes: ``start`` and ``length`` (G,) int64 (the box's
    top and height, or left and width). Returns (index, weight), both (G, n_out, K): absolute
    pixel indices into the image (taps past the box have weight 0 and a clamped index) and
    float32 weights summing to 1 over K. Positions are float32 as in ATen (see the module
    docstring): float64 here only holds the exact product before its one rounding."""
    device = start.device
    f32, f64 = torch.float32, torch.float64
    length_f = length.to(f32).unsqueeze(1)  # (G, 1)
    scale = length_f / n_out  # float32 division, as ATen's area_pixel_compute_scale
    k = torch.arange(n_out, dtype=f64, device=device) + 0.5
    if antialias:
        taps = max_taps(n_image, n_out, True)
        center = (scale * k.to(f32)).unsqueeze(-1)  # (G, n_out, 1), box coordinates
        support = scale.clamp(min=1.0).unsqueeze(-1)
        lo = torch.floor(center - support + 0.5).clamp(min=0.0)  # == max(int(.), 0)
        hi = torch.minimum(torch.floor(center + support + 0.5), length_f.unsqueeze(-1))
        j = lo + torch.arange(taps, dtype=f32, device=device)
        weight = (1.0 - ((j - center + 0.5) * (1.0 / support)).abs()).clamp(min=0.0)
        weight = torch.where(j < hi, weight, 0.0)
        weight = weight / weight.sum(-1, keepdim=True)
    else:
        # scale * (k + 0.5) - 0.5 with one rounding (the fused multiply-add ATen compiles to)
        src = (scale.to(f64) * k - 0.5).to(f32).clamp(min=0.0)
        j0 = torch.floor(src)
        frac = src - j0
        j1 = torch.minimum(j0 + 1.0, length_f - 1.0)
        j = torch.stack((j0, j1), dim=-1)
        weight = torch.stack((1.0 - frac, frac), dim=-1)
    index = (j.to(torch.int64) + start.view(-1, 1, 1)).clamp(max=n_image - 1)
    return index, weight


def _resize_group(
    images: torch.Tensor, boxes: torch.Tensor, out_h: int, out_w: int, antialias: bool
) -> torch.Tensor:
    """images uint8 (G, H, W, C), boxes (G, 4) -> float32 (G, C, out_h, out_w): steps 1 and 2
    of the module docstring, the y pass first (it leaves out_h rows for the x pass). Each pass
    copies whole rows of taps (index_select), then weighs and sums them."""
    g, height, width, c = images.shape
    top, left, box_h, box_w = boxes.unbind(1)
    iy, wy = resize_taps(top, box_h, out_h, height, antialias)  # (G, out_h, Ky)
    ix, wx = resize_taps(left, box_w, out_w, width, antialias)  # (G, out_w, Kx)
    ky, kx = iy.shape[-1], ix.shape[-1]
    base = torch.arange(g, device=images.device).view(g, 1, 1)
    scale = torch.full((), 255.0, dtype=torch.float32, device=images.device)
    rows = images.reshape(g * height, width * c).index_select(0, (iy + base * height).view(-1))
    v = rows.to(torch.float32).div(scale).view(g, out_h, ky, width, c)
    v = (v * wy.view(g, out_h, ky, 1, 1)).sum(2)  # along y: (G, out_h, W, C)
    v = v.transpose(1, 2).reshape(g * width, out_h * c)  # rows are now columns of the image
    cols = v.index_select(0, (ix + base * width).view(-1)).view(g, out_w, kx, out_h, c)
    v = (cols * wx.view(g, out_w, kx, 1, 1)).sum(2)  # along x: (G, out_w, out_h, C)
    return v.permute(0, 3, 2, 1)


def resized_crop_normalize_forward(
    images: list[torch.Tensor],
    boxes: torch.Tensor,
    out_h: int,
    out_w: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    flip: torch.Tensor | None,
    lam: torch.Tensor | None,
    index: torch.Tensor | None,
    nhwc: bool,
    antialias: bool,
    out_dtype: torch.dtype,
    channels_last: bool,
) -> torch.Tensor:
    """The op's reference: see the module docstring. images: N uint8 (H_i, W_i, C) (nhwc) or
    (C, H_i, W_i) tensors; boxes (N, 4) int64 rows (top, left, height, width), inside image i
    and non-empty (not checked here)."""
    if (lam is None) != (index is None):
        raise ValueError("lam and index must be given together")
    n = len(images)
    channels = mean.shape[0]
    device = boxes.device
    hwc = [im if nhwc else im.permute(1, 2, 0) for im in images]
    parts = []
    start = 0
    while start < n:
        # consecutive images of one size resize together, in chunks of bounded memory
        size = tuple(hwc[start].shape)
        ky = max_taps(size[0], out_h, antialias)
        kx = max_taps(size[1], out_w, antialias)
        per_image = size[2] * (out_h * ky * size[1] + size[1] * out_h + out_w * kx * out_h)
        limit = max(1, _CHUNK_ELEMENTS // max(per_image, 1))
        stop = start + 1
        while stop < n and stop - start < limit and tuple(hwc[stop].shape) == size:
            stop += 1
        group = torch.stack(hwc[start:stop]) if stop - start > 1 else hwc[start].unsqueeze(0)
        parts.append(_resize_group(group, boxes[start:stop], out_h, out_w, antialias))
        start = stop
    if parts:
        v = torch.cat(parts) if len(parts) > 1 else parts[0]
    else:
        v = torch.empty((0, channels, out_h, out_w), dtype=torch.float32, device=device)
    if flip is not None:
        v = torch.where(flip.view(-1, 1, 1, 1), v.flip(3), v)
    v = v.sub(mean.to(torch.float32).view(1, -1, 1, 1))
    v = v.div(std.to(torch.float32).view(1, -1, 1, 1))
    if lam is not None:
        lam_b = lam.to(torch.float32).view(-1, 1, 1, 1)
        v = lam_b * v + (1 - lam_b) * v[index]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return v.to(out_dtype).contiguous(memory_format=memory_format)
