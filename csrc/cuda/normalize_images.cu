// uint8 images to a normalized float batch, CUDA kernels. The math is that of
// cookbook_ops/reference/normalize_images.py: v = (x / 255 - mean_c) / std_c in float32 (each
// operation correctly rounded, as ToTensor + Normalize compute it), an optional per-sample
// mirror along W applied to the source, an optional mixup blend lam v_i + (1 - lam) v_index[i]
// in float32 (separate roundings, no FMA), then one rounding to the output dtype.
//
// Tiled kernel. A block owns a box of the output: one sample, rows [h0, h0 + th), pixels
// [w0, w0 + tw) and channels [c0, c0 + tc) (all channels when the input or output keeps
// channels innermost). It
//   1. fills a table t[c][x] = (x / 255 - mean_c) / std_c for its channels and the 256 byte
//      values: the exact per-element arithmetic, done once per block instead of two divisions
//      per element;
//   2. copies the source box (both sources when blending; a mirrored sample's box is the
//      mirrored pixel range) from global memory into shared memory, one padded shared row per
//      contiguous input run: a row of tw * C bytes for NHWC input, tw bytes per (c, h) for NCHW.
//      Every 16 bytes of a run are one 16-byte load when the run start is 16-byte aligned, or
//      two aligned 16-byte loads and a funnel shift when it is not (bytes either side of the run
//      are inside the tensor, merely unused); byte loads only where such a load would leave the
//      tensor;
//   3. walks the output box in output memory order (a run of tw values per (c, h) for NCHW,
//      of tw * C values per h for channels_last), 16-byte stores from the first aligned element
//      of each run, scalar stores for its head and tail, each value one table lookup (two and a
//      blend when mixing) of the shared byte at the (mirrored, transposed) source position.
// So global loads and stores are coalesced and 16 bytes wide whatever the two layouts, and a
// transpose (NHWC -> NCHW, NCHW -> channels_last) costs only shared-memory reads. Traffic per
// value: 1 byte read (2 when blending), 4 or 2 bytes written.
//
// Generic kernel: one thread per output element with direct arithmetic; only for more than
// kMaxTableChannels channels in a channel-innermost layout (no image format has that many).
//
// No host syncs, so index values are never validated here: a partner index outside [0, N)
// leaves the sample unmixed (out_i = v_i), like the mixup kernels. Offsets are int64; in-box
// coordinates are int32.

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>

#include "cookbook_ops/cuda_utils.cuh"

namespace cookbook_ops {
namespace {

using namespace cookbook_ops::cuda;

constexpr int kThreads = 256;
constexpr int kMaxGridY = 65535;
// Source bytes per box: 8 KB keeps 4-16 KB of shared memory per block with the table, so
// eight blocks of 256 threads fit on an SM with several KB of loads in flight each.
constexpr int kBoxBudget = 8192;
constexpr int kMaxTileWidth = 256;
// The table holds 256 floats per channel of the box: 16 KB at most.
constexpr int kMaxTableChannels = 16;

struct NormalizeParams {
  const uint8_t* images;
  const uint8_t* images_end;  // one past the last byte: wide loads never cross it
  const float* mean;
  const float* std;
  const bool* flip;  // null: no mirroring
  int64_t flip_stride;
  const float* lam;  // null: no blend
  int64_t lam_stride;
  const int64_t* index;
  int64_t index_stride;
  void* out;
  int64_t n, C, H, W;
  // Box shape (the last box along each dimension may be smaller) and box counts.
  int tc, th, tw;
  int c_boxes, h_boxes, w_boxes;
  int in_row_pitch;  // bytes between shared rows: a multiple of 16
  int box_bytes;     // shared bytes per source box: a multiple of 16
};

__device__ __forceinline__ uint4 load_aligned16(const uint8_t* p) {
  return __ldg(reinterpret_cast<const uint4*>(p));
}

// 16 bytes starting at g, of which the first `count` (1..16) are wanted; the rest may be
// anything. One 16-byte load when g is aligned, two aligned loads shifted into place when not,
// byte loads where an aligned load would reach outside [begin, end).
__device__ __forceinline__ uint4 load16(const uint8_t* g, int count, const uint8_t* begin,
                                        const uint8_t* end) {
  const uint8_t* a =
      reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(g) & ~uintptr_t{15});
  const int phase = static_cast<int>(g - a);
  if (phase == 0 && a + 16 <= end) return load_aligned16(a);
  if (phase != 0 && a >= begin && a + 32 <= end) {
    const uint4 lo = load_aligned16(a);
    const uint4 hi = load_aligned16(a + 16);
    const unsigned w[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
    // Whole words first (selects on constant indices keep w in registers), then the bytes.
    const int words = phase >> 2;
    unsigned s[5];
#pragma unroll
    for (int i = 0; i < 5; ++i) {
      s[i] = words == 0 ? w[i] : words == 1 ? w[i + 1] : words == 2 ? w[i + 2] : w[i + 3];
    }
    const unsigned shift = 8u * static_cast<unsigned>(phase & 3);
    return make_uint4(__funnelshift_r(s[0], s[1], shift), __funnelshift_r(s[1], s[2], shift),
                      __funnelshift_r(s[2], s[3], shift), __funnelshift_r(s[3], s[4], shift));
  }
  unsigned w[4] = {0u, 0u, 0u, 0u};
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    if (j < count) w[j >> 2] |= static_cast<unsigned>(__ldg(g + j)) << (8 * (j & 3));
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// (x / 255 - mean) / std with every step correctly rounded and nothing contracted.
__device__ __forceinline__ float normalize_value(float x, float mean, float std) {
  return __fdiv_rn(__fsub_rn(__fdiv_rn(x, 255.0f), mean), std);
}

__device__ __forceinline__ float blend(float lam, float a, float b) {
  return __fadd_rn(__fmul_rn(lam, a), __fmul_rn(__fsub_rn(1.0f, lam), b));
}

// The sample blended with sample n (n itself when not blending or the index is out of range),
// whether it is blended, and both mirror flags. Uniform over the block.
struct Sources {
  int64_t partner;
  bool mixed;
  bool flip_self, flip_partner;
  float lam;
};

__device__ __forceinline__ Sources sources_of(const NormalizeParams& p, int64_t n) {
  Sources s;
  s.partner = n;
  s.mixed = false;
  s.lam = 1.0f;
  if (p.lam != nullptr) {
    const int64_t k = p.index[n * p.index_stride];
    if (k >= 0 && k < p.n) {
      s.partner = k;
      s.mixed = true;
      s.lam = p.lam[n * p.lam_stride];
    }
  }
  s.flip_self = p.flip != nullptr && p.flip[n * p.flip_stride];
  s.flip_partner = p.flip != nullptr && p.flip[s.partner * p.flip_stride];
  return s;
}

struct Box {
  int c0, tc, h0, th, w0, tw;
};

// Copies sample s's source box into shared rows. A mirrored sample's output pixels
// [w0, w0 + tw) come from input pixels [W - w0 - tw, W - w0), stored in input order.
template <bool kInNHWC>
__device__ __forceinline__ void load_box(const NormalizeParams& p, const Box& b, int64_t s,
                                         bool mirrored, uint8_t* dst) {
  const int64_t w_in0 = mirrored ? p.W - b.w0 - b.tw : b.w0;
  const uint8_t* sample = p.images + s * p.C * p.H * p.W;
  const int rows = kInNHWC ? b.th : b.tc * b.th;
  const int length = kInNHWC ? b.tw * static_cast<int>(p.C) : b.tw;
  const int chunks = (length + 15) >> 4;
  const int items = rows * chunks;
  for (int item = threadIdx.x; item < items; item += blockDim.x) {
    const int r = item / chunks;
    const int k = item - r * chunks;
    const uint8_t* g;
    uint8_t* row;
    if constexpr (kInNHWC) {
      g = sample + ((b.h0 + r) * p.W + w_in0) * p.C;
      row = dst + r * p.in_row_pitch;
    } else {
      const int cl = r / b.th;
      const int hl = r - cl * b.th;
      g = sample + ((b.c0 + cl) * p.H + b.h0 + hl) * p.W + w_in0;
      row = dst + (cl * p.th + hl) * p.in_row_pitch;
    }
    const uint4 v = load16(g + 16 * k, min(16, length - 16 * k), p.images, p.images_end);
    *reinterpret_cast<uint4*>(row + 16 * k) = v;
  }
}

// Shared byte offset of the source of output pixel wl (box-local), channel cl, row hl.
template <bool kInNHWC>
__device__ __forceinline__ int source_offset(const NormalizeParams& p, const Box& b, int cl, int hl,
                                             int wl, bool mirrored) {
  const int wi = mirrored ? b.tw - 1 - wl : wl;
  if constexpr (kInNHWC) {
    return hl * p.in_row_pitch + wi * static_cast<int>(p.C) + cl;
  } else {
    return (cl * p.th + hl) * p.in_row_pitch + wi;
  }
}

// The first `count` values of a run from box position (cl, hl, wl) on, in output order.
template <bool kInNHWC, bool kOutCL, bool kMixed, int kVec>
__device__ __forceinline__ void fill_values(const NormalizeParams& p, const Box& b,
                                            const Sources& src, const uint8_t* box_self,
                                            const uint8_t* box_partner, const float* table, int cl,
                                            int hl, int wl, int count, float (&v)[kVec]) {
  const int C = static_cast<int>(p.C);
#pragma unroll
  for (int q = 0; q < kVec; ++q) {
    v[q] = 0.0f;
    if (q < count) {
      v[q] = table[cl * 256 + box_self[source_offset<kInNHWC>(p, b, cl, hl, wl, src.flip_self)]];
      if constexpr (kMixed) {
        const float other =
            table[cl * 256 +
                  box_partner[source_offset<kInNHWC>(p, b, cl, hl, wl, src.flip_partner)]];
        v[q] = blend(src.lam, v[q], other);
      }
      if constexpr (kOutCL) {
        // Branch-free wrap to the next pixel.
        const bool wrap = ++cl == C;
        cl = wrap ? 0 : cl;
        wl += wrap ? 1 : 0;
      } else {
        ++wl;
      }
    }
  }
}

template <typename out_t, bool kInNHWC, bool kOutCL>
__device__ __forceinline__ void store_box(const NormalizeParams& p, const Box& b, int64_t n,
                                          const Sources& src, const uint8_t* box_self,
                                          const uint8_t* box_partner, const float* table) {
  using IO = VecIO<out_t>;
  constexpr int kVec = vec_width<out_t>();
  out_t* out = static_cast<out_t*>(p.out);
  const int C = static_cast<int>(p.C);
  const int rows = kOutCL ? b.th : b.tc * b.th;
  const int length = kOutCL ? b.tw * C : b.tw;
  // Slot 0 is the head before the first 16-byte boundary, then whole vectors, then the tail.
  const int slots = length / kVec + 2;
  const int items = rows * slots;
  for (int item = threadIdx.x; item < items; item += blockDim.x) {
    const int r = item / slots;
    const int j = item - r * slots;
    int cl, hl;
    out_t* row;
    if constexpr (kOutCL) {
      cl = 0;
      hl = r;
      row = out + ((n * p.H + b.h0 + hl) * p.W + b.w0) * p.C;
    } else {
      cl = r / b.th;
      hl = r - cl * b.th;
      row = out + ((n * p.C + b.c0 + cl) * p.H + b.h0 + hl) * p.W + b.w0;
    }
    const int head = min(length, elements_to_alignment(row));
    const int e0 = j == 0 ? 0 : head + (j - 1) * kVec;
    const int count = j == 0 ? head : min(kVec, length - e0);
    if (count <= 0) continue;
    // Box coordinates of element e0; channels_last walks channels fastest.
    int wl = e0;
    if constexpr (kOutCL) {
      wl = e0 / C;
      cl = e0 - wl * C;
    }
    float v[kVec];
    if (src.mixed) {
      fill_values<kInNHWC, kOutCL, true>(p, b, src, box_self, box_partner, table, cl, hl, wl, count,
                                         v);
    } else {
      fill_values<kInNHWC, kOutCL, false>(p, b, src, box_self, box_partner, table, cl, hl, wl,
                                          count, v);
    }
    if (count == kVec && j > 0) {
      store_vec_raw(row + e0, IO::pack(v));
    } else {
#pragma unroll
      for (int q = 0; q < kVec; ++q) {
        if (q < count) IO::store(row + e0 + q, v[q]);
      }
    }
  }
}

template <typename out_t, bool kInNHWC, bool kOutCL>
__global__ void __launch_bounds__(kThreads) normalize_images_forward_kernel(NormalizeParams p) {
  extern __shared__ uint4 shared_vec[];
  float* table = reinterpret_cast<float*>(shared_vec);
  uint8_t* box_self = reinterpret_cast<uint8_t*>(table + p.tc * 256);
  uint8_t* box_partner = box_self + p.box_bytes;

  int tile = static_cast<int>(blockIdx.x);
  const int wb = tile % p.w_boxes;
  tile /= p.w_boxes;
  const int hb = tile % p.h_boxes;
  const int cb = tile / p.h_boxes;
  Box b;
  b.c0 = cb * p.tc;
  b.tc = min(p.tc, static_cast<int>(p.C) - b.c0);
  b.h0 = hb * p.th;
  b.th = min(p.th, static_cast<int>(p.H) - b.h0);
  b.w0 = wb * p.tw;
  b.tw = min(p.tw, static_cast<int>(p.W) - b.w0);

  for (int e = threadIdx.x; e < b.tc * 256; e += blockDim.x) {
    const int c = b.c0 + (e >> 8);
    table[e] = normalize_value(static_cast<float>(e & 255), __ldg(p.mean + c), __ldg(p.std + c));
  }
  for (int64_t n = blockIdx.y; n < p.n; n += gridDim.y) {
    const Sources src = sources_of(p, n);
    // The previous sample's stores are done reading the boxes (and the table is written).
    __syncthreads();
    load_box<kInNHWC>(p, b, n, src.flip_self, box_self);
    if (src.mixed) load_box<kInNHWC>(p, b, src.partner, src.flip_partner, box_partner);
    __syncthreads();
    store_box<out_t, kInNHWC, kOutCL>(p, b, n, src, box_self, box_partner, table);
  }
}

// One output element per thread, any channel count.
template <typename out_t>
__global__ void __launch_bounds__(kThreads)
    normalize_images_forward_generic_kernel(NormalizeParams p, bool in_nhwc, bool out_cl) {
  const int64_t C = p.C, H = p.H, W = p.W;
  const int64_t total = p.n * C * H * W;
  out_t* out = static_cast<out_t*>(p.out);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += step) {
    int64_t n, c, h, w;
    if (out_cl) {
      c = e % C;
      const int64_t pixel = e / C;
      w = pixel % W;
      h = (pixel / W) % H;
      n = pixel / (W * H);
    } else {
      w = e % W;
      h = (e / W) % H;
      c = (e / (W * H)) % C;
      n = e / (W * H * C);
    }
    const Sources src = sources_of(p, n);
    const float mean = __ldg(p.mean + c), std = __ldg(p.std + c);
    auto value = [&](int64_t s, bool mirrored) {
      const int64_t wi = mirrored ? W - 1 - w : w;
      const int64_t off = in_nhwc ? ((s * H + h) * W + wi) * C + c : ((s * C + c) * H + h) * W + wi;
      return normalize_value(static_cast<float>(__ldg(p.images + off)), mean, std);
    };
    float v = value(n, src.flip_self);
    if (src.mixed) v = blend(src.lam, v, value(src.partner, src.flip_partner));
    VecIO<out_t>::store(out + e, v);
  }
}

// --- host side --------------------------------------------------------------------------------

void check_per_sample(const at::Tensor& images, const at::Tensor& t, const char* name,
                      at::ScalarType dtype) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == images.size(0), name,
              " must be (N,) with N = ", images.size(0), ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.device() == images.device(), name, " is on ", t.device(), " but images is on ",
              images.device());
}

void check_channel_vector(const at::Tensor& t, const char* name, int64_t C,
                          const at::Tensor& images) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == C, name, " must be (C,) with C = ", C, ", got ",
              t.sizes());
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.device() == images.device(), name, " is on ", t.device(), " but images is on ",
              images.device());
}

int multiprocessors(c10::DeviceIndex device) {
  int count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return std::max(count, 1);
}

template <typename out_t, bool kInNHWC, bool kOutCL>
void launch_tiled(NormalizeParams p, int64_t n, int sms, cudaStream_t stream) {
  // Box shape: rows of up to kMaxTileWidth pixels (long coalesced runs on both sides), as many
  // image rows as the budget allows, and for NCHW -> NCHW as many channels as still fit.
  const bool channel_inner = kInNHWC || kOutCL;
  p.tw = static_cast<int>(std::min<int64_t>(p.W, kMaxTileWidth));
  const int pitch = kInNHWC ? static_cast<int>(ceil_div<int64_t>(p.tw * p.C, 16) * 16)
                            : static_cast<int>(ceil_div<int64_t>(p.tw, 16) * 16);
  p.in_row_pitch = pitch;
  const int channels_per_row = kInNHWC ? 1 : static_cast<int>(p.C);
  if (channel_inner) {
    p.tc = static_cast<int>(p.C);
    p.th = static_cast<int>(
        std::clamp<int64_t>(kBoxBudget / (static_cast<int64_t>(pitch) * channels_per_row), 1, p.H));
  } else {
    p.th = static_cast<int>(std::clamp<int64_t>(kBoxBudget / pitch, 1, p.H));
    const int64_t planes = p.th == p.H ? kBoxBudget / (static_cast<int64_t>(p.th) * pitch) : 1;
    p.tc =
        static_cast<int>(std::clamp<int64_t>(planes, 1, std::min<int64_t>(p.C, kMaxTableChannels)));
  }
  p.box_bytes = (kInNHWC ? 1 : p.tc) * p.th * pitch;
  p.c_boxes = static_cast<int>(ceil_div<int64_t>(p.C, p.tc));
  p.h_boxes = static_cast<int>(ceil_div<int64_t>(p.H, p.th));
  p.w_boxes = static_cast<int>(ceil_div<int64_t>(p.W, p.tw));
  const int64_t boxes = static_cast<int64_t>(p.c_boxes) * p.h_boxes * p.w_boxes;
  TORCH_CHECK(boxes <= std::numeric_limits<int32_t>::max(), "normalize_images: images too large (",
              boxes, " tiles per sample)");
  // Enough blocks for a few waves; beyond that a block takes several samples, which reuses its
  // table.
  const int64_t want = ceil_div<int64_t>(static_cast<int64_t>(sms) * 32, boxes);
  const dim3 grid(static_cast<unsigned>(boxes), static_cast<unsigned>(std::clamp<int64_t>(
                                                    want, 1, std::min<int64_t>(n, kMaxGridY))));
  const size_t shared = static_cast<size_t>(p.tc) * 256 * sizeof(float) +
                        static_cast<size_t>(p.box_bytes) * (p.lam != nullptr ? 2 : 1);
  normalize_images_forward_kernel<out_t, kInNHWC, kOutCL><<<grid, kThreads, shared, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename out_t>
void launch(const NormalizeParams& p, bool nhwc, bool channels_last, int sms, cudaStream_t stream) {
  const bool channel_inner = nhwc || channels_last;
  if (channel_inner && p.C > kMaxTableChannels) {
    const int64_t total = p.n * p.C * p.H * p.W;
    const int64_t blocks =
        std::min<int64_t>(ceil_div<int64_t>(total, kThreads), static_cast<int64_t>(sms) * 32);
    normalize_images_forward_generic_kernel<out_t>
        <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, nhwc, channels_last);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
  if (nhwc) {
    if (channels_last) {
      launch_tiled<out_t, true, true>(p, p.n, sms, stream);
    } else {
      launch_tiled<out_t, true, false>(p, p.n, sms, stream);
    }
  } else if (channels_last) {
    launch_tiled<out_t, false, true>(p, p.n, sms, stream);
  } else {
    launch_tiled<out_t, false, false>(p, p.n, sms, stream);
  }
}

at::Tensor normalize_images_forward_cuda(const at::Tensor& images_in, const at::Tensor& mean_in,
                                         const at::Tensor& std_in,
                                         const std::optional<at::Tensor>& flip,
                                         const std::optional<at::Tensor>& lam,
                                         const std::optional<at::Tensor>& index, bool nhwc,
                                         at::ScalarType out_dtype, bool channels_last) {
  TORCH_CHECK(images_in.is_cuda(), "images must be a CUDA tensor");
  TORCH_CHECK(images_in.dim() == 4, "images must be ", nhwc ? "(N, H, W, C)" : "(N, C, H, W)",
              ", got ", images_in.sizes());
  TORCH_CHECK(images_in.scalar_type() == at::kByte, "images must be uint8, got ",
              images_in.scalar_type());
  TORCH_CHECK(out_dtype == at::kFloat || out_dtype == at::kBFloat16 || out_dtype == at::kHalf,
              "out_dtype must be float32, bfloat16 or float16, got ", out_dtype);
  TORCH_CHECK(lam.has_value() == index.has_value(),
              "lam and index must be given together (both or neither)");
  const int64_t N = images_in.size(0);
  const int64_t C = images_in.size(nhwc ? 3 : 1);
  const int64_t H = images_in.size(nhwc ? 1 : 2);
  const int64_t W = images_in.size(nhwc ? 2 : 3);
  check_channel_vector(mean_in, "mean", C, images_in);
  check_channel_vector(std_in, "std", C, images_in);
  if (flip.has_value()) check_per_sample(images_in, *flip, "flip", at::kBool);
  if (lam.has_value()) {
    check_per_sample(images_in, *lam, "lam", at::kFloat);
    check_per_sample(images_in, *index, "index", at::kLong);
  }
  // Box-local coordinates are int32; offsets into the batch are int64.
  TORCH_CHECK(C * H * W <= std::numeric_limits<int32_t>::max(),
              "normalize_images: samples of more than 2^31 - 1 values are not supported, got ",
              C * H * W);

  c10::cuda::CUDAGuard guard(images_in.device());
  const at::Tensor images = images_in.contiguous();
  const at::Tensor mean = mean_in.contiguous();
  const at::Tensor std = std_in.contiguous();
  at::Tensor out = at::empty({N, C, H, W}, images.options().dtype(out_dtype).memory_format(
                                               channels_last ? at::MemoryFormat::ChannelsLast
                                                             : at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;

  NormalizeParams p{};
  p.images = images.const_data_ptr<uint8_t>();
  p.images_end = p.images + images.numel();
  p.mean = mean.const_data_ptr<float>();
  p.std = std.const_data_ptr<float>();
  if (flip.has_value()) {
    p.flip = flip->const_data_ptr<bool>();
    p.flip_stride = flip->stride(0);
  }
  if (lam.has_value()) {
    p.lam = lam->const_data_ptr<float>();
    p.lam_stride = lam->stride(0);
    p.index = index->const_data_ptr<int64_t>();
    p.index_stride = index->stride(0);
  }
  p.out = out.mutable_data_ptr();
  p.n = N;
  p.C = C;
  p.H = H;
  p.W = W;
  const int sms = multiprocessors(images.device().index());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  switch (out_dtype) {
    case at::kFloat:
      launch<float>(p, nhwc, channels_last, sms, stream);
      break;
    case at::kBFloat16:
      launch<c10::BFloat16>(p, nhwc, channels_last, sms, stream);
      break;
    default:
      launch<c10::Half>(p, nhwc, channels_last, sms, stream);
      break;
  }
  return out;
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CUDA, m) {
  m.impl("normalize_images_forward", &cookbook_ops::normalize_images_forward_cuda);
}
