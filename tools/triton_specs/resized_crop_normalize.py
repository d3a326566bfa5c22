"""Static compile specs of the Triton kernel in ``cookbook_ops/triton/resized_crop_normalize.py``:
what its launcher compiles for 3-channel images, for ``tools/gpu_static_check.py`` (an sm_90
compile without a GPU). Kept beside the tool that uses them; they name the module's kernel and
launch parameters, so they change with it.
"""

from __future__ import annotations

import torch

from cookbook_ops.triton._common import TRITON_DTYPES
from cookbook_ops.triton.resized_crop_normalize import (
    _BLOCK,
    _ENABLE_FP_FUSION,
    _NUM_WARPS,
    _TILE_H,
    _resized_crop_normalize_kernel,
)


def static_compile_specs() -> list[dict]:
    """What the launcher compiles for 3-channel images, for an sm_90 compile check: both input
    and output layouts, antialias on and off, float32 and bfloat16, plain and flip + mixup."""
    specs = []
    for nhwc, channels_last in ((True, False), (True, True), (False, False)):
        for antialias in (True, False):
            for out_dtype, extras in ((torch.float32, False), (torch.bfloat16, True)):
                specs.append(compile_spec(nhwc, channels_last, antialias, out_dtype, extras))
    return specs


def compile_spec(
    nhwc: bool, channels_last: bool, antialias: bool, out_dtype: torch.dtype, extras: bool, C=3
) -> dict:
    fn = _resized_crop_normalize_kernel
    name = TRITON_DTYPES[out_dtype]
    pointers = {
        "table_ptr": "*i64",
        "boxes_ptr": "*i64",
        "mean_ptr": "*fp32",
        "std_ptr": "*fp32",
        "flip_ptr": "*u8" if extras else "*fp32",
        "lam_ptr": "*fp32",
        "index_ptr": "*i64" if extras else "*fp32",
        "out_ptr": f"*{name}",
    }
    ints = {"n_samples": "i32", "out_h": "i32", "out_w": "i32"}
    constexprs = {
        "C": C,
        "NHWC": nhwc,
        "CHANNELS_LAST": channels_last,
        "ANTIALIAS": antialias,
        "HAS_FLIP": extras,
        "HAS_MIX": extras,
        "TILE_H": _TILE_H,
        "BLOCK": _BLOCK,
    }
    types = {**pointers, **ints}
    signature = {arg: "constexpr" if arg in constexprs else types[arg] for arg in fn.arg_names}
    layout = ("nhwc" if nhwc else "nchw") + ("_to_cl" if channels_last else "_to_nchw")
    filt = "aa" if antialias else "bilinear"
    return {
        "name": f"resized_crop_normalize_{layout}_{filt}_{name}{'_flip_mix' if extras else ''}",
        "fn": fn,
        "signature": signature,
        "constexprs": constexprs,
        "num_warps": _NUM_WARPS,
        "enable_fp_fusion": _ENABLE_FP_FUSION,
        "aligned_args": list(pointers),
        # Gathers one byte per tap (the taps of neighbouring pixels are neither contiguous nor
        # aligned), so no load or store width is required.
        "bandwidth_bound": False,
    }
