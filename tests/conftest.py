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
