"""Pure-PyTorch versions of every cookbook_ops op: test oracles and the no-kernel fallback."""

from cookbook_ops._smoothing import smoothing_weights
from cookbook_ops.reference.bilinear_pool import (
    bilinear_pool_backward,
    bilinear_pool_forward,
    bilinear_pool_rows,
)
from cookbook_ops.reference.label_smoothing_cross_entropy import (
    label_smoothing_cross_entropy_backward,
    label_smoothing_cross_entropy_forward,
    label_smoothing_cross_entropy_rows,
)
from cookbook_ops.reference.mixup_cross_entropy import (
    mixup_cross_entropy_backward,
    mixup_cross_entropy_forward,
    mixup_cross_entropy_rows,
)
from cookbook_ops.reference.normalize_images import normalize_images_forward


def label_smoothing_cross_entropy(logits, target, smoothing=0.0, **kwargs):
    """The public op computed entirely with PyTorch operators (differentiable by autograd)."""
    from cookbook_ops.ops.label_smoothing_cross_entropy import label_smoothing_cross_entropy

    kwargs["backend"] = "reference"
    return label_smoothing_cross_entropy(logits, target, smoothing, **kwargs)


def bilinear_pool(x, y=None, **kwargs):
    """The public op computed entirely with PyTorch operators (differentiable by autograd)."""
    from cookbook_ops.ops.bilinear_pool import bilinear_pool

    kwargs["backend"] = "reference"
    return bilinear_pool(x, y, **kwargs)


def mixup_cross_entropy(logits, target_a, target_b, lam, smoothing=0.0, **kwargs):
    """The public op computed entirely with PyTorch operators (differentiable by autograd)."""
    from cookbook_ops.ops.mixup_cross_entropy import mixup_cross_entropy

    kwargs["backend"] = "reference"
    return mixup_cross_entropy(logits, target_a, target_b, lam, smoothing, **kwargs)


def normalize_images(images, mean, std, **kwargs):
    """The public op computed entirely with PyTorch operators."""
    from cookbook_ops.ops.normalize_images import normalize_images

    kwargs["backend"] = "reference"
    return normalize_images(images, mean, std, **kwargs)


__all__ = [
    "bilinear_pool",
    "bilinear_pool_backward",
    "bilinear_pool_forward",
    "bilinear_pool_rows",
    "label_smoothing_cross_entropy",
    "label_smoothing_cross_entropy_backward",
    "label_smoothing_cross_entropy_forward",
    "label_smoothing_cross_entropy_rows",
    "mixup_cross_entropy",
    "mixup_cross_entropy_backward",
    "mixup_cross_entropy_forward",
    "mixup_cross_entropy_rows",
    "normalize_images",
    "normalize_images_forward",
    "smoothing_weights",
]
