"""Public label-smoothed cross-entropy: argument checks, fake kernels, autograd, backend choice.

The kernels compute per-row losses in op-math precision plus the per-row log-sum-exp that
backward needs; the reduction (a sum over N values and, for ``mean``, the sum of target
weights) is a few tiny PyTorch ops here, so every reduction and any ``grad_output`` cost the
kernels nothing extra.
"""

from __future__ import annotations

import torch

from cookbook_ops import _backend, _library
from cookbook_ops._dtypes import opmath_dtype, output_dtype
from cookbook_ops._smoothing import mean_denominator, smoothing_weights
from cookbook_ops._validation import (
    check_fake_args,
    check_num_classes,
    check_options,
    check_target_range,
    check_weight,
)
from cookbook_ops.reference.label_smoothing_cross_entropy import (
    label_smoothing_cross_entropy_backward as reference_backward,
)
from cookbook_ops.reference.label_smoothing_cross_entropy import (
    label_smoothing_cross_entropy_forward as reference_forward,
)
from cookbook_ops.reference.label_smoothing_cross_entropy import (
    label_smoothing_cross_entropy_rows as reference_rows,
)

# --- fake kernels and autograd, shared by the extension ops and the Triton ops -------------


def _forward_fake(logits, target, weight, on_value, off_value, ignore_index):
    check_fake_args(logits, {"target": target}, weight)
    n = logits.shape[0]
    dtype = opmath_dtype(logits.dtype)
    return (
        logits.new_empty((n,), dtype=dtype),
        logits.new_empty((n,), dtype=dtype),
        logits.new_empty((n,), dtype=torch.bool),
    )


def _backward_fake(grad_loss, logits, target, weight, lse, on_value, off_value, ignore_index):
    check_fake_args(logits, {"target": target}, weight)
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def register_loss_ops(
    forward: str,
    backward: str,
    n_targets: int,
    forward_fake,
    backward_fake,
    reference_forward,
    reference_backward,
    contiguous_grad_loss: bool = False,
) -> None:
    """Fake kernels and autograd for the extension op and its twins, and the reference as the
    CompositeExplicitAutograd fallback, for a cross-entropy op pair whose
    forward takes (logits, *targets, weight, on_value, off_value, ignore_index) and returns
    (loss, lse, correct), and whose backward takes (grad_loss, logits, *targets, weight, lse,
    on_value, off_value, ignore_index)."""

    def setup_context(ctx, inputs, output):
        logits, *targets, weight, on_value, off_value, ignore_index = inputs
        _, lse, _ = output
        ctx.save_for_backward(logits, *targets, weight, lse)
        ctx.smoothing = (on_value, off_value, ignore_index)
        ctx.mark_non_differentiable(output[1], output[2])

    def make_backward(backward_op):
        def backward(ctx, grad_loss, grad_lse, grad_correct):
            grad_logits = None
            if ctx.needs_input_grad[0]:
                if contiguous_grad_loss:
                    grad_loss = grad_loss.contiguous()
                if torch.is_grad_enabled():
                    # create_graph=True (double backward): the kernels' backward is not
                    # differentiable again, so this gradient is the reference's closed form
                    # in PyTorch operators, with lse recomputed from the logits (the saved
                    # one is a constant to autograd). Exact to every order.
                    logits, *rest, _ = ctx.saved_tensors
                    lse = torch.logsumexp(logits.to(opmath_dtype(logits.dtype)), dim=1)
                    grad_logits = reference_backward(grad_loss, logits, *rest, lse, *ctx.smoothing)
                else:
                    grad_logits = backward_op(grad_loss, *ctx.saved_tensors, *ctx.smoothing)
            # logits, the targets, weight and the three smoothing arguments
            return (grad_logits,) + (None,) * (n_targets + 4)

        return backward

    _library.register(
        forward,
        forward_fake,
        backward=lambda b: make_backward(_library.op_for(backward, b)),
        setup_context=setup_context,
        reference=reference_forward,
    )
    _library.register(backward, backward_fake, reference=reference_backward)


register_loss_ops(
    _library.LSCE_FORWARD,
    _library.LSCE_BACKWARD,
    1,
    _forward_fake,
    _backward_fake,
    reference_forward,
    reference_backward,
)


# --- public API ----------------------------------------------------------------------------


def _rows(logits, target, weight, on_value, off_value, ignore_index, backend):
    if backend == "reference":
        return reference_rows(logits, target, weight, on_value, off_value, ignore_index)
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    loss, _, correct = _library.op_for(_library.LSCE_FORWARD, backend)(
        logits, target, weight, on_value, off_value, ignore_index
    )
    return loss, correct


def label_smoothing_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    smoothing: float = 0.0,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    convention: str = "uniform",
    return_correct: bool = False,
    backend: str = "auto",
):
    """Cross-entropy against a label-smoothed target, in one fused pass over the logits.

    Equal to ``F.cross_entropy(logits, target, weight, ignore_index=..., reduction=...,
    label_smoothing=smoothing)`` for ``convention="uniform"``. ``"others"`` puts 1-e on the
    target and e/(C-1) on every other class (the cookbook's inline loop); ``"lsr"`` is the
    cookbook's ``LSR`` class (1-e+e/(C-1) on the target, e/(C-1) elsewhere).

    logits: (N, C), (C,) or (N, C, d1, ...); target: int64 of the matching shape without C.
    Returns the loss in the dtype of ``logits`` (float32 under autocast); with
    ``return_correct=True`` also a bool tensor shaped like ``target``: argmax over C == target.
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if target.is_floating_point() or target.dtype != torch.int64:
        raise TypeError(
            f"target must be an int64 tensor of class indices, got {target.dtype}"
            + (" (probability targets are not supported)" if target.is_floating_point() else "")
        )
    check_options(smoothing, reduction, convention, ignore_index)
    if logits.dim() == 0:
        raise ValueError("logits must have at least 1 dimension (C,) or (N, C, ...)")

    unbatched = logits.dim() == 1
    if unbatched:
        if target.dim() != 0:
            raise ValueError(
                f"for unbatched logits of shape {tuple(logits.shape)} target must be 0-d, "
                f"got shape {tuple(target.shape)}"
            )
        logits2d, target1d = logits.unsqueeze(0), target.reshape(1)
        batch_shape = ()
    else:
        expected = (logits.shape[0],) + tuple(logits.shape[2:])
        if tuple(target.shape) != expected:
            raise ValueError(
                f"target must have shape {expected} for logits of shape {tuple(logits.shape)}, "
                f"got {tuple(target.shape)}"
            )
        batch_shape = expected
        if logits.dim() == 2:
            logits2d, target1d = logits, target
        else:  # class dim at 1, as F.cross_entropy
            logits2d = logits.movedim(1, -1).reshape(-1, logits.shape[1])
            target1d = target.reshape(-1)
    num_classes = logits2d.shape[1]
    check_num_classes(num_classes)
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits is on {logits.device}")
    weight = check_weight(weight, logits)
    on_value, off_value = smoothing_weights(convention, smoothing, num_classes)

    chosen = _backend.resolve_backend(backend, logits.device, _library.LSCE_FORWARD)
    if chosen == "reference":
        # the C++ and Triton ops check CPU targets themselves
        check_target_range(target1d, num_classes, ignore_index)
    loss, correct = _rows(logits2d, target1d, weight, on_value, off_value, ignore_index, chosen)

    out_dtype = output_dtype(logits)
    if reduction == "none":
        result = loss.to(out_dtype).reshape(batch_shape)
    elif reduction == "sum":
        result = loss.sum().to(out_dtype)
    else:
        result = (loss.sum() / mean_denominator(target1d, weight, ignore_index, loss.dtype)).to(
            out_dtype
        )
    if return_correct:
        return result, correct.reshape(batch_shape)
    return result
