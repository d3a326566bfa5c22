"""Timing on the CPU and on CUDA: per-call samples and the robust summaries we report.

CPU timings interleave the implementations being compared (a shared machine's load then falls
on all of them alike); CUDA timings are the GPU's work per call from events, with L2 flushed and
the host's launch work hidden, as in training.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


def sync(device: str) -> None:
    """Wait for the GPU, so that a host clock read next covers the work queued before."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# --- statistics --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Timing:
    """Per-call times in milliseconds and the robust summaries we report."""

    samples_ms: list[float] = field(default_factory=list)
    method: str = ""
    # CUDA only: median host (CPU) time of one call's launch work, measured apart.
    host_ms: float | None = None

    @property
    def median_ms(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p20_ms(self) -> float:
        return percentile(self.samples_ms, 20)

    @property
    def p80_ms(self) -> float:
        return percentile(self.samples_ms, 80)

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms) if self.samples_ms else float("nan")

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "n": len(self.samples_ms),
            "median_ms": self.median_ms,
            "p20_ms": self.p20_ms,
            "p80_ms": self.p80_ms,
            "min_ms": self.min_ms,
            "host_ms": self.host_ms,
            "samples_ms": [round(v, 6) for v in self.samples_ms],
        }


def _noop():
    return None


# --- CPU timing --------------------------------------------------------------------------


def time_cpu_interleaved(
    cases: dict[str, tuple[Callable[[], object], Callable[[], object] | None]],
    *,
    warmup: int = 3,
    reps: int = 30,
    min_reps: int = 5,
    budget_s: float | None = None,
) -> dict[str, Timing]:
    """Time several callables round-robin with time.perf_counter.

    ``cases`` maps a name to ``(fn, reset)``; ``reset`` runs untimed before every call (e.g. to
    drop ``.grad`` so gradient accumulation is not timed). Interleaving spreads the background
    load of a shared machine evenly over the implementations being compared, so their ratios
    stay meaningful even when the absolute times drift. Stops after ``reps`` rounds, or after
    ``budget_s`` seconds of timed rounds once ``min_reps`` rounds are done.
    """
    timings = {name: Timing(method="cpu perf_counter, interleaved") for name in cases}
    for _ in range(warmup):
        for fn, reset in cases.values():
            (reset or _noop)()
            fn()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection landing inside one sample would be charged to one impl only
    try:
        start = time.perf_counter()
        for rnd in range(reps):
            for name, (fn, reset) in cases.items():
                (reset or _noop)()
                t0 = time.perf_counter()
                fn()
                t1 = time.perf_counter()
                timings[name].samples_ms.append((t1 - t0) * 1e3)
            if (
                budget_s is not None
                and rnd + 1 >= min_reps
                and time.perf_counter() - start > budget_s
            ):
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


def time_cpu(
    fn: Callable[[], object],
    *,
    reset: Callable[[], object] | None = None,
    warmup: int = 3,
    reps: int = 30,
    min_reps: int = 5,
    budget_s: float | None = None,
) -> Timing:
    """Median-friendly samples of one callable on the CPU (see :func:`time_cpu_interleaved`)."""
    timing = time_cpu_interleaved(
        {"fn": (fn, reset)}, warmup=warmup, reps=reps, min_reps=min_reps, budget_s=budget_s
    )["fn"]
    timing.method = "cpu perf_counter"
    return timing


# --- CUDA timing -------------------------------------------------------------------------

_L2_FLUSH_BYTES = 256 * 1024 * 1024  # comfortably above the L2 of any current GPU
_l2_flush_buffer: torch.Tensor | None = None


def _flush_l2() -> None:
    global _l2_flush_buffer
    if _l2_flush_buffer is None:
        _l2_flush_buffer = torch.empty(_L2_FLUSH_BYTES, dtype=torch.uint8, device="cuda")
    _l2_flush_buffer.zero_()


# Queued ahead of every timed call: at least this many times the host time of one call.
_HIDE_HOST_FACTOR = 2.0
_HIDE_HOST_MAX_MS = 20.0
_sleep_cycles_per_ms: float | None = None


def _cycles_per_ms() -> float:
    """GPU clock cycles per millisecond of ``torch.cuda._sleep``, measured once."""
    global _sleep_cycles_per_ms
    if _sleep_cycles_per_ms is None:
        cycles = 1_000_000
        torch.cuda._sleep(cycles)  # first launch loads the kernel
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        torch.cuda.synchronize()
        _sleep_cycles_per_ms = cycles / max(start.elapsed_time(end), 1e-3)
    return _sleep_cycles_per_ms


def host_time_ms(
    fn: Callable[[], object], reset: Callable[[], object] | None = None, calls: int = 7
) -> float:
    """Median wall time the host spends in one call of ``fn`` from an idle GPU: its launch
    work (Python, dispatch, allocation, kernel launches), plus any wait ``fn`` forces."""
    reset = reset or _noop
    samples = []
    for _ in range(calls):
        reset()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    torch.cuda.synchronize()
    return percentile(samples, 50)


def time_cuda(
    fn: Callable[[], object],
    *,
    reset: Callable[[], object] | None = None,
    warmup: int = 10,
    reps: int = 100,
    min_reps: int = 10,
    budget_s: float = 0.5,
    flush_l2: bool = True,
    hide_host: bool = True,
) -> Timing:
    """Per-call GPU times from CUDA events around ``fn``.

    ``reset`` and the L2 flush run before the start event, so neither is timed. Flushing L2
    gives every call cold caches, as in training where the logits were written long before the
    loss reads them; without it a small problem would be served from L2 and beat the DRAM
    floor. What is timed is the GPU's work, as in training, where the host's launch work for
    one op overlaps the GPU's work on earlier ones: with ``hide_host`` a GPU sleep of at least
    twice the host time of one call (measured first, reported as ``host_ms``) is queued before
    each start event, so the host is always ahead of the GPU and a slow or jittery host cannot
    leave the GPU idle inside the timed interval. (Without it only the flush covers the host
    work; host-heavy calls such as forward+backward through autograd then time the host too,
    and vary with its load.) A host sync inside ``fn`` still costs what it costs: the GPU
    drains, and the launches after it are timed. The number of calls is ``budget_s`` /
    (estimated GPU time per call), clamped to [``min_reps``, ``reps``].
    """
    reset = reset or _noop
    for _ in range(warmup):
        reset()
        fn()
    torch.cuda.synchronize()

    host_ms = host_time_ms(fn, reset)
    hide_cycles = 0
    if hide_host and hasattr(torch.cuda, "_sleep"):
        hide_ms = min(_HIDE_HOST_FACTOR * host_ms + 0.05, _HIDE_HOST_MAX_MS)
        hide_cycles = int(hide_ms * _cycles_per_ms())

    def timed_calls(count: int) -> list[float]:
        """GPU ms of ``count`` calls, each after its reset, flush and sleep."""
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(count)
        ]
        for start, end in events:
            reset()
            if flush_l2:
                _flush_l2()
            if hide_cycles:
                torch.cuda._sleep(hide_cycles)
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in events]

    probe = timed_calls(3)
    estimate_ms = max(sum(probe) / len(probe), 1e-3)
    n = int(min(reps, max(min_reps, budget_s * 1e3 / estimate_ms)))

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        samples = timed_calls(n)
    finally:
        if gc_was_enabled:
            gc.enable()
    method = "cuda events" + (", L2 flushed" if flush_l2 else "")
    if hide_cycles:
        method += ", host work hidden"
    return Timing(samples, method=method, host_ms=host_ms)


def cuda_peak_memory(fn: Callable[[], object], reset: Callable[[], object] | None = None) -> int:
    """Bytes allocated at the peak of one call, above what was allocated before it."""
    (reset or _noop)()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before
