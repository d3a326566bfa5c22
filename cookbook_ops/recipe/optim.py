"""Optimizer parameter groups: weight decay on weights only.

The cookbook's version builds groups under the key ``'parameters'``, which
``torch.optim`` rejects (a group's tensors live under ``'params'``), and picks biases with
``name[-4:] == 'bias'``, which also matches any parameter whose name merely ends in those
letters. Here a bias is a parameter a module registers as ``bias`` (or ``*_bias``, as
``nn.MultiheadAttention`` does), and normalization layers are recognized by type.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NORM_TYPES", "param_groups_no_bias_decay"]

# Layers whose affine parameters rescale normalized activations; decaying them towards 0
# fights the normalization, so they are commonly left undecayed.
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, SyncBatchNorm, InstanceNorm*
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def _is_bias(name: str) -> bool:
    return name == "bias" or name.endswith("_bias")


def param_groups_no_bias_decay(
    model: nn.Module, weight_decay: float, skip_norm: bool = True
) -> list[dict]:
    """Two optimizer groups covering every parameter of ``model`` exactly once:
    ``{'params': [...], 'weight_decay': weight_decay}`` and
    ``{'params': [...], 'weight_decay': 0.0}`` for biases and, with ``skip_norm``, the
    weights of normalization layers (:data:`NORM_TYPES`). A parameter shared between modules
    is listed once, undecayed if any of its uses is a bias or norm weight. Frozen parameters
    are included (an optimizer skips tensors without a gradient), so unfreezing later needs
    no new groups. Pass the result to any ``torch.optim`` optimizer; other options (lr,
    momentum) apply to both groups."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a non-negative float, got {weight_decay!r}")
    no_decay_ids: set[int] = set()
    order: dict[int, torch.nn.Parameter] = {}
    for module in model.modules():
        is_norm = skip_norm and isinstance(module, NORM_TYPES)
        for name, param in module.named_parameters(recurse=False):
            order.setdefault(id(param), param)
            if is_norm or _is_bias(name):
                no_decay_ids.add(id(param))
    decay = [p for i, p in order.items() if i not in no_decay_ids]
    no_decay = [p for i, p in order.items() if i in no_decay_ids]
    return [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
