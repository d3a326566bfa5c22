"""The training utilities against their plain-PyTorch formulations: Accuracy, no-bias-decay
parameter groups, L1/L2 penalties, the warmup + cosine schedule, checkpoints."""

import math
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from cookbook_ops.recipe import checkpoint, metrics, optim, regularization, schedules

# --- Accuracy -------------------------------------------------------------------------------


def _argmax_counts(batches, ks):
    correct = dict.fromkeys(ks, 0)
    total = 0
    for logits, target in batches:
        for k in ks:
            top = logits.topk(min(k, logits.shape[1]), 1).indices
            correct[k] += sum(int(target[i] in top[i].tolist()) for i in range(len(target)))
        total += len(target)
    return [100.0 * correct[k] / total for k in ks]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_accuracy_topk_matches_counting(dtype):
    ks = (1, 5, 3)
    acc = metrics.Accuracy(topk=ks)
    batches = []
    for n in (7, 33, 1, 64):
        # distinct values per row, so ties cannot make the two countings differ
        logits = torch.stack([torch.randperm(20) for _ in range(n)]).to(dtype)
        target = torch.randint(0, 20, (n,))
        acc.update(logits, target)
        batches.append((logits.double(), target))
    assert acc.correct.device.type == "cpu" and acc.correct.dtype == torch.int64
    expected = _argmax_counts(batches, ks)
    assert acc.compute() == pytest.approx(expected, abs=1e-12)
    # top-1 is the argmax count, as the cookbook computes it
    top1 = sum((lg.argmax(1) == t).sum().item() for lg, t in batches)
    assert acc.compute()[0] == pytest.approx(100.0 * top1 / 105)


def test_accuracy_correct_flags_reset_and_k_above_classes():
    acc = metrics.Accuracy()
    flags = torch.rand(50) < 0.3
    acc.update(flags)
    acc.update(flags[:10])
    expected = 100.0 * (flags.sum().item() + flags[:10].sum().item()) / 60
    assert acc.compute() == pytest.approx((expected,))
    acc.reset()
    assert math.isnan(acc.compute()[0])
    acc5 = metrics.Accuracy(topk=(1, 5))
    acc5.update(torch.randn(8, 3), torch.randint(0, 3, (8,)))
    assert acc5.compute()[1] == 100.0  # k >= C: every sample counts


def test_accuracy_bad_inputs():
    with pytest.raises(ValueError, match="topk"):
        metrics.Accuracy(topk=(0,))
    acc = metrics.Accuracy(topk=(1, 5))
    with pytest.raises(ValueError, match="top-1 only"):
        acc.update(torch.ones(3, dtype=torch.bool))
    acc = metrics.Accuracy()
    with pytest.raises(ValueError, match="target"):
        acc.update(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="target"):
        acc.update(torch.randn(4, 3), torch.zeros(4, dtype=torch.int32))
    with pytest.raises(ValueError, match="output"):
        acc.update(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="target"):
        acc.update(torch.randn(4, 3))


def test_accuracy_with_fused_loss_flags():
    import cookbook_ops

    logits, target = torch.randn(40, 7), torch.randint(0, 7, (40,))
    _, correct = cookbook_ops.label_smoothing_cross_entropy(
        logits, target, 0.1, return_correct=True
    )
    a, b = metrics.Accuracy(), metrics.Accuracy()
    a.update(correct)
    b.update(logits, target)
    assert a.compute() == b.compute()


# --- parameter groups -----------------------------------------------------------------------


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.attn = nn.MultiheadAttention(4, 2)
        self.fc = nn.Linear(4, 2)
        self.fc_tied = nn.Linear(4, 2, bias=False)
        self.fc_tied.weight = self.fc.weight  # shared: must be listed once
        self.unbias = nn.Parameter(torch.zeros(3))  # ends in "bias" but is not a bias


@pytest.mark.parametrize("skip_norm", [True, False])
def test_param_groups_cover_every_parameter_once(skip_norm):
    model = _Net()
    groups = optim.param_groups_no_bias_decay(model, 1e-4, skip_norm=skip_norm)
    decay, no_decay = groups
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    names = {id(p): n for n, p in model.named_parameters()}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    biases = {"conv.bias", "bn.bias", "gn.bias", "ln.bias", "fc.bias"}
    biases |= {"attn.in_proj_bias", "attn.out_proj.bias"}
    norms = {"bn.weight", "gn.weight", "ln.weight"}
    assert undecayed == (biases | norms if skip_norm else biases)
    # a real optimizer takes them (the cookbook's 'parameters' key is rejected)
    opt = torch.optim.SGD(groups, lr=0.1, weight_decay=0.5)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]
    with pytest.raises(KeyError):
        torch.optim.SGD([{"parameters": list(model.parameters())}], lr=0.1)


def test_param_groups_bad_inputs():
    with pytest.raises(TypeError, match="model"):
        optim.param_groups_no_bias_decay([torch.zeros(1)], 1e-4)
    with pytest.raises(ValueError, match="weight_decay"):
        optim.param_groups_no_bias_decay(nn.Linear(2, 2), -1.0)


# --- penalties ------------------------------------------------------------------------------


def _params(dtype):
    shapes = [(3, 4), (5,), (2, 3, 3), (1,), (0, 4)]
    ps = [torch.randn(s, dtype=dtype).requires_grad_() for s in shapes]
    with torch.no_grad():
        ps[1][0] = 0.0  # |x| has gradient 0 at 0 (sign)
    return ps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_l1_l2_penalty_match_python_loop(dtype):
    for fn, loop, grad in (
        (regularization.l1_penalty, lambda p: p.double().abs().sum(), lambda p: p.sign()),
        (regularization.l2_penalty, lambda p: p.double().pow(2).sum(), lambda p: 2 * p),
    ):
        ps = _params(dtype)
        value = fn(ps)
        assert value.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        expected = sum(loop(p.detach()) for p in ps)
        tol = 1e-12 if dtype == torch.float64 else 2e-6
        torch.testing.assert_close(value.double(), expected, rtol=tol, atol=tol)
        (3.0 * value).backward()
        for p in ps:
            torch.testing.assert_close(p.grad, 3.0 * grad(p.detach()), rtol=1e-2, atol=1e-6)


def test_penalty_gradcheck_and_module_parameters():
    ps = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    torch.autograd.gradcheck(lambda *t: regularization.l1_penalty(t), ps)
    torch.autograd.gradcheck(lambda *t: regularization.l2_penalty(t), ps)
    model = _Net()
    loop = sum(p.abs().sum() for p in model.parameters())
    torch.testing.assert_close(regularization.l1_penalty(model.parameters()), loop)
    assert regularization.l2_penalty([]).item() == 0.0
    with pytest.raises(TypeError, match=r"params\[1\]"):
        regularization.l1_penalty([torch.zeros(2), torch.zeros(2, dtype=torch.long)])


# --- warmup + cosine --------------------------------------------------------------------------


def _closed_form(t, base, warmup, total, min_lr):
    if t < warmup:
        return base * (t + 1) / warmup
    if t >= total:
        return min_lr
    return min_lr + (base - min_lr) * 0.5 * (
        1 + math.cos(math.pi * (t - warmup) / (total - warmup))
    )


@pytest.mark.parametrize("warmup,total,min_lr", [(5, 20, 0.0), (0, 10, 1e-3), (3, 3, 0.01)])
def test_warmup_cosine_closed_form(warmup, total, min_lr):
    w = torch.zeros(2, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.05}], lr=0.2)
    sched = schedules.warmup_cosine(opt, warmup, total, min_lr=min_lr)
    for t in range(total + 3):
        for group, base in zip(opt.param_groups, (0.2, 0.05)):
            assert group["lr"] == pytest.approx(_closed_form(t, base, warmup, total, min_lr))
        opt.step()
        sched.step()
    # key points: first step, peak, half-way through the decay, the end
    if warmup:
        assert _closed_form(0, 0.2, warmup, total, min_lr) == pytest.approx(0.2 / warmup)
        assert _closed_form(warmup - 1, 0.2, warmup, total, min_lr) == pytest.approx(0.2)
    assert opt.param_groups[0]["lr"] == pytest.approx(min_lr)


def test_warmup_cosine_resumes_and_rejects_bad_arguments():
    def make():
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        return opt, schedules.warmup_cosine(opt, 4, 12, min_lr=0.1)

    opt, sched = make()
    for _ in range(6):
        opt.step()
        sched.step()
    opt2, sched2 = make()
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    for _ in range(4):
        opt.step()
        sched.step()
        opt2.step()
        sched2.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    opt, _ = make()
    with pytest.raises(ValueError, match="total_steps"):
        schedules.warmup_cosine(opt, 5, 4)
    with pytest.raises(ValueError, match="warmup_steps"):
        schedules.warmup_cosine(opt, -1, 4)
    with pytest.raises(ValueError, match="min_lr"):
        schedules.warmup_cosine(opt, 1, 4, min_lr=-1.0)


# --- checkpoints ----------------------------------------------------------------------------


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


def _setup():
    torch.manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.randn(48, 6), torch.randint(0, 3, (48,)))
    model = _Tiny()
    opt = torch.optim.SGD(optim.param_groups_no_bias_decay(model, 1e-3), lr=0.1, momentum=0.9)
    sched = schedules.warmup_cosine(opt, 3, 24, min_lr=0.001)
    # shuffling (RandomSampler), dropout and python/numpy draws all consume RNG streams
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True)
    return model, opt, sched, loader


def _train_epochs(model, opt, sched, loader, epochs):
    for _ in range(epochs):
        for x, y in loader:
            x = x + 0.01 * random.random() + 0.01 * float(np.random.rand())
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    random.seed(0)
    np.random.seed(0)
    model, opt, sched, loader = _setup()
    _train_epochs(model, opt, sched, loader, 4)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    random.seed(0)
    np.random.seed(0)
    model, opt, sched, loader = _setup()
    _train_epochs(model, opt, sched, loader, 2)
    path = tmp_path / "checkpoint.pth"
    checkpoint.save(path, model=model, optimizer=opt, scheduler=sched, epoch=2, best_metric=0.5)
    # the interrupted process goes on consuming randomness; the resumed one must not see it
    torch.rand(100)
    random.random()
    np.random.rand()
    model, opt, sched, loader = _setup()
    meta = checkpoint.load(path, model=model, optimizer=opt, scheduler=sched)
    assert meta["epoch"] == 2 and meta["best_metric"] == 0.5
    _train_epochs(model, opt, sched, loader, 2)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, reference[k], rtol=0, atol=0)

    # without restoring the RNG the result differs: the test above can fail
    model, opt, sched, loader = _setup()
    checkpoint.load(path, model=model, optimizer=opt, scheduler=sched, restore_rng=False)
    _train_epochs(model, opt, sched, loader, 2)
    assert any(not torch.equal(v, reference[k]) for k, v in model.state_dict().items())


def test_best_copy_atomic_write_and_ddp_prefix(tmp_path):
    model = _Tiny()
    path = tmp_path / "ckpt.pth.tar"
    assert checkpoint.best_path(path) == tmp_path / "ckpt_best.pth.tar"
    checkpoint.save(path, model=model, epoch=1, best_metric=0.7, is_best=True)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    checkpoint.save(path, model=model, epoch=2, best_metric=0.7, is_best=False)
    # the best copy still holds epoch 1, the checkpoint epoch 2; no temporary files remain
    best = torch.load(checkpoint.best_path(path), weights_only=True)
    latest = torch.load(path, weights_only=True)
    assert best["epoch"] == 1 and latest["epoch"] == 2
    for k in first:
        assert torch.equal(best["model"][k], first[k])
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pth.tar", "ckpt_best.pth.tar"]

    # keys never carry a wrapper prefix, and a prefixed file from other code loads too
    assert not any(k.startswith("module.") for k in latest["model"])
    other = tmp_path / "other.pth"
    torch.save(
        {"model": {"module." + k: v for k, v in first.items()}, "epoch": 3, "best_metric": None},
        other,
    )
    fresh = _Tiny()
    meta = checkpoint.load(other, model=fresh)
    assert meta["epoch"] == 3
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, first[k])

    with pytest.raises(KeyError, match="optimizer"):
        checkpoint.load(path, model=fresh, optimizer=torch.optim.SGD(fresh.parameters(), lr=1))
    with pytest.raises(FileNotFoundError, match="path"):
        checkpoint.load(tmp_path / "missing.pth", model=fresh)
    with pytest.raises(FileNotFoundError, match="directory"):
        checkpoint.save(tmp_path / "nope" / "c.pth", model=fresh, epoch=0)


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model = _Tiny()
    path = tmp_path / "c.pth"
    checkpoint.save(path, model=model, epoch=1)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, model=model, epoch=2)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.pth"]
