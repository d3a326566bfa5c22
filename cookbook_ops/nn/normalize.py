"""Drop-in input normalization: uint8 batches to normalized float batches on the device."""

from __future__ import annotations

import torch
from torch import nn

from cookbook_ops._image_args import (
    LAYOUTS,
    check_output_format,
    module_constants,
)
from cookbook_ops.ops.normalize_images import normalize_images

__all__ = ["NormalizeImages"]


class NormalizeImages(nn.Module):
    """torchvision's ``ToTensor()`` + ``Normalize(mean, std)`` (+ ``RandomHorizontalFlip(p)``)
    for a whole uint8 batch on its device, in one kernel pass.

    forward(images, mixup=None): images uint8 (N, H, W, C) (``layout="NHWC"``, as
    :func:`cookbook_ops.recipe.data.uint8_collate` stacks them) or (N, C, H, W); mixup an optional
    ``(lam, index)`` pair as for :func:`cookbook_ops.mixup`. Returns (N, C, H, W) in
    ``out_dtype`` and ``memory_format``.

    Each sample is flipped with probability ``flip_prob``, the mask drawn on the images' device
    from ``generator`` (a ``torch.Generator`` on that device) or the default generator, so
    nothing waits for the host. Like RandomHorizontalFlip it flips in eval mode too: set
    ``flip_prob=0`` for evaluation. mean/std are non-persistent buffers, so ``.to(device)``
    moves them and state dicts stay free of them; a module left on the CPU with GPU batches
    does not sync either (the values reach the GPU through normalize_images' cache of
    non-blocking device copies). The output has no ``grad_fn`` (uint8 input).
    """

    def __init__(
        self,
        mean,
        std,
        layout: str = "NHWC",
        flip_prob: float = 0.0,
        out_dtype: torch.dtype = torch.float32,
        memory_format: torch.memory_format = torch.contiguous_format,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ):
        super().__init__()
        if not isinstance(layout, str) or layout not in LAYOUTS:
            raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
        if isinstance(flip_prob, bool) or not isinstance(flip_prob, (int, float)):
            raise TypeError(f"flip_prob must be a float in [0, 1], got {type(flip_prob).__name__}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        check_output_format(out_dtype, memory_format)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        mean_t, std_t = module_constants(mean, std)
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)
        self.layout = layout
        self.flip_prob = float(flip_prob)
        self.out_dtype = out_dtype
        self.memory_format = memory_format
        self.generator = generator
        self.backend = backend

    def flip_mask(self, n: int, device: torch.device) -> torch.Tensor | None:
        """The per-sample flip mask for a batch of n, drawn on ``device`` (None: no flips)."""
        if self.flip_prob == 0.0:
            return None
        if self.flip_prob == 1.0:
            return torch.ones(n, dtype=torch.bool, device=device)
        if self.generator is not None and self.generator.device.type != torch.device(device).type:
            raise ValueError(
                f"generator is on {self.generator.device} but the images are on {device}: "
                "create it with torch.Generator(device=...) on the images' device"
            )
        return torch.rand(n, device=device, generator=self.generator) < self.flip_prob

    def forward(self, images: torch.Tensor, mixup=None) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        return normalize_images(
            images,
            self.mean,
            self.std,
            layout=self.layout,
            flip=self.flip_mask(images.shape[0] if images.dim() else 0, images.device),
            mixup=mixup,
            out_dtype=self.out_dtype,
            memory_format=self.memory_format,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return (
            f"mean={self.mean.tolist()}, std={self.std.tolist()}, layout={self.layout!r}, "
            f"flip_prob={self.flip_prob}, out_dtype={self.out_dtype}, "
            f"memory_format={self.memory_format}"
        )
