"""Forward + backward of each compiled backend once per awkward case, checked against reference.

    compute-sanitizer --tool memcheck python benchmarks/sanitizer_cases.py [--device cuda]
        [--backends cuda,triton] [--ops label_smoothing_cross_entropy,bilinear_pool]

Small on purpose: under memcheck every launch is slow. The cases aim at the places kernels read
or write out of bounds. Cross-entropy: C not a multiple of any vector width or block, a row
longer than one block (the 128k-vocabulary path), a single class, ignored rows, class weights,
and a per-row upstream gradient (reduction="none"). Bilinear pooling: one and two streams, odd
channel counts that fill no tile, a single spatial position (M=1), channels that are zero at
every position (G = 0 exactly, where the signed sqrt has no gradient) and a sample that is zero
throughout (norm below the normalization floor). Run with PYTORCH_NO_CUDA_MEMORY_CACHING=1 so
that every tensor is its own allocation; otherwise an overrun lands inside a cached block and
memcheck cannot see it. Exits 1 on any mismatch or error.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import traceback

import common
import torch

cookbook_ops = common.import_cookbook_ops()

IGNORE_INDEX = -100
# (atol, rtol relative to the largest reference magnitude) per dtype of the results.
TOLERANCE = {
    torch.float32: (1e-5, 1e-4),
    torch.float16: (1e-3, 2e-3),
    torch.bfloat16: (1e-2, 1.6e-2),
}

# (N, C, dtype, weighted, reduction, convention)
CASES = [
    (3, 7, torch.float32, False, "mean", "uniform"),
    (13, 1001, torch.float32, False, "mean", "uniform"),
    (13, 1001, torch.bfloat16, False, "mean", "uniform"),
    (13, 1001, torch.float16, True, "none", "others"),
    (5, 1, torch.float32, False, "none", "uniform"),
    (64, 4099, torch.float32, True, "mean", "uniform"),
    (5, 32771, torch.bfloat16, False, "sum", "uniform"),
    (2, 131073, torch.float32, False, "none", "uniform"),
    (2, 131073, torch.bfloat16, True, "mean", "lsr"),
]


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
]


def run_case(backend, device, n, c, dtype, weighted, reduction, convention) -> list[str]:
    """Problems found (empty when the backend matches the reference)."""
    gen = torch.Generator(device="cpu").manual_seed(n * 7919 + c)
    logits = (torch.randn(n, c, generator=gen) * 3).to(dtype).to(device)
    target = torch.randint(0, c, (n,), generator=gen)
    target[::3] = IGNORE_INDEX  # row 0 and every third row ignored
    target = target.to(device)
    weight = torch.rand(c, generator=gen).add(0.5).to(device) if weighted else None
    grad_out = torch.randn(n, generator=gen).to(dtype).to(device) if reduction == "none" else None

    results = {}
    for name in ("reference", backend):
        x = logits.detach().clone().requires_grad_(True)
        loss, correct = cookbook_ops.label_smoothing_cross_entropy(
            x,
            target,
            0.1,
            weight=weight,
            ignore_index=IGNORE_INDEX,
            reduction=reduction,
            convention=convention,
            return_correct=True,
            backend=name,
        )
        loss.backward(grad_out)
        results[name] = (loss.detach(), correct, x.grad)
    if device != "cpu":
        torch.cuda.synchronize()

    problems = []
    ref_loss, ref_correct, ref_grad = results["reference"]
    loss, correct, grad = results[backend]
    for what, a, e in (("loss", loss, ref_loss), ("grad", grad, ref_grad)):
        if a is None:
            problems.append(f"{what} is None")
            continue
        err = max_error(a, e, dtype)
        if err is not None:
            problems.append(f"{what}: {err}")
    # 16-bit logits tie often enough that two correct kernels may pick different argmaxes.
    if dtype == torch.float32 and not torch.equal(correct, ref_correct):
        problems.append("correct flags differ")
    return problems


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


def _cross_entropy_cases(backend, device):
    for n, c, dtype, weighted, reduction, convention in CASES:
        label = (
            f"{backend:9s} N={n:<3d} C={c:<6d} {str(dtype).removeprefix('torch.'):8s} "
            f"weight={'y' if weighted else 'n'} {reduction:4s} {convention}"
        )
        yield (
            label,
            functools.partial(
                run_case, backend, device, n, c, dtype, weighted, reduction, convention
            ),
        )


def _bilinear_cases(backend, device):
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


# op -> (name of its forward op for available_backends, public function, case generator)
OPS = {
    "label_smoothing_cross_entropy": (None, "label_smoothing_cross_entropy", _cross_entropy_cases),
    "bilinear_pool": ("bilinear_pool_forward", "bilinear_pool", _bilinear_cases),
}


def _compiled_backends(device: str, forward_op: str | None) -> list[str]:
    if forward_op is None:
        names = cookbook_ops.available_backends(device)
    else:
        try:
            names = cookbook_ops.available_backends(device, op=forward_op)
        except (TypeError, KeyError):  # a build that predates per-op availability
            names = cookbook_ops.available_backends(device)
    return [b for b in names if b != "reference"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backends", default=None, help="default: every compiled backend here")
    p.add_argument("--ops", default=",".join(OPS), help=f"from {', '.join(OPS)}")
    args = p.parse_args(argv)
    device = args.device

    failures = total = 0
    for op in (o.strip() for o in args.ops.split(",")):
        forward_op, public, cases = OPS[op]
        if not hasattr(cookbook_ops, public):
            print(f"{op}: not available (cookbook_ops.{public} is not in this build)", flush=True)
            failures += 1
            continue
        if args.backends:
            backends = [b.strip() for b in args.backends.split(",")]
        else:
            backends = _compiled_backends(device, forward_op)
        if not backends:
            print(
                f"{op}: no compiled backend is available on {device}: {cookbook_ops.build_info()}",
                file=sys.stderr,
                flush=True,
            )
            failures += 1
            continue
        print(f"# {op}", flush=True)
        for backend in backends:
            for label, case in cases(backend, device):
                t0 = time.perf_counter()
                try:
                    problems = case()
                except Exception:
                    problems = ["raised:\n" + traceback.format_exc()]
                status = "ok" if not problems else "FAIL " + "; ".join(problems)
                failures += bool(problems)
                total += 1
                print(f"{label}  {time.perf_counter() - t0:6.2f}s  {status}", flush=True)
    print(f"{failures} failing case(s) of {total}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
