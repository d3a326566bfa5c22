"""Measurement helpers shared by the op benchmarks.

Every number we publish is a ratio taken in one run (against PyTorch eager, torch.compile, peers)
or a fraction of the memory floor (bytes that must move / copy bandwidth measured in the same
run), because absolute times on shared machines do not reproduce.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import make_report
import torch

BENCH_DIR = Path(__file__).resolve().parent
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


# --- what every op benchmark shares ---------------------------------------------------------

OUR_BACKENDS = ("reference", "cpu", "cuda", "triton")
PASSES = ("fwd", "fwd+bwd")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Per-implementation timing effort: (warmup, max reps, min reps, seconds of timed calls).
EFFORT = {
    ("cuda", False): dict(warmup=5, reps=100, min_reps=10, budget_s=0.2),
    ("cuda", True): dict(warmup=3, reps=20, min_reps=5, budget_s=0.05),
    ("cpu", False): dict(warmup=2, reps=40, min_reps=7, budget_s=1.5),
    ("cpu", True): dict(warmup=1, reps=8, min_reps=3, budget_s=0.2),
}
TRITON_ON_CPU = "Triton on CPU tensors runs only in the interpreter, not a performance path"


def dtype_name(dtype: torch.dtype) -> str:
    """How results name a dtype: "float32" for torch.float32."""
    return str(dtype).removeprefix("torch.")


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def sync(device: str) -> None:
    """Wait for the GPU, so that a host clock read next covers the work queued before."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def compile_static(fn: Callable) -> Callable:
    """torch.compile with static shapes: one specialized graph per (shape, dtype, pass) group,
    as a training job with a fixed batch would get (the groups reset dynamo in between)."""
    return torch.compile(fn, dynamic=False)


def available_backends(device: str, op: str) -> list[str]:
    """The backends of ours that have a kernel for ``op`` on ``device`` in this build."""
    cookbook_ops = import_cookbook_ops()
    try:
        return list(cookbook_ops.available_backends(device, op=op))
    except (TypeError, KeyError):  # a build whose registry does not know the op (or op=)
        return list(cookbook_ops.available_backends(device))


def backend_unavailable_reason(
    backend: str, device: str, ops: tuple[str, ...], probe: Callable[[], object] | None = None
) -> str | None:
    """None if ``backend`` has a kernel for one of ``ops`` on ``device``, else why not.

    ``probe`` is a tiny call of the op on that backend: where the backend is missing, the op's
    own error message names the missing piece (an extension not built, no GPU, ...).
    """
    if backend == "triton" and torch.device(device).type == "cpu":
        return TRITON_ON_CPU
    if any(backend in available_backends(device, op) for op in ops):
        return None
    if probe is None:
        return f"cookbook_ops has no {backend} backend for {', '.join(ops)} on {device}"
    try:
        probe()
    except Exception as exc:
        return str(exc)
    return "not reported by cookbook_ops.available_backends()"


def import_failure(package: str, *imports: str) -> str | None:
    """None if every ``module`` or ``module:name`` of ``imports`` imports, else why not."""
    try:
        for spec in imports:
            module, _, name = spec.partition(":")
            imported = importlib.import_module(module)
            if name:
                getattr(imported, name)
    except Exception as exc:
        return f"{package} is not importable ({type(exc).__name__}: {exc})"
    return None


def auto_backend(device: str, op: str) -> str | None:
    """The backend ``backend="auto"`` runs for ``op`` on ``device``, for the record."""
    try:
        from cookbook_ops import _backend

        return _backend.resolve_backend("auto", torch.device(device), op)
    except Exception:  # an older layout of the package: not worth failing the run over
        return None


def impl_fn(impl: str, eager: Callable, ours: Callable[[str], Callable], **peers: Callable):
    """The callable of ``impl`` for one group: ``eager`` itself, torch.compile of it (static
    shapes), ``ours(backend)`` for a backend of ours, or ``peers[impl]()``."""
    if impl == "eager":
        return eager
    if impl == "compile":
        return compile_static(eager)
    if impl in OUR_BACKENDS:
        return ours(impl)
    if impl in peers:
        return peers[impl]()
    raise ValueError(f"unknown implementation {impl!r}")


def unknown_impl(impl: str, known: tuple[str, ...]) -> ValueError:
    return ValueError(f"unknown implementation {impl!r}; known: {', '.join(known)}")


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


# --- memory floor --------------------------------------------------------------------------


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


# --- environment -----------------------------------------------------------------------------


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


# --- output ----------------------------------------------------------------------------------


def _json_default(obj):
    if isinstance(obj, (torch.dtype, torch.device, Path)):
        return str(obj)
    if isinstance(obj, Timing):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def write_json(path: str | Path, data) -> Path:
    """Write ``data`` as indented JSON, atomically: a run killed mid-write (a stage timeout)
    leaves the previous complete file, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=_json_default, allow_nan=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


class Progress:
    """A progress bar when tqdm is installed and stderr is a terminal, else one stderr line
    per case (a bar redrawn into a log file is unreadable).

    Use :meth:`write` for anything printed while it is open, so tables and the bar do not
    overwrite each other.
    """

    def __init__(self, total: int, desc: str = "", enabled: bool = True):
        self.total, self.done, self.desc, self.enabled = total, 0, desc, enabled
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None and sys.stderr.isatty():
                self._bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False)
        self._t0 = time.perf_counter()

    def update(self, label: str, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(n)
        elif self.enabled:
            elapsed = time.perf_counter() - self._t0
            print(
                f"[{self.done}/{self.total} {elapsed:6.1f}s] {self.desc} {label}",
                file=sys.stderr,
                flush=True,
            )

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# --- one group of implementations ---------------------------------------------------------------


def measure_group(
    records: list[dict],
    prepare: Callable[[dict], tuple[Callable[[], object], Callable[[], object] | None]],
    finish: Callable[[dict, Timing], object],
    device: str,
    effort: dict,
    progress: Progress,
    label: str,
) -> None:
    """Time every implementation of one (shape, dtype, pass) group, filling its record.

    ``prepare(rec)`` builds the timed ``(fn, reset)`` of ``rec["impl"]`` (running and checking
    it once, noting what it finds in ``rec``); an exception marks the record as an error.
    ``finish(rec, timing)`` turns a timing into the record's numbers.
    """
    dev = torch.device(device)
    prepared = {}
    for rec in records:
        impl = rec["impl"]
        try:
            fn, reset = prepare(rec)
        except Exception as exc:
            rec["status"], rec["reason"] = "error", f"{type(exc).__name__}: {exc}"[:500]
            progress.update(f"{label} {impl}: error")
            continue
        if dev.type == "cuda":
            # One implementation at a time on the GPU: the largest cases would not fit every
            # implementation's buffers at once.
            try:
                timing = time_cuda(fn, reset=reset, **effort)
                rec["peak_mem_bytes"] = cuda_peak_memory(fn, reset)
                finish(rec, timing)
            except Exception as exc:
                rec["status"], rec["reason"] = "error", f"{type(exc).__name__}: {exc}"[:500]
            del fn, reset
            torch.cuda.empty_cache()
            progress.update(f"{label} {impl}")
        else:
            prepared[impl] = (fn, reset)

    if prepared:
        timings = time_cpu_interleaved(
            prepared,
            warmup=effort["warmup"],
            reps=effort["reps"],
            min_reps=effort["min_reps"],
            budget_s=effort["budget_s"] * len(prepared),
        )
        for rec in records:
            if rec["impl"] in timings:
                finish(rec, timings[rec["impl"]])
        progress.update(label, n=len(prepared))


def add_speedups(records: list[dict], baseline: str, key: str) -> None:
    """``rec[key]`` = baseline median / median, for every timed record of the group."""
    base = next((r for r in records if r["impl"] == baseline and "median_ms" in r), None)
    for rec in records:
        if base is not None and "median_ms" in rec:
            rec[key] = base["median_ms"] / rec["median_ms"]


# --- one implementation on one case -------------------------------------------------------------


@dataclass
class Case:
    """The inputs of one (shape, dtype, pass) group, made once and shared by every
    implementation, and the float64 (or eager) results they are checked against."""

    shape: object
    dtype: torch.dtype
    pass_: str
    device: str
    inputs: object
    expected: object

    @property
    def label(self) -> str:
        return f"{self.shape.label} {dtype_name(self.dtype)} {self.pass_}"


@dataclass
class Prepared:
    """One implementation ready to time: ``fn`` is the timed call, ``reset`` runs untimed
    before each call (None: nothing to reset). ``errors`` are the deviations its first call
    showed (JSON keys such as ``loss_err``), ``reason`` says why they are too large (None: ok).
    """

    fn: Callable[[], object]
    reset: Callable[[], object] | None
    compile_s: float | None
    errors: dict
    reason: str | None = None


GRAD_LIMIT_MESSAGE = "grad off by {:.2e} (of max |grad|)"


def prepare_call(
    impl: str,
    forward: Callable[[], object],
    inputs: list[torch.Tensor],
    case: Case,
    check: Callable[[object], dict],
    limits: dict[str, tuple[float, str]],
    against: str,
    *,
    grad_output: torch.Tensor | None = None,
) -> Prepared:
    """Build the timed callable of ``forward`` for ``case.pass_``, run it once (compiling if
    needed) and check that first result.

    ``forward()`` runs ``impl`` on ``inputs``; for ``fwd+bwd`` the inputs require grad, the
    timed call also runs backward (from ``grad_output``, or from a scalar loss), and their
    ``.grad`` is dropped untimed between calls. ``check(output)`` returns the errors of the
    first call while the gradients it left on ``inputs`` are still there; ``limits`` maps an
    error to its tolerance and message (see :func:`mismatch_reason`).
    """
    if case.pass_ == "fwd":
        fn, reset = forward, None
    else:
        for t in inputs:
            t.requires_grad_(True)

        def fn():
            forward().backward(grad_output)

        def reset():
            for t in inputs:
                t.grad = None

    t0 = time.perf_counter()
    out = forward()
    if case.pass_ != "fwd":
        out.backward(grad_output)
    sync(case.device)
    first_call_s = time.perf_counter() - t0
    errors = check(out)
    if reset is not None:
        reset()
    compile_s = first_call_s if impl == "compile" else None
    return Prepared(fn, reset, compile_s, errors, mismatch_reason(errors, limits, against))


def max_relative_error(actual: torch.Tensor | None, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected|; inf for a missing or misshapen result."""
    if actual is None or actual.shape != expected.shape:
        return float("inf")
    scale = expected.abs().max().clamp_min(1e-30)
    return float((actual.double() - expected).abs().max() / scale)


def mismatch_reason(errors: dict, limits: dict[str, tuple[float, str]], against: str) -> str | None:
    """Why ``errors`` exceed their ``limits`` (error key: (tolerance, message format)), or
    None. An error of None was not measured and passes."""
    bad = [
        message.format(errors[key])
        for key, (tolerance, message) in limits.items()
        if errors.get(key) is not None and not errors[key] <= tolerance
    ]
    return f"vs {against}: " + "; ".join(bad) if bad else None


def new_records(
    case: Case,
    impls: list[str],
    label: Callable[[str], str],
    fields: Callable[[str, object, torch.dtype, str], dict],
    *,
    shape: dict | None = None,
) -> list[dict]:
    """The result rows of ``impls`` in the group of ``case``, status ok until measured: the
    shape (``shape``, else :func:`shape_dict` of the case's), its variant where it has one,
    the common keys, then ``fields(impl, shape, dtype, pass_)`` (the group's floor)."""
    records = []
    for impl in impls:
        rec = {"shape": shape_dict(case.shape) if shape is None else shape}
        if getattr(case.shape, "variant", None) is not None:
            rec["variant"] = case.shape.variant
        rec.update(
            {
                "dtype": dtype_name(case.dtype),
                "pass": case.pass_,
                "impl": impl,
                "label": label(impl),
                "status": "ok",
                "reason": None,
            }
        )
        rec.update(fields(impl, case.shape, case.dtype, case.pass_))
        records.append(rec)
    return records


def time_group(
    case: Case,
    records: list[dict],
    prepare: Callable[[str, Case], Prepared],
    finish: Callable[[dict, Timing], object],
    effort: dict,
    progress: Progress,
    *,
    label: str | None = None,
    baselines: tuple[str, ...] = ("eager", "compile"),
) -> list[dict]:
    """Prepare, check and time the implementation of every record on ``case``, then add each
    record's speedups over ``baselines`` (``speedup_vs_<baseline>``)."""
    torch._dynamo.reset()  # compiled graphs of earlier groups must not count toward the limit

    def prepare_record(rec):
        prepared = prepare(rec["impl"], case)
        rec.update(compile_s=prepared.compile_s, **prepared.errors)
        if prepared.reason is not None:
            rec["status"], rec["reason"] = "mismatch", prepared.reason
        return prepared.fn, prepared.reset

    measure_group(
        records, prepare_record, finish, case.device, effort, progress, label or case.label
    )
    for baseline in baselines:
        add_speedups(records, baseline, f"speedup_vs_{baseline}")
    return records


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


# --- command line and driver ---------------------------------------------------------------------


def shape_dict(shape, *, with_label: bool = True) -> dict:
    """The JSON form of a shape dataclass: its fields, then its label and name."""
    fields = {k: v for k, v in asdict(shape).items() if k != "name"}
    if with_label:
        fields["label"] = shape.label
    return {**fields, "name": shape.name}


def parse_kind_sizes(text: str, kinds: tuple[str, ...], what: str) -> list[tuple[str, list[int]]]:
    """``[kind:]AxBx...`` items as (kind, sizes) pairs; an item without a kind stands for
    every kind of that size. ``what`` names the kind in the error for an unknown one."""
    items = []
    for item in text.split(","):
        kind, _, size = item.strip().rpartition(":")
        sizes = [int(v) for v in size.lower().split("x")]
        if kind and kind not in kinds:
            raise SystemExit(f"unknown {what} {kind!r}; known: {', '.join(kinds)}")
        items += [(k, sizes) for k in ([kind] if kind else kinds)]
    return items


@dataclass
class BenchSpec:
    """What one op's benchmark script plugs into :func:`main`.

    Shapes are objects with ``.label`` and ``.name``; ``shape_dict`` gives the JSON form
    (its fields, less "name", identify a skipped group). ``run_group(shape, dtype, pass_,
    impls, device, effort, copy_gbps, progress)`` returns the group's records, eager first.
    ``auto_backend_ops``: ops whose ``backend="auto"`` choice is printed and added to
    ``extra["notes"]``. ``extra_sections(run)``: (title, markdown table) pairs printed after
    the summary and appended to the markdown report.
    """

    benchmark: str
    doc: str
    call: str
    impls: tuple[str, ...]
    shapes: dict[str, list]
    quick_shapes: dict[str, list]
    # What a plain run (`make bench`) measures per device: the op's headline case, so that a
    # first look takes minutes; --full runs ``shapes``.
    headline_shapes: dict[str, list]
    shapes_help: str
    parse_shapes: Callable[[str], list]
    unavailable_reason: Callable[[str, str], str | None]
    run_group: Callable[..., list[dict]]
    passes: tuple[str, ...] = PASSES
    dtypes: dict[str, torch.dtype] = field(default_factory=lambda: dict(DTYPES))
    effort: dict = field(default_factory=lambda: dict(EFFORT))
    shape_dict: Callable[[object], dict] = shape_dict
    config: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    auto_backend_ops: tuple[str, ...] = ()
    extra_sections: Callable[[dict], list[tuple[str, str]]] | None = None


def parse_args(spec: BenchSpec, argv=None):
    p = argparse.ArgumentParser(description=spec.doc.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--quick", action="store_true", help="smallest shapes, few reps (smoke test)")
    p.add_argument(
        "--full",
        action="store_true",
        help="every shape of the sweep (default: the headline shape of the op)",
    )
    p.add_argument("--out", default=str(BENCH_DIR / "out"), help="output folder")
    p.add_argument("--shapes", default=None, help=spec.shapes_help)
    p.add_argument("--dtypes", default="fp32,bf16", help=f"from {', '.join(spec.dtypes)}")
    p.add_argument("--passes", default=",".join(spec.passes), help=", ".join(spec.passes))
    p.add_argument("--impls", default=None, help=f"subset of {', '.join(spec.impls)}")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds; (shape, dtype, pass) groups not started by then are recorded as skipped",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no GPU")
    return args


def main(spec: BenchSpec, argv=None) -> int:
    """Run every (shape, dtype, pass) group, print a table per shape, and write
    <out>/<benchmark>-<device>[-quick].{json,md,png}. The JSON is rewritten after every shape,
    so a run cut short still leaves its finished shapes; --time-budget skips (and records) the
    groups it has no time left for. Exit status 1 if any implementation errs or mismatches."""
    args = parse_args(spec, argv)
    for op in spec.auto_backend_ops:
        note = (
            f"backend='auto' runs {auto_backend(args.device, op)!r} for {op} on {args.device} "
            "in this build"
        )
        spec.extra["notes"].append(note)
        print(note, flush=True)
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device_type = torch.device(args.device).type
    if args.shapes:
        shapes = spec.parse_shapes(args.shapes)
    else:
        selection = spec.quick_shapes if args.quick else spec.shapes if args.full else None
        shapes = (selection or spec.headline_shapes)[device_type]
    dtypes = [spec.dtypes[d.strip()] for d in args.dtypes.split(",")]
    passes = [s.strip() for s in args.passes.split(",")]
    for pass_ in passes:
        if pass_ not in spec.passes:
            raise SystemExit(f"unknown pass {pass_!r}; known: {', '.join(spec.passes)}")
    wanted = [i.strip() for i in args.impls.split(",")] if args.impls else list(spec.impls)
    if "eager" not in wanted:
        wanted.insert(0, "eager")  # every ratio is against eager in the same run
    unavailable = {}
    impls = []
    for impl in wanted:
        reason = spec.unavailable_reason(impl, args.device)
        if reason is None:
            impls.append(impl)
        else:
            unavailable[impl] = reason
    effort = spec.effort[(device_type, args.quick)]

    out_dir = Path(args.out)
    stem = f"{spec.benchmark}-{device_type}" + ("-quick" if args.quick else "")
    json_path = out_dir / f"{stem}.json"

    env = environment(args.device)
    print(f"# {spec.benchmark} on {env['device_name']} ({args.device})", flush=True)
    print(
        f"torch {env['torch']}, triton {env['triton']}, cookbook_ops {env['cookbook_ops']}, "
        f"commit {env['git_commit']}, {env['torch_threads']} CPU threads",
        flush=True,
    )
    load = (env.get("load_average") or [0.0])[0]
    if device_type == "cpu" and load > 0.5 * (env["cpu_count"] or 1):
        print(
            f"warning: load average {load:.1f} on {env['cpu_count']} cores; CPU timings will be "
            "noisy (ratios from interleaved runs hold up better than absolute times)",
            flush=True,
        )
    print(f"implementations: {', '.join(impls)}", flush=True)
    for impl, reason in unavailable.items():
        print(f"  skipped {impl}: {reason}", flush=True)
    bandwidth = copy_bandwidth(args.device, quick=args.quick)
    print(f"copy bandwidth: {bandwidth['GBps']:.1f} GB/s (read+write)", flush=True)

    run = {
        "schema_version": 1,
        "benchmark": spec.benchmark,
        "call": spec.call,
        "environment": env,
        "config": {
            "device": args.device,
            "quick": args.quick,
            "selection": "shapes"
            if args.shapes
            else "quick"
            if args.quick
            else "full"
            if args.full
            else "headline",
            **spec.config,
            "shapes": [spec.shape_dict(s) for s in shapes],
            "dtypes": [dtype_name(d) for d in dtypes],
            "passes": passes,
            "impls": impls,
            "effort": effort,
            "seed": args.seed,
            "time_budget_s": args.time_budget,
            "argv": sys.argv[1:] if argv is None else list(argv),
        },
        "copy_bandwidth": bandwidth,
        **spec.extra,
        "unavailable": unavailable,
        "results": [],
        "skipped": [],
        "complete": False,
    }
    write_json(json_path, run)

    total = len(shapes) * len(dtypes) * len(passes) * len(impls)
    progress = Progress(total, desc=spec.benchmark)
    for shape in shapes:
        shape_records = []
        for dtype in dtypes:
            for pass_ in passes:
                elapsed = time.perf_counter() - t_start
                if args.time_budget is not None and elapsed > args.time_budget:
                    key = {k: v for k, v in spec.shape_dict(shape).items() if k != "name"}
                    run["skipped"].append(
                        {
                            **key,
                            "dtype": dtype_name(dtype),
                            "pass": pass_,
                            "reason": f"time budget of {args.time_budget:.0f}s spent",
                        }
                    )
                    progress.update(f"{shape.label} {pass_} skipped (time budget)", n=len(impls))
                    continue
                shape_records += spec.run_group(
                    shape, dtype, pass_, impls, args.device, effort, bandwidth["GBps"], progress
                )
        if not shape_records:
            continue
        run["results"] += shape_records
        run["wall_s"] = time.perf_counter() - t_start
        write_json(json_path, run)
        progress.write(
            f"\n## {shape.label} ({shape.name})\n\n"
            + make_report.shape_table(shape_records, peak=device_type == "cuda")
        )
    progress.close()

    run["complete"] = not run["skipped"]
    run["wall_s"] = time.perf_counter() - t_start
    write_json(json_path, run)
    sections = spec.extra_sections(run) if spec.extra_sections else []
    md_path = out_dir / f"{stem}.md"
    md_path.write_text(
        make_report.render(run)
        + "".join(f"\n## {title[:1].upper()}{title[1:]}\n\n{table}" for title, table in sections)
    )
    written = [json_path, md_path]
    if not args.no_plot:
        png_path = make_report.plot_speedups(run, out_dir / f"{stem}.png")
        if png_path is not None:
            written.append(png_path)
    print("\n" + make_report.summary_table(run), flush=True)
    for title, table in sections:
        print(f"\n{title}:\n\n{table}", flush=True)
    print(f"\nwrote {', '.join(str(p) for p in written)} in {run['wall_s']:.0f}s", flush=True)
    bad = [r for r in run["results"] if r["status"] in ("error", "mismatch")]
    return 1 if bad else 0


# --- pytest-benchmark suites -------------------------------------------------------------------

PYTEST_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PYTEST_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
PYTEST_ROUNDS = {"cpu": 20, "cuda": 50}


class SuiteCase(NamedTuple):
    """One case of a pytest-benchmark suite."""

    impl: str
    device: str
    shape: object
    dtype_name: str
    pass_: str


def benchmark_params(bench, shapes, devices=PYTEST_DEVICES, dtypes=PYTEST_DTYPES):
    """pytest params (one :class:`SuiteCase` each) covering every case of a pytest-benchmark
    suite: ``bench`` is the op's benchmark module (its IMPLS and PASSES)."""
    import pytest

    return [
        pytest.param(
            SuiteCase(impl, device, shape, dtype_name, pass_),
            id=f"{impl}-{device}-{shape.label}-{dtype_name}-{pass_}",
        )
        for device in devices
        for shape in shapes[device]
        for dtype_name in dtypes
        for pass_ in bench.PASSES
        for impl in bench.IMPLS
    ]


def run_suite_case(
    benchmark,
    bench,
    case: SuiteCase,
    group_prefix: str = "",
    *,
    not_applicable: str | None = None,
    per_second: dict | None = None,
) -> None:
    """One case of a pytest-benchmark suite, prepared as the standalone script prepares it (a
    fresh static graph, the inputs of a seeded run) and failed if its first call is off.

    ``bench`` is the op's benchmark module (its ``unavailable_reason``, ``make_case``,
    ``prepare`` and ``record_fields``); the case is skipped where its implementation is
    unavailable or ``not_applicable`` says why it has no row. The group is the prefix, device,
    shape, dtype and (where the op has several) pass. The record's floor fields go into
    extra_info, with the rates they give (floor GB/s, TFLOP/s) and those of ``per_second`` (an
    extra_info key: the amount per call it is a rate of).
    """
    import pytest

    impl, device, shape, dtype_name, pass_ = case
    reason = bench.unavailable_reason(impl, device) or not_applicable
    if reason is not None:
        pytest.skip(reason)
    dtype = PYTEST_DTYPES[dtype_name]
    torch._dynamo.reset()
    torch.manual_seed(0)
    prepared = bench.prepare(impl, bench.make_case(shape, dtype, pass_, device))
    assert prepared.reason is None, prepared.reason

    fields = bench.record_fields(impl, shape, dtype, pass_)
    rates = {"floor_GBps": fields["floor_bytes"] / 1e9}
    if "floor_flops" in fields:
        rates = {"TFLOPs": fields["floor_flops"] / 1e12, **rates}
    rates.update(per_second or {})
    fn = prepared.fn
    if device == "cuda":

        def target_fn():
            fn()
            torch.cuda.synchronize()  # pytest-benchmark reads a host clock
    else:
        target_fn = fn

    benchmark.group = f"{group_prefix}{device} {shape.label} {dtype_name}"
    if len(bench.PASSES) > 1:
        benchmark.group += f" {pass_}"
    benchmark.extra_info.update(impl=impl, **fields, compile_s=prepared.compile_s)
    benchmark.pedantic(
        target_fn, setup=prepared.reset, rounds=PYTEST_ROUNDS[device], warmup_rounds=2
    )
    stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if stats is not None:
        for key, amount in rates.items():
            benchmark.extra_info[key] = amount / stats.stats.median
