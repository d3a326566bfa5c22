"""Label-smoothed cross-entropy: every backend against PyTorch, the reference and the cookbook.

Oracles: F.cross_entropy on float64 copies of the inputs (convention "uniform"), the
cookbook's own formulations rewritten below (the LSR class and the inline loop), and the
pure-PyTorch reference for the conventions PyTorch lacks.
"""

import inspect
import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DEVICES,
    DTYPES,
    backend_params,
    compiled_backend_params,
    op_pair,
    opcheck_dtypes,
    random_class_weight,
    require_gpu_backend,
)
from conftest import assert_close_dtype as assert_close

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.nn import LSR, LabelSmoothingCrossEntropy
from cookbook_ops.reference import smoothing_weights

lsce = cookbook_ops.label_smoothing_cross_entropy
OP = _library.LSCE_FORWARD


# --- oracles --------------------------------------------------------------------------------


def seed_lsr(x, target, e, reduction="mean"):
    """The cookbook's LSR class, computed the way it computes it: a float32 one-hot with
    1-e scattered on the target, e/(C-1) added everywhere, times -log_softmax."""
    n, c = x.shape
    one_hot = torch.zeros(n, c, device=x.device)
    one_hot.scatter_add_(1, target.view(n, -1), torch.full((n, 1), 1 - e, device=x.device))
    one_hot += e / (c - 1)
    loss = torch.sum(-torch.log_softmax(x, dim=1) * one_hot, dim=1)
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


def seed_inline_loop(score, labels, e=0.1):
    """The cookbook's inline label smoothing: 1-e on the label, e/(C-1) elsewhere, sum / N."""
    n, c = score.shape
    smoothed = torch.full((n, c), e / (c - 1), device=score.device, dtype=score.dtype)
    smoothed.scatter_(1, labels.unsqueeze(1), 1 - e)
    return -torch.sum(F.log_softmax(score, dim=1) * smoothed) / n


def pytorch_oracle(logits, target, smoothing, weight, ignore_index, reduction):
    """F.cross_entropy in float64 on the same values."""
    return F.cross_entropy(
        logits.double(),
        target,
        weight=None if weight is None else weight.double(),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=smoothing,
    )


def make_inputs(n, c, device, dtype, ignore_fraction=0.0, ignore_index=-100, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).to(device, dtype)
    target = torch.randint(0, c, (n,), generator=g).to(device)
    if ignore_fraction > 0 and n > 0:
        drop = torch.rand(n, generator=g) < ignore_fraction
        if ignore_fraction >= 1.0:
            drop[:] = True
        target[drop.to(device)] = ignore_index
    return logits, target


# --- parity matrix -------------------------------------------------------------------------

REDUCTIONS = ["mean", "sum", "none"]
SMOOTHINGS = [0.0, 0.1, 1.0]
IGNORED = [0.0, 0.5, 1.0]


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
@pytest.mark.parametrize("convention", ["uniform", "others", "lsr"])
def test_parity_matrix(device, backend, dtype, weighted, convention):
    n, c = 13, 37
    weight = torch.rand(c, dtype=torch.float64).add(0.5).to(device) if weighted else None
    for ignored, smoothing in itertools.product(IGNORED, SMOOTHINGS):
        logits, target = make_inputs(n, c, device, dtype, ignore_fraction=ignored)
        for reduction in REDUCTIONS:
            got = lsce(
                logits,
                target,
                smoothing,
                weight=weight,
                reduction=reduction,
                convention=convention,
                backend=backend,
            )
            assert got.dtype == dtype
            ref = cookbook_ops.reference.label_smoothing_cross_entropy(
                logits.double(),
                target,
                smoothing,
                weight=weight,
                reduction=reduction,
                convention=convention,
            )
            assert_close(got, ref, dtype, scale=c)
            if convention == "uniform":
                expected = pytorch_oracle(logits, target, smoothing, weight, -100, reduction)
                assert_close(got, expected, dtype, scale=c)
                # the reference itself is held to PyTorch in float64
                assert_close(ref, expected, torch.float64)
            if ignored == 1.0 and reduction == "mean":
                assert torch.isnan(got), "mean over no rows is NaN, as in PyTorch"


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_gradient_matches_pytorch(device, backend, dtype, weighted):
    n, c = 11, 29
    weight = torch.rand(c, dtype=torch.float64).add(0.5).to(device) if weighted else None
    for reduction, smoothing in itertools.product(REDUCTIONS, [0.0, 0.1, 1.0]):
        logits, target = make_inputs(n, c, device, dtype, ignore_fraction=0.3)
        x = logits.detach().clone().requires_grad_()
        out = lsce(x, target, smoothing, weight=weight, reduction=reduction, backend=backend)
        x64 = logits.detach().double().clone().requires_grad_()
        expected = pytorch_oracle(x64, target, smoothing, weight, -100, reduction)
        if reduction == "none":
            upstream = torch.randn(n, dtype=torch.float64, device=device)
        else:
            upstream = torch.tensor(-2.5, dtype=torch.float64, device=device)
        out.backward(upstream.to(out.dtype))
        expected.backward(upstream)
        assert x.grad.dtype == dtype
        assert_close(x.grad, x64.grad, dtype)


# --- the cookbook's snippets ----------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_lsr_reproduces_seed_class(device, backend, dtype, reduction):
    logits, target = make_inputs(16, 10, device, dtype)
    for e in (0.0, 0.1, 0.5):
        x = logits.detach().clone().requires_grad_()
        got = LSR(e=e, reduction=reduction, backend=backend)(x, target)
        x_ref = logits.detach().clone().requires_grad_()
        expected = seed_lsr(x_ref, target, e, reduction)
        assert got.dtype == expected.dtype
        # the seed builds its target in float32 whatever the input dtype: agree to that
        assert_close(got, expected, torch.float32)
        got.sum().backward()
        expected.sum().backward()
        assert_close(x.grad, x_ref.grad, torch.float32)


def test_lsr_target_rows_sum_above_one():
    # The seed's LSR target puts 1-e+e/(C-1) on the label: its rows sum to 1+e/(C-1).
    on, off = smoothing_weights("lsr", 0.1, 10)
    assert on + 9 * off == pytest.approx(1 + 0.1 / 9)


def test_lsr_seed_errors():
    crit = LSR(e=0.1)
    with pytest.raises(ValueError, match="to match target batch_size"):
        crit(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="least 2 dimensions"):
        crit(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="Only 2 dimension"):
        crit(torch.randn(4, 3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="unrecognized option"):
        LSR(e=0.1, reduction="avg")(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))


def test_lsr_half_input_gives_float32_like_seed():
    logits, target = make_inputs(8, 5, "cpu", torch.bfloat16)
    assert LSR(0.1)(logits, target).dtype == seed_lsr(logits, target, 0.1).dtype


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_seed_inline_loop_is_convention_others(device, backend):
    logits, target = make_inputs(32, 100, device, torch.float64)
    got = lsce(logits, target, 0.1, convention="others", backend=backend)
    torch.testing.assert_close(got, seed_inline_loop(logits, target, 0.1))


# --- numerics and shapes --------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_confident_logits(device, backend, dtype):
    """p_y near 1: the loss is tiny and must not be lost to cancellation in lse - x_y."""
    n, c = 9, 1000
    logits, target = make_inputs(n, c, device, dtype, scale=1.0)
    logits = logits.double()
    logits[torch.arange(n), target] += 40.0
    logits = logits.to(dtype)
    for smoothing in (0.0, 0.1):
        x = logits.detach().clone().requires_grad_()
        got = lsce(x, target, smoothing, reduction="none", backend=backend)
        x64 = logits.detach().double().clone().requires_grad_()
        expected = pytorch_oracle(x64, target, smoothing, None, -100, "none")
        assert_close(got, expected, dtype)
        assert torch.isfinite(got).all() and (got >= 0).all()
        got.sum().backward()
        expected.sum().backward()
        assert_close(x.grad, x64.grad, dtype)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_non_contiguous_logits(device, backend):
    dtype = torch.float32
    base, target = make_inputs(12, 50, device, dtype)
    cases = {
        "row_slice": torch.randn(12, 80, device=device, dtype=dtype)[:, 10:60],
        "every_other_row": torch.randn(24, 50, device=device, dtype=dtype)[::2],
        "transposed": torch.randn(50, 12, device=device, dtype=dtype).t(),
    }
    for name, logits in cases.items():
        assert not logits.is_contiguous(), name
        x = logits.detach().requires_grad_()
        got = lsce(x, target, 0.1, reduction="none", backend=backend)
        x64 = logits.detach().double().requires_grad_()
        expected = pytorch_oracle(x64, target, 0.1, None, -100, "none")
        assert_close(got, expected, dtype, scale=10)
        upstream = torch.randn(12, device=device)
        got.backward(upstream)
        expected.backward(upstream.double())
        assert_close(x.grad, x64.grad, dtype)


def _sizes():
    for c in (1, 2, 3, 1000, 32001):
        for n in (0, 1, 7):
            yield pytest.param(n, c, id=f"N{n}-C{c}")


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("n,c", list(_sizes()))
def test_sizes(device, backend, n, c):
    dtype = torch.float32
    logits, target = make_inputs(n, c, device, dtype, ignore_fraction=0.2 if n > 1 else 0.0)
    for reduction in REDUCTIONS:
        x = logits.detach().clone().requires_grad_()
        got, correct = lsce(
            x, target, 0.1, reduction=reduction, return_correct=True, backend=backend
        )
        x64 = logits.detach().double().clone().requires_grad_()
        expected = pytorch_oracle(x64, target, 0.1, None, -100, reduction)
        assert_close(got, expected, dtype, scale=10)
        assert correct.dtype == torch.bool and correct.shape == (n,)
        if n > 0:
            torch.testing.assert_close(correct, logits.argmax(1) == target)
        if reduction == "mean" and n > 0 and torch.isfinite(expected):
            got.backward()
            expected.backward()
            assert_close(x.grad, x64.grad, dtype)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_return_correct(device, backend):
    logits, target = make_inputs(64, 10, device, torch.float32)
    target[::3] = logits.argmax(1)[::3]  # make some rows right
    target[5] = -100
    loss, correct = lsce(logits, target, 0.1, return_correct=True, backend=backend)
    torch.testing.assert_close(correct, logits.argmax(1) == target)
    assert correct.sum() >= 21
    assert not correct[5]


def nan_rows(c, device):
    """Logits with NaN rows and the targets that make torch.argmax (NaN counts as the largest
    value, the first NaN wins) right or wrong on them; the last row is finite. C = 4100 puts
    the second NaN in the second chunk of the Triton kernel, after a finite maximum."""
    logits = torch.randn(8, c, dtype=torch.float64).to(device, torch.float32)
    nan = float("nan")
    logits[0, :3] = torch.tensor([nan, 5.0, 1.0])  # target 1: the finite max, not the argmax
    logits[1, :3] = torch.tensor([nan, 5.0, 1.0])  # target 0: the NaN is the argmax
    logits[2, :3] = torch.tensor([5.0, nan, 1.0])  # target 0: finite max before the NaN
    logits[3, :3] = torch.tensor([5.0, nan, 1.0])  # target 1
    logits[4, :3] = torch.tensor([1.0, nan, nan])  # target 2: only the first NaN is the argmax
    logits[5, 1] = 50.0
    logits[5, c - 2] = nan  # target 1: the max of the first chunk, then a NaN
    logits[6, 1] = 50.0
    logits[6, c - 2] = nan  # target c - 2
    target = torch.tensor([1, 0, 0, 1, 2, 1, c - 2, 0], device=device)
    return logits, target


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_nan_rows_match_argmax_and_reference(device, backend):
    """A NaN logit makes its row's loss and gradient NaN, and `correct` follows torch.argmax
    (a NaN is the maximum) on every backend: a NaN-dropping max would call row 0 right."""
    c = 4100
    logits, target = nan_rows(c, device)
    expected = logits.argmax(1) == target
    assert expected.tolist() == [False, True, False, True, False, False, True, expected[7]]
    x = logits.clone().requires_grad_()
    loss, correct = lsce(x, target, 0.1, reduction="none", return_correct=True, backend=backend)
    assert correct.tolist() == expected.tolist()
    assert torch.isnan(loss[:7]).all() and torch.isfinite(loss[7])
    loss.backward(torch.ones_like(loss))
    assert torch.isnan(x.grad[:7]).all()
    x64 = logits[7:].double().requires_grad_()
    want = pytorch_oracle(x64, target[7:], 0.1, None, -100, "none")
    assert_close(loss[7:], want, torch.float32)
    want.sum().backward()
    assert_close(x.grad[7:], x64.grad, torch.float32)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_class_dim_at_one_and_unbatched(device, backend):
    logits = torch.randn(3, 7, 4, 5, device=device, dtype=torch.float64)
    target = torch.randint(0, 7, (3, 4, 5), device=device)
    target[0, 0, 0] = -100
    weight = torch.rand(7, device=device, dtype=torch.float64) + 0.5
    for reduction in REDUCTIONS:
        got = lsce(logits, target, 0.2, weight=weight, reduction=reduction, backend=backend)
        expected = F.cross_entropy(
            logits, target, weight=weight, reduction=reduction, label_smoothing=0.2
        )
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected)
    one = torch.randn(7, device=device, dtype=torch.float64)
    label = torch.tensor(3, device=device)
    torch.testing.assert_close(
        lsce(one, label, 0.1, backend=backend), F.cross_entropy(one, label, label_smoothing=0.1)
    )
    _, correct = lsce(logits, target, return_correct=True, backend=backend)
    assert correct.shape == target.shape


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_grad_output_scaling(device, backend):
    logits, target = make_inputs(6, 5, device, torch.float64)
    for reduction in ("mean", "sum"):
        x = logits.detach().clone().requires_grad_()
        lsce(x, target, 0.1, reduction=reduction, backend=backend).backward(
            torch.tensor(3.0, dtype=torch.float64, device=device)
        )
        y = logits.detach().clone().requires_grad_()
        (3.0 * F.cross_entropy(y, target, reduction=reduction, label_smoothing=0.1)).backward()
        torch.testing.assert_close(x.grad, y.grad)


# --- autograd and torch.library machinery ---------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_gradcheck_float64(device, backend, weighted):
    logits, target = make_inputs(5, 7, device, torch.float64, ignore_fraction=0.3)
    weight = torch.rand(7, dtype=torch.float64, device=device) + 0.5 if weighted else None
    for reduction, convention in itertools.product(REDUCTIONS, ["uniform", "others", "lsr"]):
        x = logits.detach().clone().requires_grad_()
        kwargs = dict(weight=weight, reduction=reduction, convention=convention, backend=backend)
        torch.autograd.gradcheck(lambda x, kw=kwargs: lsce(x, target, 0.15, **kw), (x,))


@pytest.mark.parametrize("device,backend", compiled_backend_params(OP))
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_opcheck(device, backend, weighted):
    forward, _ = op_pair(_library.LSCE_FORWARD, _library.LSCE_BACKWARD, backend)
    for dtype in opcheck_dtypes(backend, device):
        logits, target = make_inputs(6, 11, device, dtype, ignore_fraction=0.3)
        weight = random_class_weight(11, device, dtype) if weighted else None
        logits.requires_grad_(dtype != torch.bfloat16)
        on, off = smoothing_weights("uniform", 0.1, 11)
        torch.library.opcheck(_library.op(forward), (logits, target, weight, on, off, -100))


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_compile_fullgraph_forward_backward(device, backend):
    torch._dynamo.reset()

    def step(x, t, smoothing):
        loss, correct = lsce(x, t, smoothing, return_correct=True, backend=backend)
        return loss, correct.sum()

    compiled = torch.compile(step, fullgraph=True, dynamic=False)
    logits, target = make_inputs(8, 17, device, torch.float32, ignore_fraction=0.2)
    x = logits.detach().clone().requires_grad_()
    loss, n_correct = compiled(x, target, 0.1)
    loss.backward()
    y = logits.detach().clone().requires_grad_()
    expected = F.cross_entropy(y, target, label_smoothing=0.1)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(x.grad, y.grad)
    assert int(n_correct) == int((logits.argmax(1) == target).sum())


def _compile_frames(fn, logits, target, smoothings):
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(fn, backend=counter, fullgraph=True)
    for smoothing in smoothings:
        got = compiled(logits, target, smoothing)
        torch.testing.assert_close(got, F.cross_entropy(logits, target, label_smoothing=smoothing))
    return counter.frame_count


@pytest.mark.parametrize("device,backend", compiled_backend_params(OP))
def test_smoothing_schedule_under_compile_recompiles_no_more_than_pytorch(device, backend):
    """Dynamo specialises Python floats passed to any operator (F.cross_entropy included);
    our op must not add recompiles of its own on top of that."""
    logits, target = make_inputs(8, 17, device, torch.float32)
    smoothings = (0.05, 0.1, 0.2)
    ours = _compile_frames(
        lambda x, t, s: lsce(x, t, s, backend=backend), logits, target, smoothings
    )
    theirs = _compile_frames(
        lambda x, t, s: F.cross_entropy(x, t, label_smoothing=s), logits, target, smoothings
    )
    assert ours <= theirs


def test_triton_smoothing_is_a_runtime_kernel_argument():
    """A smoothing schedule must never recompile a kernel: on/off are not constexpr."""
    if "triton" not in cookbook_ops.available_backends(op=OP):
        pytest.skip("triton backend not available")
    from cookbook_ops.triton import cross_entropy as kernels

    for kernel in (kernels._lsce_forward_kernel, kernels._lsce_backward_kernel):
        params = inspect.signature(kernel.fn).parameters
        smoothing_args = [n for n in params if n.startswith(("on", "off", "delta"))]
        assert smoothing_args, list(params)
        for name in smoothing_args:
            assert "constexpr" not in str(params[name].annotation), name


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_returns_float32_like_pytorch(device):
    logits, target = make_inputs(8, 10, device, torch.bfloat16)
    weight_in = torch.randn(10, 10, device=device)
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        h = logits.float() @ weight_in
        ours = lsce(h, target, 0.1)
        theirs = F.cross_entropy(h, target, label_smoothing=0.1)
    assert ours.dtype == theirs.dtype
    assert_close(ours, theirs, torch.bfloat16)


# --- modules --------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_module_is_drop_in_for_cross_entropy_loss(device):
    weight = torch.rand(6) + 0.5
    ours = LabelSmoothingCrossEntropy(weight=weight, ignore_index=2, label_smoothing=0.3).to(device)
    theirs = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=2, label_smoothing=0.3).to(
        device
    )
    assert "weight" in ours.state_dict()
    logits, target = make_inputs(20, 6, device, torch.float64)
    torch.testing.assert_close(ours.double()(logits, target), theirs.double()(logits, target))


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_bad_inputs_raise_clear_errors(device, backend):
    logits, target = make_inputs(4, 5, device, torch.float32)
    bad = target.clone()
    bad[2] = 5
    if device == "cpu":
        with pytest.raises(IndexError, match="target"):
            lsce(logits, bad, backend=backend)
        bad[2] = -1
        with pytest.raises(IndexError, match="target"):
            lsce(logits, bad, backend=backend)
    with pytest.raises(TypeError, match="target"):
        lsce(logits, target.float(), backend=backend)
    with pytest.raises(TypeError, match="target"):
        lsce(logits, target.int(), backend=backend)
    with pytest.raises(ValueError, match="target"):
        lsce(logits, target[:3], backend=backend)
    with pytest.raises(ValueError, match="smoothing"):
        lsce(logits, target, 1.5, backend=backend)
    with pytest.raises(ValueError, match="smoothing"):
        lsce(logits, target, -0.1, backend=backend)
    with pytest.raises(ValueError, match="convention"):
        lsce(
            logits[:, :1],
            torch.zeros(4, dtype=torch.long, device=device),
            0.1,
            convention="others",
            backend=backend,
        )
    with pytest.raises(ValueError, match="reduction"):
        lsce(logits, target, reduction="avg", backend=backend)
    with pytest.raises(ValueError, match="convention"):
        lsce(logits, target, convention="timm", backend=backend)
    with pytest.raises(ValueError, match="weight"):
        lsce(logits, target, weight=torch.ones(4, device=device), backend=backend)
    with pytest.raises(TypeError, match="logits"):
        lsce(logits.long(), target, backend=backend)
    with pytest.raises(ValueError, match="backend"):
        lsce(logits, target, backend="fastest")


def test_device_mismatch_and_unavailable_backend():
    logits, target = make_inputs(4, 5, "cpu", torch.float32)
    with pytest.raises(RuntimeError, match="backend='cuda'"):
        lsce(logits, target, backend="cuda")
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="target"):
            lsce(logits.cuda(), target, backend="auto")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_out_of_range_target_on_gpu_is_nan_not_a_crash(backend):
    require_gpu_backend(OP, backend)
    logits, target = make_inputs(4, 5, "cuda", torch.float32)
    target[1] = 7
    target[2] = -3
    loss = lsce(logits, target, 0.1, reduction="none", backend=backend)
    torch.cuda.synchronize()
    assert torch.isnan(loss[1]) and torch.isnan(loss[2])
    assert torch.isfinite(loss[0]) and torch.isfinite(loss[3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_int64_offsets_on_gpu(backend):
    """N*C above 2^31 elements: 32-bit offsets would wrap and read the wrong rows."""
    require_gpu_backend(OP, backend, min_memory_gib=24)
    n, c = 16800, 128256  # 2.15e9 elements of bf16: 4.3 GB
    logits = torch.empty(n, c, device="cuda", dtype=torch.bfloat16).normal_()
    target = torch.randint(0, c, (n,), device="cuda")
    rows = torch.tensor([0, n // 2, n - 1], device="cuda")
    got = lsce(logits, target, 0.1, reduction="none", backend=backend)[rows]
    expected = F.cross_entropy(
        logits[rows].float(), target[rows], label_smoothing=0.1, reduction="none"
    )
    assert_close(got, expected, torch.bfloat16)
    x = logits.requires_grad_()
    lsce(x, target, 0.1, reduction="sum", backend=backend).backward()
    y = logits[rows].detach().float().requires_grad_()
    F.cross_entropy(y, target[rows], label_smoothing=0.1, reduction="sum").backward()
    assert_close(x.grad[rows], y.grad, torch.bfloat16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_more_than_2_31_rows_on_gpu(backend):
    """(2**31 + 5, 2) bf16 logits: 64 rows share a program, and an int32 row index past 2**31
    would wrap negative, pass `rows < n` and read and write before the tensors. Forward and
    backward kernels, checked at both ends of the batch against F.cross_entropy."""
    require_gpu_backend(OP, backend, min_memory_gib=80)
    forward, backward = op_pair(OP, _library.LSCE_BACKWARD, backend)
    n, c = 2**31 + 5, 2
    logits = torch.randn(n, c, device="cuda", dtype=torch.bfloat16)
    target = torch.randint(0, c, (n,), device="cuda")
    rows = torch.tensor([0, 1, n // 2, 2**31 - 1, 2**31, n - 2, n - 1], device="cuda")
    on, off = smoothing_weights("uniform", 0.1, c)
    loss, lse, correct = _library.op(forward)(logits, target, None, on, off, -100)
    x = logits[rows].double().requires_grad_()
    want = F.cross_entropy(x, target[rows], label_smoothing=0.1, reduction="none")
    assert_close(loss[rows], want, torch.bfloat16)
    assert torch.equal(correct[rows], logits[rows].argmax(1) == target[rows])
    del loss, correct
    grad_loss = torch.ones(n, device="cuda")
    grad = _library.op(backward)(grad_loss, logits, target, None, lse, on, off, -100)
    want.sum().backward()
    assert_close(grad[rows], x.grad, torch.bfloat16)
