// Label-smoothed cross-entropy: CPU kernels for
//   cookbook_ops::label_smoothing_cross_entropy_forward  -> (loss, lse, correct) per row
//   cookbook_ops::label_smoothing_cross_entropy_backward -> d loss / d logits
// and for its two-target (mixup) form, which runs the same row kernels:
//   cookbook_ops::mixup_cross_entropy_forward  -> (loss (N, 2), lse, correct vs target_a)
//   cookbook_ops::mixup_cross_entropy_backward -> d (sum_k grad_loss[:, k] loss[:, k]) / d logits
// (schemas and the math in cookbook_ops/_library.py and cookbook_ops/reference/).
//
// Forward reads each row from memory once, per vector lane keeping an online max with a
// rescaled sum of exps, the first index of that max, and the sums of x and w x (see
// row_stats_vec). Rows holding NaN or +-inf are recomputed by an exact scalar routine, which is
// also the whole kernel where the vector code cannot run (x86-64 CPUs without AVX2, or
// ATEN_CPU_CAPABILITY=default). Backward reads each row once and writes the gradient once,
// from the lse saved by the forward. All accumulation is in the op-math type (float for
// 16-bit logits); rows are split across threads with at::parallel_for.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>

#include "cookbook_ops/checks.h"
#include "cookbook_ops/cpu_vec.h"

namespace cookbook_ops {
namespace {

// Work per parallel task in logits elements; below it one thread does everything, so small
// batches never pay for waking the pool.
constexpr int64_t kGrainElements = 32768;

// ------------------------------------------------------------------------------------------
// Row-level pieces shared by the vector and scalar kernels (op-math type T).

template <typename T>
struct SmoothingParams {
  T on_off;         // on - off: the extra target-class weight of the smoothed distribution
  T off;            // weight of every class
  T total_weight;   // W = sum_c w_c, or C without class weights
  const T* weight;  // nullptr without class weights
  int64_t ignore_index;
  int64_t num_classes;
};

// The classes of one row that carry the (on - off) part of the target, with coefficient
// (on - off) * w_y each. Plain labels fill one slot. The mixup backward fills one slot per
// non-ignored target with the slot's upstream gradient folded into its coefficient, and its
// off part is scaled by the sum of those gradients (arbitrary values, not shares summing to
// 1); see mixup_row_grad. The loss and gradient below sum over the slots, so the streaming
// loops never see the targets.
constexpr int kMaxTargetSlots = 2;

template <typename T>
struct RowTarget {
  int count = 0;  // 0: ignored row (loss 0, gradient 0)
  int64_t cls[kMaxTargetSlots] = {};
  T coef[kMaxTargetSlots] = {};
};

template <typename T>
inline RowTarget<T> label_target(int64_t y, const SmoothingParams<T>& p) {
  RowTarget<T> t;
  if (y != p.ignore_index) {
    t.count = 1;
    t.cls[0] = y;
    t.coef[0] = p.on_off * (p.weight != nullptr ? p.weight[y] : T(1));
  }
  return t;
}

// Sums of x are kept relative to ref = x_0 (0 if that is not finite): the smoothing term
// W * lse - sum_c w_c x_c is then evaluated as W * (log_sum + shift - ref) - sum_c w_c (x_c - ref),
// which drops the common offset of the row instead of cancelling two large products (rows of
// large, nearly equal logits would otherwise lose every digit of it).
template <typename T>
struct RowStats {
  T shift;    // the row max, or 0 where that is not finite; lse = shift + log_sum
  T log_sum;  // log sum_c exp(x_c - shift)
  T ref;
  T sum_dx;   // sum_c (x_c - ref)
  T sum_wdx;  // sum_c w_c (x_c - ref); only with class weights
  int64_t argmax;
};

template <typename T, typename scalar_t>
inline T row_loss(const RowStats<T>& st, const RowTarget<T>& tg, const scalar_t* row,
                  const SmoothingParams<T>& p) {
  T loss = T(0);
  for (int k = 0; k < tg.count; ++k) {
    // (max - x_y) + log_sum rather than lse - x_y: no cancellation when p_y is near 1.
    loss += tg.coef[k] * ((st.shift - static_cast<T>(row[tg.cls[k]])) + st.log_sum);
  }
  // Skipped without smoothing so that a row with -inf logits (masked classes) keeps the
  // finite loss of plain cross-entropy instead of 0 * inf.
  if (tg.count > 0 && p.off != T(0)) {
    loss += p.off * (p.total_weight * (st.log_sum + (st.shift - st.ref)) -
                     (p.weight != nullptr ? st.sum_wdx : st.sum_dx));
  }
  return loss;
}

// Exact, NaN/inf-aware statistics of one row in two scalar passes: the path for rows the
// vector pass flags and the whole forward where the vector kernels cannot run. Sums run in
// double for float so that long rows lose nothing to a sequential sum (the exps themselves
// stay in T). argmax follows torch.argmax: the first NaN, else the first maximum.
template <typename T, typename scalar_t>
RowStats<T> row_stats_exact(const scalar_t* row, const T* w, int64_t C) {
  using Acc = std::conditional_t<std::is_same_v<T, float>, double, T>;
  T mx = -std::numeric_limits<T>::infinity();
  int64_t argmax = 0;
  bool seen_nan = false;
  const T ref = C > 0 && std::isfinite(static_cast<T>(row[0])) ? static_cast<T>(row[0]) : T(0);
  Acc sum_dx = 0;
  Acc sum_wdx = 0;
  for (int64_t c = 0; c < C; ++c) {
    const T v = static_cast<T>(row[c]);
    const Acc dx = static_cast<Acc>(v) - ref;
    sum_dx += dx;
    if (w != nullptr) {
      sum_wdx += static_cast<Acc>(w[c]) * dx;
    }
    if (!seen_nan) {
      if (std::isnan(v)) {
        seen_nan = true;
        mx = v;
        argmax = c;
      } else if (v > mx) {
        mx = v;
        argmax = c;
      }
    }
  }
  // An infinite max shifts by 0 as torch.logsumexp does: lse = +inf for a +inf entry and
  // -inf for an all -inf (or empty) row instead of NaN from inf - inf.
  const T shift = std::isfinite(mx) ? mx : T(0);
  Acc sum = 0;
  for (int64_t c = 0; c < C; ++c) {
    sum += std::exp(static_cast<T>(row[c]) - shift);
  }
  // A +inf logit makes every log-probability of its row NaN in torch.log_softmax (inf - inf),
  // hence the loss against any target and the row's gradient: a NaN lse carries that to both.
  const T log_sum = mx == std::numeric_limits<T>::infinity() ? std::numeric_limits<T>::quiet_NaN()
                                                             : static_cast<T>(std::log(sum));
  return {shift, log_sum, ref, static_cast<T>(sum_dx), static_cast<T>(sum_wdx), argmax};
}

// Per-row constants of the gradient: grad_c = g_A * p_c - g_off * w_c, then the target slots
// subtract g * coef_k at their class.
template <typename T>
struct RowGrad {
  T g;
  T g_A;    // g * (sum_k coef_k + off * W)
  T g_off;  // g * off
};

template <typename T>
inline RowGrad<T> row_grad(T g, const RowTarget<T>& tg, const SmoothingParams<T>& p) {
  T coef_sum = T(0);
  for (int k = 0; k < tg.count; ++k) {
    coef_sum += tg.coef[k];
  }
  return {g, g * (coef_sum + p.off * p.total_weight), g * p.off};
}

// Both mixup slots in one set of row constants: slot k (target y_k, upstream gradient g_k)
// contributes g_k ((on - off) w_yk + off W) p_c - g_k (on - off) w_yk [c == y_k] - g_k off w_c.
// The slot coefficients carry g_k, so the shared factor g is 1 and the off part takes
// G = sum of g_k over the non-ignored slots.
template <typename T>
inline RowGrad<T> mixup_row_grad(const int64_t y[2], const T g[2], RowTarget<T>& tg,
                                 const SmoothingParams<T>& p) {
  T g_sum = T(0);
  T coef_sum = T(0);
  for (int k = 0; k < kMaxTargetSlots; ++k) {
    if (y[k] == p.ignore_index) {
      continue;
    }
    const T coef = g[k] * p.on_off * (p.weight != nullptr ? p.weight[y[k]] : T(1));
    tg.cls[tg.count] = y[k];
    tg.coef[tg.count] = coef;
    ++tg.count;
    g_sum += g[k];
    coef_sum += coef;
  }
  return {T(1), coef_sum + g_sum * p.off * p.total_weight, g_sum * p.off};
}

// Rewrites the target-class entries from the op-math values, so the one-hot term is applied
// before the single rounding to scalar_t. Slots that share a class get their summed
// coefficient.
template <typename T, typename scalar_t>
inline void apply_target_terms(scalar_t* out, const scalar_t* row, T lse, const RowGrad<T>& rg,
                               const RowTarget<T>& tg, const SmoothingParams<T>& p) {
  for (int k = 0; k < tg.count; ++k) {
    const int64_t c = tg.cls[k];
    T coef = T(0);
    for (int j = 0; j < tg.count; ++j) {
      if (tg.cls[j] == c) {
        coef += tg.coef[j];
      }
    }
    const T w_c = p.weight != nullptr ? p.weight[c] : T(1);
    const T p_c = std::exp(static_cast<T>(row[c]) - lse);
    out[c] = static_cast<scalar_t>(rg.g_A * p_c - rg.g_off * w_c - rg.g * coef);
  }
}

template <typename T, typename scalar_t>
void backward_row_exact(scalar_t* out, const scalar_t* row, T lse, const RowGrad<T>& rg,
                        const RowTarget<T>& tg, const SmoothingParams<T>& p) {
  const int64_t C = p.num_classes;
  for (int64_t c = 0; c < C; ++c) {
    const T w_c = p.weight != nullptr ? p.weight[c] : T(1);
    const T p_c = std::exp(static_cast<T>(row[c]) - lse);
    out[c] = static_cast<scalar_t>(rg.g_A * p_c - rg.g_off * w_c);
  }
  apply_target_terms(out, row, lse, rg, tg, p);
}

template <typename scalar_t>
struct ForwardArgs {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* logits;
  int64_t row_stride;
  const int64_t* target;
  int64_t target_stride;
  const int64_t* target_b = nullptr;  // mixup's second target; then loss is (N, 2)
  int64_t target_b_stride = 0;
  SmoothingParams<T> p;
  T* loss;
  T* lse;
  bool* correct;
};

// The row statistics serve every target: the mixup form costs one more gather and a few
// flops per row, not a second pass.
template <typename scalar_t>
inline void finish_forward_row(const ForwardArgs<scalar_t>& a, int64_t i,
                               const RowStats<at::opmath_type<scalar_t>>& st, const scalar_t* row) {
  const int64_t y = a.target[i * a.target_stride];
  if (a.target_b == nullptr) {
    a.loss[i] = row_loss(st, label_target(y, a.p), row, a.p);
  } else {
    const int64_t y_b = a.target_b[i * a.target_b_stride];
    a.loss[2 * i] = row_loss(st, label_target(y, a.p), row, a.p);
    a.loss[2 * i + 1] = row_loss(st, label_target(y_b, a.p), row, a.p);
  }
  a.lse[i] = st.shift + st.log_sum;
  a.correct[i] = a.p.num_classes > 0 && st.argmax == y;
}

template <typename scalar_t>
void forward_rows_exact(const ForwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const scalar_t* row = a.logits + i * a.row_stride;
    finish_forward_row(a, i, row_stats_exact(row, a.p.weight, a.p.num_classes), row);
  }
}

template <typename scalar_t>
struct BackwardArgs {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* logits;
  int64_t row_stride;
  const int64_t* target;
  int64_t target_stride;
  const int64_t* target_b = nullptr;  // mixup's second target; then grad_loss is (N, 2)
  int64_t target_b_stride = 0;
  const T* grad_loss;
  int64_t grad_loss_stride;
  int64_t grad_loss_slot_stride = 0;
  const T* lse;
  int64_t lse_stride;
  SmoothingParams<T> p;
  scalar_t* grad;  // contiguous (N, C)
};

// Ignored rows (zeros) and rows with a non-finite lse (plain scalar math, as the reference
// does) are finished here; returns false for the rest, which the caller computes.
template <typename scalar_t>
inline bool backward_row_prologue(const BackwardArgs<scalar_t>& a, int64_t i,
                                  RowTarget<at::opmath_type<scalar_t>>& tg,
                                  RowGrad<at::opmath_type<scalar_t>>& rg,
                                  at::opmath_type<scalar_t>& lse) {
  using T = at::opmath_type<scalar_t>;
  const int64_t C = a.p.num_classes;
  scalar_t* out = a.grad + i * C;
  const scalar_t* row = a.logits + i * a.row_stride;
  const T* g = a.grad_loss + i * a.grad_loss_stride;
  if (a.target_b == nullptr) {
    tg = label_target(a.target[i * a.target_stride], a.p);
    rg = row_grad(g[0], tg, a.p);
  } else {
    const int64_t y[2] = {a.target[i * a.target_stride], a.target_b[i * a.target_b_stride]};
    const T g_slots[2] = {g[0], g[a.grad_loss_slot_stride]};
    tg = RowTarget<T>{};
    rg = mixup_row_grad(y, g_slots, tg, a.p);
  }
  if (tg.count == 0) {
    std::memset(static_cast<void*>(out), 0, sizeof(scalar_t) * C);
    return true;
  }
  lse = a.lse[i * a.lse_stride];
  if (!std::isfinite(lse)) {
    backward_row_exact(out, row, lse, rg, tg, a.p);
    return true;
  }
  return false;
}

template <typename scalar_t>
void backward_rows_exact(const BackwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  using T = at::opmath_type<scalar_t>;
  for (int64_t i = begin; i < end; ++i) {
    RowTarget<T> tg;
    RowGrad<T> rg{};
    T lse{};
    if (backward_row_prologue(a, i, tg, rg, lse)) {
      continue;
    }
    backward_row_exact(a.grad + i * a.p.num_classes, a.logits + i * a.row_stride, lse, rg, tg, a.p);
  }
}

}  // namespace
}  // namespace cookbook_ops

// ------------------------------------------------------------------------------------------
// Vector kernels (AVX2 on x86-64; see cpu_vec.h).

COOKBOOK_OPS_VEC_BEGIN
namespace cookbook_ops {
namespace {

using at::vec::Vectorized;

// Per-lane state of the streaming pass: running max, sum of exp(x - max), the step where the
// lane's max was first seen, and the sums of x - ref (and w (x - ref)).
template <typename T>
struct RowLanes {
  using Vec = Vectorized<T>;
  Vec max = Vec(std::numeric_limits<T>::lowest());
  Vec sum = Vec(T(0));
  Vec argmax_step = Vec(T(0));
  Vec sum_dx = Vec(T(0));
  Vec sum_wdx = Vec(T(0));
};

// First scan of a block: max, the step where it first occurs, and the plain sums. Starting max
// at the lowest finite value instead of -inf keeps -inf entries (masked classes) out of
// -inf - -inf later. NaN never wins the compare; it poisons sum_dx, which sends the row to the
// exact routine. dx is 0 in padding lanes, and so is w.
template <typename T, bool kWeighted>
C10_ALWAYS_INLINE void scan_max(RowLanes<T>& s, const Vectorized<T>& x, const Vectorized<T>& dx,
                                const Vectorized<T>& w, const Vectorized<T>& step_col) {
  using Vec = Vectorized<T>;
  const Vec raises = x > s.max;
  s.max = at::vec::clamp_min(x, s.max);  // a max instruction: spares the blend port
  s.argmax_step = Vec::blendv(s.argmax_step, step_col, raises);
  s.sum_dx = s.sum_dx + dx;
  if constexpr (kWeighted) {
    s.sum_wdx = at::vec::fmadd(w, dx, s.sum_wdx);
  }
}

// One read of the row from memory, in blocks small enough to stay in L1: each block is scanned
// for its max first and then summed as exp(x - max), so every element costs exactly one exp
// and the exps have no dependency chain; between blocks the running sum is rescaled to the new
// max (online softmax at block granularity). A row of up to kBlock entries is one block.
template <typename scalar_t, bool kWeighted>
COOKBOOK_OPS_FLATTEN RowStats<at::opmath_type<scalar_t>> row_stats_vec(
    const scalar_t* row, const at::opmath_type<scalar_t>* w, int64_t C) {
  using T = at::opmath_type<scalar_t>;
  using Vec = Vectorized<T>;
  using IO = cpu::OpmathIO<scalar_t>;
  constexpr int64_t kLanes = Vec::size();
  constexpr int64_t kStep = IO::kStep;
  constexpr int64_t kBlock = 2048;  // 8 KiB of float logits; a multiple of kStep
  static_assert(kBlock % kStep == 0);

  RowLanes<T> lo, hi;
  // A non-finite ref makes sum_dx non-finite, which sends the row to the exact path.
  const T ref = C > 0 ? static_cast<T>(row[0]) : T(0);
  const Vec v_ref(ref);
  const Vec v_step(static_cast<T>(kStep));

  // One block: entries [begin, end) of `src`, a whole number of steps, the first at column
  // col0; only the first `valid` lanes of a step are real (fewer than kStep in the padded tail).
  auto block = [&](const scalar_t* src, const T* wsrc, int64_t begin, int64_t end, int64_t col0,
                   int64_t valid) {
    const Vec old_max_lo = lo.max;
    const Vec old_max_hi = hi.max;
    Vec step_col(static_cast<T>(col0));
    Vec w_lo, w_hi;
    for (int64_t c = begin; c < end; c += kStep) {
      Vec x_lo, x_hi;
      IO::load(src + c, x_lo, x_hi);
      if constexpr (kWeighted) {
        w_lo = Vec::loadu(wsrc + c);
        w_hi = Vec::loadu(wsrc + c + kLanes);
      }
      Vec dx_lo = x_lo - v_ref;
      Vec dx_hi = x_hi - v_ref;
      if (valid < kStep) {
        dx_lo = dx_lo & (Vec::arange(T(0), T(1)) < Vec(static_cast<T>(valid)));
        dx_hi = dx_hi & (Vec::arange(T(kLanes), T(1)) < Vec(static_cast<T>(valid)));
      }
      scan_max<T, kWeighted>(lo, x_lo, dx_lo, w_lo, step_col);
      scan_max<T, kWeighted>(hi, x_hi, dx_hi, w_hi, step_col);
      step_col = step_col + v_step;
    }
    // The sum so far, rescaled to the new max, plus this block's exps (read again from L1).
    Vec sum_lo(T(0));
    Vec sum_hi(T(0));
    if (col0 > 0) {
      sum_lo = lo.sum * cpu::exp_nonpositive(old_max_lo - lo.max);
      sum_hi = hi.sum * cpu::exp_nonpositive(old_max_hi - hi.max);
    }
    for (int64_t c = begin; c < end; c += kStep) {
      Vec x_lo, x_hi;
      IO::load(src + c, x_lo, x_hi);
      sum_lo = sum_lo + cpu::exp_nonpositive(x_lo - lo.max);
      sum_hi = sum_hi + cpu::exp_nonpositive(x_hi - hi.max);
    }
    lo.sum = sum_lo;
    hi.sum = sum_hi;
  };

  const int64_t full = C - C % kStep;
  for (int64_t b = 0; b < full; b += kBlock) {
    block(row, w, b, std::min(full, b + kBlock), b, kStep);
  }
  if (full < C) {
    // The last C % kStep entries, copied into one padded step. Padding holds -inf, which
    // neither raises a max nor adds to a sum of exps, and is masked out of the plain sums.
    const int64_t rem = C - full;
    scalar_t x_buf[kStep];
    T w_buf[kStep];
    std::fill_n(x_buf, kStep, static_cast<scalar_t>(-std::numeric_limits<T>::infinity()));
    std::memcpy(static_cast<void*>(x_buf), row + full, sizeof(scalar_t) * rem);
    if constexpr (kWeighted) {
      std::fill_n(w_buf, kStep, T(0));
      std::memcpy(w_buf, w + full, sizeof(T) * rem);
    }
    block(x_buf, w_buf, 0, kStep, full, rem);
  }

  // Merge the 2 * kLanes partial states: common max, rescaled sums, and the smallest column
  // among the lanes that hold the max (the first occurrence, as torch.argmax). Kept in vector
  // registers: with rows of a few hundred classes this merge is a visible part of the row.
  const auto vmax_op = [](const Vec& a, const Vec& b) { return at::vec::clamp_min(a, b); };
  const auto vmin_op = [](const Vec& a, const Vec& b) { return at::vec::clamp_max(a, b); };
  const auto add = [](const Vec& a, const Vec& b) { return a + b; };
  const T row_max = at::vec::vec_reduce_all<T>(vmax_op, at::vec::clamp_min(lo.max, hi.max));
  const Vec vmax(row_max);
  const Vec sums =
      lo.sum * cpu::exp_nonpositive(lo.max - vmax) + hi.sum * cpu::exp_nonpositive(hi.max - vmax);
  const Vec no_col(static_cast<T>(C));
  const Vec col_lo = Vec::blendv(no_col, lo.argmax_step + Vec::arange(T(0), T(1)), lo.max == vmax);
  const Vec col_hi =
      Vec::blendv(no_col, hi.argmax_step + Vec::arange(T(kLanes), T(1)), hi.max == vmax);
  RowStats<T> st;
  st.shift = row_max;
  st.log_sum = std::log(at::vec::vec_reduce_all<T>(add, sums));
  st.ref = ref;
  st.sum_dx = at::vec::vec_reduce_all<T>(add, lo.sum_dx + hi.sum_dx);
  st.sum_wdx = kWeighted ? at::vec::vec_reduce_all<T>(add, lo.sum_wdx + hi.sum_wdx) : T(0);
  st.argmax =
      static_cast<int64_t>(at::vec::vec_reduce_all<T>(vmin_op, at::vec::clamp_max(col_lo, col_hi)));
  return st;
}

// Rows shorter than one vector step (binary and few-class heads, C < kStep): a row at a time,
// the pass above would spend a whole padded step, a cross-lane merge and a log on a couple of
// values. These rows go kLanes at a time instead, one row per lane: each group of rows is
// transposed into columns in L1, and max, first argmax, sums and exps run down the columns.
// Rows the vector statistics flag (NaN, +-inf) take the exact routine, as above.
template <typename scalar_t>
constexpr int64_t kNarrowClasses = cpu::OpmathIO<scalar_t>::kStep;

// cols[c * kLanes + r] = row (begin + r)[c] for the `rows` rows from begin; lanes past them
// are zero (finite, and their results are discarded).
template <typename scalar_t, typename T, int64_t kLanes>
C10_ALWAYS_INLINE void transpose_rows(const scalar_t* logits, int64_t row_stride, int64_t begin,
                                      int64_t rows, int64_t C, T* cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const scalar_t* row = logits + (begin + r) * row_stride;
    for (int64_t c = 0; c < C; ++c) {
      cols[c * kLanes + r] = static_cast<T>(row[c]);
    }
  }
  for (int64_t r = rows; r < kLanes; ++r) {
    for (int64_t c = 0; c < C; ++c) {
      cols[c * kLanes + r] = T(0);
    }
  }
}

template <typename scalar_t, bool kWeighted>
COOKBOOK_OPS_FLATTEN void forward_rows_narrow(const ForwardArgs<scalar_t>& a, int64_t begin,
                                              int64_t end) {
  using T = at::opmath_type<scalar_t>;
  using Vec = Vectorized<T>;
  constexpr int64_t kLanes = Vec::size();
  const int64_t C = a.p.num_classes;
  const T* w = a.p.weight;
  T cols[kNarrowClasses<scalar_t> * kLanes];
  T shift[kLanes], log_sum[kLanes], sum_dx[kLanes], sum_wdx[kLanes], argmax[kLanes];
  for (int64_t i = begin; i < end; i += kLanes) {
    const int64_t rows = std::min(kLanes, end - i);
    transpose_rows<scalar_t, T, kLanes>(a.logits, a.row_stride, i, rows, C, cols);
    // As in row_stats_vec: max from the lowest finite value, the first column that raises it,
    // sums relative to ref = x_0.
    const Vec ref = Vec::loadu(cols);
    Vec mx(std::numeric_limits<T>::lowest());
    Vec col_of_max(T(0));
    Vec dx_sum(T(0));
    Vec wdx_sum(T(0));
    for (int64_t c = 0; c < C; ++c) {
      const Vec x = Vec::loadu(cols + c * kLanes);
      col_of_max = Vec::blendv(col_of_max, Vec(static_cast<T>(c)), x > mx);
      mx = at::vec::clamp_min(x, mx);
      const Vec dx = x - ref;
      dx_sum = dx_sum + dx;
      if constexpr (kWeighted) {
        wdx_sum = at::vec::fmadd(Vec(w[c]), dx, wdx_sum);
      }
    }
    Vec sum(T(0));
    for (int64_t c = 0; c < C; ++c) {
      sum = sum + cpu::exp_nonpositive(Vec::loadu(cols + c * kLanes) - mx);
    }
    mx.store(shift);
    sum.log().store(log_sum);
    dx_sum.store(sum_dx);
    wdx_sum.store(sum_wdx);
    col_of_max.store(argmax);
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* row = a.logits + (i + r) * a.row_stride;
      RowStats<T> st{shift[r],  log_sum[r], cols[r],
                     sum_dx[r], sum_wdx[r], static_cast<int64_t>(argmax[r])};
      if (!std::isfinite(st.sum_dx)) {
        st = row_stats_exact(row, w, C);
      }
      finish_forward_row(a, i + r, st, row);
    }
  }
}

// The backward of the same rows: the gradient of kLanes rows at a time down the columns,
// written back row by row; the target entries are then rewritten exactly per row, as in
// backward_rows_vec.
template <typename scalar_t, bool kWeighted>
COOKBOOK_OPS_FLATTEN void backward_rows_narrow(const BackwardArgs<scalar_t>& a, int64_t begin,
                                               int64_t end) {
  using T = at::opmath_type<scalar_t>;
  using Vec = Vectorized<T>;
  constexpr int64_t kLanes = Vec::size();
  const int64_t C = a.p.num_classes;
  const T* w = a.p.weight;
  T cols[kNarrowClasses<scalar_t> * kLanes];
  T lse[kLanes], g_A[kLanes], neg_g_off[kLanes];
  RowTarget<T> tg[kLanes];
  RowGrad<T> rg[kLanes];
  bool done[kLanes];
  for (int64_t i = begin; i < end; i += kLanes) {
    const int64_t rows = std::min(kLanes, end - i);
    for (int64_t r = 0; r < kLanes; ++r) {
      // Rows the prologue finishes (ignored, non-finite lse) and lanes past the end compute
      // garbage from finite stand-ins, never stored.
      done[r] = r >= rows || backward_row_prologue(a, i + r, tg[r], rg[r], lse[r]);
      if (done[r]) {
        lse[r] = T(0);
        rg[r] = RowGrad<T>{T(0), T(0), T(0)};
      }
      g_A[r] = rg[r].g_A;
      neg_g_off[r] = -rg[r].g_off;
    }
    transpose_rows<scalar_t, T, kLanes>(a.logits, a.row_stride, i, rows, C, cols);
    const Vec v_lse = Vec::loadu(lse);
    const Vec v_gA = Vec::loadu(g_A);
    const Vec v_neg_goff = Vec::loadu(neg_g_off);
    for (int64_t c = 0; c < C; ++c) {
      const Vec prob = cpu::exp_nonpositive(Vec::loadu(cols + c * kLanes) - v_lse);
      Vec grad;
      if constexpr (kWeighted) {
        grad = at::vec::fmadd(Vec(w[c]), v_neg_goff, prob * v_gA);
      } else {
        grad = at::vec::fmadd(prob, v_gA, v_neg_goff);
      }
      grad.store(cols + c * kLanes);
    }
    for (int64_t r = 0; r < rows; ++r) {
      if (done[r]) {
        continue;
      }
      scalar_t* out = a.grad + (i + r) * C;
      for (int64_t c = 0; c < C; ++c) {
        out[c] = static_cast<scalar_t>(cols[c * kLanes + r]);
      }
      apply_target_terms(out, a.logits + (i + r) * a.row_stride, lse[r], rg[r], tg[r], a.p);
    }
  }
}

template <typename scalar_t, bool kWeighted>
void forward_rows_vec(const ForwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  const int64_t C = a.p.num_classes;
  if (C > 0 && C < kNarrowClasses<scalar_t>) {
    forward_rows_narrow<scalar_t, kWeighted>(a, begin, end);
    return;
  }
  for (int64_t i = begin; i < end; ++i) {
    const scalar_t* row = a.logits + i * a.row_stride;
    auto st = row_stats_vec<scalar_t, kWeighted>(row, a.p.weight, C);
    if (!std::isfinite(st.sum_dx)) {  // NaN or +-inf somewhere in the row (or overflow)
      st = row_stats_exact(row, a.p.weight, C);
    }
    finish_forward_row(a, i, st, row);
  }
}

template <typename scalar_t, bool kWeighted>
COOKBOOK_OPS_FLATTEN void backward_rows_vec(const BackwardArgs<scalar_t>& a, int64_t begin,
                                            int64_t end) {
  using T = at::opmath_type<scalar_t>;
  using Vec = Vectorized<T>;
  using IO = cpu::OpmathIO<scalar_t>;
  constexpr int64_t kLanes = Vec::size();
  constexpr int64_t kStep = IO::kStep;
  const int64_t C = a.p.num_classes;
  const T* w = a.p.weight;
  if (C < kNarrowClasses<scalar_t>) {
    backward_rows_narrow<scalar_t, kWeighted>(a, begin, end);
    return;
  }

  for (int64_t i = begin; i < end; ++i) {
    RowTarget<T> tg;
    RowGrad<T> rg{};
    T lse{};
    if (backward_row_prologue(a, i, tg, rg, lse)) {
      continue;
    }
    const scalar_t* row = a.logits + i * a.row_stride;
    scalar_t* out = a.grad + i * C;
    const Vec v_lse(lse);
    const Vec v_gA(rg.g_A);
    const Vec v_neg_goff(-rg.g_off);
    // grad = g_A * exp(x - lse) - g_off * w
    auto grad_of = [&](const Vec& x, const Vec& w_c) {
      const Vec prob = cpu::exp_nonpositive(x - v_lse);
      if constexpr (kWeighted) {
        return at::vec::fmadd(w_c, v_neg_goff, prob * v_gA);
      } else {
        return at::vec::fmadd(prob, v_gA, v_neg_goff);
      }
    };
    Vec w_lo, w_hi;
    int64_t c = 0;
    for (; c + kStep <= C; c += kStep) {
      Vec x_lo, x_hi;
      IO::load(row + c, x_lo, x_hi);
      if constexpr (kWeighted) {
        w_lo = Vec::loadu(w + c);
        w_hi = Vec::loadu(w + c + kLanes);
      }
      IO::store(out + c, grad_of(x_lo, w_lo), grad_of(x_hi, w_hi));
    }
    if (c < C) {
      const int64_t rem = C - c;
      scalar_t buf[kStep];
      std::fill_n(buf, kStep, static_cast<scalar_t>(0));
      std::memcpy(static_cast<void*>(buf), row + c, sizeof(scalar_t) * rem);
      Vec x_lo, x_hi;
      IO::load(buf, x_lo, x_hi);
      if constexpr (kWeighted) {
        w_lo = Vec::loadu(w + c, std::min<int64_t>(rem, kLanes));
        w_hi = rem > kLanes ? Vec::loadu(w + c + kLanes, rem - kLanes) : Vec(T(0));
      }
      IO::store(buf, grad_of(x_lo, w_lo), grad_of(x_hi, w_hi));
      std::memcpy(static_cast<void*>(out + c), buf, sizeof(scalar_t) * rem);
    }
    apply_target_terms(out, row, lse, rg, tg, a.p);
  }
}

}  // namespace
}  // namespace cookbook_ops
COOKBOOK_OPS_VEC_END

// ------------------------------------------------------------------------------------------
// Entry points.

namespace cookbook_ops {
namespace {

int64_t rows_per_task(int64_t C) {
  return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(C, 1));
}

// The vector forward keeps column indices in op-math lanes; float holds them exactly below
// 2^24. Longer rows (never seen in practice) take the exact scalar path.
template <typename T>
bool vector_path_ok(int64_t C) {
  return cpu::vec_kernels_available() && C <= (int64_t{1} << std::numeric_limits<T>::digits);
}

// Every non-ignored target must index a class: the kernels read logits and weights there.
void check_targets(const char* name, const at::Tensor& target, int64_t C, int64_t ignore_index) {
  const int64_t* t = target.const_data_ptr<int64_t>();
  const int64_t stride = target.stride(0);
  for (int64_t i = 0, N = target.size(0); i < N; ++i) {
    const int64_t y = t[i * stride];
    if (y != ignore_index && (y < 0 || y >= C)) {
      TORCH_CHECK_INDEX(false, name, "[", i, "] = ", y, " is out of range for ", C,
                        " classes (valid: 0..", C - 1, " or ignore_index=", ignore_index, ")");
    }
  }
}

// The mixup ops' targets, checked by name before the shared checks (whose messages say
// "target").
void check_mixup_targets(const at::Tensor& logits, const at::Tensor& target_a,
                         const at::Tensor& target_b) {
  TORCH_CHECK(logits.dim() == 2, "logits must be (N, C), got ", logits.sizes());
  const auto check = [&](const char* name, const at::Tensor& t) {
    TORCH_CHECK(t.dim() == 1 && t.size(0) == logits.size(0), name,
                " must be (N,) with N = ", logits.size(0), ", got ", t.sizes());
    TORCH_CHECK(t.scalar_type() == at::kLong, name, " must be int64, got ", t.scalar_type());
    TORCH_CHECK(t.device() == logits.device(), name, " is on ", t.device(), " but logits is on ",
                logits.device());
  };
  check("target_a", target_a);
  check("target_b", target_b);
}

template <typename T>
SmoothingParams<T> make_params(const std::optional<at::Tensor>& weight, double on_value,
                               double off_value, int64_t ignore_index, int64_t C) {
  SmoothingParams<T> p;
  p.on_off = static_cast<T>(on_value - off_value);
  p.off = static_cast<T>(off_value);
  p.ignore_index = ignore_index;
  p.num_classes = C;
  if (weight.has_value()) {
    p.weight = weight->const_data_ptr<T>();
    double total = 0.0;  // once per call, in double: W multiplies lse in every row's loss
    for (int64_t c = 0; c < C; ++c) {
      total += static_cast<double>(p.weight[c]);
    }
    p.total_weight = static_cast<T>(total);
  } else {
    p.weight = nullptr;
    p.total_weight = static_cast<T>(C);
  }
  return p;
}

at::Tensor unit_inner_stride(const at::Tensor& logits) {
  return logits.size(1) > 1 && logits.stride(1) != 1 ? logits.contiguous() : logits;
}

std::optional<at::Tensor> contiguous_weight(const std::optional<at::Tensor>& weight) {
  if (!weight.has_value()) {
    return std::nullopt;
  }
  return weight->contiguous();
}

// The range check of every target slot, naming each as its op's argument.
template <bool kMixup>
void check_target_slots(const at::Tensor& target, const at::Tensor* target_b, int64_t C,
                        int64_t ignore_index) {
  check_targets(kMixup ? "target_a" : "target", target, C, ignore_index);
  if constexpr (kMixup) {
    check_targets("target_b", *target_b, C, ignore_index);
  }
}

// Both forward ops: kMixup adds target_b and makes loss (N, 2), one column per target.
template <bool kMixup>
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cpu(
    const at::Tensor& logits_in, const at::Tensor& target, const at::Tensor* target_b,
    const std::optional<at::Tensor>& weight_in, double on_value, double off_value,
    int64_t ignore_index) {
  check_cross_entropy_args(logits_in, target, weight_in);
  TORCH_CHECK(logits_in.device().is_cpu(), "logits must be a CPU tensor, got ", logits_in.device());
  const at::Tensor logits = unit_inner_stride(logits_in);
  const auto weight = contiguous_weight(weight_in);
  const int64_t N = logits.size(0);
  const int64_t C = logits.size(1);
  const auto opmath = opmath_scalar_type(logits.scalar_type());
  at::Tensor loss = kMixup ? at::empty({N, 2}, logits.options().dtype(opmath))
                           : at::empty({N}, logits.options().dtype(opmath));
  at::Tensor lse = at::empty({N}, logits.options().dtype(opmath));
  at::Tensor correct = at::empty({N}, logits.options().dtype(at::kBool));
  if (N == 0) {
    return {loss, lse, correct};
  }
  check_target_slots<kMixup>(target, target_b, C, ignore_index);

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(),
      kMixup ? "mixup_cross_entropy_forward" : "label_smoothing_cross_entropy_forward", [&] {
        using T = at::opmath_type<scalar_t>;
        ForwardArgs<scalar_t> args;
        args.logits = logits.const_data_ptr<scalar_t>();
        args.row_stride = logits.stride(0);
        args.target = target.const_data_ptr<int64_t>();
        args.target_stride = target.stride(0);
        if constexpr (kMixup) {
          args.target_b = target_b->const_data_ptr<int64_t>();
          args.target_b_stride = target_b->stride(0);
        }
        args.p = make_params<T>(weight, on_value, off_value, ignore_index, C);
        args.loss = loss.mutable_data_ptr<T>();
        args.lse = lse.mutable_data_ptr<T>();
        args.correct = correct.mutable_data_ptr<bool>();
        const bool vec = vector_path_ok<T>(C);
        const bool weighted = args.p.weight != nullptr;
        at::parallel_for(0, N, rows_per_task(C), [&](int64_t begin, int64_t end) {
          if (!vec) {
            forward_rows_exact(args, begin, end);
          } else if (weighted) {
            forward_rows_vec<scalar_t, true>(args, begin, end);
          } else {
            forward_rows_vec<scalar_t, false>(args, begin, end);
          }
        });
      });
  return {loss, lse, correct};
}

// Both backward ops: grad_loss is (N,) or, with kMixup, (N, 2) (any strides).
template <bool kMixup>
at::Tensor backward_cpu(const at::Tensor& grad_loss, const at::Tensor& logits_in,
                        const at::Tensor& target, const at::Tensor* target_b,
                        const std::optional<at::Tensor>& weight_in, const at::Tensor& lse,
                        double on_value, double off_value, int64_t ignore_index) {
  check_cross_entropy_args(logits_in, target, weight_in);
  TORCH_CHECK(logits_in.device().is_cpu(), "logits must be a CPU tensor, got ", logits_in.device());
  const at::Tensor logits = unit_inner_stride(logits_in);
  const auto weight = contiguous_weight(weight_in);
  const int64_t N = logits.size(0);
  const int64_t C = logits.size(1);
  const auto opmath = opmath_scalar_type(logits.scalar_type());
  if constexpr (kMixup) {
    TORCH_CHECK(grad_loss.dim() == 2 && grad_loss.size(0) == N && grad_loss.size(1) == 2,
                "grad_loss must be (N, 2) with N = ", N, ", got ", grad_loss.sizes());
  } else {
    TORCH_CHECK(grad_loss.dim() == 1 && grad_loss.size(0) == N,
                "grad_loss must be (N,) with N = ", N, ", got ", grad_loss.sizes());
  }
  TORCH_CHECK(grad_loss.scalar_type() == opmath, "grad_loss must be ", opmath, " for ",
              logits.scalar_type(), " logits, got ", grad_loss.scalar_type());
  TORCH_CHECK(lse.dim() == 1 && lse.size(0) == N, "lse must be (N,) with N = ", N, ", got ",
              lse.sizes());
  TORCH_CHECK(lse.scalar_type() == opmath, "lse must be ", opmath, " for ", logits.scalar_type(),
              " logits, got ", lse.scalar_type());
  TORCH_CHECK(grad_loss.device() == logits.device() && lse.device() == logits.device(),
              "grad_loss and lse must be on ", logits.device());
  at::Tensor grad = at::empty({N, C}, logits.options().memory_format(at::MemoryFormat::Contiguous));
  if (N == 0 || C == 0) {
    return grad;
  }
  check_target_slots<kMixup>(target, target_b, C, ignore_index);

  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(),
      kMixup ? "mixup_cross_entropy_backward" : "label_smoothing_cross_entropy_backward", [&] {
        using T = at::opmath_type<scalar_t>;
        BackwardArgs<scalar_t> args;
        args.logits = logits.const_data_ptr<scalar_t>();
        args.row_stride = logits.stride(0);
        args.target = target.const_data_ptr<int64_t>();
        args.target_stride = target.stride(0);
        args.grad_loss = grad_loss.const_data_ptr<T>();
        args.grad_loss_stride = grad_loss.stride(0);
        if constexpr (kMixup) {
          args.target_b = target_b->const_data_ptr<int64_t>();
          args.target_b_stride = target_b->stride(0);
          args.grad_loss_slot_stride = grad_loss.stride(1);
        }
        args.lse = lse.const_data_ptr<T>();
        args.lse_stride = lse.stride(0);
        args.p = make_params<T>(weight, on_value, off_value, ignore_index, C);
        args.grad = grad.mutable_data_ptr<scalar_t>();
        const bool vec = cpu::vec_kernels_available();
        const bool weighted = args.p.weight != nullptr;
        at::parallel_for(0, N, rows_per_task(C), [&](int64_t begin, int64_t end) {
          if (!vec) {
            backward_rows_exact(args, begin, end);
          } else if (weighted) {
            backward_rows_vec<scalar_t, true>(args, begin, end);
          } else {
            backward_rows_vec<scalar_t, false>(args, begin, end);
          }
        });
      });
  return grad;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lsce_forward_cpu(
    const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weight,
    double on_value, double off_value, int64_t ignore_index) {
  return forward_cpu<false>(logits, target, nullptr, weight, on_value, off_value, ignore_index);
}

at::Tensor lsce_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& logits,
                             const at::Tensor& target, const std::optional<at::Tensor>& weight,
                             const at::Tensor& lse, double on_value, double off_value,
                             int64_t ignore_index) {
  return backward_cpu<false>(grad_loss, logits, target, nullptr, weight, lse, on_value, off_value,
                             ignore_index);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> mixup_ce_forward_cpu(
    const at::Tensor& logits, const at::Tensor& target_a, const at::Tensor& target_b,
    const std::optional<at::Tensor>& weight, double on_value, double off_value,
    int64_t ignore_index) {
  check_mixup_targets(logits, target_a, target_b);
  return forward_cpu<true>(logits, target_a, &target_b, weight, on_value, off_value, ignore_index);
}

at::Tensor mixup_ce_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& logits,
                                 const at::Tensor& target_a, const at::Tensor& target_b,
                                 const std::optional<at::Tensor>& weight, const at::Tensor& lse,
                                 double on_value, double off_value, int64_t ignore_index) {
  check_mixup_targets(logits, target_a, target_b);
  return backward_cpu<true>(grad_loss, logits, target_a, &target_b, weight, lse, on_value,
                            off_value, ignore_index);
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CPU, m) {
  m.impl("label_smoothing_cross_entropy_forward", &cookbook_ops::lsce_forward_cpu);
  m.impl("label_smoothing_cross_entropy_backward", &cookbook_ops::lsce_backward_cpu);
  m.impl("mixup_cross_entropy_forward", &cookbook_ops::mixup_ce_forward_cpu);
  m.impl("mixup_cross_entropy_backward", &cookbook_ops::mixup_ce_backward_cpu);
}
