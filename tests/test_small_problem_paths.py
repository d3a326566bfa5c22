"""The CPU kernels' paths for degenerate shapes, against the float64 oracles, forward and
backward, every dtype: many tiny problems take other code than the headline shapes.

- bilinear pooling: samples of at most 32768 multiply-adds (D1*D2*M) and M <= 16 run as
  direct loops per sample instead of GEMM calls; the shapes just above go through the batched
  GEMM path (one stream with D <= 64 included).
- cross-entropy: rows shorter than one vector step (C < 16 for 32- and 16-bit logits, C < 8
  for float64) are computed several rows per vector.
- mixup / CutMix: samples of at most one chunk (16384 elements) are one work item each; larger
  ones are split into chunks.
"""

import pytest
import torch
import torch.nn.functional as F
from conftest import DTYPES, TOLERANCES, assert_close_dtype, backend_params, random_class_weight

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.reference import mixup as reference_mixup

CPU = [p for p in backend_params(_library.BILINEAR_FORWARD) if p.values == ("cpu", "cpu")]
BLEND_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8]


def rand(shape, dtype, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def on_threads(n, fn):
    """fn() with n intra-op threads (the kernels' results must not depend on the split)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


# --- bilinear pooling ---------------------------------------------------------------------


def seed_snippet(a, b=None, eps=1e-5):
    n, d, m = a.shape
    b = a if b is None else b
    g = torch.bmm(a, b.transpose(1, 2)) / m
    g = g.reshape(n, d * b.shape[1])
    return F.normalize(torch.sign(g) * torch.sqrt(torch.abs(g) + eps))


BILINEAR_SHAPES = [
    # (N, D1, D2 or None, M): direct loops up to D1*D2*M = 32768 and M = 16, GEMMs above
    pytest.param(300, 4, None, 4, id="one-300x4x2x2"),
    pytest.param(300, 4, 3, 4, id="two-300x4+3x2x2"),
    pytest.param(7, 2, None, 1, id="one-D=2-M=1"),
    pytest.param(7, 2, 3, 1, id="two-D1=2-D2=3-M=1"),
    pytest.param(3, 45, None, 16, id="one-at-limit-45x45x16"),
    pytest.param(3, 46, None, 16, id="one-above-limit-46x46x16"),
    pytest.param(3, 64, 32, 16, id="two-at-limit-64x32x16"),
    pytest.param(3, 64, 32, 17, id="two-above-limit-64x32x17"),
    pytest.param(3, 2, None, 17, id="one-long-M-2x2x17"),
]


@pytest.mark.parametrize("device,backend", CPU)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n,d1,d2,m", BILINEAR_SHAPES)
def test_bilinear_small_problems_match_snippet(device, backend, dtype, n, d1, d2, m):
    x = rand((n, d1, m), dtype, 0).relu()
    x[0, 0] = 0  # a dead channel: its Gram row is exactly 0, and so is its gradient
    x[1] = 0  # an all-zero sample: the norm is floored, z and the gradient are 0
    y = None if d2 is None else rand((n, d2, m), dtype, 1)  # signed: negative G entries
    dz = rand((n, d1 * (d2 or d1)), torch.float64, 2)  # random: dG is not symmetric

    def run(fn, xs, ys):
        xs = xs.detach().clone().requires_grad_()
        ys = None if ys is None else ys.detach().clone().requires_grad_()
        z = fn(xs, ys)
        z.backward(dz.to(z.dtype))
        return z.detach(), xs.grad, None if ys is None else ys.grad

    z, gx, gy = run(lambda a, b: cookbook_ops.bilinear_pool(a, b, backend=backend), x, y)
    z64, gx64, gy64 = run(seed_snippet, x.double(), None if y is None else y.double())
    assert z.dtype == dtype and z.shape == z64.shape
    assert_close_dtype(z, z64, dtype)
    assert torch.equal(z[1], torch.zeros_like(z[1])) and torch.equal(gx[1], torch.zeros_like(gx[1]))
    for got, want in ((gx, gx64), (gy, gy64)):
        if want is None:
            continue
        assert got.dtype == dtype and got.shape == want.shape
        scale = want.abs().max()
        assert_close_dtype(got / scale, want / scale, dtype, scale=4)


@pytest.mark.parametrize("device,backend", CPU)
@pytest.mark.parametrize("two", [False, True], ids=["one", "two"])
def test_bilinear_small_problems_do_not_depend_on_threads(device, backend, two):
    x = rand((1000, 4, 4), torch.float32, 0)
    y = rand((1000, 3, 4), torch.float32, 1) if two else None
    dz = rand((1000, 4 * (3 if two else 4)), torch.float32, 2)

    def run():
        xs = x.clone().requires_grad_()
        z = cookbook_ops.bilinear_pool(xs, y, backend=backend)
        z.backward(dz)
        return z.detach(), xs.grad

    z1, g1 = on_threads(1, run)
    z2, g2 = on_threads(2, run)
    assert torch.equal(z1, z2) and torch.equal(g1, g2)


# --- cross-entropy ------------------------------------------------------------------------

NARROW_CLASSES = [1, 2, 3, 7, 8, 15, 16, 17]


@pytest.mark.parametrize("device,backend", CPU)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("c", NARROW_CLASSES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_cross_entropy_few_classes_matches_pytorch(device, backend, dtype, c, weighted):
    n = 37  # not a multiple of any vector width: a partial group of rows at the end
    x = rand((n, c), dtype, 0, scale=3)
    x[3, c - 1] = 40.0  # confident rows
    if c > 1:
        x[4, 0] = -float("inf")  # a masked class: the exact routine's row
    target = torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(1))
    target[5] = -100  # ignored
    weight = random_class_weight(c, device, dtype) if weighted else None
    upstream = rand((n,), torch.float64, 2)
    for smoothing in (0.0, 0.1):
        a = x.clone().requires_grad_()
        loss = cookbook_ops.label_smoothing_cross_entropy(
            a, target, smoothing, weight=weight, reduction="none", backend=backend
        )
        loss.backward(upstream.to(loss.dtype))
        b = x.detach().clone().double().requires_grad_()
        w64 = None if weight is None else weight.double()
        expected = F.cross_entropy(b, target, w64, reduction="none", label_smoothing=smoothing)
        finite = expected.isfinite()
        assert torch.equal(loss.isfinite(), finite), smoothing
        expected.backward(torch.where(finite, upstream, 0.0))
        rows = finite.nonzero().squeeze(1)
        assert_close_dtype(loss[rows], expected.detach()[rows], dtype, scale=8)
        a.grad[~finite] = 0
        assert_close_dtype(a.grad, b.grad, dtype, scale=4)


@pytest.mark.parametrize("device,backend", CPU)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("c", [2, 5, 16])
def test_mixup_cross_entropy_few_classes_matches_two_cross_entropies(device, backend, dtype, c):
    n = 21
    x = rand((n, c), dtype, 0, scale=3)
    gen = torch.Generator().manual_seed(1)
    ya = torch.randint(0, c, (n,), generator=gen)
    yb = torch.randint(0, c, (n,), generator=gen)
    ya[2] = -100
    lam = torch.rand(n, generator=gen)
    a = x.clone().requires_grad_()
    loss = cookbook_ops.mixup_cross_entropy(a, ya, yb, lam, 0.1, reduction="sum", backend=backend)
    loss.backward()
    b = x.detach().clone().double().requires_grad_()
    expected = (
        lam.double() * F.cross_entropy(b, ya, reduction="none", label_smoothing=0.1)
        + (1 - lam.double()) * F.cross_entropy(b, yb, reduction="none", label_smoothing=0.1)
    ).sum()
    expected.backward()
    assert_close_dtype(loss, expected.detach(), dtype, scale=4 * n)
    assert_close_dtype(a.grad, b.grad, dtype, scale=4)


@pytest.mark.parametrize("device,backend", CPU)
def test_cross_entropy_few_classes_nan_row_and_argmax(device, backend):
    x = torch.tensor([[1.0, 2.0, 2.0], [float("nan"), 0.0, 1.0], [3.0, 3.0, -1.0]])
    x = x.repeat(5, 1)  # 15 rows: one full group of 8 and a partial one
    target = torch.tensor([2, 0, 1]).repeat(5)
    loss, correct = cookbook_ops.label_smoothing_cross_entropy(
        x, target, reduction="none", return_correct=True, backend=backend
    )
    expected = F.cross_entropy(x.double(), target, reduction="none")
    torch.testing.assert_close(loss.double(), expected, equal_nan=True)
    # argmax is the first maximum (and the NaN where there is one), as torch.argmax
    assert torch.equal(correct, x.argmax(1) == target)


@pytest.mark.parametrize("device,backend", CPU)
def test_cross_entropy_few_classes_do_not_depend_on_threads(device, backend):
    x = rand((4099, 2), torch.float32, 0, scale=3)
    target = torch.randint(0, 2, (4099,), generator=torch.Generator().manual_seed(1))

    def run():
        a = x.clone().requires_grad_()
        loss = cookbook_ops.label_smoothing_cross_entropy(a, target, 0.1, backend=backend)
        loss.backward()
        return loss.detach(), a.grad

    one, two = on_threads(1, run), on_threads(2, run)
    assert torch.equal(one[1], two[1])
    torch.testing.assert_close(one[0], two[0])  # the mean sums the rows in PyTorch


# --- mixup / CutMix -----------------------------------------------------------------------


def blend_input(shape, dtype, seed):
    if dtype == torch.uint8:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return rand(shape, dtype, seed, scale=3)


BLEND_SHAPES = [
    pytest.param((1000, 3), id="1000x3"),
    pytest.param((257, 1), id="257x1"),
    pytest.param((65, 17), id="65x17"),
    pytest.param((3, 3, 80, 80), id="3x3x80x80-chunked"),  # 19200 elements: two chunks each
]


@pytest.mark.parametrize("device,backend", CPU)
@pytest.mark.parametrize("dtype", BLEND_DTYPES, ids=str)
@pytest.mark.parametrize("shape", BLEND_SHAPES)
def test_blends_of_tiny_and_chunked_samples_equal_the_reference(device, backend, dtype, shape):
    """Bit for bit: the kernels round like the reference (see test_mixup.py)."""
    n = shape[0]
    x = blend_input(shape, dtype, 0)
    gen = torch.Generator().manual_seed(1)
    index = torch.randperm(n, generator=gen)
    lam = torch.rand(n, generator=gen, dtype=torch.float64).to(
        torch.float64 if dtype == torch.float64 else torch.float32
    )
    forward = _library.op(_library.MIXUP_FORWARD)
    assert torch.equal(forward(x, lam, index), reference_mixup.mixup_forward(x, lam, index))
    strided = torch.stack([index, index.flip(0)], 1)[:, 0]  # a non-contiguous index
    assert torch.equal(forward(x, lam, strided), reference_mixup.mixup_forward(x, lam, index))
    order = torch.randperm(n, generator=gen)
    pairs = torch.arange(n)
    pairs[order[0 : n - 1 : 2]], pairs[order[1:n:2]] = order[1:n:2], order[0 : n - 1 : 2]
    y = x.clone()
    cookbook_ops.mixup_pairs_(y, lam, pairs, backend=backend)
    expected = x.clone()
    reference_mixup.mixup_pairs(expected, lam, pairs)
    assert torch.equal(y, expected)
    if dtype == torch.uint8:
        return
    grad = rand(shape, dtype, 2)
    backward = _library.op(_library.MIXUP_BACKWARD)
    assert torch.equal(backward(grad, lam, index), reference_mixup.mixup_backward(grad, lam, index))
    # the public op, scalar lam, through autograd, against the float64 expression
    a = x.clone().requires_grad_()
    cookbook_ops.mixup(a, 0.3, index, backend=backend).backward(grad)
    b = x.detach().clone().double().requires_grad_()
    (0.3 * b + 0.7 * b[index]).backward(grad.double())
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(a.grad.double(), b.grad, **tol)


@pytest.mark.parametrize("device,backend", CPU)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_cutmix_of_tiny_images(device, backend, dtype):
    n = 500
    x = rand((n, 2, 3, 2), dtype, 0)
    gen = torch.Generator().manual_seed(1)
    index = torch.randperm(n, generator=gen)
    y0 = torch.randint(0, 3, (n,), generator=gen)
    x0 = torch.randint(0, 2, (n,), generator=gen)
    y1 = y0 + torch.randint(0, 2, (n,), generator=gen)
    x1 = x0 + torch.randint(0, 2, (n,), generator=gen)
    boxes = torch.stack((y0, x0, y1.clamp(max=3), x1.clamp(max=2)), 1)
    out, _ = cookbook_ops.cutmix(x, boxes, index, backend=backend)
    assert torch.equal(out, reference_mixup.cutmix_forward(x, boxes, index))
    grad = rand(x.shape, dtype, 2)
    assert torch.equal(
        _library.op(_library.CUTMIX_BACKWARD)(grad, boxes, index),
        reference_mixup.cutmix_backward(grad, boxes, index),
    )


@pytest.mark.parametrize(
    "index",
    [[0, 0, 1, 2], [0, 1, 2, 4], [-1, 0, 1, 2], [3, 2, 1, 5]],
    ids=["repeat", "too-large", "negative", "gap"],
)
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_permutation_check_rejects(index, backend):
    """O(N) checks: in the CPU kernel's pass over index, in Python for the other backends."""
    if backend not in cookbook_ops.available_backends("cpu", _library.MIXUP_FORWARD):
        pytest.skip(f"{backend} not available")
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="index must be a permutation of 0..3"):
        cookbook_ops.mixup(x, 0.5, torch.tensor(index), backend=backend)


def test_permutation_check_accepts_large_permutation():
    index = torch.randperm(100_000)
    x = torch.randn(100_000, 3)
    torch.testing.assert_close(cookbook_ops.mixup(x, 0.25, index), 0.25 * x + 0.75 * x[index])
