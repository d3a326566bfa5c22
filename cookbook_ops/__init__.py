"""cookbook_ops: fused kernels for the hot paths of image-classification training.

Every op has a C++ CPU kernel, a CUDA C++ kernel, a Triton kernel and a pure-PyTorch
reference; ``import cookbook_ops`` works (through the reference) even when nothing compiled
is available, and :func:`build_info` says why.
"""

from cookbook_ops import (  # noqa: E402
    _deprecation,
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


def __getattr__(name: str):
    # The training utilities' old home (cookbook_ops.metrics, ...), for one release. Caching
    # the module here makes the warning fire once: ``from cookbook_ops import metrics`` looks
    # the name up twice.
    if name in _deprecation.MOVED_TO_RECIPE:
        _deprecation.warn_moved_to_recipe(name, stacklevel=2)
        module = getattr(recipe, name)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
