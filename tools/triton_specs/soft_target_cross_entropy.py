"""Static compile specs of the Triton kernels in
``cookbook_ops/triton/soft_target_cross_entropy.py``:
what its launchers compile for the benchmarked shapes, for ``tools/gpu_static_check.py`` (an sm_90
compile without a GPU). Kept beside the tool that uses them; they name the module's kernels and
launch parameters, so they change with it.
"""

from __future__ import annotations

import torch

from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops.triton._common import TRITON_DTYPES
from cookbook_ops.triton.cross_entropy import _launch_params
from cookbook_ops.triton.soft_target_cross_entropy import (
    _soft_ce_backward_kernel,
    _soft_ce_forward_kernel,
)


def static_compile_specs() -> list[dict]:
    """The launchers' configurations for the benchmarked shapes (C = 1000 and 21843, fp32 and
    bf16; bf16 also with class weights; C = 100 in bf16, several rows per program), forward and
    backward, for the sm_90 compile check."""
    specs = []
    for dtype in (torch.float32, torch.bfloat16):
        for n_cols in (1000, 21843):
            for has_weight in (False, True) if dtype == torch.bfloat16 else (False,):
                for direction in ("forward", "backward"):
                    specs.append(compile_spec(direction, dtype, n_cols, has_weight))
    for direction in ("forward", "backward"):
        specs.append(compile_spec(direction, torch.bfloat16, 100))
    return specs


def compile_spec(direction: str, dtype: torch.dtype, n_cols: int, has_weight: bool = False):
    """What the launchers compile for contiguous (N, n_cols) logits and targets of ``dtype``."""
    name = TRITON_DTYPES[dtype]
    acc = TRITON_DTYPES[opmath_dtype(dtype)]
    params = _launch_params(n_cols, n_cols, dtype)
    num_warps = params.pop("num_warps")
    constexprs = {"HAS_WEIGHT": has_weight, **params}
    scalars = {
        "n_rows": "i32",
        "n_cols": "i32",
        "stride_row": "i32",
        "stride_target": "i32",
        "delta_hi": "fp32",
        "delta_lo": "fp32",
        "off_hi": "fp32",
        "off_lo": "fp32",
    }
    if direction == "forward":
        fn = _soft_ce_forward_kernel
        pointers = {
            "logits_ptr": f"*{name}",
            "target_ptr": f"*{name}",
            "weight_ptr": f"*{acc}",
            "loss_ptr": f"*{acc}",
            "lse_ptr": f"*{acc}",
            "target_sum_ptr": f"*{acc}",
            "correct_ptr": "*i1",
        }
    elif direction == "backward":
        fn = _soft_ce_backward_kernel
        pointers = {
            "grad_logits_ptr": f"*{name}",
            "grad_loss_ptr": f"*{acc}",
            "logits_ptr": f"*{name}",
            "target_ptr": f"*{name}",
            "weight_ptr": f"*{acc}",
            "lse_ptr": f"*{acc}",
            "target_sum_ptr": f"*{acc}",
        }
    else:
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    types = {**pointers, **scalars}
    signature = {arg: "constexpr" if arg in constexprs else types[arg] for arg in fn.arg_names}
    aligned_ints = ["n_cols", "stride_row", "stride_target"] if n_cols % 16 == 0 else []
    vector_bits = min(128, 8 * dtype.itemsize * params["ALIGN"])
    return {
        "name": f"soft_ce_{direction}_{name}_C{n_cols}" + ("_weighted" if has_weight else ""),
        "fn": fn,
        "signature": signature,
        "constexprs": constexprs,
        "num_warps": num_warps,
        "aligned_args": list(pointers) + aligned_ints,
        "bandwidth_bound": True,
        "nan_propagating_max": direction == "forward",
        "row_count_args": ["n_rows"],
        "min_load_bits": vector_bits,
        "min_store_bits": vector_bits if direction == "backward" else None,
    }
