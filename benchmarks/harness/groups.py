"""One (shape, dtype, pass) group: its result rows, every implementation timed on its case,
and the speedups between them."""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.cases import Case, Prepared
from harness.output import Progress
from harness.spec import dtype_name, shape_dict
from harness.timing import Timing, cuda_peak_memory, time_cpu_interleaved, time_cuda


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
