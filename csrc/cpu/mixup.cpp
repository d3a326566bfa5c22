// mixup and CutMix blends: CPU kernels for
//   cookbook_ops::mixup_forward    out_i = lam_i x_i + (1 - lam_i) x_index[i]
//   cookbook_ops::mixup_backward   grad_j = lam_j g_j + (1 - lam_k) g_k, index[k] = j
//   cookbook_ops::mixup_pairs      the forward in place for an involution
//   cookbook_ops::cutmix_forward   out_i = x_index[i] inside box_i, x_i outside
//   cookbook_ops::cutmix_backward  grad_j = g_j outside box_j + g_k inside box_k
// (schemas in cookbook_ops/_library.py, oracle in cookbook_ops/reference/mixup.py).
//
// Every op streams over per-sample dense blocks of S = numel / N elements. Contiguous and
// channels_last tensors are both such blocks, and the output is allocated in the same layout,
// so one flat offset addresses the same element in every operand and no kernel needs to know
// the layout, except CutMix, which only needs the row geometry of its boxes. Work is split
// into (sample, chunk) items so that a small batch still spreads over the threads.
//
// Blends are one product per operand, rounded, then a sum (no fused multiply-add) in float
// (double for double): that is what the eager expression computes, so results match it
// exactly, uint8 rounding ties included. (mixup_pairs leaves a fixed point i == pairs[i]
// untouched, where the eager blend lam x + (1 - lam) x may differ from x in the last bit.) The
// backward permutations are inverted on the host: index lives in CPU memory here, so this costs no
// synchronization, and the same O(N) pass proves every index is in range before any kernel
// dereferences it.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cookbook_ops/checks.h"
#include "cookbook_ops/cpu_vec.h"

namespace cookbook_ops {
namespace {

// Elements per work item: 64 KiB of float per operand keeps an item's streams few enough
// for the hardware prefetchers while a 3x224x224 sample still yields ten items. A multiple
// of every vector step below, so only the last item of a sample has a scalar tail.
constexpr int64_t kChunk = 16384;
// Below this many elements per task one thread does everything: waking the pool costs more.
constexpr int64_t kGrainElements = 65536;

// Blend arithmetic: float for 16-bit and uint8, double for double.
template <typename scalar_t>
using blend_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

template <typename scalar_t>
inline scalar_t store_scalar(blend_t<scalar_t> v) {
  if constexpr (std::is_same_v<scalar_t, uint8_t>) {
    // nearbyint rounds half to even in the default rounding mode, like torch.round.
    return static_cast<uint8_t>(std::nearbyint(std::min(std::max(v, 0.0f), 255.0f)));
  } else {
    return static_cast<scalar_t>(v);
  }
}

// Hides rounded products from the optimizer. GCC contracts a * b + c into an FMA across
// statements (-ffp-contract=fast is its C++ default) wherever FMA is enabled, which would
// change the last bit against the eager expression and flip uint8 rounding ties.
template <typename V>
C10_ALWAYS_INLINE void keep_rounded(V& v) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(v));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(v));
#endif
}

template <typename scalar_t>
inline scalar_t blend_scalar(scalar_t a, scalar_t b, blend_t<scalar_t> wa, blend_t<scalar_t> wb) {
  using T = blend_t<scalar_t>;
  T pa = wa * static_cast<T>(a);
  T pb = wb * static_cast<T>(b);
  keep_rounded(pa);
  keep_rounded(pb);
  return store_scalar<scalar_t>(pa + pb);
}

// out_a = wa a + wb b over n elements; with kPair also out_b = wa2 b + wb2 a. Each element's
// inputs are read before either output is written, so out_a == a and out_b == b (in place)
// are fine.
template <typename scalar_t, bool kPair>
void blend_range_scalar(const scalar_t* a, const scalar_t* b, scalar_t* out_a, scalar_t* out_b,
                        int64_t n, blend_t<scalar_t> wa, blend_t<scalar_t> wb,
                        blend_t<scalar_t> wa2, blend_t<scalar_t> wb2) {
  for (int64_t e = 0; e < n; ++e) {
    const scalar_t va = a[e];
    const scalar_t vb = b[e];
    out_a[e] = blend_scalar(va, vb, wa, wb);
    if constexpr (kPair) {
      out_b[e] = blend_scalar(vb, va, wa2, wb2);
    }
  }
}

}  // namespace
}  // namespace cookbook_ops

COOKBOOK_OPS_VEC_BEGIN
namespace cookbook_ops {
namespace {

using at::vec::Vectorized;

// kVecs op-math vectors of one step; 16-bit and uint8 are widened to float on load.
template <typename scalar_t>
struct BlendIO {
  using T = blend_t<scalar_t>;
  using Vec = Vectorized<T>;
  static constexpr int kVecs = std::is_same_v<scalar_t, uint8_t> ? 4 : 2;
  static constexpr int64_t kStep = kVecs * Vec::size();

  C10_ALWAYS_INLINE static void load(const scalar_t* p, Vec* v) {
    if constexpr (std::is_same_v<scalar_t, uint8_t>) {
#if COOKBOOK_OPS_VEC_AVX2
      for (int k = 0; k < kVecs; ++k) {
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * k));
        v[k] = Vec(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)));
      }
#endif
    } else if constexpr (at::vec::is_reduced_floating_point_v<scalar_t>) {
      at::vec::load_to_float(p, v[0], v[1]);
    } else {
      v[0] = Vec::loadu(p);
      v[1] = Vec::loadu(p + Vec::size());
    }
  }

  C10_ALWAYS_INLINE static void store(scalar_t* p, const Vec* v) {
    if constexpr (std::is_same_v<scalar_t, uint8_t>) {
#if COOKBOOK_OPS_VEC_AVX2
      // cvtps rounds half to even (the default MXCSR mode); the unsigned saturating packs
      // clamp to [0, 255]. The packs interleave 128-bit lanes; the permute restores order.
      const __m256i i0 = _mm256_cvtps_epi32(v[0]);
      const __m256i i1 = _mm256_cvtps_epi32(v[1]);
      const __m256i i2 = _mm256_cvtps_epi32(v[2]);
      const __m256i i3 = _mm256_cvtps_epi32(v[3]);
      const __m256i packed =
          _mm256_packus_epi16(_mm256_packus_epi32(i0, i1), _mm256_packus_epi32(i2, i3));
      const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                          _mm256_permutevar8x32_epi32(packed, order));
#endif
    } else if constexpr (at::vec::is_reduced_floating_point_v<scalar_t>) {
      at::vec::convert_from_float<scalar_t>(v[0], v[1]).store(p);
    } else {
      v[0].store(p);
      v[1].store(p + Vec::size());
    }
  }
};

template <typename scalar_t>
constexpr bool vec_supported() {
  return !std::is_same_v<scalar_t, uint8_t> || COOKBOOK_OPS_VEC_AVX2;
}

// w v, rounded, and kept from being fused into a later sum (see keep_rounded).
template <typename T>
C10_ALWAYS_INLINE Vectorized<T> rounded_product(const Vectorized<T>& w, const Vectorized<T>& v) {
#if COOKBOOK_OPS_VEC_AVX2
  if constexpr (std::is_same_v<T, double>) {
    __m256d p = w * v;
    keep_rounded(p);
    return Vectorized<T>(p);
  } else {
    __m256 p = w * v;
    keep_rounded(p);
    return Vectorized<T>(p);
  }
#else
  return w * v;
#endif
}

template <typename T>
C10_ALWAYS_INLINE Vectorized<T> blend_vec(const Vectorized<T>& a, const Vectorized<T>& b,
                                          const Vectorized<T>& wa, const Vectorized<T>& wb) {
  return rounded_product(wa, a) + rounded_product(wb, b);
}

template <typename scalar_t, bool kPair>
COOKBOOK_OPS_FLATTEN void blend_range_vec(const scalar_t* a, const scalar_t* b, scalar_t* out_a,
                                          scalar_t* out_b, int64_t n, blend_t<scalar_t> wa,
                                          blend_t<scalar_t> wb, blend_t<scalar_t> wa2,
                                          blend_t<scalar_t> wb2) {
  using IO = BlendIO<scalar_t>;
  using T = blend_t<scalar_t>;
  using Vec = Vectorized<T>;
  constexpr int kVecs = IO::kVecs;
  constexpr int64_t kStep = IO::kStep;
  const Vec va(wa), vb(wb), va2(wa2), vb2(wb2);
  int64_t e = 0;
  for (; e + kStep <= n; e += kStep) {
    Vec xa[kVecs], xb[kVecs], ya[kVecs];
    IO::load(a + e, xa);
    IO::load(b + e, xb);
    for (int k = 0; k < kVecs; ++k) {
      ya[k] = blend_vec<T>(xa[k], xb[k], va, vb);
    }
    if constexpr (kPair) {
      Vec yb[kVecs];
      for (int k = 0; k < kVecs; ++k) {
        yb[k] = blend_vec<T>(xb[k], xa[k], va2, vb2);
      }
      IO::store(out_b + e, yb);
    }
    IO::store(out_a + e, ya);
  }
  if (e < n) {
    blend_range_scalar<scalar_t, kPair>(a + e, b + e, out_a + e, kPair ? out_b + e : nullptr, n - e,
                                        wa, wb, wa2, wb2);
  }
}

}  // namespace
}  // namespace cookbook_ops
COOKBOOK_OPS_VEC_END

namespace cookbook_ops {
namespace {

template <typename scalar_t, bool kPair>
void blend_range(bool vec, const scalar_t* a, const scalar_t* b, scalar_t* out_a, scalar_t* out_b,
                 int64_t n, blend_t<scalar_t> wa, blend_t<scalar_t> wb, blend_t<scalar_t> wa2,
                 blend_t<scalar_t> wb2) {
  if constexpr (vec_supported<scalar_t>()) {
    // Shorter ranges (tiny samples) would only run the vector code's scalar tail, behind a
    // call that costs more than the blend itself.
    if (vec && n >= BlendIO<scalar_t>::kStep) {
      blend_range_vec<scalar_t, kPair>(a, b, out_a, out_b, n, wa, wb, wa2, wb2);
      return;
    }
  }
  blend_range_scalar<scalar_t, kPair>(a, b, out_a, out_b, n, wa, wb, wa2, wb2);
}

// Runs f(sample, begin, end) over [begin, end) element chunks of `samples` blocks of S each.
template <typename F>
void for_each_chunk(int64_t samples, int64_t S, int64_t chunk, const F& f) {
  if (S <= chunk) {
    // One item per sample (many small samples): whole samples per task, no index arithmetic
    // per item.
    const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(S, 1));
    at::parallel_for(0, samples, grain, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) {
        f(s, int64_t{0}, S);
      }
    });
    return;
  }
  const int64_t per_sample = (S + chunk - 1) / chunk;
  const int64_t per_item = std::min(S, chunk);
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(per_item, 1));
  at::parallel_for(0, samples * per_sample, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t s = t / per_sample;
      const int64_t begin = (t % per_sample) * chunk;
      f(s, begin, std::min(S, begin + chunk));
    }
  });
}

// ------------------------------------------------------------------------------------------
// Argument handling.

bool is_blend_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16 ||
         t == at::kByte;
}

// The layout the kernels run in, as the Python layer's fake kernels report it: channels_last
// for a 4-D tensor that is channels_last and not also contiguous, else contiguous.
at::MemoryFormat blend_layout(const at::Tensor& t) {
  if (t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    return at::MemoryFormat::ChannelsLast;
  }
  return at::MemoryFormat::Contiguous;
}

// Any other strides are copied into the layout: the kernels need each sample as one block.
at::Tensor dense(const at::Tensor& t) { return t.contiguous(blend_layout(t)); }

at::Tensor empty_in_layout(const at::Tensor& t) {
  return at::empty(t.sizes(), t.options().memory_format(blend_layout(t)));
}

void check_x(const at::Tensor& x, const char* name, bool allow_uint8) {
  TORCH_CHECK(x.device().is_cpu(), name, " must be a CPU tensor, got ", x.device());
  TORCH_CHECK(x.dim() >= 1, name, " must be (N, ...), got a 0-d tensor");
  TORCH_CHECK(is_blend_dtype(x.scalar_type()) && (allow_uint8 || x.scalar_type() != at::kByte),
              name, " must be float16/bfloat16/float32/float64", allow_uint8 ? " or uint8" : "",
              ", got ", x.scalar_type());
}

void check_lam(const at::Tensor& lam, const at::Tensor& x) {
  const int64_t N = x.size(0);
  TORCH_CHECK(lam.device().is_cpu(), "lam must be a CPU tensor, got ", lam.device());
  TORCH_CHECK(lam.dim() == 1 && lam.size(0) == N, "lam must be (N,) with N = ", N, ", got ",
              lam.sizes());
  const auto opmath = opmath_scalar_type(x.scalar_type());
  TORCH_CHECK(lam.scalar_type() == opmath, "lam must be ", opmath, " for ", x.scalar_type(),
              " x, got ", lam.scalar_type());
}

// A checked index: (N,) int64 on the CPU, every value in [0, N), read in place (a contiguous
// copy only when it is strided): with many tiny samples a copy costs as much as the blend.
struct Index {
  at::Tensor values;
  const int64_t* data;
  int64_t operator[](int64_t i) const { return data[i]; }
};

Index read_index(const at::Tensor& index, int64_t N, const char* name) {
  TORCH_CHECK(index.device().is_cpu(), name, " must be a CPU tensor, got ", index.device());
  TORCH_CHECK(index.scalar_type() == at::kLong, name, " must be int64, got ", index.scalar_type());
  TORCH_CHECK(index.dim() == 1 && index.size(0) == N, name, " must be (N,) with N = ", N, ", got ",
              index.sizes());
  Index v{index.contiguous(), nullptr};
  v.data = v.values.const_data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    TORCH_CHECK_INDEX(v[i] >= 0 && v[i] < N, name, "[", i, "] = ", v[i],
                      " is out of range for a batch of ", N);
  }
  return v;
}

// read_index for a forward mixup index, which must be a permutation: checked here, in the
// same O(N) pass as the range, so the Python layer can leave it to this kernel (a second
// pass there costs as much as the blend of 100,000 tiny samples). ValueError, as there.
Index read_permutation(const at::Tensor& index, int64_t N) {
  TORCH_CHECK(index.device().is_cpu(), "index must be a CPU tensor, got ", index.device());
  TORCH_CHECK(index.scalar_type() == at::kLong, "index must be int64, got ", index.scalar_type());
  TORCH_CHECK(index.dim() == 1 && index.size(0) == N, "index must be (N,) with N = ", N, ", got ",
              index.sizes());
  Index v{index.contiguous(), nullptr};
  v.data = v.values.const_data_ptr<int64_t>();
  std::vector<uint8_t> seen(N, 0);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t k = v[i];
    const bool in_range = k >= 0 && k < N;
    TORCH_CHECK_VALUE(in_range && seen[k] == 0, "index must be a permutation of 0..", N - 1,
                      ", but index[", i, "] = ", k,
                      in_range ? " appears twice" : " is out of range");
    seen[k] = 1;
  }
  return v;
}

// inv[index[k]] = k. A value seen twice would leave some sample without a source and the
// gather below would read garbage, so this is checked, not assumed.
std::vector<int64_t> inverse_permutation(const Index& index) {
  const int64_t N = index.values.numel();
  std::vector<int64_t> inv(N, -1);
  for (int64_t k = 0; k < N; ++k) {
    TORCH_CHECK(inv[index[k]] < 0, "index must be a permutation of 0..", N - 1, ", but ", index[k],
                " appears twice");
    inv[index[k]] = k;
  }
  return inv;
}

// out_i = lam_i x_i + beta_i x_other[i], per sample, over the flat blocks of x and out.
void blend_samples(const at::Tensor& x, at::Tensor& out, const at::Tensor& lam_in,
                   const int64_t* other, bool backward) {
  const int64_t N = x.size(0);
  const int64_t S = x.numel() / N;
  const bool vec = cpu::vec_kernels_available();
  AT_DISPATCH_FLOATING_TYPES_AND3(
      at::kHalf, at::kBFloat16, at::kByte, x.scalar_type(), "mixup_blend", [&] {
        using T = blend_t<scalar_t>;
        const at::Tensor lam = lam_in.contiguous();
        const T* l = lam.const_data_ptr<T>();
        const scalar_t* src = x.const_data_ptr<scalar_t>();
        scalar_t* dst = out.mutable_data_ptr<scalar_t>();
        for_each_chunk(N, S, kChunk, [&](int64_t i, int64_t b, int64_t e) {
          // Forward: (1 - lam_i) on x_index[i]. Backward: g_k flowed into x_j with weight
          // (1 - lam_k), k = other[j].
          const T beta = T(1) - l[backward ? other[i] : i];
          blend_range<scalar_t, false>(vec, src + i * S + b, src + other[i] * S + b,
                                       dst + i * S + b, nullptr, e - b, l[i], beta, T(0), T(0));
        });
      });
}

// ------------------------------------------------------------------------------------------
// mixup.

at::Tensor mixup_forward_cpu(const at::Tensor& x_in, const at::Tensor& lam,
                             const at::Tensor& index_in) {
  check_x(x_in, "x", /*allow_uint8=*/true);
  check_lam(lam, x_in);
  const int64_t N = x_in.size(0);
  const Index index = read_permutation(index_in, N);
  const at::Tensor x = dense(x_in);
  at::Tensor out = empty_in_layout(x);
  if (x.numel() == 0) {
    return out;
  }
  blend_samples(x, out, lam, index.data, /*backward=*/false);
  return out;
}

at::Tensor mixup_backward_cpu(const at::Tensor& grad_in, const at::Tensor& lam,
                              const at::Tensor& index_in) {
  check_x(grad_in, "grad_out", /*allow_uint8=*/false);
  check_lam(lam, grad_in);
  const int64_t N = grad_in.size(0);
  const std::vector<int64_t> inv = inverse_permutation(read_index(index_in, N, "index"));
  const at::Tensor g = dense(grad_in);
  at::Tensor grad = empty_in_layout(g);
  if (g.numel() == 0) {
    return grad;
  }
  blend_samples(g, grad, lam, inv.data(), /*backward=*/true);
  return grad;
}

void mixup_pairs_cpu(const at::Tensor& x, const at::Tensor& lam, const at::Tensor& pairs_in) {
  check_x(x, "x", /*allow_uint8=*/true);
  check_lam(lam, x);
  // In place: a copy into a dense layout would leave x itself untouched.
  TORCH_CHECK(x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast),
              "mixup_pairs needs x contiguous or channels_last (it works in place), got strides ",
              x.strides());
  const int64_t N = x.size(0);
  const Index pairs = read_index(pairs_in, N, "pairs");
  // Anything but an involution would make two work items write (and read) the same sample.
  std::vector<int64_t> first;  // i < pairs[i]: the items; fixed points are left as they are
  for (int64_t i = 0; i < N; ++i) {
    TORCH_CHECK(pairs[pairs[i]] == i, "pairs must be an involution, but pairs[", i,
                "] = ", pairs[i], " and pairs[", pairs[i], "] = ", pairs[pairs[i]]);
    if (i < pairs[i]) {
      first.push_back(i);
    }
  }
  if (x.numel() == 0 || first.empty()) {
    return;
  }
  const int64_t S = x.numel() / N;
  const bool vec = cpu::vec_kernels_available();
  AT_DISPATCH_FLOATING_TYPES_AND3(
      at::kHalf, at::kBFloat16, at::kByte, x.scalar_type(), "mixup_pairs", [&] {
        using T = blend_t<scalar_t>;
        const at::Tensor lam_c = lam.contiguous();
        const T* l = lam_c.const_data_ptr<T>();
        scalar_t* data = x.mutable_data_ptr<scalar_t>();
        const int64_t P = static_cast<int64_t>(first.size());
        for_each_chunk(P, S, kChunk, [&](int64_t p, int64_t b, int64_t e) {
          const int64_t i = first[p];
          const int64_t j = pairs[i];
          scalar_t* xi = data + i * S + b;
          scalar_t* xj = data + j * S + b;
          blend_range<scalar_t, true>(vec, xi, xj, xi, xj, e - b, l[i], T(1) - l[i], l[j],
                                      T(1) - l[j]);
        });
      });
}

// ------------------------------------------------------------------------------------------
// CutMix. A sample is `planes` planes of H rows of L elements: NCHW has C planes of W-element
// rows; channels_last has one plane of W*C-element rows. Box columns scale by `col` (1 or C).

struct Geometry {
  int64_t planes, H, W, L, col;
  int64_t rows() const { return planes * H; }
  int64_t sample() const { return planes * H * L; }
};

Geometry geometry(const at::Tensor& t) {
  const int64_t C = t.size(1), H = t.size(2), W = t.size(3);
  if (blend_layout(t) == at::MemoryFormat::ChannelsLast) {
    return {1, H, W, W * C, C};
  }
  return {C, H, W, W, 1};
}

// A box as row and element-column ranges, clamped into the image and to non-negative size
// whatever the values: the kernels then cannot address outside the sample.
struct Box {
  int64_t y0, y1, c0, c1;
  bool covers_row(int64_t h) const { return h >= y0 && h < y1 && c0 < c1; }
};

// check_inside (the forward): every box must satisfy 0 <= y0 <= y1 <= H, 0 <= x0 <= x1 <= W,
// checked in the pass that reads the boxes, so the Python layer leaves it to this kernel;
// ValueError with the Python layer's message. Without it (backward, direct op calls) boxes are
// clipped to the image as the GPU kernels clip them.
std::vector<Box> read_boxes(const at::Tensor& boxes_in, const Geometry& g, int64_t N,
                            bool check_inside = false) {
  TORCH_CHECK(boxes_in.device().is_cpu(), "boxes must be a CPU tensor, got ", boxes_in.device());
  TORCH_CHECK(boxes_in.scalar_type() == at::kLong, "boxes must be int64, got ",
              boxes_in.scalar_type());
  TORCH_CHECK(boxes_in.dim() == 2 && boxes_in.size(0) == N && boxes_in.size(1) == 4,
              "boxes must be (N, 4) with N = ", N, ", got ", boxes_in.sizes());
  const at::Tensor c = boxes_in.contiguous();
  const int64_t* p = c.const_data_ptr<int64_t>();
  std::vector<Box> out(N);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t* r = p + 4 * i;
    TORCH_CHECK_VALUE(!check_inside || (0 <= r[0] && r[0] <= r[2] && r[2] <= g.H && 0 <= r[1] &&
                                        r[1] <= r[3] && r[3] <= g.W),
                      "boxes must lie inside the ", g.H, "x", g.W,
                      " image (need 0 <= y0 <= y1 <= H and 0 <= x0 <= x1 <= W) (boxes[", i, "] = [",
                      r[0], ", ", r[1], ", ", r[2], ", ", r[3], "])");
    const int64_t y0 = std::clamp<int64_t>(r[0], 0, g.H);
    const int64_t y1 = std::clamp<int64_t>(r[2], y0, g.H);
    const int64_t x0 = std::clamp<int64_t>(r[1], 0, g.W);
    const int64_t x1 = std::clamp<int64_t>(r[3], x0, g.W);
    out[i] = {y0, y1, x0 * g.col, x1 * g.col};
  }
  return out;
}

void check_cutmix_x(const at::Tensor& x, const char* name, bool allow_uint8) {
  check_x(x, name, allow_uint8);
  TORCH_CHECK(x.dim() == 4, name, " must be (N, C, H, W), got ", x.sizes());
}

// Rows per work item: about kChunk elements, at least one row.
int64_t rows_per_item(const Geometry& g) {
  return std::max<int64_t>(1, kChunk / std::max<int64_t>(g.L, 1));
}

at::Tensor cutmix_forward_cpu(const at::Tensor& x_in, const at::Tensor& boxes_in,
                              const at::Tensor& index_in) {
  check_cutmix_x(x_in, "x", /*allow_uint8=*/true);
  const int64_t N = x_in.size(0);
  const Index index = read_permutation(index_in, N);
  const at::Tensor x = dense(x_in);
  const Geometry g = geometry(x);
  const std::vector<Box> boxes = read_boxes(boxes_in, g, N, /*check_inside=*/true);
  at::Tensor out = empty_in_layout(x);
  if (x.numel() == 0) {
    return out;
  }
  // A pure copy: bytes, whatever the dtype.
  const int64_t es = x.element_size();
  const int64_t S = g.sample();
  const char* src = static_cast<const char*>(x.const_data_ptr());
  char* dst = static_cast<char*>(out.mutable_data_ptr());
  const int64_t rows = rows_per_item(g);
  for_each_chunk(N, g.rows(), rows, [&](int64_t i, int64_t r0, int64_t r1) {
    const Box& box = boxes[i];
    const char* own = src + i * S * es;
    const char* other = src + index[i] * S * es;
    char* o = dst + i * S * es;
    const int64_t row_bytes = g.L * es;
    int64_t r = r0;
    while (r < r1) {
      const int64_t h = r % g.H;
      if (box.covers_row(h)) {
        const int64_t off = r * row_bytes;
        std::memcpy(o + off, own + off, box.c0 * es);
        std::memcpy(o + off + box.c0 * es, other + off + box.c0 * es, (box.c1 - box.c0) * es);
        std::memcpy(o + off + box.c1 * es, own + off + box.c1 * es, (g.L - box.c1) * es);
        ++r;
        continue;
      }
      // The rows up to the next one the box touches are one contiguous copy.
      int64_t end = r1;
      if (box.y0 < box.y1 && box.c0 < box.c1) {
        end = std::min(end, r + (h < box.y0 ? box.y0 - h : g.H - h + box.y0));
      }
      std::memcpy(o + r * row_bytes, own + r * row_bytes, (end - r) * row_bytes);
      r = end;
    }
  });
  return out;
}

at::Tensor cutmix_backward_cpu(const at::Tensor& grad_in, const at::Tensor& boxes_in,
                               const at::Tensor& index_in) {
  check_cutmix_x(grad_in, "grad_out", /*allow_uint8=*/false);
  const int64_t N = grad_in.size(0);
  const std::vector<int64_t> inv = inverse_permutation(read_index(index_in, N, "index"));
  const at::Tensor gt = dense(grad_in);
  const Geometry g = geometry(gt);
  const std::vector<Box> boxes = read_boxes(boxes_in, g, N);
  at::Tensor grad = empty_in_layout(gt);
  if (gt.numel() == 0) {
    return grad;
  }
  const int64_t S = g.sample();
  const int64_t L = g.L;
  const bool vec = cpu::vec_kernels_available();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, gt.scalar_type(), "cutmix_backward", [&] {
        using T = blend_t<scalar_t>;
        const scalar_t* src = gt.const_data_ptr<scalar_t>();
        scalar_t* dst = grad.mutable_data_ptr<scalar_t>();
        for_each_chunk(N, g.rows(), rows_per_item(g), [&](int64_t j, int64_t r0, int64_t r1) {
          const int64_t k = inv[j];
          const Box& own_box = boxes[j];    // g_j is cut out here
          const Box& other_box = boxes[k];  // g_k flows back into x_j here
          const scalar_t* gj = src + j * S;
          const scalar_t* gk = src + k * S;
          scalar_t* o = dst + j * S;
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t h = r % g.H;
            const int64_t off = r * L;
            const bool cut = own_box.covers_row(h);
            const bool in = other_box.covers_row(h);
            if (!cut && !in) {
              std::memcpy(o + off, gj + off, L * sizeof(scalar_t));
              continue;
            }
            // Segments between the column edges of both boxes each take one rule throughout.
            int64_t edges[6] = {0, L, 0, 0, 0, 0};
            int n_edges = 2;
            if (cut) {
              edges[n_edges++] = own_box.c0;
              edges[n_edges++] = own_box.c1;
            }
            if (in) {
              edges[n_edges++] = other_box.c0;
              edges[n_edges++] = other_box.c1;
            }
            std::sort(edges, edges + n_edges);
            for (int s = 0; s + 1 < n_edges; ++s) {
              const int64_t c0 = edges[s], c1 = edges[s + 1];
              if (c0 == c1) {
                continue;
              }
              const bool take_j = !(cut && c0 >= own_box.c0 && c0 < own_box.c1);
              const bool take_k = in && c0 >= other_box.c0 && c0 < other_box.c1;
              scalar_t* d = o + off + c0;
              const int64_t n = c1 - c0;
              if (take_j && take_k) {
                blend_range<scalar_t, false>(vec, gj + off + c0, gk + off + c0, d, nullptr, n, T(1),
                                             T(1), T(0), T(0));
              } else if (take_j) {
                std::memcpy(d, gj + off + c0, n * sizeof(scalar_t));
              } else if (take_k) {
                std::memcpy(d, gk + off + c0, n * sizeof(scalar_t));
              } else {
                std::fill_n(d, n, scalar_t(0));
              }
            }
          }
        });
      });
  return grad;
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CPU, m) {
  m.impl("mixup_forward", &cookbook_ops::mixup_forward_cpu);
  m.impl("mixup_backward", &cookbook_ops::mixup_backward_cpu);
  m.impl("mixup_pairs", &cookbook_ops::mixup_pairs_cpu);
  m.impl("cutmix_forward", &cookbook_ops::cutmix_forward_cpu);
  m.impl("cutmix_backward", &cookbook_ops::cutmix_backward_cpu);
}
