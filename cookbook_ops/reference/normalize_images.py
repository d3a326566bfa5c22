"""Pure-PyTorch uint8 images to a normalized float batch: the test oracle and the fallback.

v_j = (flip_j ? hflip(x_j) : x_j) / 255, then (v - mean_c) / std_c, all in float32 with each
operation rounded on its own: the arithmetic of torchvision's ``ToTensor()`` followed by
``Normalize(mean, std)``, so float32 results match it bit for bit. With mixup,
out_i = lam_i v_i + (1 - lam_i) v_index[i] (two rounded products, then a rounded sum, as the
eager expression computes it), then one rounding to out_dtype.

The division by 255 goes through a tensor on the images' device, not a Python number: CUDA
turns division by a host scalar into a multiplication by its reciprocal, which differs from
x / 255 in the last bit for some x.
"""

from __future__ import annotations

import torch


def normalize_images_forward(
    images: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    flip: torch.Tensor | None,
    lam: torch.Tensor | None,
    index: torch.Tensor | None,
    nhwc: bool,
    out_dtype: torch.dtype,
    channels_last: bool,
) -> torch.Tensor:
    x = images.permute(0, 3, 1, 2) if nhwc else images  # (N, C, H, W) view
    if flip is not None:
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    scale = torch.full((), 255.0, dtype=torch.float32, device=images.device)
    v = x.to(torch.float32).div(scale)
    v = v.sub(mean.to(torch.float32).view(1, -1, 1, 1))
    v = v.div(std.to(torch.float32).view(1, -1, 1, 1))
    if lam is not None:
        if index is None:
            raise ValueError("lam and index must be given together")
        lam_b = lam.to(torch.float32).view(-1, 1, 1, 1)
        v = lam_b * v + (1 - lam_b) * v[index]
    elif index is not None:
        raise ValueError("lam and index must be given together")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return v.to(out_dtype).contiguous(memory_format=memory_format)
