"""The random half of :class:`cookbook_ops.nn.Mixup`: who mixes with whom, by how much and
where, drawn for a whole batch at once (timm's ``Mixup`` semantics).

- pairings: a random permutation, the flip ``i <-> N-1-i``, or random disjoint pairs;
- lam ~ Beta(alpha, alpha), drawn in log space so tiny alphas do not underflow;
- CutMix boxes of sides ``sqrt(1 - lam)`` of the image around a random centre, clipped to
  the image, or of sides uniform in ``cutmix_minmax``; ``correct_lam`` takes lam from the
  clipped box's area.

Every draw happens on the batch's device from an optional ``torch.Generator``, always in the
same order for a given configuration, and every branch on a random value is a tensor op (a
sample that is not mixed has lam = 1 and an empty box). Nothing here calls ``.item()`` or
otherwise waits for the device. The arguments are trusted: :class:`~cookbook_ops.nn.Mixup`
checks them once, in its constructor.
"""

from __future__ import annotations

import dataclasses

import torch

from cookbook_ops.reference.mixup import cutmix_lam

__all__ = [
    "MODES",
    "PAIRINGS",
    "MixParams",
    "beta_sample",
    "cutmix_boxes",
    "identity_params",
    "partners",
    "sample_mix_params",
]

MODES = ("batch", "pair", "elem")
PAIRINGS = ("permutation", "flip", "pairs")


@dataclasses.dataclass
class MixParams:
    """One draw of :meth:`Mixup.sample`, all (N,)-shaped tensors on the batch's device.

    index: partner of each sample (a permutation; an involution for "flip" and "pairs").
    lam: float32 weight of the sample itself (1 where it is not mixed).
    boxes: (N, 4) int64 CutMix boxes (y0, x0, y1, x1), half-open, empty where a sample is not
    cut; None when CutMix is off. use_cutmix: bool per sample, None unless both mixup and
    CutMix are active (otherwise the configuration decides)."""

    index: torch.Tensor
    lam: torch.Tensor
    boxes: torch.Tensor | None = None
    use_cutmix: torch.Tensor | None = None


def beta_sample(alpha: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Beta(alpha, alpha) per entry of a float64 tensor, as X / (X + Y) for X, Y ~ Gamma(alpha).

    Gamma(a) for tiny a underflows (PyTorch clamps it to the smallest normal, which would turn
    every 0/0 into 0.5), so each gamma is drawn in log space with the identity
    Gamma(a) = Gamma(a + 1) * U**(1/a), and lam = sigmoid(log X - log Y). Were both logs
    still infinite, a fair coin stands in for the limit (Beta(a, a) -> Bernoulli(1/2))."""
    kw = dict(dtype=alpha.dtype, device=alpha.device, generator=generator)
    log_gamma = []
    for _ in range(2):
        boosted = torch._standard_gamma(alpha + 1, generator=generator)
        uniform = 1 - torch.rand(alpha.shape, **kw)  # (0, 1]: its log is finite
        log_gamma.append(torch.log(boosted) + torch.log(uniform) / alpha)
    coin = (torch.rand(alpha.shape, **kw) < 0.5).to(alpha.dtype)
    diff = log_gamma[0] - log_gamma[1]
    return torch.where(torch.isnan(diff), coin, torch.sigmoid(diff))


def cutmix_boxes(lam: torch.Tensor, centre_y, centre_x, height: int, width: int) -> torch.Tensor:
    """timm's CutMix box: sides cut_h = int(H * sqrt(1 - lam)) and cut_w = int(W * sqrt(1 - lam))
    around an integer centre (rows cy - cut_h // 2 up to cy + (cut_h + 1) // 2), clipped to the
    image. Returns (K, 4) int64 rows (y0, x0, y1, x1)."""
    ratio = torch.sqrt(1 - lam.double())
    cut_h = torch.floor(height * ratio).long()
    cut_w = torch.floor(width * ratio).long()
    y0 = (centre_y - cut_h // 2).clamp(0, height)
    y1 = (centre_y + (cut_h + 1) // 2).clamp(0, height)
    x0 = (centre_x - cut_w // 2).clamp(0, width)
    x1 = (centre_x + (cut_w + 1) // 2).clamp(0, width)
    return torch.stack([y0, x0, y1, x1], dim=1)


def _uniform_int(low, high, shape, generator, device) -> torch.Tensor:
    """Integers uniform in [low, high) (tensors or ints, high > low), like numpy's randint."""
    u = torch.rand(shape, dtype=torch.float64, device=device, generator=generator)
    span = high - low
    return (low + torch.floor(u * span).long()).clamp_max(high - 1)


def _minmax_boxes(cutmix_minmax, height: int, width: int, draws: int, generator, device):
    """timm's ``cutmix_minmax`` boxes: sides uniform in [int(side*min), int(side*max)), the
    corner uniform among the positions where the box fits. (draws, 4) int64."""
    low, high = cutmix_minmax
    bounds_h = (int(height * low), int(height * high))
    bounds_w = (int(width * low), int(width * high))
    if bounds_h[0] >= bounds_h[1] or bounds_w[0] >= bounds_w[1]:
        raise ValueError(
            f"cutmix_minmax={cutmix_minmax} leaves no box size for a "
            f"{height}x{width} image (int(side*min) must be < int(side*max))"
        )
    cut_h = _uniform_int(*bounds_h, (draws,), generator, device)
    cut_w = _uniform_int(*bounds_w, (draws,), generator, device)
    y0 = _uniform_int(0, height - cut_h + 1, (draws,), generator, device)
    x0 = _uniform_int(0, width - cut_w + 1, (draws,), generator, device)
    return torch.stack([y0, x0, y0 + cut_h, x0 + cut_w], dim=1)


def partners(
    n: int, pairing: str, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """The partner of each of n samples, int64 (n,) on ``device``, for a pairing of
    :data:`PAIRINGS`: "permutation" a random permutation (``torch.randperm``), "flip" sample
    i with n-1-i (no draw), "pairs" random disjoint pairs (an involution; with an odd n one
    sample is its own partner)."""
    if pairing == "flip":
        return torch.arange(n - 1, -1, -1, device=device)
    perm = torch.randperm(n, generator=generator, device=device)
    if pairing == "permutation":
        return perm
    # Random involution: positions (0, 1), (2, 3), ... of a random permutation are
    # partners; with an odd n the last position is left as its own partner.
    position = torch.arange(n, device=device)
    partner = position ^ 1
    partner = torch.where(partner < n, partner, position)
    return torch.empty_like(perm).scatter_(0, perm, perm[partner])


def identity_params(n: int, device, uses_mixup: bool, uses_cutmix: bool) -> MixParams:
    """Parameters that leave every sample as it is (mixing switched off)."""
    position = torch.arange(n, device=device)
    lam = torch.ones(n, dtype=torch.float32, device=device)
    boxes = torch.zeros(n, 4, dtype=torch.int64, device=device) if uses_cutmix else None
    use_cutmix = torch.zeros(n, dtype=torch.bool, device=device)
    return MixParams(position, lam, boxes, use_cutmix if uses_mixup and uses_cutmix else None)


def sample_mix_params(
    shape,
    device: torch.device,
    *,
    mixup_alpha: float,
    cutmix_alpha: float,
    cutmix_minmax: tuple[float, float] | None = None,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: str = "batch",
    pairing: str = "permutation",
    correct_lam: bool = True,
    generator: torch.Generator | None = None,
) -> MixParams:
    """Draw the mixing parameters of a batch of ``shape`` (N, ...) ((N, C, H, W) when CutMix
    is on) on ``device``, with tensor ops only. Deterministic given the generator's state.

    mixup is on when ``mixup_alpha > 0``, CutMix when ``cutmix_alpha > 0`` (set it to 1 with
    ``cutmix_minmax``, as :class:`~cookbook_ops.nn.Mixup` does); with both, a sample (or
    group) takes CutMix with probability ``switch_prob``. It is mixed at all with probability
    ``prob``. ``mode`` ("batch", "pair" or "elem") says how many draws there are: one for the
    batch, one per pair of partners (which needs a mutual pairing: "flip" or "pairs") or one
    per sample. A sample that is its own partner is never mixed (lam = 1, empty box).

    The draws come in this order: partners, the ``prob`` coins, the ``switch_prob`` coins
    (mixup and CutMix both on), lam, then the box centres (or, with ``cutmix_minmax``, the box
    sides and corners)."""
    n = shape[0]
    g = generator
    uses_mixup, uses_cutmix = mixup_alpha > 0.0, cutmix_alpha > 0.0
    index = partners(n, pairing, g, device)
    position = torch.arange(n, device=device)

    # One draw per group: the batch, a pair of partners (keyed by its smaller index) or a
    # sample; group[i] says which draw sample i uses.
    if mode == "batch":
        draws, group = 1, torch.zeros(n, dtype=torch.int64, device=device)
    elif mode == "pair":
        draws, group = n, torch.minimum(position, index)
    else:
        draws, group = n, None

    def per_sample(v):
        return v if group is None else v[group]

    f64 = dict(dtype=torch.float64, device=device)
    mix = torch.rand(draws, generator=g, **f64) < prob
    use_cutmix = None
    if uses_mixup and uses_cutmix:
        use_cutmix = torch.rand(draws, generator=g, **f64) < switch_prob
        alpha = torch.where(
            use_cutmix,
            torch.full((draws,), cutmix_alpha, **f64),
            torch.full((draws,), mixup_alpha, **f64),
        )
    else:
        alpha = torch.full((draws,), mixup_alpha if uses_mixup else cutmix_alpha, **f64)
    lam = torch.where(mix, beta_sample(alpha, g), 1.0)

    boxes = None
    fixed = index == position  # its own partner: never mixed
    if uses_cutmix:
        height, width = shape[-2], shape[-1]
        if cutmix_minmax is None:
            centre_y = _uniform_int(0, height, (draws,), g, device)
            centre_x = _uniform_int(0, width, (draws,), g, device)
            boxes = cutmix_boxes(lam, centre_y, centre_x, height, width)
        else:
            boxes = _minmax_boxes(cutmix_minmax, height, width, draws, g, device)
        cut = mix if use_cutmix is None else mix & use_cutmix
        keep = (per_sample(cut) & ~fixed).unsqueeze(1)
        boxes = torch.where(keep, per_sample(boxes), 0)

    lam = per_sample(lam).to(torch.float32)
    if use_cutmix is not None:
        use_cutmix = per_sample(use_cutmix)
    if boxes is not None and (correct_lam or cutmix_minmax is not None):
        box_lam = cutmix_lam(boxes, shape[-2], shape[-1])
        lam = box_lam if use_cutmix is None else torch.where(use_cutmix, box_lam, lam)
    lam = torch.where(fixed, 1.0, lam)
    return MixParams(index, lam, boxes, use_cutmix)
