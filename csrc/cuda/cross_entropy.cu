// Label-smoothed cross-entropy and its two-target (mixup) form, CUDA kernels. The math is that
// of cookbook_ops/reference/label_smoothing_cross_entropy.py and mixup_cross_entropy.py.
//
// Forward makes one pass over each row of logits and keeps, per thread, an online softmax
// state (running max m, sum of exp(x - m) rescaled whenever m grows), the sums of x - m and
// w (x - m) that the smoothing term needs, and the argmax; the states of a row are then merged
// (warp shuffles, plus shared memory when a row spans several warps) and one thread writes
// loss, lse and the correct flag.
// Backward needs no reduction: with lse saved by forward it reads every logit once and writes
// every gradient once.
//
// Both kernels map a group of 2^k threads to a row: a (sub-)warp per row when a row is at most
// 4 KiB (many rows per block, shuffle-only reductions), a whole block per row above that.
// Rows are read and written as 16-byte vectors from the first 16-byte boundary of each row,
// so any row stride and any misalignment keep the vector path; the few elements before the
// boundary and after the last whole vector go through scalar accesses.
//
// Targets: y == ignore_index gives loss 0 and a zero gradient row. Any other y outside
// [0, C) gives a NaN loss and a NaN gradient row: no out-of-bounds read, no device assert and
// no host sync (the Python layer raises a clear error for CPU tensors, where that is free).
//
// The per-row targets come from a `Targets` source that yields kSlots class indices: one for
// the plain loss, two (target_a, target_b) for mixup. Every slot is a loss of its own: forward
// writes loss[row, k] for each slot from the one pass (max, sum-exp, sums and argmax do not
// depend on the target), and backward sums the slots' gradients, each scaled by its own
// grad_loss[row, k]. The rules above hold slot by slot: an ignored slot contributes nothing,
// an out-of-range slot makes its loss NaN and the whole gradient row NaN. lam never reaches the
// kernels (the Python layer mixes the two losses).

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
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

// Largest block: 1024 threads caps registers at 64, which the 16-bit and float kernels fit
// without spills. The double kernels (libdevice exp/log) need more registers, and their speed
// matters less, so their blocks stop at 512.
template <typename scalar_t>
constexpr int max_threads() {
  return std::is_same_v<scalar_t, double> ? 512 : 1024;
}

// 16-byte loads each thread issues before using any: enough in flight to cover DRAM latency at
// 50% occupancy. Fewer when each vector also pulls 32 bytes of weights, to stay in registers.
template <typename scalar_t, bool kWeighted>
constexpr int vectors_in_flight() {
  if (std::is_same_v<scalar_t, double>) return kWeighted ? 1 : 2;
  return kWeighted ? 2 : 4;
}

// --- row targets ----------------------------------------------------------------------------

template <int kSlots>
struct RowTargets {
  int64_t y[kSlots];
};

// One class index per row.
struct SingleTarget {
  static constexpr int kSlots = 1;
  const int64_t* target;
  int64_t stride;

  __device__ __forceinline__ RowTargets<1> load(int64_t row) const {
    RowTargets<1> t;
    t.y[0] = target[row * stride];
    return t;
  }
};

// Mixup: the row's own target (slot 0, the one the correct flag compares with) and its
// partner's (slot 1).
struct TargetPair {
  static constexpr int kSlots = 2;
  const int64_t* target_a;
  int64_t stride_a;
  const int64_t* target_b;
  int64_t stride_b;

  __device__ __forceinline__ RowTargets<2> load(int64_t row) const {
    RowTargets<2> t;
    t.y[0] = target_a[row * stride_a];
    t.y[1] = target_b[row * stride_b];
    return t;
  }
};

enum class SlotKind { kValid, kIgnored, kInvalid };

__device__ __forceinline__ SlotKind classify(int64_t y, int64_t n_cols, int64_t ignore_index) {
  if (y == ignore_index) return SlotKind::kIgnored;
  return (y < 0 || y >= n_cols) ? SlotKind::kInvalid : SlotKind::kValid;
}

// --- online softmax state -------------------------------------------------------------------

__device__ __forceinline__ float nan_max(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
#else
  return (a != a || b != b) ? a + b : fmaxf(a, b);
#endif
}
__device__ __forceinline__ double nan_max(double a, double b) {
  return (a != a || b != b) ? a + b : fmax(a, b);
}

// Reference point of the sums: m itself, or 0 when m is infinite, so that an all -inf row
// gives lse = -inf and a +inf logit gives lse = +inf (as torch.logsumexp) instead of NaN.
template <typename acc_t>
__device__ __forceinline__ acc_t exp_reference(acc_t m) {
  return isinf(m) ? acc_t(0) : m;
}

// Per-thread (then per-row) partial results, all relative to ref = exp_reference(m):
//   s  = sum exp(x - ref),  d = sum (x - ref),  wd = sum w (x - ref),  wn = sum w,  n = count.
// Then C lse - sum x = C log s - d and W lse - sum w x = W log s - wd: no cancellation between
// two large numbers (C lse and sum x are both ~C m when the logits share a large offset).
// Whenever ref moves, d and wd shift by n and wn times the move.
template <typename acc_t, bool kWeighted>
struct RowState {
  acc_t m;  // running max; NaN once a NaN was seen (NaN ranks above everything, as argmax)
  acc_t s;
  acc_t d;
  acc_t wd;  // weighted only, as wn
  acc_t wn;
  acc_t n;
  int64_t idx;  // first column holding m

  __device__ __forceinline__ static RowState identity() {
    RowState r{};
    r.m = -infinity<acc_t>();
    r.idx = std::numeric_limits<int64_t>::max();
    return r;
  }

  // Re-expresses the sums relative to new_ref = exp_reference(new_m), new_m >= m. A state whose
  // max is -inf has s = 0 (every exp was exp(-inf)), which must stay 0 rather than become
  // 0 * inf.
  __device__ __forceinline__ void move_reference(acc_t ref, acc_t new_ref) {
    const acc_t shift = ref - new_ref;
    s = m == -infinity<acc_t>() ? acc_t(0) : s * opmath_exp(shift);
    d += n * shift;
    if constexpr (kWeighted) wd += wn * shift;
  }
};

template <typename acc_t, bool kWeighted>
__device__ __forceinline__ RowState<acc_t, kWeighted> shfl_xor(const RowState<acc_t, kWeighted>& v,
                                                               int lane_mask, int width) {
  RowState<acc_t, kWeighted> r;
  r.m = cuda::shfl_xor(v.m, lane_mask, width);
  r.s = cuda::shfl_xor(v.s, lane_mask, width);
  r.d = cuda::shfl_xor(v.d, lane_mask, width);
  r.n = cuda::shfl_xor(v.n, lane_mask, width);
  r.idx = cuda::shfl_xor(v.idx, lane_mask, width);
  if constexpr (kWeighted) {
    r.wd = cuda::shfl_xor(v.wd, lane_mask, width);
    r.wn = cuda::shfl_xor(v.wn, lane_mask, width);
  } else {
    r.wd = r.wn = acc_t(0);
  }
  return r;
}

// Does (vb, ib) come before (va, ia) in argmax order: larger value, NaN largest, ties to the
// smaller column.
template <typename acc_t>
__device__ __forceinline__ bool argmax_before(acc_t vb, int64_t ib, acc_t va, int64_t ia) {
  if (vb != vb) return va == va || ib < ia;
  if (va != va) return false;
  return vb > va || (vb == va && ib < ia);
}

struct CombineRowStates {
  template <typename acc_t, bool kWeighted>
  __device__ __forceinline__ RowState<acc_t, kWeighted> operator()(
      RowState<acc_t, kWeighted> a, RowState<acc_t, kWeighted> b) const {
    const bool b_first = argmax_before(b.m, b.idx, a.m, a.idx);
    const acc_t m = b_first ? b.m : a.m;
    const acc_t ref = exp_reference(m);
    a.move_reference(exp_reference(a.m), ref);
    b.move_reference(exp_reference(b.m), ref);
    RowState<acc_t, kWeighted> r;
    r.m = m;
    r.idx = b_first ? b.idx : a.idx;
    r.s = a.s + b.s;
    r.d = a.d + b.d;
    r.n = a.n + b.n;
    r.wd = a.wd + b.wd;
    r.wn = a.wn + b.wn;
    return r;
  }
};

// --- forward --------------------------------------------------------------------------------

template <typename scalar_t>
struct ForwardParams {
  const scalar_t* logits;
  int64_t row_stride;
  int64_t n_rows;
  int64_t n_cols;
  const at::opmath_type<scalar_t>* weight;  // (C,) or null
  at::opmath_type<scalar_t> on_value;
  at::opmath_type<scalar_t> off_value;
  int64_t ignore_index;
  int log2_group;
  at::opmath_type<scalar_t>* loss;  // (N, kSlots) contiguous
  at::opmath_type<scalar_t>* lse;
  bool* correct;
};

template <typename scalar_t, bool kWeighted>
struct ForwardVisitor {
  using acc_t = at::opmath_type<scalar_t>;
  using IO = VecIO<scalar_t>;
  static constexpr int kVec = vec_width<scalar_t>();

  const scalar_t* x;
  const acc_t* weight;
  bool weight_aligned;
  RowState<acc_t, kWeighted> st;
  acc_t ref;  // exp_reference(st.m), kept to avoid recomputing it per element

  template <int K>
  __device__ __forceinline__ void accumulate(const acc_t (&v)[K], const acc_t (&w)[K],
                                             int64_t col0) {
    acc_t cm = v[0];
#pragma unroll
    for (int j = 1; j < K; ++j) cm = nan_max(cm, v[j]);
    // Rare after the first few chunks of a row: the max grew, or the first NaN arrived.
    if (!(cm <= st.m) && st.m == st.m) {
      int first = K - 1;
#pragma unroll
      for (int j = K - 1; j >= 0; --j) {
        if (v[j] == cm || v[j] != v[j]) first = j;
      }
      const acc_t new_ref = exp_reference(cm);
      st.move_reference(ref, new_ref);
      st.m = cm;
      st.idx = col0 + first;
      ref = new_ref;
    }
#pragma unroll
    for (int j = 0; j < K; ++j) {
      const acc_t dx = v[j] - ref;
      st.s += opmath_exp(dx);
      st.d += dx;
      if constexpr (kWeighted) {
        st.wd = fma(w[j], dx, st.wd);
        st.wn += w[j];
      }
    }
    st.n += acc_t(K);
  }

  __device__ __forceinline__ void scalar(int64_t c) {
    const acc_t v[1] = {IO::load(x + c)};
    acc_t w[1] = {acc_t(1)};
    if constexpr (kWeighted) w[0] = __ldg(weight + c);
    accumulate(v, w, c);
  }

  template <int U>
  __device__ __forceinline__ void vectors(int64_t c0, int64_t stride) {
    uint4 raw[U];
#pragma unroll
    for (int u = 0; u < U; ++u) raw[u] = load_vec_raw(x + c0 + u * stride);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      acc_t v[kVec];
      IO::unpack(raw[u], v);
      acc_t w[kVec];
      if constexpr (kWeighted) {
        load_values(weight + c0 + u * stride, weight_aligned, w);
      }
      accumulate(v, w, c0 + u * stride);
    }
  }
};

template <typename scalar_t, bool kWeighted, typename Targets>
__global__ void __launch_bounds__(max_threads<scalar_t>(), 1)
    label_smoothing_cross_entropy_forward_kernel(ForwardParams<scalar_t> p, Targets targets) {
  using acc_t = at::opmath_type<scalar_t>;
  using State = RowState<acc_t, kWeighted>;
  constexpr int kSlots = Targets::kSlots;
  constexpr int kVec = vec_width<scalar_t>();
  constexpr int kUnroll = vectors_in_flight<scalar_t, kWeighted>();
  __shared__ alignas(State) unsigned char scratch_bytes[32 * sizeof(State)];

  const int group = 1 << p.log2_group;
  const int lane = threadIdx.x & (group - 1);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> p.log2_group) +
                      (threadIdx.x >> p.log2_group);
  // Rows past the end still join the group reduction (every lane must shuffle).
  const bool active = row < p.n_rows;
  const int64_t n_cols = p.n_cols;
  const scalar_t* x = p.logits + (active ? row : 0) * p.row_stride;

  // The writing lane fetches its target-dependent values before streaming the row, so their
  // latency hides behind it.
  RowTargets<kSlots> t{};
  SlotKind kind[kSlots];
#pragma unroll
  for (int k = 0; k < kSlots; ++k) kind[k] = SlotKind::kIgnored;
  acc_t x_y[kSlots];
  acc_t w_y[kSlots];
  if (active && lane == 0) {
    t = targets.load(row);
#pragma unroll
    for (int k = 0; k < kSlots; ++k) {
      kind[k] = classify(t.y[k], n_cols, p.ignore_index);
      x_y[k] = acc_t(0);
      w_y[k] = acc_t(1);
      if (kind[k] == SlotKind::kValid) {
        x_y[k] = VecIO<scalar_t>::load(x + t.y[k]);
        if constexpr (kWeighted) w_y[k] = __ldg(p.weight + t.y[k]);
      }
    }
  }

  ForwardVisitor<scalar_t, kWeighted> v{x, p.weight, false, State::identity(), acc_t(0)};
  if (active) {
    const int64_t head = std::min<int64_t>(n_cols, elements_to_alignment(x));
    if constexpr (kWeighted) v.weight_aligned = is_vec_aligned(p.weight + head);
    visit_row<kVec, kUnroll>(n_cols, head, lane, group, v);
  }
  // group > 32 only with one row per block (the launch guarantees it), so the barrier inside
  // block_reduce is reached by the whole block.
  const State r = group > 32 ? block_reduce(v.st, CombineRowStates{}, State::identity(),
                                            reinterpret_cast<State*>(scratch_bytes))
                             : warp_allreduce(v.st, CombineRowStates{}, group);
  if (!active || lane != 0) return;

  const acc_t log_s = opmath_log(r.s);
  const acc_t ref = exp_reference(r.m);
  const acc_t lse = ref + log_s;
  // No column compares above -inf only when every logit is -inf: argmax is then column 0.
  const int64_t argmax = r.m == -infinity<acc_t>() ? 0 : r.idx;

#pragma unroll
  for (int k = 0; k < kSlots; ++k) {
    acc_t loss = acc_t(0);
    if (kind[k] == SlotKind::kInvalid) {
      loss = quiet_nan<acc_t>();
    } else if (kind[k] == SlotKind::kValid) {
      // (m - x_y) + log s rather than lse - x_y: exact cancellation when x_y is the max.
      const acc_t target_part = w_y[k] * ((ref - x_y[k]) + log_s);
      // sum_c w_c (lse - x_c), with this row's own sum of weights so that the identity is
      // exact; the same for every slot.
      const acc_t smooth =
          kWeighted ? r.wn * log_s - r.wd : static_cast<acc_t>(n_cols) * log_s - r.d;
      loss = (p.on_value - p.off_value) * target_part;
      // Absent without smoothing (not 0 * smooth): a masked (-inf) logit makes smooth
      // infinite, and plain cross-entropy stays finite there.
      if (p.off_value != acc_t(0)) {
        loss += p.off_value * smooth;
      }
    }
    p.loss[row * kSlots + k] = loss;
  }
  p.lse[row] = lse;
  // Against slot 0 only (target_a for mixup), as the schema says; an out-of-range target_a
  // never equals the argmax, so such a row is never correct.
  p.correct[row] = n_cols > 0 && argmax == t.y[0];
}

// --- backward -------------------------------------------------------------------------------

template <typename scalar_t>
struct BackwardParams {
  const at::opmath_type<scalar_t>* grad_loss;  // (N,) or (N, kSlots), read by strides
  int64_t grad_loss_stride;
  int64_t grad_loss_slot_stride;
  const scalar_t* logits;
  int64_t row_stride;
  const at::opmath_type<scalar_t>* lse;
  int64_t lse_stride;
  int64_t n_rows;
  int64_t n_cols;
  const at::opmath_type<scalar_t>* weight;
  const at::opmath_type<scalar_t>* weight_sum;  // 0-d, on the device; null when unweighted
  at::opmath_type<scalar_t> on_value;
  at::opmath_type<scalar_t> off_value;
  int64_t ignore_index;
  int log2_group;
  scalar_t* grad;  // (N, C) contiguous
};

// Summed over the non-ignored slots k, each with its own g_k = grad_loss[row, k]:
// d loss / d x_c = a * p_c - G * off * w_c - sum_k g_k * (on - off) * w_{y_k} [c == y_k]
// with a = sum_k g_k ((on - off) w_{y_k} + off W), G = sum_k g_k and p_c = exp(x_c - lse).
// The g_k are arbitrary (they need not sum to 1), so the off part scales with G.
template <typename scalar_t, bool kWeighted, int kSlots>
struct BackwardVisitor {
  using acc_t = at::opmath_type<scalar_t>;
  using IO = VecIO<scalar_t>;
  static constexpr int kVec = vec_width<scalar_t>();

  const scalar_t* x;
  scalar_t* out;
  const acc_t* weight;
  bool weight_aligned;
  acc_t lse;
  acc_t g_softmax;         // a
  acc_t g_off;             // G * off
  int64_t y[kSlots];       // -1 for an ignored slot: matches no column
  acc_t g_target[kSlots];  // g_k * (on - off) * w_{y_k}, removed at column y_k

  __device__ __forceinline__ acc_t grad(acc_t xv, acc_t w) const {
    return fma(g_softmax, opmath_exp(xv - lse), -g_off * w);
  }

  __device__ __forceinline__ void scalar(int64_t c) {
    const acc_t w = kWeighted ? __ldg(weight + c) : acc_t(1);
    acc_t gr = grad(IO::load(x + c), w);
#pragma unroll
    for (int k = 0; k < kSlots; ++k) {
      if (c == y[k]) gr -= g_target[k];
    }
    IO::store(out + c, gr);
  }

  template <int U>
  __device__ __forceinline__ void vectors(int64_t c0, int64_t stride) {
    uint4 raw[U];
#pragma unroll
    for (int u = 0; u < U; ++u) raw[u] = load_vec_raw(x + c0 + u * stride);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t col = c0 + u * stride;
      acc_t v[kVec];
      IO::unpack(raw[u], v);
      acc_t w[kVec];
      if constexpr (kWeighted) {
        load_values(weight + col, weight_aligned, w);
      } else {
#pragma unroll
        for (int j = 0; j < kVec; ++j) w[j] = acc_t(1);
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        v[j] = grad(v[j], w[j]);
      }
      // One compare per vector; the per-element fix-up runs for one vector per slot.
#pragma unroll
      for (int k = 0; k < kSlots; ++k) {
        if (static_cast<uint64_t>(y[k] - col) < static_cast<uint64_t>(kVec)) {
          const int hit = static_cast<int>(y[k] - col);
#pragma unroll
          for (int j = 0; j < kVec; ++j) {
            if (j == hit) v[j] -= g_target[k];
          }
        }
      }
      store_vec_raw(out + col, IO::pack(v));
    }
  }
};

template <typename scalar_t>
struct FillVisitor {
  using acc_t = at::opmath_type<scalar_t>;
  scalar_t* out;
  acc_t value;
  uint4 packed;

  __device__ __forceinline__ void scalar(int64_t c) { VecIO<scalar_t>::store(out + c, value); }
  template <int U>
  __device__ __forceinline__ void vectors(int64_t c0, int64_t stride) {
#pragma unroll
    for (int u = 0; u < U; ++u) store_vec_raw(out + c0 + u * stride, packed);
  }
};

template <typename scalar_t, bool kWeighted, typename Targets>
__global__ void __launch_bounds__(max_threads<scalar_t>(), 1)
    label_smoothing_cross_entropy_backward_kernel(BackwardParams<scalar_t> p, Targets targets) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int kSlots = Targets::kSlots;
  constexpr int kVec = vec_width<scalar_t>();
  constexpr int kUnroll = vectors_in_flight<scalar_t, kWeighted>();

  const int group = 1 << p.log2_group;
  const int lane = threadIdx.x & (group - 1);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> p.log2_group) +
                      (threadIdx.x >> p.log2_group);
  if (row >= p.n_rows) return;  // no collective operations below
  const int64_t n_cols = p.n_cols;
  const scalar_t* x = p.logits + row * p.row_stride;
  scalar_t* out = p.grad + row * n_cols;
  const int64_t out_head = std::min<int64_t>(n_cols, elements_to_alignment(out));

  const RowTargets<kSlots> t = targets.load(row);
  SlotKind kind[kSlots];
  bool any_invalid = false;
  bool all_ignored = true;
#pragma unroll
  for (int k = 0; k < kSlots; ++k) {
    kind[k] = classify(t.y[k], n_cols, p.ignore_index);
    any_invalid |= kind[k] == SlotKind::kInvalid;
    all_ignored &= kind[k] == SlotKind::kIgnored;
  }
  if (any_invalid || all_ignored) {
    // Nothing to read: the row is all zeros (every slot ignored) or all NaN (a target out of
    // range: its gradient is NaN, and so is any sum with it).
    const acc_t value = any_invalid ? quiet_nan<acc_t>() : acc_t(0);
    acc_t values[kVec];
#pragma unroll
    for (int j = 0; j < kVec; ++j) values[j] = value;
    FillVisitor<scalar_t> f{out, value, VecIO<scalar_t>::pack(values)};
    visit_row<kVec, kUnroll>(n_cols, out_head, lane, group, f);
    return;
  }

  const acc_t on_off = p.on_value - p.off_value;
  const acc_t total_w = kWeighted ? *p.weight_sum : static_cast<acc_t>(n_cols);
  BackwardVisitor<scalar_t, kWeighted, kSlots> v;
  v.x = x;
  v.out = out;
  v.weight = p.weight;
  v.lse = p.lse[row * p.lse_stride];
  acc_t g_sum = acc_t(0);
  v.g_softmax = acc_t(0);
#pragma unroll
  for (int k = 0; k < kSlots; ++k) {
    // One slot is valid here (the others returned above); two may have one ignored slot.
    v.y[k] = -1;
    v.g_target[k] = acc_t(0);
    if (kSlots == 1 || kind[k] == SlotKind::kValid) {
      const acc_t g = p.grad_loss[row * p.grad_loss_stride + k * p.grad_loss_slot_stride];
      const acc_t w_y = kWeighted ? __ldg(p.weight + t.y[k]) : acc_t(1);
      const acc_t a = g * (on_off * w_y + p.off_value * total_w);
      // Assigned, not added to 0, for the first slot: one slot computes exactly as ever.
      v.g_softmax = k == 0 ? a : v.g_softmax + a;
      g_sum = k == 0 ? g : g_sum + g;
      v.y[k] = t.y[k];
      v.g_target[k] = g * (on_off * w_y);
    }
  }
  v.g_off = g_sum * p.off_value;

  // Vectors need the input and output rows at the same offset from a 16-byte boundary; the
  // output is contiguous, so this fails only for odd input row strides or a misaligned input
  // base, and then the row goes all-scalar (still coalesced).
  const bool co_aligned =
      ((reinterpret_cast<uintptr_t>(x) ^ reinterpret_cast<uintptr_t>(out)) & (kVecBytes - 1)) == 0;
  const int64_t head = co_aligned ? out_head : n_cols;
  v.weight_aligned = kWeighted && is_vec_aligned(p.weight + head);
  visit_row<kVec, kUnroll>(n_cols, head, lane, group, v);
}

// --- launch ---------------------------------------------------------------------------------

struct RowLaunch {
  int log2_group;  // threads per row = 2^log2_group
  int threads;     // per block
  int64_t blocks;
};

int ceil_log2(int64_t v) {
  int k = 0;
  while ((int64_t{1} << k) < v) ++k;
  return k;
}

// Rows up to 4 KiB: a power-of-two group of 4..32 lanes per row, sized so that every lane has
// a vector to load, 128 threads per block (many rows per block, shuffle-only reduction).
// Longer rows: one block per row with about 16 vectors per thread, 64..512 threads; 512 keeps
// two or more blocks per SM so that one block's final reduction overlaps another's loads. With
// fewer rows than about two per SM, up to 1024 threads per row for more loads in flight.
RowLaunch plan_rows(int64_t n_rows, int64_t n_cols, int vec, int max_threads) {
  const int64_t n_vecs = ceil_div<int64_t>(n_cols, vec);
  RowLaunch plan;
  if (n_vecs <= 32 * 8) {
    plan.log2_group = std::min(5, std::max(2, ceil_log2(n_vecs)));
    plan.threads = 128;
    plan.blocks = ceil_div<int64_t>(n_rows, plan.threads >> plan.log2_group);
  } else {
    const int max_log2 = std::min(ceil_log2(max_threads), n_rows < 256 ? 10 : 9);
    plan.log2_group = std::min(max_log2, std::max(6, ceil_log2(ceil_div<int64_t>(n_vecs, 16))));
    plan.threads = 1 << plan.log2_group;
    plan.blocks = n_rows;
  }
  TORCH_CHECK(plan.blocks <= std::numeric_limits<int32_t>::max(),
              "label_smoothing_cross_entropy: too many rows for one launch (", n_rows, ")");
  return plan;
}

// Launches the forward kernel for any target source. logits has unit stride along C; loss is
// (N, kSlots), lse and correct (N,), all contiguous; N > 0.
template <typename Targets>
void launch_forward(const at::Tensor& logits, const std::optional<at::Tensor>& weight,
                    double on_value, double off_value, int64_t ignore_index, const Targets& targets,
                    at::Tensor& loss, at::Tensor& lse, at::Tensor& correct) {
  const int64_t n_rows = logits.size(0);
  const int64_t n_cols = logits.size(1);
  const at::Tensor weight_c = weight.has_value() ? weight->contiguous() : at::Tensor();
  const auto stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "label_smoothing_cross_entropy_forward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const RowLaunch plan =
            plan_rows(n_rows, n_cols, vec_width<scalar_t>(), max_threads<scalar_t>());
        ForwardParams<scalar_t> p;
        p.logits = logits.const_data_ptr<scalar_t>();
        p.row_stride = logits.stride(0);
        p.n_rows = n_rows;
        p.n_cols = n_cols;
        p.weight = weight.has_value() ? weight_c.const_data_ptr<acc_t>() : nullptr;
        p.on_value = static_cast<acc_t>(on_value);
        p.off_value = static_cast<acc_t>(off_value);
        p.ignore_index = ignore_index;
        p.log2_group = plan.log2_group;
        p.loss = loss.mutable_data_ptr<acc_t>();
        p.lse = lse.mutable_data_ptr<acc_t>();
        p.correct = correct.mutable_data_ptr<bool>();
        const dim3 grid(static_cast<unsigned>(plan.blocks));
        if (weight.has_value()) {
          label_smoothing_cross_entropy_forward_kernel<scalar_t, true>
              <<<grid, plan.threads, 0, stream>>>(p, targets);
        } else {
          label_smoothing_cross_entropy_forward_kernel<scalar_t, false>
              <<<grid, plan.threads, 0, stream>>>(p, targets);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

// Launches the backward kernel for any target source. grad_loss and lse are op-math, read by
// strides (grad_loss (N,) or (N, kSlots)); grad is (N, C) contiguous and not empty.
template <typename Targets>
void launch_backward(const at::Tensor& grad_loss, const at::Tensor& logits,
                     const std::optional<at::Tensor>& weight, const at::Tensor& lse,
                     double on_value, double off_value, int64_t ignore_index,
                     const Targets& targets, at::Tensor& grad) {
  const int64_t n_rows = logits.size(0);
  const int64_t n_cols = logits.size(1);
  at::Tensor weight_c, weight_sum;
  if (weight.has_value()) {
    weight_c = weight->contiguous();
    weight_sum = at::sum(weight_c);  // stays on the device: no sync
  }
  const auto stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "label_smoothing_cross_entropy_backward",
      [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const RowLaunch plan =
            plan_rows(n_rows, n_cols, vec_width<scalar_t>(), max_threads<scalar_t>());
        BackwardParams<scalar_t> p;
        p.grad_loss = grad_loss.const_data_ptr<acc_t>();
        p.grad_loss_stride = grad_loss.stride(0);
        p.grad_loss_slot_stride = grad_loss.dim() > 1 ? grad_loss.stride(1) : 0;
        p.logits = logits.const_data_ptr<scalar_t>();
        p.row_stride = logits.stride(0);
        p.lse = lse.const_data_ptr<acc_t>();
        p.lse_stride = lse.stride(0);
        p.n_rows = n_rows;
        p.n_cols = n_cols;
        p.weight = weight.has_value() ? weight_c.const_data_ptr<acc_t>() : nullptr;
        p.weight_sum = weight.has_value() ? weight_sum.const_data_ptr<acc_t>() : nullptr;
        p.on_value = static_cast<acc_t>(on_value);
        p.off_value = static_cast<acc_t>(off_value);
        p.ignore_index = ignore_index;
        p.log2_group = plan.log2_group;
        p.grad = grad.mutable_data_ptr<scalar_t>();
        const dim3 grid(static_cast<unsigned>(plan.blocks));
        if (weight.has_value()) {
          label_smoothing_cross_entropy_backward_kernel<scalar_t, true>
              <<<grid, plan.threads, 0, stream>>>(p, targets);
        } else {
          label_smoothing_cross_entropy_backward_kernel<scalar_t, false>
              <<<grid, plan.threads, 0, stream>>>(p, targets);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

// Rows must have unit stride along C; any row stride is fine.
at::Tensor unit_column_stride(const at::Tensor& logits) {
  return (logits.size(1) > 1 && logits.stride(1) != 1) ? logits.contiguous() : logits;
}

// The backward inputs every target source shares: lse (N,), both on the device of logits (the
// shape of grad_loss depends on the number of slots and is checked by the caller).
void check_backward_inputs(const at::Tensor& grad_loss, const at::Tensor& lse,
                           const at::Tensor& logits) {
  TORCH_CHECK(grad_loss.device() == logits.device(), "grad_loss is on ", grad_loss.device(),
              " but logits is on ", logits.device());
  TORCH_CHECK(lse.dim() == 1 && lse.size(0) == logits.size(0),
              "lse must be (N,) with N = ", logits.size(0), ", got ", lse.sizes());
  TORCH_CHECK(lse.device() == logits.device(), "lse is on ", lse.device(), " but logits is on ",
              logits.device());
}

// What every forward entry point does once its arguments are checked: the op-math outputs
// (loss (N,) for one slot, (N, kSlots) otherwise) and the launch.
template <typename Targets>
std::tuple<at::Tensor, at::Tensor, at::Tensor> run_forward(const at::Tensor& logits_in,
                                                           const std::optional<at::Tensor>& weight,
                                                           double on_value, double off_value,
                                                           int64_t ignore_index,
                                                           const Targets& targets) {
  c10::cuda::CUDAGuard guard(logits_in.device());
  const int64_t n_rows = logits_in.size(0);
  const at::Tensor logits = unit_column_stride(logits_in);
  const auto opmath = opmath_scalar_type(logits.scalar_type());
  auto loss = Targets::kSlots == 1
                  ? at::empty({n_rows}, logits.options().dtype(opmath))
                  : at::empty({n_rows, Targets::kSlots}, logits.options().dtype(opmath));
  auto lse = at::empty({n_rows}, logits.options().dtype(opmath));
  auto correct = at::empty({n_rows}, logits.options().dtype(at::kBool));
  if (n_rows == 0) return {loss, lse, correct};
  launch_forward(logits, weight, on_value, off_value, ignore_index, targets, loss, lse, correct);
  return {loss, lse, correct};
}

// What every backward entry point does once its arguments are checked.
template <typename Targets>
at::Tensor run_backward(const at::Tensor& grad_loss_in, const at::Tensor& logits_in,
                        const std::optional<at::Tensor>& weight, const at::Tensor& lse_in,
                        double on_value, double off_value, int64_t ignore_index,
                        const Targets& targets) {
  c10::cuda::CUDAGuard guard(logits_in.device());
  const auto opmath = opmath_scalar_type(logits_in.scalar_type());
  const at::Tensor logits = unit_column_stride(logits_in);
  // Both are read by strides, so an expanded grad_loss (a sum reduction's) costs nothing.
  const at::Tensor grad_loss = grad_loss_in.to(opmath);
  const at::Tensor lse = lse_in.to(opmath);
  auto grad = at::empty({logits.size(0), logits.size(1)}, logits.options());
  if (grad.numel() == 0) return grad;
  launch_backward(grad_loss, logits, weight, lse, on_value, off_value, ignore_index, targets, grad);
  return grad;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> label_smoothing_cross_entropy_forward_cuda(
    const at::Tensor& logits_in, const at::Tensor& target, const std::optional<at::Tensor>& weight,
    double on_value, double off_value, int64_t ignore_index) {
  check_cross_entropy_args(logits_in, target, weight);
  TORCH_CHECK(logits_in.is_cuda(), "logits must be a CUDA tensor");
  const SingleTarget targets{target.const_data_ptr<int64_t>(), target.stride(0)};
  return run_forward(logits_in, weight, on_value, off_value, ignore_index, targets);
}

at::Tensor label_smoothing_cross_entropy_backward_cuda(const at::Tensor& grad_loss_in,
                                                       const at::Tensor& logits_in,
                                                       const at::Tensor& target,
                                                       const std::optional<at::Tensor>& weight,
                                                       const at::Tensor& lse_in, double on_value,
                                                       double off_value, int64_t ignore_index) {
  check_cross_entropy_args(logits_in, target, weight);
  TORCH_CHECK(logits_in.is_cuda(), "logits must be a CUDA tensor");
  const int64_t n_rows = logits_in.size(0);
  TORCH_CHECK(grad_loss_in.dim() == 1 && grad_loss_in.size(0) == n_rows,
              "grad_loss must be (N,) with N = ", n_rows, ", got ", grad_loss_in.sizes());
  check_backward_inputs(grad_loss_in, lse_in, logits_in);
  const SingleTarget targets{target.const_data_ptr<int64_t>(), target.stride(0)};
  return run_backward(grad_loss_in, logits_in, weight, lse_in, on_value, off_value, ignore_index,
                      targets);
}

// target_a and target_b: (N,) int64 on the device of logits. Checked by name before the shared
// checks, which would report either one as "target".
void check_mixup_args(const at::Tensor& logits, const at::Tensor& target_a,
                      const at::Tensor& target_b, const std::optional<at::Tensor>& weight) {
  TORCH_CHECK(logits.dim() == 2, "logits must be (N, C), got ", logits.sizes());
  TORCH_CHECK(logits.is_cuda(), "logits must be a CUDA tensor");
  const int64_t n_rows = logits.size(0);
  const auto check_target = [&](const char* name, const at::Tensor& t) {
    TORCH_CHECK(t.dim() == 1 && t.size(0) == n_rows, name, " must be (N,) with N = ", n_rows,
                ", got ", t.sizes());
    TORCH_CHECK(t.scalar_type() == at::kLong, name, " must be int64, got ", t.scalar_type());
    TORCH_CHECK(t.device() == logits.device(), name, " is on ", t.device(), " but logits is on ",
                logits.device());
  };
  check_target("target_a", target_a);
  check_target("target_b", target_b);
  check_cross_entropy_args(logits, target_a, weight);
}

TargetPair target_pair(const at::Tensor& target_a, const at::Tensor& target_b) {
  return {target_a.const_data_ptr<int64_t>(), target_a.stride(0),
          target_b.const_data_ptr<int64_t>(), target_b.stride(0)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> mixup_cross_entropy_forward_cuda(
    const at::Tensor& logits_in, const at::Tensor& target_a, const at::Tensor& target_b,
    const std::optional<at::Tensor>& weight, double on_value, double off_value,
    int64_t ignore_index) {
  check_mixup_args(logits_in, target_a, target_b, weight);
  return run_forward(logits_in, weight, on_value, off_value, ignore_index,
                     target_pair(target_a, target_b));
}

at::Tensor mixup_cross_entropy_backward_cuda(const at::Tensor& grad_loss_in,
                                             const at::Tensor& logits_in,
                                             const at::Tensor& target_a, const at::Tensor& target_b,
                                             const std::optional<at::Tensor>& weight,
                                             const at::Tensor& lse_in, double on_value,
                                             double off_value, int64_t ignore_index) {
  check_mixup_args(logits_in, target_a, target_b, weight);
  const int64_t n_rows = logits_in.size(0);
  TORCH_CHECK(grad_loss_in.dim() == 2 && grad_loss_in.size(0) == n_rows &&
                  grad_loss_in.size(1) == TargetPair::kSlots,
              "grad_loss must be (N, 2) with N = ", n_rows, ", got ", grad_loss_in.sizes());
  check_backward_inputs(grad_loss_in, lse_in, logits_in);
  return run_backward(grad_loss_in, logits_in, weight, lse_in, on_value, off_value, ignore_index,
                      target_pair(target_a, target_b));
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CUDA, m) {
  m.impl("label_smoothing_cross_entropy_forward",
         &cookbook_ops::label_smoothing_cross_entropy_forward_cuda);
  m.impl("label_smoothing_cross_entropy_backward",
         &cookbook_ops::label_smoothing_cross_entropy_backward_cuda);
  m.impl("mixup_cross_entropy_forward", &cookbook_ops::mixup_cross_entropy_forward_cuda);
  m.impl("mixup_cross_entropy_backward", &cookbook_ops::mixup_cross_entropy_backward_cuda);
}
