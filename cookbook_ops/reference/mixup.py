"""Pure-PyTorch mixup and CutMix blends: the test oracles and the no-kernel fallback.

mixup:   out_i = lam_i * x_i + (1 - lam_i) * x_index[i]
pairs:   the same in place, for an involution (pairs[pairs[i]] == i)
cutmix:  out_i = x_index[i] inside box_i = [y0, y1) x [x0, x1), x_i outside
Blends of 16-bit inputs are computed in float32; uint8 results are rounded to nearest.
"""

from __future__ import annotations

import torch

from cookbook_ops._dtypes import opmath_dtype


def _per_sample(lam: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return lam.reshape((x.shape[0],) + (1,) * (x.dim() - 1))


def _store(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if not like.is_floating_point():
        value = value.round().clamp(0, 255) if like.dtype == torch.uint8 else value.round()
    return value.to(like.dtype)


def mixup_forward(x, lam, index):
    a = x.to(opmath_dtype(x.dtype)) if x.is_floating_point() else x.float()
    lam_b = _per_sample(lam.to(a.dtype), x)
    out = _store(lam_b * a + (1 - lam_b) * a[index], x)
    return out.contiguous(memory_format=_memory_format(x))


def mixup_backward(grad_out, lam, index):
    g = grad_out.to(opmath_dtype(grad_out.dtype))
    lam_b = _per_sample(lam.to(g.dtype), g)
    grad = lam_b * g
    grad = grad.index_add(0, index, (1 - lam_b) * g)
    return grad.to(grad_out.dtype).contiguous(memory_format=_memory_format(grad_out))


def mixup_pairs(x, lam, pairs):
    # A fixed point (the unpaired sample of an odd batch) is left exactly as it is: blending
    # it with itself would round (0.1 -> 0.09999999999999999) and turn inf into NaN at lam 0.
    paired = pairs != torch.arange(pairs.shape[0], device=pairs.device)
    mixed = mixup_forward(x, lam, pairs)
    x.copy_(torch.where(_per_sample(paired, x), mixed, x))


def box_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, H, W) bool: True inside each sample's half-open box."""
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    y0, x0, y1, x1 = (boxes[:, k].view(-1, 1) for k in range(4))
    inside_rows = (rows >= y0) & (rows < y1)
    inside_cols = (cols >= x0) & (cols < x1)
    return inside_rows.unsqueeze(2) & inside_cols.unsqueeze(1)


def cutmix_forward(x, boxes, index):
    mask = box_mask(boxes, x.shape[2], x.shape[3]).unsqueeze(1)
    out = torch.where(mask, x[index], x)
    return out.contiguous(memory_format=_memory_format(x))


def cutmix_backward(grad_out, boxes, index):
    mask = box_mask(boxes, grad_out.shape[2], grad_out.shape[3]).unsqueeze(1)
    zero = torch.zeros((), dtype=grad_out.dtype, device=grad_out.device)
    grad = torch.where(mask, zero, grad_out)
    grad = grad.index_add(0, index, torch.where(mask, grad_out, zero))
    return grad.contiguous(memory_format=_memory_format(grad_out))


def cutmix_lam(boxes: torch.Tensor, height: int, width: int, dtype=torch.float32) -> torch.Tensor:
    """lam_i = 1 - box area / image area, the box clipped to the image as the kernels paste it
    (an empty or inverted box pastes nothing)."""
    y0, y1 = boxes[:, 0].clamp(0, height), boxes[:, 2].clamp(0, height)
    x0, x1 = boxes[:, 1].clamp(0, width), boxes[:, 3].clamp(0, width)
    area = (y1 - y0).clamp_min(0) * (x1 - x0).clamp_min(0)
    return 1 - area.to(dtype) / float(height * width)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        if not x.is_contiguous():
            return torch.channels_last
    return torch.contiguous_format
