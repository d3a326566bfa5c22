// Resized crop + flip + normalize (+ mixup) of a list of uint8 images, CUDA kernel for
//   cookbook_ops::resized_crop_normalize_forward
// (contract in cookbook_ops/_library.py; the tap formulas are those of
// csrc/cpu/resized_crop_normalize.cpp, i.e. ATen's float32 arithmetic).
//
// One launch for the whole list. The images live in separate allocations of different sizes,
// so the host writes a table of (base address, height, width) per image into pinned memory
// from tensor metadata alone and copies it to the device without blocking, on the current
// stream (the caching host allocator keeps the buffer until that copy has run): no host sync.
// The boxes stay on the device; the kernel clamps each box into its image, so a bad box gives
// a wrong result but never an out-of-bounds read, and a partner index outside [0, N) leaves
// the sample unmixed (the Python layer validates both where that is free).
//
// A block computes a tile of kTileH output rows x kTileW output pixels (all channels) of one
// sample, separably through shared memory: for each group of kTileH source rows under the
// tile, every thread resamples one (source row, output column) pair horizontally (taps
// gathered as bytes; neighbouring columns' taps overlap, so they come from L1), then each
// thread adds the group's rows, weighted for its own output row, into its accumulators.
// Weights are computed from the formulas in registers: plain bilinear positions
// fma(scale, o + 0.5, -0.5); antialiased triangle weights summed unnormalized, the sums
// divided by the weight totals at the end (equal up to float32 rounding).
// Mirroring resamples at column out_w - 1 - ox; with mixup the block computes the partner's
// tile too and blends (rounded products, as normalize_images) before the one rounding.
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
#include <vector>

#include "cookbook_ops/cuda_utils.cuh"

namespace cookbook_ops {
namespace {

using namespace cookbook_ops::cuda;

constexpr int kTileW = 32;  // output pixels per tile: one warp along a row
constexpr int kTileH = 8;   // output rows per tile (and source rows per shared group)
constexpr int kThreads = kTileW * kTileH;
constexpr int kMaxChannels = 4;  // channels per pass; more are done kMaxChannels at a time
constexpr int kTableColumns = 4;

struct Params {
  const int64_t* table;  // (N, 4): base address, height, width, unused
  const int64_t* boxes;  // (N, 4): top, left, height, width
  const float* mean;
  const float* std;
  const bool* flip;  // null: no mirroring
  const float* lam;  // null: no blend
  const int64_t* index;
  void* out;
  int64_t n;
  int C, out_h, out_w;
  bool nhwc, channels_last, antialias;
  int tiles_x;
};

// One axis of one sample: scale = length / n_out, and for output position o the window
// [lo, hi) and the center (antialias) or source position (bilinear), as ATen computes them.
struct Axis {
  float scale;
  int length;
};

struct Window {
  float center;
  int lo, hi;
};

__device__ __forceinline__ Window window_of(const Axis& a, int o, bool antialias) {
  Window w;
  const float half = static_cast<float>(o) + 0.5f;
  if (antialias) {
    const float support = fmaxf(a.scale, 1.0f);
    w.center = __fmul_rn(a.scale, half);
    w.lo = max(static_cast<int>(w.center - support + 0.5f), 0);
    w.hi = min(static_cast<int>(w.center + support + 0.5f), a.length);
  } else {
    w.center = fmaxf(__fmaf_rn(a.scale, half, -0.5f), 0.0f);
    w.lo = min(static_cast<int>(w.center), a.length - 1);
    w.hi = min(w.lo + 2, a.length);
  }
  return w;
}

// Weight of source position j (antialias: unnormalized triangle; bilinear: 1 - frac on lo
// and frac on min(lo + 1, length - 1), so the last pixel takes both at the far edge).
__device__ __forceinline__ float weight_of(const Axis& a, const Window& w, int j, bool antialias) {
  if (antialias) {
    if (j < w.lo || j >= w.hi) return 0.0f;
    const float inv = __fdiv_rn(1.0f, fmaxf(a.scale, 1.0f));
    return fmaxf(1.0f - fabsf(__fmul_rn(static_cast<float>(j) - w.center + 0.5f, inv)), 0.0f);
  }
  const float frac = fminf(fmaxf(w.center - static_cast<float>(w.lo), 0.0f), 1.0f);
  float r = j == w.lo ? 1.0f - frac : 0.0f;
  if (j == min(w.lo + 1, a.length - 1)) r += frac;
  return r;
}

__device__ __forceinline__ int clamp_box(int64_t v, int64_t lo, int64_t hi) {
  return static_cast<int>(v < lo ? lo : (v > hi ? hi : v));
}

// The resampled byte sums of sample s at this thread's output pixel (oy, ox), channels
// c0 .. c0 + kMaxChannels - 1, into acc; divided by the weight totals (antialias).
__device__ void resample_tile(const Params& p, int64_t s, bool mirrored, int oy0, int ox0, int c0,
                              float (*shared)[kTileW][kMaxChannels], float (&acc)[kMaxChannels]) {
  const int tx = threadIdx.x % kTileW;
  const int ty = threadIdx.x / kTileW;
  const int64_t* t = p.table + s * kTableColumns;
  const uint8_t* base = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(t[0]));
  const int H = static_cast<int>(t[1]);
  const int W = static_cast<int>(t[2]);
  const int64_t* b = p.boxes + s * 4;
  const int top = clamp_box(b[0], 0, H - 1);
  const int left = clamp_box(b[1], 0, W - 1);
  const int bh = clamp_box(b[2], 1, H - top);
  const int bw = clamp_box(b[3], 1, W - left);
  const int64_t row_stride = p.nhwc ? static_cast<int64_t>(W) * p.C : W;
  const int64_t pixel_stride = p.nhwc ? p.C : 1;
  const int64_t channel_stride = p.nhwc ? 1 : static_cast<int64_t>(H) * W;
  const int channels = min(kMaxChannels, p.C - c0);

  const Axis ax{__fdiv_rn(static_cast<float>(bw), static_cast<float>(p.out_w)), bw};
  const Axis ay{__fdiv_rn(static_cast<float>(bh), static_cast<float>(p.out_h)), bh};
  // This thread's column (clamped past the edge; its results are not stored).
  const int ox = min(ox0 + tx, p.out_w - 1);
  const Window wx = window_of(ax, mirrored ? p.out_w - 1 - ox : ox, p.antialias);
  const int taps_x = p.antialias ? wx.hi - wx.lo : 2;
  // Bilinear: 1 - frac on the first tap, frac on the second (clamped into the box).
  const float frac_x = fminf(fmaxf(wx.center - static_cast<float>(wx.lo), 0.0f), 1.0f);
  float total_x = 1.0f;
  if (p.antialias) {
    total_x = 0.0f;
    for (int k = 0; k < taps_x; ++k) total_x += weight_of(ax, wx, wx.lo + k, true);
  }
  const int oy = min(oy0 + ty, p.out_h - 1);
  const Window wy = window_of(ay, oy, p.antialias);
  // The tile's source rows: from the first row's window start to the last row's window end.
  const int y_first = window_of(ay, oy0, p.antialias).lo;
  const int y_end = window_of(ay, min(oy0 + kTileH, p.out_h) - 1, p.antialias).hi;

  const uint8_t* box = base + top * row_stride + left * pixel_stride + c0 * channel_stride;
  float total_y = 0.0f;
#pragma unroll
  for (int c = 0; c < kMaxChannels; ++c) acc[c] = 0.0f;
  for (int g = y_first; g < y_end; g += kTileH) {
    // Horizontal: thread (ty, tx) resamples source row g + ty at this thread's column.
    const int y = g + ty;
    if (y < y_end) {
      const uint8_t* row = box + y * row_stride;
      float h[kMaxChannels] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int k = 0; k < taps_x; ++k) {
        const int j = min(wx.lo + k, bw - 1);
        const float w =
            p.antialias ? weight_of(ax, wx, wx.lo + k, true) : (k == 0 ? 1.0f - frac_x : frac_x);
        const uint8_t* px = row + j * pixel_stride;
#pragma unroll
        for (int c = 0; c < kMaxChannels; ++c) {
          if (c < channels) h[c] += w * static_cast<float>(__ldg(px + c * channel_stride));
        }
      }
#pragma unroll
      for (int c = 0; c < kMaxChannels; ++c) shared[ty][tx][c] = h[c];
    }
    __syncthreads();
    // Vertical: this thread's output row takes the group's rows with its own weights.
    const int rows = min(kTileH, y_end - g);
    for (int r = 0; r < rows; ++r) {
      const float w = weight_of(ay, wy, g + r, p.antialias);
      total_y += w;
#pragma unroll
      for (int c = 0; c < kMaxChannels; ++c) acc[c] += w * shared[r][tx][c];
    }
    __syncthreads();
  }
  if (p.antialias) {
    const float total = __fmul_rn(total_x, total_y);
#pragma unroll
    for (int c = 0; c < kMaxChannels; ++c) acc[c] = __fdiv_rn(acc[c], total);
  }
}

template <typename out_t>
__global__ void __launch_bounds__(kThreads) resized_crop_normalize_forward_kernel(Params p) {
  __shared__ float shared[kTileH][kTileW][kMaxChannels];
  const int64_t n = blockIdx.y;
  const int tile_y = static_cast<int>(blockIdx.x) / p.tiles_x;
  const int tile_x = static_cast<int>(blockIdx.x) - tile_y * p.tiles_x;
  const int oy0 = tile_y * kTileH, ox0 = tile_x * kTileW;
  const int oy = oy0 + static_cast<int>(threadIdx.x) / kTileW;
  const int ox = ox0 + static_cast<int>(threadIdx.x) % kTileW;
  const bool store = oy < p.out_h && ox < p.out_w;

  bool mixed = false;
  int64_t partner = n;
  float lam = 1.0f;
  if (p.lam != nullptr) {
    const int64_t k = p.index[n];
    if (k >= 0 && k < p.n) {
      mixed = true;
      partner = k;
      lam = p.lam[n];
    }
  }
  const bool flip_self = p.flip != nullptr && p.flip[n];
  const bool flip_partner = p.flip != nullptr && p.flip[partner];
  out_t* out = static_cast<out_t*>(p.out);
  for (int c0 = 0; c0 < p.C; c0 += kMaxChannels) {
    float a[kMaxChannels], b[kMaxChannels];
    // Every thread takes part in both passes (the barriers), stored or not.
    resample_tile(p, n, flip_self, oy0, ox0, c0, shared, a);
    if (mixed) resample_tile(p, partner, flip_partner, oy0, ox0, c0, shared, b);
    if (!store) continue;
#pragma unroll
    for (int c = 0; c < kMaxChannels; ++c) {
      const int ch = c0 + c;
      if (ch >= p.C) break;
      const float mean = __ldg(p.mean + ch), std = __ldg(p.std + ch);
      float v = __fdiv_rn(__fsub_rn(__fdiv_rn(a[c], 255.0f), mean), std);
      if (mixed) {
        const float u = __fdiv_rn(__fsub_rn(__fdiv_rn(b[c], 255.0f), mean), std);
        v = __fadd_rn(__fmul_rn(lam, v), __fmul_rn(__fsub_rn(1.0f, lam), u));
      }
      const int64_t offset =
          p.channels_last ? ((n * p.out_h + oy) * p.out_w + ox) * p.C + ch
                          : ((n * p.C + ch) * p.out_h + oy) * static_cast<int64_t>(p.out_w) + ox;
      VecIO<out_t>::store(out + offset, v);
    }
  }
}

// --- host side --------------------------------------------------------------------------------

void check_per_sample(const at::Tensor& t, const char* name, int64_t N, at::ScalarType dtype,
                      const c10::Device& device) {
  TORCH_CHECK(t.device() == device, name, " is on ", t.device(), " but the images are on ", device);
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == N, name, " must be (N,) with N = ", N, ", got ",
              t.sizes());
}

at::Tensor resized_crop_normalize_forward_cuda(
    at::TensorList images_in, const at::Tensor& boxes_in, int64_t out_h, int64_t out_w,
    const at::Tensor& mean_in, const at::Tensor& std_in, const std::optional<at::Tensor>& flip_in,
    const std::optional<at::Tensor>& lam_in, const std::optional<at::Tensor>& index_in, bool nhwc,
    bool antialias, at::ScalarType out_dtype, bool channels_last) {
  const int64_t N = static_cast<int64_t>(images_in.size());
  TORCH_CHECK(out_h > 0 && out_w > 0, "out_h and out_w must be positive, got ", out_h, " and ",
              out_w);
  TORCH_CHECK(out_h <= std::numeric_limits<int32_t>::max() / 2 &&
                  out_w <= std::numeric_limits<int32_t>::max() / 2,
              "out_h and out_w are too large");
  TORCH_CHECK(out_dtype == at::kFloat || out_dtype == at::kBFloat16 || out_dtype == at::kHalf,
              "out_dtype must be float32, bfloat16 or float16, got ", out_dtype);
  TORCH_CHECK(mean_in.is_cuda(), "mean must be a CUDA tensor, got ", mean_in.device());
  const c10::Device device = mean_in.device();
  TORCH_CHECK(mean_in.scalar_type() == at::kFloat && std_in.scalar_type() == at::kFloat,
              "mean and std must be float32, got ", mean_in.scalar_type(), " and ",
              std_in.scalar_type());
  TORCH_CHECK(mean_in.dim() == 1 && std_in.sizes() == mean_in.sizes() && mean_in.size(0) > 0,
              "mean and std must be (C,) vectors of one length, got ", mean_in.sizes(), " and ",
              std_in.sizes());
  TORCH_CHECK(std_in.device() == device, "std is on ", std_in.device(), " but mean is on ", device);
  const int64_t C = mean_in.size(0);
  TORCH_CHECK(C <= 1024, "at most 1024 channels, got ", C);
  TORCH_CHECK(boxes_in.device() == device, "boxes is on ", boxes_in.device(),
              " but the images are on ", device);
  TORCH_CHECK(boxes_in.scalar_type() == at::kLong, "boxes must be int64, got ",
              boxes_in.scalar_type());
  TORCH_CHECK(boxes_in.dim() == 2 && boxes_in.size(0) == N && boxes_in.size(1) == 4,
              "boxes must be (N, 4) with N = ", N, " (the number of images), got ",
              boxes_in.sizes());
  TORCH_CHECK(N <= 65535, "at most 65535 images per call, got ", N);
  if (flip_in.has_value()) check_per_sample(*flip_in, "flip", N, at::kBool, device);
  TORCH_CHECK(lam_in.has_value() == index_in.has_value(),
              "lam and index must be given together (mixup) or both be None");
  if (lam_in.has_value()) {
    check_per_sample(*lam_in, "lam", N, at::kFloat, device);
    check_per_sample(*index_in, "index", N, at::kLong, device);
  }

  c10::cuda::CUDAGuard guard(device);
  std::vector<at::Tensor> images;
  images.reserve(N);
  at::Tensor table =
      at::empty({N, kTableColumns}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
  int64_t* tp = table.mutable_data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    const at::Tensor& im = images_in[i];
    TORCH_CHECK(im.device() == device, "images[", i, "] is on ", im.device(), " but mean is on ",
                device);
    TORCH_CHECK(im.scalar_type() == at::kByte, "images[", i, "] must be uint8, got ",
                im.scalar_type());
    TORCH_CHECK(im.dim() == 3 && im.size(nhwc ? 2 : 0) == C, "images[", i, "] must be ",
                nhwc ? "(H, W, C)" : "(C, H, W)", " with C = ", C, " (the length of mean), got ",
                im.sizes());
    const int64_t H = im.size(nhwc ? 0 : 1), W = im.size(nhwc ? 1 : 2);
    TORCH_CHECK(H > 0 && W > 0 && H * W * C <= std::numeric_limits<int32_t>::max(), "images[", i,
                "] must be non-empty with fewer than 2^31 values, got ", im.sizes());
    // A copy made here is freed when this function returns: the caching allocator reuses
    // its memory only for work queued later on this stream, after the kernel.
    images.push_back(im.contiguous());
    tp[i * kTableColumns] =
        static_cast<int64_t>(reinterpret_cast<uintptr_t>(images.back().data_ptr()));
    tp[i * kTableColumns + 1] = H;
    tp[i * kTableColumns + 2] = W;
    tp[i * kTableColumns + 3] = 0;
  }
  at::Tensor out =
      at::empty({N, C, out_h, out_w},
                mean_in.options().dtype(out_dtype).memory_format(
                    channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  if (N == 0) return out;
  const at::Tensor table_device = table.to(device, at::kLong, /*non_blocking=*/true);
  const at::Tensor boxes = boxes_in.contiguous();
  const at::Tensor mean = mean_in.contiguous(), std = std_in.contiguous();
  at::Tensor flip, lam, index;

  Params p{};
  p.table = table_device.const_data_ptr<int64_t>();
  p.boxes = boxes.const_data_ptr<int64_t>();
  p.mean = mean.const_data_ptr<float>();
  p.std = std.const_data_ptr<float>();
  if (flip_in.has_value()) {
    flip = flip_in->contiguous();
    p.flip = flip.const_data_ptr<bool>();
  }
  if (lam_in.has_value()) {
    lam = lam_in->contiguous();
    index = index_in->contiguous();
    p.lam = lam.const_data_ptr<float>();
    p.index = index.const_data_ptr<int64_t>();
  }
  p.out = out.mutable_data_ptr();
  p.n = N;
  p.C = static_cast<int>(C);
  p.out_h = static_cast<int>(out_h);
  p.out_w = static_cast<int>(out_w);
  p.nhwc = nhwc;
  p.channels_last = channels_last;
  p.antialias = antialias;
  p.tiles_x = static_cast<int>(ceil_div<int64_t>(out_w, kTileW));
  const int64_t tiles = ceil_div<int64_t>(out_h, kTileH) * p.tiles_x;
  TORCH_CHECK(tiles <= std::numeric_limits<int32_t>::max(), "output too large (", tiles,
              " tiles per image)");
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(N));
  const auto stream = c10::cuda::getCurrentCUDAStream();
  switch (out_dtype) {
    case at::kFloat:
      resized_crop_normalize_forward_kernel<float><<<grid, kThreads, 0, stream>>>(p);
      break;
    case at::kBFloat16:
      resized_crop_normalize_forward_kernel<c10::BFloat16><<<grid, kThreads, 0, stream>>>(p);
      break;
    default:
      resized_crop_normalize_forward_kernel<c10::Half><<<grid, kThreads, 0, stream>>>(p);
      break;
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CUDA, m) {
  m.impl("resized_crop_normalize_forward", &cookbook_ops::resized_crop_normalize_forward_cuda);
}
