"""Property-based tests: every op and backend against the reference and PyTorch over random
shapes, dtypes, layouts, extreme values and arguments; gradients of every floating input that
may require grad, to first and second order; eager against torch.compile.

CI runs a fixed, derandomized profile (the same examples every run) sized for a few minutes
on two cores with the Triton interpreter; the interpreted Triton backend gets fewer examples.
``HYPOTHESIS_PROFILE=thorough`` explores more (random, many more examples).
"""

import os

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close_dtype, backend_params, interpreted

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cookbook_ops  # noqa: E402
from cookbook_ops import _library  # noqa: E402

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("ci", derandomize=True, max_examples=25, **_COMMON)
settings.register_profile("thorough", max_examples=500, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
# Examples per test: the Triton interpreter runs a kernel thousands of times slower.
EXAMPLES = settings.get_profile(PROFILE).max_examples
INTERPRETED_EXAMPLES = max(4, EXAMPLES // 5)

FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def examples(device, backend, divisor=1):
    n = INTERPRETED_EXAMPLES if interpreted(backend, device) else EXAMPLES
    return settings(max_examples=max(2, n // divisor))


def dtypes_for(device, backend):
    # The interpreter has no 16-bit arithmetic worth its time; fp32/fp64 there.
    return FLOATS[:2] if interpreted(backend, device) else FLOATS


# actual against expected at the tolerance of dtype; NaN matches NaN, inf matches inf.
close = assert_close_dtype


def finite_scale(t):
    finite = t[torch.isfinite(t)]
    return max(1.0, float(finite.abs().max())) if finite.numel() else 1.0


def random_tensor(data, shape, dtype, device, *, extremes=(), scale=None):
    """Random values times a drawn magnitude (1e-3 .. 1e3), optionally with some entries set
    to the given extreme values."""
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    g = torch.Generator().manual_seed(seed)
    if scale is None:
        scale = data.draw(st.sampled_from([1e-3, 1.0, 10.0, 1e3]), label="scale")
    t = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    if extremes and t.numel():
        count = data.draw(st.integers(0, min(3, t.numel())), label="n_extremes")
        flat = t.view(-1)
        for _ in range(count):
            i = data.draw(st.integers(0, t.numel() - 1), label="at")
            flat[i] = data.draw(st.sampled_from(extremes), label="extreme")
    return t.to(device, dtype)


def draw_layout(data, t):
    """The same values as a contiguous tensor, a strided view (stride 2 in the last dim) or a
    transposed copy, so that kernels see non-contiguous inputs."""
    kind = data.draw(st.sampled_from(["contiguous", "sliced", "transposed"]), label="layout")
    if kind == "sliced" and t.dim() >= 1:
        wide = torch.empty(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype, device=t.device)
        wide[..., ::2] = t
        return wide[..., ::2]
    if kind == "transposed" and t.dim() == 2:
        return t.t().contiguous().t()
    return t


def grads(out, inputs, grad_out):
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    return torch.autograd.grad(out, wanted, grad_out, allow_unused=True)


# --- label-smoothed cross-entropy -------------------------------------------------------------


def draw_ce_case(data, device, backend, two_targets=False):
    dtype = data.draw(st.sampled_from(dtypes_for(device, backend)), label="dtype")
    n = data.draw(st.integers(0, 6), label="N")
    c = data.draw(st.integers(1, 9), label="C")
    smoothing = data.draw(st.sampled_from([0.0, 0.1, 1.0, 0.37]), label="smoothing")
    convention = data.draw(
        st.sampled_from(["uniform", "others", "lsr"] if c >= 2 else ["uniform"]),
        label="convention",
    )
    # -inf masking without smoothing is the subject of the drop-in cross-entropy work; here a
    # -inf logit comes only with smoothing (every backend and PyTorch give inf there).
    extremes = (float("inf"), float("nan")) + ((float("-inf"),) if smoothing > 0 else ())
    with_extremes = data.draw(st.booleans(), label="extremes")
    logits = random_tensor(data, (n, c), dtype, device, extremes=extremes if with_extremes else ())
    logits = draw_layout(data, logits)

    def target():
        t = data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n), label="target")
        t = torch.tensor(t, dtype=torch.int64).reshape(n)
        if n and data.draw(st.booleans(), label="ignored"):
            t[data.draw(st.integers(0, n - 1), label="ignored_row")] = -100
        return t.to(device)

    targets = [target()] + ([target()] if two_targets else [])
    weight = None
    if data.draw(st.booleans(), label="weighted"):
        weight = (torch.rand(c, dtype=torch.float64) + 0.5).to(device)
    reduction = data.draw(st.sampled_from(["none", "mean", "sum"]), label="reduction")
    return dtype, logits, targets, weight, smoothing, convention, reduction


@pytest.mark.parametrize("device,backend", backend_params(_library.LSCE_FORWARD))
def test_label_smoothing_cross_entropy_properties(device, backend):
    @examples(device, backend)
    @given(st.data())
    def check(data):
        dtype, logits, (target,), weight, smoothing, convention, reduction = draw_ce_case(
            data, device, backend
        )
        kwargs = dict(weight=weight, reduction=reduction, convention=convention)
        x = logits.detach().requires_grad_()
        x_ref = logits.detach().requires_grad_()
        out = cookbook_ops.label_smoothing_cross_entropy(
            x, target, smoothing, **kwargs, backend=backend
        )
        ref = cookbook_ops.label_smoothing_cross_entropy(
            x_ref, target, smoothing, **kwargs, backend="reference"
        )
        c = logits.shape[1]
        scale = finite_scale(logits) * c
        close(out, ref, dtype, scale)
        if convention == "uniform":
            w = None if weight is None else weight.to(dtype)
            torch_out = F.cross_entropy(
                logits.double(),
                target,
                weight=None if w is None else w.double(),
                reduction=reduction,
                label_smoothing=smoothing,
            )
            close(out, torch_out, dtype, scale)
        if logits.numel():
            g = torch.rand_like(out) + 0.5
            (gx,) = grads(out, [x], g)
            (gx_ref,) = grads(ref, [x_ref], g)
            close(gx, gx_ref, dtype, 2.0)

    check()


@pytest.mark.parametrize("device,backend", backend_params(_library.MIXUP_CE_FORWARD))
def test_mixup_cross_entropy_properties(device, backend):
    @examples(device, backend)
    @given(st.data())
    def check(data):
        dtype, logits, (a, b), weight, smoothing, convention, reduction = draw_ce_case(
            data, device, backend, two_targets=True
        )
        n = logits.shape[0]
        lam_kind = data.draw(st.sampled_from(["float", "0d", "per_sample"]), label="lam")
        lam_values = torch.rand(max(n, 1), dtype=torch.float64)
        if n:
            lam_values[0] = data.draw(st.sampled_from([0.0, 1.0, 0.5]), label="lam0")
        lam_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        lam_requires_grad = lam_kind != "float"
        if lam_kind == "float":
            lam = lam_ref = float(lam_values[0]) if n else 0.25
        else:
            lam_t = lam_values[:n] if lam_kind == "per_sample" else lam_values[0]
            lam = lam_t.to(device, lam_dtype).requires_grad_()
            lam_ref = lam.detach().clone().requires_grad_()
        kwargs = dict(weight=weight, reduction=reduction, convention=convention)
        x = logits.detach().requires_grad_()
        x_ref = logits.detach().requires_grad_()
        out = cookbook_ops.mixup_cross_entropy(x, a, b, lam, smoothing, **kwargs, backend=backend)
        ref = cookbook_ops.mixup_cross_entropy(
            x_ref, a, b, lam_ref, smoothing, **kwargs, backend="reference"
        )
        scale = finite_scale(logits) * logits.shape[1]
        close(out, ref, dtype, scale)
        if convention == "uniform":
            w = None if weight is None else weight.double()
            lam64 = lam_ref.detach().double() if lam_requires_grad else lam_ref

            def ce(t):
                return F.cross_entropy(
                    logits.double(), t, weight=w, reduction="none", label_smoothing=smoothing
                )

            if reduction == "mean":

                def denom(t):
                    valid = t != -100
                    if w is None:
                        return valid.sum()
                    return torch.where(valid, w[t.clamp_min(0)], 0).sum()

                torch_out = (lam64 * ce(a)).sum() / denom(a) + ((1 - lam64) * ce(b)).sum() / denom(
                    b
                )
            else:
                torch_out = lam64 * ce(a) + (1 - lam64) * ce(b)
                if reduction == "sum":
                    torch_out = torch_out.sum()
            close(out, torch_out, dtype, scale)
        if logits.numel():
            g = torch.rand_like(out) + 0.5
            got = grads(out, [x, lam if lam_requires_grad else None], g)
            want = grads(ref, [x_ref, lam_ref if lam_requires_grad else None], g)
            for actual, expected in zip(got, want):
                close(actual, expected, dtype, 2.0 * scale)

    check()


# --- bilinear pooling ---------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(_library.BILINEAR_FORWARD))
def test_bilinear_pool_properties(device, backend):
    @examples(device, backend)
    @given(st.data())
    def check(data):
        dtype = data.draw(st.sampled_from(dtypes_for(device, backend)), label="dtype")
        n = data.draw(st.integers(0, 3), label="N")
        d1 = data.draw(st.integers(1, 5), label="D1")
        d2 = data.draw(st.one_of(st.none(), st.integers(1, 4)), label="D2")
        h, w = data.draw(st.integers(1, 3), label="H"), data.draw(st.integers(1, 4), label="W")
        x = random_tensor(data, (n, d1, h, w), dtype, device)
        if data.draw(st.booleans(), label="channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        if data.draw(st.booleans(), label="relu"):
            x = x.clamp_min(0)  # post-ReLU maps: exact-zero Gram entries
        y = None if d2 is None else random_tensor(data, (n, d2, h, w), dtype, device)
        eps = data.draw(st.sampled_from([1e-5, 1e-2]), label="eps")
        xs = [x.detach().requires_grad_(), None if y is None else y.detach().requires_grad_()]
        # The oracle is the reference in float64: a float32 reference carries rounding noise of
        # its own (amplified by 1/||y|| when the norm is small), which an exact kernel misses.
        refs = [t if t is None else t.detach().double().requires_grad_() for t in (x, y)]
        out = cookbook_ops.bilinear_pool(*xs, eps=eps, backend=backend)
        ref = cookbook_ops.bilinear_pool(*refs, eps=eps, backend="reference")
        close(out, ref, dtype)
        # The cookbook's snippet in float64.
        a = x.double().reshape(n, d1, h * w)
        b = a if y is None else y.double().reshape(n, d2, h * w)
        gram = torch.bmm(a, b.transpose(1, 2)) / (h * w)
        snippet = F.normalize(
            (gram.sign() * (gram.abs() + eps).sqrt()).reshape(n, -1)
            if n
            else gram.reshape(0, gram.shape[1] * gram.shape[2])
        )
        close(out, snippet, dtype)
        # A non-symmetric upstream gradient, drawn through hypothesis so that an example
        # replays exactly.
        g = random_tensor(data, out.shape, out.dtype, device, scale=1.0)
        # Gradients are judged against their largest entry: with G << eps the backward divides
        # by |y| ~ sqrt(eps), so float32 rounding grows with the gradient's scale.
        for actual, expected in zip(grads(out, xs, g), grads(ref, refs, g.double())):
            close(actual, expected, dtype, 4.0 * finite_scale(expected))

    check()


# --- mixup / CutMix blends --------------------------------------------------------------------


def draw_blend_input(data, device, backend, allow_uint8=True):
    dtypes = dtypes_for(device, backend) + ([torch.uint8] if allow_uint8 else [])
    dtype = data.draw(st.sampled_from(dtypes), label="dtype")
    n = data.draw(st.integers(0, 5), label="N")
    shape = data.draw(
        st.sampled_from([(2, 3, 4), (1, 1, 5), (3, 2, 2), (7,)]), label="sample_shape"
    )
    if dtype == torch.uint8:
        seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 256, (n,) + shape, generator=g, dtype=torch.uint8).to(device)
    else:
        extremes = (float("inf"), float("-inf"), float("nan"))
        x = random_tensor(
            data,
            (n,) + shape,
            dtype,
            device,
            extremes=extremes if data.draw(st.booleans(), label="ext") else (),
        )
    if len(shape) == 3 and data.draw(st.booleans(), label="channels_last"):
        x = x.contiguous(memory_format=torch.channels_last)
    elif data.draw(st.booleans(), label="sliced"):
        x = draw_layout(data, x)
    return dtype, x


def draw_permutation(data, n, device):
    perm = data.draw(st.permutations(list(range(n))), label="index")
    return torch.tensor(perm, dtype=torch.int64).reshape(n).to(device)


def draw_lam(data, n, dtype, device):
    kind = data.draw(st.sampled_from(["float", "0d", "per_sample"]), label="lam_kind")
    values = data.draw(
        st.lists(
            st.sampled_from([0.0, 1.0, 0.5, 0.123, 0.9]), min_size=max(n, 1), max_size=max(n, 1)
        ),
        label="lam",
    )
    if kind == "float":
        return values[0]
    lam_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    lam = torch.tensor(values if kind == "per_sample" and n else values[0], dtype=lam_dtype)
    return lam.reshape(n) if kind == "per_sample" and n else lam.reshape(()).to(device)


def _to(lam, device):
    return lam.to(device) if isinstance(lam, torch.Tensor) else lam


@pytest.mark.parametrize("device,backend", backend_params(_library.MIXUP_FORWARD))
def test_mixup_properties(device, backend):
    @examples(device, backend)
    @given(st.data())
    def check(data):
        dtype, x = draw_blend_input(data, device, backend)
        n = x.shape[0]
        index = draw_permutation(data, n, device)
        lam = _to(draw_lam(data, n, dtype, device), device)
        floating = dtype.is_floating_point
        lam_grad = floating and isinstance(lam, torch.Tensor)
        xs = x.detach().requires_grad_(floating)
        xr = x.detach().requires_grad_(floating)
        lam_k = lam.detach().clone().requires_grad_() if lam_grad else lam
        lam_r = lam.detach().clone().requires_grad_() if lam_grad else lam
        out = cookbook_ops.mixup(xs, lam_k, index, backend=backend)
        ref = cookbook_ops.mixup(xr, lam_r, index, backend="reference")
        assert out.dtype == x.dtype and out.shape == x.shape
        # channels_last stays channels_last; everything else comes back contiguous
        channels_last = (
            x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()
        )
        layout = torch.channels_last if channels_last else torch.contiguous_format
        assert out.is_contiguous(memory_format=layout)
        if floating:
            close(out, ref, dtype, finite_scale(x))
            g = torch.randn_like(out)
            got = grads(out, [xs, lam_k if lam_grad else None], g)
            want = grads(ref, [xr, lam_r if lam_grad else None], g)
            for actual, expected in zip(got, want):
                close(actual, expected, dtype, finite_scale(x) * max(1, x[0].numel() if n else 1))
        else:
            assert (out.int() - ref.int()).abs().max().item() <= 1 if n else True
        # The in-place pair swap: a random involution (pairs and fixed points).
        pairs = list(range(n))
        order = data.draw(st.permutations(list(range(n))), label="pair_order")
        for i in range(0, n - 1, 2):
            if data.draw(st.booleans(), label="pair"):
                a, b = order[i], order[i + 1]
                pairs[a], pairs[b] = b, a
        pairs = torch.tensor(pairs, dtype=torch.int64).reshape(n).to(device)
        lam_p = lam.detach() if isinstance(lam, torch.Tensor) else lam
        y = x.clone()
        cookbook_ops.mixup_pairs_(y, lam_p, pairs, backend=backend)
        expected = cookbook_ops.mixup(x, lam_p, pairs, backend="reference")
        fixed = pairs == torch.arange(n, device=device)
        expected[fixed] = x[fixed]  # exactly unchanged, inf and NaN included
        if floating:
            close(y, expected, dtype, finite_scale(x))
            assert torch.equal(y[fixed], x[fixed]) or bool(
                (y[fixed].isnan() == x[fixed].isnan()).all()
            )
        else:
            assert (y.int() - expected.int()).abs().max().item() <= 1 if n else True

    check()


@pytest.mark.parametrize("device,backend", backend_params(_library.CUTMIX_FORWARD))
def test_cutmix_properties(device, backend):
    @examples(device, backend)
    @given(st.data())
    def check(data):
        dtypes = dtypes_for(device, backend) + [torch.uint8]
        dtype = data.draw(st.sampled_from(dtypes), label="dtype")
        n = data.draw(st.integers(0, 4), label="N")
        c, h, w = (
            data.draw(st.integers(1, 3), label="C"),
            data.draw(st.integers(1, 5), label="H"),
            data.draw(st.integers(1, 6), label="W"),
        )
        if dtype == torch.uint8:
            x = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8).to(device)
        else:
            x = random_tensor(data, (n, c, h, w), dtype, device)
        if data.draw(st.booleans(), label="channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        rows = []
        for _ in range(n):
            y0 = data.draw(st.integers(0, h), label="y0")
            y1 = data.draw(st.integers(y0, h), label="y1")
            x0 = data.draw(st.integers(0, w), label="x0")
            x1 = data.draw(st.integers(x0, w), label="x1")
            rows.append([y0, x0, y1, x1])
        boxes = torch.tensor(rows, dtype=torch.int64).reshape(n, 4).to(device)
        index = draw_permutation(data, n, device)
        floating = dtype.is_floating_point
        xs = x.detach().requires_grad_(floating)
        xr = x.detach().requires_grad_(floating)
        out, lam = cookbook_ops.cutmix(xs, boxes, index, backend=backend)
        ref, lam_ref = cookbook_ops.cutmix(xr, boxes, index, backend="reference")
        assert torch.equal(out.detach(), ref.detach()) or bool(
            ((out == ref) | (out.isnan() & ref.isnan())).all()
        )
        torch.testing.assert_close(lam, lam_ref)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        torch.testing.assert_close(lam, 1 - area.float() / (h * w))
        if floating and n:
            g = torch.randn_like(out)
            (gx,) = grads(out, [xs], g)
            (gr,) = grads(ref, [xr], g)
            close(gx, gr, dtype, 2.0)

    check()


# --- second order -----------------------------------------------------------------------------


def _second_order_case(data, device, op):
    n = data.draw(st.integers(1, 3), label="N")
    if op == "lsce" or op == "mixup_ce":
        c = data.draw(st.integers(1, 4), label="C")
        logits = random_tensor(data, (n, c), torch.float64, device, scale=3.0)
        ta = torch.tensor(
            data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), device=device
        )
        tb = torch.tensor(
            data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), device=device
        )
        smoothing = data.draw(st.sampled_from([0.0, 0.2]), label="smoothing")
        reduction = data.draw(st.sampled_from(["none", "mean", "sum"]), label="reduction")
        weight = (
            (torch.rand(c, dtype=torch.float64) + 0.5).to(device)
            if data.draw(st.booleans(), label="weighted")
            else None
        )
        if op == "lsce":
            return (
                (logits,),
                lambda be: (
                    lambda x: cookbook_ops.label_smoothing_cross_entropy(
                        x, ta, smoothing, weight=weight, reduction=reduction, backend=be
                    )
                ),
            )
        lam = torch.rand(n, dtype=torch.float64, device=device).requires_grad_()
        return (
            (logits, lam),
            lambda be: (
                lambda x, lam: cookbook_ops.mixup_cross_entropy(
                    x, ta, tb, lam, smoothing, weight=weight, reduction=reduction, backend=be
                )
            ),
        )
    if op == "bilinear":
        d1, m = data.draw(st.integers(1, 3), label="D1"), data.draw(st.integers(1, 3), label="M")
        x = random_tensor(data, (n, d1, m), torch.float64, device, scale=1.0)
        if data.draw(st.booleans(), label="two_streams"):
            y = random_tensor(
                data, (n, data.draw(st.integers(1, 2)), m), torch.float64, device, scale=1.0
            )
            return (x, y), lambda be: lambda x, y: cookbook_ops.bilinear_pool(x, y, backend=be)
        return (x,), lambda be: lambda x: cookbook_ops.bilinear_pool(x, backend=be)
    x = random_tensor(data, (n, 1, 2, 3), torch.float64, device, scale=1.0)
    index = draw_permutation(data, n, device)
    if op == "mixup":
        lam = torch.rand(n, dtype=torch.float64, device=device).requires_grad_()
        return (x, lam), lambda be: lambda x, lam: cookbook_ops.mixup(x, lam, index, backend=be)
    boxes = torch.tensor([[0, 1, 2, 3]] * n, device=device)
    return (x,), lambda be: lambda x: cookbook_ops.cutmix(x, boxes, index, backend=be)[0]


SECOND_ORDER = {
    "lsce": _library.LSCE_FORWARD,
    "mixup_ce": _library.MIXUP_CE_FORWARD,
    "bilinear": _library.BILINEAR_FORWARD,
    "mixup": _library.MIXUP_FORWARD,
    "cutmix": _library.CUTMIX_FORWARD,
}


@pytest.mark.parametrize("op", list(SECOND_ORDER))
def test_second_order_matches_reference(op):
    """The Hessian-vector products of every backend equal the reference's (float64), and
    gradgradcheck holds; a random vector against a random upstream gradient."""
    cases = [p.values for p in backend_params(SECOND_ORDER[op]) if p.values[1] != "reference"]

    @settings(max_examples=max(3, EXAMPLES // 4))
    @given(st.data())
    def check(data):
        inputs, make = _second_order_case(data, "cpu", op)
        inputs = [t.detach().requires_grad_() for t in inputs]
        ref_fn = make("reference")
        out_ref = ref_fn(*inputs)
        g = torch.randn_like(out_ref)
        v = [torch.randn_like(t) for t in inputs]

        def hvp(fn):
            out = fn(*inputs)
            first = torch.autograd.grad(out, inputs, g, create_graph=True)
            dot = sum((f * vi).sum() for f, vi in zip(first, v))
            if not dot.requires_grad:  # a linear op (CutMix): its gradient is a constant
                return [None] * len(inputs)
            return torch.autograd.grad(dot, inputs, allow_unused=True)

        want = hvp(ref_fn)
        for _device, backend in cases:
            got = hvp(make(backend))
            for a, b in zip(got, want):
                if b is None:
                    assert a is None or a.abs().max() == 0
                else:
                    assert a is not None, f"{backend}: no second derivative"
                    torch.testing.assert_close(a, b)
        if data.draw(st.booleans(), label="gradgradcheck"):
            for device, backend in cases:
                if not interpreted(backend, device):
                    assert torch.autograd.gradgradcheck(make(backend), inputs)

    check()


# --- normalize_images -------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(_library.NORMALIZE_IMAGES))
def test_normalize_images_properties(device, backend):
    @examples(device, backend, divisor=2)
    @given(st.data())
    def check(data):
        n = data.draw(st.integers(0, 3), label="N")
        c = data.draw(st.integers(1, 4), label="C")
        h, w = data.draw(st.integers(1, 4), label="H"), data.draw(st.integers(1, 9), label="W")
        layout = data.draw(st.sampled_from(["NHWC", "NCHW"]), label="layout")
        shape = (n, h, w, c) if layout == "NHWC" else (n, c, h, w)
        images = torch.randint(0, 256, shape, dtype=torch.uint8).to(device)
        mean = torch.rand(c).tolist()
        std = (torch.rand(c) + 0.1).tolist()
        flip = (torch.rand(n) < 0.5).to(device) if data.draw(st.booleans(), label="flip") else None
        mixup = None
        if n and data.draw(st.booleans(), label="mixup"):
            mixup = (torch.rand(n).to(device), draw_permutation(data, n, device))
        out_dtype = data.draw(
            st.sampled_from([torch.float32, torch.bfloat16, torch.float16]), label="out_dtype"
        )
        memory_format = data.draw(
            st.sampled_from([torch.contiguous_format, torch.channels_last]), label="memory_format"
        )
        kwargs = dict(
            layout=layout, flip=flip, mixup=mixup, out_dtype=out_dtype, memory_format=memory_format
        )
        out = cookbook_ops.normalize_images(images, mean, std, **kwargs, backend=backend)
        ref = cookbook_ops.normalize_images(images, mean, std, **kwargs, backend="reference")
        assert out.dtype == out_dtype and out.shape == ref.shape
        close(out, ref, out_dtype, 10.0)

    check()


# --- eager against torch.compile -----------------------------------------------------------


def _compile_cases():
    """(name, op) for the kernel backends of this machine that are not interpreted: compiled
    Triton under the interpreter is covered by the per-op compile tests."""
    names = []
    for name, op in SECOND_ORDER.items():
        for p in backend_params(op):
            device, backend = p.values
            if not interpreted(backend, device):
                names.append(pytest.param(name, device, backend, id=f"{name}-{device}-{backend}"))
    return names


@pytest.mark.parametrize("name,device,backend", _compile_cases())
def test_compiled_equals_eager(name, device, backend):
    """For the same inputs, torch.compile(fullgraph=True) gives the eager results and
    gradients (each example recompiles from scratch, so the count is small)."""

    @settings(max_examples=3)
    @given(st.data())
    def check(data):
        inputs, make = _second_order_case(data, device, name)
        fn = make(backend)
        eager_inputs = [t.detach().requires_grad_() for t in inputs]
        comp_inputs = [t.detach().requires_grad_() for t in inputs]
        torch._dynamo.reset()
        compiled = torch.compile(fn, fullgraph=True)
        out_e = fn(*eager_inputs)
        out_c = compiled(*comp_inputs)
        torch.testing.assert_close(out_c, out_e)
        g = torch.randn_like(out_e)
        for a, b in zip(grads(out_c, comp_inputs, g), grads(out_e, eager_inputs, g)):
            torch.testing.assert_close(a, b)

    check()
