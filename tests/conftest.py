"""Shared fixtures: devices, backends per device, dtype tolerances.

Without a GPU the Triton kernels run under Triton's interpreter on CPU tensors; it must be
switched on before triton is first imported, hence before cookbook_ops is.
"""

import os
import shutil

if shutil.which("nvidia-smi") is None and "TRITON_INTERPRET" not in os.environ:
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

import cookbook_ops  # noqa: E402
from cookbook_ops import _library  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

# Absolute/relative tolerance of a result stored in each dtype, against a float64 oracle.
TOLERANCES = {
    torch.float64: dict(atol=1e-10, rtol=1e-9),
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),
}


def interpreted(backend: str, device: str) -> bool:
    """Triton on CPU tensors runs in the (slow, numpy-based) interpreter."""
    return backend == "triton" and device == "cpu"


def backend_params(op: str):
    """(device, backend) pairs for every backend that can run ``op`` here, as pytest params."""
    params = []
    for device in DEVICES:
        for backend in cookbook_ops.available_backends(device, op):
            params.append(pytest.param(device, backend, id=f"{device}-{backend}"))
    return params


def compiled_backend_params(op: str):
    """Like backend_params() but only the kernels of ours (not the pure-PyTorch reference)."""
    return [p for p in backend_params(op) if p.values[1] != "reference"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def opmath(dtype: torch.dtype) -> torch.dtype:
    """The precision the kernels accumulate (and return per-row losses) in."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def assert_close_dtype(actual, expected, dtype: torch.dtype, scale: float = 1.0):
    """actual against a float64 oracle at the tolerance of a result stored in ``dtype``, the
    absolute one times ``scale`` (e.g. the row length a sum runs over); NaN matches NaN."""
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(
        actual.double(),
        expected.double(),
        atol=tol["atol"] * scale,
        rtol=tol["rtol"],
        equal_nan=True,
    )


def random_class_weight(c: int, device, dtype: torch.dtype) -> torch.Tensor:
    """Class weights in [0.5, 1.5), in the op-math precision the kernels take them in."""
    return (torch.rand(c, dtype=torch.float64) + 0.5).to(device, opmath(dtype))


def op_pair(forward: str, backward: str, backend: str) -> tuple[str, str]:
    """The forward and backward op names a kernel backend registers (Triton's are twins)."""
    return _library.twin(forward, backend), _library.twin(backward, backend)


def opcheck_dtypes(backend: str, device: str) -> list[torch.dtype]:
    """Dtypes for torch.library.opcheck: bfloat16 only off the (slow) Triton interpreter."""
    dtypes = [torch.float64, torch.float32]
    if not interpreted(backend, device):
        dtypes.append(torch.bfloat16)
    return dtypes


def require_gpu_backend(op: str, backend: str, min_memory_gib: float = 0) -> None:
    """Skip a GPU test whose backend is not built here, or whose GPU has too little memory."""
    if backend not in cookbook_ops.available_backends("cuda", op):
        pytest.skip(f"{backend} not available")
    if torch.cuda.get_device_properties(0).total_memory < min_memory_gib * 2**30:
        pytest.skip(f"needs {min_memory_gib} GiB of GPU memory")
