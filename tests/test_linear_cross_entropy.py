"""The fused classifier head: linear layer + cross-entropy, chunk by chunk.

Oracles: ``F.cross_entropy(F.linear(...))`` (and ``F.linear_cross_entropy``, which torch 2.14
has) for the uniform convention; the reference (:mod:`cookbook_ops.reference.linear_cross_entropy`,
full logits) for the other conventions and the two-target form; float64 where the comparison
allows.
"""

import importlib

import pytest
import torch
import torch.nn.functional as F
from conftest import TOLERANCES, backend_params, interpreted

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.nn import LinearCrossEntropy, MixedTarget
from cookbook_ops.ops.linear_cross_entropy_chunks import (
    LOGITS_CHUNK_BYTES,
    MIN_CHUNK_ROWS,
    default_chunk_size,
)

lce = cookbook_ops.linear_cross_entropy
lmce = cookbook_ops.linear_mixup_cross_entropy
reference = cookbook_ops.reference
OP = _library.LSCE_FORWARD
IGNORE = -100
HAS_TORCH_LCE = hasattr(F, "linear_cross_entropy")


def make_inputs(n, k, c, dtype=torch.float32, device="cpu", ignore=True, bias=True):
    x = torch.randn(n, k, dtype=torch.float64).to(device, dtype)
    w = (torch.randn(c, k, dtype=torch.float64) / k**0.5).to(device, dtype)
    b = torch.randn(c, dtype=torch.float64).to(device, dtype) if bias else None
    t = torch.randint(0, c, (n,), device=device)
    if ignore and n > 2:
        t[1] = IGNORE
    return x, w, b, t


def leaves(*tensors):
    """Fresh leaf copies that require grad (integer tensors, the targets, pass through)."""
    return [
        t if t is None or not t.is_floating_point() else t.detach().clone().requires_grad_()
        for t in tensors
    ]


def grads_of(out, tensors, grad_output):
    wanted = [t for t in tensors if t is not None]
    got = iter(torch.autograd.grad(out, wanted, grad_output))
    return [None if t is None else next(got) for t in tensors]


def assert_grads_close(actual, expected, dtype, rel=None):
    """Each gradient within ``rel`` (default: the dtype's rtol) of its largest entry."""
    rel = TOLERANCES[dtype]["rtol"] * 2 if rel is None else rel
    for a, e in zip(actual, expected):
        assert (a is None) == (e is None)
        if a is not None:
            assert a.dtype == e.dtype and a.shape == e.shape
            scale = e.double().abs().max().clamp_min(1e-12)
            err = float((a.double() - e.double()).abs().max() / scale)
            assert err <= rel, f"gradient off by {err:.3g} of its max"


def grad_output_for(out):
    if out.dim() == 0:
        return torch.tensor(1.7, dtype=out.dtype, device=out.device)
    return torch.randn_like(out)


# --- parity with F.cross_entropy(F.linear(...)) --------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["noweight", "weight"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_matches_linear_then_cross_entropy(
    device, backend, reduction, weighted, smoothing, chunk_size
):
    if interpreted(backend, device) and chunk_size == 1:
        chunk_size = 3  # one-row chunks through the Triton interpreter take too long
    n, k, c = (19, 8, 13) if interpreted(backend, device) else (37, 24, 53)
    x, w, b, t = make_inputs(n, k, c, device=device)
    cw = (torch.rand(c, device=device) + 0.5) if weighted else None
    xa, wa, ba = leaves(x, w, b)
    out = lce(xa, wa, t, ba, smoothing, class_weight=cw, reduction=reduction,
              chunk_size=chunk_size, backend=backend)  # fmt: skip
    xe, we, be = leaves(x, w, b)
    expected = F.cross_entropy(
        F.linear(xe, we, be), t, weight=cw, reduction=reduction, label_smoothing=smoothing
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    g = grad_output_for(expected)
    assert_grads_close(grads_of(out, [xa, wa, ba], g), grads_of(expected, [xe, we, be], g),
                       torch.float32)  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_every_dtype(dtype, reduction):
    """16-bit inputs: GEMMs in the input dtype as F.linear, the loss accumulated in float32;
    compared with eager in the same dtype, and with float64 at the dtype's tolerance."""
    x, w, b, t = make_inputs(45, 32, 70, dtype)
    xa, wa, ba = leaves(x, w, b)
    out = lce(xa, wa, t, ba, 0.1, reduction=reduction, chunk_size=16)
    assert out.dtype == dtype
    xe, we, be = leaves(x, w, b)
    eager = F.cross_entropy(F.linear(xe, we, be), t, reduction=reduction, label_smoothing=0.1)
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(out, eager, rtol=tol["rtol"] * 2, atol=tol["atol"] * 2)
    g = grad_output_for(eager)
    rel = 2e-5 if dtype == torch.float32 else (1e-9 if dtype == torch.float64 else 3e-2)
    assert_grads_close(grads_of(out, [xa, wa, ba], g), grads_of(eager, [xe, we, be], g), dtype, rel)
    x64, w64, b64 = (v.double() for v in (x, w, b))
    exact = F.cross_entropy(F.linear(x64, w64, b64), t, reduction=reduction, label_smoothing=0.1)
    torch.testing.assert_close(out.double(), exact, rtol=tol["rtol"] * 2, atol=tol["atol"] * 2)


@pytest.mark.skipif(not HAS_TORCH_LCE, reason="this torch has no F.linear_cross_entropy")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_torch_linear_cross_entropy(reduction):
    x, w, b, t = make_inputs(40, 16, 29, torch.float64)
    cw = torch.rand(29, dtype=torch.float64) + 0.5
    xa, wa, ba = leaves(x, w, b)
    out = lce(xa, wa, t, ba, 0.2, class_weight=cw, reduction=reduction, chunk_size=9)
    xe, we, be = leaves(x, w, b)
    expected = F.linear_cross_entropy(
        xe, we, t, linear_bias=be, weight=cw, reduction=reduction, ignore_index=IGNORE,
        label_smoothing=0.2,
    )  # fmt: skip
    torch.testing.assert_close(out, expected)
    g = grad_output_for(expected)
    assert_grads_close(grads_of(out, [xa, wa, ba], g), grads_of(expected, [xe, we, be], g),
                       torch.float64)  # fmt: skip


@pytest.mark.parametrize("convention", ["others", "lsr"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_conventions_match_reference(convention, reduction):
    x, w, b, t = make_inputs(33, 12, 21, torch.float64)
    cw = torch.rand(21, dtype=torch.float64) + 0.5
    xa, wa, ba = leaves(x, w, b)
    kwargs = dict(class_weight=cw, reduction=reduction, convention=convention)
    out = lce(xa, wa, t, ba, 0.3, chunk_size=5, **kwargs)
    xe, we, be = leaves(x, w, b)
    expected = reference.linear_cross_entropy(xe, we, t, be, 0.3, **kwargs)
    torch.testing.assert_close(out, expected)
    g = grad_output_for(expected)
    assert_grads_close(grads_of(out, [xa, wa, ba], g), grads_of(expected, [xe, we, be], g),
                       torch.float64)  # fmt: skip
    if convention == "others":  # the reference itself against the label-smoothing op
        logits = F.linear(x, w, b)
        direct = cookbook_ops.label_smoothing_cross_entropy(
            logits, t, 0.3, weight=cw, reduction=reduction, convention=convention
        )
        torch.testing.assert_close(expected.detach(), direct)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_non_contiguous_and_confident(reduction):
    """Transposed views of input and weight, and logits where p_y is close to 1."""
    x = torch.randn(16, 21, dtype=torch.float64).t()  # (21, 16), column-major
    w = torch.randn(16, 30, dtype=torch.float64).t() * 4  # (30, 16)
    b = torch.randn(30, dtype=torch.float64)
    t = F.linear(x, w, b).argmax(1)
    xa, wa, ba = leaves(x, w, b)
    assert not xa.is_contiguous() and not wa.is_contiguous()
    out = lce(xa, wa, t, ba, reduction=reduction, chunk_size=8)
    xe, we, be = leaves(x, w, b)
    expected = F.cross_entropy(F.linear(xe, we, be), t, reduction=reduction)
    torch.testing.assert_close(out, expected)
    g = grad_output_for(expected)
    assert_grads_close(grads_of(out, [xa, wa, ba], g), grads_of(expected, [xe, we, be], g),
                       torch.float64)  # fmt: skip


def test_no_bias_and_return_correct():
    x, w, _, t = make_inputs(30, 10, 17, bias=False)
    loss, correct = lce(x, w, t, return_correct=True, chunk_size=4)
    logits = F.linear(x, w)
    torch.testing.assert_close(loss, F.cross_entropy(logits, t))
    torch.testing.assert_close(correct, logits.argmax(1) == t)


def test_chunks_never_hold_the_full_logits(monkeypatch):
    """Every chunk of logits made, forward and backward, has at most chunk_size rows."""
    module = importlib.import_module("cookbook_ops.ops.linear_cross_entropy_chunks")

    n, k, c, chunk = 50, 16, 300, 8
    made = []

    def chunk_logits(x, weight, bias):
        out = original(x, weight, bias)
        made.append(tuple(out.shape))
        return out

    original = module._chunk_logits
    monkeypatch.setattr(module, "_chunk_logits", chunk_logits)
    for reduction, calls in (("mean", 7), ("none", 14)):  # none recomputes in backward
        x, w, b, t = leaves(*make_inputs(n, k, c))
        made.clear()
        lce(x, w, t, b, reduction=reduction, chunk_size=chunk).sum().backward()
        assert len(made) == calls and all(r <= chunk and cols == c for r, cols in made)
        assert sum(r for r, _ in made) == n * calls // 7
        assert x.grad is not None and w.grad is not None and b.grad is not None


def test_default_chunk_size_bounds_the_logits():
    budget, min_rows = LOGITS_CHUNK_BYTES, MIN_CHUNK_ROWS
    assert default_chunk_size(4096, 1000, torch.float32) == 4096  # the whole batch fits
    for dtype, size in ((torch.float32, 4), (torch.bfloat16, 2)):
        rows = default_chunk_size(4096, 21843, dtype)
        assert min_rows <= rows < 4096 and rows * 21843 * size <= budget
        assert (rows + 1) * 21843 * size > budget  # as many rows as the budget allows
    # wide heads: at least MIN_CHUNK_ROWS rows, while within 4x the budget
    assert default_chunk_size(4096, 100_000, torch.float32) >= min(min_rows, 4 * budget // 400_000)
    assert default_chunk_size(4096, 100_000, torch.float32) * 400_000 <= 4 * budget
    assert default_chunk_size(4096, 10**7, torch.float32) * 4 * 10**7 <= 4 * budget
    assert default_chunk_size(0, 10, torch.float32) == 1
    assert default_chunk_size(3, 10**9, torch.float32) == 1


# --- two targets (mixup) -----------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(_library.MIXUP_CE_FORWARD))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("lam_kind", ["float", "per_row"])
def test_mixup_form(device, backend, reduction, lam_kind):
    n, k, c = (13, 8, 11) if interpreted(backend, device) else (29, 16, 23)
    x, w, b, ta = make_inputs(n, k, c, device=device)
    tb = torch.randint(0, c, (n,), device=device)
    tb[4] = IGNORE
    cw = torch.rand(c, device=device) + 0.5
    lam_value = torch.rand(n, device=device) if lam_kind == "per_row" else 0.3
    lam = lam_value.clone().requires_grad_() if lam_kind == "per_row" else lam_value
    xa, wa, ba = leaves(x, w, b)
    out = lmce(xa, wa, ta, tb, lam, ba, 0.1, class_weight=cw, reduction=reduction,
               chunk_size=6, backend=backend)  # fmt: skip
    xe, we, be = leaves(x, w, b)
    lam_e = lam_value.clone().requires_grad_() if lam_kind == "per_row" else lam_value
    expected = reference.linear_mixup_cross_entropy(
        xe, we, ta, tb, lam_e, be, 0.1, class_weight=cw, reduction=reduction
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    g = grad_output_for(expected)
    got = grads_of(out, [xa, wa, ba] + ([lam] if lam_kind == "per_row" else []), g)
    exp = grads_of(expected, [xe, we, be] + ([lam_e] if lam_kind == "per_row" else []), g)
    assert_grads_close(got, exp, torch.float32)
    if reduction == "mean":  # the cookbook's expression, with F.cross_entropy
        logits = F.linear(x, w, b)
        lam_f = lam_value if lam_kind == "float" else lam_value
        ce = [F.cross_entropy(logits, t, weight=cw, reduction="none", label_smoothing=0.1)
              for t in (ta, tb)]  # fmt: skip
        den = [cw[t.clamp_min(0)].where(t != IGNORE, 0).sum() for t in (ta, tb)]
        cookbook = (lam_f * ce[0]).sum() / den[0] + ((1 - lam_f) * ce[1]).sum() / den[1]
        torch.testing.assert_close(out.detach(), cookbook, rtol=1e-5, atol=1e-5)


# --- gradients, torch.library, torch.compile --------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("two_targets", [False, True], ids=["one", "two"])
def test_gradcheck_float64(reduction, two_targets):
    x, w, b, t = leaves(*make_inputs(9, 5, 7, torch.float64))
    tb = torch.randint(0, 7, (9,))
    cw = torch.rand(7, dtype=torch.float64) + 0.5

    def fn(x, w, b):
        if two_targets:
            return lmce(x, w, t, tb, 0.4, b, 0.1, class_weight=cw, reduction=reduction,
                        chunk_size=4)  # fmt: skip
        return lce(x, w, t, b, 0.1, class_weight=cw, reduction=reduction, chunk_size=4)

    assert torch.autograd.gradcheck(fn, (x, w, b))


@pytest.mark.parametrize("first,second", [(2.0, -0.5), (1.0, 3.0)])
def test_retained_graph_backward_twice(first, second):
    """The gradients formed in forward are scaled in place once; a second backward through a
    retained graph scales by the new grad_output and leaves the first result alone."""
    x, w, b, t = leaves(*make_inputs(20, 8, 15))
    loss = lce(x, w, t, b, chunk_size=6)
    g1 = torch.autograd.grad(loss, (x, w, b), torch.tensor(first), retain_graph=True)
    kept = [g.clone() for g in g1]
    g2 = torch.autograd.grad(loss, (x, w, b), torch.tensor(second))
    xe, we, be = leaves(x, w, b)
    eager = F.cross_entropy(F.linear(xe, we, be), t)
    e1 = torch.autograd.grad(eager, (xe, we, be), torch.tensor(first), retain_graph=True)
    e2 = torch.autograd.grad(eager, (xe, we, be), torch.tensor(second))
    assert_grads_close(g1, e1, torch.float32)
    assert_grads_close(g2, e2, torch.float32)
    for a, k in zip(g1, kept):
        assert torch.equal(a, k)


def test_double_backward_raises():
    x, w, b, t = leaves(*make_inputs(6, 4, 5, torch.float64))
    loss = lce(x, w, t, b)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(loss, x, create_graph=True)


def test_only_requested_gradients_are_formed():
    x, w, b, t = make_inputs(12, 6, 9)
    w.requires_grad_()
    lce(x, w, t, b).backward()
    assert w.grad is not None and x.grad is None and b.grad is None
    torch.testing.assert_close(
        w.grad, torch.autograd.grad(F.cross_entropy(F.linear(x, w, b), t), w)[0]
    )
    with torch.no_grad():
        out = lce(x, w, t, b)
    assert not out.requires_grad


def test_opcheck():
    x, w, b, t = make_inputs(10, 6, 9, torch.float64)
    tb = torch.randint(0, 9, (10,))
    cw = torch.rand(9, dtype=torch.float64) + 0.5
    on, off = 0.91, 0.01
    for target_b in (None, tb):
        k = 1 if target_b is None else 2
        shape = (10,) if k == 1 else (10, k)
        fwd_args = (x, w, b, t, target_b, cw, on, off, IGNORE, 4, "cpu")
        xr, wr, br = leaves(x, w, b)
        torch.library.opcheck(_library.op(_library.LINEAR_CE_FORWARD), (xr, wr, br, *fwd_args[3:]))
        _, lse, _ = _library.op(_library.LINEAR_CE_FORWARD)(*fwd_args)
        grad = torch.randn(shape, dtype=torch.float64)
        bwd_args = (grad, x, w, b, t, target_b, cw, lse, on, off, IGNORE, 4, "cpu", [True] * 3)
        torch.library.opcheck(_library.op(_library.LINEAR_CE_BACKWARD), bwd_args)
        scale = torch.rand(shape, dtype=torch.float64)
        torch.library.opcheck(
            _library.op(_library.LINEAR_CE_REDUCED),
            (xr, wr, br, t, target_b, cw, scale, on, off, IGNORE, 3, "reference", [True] * 3),
        )


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_compile_fullgraph_forward_backward(device, backend, reduction):
    torch._dynamo.reset()

    def step(x, w, b, t):
        loss, correct = lce(x, w, t, b, 0.1, reduction=reduction, chunk_size=5,
                            return_correct=True, backend=backend)  # fmt: skip
        return loss.sum(), correct.sum()

    compiled = torch.compile(step, fullgraph=True, dynamic=False)
    x, w, b, t = make_inputs(12, 8, 19, device=device)
    xa, wa, ba = leaves(x, w, b)
    loss, n_correct = compiled(xa, wa, ba, t)
    loss.backward()
    xe, we, be = leaves(x, w, b)
    logits = F.linear(xe, we, be)
    expected = F.cross_entropy(logits, t, reduction=reduction, label_smoothing=0.1).sum()
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    assert_grads_close([xa.grad, wa.grad, ba.grad], [xe.grad, we.grad, be.grad], torch.float32)
    assert int(n_correct) == int((logits.argmax(1) == t).sum())


def test_compile_mixup_module():
    torch._dynamo.reset()
    head = LinearCrossEntropy(8, 13, label_smoothing=0.1, chunk_size=4)
    x = torch.randn(10, 8, requires_grad=True)
    mixed = MixedTarget(torch.randint(0, 13, (10,)), torch.randint(0, 13, (10,)), torch.rand(10))
    compiled = torch.compile(lambda x, m: head(x, m), fullgraph=True)
    loss = compiled(x, mixed)
    loss.backward()
    expected = cookbook_ops.mixup_cross_entropy(
        head.logits(x.detach()), mixed.target_a, mixed.target_b, mixed.lam, 0.1
    )
    torch.testing.assert_close(loss, expected)
    assert head.weight.grad is not None and head.bias.grad is not None


# --- the module ---------------------------------------------------------------------------------


def test_module_is_a_linear_head_with_its_loss():
    torch.manual_seed(3)
    linear = torch.nn.Linear(12, 31)
    torch.manual_seed(3)
    head = LinearCrossEntropy(12, 31, label_smoothing=0.1)
    torch.testing.assert_close(head.weight, linear.weight)
    torch.testing.assert_close(head.bias, linear.bias)
    head.load_state_dict(linear.state_dict())
    x = torch.randn(16, 12)
    t = torch.randint(0, 31, (16,))
    torch.testing.assert_close(head.logits(x), linear(x))
    torch.testing.assert_close(head(x, t), F.cross_entropy(linear(x), t, label_smoothing=0.1))
    assert LinearCrossEntropy(12, 31, bias=False).bias is None
    mixed = MixedTarget(t, torch.randint(0, 31, (16,)), torch.rand(16))
    loss = cookbook_ops.nn.MixupCrossEntropy(0.1)(linear(x), mixed)
    torch.testing.assert_close(head(x, mixed), loss)
    with pytest.raises(TypeError, match="target"):
        head(x, [1, 2])


# --- Triton (interpreter here), edge cases, bad input ---------------------------------------


@pytest.mark.skipif("triton" not in cookbook_ops.available_backends("cpu", OP), reason="no triton")
def test_triton_backend_tiny():
    x, w, b, t = make_inputs(6, 4, 7, torch.float64)
    xa, wa, ba = leaves(x, w, b)
    out = lce(xa, wa, t, ba, 0.1, chunk_size=4, backend="triton")
    xe, we, be = leaves(x, w, b)
    expected = F.cross_entropy(F.linear(xe, we, be), t, label_smoothing=0.1)
    torch.testing.assert_close(out, expected)
    g = torch.tensor(1.0, dtype=torch.float64)
    assert_grads_close(grads_of(out, [xa, wa, ba], g), grads_of(expected, [xe, we, be], g),
                       torch.float64)  # fmt: skip


def test_empty_batch_and_all_ignored():
    x, w, b, _ = leaves(*make_inputs(0, 4, 5))
    t = torch.zeros(0, dtype=torch.long)
    out = lce(x, w, t, b, reduction="sum")
    out.backward()
    assert out.item() == 0 and (w.grad == 0).all() and (b.grad == 0).all()
    x, w, b, _ = make_inputs(4, 4, 5)
    t = torch.full((4,), IGNORE)
    assert torch.isnan(lce(x, w, t, b))
    assert torch.isnan(F.cross_entropy(F.linear(x, w, b), t))


@pytest.mark.parametrize(
    "change,error,match",
    [
        (dict(input=torch.randn(4, 3, 2)), ValueError, "input"),
        (dict(input=torch.randint(0, 3, (4, 6))), TypeError, "input"),
        (dict(weight=torch.randn(5, 7)), ValueError, "weight"),
        (dict(weight=torch.randn(5, 6, dtype=torch.float64)), TypeError, "weight"),
        (dict(bias=torch.randn(4)), ValueError, "bias"),
        (dict(target=torch.zeros(3, dtype=torch.long)), ValueError, "target"),
        (dict(target=torch.zeros(4)), TypeError, "target"),
        (dict(target=torch.tensor([0, 1, 5, 2])), IndexError, r"target\[2\] = 5"),
        (dict(class_weight=torch.ones(4)), ValueError, "class_weight"),
        (dict(chunk_size=0), ValueError, "chunk_size"),
        (dict(weight=torch.randn(5, 6, device="meta")), ValueError, "weight is on meta"),
        (dict(bias=torch.randn(5, device="meta")), ValueError, "bias is on meta"),
        (dict(target=torch.zeros(4, dtype=torch.long, device="meta")), ValueError, "target"),
        (dict(class_weight=torch.ones(5, device="meta")), ValueError, "class_weight"),
        (dict(reduction="avg"), ValueError, "reduction"),
        (dict(convention="x"), ValueError, "convention"),
        (dict(smoothing=1.5), ValueError, "smoothing"),
    ],
)
def test_bad_input(change, error, match):
    args = dict(input=torch.randn(4, 6), weight=torch.randn(5, 6), target=torch.zeros(4).long())
    args.update(bias=torch.randn(5))
    args.update(change)
    with pytest.raises(error, match=match):
        lce(**args)


def test_bad_mixup_input():
    x, w, b, t = make_inputs(4, 6, 5)
    with pytest.raises(ValueError, match="lam"):
        lmce(x, w, t, t, 1.5, b)
    with pytest.raises(ValueError, match="lam"):
        lmce(x, w, t, t, torch.tensor([0.1, 2.0, 0.3, 0.4]), b)
    with pytest.raises(IndexError, match="target_b"):
        lmce(x, w, t, torch.tensor([0, 9, 1, 1]), 0.5, b)
    with pytest.raises(ValueError, match="lam is on meta"):
        lmce(x, w, t, t, torch.rand(4, device="meta"), b)
    with pytest.raises(ValueError, match="in_features"):
        LinearCrossEntropy(0, 10)
    with pytest.raises(ValueError, match="reduction"):
        LinearCrossEntropy(4, 10, reduction="avg")
