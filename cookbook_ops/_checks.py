"""Value checks on tensor contents that behave the same in eager mode and under torch.compile.

A check on the values of a tensor (is ``lam`` in [0, 1], is ``index`` a permutation) needs
the host to read the tensor. On CPU tensors that costs nothing, so it always runs: in eager
mode as a Python exception that names the argument, while compiling as a
``torch._assert_async`` in the graph (a ``RuntimeError`` with the same message when the
compiled code runs). On GPU tensors it would cost a host sync per call, so it is skipped;
the kernels there never read out of bounds and the results of bad values are documented
per op.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def check_cpu_values(
    ok: Callable[[], torch.Tensor],
    device: torch.device,
    error: type[Exception],
    message: str,
    detail: Callable[[torch.Tensor], str] | None = None,
) -> None:
    """Raise ``error(message + detail)`` unless every entry of ``ok()`` (a bool tensor) is True.

    ``ok`` is only evaluated on CPU tensors. ``detail`` receives the bool tensor in eager mode
    and may add the first offending value to the message; the compiled assertion carries
    ``message`` alone (its text must be fixed when the graph is built).
    """
    if device.type != "cpu":
        return
    cond = ok()
    if cond.numel() == 0:
        return
    if torch.compiler.is_compiling():
        torch._assert_async(cond.all(), message)
        return
    if not bool(cond.all()):
        raise error(message + (detail(cond) if detail is not None else ""))


def permutation_ok(index: torch.Tensor) -> torch.Tensor:
    """(N,) bool: entry i is in range and hit exactly once, for an (N,) int64 ``index``
    (all True exactly when index is a permutation of 0..N-1). O(N), no sort."""
    n = index.numel()
    in_range = (index >= 0) & (index < n)
    hits = torch.zeros(n, dtype=torch.int64, device=index.device)
    hits.index_add_(0, torch.where(in_range, index, 0), in_range.to(torch.int64))
    return in_range & (hits == 1)
