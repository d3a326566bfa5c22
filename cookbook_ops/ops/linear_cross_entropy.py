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
from cookbook_ops._checks import check_cpu_values
from cookbook_ops._dtypes import opmath_dtype, output_dtype
from cookbook_ops._smoothing import mean_denominator, smoothing_weights
from cookbook_ops._validation import (
    check_num_classes,
    check_options,
    check_target_range,
)
from cookbook_ops.reference.label_smoothing_cross_entropy import (
    label_smoothing_cross_entropy_backward,
    label_smoothing_cross_entropy_forward,
)
from cookbook_ops.reference.mixup_cross_entropy import (
    mixup_cross_entropy_backward,
    mixup_cross_entropy_forward,
)

# Default chunk: as many rows as keep one chunk of logits within LOGITS_CHUNK_BYTES (forward
# holds one chunk of logits and one of its gradient at a time), but at least MIN_CHUNK_ROWS rows
# while that stays within 4x the budget: every GEMM call streams (and packs) all of the weight,
# so chunks of a few dozen rows leave a wide head far below the GEMM's peak rate.
LOGITS_CHUNK_BYTES = 24 * 1024 * 1024
MIN_CHUNK_ROWS = 256

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def default_chunk_size(num_rows: int, num_classes: int, dtype: torch.dtype) -> int:
    """Rows per chunk: see :data:`LOGITS_CHUNK_BYTES` and :data:`MIN_CHUNK_ROWS`."""
    row_bytes = max(num_classes, 1) * torch.empty((), dtype=dtype).element_size()
    rows = max(1, LOGITS_CHUNK_BYTES // row_bytes)
    if rows < MIN_CHUNK_ROWS:
        rows = max(rows, min(MIN_CHUNK_ROWS, 4 * LOGITS_CHUNK_BYTES // row_bytes))
    return max(1, min(num_rows, rows))


# --- the chunk loop ---------------------------------------------------------------------------


def _cross_entropy_ops(backend: str, two_targets: bool):
    """(forward, backward) of the cross-entropy op pair that ``backend`` runs."""
    if backend == "reference":
        if two_targets:
            return mixup_cross_entropy_forward, mixup_cross_entropy_backward
        return label_smoothing_cross_entropy_forward, label_smoothing_cross_entropy_backward
    if backend not in ("cpu", "cuda", "triton"):
        raise ValueError(f"backend must be reference, cpu, cuda or triton; got {backend!r}")
    if two_targets:
        names = (_library.MIXUP_CE_FORWARD, _library.MIXUP_CE_BACKWARD)
    else:
        names = (_library.LSCE_FORWARD, _library.LSCE_BACKWARD)
    return tuple(_library.op_for(name, backend) for name in names)


def _targets(target_a, target_b):
    return (target_a,) if target_b is None else (target_a, target_b)


def _new_grads(input, weight, bias, needs_grad):
    """Gradient buffers (contiguous; an empty tensor where no gradient is wanted). The fake
    kernels build the same."""
    like = (input, weight, bias if bias is not None else weight.new_empty((weight.shape[0],)))
    return [
        torch.empty_like(t, memory_format=torch.contiguous_format) if need else t.new_empty((0,))
        for t, need in zip(like, needs_grad)
    ]


class _GradAccumulator:
    """Adds the gradients of one chunk: grad_input rows from dlogits @ weight, and the sums over
    rows of dlogits^T @ input (weight) and of dlogits (bias, summed in op-math)."""

    def __init__(self, input, weight, bias, needs_grad):
        self.weight = weight
        self.needs = tuple(needs_grad)
        self.grad_input, self.grad_weight, self.grad_bias = _new_grads(
            input, weight, bias, needs_grad
        )
        self.bias_sum = None
        if self.needs[2]:
            self.bias_sum = torch.zeros(
                weight.shape[0], dtype=opmath_dtype(weight.dtype), device=weight.device
            )
        self.first = True

    def add(self, dlogits, x, start: int, stop: int) -> None:
        if self.needs[0]:
            torch.mm(dlogits, self.weight, out=self.grad_input[start:stop])
        if self.needs[1]:
            if self.first:
                torch.mm(dlogits.t(), x, out=self.grad_weight)
            else:
                self.grad_weight.addmm_(dlogits.t(), x)
        if self.needs[2]:
            if dlogits.dtype in (torch.float16, torch.bfloat16):
                # a GEMV accumulates in float32 without a float32 copy of the chunk; its
                # result is rounded once per chunk, as the weight gradient is
                ones = dlogits.new_ones(dlogits.shape[0])
                self.bias_sum += torch.mv(dlogits.t(), ones)
            else:
                self.bias_sum += dlogits.sum(0)
        self.first = False

    def result(self):
        if self.needs[1] and self.first:  # no rows
            self.grad_weight.zero_()
        if self.needs[2]:
            self.grad_bias.copy_(self.bias_sum)
        return self.grad_input, self.grad_weight, self.grad_bias


def _chunk_logits(x, weight, bias):
    if bias is None:
        return torch.mm(x, weight.t())
    return torch.addmm(bias, x, weight.t())


def _chunks(n: int, chunk_size: int):
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int; got {chunk_size}")
    for start in range(0, n, chunk_size):
        yield start, min(n, start + chunk_size)


def _new_rows(input, n_targets: int):
    n = input.shape[0]
    dtype = opmath_dtype(input.dtype)
    shape = (n,) if n_targets == 1 else (n, n_targets)
    return (
        input.new_empty(shape, dtype=dtype),
        input.new_empty((n,), dtype=dtype),
        input.new_empty((n,), dtype=torch.bool),
    )


def _forward_impl(
    input, weight, bias, target_a, target_b, class_weight, on_value, off_value, ignore_index,
    chunk_size, backend,
):  # fmt: skip
    targets = _targets(target_a, target_b)
    forward, _ = _cross_entropy_ops(backend, target_b is not None)
    rows, lse, correct = _new_rows(input, len(targets))
    for start, stop in _chunks(input.shape[0], chunk_size):
        logits = _chunk_logits(input[start:stop], weight, bias)
        chunk = [t[start:stop] for t in targets]
        loss_c, lse_c, correct_c = forward(
            logits, *chunk, class_weight, on_value, off_value, ignore_index
        )
        rows[start:stop], lse[start:stop], correct[start:stop] = loss_c, lse_c, correct_c
    return rows, lse, correct


def _backward_impl(
    grad_loss, input, weight, bias, target_a, target_b, class_weight, lse, on_value, off_value,
    ignore_index, chunk_size, backend, needs_grad,
):  # fmt: skip
    targets = _targets(target_a, target_b)
    _, backward = _cross_entropy_ops(backend, target_b is not None)
    grads = _GradAccumulator(input, weight, bias, needs_grad)
    if any(needs_grad):
        for start, stop in _chunks(input.shape[0], chunk_size):
            x = input[start:stop]
            logits = _chunk_logits(x, weight, bias)
            chunk = [t[start:stop] for t in targets]
            dlogits = backward(
                grad_loss[start:stop].contiguous(), logits, *chunk, class_weight,
                lse[start:stop], on_value, off_value, ignore_index,
            )  # fmt: skip
            del logits
            grads.add(dlogits, x, start, stop)
            del dlogits  # before the next chunk's logits exist
    return grads.result()


def _reduced_impl(
    input, weight, bias, target_a, target_b, class_weight, row_scale, on_value, off_value,
    ignore_index, chunk_size, backend, needs_grad,
):  # fmt: skip
    targets = _targets(target_a, target_b)
    forward, backward = _cross_entropy_ops(backend, target_b is not None)
    rows, _, correct = _new_rows(input, len(targets))
    grads = _GradAccumulator(input, weight, bias, needs_grad)
    with_grad = any(needs_grad)
    for start, stop in _chunks(input.shape[0], chunk_size):
        x = input[start:stop]
        logits = _chunk_logits(x, weight, bias)
        chunk = [t[start:stop] for t in targets]
        loss_c, lse_c, correct_c = forward(
            logits, *chunk, class_weight, on_value, off_value, ignore_index
        )
        rows[start:stop], correct[start:stop] = loss_c, correct_c
        if with_grad:
            # the gradient of sum(row_scale * rows) with respect to this chunk of logits
            dlogits = backward(
                row_scale[start:stop].contiguous(), logits, *chunk, class_weight, lse_c,
                on_value, off_value, ignore_index,
            )  # fmt: skip
            del logits
            grads.add(dlogits, x, start, stop)
            del dlogits  # before the next chunk's logits exist
    loss = (row_scale.to(rows.dtype) * rows).sum()
    return (loss, rows, correct, *grads.result())


# --- fake kernels and autograd ----------------------------------------------------------------


def _check_fake(input, weight, bias, target_a, target_b):
    torch._check(input.dim() == 2, lambda: f"input must be (N, K), got {tuple(input.shape)}")
    torch._check(weight.dim() == 2, lambda: f"weight must be (C, K), got {tuple(weight.shape)}")
    torch._check(
        weight.shape[1] == input.shape[1],
        lambda: f"weight has {weight.shape[1]} input features but input has {input.shape[1]}",
    )
    torch._check(weight.dtype == input.dtype, lambda: "weight and input must share a dtype")
    if bias is not None:
        torch._check(
            bias.dim() == 1 and bias.shape[0] == weight.shape[0],
            lambda: f"bias must be ({weight.shape[0]},), got {tuple(bias.shape)}",
        )
    for name, t in (("target_a", target_a), ("target_b", target_b)):
        if t is not None:
            torch._check(
                t.dim() == 1 and t.shape[0] == input.shape[0] and t.dtype == torch.int64,
                lambda name=name: f"{name} must be int64 (N,) = ({input.shape[0]},)",
            )


def _forward_fake(input, weight, bias, target_a, target_b, *_args):
    _check_fake(input, weight, bias, target_a, target_b)
    return _new_rows(input, 1 if target_b is None else 2)


def _backward_fake(grad_loss, input, weight, bias, target_a, target_b, *args):
    _check_fake(input, weight, bias, target_a, target_b)
    return tuple(_new_grads(input, weight, bias, args[-1]))


def _reduced_fake(input, weight, bias, target_a, target_b, class_weight, row_scale, *args):
    _check_fake(input, weight, bias, target_a, target_b)
    rows, _, correct = _new_rows(input, 1 if target_b is None else 2)
    torch._check(
        row_scale.shape == rows.shape,
        lambda: f"row_scale must be {tuple(rows.shape)}, got {tuple(row_scale.shape)}",
    )
    loss = rows.new_empty(())
    return (loss, rows, correct, *_new_grads(input, weight, bias, args[-1]))


def _no_double_backward() -> None:
    if torch.is_grad_enabled():
        raise RuntimeError(
            "linear_cross_entropy does not support double backward (create_graph=True): its "
            "gradients come from the fused kernels, which are not differentiable again"
        )


def _forward_setup(ctx, inputs, output):
    input, weight, bias, target_a, target_b, class_weight, *options = inputs
    _, lse, correct = output
    ctx.save_for_backward(input, weight, bias, target_a, target_b, class_weight, lse)
    ctx.options = options  # on, off, ignore_index, chunk_size, backend
    ctx.mark_non_differentiable(lse, correct)
    ctx.set_materialize_grads(False)


def _forward_backward(_backend_name):
    def backward(ctx, grad_loss, _grad_lse, _grad_correct):
        needs = tuple(bool(v) for v in ctx.needs_input_grad[:3])
        grads = (None, None, None)
        if any(needs) and grad_loss is not None:
            _no_double_backward()
            input, weight, bias, target_a, target_b, class_weight, lse = ctx.saved_tensors
            grads = _library.op(_library.LINEAR_CE_BACKWARD)(
                grad_loss.contiguous(), input, weight, bias, target_a, target_b, class_weight,
                lse, *ctx.options, list(needs),
            )  # fmt: skip
            grads = tuple(g if need else None for g, need in zip(grads, needs))
        return (*grads,) + (None,) * 8

    return backward


def _reduced_setup(ctx, inputs, output):
    ctx.needs_grad = tuple(inputs[-1])
    _, rows, correct, *grads = output
    ctx.save_for_backward(rows, *grads)
    ctx.mark_non_differentiable(rows, correct, *grads)
    # no zero-filled gradients for the outputs nobody differentiates (one is weight-sized)
    ctx.set_materialize_grads(False)
    ctx.applied = None  # the grad_output the saved gradients were scaled by in place


def _is_plain(t: torch.Tensor) -> bool:
    """Whether ``t`` is an ordinary eager tensor (not traced, faked or wrapped), whose buffer
    may be scaled in place."""
    return (
        type(t) is torch.Tensor
        and not torch.compiler.is_compiling()
        and not torch._is_functional_tensor(t)
        and torch._C._len_torch_dispatch_stack() == 0
    )


def _scale_saved(ctx, grads, grad_output):
    """The gradients formed in forward (for grad_output 1), times ``grad_output``."""
    if not all(_is_plain(g) for g in grads):
        return [g * grad_output for g in grads]
    if ctx.applied is None:
        # The buffers are private to this graph: scale them where they are, and remember by
        # how much, in case a retained graph is run backward again. On the CPU reading the
        # scalar costs nothing, and loss.backward()'s 1 needs no pass over the buffers.
        if grad_output.device.type != "cpu" or float(grad_output) != 1.0:
            for g in grads:
                g.data.mul_(grad_output)
        ctx.applied = grad_output.detach().clone()
        return grads
    ratio = grad_output / ctx.applied
    return [g * ratio for g in grads]


def _reduced_backward(_backend_name):
    def backward(ctx, grad_loss, _grad_rows, _grad_correct, *_grad_grads):
        needs = tuple(bool(v) for v in ctx.needs_input_grad[:3])
        rows, *saved = ctx.saved_tensors
        grads = [None, None, None]
        if grad_loss is None:  # grads are not materialized: the loss was not differentiated
            return (None,) * 13
        if any(needs):
            _no_double_backward()
            if any(n and not f for n, f in zip(needs, ctx.needs_grad)):
                raise RuntimeError(
                    "linear_cross_entropy_reduced: a gradient was requested that forward did "
                    "not form (needs_grad)"
                )
            wanted = [i for i in range(3) if needs[i]]
            scaled = _scale_saved(ctx, [saved[i] for i in wanted], grad_loss)
            for i, g in zip(wanted, scaled):
                grads[i] = g
        grad_scale = grad_loss * rows if ctx.needs_input_grad[6] else None
        return (*grads, None, None, None, grad_scale) + (None,) * 6

    return backward


_library.register(
    _library.LINEAR_CE_FORWARD,
    _forward_fake,
    backward=_forward_backward,
    setup_context=_forward_setup,
    reference=_forward_impl,
)
_library.register(_library.LINEAR_CE_BACKWARD, _backward_fake, reference=_backward_impl)
_library.register(
    _library.LINEAR_CE_REDUCED,
    _reduced_fake,
    backward=_reduced_backward,
    setup_context=_reduced_setup,
    reference=_reduced_impl,
)


# --- public API -------------------------------------------------------------------------------


def _check_linear(input, weight, bias, chunk_size):
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in _FLOATS:
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
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype != torch.int64:
        raise TypeError(f"{name} must be an int64 tensor of class indices, got {target.dtype}")
    if target.shape != (input.shape[0],):
        raise ValueError(
            f"{name} must have shape ({input.shape[0]},) for input of shape "
            f"{tuple(input.shape)}, got {tuple(target.shape)}"
        )
    if target.device != input.device:
        raise ValueError(f"{name} is on {target.device} but input is on {input.device}")
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


def _check_lam(lam, input, dtype):
    if isinstance(lam, bool) or not isinstance(lam, (int, float, torch.Tensor)):
        raise TypeError(f"lam must be a float or a tensor, got {type(lam).__name__}")
    if not isinstance(lam, torch.Tensor):
        if not 0.0 <= float(lam) <= 1.0:
            raise ValueError(f"lam must be in [0, 1]; got {lam}")
        return float(lam)
    n = input.shape[0]
    if not lam.is_floating_point():
        raise TypeError(f"lam must be a floating-point tensor, got {lam.dtype}")
    if lam.dim() > 1 or (lam.dim() == 1 and lam.shape[0] != n):
        raise ValueError(f"lam must be a scalar, a 0-d tensor or ({n},); got {tuple(lam.shape)}")
    if lam.device != input.device:
        raise ValueError(f"lam is on {lam.device} but input is on {input.device}")
    check_cpu_values(
        lambda: (lam >= 0) & (lam <= 1), lam.device, ValueError, "lam must be in [0, 1]"
    )
    return lam.to(dtype)


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
    lam = _check_lam(lam, input, dtype)
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
