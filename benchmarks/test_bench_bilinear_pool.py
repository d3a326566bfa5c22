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
from harness.suite import benchmark_params, run_suite_case  # noqa: E402

SHAPES = {device: bench.SHAPES[device] for device in ("cpu", "cuda")}


@pytest.mark.parametrize("case", benchmark_params(bench, SHAPES))
def test_bilinear_pool(benchmark, case):
    run_suite_case(benchmark, bench, case, "bilinear_pool ")
