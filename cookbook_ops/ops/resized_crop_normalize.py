"""Public resized-crop + flip + normalize (+ mixup) op: argument checks, fake kernel, backend
choice.

The cookbook's train transform (RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize)
and val transform (Resize, CenterCrop, ToTensor, Normalize) for a whole batch of uint8 images
in one op: each output value is resampled from the uint8 source box, flipped, normalized,
blended and rounded once. Images of different sizes go in as a list; the boxes come from
:func:`cookbook_ops.random_resized_crop_boxes` or :func:`cookbook_ops.center_crop_boxes`. The
formula is written out in :mod:`cookbook_ops.reference.resized_crop_normalize`.

Not differentiable (uint8 input). Nothing here syncs with the host on a GPU: the box checks
that read values run on CPU tensors only, and mean/std reach the device through
normalize_images' cache of non-blocking copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cookbook_ops import _backend, _library
from cookbook_ops._checks import check_cpu_values
from cookbook_ops._image_args import (
    LAYOUTS,
    channel_constants,
    check_flip,
    check_mixup,
    check_output_format,
    fake_output,
)
from cookbook_ops.reference.resized_crop_normalize import (
    resized_crop_normalize_forward as reference_forward,
)

__all__ = ["resized_crop_normalize"]

OP = _library.RESIZED_CROP_NORMALIZE

# --- fake kernel -----------------------------------------------------------------------------


def _fake(
    images, boxes, out_h, out_w, mean, std, flip, lam, index, nhwc, antialias, out_dtype,
    channels_last,
):  # fmt: skip
    n = len(images)
    channels = mean.shape[0]
    torch._check(boxes.shape == (n, 4), lambda: f"boxes must be ({n}, 4), got {tuple(boxes.shape)}")
    torch._check(
        out_h > 0 and out_w > 0, lambda: f"output size must be positive, got {out_h}x{out_w}"
    )
    for i, image in enumerate(images):
        torch._check(image.dim() == 3, lambda i=i: f"images[{i}] must be 3-D")
        torch._check(image.dtype == torch.uint8, lambda i=i: f"images[{i}] must be uint8")
        c = image.shape[2] if nhwc else image.shape[0]
        torch._check(c == channels, lambda i=i: f"images[{i}] must have {channels} channels")
    torch._check(std.shape == (channels,), lambda: f"std must be ({channels},)")
    return fake_output(mean, n, channels, out_h, out_w, flip, lam, index, out_dtype, channels_last)


_library.register(OP, _fake, reference=reference_forward)


# --- argument checks -----------------------------------------------------------------------


def output_size(size, name: str = "size") -> tuple[int, int]:
    """An int or an (h, w) pair of positive ints as (h, w); an int means a square, as
    RandomResizedCrop(size) takes it."""
    if isinstance(size, int) and not isinstance(size, bool):
        pair = (size, size)
    elif (
        isinstance(size, Sequence)
        and not isinstance(size, str)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in size)
    ):
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"{name} must be an int or an (h, w) pair of ints, got {size!r}")
    if pair[0] <= 0 or pair[1] <= 0:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return pair


def image_list(images, layout: str) -> tuple[list[torch.Tensor], torch.device, int]:
    """The images as a list of contiguous uint8 (H, W, C) / (C, H, W) tensors, their device and
    their channel count. A 4-D batch is split into its N views (no copy when contiguous)."""
    nhwc = layout == "NHWC"
    per_image = "(H, W, C)" if nhwc else "(C, H, W)"
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8 (0..255 pixel values), got {images.dtype}")
        if images.dim() != 4:
            batch = "(N, H, W, C)" if nhwc else "(N, C, H, W)"
            raise ValueError(
                f"images must be {batch} for layout={layout!r} (or a list of {per_image} "
                f"images), got shape {tuple(images.shape)}"
            )
        channels = images.shape[3] if nhwc else images.shape[1]
        return list(images.contiguous().unbind(0)), images.device, channels
    if not isinstance(images, (list, tuple)):
        raise TypeError(
            f"images must be a uint8 tensor or a list of uint8 tensors, got {type(images).__name__}"
        )
    if len(images) == 0:
        raise ValueError("images must hold at least one image (an empty list has no device)")
    out = []
    device = channels = None
    for i, image in enumerate(images):
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"images[{i}] must be a torch.Tensor, got {type(image).__name__}")
        if image.dtype != torch.uint8:
            raise TypeError(f"images[{i}] must be uint8 (0..255 pixel values), got {image.dtype}")
        if image.dim() != 3:
            raise ValueError(
                f"images[{i}] must be {per_image} for layout={layout!r}, got shape "
                f"{tuple(image.shape)}"
            )
        c = image.shape[2] if nhwc else image.shape[0]
        if device is None:
            device, channels = image.device, c
        elif image.device != device:
            raise ValueError(
                f"images[{i}] is on {image.device} but images[0] is on {device}: every image "
                "of a batch must be on one device"
            )
        elif c != channels:
            raise ValueError(
                f"images[{i}] has {c} channels but images[0] has {channels}: every image of a "
                "batch must have the same channels"
            )
        out.append(image.contiguous())
    return out, device, channels


def image_sizes(images: list[torch.Tensor], nhwc: bool) -> list[tuple[int, int]]:
    """(H_i, W_i) of each image, from the shapes (no tensor is read)."""
    return [(im.shape[0], im.shape[1]) if nhwc else (im.shape[1], im.shape[2]) for im in images]


def check_boxes(boxes, sizes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """boxes as a contiguous int64 (N, 4) tensor on ``device``; on CPU tensors also that every
    box is non-empty and inside its image (eagerly a ValueError naming the first bad box,
    compiled a graph assertion; on a GPU the check would sync and is skipped)."""
    n = len(sizes)
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(
            f"boxes must be an int64 tensor of (top, left, height, width) rows, got "
            f"{type(boxes).__name__}"
        )
    if boxes.dtype != torch.int64:
        raise TypeError(f"boxes must be int64 (top, left, height, width) rows, got {boxes.dtype}")
    if boxes.shape != (n, 4):
        raise ValueError(f"boxes must have shape ({n}, 4) for {n} images, got {tuple(boxes.shape)}")
    if boxes.device != device:
        raise ValueError(f"boxes is on {boxes.device} but images is on {device}")

    def _inside():
        hw = torch.tensor(sizes, dtype=torch.int64).view(n, 2)
        top, left, height, width = boxes.unbind(1)
        return (
            (top >= 0)
            & (left >= 0)
            & (height > 0)
            & (width > 0)
            & (top + height <= hw[:, 0])
            & (left + width <= hw[:, 1])
        )

    def _first_bad(ok):
        i = int((~ok).nonzero()[0, 0])
        return f" (boxes[{i}] = {boxes[i].tolist()} in an image of {sizes[i][0]}x{sizes[i][1]})"

    check_cpu_values(
        _inside,
        boxes.device,
        ValueError,
        "boxes must be non-empty and inside their images (need top, left >= 0, height, "
        "width > 0, top + height <= H and left + width <= W)",
        _first_bad,
    )
    return boxes.contiguous()


# --- public API ----------------------------------------------------------------------------


def resized_crop_normalize(
    images,
    boxes: torch.Tensor,
    size,
    mean,
    std,
    *,
    layout: str = "NHWC",
    flip: torch.Tensor | None = None,
    mixup=None,
    antialias: bool = True,
    out_dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
    backend: str = "auto",
) -> torch.Tensor:
    """Per image, torchvision's ``resized_crop`` + ``hflip`` + ``ToTensor`` + ``Normalize``
    (+ the mixup blend) for a whole batch of uint8 images in one op.

    images: uint8, one (N, H, W, C) (``layout="NHWC"``) or (N, C, H, W) (``"NCHW"``) tensor, or
    a list of N (H_i, W_i, C) / (C, H_i, W_i) tensors of different sizes (as
    :func:`cookbook_ops.recipe.data.collate_uint8_list` yields them), all on one device.
    boxes: int64 (N, 4) rows (top, left, height, width), torchvision's (i, j, h, w), each
    non-empty and inside its image. size: the output (h, w), or an int for a square.
    mean, std, flip, mixup, out_dtype, memory_format: as :func:`cookbook_ops.normalize_images`.

    Returns (N, C, h, w): per image,
    ``torchvision.transforms.v2.functional.resized_crop(x / 255, top, left, height, width,
    [h, w], antialias=antialias)`` on the float image, mirrored where ``flip`` is set, then
    ``(v - mean) / std`` and the blend, in float32, rounded once to ``out_dtype``. Not
    differentiable (uint8 input).
    """
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    nhwc = layout == "NHWC"
    if isinstance(antialias, torch.Tensor) or not isinstance(antialias, bool):
        raise TypeError(f"antialias must be a bool, got {type(antialias).__name__}")
    out_h, out_w = output_size(size)
    check_output_format(out_dtype, memory_format)
    if isinstance(images, torch.Tensor) and images.dim() == 4 and images.shape[0] == 0:
        # An empty batch: checked like any other, then nothing to compute.
        channels = images.shape[3] if nhwc else images.shape[1]
        image_list(images, layout)
        check_boxes(boxes, [], images.device)
        channel_constants(mean, "mean", channels, images.device)
        channel_constants(std, "std", channels, images.device)
        out = torch.empty((0, channels, out_h, out_w), dtype=out_dtype, device=images.device)
        return out.contiguous(memory_format=memory_format)
    views, device, channels = image_list(images, layout)
    n = len(views)
    boxes_t = check_boxes(boxes, image_sizes(views, nhwc), device)
    mean_t = channel_constants(mean, "mean", channels, device)
    std_t = channel_constants(std, "std", channels, device)
    flip_t = None if flip is None else check_flip(flip, n, device)
    lam_t = index_t = None
    if mixup is not None:
        # normalize_images' checks take the batch for its size, device and dtype (uint8)
        lam_t, index_t = check_mixup(mixup, torch.empty((n, 0), dtype=torch.uint8, device=device))
    channels_last = memory_format == torch.channels_last

    chosen = _backend.resolve_backend(backend, device, OP)
    args = (
        views, boxes_t, out_h, out_w, mean_t, std_t, flip_t, lam_t, index_t, nhwc, antialias,
        out_dtype, channels_last,
    )  # fmt: skip
    if chosen == "reference":
        return reference_forward(*args)
    return _library.op_for(OP, chosen)(*args)
