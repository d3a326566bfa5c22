"""The cookbook's training recipe as library utilities, beside (not part of) the op stack.

None of these modules uses the fused kernels: they are the loop around them.

- :mod:`~cookbook_ops.recipe.checkpoint`: atomic checkpoints that restore the RNG states.
- :mod:`~cookbook_ops.recipe.data`: ``uint8_collate``, images stay uint8 until the device.
- :mod:`~cookbook_ops.recipe.metrics`: top-k ``Accuracy`` counted on the device.
- :mod:`~cookbook_ops.recipe.optim`: parameter groups without weight decay on biases and norms.
- :mod:`~cookbook_ops.recipe.regularization`: L1/L2 penalties as one multi-tensor reduction.
- :mod:`~cookbook_ops.recipe.schedules`: closed-form warmup + cosine learning rate.
"""

from cookbook_ops.recipe import checkpoint, data, metrics, optim, regularization, schedules

__all__ = ["checkpoint", "data", "metrics", "optim", "regularization", "schedules"]
