"""Data-loading helpers that keep images as uint8 until they reach the device.

``uint8_collate`` stacks decoded images into one uint8 (N, H, W, C) tensor, a quarter of the
bytes of a float batch to copy between worker processes and to the GPU; ToTensor, Normalize
and the flip then run on the whole batch in one pass
(:func:`cookbook_ops.normalize_images`, :class:`cookbook_ops.nn.NormalizeImages`).
``collate_uint8_list`` keeps images of different sizes as a list of uint8 tensors, for the
crop transforms that resize on the device (:class:`cookbook_ops.nn.RandomResizedCropNormalize`,
:class:`cookbook_ops.nn.ResizeCenterCropNormalize`).
"""

from __future__ import annotations

import torch
from torch.utils.data import default_collate

__all__ = ["collate_uint8_list", "uint8_collate"]


def _as_hwc_uint8(image, position: int):
    """One image as a uint8 (H, W, C) numpy array or tensor, without copying it."""
    import numpy as np  # only needed when batches are collated; torch does not require it

    try:
        from PIL import Image
    except ImportError:  # no PIL: only arrays and tensors can arrive
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        if image.mode == "1":
            image = image.convert("L")  # 0/255, as ToTensor scales 1-bit images
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise TypeError(
                f"batch[{position}] is a PIL image in mode {image.mode!r}, which is not 8 bits "
                "per channel; convert it first (e.g. image.convert('RGB'))"
            )
        image = array
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"batch[{position}] must be a uint8 array, got {image.dtype}")
        if image.ndim == 2:  # grayscale
            image = image[:, :, None]
        ndim = image.ndim
    elif isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8:
            raise TypeError(f"batch[{position}] must be a uint8 tensor, got {image.dtype}")
        if image.dim() == 2:
            image = image.unsqueeze(-1)
        ndim = image.dim()
    else:
        raise TypeError(
            f"batch[{position}] must be a PIL image, a uint8 numpy array or a uint8 tensor "
            f"(H, W, C) or (H, W), got {type(image).__name__}"
        )
    if ndim != 3:
        raise ValueError(
            f"batch[{position}] must be (H, W, C) or (H, W), got shape {tuple(image.shape)}"
        )
    return image


def uint8_collate(batch):
    """``collate_fn`` for a DataLoader whose dataset yields images (PIL images, uint8 HWC or
    HW numpy arrays or tensors) or ``(image, target, ...)`` tuples, with no ToTensor or
    Normalize in its transforms.

    Returns one uint8 (N, H, W, C) tensor (grayscale images get C = 1) or, for tuples,
    ``(images, targets, ...)`` with the other fields collated by PyTorch's default collate.
    Every image of a batch must have the same size and channel count (crop or resize them in
    the dataset's transforms).
    """
    if not isinstance(batch, (list, tuple)) or len(batch) == 0:
        raise ValueError("uint8_collate needs a non-empty list of samples")
    paired = isinstance(batch[0], (tuple, list))
    if paired and any(not isinstance(s, (tuple, list)) or len(s) != len(batch[0]) for s in batch):
        raise ValueError("every sample must be a tuple of the same length as the first one")
    images = [_as_hwc_uint8(s[0] if paired else s, i) for i, s in enumerate(batch)]
    shape = tuple(images[0].shape)
    for i, image in enumerate(images):
        if tuple(image.shape) != shape:
            raise ValueError(
                f"batch[{i}] has shape (H, W, C) = {tuple(image.shape)} but batch[0] has "
                f"{tuple(shape)}: images of one batch must have the same size and channels"
            )
    out = torch.empty((len(images), *shape), dtype=torch.uint8)
    if torch.utils.data.get_worker_info() is not None:
        # In a worker process the batch travels through shared memory: allocating it there
        # saves the extra copy, as default_collate does.
        out = out.share_memory_()
    out_array = out.numpy()
    for i, image in enumerate(images):
        if isinstance(image, torch.Tensor):
            out[i].copy_(image)
        else:
            out_array[i] = image
    if not paired:
        return out
    rest = [default_collate([s[k] for s in batch]) for k in range(1, len(batch[0]))]
    return (out, *rest)


def collate_uint8_list(batch):
    """``collate_fn`` for a DataLoader whose images differ in size: like :func:`uint8_collate`
    (PIL images, uint8 HWC or HW numpy arrays or tensors, bare or in ``(image, target, ...)``
    tuples), but the images stay a list of N uint8 (H_i, W_i, C) tensors (grayscale: C = 1),
    as :func:`cookbook_ops.resized_crop_normalize` takes them. Arrays become tensors without a
    copy where their memory allows it. Other fields go through PyTorch's default collate.
    """
    if not isinstance(batch, (list, tuple)) or len(batch) == 0:
        raise ValueError("collate_uint8_list needs a non-empty list of samples")
    paired = isinstance(batch[0], (tuple, list))
    if paired and any(not isinstance(s, (tuple, list)) or len(s) != len(batch[0]) for s in batch):
        raise ValueError("every sample must be a tuple of the same length as the first one")
    images = []
    for i, s in enumerate(batch):
        image = _as_hwc_uint8(s[0] if paired else s, i)
        if not isinstance(image, torch.Tensor):
            import numpy as np

            array = np.ascontiguousarray(image)
            if not array.flags.writeable:  # a PIL image's buffer: torch wants its own
                array = array.copy()
            image = torch.from_numpy(array)
        images.append(image.contiguous())
    if not paired:
        return images
    rest = [default_collate([s[k] for s in batch]) for k in range(1, len(batch[0]))]
    return (images, *rest)
