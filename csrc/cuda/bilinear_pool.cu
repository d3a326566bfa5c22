// Bilinear pooling with signed square root and L2 normalization, CUDA kernels. The math is
// that of cookbook_ops/reference/bilinear_pool.py.
//
// The GEMMs run on cuBLAS through ATen; the kernels here are the memory-bound work around them.
//
// Forward: G = x y^T comes out of cuBLAS in op-math precision (float for 16-bit inputs, so no
// 16-bit rounding happens before the 1/M scale and the square root). Then
//   1. sumsq: each of B blocks per sample reads a slice of G, forms v = sign(G/M)
//      sqrt(|G/M| + eps) and writes its partial sum of v^2 to a (N, B) buffer.
//   2. normalize: every block re-sums its sample's B partials (same order in every block, so
//      all blocks agree bit for bit and the result is deterministic, with no atomics and no
//      memset), recomputes v from G and writes z = v / max(||v||, 1e-12) in the input dtype.
// v is recomputed rather than stored: writing it back in place and reading it again costs a
// full extra pass over an op-math G, recomputing costs a square root per element.
//
// Backward, from z, dz and the norm only:
//   1. dot: per-(sample, block) partials of c = <z, dz>.
//   2. grad: every block re-sums c and writes dG = dv / (2 |v|), |v| = norm |z|; with one
//      stream the symmetrized dS = dG + dG^T, tile by tile through shared memory, each block
//      owning a tile and its mirror so that z and dz are read exactly once.
//   3. cuBLAS: dx = dS x / M (one stream), dx = dG y / M and dy = dG^T x / M (two streams);
//      1/M is the GEMM's alpha, applied in float to the float accumulator.
// dS/dG are stored in the GEMM's operand dtype: bfloat16 for bfloat16 inputs (float range; its
// 2^-9 relative rounding of each entry is random across the contraction and of the order of the
// rounding of dx to bfloat16 itself), float for float16 inputs (dG is of order
// |dz| / (2 D^2 |G|): a 512 x 512 feature with unscaled gradients falls into float16's
// subnormals, so float16 operands would lose it; x is upcast instead), the input dtype
// otherwise.
//
// All slices are walked as 16-byte vectors from their first 16-byte boundary, with scalar head
// and tail elements; offsets are int64.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cookbook_ops/checks.h"
#include "cookbook_ops/cuda_utils.cuh"

namespace cookbook_ops {
namespace {

using namespace cookbook_ops::cuda;

constexpr int kThreads = 256;
constexpr double kNormFloor = 1e-12;  // F.normalize's eps, as in the reference

struct Add {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};

// 16-byte loads per thread issued before any is used; doubles do more work per byte.
template <typename T>
constexpr int vectors_in_flight() {
  return std::is_same_v<T, double> ? 2 : 4;
}

// Stores K op-math values at p (16-byte aligned) as whole vectors of T.
template <typename T, int K>
__device__ __forceinline__ void store_values(T* p, const typename VecIO<T>::acc_t (&v)[K]) {
  constexpr int kPer = vec_width<T>();
  static_assert(K % kPer == 0, "whole vectors only");
#pragma unroll
  for (int j = 0; j < K; j += kPer) {
    typename VecIO<T>::acc_t part[kPer];
#pragma unroll
    for (int q = 0; q < kPer; ++q) part[q] = v[j + q];
    store_vec_raw(p + j, VecIO<T>::pack(part));
  }
}

// Sum of a sample's B partials; every thread of the block gets the same value. Each block
// adds them in the same order, so all blocks of a sample agree exactly.
template <typename acc_t>
__device__ __forceinline__ acc_t sum_partials(const acc_t* partial, int nb, acc_t* scratch,
                                              acc_t* broadcast) {
  acc_t v = acc_t(0);
  for (int k = threadIdx.x; k < nb; k += blockDim.x) v += partial[k];
  v = block_reduce(v, Add{}, acc_t(0), scratch);
  if (threadIdx.x == 0) *broadcast = v;
  __syncthreads();
  return *broadcast;
}

// v = sign(g) sqrt(|g| + eps), g = G / M. Float multiplies by 1/M (one rounding more than the
// reference's division, far below float tolerances, and it keeps the kernels memory-bound);
// double divides, as the reference does, for gradcheck.
template <typename acc_t>
struct SignedSqrt {
  acc_t scale;  // 1/M for float, M for double
  acc_t eps;

  __device__ __forceinline__ acc_t operator()(acc_t raw) const {
    acc_t g;
    if constexpr (std::is_same_v<acc_t, double>) {
      g = raw / scale;
    } else {
      g = raw * scale;
    }
    const acc_t r = sqrt(fabs(g) + eps);
    // copysign keeps a NaN G NaN, as sign(G) * sqrt(...) does; sign(0) = 0.
    return g == acc_t(0) ? acc_t(0) : copysign(r, g);
  }
};

template <typename acc_t>
SignedSqrt<acc_t> make_signed_sqrt(int64_t m, double eps) {
  SignedSqrt<acc_t> f;
  f.scale = std::is_same_v<acc_t, double> ? static_cast<acc_t>(m)
                                          : static_cast<acc_t>(1.0 / static_cast<double>(m));
  f.eps = static_cast<acc_t>(eps);
  return f;
}

// dG from z and dz:
//   dv = (dz - z c) / s              (dz / 1e-12 where s < 1e-12)
//   dG = dv / (2 s |z|) where z != 0, else 0.
// Float folds the per-sample divisions into factors (one division per element remains);
// double follows the reference operation by operation.
template <typename acc_t>
struct GradCoef {
  acc_t c;
  acc_t s;
  bool clamped;
  acc_t dv_scale;    // float: 1/s, or 1e12 where clamped
  acc_t half_inv_s;  // float: 1/(2 s)

  __device__ __forceinline__ void init(acc_t c_in, acc_t s_in) {
    s = s_in;
    clamped = s < static_cast<acc_t>(kNormFloor);
    c = clamped ? acc_t(0) : c_in;
    dv_scale = clamped ? static_cast<acc_t>(1.0 / kNormFloor) : acc_t(1) / s;
    half_inv_s = acc_t(1) / (acc_t(2) * s);
  }

  __device__ __forceinline__ acc_t operator()(acc_t z, acc_t dz) const {
    if constexpr (std::is_same_v<acc_t, double>) {
      const acc_t dv = clamped ? dz / kNormFloor : (dz - z * c) / s;
      return z != acc_t(0) ? dv / (acc_t(2) * (s * fabs(z))) : acc_t(0);
    } else {
      // The approximate division (2 ulp): the IEEE one has an out-of-line slow path whose
      // call forces spills, and |z| <= 1 keeps clear of its large-denominator limit.
      const acc_t dv = (dz - z * c) * dv_scale;
      return z != acc_t(0) ? __fdividef(dv * half_inv_s, fabs(z)) : acc_t(0);
    }
  }
};

// Block b of sample n, for kernels that split each sample's P elements over B blocks.
struct SliceIndex {
  int64_t n;
  int lane;   // this thread's index among the sample's B * blockDim threads
  int group;  // B * blockDim
};

__device__ __forceinline__ SliceIndex slice_index(int blocks_per_sample) {
  SliceIndex s;
  s.n = blockIdx.x / blocks_per_sample;
  s.lane = static_cast<int>(blockIdx.x % blocks_per_sample) * blockDim.x + threadIdx.x;
  s.group = blocks_per_sample * blockDim.x;
  return s;
}

// --- forward ------------------------------------------------------------------------------

template <typename acc_t>
struct SumsqVisitor {
  static constexpr int kVec = vec_width<acc_t>();
  const acc_t* g;
  SignedSqrt<acc_t> f;
  acc_t sumsq;

  __device__ __forceinline__ void scalar(int64_t c) {
    const acc_t v = f(g[c]);
    sumsq = fma(v, v, sumsq);
  }
  template <int U>
  __device__ __forceinline__ void vectors(int64_t c0, int64_t stride) {
    uint4 raw[U];
#pragma unroll
    for (int u = 0; u < U; ++u) raw[u] = load_vec_raw(g + c0 + u * stride);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      acc_t v[kVec];
      VecIO<acc_t>::unpack(raw[u], v);
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        const acc_t w = f(v[j]);
        sumsq = fma(w, w, sumsq);
      }
    }
  }
};

// g: (N, P) op-math, unscaled x y^T. partial: (N, B) sums of v^2.
template <typename acc_t>
__global__ void __launch_bounds__(kThreads)
    bilinear_pool_forward_sumsq_kernel(const acc_t* __restrict__ g, int64_t p_len,
                                       SignedSqrt<acc_t> f, int blocks_per_sample,
                                       acc_t* __restrict__ partial) {
  __shared__ acc_t scratch[32];
  const SliceIndex si = slice_index(blocks_per_sample);
  SumsqVisitor<acc_t> v{g + si.n * p_len, f, acc_t(0)};
  const int64_t head = std::min<int64_t>(p_len, elements_to_alignment(v.g));
  visit_row<SumsqVisitor<acc_t>::kVec, vectors_in_flight<acc_t>()>(p_len, head, si.lane, si.group,
                                                                   v);
  const acc_t total = block_reduce(v.sumsq, Add{}, acc_t(0), scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <typename scalar_t>
struct NormalizeVisitor {
  using acc_t = at::opmath_type<scalar_t>;
  // One output vector; its op-math inputs span sizeof(acc_t) / sizeof(scalar_t) input vectors.
  static constexpr int kVec = vec_width<scalar_t>();
  const acc_t* g;
  scalar_t* z;
  SignedSqrt<acc_t> f;
  acc_t inv;    // float: 1 / max(s, 1e-12)
  acc_t denom;  // double: max(s, 1e-12)

  __device__ __forceinline__ acc_t normalize(acc_t raw) const {
    if constexpr (std::is_same_v<acc_t, double>) {
      return f(raw) / denom;
    } else {
      return f(raw) * inv;
    }
  }
  __device__ __forceinline__ void scalar(int64_t c) {
    VecIO<scalar_t>::store(z + c, normalize(g[c]));
  }
  template <int U>
  __device__ __forceinline__ void vectors(int64_t c0, int64_t stride) {
    acc_t v[U][kVec];
#pragma unroll
    for (int u = 0; u < U; ++u) load_values<acc_t, kVec>(g + c0 + u * stride, true, v[u]);
#pragma unroll
    for (int u = 0; u < U; ++u) {
#pragma unroll
      for (int j = 0; j < kVec; ++j) v[u][j] = normalize(v[u][j]);
      store_values<scalar_t, kVec>(z + c0 + u * stride, v[u]);
    }
  }
};

// Loads per thread in flight stay near 4 however many input vectors one output vector takes.
template <typename scalar_t>
constexpr int normalize_unroll() {
  return sizeof(scalar_t) == 2 ? 2 : vectors_in_flight<scalar_t>();
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    bilinear_pool_forward_normalize_kernel(const at::opmath_type<scalar_t>* __restrict__ g,
                                           int64_t p_len, SignedSqrt<at::opmath_type<scalar_t>> f,
                                           int blocks_per_sample,
                                           const at::opmath_type<scalar_t>* __restrict__ partial,
                                           bool vectorized, scalar_t* __restrict__ z,
                                           at::opmath_type<scalar_t>* __restrict__ norm) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t scratch[32];
  __shared__ acc_t broadcast;
  const SliceIndex si = slice_index(blocks_per_sample);
  const acc_t sumsq =
      sum_partials(partial + si.n * blocks_per_sample, blocks_per_sample, scratch, &broadcast);
  const acc_t s = sqrt(sumsq);
  if (si.lane == 0) norm[si.n] = s;
  NormalizeVisitor<scalar_t> v;
  v.g = g + si.n * p_len;
  v.z = z + si.n * p_len;
  v.f = f;
  // Not fmax: it returns the floor for a NaN norm, so a sample with a NaN input would come
  // out as v * 1e12 (huge finite values). F.normalize's clamp_min keeps the NaN, and so does
  // this: a NaN s fails the comparison and is kept.
  v.denom = s < static_cast<acc_t>(kNormFloor) ? static_cast<acc_t>(kNormFloor) : s;
  v.inv = acc_t(1) / v.denom;
  // Both rows are fresh allocations of the same length: an output element on a 16-byte
  // boundary has its (at least as wide) op-math input on one too.
  const int64_t head = vectorized ? std::min<int64_t>(p_len, elements_to_alignment(v.z)) : p_len;
  visit_row<NormalizeVisitor<scalar_t>::kVec, normalize_unroll<scalar_t>()>(p_len, head, si.lane,
                                                                            si.group, v);
}

// --- backward -----------------------------------------------------------------------------

template <typename scalar_t>
struct DotVisitor {
  using acc_t = at::opmath_type<scalar_t>;
  static constexpr int kVec = vec_width<scalar_t>();
  const scalar_t* z;
  const scalar_t* dz;
  acc_t dot;

  __device__ __forceinline__ void scalar(int64_t c) {
    dot = fma(VecIO<scalar_t>::load(z + c), VecIO<scalar_t>::load(dz + c), dot);
  }
  template <int U>
  __device__ __forceinline__ void vectors(int64_t c0, int64_t stride) {
    uint4 rz[U], rd[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      rz[u] = load_vec_raw(z + c0 + u * stride);
      rd[u] = load_vec_raw(dz + c0 + u * stride);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      acc_t a[kVec], b[kVec];
      VecIO<scalar_t>::unpack(rz[u], a);
      VecIO<scalar_t>::unpack(rd[u], b);
#pragma unroll
      for (int j = 0; j < kVec; ++j) dot = fma(a[j], b[j], dot);
    }
  }
};

// Co-aligned rows go vector by vector from the first boundary; otherwise all scalar.
template <typename A, typename B>
__device__ __forceinline__ int64_t co_aligned_head(const A* a, const B* b, int64_t len) {
  const int64_t head = std::min<int64_t>(len, elements_to_alignment(a));
  return head < len && !is_vec_aligned(b + head) ? len : head;
}

// partial (N, B): slices of c = <z, dz>. Only per-block scalars are written.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    bilinear_pool_backward_dot_kernel(const scalar_t* __restrict__ z,
                                      const scalar_t* __restrict__ dz, int64_t p_len,
                                      int blocks_per_sample,
                                      at::opmath_type<scalar_t>* __restrict__ partial) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t scratch[32];
  const SliceIndex si = slice_index(blocks_per_sample);
  DotVisitor<scalar_t> v{z + si.n * p_len, dz + si.n * p_len, acc_t(0)};
  const int64_t head = co_aligned_head(v.z, v.dz, p_len);
  visit_row<DotVisitor<scalar_t>::kVec, vectors_in_flight<scalar_t>()>(p_len, head, si.lane,
                                                                       si.group, v);
  const acc_t total = block_reduce(v.dot, Add{}, acc_t(0), scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <typename scalar_t, typename gemm_t>
struct GradVisitor {
  using acc_t = at::opmath_type<scalar_t>;
  static constexpr int kVec = vec_width<scalar_t>();
  const scalar_t* z;
  const scalar_t* dz;
  gemm_t* out;
  GradCoef<acc_t> coef;

  __device__ __forceinline__ void scalar(int64_t c) {
    VecIO<gemm_t>::store(out + c,
                         coef(VecIO<scalar_t>::load(z + c), VecIO<scalar_t>::load(dz + c)));
  }
  template <int U>
  __device__ __forceinline__ void vectors(int64_t c0, int64_t stride) {
    uint4 rz[U], rd[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      rz[u] = load_vec_raw(z + c0 + u * stride);
      rd[u] = load_vec_raw(dz + c0 + u * stride);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      acc_t a[kVec], b[kVec];
      VecIO<scalar_t>::unpack(rz[u], a);
      VecIO<scalar_t>::unpack(rd[u], b);
#pragma unroll
      for (int j = 0; j < kVec; ++j) a[j] = coef(a[j], b[j]);
      store_values<gemm_t, kVec>(out + c0 + u * stride, a);
    }
  }
};

// Two streams: dG (N, D1, D2), unscaled by 1/M, in the GEMM operand dtype.
template <typename scalar_t, typename gemm_t>
__global__ void __launch_bounds__(kThreads)
    bilinear_pool_backward_grad_kernel(const scalar_t* __restrict__ z,
                                       const scalar_t* __restrict__ dz, int64_t p_len,
                                       int blocks_per_sample,
                                       const at::opmath_type<scalar_t>* __restrict__ partial,
                                       const at::opmath_type<scalar_t>* __restrict__ norm,
                                       gemm_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t scratch[32];
  __shared__ acc_t broadcast;
  const SliceIndex si = slice_index(blocks_per_sample);
  const acc_t c =
      sum_partials(partial + si.n * blocks_per_sample, blocks_per_sample, scratch, &broadcast);
  GradVisitor<scalar_t, gemm_t> v;
  v.z = z + si.n * p_len;
  v.dz = dz + si.n * p_len;
  v.out = out + si.n * p_len;
  v.coef.init(c, norm[si.n]);
  int64_t head = co_aligned_head(v.z, v.dz, p_len);
  if (head < p_len && !is_vec_aligned(v.out + head)) head = p_len;
  visit_row<GradVisitor<scalar_t, gemm_t>::kVec, vectors_in_flight<scalar_t>()>(
      p_len, head, si.lane, si.group, v);
}

// One stream: dS = dG + dG^T (N, D, D). Square tiles of kTile; the block of tile pair
// (ti, tj), ti <= tj, loads dG over tile (ti, tj) and over its mirror (tj, ti) into shared
// memory and writes both output tiles, so every z and dz element is read once.
template <typename acc_t>
constexpr int sym_tile() {
  return std::is_same_v<acc_t, double> ? 32 : 64;  // 2 tiles: 33 KB float, 17 KB double
}

template <typename scalar_t, typename gemm_t>
struct SymParams {
  const scalar_t* z;
  const scalar_t* dz;
  const at::opmath_type<scalar_t>* partial;
  const at::opmath_type<scalar_t>* norm;
  gemm_t* out;
  int64_t d;
  int tiles;  // per side
  int blocks_c;
  bool vec_in;   // d a multiple of the input vector and both bases aligned
  bool vec_out;  // d a multiple of the output vector and the base aligned
};

template <typename acc_t, int kTile, typename scalar_t>
__device__ __forceinline__ void load_grad_tile(const scalar_t* z, const scalar_t* dz, int64_t d,
                                               int64_t r0, int64_t c0, bool vec,
                                               const GradCoef<acc_t>& coef,
                                               acc_t (*tile)[kTile + 1]) {
  const int64_t rows = std::min<int64_t>(kTile, d - r0);
  const int64_t cols = std::min<int64_t>(kTile, d - c0);
  if (vec) {
    constexpr int kVec = vec_width<scalar_t>();
    constexpr int kPerRow = kTile / kVec;
    constexpr int kIters = kTile * kPerRow / kThreads;
    static_assert(kIters * kThreads == kTile * kPerRow, "tile must split evenly");
    uint4 rz[kIters], rd[kIters];
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int idx = it * kThreads + threadIdx.x;
      const int i = idx / kPerRow;
      const int col = (idx % kPerRow) * kVec;
      if (i < rows && col < cols) {  // d % kVec == 0: a vector is all in or all out
        const int64_t off = (r0 + i) * d + c0 + col;
        rz[it] = load_vec_raw(z + off);
        rd[it] = load_vec_raw(dz + off);
      }
    }
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int idx = it * kThreads + threadIdx.x;
      const int i = idx / kPerRow;
      const int col = (idx % kPerRow) * kVec;
      if (i < rows && col < cols) {
        acc_t a[kVec], b[kVec];
        VecIO<scalar_t>::unpack(rz[it], a);
        VecIO<scalar_t>::unpack(rd[it], b);
#pragma unroll
        for (int q = 0; q < kVec; ++q) tile[i][col + q] = coef(a[q], b[q]);
      }
    }
  } else {
    for (int idx = threadIdx.x; idx < kTile * kTile; idx += kThreads) {
      const int i = idx / kTile;
      const int j = idx % kTile;
      if (i < rows && j < cols) {
        const int64_t off = (r0 + i) * d + c0 + j;
        tile[i][j] = coef(VecIO<scalar_t>::load(z + off), VecIO<scalar_t>::load(dz + off));
      }
    }
  }
}

// out[r0 + i][c0 + j] = a[i][j] + b[j][i], where a holds dG over (r0, c0) and b over (c0, r0).
template <typename acc_t, int kTile, typename gemm_t>
__device__ __forceinline__ void store_sym_tile(gemm_t* out, int64_t d, int64_t r0, int64_t c0,
                                               bool vec, const acc_t (*a)[kTile + 1],
                                               const acc_t (*b)[kTile + 1]) {
  const int64_t rows = std::min<int64_t>(kTile, d - r0);
  const int64_t cols = std::min<int64_t>(kTile, d - c0);
  if (vec) {
    constexpr int kVec = vec_width<gemm_t>();
    constexpr int kPerRow = kTile / kVec;
    constexpr int kIters = kTile * kPerRow / kThreads;
    static_assert(kIters * kThreads == kTile * kPerRow, "tile must split evenly");
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int idx = it * kThreads + threadIdx.x;
      const int i = idx / kPerRow;
      const int col = (idx % kPerRow) * kVec;
      if (i < rows && col < cols) {
        acc_t v[kVec];
#pragma unroll
        for (int q = 0; q < kVec; ++q) v[q] = a[i][col + q] + b[col + q][i];
        store_values<gemm_t, kVec>(out + (r0 + i) * d + c0 + col, v);
      }
    }
  } else {
    for (int idx = threadIdx.x; idx < kTile * kTile; idx += kThreads) {
      const int i = idx / kTile;
      const int j = idx % kTile;
      if (i < rows && j < cols)
        VecIO<gemm_t>::store(out + (r0 + i) * d + c0 + j, a[i][j] + b[j][i]);
    }
  }
}

template <typename scalar_t, typename gemm_t>
__global__ void __launch_bounds__(kThreads)
    bilinear_pool_backward_symmetric_kernel(SymParams<scalar_t, gemm_t> p) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int kTile = sym_tile<acc_t>();
  __shared__ acc_t tile_a[kTile][kTile + 1];  // +1: the transposed reads hit distinct banks
  __shared__ acc_t tile_b[kTile][kTile + 1];
  __shared__ acc_t scratch[32];
  __shared__ acc_t broadcast;

  const int64_t per_sample = static_cast<int64_t>(p.tiles) * p.tiles;
  const int64_t n = blockIdx.x / per_sample;
  const int t = static_cast<int>(blockIdx.x % per_sample);
  const int ti = t / p.tiles;
  const int tj = t % p.tiles;
  if (ti > tj) return;  // the mirror's block does this pair; before any barrier

  const acc_t c = sum_partials(p.partial + n * p.blocks_c, p.blocks_c, scratch, &broadcast);
  GradCoef<acc_t> coef;
  coef.init(c, p.norm[n]);

  const int64_t d = p.d;
  const int64_t base = n * d * d;
  const int64_t r0 = static_cast<int64_t>(ti) * kTile;
  const int64_t c0 = static_cast<int64_t>(tj) * kTile;
  const bool diagonal = ti == tj;
  load_grad_tile<acc_t, kTile>(p.z + base, p.dz + base, d, r0, c0, p.vec_in, coef, tile_a);
  if (!diagonal) {
    load_grad_tile<acc_t, kTile>(p.z + base, p.dz + base, d, c0, r0, p.vec_in, coef, tile_b);
  }
  __syncthreads();
  const acc_t(*mirror)[kTile + 1] = diagonal ? tile_a : tile_b;
  store_sym_tile<acc_t, kTile>(p.out + base, d, r0, c0, p.vec_out, tile_a, mirror);
  if (!diagonal) store_sym_tile<acc_t, kTile>(p.out + base, d, c0, r0, p.vec_out, tile_b, tile_a);
}

// --- launch -------------------------------------------------------------------------------

int multiprocessor_count(c10::DeviceIndex device) {
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return std::max(sms, 1);
}

// Blocks per sample for the slice kernels: enough for 8 resident blocks per SM over the whole
// batch, but no fewer than ~4 vectors per thread (fewer would be all launch and reduction);
// at most 1024, so that re-summing the partials stays negligible.
int blocks_per_sample(int64_t n, int64_t p_len, int vec, int sms) {
  const int64_t fill = ceil_div<int64_t>(8 * static_cast<int64_t>(sms), n);
  const int64_t useful = ceil_div<int64_t>(p_len, static_cast<int64_t>(kThreads) * vec * 4);
  const int64_t b = std::max<int64_t>(1, std::min<int64_t>({fill, useful, 1024}));
  TORCH_CHECK(n * b <= std::numeric_limits<int32_t>::max(),
              "bilinear_pool: batch too large for one launch (", n, ")");
  return static_cast<int>(b);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

bool is_16bit(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

void check_inputs(const at::Tensor& x, const std::optional<at::Tensor>& y) {
  TORCH_CHECK(x.is_cuda(), "bilinear_pool: x must be a CUDA tensor");
  TORCH_CHECK(x.dim() == 3, "bilinear_pool: x must be (N, D1, M), got ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "bilinear_pool: x must be floating point, got ",
              x.scalar_type());
  if (y.has_value()) {
    TORCH_CHECK(y->dim() == 3 && y->size(0) == x.size(0) && y->size(2) == x.size(2),
                "bilinear_pool: y must be (N, D2, M) with N = ", x.size(0), ", M = ", x.size(2),
                ", got ", y->sizes());
    TORCH_CHECK(y->scalar_type() == x.scalar_type(), "bilinear_pool: y is ", y->scalar_type(),
                " but x is ", x.scalar_type());
    TORCH_CHECK(y->device() == x.device(), "bilinear_pool: y is on ", y->device(), " but x is on ",
                x.device());
  }
}

std::tuple<at::Tensor, at::Tensor> bilinear_pool_forward_cuda(const at::Tensor& x,
                                                              const std::optional<at::Tensor>& y,
                                                              double eps) {
  check_inputs(x, y);
  c10::cuda::CUDAGuard guard(x.device());
  const int64_t n = x.size(0);
  const int64_t d1 = x.size(1);
  const int64_t m = x.size(2);
  const at::Tensor& b = y.has_value() ? *y : x;
  const int64_t d2 = b.size(1);
  const int64_t p_len = d1 * d2;
  const auto opmath = opmath_scalar_type(x.scalar_type());
  auto z = at::empty({n, p_len}, x.options());
  if (n == 0) return {z, at::empty({0}, x.options().dtype(opmath))};
  if (p_len == 0) return {z, at::zeros({n}, x.options().dtype(opmath))};

  // cuBLAS reads any strides; only G's layout matters here, and bmm returns it contiguous.
  const at::Tensor g = is_16bit(x.scalar_type()) ? at::bmm(x, b.transpose(1, 2), at::kFloat)
                                                 : at::bmm(x, b.transpose(1, 2));
  auto norm = at::empty({n}, x.options().dtype(opmath));
  const int sms = multiprocessor_count(x.get_device());
  const auto stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "bilinear_pool_forward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const SignedSqrt<acc_t> f = make_signed_sqrt<acc_t>(m, eps);
        const int nb = blocks_per_sample(n, p_len, vec_width<acc_t>(), sms);
        auto partial = at::empty({n * nb}, x.options().dtype(opmath));
        const unsigned grid = static_cast<unsigned>(n * nb);
        bilinear_pool_forward_sumsq_kernel<acc_t><<<grid, kThreads, 0, stream>>>(
            g.const_data_ptr<acc_t>(), p_len, f, nb, partial.mutable_data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        const bool vectorized =
            aligned16(g.const_data_ptr<acc_t>()) && aligned16(z.const_data_ptr<scalar_t>());
        bilinear_pool_forward_normalize_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(
            g.const_data_ptr<acc_t>(), p_len, f, nb, partial.const_data_ptr<acc_t>(), vectorized,
            z.mutable_data_ptr<scalar_t>(), norm.mutable_data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return {z, norm};
}

std::vector<at::Tensor> bilinear_pool_backward_cuda(const at::Tensor& grad_z, const at::Tensor& x,
                                                    const std::optional<at::Tensor>& y,
                                                    const at::Tensor& z_in,
                                                    const at::Tensor& norm_in) {
  check_inputs(x, y);
  c10::cuda::CUDAGuard guard(x.device());
  const int64_t n = x.size(0);
  const int64_t d1 = x.size(1);
  const int64_t m = x.size(2);
  const bool two = y.has_value();
  const int64_t d2 = two ? y->size(1) : d1;
  const int64_t p_len = d1 * d2;
  TORCH_CHECK(z_in.numel() == n * p_len, "bilinear_pool: z must have N * D1 * D2 = ", n * p_len,
              " elements, got ", z_in.sizes());
  TORCH_CHECK(grad_z.numel() == n * p_len,
              "bilinear_pool: grad_z must have N * D1 * D2 = ", n * p_len, " elements, got ",
              grad_z.sizes());
  TORCH_CHECK(norm_in.numel() == n, "bilinear_pool: norm must be (N,), got ", norm_in.sizes());
  TORCH_CHECK(z_in.device() == x.device() && grad_z.device() == x.device() &&
                  norm_in.device() == x.device(),
              "bilinear_pool: grad_z, z and norm must be on ", x.device());

  if (n == 0 || p_len == 0 || m == 0) {
    std::vector<at::Tensor> out{at::zeros(x.sizes(), x.options())};
    if (two) out.push_back(at::zeros(y->sizes(), y->options()));
    return out;
  }

  const auto dtype = x.scalar_type();
  const auto opmath = opmath_scalar_type(dtype);
  const auto gemm_dtype = dtype == at::kHalf ? at::kFloat : dtype;
  const at::Tensor z = z_in.to(dtype).reshape({n, p_len}).contiguous();
  const at::Tensor dz = grad_z.to(dtype).reshape({n, p_len}).contiguous();
  const at::Tensor norm = norm_in.to(opmath).contiguous();
  auto dg = at::empty({n, d1, d2}, x.options().dtype(gemm_dtype));
  const int sms = multiprocessor_count(x.get_device());
  const auto stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "bilinear_pool_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // float16 gradients go through float operands (see the top of the file).
    using gemm_t = std::conditional_t<std::is_same_v<scalar_t, c10::Half>, float, scalar_t>;
    const int nb = blocks_per_sample(n, p_len, vec_width<scalar_t>(), sms);
    auto partial = at::empty({n * nb}, x.options().dtype(opmath));
    bilinear_pool_backward_dot_kernel<scalar_t>
        <<<static_cast<unsigned>(n * nb), kThreads, 0, stream>>>(
            z.const_data_ptr<scalar_t>(), dz.const_data_ptr<scalar_t>(), p_len, nb,
            partial.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (two) {
      bilinear_pool_backward_grad_kernel<scalar_t, gemm_t>
          <<<static_cast<unsigned>(n * nb), kThreads, 0, stream>>>(
              z.const_data_ptr<scalar_t>(), dz.const_data_ptr<scalar_t>(), p_len, nb,
              partial.const_data_ptr<acc_t>(), norm.const_data_ptr<acc_t>(),
              dg.mutable_data_ptr<gemm_t>());
    } else {
      constexpr int kTile = sym_tile<acc_t>();
      SymParams<scalar_t, gemm_t> p;
      p.z = z.const_data_ptr<scalar_t>();
      p.dz = dz.const_data_ptr<scalar_t>();
      p.partial = partial.const_data_ptr<acc_t>();
      p.norm = norm.const_data_ptr<acc_t>();
      p.out = dg.mutable_data_ptr<gemm_t>();
      p.d = d1;
      p.tiles = static_cast<int>(ceil_div<int64_t>(d1, kTile));
      p.blocks_c = nb;
      p.vec_in = d1 % vec_width<scalar_t>() == 0 && aligned16(p.z) && aligned16(p.dz);
      p.vec_out = d1 % vec_width<gemm_t>() == 0 && aligned16(p.out);
      const int64_t blocks = n * p.tiles * p.tiles;
      TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(),
                  "bilinear_pool: too many tiles for one launch (", blocks, ")");
      bilinear_pool_backward_symmetric_kernel<scalar_t, gemm_t>
          <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });

  // beta = 0: cuBLAS does not read the (uninitialized) output.
  const double alpha = 1.0 / static_cast<double>(m);
  const at::Tensor xg = x.to(gemm_dtype);
  auto dx = at::empty({n, d1, m}, x.options().dtype(gemm_dtype));
  if (!two) {
    dx.baddbmm_(dg, xg, 0.0, alpha);
    return {dx.to(dtype)};
  }
  const at::Tensor yg = y->to(gemm_dtype);
  auto dy = at::empty({n, d2, m}, x.options().dtype(gemm_dtype));
  dx.baddbmm_(dg, yg, 0.0, alpha);
  dy.baddbmm_(dg.transpose(1, 2), xg, 0.0, alpha);
  return {dx.to(dtype), dy.to(dtype)};
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CUDA, m) {
  m.impl("bilinear_pool_forward", &cookbook_ops::bilinear_pool_forward_cuda);
  m.impl("bilinear_pool_backward", &cookbook_ops::bilinear_pool_backward_cuda);
}
