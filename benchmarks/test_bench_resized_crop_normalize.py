"""pytest-benchmark cases for resized_crop_normalize: impl x shape (train/val, mixed/fixed sizes)
x output dtype.

    pytest benchmarks/test_bench_resized_crop_normalize.py --benchmark-only [-k "cpu and train"]
        [--benchmark-json out.json]

Not part of the test suite (pytest's testpaths is tests/). Each group (shape, dtype) compares
every implementation; the standalone script bench_resized_crop_normalize.py also reports the
memory floor and images per second.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

import bench_resized_crop_normalize as bench  # noqa: E402
from harness.suite import benchmark_params, run_suite_case  # noqa: E402

# Batches of 8 source images on the CPU (each case a few seconds); the GPU list is the script's.
SHAPES = {"cpu": bench.QUICK_SHAPES["cpu"], "cuda": bench.SHAPES["cuda"]}


@pytest.mark.parametrize("case", benchmark_params(bench, SHAPES))
def test_resized_crop_normalize(benchmark, case):
    run_suite_case(
        benchmark,
        bench,
        case,
        "resized_crop_normalize ",
        per_second={"images_per_s": case.shape.n},
    )
