"""Public functional API, one module per op."""

from cookbook_ops.ops.label_smoothing_cross_entropy import label_smoothing_cross_entropy

__all__ = ["label_smoothing_cross_entropy"]
