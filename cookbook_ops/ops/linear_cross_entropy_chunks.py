"""The fused classifier head's ops: the chunk loop they run, their fake kernels and autograd.

Three registered ops serve :func:`cookbook_ops.linear_cross_entropy` and
:func:`cookbook_ops.linear_mixup_cross_entropy` (see that module for the method, memory and
precision): ``linear_cross_entropy_forward`` (per-row losses and lse, ``reduction="none"``), its
backward (which recomputes each chunk of logits), and ``linear_cross_entropy_reduced`` (the
scalar loss with the gradients formed chunk by chunk in the same pass). They are written in
Python around ATen GEMMs and the cross-entropy ops of the chosen backend, and registered here
through the shared helper of :mod:`cookbook_ops._library`.
"""

from __future__ import annotations

import torch

from cookbook_ops import _library
from cookbook_ops._dtypes import opmath_dtype
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

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


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
