"""What every sanitizer case shares: the tolerances and the comparison with the reference."""

from __future__ import annotations

import torch

IGNORE_INDEX = -100
# (atol, rtol relative to the largest reference magnitude) per dtype of the results.
TOLERANCE = {
    torch.float32: (1e-5, 1e-4),
    torch.float16: (1e-3, 2e-3),
    torch.bfloat16: (1e-2, 1.6e-2),
    torch.float64: (1e-12, 1e-12),
    torch.uint8: (1.0, 0.0),  # a blend rounded to nearest: ties may go either way
}


def max_error(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> str | None:
    """None if ``actual`` is within tolerance of ``expected``, else a description."""
    atol, rtol = TOLERANCE[dtype]
    a, e = actual.detach().double(), expected.detach().double()
    if a.shape != e.shape:
        return f"shape {tuple(a.shape)} != {tuple(e.shape)}"
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    if not torch.equal(nan_a, nan_e):
        return "NaN pattern differs"
    if a.numel() == 0:
        return None
    a, e = a[~nan_e], e[~nan_e]
    err = (a - e).abs().max().item() if a.numel() else 0.0
    limit = atol + rtol * (e.abs().max().item() if e.numel() else 0.0)
    return None if err <= limit else f"max abs error {err:.3e} > {limit:.3e}"


def compare(results, backend, names, dtype) -> list[str]:
    """Problems between the backend's results and the reference's, tuple entry by entry."""
    problems = []
    for what, a, e in zip(names, results[backend], results["reference"]):
        if e is None:
            continue
        if a is None:
            problems.append(f"{what} is None")
            continue
        err = max_error(a, e, dtype if a.dtype == dtype else a.dtype)
        if err is not None:
            problems.append(f"{what}: {err}")
    return problems
