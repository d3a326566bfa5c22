"""pytest-benchmark cases for normalize_images: impl x variant shape x output dtype.

    pytest benchmarks/test_bench_normalize_images.py --benchmark-only [-k "cpu and flip"]
        [--benchmark-json out.json]

Not part of the test suite (pytest's testpaths is tests/). Each group (variant shape, dtype)
compares every implementation; the standalone script bench_normalize_images.py is the one that
also reports the memory floor, copy bandwidth and images per second.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

import bench_normalize_images as bench  # noqa: E402
import torch  # noqa: E402
from common import benchmark_params  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# Small enough that every CPU case finishes in a second; the GPU list is the script's default.
SHAPES = {
    "cpu": [bench.Shape(v, 16, 112, 112, 3) for v in bench.VARIANTS],
    "cuda": bench.SHAPES["cuda"],
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
ROUNDS = {"cpu": 20, "cuda": 50}


@pytest.mark.parametrize(
    "impl, device, shape, dtype_name, pass_", benchmark_params(bench, DEVICES, SHAPES, DTYPES)
)
def test_normalize_images(benchmark, impl, device, shape, dtype_name, pass_):
    reason = bench.unavailable_reason(impl, device) or bench.not_applicable(impl, shape.variant)
    if reason is not None:
        pytest.skip(reason)
    dtype = DTYPES[dtype_name]
    torch._dynamo.reset()  # a fresh static graph per case, as the standalone script does
    inp = bench.make_inputs(shape, device)
    expected = bench.expected_output(inp)
    fn, first_s, err = bench.prepare(impl, inp, expected, device, dtype)
    assert err <= bench.TOLERANCE[dtype], f"output off by {err:.2e} (of max |out|)"

    if device == "cuda":

        def target_fn():
            fn()
            torch.cuda.synchronize()  # pytest-benchmark reads a host clock
    else:
        target_fn = fn

    benchmark.group = f"normalize_images {device} {shape.label} {dtype_name}"
    floor = bench.floor_bytes(shape, dtype)
    compile_s = first_s if impl == "compile" else None
    benchmark.extra_info.update(impl=impl, floor_bytes=floor, compile_s=compile_s)
    benchmark.pedantic(target_fn, rounds=ROUNDS[device], warmup_rounds=2)
    stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if stats is not None:
        benchmark.extra_info["floor_GBps"] = floor / stats.stats.median / 1e9
        benchmark.extra_info["images_per_s"] = shape.n / stats.stats.median
