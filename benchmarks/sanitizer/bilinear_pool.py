"""Bilinear pooling cases: one and two streams, odd channel counts, M = 1, dead channels."""

from __future__ import annotations

import functools

import torch
from harness.environment import import_cookbook_ops

from sanitizer.compare import max_error

cookbook_ops = import_cookbook_ops()

# (N, D1, D2 or None for one stream, spatial shape, dtype, dead channels)
BILINEAR_CASES = [
    (2, 7, None, (5,), torch.float32, False),
    (3, 33, 17, (3, 3), torch.bfloat16, False),
    (4, 64, None, (1,), torch.float32, False),
    (2, 16, 9, (1, 1), torch.float16, False),
    (3, 65, None, (7, 7), torch.float32, True),
    (2, 130, 70, (14, 14), torch.bfloat16, True),
    (2, 257, None, (13,), torch.float32, False),
    (2, 256, 128, (28, 28), torch.bfloat16, False),
    # One stream in 16 bits, several tiles: Triton's two-launch forward, mirrored tiles.
    (2, 200, None, (9, 9), torch.bfloat16, False),
    (3, 24, None, (4, 4), torch.float16, True),
]


def run_bilinear_case(backend, device, n, d1, d2, spatial, dtype, dead) -> list[str]:
    """Problems found (empty when the backend matches the reference)."""
    gen = torch.Generator(device="cpu").manual_seed(n * 7919 + d1 * 31 + (d2 or 0))
    x = torch.randn(n, d1, *spatial, generator=gen)
    y = None if d2 is None else torch.randn(n, d2, *spatial, generator=gen)
    if dead:
        x[:, ::3] = 0  # whole channels: rows (and columns) of G that are exactly zero
        x[0] = 0  # a whole sample: v = 0, its norm under the floor
        if y is not None:
            y[:, 1::4] = 0
    x, y = x.to(dtype).to(device), None if y is None else y.to(dtype).to(device)
    grad_z = torch.randn(n, d1 * (d1 if d2 is None else d2), generator=gen).to(dtype).to(device)

    results = {}
    for name in ("reference", backend):
        xi = x.detach().clone().requires_grad_(True)
        yi = None if y is None else y.detach().clone().requires_grad_(True)
        z = cookbook_ops.bilinear_pool(xi, yi, backend=name)
        z.backward(grad_z)
        results[name] = (z.detach(), xi.grad, None if yi is None else yi.grad)
    if device != "cpu":
        torch.cuda.synchronize()

    problems = []
    for what, a, e in zip(("z", "grad_x", "grad_y"), results[backend], results["reference"]):
        if e is None:
            continue
        if a is None:
            problems.append(f"{what} is None")
            continue
        err = max_error(a, e, dtype)
        if err is not None:
            problems.append(f"{what}: {err}")
    return problems


def bilinear_pool_cases(backend, device):
    for n, d1, d2, spatial, dtype, dead in BILINEAR_CASES:
        channels = f"{d1}" if d2 is None else f"{d1}+{d2}"
        label = (
            f"{backend:9s} N={n:<3d} D={channels:<8s} "
            f"M={'x'.join(map(str, spatial)):<6s} {str(dtype).removeprefix('torch.'):8s} "
            f"dead={'y' if dead else 'n'}"
        )
        yield (
            label,
            functools.partial(run_bilinear_case, backend, device, n, d1, d2, spatial, dtype, dead),
        )
