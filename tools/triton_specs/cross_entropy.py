"""Static compile specs of the Triton kernels in ``cookbook_ops/triton/cross_entropy.py``:
what its launchers compile for the benchmarked shapes, for ``tools/gpu_static_check.py`` (an sm_90
compile without a GPU). Kept beside the tool that uses them; they name the module's kernels and
launch parameters, so they change with it.
"""

from __future__ import annotations

import torch

from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops.triton._common import TRITON_DTYPES
from cookbook_ops.triton.cross_entropy import (
    _launch_params,
    _lsce_backward_kernel,
    _lsce_forward_kernel,
    _mixup_ce_backward_kernel,
    _mixup_ce_forward_kernel,
)


def static_compile_specs() -> list[dict]:
    """The kernel configurations the launchers use for the benchmarked shapes (C = 1000 and
    128256; fp32, bf16, fp16; bf16 also with class weights), forward and backward, one- and
    two-target (mixup), for an sm_90 compile check; and C = 100 in bf16, where several rows
    share a program (BLOCK_N > 1) and the row index is program-dependent arithmetic.
    Constexprs appear in ``signature`` as ``"constexpr"``, as ``ASTSource`` expects."""
    specs = []
    for mixup in (False, True):
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            for n_cols in (1000, 128256):
                for has_weight in (False, True) if dtype == torch.bfloat16 else (False,):
                    for direction in ("forward", "backward"):
                        specs.append(compile_spec(direction, dtype, n_cols, has_weight, mixup))
        for direction in ("forward", "backward"):
            specs.append(compile_spec(direction, torch.bfloat16, 100, False, mixup))
    return specs


def compile_spec(
    direction: str, dtype: torch.dtype, n_cols: int, has_weight: bool = False, mixup: bool = False
) -> dict:
    """What the launcher compiles for contiguous (N, n_cols) logits of ``dtype`` (two target
    slots when ``mixup``). Tensor pointers come from the caching allocator (16-byte aligned);
    n_cols and the row stride are listed as aligned only when they are multiples of 16, as
    Triton's specialisation marks them at run time."""
    name = TRITON_DTYPES[dtype]
    acc = TRITON_DTYPES[opmath_dtype(dtype)]
    params = _launch_params(n_cols, n_cols, dtype)
    num_warps = params.pop("num_warps")
    constexprs = {"HAS_WEIGHT": has_weight, **params}
    scalars = {
        "n_rows": "i32",
        "n_cols": "i32",
        "stride_row": "i32",
        "stride_grad_loss": "i32",
        "stride_grad_loss_row": "i32",
        # 1 for the contiguous (N, 2) grad_loss autograd passes: specialised to a constant.
        "stride_grad_loss_slot": "constexpr",
        "delta_hi": "fp32",
        "delta_lo": "fp32",
        "off_hi": "fp32",
        "off_lo": "fp32",
        "ignore_index": "i32",
    }
    targets = {"target_a_ptr": "*i64", "target_b_ptr": "*i64"} if mixup else {"target_ptr": "*i64"}
    if direction == "forward":
        fn = _mixup_ce_forward_kernel if mixup else _lsce_forward_kernel
        pointers = {
            "logits_ptr": f"*{name}",
            **targets,
            "weight_ptr": f"*{acc}",
            "weight_sum_ptr": f"*{acc}",
            "loss_ptr": f"*{acc}",
            "lse_ptr": f"*{acc}",
            "correct_ptr": "*i1",
        }
    elif direction == "backward":
        fn = _mixup_ce_backward_kernel if mixup else _lsce_backward_kernel
        pointers = {
            "grad_logits_ptr": f"*{name}",
            "grad_loss_ptr": f"*{acc}",
            "logits_ptr": f"*{name}",
            **targets,
            "weight_ptr": f"*{acc}",
            "weight_sum_ptr": f"*{acc}",
            "lse_ptr": f"*{acc}",
        }
    else:
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    if mixup and direction == "backward":
        constexprs["stride_grad_loss_slot"] = 1
    types = {**pointers, **scalars}
    signature = {arg: "constexpr" if arg in constexprs else types[arg] for arg in fn.arg_names}
    aligned_ints = ["n_cols", "stride_row"] if n_cols % 16 == 0 else []
    vector_bits = min(128, 8 * dtype.itemsize * params["ALIGN"])
    prefix = "mixup_ce" if mixup else "lsce"
    return {
        "name": f"{prefix}_{direction}_{name}_C{n_cols}" + ("_weighted" if has_weight else ""),
        "fn": fn,
        "signature": signature,
        "constexprs": constexprs,
        "num_warps": num_warps,
        "aligned_args": list(pointers) + aligned_ints,
        "bandwidth_bound": True,
        # Arithmetic checks on the generated code (tools/gpu_static_check.py): the forward's
        # row max keeps NaN; row indices do not wrap.
        "nan_propagating_max": direction == "forward",
        "row_count_args": ["n_rows"],
        # The logits stream (and the class weights, and the gradient out) must move in 16-byte
        # vectors where the row length allows (ALIGN elements: 8 bytes for 100 bf16 logits);
        # per-row scalars (target, lse, the gathered target logit) are naturally narrower.
        "min_load_bits": vector_bits,
        "min_store_bits": vector_bits if direction == "backward" else None,
    }
