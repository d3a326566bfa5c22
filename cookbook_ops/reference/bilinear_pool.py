"""Pure-PyTorch bilinear pooling with signed sqrt and L2 normalization (the cookbook's snippet):

    A = x.reshape(N, D1, M), B = y.reshape(N, D2, M) (B = A with one stream), M = H*W
    G = A B^T / M, v = sign(G) * sqrt(|G| + eps), z = v / max(||v||_2, 1e-12)

Computed in the op-math dtype (float32 for 16-bit inputs, so G is scaled by 1/M before
anything is rounded to 16 bits; float64 for float64), returned in the input dtype.
"""

from __future__ import annotations

import torch

from cookbook_ops._dtypes import opmath_dtype

NORM_FLOOR = 1e-12  # F.normalize's eps


def bilinear_pool_rows(x: torch.Tensor, y: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Differentiable reference: x (N, D1, M), y (N, D2, M) or None -> z (N, D1*D2)."""
    a = x.to(opmath_dtype(x.dtype))
    b = a if y is None else y.to(a.dtype)
    g = torch.bmm(a, b.transpose(1, 2)) / a.shape[2]
    v = torch.sign(g) * torch.sqrt(torch.abs(g) + eps)
    # explicit row length: reshape(0, -1) of an empty batch is ambiguous
    z = torch.nn.functional.normalize(
        v.reshape(a.shape[0], g.shape[1] * g.shape[2]), dim=1, eps=NORM_FLOOR
    )
    return z.to(x.dtype)


def bilinear_pool_forward(x, y, eps):
    """Reference of the forward op: (z, norm)."""
    a = x.to(opmath_dtype(x.dtype))
    b = a if y is None else y.to(a.dtype)
    g = torch.bmm(a, b.transpose(1, 2)) / a.shape[2]
    v = (torch.sign(g) * torch.sqrt(torch.abs(g) + eps)).reshape(
        a.shape[0], g.shape[1] * g.shape[2]
    )
    norm = torch.linalg.vector_norm(v, dim=1)
    z = v / norm.clamp_min(NORM_FLOOR).unsqueeze(1)
    return z.to(x.dtype), norm


def bilinear_pool_backward(grad_z, x, y, z, norm):
    """Reference of the backward op, in the closed form the kernels use (from x, y, z and the
    norm; G is never needed since |v| = norm * |z|):
        c = <z, dz>, dv = (dz - z c) / norm      (dz / 1e-12 where norm < 1e-12)
        dG = dv / (2 |v|) where G != 0, else 0
        one stream: dA = (dG + dG^T) A / M;  two streams: dA = dG B / M, dB = dG^T A / M
    """
    dtype = opmath_dtype(x.dtype)
    n, d1, m = x.shape
    a = x.to(dtype)
    b = a if y is None else y.to(dtype)
    d2 = b.shape[1]
    zz = z.to(dtype).reshape(n, d1 * d2)
    dz = grad_z.to(dtype).reshape(n, d1 * d2)
    s = norm.to(dtype)
    clamped = s < NORM_FLOOR
    c = (zz * dz).sum(dim=1, keepdim=True)
    dv = torch.where(
        clamped.unsqueeze(1), dz / NORM_FLOOR, (dz - zz * c) / s.clamp_min(NORM_FLOOR).unsqueeze(1)
    )
    abs_v = s.unsqueeze(1) * zz.abs()
    nonzero = zz != 0
    dg = torch.where(nonzero, dv / (2 * torch.where(nonzero, abs_v, 1.0)), 0.0)
    dg = dg.reshape(n, d1, d2)
    if y is None:
        dx = torch.bmm(dg + dg.transpose(1, 2), a) / m
        return [dx.to(x.dtype)]
    dx = torch.bmm(dg, b) / m
    dy = torch.bmm(dg.transpose(1, 2), a) / m
    return [dx.to(x.dtype), dy.to(y.dtype)]
