"""Pure-PyTorch versions of every cookbook_ops op: test oracles and the no-kernel fallback.

This package imports nothing from :mod:`cookbook_ops.ops`. ``label_smoothing_cross_entropy``,
``bilinear_pool``, ``mixup_cross_entropy`` and ``normalize_images`` here are the public ops
(argument checks included) run on the reference backend; ``import cookbook_ops`` sets them.
"""

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
from cookbook_ops.reference.linear_cross_entropy import (
    linear_cross_entropy,
    linear_mixup_cross_entropy,
)
from cookbook_ops.reference.mixup_cross_entropy import (
    mixup_cross_entropy_backward,
    mixup_cross_entropy_forward,
    mixup_cross_entropy_rows,
)
from cookbook_ops.reference.normalize_images import normalize_images_forward

__all__ = [
    "bilinear_pool",  # noqa: F822  (set by cookbook_ops/__init__.py)
    "bilinear_pool_backward",
    "bilinear_pool_forward",
    "bilinear_pool_rows",
    "label_smoothing_cross_entropy",  # noqa: F822
    "label_smoothing_cross_entropy_backward",
    "label_smoothing_cross_entropy_forward",
    "label_smoothing_cross_entropy_rows",
    "linear_cross_entropy",
    "linear_mixup_cross_entropy",
    "mixup_cross_entropy",  # noqa: F822
    "mixup_cross_entropy_backward",
    "mixup_cross_entropy_forward",
    "mixup_cross_entropy_rows",
    "normalize_images",  # noqa: F822
    "normalize_images_forward",
    "smoothing_weights",
]
