"""Bilinear pooling (signed sqrt + L2 normalization) in Triton.

Forward, per sample n with A = x_n (D1, M) and B = y_n (D2, M) (B = A with one stream):
    G = A B^T / M, v = sign(G) sqrt(|G| + eps), norm = ||v||, z = v / max(norm, 1e-12)
- ``_bilinear_forward_kernel``: one (BLOCK_I, BLOCK_J) tile of G on the matrix units, K = M,
  fp32 accumulation; the epilogue scales by 1/M, takes the signed sqrt, adds the tile's sum of
  squares to the sample's total (atomically) and stores v in op-math precision. With one stream
  G is symmetric, so only tiles with tile_i <= tile_j are launched and each off-diagonal tile
  is stored a second time, transposed.
- ``_normalize_kernel``: z = v / max(norm, 1e-12) in the output dtype, and norm itself. The
  max keeps a NaN norm (as F.normalize does), so a NaN input gives a NaN sample.

One stream in 16 bits, the same kernel runs twice instead (``STAGE``): a first launch only
sums v^2, a second recomputes each tile and stores z directly. The 16-bit product is cheap on
the matrix units and half of it is skipped by symmetry, so the two launches do the FLOPs of one
full product while v in op-math precision (twice the bytes of z, written and read back) never
goes to memory. The recomputed tile is bit-identical to the first (same code, same order), so z
is exactly what the store-and-normalize path gives.

Backward, from x, y, z and norm only (|v| = norm |z|):
    c = <z, dz>, dv = (dz - z c) / norm, dG = dv / (2 |v|) (0 where z == 0)
- ``_row_dot_kernel``: c per sample.
- ``_grad_gram_kernel``: dS = dG + dG^T (one stream, again over the upper triangle of tiles,
  each program writing a tile and its mirror) or dS = dG (two streams).
- ``_grad_input_kernel``: dx = dS B / M, dy = dS^T A / M on the matrix units.

float64: tl.dot has no dependable fp64 path on every target, so the two products run in
torch.bmm and only the fused elementwise kernels (the forward epilogue reading G instead of
computing it, the normalization, c and dS) run in Triton.

``eps`` is a runtime argument: changing it never recompiles.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from cookbook_ops import _library
from cookbook_ops._dtypes import opmath_dtype
from cookbook_ops.triton._common import (
    INTERPRETED,
    device_context,
    register,
    split_double,
    split_scalar,
)

# The batch size and a ragged channel count should reuse the compiled kernel.
_NO_SPECIALIZE = ["n_batch"]

# Elementwise kernels: elements of one sample one program streams.
_STREAM_BLOCK = 2048
_STREAM_BLOCK_FP64 = 1024
# dS tiles: both the tile and its mirror are held at once, in op-math precision.
_GRAD_TILE = 64


# --- shared pieces --------------------------------------------------------------------------


@triton.jit
def _norm_floor(norm):
    """max(norm, 1e-12) that keeps a NaN norm, as F.normalize's clamp_min does: the plain
    tl.maximum compiles to max.f32, which returns 1e-12 for a NaN norm, and a sample with a NaN
    input would then come out as v * 1e12 (huge finite values) instead of NaN."""
    return tl.maximum(norm, 1e-12, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _upper_triangle_tile(pid):
    """The pid-th tile (ti, tj) with ti <= tj, column by column: pid = tj (tj+1)/2 + ti."""
    tj = ((tl.sqrt((8 * pid + 1).to(tl.float32)) - 1.0) * 0.5).to(tl.int32)
    # The float root can land one off for large pid; step back onto the exact column.
    tj = tl.where((tj + 1) * (tj + 2) // 2 <= pid, tj + 1, tj)
    tj = tl.where(tj * (tj + 1) // 2 > pid, tj - 1, tj)
    ti = pid - tj * (tj + 1) // 2
    return ti, tj


@triton.jit
def _tile_matmul(
    a_ptr,
    b_ptr,
    rows,
    cols,
    n_rows,
    n_cols,
    K,
    lda,
    ldb,
    A_K_MAJOR: tl.constexpr,
    B_K_MAJOR: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_J: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """sum_k A[rows, k] B[k, cols] in fp32. A is (n_rows, K), B is (K, n_cols); *_K_MAJOR
    says K is the contiguous axis (leading dimensions lda, ldb). The pointers are already
    offset to one sample, whose offsets fit in int32."""
    ks = tl.arange(0, BLOCK_K)
    row_mask = rows < n_rows
    col_mask = cols < n_cols
    if A_K_MAJOR:
        a_ptrs = a_ptr + rows[:, None] * lda + ks[None, :]
        a_step = BLOCK_K
    else:
        a_ptrs = a_ptr + ks[None, :] * lda + rows[:, None]
        a_step = BLOCK_K * lda
    if B_K_MAJOR:
        b_ptrs = b_ptr + cols[None, :] * ldb + ks[:, None]
        b_step = BLOCK_K
    else:
        b_ptrs = b_ptr + ks[:, None] * ldb + cols[None, :]
        b_step = BLOCK_K * ldb
    acc = tl.zeros((BLOCK_I, BLOCK_J), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_mask = ks + k0 < K
        a = tl.load(a_ptrs, mask=row_mask[:, None] & k_mask[None, :], other=0.0)
        b = tl.load(b_ptrs, mask=k_mask[:, None] & col_mask[None, :], other=0.0)
        acc = tl.dot(a.to(DOT_DTYPE), b.to(DOT_DTYPE), acc, input_precision=PRECISION)
        a_ptrs += a_step
        b_ptrs += b_step
    return acc


@triton.jit
def _signed_sqrt(g, eps):
    r = tl.sqrt(tl.abs(g) + eps)
    # g * 0 keeps sign(0) = 0 and lets a NaN through, as torch.sign does.
    return tl.where(g > 0, r, tl.where(g < 0, -r, g * 0.0))


@triton.jit
def _store_tile(out_ptr, tile, rows, cols, ld, valid, mirrored):
    """Store one tile of a row-major matrix with leading dimension ``ld``; with ``mirrored``
    also its transpose at (cols, rows)."""
    out = tile.to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + rows[:, None] * ld + cols[None, :], out, mask=valid)
    if mirrored:
        tl.store(out_ptr + cols[None, :] * ld + rows[:, None], out, mask=valid)


# --- forward --------------------------------------------------------------------------------


# What one launch of the forward kernel does with its tiles of v.
_STORE_V = 0  # store v (op-math) and add the tiles' v^2 to the sample's sum of squares
_SUMSQ_ONLY = 1  # only the sum of squares
_STORE_Z = 2  # read the finished sum of squares; store z = v / max(norm, 1e-12) and norm


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _bilinear_forward_kernel(
    a_ptr,
    b_ptr,
    v_ptr,
    sumsq_ptr,
    norm_ptr,
    n_batch,
    D1,
    D2,
    M,
    eps_hi,
    eps_lo,
    STAGE: tl.constexpr,
    SYMMETRIC: tl.constexpr,
    FROM_GRAM: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_J: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    acc_dtype: tl.constexpr = sumsq_ptr.dtype.element_ty
    n = tl.program_id(1)
    if SYMMETRIC:
        ti, tj = _upper_triangle_tile(tl.program_id(0))
        # Off the diagonal the mirrored tile is never launched: this program stores it too and
        # counts it in the norm.
        mirrored = ti != tj
    else:
        tiles_j = tl.cdiv(D2, BLOCK_J)
        ti = tl.program_id(0) // tiles_j
        tj = tl.program_id(0) % tiles_j
        mirrored = ti < 0
    rows = ti * BLOCK_I + tl.arange(0, BLOCK_I)
    cols = tj * BLOCK_J + tl.arange(0, BLOCK_J)
    row_mask = rows < D1
    col_mask = cols < D2
    valid = row_mask[:, None] & col_mask[None, :]
    gram_offset = n.to(tl.int64) * D1 * D2
    if FROM_GRAM:
        # a_ptr holds the unscaled product A B^T (computed by torch.bmm).
        acc = tl.load(
            a_ptr + gram_offset + rows[:, None] * D2 + cols[None, :], mask=valid, other=0.0
        ).to(acc_dtype)
    else:
        acc = _tile_matmul(
            a_ptr + n.to(tl.int64) * D1 * M,
            b_ptr + n.to(tl.int64) * D2 * M,
            rows, cols, D1, D2, M, M, M,
            True, True, DOT_DTYPE, PRECISION, BLOCK_I, BLOCK_J, BLOCK_K,
        )  # fmt: skip
    # Scaled in fp32 before anything is rounded, so 16-bit inputs with large M cannot overflow.
    g = acc / M
    v = _signed_sqrt(g, split_scalar(eps_hi, eps_lo, acc_dtype))
    v = tl.where(valid, v, 0.0)
    if STAGE == 2:
        # z exactly as _normalize_kernel makes it from a stored v.
        norm = tl.sqrt(tl.load(sumsq_ptr + n))
        z = v / _norm_floor(norm)
        _store_tile(v_ptr + gram_offset, z, rows, cols, D2, valid, mirrored)
        if tl.program_id(0) == 0:
            tl.store(norm_ptr + n, norm)
    else:
        sumsq = tl.sum(tl.sum(v * v, axis=1), axis=0)
        if STAGE == 0:
            _store_tile(v_ptr + gram_offset, v, rows, cols, D2, valid, mirrored)
        if mirrored:
            sumsq = sumsq * 2
        tl.atomic_add(sumsq_ptr + n, sumsq, sem="relaxed")


@triton.jit
def _normalize_kernel(
    v_ptr,
    sumsq_ptr,
    z_ptr,
    norm_ptr,
    L,
    BLOCK: tl.constexpr,
):
    chunk = tl.program_id(0)
    n = tl.program_id(1)
    norm = tl.sqrt(tl.load(sumsq_ptr + n))
    offs = chunk * BLOCK + tl.arange(0, BLOCK)
    mask = offs < L
    base = n.to(tl.int64) * L
    v = tl.load(v_ptr + base + offs, mask=mask, other=0.0)
    z = v / _norm_floor(norm)
    # May overwrite v in place (fp32/fp64): each element is read before it is written, by the
    # same program.
    tl.store(z_ptr + base + offs, z.to(z_ptr.dtype.element_ty), mask=mask)
    if chunk == 0:
        tl.store(norm_ptr + n, norm)


# --- backward -------------------------------------------------------------------------------


@triton.jit
def _row_dot_kernel(z_ptr, dz_ptr, c_ptr, L, BLOCK: tl.constexpr):
    acc_dtype: tl.constexpr = c_ptr.dtype.element_ty
    chunk = tl.program_id(0)
    n = tl.program_id(1)
    offs = chunk * BLOCK + tl.arange(0, BLOCK)
    mask = offs < L
    base = n.to(tl.int64) * L
    z = tl.load(z_ptr + base + offs, mask=mask, other=0.0).to(acc_dtype)
    dz = tl.load(dz_ptr + base + offs, mask=mask, other=0.0).to(acc_dtype)
    tl.atomic_add(c_ptr + n, tl.sum(z * dz, axis=0), sem="relaxed")


@triton.jit
def _grad_gram(z, dz, c, scale, half_inv_norm):
    """dG = dv / (2 norm |z|) with dv = (dz - z c) * scale; 0 where z == 0."""
    dv = (dz - z * c) * scale
    nonzero = z != 0
    return tl.where(nonzero, dv * half_inv_norm / tl.where(nonzero, tl.abs(z), 1.0), 0.0)


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _grad_gram_kernel(
    z_ptr,
    dz_ptr,
    c_ptr,
    norm_ptr,
    ds_ptr,
    n_batch,
    D1,
    D2,
    SYMMETRIC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    acc_dtype: tl.constexpr = c_ptr.dtype.element_ty
    n = tl.program_id(1)
    if SYMMETRIC:
        ti, tj = _upper_triangle_tile(tl.program_id(0))
    else:
        tiles_j = tl.cdiv(D2, BLOCK)
        ti = tl.program_id(0) // tiles_j
        tj = tl.program_id(0) % tiles_j
    rows = ti * BLOCK + tl.arange(0, BLOCK)
    cols = tj * BLOCK + tl.arange(0, BLOCK)
    valid = (rows < D1)[:, None] & (cols < D2)[None, :]

    norm = tl.load(norm_ptr + n).to(acc_dtype)
    c = tl.load(c_ptr + n)
    clamped = norm < 1e-12
    # Below the floor F.normalize divides by the constant 1e-12: no projection term.
    scale = tl.where(clamped, 1e12, 1.0 / _norm_floor(norm)).to(acc_dtype)
    c = tl.where(clamped, 0.0, c).to(acc_dtype)
    half_inv_norm = (0.5 / norm).to(acc_dtype)

    base = n.to(tl.int64) * D1 * D2
    direct = base + rows[:, None] * D2 + cols[None, :]
    z = tl.load(z_ptr + direct, mask=valid, other=0.0).to(acc_dtype)
    dz = tl.load(dz_ptr + direct, mask=valid, other=0.0).to(acc_dtype)
    ds = _grad_gram(z, dz, c, scale, half_inv_norm)
    if SYMMETRIC:
        # The (tj, ti) tile read transposed: dS = dG + dG^T for both tiles from one pair of
        # reads.
        mirror = base + cols[None, :] * D2 + rows[:, None]
        zt = tl.load(z_ptr + mirror, mask=valid, other=0.0).to(acc_dtype)
        dzt = tl.load(dz_ptr + mirror, mask=valid, other=0.0).to(acc_dtype)
        ds += _grad_gram(zt, dzt, c, scale, half_inv_norm)
        out = ds.to(ds_ptr.dtype.element_ty)
        tl.store(ds_ptr + direct, out, mask=valid)
        if ti != tj:
            tl.store(ds_ptr + mirror, out, mask=valid)
    else:
        tl.store(ds_ptr + direct, ds.to(ds_ptr.dtype.element_ty), mask=valid)


@triton.jit(do_not_specialize=_NO_SPECIALIZE)
def _grad_input_kernel(
    ds_ptr,
    b_ptr,
    out_ptr,
    n_batch,
    R,
    K,
    M,
    DS_TRANSPOSED: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_J: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """out_n (R, M) = dS_n B_n / M with dS_n (R, K) (or stored (K, R) when DS_TRANSPOSED) and
    B_n (K, M)."""
    n = tl.program_id(1)
    tiles_j = tl.cdiv(M, BLOCK_J)
    ti = tl.program_id(0) // tiles_j
    tj = tl.program_id(0) % tiles_j
    rows = ti * BLOCK_I + tl.arange(0, BLOCK_I)
    cols = tj * BLOCK_J + tl.arange(0, BLOCK_J)
    if DS_TRANSPOSED:
        lda = R
    else:
        lda = K
    acc = _tile_matmul(
        ds_ptr + n.to(tl.int64) * R * K,
        b_ptr + n.to(tl.int64) * K * M,
        rows, cols, R, M, K, lda, M,
        not DS_TRANSPOSED, False, DOT_DTYPE, PRECISION, BLOCK_I, BLOCK_J, BLOCK_K,
    )  # fmt: skip
    acc = acc / M
    mask = (rows < R)[:, None] & (cols < M)[None, :]
    out = out_ptr + n.to(tl.int64) * R * M + rows[:, None] * M + cols[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask)


# --- launch heuristics ----------------------------------------------------------------------

_TL_DTYPES = {
    torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16,
    torch.float32: tl.float32,
    torch.float64: tl.float64,
}


def _dot_operands(dtype: torch.dtype, precision: str) -> tuple:
    """(operand type, input_precision) of tl.dot for operands of ``dtype``."""
    if INTERPRETED and dtype == torch.bfloat16:
        # The interpreter multiplies bf16 as its raw uint16 storage; fp32 holds every bf16
        # value exactly and the accumulation is fp32 either way.
        return tl.float32, "ieee"
    return _TL_DTYPES[dtype], precision


def _block(size: int, cap: int) -> int:
    # tl.dot needs every tile side >= 16.
    return max(16, min(cap, triton.next_power_of_2(max(size, 1))))


def _forward_params(d1: int, d2: int, dtype: torch.dtype) -> dict:
    if dtype == torch.float32:
        # Plain fp32 FMAs, not tf32x3: near G = 0 the signed sqrt multiplies the error of G by
        # 1/(2 sqrt(eps)), and the backward divides by |v| again, so tf32x3's ~8x larger error
        # in G showed up in fp32 gradients beyond fp32 tolerance.
        dot_dtype, precision, block_k = tl.float32, "ieee", 32
    else:
        (dot_dtype, precision), block_k = _dot_operands(dtype, "tf32"), 64
    return {
        "DOT_DTYPE": dot_dtype,
        "PRECISION": precision,
        "BLOCK_I": _block(d1, 128),
        "BLOCK_J": _block(d2, 128),
        "BLOCK_K": block_k,
        "num_warps": 8,
        "num_stages": 3,
    }


def _grad_dtype(dtype: torch.dtype) -> torch.dtype:
    """Storage of dS and operand type of the dx/dy products. bf16 has fp32's range, so dS is
    rounded to it like any bf16 GEMM operand; in fp16 1/|z| can overflow, so fp16 keeps dS in
    fp32 and runs the product in tf32 (which holds every fp16 value exactly)."""
    return torch.bfloat16 if dtype == torch.bfloat16 else opmath_dtype(dtype)


def _backward_params(rows: int, m: int, dtype: torch.dtype) -> dict:
    if dtype == torch.bfloat16:
        (dot_dtype, precision), block_k = _dot_operands(dtype, "tf32"), 64
    elif dtype == torch.float16:
        dot_dtype, precision, block_k = tl.float32, "tf32", 32
    else:
        dot_dtype, precision, block_k = tl.float32, "tf32x3", 32
    return {
        "DOT_DTYPE": dot_dtype,
        "PRECISION": precision,
        "BLOCK_I": _block(rows, 128),
        "BLOCK_J": _block(m, 128),
        "BLOCK_K": block_k,
        "num_warps": 8,
        "num_stages": 3,
    }


def _stream_block(dtype: torch.dtype) -> int:
    return _STREAM_BLOCK_FP64 if dtype == torch.float64 else _STREAM_BLOCK


def _grad_tile(d1: int, d2: int) -> int:
    return max(16, min(_GRAD_TILE, triton.next_power_of_2(max(d1, d2, 1))))


def _prepare(x, y):
    if x.dim() != 3:
        raise ValueError(f"x must be (N, D1, M), got shape {tuple(x.shape)}")
    if x.dtype not in _TL_DTYPES:
        raise TypeError(f"x must be float16/bfloat16/float32/float64, got {x.dtype}")
    if y is not None:
        if y.dim() != 3 or y.shape[0] != x.shape[0] or y.shape[2] != x.shape[2]:
            raise ValueError(
                f"y must be (N, D2, M) matching x {tuple(x.shape)}, got {tuple(y.shape)}"
            )
        if y.dtype != x.dtype:
            raise TypeError(f"y is {y.dtype} but x is {x.dtype}")
        if y.device != x.device:
            raise ValueError(f"y is on {y.device} but x is on {x.device}")
        y = y.contiguous()
    return x.contiguous(), y


def _recomputes(dtype: torch.dtype, symmetric: bool) -> bool:
    """Whether the forward runs the product twice (sum of squares, then z) instead of storing
    v: one stream in 16 bits, where the skipped half of the product makes both launches
    together cost one full product and the op-math v would be twice the bytes of z."""
    return symmetric and dtype in (torch.float16, torch.bfloat16)


def _triangle_tiles(tiles: int) -> int:
    return tiles * (tiles + 1) // 2


def bilinear_pool_forward(x, y, eps):
    x, y = _prepare(x, y)
    context = device_context(x.device, "bilinear_pool")
    n, d1, m = x.shape
    b = x if y is None else y
    d2 = b.shape[1]
    acc_dtype = opmath_dtype(x.dtype)
    z = torch.empty((n, d1 * d2), dtype=x.dtype, device=x.device)
    norm = torch.empty((n,), dtype=acc_dtype, device=x.device)
    if n == 0:
        return z, norm
    if d1 * d2 == 0:
        norm.zero_()
        return z, norm
    sumsq = torch.zeros((n,), dtype=acc_dtype, device=x.device)
    eps_hi, eps_lo = split_double(float(eps))
    symmetric = y is None
    params = _forward_params(d1, d2, x.dtype)
    tiles_i = triton.cdiv(d1, params["BLOCK_I"])
    tiles_j = triton.cdiv(d2, params["BLOCK_J"])
    tiles = _triangle_tiles(tiles_i) if symmetric else tiles_i * tiles_j
    with context:
        if _recomputes(x.dtype, symmetric):
            for stage in (_SUMSQ_ONLY, _STORE_Z):
                _bilinear_forward_kernel[(tiles, n)](
                    x, x, z, sumsq, norm, n, d1, d2, m, eps_hi, eps_lo,
                    STAGE=stage, SYMMETRIC=True, FROM_GRAM=False, **params,
                )  # fmt: skip
            return z, norm
        if x.dtype == torch.float64:
            gram = torch.bmm(x, b.transpose(1, 2))
            a_arg, b_arg, from_gram = gram, gram, True
        else:
            a_arg, b_arg, from_gram = x, b, False
        # v in op-math precision; fp32/fp64 outputs hold it in z itself, normalized in place.
        v = z if z.dtype == acc_dtype else torch.empty_like(z, dtype=acc_dtype)
        _bilinear_forward_kernel[(tiles, n)](
            a_arg, b_arg, v, sumsq, norm, n, d1, d2, m, eps_hi, eps_lo,
            STAGE=_STORE_V, SYMMETRIC=symmetric, FROM_GRAM=from_gram, **params,
        )  # fmt: skip
        block = _stream_block(x.dtype)
        _normalize_kernel[(triton.cdiv(d1 * d2, block), n)](
            v, sumsq, z, norm, d1 * d2, BLOCK=block, num_warps=4
        )
    return z, norm


def bilinear_pool_backward(grad_z, x, y, z, norm):
    x, y = _prepare(x, y)
    context = device_context(x.device, "bilinear_pool")
    n, d1, m = x.shape
    b = x if y is None else y
    d2 = b.shape[1]
    acc_dtype = opmath_dtype(x.dtype)
    for name, t, numel in (
        ("grad_z", grad_z, n * d1 * d2),
        ("z", z, n * d1 * d2),
        ("norm", norm, n),
    ):
        if t.numel() != numel or t.shape[0] != n:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}; expected {numel // max(n, 1)} "
                f"values for each of the {n} samples"
            )
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    dx = torch.empty_like(x)
    dy = None if y is None else torch.empty_like(y)
    grads = [dx] if y is None else [dx, dy]
    if n == 0 or m == 0:
        return grads
    if d1 * d2 == 0:
        for g in grads:
            g.zero_()
        return grads
    z = z.reshape(n, d1 * d2).contiguous()
    grad_z = grad_z.reshape(n, d1 * d2).contiguous()
    norm = norm.to(acc_dtype).contiguous()
    c = torch.zeros((n,), dtype=acc_dtype, device=x.device)
    ds = torch.empty((n, d1, d2), dtype=_grad_dtype(x.dtype), device=x.device)
    symmetric = y is None
    with context:
        block = _stream_block(x.dtype)
        _row_dot_kernel[(triton.cdiv(d1 * d2, block), n)](
            z, grad_z, c, d1 * d2, BLOCK=block, num_warps=4
        )
        tile = _grad_tile(d1, d2)
        tiles_i, tiles_j = triton.cdiv(d1, tile), triton.cdiv(d2, tile)
        tiles = _triangle_tiles(tiles_i) if symmetric else tiles_i * tiles_j
        _grad_gram_kernel[(tiles, n)](
            z, grad_z, c, norm, ds, n, d1, d2, SYMMETRIC=symmetric, BLOCK=tile, num_warps=8
        )
        if x.dtype == torch.float64:
            torch.div(torch.bmm(ds, b), m, out=dx)
            if y is not None:
                torch.div(torch.bmm(ds.transpose(1, 2), x), m, out=dy)
            return grads
        # (dS, B, out, rows of out, K, transposed dS)
        products = [(b, dx, d1, d2, False)]
        if y is not None:
            products.append((x, dy, d2, d1, True))
        for operand, out, rows, k, transposed in products:
            params = _backward_params(rows, m, x.dtype)
            grid = (triton.cdiv(rows, params["BLOCK_I"]) * triton.cdiv(m, params["BLOCK_J"]), n)
            _grad_input_kernel[grid](
                ds, operand, out, n, rows, k, m, DS_TRANSPOSED=transposed, **params
            )
    return grads


register(
    {
        _library.BILINEAR_FORWARD: bilinear_pool_forward,
        _library.BILINEAR_BACKWARD: bilinear_pool_backward,
    }
)
