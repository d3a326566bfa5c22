// mixup and CutMix blends, CUDA kernels. The math is that of cookbook_ops/reference/mixup.py.
//
// Every op works on per-sample dense blocks of S = numel / N elements (x contiguous, or 4-D
// channels_last), so sample i is the flat range [i S, (i + 1) S) of the storage and one flat
// offset e inside a sample addresses the same (c, h, w) in every sample of the batch.
//
// Grid: blockIdx.x is a chunk of a sample's block, blockIdx.y (looping for N > 65535) the
// sample. A block reads its partner index, lambda and boxes once, then walks its chunk as
// 16-byte vectors that start at the first 16-byte boundary of the output sample. The few
// elements before that boundary and after the last whole vector are scalar accesses made by
// chunk 0. A source sample at a different offset from a 16-byte boundary than the output
// (possible only when S * sizeof(T) is not a multiple of 16, or for an offset view) is read
// element by element into the same vector registers: stores stay 16 bytes wide, loads from that
// source are narrow but still coalesced.
//
// Blends compute in float for 16-bit and uint8 inputs (double for double), as separate
// multiplies and one add, i.e. exactly the reference's roundings (no FMA contraction). uint8
// results round to nearest even and saturate to [0, 255].
//
// No host syncs, so index/pairs values are never validated here (the Python layer does that
// where it is free). Kernels stay in bounds for any values: a partner index outside [0, N)
// leaves the sample unmixed (mixup/cutmix forward: a copy of x_i; pairs: untouched; the
// backward ops drop the missing cross term). If index is not a permutation (or pairs not an
// involution) the affected samples are unspecified but no memory outside the tensors is touched.
// Boxes are clamped to the image; they are only compared against coordinates, never used to
// address memory.

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/full.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <ATen/cuda/detail/IntegerDivider.cuh>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "cookbook_ops/cuda_utils.cuh"

namespace cookbook_ops {
namespace {

using namespace cookbook_ops::cuda;
using at::cuda::detail::IntDivider;

constexpr int kMaxThreads = 256;
// 16-byte vectors per source a thread loads before using any. Blends: 4 (64 bytes per source
// in flight per thread). CutMix: 2, because each vector also carries its element masks and
// position arithmetic; 4 pushed some instantiations past 128 registers into spills.
constexpr int kBlendUnroll = 4;
constexpr int kCutmixUnroll = 2;
// Unrolled rounds per chunk: enough work per block to amortize its per-sample set-up, few
// enough that a batch of ImageNet-sized samples still fills every SM.
constexpr int kRoundsPerChunk = 2;
constexpr int kMaxGridY = 65535;

// --- raw element access ---------------------------------------------------------------------

template <int kBytes>
struct BitsOf;
template <>
struct BitsOf<1> {
  using type = unsigned char;
};
template <>
struct BitsOf<2> {
  using type = unsigned short;
};
template <>
struct BitsOf<4> {
  using type = unsigned int;
};
template <>
struct BitsOf<8> {
  using type = unsigned long long;
};
template <typename T>
using bits_t = typename BitsOf<static_cast<int>(sizeof(T))>::type;

// kReadOnly: the non-coherent cache path, valid only when the kernel writes no memory it also
// reads; the in-place pair kernel reads and writes the same samples and must not use it.
template <bool kReadOnly, typename B>
__device__ __forceinline__ B load_bits(const B* p) {
  if constexpr (kReadOnly) {
    return __ldg(p);
  } else {
    return *p;
  }
}

// Element j of a 16-byte vector, as raw bits (little-endian lanes, as a uint4 load gives them).
template <typename B, int j>
__device__ __forceinline__ B get_lane(const unsigned (&w)[4]) {
  if constexpr (sizeof(B) == 8) {
    return static_cast<B>(w[2 * j]) | (static_cast<B>(w[2 * j + 1]) << 32);
  } else {
    constexpr int per = 4 / static_cast<int>(sizeof(B));
    constexpr unsigned lane_mask = sizeof(B) == 4 ? ~0u : ((1u << (8 * sizeof(B))) - 1u);
    return static_cast<B>((w[j / per] >> (8 * sizeof(B) * (j % per))) & lane_mask);
  }
}

template <typename B, int j>
__device__ __forceinline__ void put_lane(unsigned (&w)[4], B b) {
  if constexpr (sizeof(B) == 8) {
    w[2 * j] = static_cast<unsigned>(b);
    w[2 * j + 1] = static_cast<unsigned>(b >> 32);
  } else {
    constexpr int per = 4 / static_cast<int>(sizeof(B));
    w[j / per] |= static_cast<unsigned>(b) << (8 * sizeof(B) * (j % per));
  }
}

template <typename B, int... J>
__device__ __forceinline__ uint4 gather_lanes(const B* p, std::integer_sequence<int, J...>,
                                              std::bool_constant<true>) {
  unsigned w[4] = {0u, 0u, 0u, 0u};
  (put_lane<B, J>(w, __ldg(p + J)), ...);
  return make_uint4(w[0], w[1], w[2], w[3]);
}
template <typename B, int... J>
__device__ __forceinline__ uint4 gather_lanes(const B* p, std::integer_sequence<int, J...>,
                                              std::bool_constant<false>) {
  unsigned w[4] = {0u, 0u, 0u, 0u};
  (put_lane<B, J>(w, p[J]), ...);
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// 16 bytes starting at p: one vector load when p is 16-byte aligned, element loads otherwise.
template <bool kReadOnly, typename T>
__device__ __forceinline__ uint4 load_raw(const T* p, bool aligned) {
  using B = bits_t<T>;
  if (aligned) {
    if constexpr (kReadOnly) {
      return load_vec_raw(p);
    } else {
      return *reinterpret_cast<const uint4*>(p);
    }
  }
  return gather_lanes(reinterpret_cast<const B*>(p),
                      std::make_integer_sequence<int, kVecBytes / sizeof(B)>{},
                      std::bool_constant<kReadOnly>{});
}

template <typename B, int... J>
__device__ __forceinline__ void scatter_lanes(B* p, const unsigned (&w)[4],
                                              std::integer_sequence<int, J...>) {
  ((p[J] = get_lane<B, J>(w)), ...);
}

template <typename T>
__device__ __forceinline__ void store_raw(T* p, uint4 v, bool aligned) {
  using B = bits_t<T>;
  if (aligned) {
    store_vec_raw(p, v);
    return;
  }
  const unsigned w[4] = {v.x, v.y, v.z, v.w};
  scatter_lanes(reinterpret_cast<B*>(p), w,
                std::make_integer_sequence<int, kVecBytes / sizeof(B)>{});
}

// Scalar element in op-math precision, through the coherent path when asked.
template <typename T>
struct ScalarIO {
  using acc_t = typename VecIO<T>::acc_t;
  template <bool kReadOnly>
  __device__ __forceinline__ static acc_t load(const T* p) {
    if constexpr (kReadOnly) {
      return VecIO<T>::load(p);
    } else {
      const auto b = load_bits<false>(reinterpret_cast<const bits_t<T>*>(p));
      if constexpr (std::is_same_v<T, float>) {
        return __uint_as_float(b);
      } else if constexpr (std::is_same_v<T, double>) {
        return __longlong_as_double(static_cast<long long>(b));
      } else if constexpr (std::is_same_v<T, c10::BFloat16>) {
        return __uint_as_float(static_cast<unsigned>(b) << 16);
      } else if constexpr (std::is_same_v<T, c10::Half>) {
        return __half2float(__ushort_as_half(b));
      } else {
        static_assert(std::is_same_v<T, uint8_t>);
        return __uint2float_rn(b);
      }
    }
  }
};

// Correctly rounded, never contracted into an FMA: the reference rounds lam * a, then
// (1 - lam) * b, then the sum, and uint8 outputs near .5 depend on that.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

// --- the chunk walk ---------------------------------------------------------------------------
// A sample of S elements splits into `head` scalar elements up to the output's first 16-byte
// boundary, body_vecs whole vectors, and a scalar tail (< kVec). Chunk c takes body vectors
// [c * chunk_vecs, (c + 1) * chunk_vecs); chunk 0 also takes the head and the tail, each
// shorter than a vector and so one element per thread (blocks have >= 32 threads).
template <int kVec, int kUnroll, typename Visitor>
__device__ __forceinline__ void visit_chunk(int64_t S, int64_t head, int64_t chunk,
                                            int64_t chunk_vecs, Visitor& visitor) {
  const int64_t body_vecs = (S - head) / kVec;
  const int t = static_cast<int>(threadIdx.x);
  const int T = static_cast<int>(blockDim.x);
  const int64_t first = chunk * chunk_vecs;
  const int64_t end = std::min(first + chunk_vecs, body_vecs);
  const int64_t stride = static_cast<int64_t>(T) * kVec;
  int64_t v = first + t;
  for (; v + static_cast<int64_t>(kUnroll - 1) * T < end; v += kUnroll * T) {
    visitor.template vectors<kUnroll>(head + v * kVec, stride);
  }
  for (; v < end; v += T) visitor.template vectors<1>(head + v * kVec, stride);
  if (chunk == 0) {
    if (t < head) visitor.scalar(t);
    const int64_t tail_start = head + body_vecs * kVec;
    if (tail_start + t < S) visitor.scalar(tail_start + t);
  }
}

// --- mixup blends -----------------------------------------------------------------------------

template <typename scalar_t>
struct BlendParams {
  using acc_t = typename VecIO<scalar_t>::acc_t;
  scalar_t* src;  // x or grad_out; written too by the pair kernel
  scalar_t* dst;  // the output; unused by the pair kernel
  const acc_t* lam;
  int64_t lam_stride;
  const int64_t* partner;  // index, inverse index or pairs
  int64_t partner_stride;
  int64_t n;
  int64_t S;
  int64_t chunk_vecs;
};

// out1 = a1 A + b1 B and, for pairs, out2 = a2 B + b2 A; without B, out1 = a1 A.
template <typename scalar_t, bool kPairs, bool kReadOnly>
struct BlendVisitor {
  using acc_t = typename VecIO<scalar_t>::acc_t;
  using IO = VecIO<scalar_t>;
  static constexpr int kVec = vec_width<scalar_t>();

  const scalar_t* A;
  const scalar_t* B;  // null: no second source
  scalar_t* out1;
  scalar_t* out2;  // pairs only; B's storage
  acc_t a1, b1, a2, b2;
  bool a_aligned;  // A at the same 16-byte phase as out1
  bool b_aligned;  // B (and so out2) at the same 16-byte phase as out1

  __device__ __forceinline__ acc_t blend(acc_t a, acc_t va, acc_t b, acc_t vb) const {
    return add_rn(mul_rn(a, va), mul_rn(b, vb));
  }

  __device__ __forceinline__ void scalar(int64_t e) {
    const acc_t va = ScalarIO<scalar_t>::template load<kReadOnly>(A + e);
    if (B == nullptr) {
      IO::store(out1 + e, mul_rn(a1, va));
      return;
    }
    const acc_t vb = ScalarIO<scalar_t>::template load<kReadOnly>(B + e);
    IO::store(out1 + e, blend(a1, va, b1, vb));
    if constexpr (kPairs) IO::store(out2 + e, blend(a2, vb, b2, va));
  }

  template <int U>
  __device__ __forceinline__ void vectors(int64_t e0, int64_t stride) {
    uint4 ra[U], rb[U];
#pragma unroll
    for (int u = 0; u < U; ++u) ra[u] = load_raw<kReadOnly>(A + e0 + u * stride, a_aligned);
    if (B != nullptr) {
#pragma unroll
      for (int u = 0; u < U; ++u) rb[u] = load_raw<kReadOnly>(B + e0 + u * stride, b_aligned);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t e = e0 + u * stride;
      acc_t va[kVec], r[kVec];
      IO::unpack(ra[u], va);
      if (B == nullptr) {
#pragma unroll
        for (int q = 0; q < kVec; ++q) r[q] = mul_rn(a1, va[q]);
        store_vec_raw(out1 + e, IO::pack(r));
        continue;
      }
      acc_t vb[kVec];
      IO::unpack(rb[u], vb);
#pragma unroll
      for (int q = 0; q < kVec; ++q) r[q] = blend(a1, va[q], b1, vb[q]);
      store_vec_raw(out1 + e, IO::pack(r));
      if constexpr (kPairs) {
#pragma unroll
        for (int q = 0; q < kVec; ++q) r[q] = blend(a2, vb[q], b2, va[q]);
        store_raw(out2 + e, IO::pack(r), b_aligned);
      }
    }
  }
};

__device__ __forceinline__ bool same_phase(const void* p, const void* q) {
  return ((reinterpret_cast<uintptr_t>(p) ^ reinterpret_cast<uintptr_t>(q)) & (kVecBytes - 1)) == 0;
}

template <typename scalar_t>
__device__ __forceinline__ int64_t head_of(const scalar_t* out, int64_t S) {
  return std::min<int64_t>(S, elements_to_alignment(out));
}

enum class Blend { kForward, kBackward, kPairs };

template <typename scalar_t, Blend kMode>
__device__ __forceinline__ void blend_samples(const BlendParams<scalar_t>& p) {
  using acc_t = typename VecIO<scalar_t>::acc_t;
  constexpr int kVec = vec_width<scalar_t>();
  constexpr bool kPairs = kMode == Blend::kPairs;
  const int64_t S = p.S;
  for (int64_t i = blockIdx.y; i < p.n; i += gridDim.y) {
    const int64_t k = p.partner[i * p.partner_stride];
    const bool valid = k >= 0 && k < p.n;
    if (kPairs && (!valid || k <= i)) continue;  // the lower index of each pair does the work
    BlendVisitor<scalar_t, kPairs, !kPairs> v;
    v.out2 = nullptr;
    v.a2 = v.b2 = acc_t(0);
    const acc_t lam_i = p.lam[i * p.lam_stride];
    v.A = p.src + i * S;
    v.B = valid ? p.src + k * S : nullptr;
    if constexpr (kMode == Blend::kForward) {
      // x_i alone when the partner is out of range: a copy (1 * x is exact in every dtype).
      v.a1 = valid ? lam_i : acc_t(1);
      v.b1 = acc_t(1) - lam_i;
      v.out1 = p.dst + i * S;
    } else if constexpr (kMode == Blend::kBackward) {
      // partner = inverse index: grad_i = lam_i g_i + (1 - lam_k) g_k with index[k] = i.
      v.a1 = lam_i;
      v.b1 = valid ? acc_t(1) - p.lam[k * p.lam_stride] : acc_t(0);
      v.out1 = p.dst + i * S;
    } else {
      const acc_t lam_k = p.lam[k * p.lam_stride];
      v.a1 = lam_i;
      v.b1 = acc_t(1) - lam_i;
      v.a2 = lam_k;
      v.b2 = acc_t(1) - lam_k;
      v.out1 = p.src + i * S;
      v.out2 = p.src + k * S;
    }
    v.a_aligned = same_phase(v.A, v.out1);
    v.b_aligned = valid && same_phase(v.B, v.out1);
    visit_chunk<kVec, kBlendUnroll>(S, head_of(v.out1, S), blockIdx.x, p.chunk_vecs, v);
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kMaxThreads, 1) mixup_forward_kernel(BlendParams<scalar_t> p) {
  blend_samples<scalar_t, Blend::kForward>(p);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kMaxThreads, 1) mixup_backward_kernel(BlendParams<scalar_t> p) {
  blend_samples<scalar_t, Blend::kBackward>(p);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kMaxThreads, 1) mixup_pairs_kernel(BlendParams<scalar_t> p) {
  blend_samples<scalar_t, Blend::kPairs>(p);
}

// inv[index[k]] = k for the in-range entries; inv starts at -1, so samples nobody maps to keep
// -1 and the backward kernels drop their cross term, as index_add would.
__global__ void mixup_inverse_permutation_kernel(const int64_t* index, int64_t stride, int64_t n,
                                                 int64_t* inv) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= n) return;
  const int64_t j = index[k * stride];
  if (j >= 0 && j < n) inv[j] = k;
}

// --- CutMix -----------------------------------------------------------------------------------
// A flat offset e in a sample maps to (h, w) as pix = (e / R) mod (H W), h = pix / W,
// w = pix mod W, with R = 1 for NCHW and R = C for channels_last (the channel varies fastest).
// Division happens once per vector; within it the position steps element by element.

template <typename index_t>
struct Geometry {
  IntDivider<index_t> run;    // R
  IntDivider<index_t> plane;  // H W
  IntDivider<index_t> width;  // W
  index_t R, H, W;
};

template <typename index_t>
struct Box {
  index_t y0, x0, y1, x1;
};

template <typename index_t>
__device__ __forceinline__ index_t clamp_coord(int64_t v, index_t hi) {
  return static_cast<index_t>(std::min<int64_t>(std::max<int64_t>(v, 0), hi));
}

// Empty when the sample has no partner, so that no element ever selects the missing source.
template <typename index_t>
__device__ __forceinline__ Box<index_t> load_box(const int64_t* boxes, int64_t row_stride,
                                                 int64_t col_stride, int64_t i, bool valid,
                                                 const Geometry<index_t>& g) {
  Box<index_t> b{0, 0, 0, 0};
  if (!valid) return b;
  const int64_t* r = boxes + i * row_stride;
  b.y0 = clamp_coord(r[0], g.H);
  b.x0 = clamp_coord(r[col_stride], g.W);
  b.y1 = clamp_coord(r[2 * col_stride], g.H);
  b.x1 = clamp_coord(r[3 * col_stride], g.W);
  return b;
}

template <typename index_t>
__device__ __forceinline__ bool inside(const Box<index_t>& b, index_t h, index_t w) {
  return h >= b.y0 && h < b.y1 && w >= b.x0 && w < b.x1;
}

// Bit q of the first mask: element e + q inside box0; of the second: inside box1.
template <int kVec, typename index_t>
__device__ __forceinline__ void box_masks(const Geometry<index_t>& g, index_t e,
                                          const Box<index_t>& box0, const Box<index_t>& box1,
                                          unsigned& m0, unsigned& m1) {
  const auto qr = g.run.divmod(e);
  const auto hw = g.width.divmod(g.plane.mod(qr.div));
  index_t r = qr.mod, h = hw.div, w = hw.mod;
  m0 = 0u;
  m1 = 0u;
#pragma unroll
  for (int q = 0; q < kVec; ++q) {
    m0 |= static_cast<unsigned>(inside(box0, h, w)) << q;
    m1 |= static_cast<unsigned>(inside(box1, h, w)) << q;
    if (++r == g.R) {
      r = 0;
      if (++w == g.W) {
        w = 0;
        if (++h == g.H) h = 0;
      }
    }
  }
}

// All-ones over the bytes of every element whose bit is set in m.
template <int kBytes>
__device__ __forceinline__ uint4 lane_mask(unsigned m) {
  constexpr int kVec = kVecBytes / kBytes;
  unsigned w[4] = {0u, 0u, 0u, 0u};
#pragma unroll
  for (int q = 0; q < kVec; ++q) {
    const unsigned ones = 0u - ((m >> q) & 1u);
    if constexpr (kBytes == 8) {
      w[2 * q] = ones;
      w[2 * q + 1] = ones;
    } else {
      constexpr unsigned lane = kBytes == 4 ? ~0u : ((1u << (8 * kBytes)) - 1u);
      w[q * kBytes / 4] |= (ones & lane) << (8 * ((q * kBytes) % 4));
    }
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

__device__ __forceinline__ uint4 select_bits(uint4 a, uint4 b, uint4 m) {
  return make_uint4((a.x & ~m.x) | (b.x & m.x), (a.y & ~m.y) | (b.y & m.y),
                    (a.z & ~m.z) | (b.z & m.z), (a.w & ~m.w) | (b.w & m.w));
}
__device__ __forceinline__ uint4 and_bits(uint4 a, uint4 m) {
  return make_uint4(a.x & m.x, a.y & m.y, a.z & m.z, a.w & m.w);
}

struct CutmixParams {
  const void* src;
  void* dst;
  const int64_t* boxes;
  int64_t box_row_stride;
  int64_t box_col_stride;
  const int64_t* partner;  // forward: index; backward: inverse index
  int64_t partner_stride;
  int64_t n;
  int64_t S;
  int64_t chunk_vecs;
};

// Forward is a pure copy, so it moves raw bits (T = same-size unsigned integer): out = A outside
// the box, B inside. A vector entirely on one side loads one source only.
template <typename T, typename index_t>
struct CutmixForwardVisitor {
  static constexpr int kVec = vec_width<T>();
  static constexpr unsigned kAll = (1u << kVec) - 1u;
  const T* A;
  const T* B;
  T* out;
  bool a_aligned, b_aligned;
  Box<index_t> box;
  Geometry<index_t> g;

  __device__ __forceinline__ void scalar(int64_t e) {
    unsigned m, unused;
    box_masks<1>(g, static_cast<index_t>(e), box, box, m, unused);
    out[e] = m ? __ldg(B + e) : __ldg(A + e);
  }

  template <int U>
  __device__ __forceinline__ void vectors(int64_t e0, int64_t stride) {
    unsigned m[U];
    uint4 ra[U], rb[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      unsigned unused;
      box_masks<kVec>(g, static_cast<index_t>(e0 + u * stride), box, box, m[u], unused);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t e = e0 + u * stride;
      ra[u] = make_uint4(0u, 0u, 0u, 0u);
      rb[u] = ra[u];
      if (m[u] != kAll) ra[u] = load_raw<true>(A + e, a_aligned);
      if (m[u] != 0u) rb[u] = load_raw<true>(B + e, b_aligned);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      store_vec_raw(out + e0 + u * stride, select_bits(ra[u], rb[u], lane_mask<sizeof(T)>(m[u])));
    }
  }
};

// grad_i = g_i outside box_i + g_k inside box_k, index[k] = i. A vector needs g_i where any
// element is outside box_i and g_k where any is inside box_k; masked-off lanes read as +0.
template <typename scalar_t, typename index_t>
struct CutmixBackwardVisitor {
  using acc_t = typename VecIO<scalar_t>::acc_t;
  using IO = VecIO<scalar_t>;
  static constexpr int kVec = vec_width<scalar_t>();
  static constexpr unsigned kAll = (1u << kVec) - 1u;
  const scalar_t* A;  // g_i
  const scalar_t* B;  // g_k
  scalar_t* out;
  bool a_aligned, b_aligned;
  Box<index_t> box_a;  // box_i
  Box<index_t> box_b;  // box_k (empty when i has no k)
  Geometry<index_t> g;

  __device__ __forceinline__ void scalar(int64_t e) {
    unsigned in_a, in_b;
    box_masks<1>(g, static_cast<index_t>(e), box_a, box_b, in_a, in_b);
    const acc_t va = in_a ? acc_t(0) : IO::load(A + e);
    const acc_t vb = in_b ? IO::load(B + e) : acc_t(0);
    IO::store(out + e, va + vb);
  }

  template <int U>
  __device__ __forceinline__ void vectors(int64_t e0, int64_t stride) {
    unsigned take_a[U], take_b[U];
    uint4 ra[U], rb[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      unsigned in_a;
      box_masks<kVec>(g, static_cast<index_t>(e0 + u * stride), box_a, box_b, in_a, take_b[u]);
      take_a[u] = ~in_a & kAll;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t e = e0 + u * stride;
      ra[u] = make_uint4(0u, 0u, 0u, 0u);
      rb[u] = ra[u];
      if (take_a[u] != 0u) ra[u] = load_raw<true>(A + e, a_aligned);
      if (take_b[u] != 0u) rb[u] = load_raw<true>(B + e, b_aligned);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t e = e0 + u * stride;
      const uint4 a = and_bits(ra[u], lane_mask<sizeof(scalar_t)>(take_a[u]));
      if ((take_a[u] & take_b[u]) == 0u) {
        // No element needs a sum: the masked lanes combine bitwise (+0 where neither).
        store_vec_raw(out + e, select_bits(a, rb[u], lane_mask<sizeof(scalar_t)>(take_b[u])));
        continue;
      }
      acc_t va[kVec], vb[kVec];
      IO::unpack(a, va);
      IO::unpack(and_bits(rb[u], lane_mask<sizeof(scalar_t)>(take_b[u])), vb);
#pragma unroll
      for (int q = 0; q < kVec; ++q) va[q] += vb[q];
      store_vec_raw(out + e, IO::pack(va));
    }
  }
};

template <typename T, typename index_t>
__global__ void __launch_bounds__(kMaxThreads, 1)
    cutmix_forward_kernel(CutmixParams p, Geometry<index_t> g) {
  const int64_t S = p.S;
  const T* src = static_cast<const T*>(p.src);
  T* dst = static_cast<T*>(p.dst);
  for (int64_t i = blockIdx.y; i < p.n; i += gridDim.y) {
    const int64_t k = p.partner[i * p.partner_stride];
    const bool valid = k >= 0 && k < p.n;
    CutmixForwardVisitor<T, index_t> v;
    v.A = src + i * S;
    v.B = src + (valid ? k : i) * S;
    v.out = dst + i * S;
    v.a_aligned = same_phase(v.A, v.out);
    v.b_aligned = same_phase(v.B, v.out);
    v.box = load_box(p.boxes, p.box_row_stride, p.box_col_stride, i, valid, g);
    v.g = g;
    visit_chunk<vec_width<T>(), kCutmixUnroll>(S, head_of(v.out, S), blockIdx.x, p.chunk_vecs, v);
  }
}

template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kMaxThreads, 1)
    cutmix_backward_kernel(CutmixParams p, Geometry<index_t> g) {
  const int64_t S = p.S;
  const scalar_t* src = static_cast<const scalar_t*>(p.src);
  scalar_t* dst = static_cast<scalar_t*>(p.dst);
  for (int64_t i = blockIdx.y; i < p.n; i += gridDim.y) {
    const int64_t k = p.partner[i * p.partner_stride];
    const bool valid = k >= 0 && k < p.n;
    CutmixBackwardVisitor<scalar_t, index_t> v;
    v.A = src + i * S;
    v.B = src + (valid ? k : i) * S;
    v.out = dst + i * S;
    v.a_aligned = same_phase(v.A, v.out);
    v.b_aligned = same_phase(v.B, v.out);
    v.box_a = load_box(p.boxes, p.box_row_stride, p.box_col_stride, i, true, g);
    v.box_b = load_box(p.boxes, p.box_row_stride, p.box_col_stride, k, valid, g);
    v.g = g;
    visit_chunk<vec_width<scalar_t>(), kCutmixUnroll>(S, head_of(v.out, S), blockIdx.x,
                                                      p.chunk_vecs, v);
  }
}

// --- host side --------------------------------------------------------------------------------

struct ChunkLaunch {
  int threads;
  int64_t chunk_vecs;
  dim3 grid;
};

// Threads: a multiple of 32 up to 256, fewer for small samples so that lanes are not idle.
ChunkLaunch plan_chunks(int64_t n, int64_t S, int vec, int unroll) {
  const int64_t vecs = ceil_div<int64_t>(S, vec);
  const int64_t want = ceil_div<int64_t>(ceil_div<int64_t>(vecs, unroll), 32) * 32;
  ChunkLaunch plan;
  plan.threads = static_cast<int>(std::clamp<int64_t>(want, 32, kMaxThreads));
  plan.chunk_vecs = static_cast<int64_t>(plan.threads) * unroll * kRoundsPerChunk;
  // Whole vectors never outnumber ceil(S / vec), whatever the head: this covers the body.
  const int64_t chunks = ceil_div<int64_t>(vecs, plan.chunk_vecs);
  TORCH_CHECK(chunks <= std::numeric_limits<int32_t>::max(), "mixup: sample too large (", S,
              " elements)");
  plan.grid =
      dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(std::min<int64_t>(n, kMaxGridY)));
  return plan;
}

bool is_channels_last(const at::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// The kernels need each sample to be one dense block at offset i * S: contiguous or 4-D
// channels_last qualify as they are; anything else (a strided view, say) is copied to
// contiguous first, and the result is then contiguous.
at::Tensor dense(const at::Tensor& t) {
  if (t.is_contiguous() || is_channels_last(t)) return t;
  return t.contiguous();
}

at::Tensor empty_same_layout(const at::Tensor& t) {
  return at::empty_like(
      t, is_channels_last(t) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
}

void check_blend_dtype(const at::Tensor& x, const char* name, bool allow_uint8) {
  const auto t = x.scalar_type();
  const bool ok = t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16 ||
                  (allow_uint8 && t == at::kByte);
  TORCH_CHECK(ok, name, " must be float16/bfloat16/float32/float64", allow_uint8 ? " or uint8" : "",
              ", got ", t);
}

void check_per_sample(const at::Tensor& x, const char* xname, const at::Tensor& v,
                      const char* vname, at::ScalarType dtype) {
  TORCH_CHECK(v.dim() == 1 && v.size(0) == x.size(0), vname, " must be (N,) with N = ", x.size(0),
              ", got ", v.sizes());
  TORCH_CHECK(v.scalar_type() == dtype, vname, " must be ", dtype, " for ", x.scalar_type(), " ",
              xname, ", got ", v.scalar_type());
  TORCH_CHECK(v.device() == x.device(), vname, " is on ", v.device(), " but ", xname, " is on ",
              x.device());
}

void check_mixup_args(const at::Tensor& x, const char* xname, const at::Tensor& lam,
                      const at::Tensor& index, const char* index_name, bool allow_uint8) {
  TORCH_CHECK(x.is_cuda(), xname, " must be a CUDA tensor");
  TORCH_CHECK(x.dim() >= 1, xname, " must be (N, ...), got a 0-d tensor");
  check_blend_dtype(x, xname, allow_uint8);
  check_per_sample(x, xname, lam, "lam", x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
  check_per_sample(x, xname, index, index_name, at::kLong);
}

void check_cutmix_args(const at::Tensor& x, const char* xname, const at::Tensor& boxes,
                       const at::Tensor& index, bool allow_uint8) {
  TORCH_CHECK(x.is_cuda(), xname, " must be a CUDA tensor");
  TORCH_CHECK(x.dim() == 4, xname, " must be (N, C, H, W), got ", x.sizes());
  check_blend_dtype(x, xname, allow_uint8);
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(0) == x.size(0) && boxes.size(1) == 4,
              "boxes must be (N, 4) with N = ", x.size(0), ", got ", boxes.sizes());
  TORCH_CHECK(boxes.scalar_type() == at::kLong, "boxes must be int64, got ", boxes.scalar_type());
  TORCH_CHECK(boxes.device() == x.device(), "boxes is on ", boxes.device(), " but ", xname,
              " is on ", x.device());
  check_per_sample(x, xname, index, "index", at::kLong);
}

// inv[j] = k where index[k] = j, -1 where no k maps to j; all on the device.
at::Tensor inverse_permutation(const at::Tensor& index, cudaStream_t stream) {
  const int64_t n = index.size(0);
  at::Tensor inv = at::full({n}, -1, index.options());
  if (n == 0) return inv;
  constexpr int kThreads = 256;
  const int64_t blocks = ceil_div<int64_t>(n, kThreads);
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "index too long (", n, ")");
  mixup_inverse_permutation_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      index.const_data_ptr<int64_t>(), index.stride(0), n, inv.mutable_data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return inv;
}

enum class BlendOp { kForward, kBackward, kPairs };

template <typename scalar_t>
void launch_blend(BlendOp op, scalar_t* src, scalar_t* dst, const at::Tensor& lam,
                  const int64_t* partner, int64_t partner_stride, int64_t n, int64_t S,
                  cudaStream_t stream) {
  using acc_t = typename VecIO<scalar_t>::acc_t;
  const ChunkLaunch plan = plan_chunks(n, S, vec_width<scalar_t>(), kBlendUnroll);
  BlendParams<scalar_t> p;
  p.src = src;
  p.dst = dst;
  p.lam = lam.const_data_ptr<acc_t>();
  p.lam_stride = lam.stride(0);
  p.partner = partner;
  p.partner_stride = partner_stride;
  p.n = n;
  p.S = S;
  p.chunk_vecs = plan.chunk_vecs;
  switch (op) {
    case BlendOp::kForward:
      mixup_forward_kernel<scalar_t><<<plan.grid, plan.threads, 0, stream>>>(p);
      break;
    case BlendOp::kBackward:
      mixup_backward_kernel<scalar_t><<<plan.grid, plan.threads, 0, stream>>>(p);
      break;
    case BlendOp::kPairs:
      mixup_pairs_kernel<scalar_t><<<plan.grid, plan.threads, 0, stream>>>(p);
      break;
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor mixup_forward_cuda(const at::Tensor& x_in, const at::Tensor& lam,
                              const at::Tensor& index) {
  check_mixup_args(x_in, "x", lam, index, "index", true);
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = dense(x_in);
  at::Tensor out = empty_same_layout(x);
  const int64_t n = x.size(0);
  if (x.numel() == 0) return out;
  const int64_t S = x.numel() / n;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND3(
      at::kHalf, at::kBFloat16, at::kByte, x.scalar_type(), "mixup_forward", [&] {
        launch_blend<scalar_t>(BlendOp::kForward,
                               const_cast<scalar_t*>(x.const_data_ptr<scalar_t>()),
                               out.mutable_data_ptr<scalar_t>(), lam,
                               index.const_data_ptr<int64_t>(), index.stride(0), n, S, stream);
      });
  return out;
}

at::Tensor mixup_backward_cuda(const at::Tensor& grad_in, const at::Tensor& lam,
                               const at::Tensor& index) {
  check_mixup_args(grad_in, "grad_out", lam, index, "index", false);
  c10::cuda::CUDAGuard guard(grad_in.device());
  const at::Tensor g = dense(grad_in);
  at::Tensor out = empty_same_layout(g);
  const int64_t n = g.size(0);
  if (g.numel() == 0) return out;
  const int64_t S = g.numel() / n;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor inv = inverse_permutation(index, stream);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "mixup_backward", [&] {
    launch_blend<scalar_t>(BlendOp::kBackward, const_cast<scalar_t*>(g.const_data_ptr<scalar_t>()),
                           out.mutable_data_ptr<scalar_t>(), lam, inv.const_data_ptr<int64_t>(), 1,
                           n, S, stream);
  });
  return out;
}

void mixup_pairs_cuda(const at::Tensor& x, const at::Tensor& lam, const at::Tensor& pairs) {
  check_mixup_args(x, "x", lam, pairs, "pairs", true);
  c10::cuda::CUDAGuard guard(x.device());
  if (x.numel() == 0) return;
  // In place needs x's own storage to be the dense blocks; otherwise blend a dense copy and
  // write it back (the Python layer rejects such x, so this is only for direct op calls).
  const bool in_place = x.is_contiguous() || is_channels_last(x);
  at::Tensor work = in_place ? x : x.contiguous();
  const int64_t n = work.size(0);
  const int64_t S = work.numel() / n;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND3(
      at::kHalf, at::kBFloat16, at::kByte, work.scalar_type(), "mixup_pairs", [&] {
        launch_blend<scalar_t>(BlendOp::kPairs, work.mutable_data_ptr<scalar_t>(), nullptr, lam,
                               pairs.const_data_ptr<int64_t>(), pairs.stride(0), n, S, stream);
      });
  if (!in_place) x.copy_(work);
}

template <typename index_t>
Geometry<index_t> make_geometry(const at::Tensor& x) {
  const bool cl = is_channels_last(x);
  const int64_t C = x.size(1), H = x.size(2), W = x.size(3);
  Geometry<index_t> g;
  g.R = static_cast<index_t>(cl ? C : 1);
  g.H = static_cast<index_t>(H);
  g.W = static_cast<index_t>(W);
  g.run = IntDivider<index_t>(g.R);
  g.plane = IntDivider<index_t>(static_cast<index_t>(H * W));
  g.width = IntDivider<index_t>(g.W);
  return g;
}

// index_t: 32-bit multiply-shift division when every in-sample offset fits (its divisor and
// dividend limit is INT32_MAX), plain 64-bit division otherwise.
template <typename Launch>
void with_index_type(int64_t S, Launch&& launch) {
  if (S <= std::numeric_limits<int32_t>::max()) {
    launch(uint32_t{});
  } else {
    launch(uint64_t{});
  }
}

CutmixParams cutmix_params(const at::Tensor& src, at::Tensor& dst, const at::Tensor& boxes,
                           const int64_t* partner, int64_t partner_stride, int64_t S,
                           int64_t chunk_vecs) {
  CutmixParams p;
  p.src = src.const_data_ptr();
  p.dst = dst.mutable_data_ptr();
  p.boxes = boxes.const_data_ptr<int64_t>();
  p.box_row_stride = boxes.stride(0);
  p.box_col_stride = boxes.stride(1);
  p.partner = partner;
  p.partner_stride = partner_stride;
  p.n = src.size(0);
  p.S = S;
  p.chunk_vecs = chunk_vecs;
  return p;
}

template <typename T>
void launch_cutmix_forward(const at::Tensor& x, at::Tensor& out, const at::Tensor& boxes,
                           const at::Tensor& index, int64_t S, cudaStream_t stream) {
  const ChunkLaunch plan = plan_chunks(x.size(0), S, vec_width<T>(), kCutmixUnroll);
  const CutmixParams p = cutmix_params(x, out, boxes, index.const_data_ptr<int64_t>(),
                                       index.stride(0), S, plan.chunk_vecs);
  with_index_type(S, [&](auto index_tag) {
    using index_t = decltype(index_tag);
    cutmix_forward_kernel<T, index_t>
        <<<plan.grid, plan.threads, 0, stream>>>(p, make_geometry<index_t>(x));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

at::Tensor cutmix_forward_cuda(const at::Tensor& x_in, const at::Tensor& boxes,
                               const at::Tensor& index) {
  check_cutmix_args(x_in, "x", boxes, index, true);
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = dense(x_in);
  at::Tensor out = empty_same_layout(x);
  if (x.numel() == 0) return out;
  const int64_t S = x.numel() / x.size(0);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  // A copy, so only the element size matters.
  switch (x.element_size()) {
    case 1:
      launch_cutmix_forward<unsigned char>(x, out, boxes, index, S, stream);
      break;
    case 2:
      launch_cutmix_forward<unsigned short>(x, out, boxes, index, S, stream);
      break;
    case 4:
      launch_cutmix_forward<unsigned int>(x, out, boxes, index, S, stream);
      break;
    default:
      launch_cutmix_forward<unsigned long long>(x, out, boxes, index, S, stream);
      break;
  }
  return out;
}

at::Tensor cutmix_backward_cuda(const at::Tensor& grad_in, const at::Tensor& boxes,
                                const at::Tensor& index) {
  check_cutmix_args(grad_in, "grad_out", boxes, index, false);
  c10::cuda::CUDAGuard guard(grad_in.device());
  const at::Tensor g = dense(grad_in);
  at::Tensor out = empty_same_layout(g);
  if (g.numel() == 0) return out;
  const int64_t S = g.numel() / g.size(0);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor inv = inverse_permutation(index, stream);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, g.scalar_type(), "cutmix_backward", [&] {
        const ChunkLaunch plan = plan_chunks(g.size(0), S, vec_width<scalar_t>(), kCutmixUnroll);
        const CutmixParams p =
            cutmix_params(g, out, boxes, inv.const_data_ptr<int64_t>(), 1, S, plan.chunk_vecs);
        with_index_type(S, [&](auto index_tag) {
          using index_t = decltype(index_tag);
          cutmix_backward_kernel<scalar_t, index_t>
              <<<plan.grid, plan.threads, 0, stream>>>(p, make_geometry<index_t>(g));
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
      });
  return out;
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CUDA, m) {
  m.impl("mixup_forward", &cookbook_ops::mixup_forward_cuda);
  m.impl("mixup_backward", &cookbook_ops::mixup_backward_cuda);
  m.impl("mixup_pairs", &cookbook_ops::mixup_pairs_cuda);
  m.impl("cutmix_forward", &cookbook_ops::cutmix_forward_cuda);
  m.impl("cutmix_backward", &cookbook_ops::cutmix_backward_cuda);
}
