// Cross-entropy against probability targets, CUDA kernels. The math is that of
// soft_target_cross_entropy_* in cookbook_ops/reference/label_smoothing_cross_entropy.py:
// row i, target q, a_c = w_c ((on - off) q_c + off), S = sum_c a_c,
//   loss = S lse - sum_c a_c x_c,   grad_c = g (S p_c - a_c),
// in IEEE arithmetic as F.cross_entropy (a -inf logit gives +inf where a_c > 0 and NaN where
// a_c == 0; a +inf logit makes lse, the loss and the gradient row NaN).
//
// A power-of-two group of threads takes a row: a warp for rows up to 4096 elements (several
// rows per block, shuffle-only reductions), a 256-thread block above that. Forward keeps per
// thread an online softmax state (running max and the sum of exp(x - max), rescaled when the
// max grows), sum a (x - ref) with ref = x_0 (0 if not finite) and S, and the first argmaxes of
// x and q (NaN first, as torch.argmax), merged across the group at the end. Backward reads x
// and q once with the saved lse and S and writes the gradient once. Rows are read as 16-byte
// vectors from the first 16-byte boundary when the logits, target (and gradient) rows share
// their offset from it; otherwise the row is read element by element (still coalesced).

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>

#include "cookbook_ops/checks.h"
#include "cookbook_ops/cuda_utils.cuh"

namespace cookbook_ops {
namespace {

using namespace cookbook_ops::cuda;

constexpr int kSoftThreads = 256;
constexpr int64_t kWarpRowLimit = 4096;  // elements; longer rows get a whole block

// 16-byte vectors of logits and of targets each thread loads before using them: two, one for
// double (whose exp needs enough registers that a second pair would spill).
template <typename scalar_t>
constexpr int soft_unroll() {
  return std::is_same_v<scalar_t, double> ? 1 : 2;
}

// Does (vb, ib) come before (va, ia) in torch.argmax order: NaN first, then the larger value,
// ties to the smaller column.
template <typename acc_t>
__device__ __forceinline__ bool soft_argmax_before(acc_t vb, int64_t ib, acc_t va, int64_t ia) {
  if (vb != vb) return va == va || ib < ia;
  if (va != va) return false;
  return vb > va || (vb == va && ib < ia);
}

template <typename acc_t>
struct SoftState {
  acc_t m;    // running max of x (NaN once a NaN was seen)
  acc_t s;    // sum of exp(x - m)
  acc_t adx;  // sum a (x - ref)
  acc_t S;    // sum a
  acc_t qm;   // running max of q
  int64_t idx;
  int64_t qidx;

  __device__ __forceinline__ static SoftState identity() {
    SoftState r;
    r.m = -infinity<acc_t>();
    r.s = acc_t(0);
    r.adx = acc_t(0);
    r.S = acc_t(0);
    r.qm = -infinity<acc_t>();
    r.idx = std::numeric_limits<int64_t>::max();
    r.qidx = std::numeric_limits<int64_t>::max();
    return r;
  }
};

template <typename acc_t>
__device__ __forceinline__ SoftState<acc_t> shfl_xor(const SoftState<acc_t>& v, int lane_mask,
                                                     int width) {
  SoftState<acc_t> r;
  r.m = cuda::shfl_xor(v.m, lane_mask, width);
  r.s = cuda::shfl_xor(v.s, lane_mask, width);
  r.adx = cuda::shfl_xor(v.adx, lane_mask, width);
  r.S = cuda::shfl_xor(v.S, lane_mask, width);
  r.qm = cuda::shfl_xor(v.qm, lane_mask, width);
  r.idx = cuda::shfl_xor(v.idx, lane_mask, width);
  r.qidx = cuda::shfl_xor(v.qidx, lane_mask, width);
  return r;
}

// s relative to max mi, re-expressed relative to m >= mi; an all -inf part (s = 0) stays 0.
template <typename acc_t>
__device__ __forceinline__ acc_t rescale(acc_t s, acc_t mi, acc_t m) {
  return mi == -infinity<acc_t>() ? acc_t(0) : s * opmath_exp(mi - m);
}

struct CombineSoftStates {
  template <typename acc_t>
  __device__ __forceinline__ SoftState<acc_t> operator()(SoftState<acc_t> a,
                                                         SoftState<acc_t> b) const {
    SoftState<acc_t> r;
    const bool b_first = soft_argmax_before(b.m, b.idx, a.m, a.idx);
    r.m = b_first ? b.m : a.m;
    r.idx = b_first ? b.idx : a.idx;
    r.s = rescale(a.s, a.m, r.m) + rescale(b.s, b.m, r.m);
    r.adx = a.adx + b.adx;
    r.S = a.S + b.S;
    const bool bq_first = soft_argmax_before(b.qm, b.qidx, a.qm, a.qidx);
    r.qm = bq_first ? b.qm : a.qm;
    r.qidx = bq_first ? b.qidx : a.qidx;
    return r;
  }
};

template <typename scalar_t>
struct SoftParams {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* logits;
  int64_t logits_stride;
  const scalar_t* target;
  int64_t target_stride;
  const acc_t* weight;  // (C,) or null
  acc_t delta;          // on - off
  acc_t off;
  int64_t n_rows;
  int64_t n_cols;
};

template <typename scalar_t, bool kWeighted>
struct SoftForwardVisitor {
  using acc_t = at::opmath_type<scalar_t>;
  using IO = VecIO<scalar_t>;
  static constexpr int kVec = vec_width<scalar_t>();

  const scalar_t* x;
  const scalar_t* q;
  const acc_t* weight;
  bool weight_aligned;
  acc_t delta, off, ref;
  SoftState<acc_t> st;

  __device__ __forceinline__ void element(acc_t xv, acc_t qv, acc_t wv, int64_t c) {
    acc_t a = fma(delta, qv, off);
    if constexpr (kWeighted) a *= wv;
    st.adx = fma(a, xv - ref, st.adx);
    st.S += a;
    if (soft_argmax_before(xv, c, st.m, st.idx)) {
      st.s = rescale(st.s, st.m, xv);
      st.m = xv;
      st.idx = c;
    }
    st.s += xv == -infinity<acc_t>() ? acc_t(0) : opmath_exp(xv - st.m);
    if (soft_argmax_before(qv, c, st.qm, st.qidx)) {
      st.qm = qv;
      st.qidx = c;
    }
  }

  __device__ __forceinline__ void scalar(int64_t c) {
    element(IO::load(x + c), IO::load(q + c), kWeighted ? __ldg(weight + c) : acc_t(1), c);
  }

  template <int U>
  __device__ __forceinline__ void vectors(int64_t c0, int64_t stride) {
    uint4 rx[U], rq[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      rx[u] = load_vec_raw(x + c0 + u * stride);
      rq[u] = load_vec_raw(q + c0 + u * stride);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      acc_t xv[kVec], qv[kVec], wv[kVec];
      IO::unpack(rx[u], xv);
      IO::unpack(rq[u], qv);
      if constexpr (kWeighted) {
        load_values(weight + c0 + u * stride, weight_aligned, wv);
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        element(xv[j], qv[j], kWeighted ? wv[j] : acc_t(1), c0 + u * stride + j);
      }
    }
  }
};

// The group of threads that takes a row: its row (or n_rows past the end), lane and size.
template <int kGroup>
__device__ __forceinline__ int64_t group_row(int& lane) {
  lane = static_cast<int>(threadIdx.x) & (kGroup - 1);
  return static_cast<int64_t>(blockIdx.x) * (kSoftThreads / kGroup) + threadIdx.x / kGroup;
}

template <typename scalar_t, bool kWeighted, int kGroup>
__global__ void __launch_bounds__(kSoftThreads)
    soft_target_cross_entropy_forward_kernel(SoftParams<scalar_t> p,
                                             at::opmath_type<scalar_t>* loss,
                                             at::opmath_type<scalar_t>* lse,
                                             at::opmath_type<scalar_t>* target_sum, bool* correct) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int kVec = vec_width<scalar_t>();
  int lane;
  const int64_t row = group_row<kGroup>(lane);
  const bool active = row < p.n_rows;
  const int64_t r = active ? row : p.n_rows - 1;  // idle groups still join the block reduction
  SoftForwardVisitor<scalar_t, kWeighted> v;
  v.x = p.logits + r * p.logits_stride;
  v.q = p.target + r * p.target_stride;
  v.weight = p.weight;
  v.delta = p.delta;
  v.off = p.off;
  const acc_t x0 = VecIO<scalar_t>::load(v.x);
  v.ref = x0 - x0 == acc_t(0) ? x0 : acc_t(0);
  v.st = SoftState<acc_t>::identity();
  const int head = elements_to_alignment(v.x);
  const bool co_aligned = head == elements_to_alignment(v.q);
  const int64_t start = co_aligned ? head : p.n_cols;
  v.weight_aligned = kWeighted && is_vec_aligned(p.weight + start);
  if (active) {
    visit_row<kVec, soft_unroll<scalar_t>()>(p.n_cols, start < p.n_cols ? start : p.n_cols, lane,
                                             kGroup, v);
  }
  SoftState<acc_t> st;
  if constexpr (kGroup <= 32) {
    st = warp_allreduce(v.st, CombineSoftStates{}, kGroup);
  } else {
    __shared__ SoftState<acc_t> scratch[32];
    st = block_reduce(v.st, CombineSoftStates{}, SoftState<acc_t>::identity(), scratch);
  }
  if (active && lane == 0) {
    const acc_t l = st.m + opmath_log(st.s);
    loss[row] = st.S * (l - v.ref) - st.adx;
    lse[row] = l;
    target_sum[row] = st.S;
    correct[row] = st.idx == st.qidx;
  }
}

template <typename scalar_t, bool kWeighted>
struct SoftBackwardVisitor {
  using acc_t = at::opmath_type<scalar_t>;
  using IO = VecIO<scalar_t>;
  static constexpr int kVec = vec_width<scalar_t>();

  const scalar_t* x;
  const scalar_t* q;
  scalar_t* out;
  const acc_t* weight;
  bool weight_aligned;
  acc_t delta, off, lse, g, g_sum;

  __device__ __forceinline__ acc_t grad(acc_t xv, acc_t qv, acc_t wv) const {
    acc_t a = fma(delta, qv, off);
    if constexpr (kWeighted) a *= wv;
    return g_sum * opmath_exp(xv - lse) - g * a;
  }

  __device__ __forceinline__ void scalar(int64_t c) {
    IO::store(out + c,
              grad(IO::load(x + c), IO::load(q + c), kWeighted ? __ldg(weight + c) : acc_t(1)));
  }

  template <int U>
  __device__ __forceinline__ void vectors(int64_t c0, int64_t stride) {
    uint4 rx[U], rq[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      rx[u] = load_vec_raw(x + c0 + u * stride);
      rq[u] = load_vec_raw(q + c0 + u * stride);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      acc_t xv[kVec], qv[kVec], wv[kVec], gv[kVec];
      IO::unpack(rx[u], xv);
      IO::unpack(rq[u], qv);
      if constexpr (kWeighted) {
        // double: element by element, a 16-byte weight vector held beside x, q and the libdevice
        // exp would spill
        load_values(weight + c0 + u * stride, weight_aligned && !std::is_same_v<acc_t, double>, wv);
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j) gv[j] = grad(xv[j], qv[j], kWeighted ? wv[j] : acc_t(1));
      store_vec_raw(out + c0 + u * stride, IO::pack(gv));
    }
  }
};

template <typename scalar_t, bool kWeighted, int kGroup>
__global__ void __launch_bounds__(kSoftThreads)
    soft_target_cross_entropy_backward_kernel(SoftParams<scalar_t> p,
                                              const at::opmath_type<scalar_t>* grad_loss,
                                              int64_t grad_loss_stride,
                                              const at::opmath_type<scalar_t>* lse,
                                              const at::opmath_type<scalar_t>* target_sum,
                                              scalar_t* grad) {
  constexpr int kVec = vec_width<scalar_t>();
  int lane;
  const int64_t row = group_row<kGroup>(lane);
  if (row >= p.n_rows) return;
  SoftBackwardVisitor<scalar_t, kWeighted> v;
  v.x = p.logits + row * p.logits_stride;
  v.q = p.target + row * p.target_stride;
  v.out = grad + row * p.n_cols;
  v.weight = p.weight;
  v.delta = p.delta;
  v.off = p.off;
  v.lse = lse[row];
  v.g = grad_loss[row * grad_loss_stride];
  v.g_sum = v.g * target_sum[row];
  const int head = elements_to_alignment(v.out);
  const bool co_aligned = head == elements_to_alignment(v.x) && head == elements_to_alignment(v.q);
  const int64_t start = co_aligned ? (head < p.n_cols ? head : p.n_cols) : p.n_cols;
  v.weight_aligned = kWeighted && is_vec_aligned(p.weight + start);
  visit_row<kVec, soft_unroll<scalar_t>()>(p.n_cols, start, lane, kGroup, v);
}

at::Tensor unit_inner_stride(const at::Tensor& t) {
  return t.size(1) > 1 && t.stride(1) != 1 ? t.contiguous() : t;
}

template <typename scalar_t>
SoftParams<scalar_t> make_params(const at::Tensor& logits, const at::Tensor& target,
                                 const std::optional<at::Tensor>& weight, double on_value,
                                 double off_value) {
  using acc_t = at::opmath_type<scalar_t>;
  SoftParams<scalar_t> p;
  p.logits = logits.const_data_ptr<scalar_t>();
  p.logits_stride = logits.stride(0);
  p.target = target.const_data_ptr<scalar_t>();
  p.target_stride = target.stride(0);
  p.weight = weight.has_value() ? weight->const_data_ptr<acc_t>() : nullptr;
  p.delta = static_cast<acc_t>(on_value - off_value);
  p.off = static_cast<acc_t>(off_value);
  p.n_rows = logits.size(0);
  p.n_cols = logits.size(1);
  return p;
}

// Blocks for n_rows rows at kGroup threads per row.
int64_t soft_blocks(int64_t n_rows, int group) {
  const int64_t blocks = ceil_div<int64_t>(n_rows, kSoftThreads / group);
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(),
              "soft_target_cross_entropy: too many rows for one launch (", n_rows, ")");
  return blocks;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> soft_ce_forward_cuda(
    const at::Tensor& logits_in, const at::Tensor& target_in,
    const std::optional<at::Tensor>& weight_in, double on_value, double off_value) {
  check_soft_target_args(logits_in, target_in, weight_in);
  c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = unit_inner_stride(logits_in);
  const at::Tensor target = unit_inner_stride(target_in);
  const std::optional<at::Tensor> weight =
      weight_in.has_value() ? std::optional<at::Tensor>(weight_in->contiguous()) : std::nullopt;
  const int64_t n_rows = logits.size(0);
  const int64_t n_cols = logits.size(1);
  const auto opts = logits.options().dtype(opmath_scalar_type(logits.scalar_type()));
  auto loss = at::empty({n_rows}, opts);
  auto lse = at::empty({n_rows}, opts);
  auto target_sum = at::empty({n_rows}, opts);
  auto correct = at::empty({n_rows}, logits.options().dtype(at::kBool));
  if (n_rows == 0) return {loss, lse, target_sum, correct};
  if (n_cols == 0) {
    loss.zero_();
    lse.fill_(-std::numeric_limits<double>::infinity());
    target_sum.zero_();
    correct.fill_(false);
    return {loss, lse, target_sum, correct};
  }
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "soft_target_cross_entropy_forward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto p = make_params<scalar_t>(logits, target, weight, on_value, off_value);
        auto* l = loss.mutable_data_ptr<acc_t>();
        auto* s = lse.mutable_data_ptr<acc_t>();
        auto* t = target_sum.mutable_data_ptr<acc_t>();
        auto* c = correct.mutable_data_ptr<bool>();
        const bool weighted = weight.has_value();
        if (n_cols <= kWarpRowLimit) {
          const auto blocks = static_cast<unsigned>(soft_blocks(n_rows, 32));
          if (weighted) {
            soft_target_cross_entropy_forward_kernel<scalar_t, true, 32>
                <<<blocks, kSoftThreads, 0, stream>>>(p, l, s, t, c);
          } else {
            soft_target_cross_entropy_forward_kernel<scalar_t, false, 32>
                <<<blocks, kSoftThreads, 0, stream>>>(p, l, s, t, c);
          }
        } else {
          const auto blocks = static_cast<unsigned>(soft_blocks(n_rows, kSoftThreads));
          if (weighted) {
            soft_target_cross_entropy_forward_kernel<scalar_t, true, kSoftThreads>
                <<<blocks, kSoftThreads, 0, stream>>>(p, l, s, t, c);
          } else {
            soft_target_cross_entropy_forward_kernel<scalar_t, false, kSoftThreads>
                <<<blocks, kSoftThreads, 0, stream>>>(p, l, s, t, c);
          }
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return {loss, lse, target_sum, correct};
}

at::Tensor soft_ce_backward_cuda(const at::Tensor& grad_loss_in, const at::Tensor& logits_in,
                                 const at::Tensor& target_in,
                                 const std::optional<at::Tensor>& weight_in,
                                 const at::Tensor& lse_in, const at::Tensor& target_sum_in,
                                 double on_value, double off_value) {
  check_soft_target_args(logits_in, target_in, weight_in);
  c10::cuda::CUDAGuard guard(logits_in.device());
  const int64_t n_rows = logits_in.size(0);
  for (const at::Tensor* t : {&grad_loss_in, &lse_in, &target_sum_in}) {
    const char* name = t == &grad_loss_in ? "grad_loss" : (t == &lse_in ? "lse" : "target_sum");
    TORCH_CHECK(t->dim() == 1 && t->size(0) == n_rows, name, " must be (N,) with N = ", n_rows,
                ", got ", t->sizes());
    TORCH_CHECK(t->device() == logits_in.device(), name, " is on ", t->device(),
                " but logits is on ", logits_in.device());
  }
  const auto opmath = opmath_scalar_type(logits_in.scalar_type());
  const at::Tensor logits = unit_inner_stride(logits_in);
  const at::Tensor target = unit_inner_stride(target_in);
  const std::optional<at::Tensor> weight =
      weight_in.has_value() ? std::optional<at::Tensor>(weight_in->contiguous()) : std::nullopt;
  const at::Tensor grad_loss = grad_loss_in.to(opmath);
  const at::Tensor lse = lse_in.to(opmath).contiguous();
  const at::Tensor target_sum = target_sum_in.to(opmath).contiguous();
  auto grad = at::empty({logits.size(0), logits.size(1)}, logits.options());
  if (grad.numel() == 0) return grad;
  const int64_t n_cols = logits.size(1);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "soft_target_cross_entropy_backward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto p = make_params<scalar_t>(logits, target, weight, on_value, off_value);
        const auto* g = grad_loss.const_data_ptr<acc_t>();
        const int64_t gs = grad_loss.stride(0);
        const auto* l = lse.const_data_ptr<acc_t>();
        const auto* t = target_sum.const_data_ptr<acc_t>();
        auto* out = grad.mutable_data_ptr<scalar_t>();
        const bool weighted = weight.has_value();
        if (n_cols <= kWarpRowLimit) {
          const auto blocks = static_cast<unsigned>(soft_blocks(n_rows, 32));
          if (weighted) {
            soft_target_cross_entropy_backward_kernel<scalar_t, true, 32>
                <<<blocks, kSoftThreads, 0, stream>>>(p, g, gs, l, t, out);
          } else {
            soft_target_cross_entropy_backward_kernel<scalar_t, false, 32>
                <<<blocks, kSoftThreads, 0, stream>>>(p, g, gs, l, t, out);
          }
        } else {
          const auto blocks = static_cast<unsigned>(soft_blocks(n_rows, kSoftThreads));
          if (weighted) {
            soft_target_cross_entropy_backward_kernel<scalar_t, true, kSoftThreads>
                <<<blocks, kSoftThreads, 0, stream>>>(p, g, gs, l, t, out);
          } else {
            soft_target_cross_entropy_backward_kernel<scalar_t, false, kSoftThreads>
                <<<blocks, kSoftThreads, 0, stream>>>(p, g, gs, l, t, out);
          }
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return grad;
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CUDA, m) {
  m.impl("soft_target_cross_entropy_forward", &cookbook_ops::soft_ce_forward_cuda);
  m.impl("soft_target_cross_entropy_backward", &cookbook_ops::soft_ce_backward_cuda);
}
