"""L1 and L2 weight penalties as one multi-tensor reduction.

The cookbook adds ``torch.sum(torch.abs(param))`` to the loss once per parameter in a Python
loop: two kernels and one autograd node per tensor, every step. ``torch._foreach_norm``
reduces the whole list at once (one fused launch per device and dtype on GPUs) and is
differentiable, so the penalty is a few nodes whatever the model's size.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["l1_penalty", "l2_penalty"]


def _as_list(params, name: str) -> list[torch.Tensor]:
    if isinstance(params, torch.Tensor):
        params = [params]
    tensors = list(params)
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}[{i}] must be a tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name}[{i}] must be floating point, got {t.dtype}")
    return tensors


def _norms(tensors: list[torch.Tensor], ord: int) -> torch.Tensor:
    """Per-tensor ``ord``-norms, stacked in the widest op-math dtype of the inputs (float32
    for 16-bit tensors, so the sum of squares of fp16 weights does not overflow)."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    device = tensors[0].device
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    norms: list[torch.Tensor | None] = [None] * len(tensors)
    for indices in by_device.values():
        group = [tensors[i] for i in indices]
        for i, n in zip(indices, torch._foreach_norm(group, ord, dtype=dtype)):
            norms[i] = n.to(device)
    return torch.stack(norms)


def l1_penalty(params: Iterable[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """``sum_p sum(|p|)`` over ``params`` (e.g. ``model.parameters()``), a 0-d tensor on the
    first parameter's device, float32 (float64 if any parameter is float64); differentiable,
    gradient ``sign(p)`` (0 at 0). Multiply by your coefficient and add to the loss."""
    tensors = _as_list(params, "params")
    if not tensors:
        return torch.zeros(())
    return _norms(tensors, 1).sum()


def l2_penalty(params: Iterable[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """``sum_p sum(p**2)`` over ``params`` (no 1/2 factor: the cookbook's ``0.5 * reg``
    stays with the caller), same dtype and device rules as :func:`l1_penalty`; gradient
    ``2 p``."""
    tensors = _as_list(params, "params")
    if not tensors:
        return torch.zeros(())
    return _norms(tensors, 2).square().sum()
