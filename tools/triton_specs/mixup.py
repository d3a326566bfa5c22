"""Static compile specs of the Triton kernels in ``cookbook_ops/triton/mixup.py``:
what its launchers compile for the benchmarked shapes, for ``tools/gpu_static_check.py`` (an sm_90
compile without a GPU). Kept beside the tool that uses them; they name the module's kernels and
launch parameters, so they change with it.
"""

from __future__ import annotations

import torch

from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops.triton._common import TRITON_DTYPES
from cookbook_ops.triton.mixup import (  # noqa: F401
    _cutmix_kernel,
    _launch_params,
    _mixup_kernel,
    _mixup_pairs_kernel,
    _vector_width,
)


def static_compile_specs() -> list[dict]:
    """What the launchers compile for ImageNet-sized samples (3 x 224 x 224) in fp32 and bf16
    (and the uint8 forward, whose rounding takes another path): mixup forward/backward, pairs,
    CutMix forward/backward in NCHW and channels_last, for an sm_90 compile check."""
    C, H, W = 3, 224, 224
    specs = []
    for dtype in (torch.float32, torch.bfloat16):
        specs.append(compile_spec("mixup_forward", dtype, C, H, W))
        specs.append(compile_spec("mixup_backward", dtype, C, H, W))
        specs.append(compile_spec("mixup_pairs", dtype, C, H, W))
        for channels_last in (False, True):
            for kind in ("cutmix_forward", "cutmix_backward"):
                specs.append(compile_spec(kind, dtype, C, H, W, channels_last))
    specs.append(compile_spec("mixup_forward", torch.uint8, C, H, W))
    # Small samples pack several to a program (BLOCK_N > 1), where the row index is
    # program-dependent arithmetic: 1000-value rows (a feature or soft-target batch) and
    # 1 x 28 x 28 images.
    for kind in ("mixup_forward", "mixup_backward", "mixup_pairs"):
        specs.append(compile_spec(kind, torch.float32, 1, 1, 1000))
    specs.append(compile_spec("cutmix_forward", torch.float32, 1, 28, 28))
    return specs


def compile_spec(
    kind: str, dtype: torch.dtype, C: int, H: int, W: int, channels_last: bool = False
) -> dict:
    """What the launcher compiles for an (N, C, H, W) input of ``dtype``. Pointers come from
    the caching allocator (16-byte aligned); sizes are listed as aligned only when multiples of
    16, as Triton's specialisation marks them at run time."""
    name = TRITON_DTYPES[dtype]
    acc = TRITON_DTYPES[opmath_dtype(dtype)]
    S = C * H * W
    params = _launch_params(S, dtype)
    num_warps = params.pop("num_warps")
    enable_fp_fusion = params.pop("enable_fp_fusion")
    ints = {"n_samples": "i32", "S": "i32", "C": "i32", "H": "i32", "W": "i32"}
    if kind in ("mixup_forward", "mixup_backward"):
        fn = _mixup_kernel
        pointers = {"x_ptr": f"*{name}", "out_ptr": f"*{name}", "lam_ptr": f"*{acc}"}
        pointers["src_ptr"] = "*i64"
        constexprs = {"LAM_FROM_SOURCE": kind == "mixup_backward", **params}
        load_bits = 128
    elif kind == "mixup_pairs":
        fn = _mixup_pairs_kernel
        pointers = {"x_ptr": f"*{name}", "lam_ptr": f"*{acc}", "pairs_ptr": "*i64"}
        constexprs = params
        load_bits = 128
    elif kind in ("cutmix_forward", "cutmix_backward"):
        fn = _cutmix_kernel
        pointers = {"x_ptr": f"*{name}", "out_ptr": f"*{name}", "boxes_ptr": "*i64"}
        pointers["src_ptr"] = "*i64"
        vec = _vector_width(C if channels_last else W, dtype)
        constexprs = {
            "BACKWARD": kind == "cutmix_backward",
            "CHANNELS_LAST": channels_last,
            "VEC": vec,
            **params,
        }
        load_bits = 8 * dtype.itemsize * vec
    else:
        raise ValueError(f"unknown kind {kind!r}")
    types = {**pointers, **ints}
    signature = {arg: "constexpr" if arg in constexprs else types[arg] for arg in fn.arg_names}
    sizes = {"S": S, "C": C, "H": H, "W": W}
    aligned = [k for k, v in sizes.items() if v % 16 == 0 and k in fn.arg_names]
    layout = "_cl" if channels_last else ""
    # The size arguments the kernel reads (NCHW CutMix never reads C).
    size_args = [a for a in sizes if a in fn.arg_names and (a != "C" or channels_last)]
    return {
        "name": f"{kind}{layout}_{name}_{C}x{H}x{W}",
        "fn": fn,
        "signature": signature,
        "constexprs": constexprs,
        "num_warps": num_warps,
        "enable_fp_fusion": enable_fp_fusion,
        "aligned_args": list(pointers) + aligned,
        "bandwidth_bound": True,
        # Arithmetic checks on the generated code (tools/gpu_static_check.py).
        "separate_rounding": kind.startswith("mixup"),
        "row_count_args": ["n_samples"],
        # Sizes up to 2**31 - 1: no tl.cdiv-style S + (BLOCK - 1) in int32.
        "size_args": size_args,
        # Sample blocks stream in 16-byte vectors. CutMix loads are masked per vector along
        # the innermost dimension, so channels_last with C = 3 can only load one element at
        # a time (its stores still stream whole vectors).
        "min_load_bits": load_bits if load_bits >= 128 else None,
        "min_store_bits": 128,
    }
