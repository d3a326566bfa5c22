"""cookbook_ops: fused kernels for the hot paths of image-classification training.

Every op has a C++ CPU kernel, a CUDA C++ kernel, a Triton kernel and a pure-PyTorch
reference; ``import cookbook_ops`` works (through the reference) even when nothing compiled
is available, and :func:`build_info` says why.
"""

import functools

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
    center_crop_boxes,
    cutmix,
    label_smoothing_cross_entropy,
    linear_cross_entropy,
    linear_mixup_cross_entropy,
    mixup,
    mixup_cross_entropy,
    mixup_pairs_,
    normalize_images,
    random_resized_crop_boxes,
    resized_crop_normalize,
)

__all__ = [
    "__version__",
    "available_backends",
    "bilinear_pool",
    "build_info",
    "center_crop_boxes",
    "cutmix",
    "label_smoothing_cross_entropy",
    "linear_cross_entropy",
    "linear_mixup_cross_entropy",
    "mixup",
    "mixup_cross_entropy",
    "mixup_pairs_",
    "nn",
    "normalize_images",
    "random_resized_crop_boxes",
    "recipe",
    "reference",
    "resized_crop_normalize",
    "use_backend",
]


def _on_reference(op):
    """``op`` with ``backend="reference"``: the public op computed entirely with PyTorch
    operators (differentiable by autograd where the op is)."""

    @functools.wraps(op)
    def call(*args, **kwargs):
        kwargs["backend"] = "reference"
        return op(*args, **kwargs)

    return call


# cookbook_ops.reference.<op>: set here, so that the reference package (the oracle) never
# imports the ops it checks.
for _op in (label_smoothing_cross_entropy, bilinear_pool, mixup_cross_entropy, normalize_images):
    setattr(reference, _op.__name__, _on_reference(_op))
del _op


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
