"""Blend cases: mixup (and the in-place pair swap) and CutMix."""

from __future__ import annotations

import functools

import torch
from harness.environment import import_cookbook_ops

from sanitizer.compare import compare

cookbook_ops = import_cookbook_ops()

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


def rand_images(gen, shape, dtype, channels_last):
    if dtype == torch.uint8:
        x = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    else:
        x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def involution(n, gen):
    """Random pairs; an odd batch leaves one sample paired with itself."""
    order = torch.randperm(n, generator=gen)
    pairs = torch.arange(n)
    a, b = order[0 : n - 1 : 2], order[1:n:2]
    pairs[a], pairs[b] = b, a
    return pairs


def run_mixup_case(backend, device, n, sample_shape, dtype, channels_last, lam_kind) -> list[str]:
    """mixup forward + backward and the in-place pair swap, backend vs reference."""
    gen = torch.Generator(device="cpu").manual_seed(n * 7919 + sum(sample_shape))
    x = rand_images(gen, (n, *sample_shape), dtype, channels_last).to(device)
    index = torch.randperm(n, generator=gen).to(device)
    pairs = involution(n, gen).to(device)
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
    return compare(results, backend, ("out", "grad_x", "pairs_"), dtype)


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
    x = rand_images(gen, (n, c, h, w), dtype, channels_last).to(device)
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
    return compare(results, backend, ("out", "lam", "grad_x"), dtype)


def mixup_cases(backend, device):
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


def cutmix_cases(backend, device):
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
