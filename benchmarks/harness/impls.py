"""Which implementations a benchmark can run here, and the callable of each one.

Every op compares PyTorch eager, torch.compile of the same function, the backends of ours and
peers where importable; an implementation that cannot run is recorded with the reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from harness.environment import import_cookbook_ops

OUR_BACKENDS = ("reference", "cpu", "cuda", "triton")
TRITON_ON_CPU = "Triton on CPU tensors runs only in the interpreter, not a performance path"


def compile_static(fn: Callable) -> Callable:
    """torch.compile with static shapes: one specialized graph per (shape, dtype, pass) group,
    as a training job with a fixed batch would get (the groups reset dynamo in between)."""
    return torch.compile(fn, dynamic=False)


def available_backends(device: str, op: str) -> list[str]:
    """The backends of ours that have a kernel for ``op`` on ``device`` in this build."""
    cookbook_ops = import_cookbook_ops()
    try:
        return list(cookbook_ops.available_backends(device, op=op))
    except (TypeError, KeyError):  # a build whose registry does not know the op (or op=)
        return list(cookbook_ops.available_backends(device))


def backend_unavailable_reason(
    backend: str, device: str, ops: tuple[str, ...], probe: Callable[[], object] | None = None
) -> str | None:
    """None if ``backend`` has a kernel for one of ``ops`` on ``device``, else why not.

    ``probe`` is a tiny call of the op on that backend: where the backend is missing, the op's
    own error message names the missing piece (an extension not built, no GPU, ...).
    """
    if backend == "triton" and torch.device(device).type == "cpu":
        return TRITON_ON_CPU
    if any(backend in available_backends(device, op) for op in ops):
        return None
    if probe is None:
        return f"cookbook_ops has no {backend} backend for {', '.join(ops)} on {device}"
    try:
        probe()
    except Exception as exc:
        return str(exc)
    return "not reported by cookbook_ops.available_backends()"


def import_failure(package: str, *imports: str) -> str | None:
    """None if every ``module`` or ``module:name`` of ``imports`` imports, else why not."""
    try:
        for spec in imports:
            module, _, name = spec.partition(":")
            imported = importlib.import_module(module)
            if name:
                getattr(imported, name)
    except Exception as exc:
        return f"{package} is not importable ({type(exc).__name__}: {exc})"
    return None


def auto_backend(device: str, op: str) -> str | None:
    """The backend ``backend="auto"`` runs for ``op`` on ``device``, for the record."""
    try:
        from cookbook_ops import _backend

        return _backend.resolve_backend("auto", torch.device(device), op)
    except Exception:  # an older layout of the package: not worth failing the run over
        return None


def impl_fn(impl: str, eager: Callable, ours: Callable[[str], Callable], **peers: Callable):
    """The callable of ``impl`` for one group: ``eager`` itself, torch.compile of it (static
    shapes), ``ours(backend)`` for a backend of ours, or ``peers[impl]()``."""
    if impl == "eager":
        return eager
    if impl == "compile":
        return compile_static(eager)
    if impl in OUR_BACKENDS:
        return ours(impl)
    if impl in peers:
        return peers[impl]()
    raise ValueError(f"unknown implementation {impl!r}")


def unknown_impl(impl: str, known: tuple[str, ...]) -> ValueError:
    return ValueError(f"unknown implementation {impl!r}; known: {', '.join(known)}")
