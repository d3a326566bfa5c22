"""Public functional API, one module per op."""

from cookbook_ops.ops.bilinear_pool import bilinear_pool
from cookbook_ops.ops.label_smoothing_cross_entropy import label_smoothing_cross_entropy
from cookbook_ops.ops.mixup import cutmix, mixup, mixup_pairs_
from cookbook_ops.ops.mixup_cross_entropy import mixup_cross_entropy
from cookbook_ops.ops.normalize_images import normalize_images

__all__ = [
    "bilinear_pool",
    "cutmix",
    "label_smoothing_cross_entropy",
    "mixup",
    "mixup_cross_entropy",
    "mixup_pairs_",
    "normalize_images",
]
