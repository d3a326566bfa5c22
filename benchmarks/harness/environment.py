"""What produced a result: hardware, versions, commit, date and what was built."""

from __future__ import annotations

import datetime
import hashlib
import importlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = BENCH_DIR.parent


def import_cookbook_ops():
    """Import cookbook_ops, falling back to the source tree of this checkout.

    The source tree is only used when nothing is installed: putting it first unconditionally
    would shadow a regular install (and its compiled kernels) with a tree that has none.
    """
    try:
        return importlib.import_module("cookbook_ops")
    except ImportError:
        sys.path.insert(0, str(REPO_ROOT))
        return importlib.import_module("cookbook_ops")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The commit benchmarked. A copy of the working tree without its .git (as on a remote
    GPU machine) cannot tell, so BENCH_GIT_COMMIT, set by whoever ran it, takes precedence."""
    override = os.environ.get("BENCH_GIT_COMMIT", "").strip()
    if override:
        return override
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def source_digest() -> str:
    """sha256 (first 16 hex digits) of the sources that decide what is measured: the package,
    the kernels and the build files of this checkout. Lets a run on a tree without .git be
    matched to the commit whose files give the same digest."""
    h = hashlib.sha256()
    files = set()
    for pattern in ("cookbook_ops/**/*.py", "csrc/**/*", "setup.py", "pyproject.toml"):
        files.update(p for p in REPO_ROOT.glob(pattern) if p.is_file())
    for path in sorted(files):
        if path.name == "_build_config.py" or path.suffix in (".so", ".pyd", ".o", ".pyc"):
            continue  # written by the build, not source
        h.update(path.relative_to(REPO_ROOT).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def environment(device: str) -> dict:
    """What produced a result: hardware, versions, commit, date and what was built."""
    cookbook_ops = import_cookbook_ops()
    dev = torch.device(device)
    env = {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": dev.type,
        "device_name": None,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # CPU timings from a loaded machine are suspect (oversubscribed OpenMP threads wait
        # for a time slice); the load at the start lets a reader tell.
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": _version("triton"),
        "cookbook_ops": getattr(cookbook_ops, "__version__", None),
        "git_commit": git_commit(),
        "source_digest": source_digest(),
        "peers": {"timm": _version("timm"), "liger_kernel": _version("liger_kernel")},
        "build_info": cookbook_ops.build_info(),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env["device_name"] = props.name
        env["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "sm_count": props.multi_processor_count,
            "total_memory_bytes": props.total_memory,
        }
    else:
        env["device_name"] = env["cpu_model"]
    return env
