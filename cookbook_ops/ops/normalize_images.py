"""Public uint8-images-to-normalized-batch op: argument checks, fake kernels, backend choice.

One kernel pass reads each uint8 value once and writes each output value once: the flip, the
ToTensor scaling, Normalize, the mixup blend, the layout change and the output rounding all
happen in registers. The op is not differentiable: its input is uint8 and mean/std are
constants of the pipeline (they are detached), so the output never has a ``grad_fn`` and a
``backward()`` through it fails with PyTorch's usual "does not require grad" error.

Nothing here syncs with the host on a GPU in eager mode; value checks that would need a sync
(is ``index`` a permutation, is ``lam`` in [0, 1], is a tensor ``std`` free of zeros) run only
on CPU tensors. mean/std given as Python values or CPU tensors reach the GPU through a cache of
device copies keyed by their values: the first call with new values makes a non-blocking copy
from pinned memory, later calls reuse it (a blocking copy, or ``torch.tensor(..., device=)``,
would wait for everything queued on the stream, every batch).
"""

from __future__ import annotations

import torch

from cookbook_ops import _backend, _library
from cookbook_ops._image_args import (  # noqa: F401  (LAYOUTS, OUT_DTYPES: this module's API)
    LAYOUTS,
    MEMORY_FORMATS,
    OUT_DTYPES,
    channel_constants,
    check_flip,
    check_mixup,
    check_output_format,
    fake_output,
)
from cookbook_ops.reference.normalize_images import normalize_images_forward as reference_forward

# --- fake kernels --------------------------------------------------------------------------


def _normalize_fake(images, mean, std, flip, lam, index, nhwc, out_dtype, channels_last):
    torch._check(images.dim() == 4, lambda: f"images must be 4-D, got shape {tuple(images.shape)}")
    torch._check(images.dtype == torch.uint8, lambda: f"images must be uint8, got {images.dtype}")
    if nhwc:
        n, height, width, channels = images.shape
    else:
        n, channels, height, width = images.shape
    for name, t in (("mean", mean), ("std", std)):
        torch._check(
            t.shape == (channels,),
            lambda name=name, t=t: f"{name} must be ({channels},), got {tuple(t.shape)}",
        )
    return fake_output(
        images, n, channels, height, width, flip, lam, index, out_dtype, channels_last
    )


_library.register(_library.NORMALIZE_IMAGES, _normalize_fake, reference=reference_forward)


def _dense_layout(images: torch.Tensor, nhwc: bool) -> tuple[torch.Tensor, bool]:
    """images with its values as one dense block, and whether that block is NHWC. A batch whose
    strides are the other layout (an NCHW view of NHWC memory, say) is read in place."""
    if images.is_contiguous():
        return images, nhwc
    other = images.permute(0, 2, 3, 1) if not nhwc else images.permute(0, 3, 1, 2)
    if other.is_contiguous():
        return other, not nhwc
    return images.contiguous(), nhwc


# --- public API ----------------------------------------------------------------------------


def normalize_images(
    images: torch.Tensor,
    mean,
    std,
    *,
    layout: str = "NHWC",
    flip: torch.Tensor | None = None,
    mixup=None,
    out_dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
    backend: str = "auto",
) -> torch.Tensor:
    """torchvision's ``ToTensor()`` + ``Normalize(mean, std)`` for a whole uint8 batch in one pass.

    images: uint8 (N, H, W, C) for ``layout="NHWC"`` (decoded images, as
    :func:`cookbook_ops.recipe.data.uint8_collate` stacks them) or (N, C, H, W) for ``"NCHW"``.
    mean, std: per-channel floats in 0..1 units, as torchvision takes them (a sequence, a
    float, or a tensor). flip: None or a bool (N,) tensor; sample j is mirrored horizontally
    where flip[j]. mixup: None or ``(lam, index)`` as for :func:`cookbook_ops.mixup` (lam a
    float, a 0-d tensor or (N,) in [0, 1]; index an (N,) int64 permutation): the blend
    ``lam_i v_i + (1 - lam_i) v_index[i]`` of the normalized, flipped samples.

    Returns an (N, C, H, W) tensor in ``out_dtype`` (float32, bfloat16 or float16) and
    ``memory_format`` (contiguous or channels_last). Values are computed as
    ``(x / 255 - mean_c) / std_c`` in float32, blended in float32 and rounded once, so float32
    results equal torchvision's bit for bit. Not differentiable (uint8 input): the result has no
    ``grad_fn``.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(
            f"images must be uint8 (0..255 pixel values), got {images.dtype}; for float images "
            "use torchvision.transforms.v2.functional.normalize"
        )
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    nhwc = layout == "NHWC"
    if images.dim() != 4:
        dims = "(N, H, W, C)" if nhwc else "(N, C, H, W)"
        raise ValueError(
            f"images must be {dims} for layout={layout!r}, got shape {tuple(images.shape)}"
        )
    check_output_format(out_dtype, memory_format)
    n = images.shape[0]
    channels = images.shape[3] if nhwc else images.shape[1]
    mean_t = channel_constants(mean, "mean", channels, images.device)
    std_t = channel_constants(std, "std", channels, images.device)
    flip_t = None if flip is None else check_flip(flip, n, images.device)
    lam_t = index_t = None
    if mixup is not None:
        lam_t, index_t = check_mixup(mixup, images)
    channels_last = memory_format == torch.channels_last

    chosen = _backend.resolve_backend(backend, images.device, _library.NORMALIZE_IMAGES)
    if chosen == "reference":
        return reference_forward(
            images, mean_t, std_t, flip_t, lam_t, index_t, nhwc, out_dtype, channels_last
        )
    dense, dense_nhwc = _dense_layout(images, nhwc)
    return _library.op_for(_library.NORMALIZE_IMAGES, chosen)(
        dense, mean_t, std_t, flip_t, lam_t, index_t, dense_nhwc, out_dtype, channels_last
    )
