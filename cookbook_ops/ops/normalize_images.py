"""Public uint8-images-to-normalized-batch op: argument checks, fake kernels, backend choice.

One kernel pass reads each uint8 value once and writes each output value once: the flip, the
ToTensor scaling, Normalize, the mixup blend, the layout change and the output rounding all
happen in registers. The op is not differentiable: its input is uint8 and mean/std are
constants of the pipeline (they are detached), so the output never has a ``grad_fn`` and a
``backward()`` through it fails with PyTorch's usual "does not require grad" error.

Nothing here syncs with the host on a GPU in eager mode; value checks that would need a sync
(is ``index`` a permutation, is ``lam`` in [0, 1], is a tensor ``std`` free of zeros) run only
on CPU tensors. mean/std given as Python values or CPU tensors reach the GPU through a cache of
device copies keyed by their values: the first call with new values makes a non-blocking copy
from pinned memory, later calls reuse it (a blocking copy, or ``torch.tensor(..., device=)``,
would wait for everything queued on the stream, every batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cookbook_ops import _backend, _library
from cookbook_ops.ops.mixup import check_index, check_permutation, lam_tensor, on_cpu_eager
from cookbook_ops.reference.normalize_images import normalize_images_forward as reference_forward

LAYOUTS = ("NHWC", "NCHW")
OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MEMORY_FORMATS = (torch.contiguous_format, torch.channels_last)

# --- fake kernels --------------------------------------------------------------------------


def _normalize_fake(images, mean, std, flip, lam, index, nhwc, out_dtype, channels_last):
    torch._check(images.dim() == 4, lambda: f"images must be 4-D, got shape {tuple(images.shape)}")
    torch._check(images.dtype == torch.uint8, lambda: f"images must be uint8, got {images.dtype}")
    if nhwc:
        n, height, width, channels = images.shape
    else:
        n, channels, height, width = images.shape
    for name, t in (("mean", mean), ("std", std)):
        torch._check(
            t.shape == (channels,),
            lambda name=name, t=t: f"{name} must be ({channels},), got {tuple(t.shape)}",
        )
    if flip is not None:
        torch._check(flip.shape == (n,), lambda: f"flip must be ({n},), got {tuple(flip.shape)}")
    torch._check((lam is None) == (index is None), lambda: "lam and index must be given together")
    if lam is not None:
        torch._check(lam.shape == (n,), lambda: f"lam must be ({n},), got {tuple(lam.shape)}")
        torch._check(index.shape == (n,), lambda: f"index must be ({n},), got {tuple(index.shape)}")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return images.new_empty((n, channels, height, width), dtype=out_dtype).contiguous(
        memory_format=memory_format
    )


_library.register(_library.NORMALIZE_IMAGES, _normalize_fake, reference=reference_forward)


# --- device copies of the per-channel constants -------------------------------------------

# (device, float32 bytes) -> (tensor on the device, event after its copy, stream of the copy).
_DEVICE_CONSTANTS: dict[tuple[str, bytes], tuple[torch.Tensor, torch.cuda.Event, object]] = {}
_MAX_DEVICE_CONSTANTS = 64


def _to_device_without_sync(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small float32 CPU tensor on ``device``, without waiting for the device. CUDA copies
    are cached by value: a hit costs a dict lookup (plus a stream-ordered wait for the copy
    when the current stream is not the one that made it); a miss pins the values and copies
    them with non_blocking=True (the caching host allocator keeps the pinned block until the
    copy is done). Read-only for the kernels, so sharing one copy between calls is safe."""
    if device.type != "cuda" or torch.compiler.is_compiling():
        return t.to(device)
    key = (str(device), t.numpy().tobytes())
    stream = torch.cuda.current_stream(device)
    entry = _DEVICE_CONSTANTS.get(key)
    if entry is None:
        with torch.cuda.device(device):
            copy = t.pin_memory().to(device, non_blocking=True)
            done = torch.cuda.Event()
            done.record(stream)
        if len(_DEVICE_CONSTANTS) >= _MAX_DEVICE_CONSTANTS:
            _DEVICE_CONSTANTS.pop(next(iter(_DEVICE_CONSTANTS)))
        _DEVICE_CONSTANTS[key] = (copy, done, stream)
        return copy
    copy, done, made_on = entry
    # Another stream must not read the copy before it lands. Under CUDA graph capture the copy
    # was made before capture began (warm-up), and an outside event cannot be waited on there.
    if made_on != stream and not torch.cuda.is_current_stream_capturing():
        stream.wait_event(done)
    return copy


# --- argument checks -----------------------------------------------------------------------


# (values, channels, device) -> the float32 tensor of Python mean/std values: a pipeline passes
# the same few constants every batch, so building the tensor (and its device copy) is paid once.
_PYTHON_CONSTANTS: dict[tuple, tuple[object, torch.Tensor]] = {}


def _channel_constants(
    value, name: str, channels: int | None, device: torch.device
) -> torch.Tensor:
    """mean or std as a float32 (C,) tensor on ``device``; one value is broadcast over the
    channels, as torchvision's Normalize does. Python values and CPU tensors are shaped on the
    CPU and then moved without a sync; a tensor already on ``device`` stays there. The tensor
    made from Python values is cached (the kernels only read it)."""
    if (type(value) is tuple or type(value) is float) and not torch.compiler.is_compiling():
        key = (value, channels, device)
        entry = _PYTHON_CONSTANTS.get(key)
        # The same tuple object, or equal values of the same types (1 == 1.0 == True)
        if entry is not None and (entry[0] is value or _types(entry[0]) == _types(value)):
            return entry[1]
        t = _make_channel_constants(value, name, channels, device)
        if len(_PYTHON_CONSTANTS) >= _MAX_DEVICE_CONSTANTS:
            _PYTHON_CONSTANTS.pop(next(iter(_PYTHON_CONSTANTS)))
        _PYTHON_CONSTANTS[key] = (value, t)
        return t
    return _make_channel_constants(value, name, channels, device)


def _types(value) -> tuple:
    return tuple(map(type, value)) if type(value) is tuple else (type(value),)


def _make_channel_constants(
    value, name: str, channels: int | None, device: torch.device
) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise TypeError(
                f"{name} must be a floating tensor or a sequence of floats, got {value.dtype}"
            )
        if value.dim() > 1:
            raise ValueError(
                f"{name} must be 1-D (one value per channel), got shape {tuple(value.shape)}"
            )
        if value.device != device and value.device.type != "cpu":
            raise ValueError(f"{name} is on {value.device} but images is on {device}")
        t = value.detach().to(dtype=torch.float32).reshape(-1)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        t = torch.full((1,), float(value), dtype=torch.float32)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise TypeError(f"{name} must be a sequence of floats, got {value!r}")
        t = torch.tensor([float(v) for v in value], dtype=torch.float32)
    else:
        raise TypeError(
            f"{name} must be a sequence of floats or a tensor, got {type(value).__name__}"
        )
    if channels is not None:  # else the length is checked by the caller
        if t.numel() == 1 and channels != 1:
            t = t.expand(channels)
        if t.shape != (channels,):
            raise ValueError(
                f"{name} must have one value per channel ({channels}) or a single value, "
                f"got {t.numel()}"
            )
    t = t.contiguous()
    if t.device != device:  # built or given on the CPU
        t = _to_device_without_sync(t, device)
    return t


def _check_std_nonzero(std: torch.Tensor, given) -> None:
    if isinstance(given, torch.Tensor):
        # A device tensor is not inspected: that would wait for the device.
        if on_cpu_eager(given) and bool((given.detach().to(torch.float32) == 0).any()):
            raise ValueError(f"std must not contain zeros, got {given.tolist()}")
        return
    values = given if type(given) is tuple or isinstance(given, Sequence) else [given]
    # Plain Python values, checked without a tensor (so also while compiling): a float rounds
    # to float32 zero exactly when its magnitude is at most 2**-150.
    if any(abs(float(v)) <= 2.0**-150 for v in values):
        raise ValueError(f"std must not contain zeros (after conversion to float32), got {given!r}")


def _check_output_format(out_dtype, memory_format) -> None:
    """The output options normalize_images and NormalizeImages share."""
    if out_dtype not in OUT_DTYPES:
        raise ValueError(
            f"out_dtype must be torch.float32, torch.bfloat16 or torch.float16, got {out_dtype}"
        )
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(
            "memory_format must be torch.contiguous_format or torch.channels_last, "
            f"got {memory_format}"
        )


def _check_flip(flip, n: int, device: torch.device) -> torch.Tensor:
    if not isinstance(flip, torch.Tensor):
        raise TypeError(
            f"flip must be None or a bool tensor of shape ({n},), got {type(flip).__name__}"
        )
    if flip.dtype != torch.bool:
        raise TypeError(f"flip must be a bool tensor, got {flip.dtype}")
    if flip.shape != (n,):
        raise ValueError(f"flip must have shape ({n},) for a batch of {n}, got {tuple(flip.shape)}")
    if flip.device != device:
        raise ValueError(f"flip is on {flip.device} but images is on {device}")
    return flip.contiguous()


def _check_mixup(mixup, images: torch.Tensor):
    if not isinstance(mixup, (tuple, list)) or len(mixup) != 2:
        raise TypeError(
            "mixup must be None or a (lam, index) pair as for cookbook_ops.mixup, got "
            f"{type(mixup).__name__}"
            + (f" of length {len(mixup)}" if isinstance(mixup, (tuple, list)) else "")
        )
    lam, index = mixup
    check_index(index, images.shape[0], images.device, "index")
    check_permutation(index)
    return lam_tensor(lam, images), index.contiguous()


def _dense_layout(images: torch.Tensor, nhwc: bool) -> tuple[torch.Tensor, bool]:
    """images with its values as one dense block, and whether that block is NHWC. A batch whose
    strides are the other layout (an NCHW view of NHWC memory, say) is read in place."""
    if images.is_contiguous():
        return images, nhwc
    other = images.permute(0, 2, 3, 1) if not nhwc else images.permute(0, 3, 1, 2)
    if other.is_contiguous():
        return other, not nhwc
    return images.contiguous(), nhwc


# --- public API ----------------------------------------------------------------------------


def normalize_images(
    images: torch.Tensor,
    mean,
    std,
    *,
    layout: str = "NHWC",
    flip: torch.Tensor | None = None,
    mixup=None,
    out_dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
    backend: str = "auto",
) -> torch.Tensor:
    """torchvision's ``ToTensor()`` + ``Normalize(mean, std)`` for a whole uint8 batch in one pass.

    images: uint8 (N, H, W, C) for ``layout="NHWC"`` (decoded images, as
    :func:`cookbook_ops.recipe.data.uint8_collate` stacks them) or (N, C, H, W) for ``"NCHW"``.
    mean, std: per-channel floats in 0..1 units, as torchvision takes them (a sequence, a
    float, or a tensor). flip: None or a bool (N,) tensor; sample j is mirrored horizontally
    where flip[j]. mixup: None or ``(lam, index)`` as for :func:`cookbook_ops.mixup` (lam a
    float, a 0-d tensor or (N,) in [0, 1]; index an (N,) int64 permutation): the blend
    ``lam_i v_i + (1 - lam_i) v_index[i]`` of the normalized, flipped samples.

    Returns an (N, C, H, W) tensor in ``out_dtype`` (float32, bfloat16 or float16) and
    ``memory_format`` (contiguous or channels_last). Values are computed as
    ``(x / 255 - mean_c) / std_c`` in float32, blended in float32 and rounded once, so float32
    results equal torchvision's bit for bit. Not differentiable (uint8 input): the result has no
    ``grad_fn``.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(
            f"images must be uint8 (0..255 pixel values), got {images.dtype}; for float images "
            "use torchvision.transforms.v2.functional.normalize"
        )
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    nhwc = layout == "NHWC"
    if images.dim() != 4:
        dims = "(N, H, W, C)" if nhwc else "(N, C, H, W)"
        raise ValueError(
            f"images must be {dims} for layout={layout!r}, got shape {tuple(images.shape)}"
        )
    _check_output_format(out_dtype, memory_format)
    n = images.shape[0]
    channels = images.shape[3] if nhwc else images.shape[1]
    mean_t = _channel_constants(mean, "mean", channels, images.device)
    std_t = _channel_constants(std, "std", channels, images.device)
    _check_std_nonzero(std_t, std)
    flip_t = None if flip is None else _check_flip(flip, n, images.device)
    lam_t = index_t = None
    if mixup is not None:
        lam_t, index_t = _check_mixup(mixup, images)
    channels_last = memory_format == torch.channels_last

    chosen = _backend.resolve_backend(backend, images.device, _library.NORMALIZE_IMAGES)
    if chosen == "reference":
        return reference_forward(
            images, mean_t, std_t, flip_t, lam_t, index_t, nhwc, out_dtype, channels_last
        )
    dense, dense_nhwc = _dense_layout(images, nhwc)
    return _library.op_for(_library.NORMALIZE_IMAGES, chosen)(
        dense, mean_t, std_t, flip_t, lam_t, index_t, dense_nhwc, out_dtype, channels_last
    )
