"""Fused classifier head: a linear layer and the label-smoothed cross-entropy, without the logits.

``loss = cross_entropy(input @ weight.T + bias, target)`` is computed ``chunk_size`` rows at a
time: each chunk of logits comes from an ATen GEMM and goes straight through this project's
cross-entropy ops (per-row loss and lse, then the gradient of the chunk's logits), so at most one
chunk of logits and one of its gradient exist at any time, never the N x C matrix.

Gradients. For ``reduction="mean"`` and ``"sum"`` the loss is a scalar, so its gradient is the
gradient for grad_output = 1 times the scalar grad_output. The forward therefore forms the
gradients of input, weight and bias chunk by chunk while each chunk of logits is at hand (when
they are needed) and backward only scales them: three GEMMs in all, as the unfused
``F.linear`` + ``F.cross_entropy``. In eager mode the scaling is done in place on the buffers
formed in forward (they are private to the graph), so backward allocates nothing the size of
``weight``; a second backward through a retained graph scales a fresh copy by the ratio of the
grad_outputs. ``reduction="none"`` keeps only the per-row lse and recomputes each chunk of logits
in backward (four GEMMs). Double backward (``create_graph=True``) is not supported.

Memory: the gradient buffers (the size of input, weight and bias) plus one chunk of logits and
one of its gradient; eager holds about three N x C tensors at its peak (the log-softmax, the
gradient scattered by nll_loss and the gradient of the logits).

Precision: the GEMMs run in the input dtype, as ``F.linear`` does; the cross-entropy kernels
accumulate in op-math (float32 for 16-bit inputs). The weight and bias gradients of 16-bit
inputs are summed over row chunks from per-chunk results in the input dtype (one rounding per
chunk, as gradient accumulation over micro-batches), so fewer, larger chunks round less. The ops
have no autocast rule: under ``torch.autocast`` they run in the dtype of their inputs.
"""

from __future__ import annotations

import torch

from cookbook_ops import _backend, _library
from cookbook_ops._dtypes import opmath_dtype, output_dtype
from cookbook_ops._smoothing import mean_denominator, smoothing_weights
from cookbook_ops._validation import (
    check_index_target,
    check_loss_lam,
    check_num_classes,
    check_options,
    check_target_range,
)
from cookbook_ops.ops.linear_cross_entropy_chunks import FLOATS, default_chunk_size

# --- public API -------------------------------------------------------------------------------


def _check_linear(input, weight, bias, chunk_size):
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in FLOATS:
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if input.dim() != 2:
        raise ValueError(f"input must be (N, in_features), got shape {tuple(input.shape)}")
    if weight.dim() != 2 or weight.shape[1] != input.shape[1]:
        raise ValueError(
            f"weight must be (num_classes, {input.shape[1]}) for input of shape "
            f"{tuple(input.shape)}, got {tuple(weight.shape)}"
        )
    check_num_classes(weight.shape[0])
    if weight.dtype != input.dtype:
        raise TypeError(f"weight is {weight.dtype} but input is {input.dtype}")
    if weight.device != input.device:
        raise ValueError(f"weight is on {weight.device} but input is on {input.device}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"bias must be a tensor or None, got {type(bias).__name__}")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
        if bias.dtype != input.dtype:
            raise TypeError(f"bias is {bias.dtype} but input is {input.dtype}")
        if bias.device != input.device:
            raise ValueError(f"bias is on {bias.device} but input is on {input.device}")
    if chunk_size is None:
        return default_chunk_size(input.shape[0], weight.shape[0], input.dtype)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    return chunk_size


def _check_target(name, target, input, num_classes, ignore_index):
    check_index_target(name, target, input, "input")
    check_target_range(target, num_classes, ignore_index, name)


def _check_class_weight(class_weight, input, num_classes):
    if class_weight is None:
        return None
    if not isinstance(class_weight, torch.Tensor):
        raise TypeError(f"class_weight must be a tensor or None, got {type(class_weight).__name__}")
    if class_weight.shape != (num_classes,):
        raise ValueError(
            f"class_weight must have shape ({num_classes},), got {tuple(class_weight.shape)}"
        )
    if not class_weight.is_floating_point():
        raise TypeError(f"class_weight must be a floating-point tensor, got {class_weight.dtype}")
    if class_weight.device != input.device:
        raise ValueError(f"class_weight is on {class_weight.device} but input is on {input.device}")
    if class_weight.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(
            "class_weight requires grad, but class weights are not differentiable here (as in "
            "F.cross_entropy); pass class_weight.detach()"
        )
    return class_weight.to(opmath_dtype(input.dtype)).contiguous()


def _needs_grad(input, weight, bias) -> list[bool]:
    if not torch.is_grad_enabled():
        return [False, False, False]
    return [input.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad]


def _run(input, weight, bias, targets, class_weight, row_scale, options, reduction, needs):
    """rows (reduction "none") or the scalar loss sum(row_scale * rows), and the correct flags."""
    target_a, target_b = targets
    if reduction == "none":
        rows, _, correct = _library.op(_library.LINEAR_CE_FORWARD)(
            input, weight, bias, target_a, target_b, class_weight, *options
        )
        return rows, correct
    loss, _, correct, *_ = _library.op(_library.LINEAR_CE_REDUCED)(
        input, weight, bias, target_a, target_b, class_weight, row_scale, *options, needs
    )
    return loss, correct


def _setup(input, weight, bias, smoothing, reduction, convention, ignore_index, chunk_size):
    check_options(smoothing, reduction, convention, ignore_index)
    chunk_size = _check_linear(input, weight, bias, chunk_size)
    on_value, off_value = smoothing_weights(convention, smoothing, weight.shape[0])
    return on_value, off_value, chunk_size


def linear_cross_entropy(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    smoothing: float = 0.0,
    *,
    class_weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    convention: str = "uniform",
    return_correct: bool = False,
    chunk_size: int | None = None,
    backend: str = "auto",
):
    """``cross_entropy(F.linear(input, weight, bias), target)`` without the N x C logits.

    Equal to ``F.cross_entropy(F.linear(input, weight, bias), target, weight=class_weight,
    ignore_index=..., reduction=..., label_smoothing=smoothing)`` for ``convention="uniform"``;
    ``"others"`` and ``"lsr"`` as in :func:`cookbook_ops.label_smoothing_cross_entropy`.
    input (N, K); weight (C, K); bias (C,) or None, all one dtype; target (N,) int64.
    ``chunk_size`` rows of logits exist at a time (default: a chunk of about 24 MiB);
    ``backend`` chooses the cross-entropy kernels the chunks run. ``return_correct=True`` also
    returns argmax(logits) == target per row. Gradients flow to input, weight and bias.
    """
    on_value, off_value, chunk_size = _setup(
        input, weight, bias, smoothing, reduction, convention, ignore_index, chunk_size
    )
    num_classes = weight.shape[0]
    _check_target("target", target, input, num_classes, ignore_index)
    class_weight = _check_class_weight(class_weight, input, num_classes)
    chosen = _backend.resolve_backend(backend, input.device, _library.LSCE_FORWARD)
    dtype = opmath_dtype(input.dtype)
    row_scale = None
    if reduction != "none":
        row_scale = torch.ones(input.shape[0], dtype=dtype, device=input.device)
        if reduction == "mean":
            row_scale = row_scale / mean_denominator(target, class_weight, ignore_index, dtype)
    options = (on_value, off_value, ignore_index, chunk_size, chosen)
    needs = _needs_grad(input, weight, bias)
    result, correct = _run(
        input, weight, bias, (target, None), class_weight, row_scale, options, reduction, needs
    )
    result = result.to(output_dtype(input))
    return (result, correct) if return_correct else result


def linear_mixup_cross_entropy(
    input: torch.Tensor,
    weight: torch.Tensor,
    target_a: torch.Tensor,
    target_b: torch.Tensor,
    lam,
    bias: torch.Tensor | None = None,
    smoothing: float = 0.0,
    *,
    class_weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    convention: str = "uniform",
    return_correct: bool = False,
    chunk_size: int | None = None,
    backend: str = "auto",
):
    """:func:`cookbook_ops.mixup_cross_entropy` of ``F.linear(input, weight, bias)`` without
    the N x C logits: ``lam * CE_s(logits, target_a) + (1 - lam) * CE_s(logits, target_b)``,
    with lam a float, a 0-d or an (N,) tensor in [0, 1] (differentiable), and ``mean`` dividing
    each term by its own count of non-ignored rows (or sum of class weights), as
    ``mixup_cross_entropy`` does. Arguments otherwise as :func:`linear_cross_entropy`;
    ``return_correct`` compares with target_a.
    """
    on_value, off_value, chunk_size = _setup(
        input, weight, bias, smoothing, reduction, convention, ignore_index, chunk_size
    )
    num_classes = weight.shape[0]
    _check_target("target_a", target_a, input, num_classes, ignore_index)
    _check_target("target_b", target_b, input, num_classes, ignore_index)
    class_weight = _check_class_weight(class_weight, input, num_classes)
    dtype = opmath_dtype(input.dtype)
    lam = check_loss_lam(lam, input, "input", dtype)
    chosen = _backend.resolve_backend(backend, input.device, _library.MIXUP_CE_FORWARD)
    options = (on_value, off_value, ignore_index, chunk_size, chosen)
    needs = _needs_grad(input, weight, bias)
    targets = (target_a, target_b)
    if reduction == "none":
        rows, correct = _run(input, weight, bias, targets, class_weight, None, options, "none", [])
        result = lam * rows[:, 0] + (1 - lam) * rows[:, 1]
    else:
        ones = torch.ones(input.shape[0], dtype=dtype, device=input.device)
        scale_a, scale_b = ones * lam, ones * (1 - lam)
        if reduction == "mean":
            scale_a = scale_a / mean_denominator(target_a, class_weight, ignore_index, dtype)
            scale_b = scale_b / mean_denominator(target_b, class_weight, ignore_index, dtype)
        row_scale = torch.stack((scale_a, scale_b), dim=1)
        result, correct = _run(
            input, weight, bias, targets, class_weight, row_scale, options, reduction, needs
        )
    result = result.to(output_dtype(input))
    return (result, correct) if return_correct else result
