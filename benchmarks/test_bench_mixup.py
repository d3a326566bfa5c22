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
from harness.suite import benchmark_params, run_suite_case  # noqa: E402

# Small enough that every CPU case finishes in a second; the GPU list is the script's default.
SHAPES = {
    "cpu": [bench.Shape(v, 16, 3, 112, 112) for v in bench.VARIANTS],
    "cuda": bench.SHAPES["cuda"],
}


@pytest.mark.parametrize("case", benchmark_params(bench, SHAPES))
def test_mixup(benchmark, case):
    impl, device, shape, _, pass_ = case
    why = bench.not_applicable(impl, shape.variant, pass_, device, shape.n)
    run_suite_case(benchmark, bench, case, "mixup ", not_applicable=why)
