"""Crop boxes for :func:`cookbook_ops.resized_crop_normalize`, drawn or computed on the device.

- :func:`random_resized_crop_boxes`: torchvision's ``RandomResizedCrop.get_params`` for a whole
  batch at once: the 10 tries of every image are drawn together and the first one that fits is
  taken (else the centre fallback), with tensor ops only: no ``.item()``, no host sync.
- :func:`center_crop_boxes`: the source region that ``Resize(resize)`` then
  ``CenterCrop(crop)`` keeps, as the integer box nearest to it.

Boxes are int64 (N, 4) rows (top, left, height, width), torchvision's (i, j, h, w).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["center_crop_boxes", "random_resized_crop_boxes"]

TRIES = 10


def _sizes_tensor(image_sizes, device) -> torch.Tensor:
    """image_sizes as an int64 (N, 2) tensor on ``device`` (default: its own, or the CPU)."""
    if isinstance(image_sizes, torch.Tensor):
        if image_sizes.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"image_sizes must be an int64 tensor, got {image_sizes.dtype}")
        if image_sizes.dim() != 2 or image_sizes.shape[1] != 2:
            raise ValueError(
                f"image_sizes must have shape (N, 2) of (H, W) rows, got {tuple(image_sizes.shape)}"
            )
        sizes = image_sizes.to(torch.int64)
        if device is not None and sizes.device != torch.device(device):
            sizes = sizes.to(device)
    elif isinstance(image_sizes, Sequence) and not isinstance(image_sizes, str):
        rows = [tuple(r) if isinstance(r, Sequence) else r for r in image_sizes]
        if not all(
            isinstance(r, tuple)
            and len(r) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
            for r in rows
        ):
            raise TypeError("image_sizes must be an (N, 2) int64 tensor or a list of (H, W) ints")
        sizes = torch.tensor(rows, dtype=torch.int64).view(len(rows), 2)
        if device is not None:
            sizes = sizes.to(device)
    else:
        raise TypeError(
            "image_sizes must be an (N, 2) int64 tensor or a list of (H, W) ints, got "
            f"{type(image_sizes).__name__}"
        )
    if sizes.device.type == "cpu" and not torch.compiler.is_compiling() and sizes.numel():
        if bool((sizes <= 0).any()):
            raise ValueError(f"image_sizes must be positive, got {sizes.tolist()}")
    return sizes


def _pair_of_floats(value, name: str) -> tuple[float, float]:
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{name} must be a (min, max) pair of floats, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not lo <= hi:
        raise ValueError(f"{name} must be (min, max) with min <= max, got {value!r}")
    return lo, hi


def random_resized_crop_boxes(
    image_sizes,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    *,
    generator: torch.Generator | None = None,
    device=None,
) -> torch.Tensor:
    """RandomResizedCrop's boxes for a batch: int64 (N, 4) rows (top, left, height, width).

    image_sizes: int64 (N, 2) rows (H_i, W_i) (or a list of pairs). Per image, with the
    distribution of ``torchvision.transforms.RandomResizedCrop.get_params``: up to 10 tries of
    an area fraction ~ U(scale) and a log aspect ratio ~ U(log ratio),
    w = round(sqrt(area * ratio)), h = round(sqrt(area / ratio)); the first try with
    0 < w <= W and 0 < h <= H is placed uniformly (top ~ U{0..H-h}, left ~ U{0..W-w}); if none
    fits, the centred crop of the whole image clamped to the ratio range (and to at least one
    pixel, where torchvision's would be empty). All draws happen on
    ``device`` (default: that of ``image_sizes``) from ``generator`` (a ``torch.Generator`` on
    that device, or the default one), all 10 tries at once: nothing waits for the device. The
    same generator state gives the same boxes.
    """
    scale_lo, scale_hi = _pair_of_floats(scale, "scale")
    ratio_lo, ratio_hi = _pair_of_floats(ratio, "ratio")
    if scale_lo < 0:
        raise ValueError(f"scale must be non-negative, got {scale!r}")
    if ratio_lo <= 0:
        raise ValueError(f"ratio must be positive, got {ratio!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    sizes = _sizes_tensor(image_sizes, device)
    dev = sizes.device
    if generator is not None and generator.device.type != dev.type:
        raise ValueError(
            f"generator is on {generator.device} but the boxes are drawn on {dev}: create it "
            "with torch.Generator(device=...) on that device"
        )
    n = sizes.shape[0]
    height = sizes[:, 0:1].to(torch.float64)  # (N, 1)
    width = sizes[:, 1:2].to(torch.float64)
    # One draw of everything: 10 tries of (area fraction, log ratio) and the two offsets.
    u = torch.rand((n, 2 * TRIES + 2), generator=generator, device=dev, dtype=torch.float64)
    area = height * width * (scale_lo + (scale_hi - scale_lo) * u[:, :TRIES])
    log_lo, log_hi = math.log(ratio_lo), math.log(ratio_hi)
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, TRIES : 2 * TRIES])
    w = torch.round(torch.sqrt(area * aspect))  # round half to even, as Python's round
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (N, 10)
    # The first try that fits (argmax of the first True; 0 when none does).
    first = torch.argmax(fits.to(torch.int32), dim=1, keepdim=True)
    found = fits.any(dim=1)
    h_try = h.gather(1, first).squeeze(1)
    w_try = w.gather(1, first).squeeze(1)
    height, width = height.squeeze(1), width.squeeze(1)
    # Fallback: the whole image, clamped to the ratio range, centred.
    in_ratio = width / height
    narrow = in_ratio < ratio_lo
    wide = in_ratio > ratio_hi
    # (at least one pixel: torchvision's fallback rounds a 1-pixel-wide image with ratio >= 2 to
    # an empty box, which no crop can use)
    w_fb = torch.where(wide, torch.round(height * ratio_hi), width).clamp(min=1)
    h_fb = torch.where(narrow, torch.round(width / ratio_lo), height).clamp(min=1)
    h_box = torch.where(found, h_try, h_fb)
    w_box = torch.where(found, w_try, w_fb)
    # Uniform integer offsets in [0, H - h] and [0, W - w]; the fallback is centred.
    top_rand = torch.floor(u[:, 2 * TRIES] * (height - h_box + 1)).clamp(max=height - h_box)
    left_rand = torch.floor(u[:, 2 * TRIES + 1] * (width - w_box + 1)).clamp(max=width - w_box)
    top = torch.where(found, top_rand, torch.floor((height - h_box) / 2))
    left = torch.where(found, left_rand, torch.floor((width - w_box) / 2))
    return torch.stack((top, left, h_box, w_box), dim=1).to(torch.int64)


def _size_pair(value, name: str) -> tuple[int, int] | int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
        return value
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) in (1, 2)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        if any(v <= 0 for v in value):
            raise ValueError(f"{name} must be positive, got {value!r}")
        return value[0] if len(value) == 1 else (value[0], value[1])
    raise TypeError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")


def center_crop_boxes(image_sizes, resize, crop) -> torch.Tensor:
    """The source boxes that ``Resize(resize)`` then ``CenterCrop(crop)`` keep: int64 (N, 4)
    rows (top, left, height, width) on the device of ``image_sizes``.

    resize: an int (the shorter edge becomes ``resize``, the longer ``int(resize * long /
    short)``, as torchvision's Resize) or an (h, w) pair; crop: an int or an (h, w) pair, at
    most the resized size. The crop keeps the resized rows [t, t + crop_h) with
    t = round((rh - crop_h) / 2), i.e. source rows [t * H / rh, (t + crop_h) * H / rh):
    fractional in general. The box is the integer one nearest to that region (both edges
    rounded to the nearest pixel), so resizing it to the crop size reproduces the chain exactly
    when the region's edges are whole pixels, and otherwise samples positions within half a
    source pixel of the chain's (the residual; tests/test_crop_boxes.py measures it on smooth
    images). The crop is clamped to the resized image (torchvision would pad); on CPU tensors
    a crop larger than the resized image raises ValueError.
    """
    resize = _size_pair(resize, "resize")
    crop = _size_pair(crop, "crop")
    crop_h, crop_w = (crop, crop) if isinstance(crop, int) else crop
    sizes = _sizes_tensor(image_sizes, None)
    height = sizes[:, 0].to(torch.float64)
    width = sizes[:, 1].to(torch.float64)
    if isinstance(resize, int):
        short = torch.minimum(height, width)
        long = torch.maximum(height, width)
        new_long = torch.floor(resize * long / short)
        # torchvision: the width is the short edge when w <= h
        rh = torch.where(width <= height, new_long, torch.full_like(height, resize))
        rw = torch.where(width <= height, torch.full_like(width, resize), new_long)
    else:
        rh = torch.full_like(height, resize[0])
        rw = torch.full_like(width, resize[1])
    if sizes.device.type == "cpu" and not torch.compiler.is_compiling() and sizes.numel():
        if bool(((rh < crop_h) | (rw < crop_w)).any()):
            i = int(((rh < crop_h) | (rw < crop_w)).nonzero()[0, 0])
            raise ValueError(
                f"crop {crop_h}x{crop_w} is larger than the resized image "
                f"{int(rh[i])}x{int(rw[i])} of image {i} ({sizes[i].tolist()})"
            )

    def axis(n_src, n_resized, n_crop):
        anchor = torch.round((n_resized - n_crop) / 2).clamp(min=0)  # CenterCrop's
        step = n_src / n_resized  # source pixels per resized pixel
        # The region's edges rounded to whole pixels: each within half a pixel.
        first = torch.round(anchor * step).clamp(min=0)
        last = torch.minimum(torch.round((anchor + n_crop) * step), n_src)
        first = torch.minimum(first, last - 1).clamp(min=0)
        return first, torch.maximum(last - first, torch.ones_like(last))

    top, box_h = axis(height, rh, crop_h)
    left, box_w = axis(width, rw, crop_w)
    return torch.stack((top, left, box_h, box_w), dim=1).to(torch.int64)
