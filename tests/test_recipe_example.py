"""The example training script: a smoke run per --ops setting, --resume, and DistributedDataParallel
over two gloo processes (identical parameters on every rank; the averaged gradient equals the
single-process gradient of the global batch)."""

import importlib.util
import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytest.importorskip("sklearn", reason="the example's data set ships with scikit-learn")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example():
    spec = importlib.util.spec_from_file_location("train_cookbook", EXAMPLES / "train_cookbook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _smoke_args(out, *extra):
    return ["--smoke", "--no-progress", "--out", str(out), *extra]


@pytest.mark.parametrize("ops", ["fused", "reference"])
def test_smoke_run(tmp_path, ops, capsys):
    summary = _example().main(_smoke_args(tmp_path, "--ops", ops, "--plot"))
    assert summary["ops"] == ops and summary["epochs_completed"] == 1
    assert 0.0 <= summary["test_acc"] <= 100.0
    log = json.loads((tmp_path / "log.json").read_text())
    assert [
        set(r) >= {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} for r in log["epochs"]
    ]
    assert log["summary"]["test_acc"] == summary["test_acc"]
    assert (tmp_path / "checkpoint.pth").is_file() and (tmp_path / "checkpoint_best.pth").is_file()
    assert (tmp_path / "curves.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "epoch   1/1" in out and "test accuracy" in out


def test_resume_continues_like_an_uninterrupted_run(tmp_path):
    example = _example()
    common = ["--epochs", "2", "--l1", "1e-5"]
    full = example.main(_smoke_args(tmp_path / "full", *common))
    example.main(_smoke_args(tmp_path / "split", *common, "--stop-after", "1"))
    resumed = example.main(_smoke_args(tmp_path / "split", *common, "--resume"))
    assert resumed["epochs_completed"] == 2
    for (name, a), b in zip(
        full["model"].state_dict().items(), resumed["model"].state_dict().values()
    ):
        assert torch.equal(a, b), name
    full_log = json.loads((tmp_path / "full" / "log.json").read_text())["epochs"]
    split_log = json.loads((tmp_path / "split" / "log.json").read_text())["epochs"]
    for a, b in zip(full_log, split_log, strict=True):
        assert a["train_loss"] == b["train_loss"] and a["val_acc"] == b["val_acc"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init(rank, world_size, port):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(1)


def _ddp_train_worker(rank, world_size, port, out):
    _init(rank, world_size, port)
    summary = _example().main(_smoke_args(out, "--epochs", "2", "--batch-size", "16"))
    torch.save(
        {
            "state": summary["model"].state_dict(),
            "summary": {k: v for k, v in summary.items() if k != "model"},
        },
        Path(out) / f"rank{rank}.pt",
    )


def test_ddp_two_processes_end_with_identical_parameters(tmp_path):
    mp.spawn(_ddp_train_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["summary"]["world_size"] == 2
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k
    # reduced metrics: both ranks report the same numbers; only rank 0 wrote files
    assert r0["summary"]["test_acc"] == r1["summary"]["test_acc"]
    assert r0["summary"]["epochs_completed"] == 2
    assert (tmp_path / "checkpoint.pth").is_file()
    # the trained weights moved away from the shared initialization
    torch.manual_seed(0)
    init = _example().DigitsNet().state_dict()
    assert any(not torch.equal(v, init[k]) for k, v in r0["state"].items())


def _global_batch(example):
    images, labels = example.load_digits_uint8()
    return images[:32], labels[:32]


def _gradients(example, model, images, labels):
    import cookbook_ops

    normalize = example.NormalizeImages([0.3], [0.32])
    criterion = cookbook_ops.nn.MixupCrossEntropy(label_smoothing=0.1)
    loss = criterion(model(normalize(images)), labels)
    loss.backward()


def _ddp_grad_worker(rank, world_size, port, out):
    _init(rank, world_size, port)
    dist.init_process_group("gloo")
    example = _example()
    images, labels = _global_batch(example)
    torch.manual_seed(rank + 10)  # DDP must broadcast rank 0's weights regardless
    model = example.DigitsNet(dropout=0.0)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    half = slice(16 * rank, 16 * (rank + 1))
    _gradients(example, ddp, images[half], labels[half])
    torch.save(
        {"params": model.state_dict(), "grads": {n: p.grad for n, p in model.named_parameters()}},
        Path(out) / f"grads{rank}.pt",
    )
    dist.destroy_process_group()


def test_ddp_gradient_equals_single_process_on_the_global_batch(tmp_path):
    mp.spawn(_ddp_grad_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    example = _example()
    images, labels = _global_batch(example)
    r0 = torch.load(tmp_path / "grads0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "grads1.pt", weights_only=True)
    model = example.DigitsNet(dropout=0.0)
    model.load_state_dict(r0["params"])
    _gradients(example, model, images, labels)
    for name, p in model.named_parameters():
        assert torch.equal(r0["params"][name], r1["params"][name]), name
        torch.testing.assert_close(r0["grads"][name], r1["grads"][name], rtol=0, atol=0)
        torch.testing.assert_close(r0["grads"][name], p.grad, rtol=1e-4, atol=1e-6)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
