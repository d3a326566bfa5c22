"""cookbook_ops: fused kernels for the hot paths of image-classification training.

Every op has a C++ CPU kernel, a CUDA C++ kernel, a Triton kernel and a pure-PyTorch
reference; ``import cookbook_ops`` works (through the reference) even when nothing compiled
is available, and :func:`build_info` says why.
"""

from cookbook_ops import (  # noqa: E402
    _library,  # noqa: F401  (schemas first: kernels register against them)
    nn,
    recipe,
    reference,
)
from cookbook_ops._backend import available_backends, build_info, use_backend
from cookbook_ops._version import __version__
from cookbook_ops.ops import (
    bilinear_pool,
    cutmix,
    label_smoothing_cross_entropy,
    mixup,
    mixup_cross_entropy,
    mixup_pairs_,
    normalize_images,
)

__all__ = [
    "__version__",
    "available_backends",
    "bilinear_pool",
    "build_info",
    "cutmix",
    "label_smoothing_cross_entropy",
    "mixup",
    "mixup_cross_entropy",
    "mixup_pairs_",
    "nn",
    "normalize_images",
    "recipe",
    "reference",
    "use_backend",
]
