"""Static compile specs of the Triton kernels in ``cookbook_ops/triton/normalize_images.py``:
what its launchers compile for the benchmarked shapes, for ``tools/gpu_static_check.py`` (an sm_90
compile without a GPU). Kept beside the tool that uses them; they name the module's kernels and
launch parameters, so they change with it.
"""

from __future__ import annotations

import torch

from cookbook_ops.triton._common import TRITON_DTYPES
from cookbook_ops.triton.normalize_images import (  # noqa: F401
    _ENABLE_FP_FUSION,
    _NUM_WARPS,
    _block,
    _normalize_images_kernel,
)


def static_compile_specs() -> list[dict]:
    """What the launcher compiles for 3 x 224 x 224 images, for an sm_90 compile check: every
    layout pair, float32 and bfloat16 outputs, plain and with flip + mixup."""
    specs = []
    for nhwc in (True, False):
        for channels_last in (False, True):
            for out_dtype in (torch.float32, torch.bfloat16):
                for extras in (False, True):
                    specs.append(compile_spec(nhwc, channels_last, out_dtype, extras))
    return specs


def compile_spec(
    nhwc: bool, channels_last: bool, out_dtype: torch.dtype, extras: bool, C=3, H=224, W=224
) -> dict:
    """The launcher's compile for one case; sizes are listed as aligned when multiples of 16,
    as Triton's specialisation marks them at run time."""
    fn = _normalize_images_kernel
    name = TRITON_DTYPES[out_dtype]
    block, rows = _block(W * C if channels_last else W)
    pointers = {
        "images_ptr": "*u8",
        "mean_ptr": "*fp32",
        "std_ptr": "*fp32",
        "flip_ptr": "*u8" if extras else "*fp32",
        "lam_ptr": "*fp32",
        "index_ptr": "*i64" if extras else "*fp32",
        "out_ptr": f"*{name}",
    }
    ints = {"n_samples": "i32", "runs": "i32", "C": "i32", "H": "i32", "W": "i32"}
    constexprs = {
        "NHWC": nhwc,
        "CHANNELS_LAST": channels_last,
        "HAS_FLIP": extras,
        "HAS_MIX": extras,
        "BLOCK": block,
        "ROWS": rows,
    }
    types = {**pointers, **ints}
    signature = {arg: "constexpr" if arg in constexprs else types[arg] for arg in fn.arg_names}
    sizes = {"C": C, "H": H, "W": W}
    aligned = [k for k, v in sizes.items() if v % 16 == 0]
    same_layout = nhwc == channels_last
    layout = ("nhwc" if nhwc else "nchw") + ("_to_cl" if channels_last else "_to_nchw")
    return {
        "name": f"normalize_images_{layout}_{name}{'_flip_mix' if extras else ''}",
        "fn": fn,
        "signature": signature,
        "constexprs": constexprs,
        "num_warps": _NUM_WARPS,
        "enable_fp_fusion": _ENABLE_FP_FUSION,
        "aligned_args": list(pointers) + aligned,
        "bandwidth_bound": True,
        # Arithmetic checks on the generated code (tools/gpu_static_check.py).
        "separate_rounding": extras,
        "row_count_args": ["runs"],
        # A run (W, or W C) may be as long as 2**31 - 1: no tl.cdiv-style length + (BLOCK - 1).
        "size_args": ["C", "H", "W"],
        # Same-layout runs load 16 bytes per vector; transposing ones gather single bytes
        # (see the module docstring), so only their stores have a width requirement.
        "min_load_bits": 128 if same_layout else None,
        "min_store_bits": 128,
    }
