"""The CUDA timing of the benchmarks, on a simulated GPU stream (no GPU needed): what is timed
is the GPU's work, whether or not the host is slower than the GPU."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from harness import timing as bench_timing  # noqa: E402

CYCLES_PER_MS = 1.5e6
FLUSH_MS = 0.1


class FakeStream:
    """One in-order GPU stream and the host that feeds it, on one virtual clock (ms)."""

    def __init__(self):
        self.host = 0.0  # where the host is
        self.gpu = 0.0  # when the stream finishes what is queued

    def host_work(self, ms):
        self.host += ms

    def enqueue(self, ms):
        self.gpu = max(self.gpu, self.host) + ms

    def synchronize(self):
        self.host = max(self.host, self.gpu)


@pytest.fixture
def stream(monkeypatch):
    s = FakeStream()

    class Event:
        def __init__(self, enable_timing=False):
            self.t = None

        def record(self):
            s.enqueue(0.0)
            self.t = s.gpu

        def elapsed_time(self, end):
            return end.t - self.t

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", s.synchronize)
    monkeypatch.setattr(torch.cuda, "_sleep", lambda cycles: s.enqueue(cycles / CYCLES_PER_MS))
    monkeypatch.setattr(bench_timing, "_flush_l2", lambda: s.enqueue(FLUSH_MS))
    monkeypatch.setattr(bench_timing, "_sleep_cycles_per_ms", None)
    monkeypatch.setattr(bench_timing.time, "perf_counter", lambda: s.host / 1e3)
    return s


def op(stream, host_ms, gpu_ms):
    def fn():
        stream.host_work(host_ms)
        stream.enqueue(gpu_ms)

    return fn


@pytest.mark.parametrize("host_ms,gpu_ms", [(0.5, 0.2), (0.05, 0.3), (3.0, 0.01)])
def test_gpu_work_is_timed_however_slow_the_host(stream, host_ms, gpu_ms):
    timing = bench_timing.time_cuda(op(stream, host_ms, gpu_ms), reps=20, min_reps=20)
    assert len(timing.samples_ms) == 20
    assert timing.median_ms == pytest.approx(gpu_ms)
    assert max(timing.samples_ms) == pytest.approx(gpu_ms)
    assert timing.host_ms == pytest.approx(host_ms)
    assert "host work hidden" in timing.method


def test_without_hiding_a_slow_host_is_timed_too(stream):
    # What the timing measured before the host work was hidden: the loop runs at the host's
    # pace, the flush covers FLUSH_MS of each 0.5 ms and the timed interval is the rest, twice
    # the GPU work of 0.2 ms.
    timing = bench_timing.time_cuda(op(stream, 0.5, 0.2), reps=20, min_reps=20, hide_host=False)
    assert timing.median_ms == pytest.approx(0.5 - FLUSH_MS)
    assert "host work hidden" not in timing.method


def test_a_host_sync_inside_the_call_is_still_paid(stream):
    def fn():
        stream.enqueue(0.2)
        stream.synchronize()  # e.g. .item()
        stream.host_work(0.3)
        stream.enqueue(0.1)

    timing = bench_timing.time_cuda(fn, reps=20, min_reps=20)
    assert timing.median_ms == pytest.approx(0.2 + 0.3 + 0.1)
