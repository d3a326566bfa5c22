"""``python -m cookbook_ops``: what this install can run, and what to do about what it cannot.

``python -m cookbook_ops --json`` prints :func:`cookbook_ops.build_info` as JSON instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import cookbook_ops


def _advice(info: dict) -> list[str]:
    """One line per missing backend: why it is missing and how to get it."""
    advice = []
    if not info["extension_loaded"]:
        advice.append(
            f"C++/CUDA kernels: not loaded ({info['extension_error']}). Every op runs on the "
            "pure-PyTorch reference. To build them: install a C++ compiler, then "
            "`pip install --no-build-isolation --force-reinstall --no-deps cookbook_ops` "
            "(or `.` in a source checkout) with the torch you run."
        )
    elif not info["cuda_kernels"]:
        if info["torch_cuda"] is None:
            why = f"torch {info['torch']} is a CPU-only build; install a CUDA build of torch"
        else:
            why = (
                f"the extension was built without them ({'; '.join(info['build_notes'])}); "
                f"install the CUDA toolkit (nvcc) for CUDA {info['torch_cuda']}"
            )
        advice.append(
            f"CUDA C++ kernels: not built: {why}, then reinstall cookbook_ops with "
            "`pip install --no-build-isolation` (CUDA tensors run on Triton or the reference "
            "until then)."
        )
    if not info["triton_loaded"] and info["torch_cuda"] is not None:
        advice.append(
            f"Triton kernels: not loaded ({info['triton_error']}); `pip install triton` "
            "(the version your torch pins) to use them."
        )
    if info["extension_loaded"] and not info["cpu_kernels"]:
        advice.append(
            "C++ CPU kernels: some ops lack them (an extension built from older sources); "
            "reinstall cookbook_ops."
        )
    return advice


def render(info: dict) -> str:
    """build_info() as a short human-readable report."""
    built = info["built_with_torch"]
    lines = [
        f"cookbook_ops {info['version']}",
        f"  python {platform.python_version()}, torch {info['torch']}"
        + (f" (CUDA {info['torch_cuda']})" if info["torch_cuda"] else " (CPU-only build)")
        + (", GPU visible" if info["cuda_available"] else ", no GPU visible"),
        "  extension: "
        + (
            f"loaded, built with torch {built}"
            + (
                f", CUDA {info['built_with_cuda']} for sm {info['built_cuda_arch_list']}"
                if info["built_with_cuda"]
                else ", no CUDA kernels"
            )
            if info["extension_loaded"]
            else f"not loaded ({info['extension_error']})"
        ),
        "  triton: "
        + (
            "loaded"
            + (" (TRITON_INTERPRET=1: runs on CPU tensors)" if info["triton_interpret"] else "")
            if info["triton_loaded"]
            else f"not loaded ({info['triton_error']})"
        ),
        f"  default backend: {info['default_backend']}",
        "  backends by device:",
    ]
    devices = ["cpu"] + (["cuda"] if info["cuda_available"] else [])
    for device in devices:
        lines.append(f"    {device}: {', '.join(cookbook_ops.available_backends(device))}")
    if not info["cuda_available"]:
        cuda = [
            name
            for name, built_ok in (
                ("cuda", info["cuda_kernels"]),
                ("triton", info["triton_loaded"]),
            )
            if built_ok
        ]
        lines.append(
            "    cuda (no GPU here): "
            + (", ".join(cuda) + " installed" if cuda else "no compiled kernels installed")
        )
    for note in info["build_notes"]:
        lines.append(f"  build: {note}")
    advice = _advice(info)
    if advice:
        lines.append("what to do:")
        lines.extend(f"  - {line}" for line in advice)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cookbook_ops", description="Show what this cookbook_ops install can run."
    )
    parser.add_argument("--json", action="store_true", help="print build_info() as JSON")
    args = parser.parse_args(argv)
    info = cookbook_ops.build_info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(render(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
