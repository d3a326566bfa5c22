"""Public bilinear pooling (signed sqrt + L2 normalization): checks, fake kernels, autograd,
backend choice.

The kernels run the Gram product on the matrix units with the scaling, signed sqrt, sum of
squares and normalization fused around it. Backward needs only the inputs, the normalized
output z and the per-sample norm (|v| = norm * |z|), never the Gram matrix.
"""

from __future__ import annotations

import torch

from cookbook_ops import _backend, _library
from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops.reference.bilinear_pool import (
    bilinear_pool_backward as reference_backward,
)
from cookbook_ops.reference.bilinear_pool import (
    bilinear_pool_forward as reference_forward,
)
from cookbook_ops.reference.bilinear_pool import (
    bilinear_pool_rows as reference_rows,
)

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_op_args(x, y):
    torch._check(x.dim() == 3, lambda: f"x must be (N, D1, M), got shape {tuple(x.shape)}")
    torch._check(x.dtype in _FLOAT_DTYPES, lambda: f"x must be floating, got {x.dtype}")
    if y is not None:
        torch._check(y.dim() == 3, lambda: f"y must be (N, D2, M), got shape {tuple(y.shape)}")
        torch._check(
            y.shape[0] == x.shape[0] and y.shape[2] == x.shape[2],
            lambda: f"y {tuple(y.shape)} must match x {tuple(x.shape)} in N and M",
        )
        torch._check(y.dtype == x.dtype, lambda: f"y is {y.dtype} but x is {x.dtype}")


def _forward_fake(x, y, eps):
    _check_op_args(x, y)
    d2 = x.shape[1] if y is None else y.shape[1]
    return (
        x.new_empty((x.shape[0], x.shape[1] * d2)),
        x.new_empty((x.shape[0],), dtype=opmath_dtype(x.dtype)),
    )


def _backward_fake(grad_z, x, y, z, norm):
    _check_op_args(x, y)
    grads = [torch.empty_like(x, memory_format=torch.contiguous_format)]
    if y is not None:
        grads.append(torch.empty_like(y, memory_format=torch.contiguous_format))
    return grads


def _setup_context(ctx, inputs, output):
    x, y, eps = inputs
    z, norm = output
    ctx.save_for_backward(x, y, z, norm)
    ctx.eps = eps
    ctx.mark_non_differentiable(norm)


def _make_backward(backward_op):
    def backward(ctx, grad_z, grad_norm):
        x, y, z, norm = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True (double backward): the kernels' backward is not differentiable
            # again, so this gradient is built from PyTorch operators instead: the closed-form
            # backward of the reference, with z and the norm recomputed from x and y so that
            # their own dependence on x and y is part of the graph. Exact to every order.
            z_d, norm_d = reference_forward(x, y, ctx.eps)
            grads = reference_backward(grad_z, x, y, z_d, norm_d)
        else:
            grads = backward_op(grad_z, x, y, z, norm)
        grad_y = grads[1] if y is not None and ctx.needs_input_grad[1] else None
        grad_x = grads[0] if ctx.needs_input_grad[0] else None
        return grad_x, grad_y, None

    return backward


_library.register(
    _library.BILINEAR_FORWARD,
    _forward_fake,
    backward=lambda b: _make_backward(_library.op_for(_library.BILINEAR_BACKWARD, b)),
    setup_context=_setup_context,
    reference=reference_forward,
)
_library.register(_library.BILINEAR_BACKWARD, _backward_fake, reference=reference_backward)


def _as_rows(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.dim() == 4:
        return t.reshape(t.shape[0], t.shape[1], t.shape[2] * t.shape[3])
    if t.dim() == 3:
        return t
    raise ValueError(f"{name} must be (N, D, H, W) or (N, D, M), got shape {tuple(t.shape)}")


def bilinear_pool(
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    eps: float = 1e-5,
    backend: str = "auto",
) -> torch.Tensor:
    """Second-order (bilinear) pooling with signed square root and L2 normalization.

    Equal to the cookbook's snippet: ``A = x.reshape(N, D, M); G = bmm(A, A^T) / M;
    G = sign(G) * sqrt(|G| + eps); F.normalize(G.reshape(N, D*D))``, and with ``y`` the
    two-stream form ``bmm(A, B^T) / M``. x: (N, D1, H, W) or (N, D1, M); y: None or
    (N, D2, ...) with the same N and spatial size. Returns (N, D1*D2) (index i*D2 + j) in
    the dtype of x; accumulation is float32 for 16-bit inputs (G is scaled by 1/M before
    anything is rounded to 16 bits), float64 for float64.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if isinstance(eps, torch.Tensor) or not isinstance(eps, (int, float)):
        raise TypeError(f"eps must be a Python float, got {type(eps).__name__}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (it keeps the square root differentiable); got {eps}")
    a = _as_rows(x, "x")
    b = None
    if y is not None:
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor or None, got {type(y).__name__}")
        if y.dim() != x.dim():
            raise ValueError(
                f"y must have the same rank as x: x is {tuple(x.shape)}, y is {tuple(y.shape)}"
            )
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"batch mismatch: x has N={x.shape[0]}, y has N={y.shape[0]}")
        if tuple(y.shape[2:]) != tuple(x.shape[2:]):
            raise ValueError(
                f"spatial size mismatch: x is {tuple(x.shape[2:])}, y is {tuple(y.shape[2:])}"
            )
        if y.dtype != x.dtype:
            raise TypeError(f"y is {y.dtype} but x is {x.dtype}: give both the same dtype")
        if y.device != x.device:
            raise ValueError(f"y is on {y.device} but x is on {x.device}")
        b = _as_rows(y, "y")
    if a.shape[2] == 0:
        raise ValueError("x has no spatial positions (H*W = 0): the mean over them is undefined")

    chosen = _backend.resolve_backend(backend, x.device, _library.BILINEAR_FORWARD)
    if chosen == "reference":
        return reference_rows(a, b, float(eps))
    forward_op = _library.op_for(_library.BILINEAR_FORWARD, chosen)
    a = a.contiguous()
    b = None if b is None else b.contiguous()
    z, _ = forward_op(a, b, float(eps))
    return z
