"""pytest-benchmark cases for the fused classifier head: impl x shape x dtype x pass.

    pytest benchmarks/ --benchmark-only [-k "linear_cross_entropy and cpu"]

Not part of the test suite (pytest's testpaths is tests/). Each group (shape, dtype, pass)
compares every implementation; the standalone script bench_linear_cross_entropy.py is the one
that also reports the peak memory and the GEMM floor.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

import bench_linear_cross_entropy as bench  # noqa: E402
from harness.suite import benchmark_params, run_suite_case  # noqa: E402

# Small enough that every CPU case (PyTorch's chunked path included) takes about a second.
SHAPES = {
    "cpu": [bench.Shape(256, 128, 1000), bench.Shape(256, 128, 21843)],
    "cuda": bench.SHAPES["cuda"][:2],
}


@pytest.mark.parametrize("case", benchmark_params(bench, SHAPES))
def test_linear_cross_entropy(benchmark, case):
    run_suite_case(benchmark, bench, case, "linear_cross_entropy ")
