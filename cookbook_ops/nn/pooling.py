"""Drop-in pooling modules backed by the fused kernels."""

from __future__ import annotations

import torch
from torch import nn

from cookbook_ops.ops.bilinear_pool import bilinear_pool

__all__ = ["BilinearPooling"]


class BilinearPooling(nn.Module):
    """The cookbook's bilinear pooling head: Gram matrix of the feature map over space,
    signed square root, L2 normalization. forward(x, y=None): x (N, D1, H, W); y (N, D2, H, W)
    for two-stream pooling. Returns (N, D1*D2)."""

    def __init__(self, eps: float = 1e-5, backend: str = "auto"):
        super().__init__()
        if not eps > 0:
            raise ValueError(f"eps must be > 0; got {eps}")
        self.eps = eps
        self.backend = backend

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return bilinear_pool(x, y, eps=self.eps, backend=self.backend)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
