"""The command line every ``bench_<op>.py`` shares, and the run loop behind it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import make_report
import torch

from harness import overhead
from harness.environment import BENCH_DIR, environment
from harness.floors import copy_bandwidth
from harness.impls import auto_backend
from harness.output import Progress, write_json
from harness.spec import BenchSpec, dtype_name


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
    p.add_argument(
        "--overhead",
        action="store_true",
        help="per-call host overhead on tiny shapes against eager, interleaved (no sweep)",
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
    # Which shapes run: --shapes, else --quick, else --full, else the op's headline case.
    selection = (
        "shapes" if args.shapes else "quick" if args.quick else "full" if args.full else "headline"
    )
    if selection == "shapes":
        shapes = spec.parse_shapes(args.shapes)
    else:
        tables = {"quick": spec.quick_shapes, "full": spec.shapes, "headline": spec.headline_shapes}
        shapes = tables[selection][device_type]
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
    if args.overhead:
        return overhead.run(spec, args, env, out_dir)
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
            "selection": selection,
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
