"""Public functional API, one module per op."""

from cookbook_ops.ops.bilinear_pool import bilinear_pool
from cookbook_ops.ops.label_smoothing_cross_entropy import label_smoothing_cross_entropy

__all__ = ["bilinear_pool", "label_smoothing_cross_entropy"]
