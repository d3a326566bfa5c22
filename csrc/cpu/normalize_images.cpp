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
std::vector<float> value_table(const at::Tensor& mean, const at::Tensor& std, int64_t C) {
  const at::Tensor m = mean.contiguous();
  const at::Tensor s = std.contiguous();
  const float* mp = m.const_data_ptr<float>();
  const float* sp = s.const_data_ptr<float>();
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

template <typename out_t, int kC>
void normalize_kernel(const uint8_t* images, out_t* out, const Geometry& g,
                      const std::vector<float>& table, const bool* flip, const float* lam,
                      const int64_t* index) {
  const int64_t rows = g.N * g.H;
  const int64_t grain = std::max<int64_t>(1, kGrainValues / std::max<int64_t>(g.W * g.C, 1));
  if (lam == nullptr) {
    // Rounded once, here, to the output dtype.
    std::vector<out_t> rounded(table.size());
    for (size_t k = 0; k < table.size(); ++k) {
      rounded[k] = static_cast<out_t>(table[k]);
    }
    at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
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
void dispatch_channels(const uint8_t* images, out_t* out, const Geometry& g,
                       const std::vector<float>& table, const bool* flip, const float* lam,
                       const int64_t* index) {
  // Fixed channel counts let the compiler unroll the channel loop of the common images.
  switch (g.C) {
    case 1:
      return normalize_kernel<out_t, 1>(images, out, g, table, flip, lam, index);
    case 3:
      return normalize_kernel<out_t, 3>(images, out, g, table, flip, lam, index);
    case 4:
      return normalize_kernel<out_t, 4>(images, out, g, table, flip, lam, index);
    default:
      return normalize_kernel<out_t, 0>(images, out, g, table, flip, lam, index);
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

  const std::vector<float> table = value_table(mean, std, g.C);
  const uint8_t* src = images.const_data_ptr<uint8_t>();
  const bool* flip_p = flip.defined() ? flip.const_data_ptr<bool>() : nullptr;
  const float* lam_p = lam.defined() ? lam.const_data_ptr<float>() : nullptr;
  const int64_t* index_p = index.defined() ? index.const_data_ptr<int64_t>() : nullptr;
  switch (out_dtype) {
    case at::kFloat:
      dispatch_channels<float>(src, out.mutable_data_ptr<float>(), g, table, flip_p, lam_p,
                               index_p);
      break;
    case at::kHalf:
      dispatch_channels<at::Half>(src, out.mutable_data_ptr<at::Half>(), g, table, flip_p, lam_p,
                                  index_p);
      break;
    default:
      dispatch_channels<at::BFloat16>(src, out.mutable_data_ptr<at::BFloat16>(), g, table, flip_p,
                                      lam_p, index_p);
      break;
  }
  return out;
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CPU, m) {
  m.impl("normalize_images_forward", &cookbook_ops::normalize_images_forward_cpu);
}
