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


def time_cuda(
    fn: Callable[[], object],
    *,
    reset: Callable[[], object] | None = None,
    warmup: int = 10,
    reps: int = 100,
    min_reps: int = 10,
    budget_s: float = 0.5,
    flush_l2: bool = True,
) -> Timing:
    """Per-call GPU times from CUDA events around ``fn``.

    ``reset`` and the L2 flush run before the start event, so neither is timed. Flushing L2
    gives every call cold caches, as in training where the logits were written long before the
    loss reads them; without it a small problem would be served from L2 and beat the DRAM
    floor. The host-side launch work of ``fn`` overlaps the flush, as it overlaps the model's
    own kernels in training, so what is timed is the GPU's work (plus any host sync ``fn``
    forces). The number of calls is ``budget_s`` / (estimated time per call), clamped to
    [``min_reps``, ``reps``].
    """
    reset = reset or _noop
    for _ in range(warmup):
        reset()
        fn()
    torch.cuda.synchronize()

    probe = 3
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(probe):
        reset()
        if flush_l2:
            _flush_l2()
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate_ms = max(start.elapsed_time(end) / probe, 1e-3)
    n = int(min(reps, max(min_reps, budget_s * 1e3 / estimate_ms)))

    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(n):
            reset()
            if flush_l2:
                _flush_l2()
            starts[i].record()
            fn()
            ends[i].record()
        torch.cuda.synchronize()
    finally:
        if gc_was_enabled:
            gc.enable()
    method = "cuda events" + (", L2 flushed" if flush_l2 else "")
    return Timing([s.elapsed_time(e) for s, e in zip(starts, ends)], method=method)


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
    """The commit benchmarked. A copy of the working tree without its .git (as on a borrowed
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
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
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


# --- command line and driver ---------------------------------------------------------------------


@dataclass
class BenchSpec:
    """What one op's benchmark script plugs into :func:`main`.

    Shapes are objects with ``.label`` and ``.name``; ``shape_dict`` gives the JSON form
    (its fields, less "name", identify a skipped group). ``run_group(shape, dtype, pass_,
    impls, device, effort, copy_gbps, progress)`` returns the group's records, eager first.
    """

    benchmark: str
    doc: str
    call: str
    impls: tuple[str, ...]
    passes: tuple[str, ...]
    dtypes: dict[str, torch.dtype]
    shapes: dict[str, list]
    quick_shapes: dict[str, list]
    effort: dict
    shapes_help: str
    parse_shapes: Callable[[str], list]
    shape_dict: Callable[[object], dict]
    unavailable_reason: Callable[[str, str], str | None]
    run_group: Callable[..., list[dict]]
    config: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def parse_args(spec: BenchSpec, argv=None):
    p = argparse.ArgumentParser(description=spec.doc.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--quick", action="store_true", help="smallest shapes, few reps (smoke test)")
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
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device_type = torch.device(args.device).type
    if args.shapes:
        shapes = spec.parse_shapes(args.shapes)
    else:
        shapes = (spec.quick_shapes if args.quick else spec.shapes)[device_type]
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
            **spec.config,
            "shapes": [spec.shape_dict(s) for s in shapes],
            "dtypes": [str(d).removeprefix("torch.") for d in dtypes],
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
                            "dtype": str(dtype).removeprefix("torch."),
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
    md_path = out_dir / f"{stem}.md"
    md_path.write_text(make_report.render(run))
    written = [json_path, md_path]
    if not args.no_plot:
        png_path = make_report.plot_speedups(run, out_dir / f"{stem}.png")
        if png_path is not None:
            written.append(png_path)
    print("\n" + make_report.summary_table(run), flush=True)
    print(f"\nwrote {', '.join(str(p) for p in written)} in {run['wall_s']:.0f}s", flush=True)
    bad = [r for r in run["results"] if r["status"] in ("error", "mismatch")]
    return 1 if bad else 0


def benchmark_params(bench, devices, shapes, dtypes):
    """pytest params (impl, device, shape, dtype name, pass) covering every case of a
    pytest-benchmark suite: ``bench`` is the op's benchmark module (its IMPLS and PASSES)."""
    import pytest

    return [
        pytest.param(
            impl,
            device,
            shape,
            dtype_name,
            pass_,
            id=f"{impl}-{device}-{shape.label}-{dtype_name}-{pass_}",
        )  # fmt: skip
        for device in devices
        for shape in shapes[device]
        for dtype_name in dtypes
        for pass_ in bench.PASSES
        for impl in bench.IMPLS
    ]
