"""The autograd contract and the edges: every differentiable input gets an exact gradient (to
second order) or a clear error, on every backend, and value checks hold under torch.compile."""

import os

import pytest
import torch
import torch.nn.functional as F
from conftest import backend_params, interpreted

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.reference import mixup as reference_mixup

LSCE = _library.LSCE_FORWARD
MIXUP_CE = _library.MIXUP_CE_FORWARD
MIXUP = _library.MIXUP_FORWARD
CUTMIX = _library.CUTMIX_FORWARD
BILINEAR = _library.BILINEAR_FORWARD


def f64(*shape, requires_grad=True):
    return torch.randn(*shape, dtype=torch.float64).requires_grad_(requires_grad)


# --- 1. class weights that require grad --------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(LSCE))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_weight_requiring_grad_is_refused(device, backend, reduction):
    logits = torch.randn(4, 3, device=device, requires_grad=True)
    target = torch.tensor([0, 1, 2, 1], device=device)
    weight = torch.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="weight requires grad"):
        cookbook_ops.label_smoothing_cross_entropy(
            logits, target, 0.1, weight=weight, reduction=reduction, backend=backend
        )
    with pytest.raises(RuntimeError, match="weight requires grad"):
        cookbook_ops.mixup_cross_entropy(
            logits,
            target,
            target.flip(0),
            0.3,
            0.1,
            weight=weight,
            reduction=reduction,
            backend=backend,
        )
    # Constant weights (detached, or under no_grad) are fine, as in F.cross_entropy.
    loss = cookbook_ops.label_smoothing_cross_entropy(
        logits, target, 0.1, weight=weight.detach(), reduction=reduction, backend=backend
    )
    expected = F.cross_entropy(
        logits, target, weight=weight.detach(), reduction=reduction, label_smoothing=0.1
    )
    torch.testing.assert_close(loss, expected)
    with torch.no_grad():
        cookbook_ops.label_smoothing_cross_entropy(logits, target, 0.1, weight=weight)


# --- 2. lam that requires grad -------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
@pytest.mark.parametrize("per_sample", [False, True], ids=["lam0d", "lam_per_sample"])
def test_mixup_lam_gradient_is_exact(device, backend, per_sample):
    x = f64(4, 3, 2).to(device)
    index = torch.tensor([2, 0, 3, 1], device=device)
    lam = (torch.tensor([0.2, 0.7, 0.5, 0.9]) if per_sample else torch.tensor(0.3)).to(
        device, torch.float64
    )
    lam.requires_grad_()
    grad_out = torch.randn(4, 3, 2, dtype=torch.float64, device=device)
    out = cookbook_ops.mixup(x, lam, index, backend=backend)
    gx, glam = torch.autograd.grad(out, (x, lam), grad_out)
    lam_b = lam.detach().reshape(-1, 1, 1) if per_sample else lam.detach()
    x0 = x.detach()
    expected_glam = ((x0 - x0[index]) * grad_out).reshape(4, -1).sum(1)
    if not per_sample:
        expected_glam = expected_glam.sum()
    torch.testing.assert_close(glam, expected_glam)
    expected_gx = (lam_b * grad_out).index_add(0, index, (1 - lam_b) * grad_out)
    torch.testing.assert_close(gx, expected_gx)
    assert torch.autograd.gradcheck(
        lambda x, lam: cookbook_ops.mixup(x, lam, index, backend=backend), (x, lam)
    )


@pytest.mark.parametrize("device,backend", backend_params(MIXUP_CE))
def test_mixup_cross_entropy_lam_gradient_is_exact(device, backend):
    logits = f64(5, 4).to(device)
    a = torch.tensor([0, 1, 2, 3, 0], device=device)
    b = torch.tensor([3, 2, 1, 0, 1], device=device)
    lam = torch.rand(5, dtype=torch.float64, device=device).requires_grad_()
    loss = cookbook_ops.mixup_cross_entropy(
        logits, a, b, lam, 0.1, reduction="sum", backend=backend
    )
    (glam,) = torch.autograd.grad(loss, lam)
    ce_a = F.cross_entropy(logits.detach(), a, reduction="none", label_smoothing=0.1)
    ce_b = F.cross_entropy(logits.detach(), b, reduction="none", label_smoothing=0.1)
    torch.testing.assert_close(glam, ce_a - ce_b)


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
def test_mixup_pairs_refuses_lam_requiring_grad(device, backend):
    x = torch.randn(4, 3, device=device)
    lam = torch.tensor(0.3, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable"):
        cookbook_ops.mixup_pairs_(
            x, lam, torch.tensor([1, 0, 3, 2], device=device), backend=backend
        )


# --- 3. double backward ---------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
def test_mixup_double_backward(device, backend):
    x = f64(4, 3).to(device)
    lam = torch.tensor([0.2, 0.7, 0.5, 0.9], dtype=torch.float64, device=device)
    lam.requires_grad_()
    index = torch.tensor([2, 0, 3, 1], device=device)
    assert torch.autograd.gradgradcheck(
        lambda x, lam: cookbook_ops.mixup(x, lam, index, backend=backend), (x, lam)
    )
    # The Hessian-vector product of the issue: never a silent 0.
    out = cookbook_ops.mixup(x, 0.3, index, backend=backend)
    (g,) = torch.autograd.grad((out**2).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    ref = reference_mixup.mixup_forward(x, torch.full((4,), 0.3, dtype=torch.float64), index)
    (g_ref,) = torch.autograd.grad((ref**2).sum(), x, create_graph=True)
    (h_ref,) = torch.autograd.grad(g_ref.sum(), x)
    assert h_ref.abs().sum() > 0
    torch.testing.assert_close(h, h_ref)


@pytest.mark.parametrize("device,backend", backend_params(CUTMIX))
def test_cutmix_double_backward(device, backend):
    x = f64(3, 2, 4, 5).to(device)
    boxes = torch.tensor([[0, 1, 3, 4], [1, 0, 4, 5], [2, 2, 2, 3]], device=device)
    index = torch.tensor([1, 2, 0], device=device)
    assert torch.autograd.gradgradcheck(
        lambda x: cookbook_ops.cutmix(x, boxes, index, backend=backend)[0], (x,)
    )


@pytest.mark.parametrize("device,backend", backend_params(BILINEAR))
@pytest.mark.parametrize("two_stream", [False, True], ids=["one_stream", "two_streams"])
def test_bilinear_pool_double_backward(device, backend, two_stream):
    x = f64(2, 3, 4).to(device)
    inputs = (x, f64(2, 2, 4).to(device)) if two_stream else (x,)
    assert torch.autograd.gradgradcheck(
        lambda *t: cookbook_ops.bilinear_pool(*t, backend=backend), inputs
    )


@pytest.mark.parametrize("device,backend", backend_params(LSCE))
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_label_smoothing_cross_entropy_double_backward(device, backend, reduction):
    logits = f64(4, 5).to(device)
    target = torch.tensor([0, 4, -100, 2], device=device)
    weight = torch.rand(5, dtype=torch.float64, device=device) + 0.5
    assert torch.autograd.gradgradcheck(
        lambda x: cookbook_ops.label_smoothing_cross_entropy(
            x, target, 0.2, weight=weight, reduction=reduction, backend=backend
        ),
        (logits,),
    )


@pytest.mark.parametrize("device,backend", backend_params(MIXUP_CE))
def test_mixup_cross_entropy_double_backward(device, backend):
    logits = f64(4, 5).to(device)
    a = torch.tensor([0, 4, 1, 2], device=device)
    b = torch.tensor([3, 3, -100, 0], device=device)
    lam = torch.rand(4, dtype=torch.float64, device=device).requires_grad_()
    assert torch.autograd.gradgradcheck(
        lambda x, lam: cookbook_ops.mixup_cross_entropy(x, a, b, lam, 0.1, backend=backend),
        (logits, lam),
    )


# --- 4. value checks under torch.compile ----------------------------------------------------


def test_cutmix_lam_is_computed_from_the_clipped_box():
    boxes = torch.tensor([[0, 0, 9, 9], [-3, 1, 2, 9], [3, 3, 1, 1]])
    lam = reference_mixup.cutmix_lam(boxes, 4, 4)
    torch.testing.assert_close(lam, torch.tensor([0.0, 1 - 6 / 16, 1.0]))


def _compiled(fn):
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_value_checks_hold_under_compile(backend):
    if backend not in cookbook_ops.available_backends("cpu", MIXUP):
        pytest.skip(f"{backend} not available")
    x = torch.randn(2, 1, 4, 4)
    good = torch.tensor([[0, 0, 2, 2], [1, 1, 4, 3]])
    index = torch.tensor([1, 0])
    cutmix = _compiled(lambda x, b, i: cookbook_ops.cutmix(x, b, i, backend=backend))
    out, lam = cutmix(x, good, index)
    eager_out, eager_lam = cookbook_ops.cutmix(x, good, index, backend=backend)
    torch.testing.assert_close(out, eager_out)
    torch.testing.assert_close(lam, eager_lam)
    with pytest.raises(RuntimeError, match="boxes must lie inside the 4x4 image"):
        cutmix(x, torch.tensor([[0, 0, 9, 9], [0, 0, 2, 2]]), index)
    with pytest.raises(RuntimeError, match="index must be a permutation"):
        cutmix(x, good, torch.tensor([1, 1]))
    mixup = _compiled(lambda x, lam, i: cookbook_ops.mixup(x, lam, i, backend=backend))
    torch.testing.assert_close(
        mixup(x, torch.tensor([0.25, 1.0]), index),
        cookbook_ops.mixup(x, torch.tensor([0.25, 1.0]), index, backend=backend),
    )
    with pytest.raises(RuntimeError, match=r"lam must be in \[0, 1\]"):
        mixup(x, torch.tensor([0.25, 1.5]), index)
    with pytest.raises(RuntimeError, match="index must be a permutation"):
        mixup(x, torch.tensor([0.25, 0.5]), torch.tensor([0, 0]))


def test_pairs_and_loss_checks_hold_under_compile():
    x = torch.randn(3, 2)

    def pairs(x, lam, p):
        return cookbook_ops.mixup_pairs_(x.clone(), lam, p)

    compiled = _compiled(pairs)
    torch.testing.assert_close(
        compiled(x, torch.tensor(0.3), torch.tensor([1, 0, 2])),
        pairs(x, torch.tensor(0.3), torch.tensor([1, 0, 2])),
    )
    with pytest.raises(RuntimeError, match="pairs must be an involution"):
        compiled(x, torch.tensor(0.3), torch.tensor([1, 2, 0]))

    logits = torch.randn(3, 4)
    a, b = torch.tensor([0, 1, 2]), torch.tensor([3, 2, 1])
    loss = _compiled(lambda x, a, b, lam: cookbook_ops.mixup_cross_entropy(x, a, b, lam, 0.1))
    torch.testing.assert_close(
        loss(logits, a, b, torch.tensor([0.1, 0.5, 1.0])),
        cookbook_ops.mixup_cross_entropy(logits, a, b, torch.tensor([0.1, 0.5, 1.0]), 0.1),
    )
    with pytest.raises(RuntimeError, match=r"lam must be in \[0, 1\]"):
        loss(logits, a, b, torch.tensor([0.1, -0.5, 1.0]))
    ref_loss = _compiled(
        lambda x, t: cookbook_ops.label_smoothing_cross_entropy(x, t, 0.1, backend="reference")
    )
    with pytest.raises(RuntimeError, match="target is out of range"):
        ref_loss(logits, torch.tensor([0, 7, 1]))


# --- 5. reference-backend gaps ---------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(BILINEAR))
def test_bilinear_pool_empty_batch(device, backend):
    for y in (None, torch.randn(0, 2, 5, device=device)):
        x = torch.randn(0, 3, 5, device=device, requires_grad=True)
        z = cookbook_ops.bilinear_pool(x, y, backend=backend)
        assert z.shape == (0, 3 * (3 if y is None else 2))
        z.sum().backward()
        assert x.grad.shape == x.shape


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
def test_mixup_pairs_leaves_the_fixed_point_exactly_unchanged(device, backend):
    x = torch.tensor([[0.1], [1.0], [float("inf")]], dtype=torch.float64, device=device)
    for lam in (0.0, 0.3):
        y = x.clone()
        cookbook_ops.mixup_pairs_(y, lam, torch.tensor([1, 0, 2], device=device), backend=backend)
        assert y[2].item() == float("inf")
    y = x.clone()
    cookbook_ops.mixup_pairs_(y, 0.3, torch.tensor([0, 2, 1], device=device), backend=backend)
    assert y[0].item() == 0.1


# --- 6. top-k accuracy with fewer classes than k ----------------------------------------------


@pytest.mark.parametrize("num_classes", [1, 2, 3, 4, 5])
def test_accuracy_k_at_least_the_class_count_counts_every_sample(num_classes):
    acc = cookbook_ops.recipe.metrics.Accuracy(topk=(1, 2, 5))
    logits = torch.randn(6, num_classes)
    target = torch.randint(0, num_classes, (6,))
    acc.update(logits, target)
    top1, top2, top5 = acc.compute()
    assert top1 == pytest.approx(100.0 * (logits.argmax(1) == target).float().mean().item())
    assert top5 == 100.0
    if num_classes <= 2:
        assert top2 == 100.0
    else:
        hits = (logits.topk(2, 1).indices == target[:, None]).any(1).float().mean().item()
        assert top2 == pytest.approx(100.0 * hits)


# --- 7. zero classes -----------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(LSCE))
@pytest.mark.parametrize("n", [0, 3])
def test_zero_classes_raise_a_clear_error(device, backend, n):
    logits = torch.randn(n, 0, device=device)
    target = torch.zeros(n, dtype=torch.int64, device=device)
    with pytest.raises(ValueError, match="logits has C = 0 classes"):
        cookbook_ops.label_smoothing_cross_entropy(logits, target, 0.1, backend=backend)
    with pytest.raises(ValueError, match="logits has C = 0 classes"):
        cookbook_ops.mixup_cross_entropy(logits, target, target, 0.5, backend=backend)


# --- 8. non-finite logits follow PyTorch ------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(LSCE))
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("value", [float("inf"), float("nan")], ids=["inf", "nan"])
def test_non_finite_logit_matches_pytorch(device, backend, smoothing, value):
    dtypes = [torch.float32] if interpreted(backend, device) else [torch.float32, torch.float64]
    for dtype in dtypes:
        # +inf / NaN on a non-target class (rows 0, 1), on the target (row 2), a finite row (3)
        logits = torch.tensor(
            [
                [value, 1.0, 2.0, 0.5],
                [0.3, 1.0, value, 0.5],
                [0.0, value, 1.0, 2.0],
                [0.1, 0.2, 0.3, 0.4],
            ],
            dtype=dtype,
            device=device,
        )
        target = torch.tensor([1, 3, 1, 2], device=device)
        x = logits.clone().requires_grad_()
        loss = cookbook_ops.label_smoothing_cross_entropy(
            x, target, smoothing, reduction="none", backend=backend
        )
        x_t = logits.clone().requires_grad_()
        expected = F.cross_entropy(x_t, target, reduction="none", label_smoothing=smoothing)
        torch.testing.assert_close(loss, expected, equal_nan=True)
        g = torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=dtype, device=device)
        (grad,) = torch.autograd.grad(loss, x, g)
        (grad_t,) = torch.autograd.grad(expected, x_t, g)
        torch.testing.assert_close(grad, grad_t, equal_nan=True)
        loss2 = cookbook_ops.mixup_cross_entropy(
            logits, target, target.roll(1), 0.5, smoothing, reduction="none", backend=backend
        )
        expected2 = 0.5 * expected.detach() + 0.5 * F.cross_entropy(
            logits, target.roll(1), reduction="none", label_smoothing=smoothing
        )
        torch.testing.assert_close(loss2, expected2, equal_nan=True)


@pytest.mark.parametrize(
    "op",
    [
        "label_smoothing_cross_entropy_forward",
        "mixup_cross_entropy_forward",
        "soft_target_cross_entropy_forward",
        "mixup_forward",
    ],
)
def test_compiled_kernels_differentiate_in_cpp(op):
    """These ops' autograd for the extension's kernels is C++ (csrc/autograd/), which costs a
    small problem a fraction of the host time of a Python autograd kernel; the Python formula
    serves their Triton twins. Both give the gradients the parity tests check."""
    from cookbook_ops import _backend, _library

    if not _backend.EXTENSION_LOADED:
        if os.environ.get("COOKBOOK_OPS_EXPECT_EXTENSION") == "1":
            pytest.fail(f"the extension did not load: {_backend._extension_error}")
        pytest.skip("the compiled extension is not loaded")
    dump = torch._C._dispatch_dump(_library.qualified(op))
    autograd = [line for line in dump.splitlines() if line.startswith("Autograd[alias]")]
    assert len(autograd) == 1 and "csrc/autograd/" in autograd[0], dump
    twin = torch._C._dispatch_dump(_library.qualified(_library.twin(op, "triton")))
    assert "Autograd[alias]" in twin and "csrc/autograd/" not in twin, twin
