"""Mixup and CutMix blends: every backend against the cookbook's expressions."""

import pytest
import torch
from conftest import (
    DEVICES,
    TOLERANCES,
    backend_params,
    compiled_backend_params,
    require_gpu_backend,
)

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.reference import mixup as reference

MIXUP = _library.MIXUP_FORWARD
CUTMIX = _library.CUTMIX_FORWARD
FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def seed_mixup(x, lam, index):
    """The cookbook's blend, with lam a float or one value per sample."""
    if isinstance(lam, torch.Tensor) and lam.dim() == 1:
        lam = lam.reshape((-1,) + (1,) * (x.dim() - 1)).to(x.dtype)
    return lam * x + (1 - lam) * x[index]


def layouts(device, dtype, n=5):
    g = torch.Generator().manual_seed(0)

    def rnd(*shape):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * 3).to(device, dtype)

    return {
        "nchw": rnd(n, 3, 6, 7),
        "channels_last": rnd(n, 3, 6, 7).contiguous(memory_format=torch.channels_last),
        "features": rnd(n, 33),
        "odd_sizes": rnd(n, 1, 1, 7),
        "sliced": rnd(n, 6, 6, 7)[:, ::2],
    }


def assert_close(actual, expected, dtype):
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), **tol)


def lam_variants(n, device):
    return {
        "float": 0.3,
        "zero": 0.0,
        "one": 1.0,
        "tensor0d": torch.tensor(0.7, device=device),
        "per_sample": torch.tensor([0.0, 1.0, 0.25, 0.5, 0.9][:n], device=device),
    }


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_mixup_matches_seed_expression(device, backend, dtype):
    index = torch.tensor([3, 0, 4, 1, 2], device=device)
    for name, x in layouts(device, dtype).items():
        for lam_name, lam in lam_variants(5, device).items():
            out = cookbook_ops.mixup(x, lam, index, backend=backend)
            expected = seed_mixup(x.double(), lam, index)
            assert out.dtype == dtype and out.shape == x.shape, (name, lam_name)
            assert_close(out, expected, dtype)
        if name == "channels_last":
            assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
def test_mixup_uint8_rounds_to_nearest(device, backend):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (4, 3, 5, 6), generator=g, dtype=torch.uint8).to(device)
    index = torch.tensor([1, 2, 3, 0], device=device)
    lam = torch.tensor([0.5, 0.3, 0.0, 1.0], device=device)
    out = cookbook_ops.mixup(x, lam, index, backend=backend)
    assert out.dtype == torch.uint8
    expected = seed_mixup(x.float(), lam, index).round()
    torch.testing.assert_close(out, expected.to(torch.uint8), atol=0, rtol=0)


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_mixup_gradient_matches_seed_expression(device, backend, dtype):
    index = torch.tensor([2, 4, 0, 1, 3], device=device)
    lam = torch.tensor([0.1, 0.6, 1.0, 0.0, 0.35], device=device)
    for name, x in layouts(device, dtype).items():
        upstream = torch.randn(x.shape, dtype=torch.float64, device=device)
        a = x.detach().clone().requires_grad_()
        cookbook_ops.mixup(a, lam, index, backend=backend).backward(upstream.to(dtype))
        b = x.detach().double().requires_grad_()
        seed_mixup(b, lam.double(), index).backward(upstream)
        assert a.grad.shape == x.shape, name
        assert_close(a.grad, b.grad, dtype)


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
def test_mixup_gradcheck_float64(device, backend):
    x = torch.randn(4, 3, 2, 3, dtype=torch.float64, device=device, requires_grad=True)
    index = torch.tensor([3, 2, 0, 1], device=device)
    lam = torch.tensor([0.2, 0.5, 0.9, 0.0], dtype=torch.float64, device=device)
    torch.autograd.gradcheck(lambda t: cookbook_ops.mixup(t, lam, index, backend=backend), (x,))


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
@pytest.mark.parametrize("dtype", FLOATS + [torch.uint8], ids=str)
def test_mixup_pairs_in_place_equals_mixup(device, backend, dtype):
    pairs = torch.tensor([3, 2, 1, 0, 4], device=device)  # odd batch: 4 is a fixed point
    lam = torch.tensor([0.25, 0.5, 0.75, 0.1, 0.3], device=device)
    for name, x in layouts(device, torch.float32).items():
        if dtype == torch.uint8:
            x = (x.abs() * 40).clamp(0, 255).to(torch.uint8)
        else:
            x = x.to(dtype)
        if name == "sliced":
            continue  # not dense: the in-place op refuses it (tested below)
        expected = cookbook_ops.mixup(x, lam, pairs, backend="reference")
        y = x.clone()
        ptr = y.data_ptr()
        result = cookbook_ops.mixup_pairs_(y, lam, pairs, backend=backend)
        assert result is y and y.data_ptr() == ptr
        if dtype == torch.uint8:
            torch.testing.assert_close(y, expected, atol=0, rtol=0)
        else:
            assert_close(y, expected, dtype)
        torch.testing.assert_close(y[4], x[4])


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=str)
def test_blends_round_like_the_reference_bit_for_bit(device, backend, dtype):
    """lam a + (1 - lam) b with both products rounded, then the sum: an FMA (one rounding)
    moves fp32 results by an ulp in many elements and uint8 ones by a step in a few pixels
    for these lams. Forward, backward and the in-place pairs, equal to the reference ops."""
    g = torch.Generator().manual_seed(2)
    n = 8
    if dtype == torch.uint8:
        x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=dtype).to(device)
    else:
        x = torch.randn(n, 3, 32, 32, generator=g, dtype=dtype).to(device)
    lam = torch.tensor([0.1, 0.3, 0.7, 0.9] * 2, device=device)
    index = torch.tensor([5, 2, 7, 0, 6, 3, 1, 4], device=device)
    pairs = torch.tensor([1, 0, 3, 2, 5, 4, 7, 6], device=device)
    forward = _library.op_for(MIXUP, backend) if backend != "reference" else reference.mixup_forward
    out = forward(x, lam, index)
    assert torch.equal(out, reference.mixup_forward(x, lam, index))
    y = x.clone()
    cookbook_ops.mixup_pairs_(y, lam, pairs, backend=backend)
    assert torch.equal(y, reference.mixup_forward(x, lam, pairs))
    if dtype.is_floating_point:
        backward = (
            _library.op_for(_library.MIXUP_BACKWARD, backend)
            if backend != "reference"
            else reference.mixup_backward
        )
        grad = torch.randn(x.shape, generator=g, dtype=dtype).to(device)
        got = backward(grad, lam, index)
        assert torch.equal(got, reference.mixup_backward(grad, lam, index))


@pytest.mark.parametrize("device,backend", backend_params(CUTMIX))
@pytest.mark.parametrize("dtype", FLOATS + [torch.uint8], ids=str)
def test_cutmix_matches_masked_copy(device, backend, dtype):
    boxes = torch.tensor(
        [[0, 0, 6, 7], [1, 2, 4, 5], [0, 0, 0, 0], [5, 6, 6, 7], [2, 0, 6, 3]], device=device
    )
    index = torch.tensor([4, 2, 3, 0, 1], device=device)
    for name, x in layouts(device, torch.float32).items():
        if x.dim() != 4 or tuple(x.shape[2:]) != (6, 7):
            continue
        x = (x.abs() * 40).clamp(0, 255).to(dtype) if dtype == torch.uint8 else x.to(dtype)
        out, lam = cookbook_ops.cutmix(x, boxes, index, backend=backend)
        mask = torch.zeros(x.shape[0], 1, x.shape[2], x.shape[3], dtype=torch.bool, device=device)
        for i, (y0, x0, y1, x1) in enumerate(boxes.tolist()):
            mask[i, :, y0:y1, x0:x1] = True
        torch.testing.assert_close(out, torch.where(mask, x[index], x), atol=0, rtol=0)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        torch.testing.assert_close(lam, 1 - area.float() / (x.shape[2] * x.shape[3]))
        if name == "channels_last":
            assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("device,backend", backend_params(CUTMIX))
def test_cutmix_gradient(device, backend):
    x = torch.randn(4, 2, 5, 6, dtype=torch.float64, device=device)
    boxes = torch.tensor([[0, 0, 3, 3], [1, 1, 5, 6], [2, 2, 2, 4], [0, 0, 5, 6]], device=device)
    index = torch.tensor([1, 3, 0, 2], device=device)
    upstream = torch.randn(x.shape, dtype=torch.float64, device=device)
    for layout in (torch.contiguous_format, torch.channels_last):
        a = x.clone(memory_format=layout).requires_grad_()
        out, _ = cookbook_ops.cutmix(a, boxes, index, backend=backend)
        out.backward(upstream)
        b = x.clone().requires_grad_()
        mask = reference.box_mask(boxes, 5, 6).unsqueeze(1)
        torch.where(mask, b[index], b).backward(upstream)
        torch.testing.assert_close(a.grad, b.grad)
    c = x.clone().requires_grad_()
    torch.autograd.gradcheck(
        lambda t: cookbook_ops.cutmix(t, boxes, index, backend=backend)[0], (c,)
    )


@pytest.mark.parametrize("device,backend", compiled_backend_params(MIXUP))
def test_opcheck(device, backend):
    x = torch.randn(4, 3, 4, 5, dtype=torch.float64, device=device, requires_grad=True)
    lam = torch.tensor([0.2, 0.5, 0.9, 0.0], dtype=torch.float64, device=device)
    index = torch.tensor([3, 2, 0, 1], device=device)
    torch.library.opcheck(_library.op_for(_library.MIXUP_FORWARD, backend), (x, lam, index))
    boxes = torch.tensor([[0, 0, 2, 3], [1, 1, 4, 5], [0, 0, 0, 0], [0, 0, 4, 5]], device=device)
    torch.library.opcheck(_library.op_for(_library.CUTMIX_FORWARD, backend), (x, boxes, index))
    pairs = torch.tensor([1, 0, 2, 3], device=device)
    torch.library.opcheck(
        _library.op_for(_library.MIXUP_PAIRS, backend), (x.detach().clone(), lam, pairs)
    )


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
def test_compile_fullgraph_forward_backward(device, backend):
    torch._dynamo.reset()

    def step(x, lam, index, boxes):
        mixed = cookbook_ops.mixup(x, lam, index, backend=backend)
        cut, cut_lam = cookbook_ops.cutmix(mixed, boxes, index, backend=backend)
        return cut.square().sum() + cut_lam.sum()

    compiled = torch.compile(step, fullgraph=True)
    x = torch.randn(4, 2, 5, 6, device=device)
    lam = torch.tensor([0.2, 0.5, 0.9, 0.0], device=device)
    index = torch.tensor([3, 2, 0, 1], device=device)
    boxes = torch.tensor([[0, 0, 3, 3], [1, 1, 5, 6], [2, 2, 2, 4], [0, 0, 5, 6]], device=device)
    a = x.clone().requires_grad_()
    compiled(a, lam, index, boxes).backward()
    b = x.clone().requires_grad_()
    mixed = seed_mixup(b, lam, index)
    mask = reference.box_mask(boxes, 5, 6).unsqueeze(1)
    torch.where(mask, mixed[index], mixed).square().sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("device,backend", backend_params(MIXUP))
def test_bad_inputs_raise_clear_errors(device, backend):
    x = torch.randn(4, 3, 5, 5, device=device)
    index = torch.tensor([1, 0, 3, 2], device=device)
    boxes = torch.tensor([[0, 0, 2, 2]] * 4, device=device)
    with pytest.raises(ValueError, match="lam"):
        cookbook_ops.mixup(x, 1.5, index, backend=backend)
    with pytest.raises(ValueError, match="lam"):
        cookbook_ops.mixup(x, -0.1, index, backend=backend)
    with pytest.raises(ValueError, match="lam"):
        cookbook_ops.mixup(x, torch.tensor([0.1, 0.2]), index, backend=backend)
    with pytest.raises(ValueError, match="index"):
        cookbook_ops.mixup(x, 0.5, index[:3], backend=backend)
    with pytest.raises(TypeError, match="index"):
        cookbook_ops.mixup(x, 0.5, index.int(), backend=backend)
    with pytest.raises(TypeError, match="x must be"):
        cookbook_ops.mixup(x.long(), 0.5, index, backend=backend)
    with pytest.raises(ValueError, match="x must"):
        cookbook_ops.cutmix(x[0], boxes, index, backend=backend)
    with pytest.raises(ValueError, match="boxes"):
        cookbook_ops.cutmix(x, boxes[:2], index, backend=backend)
    with pytest.raises(TypeError, match="boxes"):
        cookbook_ops.cutmix(x, boxes.float(), index, backend=backend)
    if device == "cpu":
        with pytest.raises(ValueError, match="lam"):
            cookbook_ops.mixup(x, torch.tensor([0.1, 0.2, 1.2, 0.0]), index, backend=backend)
        with pytest.raises(ValueError, match="permutation"):
            cookbook_ops.mixup(x, 0.5, torch.tensor([0, 0, 1, 2]), backend=backend)
        with pytest.raises(ValueError, match="permutation"):
            cookbook_ops.mixup(x, 0.5, torch.tensor([0, 1, 2, 4]), backend=backend)
        with pytest.raises(ValueError, match="involution"):
            cookbook_ops.mixup_pairs_(x.clone(), 0.5, torch.tensor([1, 2, 3, 0]), backend=backend)
        with pytest.raises(ValueError, match="involution"):
            cookbook_ops.mixup_pairs_(x.clone(), 0.5, torch.tensor([1, 0, 3, 7]), backend=backend)
        bad = boxes.clone()
        bad[2] = torch.tensor([0, 0, 6, 2])
        with pytest.raises(ValueError, match=r"boxes\[2\]"):
            cookbook_ops.cutmix(x, bad, index, backend=backend)
        bad[2] = torch.tensor([3, 0, 2, 2])
        with pytest.raises(ValueError, match=r"boxes\[2\]"):
            cookbook_ops.cutmix(x, bad, index, backend=backend)
    with pytest.raises(RuntimeError, match="in place"):
        cookbook_ops.mixup_pairs_(x.clone().requires_grad_(), 0.5, index, backend=backend)
    with pytest.raises(ValueError, match="contiguous"):
        cookbook_ops.mixup_pairs_(
            torch.randn(8, 3, device=device)[::2], 0.5, index, backend=backend
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_device_mismatch():
    x = torch.randn(4, 3, device="cuda")
    with pytest.raises(ValueError, match="index"):
        cookbook_ops.mixup(x, 0.5, torch.tensor([1, 0, 3, 2]))


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    x = torch.randn(0, 3, 4, 4, device=device)
    index = torch.zeros(0, dtype=torch.int64, device=device)
    assert cookbook_ops.mixup(x, 0.5, index).shape == x.shape
    out, lam = cookbook_ops.cutmix(x, torch.zeros(0, 4, dtype=torch.int64, device=device), index)
    assert out.shape == x.shape and lam.shape == (0,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_more_than_2_31_samples_on_gpu(backend):
    """(2**31 + 5, 1) float32: 4096 one-value samples share a program, and an int32 row index
    past 2**31 would wrap negative, pass `rows < n` and read and write before the tensors.
    Forward, backward and the in-place pairs, checked at both ends of the batch."""
    require_gpu_backend(MIXUP, backend, min_memory_gib=100)
    n = 2**31 + 5
    rows = torch.tensor([0, 1, n // 2, 2**31 - 1, 2**31, n - 2, n - 1], device="cuda")
    x = torch.rand(n, 1, device="cuda")
    lam = torch.full((n,), 0.3, device="cuda")
    index = torch.arange(n, device="cuda").roll(1)  # index[i] = i - 1: inverse i + 1
    out = _library.op_for(MIXUP, backend)(x, lam, index)
    expected = 0.3 * x[rows] + (1 - torch.tensor(0.3, device="cuda")) * x[rows - 1]
    assert torch.equal(out[rows], expected)
    del out
    grad = _library.op_for(_library.MIXUP_BACKWARD, backend)(x, lam, index)
    expected = 0.3 * x[rows] + (1 - torch.tensor(0.3, device="cuda")) * x[(rows + 1) % n]
    assert torch.equal(grad[rows], expected)
    del grad, index
    pairs = torch.arange(n, device="cuda") ^ 1
    pairs[-1] = n - 1  # odd batch: the last sample is a fixed point
    before = x[rows].clone(), x[pairs[rows]].clone()
    _library.op_for(_library.MIXUP_PAIRS, backend)(x, lam, pairs)
    expected = 0.3 * before[0] + (1 - torch.tensor(0.3, device="cuda")) * before[1]
    expected[-1] = before[0][-1]
    torch.cuda.synchronize()
    assert torch.equal(x[rows], expected)
