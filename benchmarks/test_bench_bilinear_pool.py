"""pytest-benchmark cases for bilinear pooling: impl x shape x dtype x pass.

    pytest benchmarks/test_bench_bilinear_pool.py --benchmark-only [-k "cpu and 16x256"]
        [--benchmark-json out.json]

Not part of the test suite (pytest's testpaths is tests/). Each group (shape, dtype, pass)
compares every implementation; the standalone script bench_bilinear_pool.py is the one that
also reports the roofline floor (matmul rate and copy bandwidth) and peak memory.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

import bench_bilinear_pool as bench  # noqa: E402
import torch  # noqa: E402
from common import benchmark_params  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = {device: bench.SHAPES[device] for device in ("cpu", "cuda")}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
ROUNDS = {"cpu": 20, "cuda": 50}


@pytest.mark.parametrize(
    "impl, device, shape, dtype_name, pass_", benchmark_params(bench, DEVICES, SHAPES, DTYPES)
)
def test_bilinear_pool(benchmark, impl, device, shape, dtype_name, pass_):
    reason = bench.unavailable_reason(impl, device)
    if reason is not None:
        pytest.skip(reason)
    dtype = DTYPES[dtype_name]
    torch._dynamo.reset()  # a fresh static graph per case, as the standalone script does
    torch.manual_seed(0)
    x0, y0, grad_z = bench.make_inputs(shape, dtype, device)
    expected = bench.expected_outputs(x0, y0, grad_z, pass_)
    prepared = bench.prepare(impl, pass_, x0, y0, grad_z, expected, device)
    rec = {"out_err": prepared.out_err, "grad_err": prepared.grad_err, "status": "ok"}
    bench.check_status(rec, dtype)
    assert rec["status"] == "ok", rec["reason"]

    if device == "cuda":

        def target_fn():
            prepared.fn()
            torch.cuda.synchronize()  # pytest-benchmark reads a host clock
    else:
        target_fn = prepared.fn

    def setup():
        if prepared.reset is not None:
            prepared.reset()

    benchmark.group = f"bilinear_pool {device} {shape.label} {dtype_name} {pass_}"
    flops = bench.floor_flops(shape, pass_)
    floor = bench.floor_bytes(shape, dtype, pass_)
    benchmark.extra_info.update(
        impl=impl, floor_flops=flops, floor_bytes=floor, compile_s=prepared.compile_s
    )
    benchmark.pedantic(target_fn, setup=setup, rounds=ROUNDS[device], warmup_rounds=2)
    stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if stats is not None:
        benchmark.extra_info["TFLOPs"] = flops / stats.stats.median / 1e12
        benchmark.extra_info["floor_GBps"] = floor / stats.stats.median / 1e9
