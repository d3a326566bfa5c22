"""normalize_images cases: both layouts, C = 1, 3, 4, H or W = 1, flip, mixup, every output."""

from __future__ import annotations

import functools

import torch
from harness.environment import import_cookbook_ops

from sanitizer.compare import compare

cookbook_ops = import_cookbook_ops()

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
    return compare(results, backend, ("out",), out_dtype)


def normalize_images_cases(backend, device):
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
