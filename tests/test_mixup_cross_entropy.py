"""Mixup cross-entropy: every backend against the cookbook's expression, timm and the reference.

Oracles: the cookbook's ``lam * criterion(x, y_a) + (1 - lam) * criterion(x, y_b)`` with
``F.cross_entropy(label_smoothing=s)`` on float64 copies of the inputs (scalar lam); the
float64 pure-PyTorch reference (per-sample and 0-d tensor lam, backward); dense soft targets
built by hand from each convention's on/off table, and timm's mixup_target +
SoftTargetCrossEntropy formula. Shapes stay small: the Triton backend runs in its
interpreter on CPU tensors here.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DTYPES,
    assert_close_dtype,
    backend_params,
    compiled_backend_params,
    interpreted,
    op_pair,
    opcheck_dtypes,
    opmath,
    require_gpu_backend,
)
from conftest import random_class_weight as random_weight

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.reference import smoothing_weights

mce = cookbook_ops.mixup_cross_entropy
OP = _library.MIXUP_CE_FORWARD
IGNORE = -100

# Backend-specific slack, the one place to widen a tolerance for a backend: a factor on the
# absolute tolerance of conftest.TOLERANCES, per (backend, dtype). 1 everywhere today.
BACKEND_ATOL_FACTOR: dict[tuple[str, torch.dtype], float] = {}


# --- inputs and oracles ---------------------------------------------------------------------


def make_inputs(n, c, device, dtype, ignore="none", scale=3.0, seed=0):
    """logits (n, c) and two targets. Every fourth row has the same class in both slots.
    ignore: "none"; "per_slot" (some rows ignore target_a, some target_b, some both);
    "all_b" (every target_b ignored); "all" (every target ignored)."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).to(device, dtype)
    target_a = torch.randint(0, max(c, 1), (n,), generator=g)
    target_b = torch.randint(0, max(c, 1), (n,), generator=g)
    target_b[::4] = target_a[::4]
    if ignore == "per_slot":
        target_a[1::5] = IGNORE
        target_b[2::5] = IGNORE
        target_a[3::5] = IGNORE
        target_b[3::5] = IGNORE
    elif ignore == "all_b":
        target_b[:] = IGNORE
    elif ignore == "all":
        target_a[:] = IGNORE
        target_b[:] = IGNORE
    else:
        assert ignore == "none", ignore
    return logits, target_a.to(device), target_b.to(device)


def cookbook_oracle(logits, target_a, target_b, lam, smoothing, weight=None, reduction="mean"):
    """The cookbook's mixup criterion with F.cross_entropy, in float64."""
    x = logits.double()
    w = None if weight is None else weight.double()

    def criterion(t):
        return F.cross_entropy(
            x, t, weight=w, ignore_index=IGNORE, reduction=reduction, label_smoothing=smoothing
        )

    return lam * criterion(target_a) + (1 - lam) * criterion(target_b)


def dense_target(target, c, on, off):
    """A target row with ``on`` at the label and ``off`` elsewhere, in float64."""
    t = torch.full((target.shape[0], c), off, dtype=torch.float64, device=target.device)
    return t.scatter(1, target.unsqueeze(1), on)


def dense_oracle(logits, target_a, target_b, lam, convention, smoothing):
    """Per-row loss sum_c -q_c log p_c with q = lam q_a + (1 - lam) q_b built in full from
    the convention table (DESIGN 2.1), independent of the kernels' closed form."""
    n, c = logits.shape
    if convention == "uniform":
        off = smoothing / c
        on = 1 - smoothing + off
    elif convention == "others":
        off, on = smoothing / (c - 1), 1 - smoothing
    else:  # the cookbook's LSR class: 1-e on the label, then e/(C-1) added to every entry
        off = smoothing / (c - 1)
        on = 1 - smoothing + off
    lam = torch.as_tensor(lam, dtype=torch.float64, device=logits.device).reshape(-1, 1)
    q = lam * dense_target(target_a, c, on, off) + (1 - lam) * dense_target(target_b, c, on, off)
    return torch.sum(-q * torch.log_softmax(logits.double(), dim=1), dim=1)


def timm_mixup_target(target_a, target_b, lam, num_classes, smoothing):
    """timm.data.mixup.mixup_target, written out: smoothed one-hots blended by lam."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    y1 = dense_target(target_a, num_classes, on, off)
    y2 = dense_target(target_b, num_classes, on, off)
    lam = torch.as_tensor(lam, dtype=torch.float64, device=target_a.device).reshape(-1, 1)
    return y1 * lam + y2 * (1.0 - lam)


def timm_soft_target_cross_entropy(x, target):
    """timm.loss.SoftTargetCrossEntropy.forward."""
    return torch.sum(-target * F.log_softmax(x, dim=-1), dim=-1).mean()


def assert_close(actual, expected, dtype, backend, scale=1.0):
    factor = BACKEND_ATOL_FACTOR.get((backend, dtype), 1.0)
    assert_close_dtype(actual, expected, dtype, scale=scale * factor)


REDUCTIONS = ["mean", "sum", "none"]
CONVENTIONS = ["uniform", "others", "lsr"]


# --- parity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_matches_cookbook_expression(device, backend, dtype, weighted):
    n, c = 8, 37
    weight = random_weight(c, device, dtype) if weighted else None
    cases = [  # (ignored targets, smoothing, lam)
        ("none", 0.1, 0.3),
        ("per_slot", 0.0, 0.7),
        ("per_slot", 1.0, 0.5),
        ("per_slot", 0.2, 0.0),
        ("none", 0.2, 1.0),
        ("all_b", 0.1, 0.4),
        ("all", 0.1, 0.4),
    ]
    for ignore, smoothing, lam in cases:
        logits, ta, tb = make_inputs(n, c, device, dtype, ignore=ignore)
        for reduction in REDUCTIONS:
            got = mce(
                logits, ta, tb, lam, smoothing, weight=weight, reduction=reduction, backend=backend
            )
            assert got.dtype == dtype
            expected = cookbook_oracle(logits, ta, tb, lam, smoothing, weight, reduction)
            assert_close(got, expected, dtype, backend, scale=c)
            if reduction == "mean" and ignore in ("all", "all_b"):
                # a mean over no rows is NaN in PyTorch, and so is lam * NaN
                assert torch.isnan(got)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_tensor_lam_matches_float64_reference(device, backend, dtype, weighted):
    n, c = 8, 37
    weight = random_weight(c, device, dtype) if weighted else None
    per_sample = torch.rand(n, dtype=torch.float64, device=device)
    zero_dim = torch.tensor(0.35, dtype=torch.float64, device=device)
    # conventions take turns here; test_conventions_match_dense_targets covers each fully
    cases = zip(
        itertools.product((per_sample, zero_dim), ["none", "per_slot"]),
        itertools.cycle(CONVENTIONS),
    )
    for (lam, ignore), convention in cases:
        logits, ta, tb = make_inputs(n, c, device, dtype, ignore=ignore)
        for reduction in REDUCTIONS:
            got = mce(
                logits,
                ta,
                tb,
                lam.to(opmath(dtype)),
                0.1,
                weight=weight,
                reduction=reduction,
                convention=convention,
                backend=backend,
            )
            assert got.dtype == dtype
            expected = cookbook_ops.reference.mixup_cross_entropy(
                logits.double(),
                ta,
                tb,
                lam,
                0.1,
                weight=None if weight is None else weight.double(),
                reduction=reduction,
                convention=convention,
            )
            assert_close(got, expected, dtype, backend, scale=c)
        if convention == "uniform" and ignore == "none" and not weighted:
            # With nothing ignored, each term's mean is over N rows: the per-row mixture,
            # from F.cross_entropy directly.
            x = logits.double()
            rows = lam * F.cross_entropy(x, ta, reduction="none", label_smoothing=0.1) + (
                1 - lam
            ) * F.cross_entropy(x, tb, reduction="none", label_smoothing=0.1)
            got = mce(logits, ta, tb, lam, 0.1, reduction="none", backend=backend)
            assert_close(got, rows, dtype, backend, scale=c)
            got = mce(logits, ta, tb, lam, 0.1, backend=backend)
            assert_close(got, rows.mean(), dtype, backend, scale=c)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_equals_timm_soft_target_cross_entropy(device, backend, dtype):
    n, c = 8, 40
    logits, ta, tb = make_inputs(n, c, device, dtype)
    lams = [0.3, torch.rand(n, dtype=torch.float64, device=device)]
    for lam, smoothing in itertools.product(lams, [0.0, 0.1]):
        x = logits.detach().clone().requires_grad_()
        got = mce(x, ta, tb, lam, smoothing, backend=backend)
        x64 = logits.detach().double().requires_grad_()
        expected = timm_soft_target_cross_entropy(x64, timm_mixup_target(ta, tb, lam, c, smoothing))
        assert_close(got, expected, dtype, backend, scale=c)
        got.backward()
        expected.backward()
        assert_close(x.grad, x64.grad, dtype, backend)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_conventions_match_dense_targets(device, backend, dtype, convention):
    n, c = 8, 12
    logits, ta, tb = make_inputs(n, c, device, dtype)
    lam = torch.rand(n, dtype=torch.float64, device=device)
    for smoothing in (0.0, 0.1, 0.4):
        expected = dense_oracle(logits, ta, tb, lam, convention, smoothing)
        for reduction in REDUCTIONS:
            got = mce(
                logits,
                ta,
                tb,
                lam,
                smoothing,
                convention=convention,
                reduction=reduction,
                backend=backend,
            )
            want = {"none": expected, "sum": expected.sum(), "mean": expected.mean()}[reduction]
            assert_close(got, want, dtype, backend, scale=c)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_return_correct_is_against_target_a(device, backend):
    n, c = 8, 10
    logits, ta, tb = make_inputs(n, c, device, torch.float32)
    pred = logits.argmax(1)
    ta[::2] = pred[::2]  # right for target_a
    tb[1::2] = pred[1::2]  # right for target_b only
    tb[::2] = (pred[::2] + 1) % c
    ta[1::2] = (pred[1::2] + 1) % c
    ta[2] = IGNORE  # an ignored target_a is never correct
    tb[4] = IGNORE  # an ignored target_b does not matter
    loss, correct = mce(logits, ta, tb, 0.4, 0.1, return_correct=True, backend=backend)
    assert correct.dtype == torch.bool and correct.shape == (n,)
    torch.testing.assert_close(correct, pred == ta)
    assert correct[::2].tolist() == [True, False, True, True]
    assert not correct[1::2].any()


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_nan_rows_match_argmax_and_reference(device, backend):
    """A NaN logit makes both slots' losses and the gradient row NaN; `correct` is
    argmax == target_a with NaN the largest value (the first NaN wins), as torch.argmax has
    it, on every backend. C = 4100 puts a NaN in the Triton kernel's second chunk."""
    c = 4100
    logits = torch.randn(7, c, dtype=torch.float64).to(device, torch.float32)
    nan = float("nan")
    logits[0, :3] = torch.tensor([nan, 5.0, 1.0])
    logits[1, :3] = torch.tensor([nan, 5.0, 1.0])
    logits[2, :3] = torch.tensor([5.0, nan, 1.0])
    logits[3, :3] = torch.tensor([5.0, nan, 1.0])
    logits[4, 1] = 50.0
    logits[4, c - 2] = nan
    logits[5, 1] = 50.0
    logits[5, c - 2] = nan
    ta = torch.tensor([1, 0, 0, 1, 1, c - 2, 3], device=device)
    tb = torch.tensor([0, 1, 1, 0, c - 2, 1, 4], device=device)
    expected = logits.argmax(1) == ta
    assert expected[:6].tolist() == [False, True, False, True, False, True]
    x = logits.clone().requires_grad_()
    loss, correct = mce(x, ta, tb, 0.3, 0.1, reduction="none", return_correct=True,
                        backend=backend)  # fmt: skip
    assert correct.tolist() == expected.tolist()
    assert torch.isnan(loss[:6]).all() and torch.isfinite(loss[6])
    loss.backward(torch.ones_like(loss))
    assert torch.isnan(x.grad[:6]).all()
    x64 = logits[6:].double().requires_grad_()
    want = cookbook_oracle(x64, ta[6:], tb[6:], 0.3, 0.1, reduction="none")
    assert_close(loss[6:], want, torch.float32, backend)
    want.sum().backward()
    assert_close(x.grad[6:], x64.grad, torch.float32, backend)


# --- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_gradient_matches_reference(device, backend, dtype, weighted):
    n, c = 8, 29
    weight = random_weight(c, device, dtype) if weighted else None
    w64 = None if weight is None else weight.double()
    lam = torch.rand(n, dtype=torch.float64, device=device)
    for ignore, smoothing in [("none", 0.0), ("per_slot", 0.1), ("per_slot", 1.0)]:
        logits, ta, tb = make_inputs(n, c, device, dtype, ignore=ignore)
        upstream = torch.randn(n, dtype=torch.float64, device=device)
        x = logits.detach().clone().requires_grad_()
        out = mce(x, ta, tb, lam, smoothing, weight=weight, reduction="none", backend=backend)
        out.backward(upstream.to(out.dtype))
        x64 = logits.detach().double().requires_grad_()
        expected = cookbook_ops.reference.mixup_cross_entropy(
            x64, ta, tb, lam, smoothing, weight=w64, reduction="none"
        )
        expected.backward(upstream)
        assert x.grad.dtype == dtype
        assert_close(x.grad, x64.grad, dtype, backend)
        # scalar lam and the reduced losses against the cookbook expression
        for reduction in ("mean", "sum"):
            x = logits.detach().clone().requires_grad_()
            mce(
                x, ta, tb, 0.3, smoothing, weight=weight, reduction=reduction, backend=backend
            ).backward(torch.tensor(-2.5, dtype=dtype, device=device))
            x64 = logits.detach().double().requires_grad_()
            (-2.5 * cookbook_oracle(x64, ta, tb, 0.3, smoothing, w64, reduction)).backward()
            assert_close(x.grad, x64.grad, dtype, backend)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_gradcheck_float64(device, backend, weighted):
    logits, ta, tb = make_inputs(5, 7, device, torch.float64, ignore="per_slot")
    weight = random_weight(7, device, torch.float64) if weighted else None
    lam = torch.rand(5, dtype=torch.float64, device=device)
    # each reduction once, each convention once: the kernels see only on/off, not the name
    for reduction, convention in zip(REDUCTIONS, CONVENTIONS):
        x = logits.detach().clone().requires_grad_()
        kwargs = dict(weight=weight, reduction=reduction, convention=convention, backend=backend)
        torch.autograd.gradcheck(lambda x, kw=kwargs: mce(x, ta, tb, lam, 0.15, **kw), (x,))


# --- numerics and shapes --------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_confident_logits(device, backend, dtype):
    """p near 1 on target_a: its loss is tiny and must survive lse - x_y."""
    n, c = 8, 40
    logits, ta, tb = make_inputs(n, c, device, dtype, scale=1.0)
    logits = logits.double()
    logits[torch.arange(n), ta] += 40.0
    logits = logits.to(dtype)
    for smoothing in (0.0, 0.1):
        x = logits.detach().clone().requires_grad_()
        got = mce(x, ta, tb, 0.9, smoothing, reduction="none", backend=backend)
        x64 = logits.detach().double().requires_grad_()
        expected = cookbook_oracle(x64, ta, tb, 0.9, smoothing, reduction="none")
        assert_close(got, expected, dtype, backend, scale=c)
        assert torch.isfinite(got).all() and (got >= 0).all()
        got.sum().backward()
        expected.sum().backward()
        assert_close(x.grad, x64.grad, dtype, backend)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_non_contiguous_logits(device, backend):
    dtype = torch.float32
    _, ta, tb = make_inputs(8, 30, device, dtype)
    cases = {
        "row_slice": torch.randn(8, 50, device=device, dtype=dtype)[:, 10:40],
        "every_other_row": torch.randn(16, 30, device=device, dtype=dtype)[::2],
        "transposed": torch.randn(30, 8, device=device, dtype=dtype).t(),
    }
    for name, logits in cases.items():
        assert not logits.is_contiguous(), name
        x = logits.detach().requires_grad_()
        got = mce(x, ta, tb, 0.6, 0.1, reduction="none", backend=backend)
        x64 = logits.detach().double().requires_grad_()
        expected = cookbook_oracle(x64, ta, tb, 0.6, 0.1, reduction="none")
        assert_close(got, expected, dtype, backend, scale=10)
        upstream = torch.randn(8, device=device)
        got.backward(upstream)
        expected.backward(upstream.double())
        assert_close(x.grad, x64.grad, dtype, backend)


def _sizes(backend, device):
    classes = (1, 3, 40) if interpreted(backend, device) else (1, 3, 1000, 32001)
    for c in classes:
        for n in (0, 1, 7):
            yield n, c


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_sizes(device, backend):
    dtype = torch.float32
    for n, c in _sizes(backend, device):
        logits, ta, tb = make_inputs(n, c, device, dtype, ignore="per_slot" if n > 1 else "none")
        for reduction in REDUCTIONS:
            x = logits.detach().clone().requires_grad_()
            got, correct = mce(
                x, ta, tb, 0.25, 0.1, reduction=reduction, return_correct=True, backend=backend
            )
            x64 = logits.detach().double().requires_grad_()
            expected = cookbook_oracle(x64, ta, tb, 0.25, 0.1, reduction=reduction)
            assert_close(got, expected, dtype, backend, scale=10)
            assert correct.dtype == torch.bool and correct.shape == (n,)
            if n > 0:
                torch.testing.assert_close(correct, logits.argmax(1) == ta)
            if reduction != "none" and n > 0 and torch.isfinite(expected):
                got.backward()
                expected.backward()
                assert_close(x.grad, x64.grad, dtype, backend)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_all_ignored_mean_is_nan(device, backend):
    for dtype in (torch.float32, torch.float64):
        logits, ta, tb = make_inputs(6, 5, device, dtype, ignore="all")
        assert torch.isnan(mce(logits, ta, tb, 0.5, 0.1, backend=backend))
        assert torch.isnan(mce(logits, ta, tb, torch.rand(6, device=device), backend=backend))
        none = mce(logits, ta, tb, 0.5, 0.1, reduction="none", backend=backend)
        assert (none == 0).all()
        assert mce(logits, ta, tb, 0.5, 0.1, reduction="sum", backend=backend) == 0
        # ignored rows get no gradient, and the sum of nothing has a zero gradient
        x = logits.detach().clone().requires_grad_()
        mce(x, ta, tb, 0.5, 0.1, reduction="sum", backend=backend).backward()
        assert (x.grad == 0).all()


# --- torch.library and torch.compile --------------------------------------------------------


def _op_names(backend):
    return op_pair(_library.MIXUP_CE_FORWARD, _library.MIXUP_CE_BACKWARD, backend)


@pytest.mark.parametrize("device,backend", compiled_backend_params(OP))
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_opcheck(device, backend, weighted):
    forward, backward = _op_names(backend)
    for dtype in opcheck_dtypes(backend, device):
        logits, ta, tb = make_inputs(6, 11, device, dtype, ignore="per_slot")
        weight = random_weight(11, device, dtype) if weighted else None
        on, off = smoothing_weights("uniform", 0.1, 11)
        _, lse, _ = _library.op(forward)(logits, ta, tb, weight, on, off, IGNORE)
        grad_loss = torch.randn(6, 2, device=device, dtype=opmath(dtype))
        torch.library.opcheck(
            _library.op(backward), (grad_loss, logits, ta, tb, weight, lse, on, off, IGNORE)
        )
        logits.requires_grad_(dtype != torch.bfloat16)
        torch.library.opcheck(_library.op(forward), (logits, ta, tb, weight, on, off, IGNORE))


@pytest.mark.parametrize("device,backend", compiled_backend_params(OP))
def test_kernel_ops_match_reference_ops(device, backend):
    """The forward and backward ops themselves, with a non-contiguous (N, 2) grad_loss."""
    forward, backward = _op_names(backend)
    for dtype in (torch.float32, torch.float64):
        logits, ta, tb = make_inputs(8, 37, device, dtype, ignore="per_slot")
        weight = random_weight(37, device, dtype)
        on, off = smoothing_weights("others", 0.2, 37)
        loss, lse, correct = _library.op(forward)(logits, ta, tb, weight, on, off, IGNORE)
        ref = cookbook_ops.reference.mixup_cross_entropy_forward(
            logits.double(), ta, tb, weight.double(), on, off, IGNORE
        )
        assert loss.shape == (8, 2) and loss.dtype == opmath(dtype)
        assert_close(loss, ref[0], dtype, backend, scale=37)
        assert_close(lse, ref[1], dtype, backend)
        torch.testing.assert_close(correct, ref[2])
        grad_loss = torch.randn(2, 8, device=device, dtype=opmath(dtype)).t()
        got = _library.op(backward)(grad_loss, logits, ta, tb, weight, lse, on, off, IGNORE)
        expected = cookbook_ops.reference.mixup_cross_entropy_backward(
            grad_loss.double(), logits.double(), ta, tb, weight.double(), ref[1], on, off, IGNORE
        )
        assert got.dtype == dtype
        assert_close(got, expected, dtype, backend)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_compile_fullgraph_forward_backward(device, backend):
    torch._dynamo.reset()

    def step(x, ta, tb, lam):
        loss, correct = mce(x, ta, tb, lam, 0.1, return_correct=True, backend=backend)
        return loss, correct.sum()

    compiled = torch.compile(step, fullgraph=True, dynamic=False)
    logits, ta, tb = make_inputs(8, 17, device, torch.float32, ignore="per_slot")
    lam = torch.rand(8, device=device)
    x = logits.detach().clone().requires_grad_()
    loss, n_correct = compiled(x, ta, tb, lam)
    loss.backward()
    y = logits.detach().double().requires_grad_()
    expected = cookbook_ops.reference.mixup_cross_entropy(y, ta, tb, lam.double(), 0.1)
    expected.backward()
    assert_close(loss, expected, torch.float32, backend, scale=17)
    assert_close(x.grad, y.grad, torch.float32, backend)
    assert int(n_correct) == int((logits.argmax(1) == ta).sum())


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_smoothing_changes_at_runtime(device, backend):
    """A smoothing schedule gives the right loss at every step, eager and compiled."""
    logits, ta, tb = make_inputs(8, 17, device, torch.float64, ignore="per_slot")

    def fn(x, s):
        return mce(x, ta, tb, 0.3, s, backend=backend)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    for smoothing in (0.0, 0.05, 0.3, 0.05):
        expected = cookbook_oracle(logits, ta, tb, 0.3, smoothing)
        torch.testing.assert_close(fn(logits, smoothing), expected)
        torch.testing.assert_close(compiled(logits, smoothing), expected)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_autocast_returns_float32_like_pytorch(device, backend):
    logits, ta, tb = make_inputs(8, 10, device, torch.bfloat16)
    proj = torch.randn(10, 10, device=device)
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        h = logits.float() @ proj
        assert h.dtype == torch.bfloat16
        ours = mce(h, ta, tb, 0.3, 0.1, backend=backend)
        theirs = 0.3 * F.cross_entropy(h, ta, label_smoothing=0.1) + 0.7 * F.cross_entropy(
            h, tb, label_smoothing=0.1
        )
    assert ours.dtype == theirs.dtype == torch.float32
    assert_close(ours, theirs, torch.bfloat16, backend)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_bad_inputs_raise_clear_errors(device, backend):
    logits, ta, tb = make_inputs(4, 5, device, torch.float32)
    for lam in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="lam"):
            mce(logits, ta, tb, lam, backend=backend)
    if device == "cpu":
        bad_lam = torch.tensor([0.5, 1.25, 0.0, 1.0])
        with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]; got 1.25"):
            mce(logits, ta, tb, bad_lam, backend=backend)
        with pytest.raises(ValueError, match="lam"):
            mce(logits, ta, tb, torch.tensor(-0.5), backend=backend)
    for shape in ((5,), (3,), (4, 1), (1, 4)):
        with pytest.raises(ValueError, match="lam"):
            mce(logits, ta, tb, torch.full(shape, 0.5, device=device), backend=backend)
    with pytest.raises(TypeError, match="lam"):
        mce(logits, ta, tb, torch.ones(4, dtype=torch.int64, device=device), backend=backend)
    with pytest.raises(TypeError, match="lam"):
        mce(logits, ta, tb, "0.5", backend=backend)
    with pytest.raises(ValueError, match="target_b"):
        mce(logits, ta, tb[:3], 0.5, backend=backend)
    with pytest.raises(ValueError, match="target_a"):
        mce(logits, ta[:3], tb, 0.5, backend=backend)
    with pytest.raises(TypeError, match="target_b"):
        mce(logits, ta, tb.int(), 0.5, backend=backend)
    with pytest.raises(TypeError, match="target_b"):
        mce(logits, ta, tb.float(), 0.5, backend=backend)
    with pytest.raises(ValueError, match="target_b"):
        mce(logits, ta, tb.to("meta"), 0.5, backend=backend)
    with pytest.raises(ValueError, match="logits"):
        mce(logits[0], ta, tb, 0.5, backend=backend)
    with pytest.raises(ValueError, match="logits"):
        mce(logits.unsqueeze(2), ta, tb, 0.5, backend=backend)
    with pytest.raises(TypeError, match="logits"):
        mce(logits.long(), ta, tb, 0.5, backend=backend)
    with pytest.raises(ValueError, match="smoothing"):
        mce(logits, ta, tb, 0.5, 1.5, backend=backend)
    with pytest.raises(ValueError, match="weight"):
        mce(logits, ta, tb, 0.5, weight=torch.ones(4, device=device), backend=backend)


@pytest.mark.parametrize("device,backend", [p for p in backend_params(OP) if p.values[0] == "cpu"])
def test_out_of_range_targets_on_cpu_raise(device, backend):
    """CPU targets are checked (devices give the row a NaN loss instead of syncing)."""
    logits, ta, tb = make_inputs(4, 5, device, torch.float32)
    for value in (5, -1):
        for which in ("target_a", "target_b"):
            targets = {"target_a": ta.clone(), "target_b": tb.clone()}
            targets[which][2] = value
            with pytest.raises(IndexError, match=rf"{which}\[2\] = {value} is out of range"):
                mce(logits, targets["target_a"], targets["target_b"], 0.5, backend=backend)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_out_of_range_target_on_gpu_is_nan_not_a_crash(backend):
    require_gpu_backend(OP, backend)
    logits, ta, tb = make_inputs(4, 5, "cuda", torch.float32)
    ta[1] = 7
    tb[2] = -3
    loss = mce(logits, ta, tb, 0.5, 0.1, reduction="none", backend=backend)
    torch.cuda.synchronize()
    assert torch.isnan(loss[1]) and torch.isnan(loss[2])
    assert torch.isfinite(loss[0]) and torch.isfinite(loss[3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_long_rows_on_gpu(backend, dtype):
    """C = 128256 (a whole block per row): the kernel ops against the float64 reference ops,
    with equal targets, an ignored slot per row and a non-contiguous (N, 2) grad_loss."""
    require_gpu_backend(OP, backend)
    forward, backward = _op_names(backend)
    n, c = 5, 128256
    logits, ta, tb = make_inputs(n, c, "cuda", dtype)
    tb[0] = ta[0]
    ta[1] = IGNORE
    tb[2] = IGNORE
    on, off = smoothing_weights("uniform", 0.1, c)
    for weight in (None, random_weight(c, "cuda", dtype)):
        w64 = None if weight is None else weight.double()
        loss, lse, correct = _library.op(forward)(logits, ta, tb, weight, on, off, IGNORE)
        ref = cookbook_ops.reference.mixup_cross_entropy_forward(
            logits.double(), ta, tb, w64, on, off, IGNORE
        )
        assert loss.shape == (n, 2)
        assert_close(loss, ref[0], dtype, backend, scale=10)
        assert_close(lse, ref[1], dtype, backend)
        torch.testing.assert_close(correct, ref[2])
        assert loss[1, 0] == 0 and loss[2, 1] == 0
        torch.testing.assert_close(loss[0, 0], loss[0, 1])
        grad_loss = torch.randn(2, n, device="cuda", dtype=opmath(dtype)).t()
        got = _library.op(backward)(grad_loss, logits, ta, tb, weight, lse, on, off, IGNORE)
        expected = cookbook_ops.reference.mixup_cross_entropy_backward(
            grad_loss.double(), logits.double(), ta, tb, w64, ref[1], on, off, IGNORE
        )
        assert got.dtype == dtype
        assert_close(got, expected, dtype, backend)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_int64_offsets_on_gpu(backend):
    """N*C above 2^31 elements: 32-bit offsets would wrap and read the wrong rows."""
    require_gpu_backend(OP, backend, min_memory_gib=24)
    n, c = 16800, 128256  # 2.15e9 elements of bf16: 4.3 GB
    logits = torch.empty(n, c, device="cuda", dtype=torch.bfloat16).normal_()
    ta = torch.randint(0, c, (n,), device="cuda")
    tb = torch.randint(0, c, (n,), device="cuda")
    tb[-1] = ta[-1]
    rows = torch.tensor([0, n // 2, n - 2, n - 1], device="cuda")
    got = mce(logits, ta, tb, 0.3, 0.1, reduction="none", backend=backend)[rows]
    x64 = logits[rows].double()
    expected = cookbook_oracle(x64, ta[rows], tb[rows], 0.3, 0.1, reduction="none")
    assert_close(got, expected, torch.bfloat16, backend, scale=10)
    x = logits.requires_grad_()
    mce(x, ta, tb, 0.3, 0.1, reduction="sum", backend=backend).backward()
    y = logits[rows].detach().double().requires_grad_()
    cookbook_oracle(y, ta[rows], tb[rows], 0.3, 0.1, reduction="sum").backward()
    assert_close(x.grad[rows], y.grad, torch.bfloat16, backend)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_out_of_range_slot_on_gpu_poisons_its_loss_and_the_gradient_row(backend):
    """Slot by slot: an out-of-range target makes that slot's loss NaN (the other slot keeps
    its value) and the whole gradient row NaN; correct stays argmax == target_a."""
    require_gpu_backend(OP, backend)
    forward, backward = _op_names(backend)
    logits, ta, tb = make_inputs(4, 5, "cuda", torch.float32)
    ta[1] = 7
    tb[2] = -3
    ta[2] = logits[2].argmax()  # right for target_a, but its target_b is out of range
    on, off = smoothing_weights("uniform", 0.1, 5)
    loss, lse, correct = _library.op(forward)(logits, ta, tb, None, on, off, IGNORE)
    good = torch.tensor([0, 3], device="cuda")
    ref = cookbook_ops.reference.mixup_cross_entropy_forward(
        logits[good].double(), ta[good], tb[good], None, on, off, IGNORE
    )
    assert torch.isnan(loss[1, 0]) and torch.isnan(loss[2, 1])
    assert torch.isfinite(loss[1, 1]) and torch.isfinite(loss[2, 0])
    assert_close(loss[good], ref[0], torch.float32, backend, scale=5)
    assert not correct[1] and correct[2]
    grad = _library.op(backward)(
        torch.ones(4, 2, device="cuda"), logits, ta, tb, None, lse, on, off, IGNORE
    )
    assert torch.isnan(grad[1]).all() and torch.isnan(grad[2]).all()
    assert torch.isfinite(grad[good]).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_more_than_2_31_rows_on_gpu(backend):
    """(2**31 + 5, 2) bf16 logits: 64 rows share a program, and an int32 row index past 2**31
    would wrap negative, pass `rows < n` and read and write before the tensors. Forward and
    backward kernels, checked at both ends of the batch against the reference ops."""
    require_gpu_backend(OP, backend, min_memory_gib=110)
    forward, backward = _op_names(backend)
    n, c = 2**31 + 5, 2
    logits = torch.randn(n, c, device="cuda", dtype=torch.bfloat16)
    ta = torch.randint(0, c, (n,), device="cuda")
    tb = torch.randint(0, c, (n,), device="cuda")
    rows = torch.tensor([0, 1, n // 2, 2**31 - 1, 2**31, n - 2, n - 1], device="cuda")
    on, off = smoothing_weights("uniform", 0.1, c)
    loss, lse, correct = _library.op(forward)(logits, ta, tb, None, on, off, IGNORE)
    ref = cookbook_ops.reference.mixup_cross_entropy_forward(
        logits[rows].double(), ta[rows], tb[rows], None, on, off, IGNORE
    )
    assert_close(loss[rows], ref[0], torch.bfloat16, backend)
    assert_close(lse[rows], ref[1], torch.bfloat16, backend)
    assert torch.equal(correct[rows], ref[2])
    del loss, correct
    grad_loss = torch.ones(n, 2, device="cuda")
    got = _library.op(backward)(grad_loss, logits, ta, tb, None, lse, on, off, IGNORE)
    expected = cookbook_ops.reference.mixup_cross_entropy_backward(
        grad_loss[rows].double(), logits[rows].double(), ta[rows], tb[rows], None, ref[1],
        on, off, IGNORE,
    )  # fmt: skip
    assert_close(got[rows], expected, torch.bfloat16, backend)
