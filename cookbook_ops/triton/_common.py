"""Pieces every Triton op module shares: interpreter detection, device context, dtype names,
fp64 scalars passed as fp32 pairs, and registering a launcher for both device keys."""

from __future__ import annotations

import contextlib
import struct

import torch
import triton
import triton.language as tl

from cookbook_ops import _library

# Whether the kernels were created by the interpreter (decided when @triton.jit ran).
INTERPRETED = bool(triton.knobs.runtime.interpret)

# Triton's names for the dtypes the kernels take (signatures of the static compile specs).
TRITON_DTYPES = {
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.float32: "fp32",
    torch.float64: "fp64",
    torch.uint8: "u8",
}


def split_double(value: float) -> tuple[float, float]:
    """A Python float as an fp32 pair (hi, lo) with hi + lo == value to ~48 bits: Triton passes
    float arguments as fp32, and fp64 kernels must still see the full value."""
    try:
        hi = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return value, 0.0
    return hi, value - hi


@triton.jit
def split_scalar(hi, lo, dtype: tl.constexpr):
    # The kernel-side half of split_double: rebuild the scalar in the op-math dtype.
    return tl.cast(hi, dtype) + tl.cast(lo, dtype)


@triton.jit
def cdiv_positive(x, d: tl.constexpr):
    """ceil(x / d) for x >= 1. tl.cdiv forms x + d - 1 first, which wraps negative in int32
    for x within d of 2**31; x - 1 cannot."""
    return (x - 1) // d + 1


def device_context(device: torch.device, what: str):
    """The context to launch ``what``'s kernels in: the CUDA device, or nothing for CPU tensors
    under the interpreter; a clear error anywhere else."""
    if device.type == "cuda":
        return torch.cuda.device(device)
    if device.type == "cpu":
        if not INTERPRETED:
            raise RuntimeError(
                f"cookbook_ops: the Triton {what} kernels need CUDA tensors (CPU tensors only "
                "run with TRITON_INTERPRET=1 set before importing cookbook_ops)"
            )
        return contextlib.nullcontext()
    raise RuntimeError(
        f"cookbook_ops: the Triton {what} kernels need CUDA tensors, got device {device}"
    )


def register(launchers: dict) -> None:
    """Register each launcher as the kernel of the Triton twin of its op, for CUDA and
    (interpreter) CPU."""
    for name, fn in launchers.items():
        for key in ("CUDA", "CPU"):
            torch.library.impl(_library.qualified(_library.twin(name, "triton")), key)(fn)
