// uint8 images to a normalized float batch: the CPU kernel for
//   cookbook_ops::normalize_images_forward
// (schema in cookbook_ops/_library.py, oracle in cookbook_ops/reference/normalize_images.py).
//
// v = (x / 255 - mean_c) / std_c takes only 256 values per channel, so the kernel computes
// them once per call into a table, with the same float32 operations as ToTensor + Normalize
// (the results match them bit for bit by construction), and the hot loop is one byte load
// and one table load per value: no division per element, whatever the layout. Without mixup
// the table already holds the values rounded to the output dtype; with mixup it holds float32
// values, blended as the eager expression computes them (two rounded products, then a rounded
// sum) and rounded once to the output dtype.
//
// Both input layouts (NHWC, NCHW) and both output layouts (contiguous, channels_last) are one
// loop over pixels with the channels inside, driven by the tensors' own strides; a flipped
// sample is read from its last pixel backwards. Work items are (sample, row) pairs, each
// writing every channel of its row, so even a batch of one spreads over the threads. All
// offsets are int64.
//
// With AVX2 the common layouts go through vector rows instead: 3-channel NHWC or any NCHW
// input to an output whose pixels are contiguous (NCHW, or channels_last with C = 1), and
// 3-channel NHWC to channels_last. Eight pixels at a time, the bytes are de-interleaved (and
// mirrored, for a flip) with byte shuffles, and the value is computed rather than looked up:
// (x / 255 - mean) / std with IEEE divisions is the same float32 arithmetic as the table, and
// two vector divisions per 8 values cost less than 8 scalar loads (or a gather) on current
// x86 cores. Each output row is written with 32- or 16-byte stores. The pixels left over at
// the end of a row go through the scalar loop.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "cookbook_ops/cpu_vec.h"

namespace cookbook_ops {
namespace {

// Values per parallel task below which waking another thread costs more than it saves.
constexpr int64_t kGrainValues = 32768;
constexpr int64_t kLevels = 256;

// Hides a rounded product from the optimizer: a compiler allowed to contract a * b + c into an
// FMA (GCC's default wherever FMA is enabled) would skip the product's rounding and differ
// from the eager blend in the last bit.
C10_ALWAYS_INLINE void keep_rounded(float& v) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(v));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(v));
#endif
}

// Strides in elements of one operand, as (sample, channel, row, pixel).
struct Strides {
  int64_t sample, channel, row, pixel;
};

struct Geometry {
  int64_t N, C, H, W;
  Strides in, out;
};

// table[c * 256 + x] = (x / 255 - mean_c) / std_c, each operation rounded to float32.
std::vector<float> value_table(const float* mp, const float* sp, int64_t C) {
  std::vector<float> table(C * kLevels);
  // volatile keeps the compiler from turning x / 255 into x * (1 / 255), which is not the
  // same float for every x (it may not anyway without -ffast-math; this says it outright).
  volatile float scale = 255.0f;
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t x = 0; x < kLevels; ++x) {
      const float unit = static_cast<float>(x) / scale;
      table[c * kLevels + x] = (unit - mp[c]) / sp[c];
    }
  }
  return table;
}

// One output row of every channel without mixup. src points at the first pixel to read
// (the last one of the row when flipped, with src_pixel negated).
template <typename out_t, int kC>
void row_plain(const uint8_t* src, int64_t src_pixel, int64_t src_channel, out_t* dst,
               int64_t dst_pixel, int64_t dst_channel, int64_t W, int64_t C, const out_t* table) {
  const int64_t channels = kC > 0 ? kC : C;
  for (int64_t w = 0; w < W; ++w) {
    const uint8_t* s = src + w * src_pixel;
    out_t* d = dst + w * dst_pixel;
    for (int64_t c = 0; c < channels; ++c) {
      d[c * dst_channel] = table[c * kLevels + s[c * src_channel]];
    }
  }
}

// One output row of every channel of lam v_a + (1 - lam) v_b (wa = lam, wb = 1 - lam).
template <typename out_t, int kC>
void row_mix(const uint8_t* a, int64_t a_pixel, const uint8_t* b, int64_t b_pixel,
             int64_t src_channel, out_t* dst, int64_t dst_pixel, int64_t dst_channel, int64_t W,
             int64_t C, const float* table, float wa, float wb) {
  const int64_t channels = kC > 0 ? kC : C;
  for (int64_t w = 0; w < W; ++w) {
    const uint8_t* sa = a + w * a_pixel;
    const uint8_t* sb = b + w * b_pixel;
    out_t* d = dst + w * dst_pixel;
    for (int64_t c = 0; c < channels; ++c) {
      float pa = wa * table[c * kLevels + sa[c * src_channel]];
      float pb = wb * table[c * kLevels + sb[c * src_channel]];
      keep_rounded(pa);
      keep_rounded(pb);
      d[c * dst_channel] = static_cast<out_t>(pa + pb);
    }
  }
}

// The first pixel of row h of sample n to read, and the step to the next one.
inline const uint8_t* row_start(const uint8_t* base, const Geometry& g, int64_t n, int64_t h,
                                bool flipped, int64_t* step) {
  const uint8_t* p = base + n * g.in.sample + h * g.in.row;
  *step = flipped ? -g.in.pixel : g.in.pixel;
  return flipped ? p + (g.W - 1) * g.in.pixel : p;
}

// What a vector row pass needs besides the output pointer.
struct RowArgs {
  const Geometry* g;
  const uint8_t* images;
  const float* mean;  // (C,)
  const float* std;   // (C,)
  const bool* flip;
  const float* lam;
  const int64_t* index;
  // For the pixels past the last full group of 8: the scalar loop's table (rounded to the
  // output dtype without mixup, float32 with it).
  const void* table;
};

// The scalar loop for output pixels w..W-1 of a row (row: the first stored pixel). Kept out
// of line and out of the AVX2 region: inlined there, the compiler could contract the float
// arithmetic of c10's half conversion into FMAs.
// Where output row r (sample * H + row) comes from: its own input row and, with mixup, its
// partner's, each with its flip flag; where it goes; and the blend weights.
template <typename out_t>
struct RowSources {
  bool mix;
  const uint8_t* row_a;
  const uint8_t* row_b;
  bool flip_a, flip_b;
  out_t* dst;
  float wa, wb;
};

template <typename out_t>
C10_ALWAYS_INLINE RowSources<out_t> row_sources(const RowArgs& a, out_t* out, int64_t r) {
  const Geometry& g = *a.g;
  const int64_t n = r / g.H;
  const int64_t h = r % g.H;
  RowSources<out_t> s;
  s.mix = a.lam != nullptr;
  const int64_t m = s.mix ? a.index[n] : n;
  s.flip_a = a.flip != nullptr && a.flip[n];
  s.flip_b = a.flip != nullptr && a.flip[m];
  s.row_a = a.images + n * g.in.sample + h * g.in.row;
  s.row_b = a.images + m * g.in.sample + h * g.in.row;
  s.dst = out + n * g.out.sample + h * g.out.row;
  s.wa = s.mix ? a.lam[n] : 1.0f;
  s.wb = 1.0f - s.wa;
  return s;
}

template <typename out_t>
C10_NOINLINE void row_tail(const RowArgs& a, const RowSources<out_t>& s, int64_t w) {
  const Geometry& g = *a.g;
  if (w >= g.W) {
    return;
  }
  const bool flip_a = s.flip_a, flip_b = s.flip_b;
  const float wa = s.wa, wb = s.wb;
  const int64_t pa = flip_a ? -g.in.pixel : g.in.pixel;
  const uint8_t* sa = s.row_a + (flip_a ? (g.W - 1) * g.in.pixel : 0) + w * pa;
  out_t* d = s.dst + w * g.out.pixel;
  if (a.lam == nullptr) {
    row_plain<out_t, 0>(sa, pa, g.in.channel, d, g.out.pixel, g.out.channel, g.W - w, g.C,
                        static_cast<const out_t*>(a.table));
    return;
  }
  const int64_t pb = flip_b ? -g.in.pixel : g.in.pixel;
  const uint8_t* sb = s.row_b + (flip_b ? (g.W - 1) * g.in.pixel : 0) + w * pb;
  row_mix<out_t, 0>(sa, pa, sb, pb, g.in.channel, d, g.out.pixel, g.out.channel, g.W - w, g.C,
                    static_cast<const float*>(a.table), wa, wb);
}

#if COOKBOOK_OPS_VEC_AVX2
COOKBOOK_OPS_VEC_BEGIN
namespace avx2 {

// (x / 255 - mean) / std, each operation rounded to float32 as in value_table.
C10_ALWAYS_INLINE __m256 normalized(__m256i x, __m256 mean, __m256 std) {
  const __m256 unit = _mm256_div_ps(_mm256_cvtepi32_ps(x), _mm256_set1_ps(255.0f));
  return _mm256_div_ps(_mm256_sub_ps(unit, mean), std);
}

// wa va + wb vb with both products rounded (the asm hides them from FMA contraction).
C10_ALWAYS_INLINE __m256 blended(__m256 va, __m256 vb, __m256 wa, __m256 wb) {
  __m256 pa = _mm256_mul_ps(wa, va);
  __m256 pb = _mm256_mul_ps(wb, vb);
  __asm__("" : "+x"(pa), "+x"(pb));
  return _mm256_add_ps(pa, pb);
}

// Eight values rounded as static_cast<out_t> rounds them, NaN included.
C10_ALWAYS_INLINE void store8(float* p, __m256 v) { _mm256_storeu_ps(p, v); }

C10_ALWAYS_INLINE void store8(at::BFloat16* p, __m256 v) {
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7FFF)), odd);
  r = _mm256_srli_epi32(r, 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), nan);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                   _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
}

C10_ALWAYS_INLINE void store8(at::Half* p, __m256 v) {
  __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // The hardware keeps a NaN's payload; c10::Half makes every NaN sign | 0x7E00.
  const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
  const __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(_mm256_castps_si256(nan)),
                                        _mm256_extracti128_si256(_mm256_castps_si256(nan), 1));
  const __m128i quiet =
      _mm_or_si128(_mm_and_si128(h, _mm_set1_epi16(INT16_MIN)), _mm_set1_epi16(0x7E00));
  h = _mm_blendv_epi8(h, quiet, nan16);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
}

// Shuffles that take channel c of 8 NHWC pixels, 24 bytes loaded as two overlapping 16-byte
// halves, to one int32 lane per pixel: mask[c] in reading order, mask[3 + c] mirrored.
struct Nhwc3Masks {
  __m256i mask[6];
  Nhwc3Masks() {
    alignas(32) int8_t m[6][32];
    for (int c = 0; c < 3; ++c) {
      for (int q = 0; q < 4; ++q) {
        for (int b = 0; b < 4; ++b) {
          const bool low = b == 0;
          // In order: the low lane holds bytes 0..15 (pixels 0..3), the high lane bytes
          // 8..23 (pixels 4..7 from its byte 4). Mirrored: output pixel q is input pixel
          // 7 - q; the low lane holds bytes 8..23, the high lane bytes 0..15.
          m[c][4 * q + b] = low ? static_cast<int8_t>(3 * q + c) : -1;
          m[c][16 + 4 * q + b] = low ? static_cast<int8_t>(3 * q + c + 4) : -1;
          m[3 + c][4 * q + b] = low ? static_cast<int8_t>(13 - 3 * q + c) : -1;
          m[3 + c][16 + 4 * q + b] = low ? static_cast<int8_t>(9 - 3 * q + c) : -1;
        }
      }
    }
    for (int k = 0; k < 6; ++k) {
      mask[k] = _mm256_load_si256(reinterpret_cast<const __m256i*>(m[k]));
    }
  }
};

// The 24 bytes of the 8 pixels of a 3-channel NHWC row that output pixels w..w+7 read.
C10_ALWAYS_INLINE __m256i nhwc3_block(const uint8_t* row, int64_t W, int64_t w, bool flipped) {
  const uint8_t* p = row + 3 * (flipped ? W - 8 - w : w);
  const __m128i first = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i last = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8));
  return flipped ? _mm256_set_m128i(first, last) : _mm256_set_m128i(last, first);
}

// Output pixels w..w+7 of one channel's row of a planar (pixel stride 1) input.
C10_ALWAYS_INLINE __m256i planar_block(const uint8_t* row, int64_t W, int64_t w, bool flipped) {
  const uint8_t* p = row + (flipped ? W - 8 - w : w);
  const __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  return flipped ? _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0)) : x;
}

// Rows r0..r1 (sample * H + row) into an output with contiguous pixels (out.pixel == 1), from
// 3-channel NHWC (kNhwc3) or planar input (in.pixel == 1, any C).
template <typename out_t, bool kNhwc3>
COOKBOOK_OPS_FLATTEN void rows_planar_out(const RowArgs& a, out_t* out, int64_t r0, int64_t r1) {
  const Geometry& g = *a.g;
  const Nhwc3Masks shuffles;
  for (int64_t r = r0; r < r1; ++r) {
    const RowSources<out_t> src = row_sources(a, out, r);
    const bool mix = src.mix, fa = src.flip_a, fb = src.flip_b;
    const uint8_t* ra = src.row_a;
    const uint8_t* rb = src.row_b;
    out_t* dst = src.dst;
    const __m256 wa8 = _mm256_set1_ps(src.wa);
    const __m256 wb8 = _mm256_set1_ps(src.wb);
    int64_t w = 0;
    for (; w + 8 <= g.W; w += 8) {
      __m256i block_a, block_b;
      if constexpr (kNhwc3) {
        block_a = nhwc3_block(ra, g.W, w, fa);
        block_b = mix ? nhwc3_block(rb, g.W, w, fb) : block_a;
      }
      for (int64_t c = 0; c < (kNhwc3 ? 3 : g.C); ++c) {
        const __m256 mean = _mm256_set1_ps(a.mean[c]);
        const __m256 std = _mm256_set1_ps(a.std[c]);
        __m256i xa, xb;
        if constexpr (kNhwc3) {
          xa = _mm256_shuffle_epi8(block_a, shuffles.mask[(fa ? 3 : 0) + c]);
        } else {
          xa = planar_block(ra + c * g.in.channel, g.W, w, fa);
        }
        __m256 v = normalized(xa, mean, std);
        if (mix) {
          if constexpr (kNhwc3) {
            xb = _mm256_shuffle_epi8(block_b, shuffles.mask[(fb ? 3 : 0) + c]);
          } else {
            xb = planar_block(rb + c * g.in.channel, g.W, w, fb);
          }
          v = blended(v, normalized(xb, mean, std), wa8, wb8);
        }
        store8(dst + c * g.out.channel + w, v);
      }
    }
    // The scalar tail and the caller are SSE code: with the upper halves of the ymm
    // registers left dirty, every SSE instruction there waits on a merge (several times
    // slower). GCC leaves out this vzeroupper on some paths.
    _mm256_zeroupper();
    row_tail<out_t>(a, src, w);
  }
}

// The three index vectors of output values 24 * (w / 8) .. + 23 of a 3-channel NHWC row
// written in the same interleaved order (channels_last output).
C10_ALWAYS_INLINE void interleaved3_block(const uint8_t* row, int64_t W, int64_t w, bool flipped,
                                          const __m128i* mirror, __m256i x[3]) {
  if (!flipped) {
    const uint8_t* p = row + 3 * w;
    for (int k = 0; k < 3; ++k) {
      x[k] = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * k)));
    }
    return;
  }
  // Pixels in reverse order, channels in order: output values 8k..8k+7 come from a 16-byte
  // window of the 24 input bytes that starts at byte 8 - 4k.
  const uint8_t* p = row + 3 * (W - 8 - w);
  for (int k = 0; k < 3; ++k) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8 - 4 * k));
    x[k] = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(bytes, mirror[k]));
  }
}

// Rows r0..r1 from 3-channel NHWC input into a channels_last output (the same interleaving).
template <typename out_t>
COOKBOOK_OPS_FLATTEN void rows_interleaved3(const RowArgs& a, out_t* out, int64_t r0, int64_t r1) {
  const Geometry& g = *a.g;
  // Value j of a group of 8 pixels is channel j % 3 of pixel j / 3.
  __m256 mean[3], std[3];
  __m128i mirror[3];
  for (int k = 0; k < 3; ++k) {
    alignas(32) float mv[8], sv[8];
    alignas(16) int8_t mm[16];
    for (int i = 0; i < 8; ++i) {
      const int j = 8 * k + i;
      mv[i] = a.mean[j % 3];
      sv[i] = a.std[j % 3];
      mm[i] = static_cast<int8_t>(3 * (7 - j / 3) + j % 3 - (8 - 4 * k));
      mm[8 + i] = -1;
    }
    mean[k] = _mm256_load_ps(mv);
    std[k] = _mm256_load_ps(sv);
    mirror[k] = _mm_load_si128(reinterpret_cast<const __m128i*>(mm));
  }
  for (int64_t r = r0; r < r1; ++r) {
    const RowSources<out_t> src = row_sources(a, out, r);
    const bool mix = src.mix, fa = src.flip_a, fb = src.flip_b;
    const uint8_t* ra = src.row_a;
    const uint8_t* rb = src.row_b;
    out_t* dst = src.dst;
    const __m256 wa8 = _mm256_set1_ps(src.wa);
    const __m256 wb8 = _mm256_set1_ps(src.wb);
    int64_t w = 0;
    for (; w + 8 <= g.W; w += 8) {
      __m256i xa[3], xb[3];
      interleaved3_block(ra, g.W, w, fa, mirror, xa);
      if (mix) {
        interleaved3_block(rb, g.W, w, fb, mirror, xb);
      }
      for (int k = 0; k < 3; ++k) {
        __m256 v = normalized(xa[k], mean[k], std[k]);
        if (mix) {
          v = blended(v, normalized(xb[k], mean[k], std[k]), wa8, wb8);
        }
        store8(dst + 3 * w + 8 * k, v);
      }
    }
    // The scalar tail and the caller are SSE code: with the upper halves of the ymm
    // registers left dirty, every SSE instruction there waits on a merge (several times
    // slower). GCC leaves out this vzeroupper on some paths.
    _mm256_zeroupper();
    row_tail<out_t>(a, src, w);
  }
}

}  // namespace avx2
COOKBOOK_OPS_VEC_END
#endif  // COOKBOOK_OPS_VEC_AVX2

// Runs rows r0..r1 with a vector row loop when the CPU and the layouts allow it.
template <typename out_t>
bool vector_rows(const RowArgs& a, out_t* out, int64_t r0, int64_t r1) {
#if COOKBOOK_OPS_VEC_AVX2
  if (!cpu::vec_kernels_available()) {
    return false;
  }
  const Geometry& g = *a.g;
  const bool nhwc3 = g.C == 3 && g.in.pixel == 3 && g.in.channel == 1;
  if (g.out.pixel == 1 && nhwc3) {
    avx2::rows_planar_out<out_t, true>(a, out, r0, r1);
    return true;
  }
  if (g.out.pixel == 1 && g.in.pixel == 1) {
    avx2::rows_planar_out<out_t, false>(a, out, r0, r1);
    return true;
  }
  if (nhwc3 && g.out.pixel == 3 && g.out.channel == 1) {
    avx2::rows_interleaved3<out_t>(a, out, r0, r1);
    return true;
  }
#endif
  (void)a;
  (void)out;
  (void)r0;
  (void)r1;
  return false;
}

template <typename out_t, int kC>
void normalize_kernel(const uint8_t* images, out_t* out, const Geometry& g, const float* mean,
                      const float* std, const std::vector<float>& table, const bool* flip,
                      const float* lam, const int64_t* index) {
  RowArgs args{&g, images, mean, std, flip, lam, index, table.data()};
  const int64_t rows = g.N * g.H;
  const int64_t grain = std::max<int64_t>(1, kGrainValues / std::max<int64_t>(g.W * g.C, 1));
  if (lam == nullptr) {
    // Rounded once, here, to the output dtype.
    std::vector<out_t> rounded(table.size());
    for (size_t k = 0; k < table.size(); ++k) {
      rounded[k] = static_cast<out_t>(table[k]);
    }
    args.table = rounded.data();
    at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
      if (vector_rows(args, out, r0, r1)) {
        return;
      }
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / g.H;
        const int64_t h = r % g.H;
        int64_t step = 0;
        const uint8_t* src = row_start(images, g, n, h, flip != nullptr && flip[n], &step);
        out_t* dst = out + n * g.out.sample + h * g.out.row;
        row_plain<out_t, kC>(src, step, g.in.channel, dst, g.out.pixel, g.out.channel, g.W, g.C,
                             rounded.data());
      }
    });
    return;
  }
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    if (vector_rows(args, out, r0, r1)) {
      return;
    }
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / g.H;
      const int64_t h = r % g.H;
      const int64_t m = index[n];
      int64_t step_a = 0, step_b = 0;
      const uint8_t* a = row_start(images, g, n, h, flip != nullptr && flip[n], &step_a);
      const uint8_t* b = row_start(images, g, m, h, flip != nullptr && flip[m], &step_b);
      out_t* dst = out + n * g.out.sample + h * g.out.row;
      const float wa = lam[n];
      const float wb = 1.0f - wa;
      row_mix<out_t, kC>(a, step_a, b, step_b, g.in.channel, dst, g.out.pixel, g.out.channel, g.W,
                         g.C, table.data(), wa, wb);
    }
  });
}

template <typename out_t>
void dispatch_channels(const uint8_t* images, out_t* out, const Geometry& g, const float* mean,
                       const float* std, const std::vector<float>& table, const bool* flip,
                       const float* lam, const int64_t* index) {
  // Fixed channel counts let the compiler unroll the channel loop of the common images.
  switch (g.C) {
    case 1:
      return normalize_kernel<out_t, 1>(images, out, g, mean, std, table, flip, lam, index);
    case 3:
      return normalize_kernel<out_t, 3>(images, out, g, mean, std, table, flip, lam, index);
    case 4:
      return normalize_kernel<out_t, 4>(images, out, g, mean, std, table, flip, lam, index);
    default:
      return normalize_kernel<out_t, 0>(images, out, g, mean, std, table, flip, lam, index);
  }
}

// ------------------------------------------------------------------------------------------
// Argument handling: the Python layer validates the public API; these guard direct calls.

void check_channel_vector(const at::Tensor& t, const char* name, int64_t C) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == C, name, " must be (C,) with C = ", C, ", got ",
              t.sizes());
}

at::Tensor normalize_images_forward_cpu(const at::Tensor& images_in, const at::Tensor& mean,
                                        const at::Tensor& std,
                                        const std::optional<at::Tensor>& flip_in,
                                        const std::optional<at::Tensor>& lam_in,
                                        const std::optional<at::Tensor>& index_in, bool nhwc,
                                        at::ScalarType out_dtype, bool channels_last) {
  TORCH_CHECK(images_in.device().is_cpu(), "images must be a CPU tensor, got ", images_in.device());
  TORCH_CHECK(images_in.scalar_type() == at::kByte, "images must be uint8, got ",
              images_in.scalar_type());
  TORCH_CHECK(images_in.dim() == 4, "images must be 4-D (", nhwc ? "N, H, W, C" : "N, C, H, W",
              "), got ", images_in.sizes());
  TORCH_CHECK(out_dtype == at::kFloat || out_dtype == at::kHalf || out_dtype == at::kBFloat16,
              "out_dtype must be float32, float16 or bfloat16, got ", out_dtype);
  const at::Tensor images = images_in.contiguous();
  Geometry g{};
  g.N = images.size(0);
  g.C = images.size(nhwc ? 3 : 1);
  g.H = images.size(nhwc ? 1 : 2);
  g.W = images.size(nhwc ? 2 : 3);
  check_channel_vector(mean, "mean", g.C);
  check_channel_vector(std, "std", g.C);

  at::Tensor flip;
  if (flip_in.has_value()) {
    flip = flip_in->contiguous();
    TORCH_CHECK(flip.device().is_cpu(), "flip must be a CPU tensor, got ", flip.device());
    TORCH_CHECK(flip.scalar_type() == at::kBool, "flip must be bool, got ", flip.scalar_type());
    TORCH_CHECK(flip.dim() == 1 && flip.size(0) == g.N, "flip must be (N,) with N = ", g.N,
                ", got ", flip.sizes());
  }
  TORCH_CHECK(lam_in.has_value() == index_in.has_value(),
              "lam and index must be given together (mixup) or both be None");
  at::Tensor lam, index;
  if (lam_in.has_value()) {
    lam = lam_in->contiguous();
    index = index_in->contiguous();
    TORCH_CHECK(lam.device().is_cpu(), "lam must be a CPU tensor, got ", lam.device());
    TORCH_CHECK(lam.scalar_type() == at::kFloat, "lam must be float32, got ", lam.scalar_type());
    TORCH_CHECK(lam.dim() == 1 && lam.size(0) == g.N, "lam must be (N,) with N = ", g.N, ", got ",
                lam.sizes());
    TORCH_CHECK(index.device().is_cpu(), "index must be a CPU tensor, got ", index.device());
    TORCH_CHECK(index.scalar_type() == at::kLong, "index must be int64, got ", index.scalar_type());
    TORCH_CHECK(index.dim() == 1 && index.size(0) == g.N, "index must be (N,) with N = ", g.N,
                ", got ", index.sizes());
    // Every source sample must exist before a row of it is read.
    const int64_t* ip = index.const_data_ptr<int64_t>();
    for (int64_t i = 0; i < g.N; ++i) {
      TORCH_CHECK_INDEX(ip[i] >= 0 && ip[i] < g.N, "index[", i, "] = ", ip[i],
                        " is out of range for a batch of ", g.N);
    }
  }

  at::Tensor out =
      at::empty({g.N, g.C, g.H, g.W},
                images.options().dtype(out_dtype).memory_format(
                    channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  if (out.numel() == 0) {
    return out;
  }
  const int64_t ci = nhwc ? 3 : 1, hi = nhwc ? 1 : 2, wi = nhwc ? 2 : 3;
  g.in = {images.stride(0), images.stride(ci), images.stride(hi), images.stride(wi)};
  g.out = {out.stride(0), out.stride(1), out.stride(2), out.stride(3)};

  const at::Tensor mean_c = mean.contiguous();
  const at::Tensor std_c = std.contiguous();
  const float* mean_p = mean_c.const_data_ptr<float>();
  const float* std_p = std_c.const_data_ptr<float>();
  const std::vector<float> table = value_table(mean_p, std_p, g.C);
  const uint8_t* src = images.const_data_ptr<uint8_t>();
  const bool* flip_p = flip.defined() ? flip.const_data_ptr<bool>() : nullptr;
  const float* lam_p = lam.defined() ? lam.const_data_ptr<float>() : nullptr;
  const int64_t* index_p = index.defined() ? index.const_data_ptr<int64_t>() : nullptr;
  switch (out_dtype) {
    case at::kFloat:
      dispatch_channels<float>(src, out.mutable_data_ptr<float>(), g, mean_p, std_p, table, flip_p,
                               lam_p, index_p);
      break;
    case at::kHalf:
      dispatch_channels<at::Half>(src, out.mutable_data_ptr<at::Half>(), g, mean_p, std_p, table,
                                  flip_p, lam_p, index_p);
      break;
    default:
      dispatch_channels<at::BFloat16>(src, out.mutable_data_ptr<at::BFloat16>(), g, mean_p, std_p,
                                      table, flip_p, lam_p, index_p);
      break;
  }
  return out;
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CPU, m) {
  m.impl("normalize_images_forward", &cookbook_ops::normalize_images_forward_cpu);
}
