"""Precision rules shared by every op."""

import torch


def opmath_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype kernels accumulate in: float64 for float64 inputs, float32 for everything else
    (16-bit floats, float32, and uint8 images)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
