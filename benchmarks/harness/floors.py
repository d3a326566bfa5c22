"""The memory floor: bytes an op must move, over the copy bandwidth measured in the same run."""

from __future__ import annotations

import functools

import torch

from harness.timing import Timing, time_cpu, time_cuda


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def copy_bandwidth(device: str, nbytes: int | None = None, *, quick: bool = False) -> dict:
    """Achievable DRAM bandwidth on ``device``: a large tensor copy, (bytes read + written) /
    median time. Large enough to defeat the caches (L2 on GPUs, L3 on CPUs)."""
    dev = torch.device(device)
    if nbytes is None:
        if dev.type == "cuda":
            nbytes = (256 if quick else 1024) * 2**20
        else:
            nbytes = (128 if quick else 256) * 2**20
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=dev).uniform_()
    dst = torch.empty_like(src)
    fn = functools.partial(dst.copy_, src)
    if dev.type == "cuda":
        timing = time_cuda(fn, warmup=5, reps=50, min_reps=10, budget_s=0.2, flush_l2=False)
    else:
        timing = time_cpu(fn, warmup=2, reps=7 if quick else 15, min_reps=5, budget_s=3.0)
    moved = 2 * src.numel() * src.element_size()
    del fn, src, dst
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "bytes_copied": moved // 2,
        "bytes_moved": moved,
        "median_ms": timing.median_ms,
        "GBps": moved / (timing.median_ms * 1e-3) / 1e9,
        "timing": timing.to_dict(),
    }


def memory_floor_numbers(rec: dict, timing: Timing, copy_gbps: float) -> dict:
    """The record's time against its memory floor (``rec["floor_bytes"]`` at the copy
    bandwidth of this run), and against its estimated traffic where it has one."""
    median = timing.median_ms
    floor = rec["floor_bytes"]
    rec["timing"] = timing.to_dict()
    rec["median_ms"] = median
    rec["floor_ms"] = floor / (copy_gbps * 1e9) * 1e3
    rec["achieved_GBps"] = floor / (median * 1e-3) / 1e9
    rec["fraction_of_floor"] = rec["floor_ms"] / median
    if "bytes_moved_est" in rec:
        est = rec["bytes_moved_est"]
        rec["est_GBps"] = est / (median * 1e-3) / 1e9 if est is not None else None
    return rec
