"""``--overhead``: the per-call host cost of an op against the eager PyTorch code it replaces.

On tiny shapes a call's time is nearly all host work (argument checks, backend choice,
dispatch, autograd bookkeeping, the small reduction ops), which at an ImageNet batch is most of
a small op's call on the CPU and its launch latency on a GPU. An op's benchmark lists tiny
cases (:class:`OverheadCase`: the eager callable and ours, forward with autograd on, or forward
and backward); each is timed interleaved with its eager twin: rounds of ``calls`` timed calls
of one then the other, the order alternating between rounds, and the ratio is the median over
rounds of the two medians' quotient, so drifting machine load cancels out of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import median

import torch

from harness.output import write_json

# The issue-tracked target: an op's host cost at most this multiple of eager's.
TARGET_RATIO = 1.2


@dataclass
class OverheadCase:
    """One tiny case of one op: ``eager`` and ``ours`` each run one call (``pass_`` "fwd": the
    forward with autograd on where the op is differentiable; "fwd+bwd": forward and backward)."""

    name: str
    pass_: str
    eager: Callable[[], object]
    ours: Callable[[], object]


def _call_times(fn: Callable[[], object], calls: int) -> float:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return median(times)


def measure(case: OverheadCase, rounds: int = 15, calls: int = 200, warmup: int = 50) -> dict:
    """The interleaved medians of one case, in microseconds, and their ratio."""
    for _ in range(warmup):
        case.eager()
        case.ours()
    eager_us, ours_us, ratios = [], [], []
    for r in range(rounds):
        first, second = (case.eager, case.ours) if r % 2 == 0 else (case.ours, case.eager)
        t_first = _call_times(first, calls)
        t_second = _call_times(second, calls)
        t_eager, t_ours = (t_first, t_second) if r % 2 == 0 else (t_second, t_first)
        eager_us.append(t_eager * 1e6)
        ours_us.append(t_ours * 1e6)
        ratios.append(t_ours / t_eager)
    return {
        "case": case.name,
        "pass": case.pass_,
        "eager_us": median(eager_us),
        "ours_us": median(ours_us),
        "ratio": median(ratios),
        "rounds": rounds,
        "calls_per_round": calls,
    }


def table(rows: list[dict]) -> str:
    """The markdown table of a run's rows."""
    lines = [
        "| case | pass | eager (us/call) | ours (us/call) | ours / eager |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        flag = "" if row["ratio"] <= TARGET_RATIO else " (over target)"
        lines.append(
            f"| {row['case']} | {row['pass']} | {row['eager_us']:.1f} | {row['ours_us']:.1f} "
            f"| {row['ratio']:.2f}{flag} |"
        )
    return "\n".join(lines) + "\n"


def run(spec, args, env: dict, out_dir) -> int:
    """Measure every overhead case of ``spec`` on ``args.device``, print the table and write
    ``<out>/<benchmark>-overhead-<device>.{json,md}``."""
    if spec.overhead_cases is None:
        raise SystemExit(f"{spec.benchmark} has no --overhead cases")
    device_type = torch.device(args.device).type
    cases = spec.overhead_cases(args.device)
    rows = []
    for case in cases:
        row = measure(case, rounds=5 if args.quick else 15)
        rows.append(row)
        print(
            f"{row['case']:<28} {row['pass']:<8} eager {row['eager_us']:8.1f} us  "
            f"ours {row['ours_us']:8.1f} us  {row['ratio']:.2f}x",
            flush=True,
        )
    stem = f"{spec.benchmark}-overhead-{device_type}"
    result = {
        "schema_version": 1,
        "benchmark": spec.benchmark,
        "mode": "overhead",
        "target_ratio": TARGET_RATIO,
        "environment": env,
        "results": rows,
    }
    write_json(out_dir / f"{stem}.json", result)
    text = f"# {spec.benchmark}: per-call host overhead on {env['device_name']}\n\n" + table(rows)
    (out_dir / f"{stem}.md").write_text(text)
    print("\n" + table(rows), flush=True)
    return 0


def both_passes(
    name: str,
    eager: Callable[[], torch.Tensor],
    ours: Callable[[], torch.Tensor],
    grad: torch.Tensor | None = None,
) -> list[OverheadCase]:
    """The forward case of ``eager``/``ours`` (zero-argument calls whose inputs require grad) and
    the forward+backward case (``backward(grad)``; no ``grad`` for a scalar output)."""

    def with_backward(fn):
        def call():
            fn().backward(grad)

        return call

    return [
        OverheadCase(name, "fwd", eager, ours),
        OverheadCase(name, "fwd+bwd", with_backward(eager), with_backward(ours)),
    ]
