"""The cookbook's train and val input transforms for whole uint8 batches on their device:
RandomResizedCrop + RandomHorizontalFlip + ToTensor + Normalize, and Resize + CenterCrop +
ToTensor + Normalize, each one :func:`cookbook_ops.resized_crop_normalize` call."""

from __future__ import annotations

import torch
from torch import nn

from cookbook_ops._image_args import (
    LAYOUTS,
    check_output_format,
    module_constants,
)
from cookbook_ops.nn.normalize import NormalizeImages
from cookbook_ops.ops.crop_boxes import (
    _pair_of_floats,
    center_crop_boxes,
    random_resized_crop_boxes,
)
from cookbook_ops.ops.resized_crop_normalize import output_size, resized_crop_normalize

__all__ = ["RandomResizedCropNormalize", "ResizeCenterCropNormalize"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def batch_image_sizes(images, layout: str) -> torch.Tensor:
    """(N, 2) int64 (H_i, W_i) of a uint8 batch (one 4-D tensor or a list of 3-D tensors) on
    its device, made without waiting for the device: filled there for a tensor batch, copied
    from pinned memory with non_blocking=True for a list."""
    nhwc = layout == "NHWC"
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            return torch.empty((0, 2), dtype=torch.int64)  # the op names the problem
        n, device = images.shape[0], images.device
        h, w = (images.shape[1], images.shape[2]) if nhwc else (images.shape[2], images.shape[3])
        sizes = torch.empty((n, 2), dtype=torch.int64, device=device)
        sizes[:, 0] = h  # fills on the device: no copy from the host
        sizes[:, 1] = w
        return sizes
    if not isinstance(images, (list, tuple)) or not images:
        return torch.empty((0, 2), dtype=torch.int64)
    if not all(isinstance(im, torch.Tensor) and im.dim() == 3 for im in images):
        return torch.empty((len(images), 2), dtype=torch.int64)  # the op names the problem
    sizes = [(im.shape[0], im.shape[1]) if nhwc else (im.shape[1], im.shape[2]) for im in images]
    device = images[0].device
    cpu = torch.tensor(sizes, dtype=torch.int64)
    if device.type == "cuda" and not torch.compiler.is_compiling():
        return cpu.pin_memory().to(device, non_blocking=True)
    return cpu.to(device)


class _CropNormalize(nn.Module):
    """What the two transforms share: the output options and the mean/std buffers."""

    def __init__(self, mean, std, layout, antialias, out_dtype, memory_format, backend):
        super().__init__()
        if not isinstance(layout, str) or layout not in LAYOUTS:
            raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
        if not isinstance(antialias, bool):
            raise TypeError(f"antialias must be a bool, got {type(antialias).__name__}")
        check_output_format(out_dtype, memory_format)
        mean_t, std_t = module_constants(mean, std)
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)
        self.layout = layout
        self.antialias = antialias
        self.out_dtype = out_dtype
        self.memory_format = memory_format
        self.backend = backend

    def _apply_boxes(self, images, boxes, flip=None, mixup=None) -> torch.Tensor:
        return resized_crop_normalize(
            images,
            boxes,
            self.size,
            self.mean,
            self.std,
            layout=self.layout,
            flip=flip,
            mixup=mixup,
            antialias=self.antialias,
            out_dtype=self.out_dtype,
            memory_format=self.memory_format,
            backend=self.backend,
        )

    def _options_repr(self) -> str:
        return (
            f"mean={self.mean.tolist()}, std={self.std.tolist()}, layout={self.layout!r}, "
            f"antialias={self.antialias}, out_dtype={self.out_dtype}, "
            f"memory_format={self.memory_format}"
        )


class RandomResizedCropNormalize(_CropNormalize):
    """``RandomResizedCrop(size, scale, ratio)`` + ``RandomHorizontalFlip(flip_prob)`` +
    ``ToTensor()`` + ``Normalize(mean, std)`` for a whole uint8 batch, in one op on its device.

    forward(images, mixup=None): images uint8, one (N, H, W, C) tensor (``layout="NHWC"``) or
    (N, C, H, W), or a list of differently sized (H_i, W_i, C) / (C, H_i, W_i) tensors
    (:func:`cookbook_ops.recipe.data.collate_uint8_list`); mixup an optional ``(lam, index)``
    pair. Returns (N, C, *size) in ``out_dtype`` and ``memory_format``.

    Boxes (:func:`cookbook_ops.random_resized_crop_boxes`) and flips are drawn on the images'
    device from ``generator`` (on that device) or the default generator, boxes first: nothing
    waits for the device. Like the torchvision transforms it is random in eval mode too (use
    :class:`ResizeCenterCropNormalize` for evaluation). mean/std are non-persistent buffers.
    """

    def __init__(
        self,
        size=224,
        scale=(0.08, 1.0),
        ratio=(3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        layout: str = "NHWC",
        antialias: bool = True,
        out_dtype: torch.dtype = torch.float32,
        memory_format: torch.memory_format = torch.contiguous_format,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ):
        super().__init__(mean, std, layout, antialias, out_dtype, memory_format, backend)
        self.size = output_size(size)
        self.scale = _pair_of_floats(scale, "scale")
        self.ratio = _pair_of_floats(ratio, "ratio")
        if self.scale[0] < 0:
            raise ValueError(f"scale must be non-negative, got {scale!r}")
        if self.ratio[0] <= 0:
            raise ValueError(f"ratio must be positive, got {ratio!r}")
        if isinstance(flip_prob, bool) or not isinstance(flip_prob, (int, float)):
            raise TypeError(f"flip_prob must be a float in [0, 1], got {type(flip_prob).__name__}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.flip_prob = float(flip_prob)
        self.generator = generator

    def boxes(self, images) -> torch.Tensor:
        """This batch's crop boxes, drawn on its device (the next draw of the generator)."""
        return random_resized_crop_boxes(
            batch_image_sizes(images, self.layout),
            self.scale,
            self.ratio,
            generator=self.generator,
        )

    def flip_mask(self, n: int, device: torch.device) -> torch.Tensor | None:
        """The per-sample flip mask, drawn on ``device`` (None: no flips), as NormalizeImages."""
        return NormalizeImages.flip_mask(self, n, device)

    def forward(self, images, mixup=None) -> torch.Tensor:
        boxes = self.boxes(images)
        flip = self.flip_mask(boxes.shape[0], boxes.device)
        return self._apply_boxes(images, boxes, flip, mixup)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"flip_prob={self.flip_prob}, " + self._options_repr()
        )


class ResizeCenterCropNormalize(_CropNormalize):
    """``Resize(resize)`` + ``CenterCrop(crop)`` + ``ToTensor()`` + ``Normalize(mean, std)``
    for a whole uint8 batch, in one op on its device (the evaluation transform).

    forward(images): as :class:`RandomResizedCropNormalize`, without randomness. The source
    box of each image is :func:`cookbook_ops.center_crop_boxes` (the integer box nearest to the
    region the chain keeps, resized straight to ``crop``: equal to the chain where that region
    has whole-pixel edges, within a sub-pixel shift of it otherwise).
    """

    def __init__(
        self,
        resize=224,
        crop=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        layout: str = "NHWC",
        antialias: bool = True,
        out_dtype: torch.dtype = torch.float32,
        memory_format: torch.memory_format = torch.contiguous_format,
        backend: str = "auto",
    ):
        super().__init__(mean, std, layout, antialias, out_dtype, memory_format, backend)
        self.size = output_size(crop, "crop")
        if isinstance(resize, bool) or not isinstance(resize, (int, list, tuple)):
            raise TypeError(f"resize must be an int or an (h, w) pair of ints, got {resize!r}")
        center_crop_boxes([(1, 1)], resize, (1, 1))  # checks resize's form
        self.resize = resize

    def boxes(self, images) -> torch.Tensor:
        return center_crop_boxes(batch_image_sizes(images, self.layout), self.resize, self.size)

    def forward(self, images) -> torch.Tensor:
        return self._apply_boxes(images, self.boxes(images))

    def extra_repr(self) -> str:
        return f"resize={self.resize}, crop={self.size}, " + self._options_repr()
