"""Mixup module, MixedTarget and MixupCrossEntropy against the cookbook's expressions and timm.

The target of every batch is ``arange(N) + 100``: the returned ``target_b`` then names each
sample's partner, so the cookbook expressions can be evaluated from what the module returns.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICES, TOLERANCES, backend_params

from cookbook_ops import _library
from cookbook_ops.nn import MixedTarget, Mixup, MixupCrossEntropy
from cookbook_ops.nn.mixup import MixParams, beta_sample, cutmix_boxes

FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
OFFSET = 100
MODE_PAIRINGS = [
    ("batch", "permutation"),
    ("batch", "flip"),
    ("batch", "pairs"),
    ("pair", "flip"),
    ("pair", "pairs"),
    ("elem", "permutation"),
    ("elem", "flip"),
    ("elem", "pairs"),
]
MIX_KINDS = {
    "mixup": dict(mixup_alpha=1.0),
    "cutmix": dict(mixup_alpha=0.0, cutmix_alpha=1.0),
    "both": dict(mixup_alpha=0.8, cutmix_alpha=1.0),
    "minmax": dict(mixup_alpha=0.0, cutmix_minmax=(0.2, 0.8)),
}


def generator(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


def batch(n=6, shape=(3, 6, 7), dtype=torch.float32, device="cpu", seed=1):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    else:
        x = (torch.randn(n, *shape, generator=g, dtype=torch.float64) * 3).to(dtype)
    return x.to(device), torch.arange(n, device=device) + OFFSET


def partners(mt: MixedTarget) -> torch.Tensor:
    return mt.target_b - OFFSET


def per_sample(v, x):
    return v.reshape((-1,) + (1,) * (x.dim() - 1))


def cookbook_blend(x, lam, index):
    """The cookbook's ``lam * x + (1 - lam) * x[index]`` in float64, lam one per sample."""
    lam = per_sample(lam.double(), x)
    x = x.double()
    return lam * x + (1 - lam) * x[index]


def box_mask(boxes, x):
    mask = torch.zeros(x.shape[0], 1, x.shape[2], x.shape[3], dtype=torch.bool)
    for i, (y0, x0, y1, x1) in enumerate(boxes.tolist()):
        mask[i, :, y0:y1, x0:x1] = True
    return mask.to(x.device)


def expected_output(x, params: MixParams):
    """The mix the parameters describe, from first principles: a blend, a box copy, or the
    per-sample choice between them."""
    index = params.index
    blended = cookbook_blend(x, params.lam, index)
    if x.dtype == torch.uint8:
        blended = blended.round()
    if params.boxes is None:
        return blended
    cut = torch.where(box_mask(params.boxes, x), x[index], x).double()
    if params.use_cutmix is None:
        return cut
    return torch.where(per_sample(params.use_cutmix, x), cut, blended)


def assert_close(actual, expected, dtype):
    if dtype == torch.uint8:
        torch.testing.assert_close(actual, expected.to(torch.uint8), atol=0, rtol=0)
    else:
        torch.testing.assert_close(actual.double(), expected.double(), **TOLERANCES[dtype])


def sample_and_call(mixup_kwargs, x, target, device, seed=0):
    """What the module returns, and the parameters it drew (replayed from the same seed)."""
    params = Mixup(generator=generator(device, seed), **mixup_kwargs).sample(x)
    out, mt = Mixup(generator=generator(device, seed), **mixup_kwargs)(x.clone(), target)
    return out, mt, params


# --- the blend and its parameters ------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(_library.MIXUP_FORWARD))
@pytest.mark.parametrize("mode,pairing", MODE_PAIRINGS)
def test_mixup_blend_matches_cookbook_expression(device, backend, mode, pairing):
    dtypes = [torch.float32] if backend == "triton" else FLOATS + [torch.uint8]
    for dtype in dtypes:
        x, target = batch(dtype=dtype, device=device)
        kw = dict(mode=mode, pairing=pairing, backend=backend)
        out, mt, params = sample_and_call(kw, x, target, device)
        index = partners(mt)
        assert torch.equal(index, params.index) and torch.equal(mt.lam, params.lam)
        assert torch.equal(mt.target_a, target) and torch.equal(mt.target_b, target[index])
        assert mt.lam.dtype == torch.float32 and mt.lam.shape == (6,)
        assert out.dtype == dtype and out.shape == x.shape
        expected = cookbook_blend(x, mt.lam, index)
        assert_close(out, expected.round() if dtype == torch.uint8 else expected, dtype)


@pytest.mark.parametrize("mode,pairing", MODE_PAIRINGS)
def test_pairing_and_mode_structure(mode, pairing):
    n = 9
    x, target = batch(n=n, shape=(4,))
    _, mt = Mixup(mode=mode, pairing=pairing, generator=generator("cpu"))(x, target)
    index, lam = partners(mt), mt.lam
    position = torch.arange(n)
    assert torch.equal(torch.sort(index).values, position)  # a permutation
    if pairing == "flip":
        assert torch.equal(index, position.flip(0))
    if pairing == "pairs":
        assert torch.equal(index[index], position)
        assert int((index == position).sum()) == 1  # odd batch: exactly one left unpaired
    fixed = index == position
    assert torch.all(lam[fixed] == 1)
    assert torch.all((lam >= 0) & (lam <= 1))
    mixed = lam[~fixed]
    if mode == "batch":
        assert torch.all(mixed == mixed[0])
    elif mode == "pair":
        assert torch.equal(lam, lam[index])  # partners share their draw
        assert len(set(mixed.tolist())) == (n - 1) // 2
    else:
        assert len(set(mixed.tolist())) == len(mixed)


@pytest.mark.parametrize("device,backend", backend_params(_library.CUTMIX_FORWARD))
@pytest.mark.parametrize("kind", ["cutmix", "both", "minmax"])
@pytest.mark.parametrize(
    "mode,pairing", [("batch", "permutation"), ("pair", "pairs"), ("elem", "flip")]
)
def test_cutmix_and_both_match_box_copy(device, backend, kind, mode, pairing):
    dtypes = [torch.float32] if backend == "triton" else FLOATS + [torch.uint8]
    for dtype in dtypes:
        x, target = batch(n=8, dtype=dtype, device=device)
        choices = set()
        for seed in range(8 if mode == "batch" else 3):
            kw = dict(MIX_KINDS[kind], mode=mode, pairing=pairing, backend=backend)
            out, mt, params = sample_and_call(kw, x, target, device, seed)
            assert torch.equal(partners(mt), params.index)
            assert torch.equal(mt.lam, params.lam)
            assert_close(out, expected_output(x, params), dtype)
            if params.use_cutmix is not None:
                choices.update(params.use_cutmix.tolist())
        assert choices == ({False, True} if kind == "both" else set())


def test_pair_mode_cutmix_swaps_one_box():
    x, target = batch(n=8)
    for pairing in ("flip", "pairs"):
        kw = dict(MIX_KINDS["cutmix"], mode="pair", pairing=pairing, switch_prob=1.0)
        out, mt, params = sample_and_call(kw, x, target, "cpu")
        index = params.index
        assert torch.equal(params.boxes, params.boxes[index])  # partners share one box
        assert torch.equal(mt.lam, mt.lam[index])
        torch.testing.assert_close(out, expected_output(x, params).float(), atol=0, rtol=0)


def box_sides(boxes):
    return boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


@pytest.mark.parametrize("height,width", [(6, 7), (32, 32), (5, 40)])
def test_cutmix_boxes_inside_image_and_lam_from_area(height, width):
    x = torch.zeros(64, 1, height, width)
    corrected, drawn = (
        Mixup(
            generator=generator("cpu", 3), correct_lam=c, mode="elem", **MIX_KINDS["cutmix"]
        ).sample(x)
        for c in (True, False)
    )
    assert torch.equal(corrected.boxes, drawn.boxes)  # same draws, same boxes
    y0, x0, y1, x1 = drawn.boxes.unbind(1)
    assert torch.all((0 <= y0) & (y0 <= y1) & (y1 <= height))
    assert torch.all((0 <= x0) & (x0 <= x1) & (x1 <= width))
    h, w = box_sides(drawn.boxes)
    area_lam = 1 - (h * w).double() / (height * width)
    torch.testing.assert_close(corrected.lam.double(), area_lam, atol=1e-7, rtol=0)
    # Without correction lam is the Beta draw, and the box has sides int(side * sqrt(1 - lam))
    # (timm's rule) unless the image border clips it.
    ratio = torch.sqrt(1 - drawn.lam.double())
    cut_h = torch.floor(height * ratio).long()
    cut_w = torch.floor(width * ratio).long()
    inner_y = (y0 > 0) & (y1 < height)
    inner_x = (x0 > 0) & (x1 < width)
    assert torch.all(h <= cut_h) and torch.all(w <= cut_w)
    assert torch.equal(h[inner_y], cut_h[inner_y])
    assert torch.equal(w[inner_x], cut_w[inner_x])
    clipped = (h < cut_h) | (w < cut_w)
    assert torch.any(clipped)
    assert torch.all(corrected.lam >= drawn.lam - 1e-6)  # clipping only removes area
    assert torch.all(corrected.lam[clipped] > drawn.lam[clipped])


def test_cutmix_minmax_box_sides():
    height, width, low, high = 20, 30, 0.25, 0.75
    x = torch.zeros(200, 1, height, width)
    for correct_lam in (True, False):  # minmax implies correct_lam
        m = Mixup(
            mixup_alpha=0.0,
            cutmix_minmax=(low, high),
            mode="elem",
            correct_lam=correct_lam,
            generator=generator("cpu"),
        )
        assert m.cutmix_alpha == 1.0
        params = m.sample(x)
        fixed = params.index == torch.arange(200)
        h, w = box_sides(params.boxes[~fixed])
        assert h.min() == int(height * low) and h.max() == int(height * high) - 1
        assert w.min() == int(width * low) and w.max() == int(width * high) - 1
        y0, x0, y1, x1 = params.boxes.unbind(1)
        assert torch.all((y0 >= 0) & (y1 <= height) & (x0 >= 0) & (x1 <= width))
        assert y0.min() == 0 and x0.min() == 0  # timm: offsets 0..side-cut inclusive
        assert y1.max() == height and x1.max() == width
        area = (h * w).double()
        torch.testing.assert_close(params.lam[~fixed].double(), 1 - area / (height * width))
    with pytest.raises(ValueError, match="cutmix_minmax"):
        Mixup(cutmix_minmax=(0.5, 0.55)).sample(torch.zeros(2, 1, 4, 4))


@pytest.mark.parametrize("kind", list(MIX_KINDS))
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_prob_zero_is_identity(kind, mode):
    for dtype in (torch.float32, torch.uint8):
        x, target = batch(dtype=dtype)
        out, mt = Mixup(prob=0.0, mode=mode, generator=generator("cpu"), **MIX_KINDS[kind])(
            x.clone(), target
        )
        assert torch.equal(out, x)
        assert torch.equal(mt.lam, torch.ones(6))
        m = Mixup(mode=mode, **MIX_KINDS[kind])
        m.mixup_enabled = False
        out, mt = m(x.clone(), target)
        assert torch.equal(out, x) and torch.equal(mt.target_b, target)


def test_probabilities_per_sample():
    n = 4000
    x = torch.zeros(n, 1, 8, 8)
    params = Mixup(
        mixup_alpha=1.0,
        cutmix_alpha=1.0,
        prob=0.3,
        switch_prob=0.8,
        mode="elem",
        generator=generator("cpu"),
    ).sample(x)
    unmixed = (params.lam == 1).double().mean().item()
    assert abs(unmixed - 0.7) < 0.04
    assert abs(params.use_cutmix.double().mean().item() - 0.8) < 0.04
    cut = (params.boxes[:, 2] > params.boxes[:, 0]) & (params.boxes[:, 3] > params.boxes[:, 1])
    assert not torch.any(cut & ~params.use_cutmix)  # boxes only where CutMix was chosen
    for switch_prob, cutmix_share in ((0.0, 0.0), (1.0, 1.0)):
        p = Mixup(cutmix_alpha=1.0, switch_prob=switch_prob, mode="elem").sample(x[:50])
        assert p.use_cutmix.double().mean().item() == cutmix_share


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_beta_draw_moments(alpha):
    lam = beta_sample(torch.full((40000,), alpha, dtype=torch.float64), generator("cpu"))
    assert torch.all((lam >= 0) & (lam <= 1))
    variance = 1 / (4 * (2 * alpha + 1))
    assert abs(lam.mean().item() - 0.5) < 4 * math.sqrt(variance / 40000)
    assert abs(lam.var().item() - variance) < 0.05 * variance
    if alpha == 1.0:  # Beta(1, 1) is uniform: Kolmogorov-Smirnov distance
        ks = (torch.sort(lam).values - torch.linspace(0, 1, 40000, dtype=torch.float64)).abs()
        assert ks.max().item() < 0.01


def test_beta_draw_tiny_alpha_goes_to_zero_or_one():
    for alpha in (1e-3, 1e-30, 1e-300):
        lam = beta_sample(torch.full((4000,), alpha, dtype=torch.float64), generator("cpu"))
        assert not torch.any(torch.isnan(lam))
        near_edge = (lam < 1e-3) | (lam > 1 - 1e-3)
        assert near_edge.double().mean().item() > 0.98
        assert abs((lam > 0.5).double().mean().item() - 0.5) < 0.04


def test_odd_batch_pairs_leaves_one_sample_and_works_in_place():
    for dtype in FLOATS + [torch.uint8]:
        x, target = batch(n=7, dtype=dtype)
        y = x.clone()
        out, mt = Mixup(pairing="pairs", mode="elem", generator=generator("cpu"))(y, target)
        assert out is y  # mixup with random pairs blends in place
        index = partners(mt)
        single = index == torch.arange(7)
        assert int(single.sum()) == 1
        assert torch.equal(out[single], x[single]) and torch.all(mt.lam[single] == 1)
        expected = cookbook_blend(x, mt.lam, index)
        assert_close(out, expected.round() if dtype == torch.uint8 else expected, dtype)
        assert not torch.equal(out[~single], x[~single])


def test_pairs_falls_back_to_out_of_place_when_needed():
    x, target = batch(n=6)
    sliced = x[:, ::2]  # not dense: the in-place kernel refuses it
    out, mt = Mixup(pairing="pairs", generator=generator("cpu"))(sliced, target)
    assert_close(out, cookbook_blend(sliced, mt.lam, partners(mt)), torch.float32)
    leaf = x.clone().requires_grad_()
    out, mt = Mixup(pairing="pairs", generator=generator("cpu"))(leaf, target)
    out.sum().backward()
    index = partners(mt)
    expected = mt.lam + (1 - mt.lam)[torch.argsort(index)]
    torch.testing.assert_close(leaf.grad[:, 0, 0, 0], expected)


def test_generator_reproducibility():
    x, target = batch(n=8)
    for kind in MIX_KINDS:
        results = []
        for seed in (5, 5, 6):
            out, mt = Mixup(mode="elem", generator=generator("cpu", seed), **MIX_KINDS[kind])(
                x.clone(), target
            )
            results.append((out, mt))
        (out_a, mt_a), (out_b, mt_b), (out_c, mt_c) = results
        assert torch.equal(out_a, out_b) and torch.equal(mt_a.lam, mt_b.lam)
        assert torch.equal(mt_a.target_b, mt_b.target_b)
        assert not torch.equal(out_a, out_c) and not torch.equal(mt_a.lam, mt_c.lam)
        m = Mixup(mode="elem", generator=generator("cpu", 5), **MIX_KINDS[kind])
        first, second = m(x.clone(), target)[1], m(x.clone(), target)[1]
        assert not torch.equal(first.lam, second.lam)  # the generator advances


@pytest.mark.parametrize("kind", list(MIX_KINDS))
def test_channels_last_preserved(kind):
    for dtype in (torch.float32, torch.bfloat16, torch.uint8):
        x, target = batch(n=6, shape=(3, 6, 7), dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        out, mt, params = sample_and_call(dict(MIX_KINDS[kind], mode="elem"), x, target, "cpu")
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert_close(out, expected_output(x, params), dtype)


def test_feature_batches_and_edge_sizes():
    for shape in [(33,), (1,), (2, 3)]:
        x, target = batch(n=5, shape=shape)
        out, mt = Mixup(mode="elem", generator=generator("cpu"))(x, target)
        assert_close(out, cookbook_blend(x, mt.lam, partners(mt)), torch.float32)
    for n in (0, 1):
        for kind in MIX_KINDS:
            x, target = batch(n=n)
            out, mt = Mixup(**MIX_KINDS[kind])(x, target)
            assert out.shape == x.shape and mt.lam.shape == (n,)
            assert torch.equal(out, x)  # a lone sample is its own partner


def test_gradient_through_mixup_and_cutmix():
    x, target = batch(n=6, dtype=torch.float64)
    for kind in ("mixup", "both"):
        out_leaf = x.clone().requires_grad_()
        kw = dict(MIX_KINDS[kind], mode="elem")
        out, mt, params = sample_and_call(kw, out_leaf, target, "cpu")
        upstream = torch.randn_like(x)
        (grad,) = torch.autograd.grad(out, out_leaf, upstream)
        ref_leaf = x.clone().requires_grad_()
        (expected,) = torch.autograd.grad(expected_output(ref_leaf, params), ref_leaf, upstream)
        torch.testing.assert_close(grad, expected)


# --- targets and the loss --------------------------------------------------------------------


def soft_target_cross_entropy(logits, soft_target):
    """timm's SoftTargetCrossEntropy formula."""
    return torch.sum(-soft_target * F.log_softmax(logits, dim=-1), dim=-1).mean()


@pytest.mark.parametrize("device,backend", backend_params(_library.MIXUP_CE_FORWARD))
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_loss_matches_cookbook_expression(device, backend, mode):
    num_classes = 11
    for dtype in FLOATS:
        x, _ = batch(n=8, device=device)
        target = torch.randint(0, num_classes, (8,), device=device)
        m = Mixup(mode=mode, num_classes=num_classes, generator=generator(device))
        params = Mixup(mode=mode, generator=generator(device)).sample(x)
        _, mt = m(x, target)
        index = params.index
        assert torch.equal(mt.target_b, target[index])
        logits = torch.randn(8, num_classes, device=device).to(dtype)
        for smoothing in (0.0, 0.1):
            loss = MixupCrossEntropy(smoothing, backend=backend)(logits, mt)
            logits64 = logits.double()

            def ce(y, logits64=logits64, smoothing=smoothing):
                return F.cross_entropy(logits64, y, label_smoothing=smoothing, reduction="none")

            if mode == "batch":  # the cookbook's scalar-lam expression
                lam = mt.lam[index != torch.arange(8, device=device)][0].double()
                expected = lam * ce(target).mean() + (1 - lam) * ce(target[index]).mean()
            else:
                lam = mt.lam.double()
                expected = (lam * ce(target) + (1 - lam) * ce(target[index])).mean()
            assert_close(loss, expected, dtype)
            dense = mt.dense(num_classes, smoothing, dtype=torch.float64)
            assert_close(loss, soft_target_cross_entropy(logits64, dense), dtype)
        logits = logits.double()
        per_row = MixupCrossEntropy(0.1, reduction="none", backend=backend)(logits, mt)
        lam = mt.lam.double()
        ce_a = F.cross_entropy(logits, mt.target_a, label_smoothing=0.1, reduction="none")
        ce_b = F.cross_entropy(logits, mt.target_b, label_smoothing=0.1, reduction="none")
        torch.testing.assert_close(per_row, lam * ce_a + (1 - lam) * ce_b)


def test_loss_with_plain_target_and_gradient():
    logits = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 7, (5,))
    for reduction in ("mean", "sum", "none"):
        loss = MixupCrossEntropy(0.2, reduction=reduction)(logits, target)
        expected = F.cross_entropy(logits, target, label_smoothing=0.2, reduction=reduction)
        torch.testing.assert_close(loss, expected)
    mt = MixedTarget(target, target.flip(0), torch.rand(5), num_classes=7, smoothing=0.1)
    loss_fn = MixupCrossEntropy(0.1)
    torch.autograd.gradcheck(lambda t: loss_fn(t, mt), (logits,))
    (grad,) = torch.autograd.grad(loss_fn(logits, mt), logits)
    (expected,) = torch.autograd.grad(soft_target_cross_entropy(logits, mt.dense()), logits)
    torch.testing.assert_close(grad, expected, atol=1e-6, rtol=1e-6)


def test_dense_target():
    target_a, target_b = torch.tensor([0, 3, 2, 2]), torch.tensor([1, 3, 0, 2])
    lam = torch.tensor([0.25, 0.5, 1.0, 0.0])
    mt = MixedTarget(target_a, target_b, lam, num_classes=4, smoothing=0.2)
    off, on = 0.05, 0.85
    expected = torch.full((4, 4), off)
    expected[0, 0], expected[0, 1] = 0.25 * on + 0.75 * off, 0.25 * off + 0.75 * on
    expected[1, 3] = on
    expected[2, 2] = on
    expected[3, 2] = on
    torch.testing.assert_close(mt.dense(), expected)
    torch.testing.assert_close(mt.dense().sum(1), torch.ones(4))
    torch.testing.assert_close(mt.dense(smoothing=0.0)[0, :2], torch.tensor([0.25, 0.75]))
    assert mt.dense(num_classes=6, dtype=torch.float64).shape == (4, 6)
    moved = mt.to("meta")
    assert moved.lam.device.type == "meta" and moved.target_a.device.type == "meta"
    assert moved.num_classes == 4 and mt.lam.device.type == "cpu"
    _, from_module = Mixup(num_classes=9, label_smoothing=0.3)(*batch(n=4))
    assert from_module.num_classes == 9 and from_module.smoothing == 0.3
    with pytest.raises(ValueError, match="num_classes"):
        MixedTarget(target_a, target_b, lam).dense()
    with pytest.raises(ValueError, match="class indices"):
        mt.dense(num_classes=3)
    with pytest.raises(ValueError, match="smoothing"):
        mt.dense(smoothing=1.5)


# --- timm parity -----------------------------------------------------------------------------


def test_timm_dense_targets_and_flip_blend():
    mixup_module = pytest.importorskip("timm.data.mixup")
    num_classes, smoothing = 10, 0.1
    x, _ = batch(n=8)
    target = torch.randint(0, num_classes, (8,))
    for mode in ("batch", "pair", "elem"):
        m = Mixup(
            mode=mode,
            pairing="flip",
            num_classes=num_classes,
            label_smoothing=smoothing,
            generator=generator("cpu"),
        )
        out, mt = m(x.clone(), target)
        lam = mt.lam if mode != "batch" else float(mt.lam[0])
        lam_t = lam.unsqueeze(1) if mode != "batch" else lam
        timm_target = mixup_module.mixup_target(target, num_classes, lam_t, smoothing)
        torch.testing.assert_close(mt.dense(), timm_target)
        if mode == "batch":  # timm's _mix_batch blend, for the same lam
            reference = x.clone()
            flipped = reference.flip(0).mul_(1.0 - lam)
            reference.mul_(lam).add_(flipped)
            torch.testing.assert_close(out, reference)


@pytest.mark.parametrize("mode", ["pair", "elem"])
def test_timm_mixup_with_the_same_draws(mode):
    """timm's own Mixup, its per-element draws replaced by ours: same batch, same targets."""
    mixup_module = pytest.importorskip("timm.data.mixup")
    num_classes = 10
    x, _ = batch(n=8)
    target = torch.randint(0, num_classes, (8,))
    ours = Mixup(mode=mode, pairing="flip", num_classes=num_classes, generator=generator("cpu"))
    out, mt = ours(x.clone(), target)
    draws = mt.lam.numpy()[: 4 if mode == "pair" else 8]
    timm_mixup = mixup_module.Mixup(mode=mode, num_classes=num_classes)
    timm_mixup._params_per_elem = lambda size: (draws[:size], np.zeros(size, dtype=bool))
    timm_out, timm_target = timm_mixup(x.clone(), target)
    torch.testing.assert_close(out, timm_out)
    torch.testing.assert_close(mt.dense(), timm_target)


def test_timm_box_formula():
    mixup_module = pytest.importorskip("timm.data.mixup")
    rng = np.random.default_rng(0)
    for height, width in [(6, 7), (32, 32), (5, 40), (224, 224)]:
        for _ in range(50):
            lam = float(rng.uniform())
            seed = int(rng.integers(1 << 31))
            np.random.seed(seed)
            centre_y, centre_x = np.random.randint(0, height), np.random.randint(0, width)
            np.random.seed(seed)
            (yl, yh, xl, xh), timm_lam = mixup_module.cutmix_bbox_and_lam(
                (3, height, width), lam, correct_lam=True
            )
            box = cutmix_boxes(
                torch.tensor([lam], dtype=torch.float64),
                torch.tensor([centre_y]),
                torch.tensor([centre_x]),
                height,
                width,
            )
            assert box[0].tolist() == [yl, xl, yh, xh]
            area = (box[0, 2] - box[0, 0]) * (box[0, 3] - box[0, 1])
            assert abs(1 - area.item() / (height * width) - timm_lam) < 1e-12


# --- no host sync, compile -------------------------------------------------------------------


def _raise(*args, **kwargs):
    raise AssertionError("host sync in Mixup's sampling")


@pytest.mark.parametrize("kind", list(MIX_KINDS))
@pytest.mark.parametrize("mode,pairing", MODE_PAIRINGS)
def test_sampling_never_reads_tensor_values_on_host(monkeypatch, kind, mode, pairing):
    """CPU stand-in for the CUDA sync check: the sampling must not turn a tensor into a
    Python value. (The blend ops run value checks on CPU tensors only; the CUDA test below
    covers the whole call.)"""
    x, _ = batch(n=7)
    m = Mixup(mode=mode, pairing=pairing, prob=0.7, generator=generator("cpu"), **MIX_KINDS[kind])
    for name in ("item", "__bool__", "__int__", "__float__", "__index__", "tolist", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, _raise)
    with pytest.raises(AssertionError, match="host sync"):
        bool(torch.ones(()))  # the patch is live
    params = m.sample(x)
    monkeypatch.undo()
    assert params.lam.shape == (7,)


@pytest.mark.skipif("cuda" not in DEVICES, reason="needs a GPU")
@pytest.mark.parametrize("kind", list(MIX_KINDS))
@pytest.mark.parametrize("mode,pairing", MODE_PAIRINGS)
def test_cuda_call_never_syncs(kind, mode, pairing):
    x, target = batch(n=8, device="cuda")
    logits = torch.randn(8, 1000, device="cuda", requires_grad=True)
    kw = dict(MIX_KINDS[kind], mode=mode, pairing=pairing)
    m = Mixup(generator=generator("cuda"), **kw)
    loss_fn = MixupCrossEntropy(0.1)
    loss_fn(logits, m(x.clone(), target)[1]).backward()  # lazy initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out, mt = m(x.clone(), target)
        loss_fn(logits, mt).backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    out, mt, params = sample_and_call(kw, x, target, "cuda")
    assert torch.equal(partners(mt), params.index)
    assert_close(out, expected_output(x, params), torch.float32)


@pytest.mark.parametrize("kind", ["mixup", "both"])
def test_compile_fullgraph_training_step(kind):
    """Mixup + MixupCrossEntropy in one graph. A torch.Generator cannot be traced by dynamo
    (the draws that take it break the graph), so fullgraph is tested without one."""
    torch._dynamo.reset()
    m = Mixup(num_classes=7, mode="elem", **MIX_KINDS[kind])
    loss_fn = MixupCrossEntropy(0.1)

    def step(x, target, logits):
        mixed, mt = m(x, target)
        return mixed, mt, loss_fn(logits, mt)

    x, target = batch(n=6)
    target = target - OFFSET
    logits = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    mixed, mt, loss = torch.compile(step, fullgraph=True)(x, target, logits)
    assert isinstance(mt, MixedTarget)
    index = mt.target_b
    lam = mt.lam.double()
    if kind == "mixup":
        assert_close(mixed, cookbook_blend(x, mt.lam, index), torch.float32)

    def ce(y):
        return F.cross_entropy(logits, y, label_smoothing=0.1, reduction="none")

    expected = (lam * ce(target) + (1 - lam) * ce(target[index])).mean()
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, logits)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(grad, expected_grad)


def test_compile_with_generator_matches_eager():
    torch._dynamo.reset()
    x, target = batch(n=6)

    def run(seed, compiled):
        m = Mixup(mode="elem", generator=generator("cpu", seed), **MIX_KINDS["both"])
        fn = torch.compile(m) if compiled else m
        return fn(x.clone(), target)

    out_c, mt_c = run(4, True)
    out_e, mt_e = run(4, False)
    assert torch.equal(mt_c.target_b, mt_e.target_b)
    torch.testing.assert_close(mt_c.lam, mt_e.lam)
    torch.testing.assert_close(out_c, out_e)


# --- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(mixup_alpha=-1.0), ValueError, "mixup_alpha"),
        (dict(cutmix_alpha=float("nan")), ValueError, "cutmix_alpha"),
        (dict(mixup_alpha="1"), TypeError, "mixup_alpha"),
        (dict(mixup_alpha=0.0), ValueError, "nothing to mix"),
        (dict(prob=1.5), ValueError, "prob"),
        (dict(switch_prob=-0.1), ValueError, "switch_prob"),
        (dict(mode="sample"), ValueError, "mode"),
        (dict(pairing="shuffle"), ValueError, "pairing"),
        (dict(mode="pair"), ValueError, "pair"),
        (dict(cutmix_minmax=(0.2,)), ValueError, "cutmix_minmax"),
        (dict(cutmix_minmax=(0.8, 0.2)), ValueError, "cutmix_minmax"),
        (dict(cutmix_minmax=(0.2, 1.5)), ValueError, "cutmix_minmax"),
        (dict(cutmix_minmax="0.2,0.8"), TypeError, "cutmix_minmax"),
        (dict(cutmix_minmax=0.5), TypeError, "cutmix_minmax"),
        (dict(correct_lam=1), TypeError, "correct_lam"),
        (dict(label_smoothing=2.0), ValueError, "label_smoothing"),
        (dict(num_classes=0), ValueError, "num_classes"),
        (dict(generator=0), TypeError, "generator"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Mixup(**kwargs)


def test_bad_call_arguments():
    x, target = batch(n=4)
    m = Mixup()
    with pytest.raises(TypeError, match="target"):
        m(x, target.float())
    with pytest.raises(TypeError, match="target"):
        m(x, target.int())
    with pytest.raises(ValueError, match="target"):
        m(x, target[:3])
    with pytest.raises(ValueError, match="target"):
        m(x, target.to("meta"))
    with pytest.raises(TypeError, match="x"):
        m(x.int(), target)
    with pytest.raises(TypeError, match="x"):
        m(x.numpy(), target)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        Mixup(cutmix_alpha=1.0)(x.reshape(4, -1), target)
    with pytest.raises(ValueError, match="generator"):
        Mixup(generator=torch.Generator())(x.to("meta"), target.to("meta"))
    with pytest.raises(TypeError, match="target"):
        MixupCrossEntropy()(torch.randn(4, 3), [0, 1, 2, 0])
    with pytest.raises(ValueError, match="reduction"):
        MixupCrossEntropy(reduction="avg")
    with pytest.raises(ValueError, match="convention"):
        MixupCrossEntropy(convention="half")
