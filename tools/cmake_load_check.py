"""Load the CMake-built libcookbook_ops.so with torch.ops.load_library and check its kernels.

The library only registers kernels, so the schemas come from `import cookbook_ops` with the
in-tree extension disabled (loading both would register every kernel twice). Then:
- the CPU forward kernel must be absent before the load and present after it (so it came from
  this library, not a fallback);
- one forward call must match the reference; the backward too, when the library has it;
- with --expect-cuda, CUDA kernels must be registered as well (they cannot run here).

    python tools/cmake_load_check.py [build-cmake/libcookbook_ops.so] [--expect-cuda]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ["COOKBOOK_OPS_DISABLE_EXTENSION"] = "1"
# The Triton kernels are irrelevant to this library; skipping them keeps the check fast.
os.environ.setdefault("COOKBOOK_OPS_DISABLE_TRITON", "1")

import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cookbook_ops  # noqa: E402
from cookbook_ops import _library, reference  # noqa: E402

FORWARD = _library.LSCE_FORWARD
BACKWARD = _library.LSCE_BACKWARD


def has_kernel(name: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(_library.qualified(name), key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "library", nargs="?", default=os.path.join(ROOT, "build-cmake", "libcookbook_ops.so")
    )
    parser.add_argument("--expect-cuda", action="store_true", help="require CUDA registrations too")
    args = parser.parse_args()

    failures = []
    if not os.path.exists(args.library):
        print(f"FAIL: {args.library} does not exist (run tools/cmake_check.sh)")
        return 1
    if has_kernel(FORWARD, "CPU"):
        failures.append(f"{FORWARD} already has a CPU kernel before loading the library")

    torch.ops.load_library(args.library)
    print(
        f"loaded {args.library} (torch {torch.__version__}, "
        f"cookbook_ops {cookbook_ops.__version__})"
    )

    keys = ["CPU"] + (["CUDA"] if args.expect_cuda else [])
    for name in (FORWARD, BACKWARD):
        for key in keys:
            present = has_kernel(name, key)
            print(f"  {name:45s} {key:5s} {'registered' if present else 'missing'}")
            if not present and name == FORWARD:
                failures.append(f"{name} has no {key} kernel after loading the library")

    if has_kernel(FORWARD, "CPU"):
        gen = torch.Generator().manual_seed(0)
        n, c, ignore_index = 9, 13, -100
        logits = torch.randn(n, c, generator=gen, dtype=torch.float32) * 3
        target = torch.randint(0, c, (n,), generator=gen)
        target[2] = ignore_index
        on, off = reference.smoothing_weights("uniform", 0.1, c)
        got = _library.op(FORWARD)(logits, target, None, on, off, ignore_index)
        want = reference.label_smoothing_cross_entropy_forward(
            logits, target, None, on, off, ignore_index
        )
        for label, g, w in zip(("loss", "lse", "correct"), got, want):
            ok = (
                g.shape == w.shape
                and g.dtype == w.dtype
                and torch.allclose(g, w, rtol=1e-5, atol=1e-6)
            )
            print(f"  forward {label:8s} {'matches' if ok else 'DIFFERS from'} the reference")
            if not ok:
                failures.append(f"forward {label}: got {g} ({g.dtype}), want {w} ({w.dtype})")

        if has_kernel(BACKWARD, "CPU"):
            lse = want[1]
            grad_loss = torch.randn(n, generator=gen)
            got_grad = _library.op(BACKWARD)(
                grad_loss, logits, target, None, lse, on, off, ignore_index
            )
            want_grad = reference.label_smoothing_cross_entropy_backward(
                grad_loss, logits, target, None, lse, on, off, ignore_index
            )
            ok = torch.allclose(got_grad, want_grad, rtol=1e-5, atol=1e-6)
            print(f"  backward {'matches' if ok else 'DIFFERS from'} the reference")
            if not ok:
                failures.append("backward differs from the reference")

    for failure in failures:
        print(f"FAIL: {failure}")
    print("cmake load check:", "FAIL" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
