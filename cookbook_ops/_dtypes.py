"""Precision rules shared by every op: its kernels, fake kernels, Triton launchers and reference."""

import torch


def opmath_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype kernels accumulate in: float64 for float64 inputs, float32 for everything else
    (16-bit floats, float32, and uint8 images)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def output_dtype(logits: torch.Tensor) -> torch.dtype:
    """The loss dtype: that of logits, or float32 for 16-bit logits under autocast (autocast
    runs cross-entropy in float32, as PyTorch does)."""
    if logits.dtype in (torch.float16, torch.bfloat16) and torch.is_autocast_enabled(
        logits.device.type
    ):
        return torch.float32
    return logits.dtype
