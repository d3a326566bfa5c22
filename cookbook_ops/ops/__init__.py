"""Public functional API, one module per op."""

from cookbook_ops.ops.bilinear_pool import bilinear_pool
from cookbook_ops.ops.crop_boxes import center_crop_boxes, random_resized_crop_boxes
from cookbook_ops.ops.label_smoothing_cross_entropy import label_smoothing_cross_entropy
from cookbook_ops.ops.linear_cross_entropy import (
    linear_cross_entropy,
    linear_mixup_cross_entropy,
)
from cookbook_ops.ops.mixup import cutmix, mixup, mixup_pairs_
from cookbook_ops.ops.mixup_cross_entropy import mixup_cross_entropy
from cookbook_ops.ops.normalize_images import normalize_images
from cookbook_ops.ops.resized_crop_normalize import resized_crop_normalize

__all__ = [
    "bilinear_pool",
    "center_crop_boxes",
    "cutmix",
    "label_smoothing_cross_entropy",
    "linear_cross_entropy",
    "linear_mixup_cross_entropy",
    "mixup",
    "mixup_cross_entropy",
    "mixup_pairs_",
    "normalize_images",
    "random_resized_crop_boxes",
    "resized_crop_normalize",
]
