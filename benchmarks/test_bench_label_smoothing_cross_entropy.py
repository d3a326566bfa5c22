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
import torch  # noqa: E402
from common import benchmark_params  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# Small enough that every CPU case finishes in seconds; the GPU list stops short of the 8192-row
# vocabulary case, which the standalone script covers.
SHAPES = {
    "cpu": [bench.Shape(256, 1000), bench.Shape(1024, 1000), bench.Shape(128, 21843)],
    "cuda": [bench.Shape(256, 1000), bench.Shape(1024, 21843), bench.Shape(4096, 128256)],
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
ROUNDS = {"cpu": 20, "cuda": 50}


@pytest.mark.parametrize(
    "impl, device, shape, dtype_name, pass_", benchmark_params(bench, DEVICES, SHAPES, DTYPES)
)
def test_label_smoothing_cross_entropy(benchmark, impl, device, shape, dtype_name, pass_):
    reason = bench.unavailable_reason(impl, device)
    if reason is not None:
        pytest.skip(reason)
    dtype = DTYPES[dtype_name]
    torch._dynamo.reset()  # a fresh static graph per case, as the standalone script does
    torch.manual_seed(0)
    x0 = torch.randn(shape.n, shape.c, device=device).to(dtype)
    target = torch.randint(0, shape.c, (shape.n,), device=device)
    xe = x0.clone().requires_grad_(pass_ != "fwd")
    expected_loss = bench.eager_loss(xe, target)
    expected_grad = None
    if pass_ != "fwd":
        expected_loss.backward()
        expected_grad = xe.grad
    prepared = bench.prepare(impl, pass_, x0, target, expected_loss.detach(), expected_grad, device)
    rec = {"loss_err": prepared.loss_err, "grad_err": prepared.grad_err, "status": "ok"}
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

    benchmark.group = f"{device} {shape.label} {dtype_name} {pass_}"
    floor = bench.floor_bytes(shape, dtype, pass_)
    benchmark.extra_info.update(
        impl=impl,
        floor_bytes=floor,
        bytes_moved_est=bench.bytes_moved_estimate(impl, shape, dtype, pass_),
        compile_s=prepared.compile_s,
    )
    benchmark.pedantic(target_fn, setup=setup, rounds=ROUNDS[device], warmup_rounds=2)
    stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if stats is not None:
        benchmark.extra_info["floor_GBps"] = floor / stats.stats.median / 1e9
