"""Loading the compiled extension, reporting what is available, and choosing a backend.

Backend names: ``auto`` (default), ``reference`` (pure PyTorch), ``cpu`` (C++ kernels),
``cuda`` (CUDA C++ kernels), ``triton``. The choice is made per call (``backend=``), per
block (:func:`use_backend`) or for the process (``COOKBOOK_OPS_BACKEND``, read at import),
in that order of precedence. Everything here is plain Python state read at trace time, so
``torch.compile`` guards on it instead of breaking the graph.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os

import torch

from cookbook_ops import _library
from cookbook_ops._version import __version__

BACKENDS = ("auto", "reference", "cpu", "cuda", "triton")

_extension_error: str | None = None
_triton_error: str | None = None
_build_config: dict = {}


def _load_build_config() -> dict:
    try:
        module = importlib.import_module("cookbook_ops._build_config")
    except ImportError:
        return {}
    return {k: v for k, v in vars(module).items() if k.isupper()}


def _load_extension() -> bool:
    """Import the compiled kernels; never raise. Records why when they cannot be used."""
    global _extension_error
    if os.environ.get("COOKBOOK_OPS_DISABLE_EXTENSION", "0") == "1":
        _extension_error = "disabled by COOKBOOK_OPS_DISABLE_EXTENSION=1"
        return False
    if importlib.util.find_spec("cookbook_ops._C") is None:
        reason = _build_config.get("SKIPPED_REASON")
        _extension_error = "the compiled extension is not installed" + (
            f" ({reason})" if reason else " (reinstall with `pip install --no-build-isolation .`)"
        )
        return False
    built_with = _build_config.get("TORCH_VERSION")
    if built_with is not None and built_with != torch.__version__:
        # Loading a library built against another torch ABI can crash the process instead of
        # raising, so refuse it up front.
        _extension_error = (
            f"extension built against torch {built_with} but torch {torch.__version__} is "
            "installed; rebuild with `pip install --no-build-isolation .`"
        )
        return False
    try:
        importlib.import_module("cookbook_ops._C")
    except Exception as exc:  # any failure to load leaves the reference fallback working
        _extension_error = f"{type(exc).__name__}: {exc}"
        return False
    return True


def _load_triton() -> bool:
    global _triton_error
    if os.environ.get("COOKBOOK_OPS_DISABLE_TRITON", "0") == "1":
        _triton_error = "disabled by COOKBOOK_OPS_DISABLE_TRITON=1"
        return False
    if importlib.util.find_spec("triton") is None:
        _triton_error = "triton is not installed"
        return False
    try:
        importlib.import_module("cookbook_ops.triton")
    except Exception as exc:
        _triton_error = f"{type(exc).__name__}: {exc}"
        return False
    return True


def _has_kernel(op_name: str, dispatch_key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(_library.qualified(op_name), dispatch_key)


_build_config = _load_build_config()
EXTENSION_LOADED = _load_extension()
TRITON_LOADED = _load_triton()
TRITON_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
# Which compiled kernels each op has (an extension built from older sources may lack some).
_LOADED = {"cpu": EXTENSION_LOADED, "cuda": EXTENSION_LOADED, "triton": TRITON_LOADED}
_DISPATCH_KEY = {"cpu": "CPU", "cuda": "CUDA", "triton": "CUDA"}
KERNELS = {
    op: {
        backend: backend in family.backends
        and _LOADED[backend]
        and _has_kernel(_library.twin(op, backend), _DISPATCH_KEY[backend])
        for backend in ("cpu", "cuda", "triton")
    }
    for op, family in _library.OPS.items()
}


def _all_kernels(backend: str) -> bool:
    """Whether every op family that has kernels for ``backend`` got them loaded."""
    return all(KERNELS[op][backend] for op, f in _library.OPS.items() if backend in f.backends)


CPU_KERNELS = EXTENSION_LOADED and _all_kernels("cpu")
CUDA_KERNELS = EXTENSION_LOADED and _all_kernels("cuda")

_ENV_BACKEND = os.environ.get("COOKBOOK_OPS_BACKEND", "auto").strip().lower() or "auto"
if _ENV_BACKEND not in BACKENDS:
    raise ValueError(f"COOKBOOK_OPS_BACKEND={_ENV_BACKEND!r} is not one of {', '.join(BACKENDS)}")
# A stack of names pushed by use_backend(); module state so that dynamo can guard on it.
_backend_stack: list[str] = []


def _has_op_kernels(name: str, op: str | None) -> bool:
    if op is None:
        return _all_kernels(name)
    return KERNELS[op][name]


def _backend_usable(name: str, device_type: str, op: str | None = None) -> str | None:
    """None if ``name`` can run ``op`` (every op when None) on ``device_type``, else why not."""
    what = "every op" if op is None else op
    if name == "reference":
        return None
    if name == "cpu":
        if device_type != "cpu":
            return f"backend 'cpu' needs CPU tensors, got device type {device_type!r}"
        if not EXTENSION_LOADED:
            return f"the C++ CPU kernels are not available: {_extension_error}"
        if not _has_op_kernels("cpu", op):
            return f"the extension was built without C++ CPU kernels for {what}"
        return None
    if name == "cuda":
        if device_type != "cuda":
            return f"backend 'cuda' needs CUDA tensors, got device type {device_type!r}"
        if not EXTENSION_LOADED:
            return f"the CUDA kernels are not available: {_extension_error}"
        if not _has_op_kernels("cuda", op):
            return f"the extension was built without CUDA kernels for {what}"
        return None
    if name == "triton":
        if not TRITON_LOADED:
            return f"the Triton kernels are not available: {_triton_error}"
        if not _has_op_kernels("triton", op):
            return f"no Triton kernels for {what}"
        if device_type == "cuda" or (device_type == "cpu" and TRITON_INTERPRET):
            return None
        return (
            f"backend 'triton' needs CUDA tensors (or CPU tensors with TRITON_INTERPRET=1), "
            f"got device type {device_type!r}"
        )
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")


def resolve_backend(backend: str, device: torch.device, op: str) -> str:
    """The concrete backend for one call of ``op``: 'reference', 'cpu', 'cuda' or 'triton'."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "auto":
        backend = _backend_stack[-1] if _backend_stack else _ENV_BACKEND
    device_type = device.type
    if backend == "auto":
        # Fastest measured first: the C++ kernels on CPU; on CUDA the CUDA C++ kernels, then
        # Triton; the pure-PyTorch reference wherever nothing compiled can run.
        order = {"cpu": ("cpu",), "cuda": ("cuda", "triton")}.get(device_type, ())
        for candidate in order:
            if _backend_usable(candidate, device_type, op) is None:
                return candidate
        return "reference"
    reason = _backend_usable(backend, device_type, op)
    if reason is not None:
        raise RuntimeError(f"cookbook_ops: backend={backend!r} cannot run here: {reason}")
    return backend


@contextlib.contextmanager
def use_backend(name: str):
    """Run the enclosed cookbook_ops calls (those with ``backend="auto"``) on ``name``."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"name must be one of {', '.join(BACKENDS)}; got {name!r}")
    _backend_stack.append(name)
    try:
        yield
    finally:
        _backend_stack.pop()


def available_backends(
    device: str | torch.device | None = None, op: str | None = None
) -> list[str]:
    """Backends that can run on ``device`` (default: any device this process has) for ``op``
    (a forward op name such as "bilinear_pool_forward"; default: every op)."""
    if device is None:
        device_types = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        device_types = [torch.device(device).type]
    names = []
    for name in BACKENDS[1:]:
        if any(_backend_usable(name, t, op) is None for t in device_types):
            names.append(name)
    return names


def build_info() -> dict:
    """What was built, against what, and why anything is missing."""
    return {
        "version": __version__,
        "available_backends": available_backends(),
        "extension_loaded": EXTENSION_LOADED,
        "extension_error": _extension_error,
        "cpu_kernels": CPU_KERNELS,
        "cuda_kernels": CUDA_KERNELS,
        "kernels_per_op": KERNELS,
        "triton_loaded": TRITON_LOADED,
        "triton_error": _triton_error,
        "triton_interpret": TRITON_INTERPRET,
        "built_with_torch": _build_config.get("TORCH_VERSION"),
        "built_with_cuda": _build_config.get("CUDA_VERSION"),
        "built_cuda_arch_list": _build_config.get("CUDA_ARCH_LIST"),
        "build_notes": _build_config.get("NOTES", []),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "default_backend": _ENV_BACKEND,
    }
