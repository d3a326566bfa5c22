"""Helpers of the pytest-benchmark suites (``benchmarks/test_bench_<op>.py``): their
parameters, and one case prepared and checked as the standalone script prepares it."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

if TYPE_CHECKING:
    from harness.spec import SuiteBench

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


def benchmark_params(bench: SuiteBench, shapes, devices=PYTEST_DEVICES, dtypes=PYTEST_DTYPES):
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
    bench: SuiteBench,
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
