"""pytest-benchmark cases for cross-entropy with probability targets: impl x shape x dtype x pass.

    pytest benchmarks/ --benchmark-only [-k "soft_target and cpu"] [--benchmark-json out.json]

Not part of the test suite (pytest's testpaths is tests/); the standalone script
bench_soft_target_cross_entropy.py also reports the memory floor and copy bandwidth.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

import bench_soft_target_cross_entropy as bench  # noqa: E402
from harness.suite import benchmark_params, run_suite_case  # noqa: E402

SHAPES = {
    "cpu": [bench.Shape(256, 1000), bench.Shape(1024, 1000), bench.Shape(64, 21843)],
    "cuda": [bench.Shape(256, 1000), bench.Shape(4096, 1000), bench.Shape(1024, 21843)],
}


@pytest.mark.parametrize("case", benchmark_params(bench, SHAPES))
def test_soft_target_cross_entropy(benchmark, case):
    run_suite_case(benchmark, bench, case, "")
