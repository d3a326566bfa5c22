"""Cross-entropy with probability targets, and masked (-inf) logits, on every backend.

Oracle: F.cross_entropy on float64 copies of the inputs (probability targets: its
label_smoothing, class weights and reductions), and for the mixup loss
lam * F.cross_entropy(x, a) + (1 - lam) * F.cross_entropy(x, b). Masked logits are compared
value for value, NaN and +inf included, loss and gradient.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DTYPES,
    backend_params,
    compiled_backend_params,
    op_pair,
    opcheck_dtypes,
    opmath,
)
from conftest import assert_close_dtype as assert_close

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.nn import LabelSmoothingCrossEntropy, MixedTarget
from cookbook_ops.reference import smoothing_weights

lsce = cookbook_ops.label_smoothing_cross_entropy
OP = _library.SOFT_CE_FORWARD
INDEX_OP = _library.LSCE_FORWARD
MIXUP_OP = _library.MIXUP_CE_FORWARD
INF = float("inf")
REDUCTIONS = ["none", "mean", "sum"]


def make_soft(n, c, dtype, scale=3.0, seed=0, sharp=1.0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).to(dtype)
    target = torch.softmax(torch.randn(n, c, generator=g, dtype=torch.float64) * sharp, 1)
    return logits, target.to(dtype)


def oracle(logits, target, smoothing=0.0, weight=None, reduction="mean", **kw):
    """F.cross_entropy in float64 on the same values, with its gradient in the logits."""
    x = logits.detach().double().requires_grad_()
    t = target.double() if target.is_floating_point() else target
    w = None if weight is None else weight.double()
    loss = F.cross_entropy(x, t, weight=w, reduction=reduction, label_smoothing=smoothing, **kw)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def ours(logits, target, smoothing=0.0, **kw):
    x = logits.detach().clone().requires_grad_()
    loss = lsce(x, target, smoothing, **kw)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def assert_same_nonfinite(actual, expected):
    """NaN where PyTorch has NaN, +-inf where it has +-inf (same sign)."""
    assert torch.equal(actual.isnan(), expected.isnan()), (actual, expected)
    assert torch.equal(actual.isposinf(), expected.isposinf()), (actual, expected)
    assert torch.equal(actual.isneginf(), expected.isneginf()), (actual, expected)


# --- probability targets ------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_parity_with_pytorch(device, backend, dtype, weighted, smoothing):
    logits, target = make_soft(7, 37, dtype)
    weight = (torch.rand(37, dtype=torch.float64) + 0.5) if weighted else None
    w = None if weight is None else weight.to(opmath(dtype))
    for reduction in REDUCTIONS:
        expected, expected_grad = oracle(logits, target, smoothing, weight, reduction)
        got, grad = ours(logits, target, smoothing, weight=w, reduction=reduction, backend=backend)
        assert got.dtype == dtype and grad.dtype == dtype
        assert_close(got, expected, dtype, scale=4.0)
        assert_close(grad, expected_grad, dtype)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("n,c", [(0, 5), (1, 1), (3, 3), (5, 16), (4, 1000)])
def test_sizes(device, backend, n, c):
    logits, target = make_soft(n, c, torch.float32)
    for reduction in REDUCTIONS:
        expected, expected_grad = oracle(logits, target, 0.1, reduction=reduction)
        got, grad = ours(logits, target, 0.1, reduction=reduction, backend=backend)
        assert_close(got, expected, torch.float32, scale=4.0)
        assert_close(grad, expected_grad, torch.float32)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_confident_and_sharp_targets_and_large_offsets(device, backend):
    # p_y near 1 with near one-hot targets, and a large common offset that a naive S lse -
    # sum a x would cancel away in float32
    logits, target = make_soft(6, 50, torch.float64, scale=20.0, sharp=30.0)
    logits, target = logits.float(), target.float()
    expected, expected_grad = oracle(logits, target, 0.05)
    got, grad = ours(logits, target, 0.05, backend=backend)
    assert_close(got, expected, torch.float32, scale=4.0)
    assert_close(grad, expected_grad, torch.float32)
    # the loss only: an fp32 lse near 3000 is itself 2e-4 coarse, and so are the probabilities
    # recomputed from it (as with the index-target kernels)
    offset = logits + 3000.0
    got = lsce(offset, target, 0.05, reduction="none", backend=backend)
    expected = F.cross_entropy(
        offset.double(), target.double(), label_smoothing=0.05, reduction="none"
    )
    torch.testing.assert_close(got.double(), expected, atol=2e-3, rtol=1e-5)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("convention", ["uniform", "others", "lsr"])
def test_one_hot_targets_equal_the_index_form_for_every_convention(device, backend, convention):
    logits, _ = make_soft(6, 9, torch.float64)
    index = torch.randint(0, 9, (6,))
    one_hot = F.one_hot(index, 9).double()
    weight = torch.rand(9, dtype=torch.float64) + 0.5
    for w in (None, weight):
        kw = dict(weight=w, convention=convention, reduction="none", backend=backend)
        got, grad = ours(logits, one_hot, 0.2, **kw)
        expected, expected_grad = ours(logits, index, 0.2, **kw)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_return_correct_compares_with_the_target_argmax(device, backend):
    logits, target = make_soft(40, 6, torch.float32)
    target[0] = 0.0  # ties: both argmaxes take the first maximum
    logits[0] = 1.0
    target[1, 4] = float("nan")  # NaN is the largest value, as torch.argmax
    logits[1, 4] = float("nan")
    _, correct = lsce(logits, target, 0.1, return_correct=True, backend=backend)
    assert correct.dtype == torch.bool and correct.shape == (40,)
    assert torch.equal(correct, logits.argmax(1) == target.argmax(1))
    assert bool(correct[0]) and bool(correct[1])


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_class_dim_at_one_unbatched_and_non_contiguous(device, backend):
    x = torch.randn(3, 5, 4, 2, dtype=torch.float64)
    q = torch.softmax(torch.randn(3, 5, 4, 2, dtype=torch.float64), 1)
    for reduction in REDUCTIONS:
        got, grad = ours(x, q, 0.1, reduction=reduction, backend=backend)
        expected, expected_grad = oracle(x, q, 0.1, reduction=reduction)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(grad, expected_grad)
    got, grad = ours(x[0, :, 0, 0], q[0, :, 0, 0], 0.1, backend=backend)
    expected, expected_grad = oracle(x[0, :, 0, 0], q[0, :, 0, 0], 0.1)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad, expected_grad)
    xt, qt = torch.randn(9, 6, dtype=torch.float64).t(), torch.rand(9, 6, dtype=torch.float64).t()
    got, grad = ours(xt, qt, 0.0, backend=backend)
    expected, expected_grad = oracle(xt, qt)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_grad_output_scaling_and_target_dtype(device, backend):
    logits, target = make_soft(6, 8, torch.float32)
    x = logits.clone().requires_grad_()
    g = torch.randn(6)
    lsce(x, target.double(), 0.1, reduction="none", backend=backend).backward(g)
    y = logits.double().requires_grad_()
    F.cross_entropy(y, target.double(), label_smoothing=0.1, reduction="none").backward(g.double())
    assert_close(x.grad, y.grad, torch.float32)


def test_target_that_requires_grad_is_differentiated():
    logits, target = make_soft(5, 7, torch.float64)
    q = target.clone().requires_grad_()
    (grad_q,) = torch.autograd.grad(lsce(logits, q, 0.1), q)
    p = target.clone().requires_grad_()
    (expected,) = torch.autograd.grad(F.cross_entropy(logits, p, label_smoothing=0.1), p)
    torch.testing.assert_close(grad_q, expected)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_gradcheck_float64(device, backend, weighted):
    logits, target = make_soft(5, 7, torch.float64)
    weight = torch.rand(7, dtype=torch.float64) + 0.5 if weighted else None
    for reduction, convention in itertools.product(REDUCTIONS, ["uniform", "others"]):
        x = logits.detach().clone().requires_grad_()
        kw = dict(weight=weight, reduction=reduction, convention=convention, backend=backend)
        torch.autograd.gradcheck(lambda x, kw=kw: lsce(x, target, 0.15, **kw), (x,))
    x = logits.detach().clone().requires_grad_()
    torch.autograd.gradgradcheck(lambda x: lsce(x, target, 0.1, backend=backend), (x,))


@pytest.mark.parametrize("device,backend", compiled_backend_params(OP))
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_opcheck(device, backend, weighted):
    forward, backward = op_pair(_library.SOFT_CE_FORWARD, _library.SOFT_CE_BACKWARD, backend)
    for dtype in opcheck_dtypes(backend, device):
        logits, target = make_soft(6, 11, dtype)
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        weight = (torch.rand(11, dtype=torch.float64) + 0.5).to(acc) if weighted else None
        logits.requires_grad_(dtype != torch.bfloat16)
        on, off = smoothing_weights("uniform", 0.1, 11)
        torch.library.opcheck(_library.op(forward), (logits, target, weight, on, off))
        _, lse, target_sum, _ = _library.op(forward)(logits.detach(), target, weight, on, off)
        grad_loss = torch.randn(6, dtype=acc)
        args = (grad_loss, logits.detach(), target, weight, lse, target_sum, on, off)
        torch.library.opcheck(_library.op(backward), args)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_compile_fullgraph_forward_backward(device, backend):
    torch._dynamo.reset()

    def step(x, q):
        loss, correct = lsce(x, q, 0.1, return_correct=True, backend=backend)
        return loss, correct.sum()

    compiled = torch.compile(step, fullgraph=True, dynamic=False)
    logits, target = make_soft(8, 17, torch.float32)
    x = logits.clone().requires_grad_()
    loss, n_correct = compiled(x, target)
    loss.backward()
    y = logits.clone().requires_grad_()
    expected = F.cross_entropy(y, target, label_smoothing=0.1)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(x.grad, y.grad)
    assert int(n_correct) == int((logits.argmax(1) == target.argmax(1)).sum())


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_bad_inputs_name_the_argument(device, backend):
    logits, target = make_soft(4, 5, torch.float32)
    with pytest.raises(ValueError, match="target"):
        lsce(logits, target[:, :4], backend=backend)
    with pytest.raises(ValueError, match="target"):
        lsce(logits, target.reshape(2, 2, 5), backend=backend)
    with pytest.raises(TypeError, match="target"):
        lsce(logits, target.argmax(1).int(), backend=backend)
    with pytest.raises(TypeError, match="target"):
        lsce(logits, target[:, 0], backend=backend)  # floating, shaped like class indices
    with pytest.raises(ValueError, match="target is on meta"):
        lsce(logits, target.to("meta"), backend=backend)
    with pytest.raises(ValueError, match="weight"):
        lsce(logits, target, weight=torch.ones(4), backend=backend)


def test_ops_check_their_arguments():
    logits, target = make_soft(4, 5, torch.float32)
    for backend in cookbook_ops.available_backends("cpu", OP):
        if backend == "reference":
            continue
        forward, _ = op_pair(_library.SOFT_CE_FORWARD, _library.SOFT_CE_BACKWARD, backend)
        with pytest.raises((RuntimeError, ValueError), match="target"):
            _library.op(forward)(logits, target[:, :4], None, 1.0, 0.0)
        with pytest.raises((RuntimeError, TypeError), match="target"):
            _library.op(forward)(logits, target.double(), None, 1.0, 0.0)


def test_module_and_mixed_target_dense_match_soft_target_cross_entropy():
    """MixedTarget.dense() through the module equals timm's SoftTargetCrossEntropy, i.e.
    -sum(target * log_softmax(x), -1).mean() (written out when timm is not installed)."""
    try:
        from timm.loss import SoftTargetCrossEntropy

        soft_target_ce = SoftTargetCrossEntropy()
    except ImportError:

        def soft_target_ce(x, target):
            return torch.sum(-target * F.log_softmax(x, dim=-1), dim=-1).mean()

    logits = torch.randn(12, 10, dtype=torch.float64)
    mixed = MixedTarget(torch.randint(0, 10, (12,)), torch.randint(0, 10, (12,)), torch.rand(12))
    dense = mixed.dense(num_classes=10, smoothing=0.1, dtype=torch.float64)
    criterion = LabelSmoothingCrossEntropy()
    for backend in cookbook_ops.available_backends("cpu", OP):
        criterion.backend = backend
        x = logits.clone().requires_grad_()
        got = criterion(x, dense)
        got.backward()
        y = logits.clone().requires_grad_()
        expected = soft_target_ce(y, dense)
        expected.backward()
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(x.grad, y.grad)


# --- masked (-inf) logits -----------------------------------------------------------------


def masked_logits(dtype, n=8, c=9, seed=0):
    """Rows: masked class 3 everywhere, plus an all -inf row (5), a NaN (6), a +inf (7)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64)
    x[:, 3] = -INF
    x[1, 0] = -INF  # masked column 0: the sums' reference point
    x[5] = -INF
    x[6, 2] = float("nan")
    x[7, 4] = INF
    return x.to(dtype)


def check_against_pytorch(got, grad, expected, expected_grad, dtype):
    assert_same_nonfinite(got.double(), expected)
    assert_same_nonfinite(grad.double(), expected_grad)
    assert_close(got, expected, dtype, scale=4.0)
    assert_close(grad, expected_grad, dtype)


@pytest.mark.parametrize("device,backend", backend_params(INDEX_OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_masked_logits_index_targets(device, backend, dtype, smoothing, weighted):
    x = masked_logits(dtype)
    target = torch.tensor([0, 1, 2, 4, 8, 0, 1, 2])
    target_on_masked = torch.tensor([3, 3, 2, 4, 8, 0, 1, 2])  # loss +inf where targeted
    weight = torch.rand(9, dtype=torch.float64) + 0.5 if weighted else None
    w = None if weight is None else weight.to(opmath(dtype))
    for t in (target, target_on_masked):
        expected, expected_grad = oracle(x, t, smoothing, weight, reduction="none")
        got, grad = ours(x, t, smoothing, weight=w, reduction="none", backend=backend)
        check_against_pytorch(got, grad, expected, expected_grad, dtype)
    # the example: finite where PyTorch is finite
    torch.manual_seed(0)
    x = torch.randn(6, 9)
    x[:, 3] = -INF
    t = torch.randint(0, 3, (6,))
    got = lsce(x.to(dtype), t, backend=backend)
    assert_close(got, F.cross_entropy(x.double(), t), dtype)
    assert abs(float(F.cross_entropy(x, t)) - 2.1554) < 1e-4


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
def test_masked_logits_probability_targets(device, backend, dtype, smoothing, weighted):
    """PyTorch's -sum q log p: NaN for a zero target on a -inf class (0 * -inf), +inf for a
    positive one (and for every -inf class once smoothing > 0); the gradient stays finite."""
    x = masked_logits(dtype)
    q = torch.softmax(torch.randn(8, 9, dtype=torch.float64), 1)
    q[:, 3] = 0.0
    q[0, 3] = 0.25  # positive target on the masked class: +inf
    q[1, 0] = 0.0
    q[2] = F.one_hot(torch.tensor(5), 9).double()
    weight = torch.rand(9, dtype=torch.float64) + 0.5 if weighted else None
    w = None if weight is None else weight.to(opmath(dtype))
    q = q.to(dtype)
    expected, expected_grad = oracle(x, q, smoothing, weight, reduction="none")
    got, grad = ours(x, q, smoothing, weight=w, reduction="none", backend=backend)
    check_against_pytorch(got, grad, expected, expected_grad, dtype)
    assert expected_grad[:5].isfinite().all()  # the masked rows' gradients are finite


@pytest.mark.parametrize("device,backend", backend_params(INDEX_OP))
def test_plus_inf_logit_gives_nan_as_pytorch(device, backend):
    x = torch.randn(3, 6, dtype=torch.float64)
    x[0, 2] = INF
    t = torch.tensor([2, 1, 0])
    for smoothing in (0.0, 0.1):
        expected, expected_grad = oracle(x, t, smoothing, reduction="none")
        got, grad = ours(x, t, smoothing, reduction="none", backend=backend)
        assert bool(got[0].isnan()) and bool(grad[0].isnan().all())
        check_against_pytorch(got, grad, expected, expected_grad, torch.float64)


@pytest.mark.parametrize("device,backend", backend_params(MIXUP_OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixup_loss_with_masked_logits(device, backend, dtype, smoothing):
    torch.manual_seed(1)
    x = torch.randn(8, 9, dtype=torch.float64)
    x[:, 3] = -INF
    x[:, 7] = -INF
    x = x.to(dtype)
    a = torch.tensor([0, 1, 2, 4, 5, 6, 8, 0])
    b = torch.tensor([8, 6, 5, 4, 2, 1, 0, 2])
    b_on_masked = torch.tensor([8, 6, 5, 3, 2, 1, 0, 7])
    for target_b, lam in itertools.product((b, b_on_masked), (0.3, torch.rand(8))):
        xd = x.double().requires_grad_()
        ce = dict(reduction="none", label_smoothing=smoothing)
        lam_d = lam.double() if torch.is_tensor(lam) else lam
        expected = lam_d * F.cross_entropy(xd, a, **ce) + (1 - lam_d) * F.cross_entropy(
            xd, target_b, **ce
        )
        (expected_grad,) = torch.autograd.grad(expected.sum(), xd)
        xo = x.clone().requires_grad_()
        got = cookbook_ops.mixup_cross_entropy(
            xo, a, target_b, lam, smoothing, reduction="none", backend=backend
        )
        (grad,) = torch.autograd.grad(got.sum(), xo)
        check_against_pytorch(got.detach(), grad, expected.detach(), expected_grad, dtype)
