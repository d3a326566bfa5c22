"""Static compile specs of the Triton kernels in ``cookbook_ops/triton/bilinear_pool.py``:
what its launchers compile for the benchmarked shapes, for ``tools/gpu_static_check.py`` (an sm_90
compile without a GPU). Kept beside the tool that uses them; they name the module's kernels and
launch parameters, so they change with it.
"""

from __future__ import annotations

import torch

from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops.triton._common import TRITON_DTYPES
from cookbook_ops.triton.bilinear_pool import (  # noqa: F401
    _STORE_V,
    _STORE_Z,
    _SUMSQ_ONLY,
    _backward_params,
    _bilinear_forward_kernel,
    _forward_params,
    _grad_dtype,
    _grad_gram_kernel,
    _grad_input_kernel,
    _grad_tile,
    _normalize_kernel,
    _recomputes,
    _row_dot_kernel,
    _stream_block,
)


def static_compile_specs() -> list[dict]:
    """What the launchers compile for the benchmarked shape (D = 512, M = 784; one stream and
    two streams; bf16 and fp32), forward and backward, for an sm_90 compile check."""
    specs = []
    for dtype in (torch.bfloat16, torch.float32):
        for symmetric in (True, False):
            specs += compile_specs(dtype, 512, 512, 784, symmetric)
    # Same kernel objects and configurations may repeat across stream counts; keep one each.
    unique = {}
    for spec in specs:
        unique.setdefault(spec["name"], spec)
    return list(unique.values())


def _spec(name, fn, types, constexprs, num_warps, aligned, **extra) -> dict:
    signature = {arg: "constexpr" if arg in constexprs else types[arg] for arg in fn.arg_names}
    return {
        "name": name,
        "fn": fn,
        "signature": signature,
        "constexprs": constexprs,
        "num_warps": num_warps,
        "aligned_args": [a for a in aligned if a in fn.arg_names],
        **extra,
    }


def compile_specs(dtype: torch.dtype, d1: int, d2: int, m: int, symmetric: bool) -> list[dict]:
    """The kernels (and configurations) forward and backward launch for contiguous inputs of
    ``dtype`` with D1 = d1, D2 = d2 (ignored when symmetric), M = m. Pointers come from the
    caching allocator (16-byte aligned); sizes count as aligned only when multiples of 16, as
    Triton's specialisation marks them at run time."""
    if symmetric:
        d2 = d1
    name = TRITON_DTYPES[dtype]
    acc = TRITON_DTYPES[opmath_dtype(dtype)]
    grad = TRITON_DTYPES[_grad_dtype(dtype)]
    streams = "1s" if symmetric else "2s"
    ints = {"n_batch": "i32", "D1": "i32", "D2": "i32", "M": "i32", "L": "i32", "R": "i32"}
    ints["K"] = "i32"
    sizes = {"D1": d1, "D2": d2, "M": m, "L": d1 * d2}
    aligned_sizes = [k for k, s in sizes.items() if s % 16 == 0]
    specs = []

    fwd = _forward_params(d1, d2, dtype)
    fwd_warps, fwd_stages = fwd.pop("num_warps"), fwd.pop("num_stages")
    recompute = _recomputes(dtype, symmetric)
    # (stage, name suffix, type of v_ptr as launched (z itself when recomputing), store width)
    stages = (
        [(_SUMSQ_ONLY, "sumsq", name, None), (_STORE_Z, "z", name, 128)]
        if recompute
        else [(_STORE_V, "v", acc, 128)]
    )
    for stage, what, stored, store_bits in stages:
        specs.append(
            _spec(
                f"bilinear_forward_{what}_{streams}_{name}_D{d1}x{d2}_M{m}",
                _bilinear_forward_kernel,
                {
                    "a_ptr": f"*{name}",
                    "b_ptr": f"*{name}",
                    "v_ptr": f"*{stored}",
                    "sumsq_ptr": f"*{acc}",
                    "norm_ptr": f"*{acc}",
                    "eps_hi": "fp32",
                    "eps_lo": "fp32",
                    **ints,
                },
                {"STAGE": stage, "SYMMETRIC": symmetric, "FROM_GRAM": False, **fwd},
                fwd_warps,
                ["a_ptr", "b_ptr", "v_ptr", "sumsq_ptr", "norm_ptr", *aligned_sizes],
                num_stages=fwd_stages,
                # Compute-bound, but its pipelined tile copies and tile stores (mirror
                # included) do reach 16 bytes: the width check guards them against a
                # regression. The sum-of-squares stage stores nothing but one atomic.
                bandwidth_bound=True,
                min_load_bits=128,
                min_store_bits=store_bits,
                # The z stage clamps the norm: that max must keep NaN (tools/gpu_static_check.py).
                nan_propagating_max=stage == _STORE_Z,
            )
        )
    block = _stream_block(dtype)
    if not recompute:
        specs.append(
            _spec(
                f"bilinear_normalize_{name}_L{d1 * d2}",
                _normalize_kernel,
                {
                    "v_ptr": f"*{acc}",
                    "sumsq_ptr": f"*{acc}",
                    "z_ptr": f"*{name}",
                    "norm_ptr": f"*{acc}",
                    **ints,
                },
                {"BLOCK": block},
                4,
                ["v_ptr", "sumsq_ptr", "z_ptr", "norm_ptr", *aligned_sizes],
                bandwidth_bound=True,
                min_load_bits=128,
                min_store_bits=128,
                nan_propagating_max=True,  # the norm clamp
            )
        )
    specs.append(
        _spec(
            f"bilinear_row_dot_{name}_L{d1 * d2}",
            _row_dot_kernel,
            {"z_ptr": f"*{name}", "dz_ptr": f"*{name}", "c_ptr": f"*{acc}", **ints},
            {"BLOCK": block},
            4,
            ["z_ptr", "dz_ptr", "c_ptr", *aligned_sizes],
            bandwidth_bound=True,
            min_load_bits=128,
            min_store_bits=None,  # one atomic per program
        )
    )
    specs.append(
        _spec(
            f"bilinear_grad_gram_{streams}_{name}_D{d1}x{d2}",
            _grad_gram_kernel,
            {
                "z_ptr": f"*{name}",
                "dz_ptr": f"*{name}",
                "c_ptr": f"*{acc}",
                "norm_ptr": f"*{acc}",
                "ds_ptr": f"*{grad}",
                **ints,
            },
            {"SYMMETRIC": symmetric, "BLOCK": _grad_tile(d1, d2)},
            8,
            ["z_ptr", "dz_ptr", "c_ptr", "norm_ptr", "ds_ptr", *aligned_sizes],
            bandwidth_bound=True,
            min_load_bits=128,
            min_store_bits=128,
            nan_propagating_max=True,  # the norm clamp
        )
    )
    products = [(d1, d2, False)] + ([] if symmetric else [(d2, d1, True)])
    for rows, k, transposed in products:
        bwd = _backward_params(rows, m, dtype)
        bwd_warps, bwd_stages = bwd.pop("num_warps"), bwd.pop("num_stages")
        specs.append(
            _spec(
                f"bilinear_grad_input_{name}_R{rows}_K{k}_M{m}" + ("_dsT" if transposed else ""),
                _grad_input_kernel,
                {"ds_ptr": f"*{grad}", "b_ptr": f"*{name}", "out_ptr": f"*{name}", **ints},
                {"DS_TRANSPOSED": transposed, **bwd},
                bwd_warps,
                ["ds_ptr", "b_ptr", "out_ptr"]
                + [a for a, s in (("R", rows), ("K", k), ("M", m)) if s % 16 == 0],
                num_stages=bwd_stages,
                # Compute-bound; width check as for the forward product.
                bandwidth_bound=True,
                min_load_bits=128,
                min_store_bits=128,
            )
        )
    return specs
