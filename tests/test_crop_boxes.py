"""Crop boxes: RandomResizedCrop's distribution drawn on the device, and Resize + CenterCrop's
source region."""

import math

import pytest
import torch
from conftest import DEVICES

import cookbook_ops

transforms = pytest.importorskip("torchvision.transforms", reason="torchvision is the oracle")
TF = pytest.importorskip("torchvision.transforms.v2.functional")

# Image sizes (H, W): typical, square, wide enough that most tries miss (about 3 in 4 boxes come
# from the fallback), and so wide that every box does; plus a tall one.
SIZES = [(375, 500), (224, 224), (100, 1000), (20, 2000), (900, 120)]
DRAWS = 20_000


def torchvision_boxes(height, width, n, scale, ratio, seed):
    """n boxes from torchvision's RandomResizedCrop.get_params (its CPU generator, seeded)."""
    torch.manual_seed(seed)
    image = torch.empty(1, height, width)
    return torch.tensor(
        [transforms.RandomResizedCrop.get_params(image, scale, ratio) for _ in range(n)]
    )


def fallback_box(height, width, ratio):
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return [(height - h) // 2, (width - w) // 2, h, w]


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs,
    evaluated at every sample value (ties included)."""
    a, _ = torch.sort(a.double())
    b, _ = torch.sort(b.double())
    values = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, values, right=True).double() / a.numel()
    cdf_b = torch.searchsorted(b, values, right=True).double() / b.numel()
    return float((cdf_a - cdf_b).abs().max())


# The KS threshold: the asymptotic critical value at significance 1e-4, c = sqrt(-ln(alpha/2)/2)
# = 2.23, times sqrt((n + m) / (n m)). The seeds are fixed, so the test is deterministic; a
# correct sampler passes at these seeds with margin (the statistics here are 0.002-0.01), and
# the threshold still catches a wrong one: drawing the area uniformly in [0.08, 1] of the
# *fitting* boxes only, or a linear instead of log-uniform ratio, moves the statistic of the
# typical size above 0.03 (checked in test_ks_threshold_catches_a_wrong_sampler).
KS_ALPHA = 1e-4


def ks_threshold(n, m):
    return math.sqrt(-math.log(KS_ALPHA / 2) / 2) * math.sqrt((n + m) / (n * m))


def box_stats(boxes, height, width):
    h, w = boxes[:, 2].double(), boxes[:, 3].double()
    return h * w / (height * width), torch.log(w / h)


def draws_for(height, width):
    # every try of a fallback costs torchvision 10 Python-level draws: fewer for those sizes
    return DRAWS if width / height < 5 and height / width < 5 else DRAWS // 4


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_distribution_matches_torchvision(size):
    height, width = size
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    n = draws_for(height, width)
    expected = torchvision_boxes(height, width, n, scale, ratio, seed=height + width)
    sizes = torch.tensor([[height, width]] * n)
    ours = cookbook_ops.random_resized_crop_boxes(
        sizes, scale, ratio, generator=torch.Generator().manual_seed(height * width)
    )
    threshold = ks_threshold(n, n)
    for name, a, b in zip(
        ("area fraction", "log aspect ratio"),
        box_stats(ours, height, width),
        box_stats(expected, height, width),
    ):
        d = ks_statistic(a, b)
        assert d < threshold, f"{name}: KS statistic {d:.4f} >= {threshold:.4f}"
    # where the boxes sit: top / (H - h) and left / (W - w) are uniform for the random ones
    for k, extent in ((0, height), (1, width)):
        free = (extent - ours[:, k + 2]).double()
        tv_free = (extent - expected[:, k + 2]).double()
        rel = ours[:, k].double() / free.clamp(min=1)
        tv_rel = expected[:, k].double() / tv_free.clamp(min=1)
        assert ks_statistic(rel, tv_rel) < threshold
    # the fallback: how often, and the same box
    fb = torch.tensor(fallback_box(height, width, ratio))
    ours_fb = (ours == fb).all(1).double().mean().item()
    tv_fb = (expected == fb).all(1).double().mean().item()
    p = (ours_fb + tv_fb) / 2
    assert abs(ours_fb - tv_fb) <= 5 * math.sqrt(max(p * (1 - p), 1e-4) * 2 / n) + 1e-9, (
        ours_fb,
        tv_fb,
    )
    if size == (20, 2000):
        assert ours_fb == 1.0 and tv_fb == 1.0
    if size == (100, 1000):
        assert 0.5 < ours_fb < 0.95  # this size exercises both branches


def test_ks_threshold_catches_a_wrong_sampler():
    """The test above can fail: a log-ratio drawn linearly instead (a plausible slip) is
    rejected at the same threshold."""
    height, width = SIZES[0]
    n = DRAWS
    expected = torchvision_boxes(height, width, n, (0.08, 1.0), (3 / 4, 4 / 3), seed=1)
    g = torch.Generator().manual_seed(2)
    # the right sampler with ratio drawn uniformly on [3/4, 4/3] (not log-uniform)
    area = height * width * (0.08 + 0.92 * torch.rand(n, 10, generator=g, dtype=torch.float64))
    aspect = 0.75 + (4 / 3 - 0.75) * torch.rand(n, 10, generator=g, dtype=torch.float64)
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w <= width) & (h <= height)
    first = fits.to(torch.int32).argmax(1, keepdim=True)
    wrong = torch.stack([h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]], 1)
    _, log_ratio_wrong = box_stats(torch.cat([wrong, wrong], 1), height, width)
    _, log_ratio_tv = box_stats(expected, height, width)
    assert ks_statistic(log_ratio_wrong, log_ratio_tv) > ks_threshold(n, n)


@pytest.mark.parametrize("device", DEVICES)
def test_boxes_always_inside_the_image(device):
    g = torch.Generator().manual_seed(0)
    sizes = torch.cat(
        [
            torch.randint(1, 2000, (4000, 2), generator=g),
            torch.tensor([[1, 1], [1, 2000], [2000, 1], [2, 3], [3, 2]] * 20),
        ]
    ).to(device)
    for scale, ratio in (
        ((0.08, 1.0), (3 / 4, 4 / 3)),
        ((0.5, 0.5), (2.0, 2.0)),
        ((1.0, 1.0), (0.1, 10.0)),
    ):
        boxes = cookbook_ops.random_resized_crop_boxes(
            sizes, scale, ratio, generator=torch.Generator(device=device).manual_seed(1)
        )
        assert boxes.dtype == torch.int64 and boxes.device == sizes.device
        top, left, h, w = boxes.cpu().unbind(1)
        hh, ww = sizes.cpu().unbind(1)
        assert bool(((top >= 0) & (left >= 0) & (h >= 1) & (w >= 1)).all())
        assert bool(((top + h <= hh) & (left + w <= ww)).all())


def test_generator_reproducible_and_list_sizes():
    sizes = [(375, 500), (20, 2000), (64, 64)]
    a = cookbook_ops.random_resized_crop_boxes(sizes, generator=torch.Generator().manual_seed(3))
    b = cookbook_ops.random_resized_crop_boxes(
        torch.tensor(sizes), generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(a, b) and a.shape == (3, 4)
    c = cookbook_ops.random_resized_crop_boxes(sizes, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a, c)
    # the very wide image always falls back to the centred crop
    assert a[1].tolist() == fallback_box(20, 2000, (3 / 4, 4 / 3))


def test_no_value_is_read_on_the_host():
    """On the meta device nothing has values: the samplers run only if they read none back
    (they would sync a GPU otherwise)."""
    sizes = torch.empty((7, 2), dtype=torch.int64, device="meta")
    boxes = cookbook_ops.random_resized_crop_boxes(sizes)
    assert boxes.shape == (7, 4) and boxes.device.type == "meta"
    assert cookbook_ops.center_crop_boxes(sizes, 256, 224).shape == (7, 4)


def test_sampler_bad_arguments():
    sizes = torch.tensor([[10, 10]])
    with pytest.raises(ValueError, match="scale"):
        cookbook_ops.random_resized_crop_boxes(sizes, scale=(1.0, 0.5))
    with pytest.raises(ValueError, match="scale"):
        cookbook_ops.random_resized_crop_boxes(sizes, scale=(-0.1, 0.5))
    with pytest.raises(ValueError, match="ratio"):
        cookbook_ops.random_resized_crop_boxes(sizes, ratio=(0.0, 1.0))
    with pytest.raises(TypeError, match="scale"):
        cookbook_ops.random_resized_crop_boxes(sizes, scale=0.5)
    with pytest.raises(TypeError, match="image_sizes"):
        cookbook_ops.random_resized_crop_boxes(torch.tensor([[10.0, 10.0]]))
    with pytest.raises(ValueError, match="image_sizes"):
        cookbook_ops.random_resized_crop_boxes(torch.tensor([10, 10]))
    with pytest.raises(ValueError, match="image_sizes must be positive"):
        cookbook_ops.random_resized_crop_boxes(torch.tensor([[0, 10]]))
    with pytest.raises(TypeError, match="generator"):
        cookbook_ops.random_resized_crop_boxes(sizes, generator=0)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="generator"):
            cookbook_ops.random_resized_crop_boxes(sizes.cuda(), generator=torch.Generator())


# --- Resize + CenterCrop ------------------------------------------------------------------------


def torchvision_center_box(height, width, resize, crop):
    """The resized image's size and the crop's anchor, as torchvision computes them."""
    image = torch.empty(1, height, width)
    rh, rw = TF.get_size(TF.resize(image, resize, antialias=False))
    crop_h, crop_w = (crop, crop) if isinstance(crop, int) else crop
    return rh, rw, int(round((rh - crop_h) / 2.0)), int(round((rw - crop_w) / 2.0))


@pytest.mark.parametrize("device", DEVICES)
def test_center_boxes_cover_the_kept_region(device):
    """Each box is the integer box nearest to the source region the chain keeps: each edge
    within half a pixel of the region's, inside the image."""
    cases = [
        ((375, 500), 256, 224),
        ((500, 375), 256, 224),
        ((448, 448), 224, 192),
        ((37, 41), 32, (24, 30)),
        ((1, 300), 20, (20, 20)),
        ((99, 100), (50, 60), 48),
    ]
    for (height, width), resize, crop in cases:
        box = cookbook_ops.center_crop_boxes(
            torch.tensor([[height, width]], device=device), resize, crop
        )[0].tolist()
        rh, rw, top_r, left_r = torchvision_center_box(
            height, width, [resize] if isinstance(resize, int) else list(resize), crop
        )
        crop_h, crop_w = (crop, crop) if isinstance(crop, int) else crop
        for start, length, n_src, n_res, anchor, n_crop in (
            (box[0], box[2], height, rh, top_r, crop_h),
            (box[1], box[3], width, rw, left_r, crop_w),
        ):
            lo, hi = anchor * n_src / n_res, (anchor + n_crop) * n_src / n_res
            assert 0 <= start and start + length <= n_src and length >= 1
            if hi - lo >= 1:
                assert abs(start - lo) <= 0.5 + 1e-9 and abs(start + length - hi) <= 0.5 + 1e-9
            else:  # a region under one pixel: the one pixel it lies in
                assert length == 1 and start <= lo <= start + 1


def smooth_image(height, width, channels=3):
    """A smooth uint8 image (a few long waves), like the low frequencies of a photo."""
    y = torch.arange(height, dtype=torch.float64).view(-1, 1)
    x = torch.arange(width, dtype=torch.float64).view(1, -1)
    planes = [
        127.5
        + 60 * torch.sin(2 * math.pi * (y / 97 + c / 3)) * torch.cos(2 * math.pi * x / 131)
        + 50 * torch.sin(2 * math.pi * (x + y) / 211)
        for c in range(channels)
    ]
    return torch.stack(planes, -1).round().clamp(0, 255).to(torch.uint8)


# Measured residual of the integer box against Resize + CenterCrop on the smooth images below
# (0..1 units, before Normalize; their values change by up to about 0.024 per source pixel):
# 0.013 at most and 0.0025 on average, a position error of at most half a source pixel (the
# region's edges rounded to whole pixels). Exact where the edges are whole pixels (the 120x90
# case without antialias here, and test_val_module_matches_resize_center_crop).
CENTER_MAX_RESIDUAL = 0.02
CENTER_MEAN_RESIDUAL = 0.004


@pytest.mark.parametrize("antialias", [True, False], ids=["aa", "no_aa"])
def test_center_crop_residual_on_smooth_images(antialias):
    worst = 0.0
    for (height, width), resize, crop in (((375, 500), 256, 224), ((333, 500), 256, 224),
                                          ((480, 640), 232, 224), ((120, 90), 36, 32),
                                          ((500, 375), 256, 224)):  # fmt: skip
        image = smooth_image(height, width)
        box = cookbook_ops.center_crop_boxes([(height, width)], resize, crop)
        ours = cookbook_ops.resized_crop_normalize(
            image[None], box, crop, 0.0, 1.0, antialias=antialias
        )[0]
        x = image.permute(2, 0, 1).float() / 255
        chain = TF.center_crop(TF.resize(x, [resize], antialias=antialias), [crop])
        err = (ours - chain).abs()
        assert err.max() <= CENTER_MAX_RESIDUAL, (height, width, float(err.max()))
        assert err.mean() <= CENTER_MEAN_RESIDUAL, (height, width, float(err.mean()))
        worst = max(worst, float(err.max()))
    assert worst > 0  # fractional regions: not exact (else the documented residual is wrong)


def test_center_crop_boxes_bad_arguments():
    sizes = torch.tensor([[40, 40]])
    with pytest.raises(ValueError, match="larger than the resized image"):
        cookbook_ops.center_crop_boxes(sizes, 32, 40)
    with pytest.raises(ValueError, match="resize must be positive"):
        cookbook_ops.center_crop_boxes(sizes, 0, 4)
    with pytest.raises(TypeError, match="crop"):
        cookbook_ops.center_crop_boxes(sizes, 32, 4.0)
    with pytest.raises(TypeError, match="image_sizes"):
        cookbook_ops.center_crop_boxes("40x40", 32, 4)
