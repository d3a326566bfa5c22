"""Arguments of the image ops (:func:`cookbook_ops.normalize_images`,
:func:`cookbook_ops.resized_crop_normalize`) and their modules, checked and converted once:
per-channel mean/std (cached device copies, made without a host sync), std free of zeros, the
output dtype and memory format, flip masks and the mixup pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cookbook_ops._validation import check_index, check_permutation, lam_tensor, on_cpu_eager

LAYOUTS = ("NHWC", "NCHW")
OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MEMORY_FORMATS = (torch.contiguous_format, torch.channels_last)
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


def channel_constants(value, name: str, channels: int | None, device: torch.device) -> torch.Tensor:
    """mean or std as a float32 (C,) tensor on ``device``; one value is broadcast over the
    channels, as torchvision's Normalize does. Python values and CPU tensors are shaped on the
    CPU and then moved without a sync; a tensor already on ``device`` stays there. The tensor
    made from Python values is cached (the kernels only read it). ``std`` (by ``name``) is
    checked for zeros."""
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
    if name == "std":  # once per new value when it is cached
        check_std_nonzero(t, value)
    if t.device != device:  # built or given on the CPU
        t = _to_device_without_sync(t, device)
    return t


def check_std_nonzero(std: torch.Tensor, given) -> None:
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


def check_output_format(out_dtype, memory_format) -> None:
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


def check_flip(flip, n: int, device: torch.device) -> torch.Tensor:
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


def check_mixup(mixup, images: torch.Tensor):
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


def fake_output(like, n, channels, height, width, flip, lam, index, out_dtype, channels_last):
    """What the image ops' fake kernels share: the per-sample arguments' shapes checked, and the
    empty (n, channels, height, width) output in ``out_dtype`` and the requested layout."""
    if flip is not None:
        torch._check(flip.shape == (n,), lambda: f"flip must be ({n},), got {tuple(flip.shape)}")
    torch._check((lam is None) == (index is None), lambda: "lam and index must be given together")
    if lam is not None:
        torch._check(lam.shape == (n,), lambda: f"lam must be ({n},), got {tuple(lam.shape)}")
        torch._check(index.shape == (n,), lambda: f"index must be ({n},), got {tuple(index.shape)}")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return like.new_empty((n, channels, height, width), dtype=out_dtype).contiguous(
        memory_format=memory_format
    )


def module_constants(mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """mean and std of an image module, checked once at construction: float32 CPU tensors of
    one value per channel (or one value), of matching lengths, std free of zeros. Copies, so
    that the module's buffers never share storage with the call cache above."""
    mean_t = channel_constants(mean, "mean", None, torch.device("cpu"))
    std_t = channel_constants(std, "std", None, torch.device("cpu"))
    if mean_t.numel() != std_t.numel() and 1 not in (mean_t.numel(), std_t.numel()):
        raise ValueError(
            f"mean and std must have the same length, got {mean_t.numel()} and {std_t.numel()}"
        )
    return mean_t.clone(), std_t.clone()
