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
    _, lam, index = inputs
    ctx.save_for_backward(lam, index)


def _cutmix_setup(ctx, inputs, output):
    _, boxes, index = inputs
    ctx.save_for_backward(boxes, index)


def _make_backward(backward_op):
    def backward(ctx, grad_out):
        first, index = ctx.saved_tensors
        return backward_op(_dense(grad_out), first, index), None, None

    return backward


for _suffix in ("", "_triton"):
    for _fwd, _bwd, _setup in (
        (_library.MIXUP_FORWARD, _library.MIXUP_BACKWARD, _mixup_setup),
        (_library.CUTMIX_FORWARD, _library.CUTMIX_BACKWARD, _cutmix_setup),
    ):
        torch.library.register_fake(_library.qualified(_fwd + _suffix), _same_layout_fake)
        torch.library.register_fake(_library.qualified(_bwd + _suffix), _same_layout_fake)
        torch.library.register_autograd(
            _library.qualified(_fwd + _suffix),
            _make_backward(_library.op(_bwd + _suffix)),
            setup_context=_setup,
        )
    torch.library.register_fake(_library.qualified(_library.MIXUP_PAIRS + _suffix), _pairs_fake)

for _name, _impl in (
    (_library.MIXUP_FORWARD, reference.mixup_forward),
    (_library.MIXUP_BACKWARD, reference.mixup_backward),
    (_library.MIXUP_PAIRS, reference.mixup_pairs),
    (_library.CUTMIX_FORWARD, reference.cutmix_forward),
    (_library.CUTMIX_BACKWARD, reference.cutmix_backward),
):
    torch.library.impl(_library.qualified(_name), "CompositeExplicitAutograd")(_impl)


# --- argument checks -----------------------------------------------------------------------


def _check_x(x, min_dim=1):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _BLEND_DTYPES:
        raise TypeError(f"x must be float16/bfloat16/float32/float64 or uint8, got {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"x must have at least {min_dim} dimensions (N, ...), got {x.dim()}")


def check_index(index, n, device, name):
    if not isinstance(index, torch.Tensor):
        raise TypeError(f"{name} must be an int64 tensor, got {type(index).__name__}")
    if index.dtype != torch.int64:
        raise TypeError(f"{name} must be int64, got {index.dtype}")
    if index.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) for a batch of {n}, got {tuple(index.shape)}"
        )
    if index.device != device:
        raise ValueError(f"{name} is on {index.device} but x is on {device}")


def on_cpu_eager(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and not torch.compiler.is_compiling()


def check_permutation(index, name="index"):
    if on_cpu_eager(index) and index.numel() > 0:
        expected = torch.arange(index.numel())
        if not torch.equal(torch.sort(index).values, expected):
            raise ValueError(f"{name} must be a permutation of 0..{index.numel() - 1}")


def lam_tensor(lam, x) -> torch.Tensor:
    """lam as an (N,) tensor in op-math precision on x's device, without a host sync."""
    n = x.shape[0]
    dtype = reference.opmath_dtype(x.dtype)
    if isinstance(lam, torch.Tensor):
        if not lam.is_floating_point():
            raise TypeError(f"lam must be a float or a floating tensor, got {lam.dtype}")
        if lam.device != x.device and lam.dim() != 0:
            raise ValueError(f"lam is on {lam.device} but x is on {x.device}")
        if lam.dim() == 0:
            lam = lam.to(device=x.device, dtype=dtype).expand(n)
        elif lam.shape != (n,):
            raise ValueError(
                f"lam must be a float, a 0-d tensor or shape ({n},), got {tuple(lam.shape)}"
            )
        if on_cpu_eager(lam) and lam.numel() > 0 and not bool(((lam >= 0) & (lam <= 1)).all()):
            raise ValueError("lam must be in [0, 1]")
        return lam.to(dtype).contiguous()
    if isinstance(lam, bool) or not isinstance(lam, (int, float)):
        raise TypeError(f"lam must be a float or a tensor, got {type(lam).__name__}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1]; got {lam}")
    return torch.full((n,), float(lam), dtype=dtype, device=x.device)


def _op(name: str, backend: str):
    return _library.op(name + ("_triton" if backend == "triton" else ""))


# --- public API ----------------------------------------------------------------------------


def mixup(x: torch.Tensor, lam, index: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """``lam * x + (1 - lam) * x[index]`` in one pass, lam a float, a 0-d tensor or (N,) per
    sample. x is (N, ...) in any layout (channels_last stays channels_last); float inputs
    are differentiable; uint8 gives uint8 rounded to nearest. index: (N,) int64 permutation."""
    _check_x(x)
    check_index(index, x.shape[0], x.device, "index")
    check_permutation(index)
    lam_t = lam_tensor(lam, x)
    chosen = _backend.resolve_backend(backend, x.device, _library.MIXUP_FORWARD)
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
    if on_cpu_eager(pairs) and pairs.numel() > 0:
        n = pairs.numel()
        if bool(((pairs < 0) | (pairs >= n)).any()) or not torch.equal(
            pairs[pairs], torch.arange(n)
        ):
            raise ValueError("pairs must be an involution: pairs[pairs[i]] == i for every i")
    if x.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(
            "mixup_pairs_ works in place on data; use cookbook_ops.mixup for gradients"
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
    check_permutation(index)
    if not isinstance(boxes, torch.Tensor) or boxes.dtype != torch.int64:
        raise TypeError("boxes must be an int64 tensor of (y0, x0, y1, x1) rows")
    if boxes.shape != (n, 4):
        raise ValueError(f"boxes must have shape ({n}, 4), got {tuple(boxes.shape)}")
    if boxes.device != x.device:
        raise ValueError(f"boxes is on {boxes.device} but x is on {x.device}")
    if on_cpu_eager(boxes) and n > 0:
        y0, x0, y1, x1 = boxes.unbind(1)
        ok = (0 <= y0) & (y0 <= y1) & (y1 <= height) & (0 <= x0) & (x0 <= x1) & (x1 <= width)
        if not bool(ok.all()):
            i = int((~ok).nonzero()[0, 0])
            raise ValueError(
                f"boxes[{i}] = {boxes[i].tolist()} is not a box inside the {height}x{width} image "
                "(need 0 <= y0 <= y1 <= H and 0 <= x0 <= x1 <= W)"
            )
    boxes = boxes.contiguous()
    lam = reference.cutmix_lam(boxes, height, width)
    chosen = _backend.resolve_backend(backend, x.device, _library.CUTMIX_FORWARD)
    if chosen == "reference":
        mask = reference.box_mask(boxes, height, width).unsqueeze(1)
        return torch.where(mask, x[index], x), lam
    return _op(_library.CUTMIX_FORWARD, chosen)(_dense(x), boxes, index), lam
