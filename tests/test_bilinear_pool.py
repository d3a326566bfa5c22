"""Bilinear pooling: every backend against the cookbook's snippet (float64 autograd oracle)."""

import pytest
import torch
from conftest import DEVICES, DTYPES, TOLERANCES, backend_params, compiled_backend_params

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.nn import BilinearPooling

OP = _library.BILINEAR_FORWARD
pool = cookbook_ops.bilinear_pool


def seed_snippet(x, y=None, eps=1e-5):
    """The cookbook's bilinear pooling, written as it is there (two-stream: A B^T)."""
    n, d = x.shape[0], x.shape[1]
    m = x[0, 0].numel()
    a = x.reshape(n, d, m)
    b = a if y is None else y.reshape(n, y.shape[1], m)
    g = torch.bmm(a, torch.transpose(b, 1, 2)) / m
    g = torch.reshape(g, (n, d * b.shape[1]))
    g = torch.sign(g) * torch.sqrt(torch.abs(g) + eps)
    return torch.nn.functional.normalize(g)


def assert_close(actual, expected, dtype, rtol_scale=1.0):
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(
        actual.double(), expected.double(), atol=tol["atol"], rtol=tol["rtol"] * rtol_scale
    )


def make(shape, device, dtype, seed=0, scale=1.0, relu=False):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(*shape, generator=g, dtype=torch.float64) * scale
    if relu:
        t = t.clamp_min(0)
    return t.to(device, dtype)


SHAPES = [
    pytest.param((2, 8, 5, 5), None, id="one-2x8x5x5"),
    pytest.param((3, 16, 1, 1), None, id="one-1x1-spatial"),
    pytest.param((2, 33, 7, 3), None, id="one-odd-D"),
    pytest.param((2, 12, 4, 4), 7, id="two-D1=12-D2=7"),
    pytest.param((1, 5, 9), 16, id="two-rank3-D2=16"),
]


def _grads(fn, x, y, dz):
    xs = x.detach().clone().requires_grad_()
    ys = None if y is None else y.detach().clone().requires_grad_()
    z = fn(xs, ys)
    z.backward(dz.to(z.dtype))
    return z, xs.grad, None if ys is None else ys.grad


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,d2", SHAPES)
def test_matches_seed_snippet_forward_and_backward(device, backend, dtype, shape, d2, relu=False):
    x = make(shape, device, dtype, relu=relu)
    y = None if d2 is None else make((shape[0], d2) + shape[2:], device, dtype, seed=1, relu=relu)
    d_out = shape[1] * (shape[1] if d2 is None else d2)
    dz = make((shape[0], d_out), device, torch.float64, seed=2)  # non-symmetric upstream
    z, gx, gy = _grads(lambda a, b: pool(a, b, backend=backend), x, y, dz)
    z64, gx64, gy64 = _grads(seed_snippet, x.double(), None if y is None else y.double(), dz)
    assert z.dtype == dtype and z.shape == (shape[0], d_out)
    assert_close(z, z64, dtype)
    # gradients scale with 1/norm; compare relative to their own size
    scale = gx64.abs().max().item()
    assert_close(gx / scale, gx64 / scale, dtype, rtol_scale=4)
    if y is not None:
        scale = gy64.abs().max().item()
        assert_close(gy / scale, gy64 / scale, dtype, rtol_scale=4)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("d2", [None, 129], ids=["one-D=130", "two-D1=130-D2=129"])
def test_wider_than_one_tile_matches_seed_snippet(device, backend, dtype, d2):
    """Several 128 x 128 Triton tiles per sample: off-diagonal tiles mirrored (one stream),
    ragged edges. Post-ReLU inputs, as in a B-CNN head: with signed inputs and M = 16 some of
    the 17,000 Gram entries land near 0, where the signed sqrt amplifies the error of an fp32
    G beyond the fp32 tolerance even for the pure-PyTorch formula."""
    test_matches_seed_snippet_forward_and_backward(device, backend, dtype, (2, 130, 16), d2, True)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("two_stream", [False, True], ids=["one", "two"])
def test_gradcheck_float64(device, backend, two_stream):
    x = make((2, 4, 3, 2), device, torch.float64).requires_grad_()
    inputs = (x,)
    if two_stream:
        inputs = (x, make((2, 3, 3, 2), device, torch.float64, seed=5).requires_grad_())
    torch.autograd.gradcheck(lambda *t: pool(*t, backend=backend), inputs)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("two_stream", [False, True], ids=["one", "two"])
def test_dead_channels_give_autograd_gradients(device, backend, two_stream):
    """Post-ReLU maps with dead channels have exactly-zero Gram entries: sign(0) = 0 there,
    and the gradient through them is 0, as autograd of the snippet gives."""
    x = make((2, 6, 4, 4), device, torch.float64, relu=True)
    x[:, 2] = 0
    x[1, 4] = 0
    y = make((2, 5, 4, 4), device, torch.float64, seed=3, relu=True) if two_stream else None
    if y is not None:
        y[:, 1] = 0
    dz = make((2, 6 * (5 if two_stream else 6)), device, torch.float64, seed=4)
    z, gx, gy = _grads(lambda a, b: pool(a, b, backend=backend), x, y, dz)
    z64, gx64, gy64 = _grads(seed_snippet, x, y, dz)
    torch.testing.assert_close(z, z64)
    torch.testing.assert_close(gx, gx64)
    if two_stream:
        torch.testing.assert_close(gy, gy64)


def post_relu_with_zero_gram_entries(device, dtype, seed, scale=1.0):
    """Non-negative maps (2, 8, 4, 4) whose Gram matrix has exact zeros in two ways: channel 1
    is dead in every sample (a zero row and column), and channels 2 and 3 are alive but never
    active at the same position (disjoint supports, so only G[2, 3] = G[3, 2] = 0). A kernel
    that predicts the eps term from dead channels alone miscounts the second kind; with a small
    scale, G << eps and the eps term is most of the norm, so such a miscount shows."""
    x = make((2, 8, 4, 4), "cpu", torch.float64, seed=seed, scale=scale, relu=True)
    x[:, 1] = 0
    x[:, 2, :2] = 0
    x[:, 3, 2:] = 0
    x[:, 2, 3, 0] = 0.75 * scale  # both stay alive whatever the draw
    x[:, 3, 0, 0] = 1.25 * scale
    return x.to(device, dtype)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("scale", [1.0, 1e-3], ids=["unit", "eps-dominated"])
def test_post_relu_dead_and_disjoint_channels(device, backend, dtype, scale):
    x = post_relu_with_zero_gram_entries(device, dtype, seed=11, scale=scale)
    z = pool(x, backend=backend).reshape(2, 8, 8)
    z64 = seed_snippet(x.double()).reshape(2, 8, 8)
    assert_close(z, z64, dtype)
    # sign(0) = 0: exactly the zero Gram entries give z = 0, never sqrt(eps) / norm.
    a = x.double().flatten(2)
    zero = torch.bmm(a, a.transpose(1, 2)) == 0
    assert zero[:, 1].all() and zero[:, :, 1].all() and zero[:, 2, 3].all() and zero[:, 3, 2].all()
    assert (zero[:, 0].sum(1) == 1).all()  # channel 0 meets every live channel
    assert torch.equal(z64 == 0, zero)
    assert torch.equal(z == 0, zero)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("scale", [1.0, 1e-3], ids=["unit", "eps-dominated"])
def test_post_relu_disjoint_channels_gradients(device, backend, scale):
    x = post_relu_with_zero_gram_entries(device, torch.float64, seed=12, scale=scale)
    dz = make((2, 64), device, torch.float64, seed=13)
    z, gx, _ = _grads(lambda a, b: pool(a, b, backend=backend), x, None, dz)
    z64, gx64, _ = _grads(seed_snippet, x, None, dz)
    torch.testing.assert_close(z, z64)
    torch.testing.assert_close(gx, gx64)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_single_negative_value(device, backend, dtype):
    """Non-negative maps but one value: some Gram entries turn negative, so sum(G) is no longer
    sum(|G|) and a norm taken from the column sums (exact only for x >= 0) would be wrong."""
    x = make((2, 8, 4, 4), "cpu", torch.float64, seed=14, relu=True)
    x[1, 5, 2, 1] = -4.0
    x = x.to(device, dtype)
    z = pool(x, backend=backend)
    z64 = seed_snippet(x.double())
    g = torch.bmm(x.double().flatten(2), x.double().flatten(2).transpose(1, 2))
    assert (g[1] < 0).any() and not (g[0] < 0).any()  # the case the test is about
    assert (z64[1] < 0).any()
    assert_close(z, z64, dtype)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("d2", [None, 3], ids=["one", "two"])
def test_nan_input_gives_the_reference_nan_pattern(device, backend, dtype, d2):
    """One NaN in sample 0 makes its norm NaN, and F.normalize's clamp_min(norm, 1e-12) keeps
    it: the whole of z[0] is NaN, as are sample 0's gradients, while sample 1 is untouched. A
    max that drops NaN (fmax, max.f32) divides by 1e-12 instead and gives huge finite values."""
    x = make((2, 4, 3, 3), "cpu", torch.float64, seed=15)
    x[0, 1, 2, 0] = float("nan")
    y = None if d2 is None else make((2, d2, 3, 3), "cpu", torch.float64, seed=16)
    dz = make((2, 4 * (4 if d2 is None else d2)), "cpu", torch.float64, seed=17)
    z64, gx64, gy64 = _grads(seed_snippet, x, y, dz)
    assert z64[0].isnan().all() and not z64[1].isnan().any()  # the case the test is about
    z, gx, gy = _grads(
        lambda a, b: pool(a, b, backend=backend),
        x.to(device, dtype),
        None if y is None else y.to(device, dtype),
        dz.to(device),
    )
    assert torch.equal(z.isnan().cpu(), z64.isnan())
    assert_close(z[1].cpu(), z64[1], dtype)
    assert torch.equal(gx.isnan().cpu(), gx64.isnan())
    if y is not None:
        assert torch.equal(gy.isnan().cpu(), gy64.isnan())


@pytest.mark.skipif(
    "cpu" not in cookbook_ops.available_backends("cpu", OP), reason="no C++ CPU kernels"
)
@pytest.mark.parametrize("d2", [None, 9], ids=["one", "two"])
# torch.backends.mkldnn.flags() itself warns about a GPU-only TF32 setting.
@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
def test_cpu_bf16_backward_without_onednn(d2):
    """With oneDNN switched off the CPU backward keeps dS in fp32 and multiplies in fp32 (the
    path of CPUs without native bfloat16); it must match the snippet like the bfloat16-GEMM
    path does (that one is covered by the tests above). D = 70: two 64-wide blocks per side,
    off-diagonal pairs and a ragged edge."""
    with torch.backends.mkldnn.flags(enabled=False):
        test_matches_seed_snippet_forward_and_backward(
            "cpu", "cpu", torch.bfloat16, (2, 70, 3, 3), d2, relu=True
        )


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_fp16_large_activations_do_not_overflow(device, backend):
    """Values ~60 over 28x28: the unscaled Gram sum (~2.8e6) would overflow fp16."""
    x = (make((2, 8, 28, 28), device, torch.float32).abs() * 60).to(torch.float16)
    z = pool(x, backend=backend)
    assert torch.isfinite(z).all()
    assert_close(z, seed_snippet(x.double()), torch.float16)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_non_contiguous_and_channels_last(device, backend):
    base = make((2, 6, 5, 4), device, torch.float32)
    cases = {
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "sliced": make((2, 12, 5, 4), device, torch.float32)[:, ::2],
        "transposed_spatial": base.transpose(2, 3),
    }
    for name, x in cases.items():
        z, gx, _ = _grads(
            lambda a, b: pool(a, b, backend=backend),
            x,
            None,
            make((2, 36), device, torch.float64, seed=7),
        )
        z64, gx64, _ = _grads(
            seed_snippet, x.double(), None, make((2, 36), device, torch.float64, seed=7)
        )
        assert_close(z, z64, torch.float32)
        assert_close(gx, gx64, torch.float32)
        assert gx.shape == x.shape, name


@pytest.mark.parametrize("device,backend", compiled_backend_params(OP))
@pytest.mark.parametrize("two_stream", [False, True], ids=["one", "two"])
def test_opcheck(device, backend, two_stream):
    name = _library.twin(_library.BILINEAR_FORWARD, backend)
    for dtype in (torch.float64, torch.float32):
        x = make((2, 5, 6), device, dtype).requires_grad_()
        y = make((2, 3, 6), device, dtype, seed=1).requires_grad_() if two_stream else None
        torch.library.opcheck(_library.op(name), (x, y, 1e-5))


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_compile_fullgraph_forward_backward(device, backend):
    torch._dynamo.reset()
    head = torch.compile(lambda x, y: pool(x, y, backend=backend), fullgraph=True)
    x = make((2, 6, 3, 3), device, torch.float32)
    y = make((2, 4, 3, 3), device, torch.float32, seed=1)
    dz = make((2, 24), device, torch.float32, seed=2)
    z, gx, gy = _grads(head, x, y, dz)
    z64, gx64, gy64 = _grads(seed_snippet, x.double(), y.double(), dz.double())
    assert_close(z, z64, torch.float32)
    assert_close(gx, gx64, torch.float32)
    assert_close(gy, gy64, torch.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_module(device):
    head = BilinearPooling(eps=1e-5).to(device)
    x = make((3, 4, 2, 2), device, torch.float64)
    torch.testing.assert_close(head(x), seed_snippet(x))
    assert "eps=1e-05" in repr(head)


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_bad_inputs_raise_clear_errors(device, backend):
    x = make((2, 4, 3, 3), device, torch.float32)
    with pytest.raises(ValueError, match="x must be"):
        pool(x[0, 0], backend=backend)
    with pytest.raises(ValueError, match="batch mismatch"):
        pool(x, make((3, 4, 3, 3), device, torch.float32), backend=backend)
    with pytest.raises(ValueError, match="spatial size mismatch"):
        pool(x, make((2, 4, 3, 2), device, torch.float32), backend=backend)
    with pytest.raises(ValueError, match="same rank"):
        pool(x, make((2, 4, 9), device, torch.float32), backend=backend)
    with pytest.raises(ValueError, match="eps"):
        pool(x, eps=0.0, backend=backend)
    with pytest.raises(ValueError, match="eps"):
        pool(x, eps=-1e-5, backend=backend)
    with pytest.raises(TypeError, match="y is"):
        pool(x, x.double(), backend=backend)
    with pytest.raises(TypeError, match="x must be a floating"):
        pool(x.long(), backend=backend)
    with pytest.raises(ValueError, match="eps"):
        BilinearPooling(eps=0)


def test_eps_is_honoured():
    x = make((2, 4, 3, 3), "cpu", torch.float64)
    for eps in (1e-3, 1e-8):
        torch.testing.assert_close(pool(x, eps=eps), seed_snippet(x, eps=eps))
    assert not torch.allclose(pool(x, eps=1e-1), pool(x, eps=1e-8))


def test_all_zero_input_gives_zero_output_and_gradient():
    x = torch.zeros(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    z = pool(x)
    assert torch.equal(z, torch.zeros_like(z))
    z.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    y = x.detach().requires_grad_()
    seed_snippet(y).sum().backward()
    assert torch.equal(y.grad, x.grad)


TRITON_PARAMS = [p for p in backend_params(OP) if p.values[1] == "triton"]


@pytest.mark.parametrize("device,backend", TRITON_PARAMS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_triton_recomputed_forward_equals_stored_v(device, backend, dtype, monkeypatch):
    """One stream in 16 bits the Triton forward recomputes each tile instead of storing v; z
    and the norm must be what the store-and-normalize path gives (bit for bit where the sum of
    squares is accumulated in a fixed order, as in the interpreter)."""
    from cookbook_ops.triton import bilinear_pool as triton_pool

    forward = _library.op_for(OP, "triton")
    x = make((3, 140, 5), device, dtype, seed=6, relu=True)
    assert triton_pool._recomputes(dtype, symmetric=True)
    z, norm = forward(x, None, 1e-5)
    monkeypatch.setattr(triton_pool, "_recomputes", lambda dtype, symmetric: False)
    z_stored, norm_stored = forward(x, None, 1e-5)
    if device == "cpu":
        assert torch.equal(norm, norm_stored)
        assert torch.equal(z, z_stored)
    else:
        # Atomic adds of the tiles' sums of squares land in any order on a GPU.
        torch.testing.assert_close(norm, norm_stored, rtol=1e-6, atol=0)
        torch.testing.assert_close(
            z.float(), z_stored.float(), rtol=TOLERANCES[dtype]["rtol"], atol=0
        )
    # Lower triangle mirrored: one stream gives a symmetric (D, D) matrix per sample.
    square = z.reshape(3, 140, 140)
    assert torch.equal(square, square.transpose(1, 2))
