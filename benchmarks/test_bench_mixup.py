"""pytest-benchmark cases for the mixup / CutMix blends: impl x variant shape x dtype x pass.

    pytest benchmarks/test_bench_mixup.py --benchmark-only [-k "cpu and cutmix"]
        [--benchmark-json out.json]

Not part of the test suite (pytest's testpaths is tests/). Each group (variant shape, dtype,
pass) compares every implementation; the standalone script bench_mixup.py is the one that also
reports the memory floor, copy bandwidth and peak memory.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

import bench_mixup as bench  # noqa: E402
import torch  # noqa: E402
from common import benchmark_params  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# Small enough that every CPU case finishes in a second; the GPU list is the script's default.
SHAPES = {
    "cpu": [bench.Shape(v, 16, 3, 112, 112) for v in bench.VARIANTS],
    "cuda": bench.SHAPES["cuda"],
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
ROUNDS = {"cpu": 20, "cuda": 50}


@pytest.mark.parametrize(
    "impl, device, shape, dtype_name, pass_", benchmark_params(bench, DEVICES, SHAPES, DTYPES)
)
def test_mixup(benchmark, impl, device, shape, dtype_name, pass_):
    reason = bench.unavailable_reason(impl, device) or bench.not_applicable(
        impl, shape.variant, pass_, device, shape.n
    )
    if reason is not None:
        pytest.skip(reason)
    dtype = DTYPES[dtype_name]
    torch._dynamo.reset()  # a fresh static graph per case, as the standalone script does
    inp = bench.make_inputs(shape, dtype, device)
    expected = bench.expected_outputs(shape, inp, pass_)
    prepared = bench.prepare(impl, shape, pass_, inp, expected, device, dtype)
    rec = {
        "impl": impl,
        "variant": shape.variant,
        "out_err": prepared.out_err,
        "grad_err": prepared.grad_err,
        "status": "ok",
    }
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

    benchmark.group = f"mixup {device} {shape.label} {dtype_name} {pass_}"
    floor = bench.floor_bytes(shape, dtype, pass_)
    benchmark.extra_info.update(impl=impl, floor_bytes=floor, compile_s=prepared.compile_s)
    benchmark.pedantic(target_fn, setup=setup, rounds=ROUNDS[device], warmup_rounds=2)
    stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if stats is not None:
        benchmark.extra_info["floor_GBps"] = floor / stats.stats.median / 1e9
