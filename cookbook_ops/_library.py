"""Every operator schema of cookbook_ops, defined once.

The C++/CUDA extension only registers kernels for these names (TORCH_LIBRARY_IMPL); the
Triton kernels register under a twin of each name (same schema) so that both GPU backends can be
installed side by side and chosen per call. :data:`OPS` says which ops each family has and which
backends have kernels for it; :func:`twin` and :func:`op_for` name and find the op a backend
runs, and :func:`register` gives an op and its twin their fake kernel and autograd formula and
the op its reference fallback. Fake (meta) kernels and autograd formulas live beside the public
API in ``cookbook_ops/ops/<op>.py``.

Conventions shared by every op:
- ``on_value``/``off_value`` are runtime floats (a smoothing schedule never recompiles).
- Per-row results (``loss``, ``lse``) are in the op-math dtype of the logits: float32 for
  16-bit and float32 inputs, float64 for float64 inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

NAMESPACE = "cookbook_ops"

lib = torch.library.Library(NAMESPACE, "DEF")

# The backends with their own registered op names; every other backend runs the op itself (the
# extension's CPU and CUDA kernels, and the reference as its CompositeExplicitAutograd fallback).
_TWIN_SUFFIX = {"triton": "_triton"}
# One backend per registered name of an op: the op itself, then each twin.
REGISTERED = ("cpu", *_TWIN_SUFFIX)


def twin(name: str, backend: str) -> str:
    """The name of the op ``backend`` runs for the op ``name`` (its twin, or the op itself)."""
    return name + _TWIN_SUFFIX.get(backend, "")


def _define(name: str, schema: str) -> None:
    """Declare ``name`` and every twin of it with one schema."""
    for backend in REGISTERED:
        lib.define(twin(name, backend) + schema)


# --- label-smoothed cross-entropy ----------------------------------------------------------
# logits (N, C) with unit stride along C; target (N,) int64; weight (C,) or None.
# loss_i = (on-off) * w_y * (lse - x_y) + off * sum_c w_c * (lse - x_c),
# 0 where target == ignore_index.
# correct_i = argmax(logits_i) == target_i.
_LSCE_FORWARD = (
    "(Tensor logits, Tensor target, Tensor? weight, float on_value, float off_value, "
    "int ignore_index) -> (Tensor loss, Tensor lse, Tensor correct)"
)
# grad_loss (N,) in op-math dtype; returns d loss / d logits, same shape and dtype as logits.
_LSCE_BACKWARD = (
    "(Tensor grad_loss, Tensor logits, Tensor target, Tensor? weight, Tensor lse, "
    "float on_value, float off_value, int ignore_index) -> Tensor"
)

LSCE_FORWARD = "label_smoothing_cross_entropy_forward"
LSCE_BACKWARD = "label_smoothing_cross_entropy_backward"

_define(LSCE_FORWARD, _LSCE_FORWARD)
_define(LSCE_BACKWARD, _LSCE_BACKWARD)
# The backward's closed form in differentiable ATen operators (lse recomputed from the logits;
# the lse argument is not read): what a create_graph backward of the compiled kernels runs.
LSCE_BACKWARD_COMPOSITE = LSCE_BACKWARD + "_composite"
lib.define(LSCE_BACKWARD_COMPOSITE + _LSCE_BACKWARD)

# --- bilinear pooling with signed sqrt and L2 normalization -------------------------------
# x (N, D1, M) contiguous; y (N, D2, M) contiguous or None (one stream: y = x).
# G = x y^T / M, v = sign(G) sqrt(|G| + eps), z = v / max(||v||, 1e-12) flattened to
# (N, D1*D2) in the dtype of x; norm (N,) = ||v|| (op-math dtype, not clamped).
_BILINEAR_FORWARD = "(Tensor x, Tensor? y, float eps) -> (Tensor z, Tensor norm)"
# Gradients from x, y, z and norm only (never G): [grad_x] or [grad_x, grad_y].
_BILINEAR_BACKWARD = "(Tensor grad_z, Tensor x, Tensor? y, Tensor z, Tensor norm) -> Tensor[]"

BILINEAR_FORWARD = "bilinear_pool_forward"
BILINEAR_BACKWARD = "bilinear_pool_backward"

_define(BILINEAR_FORWARD, _BILINEAR_FORWARD)
_define(BILINEAR_BACKWARD, _BILINEAR_BACKWARD)

# --- mixup and CutMix blends --------------------------------------------------------------
# x (N, ...) with each sample one dense block (contiguous or channels_last); the output has
# x's strides. lam (N,) in op-math dtype (float32; float64 for float64 x); index (N,) int64,
# a permutation. out_i = lam_i x_i + (1 - lam_i) x_index[i] (uint8: rounded to nearest).
MIXUP_FORWARD = "mixup_forward"
MIXUP_BACKWARD = "mixup_backward"
MIXUP_PAIRS = "mixup_pairs"
CUTMIX_FORWARD = "cutmix_forward"
CUTMIX_BACKWARD = "cutmix_backward"
_MIXUP_SCHEMAS = {
    MIXUP_FORWARD: "(Tensor x, Tensor lam, Tensor index) -> Tensor",
    # grad_x_j = lam_j g_j + (1 - lam_k) g_k with index[k] = j
    MIXUP_BACKWARD: "(Tensor grad_out, Tensor lam, Tensor index) -> Tensor",
    # in place; pairs is an involution (pairs[pairs[i]] == i): each pair read once, written once
    MIXUP_PAIRS: "(Tensor(a!) x, Tensor lam, Tensor pairs) -> ()",
    # x (N, C, H, W); boxes (N, 4) int64 rows (y0, x0, y1, x1), half-open, inside the image:
    # out_i = x_index[i] inside box_i, x_i outside
    CUTMIX_FORWARD: "(Tensor x, Tensor boxes, Tensor index) -> Tensor",
    # grad_x_j = g_j outside box_j + g_k inside box_k, index[k] = j
    CUTMIX_BACKWARD: "(Tensor grad_out, Tensor boxes, Tensor index) -> Tensor",
}
for _name, _schema in _MIXUP_SCHEMAS.items():
    _define(_name, _schema)

# --- mixup cross-entropy: the label-smoothed cross-entropy with two target slots -------------
# One pass over each row gives the loss against both targets (the row's max, sum-exp and sum
# are shared); lam and the reduction are applied outside, so the kernels never see lam.
# loss (N, 2) op-math: loss[i, k] = the label-smoothed loss of row i against target_k[i]
# (k = 0: target_a, 1: target_b), 0 where target_k[i] == ignore_index; lse (N,);
# correct_i = argmax(logits_i) == target_a[i].
_MIXUP_CE_FORWARD = (
    "(Tensor logits, Tensor target_a, Tensor target_b, Tensor? weight, float on_value, "
    "float off_value, int ignore_index) -> (Tensor loss, Tensor lse, Tensor correct)"
)
# grad_loss (N, 2) op-math: d/d logits of sum_ik grad_loss[i, k] * loss[i, k], shaped and typed
# like logits: g_ik ((on-off) w_yk + off W) p - (on-off) g_ik w_yk [c == y_k] - off g_ik w_c,
# summed over the non-ignored slots k.
_MIXUP_CE_BACKWARD = (
    "(Tensor grad_loss, Tensor logits, Tensor target_a, Tensor target_b, Tensor? weight, "
    "Tensor lse, float on_value, float off_value, int ignore_index) -> Tensor"
)

MIXUP_CE_FORWARD = "mixup_cross_entropy_forward"
MIXUP_CE_BACKWARD = "mixup_cross_entropy_backward"

_define(MIXUP_CE_FORWARD, _MIXUP_CE_FORWARD)
_define(MIXUP_CE_BACKWARD, _MIXUP_CE_BACKWARD)
MIXUP_CE_BACKWARD_COMPOSITE = MIXUP_CE_BACKWARD + "_composite"  # as LSCE_BACKWARD_COMPOSITE
lib.define(MIXUP_CE_BACKWARD_COMPOSITE + _MIXUP_CE_BACKWARD)

# --- cross-entropy against probability targets (F.cross_entropy with a float target) ---------
# logits (N, C) with unit stride along C; target (N, C) in the dtype of logits, unit stride
# along C; weight (C,) or None. Row i, with q = target_i and a_c = w_c ((on - off) q_c + off)
# (w = 1 without class weights; uniform smoothing e gives (1 - e) q + e / C, PyTorch's
# label_smoothing):  loss_i = S_i lse_i - sum_c a_c x_c  with  target_sum S_i = sum_c a_c,
# in IEEE arithmetic as PyTorch's -sum_c a_c log p_c: a -inf logit gives +inf where a_c > 0 and
# NaN where a_c == 0. correct_i = argmax(logits_i) == argmax(target_i).
_SOFT_CE_FORWARD = (
    "(Tensor logits, Tensor target, Tensor? weight, float on_value, float off_value) "
    "-> (Tensor loss, Tensor lse, Tensor target_sum, Tensor correct)"
)
# grad_loss (N,) op-math; d loss / d logits = g_i (S_i p_c - a_c), shaped and typed like logits.
_SOFT_CE_BACKWARD = (
    "(Tensor grad_loss, Tensor logits, Tensor target, Tensor? weight, Tensor lse, "
    "Tensor target_sum, float on_value, float off_value) -> Tensor"
)

SOFT_CE_FORWARD = "soft_target_cross_entropy_forward"
SOFT_CE_BACKWARD = "soft_target_cross_entropy_backward"

_define(SOFT_CE_FORWARD, _SOFT_CE_FORWARD)
_define(SOFT_CE_BACKWARD, _SOFT_CE_BACKWARD)
SOFT_CE_BACKWARD_COMPOSITE = SOFT_CE_BACKWARD + "_composite"  # as LSCE_BACKWARD_COMPOSITE
lib.define(SOFT_CE_BACKWARD_COMPOSITE + _SOFT_CE_BACKWARD)
COMPOSITE_BACKWARDS = (
    LSCE_BACKWARD_COMPOSITE,
    MIXUP_CE_BACKWARD_COMPOSITE,
    SOFT_CE_BACKWARD_COMPOSITE,
)

# --- uint8 images to a normalized float batch -------------------------------------------------
# images uint8, (N, H, W, C) when nhwc else (N, C, H, W), contiguous; mean, std (C,) float32 in
# 0..1 units; flip (N,) bool or None: sample j is mirrored along W before anything else;
# lam (N,) float32 and index (N,) int64 permutation, both or neither: the mixup blend of the
# normalized (and flipped) samples, out_i = lam_i v_i + (1 - lam_i) v_index[i].
# v = (x / 255 - mean_c) / std_c in float32 (the arithmetic of ToTensor + Normalize), rounded
# once to out_dtype; the result is (N, C, H, W), channels_last in memory when channels_last.
_NORMALIZE_IMAGES = (
    "(Tensor images, Tensor mean, Tensor std, Tensor? flip, Tensor? lam, Tensor? index, "
    "bool nhwc, ScalarType out_dtype, bool channels_last) -> Tensor"
)
NORMALIZE_IMAGES = "normalize_images_forward"
_define(NORMALIZE_IMAGES, _NORMALIZE_IMAGES)

# --- resized crop + flip + normalize (+ mixup): the cookbook's train/val transforms ------------
# images: N uint8 tensors, each (H_i, W_i, C) when nhwc else (C, H_i, W_i), contiguous, all on
# one device (a batched (N, H, W, C) tensor is passed as its N views); boxes (N, 4) int64 rows
# (top, left, height, width), inside image i and non-empty; out_h, out_w > 0. Per image, the
# box region of x / 255 is resized to (out_h, out_w) by bilinear interpolation with
# align_corners=False (with antialias: torchvision's/ATen's triangle filter widened by the
# scale when downscaling, plain bilinear when upscaling), accumulated in float32; then mirrored
# along W where flip is set, normalized with mean/std (C,) float32 and blended as
# normalize_images does (lam (N,) float32, index (N,) int64 permutation, both or neither),
# rounded once to out_dtype. Result (N, C, out_h, out_w), channels_last when channels_last.
_RESIZED_CROP_NORMALIZE = (
    "(Tensor[] images, Tensor boxes, int out_h, int out_w, Tensor mean, Tensor std, "
    "Tensor? flip, Tensor? lam, Tensor? index, bool nhwc, bool antialias, ScalarType out_dtype, "
    "bool channels_last) -> Tensor"
)
RESIZED_CROP_NORMALIZE = "resized_crop_normalize_forward"
_define(RESIZED_CROP_NORMALIZE, _RESIZED_CROP_NORMALIZE)

# --- fused classifier head: linear layer + cross-entropy, never the N x C logits ----------------
# Composite ops written in Python: rows of input go through ATen GEMMs chunk_size at a time, and
# each chunk of logits through the cross-entropy ops of ``backend`` (a concrete backend name:
# reference, cpu, cuda or triton); no backend has kernels of its own for them, so they are not
# in OPS. input (N, K), weight (C, K), bias (C,) or None, all one dtype; target_b None for one
# target slot; class_weight (C,) op-math or None. needs_grad says which of (input, weight,
# bias) get a gradient (an empty tensor stands in for the others).
# Per-row losses (N,) (N, 2 with target_b) and lse (N,) in op-math, as the cross-entropy ops.
_LINEAR_CE_FORWARD = (
    "(Tensor input, Tensor weight, Tensor? bias, Tensor target_a, Tensor? target_b, "
    "Tensor? class_weight, float on_value, float off_value, int ignore_index, int chunk_size, "
    "str backend) -> (Tensor loss, Tensor lse, Tensor correct)"
)
# Recomputes each chunk of logits from input and weight (reduction="none").
_LINEAR_CE_BACKWARD = (
    "(Tensor grad_loss, Tensor input, Tensor weight, Tensor? bias, Tensor target_a, "
    "Tensor? target_b, Tensor? class_weight, Tensor lse, float on_value, float off_value, "
    "int ignore_index, int chunk_size, str backend, bool[3] needs_grad) "
    "-> (Tensor grad_input, Tensor grad_weight, Tensor grad_bias)"
)
# Scalar reductions: loss = sum(row_scale * rows), row_scale shaped like rows (op-math). The
# gradients of that loss are formed chunk by chunk in the same pass, while each chunk of logits
# is at hand; backward only scales them by the scalar grad_output (3 GEMMs in all, not 4).
_LINEAR_CE_REDUCED = (
    "(Tensor input, Tensor weight, Tensor? bias, Tensor target_a, Tensor? target_b, "
    "Tensor? class_weight, Tensor row_scale, float on_value, float off_value, int ignore_index, "
    "int chunk_size, str backend, bool[3] needs_grad) -> (Tensor loss, Tensor rows, "
    "Tensor correct, Tensor grad_input, Tensor grad_weight, Tensor grad_bias)"
)
LINEAR_CE_FORWARD = "linear_cross_entropy_forward"
LINEAR_CE_BACKWARD = "linear_cross_entropy_backward"
LINEAR_CE_REDUCED = "linear_cross_entropy_reduced"
_define(LINEAR_CE_FORWARD, _LINEAR_CE_FORWARD)
_define(LINEAR_CE_BACKWARD, _LINEAR_CE_BACKWARD)
_define(LINEAR_CE_REDUCED, _LINEAR_CE_REDUCED)


@dataclass(frozen=True)
class OpFamily:
    """A forward op, the ops that go with it (its backward, in-place variants), and the backends
    with kernels for them (cpu and cuda from the extension, triton from the twins)."""

    forward: str
    others: tuple[str, ...]
    backends: tuple[str, ...] = ("cpu", "cuda", "triton")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.forward, *self.others)


# Every op family, by its forward op name (backends are probed per op).
OPS = {
    family.forward: family
    for family in (
        OpFamily(LSCE_FORWARD, (LSCE_BACKWARD,)),
        OpFamily(BILINEAR_FORWARD, (BILINEAR_BACKWARD,)),
        OpFamily(MIXUP_FORWARD, (MIXUP_BACKWARD, MIXUP_PAIRS)),
        OpFamily(CUTMIX_FORWARD, (CUTMIX_BACKWARD,)),
        OpFamily(MIXUP_CE_FORWARD, (MIXUP_CE_BACKWARD,)),
        OpFamily(SOFT_CE_FORWARD, (SOFT_CE_BACKWARD,)),
        OpFamily(NORMALIZE_IMAGES, ()),
        # kernels land backend by backend; the reference serves the devices of the others
        OpFamily(RESIZED_CROP_NORMALIZE, (), backends=("cpu", "triton")),
    )
}
FORWARD_OPS = tuple(OPS)


def qualified(name: str) -> str:
    return f"{NAMESPACE}::{name}"


def op(name: str):
    return getattr(torch.ops.cookbook_ops, name).default


def op_for(name: str, backend: str):
    """The op overload that ``backend`` runs for the op ``name``."""
    return op(twin(name, backend))


def _autograd_kernel(overload, backward: Callable, setup_context: Callable) -> Callable:
    """The Autograd-key kernel of ``overload``: what ``torch.library.register_autograd``
    registers, less its per-call work that these ops do not need. Every argument of these
    schemas is positional and always passed (no defaults to fill back in, no keyword-only or
    tensor-list arguments), so the arguments go to ``setup_context`` as the dispatcher gave
    them; filling defaults back in from the schema cost more than the whole kernel call of a
    small problem. ``backward`` and ``setup_context`` have register_autograd's signatures."""
    after_autograd = torch._C._after_autograd_keyset

    def redispatch(keyset, args):
        with torch._C._AutoDispatchBelowAutograd():
            return overload.redispatch(keyset & after_autograd, *args)

    def forward(ctx, *args):
        # the last argument is the dispatch key set, passed through apply
        output = redispatch(args[-1], args[:-1])
        setup_context(ctx, args[:-1], output)
        return output

    def backward_with_keyset(ctx, *grads):
        needs_input_grad = ctx.needs_input_grad
        ctx.needs_input_grad = needs_input_grad[:-1]
        try:
            grads_in = backward(ctx, *grads)
        finally:
            ctx.needs_input_grad = needs_input_grad
        if not isinstance(grads_in, tuple):
            grads_in = (grads_in,)
        return (*grads_in, None)

    function = type(
        f"{overload._opname}_autograd",
        (torch.autograd.Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(backward_with_keyset)},
    )

    def kernel(keyset, *args):
        if torch._C.is_grad_enabled() and torch._C._any_requires_grad(*args):
            return function.apply(*args, keyset)
        return redispatch(keyset, args)

    return kernel


def _has_compiled_autograd(name: str) -> bool:
    """Whether the extension registers the op's Autograd kernel in C++ (csrc/autograd/): then
    that kernel serves the op itself, and the Python formula only its Triton twin."""
    from cookbook_ops import _backend  # noqa: F401  (loads the extension, if there is one)

    return torch._C._dispatch_has_kernel_for_dispatch_key(qualified(name), "Autograd")


def register(
    name: str,
    fake: Callable,
    *,
    backward: Callable[[str], Callable] | None = None,
    setup_context: Callable | None = None,
    reference: Callable | None = None,
) -> None:
    """Give the op ``name`` and each twin of it the fake kernel ``fake`` and, when ``backward``
    is given and the extension has no C++ autograd for that name, the autograd formula
    ``backward(b)`` for the name backend ``b`` runs (so that a
    formula can call the backward op of the same backend), with ``setup_context``. The pure
    PyTorch ``reference`` becomes the op's CompositeExplicitAutograd kernel: it serves any
    device the extension has no kernel for (all devices when the extension is missing); the
    C++/CUDA registrations take precedence where they exist. Twins get no fallback."""
    compiled_autograd = _has_compiled_autograd(name)
    for backend in REGISTERED:
        qualified_name = qualified(twin(name, backend))
        torch.library.register_fake(qualified_name, fake)
        if backward is not None and not (backend == "cpu" and compiled_autograd):
            lib.impl(
                twin(name, backend),
                _autograd_kernel(op(twin(name, backend)), backward(backend), setup_context),
                "Autograd",
                with_keyset=True,
            )
    if reference is not None:
        torch.library.impl(qualified(name), "CompositeExplicitAutograd")(reference)
