// Resized crop + flip + normalize (+ mixup) of a list of uint8 images: the CPU kernel for
//   cookbook_ops::resized_crop_normalize_forward
// (schema and contract in cookbook_ops/_library.py).
//
// Per image, the box region is resampled separably with tap tables computed once per call:
// for every output row (column) the first source row (column) and K weights, K the same for
// the whole axis, zero weights padding the shorter windows. The tables reproduce ATen's
// float32 arithmetic (F.interpolate on float input, which torchvision's resized_crop calls):
//   plain bilinear: scale = in / out, src = max(fma(scale, o + 0.5, -0.5), 0) (ATen's CPU
//     and CUDA builds contract that expression into an FMA), i0 = floor(src), the second tap
//     min(i0 + 1, in - 1) with weight src - i0;
//   antialias on a downscale: center = scale (o + 0.5), taps [int(center - scale + 0.5),
//     int(center + scale + 0.5)) clipped to the axis, w_j = max(0, 1 - |(j - center + 0.5) /
//     scale|) computed as ATen does (times 1 / scale), normalized by their float32 sum.
// The resize is linear, so the kernel resamples the raw bytes and normalizes the sums at the
// end, v = sum / (255 std_c) - mean_c / std_c as one multiply-add (within 1e-6 of the
// oracle's (sum / 255 - mean_c) / std_c).
//
// Work items are (sample, output row) pairs, spread over the threads. Each one runs
//   1. the vertical pass: K source rows of the box blended into one float row (box width x C
//      values), a contiguous multiply-add over whole rows that vectorizes directly;
//   2. the horizontal pass: each output pixel blends K pixels of that row, all its channels at
//      once (one 4-float vector per tap for 3 or 4 channels), and normalizes them;
//   3. mirror, blend with the partner sample's row, round once and store.
// The vertical pass comes first so that the strided, per-pixel work runs on out_h rows rather
// than on every source row of the box; a source row is read once per output row whose window
// covers it (about K times when downscaling, from cache).
//
// Mixup: out_i needs the resized value of sample index[i] at the same pixel. A work item
// computes that row too (the partner's own box, tables and flip) and blends before rounding:
// correct for any permutation, at twice the resampling work. Blending finished images in place
// would read samples that another pair already overwrote unless index is an involution.
//
// The vector code is compiled for AVX2 + FMA between COOKBOOK_OPS_VEC_BEGIN/END and taken only
// where cpu::vec_kernels_available() says so; the scalar loops serve everything else.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "cookbook_ops/cpu_vec.h"

namespace cookbook_ops {
namespace {

// Floats of slack after each scratch row: a 4-float vector at the last 3-channel pixel reads
// (and the horizontal pass writes) one float past it.
constexpr int64_t kPad = 8;
// Output rows per parallel task (each is a few thousand multiply-adds or more).
constexpr int64_t kGrainRows = 4;

// The taps of one axis of one image: output o reads source positions start[o] .. start[o] + K
// - 1 (relative to the box) with weights weight[o * K + k], of which the ones from count[o] on
// are 0 (the window of output o is often shorter than K).
struct AxisTaps {
  int64_t K = 0;
  std::vector<int32_t> start;
  std::vector<int32_t> count;
  std::vector<float> weight;
};

int64_t taps_per_output(int64_t in, int64_t out, bool antialias) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  if (antialias && scale > 1.0f) {
    return std::min<int64_t>(2 * static_cast<int64_t>(std::ceil(scale)) + 1, in);
  }
  return std::min<int64_t>(2, in);
}

AxisTaps axis_taps(int64_t in, int64_t out, bool antialias) {
  AxisTaps t;
  t.K = taps_per_output(in, out, antialias);
  t.start.assign(out, 0);
  t.count.assign(out, 0);
  t.weight.assign(out * t.K, 0.0f);
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  std::vector<float> w(t.K + 2);
  for (int64_t o = 0; o < out; ++o) {
    int64_t lo = 0, count = 0;
    if (antialias && scale > 1.0f) {
      const float center = scale * (static_cast<float>(o) + 0.5f);
      const float inv_scale = 1.0f / scale;
      lo = std::max<int64_t>(static_cast<int64_t>(center - scale + 0.5f), 0);
      const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + scale + 0.5f), in);
      count = std::min<int64_t>(hi - lo, t.K);
      float total = 0.0f;
      for (int64_t j = 0; j < count; ++j) {
        const float x = (static_cast<float>(j + lo) - center + 0.5f) * inv_scale;
        w[j] = std::max(0.0f, 1.0f - std::fabs(x));
        total += w[j];
      }
      for (int64_t j = 0; j < count; ++j) {
        w[j] = total != 0.0f ? w[j] / total : 0.0f;
      }
    } else {
      const float src = std::max(std::fma(scale, static_cast<float>(o) + 0.5f, -0.5f), 0.0f);
      const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(src)), in - 1);
      const float frac = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
      lo = i0;
      if (i0 + 1 < in) {
        count = 2;
        w[0] = 1.0f - frac;
        w[1] = frac;
      } else {
        count = 1;
        w[0] = 1.0f;
      }
    }
    // Shift the window left where it would run past the axis end; the extra taps weigh 0.
    const int64_t start = std::min<int64_t>(lo, in - t.K);
    t.start[o] = static_cast<int32_t>(start);
    for (int64_t j = 0; j < count; ++j) {
      t.weight[o * t.K + (lo - start) + j] = w[j];
    }
    t.count[o] = static_cast<int32_t>(lo - start + count);
  }
  return t;
}

// One image of the batch as the kernel sees it: the first byte of its box and the strides in
// bytes of a box row, pixel and channel.
struct Source {
  const uint8_t* box;
  int64_t row, pixel, channel;
  int64_t height, width;  // of the box
  AxisTaps y, x;
};

struct Params {
  int64_t N, C, out_h, out_w;
  bool nhwc;
  const Source* sources;
  const bool* flip;
  const float* lam;
  const int64_t* index;
  // v = sum * scale_c + shift_c with scale_c = 1 / (255 std_c), shift_c = -mean_c / std_c:
  // the normalization of a resampled byte sum, as one multiply-add (4 floats each, padded).
  float scale[4], shift[4];
  std::vector<float> scale_all, shift_all;  // (C,), for any channel count
  int64_t max_box_width;
  // Resampled rows held channel by channel (pitch floats apart) instead of pixel-major: for
  // an NCHW output of 3 or 4 channels, whose rows are then plain (or reversed) copies.
  bool planar;
  int64_t pitch;
};

// Vertical pass, scalar: rows[x * C + c] = sum_k wy[k] * box row (start + k), pixel x,
// channel c, for any layout.
void vertical_scalar(const Source& s, int64_t oy, int64_t C, float* rows) {
  const int64_t K = s.y.K;
  const float* wy = s.y.weight.data() + oy * K;
  const uint8_t* first = s.box + static_cast<int64_t>(s.y.start[oy]) * s.row;
  const int64_t n = s.width * C;
  std::fill(rows, rows + n, 0.0f);
  for (int64_t k = 0; k < s.y.count[oy]; ++k) {
    const float w = wy[k];
    if (w == 0.0f) {
      continue;
    }
    const uint8_t* src = first + k * s.row;
    for (int64_t x = 0; x < s.width; ++x) {
      for (int64_t c = 0; c < C; ++c) {
        rows[x * C + c] += w * static_cast<float>(src[x * s.pixel + c * s.channel]);
      }
    }
  }
}

// Horizontal pass, scalar: acc[ox * C + c] = the normalization of
// sum_k wx[k] * rows[(start + k) * stride + c].
void horizontal_scalar(const Params& prm, const Source& s, int64_t stride, const float* rows,
                       float* acc) {
  const int64_t K = s.x.K, C = prm.C;
  for (int64_t ox = 0; ox < prm.out_w; ++ox) {
    const float* wx = s.x.weight.data() + ox * K;
    const float* p = rows + static_cast<int64_t>(s.x.start[ox]) * stride;
    for (int64_t c = 0; c < C; ++c) {
      float a = 0.0f;
      for (int64_t k = 0; k < s.x.count[ox]; ++k) {
        a += wx[k] * p[k * stride + c];
      }
      acc[ox * C + c] = a * prm.scale_all[c] + prm.shift_all[c];
    }
  }
}

#if COOKBOOK_OPS_VEC_AVX2
COOKBOOK_OPS_VEC_BEGIN
namespace avx2 {

// Eight bytes to eight floats.
C10_ALWAYS_INLINE __m256 load8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// rows[0 .. n) = sum_k wy[k] * src_k[0 .. n) for K contiguous byte rows src_0 + k * pitch.
// Four independent accumulators hide the multiply-add latency.
C10_ALWAYS_INLINE void blend_rows(const uint8_t* src0, int64_t pitch, const float* wy, int64_t K,
                                  int64_t n, float* rows) {
  int64_t x = 0;
  for (; x + 32 <= n; x += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t k = 0; k < K; ++k) {
      const __m256 w = _mm256_broadcast_ss(wy + k);
      const uint8_t* p = src0 + k * pitch + x;
      a0 = _mm256_fmadd_ps(w, load8(p), a0);
      a1 = _mm256_fmadd_ps(w, load8(p + 8), a1);
      a2 = _mm256_fmadd_ps(w, load8(p + 16), a2);
      a3 = _mm256_fmadd_ps(w, load8(p + 24), a3);
    }
    _mm256_storeu_ps(rows + x, a0);
    _mm256_storeu_ps(rows + x + 8, a1);
    _mm256_storeu_ps(rows + x + 16, a2);
    _mm256_storeu_ps(rows + x + 24, a3);
  }
  for (; x + 8 <= n; x += 8) {
    __m256 a = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
      a = _mm256_fmadd_ps(_mm256_broadcast_ss(wy + k), load8(src0 + k * pitch + x), a);
    }
    _mm256_storeu_ps(rows + x, a);
  }
  for (; x < n; ++x) {
    float a = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      a = std::fma(wy[k], static_cast<float>(src0[k * pitch + x]), a);
    }
    rows[x] = a;
  }
}

// Vertical pass for a box whose rows are contiguous runs of width * C bytes (NHWC, or planar
// with C == 1): the result keeps the input's pixel-major order.
COOKBOOK_OPS_FLATTEN void vertical_interleaved(const Source& s, int64_t oy, int64_t C,
                                               float* rows) {
  blend_rows(s.box + static_cast<int64_t>(s.y.start[oy]) * s.row, s.row,
             s.y.weight.data() + oy * s.y.K, s.y.count[oy], s.width * C, rows);
}

// Vertical pass for planar 3- or 4-channel input: each channel's rows are blended 8 pixels at
// a time and the channel vectors transposed into pixels of 4 floats (the 4th unused for 3
// channels), so that the horizontal pass reads a pixel as one vector.
COOKBOOK_OPS_FLATTEN void vertical_planar4(const Source& s, int64_t oy, int64_t C, float* rows) {
  const int64_t K = s.y.count[oy];
  const float* wy = s.y.weight.data() + oy * s.y.K;
  const uint8_t* first = s.box + static_cast<int64_t>(s.y.start[oy]) * s.row;
  int64_t x = 0;
  for (; x + 8 <= s.width; x += 8) {
    __m256 v[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    for (int64_t k = 0; k < K; ++k) {
      const __m256 w = _mm256_broadcast_ss(wy + k);
      const uint8_t* p = first + k * s.row + x;
      for (int64_t c = 0; c < C; ++c) {
        v[c] = _mm256_fmadd_ps(w, load8(p + c * s.channel), v[c]);
      }
    }
    for (int half = 0; half < 2; ++half) {
      __m128 r0 = half ? _mm256_extractf128_ps(v[0], 1) : _mm256_castps256_ps128(v[0]);
      __m128 r1 = half ? _mm256_extractf128_ps(v[1], 1) : _mm256_castps256_ps128(v[1]);
      __m128 r2 = half ? _mm256_extractf128_ps(v[2], 1) : _mm256_castps256_ps128(v[2]);
      __m128 r3 = half ? _mm256_extractf128_ps(v[3], 1) : _mm256_castps256_ps128(v[3]);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      float* d = rows + (x + 4 * half) * 4;
      _mm_storeu_ps(d, r0);
      _mm_storeu_ps(d + 4, r1);
      _mm_storeu_ps(d + 8, r2);
      _mm_storeu_ps(d + 12, r3);
    }
  }
  for (; x < s.width; ++x) {
    for (int64_t c = 0; c < 4; ++c) {
      float a = 0.0f;
      if (c < C) {
        for (int64_t k = 0; k < K; ++k) {
          a = std::fma(wy[k], static_cast<float>(first[k * s.row + x + c * s.channel]), a);
        }
      }
      rows[x * 4 + c] = a;
    }
  }
}

// Horizontal pass for 3 or 4 channels: pixel vectors of 4 floats `stride` floats apart (3 or
// 4); acc gets 4 floats per output pixel at a pitch of C floats, written in increasing order,
// so a pixel's unused 4th float is overwritten by the next one (acc has kPad floats of slack).
// Four output pixels at a time keep four independent accumulators in flight. The sums are
// normalized on the way out (one multiply-add per pixel vector).
COOKBOOK_OPS_FLATTEN void horizontal4(const Params& prm, const Source& s, int64_t stride,
                                      const float* rows, float* acc) {
  const int64_t K = s.x.K, C = prm.C, out_w = prm.out_w;
  const float* wx = s.x.weight.data();
  const int32_t* start = s.x.start.data();
  const int32_t* count = s.x.count.data();
  const __m128 scale = _mm_loadu_ps(prm.scale), shift = _mm_loadu_ps(prm.shift);
  int64_t ox = 0;
  for (; ox + 4 <= out_w; ox += 4) {
    const int64_t taps =
        std::max(std::max(count[ox], count[ox + 1]), std::max(count[ox + 2], count[ox + 3]));
    const float* p0 = rows + static_cast<int64_t>(start[ox]) * stride;
    const float* p1 = rows + static_cast<int64_t>(start[ox + 1]) * stride;
    const float* p2 = rows + static_cast<int64_t>(start[ox + 2]) * stride;
    const float* p3 = rows + static_cast<int64_t>(start[ox + 3]) * stride;
    const float* w0 = wx + ox * K;
    __m128 a0 = _mm_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t k = 0; k < taps; ++k) {
      a0 = _mm_fmadd_ps(_mm_broadcast_ss(w0 + k), _mm_loadu_ps(p0 + k * stride), a0);
      a1 = _mm_fmadd_ps(_mm_broadcast_ss(w0 + K + k), _mm_loadu_ps(p1 + k * stride), a1);
      a2 = _mm_fmadd_ps(_mm_broadcast_ss(w0 + 2 * K + k), _mm_loadu_ps(p2 + k * stride), a2);
      a3 = _mm_fmadd_ps(_mm_broadcast_ss(w0 + 3 * K + k), _mm_loadu_ps(p3 + k * stride), a3);
    }
    a0 = _mm_fmadd_ps(a0, scale, shift);
    a1 = _mm_fmadd_ps(a1, scale, shift);
    a2 = _mm_fmadd_ps(a2, scale, shift);
    a3 = _mm_fmadd_ps(a3, scale, shift);
    if (prm.planar) {
      _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
      _mm_storeu_ps(acc + ox, a0);
      _mm_storeu_ps(acc + prm.pitch + ox, a1);
      _mm_storeu_ps(acc + 2 * prm.pitch + ox, a2);
      if (C == 4) {
        _mm_storeu_ps(acc + 3 * prm.pitch + ox, a3);
      }
    } else {
      _mm_storeu_ps(acc + ox * C, a0);
      _mm_storeu_ps(acc + (ox + 1) * C, a1);
      _mm_storeu_ps(acc + (ox + 2) * C, a2);
      _mm_storeu_ps(acc + (ox + 3) * C, a3);
    }
  }
  for (; ox < out_w; ++ox) {
    const float* p = rows + static_cast<int64_t>(start[ox]) * stride;
    __m128 a = _mm_setzero_ps();
    for (int64_t k = 0; k < count[ox]; ++k) {
      a = _mm_fmadd_ps(_mm_broadcast_ss(wx + ox * K + k), _mm_loadu_ps(p + k * stride), a);
    }
    a = _mm_fmadd_ps(a, scale, shift);
    if (prm.planar) {
      alignas(16) float v[4];
      _mm_store_ps(v, a);
      for (int64_t c = 0; c < C; ++c) {
        acc[c * prm.pitch + ox] = v[c];
      }
    } else {
      _mm_storeu_ps(acc + ox * C, a);
    }
  }
}

// n floats to float16 with the F16C conversion (round to nearest even, as c10::Half), every
// NaN made sign | 0x7E00 as c10::Half makes it (the hardware keeps the payload). c10's
// conversion is a software routine in baseline code, several times slower. Converts the
// first n - n % 8 values and returns that count: the caller converts the rest in baseline
// code (c10's routine compiled here could get its float arithmetic contracted into FMAs).
COOKBOOK_OPS_FLATTEN int64_t half_row(const float* src, at::Half* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(src + i);
    __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    const __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(_mm256_castps_si256(nan)),
                                          _mm256_extracti128_si256(_mm256_castps_si256(nan), 1));
    const __m128i quiet =
        _mm_or_si128(_mm_and_si128(h, _mm_set1_epi16(INT16_MIN)), _mm_set1_epi16(0x7E00));
    h = _mm_blendv_epi8(h, quiet, nan16);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  _mm256_zeroupper();
  return i;
}

// The same for bfloat16: round to nearest even on the bits, every NaN 0x7FC0 (c10's rule).
COOKBOOK_OPS_FLATTEN int64_t half_row(const float* src, at::BFloat16* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(src + i);
    const __m256i bits = _mm256_castps_si256(v);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7FFF)), odd);
    r = _mm256_srli_epi32(r, 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), nan);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
  }
  _mm256_zeroupper();
  return i;
}

}  // namespace avx2
COOKBOOK_OPS_VEC_END
#endif

// The resampled and normalized row oy of source s, pixel-major with C floats per pixel (acc
// holds out_w * C + kPad floats; rows is the scratch row of max_box_width * 4 + kPad floats).
void resample_row(const Params& p, const Source& s, int64_t oy, float* rows, float* acc) {
  const int64_t C = p.C;
#if COOKBOOK_OPS_VEC_AVX2
  if (cpu::vec_kernels_available()) {
    const bool contiguous_rows = p.nhwc || C == 1;
    int64_t stride = C;
    if (contiguous_rows) {
      avx2::vertical_interleaved(s, oy, C, rows);
    } else if (C == 3 || C == 4) {
      avx2::vertical_planar4(s, oy, C, rows);
      stride = 4;
    } else {
      vertical_scalar(s, oy, C, rows);
    }
    if (C == 3 || C == 4) {
      avx2::horizontal4(p, s, stride, rows, acc);
    } else {
      horizontal_scalar(p, s, stride, rows, acc);
    }
    return;
  }
#endif
  vertical_scalar(s, oy, C, rows);
  horizontal_scalar(p, s, C, rows, acc);
}

// Stores one output row: mirror, blend, round. a (and b, the partner's row, when blending)
// are normalized values, pixel-major or (p.planar) one contiguous row per channel.
template <typename out_t, int kC>
void store_row(const Params& p, const float* a, bool flip_a, const float* b, bool flip_b, float wa,
               float wb, out_t* dst, int64_t pixel, int64_t channel, float* tmp) {
  const int64_t C = kC > 0 ? kC : p.C;
  const int64_t W = p.out_w;
#if COOKBOOK_OPS_VEC_AVX2
  // 16-bit rows that are contiguous per channel (planar) or as a whole (channels_last): the
  // float32 row first, then one vector conversion.
  if constexpr (std::is_same_v<out_t, at::Half> || std::is_same_v<out_t, at::BFloat16>) {
    const bool whole = pixel == C && channel == 1;
    if (cpu::vec_kernels_available() && (p.planar || whole)) {
      store_row<float, kC>(p, a, flip_a, b, flip_b, wa, wb, tmp, p.planar ? 1 : C, p.planar ? W : 1,
                           nullptr);
      const int64_t runs = whole ? 1 : C, length = whole ? W * C : W;
      for (int64_t r = 0; r < runs; ++r) {
        const float* src = tmp + r * length;
        out_t* d = dst + r * channel;
        for (int64_t i = avx2::half_row(src, d, length); i < length; ++i) {
          d[i] = static_cast<out_t>(src[i]);
        }
      }
      return;
    }
  }
#endif
  if (p.planar) {  // pixel == 1
    for (int64_t c = 0; c < C; ++c) {
      const float* sa = a + c * p.pitch;
      out_t* d = dst + c * channel;
      if (b == nullptr) {
        if (flip_a) {
          for (int64_t ox = 0; ox < W; ++ox) d[ox] = static_cast<out_t>(sa[W - 1 - ox]);
        } else {
          for (int64_t ox = 0; ox < W; ++ox) d[ox] = static_cast<out_t>(sa[ox]);
        }
        continue;
      }
      const float* sb = b + c * p.pitch;
      for (int64_t ox = 0; ox < W; ++ox) {
        const float va = sa[flip_a ? W - 1 - ox : ox];
        const float vb = sb[flip_b ? W - 1 - ox : ox];
        d[ox] = static_cast<out_t>(wa * va + wb * vb);
      }
    }
    return;
  }
  for (int64_t ox = 0; ox < W; ++ox) {
    const float* pa = a + (flip_a ? W - 1 - ox : ox) * C;
    out_t* d = dst + ox * pixel;
    if (b == nullptr) {
      for (int64_t c = 0; c < C; ++c) {
        d[c * channel] = static_cast<out_t>(pa[c]);
      }
    } else {
      const float* pb = b + (flip_b ? W - 1 - ox : ox) * C;
      for (int64_t c = 0; c < C; ++c) {
        d[c * channel] = static_cast<out_t>(wa * pa[c] + wb * pb[c]);
      }
    }
  }
}

template <typename out_t, int kC>
void run(const Params& p, out_t* out, const int64_t out_strides[4]) {
  const int64_t rows_total = p.N * p.out_h;
  const int64_t acc_size = (p.planar ? p.C * p.pitch : p.out_w * p.C) + kPad;
  const int64_t scratch_size = p.max_box_width * std::max<int64_t>(p.C, 4) + kPad;
  at::parallel_for(0, rows_total, kGrainRows, [&](int64_t r0, int64_t r1) {
    std::vector<float> scratch(scratch_size, 0.0f);
    std::vector<float> acc_a(acc_size, 0.0f), acc_b(acc_size, 0.0f);
    std::vector<float> tmp(p.out_w * p.C);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / p.out_h;
      const int64_t oy = r - n * p.out_h;
      resample_row(p, p.sources[n], oy, scratch.data(), acc_a.data());
      const bool flip_a = p.flip != nullptr && p.flip[n];
      const float* b = nullptr;
      bool flip_b = false;
      float wa = 1.0f, wb = 0.0f;
      if (p.lam != nullptr) {
        const int64_t m = p.index[n];
        resample_row(p, p.sources[m], oy, scratch.data(), acc_b.data());
        b = acc_b.data();
        flip_b = p.flip != nullptr && p.flip[m];
        wa = p.lam[n];
        wb = 1.0f - wa;
      }
      out_t* dst = out + n * out_strides[0] + oy * out_strides[2];
      store_row<out_t, kC>(p, acc_a.data(), flip_a, b, flip_b, wa, wb, dst, out_strides[3],
                           out_strides[1], tmp.data());
    }
  });
}

template <typename out_t>
void dispatch_channels(const Params& p, out_t* out, const int64_t strides[4]) {
  switch (p.C) {
    case 1:
      return run<out_t, 1>(p, out, strides);
    case 3:
      return run<out_t, 3>(p, out, strides);
    case 4:
      return run<out_t, 4>(p, out, strides);
    default:
      return run<out_t, 0>(p, out, strides);
  }
}

// ------------------------------------------------------------------------------------------
// Argument handling: the Python layer validates the public API; these guard direct calls.

void check_per_sample(const at::Tensor& t, const char* name, int64_t N, at::ScalarType dtype) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == N, name, " must be (N,) with N = ", N, ", got ",
              t.sizes());
}

at::Tensor resized_crop_normalize_forward_cpu(
    at::TensorList images_in, const at::Tensor& boxes_in, int64_t out_h, int64_t out_w,
    const at::Tensor& mean_in, const at::Tensor& std_in, const std::optional<at::Tensor>& flip_in,
    const std::optional<at::Tensor>& lam_in, const std::optional<at::Tensor>& index_in, bool nhwc,
    bool antialias, at::ScalarType out_dtype, bool channels_last) {
  const int64_t N = static_cast<int64_t>(images_in.size());
  TORCH_CHECK(out_h > 0 && out_w > 0, "out_h and out_w must be positive, got ", out_h, " and ",
              out_w);
  TORCH_CHECK(out_dtype == at::kFloat || out_dtype == at::kHalf || out_dtype == at::kBFloat16,
              "out_dtype must be float32, float16 or bfloat16, got ", out_dtype);
  TORCH_CHECK(mean_in.device().is_cpu() && std_in.device().is_cpu(),
              "mean and std must be CPU tensors");
  TORCH_CHECK(mean_in.scalar_type() == at::kFloat && std_in.scalar_type() == at::kFloat,
              "mean and std must be float32, got ", mean_in.scalar_type(), " and ",
              std_in.scalar_type());
  TORCH_CHECK(mean_in.dim() == 1 && std_in.sizes() == mean_in.sizes(),
              "mean and std must be (C,) vectors of one length, got ", mean_in.sizes(), " and ",
              std_in.sizes());
  const int64_t C = mean_in.size(0);
  TORCH_CHECK(C > 0, "mean and std must have at least one channel");
  TORCH_CHECK(boxes_in.device().is_cpu(), "boxes must be a CPU tensor, got ", boxes_in.device());
  TORCH_CHECK(boxes_in.scalar_type() == at::kLong, "boxes must be int64, got ",
              boxes_in.scalar_type());
  TORCH_CHECK(boxes_in.dim() == 2 && boxes_in.size(0) == N && boxes_in.size(1) == 4,
              "boxes must be (N, 4) with N = ", N, " (the number of images), got ",
              boxes_in.sizes());

  std::vector<at::Tensor> images;
  images.reserve(N);
  for (int64_t i = 0; i < N; ++i) {
    const at::Tensor& im = images_in[i];
    TORCH_CHECK(im.device().is_cpu(), "images[", i, "] must be a CPU tensor, got ", im.device());
    TORCH_CHECK(im.scalar_type() == at::kByte, "images[", i, "] must be uint8, got ",
                im.scalar_type());
    TORCH_CHECK(im.dim() == 3 && im.size(nhwc ? 2 : 0) == C, "images[", i, "] must be ",
                nhwc ? "(H, W, C)" : "(C, H, W)", " with C = ", C, " (the length of mean), got ",
                im.sizes());
    images.push_back(im.contiguous());
  }
  const at::Tensor boxes = boxes_in.contiguous();
  const int64_t* bp = boxes.const_data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    const int64_t H = images[i].size(nhwc ? 0 : 1), W = images[i].size(nhwc ? 1 : 2);
    const int64_t top = bp[4 * i], left = bp[4 * i + 1], h = bp[4 * i + 2], w = bp[4 * i + 3];
    TORCH_CHECK(h >= 1 && w >= 1 && top >= 0 && left >= 0 && top <= H - h && left <= W - w,
                "boxes[", i, "] = (top ", top, ", left ", left, ", height ", h, ", width ", w,
                ") must be non-empty and inside images[", i, "] of ", H, " x ", W, " pixels");
    TORCH_CHECK(w * std::max<int64_t>(C, 4) < std::numeric_limits<int32_t>::max(), "boxes[", i,
                "] is too wide");
  }

  Params p{};
  p.N = N;
  p.C = C;
  p.out_h = out_h;
  p.out_w = out_w;
  p.nhwc = nhwc;
  at::Tensor flip, lam, index;
  if (flip_in.has_value()) {
    flip = flip_in->contiguous();
    check_per_sample(flip, "flip", N, at::kBool);
    p.flip = flip.const_data_ptr<bool>();
  }
  TORCH_CHECK(lam_in.has_value() == index_in.has_value(),
              "lam and index must be given together (mixup) or both be None");
  if (lam_in.has_value()) {
    lam = lam_in->contiguous();
    index = index_in->contiguous();
    check_per_sample(lam, "lam", N, at::kFloat);
    check_per_sample(index, "index", N, at::kLong);
    const int64_t* ip = index.const_data_ptr<int64_t>();
    for (int64_t i = 0; i < N; ++i) {
      TORCH_CHECK_INDEX(ip[i] >= 0 && ip[i] < N, "index[", i, "] = ", ip[i],
                        " is out of range for a batch of ", N);
    }
    p.lam = lam.const_data_ptr<float>();
    p.index = index.const_data_ptr<int64_t>();
  }

  at::Tensor out =
      at::empty({N, C, out_h, out_w},
                boxes.options().dtype(out_dtype).memory_format(
                    channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  if (N == 0) {
    return out;
  }
  const at::Tensor mean = mean_in.contiguous(), std = std_in.contiguous();
  p.scale_all.resize(C);
  p.shift_all.resize(C);
  for (int64_t c = 0; c < C; ++c) {
    const double m = mean.const_data_ptr<float>()[c], sd = std.const_data_ptr<float>()[c];
    p.scale_all[c] = static_cast<float>(1.0 / (255.0 * sd));
    p.shift_all[c] = static_cast<float>(-m / sd);
  }
  for (int64_t c = 0; c < 4; ++c) {
    p.scale[c] = c < C ? p.scale_all[c] : 0.0f;
    p.shift[c] = c < C ? p.shift_all[c] : 0.0f;
  }
  // Only horizontal4 (the vector pass for 3 or 4 channels) writes channel rows.
  p.planar =
      COOKBOOK_OPS_VEC_AVX2 && cpu::vec_kernels_available() && !channels_last && (C == 3 || C == 4);
  p.pitch = (out_w + kPad + 7) / 8 * 8;

  std::vector<Source> sources(N);
  at::parallel_for(0, N, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const at::Tensor& im = images[i];
      const int64_t W = im.size(nhwc ? 1 : 2), H = im.size(nhwc ? 0 : 1);
      Source& s = sources[i];
      s.row = nhwc ? W * C : W;
      s.pixel = nhwc ? C : 1;
      s.channel = nhwc ? 1 : H * W;
      s.box = im.const_data_ptr<uint8_t>() + bp[4 * i] * s.row + bp[4 * i + 1] * s.pixel;
      s.height = bp[4 * i + 2];
      s.width = bp[4 * i + 3];
      s.y = axis_taps(s.height, out_h, antialias);
      s.x = axis_taps(s.width, out_w, antialias);
    }
  });
  p.sources = sources.data();
  p.max_box_width = 0;
  for (const Source& s : sources) {
    p.max_box_width = std::max(p.max_box_width, s.width);
  }

  const int64_t strides[4] = {out.stride(0), out.stride(1), out.stride(2), out.stride(3)};
  switch (out_dtype) {
    case at::kFloat:
      dispatch_channels<float>(p, out.mutable_data_ptr<float>(), strides);
      break;
    case at::kHalf:
      dispatch_channels<at::Half>(p, out.mutable_data_ptr<at::Half>(), strides);
      break;
    default:
      dispatch_channels<at::BFloat16>(p, out.mutable_data_ptr<at::BFloat16>(), strides);
      break;
  }
  return out;
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CPU, m) {
  m.impl("resized_crop_normalize_forward", &cookbook_ops::resized_crop_normalize_forward_cpu);
}
