"""Markdown tables (and the speedup plot) from benchmark result JSON.

    python benchmarks/make_report.py RESULT.json [RESULT.json ...] [-o REPORT.md] [--summary]
        [--plot PNG]

Used by the benchmark scripts for their own output and to regenerate the committed tables in
``benchmarks/results/`` from the raw JSON next to them. Only reads; never re-times anything.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

IMPL_LABELS = {
    "eager": "torch eager",
    "compile": "torch.compile",
    "reference": "ours: reference",
    "cpu": "ours: cpu",
    "cuda": "ours: cuda",
    "triton": "ours: triton",
    "dense": "dense target (eager)",
    "per_image": "per-image transforms",
    "timm": "timm",
    "liger": "liger",
}
OURS_COMPILED = ("cpu", "cuda", "triton")
SHORT_DTYPE = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "float64": "fp64"}


# Results written before runs carried their own floor note are all cross-entropy runs.
CROSS_ENTROPY_FLOOR_NOTE = (
    "memory floor: fwd reads the logits once (N*C*elem bytes); fwd+bwd also writes the "
    "gradient once (2*N*C*elem). GB/s = floor bytes / time; of floor = floor time / time."
)


def impl_label(impl: str, overrides: dict[str, str] | None = None) -> str:
    """How a result row names an implementation: the benchmark's own label where it has one
    (``overrides``), else the common one."""
    return (overrides or {}).get(impl) or IMPL_LABELS.get(impl, impl)


def shape_label(shape: dict) -> str:
    """How a result names its shape: its own label, else NxC (cross-entropy runs)."""
    return shape.get("label") or f"{shape['n']}x{shape['c']}"


def _fmt(value, spec: str, missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def _note(rec: dict) -> str:
    parts = []
    if rec.get("status") != "ok":
        parts.append(f"**{rec['status'].upper()}** {rec.get('reason') or ''}".strip())
    timing = rec.get("timing") or {}
    if timing.get("p20_ms") and timing["p80_ms"] > 2 * timing["p20_ms"]:
        parts.append(f"noisy (p80/p20 = {timing['p80_ms'] / timing['p20_ms']:.1f})")
    host, median = timing.get("host_ms"), timing.get("median_ms")
    if host is not None and median and host > median:
        # The GPU time is what is reported; alone, a call this short waits on the host.
        parts.append(f"host-bound alone (host {host:.3f} ms/call)")
    if rec.get("compile_s") is not None:
        parts.append(f"first call (compile) {rec['compile_s']:.1f}s")
    text = "; ".join(parts).replace("|", "/").replace("\n", " ")
    return text[:160] + ("..." if len(text) > 160 else "")


def shape_table(records: list[dict], peak: bool = False) -> str:
    """One markdown table for the records of one shape (every dtype and pass).

    Columns only some benchmarks fill (speedup vs torch.compile, a compute floor) appear only
    when a record has them, so older tables regenerate unchanged.
    """
    vs_compile = any("speedup_vs_compile" in r for r in records)
    flops = any(r.get("floor_flops") is not None for r in records)
    head = ["dtype", "pass", "impl", "median ms", "p20-p80 ms", "vs eager"]
    if vs_compile:
        head.append("vs compile")
    head.append("GB/s")
    if flops:
        head += ["TFLOP/s", "floor ms", "bound"]
    head.append("of floor")
    if peak:
        head.append("peak MiB")
    head.append("note")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for rec in records:
        timing = rec.get("timing") or {}
        row = [
            SHORT_DTYPE.get(rec["dtype"], rec["dtype"]),
            rec["pass"],
            rec.get("label") or IMPL_LABELS.get(rec["impl"], rec["impl"]),
            _fmt(rec.get("median_ms"), ".3f"),
            (
                f"{timing['p20_ms']:.3f}-{timing['p80_ms']:.3f}"
                if timing.get("p20_ms") is not None
                else "-"
            ),
            _fmt(rec.get("speedup_vs_eager"), ".2f") + ("x" if "speedup_vs_eager" in rec else ""),
        ]
        if vs_compile:
            speedup = rec.get("speedup_vs_compile")
            row.append(_fmt(speedup, ".2f") + ("x" if speedup is not None else ""))
        row.append(_fmt(rec.get("achieved_GBps"), ".1f"))
        if flops:
            row += [
                _fmt(rec.get("achieved_TFLOPs"), ".2f"),
                _fmt(rec.get("floor_ms"), ".3f"),
                rec.get("bound") or "-",
            ]
        row.append(_fmt(rec.get("fraction_of_floor"), ".2f"))
        if peak:
            peak_bytes = rec.get("peak_mem_bytes")
            row.append(_fmt(peak_bytes / 2**20 if peak_bytes is not None else None, ".1f"))
        row.append(_note(rec))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _groups(run: dict):
    """Records grouped by (shape, dtype, pass), in run order."""
    groups: dict[tuple, list[dict]] = {}
    for rec in run.get("results", []):
        key = (shape_label(rec["shape"]), rec["dtype"], rec["pass"])
        groups.setdefault(key, []).append(rec)
    return groups


def _timed(recs: list[dict], impl: str) -> dict | None:
    return next((r for r in recs if r["impl"] == impl and r.get("median_ms") is not None), None)


def summary_table(run: dict) -> str:
    """Per (shape, dtype, pass): eager, torch.compile and the fastest backend of ours."""
    head = [
        "shape",
        "dtype",
        "pass",
        "eager ms",
        "compile ms",
        "best of ours",
        "ms",
        "vs eager",
        "vs compile",
        "of floor",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (label, dtype, pass_), recs in _groups(run).items():
        eager, compiled = _timed(recs, "eager"), _timed(recs, "compile")
        ours = [
            r for r in recs if r["impl"] in OURS_COMPILED and r.get("median_ms") is not None
        ] or [r for r in recs if r["impl"] == "reference" and r.get("median_ms") is not None]
        best = min(ours, key=lambda r: r["median_ms"]) if ours else None
        best_name = "-"
        if best is not None:
            best_name = best["impl"] + ("" if best["status"] == "ok" else f" ({best['status']})")
        row = [
            label,
            SHORT_DTYPE.get(dtype, dtype),
            pass_,
            _fmt(eager and eager["median_ms"], ".3f"),
            _fmt(compiled and compiled["median_ms"], ".3f"),
            best_name,
            _fmt(best and best["median_ms"], ".3f"),
            _fmt(best and best.get("speedup_vs_eager"), ".2f"),
            _fmt(compiled["median_ms"] / best["median_ms"] if best and compiled else None, ".2f"),
            _fmt(best and best.get("fraction_of_floor"), ".2f"),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def render(run: dict) -> str:
    """The full markdown report of one run."""
    env = run.get("environment", {})
    cfg = run.get("config", {})
    bw = run.get("copy_bandwidth", {})
    device = cfg.get("device", env.get("device", "?"))
    build = env.get("build_info") or {}
    out = [
        f"# {run.get('benchmark', 'benchmark')} on {env.get('device_name')} ({device})",
        "",
        f"- date (UTC): {env.get('date_utc')}; commit: {env.get('git_commit') or 'unknown'} "
        f"(source digest {env.get('source_digest')})",
        f"- torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), triton {env.get('triton')}, "
        f"cookbook_ops {env.get('cookbook_ops')}; backends built: "
        f"{', '.join(build.get('available_backends', [])) or '-'}",
        f"- call: `{run.get('call', '')}`" + ("; quick run" if cfg.get("quick") else ""),
        f"- copy bandwidth measured in this run: {_fmt(bw.get('GBps'), '.1f')} GB/s "
        "(bytes read + written / median time)",
        f"- {run.get('floor_note', CROSS_ENTROPY_FLOOR_NOTE)}",
        f"- CPU threads: {env.get('torch_threads')} (load average at start: "
        f"{_fmt((env.get('load_average') or [None])[0], '.2f')}); timing: "
        f"{(run.get('results') or [{}])[0].get('timing', {}).get('method', '-')}, median",
    ]
    out += [f"- {note}" for note in run.get("notes") or []]
    for impl, reason in (run.get("unavailable") or {}).items():
        out.append(f"- not measured: {IMPL_LABELS.get(impl, impl)}: {reason}")
    for skipped in run.get("skipped") or []:
        out.append(
            f"- not run: {shape_label(skipped)} {skipped['dtype']} {skipped['pass']}: "
            f"{skipped['reason']}"
        )
    out += ["", "## Summary", "", summary_table(run)]
    by_shape: dict[tuple, list[dict]] = {}
    for rec in run.get("results", []):
        shape = rec["shape"]
        by_shape.setdefault((shape_label(shape), shape["name"]), []).append(rec)
    for (label, name), recs in by_shape.items():
        out += [f"## {label} ({name})", "", shape_table(recs, peak=device.startswith("cuda"))]
    return "\n".join(out)


def plot_speedups(run: dict, path: str | Path) -> Path | None:
    """Bar chart of speedup vs eager, one panel per pass; None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return None
    groups = _groups(run)
    passes = list(dict.fromkeys(key[2] for key in groups))
    impls = [
        impl
        for impl in IMPL_LABELS
        if impl != "eager" and any(r["impl"] == impl for r in run.get("results", []))
    ]
    if not passes or not impls:
        return None
    x_labels = list(dict.fromkeys((label, d) for label, d, _ in groups))
    # Long shape labels (variant-NxCxHxW) run into each other when set level: slanted, 1.3
    # inches apart, their lines stay clear of each other; the figure grows to hold them.
    slanted = max(len(label) for label, _ in x_labels) > 12
    height = 3.6 * len(passes) + (1.0 if slanted else 0.0)
    fig, axes = plt.subplots(
        len(passes),
        1,
        figsize=(max(8, 1.3 * len(x_labels) + 3), height),
        squeeze=False,
    )
    width = 0.8 / len(impls)
    colors = plt.get_cmap("tab10")
    for ax, pass_ in zip(axes[:, 0], passes):
        for k, impl in enumerate(impls):
            xs, ys, hatches = [], [], []
            for i, (label, d) in enumerate(x_labels):
                rec = _timed(groups.get((label, d, pass_), []), impl)
                if rec is None or rec.get("speedup_vs_eager") is None:
                    continue
                xs.append(i - 0.4 + width * (k + 0.5))
                ys.append(rec["speedup_vs_eager"])
                hatches.append("//" if rec["status"] != "ok" else "")
            bars = ax.bar(xs, ys, width, label=IMPL_LABELS[impl], color=colors(k))
            for bar, hatch in zip(bars, hatches):
                bar.set_hatch(hatch)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylabel("speedup vs eager")
        ax.set_title(pass_)
        ax.set_xticks(range(len(x_labels)))
        ax.set_xticklabels(
            [f"{label}\n{SHORT_DTYPE.get(d, d)}" for label, d in x_labels],
            rotation=30 if slanted else 0,
            ha="right" if slanted else "center",
            rotation_mode="anchor",
            fontsize="small" if slanted else None,
        )
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(ncol=min(len(impls), 4), fontsize="small")
    env = run.get("environment", {})
    commit = (env.get("git_commit") or "unknown")[:10]
    fig.suptitle(
        # Two lines: on one, a narrow figure (few groups) would cut the title off.
        f"{run.get('benchmark')}: {env.get('device_name')}, torch {env.get('torch')}\n"
        f"{env.get('date_utc')}, {commit} (hatched: mismatch vs eager)",
        fontsize="medium",
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("json", nargs="+", help="result JSON written by a benchmark script")
    p.add_argument("-o", "--output", help="markdown file to write (default: stdout)")
    p.add_argument("--summary", action="store_true", help="only the summary tables")
    p.add_argument("--plot", help="also write the speedup plot of the (first) run here")
    args = p.parse_args(argv)
    runs = [json.loads(Path(path).read_text()) for path in args.json]
    if args.summary:
        text = "\n".join(
            f"{r.get('benchmark')} on {r.get('environment', {}).get('device_name')}:\n\n"
            + summary_table(r)
            for r in runs
        )
    else:
        text = "\n\n".join(render(r) for r in runs)
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text)
    if args.plot:
        plot_speedups(runs[0], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
