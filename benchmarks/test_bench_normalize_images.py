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
from harness.suite import benchmark_params, run_suite_case  # noqa: E402

# Small enough that every CPU case finishes in a second; the GPU list is the script's default.
SHAPES = {
    "cpu": [bench.Shape(v, 16, 112, 112, 3) for v in bench.VARIANTS],
    "cuda": bench.SHAPES["cuda"],
}


@pytest.mark.parametrize("case", benchmark_params(bench, SHAPES))
def test_normalize_images(benchmark, case):
    why = bench.not_applicable(case.impl, case.shape.variant)
    run_suite_case(
        benchmark,
        bench,
        case,
        "normalize_images ",
        not_applicable=why,
        per_second={"images_per_s": case.shape.n},
    )
