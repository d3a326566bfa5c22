"""The cross-entropy kernel family: fake kernels, autograd and backend dispatch of its ops.

One family of kernels (``csrc/cpu/cross_entropy.cpp``, ``csrc/cuda/cross_entropy.cu``,
``cookbook_ops/triton/cross_entropy.py``) serves both public losses:
:func:`cookbook_ops.label_smoothing_cross_entropy` (one target slot) and
:func:`cookbook_ops.mixup_cross_entropy` (two). Each op pair takes
``(logits, *targets, weight, on_value, off_value, ignore_index)`` and returns per-row losses in
op-math precision plus the per-row log-sum-exp that backward needs; the public functions apply
lam and the reduction, a few tiny PyTorch ops on (N,) vectors.
"""

from __future__ import annotations

import torch

from cookbook_ops import _library
from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops._validation import check_fake_args
from cookbook_ops.reference.label_smoothing_cross_entropy import (
    label_smoothing_cross_entropy_backward,
    label_smoothing_cross_entropy_forward,
    label_smoothing_cross_entropy_rows,
    soft_target_cross_entropy_backward,
    soft_target_cross_entropy_forward,
    soft_target_cross_entropy_rows,
)
from cookbook_ops.reference.mixup_cross_entropy import (
    mixup_cross_entropy_backward,
    mixup_cross_entropy_forward,
    mixup_cross_entropy_rows,
)


def _register_loss_ops(
    forward: str,
    backward: str,
    target_names: tuple[str, ...],
    reference_forward,
    reference_backward,
    contiguous_grad_loss: bool = False,
    row_stats: int = 1,
    probability_targets: bool = False,
) -> None:
    """Fake kernels and autograd for the extension op pair and its twins, and the reference as
    the CompositeExplicitAutograd fallback. ``target_names`` names the target slots; the loss is
    (N,) for one slot and (N, k) for k > 1. The forward op returns (loss, *stats, correct) with
    ``row_stats`` per-row (N,) statistics, lse first, that backward takes after the weight; the
    arguments after the weight (smoothing scalars) pass through to backward unchanged.
    ``probability_targets``: the one target is (N, C) floating, not (N,) int64."""
    n_targets = len(target_names)

    def forward_fake(logits, *args):
        targets, weight = args[:n_targets], args[n_targets]
        check_fake_args(logits, dict(zip(target_names, targets)), weight, probability_targets)
        n = logits.shape[0]
        dtype = opmath_dtype(logits.dtype)
        loss_shape = (n,) if n_targets == 1 else (n, n_targets)
        return (
            logits.new_empty(loss_shape, dtype=dtype),
            *(logits.new_empty((n,), dtype=dtype) for _ in range(row_stats)),
            logits.new_empty((n,), dtype=torch.bool),
        )

    def backward_fake(grad_loss, logits, *args):
        targets, weight = args[:n_targets], args[n_targets]
        check_fake_args(logits, dict(zip(target_names, targets)), weight, probability_targets)
        if n_targets > 1:
            torch._check(
                grad_loss.shape == (logits.shape[0], n_targets),
                lambda: f"grad_loss must be (N, {n_targets}), got {tuple(grad_loss.shape)}",
            )
        return torch.empty_like(logits, memory_format=torch.contiguous_format)

    def setup_context(ctx, inputs, output):
        # (logits, *targets, weight, *scalars) -> (loss, *stats, correct)
        ctx.save_for_backward(*inputs[: n_targets + 2], *output[1:-1])
        ctx.smoothing = tuple(inputs[n_targets + 2 :])
        ctx.n_inputs = len(inputs)
        ctx.mark_non_differentiable(*output[1:])

    def closed_form(grad_loss, logits, *rest):
        """The backward op's result in differentiable PyTorch operators, with lse recomputed
        from the logits (the saved one would be a constant to autograd): exact to every order.
        rest: the backward op's arguments after the logits."""
        rest = list(rest)
        rest[n_targets + 1] = torch.logsumexp(logits.to(opmath_dtype(logits.dtype)), dim=1)
        return reference_backward(grad_loss, logits, *rest)

    def make_backward(backward_op):
        def backward(ctx, grad_loss, *_grad_stats_and_correct):
            grad_logits = None
            if ctx.needs_input_grad[0]:
                if contiguous_grad_loss:
                    grad_loss = grad_loss.contiguous()
                if torch.is_grad_enabled():
                    # create_graph=True (double backward): the kernels' backward is not
                    # differentiable again, so this gradient is the closed form.
                    grad_logits = closed_form(grad_loss, *ctx.saved_tensors, *ctx.smoothing)
                else:
                    grad_logits = backward_op(grad_loss, *ctx.saved_tensors, *ctx.smoothing)
            # the targets (probability targets that need a gradient take the reference path),
            # weight and the smoothing arguments
            return (grad_logits,) + (None,) * (ctx.n_inputs - 1)

        return backward

    _library.register(
        forward,
        forward_fake,
        backward=lambda b: make_backward(_library.op_for(backward, b)),
        setup_context=setup_context,
        reference=reference_forward,
    )
    _library.register(backward, backward_fake, reference=reference_backward)
    composite = backward + "_composite"
    if composite in _library.COMPOSITE_BACKWARDS:  # what the C++ autograd's double backward runs
        torch.library.impl(_library.qualified(composite), "CompositeImplicitAutograd")(closed_form)


_register_loss_ops(
    _library.LSCE_FORWARD,
    _library.LSCE_BACKWARD,
    ("target",),
    label_smoothing_cross_entropy_forward,
    label_smoothing_cross_entropy_backward,
)
# The kernels take grad_loss contiguous (the Triton kernel specialises its slot stride to 1).
_register_loss_ops(
    _library.MIXUP_CE_FORWARD,
    _library.MIXUP_CE_BACKWARD,
    ("target_a", "target_b"),
    mixup_cross_entropy_forward,
    mixup_cross_entropy_backward,
    contiguous_grad_loss=True,
)

# Probability targets: forward also saves S_i = sum_c a_c (the target's weighted sum), so that
# backward is one pass.
_register_loss_ops(
    _library.SOFT_CE_FORWARD,
    _library.SOFT_CE_BACKWARD,
    ("target",),
    soft_target_cross_entropy_forward,
    soft_target_cross_entropy_backward,
    row_stats=2,
    probability_targets=True,
)

_REFERENCE_ROWS = {
    _library.LSCE_FORWARD: label_smoothing_cross_entropy_rows,
    _library.MIXUP_CE_FORWARD: mixup_cross_entropy_rows,
    _library.SOFT_CE_FORWARD: soft_target_cross_entropy_rows,
}


def loss_rows(forward: str, backend: str, logits: torch.Tensor, *args):
    """(loss, correct) per row from the forward op ``forward`` on ``backend``; ``args`` are the
    op's arguments after the logits. The reference backend runs its differentiable formula."""
    if backend == "reference":
        return _REFERENCE_ROWS[forward](logits, *args)
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    outputs = _library.op_for(forward, backend)(logits, *args)
    return outputs[0], outputs[-1]
