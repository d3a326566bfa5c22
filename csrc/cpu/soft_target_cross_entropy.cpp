// Cross-entropy against probability targets, CPU kernels for
//   cookbook_ops::soft_target_cross_entropy_forward  -> (loss, lse, target_sum, correct) per row
//   cookbook_ops::soft_target_cross_entropy_backward -> d loss / d logits
// (schemas and the math in cookbook_ops/_library.py and cookbook_ops/reference/).
//
// Row i, target q: a_c = w_c ((on - off) q_c + off), S = sum_c a_c,
//   loss = S lse - sum_c a_c x_c,   grad_c = g (S p_c - a_c).
// Forward reads each row of logits and targets from memory once: one vector pass gives the
// max and first argmax of x, sum_c a_c (x_c - ref) and S; a second pass over the same row, now
// in cache, sums exp(x - max) and finds the first argmax of q. Backward reads both rows once more
// with the saved lse and S and writes the gradient once. Rows with a non-finite logit or target
// (masked -inf classes, NaN, +inf) are recomputed by an exact scalar routine in plain IEEE
// arithmetic, which is what F.cross_entropy computes there (a -inf logit gives +inf where a_c > 0
// and NaN where a_c == 0); it is also the whole forward where the vector code cannot run.
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
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cookbook_ops/checks.h"
#include "cookbook_ops/cpu_vec.h"

namespace cookbook_ops {
namespace {

constexpr int64_t kSoftGrainElements = 32768;

template <typename T>
struct SoftParams {
  T delta;          // on - off
  T off;            // off
  const T* weight;  // nullptr without class weights
  int64_t num_classes;
};

template <typename T>
inline T soft_coef(T q, int64_t c, const SoftParams<T>& p) {
  const T a = p.delta * q + p.off;
  return p.weight != nullptr ? a * p.weight[c] : a;
}

template <typename T>
struct SoftRow {
  T loss;
  T lse;
  T target_sum;
  int64_t argmax_x;
  int64_t argmax_q;
};

// torch.argmax order: the first NaN, else the first maximum.
template <typename T>
inline void argmax_step(T v, int64_t c, T& best, int64_t& at, bool& seen_nan) {
  if (seen_nan) {
    return;
  }
  if (std::isnan(v)) {
    seen_nan = true;
    best = v;
    at = c;
  } else if (v > best) {
    best = v;
    at = c;
  }
}

// Exact statistics of one row in two scalar passes, sums in double for float.
template <typename T, typename scalar_t>
SoftRow<T> soft_row_exact(const scalar_t* x, const scalar_t* q, const SoftParams<T>& p) {
  using Acc = std::conditional_t<std::is_same_v<T, float>, double, T>;
  const int64_t C = p.num_classes;
  const T inf = std::numeric_limits<T>::infinity();
  T mx = -inf, mq = -inf;
  int64_t ax = 0, aq = 0;
  bool nan_x = false, nan_q = false;
  const T ref = C > 0 && std::isfinite(static_cast<T>(x[0])) ? static_cast<T>(x[0]) : T(0);
  Acc sum_adx = 0;
  Acc total = 0;
  for (int64_t c = 0; c < C; ++c) {
    const T xv = static_cast<T>(x[c]);
    const T qv = static_cast<T>(q[c]);
    const T a = soft_coef(qv, c, p);
    sum_adx += static_cast<Acc>(a) * (static_cast<Acc>(xv) - static_cast<Acc>(ref));
    total += a;
    argmax_step(xv, c, mx, ax, nan_x);
    argmax_step(qv, c, mq, aq, nan_q);
  }
  // An infinite max shifts by 0 (torch.logsumexp): -inf for an all -inf row, no inf - inf.
  const T shift = std::isfinite(mx) ? mx : T(0);
  Acc sum = 0;
  for (int64_t c = 0; c < C; ++c) {
    sum += std::exp(static_cast<T>(x[c]) - shift);
  }
  // A +inf logit makes every log-probability of its row NaN in log_softmax (inf - inf): a NaN
  // lse carries that to the loss and to the whole gradient row.
  const T log_sum = mx == inf ? std::numeric_limits<T>::quiet_NaN() : static_cast<T>(std::log(sum));
  const T S = static_cast<T>(total);
  const T loss =
      static_cast<T>(static_cast<Acc>(S) * (static_cast<Acc>(log_sum) + (shift - ref)) - sum_adx);
  return {loss, shift + log_sum, S, ax, aq};
}

template <typename T, typename scalar_t>
void soft_backward_row_exact(scalar_t* out, const scalar_t* x, const scalar_t* q, T g, T lse, T S,
                             const SoftParams<T>& p) {
  for (int64_t c = 0; c < p.num_classes; ++c) {
    const T prob = std::exp(static_cast<T>(x[c]) - lse);
    out[c] = static_cast<scalar_t>(g * (S * prob - soft_coef(static_cast<T>(q[c]), c, p)));
  }
}

}  // namespace
}  // namespace cookbook_ops

COOKBOOK_OPS_VEC_BEGIN
namespace cookbook_ops {
namespace {

using at::vec::Vectorized;

// Per-lane running max of a stream and the step column where it was first raised.
template <typename T>
struct LaneMax {
  using Vec = Vectorized<T>;
  Vec max = Vec(std::numeric_limits<T>::lowest());
  Vec step = Vec(T(0));

  C10_ALWAYS_INLINE void update(const Vec& v, const Vec& step_col) {
    step = Vec::blendv(step, step_col, v > max);
    max = at::vec::clamp_min(v, max);
  }
};

// The max of lo/hi lane states and its first column (lane l of lo holds columns step + l, of hi
// step + kLanes + l).
template <typename T>
C10_ALWAYS_INLINE std::pair<T, int64_t> merge_max(const LaneMax<T>& lo, const LaneMax<T>& hi,
                                                  int64_t C) {
  using Vec = Vectorized<T>;
  constexpr int64_t kLanes = Vec::size();
  const auto vmax_op = [](const Vec& a, const Vec& b) { return at::vec::clamp_min(a, b); };
  const auto vmin_op = [](const Vec& a, const Vec& b) { return at::vec::clamp_max(a, b); };
  const T m = at::vec::vec_reduce_all<T>(vmax_op, at::vec::clamp_min(lo.max, hi.max));
  const Vec vm(m);
  const Vec none(static_cast<T>(C));
  const Vec col_lo = Vec::blendv(none, lo.step + Vec::arange(T(0), T(1)), lo.max == vm);
  const Vec col_hi = Vec::blendv(none, hi.step + Vec::arange(T(kLanes), T(1)), hi.max == vm);
  const T col = at::vec::vec_reduce_all<T>(vmin_op, at::vec::clamp_max(col_lo, col_hi));
  return {m, static_cast<int64_t>(col)};
}

// The vector forward of one row; false when the row holds a non-finite logit or target (the
// weighted sum then is not finite), which the caller recomputes exactly.
template <typename scalar_t, bool kWeighted>
COOKBOOK_OPS_FLATTEN bool soft_row_vec(const scalar_t* x, const scalar_t* q,
                                       const SoftParams<at::opmath_type<scalar_t>>& p,
                                       SoftRow<at::opmath_type<scalar_t>>& out) {
  using T = at::opmath_type<scalar_t>;
  using Vec = Vectorized<T>;
  using IO = cpu::OpmathIO<scalar_t>;
  constexpr int64_t kLanes = Vec::size();
  constexpr int64_t kStep = IO::kStep;
  const int64_t C = p.num_classes;
  const int64_t full = C - C % kStep;
  const T ref = static_cast<T>(x[0]);
  const Vec v_ref(ref), v_delta(p.delta), v_off(p.off), v_step(static_cast<T>(kStep));
  LaneMax<T> mx_lo, mx_hi;
  Vec adx(T(0)), a_sum(T(0));
  Vec step_col(T(0));
  for (int64_t c = 0; c < full; c += kStep) {
    Vec x0, x1, q0, q1;
    IO::load(x + c, x0, x1);
    IO::load(q + c, q0, q1);
    Vec c0 = at::vec::fmadd(q0, v_delta, v_off);
    Vec c1 = at::vec::fmadd(q1, v_delta, v_off);
    if constexpr (kWeighted) {
      c0 = c0 * Vec::loadu(p.weight + c);
      c1 = c1 * Vec::loadu(p.weight + c + kLanes);
    }
    adx = at::vec::fmadd(c1, x1 - v_ref, at::vec::fmadd(c0, x0 - v_ref, adx));
    a_sum = a_sum + (c0 + c1);
    mx_lo.update(x0, step_col);
    mx_hi.update(x1, step_col);
    step_col = step_col + v_step;
  }
  const auto add = [](const Vec& a, const Vec& b) { return a + b; };
  T sum_adx = at::vec::vec_reduce_all<T>(add, adx);
  T S = at::vec::vec_reduce_all<T>(add, a_sum);
  auto [m, ax] = merge_max(mx_lo, mx_hi, C);
  for (int64_t c = full; c < C; ++c) {  // the last C % kStep entries
    const T xv = static_cast<T>(x[c]);
    const T a = soft_coef(static_cast<T>(q[c]), c, p);
    sum_adx += a * (xv - ref);
    S += a;
    if (xv > m) {
      m = xv;
      ax = c;
    }
  }
  if (!std::isfinite(sum_adx) || !std::isfinite(S)) {
    return false;
  }
  // Second pass over the row, now in cache: the sum of exps and the target's argmax (split
  // from the first pass so that neither loop runs out of vector registers).
  const Vec vm(m);
  Vec s_lo(T(0)), s_hi(T(0));
  LaneMax<T> mq_lo, mq_hi;
  step_col = Vec(T(0));
  for (int64_t c = 0; c < full; c += kStep) {
    Vec x0, x1, q0, q1;
    IO::load(x + c, x0, x1);
    IO::load(q + c, q0, q1);
    s_lo = s_lo + cpu::exp_nonpositive(x0 - vm);
    s_hi = s_hi + cpu::exp_nonpositive(x1 - vm);
    mq_lo.update(q0, step_col);
    mq_hi.update(q1, step_col);
    step_col = step_col + v_step;
  }
  T sum = at::vec::vec_reduce_all<T>(add, s_lo + s_hi);
  auto [mq, aq] = merge_max(mq_lo, mq_hi, C);
  for (int64_t c = full; c < C; ++c) {
    sum += std::exp(static_cast<T>(x[c]) - m);
    const T qv = static_cast<T>(q[c]);
    if (qv > mq) {
      mq = qv;
      aq = c;
    }
  }
  const T log_sum = std::log(sum);
  out = {S * (log_sum + (m - ref)) - sum_adx, m + log_sum, S, ax, aq};
  return true;
}

template <typename scalar_t, bool kWeighted>
COOKBOOK_OPS_FLATTEN void soft_backward_row_vec(scalar_t* out, const scalar_t* x, const scalar_t* q,
                                                at::opmath_type<scalar_t> g,
                                                at::opmath_type<scalar_t> lse,
                                                at::opmath_type<scalar_t> S,
                                                const SoftParams<at::opmath_type<scalar_t>>& p) {
  using T = at::opmath_type<scalar_t>;
  using Vec = Vectorized<T>;
  using IO = cpu::OpmathIO<scalar_t>;
  constexpr int64_t kLanes = Vec::size();
  constexpr int64_t kStep = IO::kStep;
  const int64_t C = p.num_classes;
  const int64_t full = C - C % kStep;
  const Vec v_lse(lse), v_gS(g * S), v_g(g), v_delta(p.delta), v_off(p.off);
  // g (S p - a) = gS p - g a
  auto grad_of = [&](const Vec& xv, const Vec& qv, const T* w) {
    Vec a = at::vec::fmadd(qv, v_delta, v_off);
    if constexpr (kWeighted) {
      a = a * Vec::loadu(w);
    }
    return at::vec::fmadd(cpu::exp_nonpositive(xv - v_lse), v_gS, Vec(T(0)) - a * v_g);
  };
  for (int64_t c = 0; c < full; c += kStep) {
    Vec x0, x1, q0, q1;
    IO::load(x + c, x0, x1);
    IO::load(q + c, q0, q1);
    const T* w = kWeighted ? p.weight + c : nullptr;
    IO::store(out + c, grad_of(x0, q0, w), grad_of(x1, q1, kWeighted ? w + kLanes : nullptr));
  }
  for (int64_t c = full; c < C; ++c) {
    const T prob = std::exp(static_cast<T>(x[c]) - lse);
    out[c] = static_cast<scalar_t>(g * (S * prob - soft_coef(static_cast<T>(q[c]), c, p)));
  }
}

template <typename scalar_t, bool kWeighted>
bool soft_row_vec_dispatch(const scalar_t* x, const scalar_t* q,
                           const SoftParams<at::opmath_type<scalar_t>>& p,
                           SoftRow<at::opmath_type<scalar_t>>& out) {
  return soft_row_vec<scalar_t, kWeighted>(x, q, p, out);
}

}  // namespace
}  // namespace cookbook_ops
COOKBOOK_OPS_VEC_END

namespace cookbook_ops {
namespace {

int64_t soft_rows_per_task(int64_t C) {
  return std::max<int64_t>(1, kSoftGrainElements / std::max<int64_t>(C, 1));
}

at::Tensor unit_inner(const at::Tensor& t) {
  return t.size(1) > 1 && t.stride(1) != 1 ? t.contiguous() : t;
}

template <typename T>
SoftParams<T> soft_params(const std::optional<at::Tensor>& weight, double on_value,
                          double off_value, int64_t C) {
  SoftParams<T> p;
  p.delta = static_cast<T>(on_value - off_value);
  p.off = static_cast<T>(off_value);
  p.weight = weight.has_value() ? weight->const_data_ptr<T>() : nullptr;
  p.num_classes = C;
  return p;
}

// Column indices ride in op-math lanes in the vector pass: exact in float below 2^24. Rows
// shorter than one vector step gain nothing from it.
template <typename scalar_t>
bool soft_vector_ok(int64_t C) {
  using T = at::opmath_type<scalar_t>;
  return cpu::vec_kernels_available() && C >= cpu::OpmathIO<scalar_t>::kStep &&
         C <= (int64_t{1} << std::numeric_limits<T>::digits);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> soft_ce_forward_cpu(
    const at::Tensor& logits_in, const at::Tensor& target_in,
    const std::optional<at::Tensor>& weight_in, double on_value, double off_value) {
  check_soft_target_args(logits_in, target_in, weight_in);
  TORCH_CHECK(logits_in.device().is_cpu(), "logits must be a CPU tensor, got ", logits_in.device());
  const at::Tensor logits = unit_inner(logits_in);
  const at::Tensor target = unit_inner(target_in);
  const std::optional<at::Tensor> weight =
      weight_in.has_value() ? std::optional<at::Tensor>(weight_in->contiguous()) : std::nullopt;
  const int64_t N = logits.size(0);
  const int64_t C = logits.size(1);
  const auto opts = logits.options().dtype(opmath_scalar_type(logits.scalar_type()));
  at::Tensor loss = at::empty({N}, opts);
  at::Tensor lse = at::empty({N}, opts);
  at::Tensor target_sum = at::empty({N}, opts);
  at::Tensor correct = at::empty({N}, logits.options().dtype(at::kBool));
  if (N == 0) {
    return {loss, lse, target_sum, correct};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "soft_target_cross_entropy_forward", [&] {
        using T = at::opmath_type<scalar_t>;
        const scalar_t* x = logits.const_data_ptr<scalar_t>();
        const scalar_t* q = target.const_data_ptr<scalar_t>();
        const int64_t sx = logits.stride(0);
        const int64_t sq = target.stride(0);
        const auto p = soft_params<T>(weight, on_value, off_value, C);
        T* loss_p = loss.mutable_data_ptr<T>();
        T* lse_p = lse.mutable_data_ptr<T>();
        T* sum_p = target_sum.mutable_data_ptr<T>();
        bool* correct_p = correct.mutable_data_ptr<bool>();
        const bool vec = soft_vector_ok<scalar_t>(C);
        at::parallel_for(0, N, soft_rows_per_task(C), [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            const scalar_t* xr = x + i * sx;
            const scalar_t* qr = q + i * sq;
            SoftRow<T> r{};
            const bool done =
                vec && (p.weight != nullptr ? soft_row_vec_dispatch<scalar_t, true>(xr, qr, p, r)
                                            : soft_row_vec_dispatch<scalar_t, false>(xr, qr, p, r));
            if (!done) {
              r = soft_row_exact(xr, qr, p);
            }
            loss_p[i] = r.loss;
            lse_p[i] = r.lse;
            sum_p[i] = r.target_sum;
            correct_p[i] = C > 0 && r.argmax_x == r.argmax_q;
          }
        });
      });
  return {loss, lse, target_sum, correct};
}

at::Tensor soft_ce_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& logits_in,
                                const at::Tensor& target_in,
                                const std::optional<at::Tensor>& weight_in, const at::Tensor& lse,
                                const at::Tensor& target_sum, double on_value, double off_value) {
  check_soft_target_args(logits_in, target_in, weight_in);
  TORCH_CHECK(logits_in.device().is_cpu(), "logits must be a CPU tensor, got ", logits_in.device());
  const at::Tensor logits = unit_inner(logits_in);
  const at::Tensor target = unit_inner(target_in);
  const std::optional<at::Tensor> weight =
      weight_in.has_value() ? std::optional<at::Tensor>(weight_in->contiguous()) : std::nullopt;
  const int64_t N = logits.size(0);
  const int64_t C = logits.size(1);
  const auto opmath = opmath_scalar_type(logits.scalar_type());
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor*>{"grad_loss", &grad_loss},
                                {"lse", &lse},
                                {"target_sum", &target_sum}}) {
    TORCH_CHECK(t->dim() == 1 && t->size(0) == N, name, " must be (N,) with N = ", N, ", got ",
                t->sizes());
    TORCH_CHECK(t->scalar_type() == opmath, name, " must be ", opmath, " for ",
                logits.scalar_type(), " logits, got ", t->scalar_type());
    TORCH_CHECK(t->device() == logits.device(), name, " must be on ", logits.device());
  }
  at::Tensor grad = at::empty({N, C}, logits.options().memory_format(at::MemoryFormat::Contiguous));
  if (N == 0 || C == 0) {
    return grad;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "soft_target_cross_entropy_backward", [&] {
        using T = at::opmath_type<scalar_t>;
        const scalar_t* x = logits.const_data_ptr<scalar_t>();
        const scalar_t* q = target.const_data_ptr<scalar_t>();
        const int64_t sx = logits.stride(0);
        const int64_t sq = target.stride(0);
        const auto p = soft_params<T>(weight, on_value, off_value, C);
        const T* g_p = grad_loss.const_data_ptr<T>();
        const T* lse_p = lse.const_data_ptr<T>();
        const T* sum_p = target_sum.const_data_ptr<T>();
        const int64_t sg = grad_loss.stride(0), sl = lse.stride(0), ss = target_sum.stride(0);
        scalar_t* out = grad.mutable_data_ptr<scalar_t>();
        const bool vec = soft_vector_ok<scalar_t>(C);
        at::parallel_for(0, N, soft_rows_per_task(C), [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            const T g = g_p[i * sg];
            const T l = lse_p[i * sl];
            const T S = sum_p[i * ss];
            scalar_t* o = out + i * C;
            // exp_nonpositive needs x - lse <= 0: a finite lse (every other row is NaN or
            // all -inf, left to the scalar IEEE formula).
            if (!vec || !std::isfinite(l)) {
              soft_backward_row_exact(o, x + i * sx, q + i * sq, g, l, S, p);
            } else if (p.weight != nullptr) {
              soft_backward_row_vec<scalar_t, true>(o, x + i * sx, q + i * sq, g, l, S, p);
            } else {
              soft_backward_row_vec<scalar_t, false>(o, x + i * sx, q + i * sq, g, l, S, p);
            }
          }
        });
      });
  return grad;
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CPU, m) {
  m.impl("soft_target_cross_entropy_forward", &cookbook_ops::soft_ce_forward_cpu);
  m.impl("soft_target_cross_entropy_backward", &cookbook_ops::soft_ce_backward_cpu);
}
