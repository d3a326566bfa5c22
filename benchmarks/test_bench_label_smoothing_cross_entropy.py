"""pytest-benchmark cases for label-smoothed cross-entropy: impl x shape x dtype x pass.

    pytest benchmarks/ --benchmark-only [-k "cpu and 256x1000"] [--benchmark-json out.json]

Not part of the test suite (pytest's testpaths is tests/). Each group (shape, dtype, pass)
compares every implementation; the standalone script bench_label_smoothing_cross_entropy.py is
the one that also reports the memory floor, copy bandwidth and peak memory.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

import bench_label_smoothing_cross_entropy as bench  # noqa: E402
from harness.suite import benchmark_params, run_suite_case  # noqa: E402

# Small enough that every CPU case finishes in seconds; the GPU list stops short of the 8192-row
# vocabulary case, which the standalone script covers.
SHAPES = {
    "cpu": [bench.Shape(256, 1000), bench.Shape(1024, 1000), bench.Shape(128, 21843)],
    "cuda": [bench.Shape(256, 1000), bench.Shape(1024, 21843), bench.Shape(4096, 128256)],
}


@pytest.mark.parametrize("case", benchmark_params(bench, SHAPES))
def test_label_smoothing_cross_entropy(benchmark, case):
    run_suite_case(benchmark, bench, case, "")
