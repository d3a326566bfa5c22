"""Fused classifier head (linear + cross-entropy) against Linear + F.cross_entropy and peers.

    python benchmarks/bench_linear_cross_entropy.py [--device cpu|cuda] [--full] [--quick]
        [--out DIR] [--shapes 1024x256x21843,...] [--dtypes fp32,bf16] [--impls eager,cpu,...]

Implementations of ``loss = CE(x @ W.T + b, t)`` (mean), forward + backward (gradients of x, W
and b; ``.grad`` dropped untimed between calls): PyTorch eager ``F.cross_entropy(F.linear(x, W,
b), t)`` (3 GEMMs and the N x C logits), torch.compile of it, ``F.linear_cross_entropy`` with
``LinearCrossEntropyOptions()`` (PyTorch's chunked path) where the installed torch has it, and
``cookbook_ops.linear_cross_entropy`` on every backend whose cross-entropy kernels the chunks can
run.

Peak memory: bytes allocated at the peak of one call above what was allocated before it; on
CUDA torch.cuda.max_memory_allocated, on the CPU the running sum of the allocator's
allocations and frees that torch.profiler records (profile_memory=True) during the call.

Floor: the 3 GEMMs (6*N*K*C FLOPs) at the rate of one (N, K) x (K, C) torch.mm measured in the
same run, or the bytes of x, W, b and their gradients at the copy bandwidth, whichever is more.

Writes <out>/linear_cross_entropy-<device>[-quick].{json,md,png}.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import make_report
import torch
import torch.nn.functional as F
from harness import driver, spec
from harness.cases import GRAD_LIMIT_MESSAGE, Case, Prepared, max_relative_error, prepare_call
from harness.environment import import_cookbook_ops
from harness.floors import element_size
from harness.groups import new_records, time_group
from harness.impls import (
    OUR_BACKENDS,
    backend_unavailable_reason,
    compile_static,
    unknown_impl,
)
from harness.overhead import both_passes
from harness.spec import BenchSpec
from harness.timing import Timing, time_cpu, time_cuda

cookbook_ops = import_cookbook_ops()

BENCHMARK = "linear_cross_entropy"
FORWARD_OP = "label_smoothing_cross_entropy_forward"  # the kernels the chunks run
PASSES = ("fwd+bwd",)
IMPLS = ("eager", "compile", "torch_chunked", *OUR_BACKENDS)
LABELS = {"torch_chunked": "F.linear_cross_entropy (chunked)"}
NOTES: list[str] = []


@dataclass(frozen=True)
class Shape:
    n: int
    k: int
    c: int
    name: str = ""
    # False: leave out the implementations that take seconds per call here (PyTorch's chunked
    # path, ours on the reference kernels), so that a plain CPU run takes about a minute.
    slow_impls: bool = True

    @property
    def label(self) -> str:
        return f"{self.n}x{self.k}x{self.c}"


ISSUE_SHAPES = [
    Shape(4096, 2048, 1000, "ResNet-50 head, ImageNet-1k, batch 4096"),
    Shape(4096, 2048, 21843, "ResNet-50 head, ImageNet-21k, batch 4096"),
    Shape(4096, 2048, 100_000, "ResNet-50 head, 100k classes, batch 4096"),
]
SHAPES = {"cuda": ISSUE_SHAPES, "cpu": ISSUE_SHAPES}
# A 2-core CPU takes many seconds per call at the issue's shapes; the headline keeps the
# ImageNet-21k class count with a smaller batch and feature width.
HEADLINE_SHAPES = {
    "cuda": [ISSUE_SHAPES[1]],
    "cpu": [
        Shape(1024, 256, 21843, "ImageNet-21k head, batch 1024, 256 features (CPU headline)", False)
    ],
}
SLOW_IMPLS = ("torch_chunked", "reference")
QUICK_SHAPES = {
    "cuda": [Shape(1024, 2048, 21843, "ImageNet-21k head, batch 1024")],
    "cpu": [Shape(256, 256, 21843, "ImageNet-21k head, batch 256")],
}
# Fewer rounds than the harness default on the CPU: one call of the slowest peer takes seconds.
EFFORT = dict(spec.EFFORT)
EFFORT[("cpu", False)] = dict(warmup=1, reps=9, min_reps=5, budget_s=1.0)

# Against eager in the same dtype: loss relative to |loss|, gradients relative to max |grad|.
TOLERANCE = {torch.float32: (1e-4, 1e-3), torch.float64: (1e-8, 1e-7)}
TOLERANCE_16BIT = (2e-2, 5e-2)


# --- implementations ------------------------------------------------------------------------


def eager_loss(x, w, b, t):
    return F.cross_entropy(F.linear(x, w, b), t)


def torch_chunked_loss(x, w, b, t):
    options = torch.nn.LinearCrossEntropyOptions()
    return F.linear_cross_entropy(x, w, t, linear_bias=b, options=options)


def make_loss_fn(impl: str):
    if impl == "eager":
        return eager_loss
    if impl == "compile":
        return compile_static(eager_loss)
    if impl == "torch_chunked":
        return torch_chunked_loss
    if impl in OUR_BACKENDS:
        return lambda x, w, b, t: cookbook_ops.linear_cross_entropy(x, w, t, b, backend=impl)
    raise unknown_impl(impl, IMPLS)


def _probe(backend: str, device: str) -> None:
    x = torch.zeros(1, 2, device=device)
    w = torch.zeros(3, 2, device=device)
    cookbook_ops.linear_cross_entropy(x, w, torch.zeros(1, dtype=torch.long, device=device),
                                      backend=backend)  # fmt: skip


def unavailable_reason(impl: str, device: str) -> str | None:
    if impl in ("eager", "compile"):
        return None
    if impl == "torch_chunked":
        if not hasattr(F, "linear_cross_entropy"):
            return f"torch {torch.__version__} has no F.linear_cross_entropy"
        return None
    if impl in OUR_BACKENDS:
        if not hasattr(cookbook_ops, "linear_cross_entropy"):
            return "this cookbook_ops has no linear_cross_entropy"
        return backend_unavailable_reason(
            impl, device, (FORWARD_OP,), functools.partial(_probe, impl, device)
        )
    raise unknown_impl(impl, IMPLS)


# --- floors and peak memory -------------------------------------------------------------------


def floor_flops(shape: Shape, pass_: str) -> int:
    return (2 if pass_ == "fwd" else 6) * shape.n * shape.k * shape.c


def floor_bytes(shape: Shape, dtype: torch.dtype, pass_: str) -> int:
    elems = shape.n * shape.k + shape.c * shape.k + shape.c
    return elems * element_size(dtype) * (1 if pass_ == "fwd" else 2)


def record_fields(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> dict:
    return {
        "floor_bytes": floor_bytes(shape, dtype, pass_),
        "floor_flops": floor_flops(shape, pass_),
    }


def cpu_peak_memory(fn, reset) -> int:
    """Bytes allocated at the peak of one call of ``fn`` above the start, from the allocation
    and free events torch.profiler records on the CPU."""
    from torch.profiler import ProfilerActivity, profile

    if reset is not None:
        reset()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def matmul_rate(shape: Shape, dtype: torch.dtype, device: str) -> float:
    """FLOP/s of one (N, K) x (K, C) torch.mm here, the fastest of a few calls."""
    dev = torch.device(device)
    a = torch.randn(shape.n, shape.k, device=dev).to(dtype)
    b = torch.randn(shape.c, shape.k, device=dev).to(dtype).t()
    fn = functools.partial(torch.mm, a, b)
    if dev.type == "cuda":
        timing = time_cuda(fn, warmup=3, reps=20, min_reps=5, budget_s=0.05)
    else:
        timing = time_cpu(fn, warmup=1, reps=5, min_reps=3, budget_s=0.5)
    rate = 2 * shape.n * shape.k * shape.c / (timing.min_ms * 1e-3)
    NOTES.append(f"matmul rate {shape.label} {spec.dtype_name(dtype)}: {rate / 1e12:.3f} TFLOP/s")
    return rate


def finish_record(rec: dict, timing: Timing, copy_gbps: float, flops_per_s: float) -> dict:
    median = timing.median_ms
    compute_ms = rec["floor_flops"] / flops_per_s * 1e3
    memory_ms = rec["floor_bytes"] / (copy_gbps * 1e9) * 1e3
    rec.update(
        timing=timing.to_dict(),
        median_ms=median,
        floor_ms=max(compute_ms, memory_ms),
        bound="compute" if compute_ms >= memory_ms else "memory",
        achieved_GBps=rec["floor_bytes"] / (median * 1e-3) / 1e9,
        achieved_TFLOPs=rec["floor_flops"] / (median * 1e-3) / 1e12,
    )
    rec["fraction_of_floor"] = rec["floor_ms"] / median
    return rec


# --- one case ---------------------------------------------------------------------------------


def make_case(shape: Shape, dtype: torch.dtype, pass_: str, device: str) -> Case:
    """Features, head weights and targets of one group, with eager's loss and gradients."""
    dev = torch.device(device)
    x0 = torch.randn(shape.n, shape.k, device=dev).to(dtype)
    w0 = (torch.randn(shape.c, shape.k, device=dev) / shape.k**0.5).to(dtype)
    b0 = (torch.randn(shape.c, device=dev) * 0.1).to(dtype)
    target = torch.randint(0, shape.c, (shape.n,), device=dev)
    leaves = [v.clone().requires_grad_(pass_ != "fwd") for v in (x0, w0, b0)]
    loss = eager_loss(*leaves, target)
    grads = None
    if pass_ != "fwd":
        loss.backward()
        grads = [v.grad for v in leaves]
    return Case(shape, dtype, pass_, device, (x0, w0, b0, target), (loss.detach(), grads))


def prepare(impl: str, case: Case) -> Prepared:
    loss_fn = make_loss_fn(impl)
    x0, w0, b0, target = case.inputs
    inputs = [v.detach().clone() for v in (x0, w0, b0)]
    expected_loss, expected_grads = case.expected

    def check(loss):
        grad_err = None
        if expected_grads is not None:
            grad_err = max(
                max_relative_error(v.grad, g.double()) for v, g in zip(inputs, expected_grads)
            )
        ref = expected_loss.float()
        loss_err = float((loss.detach().float() - ref).abs() / ref.abs().clamp_min(1.0))
        return {"loss_err": loss_err, "grad_err": grad_err}

    loss_tol, grad_tol = TOLERANCE.get(case.dtype, TOLERANCE_16BIT)
    limits = {
        "loss_err": (loss_tol, "loss off by {:.2e} (relative)"),
        "grad_err": (grad_tol, GRAD_LIMIT_MESSAGE),
    }
    return prepare_call(impl, lambda: loss_fn(*inputs, target), inputs, case, check, limits,
                        "eager")  # fmt: skip


def run_group(shape, dtype, pass_, impls, device, effort, copy_gbps, progress) -> list[dict]:
    """Every implementation on one (shape, dtype, pass): timed interleaved, then (CPU) the peak
    memory of one call each; ratios against eager."""
    if not shape.slow_impls:
        left_out = [i for i in impls if i in SLOW_IMPLS]
        impls = [i for i in impls if i not in SLOW_IMPLS]
        note = f"{shape.label}: left out {', '.join(left_out)} (--full or --shapes runs them)"
        if left_out:
            progress.update(f"{shape.label}: slow implementations left out", n=len(left_out))
        if left_out and note not in NOTES:
            NOTES.append(note)
    case = make_case(shape, dtype, pass_, device)
    rate = matmul_rate(shape, dtype, device)
    label = functools.partial(make_report.impl_label, overrides=LABELS)
    records = new_records(case, impls, label, record_fields, shape=spec.shape_dict(shape))
    kept = {}

    def prepare_and_keep(impl, case):
        prepared = prepare(impl, case)
        kept[impl] = prepared
        return prepared

    finish = functools.partial(finish_record, copy_gbps=copy_gbps, flops_per_s=rate)
    time_group(case, records, prepare_and_keep, finish, effort, progress)
    for rec in records:
        prepared = kept.pop(rec["impl"], None)
        if torch.device(device).type == "cpu" and prepared is not None and "median_ms" in rec:
            rec["peak_mem_bytes"] = cpu_peak_memory(prepared.fn, prepared.reset)
    base = next((r for r in records if r["impl"] == "eager" and r.get("peak_mem_bytes")), None)
    for rec in records:
        if base is not None and rec.get("peak_mem_bytes") is not None:
            rec["peak_mem_vs_eager"] = rec["peak_mem_bytes"] / base["peak_mem_bytes"]
    return records


def peak_memory_section(run: dict) -> list[tuple[str, str]]:
    """Peak memory of every implementation and its ratio to eager's, per group."""
    lines = [
        "| shape | dtype | impl | time vs eager | peak MiB | peak / eager |",
        "|---|---|---|---|---|---|",
    ]
    for rec in run["results"]:
        if rec.get("peak_mem_bytes") is None:
            continue
        speedup = rec.get("speedup_vs_eager")
        lines.append(
            f"| {make_report.shape_label(rec['shape'])} | {rec['dtype']} | {rec['label']} | "
            + (f"{1 / speedup:.2f}x" if speedup else "-")
            + f" | {rec['peak_mem_bytes'] / 2**20:.1f} | {rec.get('peak_mem_vs_eager', 0):.2f} |"
        )
    return [("Peak memory (time vs eager: our time / eager's)", "\n".join(lines))]


def parse_shapes(text: str) -> list[Shape]:
    return [Shape(*(int(v) for v in item.lower().split("x")), "custom") for item in text.split(",")]


def overhead_cases(device: str):
    """``--overhead``: 8 rows of 16 features, 10 classes, where a call is nearly all host work."""
    x = torch.randn(8, 16, device=device, requires_grad=True)
    w = torch.randn(10, 16, device=device, requires_grad=True)
    b = torch.randn(10, device=device, requires_grad=True)
    t = torch.randint(0, 10, (8,), device=device)
    ours = cookbook_ops.linear_cross_entropy
    return both_passes("8x16x10", lambda: eager_loss(x, w, b, t), lambda: ours(x, w, t, b))


SPEC = BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call="F.cross_entropy(F.linear(x, W, b), t) and equivalents, mean, fwd+bwd",
    impls=IMPLS,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    headline_shapes=HEADLINE_SHAPES,
    shapes_help="NxKxC list (batch x in_features x classes), e.g. 1024x256x21843",
    parse_shapes=parse_shapes,
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    passes=PASSES,
    dtypes={"fp32": torch.float32, "bf16": torch.bfloat16},
    effort=EFFORT,
    extra={
        "floor_note": (
            "floor: max(6*N*K*C FLOPs of the 3 GEMMs / rate of one (N, K) x (K, C) torch.mm "
            "measured in this run, bytes of x, W, b and their gradients / copy bandwidth); "
            "TFLOP/s = those FLOPs / time; of floor = floor time / time. Peak memory: see the "
            "last table."
        ),
        "notes": NOTES,
    },
    auto_backend_ops=(FORWARD_OP,),
    extra_sections=peak_memory_section,
    overhead_cases=overhead_cases,
)


def main(argv=None) -> int:
    return driver.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
