"""pytest-benchmark cases for the mixup loss: impl x shape (with lam kind) x dtype x pass.

    pytest benchmarks/test_bench_mixup_cross_entropy.py --benchmark-only
        [-k "cpu and lam_per_sample"] [--benchmark-json out.json]

Not part of the test suite (pytest's testpaths is tests/). Each group (shape, dtype, pass)
compares every implementation; the standalone script bench_mixup_cross_entropy.py is the one
that also reports the memory floor, copy bandwidth and peak memory.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

import bench_mixup_cross_entropy as bench  # noqa: E402
from harness.suite import benchmark_params, run_suite_case  # noqa: E402

SHAPES = {
    "cpu": [bench.Shape(256, 1000, lam) for lam in bench.LAM_KINDS]
    + [bench.Shape(4096, 1000, "scalar")],
    "cuda": bench.SHAPES["cuda"],
}


@pytest.mark.parametrize("case", benchmark_params(bench, SHAPES))
def test_mixup_cross_entropy(benchmark, case):
    run_suite_case(benchmark, bench, case, "mixup_cross_entropy ")
