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

The cases live in ``benchmarks/sanitizer/``, one module per op family; this script walks them.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

import torch
from harness.environment import import_cookbook_ops
from sanitizer.bilinear_pool import bilinear_pool_cases
from sanitizer.blends import cutmix_cases, mixup_cases
from sanitizer.losses import (
    cross_entropy_cases,
    mixup_cross_entropy_cases,
    soft_target_cross_entropy_cases,
)
from sanitizer.normalize_images import normalize_images_cases

cookbook_ops = import_cookbook_ops()

# op -> (its forward op, whose kernels decide the backends; public function; case generator)
OPS = {
    "label_smoothing_cross_entropy": (
        "label_smoothing_cross_entropy_forward",
        "label_smoothing_cross_entropy",
        cross_entropy_cases,
    ),
    "bilinear_pool": ("bilinear_pool_forward", "bilinear_pool", bilinear_pool_cases),
    "mixup": ("mixup_forward", "mixup", mixup_cases),
    "cutmix": ("cutmix_forward", "cutmix", cutmix_cases),
    "mixup_cross_entropy": (
        "mixup_cross_entropy_forward",
        "mixup_cross_entropy",
        mixup_cross_entropy_cases,
    ),
    "normalize_images": ("normalize_images_forward", "normalize_images", normalize_images_cases),
    "soft_target_cross_entropy": (
        "soft_target_cross_entropy_forward",
        "label_smoothing_cross_entropy",
        soft_target_cross_entropy_cases,
    ),
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
