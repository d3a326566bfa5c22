"""Triton kernels, registered as the Triton twins of the ops declared in
:mod:`cookbook_ops._library`.

Importing this package registers the kernels. It compiles nothing and touches no device at
import time, so a missing or broken GPU only shows up when a kernel is first launched.
"""

from cookbook_ops.triton import (
    bilinear_pool,  # noqa: F401
    cross_entropy,  # noqa: F401
    mixup,  # noqa: F401
    normalize_images,  # noqa: F401
    resized_crop_normalize,  # noqa: F401
    soft_target_cross_entropy,  # noqa: F401
)
