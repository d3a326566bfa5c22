"""Public mixup / CutMix blends: argument checks, fake kernels, autograd, backend choice.

Each blend is one kernel launch over the batch in its own memory format (contiguous or
channels_last): mixup reads two samples and writes one, the in-place pair swap reads and
writes each sample once, CutMix reads one source per element. Nothing here syncs with the
host on a GPU; value checks that would need a sync (is ``index`` a permutation, is ``lam``
in [0, 1]) run only on CPU tensors.
"""

from __future__ import annotations

import torch

from cookbook_ops import _backend, _library
from cookbook_ops._checks import check_cpu_values
from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops._validation import check_index, check_permutation, lam_tensor
from cookbook_ops.reference import mixup as reference

_BLEND_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8)


def _layout(x: torch.Tensor) -> torch.memory_format:
    """The dense layout the kernels run in: x's own when it is channels_last, else contiguous."""
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    return torch.contiguous_format


def _dense(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=_layout(x))


# --- fake kernels and autograd -------------------------------------------------------------


def _same_layout_fake(t, *args):
    return torch.empty_like(t, memory_format=_layout(t))


def _pairs_fake(x, lam, pairs):
    return None


def _mixup_setup(ctx, inputs, output):
    x, lam, index = inputs
    # x only when lam is differentiated: d out_i / d lam_i = x_i - x_index[i].
    ctx.save_for_backward(lam, index, x if ctx.needs_input_grad[1] else None)


def _lam_grad(x, grad_out, index):
    """d/d lam_i of sum(grad_out * (lam_i x_i + (1 - lam_i) x_index[i])), in op-math
    precision (lam's), with PyTorch operators (so it is differentiable again)."""
    dtype = opmath_dtype(x.dtype)
    diff = x.to(dtype) - x[index].to(dtype)
    return (diff * grad_out.to(dtype)).flatten(1).sum(1) if x.dim() > 1 else diff * grad_out


def _make_mixup_backward(backward_op):
    def backward(ctx, grad_out):
        lam, index, x = ctx.saved_tensors
        grad_x = backward_op(_dense(grad_out), lam, index) if ctx.needs_input_grad[0] else None
        grad_lam = _lam_grad(x, grad_out, index) if ctx.needs_input_grad[1] else None
        return grad_x, grad_lam, None

    return backward


def _cutmix_setup(ctx, inputs, output):
    _, boxes, index = inputs
    ctx.save_for_backward(boxes, index)


def _make_cutmix_adjoint(adjoint_op):
    """Autograd of either CutMix op: both take (tensor, boxes, index), are linear in the tensor
    and are each other's adjoint, so each one's derivative is the other on the same boxes."""

    def backward(ctx, grad):
        boxes, index = ctx.saved_tensors
        return adjoint_op(_dense(grad), boxes, index), None, None

    return backward


# Both backward ops are linear in grad_out, and each is the adjoint of its forward op, so the
# derivative of a backward op is the forward op applied to the incoming grad-grad: double
# backward runs on the same kernels and is exact.
def _mixup_backward_setup(ctx, inputs, output):
    grad_out, lam, index = inputs
    ctx.save_for_backward(lam, index, grad_out if ctx.needs_input_grad[1] else None)


def _make_mixup_double_backward(forward_op):
    def backward(ctx, grad_grad_x):
        lam, index, grad_out = ctx.saved_tensors
        grad_grad_out = grad_lam = None
        if ctx.needs_input_grad[0]:
            grad_grad_out = forward_op(_dense(grad_grad_x), lam, index)
        if ctx.needs_input_grad[1]:
            # grad_x_j = lam_j g_j + (1 - lam_k) g_k (index[k] = j), so d<gg, grad_x>/d lam_i
            # = <g_i, gg_i - gg_index[i]>: the lam gradient of the forward with x = gg.
            grad_lam = _lam_grad(grad_grad_x, grad_out, index)
        return grad_grad_out, grad_lam, None

    return backward


# Each op's autograd formula calls the adjoint op of the same backend.
for _name, _make, _adjoint, _setup, _reference in (
    (
        _library.MIXUP_FORWARD,
        _make_mixup_backward,
        _library.MIXUP_BACKWARD,
        _mixup_setup,
        reference.mixup_forward,
    ),
    (
        _library.MIXUP_BACKWARD,
        _make_mixup_double_backward,
        _library.MIXUP_FORWARD,
        _mixup_backward_setup,
        reference.mixup_backward,
    ),
    (
        _library.CUTMIX_FORWARD,
        _make_cutmix_adjoint,
        _library.CUTMIX_BACKWARD,
        _cutmix_setup,
        reference.cutmix_forward,
    ),
    (
        _library.CUTMIX_BACKWARD,
        _make_cutmix_adjoint,
        _library.CUTMIX_FORWARD,
        _cutmix_setup,
        reference.cutmix_backward,
    ),
):
    _library.register(
        _name,
        _same_layout_fake,
        backward=lambda b, make=_make, adjoint=_adjoint: make(_library.op_for(adjoint, b)),
        setup_context=_setup,
        reference=_reference,
    )
_library.register(_library.MIXUP_PAIRS, _pairs_fake, reference=reference.mixup_pairs)


# --- argument checks -----------------------------------------------------------------------


def _check_x(x, min_dim=1):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _BLEND_DTYPES:
        raise TypeError(f"x must be float16/bfloat16/float32/float64 or uint8, got {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"x must have at least {min_dim} dimensions (N, ...), got {x.dim()}")


def _op(name: str, backend: str):
    return _library.op_for(name, backend)


# --- public API ----------------------------------------------------------------------------


def mixup(x: torch.Tensor, lam, index: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """``lam * x + (1 - lam) * x[index]`` in one pass, lam a float, a 0-d tensor or (N,) per
    sample. x is (N, ...) in any layout (channels_last stays channels_last); float inputs
    are differentiable; uint8 gives uint8 rounded to nearest. index: (N,) int64 permutation."""
    _check_x(x)
    check_index(index, x.shape[0], x.device, "index")
    chosen = _backend.resolve_backend(backend, x.device, _library.MIXUP_FORWARD)
    if chosen != "cpu" or torch.compiler.is_compiling():
        # The CPU kernel checks it in the pass that reads index (ValueError as well).
        check_permutation(index)
    lam_t = lam_tensor(lam, x)
    if chosen == "reference":
        if x.is_floating_point():
            shape = (x.shape[0],) + (1,) * (x.dim() - 1)
            lam_b = lam_t.reshape(shape)
            return (lam_b * x + (1 - lam_b) * x[index]).to(x.dtype)
        return reference.mixup_forward(x, lam_t, index)
    return _op(_library.MIXUP_FORWARD, chosen)(_dense(x), lam_t, index)


def mixup_pairs_(x: torch.Tensor, lam, pairs: torch.Tensor, *, backend: str = "auto"):
    """In-place mixup of random pairs: for each pair (i, pairs[i]) both samples are read once
    and written once. pairs must be an involution (pairs[pairs[i]] == i); a fixed point
    (odd batch) stays unmixed. Returns x."""
    _check_x(x)
    check_index(pairs, x.shape[0], x.device, "pairs")
    n = pairs.numel()

    def _involution():
        in_range = (pairs >= 0) & (pairs < n)
        partner = pairs[torch.where(in_range, pairs, 0)]
        return in_range & (partner == torch.arange(n, device=pairs.device))

    check_cpu_values(
        _involution,
        pairs.device,
        ValueError,
        "pairs must be an involution: pairs[pairs[i]] == i for every i",
    )
    if torch.is_grad_enabled() and (
        x.requires_grad or (isinstance(lam, torch.Tensor) and lam.requires_grad)
    ):
        raise RuntimeError(
            "mixup_pairs_ works in place on data and is not differentiable (x or lam requires "
            "grad); use cookbook_ops.mixup for gradients"
        )
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        raise ValueError("mixup_pairs_ needs x contiguous or channels_last (it works in place)")
    lam_t = lam_tensor(lam, x)
    chosen = _backend.resolve_backend(backend, x.device, _library.MIXUP_FORWARD)
    if chosen == "reference":
        reference.mixup_pairs(x, lam_t, pairs)
    else:
        _op(_library.MIXUP_PAIRS, chosen)(x, lam_t, pairs)
    return x


def cutmix(x: torch.Tensor, boxes: torch.Tensor, index: torch.Tensor, *, backend: str = "auto"):
    """CutMix: sample i takes x[index[i]] inside its box and keeps x[i] outside. boxes: (N, 4)
    int64 rows (y0, x0, y1, x1), half-open, inside the image. Returns (out, lam) with
    lam = 1 - box area / (H*W), float32 (N,). Differentiable in x."""
    _check_x(x, min_dim=4)
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    n, _, height, width = x.shape
    check_index(index, n, x.device, "index")
    if not isinstance(boxes, torch.Tensor) or boxes.dtype != torch.int64:
        raise TypeError("boxes must be an int64 tensor of (y0, x0, y1, x1) rows")
    if boxes.shape != (n, 4):
        raise ValueError(f"boxes must have shape ({n}, 4), got {tuple(boxes.shape)}")
    if boxes.device != x.device:
        raise ValueError(f"boxes is on {boxes.device} but x is on {x.device}")
    boxes = boxes.contiguous()
    chosen = _backend.resolve_backend(backend, x.device, _library.CUTMIX_FORWARD)
    if chosen == "cpu" and not torch.compiler.is_compiling():
        # The CPU kernel checks index and boxes in the pass that reads them (same ValueErrors),
        # so lam needs no clipping: the boxes it pastes are the boxes given.
        out = _op(_library.CUTMIX_FORWARD, chosen)(_dense(x), boxes, index)
        sides = boxes.view(n, 2, 2)
        area = (sides[:, 1] - sides[:, 0]).prod(1)
        return out, 1 - area.to(torch.float32) / float(height * width)  # as cutmix_lam
    check_permutation(index)

    def _inside():
        y0, x0, y1, x1 = boxes.unbind(1)
        return (0 <= y0) & (y0 <= y1) & (y1 <= height) & (0 <= x0) & (x0 <= x1) & (x1 <= width)

    def _first_bad(ok):
        i = int((~ok).nonzero()[0, 0])
        return f" (boxes[{i}] = {boxes[i].tolist()})"

    check_cpu_values(
        _inside,
        boxes.device,
        ValueError,
        f"boxes must lie inside the {height}x{width} image "
        "(need 0 <= y0 <= y1 <= H and 0 <= x0 <= x1 <= W)",
        _first_bad,
    )
    # From the boxes clipped to the image, as every kernel pastes them (GPU tensors are not
    # checked): lam always describes the output.
    lam = reference.cutmix_lam(boxes, height, width)
    if chosen == "reference":
        mask = reference.box_mask(boxes, height, width).unsqueeze(1)
        return torch.where(mask, x[index], x), lam
    return _op(_library.CUTMIX_FORWARD, chosen)(_dense(x), boxes, index), lam
