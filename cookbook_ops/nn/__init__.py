"""Drop-in nn.Modules backed by the fused kernels, one module per op family."""

from cookbook_ops.nn.linear_loss import LinearCrossEntropy
from cookbook_ops.nn.loss import LSR, LabelSmoothingCrossEntropy
from cookbook_ops.nn.mixup import MixedTarget, Mixup, MixupCrossEntropy
from cookbook_ops.nn.normalize import NormalizeImages
from cookbook_ops.nn.pooling import BilinearPooling
from cookbook_ops.nn.transforms import RandomResizedCropNormalize, ResizeCenterCropNormalize

__all__ = [
    "LSR",
    "BilinearPooling",
    "LabelSmoothingCrossEntropy",
    "LinearCrossEntropy",
    "NormalizeImages",
    "MixedTarget",
    "Mixup",
    "MixupCrossEntropy",
    "RandomResizedCropNormalize",
    "ResizeCenterCropNormalize",
]
