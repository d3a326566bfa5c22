"""Forward + backward of each compiled backend once per awkward case, checked against reference.

    compute-sanitizer --tool memcheck python benchmarks/sanitizer_cases.py [--device cuda]
        [--backends cuda,triton] [--ops label_smoothing_cross_entropy,mixup,...]

Small on purpose: under memcheck every launch is slow. The cases aim at the places kernels read
or write out of bounds. Cross-entropy: C not a multiple of any vector width or block, a row
longer than one block (the 128k-vocabulary path), a single class, ignored rows, class weights,
and a per-row upstream gradient (reduction="none"). Bilinear pooling: one and two streams, odd
channel counts that fill no tile, a single spatial position (M=1), channels that are zero at
every position (G = 0 exactly, where the signed sqrt has no gradient) and a sample that is zero
throughout (norm below the normalization floor). Mixup (and the in-place pair swap) and CutMix:
N=1 and odd N (a pair swap with a fixed point), per-sample element counts divisible by no
vector width, channels_last, uint8, 1x1 images, lam exactly 0 and 1, empty, full-image and
border-touching boxes. Mixup cross-entropy: the cross-entropy cases with two targets, rows
whose targets are equal, and ignored slots (target_a, target_b or both). normalize_images:
NHWC and NCHW input, C = 1, 3, 4, H or W = 1, flip, mixup, every output dtype and layout.

An op or backend without a kernel on the device is reported ("no kernel") and skipped, not
failed: kernels land op by op. Run with PYTORCH_NO_CUDA_MEMORY_CACHING=1 so that every tensor is
its own allocation; otherwise an overrun lands inside a cached block and memcheck cannot see
it. Exits 1 on any mismatch or error, or when no case ran at all.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import traceback

import torch
from harness.environment import import_cookbook_ops

cookbook_ops = import_cookbook_ops()

IGNORE_INDEX = -100
# (atol, rtol relative to the largest reference magnitude) per dtype of the results.
TOLERANCE = {
    torch.float32: (1e-5, 1e-4),
    torch.float16: (1e-3, 2e-3),
    torch.bfloat16: (1e-2, 1.6e-2),
    torch.float64: (1e-12, 1e-12),
    torch.uint8: (1.0, 0.0),  # a blend rounded to nearest: ties may go either way
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
    # One stream in 16 bits, several tiles: Triton's two-launch forward, mirrored tiles.
    (2, 200, None, (9, 9), torch.bfloat16, False),
    (3, 24, None, (4, 4), torch.float16, True),
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

    def loss_fn(x, name):
        return cookbook_ops.label_smoothing_cross_entropy(
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

    return _loss_problems(loss_fn, backend, device, logits, grad_out, dtype)


def _loss_problems(loss_fn, backend, device, logits, grad_out, dtype) -> list[str]:
    """Forward + backward of a cross-entropy op (``loss_fn(x, backend_name)`` returns the loss
    and the correct flags) on the reference and on ``backend``: loss, gradient and, for float32
    logits, the correct flags compared."""
    results = {}
    for name in ("reference", backend):
        x = logits.detach().clone().requires_grad_(True)
        loss, correct = loss_fn(x, name)
        loss.backward(grad_out)
        results[name] = (loss.detach(), x.grad, correct)
    if device != "cpu":
        torch.cuda.synchronize()
    problems = _compare({k: v[:2] for k, v in results.items()}, backend, ("loss", "grad"), dtype)
    # 16-bit logits tie often enough that two correct kernels may pick different argmaxes.
    if dtype == torch.float32 and not torch.equal(results[backend][2], results["reference"][2]):
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


# --- mixup, the pair swap and CutMix -----------------------------------------------------------

# (N, per-sample shape, dtype, channels_last, lam: "scalar" or "per_sample")
MIXUP_CASES = [
    (1, (3, 5, 7), torch.float32, False, "scalar"),
    (5, (3, 7, 9), torch.float32, False, "per_sample"),  # 189 elements a sample: no vector width
    (7, (3, 11, 13), torch.bfloat16, True, "per_sample"),
    (3, (3, 1, 1), torch.float16, False, "scalar"),  # 1x1 images
    (4, (3, 1, 1), torch.float32, True, "per_sample"),
    (9, (1001,), torch.float64, False, "per_sample"),  # feature rows, not images
    (5, (3, 17, 19), torch.uint8, False, "per_sample"),  # forward only, rounded to nearest
    (6, (3, 64, 67), torch.bfloat16, True, "scalar"),
]

# (N, C, H, W, dtype, channels_last, boxes: "mixed" (one empty, one full-image, the rest random
# and touching the borders), "empty", "full" or "random")
CUTMIX_CASES = [
    (1, 3, 5, 7, torch.float32, False, "full"),
    (1, 3, 5, 7, torch.float32, False, "empty"),
    (5, 3, 7, 9, torch.float32, False, "mixed"),
    (7, 3, 11, 13, torch.bfloat16, True, "mixed"),
    (3, 3, 1, 1, torch.float16, False, "mixed"),  # 1x1 images: every box empty or full
    (4, 1, 9, 1, torch.float32, True, "mixed"),  # W = 1
    (5, 3, 17, 19, torch.uint8, False, "mixed"),  # forward only
    (2, 5, 13, 11, torch.float64, False, "random"),
    (6, 3, 64, 67, torch.bfloat16, True, "mixed"),
]


def _rand_images(gen, shape, dtype, channels_last):
    if dtype == torch.uint8:
        x = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    else:
        x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _involution(n, gen):
    """Random pairs; an odd batch leaves one sample paired with itself."""
    order = torch.randperm(n, generator=gen)
    pairs = torch.arange(n)
    a, b = order[0 : n - 1 : 2], order[1:n:2]
    pairs[a], pairs[b] = b, a
    return pairs


def _compare(results, backend, names, dtype) -> list[str]:
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


def run_mixup_case(backend, device, n, sample_shape, dtype, channels_last, lam_kind) -> list[str]:
    """mixup forward + backward and the in-place pair swap, backend vs reference."""
    gen = torch.Generator(device="cpu").manual_seed(n * 7919 + sum(sample_shape))
    x = _rand_images(gen, (n, *sample_shape), dtype, channels_last).to(device)
    index = torch.randperm(n, generator=gen).to(device)
    pairs = _involution(n, gen).to(device)
    if lam_kind == "per_sample":
        lam = torch.rand(n, generator=gen)
        lam[0] = 0.0  # the partner alone
        lam[-1] = 1.0  # the sample alone
        lam = lam.to(device)
    else:
        lam = float(torch.rand((), generator=gen))
    floating = dtype.is_floating_point
    grad_out = torch.randn(x.shape, generator=gen).to(dtype).to(device) if floating else None

    results = {}
    for name in ("reference", backend):
        xi = x.detach().clone().requires_grad_(floating)
        out = cookbook_ops.mixup(xi, lam, index, backend=name)
        if floating:
            out.backward(grad_out)
        swapped = x.detach().clone()  # clone keeps channels_last
        cookbook_ops.mixup_pairs_(swapped, lam, pairs, backend=name)
        results[name] = (out.detach(), xi.grad, swapped)
    if device != "cpu":
        torch.cuda.synchronize()
    return _compare(results, backend, ("out", "grad_x", "pairs_"), dtype)


def _boxes(gen, n, h, w, kind):
    """(N, 4) int64 (y0, x0, y1, x1) rows inside an h x w image; random boxes are non-empty."""
    y0 = torch.randint(0, h, (n,), generator=gen)
    x0 = torch.randint(0, w, (n,), generator=gen)
    y1 = y0 + 1 + (torch.rand(n, generator=gen) * (h - y0)).long()
    x1 = x0 + 1 + (torch.rand(n, generator=gen) * (w - x0)).long()
    boxes = torch.stack((y0, x0, y1, x1), dim=1)
    if kind == "mixed":
        boxes[1::3, 2], boxes[2::3, 3] = h, w  # touching the bottom, the right border
    full = torch.tensor([0, 0, h, w])
    empty = torch.tensor([h // 2, w // 2, h // 2, w])  # zero height, nonzero width
    if kind == "full" or (kind == "mixed" and n > 1):
        boxes[1 if kind == "mixed" else slice(None)] = full
    if kind == "empty" or kind == "mixed":
        boxes[0 if kind == "mixed" else slice(None)] = empty
    return boxes


def run_cutmix_case(backend, device, n, c, h, w, dtype, channels_last, kind) -> list[str]:
    """CutMix forward (out and lam) + backward, backend vs reference."""
    gen = torch.Generator(device="cpu").manual_seed(n * 7919 + c * 131 + h * 31 + w)
    x = _rand_images(gen, (n, c, h, w), dtype, channels_last).to(device)
    index = torch.randperm(n, generator=gen).to(device)
    boxes = _boxes(gen, n, h, w, kind).to(device)
    floating = dtype.is_floating_point
    grad_out = torch.randn(x.shape, generator=gen).to(dtype).to(device) if floating else None

    results = {}
    for name in ("reference", backend):
        xi = x.detach().clone().requires_grad_(floating)
        out, lam = cookbook_ops.cutmix(xi, boxes, index, backend=name)
        if floating:
            out.backward(grad_out)
        results[name] = (out.detach(), lam, xi.grad)
    if device != "cpu":
        torch.cuda.synchronize()
    return _compare(results, backend, ("out", "lam", "grad_x"), dtype)


def _mixup_cases(backend, device):
    for n, sample_shape, dtype, channels_last, lam_kind in MIXUP_CASES:
        label = (
            f"{backend:9s} N={n:<3d} sample={'x'.join(map(str, sample_shape)):<9s} "
            f"{str(dtype).removeprefix('torch.'):8s} "
            f"{'channels_last' if channels_last else 'contiguous':13s} lam={lam_kind:10s}"
        )
        yield (
            label,
            functools.partial(
                run_mixup_case, backend, device, n, sample_shape, dtype, channels_last, lam_kind
            ),
        )


def _cutmix_cases(backend, device):
    for n, c, h, w, dtype, channels_last, kind in CUTMIX_CASES:
        label = (
            f"{backend:9s} N={n:<3d} {f'{c}x{h}x{w}':9s} {str(dtype).removeprefix('torch.'):8s} "
            f"{'channels_last' if channels_last else 'contiguous':13s} boxes={kind:6s}"
        )
        yield (
            label,
            functools.partial(
                run_cutmix_case, backend, device, n, c, h, w, dtype, channels_last, kind
            ),
        )


# --- mixup cross-entropy -----------------------------------------------------------------------

# (N, C, dtype, weighted, reduction, convention, lam: "scalar" or "per_sample")
MIXUP_CE_CASES = [
    (3, 7, torch.float32, False, "mean", "uniform", "scalar"),
    (13, 1001, torch.float32, False, "mean", "uniform", "per_sample"),
    (13, 1001, torch.bfloat16, False, "mean", "uniform", "scalar"),
    (13, 1001, torch.float16, True, "none", "others", "per_sample"),
    (5, 1, torch.float32, False, "none", "uniform", "scalar"),  # one class: targets all equal
    (64, 4099, torch.float32, True, "mean", "uniform", "per_sample"),
    (5, 32771, torch.bfloat16, False, "sum", "uniform", "scalar"),
    (2, 131073, torch.float32, False, "none", "uniform", "per_sample"),
    (2, 131073, torch.bfloat16, True, "mean", "lsr", "scalar"),
]


def run_mixup_ce_case(
    backend, device, n, c, dtype, weighted, reduction, convention, lam_kind
) -> list[str]:
    """Problems found (empty when the backend matches the reference)."""
    gen = torch.Generator(device="cpu").manual_seed(n * 7919 + c + 1)
    logits = (torch.randn(n, c, generator=gen) * 3).to(dtype).to(device)
    target_a = torch.randint(0, c, (n,), generator=gen)
    target_b = torch.randint(0, c, (n,), generator=gen)
    rows = torch.arange(n)
    target_b[rows % 3 == 2] = target_a[rows % 3 == 2]  # both slots the same class
    target_a[rows % 4 == 0] = IGNORE_INDEX  # row 0 and every fourth: slot a ignored
    target_b[rows % 4 == 1] = IGNORE_INDEX  # slot b ignored
    target_a[rows % 5 == 3] = target_b[rows % 5 == 3] = IGNORE_INDEX  # both ignored
    target_a, target_b = target_a.to(device), target_b.to(device)
    weight = torch.rand(c, generator=gen).add(0.5).to(device) if weighted else None
    if lam_kind == "per_sample":
        lam = torch.rand(n, generator=gen)
        lam[0] = 1.0
        lam = lam.to(device)
    else:
        lam = float(torch.rand((), generator=gen))
    grad_out = torch.randn(n, generator=gen).to(dtype).to(device) if reduction == "none" else None

    def loss_fn(x, name):
        return cookbook_ops.mixup_cross_entropy(
            x,
            target_a,
            target_b,
            lam,
            0.1,
            weight=weight,
            ignore_index=IGNORE_INDEX,
            reduction=reduction,
            convention=convention,
            return_correct=True,
            backend=name,
        )

    return _loss_problems(loss_fn, backend, device, logits, grad_out, dtype)


def _mixup_ce_cases(backend, device):
    for n, c, dtype, weighted, reduction, convention, lam_kind in MIXUP_CE_CASES:
        label = (
            f"{backend:9s} N={n:<3d} C={c:<6d} {str(dtype).removeprefix('torch.'):8s} "
            f"weight={'y' if weighted else 'n'} {reduction:4s} {convention:7s} lam={lam_kind:10s}"
        )
        yield (
            label,
            functools.partial(
                run_mixup_ce_case,
                backend,
                device,
                n,
                c,
                dtype,
                weighted,
                reduction,
                convention,
                lam_kind,
            ),
        )


# --- normalize_images --------------------------------------------------------------------------

# (N, H, W, C, layout, flip, mixup: None, "scalar" or "per_sample", out dtype, channels_last out)
NORMALIZE_CASES = [
    (2, 5, 7, 3, "NHWC", True, None, torch.float32, False),
    (3, 1, 9, 3, "NCHW", True, "per_sample", torch.bfloat16, True),  # H = 1
    (4, 7, 1, 1, "NHWC", False, "per_sample", torch.float16, False),  # W = 1, C = 1
    (5, 13, 11, 4, "NCHW", True, None, torch.float32, True),  # C = 4
    (1, 3, 3, 3, "NHWC", True, "scalar", torch.float32, True),  # N = 1
    (2, 1, 1, 1, "NCHW", True, "scalar", torch.float32, False),  # 1x1, C = 1
    (3, 31, 33, 3, "NHWC", True, "per_sample", torch.bfloat16, False),
    (6, 64, 67, 3, "NCHW", True, "per_sample", torch.bfloat16, True),
]
_NORMALIZE_CONSTANTS = {
    1: ((0.5,), (0.25,)),
    3: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    4: ((0.485, 0.456, 0.406, 0.5), (0.229, 0.224, 0.225, 0.3)),
}


def run_normalize_case(
    backend, device, n, h, w, c, layout, flip, mixup, out_dtype, channels_last
) -> list[str]:
    """Problems found (empty when the backend matches the reference). Not differentiable."""
    gen = torch.Generator(device="cpu").manual_seed(n * 7919 + h * 131 + w * 31 + c)
    shape = (n, h, w, c) if layout == "NHWC" else (n, c, h, w)
    images = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8).to(device)
    mean, std = _NORMALIZE_CONSTANTS[c]
    flip_t = None
    if flip:
        flip_t = torch.rand(n, generator=gen) < 0.5
        flip_t[0] = True
        flip_t = flip_t.to(device)
    mix = None
    if mixup is not None:
        lam = float(torch.rand((), generator=gen))
        if mixup == "per_sample":
            lam = torch.rand(n, generator=gen).to(device)
        mix = (lam, torch.randperm(n, generator=gen).to(device))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    results = {}
    for name in ("reference", backend):
        out = cookbook_ops.normalize_images(
            images,
            mean,
            std,
            layout=layout,
            flip=flip_t,
            mixup=mix,
            out_dtype=out_dtype,
            memory_format=memory_format,
            backend=name,
        )
        results[name] = (out,)
    if device != "cpu":
        torch.cuda.synchronize()
    return _compare(results, backend, ("out",), out_dtype)


def _normalize_cases(backend, device):
    for n, h, w, c, layout, flip, mixup, out_dtype, channels_last in NORMALIZE_CASES:
        label = (
            f"{backend:9s} N={n:<3d} {layout} H={h:<3d} W={w:<3d} C={c} "
            f"flip={'y' if flip else 'n'} mixup={mixup or 'n':10s} "
            f"{str(out_dtype).removeprefix('torch.'):8s} "
            f"{'channels_last' if channels_last else 'contiguous':13s}"
        )
        yield (
            label,
            functools.partial(
                run_normalize_case,
                backend,
                device,
                n,
                h,
                w,
                c,
                layout,
                flip,
                mixup,
                out_dtype,
                channels_last,
            ),
        )


# --- driver ------------------------------------------------------------------------------------

# op -> (its forward op, whose kernels decide the backends; public function; case generator)
OPS = {
    "label_smoothing_cross_entropy": (
        "label_smoothing_cross_entropy_forward",
        "label_smoothing_cross_entropy",
        _cross_entropy_cases,
    ),
    "bilinear_pool": ("bilinear_pool_forward", "bilinear_pool", _bilinear_cases),
    "mixup": ("mixup_forward", "mixup", _mixup_cases),
    "cutmix": ("cutmix_forward", "cutmix", _cutmix_cases),
    "mixup_cross_entropy": (
        "mixup_cross_entropy_forward",
        "mixup_cross_entropy",
        _mixup_ce_cases,
    ),
    "normalize_images": ("normalize_images_forward", "normalize_images", _normalize_cases),
}


def _no_kernel_reason(backend: str, device: str, forward_op: str) -> str | None:
    """None if ``backend`` has a kernel for ``forward_op`` on ``device``, else why not."""
    try:
        from cookbook_ops import _backend

        return _backend._backend_usable(backend, torch.device(device).type, forward_op)
    except (ImportError, AttributeError, KeyError, TypeError):  # an older package layout
        try:
            names = cookbook_ops.available_backends(device, op=forward_op)
        except (TypeError, KeyError):
            names = cookbook_ops.available_backends(device)
        return None if backend in names else "not in cookbook_ops.available_backends()"


def _compiled_backends(device: str, forward_op: str) -> list[str]:
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
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        p.error(f"unknown op(s) {', '.join(unknown)}; known: {', '.join(OPS)}")

    failures = total = 0
    no_kernel = []
    for op in ops:
        forward_op, public, cases = OPS[op]
        if not hasattr(cookbook_ops, public):
            print(f"# {op}: no kernel: cookbook_ops.{public} is not in this build", flush=True)
            no_kernel.append(op)
            continue
        if args.backends:
            backends = [b.strip() for b in args.backends.split(",")]
        else:
            backends = _compiled_backends(device, forward_op)
        print(f"# {op}", flush=True)
        if not backends:
            print(f"{op}: no kernel: no compiled backend runs it on {device}", flush=True)
            no_kernel.append(op)
            continue
        for backend in backends:
            reason = _no_kernel_reason(backend, device, forward_op)
            if reason is not None:
                print(f"{backend:9s} no kernel: {reason}", flush=True)
                no_kernel.append(f"{op}/{backend}")
                continue
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
    if no_kernel:
        print(f"no kernel (skipped): {', '.join(no_kernel)}", flush=True)
    print(f"{failures} failing case(s) of {total}", flush=True)
    if total == 0:
        print(f"no case ran: nothing was checked on {device}", flush=True)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
