// Bilinear pooling with signed sqrt and L2 normalization: CPU kernels for
//   cookbook_ops::bilinear_pool_forward  -> (z, norm)
//   cookbook_ops::bilinear_pool_backward -> [grad_x] or [grad_x, grad_y]
// (schemas and the math in cookbook_ops/_library.py and cookbook_ops/reference/).
//
// The Gram products are ATen GEMMs (MKL) in the op-math type; everything around them is fused
// into element-wise passes over one flat (N, D1*D2) buffer, each split into tasks of
// contiguous row blocks so that a small batch still spreads over the threads:
//   forward:  G = x y^T (GEMM) -> v = sign(G/M) sqrt(|G/M| + eps) in place, with per-block
//             sums of squares -> z = v / max(norm, 1e-12) in the output type (in place when
//             that is the op-math type, so fp32/fp64 allocate nothing beyond z itself). With
//             one stream only the upper-triangle blocks of G are multiplied (about 12% faster
//             forward at N=16, D=256, M=196 than a full bmm), and the last pass mirrors them.
//   backward: per-block <z, dz> -> dG / M in one pass over (z, dz); one stream: dS = dG + dG^T
//             formed block pair by block pair in cache (dG never stored), one GEMM; two
//             streams: dG y and dG^T x, the transpose a GEMM flag.
//             bfloat16 on a CPU with native bfloat16 dot products: dS is rounded to bfloat16
//             and the GEMM runs in bfloat16 with float accumulation, as on CUDA.
// Samples of at most kDirectMaxMacs multiply-adds (D1*D2*M: a few channels at a few positions)
// skip all of that: per-sample GEMM calls would cost more than their products, so each sample
// runs as one direct loop from x to z and back, whole samples per parallel task. One stream
// with D <= 64 (a single block) takes the batched bmm path of two streams instead of a GEMM
// call per sample.
// The 1/M scaling is applied in the op-math type before anything is rounded to 16 bits.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cookbook_ops/checks.h"
#include "cookbook_ops/cpu_vec.h"

namespace cookbook_ops {
namespace {

// F.normalize's floor on the norm; the reference backward divides by it where it applies.
constexpr double kNormFloor = 1e-12;

// Elements per parallel task: large enough to amortize waking the pool, small enough that a
// batch of one 256x256 Gram still splits across threads.
constexpr int64_t kGrainElements = 16384;

// The flat (N, D1*D2) buffer as tasks of whole rows: task t covers sample t / per_sample and
// the contiguous element range [begin, end) of it. Per-task partial sums are combined in task
// order, so results do not depend on the thread count.
struct Tiling {
  int64_t per_sample;  // tasks per sample
  int64_t rows;        // rows of D2 elements per task (the last one may have fewer)
  int64_t d1, d2;

  Tiling(int64_t d1_, int64_t d2_) : d1(d1_), d2(d2_) {
    rows = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(d2, 1));
    rows = std::min(rows, std::max<int64_t>(d1, 1));
    per_sample = (d1 + rows - 1) / rows;
  }
  int64_t sample(int64_t t) const { return t / per_sample; }
  int64_t begin(int64_t t) const { return sample(t) * d1 * d2 + (t % per_sample) * rows * d2; }
  int64_t end(int64_t t) const {
    const int64_t r1 = std::min(d1, (t % per_sample + 1) * rows);
    return sample(t) * d1 * d2 + r1 * d2;
  }
};

// ------------------------------------------------------------------------------------------
// Scalar passes (op-math T): the whole kernel where the vector code cannot run.

template <typename T>
inline T signed_sqrt(T g, T inv_m, T eps) {
  const T t = g * inv_m;
  // sign(0) = 0: exact-zero Gram entries (dead channels) give v = 0, not sqrt(eps).
  if (t == T(0)) {
    return T(0);
  }
  return std::copysign(std::sqrt(std::abs(t) + eps), t);
}

template <typename T>
T signed_sqrt_pass_scalar(T* g, int64_t len, T inv_m, T eps) {
  T acc = T(0);
  for (int64_t k = 0; k < len; ++k) {
    const T v = signed_sqrt(g[k], inv_m, eps);
    g[k] = v;
    acc += v * v;
  }
  return acc;
}

template <typename T, typename scalar_t>
void scale_pass_scalar(const T* v, scalar_t* out, int64_t len, T scale) {
  for (int64_t k = 0; k < len; ++k) {
    out[k] = static_cast<scalar_t>(v[k] * scale);
  }
}

template <typename T, typename scalar_t>
T dot_pass_scalar(const scalar_t* z, const scalar_t* dz, int64_t len) {
  T acc = T(0);
  for (int64_t k = 0; k < len; ++k) {
    acc += static_cast<T>(z[k]) * static_cast<T>(dz[k]);
  }
  return acc;
}

// Per-sample constants of dG / M = (dz - z c) * a / (b |z|), 0 where z == 0:
// a = 1/norm and c = <z, dz> normally; a = 1/1e-12 and no c term where the norm was floored;
// b = 2 norm M (|v| = norm |z|, and the 1/M of the backward GEMM folded in).
template <typename T>
struct GradCoef {
  T c, a, b;
};

template <typename T>
GradCoef<T> grad_coef(T dot, T norm, int64_t m) {
  GradCoef<T> k;
  const bool floored = norm < static_cast<T>(kNormFloor);
  k.c = floored ? T(0) : dot;
  k.a = T(1) / (floored ? static_cast<T>(kNormFloor) : norm);
  k.b = T(2) * norm * static_cast<T>(m);
  return k;
}

template <typename T, typename scalar_t>
void grad_pass_scalar(const scalar_t* z, const scalar_t* dz, T* out, int64_t len,
                      const GradCoef<T>& k) {
  for (int64_t e = 0; e < len; ++e) {
    const T zt = static_cast<T>(z[e]);
    const T dzt = static_cast<T>(dz[e]);
    out[e] = zt != T(0) ? ((dzt - zt * k.c) * k.a) / (k.b * std::abs(zt)) : T(0);
  }
}

// One stream: G = x x^T / M is symmetric, so only the blocks (I, J) with I <= J of a
// kBlock-square tiling are computed (10 of 16 GEMM blocks at D = 256), each followed at once by
// the signed-sqrt pass while it is still in cache; the normalize pass mirrors them.
constexpr int64_t kSymBlock = 64;

struct SymBlocks {
  int64_t d, nb, per_sample;
  std::vector<int64_t> bi, bj;  // block pairs of one sample, I <= J

  explicit SymBlocks(int64_t d_) : d(d_) {
    nb = (d + kSymBlock - 1) / kSymBlock;
    for (int64_t i = 0; i < nb; ++i) {
      for (int64_t j = i; j < nb; ++j) {
        bi.push_back(i);
        bj.push_back(j);
      }
    }
    per_sample = static_cast<int64_t>(bi.size());
  }
  int64_t lo(int64_t b) const { return b * kSymBlock; }
  int64_t len(int64_t b) const { return std::min(kSymBlock, d - b * kSymBlock); }
};

// C[i0:i0+mi, j0:j0+nj] = alpha * A_I A_J^T for one sample, written straight into the strided
// block of the (D, D) Gram (BLAS takes the leading dimension; beta = 0 ignores its old
// contents). Called inside parallel regions, where the GEMM itself runs single-threaded.
void gram_block(const at::Tensor& a_n, const at::Tensor& g_n, int64_t i0, int64_t mi, int64_t j0,
                int64_t nj, double alpha) {
  at::Tensor c = g_n.narrow(0, i0, mi).narrow(1, j0, nj);
  at::addmm_out(c, c, a_n.narrow(0, i0, mi), a_n.narrow(0, j0, nj).t(), /*beta=*/0, alpha);
}

// z[j, i] = z[i, j] for the block rows [i0, i0+mi) x cols [j0, j0+nj) of a (d, d) sample.
template <typename scalar_t>
void mirror_block(scalar_t* z, int64_t d, int64_t i0, int64_t mi, int64_t j0, int64_t nj) {
  constexpr int64_t kT = 16;
  for (int64_t ii = i0; ii < i0 + mi; ii += kT) {
    const int64_t ie = std::min(i0 + mi, ii + kT);
    for (int64_t jj = j0; jj < j0 + nj; jj += kT) {
      const int64_t je = std::min(j0 + nj, jj + kT);
      for (int64_t j = jj; j < je; ++j) {
        for (int64_t i = ii; i < ie; ++i) {
          z[j * d + i] = z[i * d + j];
        }
      }
    }
  }
}

// dS = dG + dG^T for one block pair (I, J), I <= J, of one sample: the two dG blocks are
// formed into cache-resident tiles (``form``: rows of dG from rows of z and dz), summed, and
// stored into both blocks of dS (``store``: rows of op-math values to rows of dS), so dG
// itself never goes to memory. tile_a and tile_b hold kSymBlock^2 values each.
template <typename T, typename Form, typename Store>
void symmetric_grad_block(int64_t d, int64_t i0, int64_t mi, int64_t j0, int64_t nj, T* tile_a,
                          T* tile_b, const Form& form, const Store& store) {
  constexpr int64_t kB = kSymBlock;
  for (int64_t r = 0; r < mi; ++r) {
    form((i0 + r) * d + j0, tile_a + r * kB, nj);
  }
  if (i0 == j0) {
    for (int64_t r = 0; r < mi; ++r) {
      tile_a[r * kB + r] *= T(2);
      for (int64_t c = r + 1; c < nj; ++c) {
        const T sum = tile_a[r * kB + c] + tile_a[c * kB + r];
        tile_a[r * kB + c] = sum;
        tile_a[c * kB + r] = sum;
      }
    }
    for (int64_t r = 0; r < mi; ++r) {
      store(tile_a + r * kB, (i0 + r) * d + j0, nj);
    }
    return;
  }
  for (int64_t r = 0; r < nj; ++r) {
    form((j0 + r) * d + i0, tile_b + r * kB, mi);
  }
  for (int64_t r = 0; r < mi; ++r) {
    for (int64_t c = 0; c < nj; ++c) {
      const T sum = tile_a[r * kB + c] + tile_b[c * kB + r];
      tile_a[r * kB + c] = sum;
      tile_b[c * kB + r] = sum;
    }
  }
  for (int64_t r = 0; r < mi; ++r) {
    store(tile_a + r * kB, (i0 + r) * d + j0, nj);
  }
  for (int64_t r = 0; r < nj; ++r) {
    store(tile_b + r * kB, (j0 + r) * d + i0, mi);
  }
}

// out[r, :] = sum_k w[r * w_row + k * w_col] src[k, :] for r < rows, k < inner, rows of len
// values: the small products of the direct loops below. Each output is summed in k order.
template <typename T>
void small_matmul_scalar(const T* w, int64_t w_row, int64_t w_col, const T* src, T* out,
                         int64_t rows, int64_t inner, int64_t len) {
  for (int64_t r = 0; r < rows; ++r) {
    T* o = out + r * len;
    std::fill_n(o, len, T(0));
    for (int64_t k = 0; k < inner; ++k) {
      const T wk = w[r * w_row + k * w_col];
      const T* s = src + k * len;
      for (int64_t e = 0; e < len; ++e) {
        o[e] += wk * s[e];
      }
    }
  }
}
}  // namespace
}  // namespace cookbook_ops

// ------------------------------------------------------------------------------------------
// Vector passes (AVX2 on x86-64; see cpu_vec.h).

COOKBOOK_OPS_VEC_BEGIN
namespace cookbook_ops {
namespace {

using at::vec::Vectorized;

template <typename T>
C10_ALWAYS_INLINE Vectorized<T> signed_sqrt_vec(const Vectorized<T>& g, const Vectorized<T>& inv_m,
                                                const Vectorized<T>& eps) {
  using Vec = Vectorized<T>;
  const Vec t = g * inv_m;
  const Vec sign = t & Vec(T(-0.0));
  const Vec mag = (t.abs() + eps).sqrt();
  return (mag | sign) & (t != Vec(T(0)));
}

template <typename T>
COOKBOOK_OPS_FLATTEN T signed_sqrt_pass_vec(T* g, int64_t len, T inv_m_s, T eps_s) {
  using Vec = Vectorized<T>;
  constexpr int64_t kL = Vec::size();
  const Vec inv_m(inv_m_s);
  const Vec eps(eps_s);
  Vec acc0(T(0)), acc1(T(0));
  int64_t k = 0;
  for (; k + 2 * kL <= len; k += 2 * kL) {
    const Vec v0 = signed_sqrt_vec(Vec::loadu(g + k), inv_m, eps);
    const Vec v1 = signed_sqrt_vec(Vec::loadu(g + k + kL), inv_m, eps);
    v0.store(g + k);
    v1.store(g + k + kL);
    acc0 = at::vec::fmadd(v0, v0, acc0);
    acc1 = at::vec::fmadd(v1, v1, acc1);
  }
  for (; k < len; k += kL) {
    const int64_t n = std::min<int64_t>(kL, len - k);
    // Zero padding maps to v = 0, which adds nothing to the sum.
    const Vec v = signed_sqrt_vec(Vec::loadu(g + k, n), inv_m, eps);
    v.store(g + k, n);
    acc0 = at::vec::fmadd(v, v, acc0);
  }
  return at::vec::vec_reduce_all<T>([](Vec a, Vec b) { return a + b; }, acc0 + acc1);
}

template <typename T, typename scalar_t>
COOKBOOK_OPS_FLATTEN void scale_pass_vec(const T* v, scalar_t* out, int64_t len, T scale_s) {
  using Vec = Vectorized<T>;
  using IO = cpu::OpmathIO<scalar_t>;
  constexpr int64_t kL = Vec::size();
  const Vec scale(scale_s);
  int64_t k = 0;
  for (; k + IO::kStep <= len; k += IO::kStep) {
    IO::store(out + k, Vec::loadu(v + k) * scale, Vec::loadu(v + k + kL) * scale);
  }
  scale_pass_scalar(v + k, out + k, len - k, scale_s);
}

template <typename T, typename scalar_t>
COOKBOOK_OPS_FLATTEN T dot_pass_vec(const scalar_t* z, const scalar_t* dz, int64_t len) {
  using Vec = Vectorized<T>;
  using IO = cpu::OpmathIO<scalar_t>;
  Vec acc0(T(0)), acc1(T(0));
  int64_t k = 0;
  for (; k + IO::kStep <= len; k += IO::kStep) {
    Vec z0, z1, d0, d1;
    IO::load(z + k, z0, z1);
    IO::load(dz + k, d0, d1);
    acc0 = at::vec::fmadd(z0, d0, acc0);
    acc1 = at::vec::fmadd(z1, d1, acc1);
  }
  const T head = at::vec::vec_reduce_all<T>([](Vec a, Vec b) { return a + b; }, acc0 + acc1);
  return head + dot_pass_scalar<T>(z + k, dz + k, len - k);
}

template <typename T>
C10_ALWAYS_INLINE Vectorized<T> grad_vec(const Vectorized<T>& z, const Vectorized<T>& dz,
                                         const Vectorized<T>& c, const Vectorized<T>& a,
                                         const Vectorized<T>& b) {
  using Vec = Vectorized<T>;
  // Lanes with z == 0 divide by zero; the mask drops them.
  const Vec q = ((dz - z * c) * a) / (b * z.abs());
  return q & (z != Vec(T(0)));
}

template <typename T, typename scalar_t>
COOKBOOK_OPS_FLATTEN void grad_pass_vec(const scalar_t* z, const scalar_t* dz, T* out, int64_t len,
                                        const GradCoef<T>& k_s) {
  using Vec = Vectorized<T>;
  using IO = cpu::OpmathIO<scalar_t>;
  constexpr int64_t kL = Vec::size();
  const Vec c(k_s.c), a(k_s.a), b(k_s.b);
  int64_t k = 0;
  for (; k + IO::kStep <= len; k += IO::kStep) {
    Vec z0, z1, d0, d1;
    IO::load(z + k, z0, z1);
    IO::load(dz + k, d0, d1);
    grad_vec(z0, d0, c, a, b).store(out + k);
    grad_vec(z1, d1, c, a, b).store(out + k + kL);
  }
  grad_pass_scalar(z + k, dz + k, out + k, len - k, k_s);
}

// small_matmul_scalar with the accumulators in registers across k (the same sums, in the
// same order, fused multiply-adds).
template <typename T>
COOKBOOK_OPS_FLATTEN void small_matmul_vec(const T* w, int64_t w_row, int64_t w_col, const T* src,
                                           T* out, int64_t rows, int64_t inner, int64_t len) {
  using Vec = Vectorized<T>;
  constexpr int64_t kL = Vec::size();
  for (int64_t r = 0; r < rows; ++r) {
    const T* wr = w + r * w_row;
    T* o = out + r * len;
    int64_t e = 0;
    for (; e + 2 * kL <= len; e += 2 * kL) {
      Vec acc0(T(0)), acc1(T(0));
      for (int64_t k = 0; k < inner; ++k) {
        const Vec wk(wr[k * w_col]);
        acc0 = at::vec::fmadd(wk, Vec::loadu(src + k * len + e), acc0);
        acc1 = at::vec::fmadd(wk, Vec::loadu(src + k * len + e + kL), acc1);
      }
      acc0.store(o + e);
      acc1.store(o + e + kL);
    }
    for (; e < len; e += kL) {
      const int64_t n = std::min(kL, len - e);
      Vec acc(T(0));
      for (int64_t k = 0; k < inner; ++k) {
        acc = at::vec::fmadd(Vec(wr[k * w_col]), Vec::loadu(src + k * len + e, n), acc);
      }
      acc.store(o + e, n);
    }
  }
}

}  // namespace
}  // namespace cookbook_ops
COOKBOOK_OPS_VEC_END

namespace cookbook_ops {
namespace {

void check_inputs(const at::Tensor& x, const std::optional<at::Tensor>& y) {
  TORCH_CHECK(x.dim() == 3, "bilinear_pool: x must be (N, D1, M), got shape ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "bilinear_pool: x must be floating point, got ",
              x.scalar_type());
  TORCH_CHECK(x.device().is_cpu(), "bilinear_pool: x must be a CPU tensor, got ", x.device());
  if (y.has_value()) {
    const auto& yy = *y;
    TORCH_CHECK(yy.dim() == 3, "bilinear_pool: y must be (N, D2, M), got shape ", yy.sizes());
    TORCH_CHECK(yy.size(0) == x.size(0) && yy.size(2) == x.size(2),
                "bilinear_pool: x and y must have the same N and M, got x ", x.sizes(), " and y ",
                yy.sizes());
    TORCH_CHECK(yy.scalar_type() == x.scalar_type(), "bilinear_pool: y must have the dtype of x (",
                x.scalar_type(), "), got ", yy.scalar_type());
    TORCH_CHECK(yy.device() == x.device(), "bilinear_pool: y is on ", yy.device(), " but x is on ",
                x.device());
  }
}

// Whether this CPU multiplies bfloat16 natively (AVX512-BF16; AMX CPUs have it too), so that a
// bfloat16 GEMM (oneDNN, float accumulation) beats the float one on upcast operands: about
// 2.3x at the benchmark's backward product. Elsewhere the float GEMM stays.
bool native_bf16_gemm() {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
  static const bool supported = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
  }();
  return supported && at::hasMKLDNN() && at::globalContext().userEnabledMkldnn();
#else
  return false;
#endif
}

// x (and y) in the op-math type, contiguous: the GEMM operands.
at::Tensor opmath_operand(const at::Tensor& t) {
  return t.to(opmath_scalar_type(t.scalar_type())).contiguous();
}

// a: (N, D, M) contiguous op-math operand; norm: (N,) op-math, filled here.
std::tuple<at::Tensor, at::Tensor> forward_one_stream(const at::Tensor& a, at::ScalarType dtype,
                                                      double eps, at::Tensor& norm) {
  const int64_t N = a.size(0);
  const int64_t D = a.size(1);
  const int64_t M = a.size(2);
  const auto opmath = a.scalar_type();
  at::Tensor g = at::empty({N, D * D}, a.options());
  at::Tensor z = dtype == opmath ? g : at::empty({N, D * D}, a.options().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "bilinear_pool_forward", [&] {
    using T = at::opmath_type<scalar_t>;
    const SymBlocks blocks(D);
    const int64_t tasks = N * blocks.per_sample;
    std::vector<T> partial(tasks);
    const at::Tensor g3 = g.view({N, D, D});
    T* gp = g.mutable_data_ptr<T>();
    scalar_t* zp = z.mutable_data_ptr<scalar_t>();
    T* np = norm.mutable_data_ptr<T>();
    const T inv_m = T(1) / static_cast<T>(M);
    const T eps_t = static_cast<T>(eps);
    const bool vec = cpu::vec_kernels_available();

    at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
      // Dispatch-key exclusions are thread-local and parallel_for's workers do not inherit them.
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / blocks.per_sample;
        const int64_t p = t % blocks.per_sample;
        const int64_t i0 = blocks.lo(blocks.bi[p]), mi = blocks.len(blocks.bi[p]);
        const int64_t j0 = blocks.lo(blocks.bj[p]), nj = blocks.len(blocks.bj[p]);
        T* gs = gp + n * D * D;
        gram_block(a[n], g3[n], i0, mi, j0, nj, 1.0);
        T acc = T(0);
        for (int64_t i = i0; i < i0 + mi; ++i) {
          T* row = gs + i * D + j0;
          acc += vec ? signed_sqrt_pass_vec(row, nj, inv_m, eps_t)
                     : signed_sqrt_pass_scalar(row, nj, inv_m, eps_t);
        }
        // An off-diagonal block stands for its mirror image too.
        partial[t] = i0 == j0 ? acc : T(2) * acc;
      }
    });
    for (int64_t n = 0; n < N; ++n) {
      T sum = T(0);
      for (int64_t p = 0; p < blocks.per_sample; ++p) {
        sum += partial[n * blocks.per_sample + p];
      }
      np[n] = std::sqrt(sum);
    }
    at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / blocks.per_sample;
        const int64_t p = t % blocks.per_sample;
        const int64_t i0 = blocks.lo(blocks.bi[p]), mi = blocks.len(blocks.bi[p]);
        const int64_t j0 = blocks.lo(blocks.bj[p]), nj = blocks.len(blocks.bj[p]);
        const T scale = T(1) / std::max(np[n], static_cast<T>(kNormFloor));
        const T* gs = gp + n * D * D;
        scalar_t* zs = zp + n * D * D;
        for (int64_t i = i0; i < i0 + mi; ++i) {
          if (vec) {
            scale_pass_vec(gs + i * D + j0, zs + i * D + j0, nj, scale);
          } else {
            scale_pass_scalar(gs + i * D + j0, zs + i * D + j0, nj, scale);
          }
        }
        if (i0 != j0) {
          mirror_block(zs, D, i0, mi, j0, nj);
        }
      }
    });
  });
  return {z, norm};
}

// ------------------------------------------------------------------------------------------
// Many small problems (say 4096 samples of 4 channels at 2x2): a GEMM call per sample or per
// block costs microseconds, far more than the D1*D2*M multiply-adds of such a sample, so these
// samples run as direct loops instead, from x (y) to z in one go, whole samples per parallel
// task. The products and passes are the vector ones above where the CPU has them. Everything
// is in op-math and rounded once, to the output.

// Multiply-adds per sample (D1*D2*M) up to which the direct loops beat the GEMM paths, and
// the longest M they take: their products accumulate each output over M in one chain, which
// falls behind the batched GEMM on longer rows (512 samples of 16 channels at M = 128: 1.65x
// the snippet's time, 0.7x through the bmm path; measured with 2 threads).
constexpr int64_t kDirectMaxMacs = 32768;
constexpr int64_t kDirectMaxM = 16;
// Multiply-adds per parallel task of the direct loops: tens of microseconds.
constexpr int64_t kDirectGrainMacs = 65536;

bool use_direct_loops(int64_t d1, int64_t d2, int64_t m) {
  // M = 0 keeps the GEMM path's handling (the Python layer rejects it anyway).
  return m > 0 && m <= kDirectMaxM && d1 <= kDirectMaxMacs && d2 <= kDirectMaxMacs &&
         d1 * d2 * m <= kDirectMaxMacs;
}

int64_t direct_grain(int64_t d1, int64_t d2, int64_t m) {
  return std::max<int64_t>(1, kDirectGrainMacs / (d1 * d2 * (m + 1)));
}

// `len` values of src in op-math: src itself when it already is, else converted into dst.
template <typename T, typename scalar_t>
const T* as_opmath(const scalar_t* src, T* dst, int64_t len) {
  if constexpr (std::is_same_v<T, scalar_t>) {
    return src;
  } else {
    for (int64_t k = 0; k < len; ++k) {
      dst[k] = static_cast<T>(src[k]);
    }
    return dst;
  }
}

template <typename T>
void small_matmul(bool vec, const T* w, int64_t w_row, int64_t w_col, const T* src, T* out,
                  int64_t rows, int64_t inner, int64_t len) {
  if (vec) {
    small_matmul_vec(w, w_row, w_col, src, out, rows, inner, len);
  } else {
    small_matmul_scalar(w, w_row, w_col, src, out, rows, inner, len);
  }
}

// a: (N, D1, M) contiguous; b: (N, D2, M) contiguous or undefined (one stream).
template <typename scalar_t>
void forward_direct(const at::Tensor& a, const at::Tensor& b, at::Tensor& z, at::Tensor& norm,
                    double eps) {
  using T = at::opmath_type<scalar_t>;
  const int64_t N = a.size(0), D1 = a.size(1), M = a.size(2);
  const bool two = b.defined();
  const int64_t D2 = two ? b.size(1) : D1;
  const scalar_t* ap = a.const_data_ptr<scalar_t>();
  const scalar_t* bp = two ? b.const_data_ptr<scalar_t>() : ap;
  scalar_t* zp = z.mutable_data_ptr<scalar_t>();
  T* np = norm.mutable_data_ptr<T>();
  const T inv_m = T(1) / static_cast<T>(M);
  const T eps_t = static_cast<T>(eps);
  const bool vec = cpu::vec_kernels_available();
  at::parallel_for(0, N, direct_grain(D1, D2, M), [&](int64_t n0, int64_t n1) {
    // x rows in op-math, y^T (M, D2) and G (D1, D2) of one sample
    std::vector<T> scratch(D1 * M + M * D2 + D1 * D2);
    T* x_buf = scratch.data();
    T* yt = x_buf + D1 * M;
    T* g = yt + M * D2;
    for (int64_t n = n0; n < n1; ++n) {
      const T* xs = as_opmath(ap + n * D1 * M, x_buf, D1 * M);
      const scalar_t* ys = bp + n * D2 * M;
      for (int64_t j = 0; j < D2; ++j) {
        for (int64_t k = 0; k < M; ++k) {
          yt[k * D2 + j] = static_cast<T>(ys[j * M + k]);
        }
      }
      // G = x y^T; with one stream G[i, j] and G[j, i] are the same products summed in the
      // same order, so G comes out exactly symmetric.
      small_matmul(vec, xs, M, 1, yt, g, D1, M, D2);
      const T sum = vec ? signed_sqrt_pass_vec(g, D1 * D2, inv_m, eps_t)
                        : signed_sqrt_pass_scalar(g, D1 * D2, inv_m, eps_t);
      const T norm_n = std::sqrt(sum);
      np[n] = norm_n;
      const T scale = T(1) / std::max(norm_n, static_cast<T>(kNormFloor));
      if (vec) {
        scale_pass_vec(g, zp + n * D1 * D2, D1 * D2, scale);
      } else {
        scale_pass_scalar(g, zp + n * D1 * D2, D1 * D2, scale);
      }
    }
  });
}

// The backward of forward_direct: grad_x (and grad_y), (N, D, M) in the dtype of x.
template <typename scalar_t>
void backward_direct(const at::Tensor& dz, const at::Tensor& a, const at::Tensor& b,
                     const at::Tensor& z, const at::Tensor& norm, at::Tensor& grad_a,
                     at::Tensor& grad_b) {
  using T = at::opmath_type<scalar_t>;
  const int64_t N = a.size(0), D1 = a.size(1), M = a.size(2);
  const bool two = b.defined();
  const int64_t D2 = two ? b.size(1) : D1;
  const int64_t sq = D1 * D2;
  const scalar_t* ap = a.const_data_ptr<scalar_t>();
  const scalar_t* bp = two ? b.const_data_ptr<scalar_t>() : nullptr;
  const scalar_t* zp = z.const_data_ptr<scalar_t>();
  const scalar_t* dzp = dz.const_data_ptr<scalar_t>();
  const T* np = norm.const_data_ptr<T>();
  scalar_t* gap = grad_a.mutable_data_ptr<scalar_t>();
  scalar_t* gbp = two ? grad_b.mutable_data_ptr<scalar_t>() : nullptr;
  const bool vec = cpu::vec_kernels_available();
  const auto store = [&](const T* src, scalar_t* dst, int64_t len) {
    if (vec) {
      scale_pass_vec(src, dst, len, T(1));
    } else {
      scale_pass_scalar(src, dst, len, T(1));
    }
  };
  at::parallel_for(0, N, direct_grain(D1, D2, M), [&](int64_t n0, int64_t n1) {
    // dG / M (D1, D2), x and y rows in op-math, one gradient of up to max(D1, D2) rows
    std::vector<T> scratch(sq + D1 * M + D2 * M + std::max(D1, D2) * M);
    T* dg = scratch.data();
    T* x_buf = dg + sq;
    T* y_buf = x_buf + D1 * M;
    T* out = y_buf + D2 * M;
    for (int64_t n = n0; n < n1; ++n) {
      const scalar_t* zs = zp + n * sq;
      const scalar_t* dzs = dzp + n * sq;
      const T dot = vec ? dot_pass_vec<T>(zs, dzs, sq) : dot_pass_scalar<T>(zs, dzs, sq);
      const GradCoef<T> k = grad_coef(dot, np[n], M);
      if (vec) {
        grad_pass_vec(zs, dzs, dg, sq, k);
      } else {
        grad_pass_scalar(zs, dzs, dg, sq, k);
      }
      const T* xs = as_opmath(ap + n * D1 * M, x_buf, D1 * M);
      if (!two) {
        // dS = dG + dG^T, in place: dA = dS A / M.
        for (int64_t i = 0; i < D1; ++i) {
          dg[i * D1 + i] *= T(2);
          for (int64_t j = i + 1; j < D1; ++j) {
            const T s = dg[i * D1 + j] + dg[j * D1 + i];
            dg[i * D1 + j] = s;
            dg[j * D1 + i] = s;
          }
        }
        small_matmul(vec, dg, D1, 1, xs, out, D1, D1, M);
        store(out, gap + n * D1 * M, D1 * M);
        continue;
      }
      const T* ys = as_opmath(bp + n * D2 * M, y_buf, D2 * M);
      small_matmul(vec, dg, D2, 1, ys, out, D1, D2, M);  // dA = dG B / M
      store(out, gap + n * D1 * M, D1 * M);
      small_matmul(vec, dg, 1, D2, xs, out, D2, D1, M);  // dB = dG^T A / M
      store(out, gbp + n * D2 * M, D2 * M);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> bilinear_pool_forward_cpu(const at::Tensor& x_in,
                                                             const std::optional<at::Tensor>& y_in,
                                                             double eps) {
  // The ATen calls below are the implementation, not part of any autograd graph.
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  check_inputs(x_in, y_in);
  TORCH_CHECK(eps > 0, "bilinear_pool: eps must be > 0, got ", eps);
  const int64_t N = x_in.size(0);
  const int64_t D1 = x_in.size(1);
  const int64_t M = x_in.size(2);
  const int64_t D2 = y_in.has_value() ? y_in->size(1) : D1;
  const auto dtype = x_in.scalar_type();
  const auto opmath = opmath_scalar_type(dtype);
  at::Tensor norm = at::empty({N}, x_in.options().dtype(opmath));
  if (N == 0 || D1 == 0 || D2 == 0) {
    norm.zero_();
    return {at::empty({N, D1 * D2}, x_in.options()), norm};
  }

  if (use_direct_loops(D1, D2, M)) {
    const at::Tensor a = x_in.contiguous();
    const at::Tensor b = y_in.has_value() ? y_in->contiguous() : at::Tensor();
    at::Tensor z = at::empty({N, D1 * D2}, x_in.options());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "bilinear_pool_forward",
                                    [&] { forward_direct<scalar_t>(a, b, z, norm, eps); });
    return {z, norm};
  }
  const at::Tensor a = opmath_operand(x_in);
  // One stream: the upper-triangle GEMM calls only save work when a sample spans several
  // blocks; within one block they are a GEMM call per sample, and one bmm over the batch
  // (the path below, as for two streams) is faster (256 samples of 2 channels at M = 256:
  // 9x the snippet's time per sample calls, about 1x with the bmm).
  if (!y_in.has_value() && M > 0 && D1 > kSymBlock) {
    return forward_one_stream(a, dtype, eps, norm);
  }
  const at::Tensor b = y_in.has_value() ? opmath_operand(*y_in) : a;
  // Unscaled Gram; 1/M is applied in op-math by the signed-sqrt pass.
  at::Tensor g = at::bmm(a, b.transpose(1, 2));
  at::Tensor z =
      dtype == opmath ? g.view({N, D1 * D2}) : at::empty({N, D1 * D2}, x_in.options().dtype(dtype));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "bilinear_pool_forward", [&] {
    using T = at::opmath_type<scalar_t>;
    const Tiling tiles(D1, D2);
    const int64_t tasks = N * tiles.per_sample;
    std::vector<T> partial(tasks);
    T* gp = g.mutable_data_ptr<T>();
    scalar_t* zp = z.mutable_data_ptr<scalar_t>();
    T* np = norm.mutable_data_ptr<T>();
    const T inv_m = T(1) / static_cast<T>(M);
    const T eps_t = static_cast<T>(eps);
    const bool vec = cpu::vec_kernels_available();

    at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t e0 = tiles.begin(t);
        const int64_t len = tiles.end(t) - e0;
        partial[t] = vec ? signed_sqrt_pass_vec(gp + e0, len, inv_m, eps_t)
                         : signed_sqrt_pass_scalar(gp + e0, len, inv_m, eps_t);
      }
    });
    for (int64_t n = 0; n < N; ++n) {
      T sum = T(0);
      for (int64_t p = 0; p < tiles.per_sample; ++p) {
        sum += partial[n * tiles.per_sample + p];
      }
      np[n] = std::sqrt(sum);
    }
    at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t e0 = tiles.begin(t);
        const int64_t len = tiles.end(t) - e0;
        const T scale = T(1) / std::max(np[tiles.sample(t)], static_cast<T>(kNormFloor));
        if (vec) {
          scale_pass_vec(gp + e0, zp + e0, len, scale);
        } else {
          scale_pass_scalar(gp + e0, zp + e0, len, scale);
        }
      }
    });
  });
  return {z, norm};
}

std::vector<at::Tensor> bilinear_pool_backward_cpu(const at::Tensor& grad_z_in,
                                                   const at::Tensor& x_in,
                                                   const std::optional<at::Tensor>& y_in,
                                                   const at::Tensor& z_in,
                                                   const at::Tensor& norm_in) {
  // The ATen calls below are the implementation, not part of any autograd graph.
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  check_inputs(x_in, y_in);
  const int64_t N = x_in.size(0);
  const int64_t D1 = x_in.size(1);
  const int64_t M = x_in.size(2);
  const int64_t D2 = y_in.has_value() ? y_in->size(1) : D1;
  const auto dtype = x_in.scalar_type();
  const auto opmath = opmath_scalar_type(dtype);
  TORCH_CHECK(z_in.numel() == N * D1 * D2 && z_in.dim() >= 1 && z_in.size(0) == N,
              "bilinear_pool_backward: z must be (N, D1*D2) = (", N, ", ", D1 * D2, "), got ",
              z_in.sizes());
  TORCH_CHECK(grad_z_in.sizes() == z_in.sizes(), "bilinear_pool_backward: grad_z must match z ",
              z_in.sizes(), ", got ", grad_z_in.sizes());
  TORCH_CHECK(z_in.scalar_type() == dtype && grad_z_in.scalar_type() == dtype,
              "bilinear_pool_backward: z and grad_z must have the dtype of x (", dtype, "), got ",
              z_in.scalar_type(), " and ", grad_z_in.scalar_type());
  TORCH_CHECK(norm_in.dim() == 1 && norm_in.size(0) == N,
              "bilinear_pool_backward: norm must be (N,) with N = ", N, ", got ", norm_in.sizes());
  TORCH_CHECK(norm_in.scalar_type() == opmath, "bilinear_pool_backward: norm must be ", opmath,
              " for ", dtype, " inputs, got ", norm_in.scalar_type());
  for (const at::Tensor* t : {&grad_z_in, &z_in, &norm_in}) {
    TORCH_CHECK(t->device() == x_in.device(), "bilinear_pool_backward: all tensors must be on ",
                x_in.device(), ", got one on ", t->device());
  }

  const bool two = y_in.has_value();
  if (N == 0 || D1 == 0 || D2 == 0 || M == 0) {
    std::vector<at::Tensor> out{at::zeros_like(x_in, at::MemoryFormat::Contiguous)};
    if (two) {
      out.push_back(at::zeros_like(*y_in, at::MemoryFormat::Contiguous));
    }
    return out;
  }
  const at::Tensor z = z_in.contiguous();
  const at::Tensor dz = grad_z_in.contiguous();
  const at::Tensor norm = norm_in.contiguous();
  if (use_direct_loops(D1, D2, M)) {
    const at::Tensor a = x_in.contiguous();
    const at::Tensor b = two ? y_in->contiguous() : at::Tensor();
    at::Tensor grad_a = at::empty(a.sizes(), a.options());
    at::Tensor grad_b = two ? at::empty(b.sizes(), b.options()) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "bilinear_pool_backward", [&] {
      backward_direct<scalar_t>(dz, a, b, z, norm, grad_a, grad_b);
    });
    if (two) {
      return {grad_a, grad_b};
    }
    return {grad_a};
  }
  const bool bf16_gemm = dtype == at::kBFloat16 && native_bf16_gemm();
  // One stream: dS = dG + dG^T, stored in the GEMM's operand type; two streams: dG in op-math.
  const bool ds_bf16 = !two && bf16_gemm;
  at::Tensor dg = at::empty({N, D1, D2}, x_in.options().dtype(ds_bf16 ? at::kBFloat16 : opmath));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "bilinear_pool_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    const Tiling tiles(D1, D2);
    const int64_t tasks = N * tiles.per_sample;
    std::vector<T> partial(tasks);
    const scalar_t* zp = z.const_data_ptr<scalar_t>();
    const scalar_t* dzp = dz.const_data_ptr<scalar_t>();
    const T* np = norm.const_data_ptr<T>();
    const bool vec = cpu::vec_kernels_available();

    at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t e0 = tiles.begin(t);
        const int64_t len = tiles.end(t) - e0;
        partial[t] = vec ? dot_pass_vec<T>(zp + e0, dzp + e0, len)
                         : dot_pass_scalar<T>(zp + e0, dzp + e0, len);
      }
    });
    std::vector<GradCoef<T>> coef(N);
    for (int64_t n = 0; n < N; ++n) {
      T dot = T(0);
      for (int64_t p = 0; p < tiles.per_sample; ++p) {
        dot += partial[n * tiles.per_sample + p];
      }
      coef[n] = grad_coef(dot, np[n], M);
    }
    if (two) {
      T* gp = dg.mutable_data_ptr<T>();
      at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t e0 = tiles.begin(t);
          const int64_t len = tiles.end(t) - e0;
          const auto& k = coef[tiles.sample(t)];
          if (vec) {
            grad_pass_vec(zp + e0, dzp + e0, gp + e0, len, k);
          } else {
            grad_pass_scalar(zp + e0, dzp + e0, gp + e0, len, k);
          }
        }
      });
      return;
    }
    const SymBlocks blocks(D1);
    const int64_t sq = D1 * D1;
    auto symmetric = [&](auto* gp) {
      using out_t = std::remove_pointer_t<decltype(gp)>;
      at::parallel_for(0, N * blocks.per_sample, 1, [&](int64_t t0, int64_t t1) {
        std::vector<T> scratch(2 * kSymBlock * kSymBlock);
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t n = t / blocks.per_sample;
          const int64_t p = t % blocks.per_sample;
          const scalar_t* zs = zp + n * sq;
          const scalar_t* dzs = dzp + n * sq;
          out_t* gs = gp + n * sq;
          const auto& k = coef[n];
          const auto form = [&](int64_t at, T* dst, int64_t len) {
            if (vec) {
              grad_pass_vec(zs + at, dzs + at, dst, len, k);
            } else {
              grad_pass_scalar(zs + at, dzs + at, dst, len, k);
            }
          };
          const auto store = [&](const T* src, int64_t at, int64_t len) {
            if (vec) {
              scale_pass_vec(src, gs + at, len, T(1));
            } else {
              scale_pass_scalar(src, gs + at, len, T(1));
            }
          };
          symmetric_grad_block<T>(D1, blocks.lo(blocks.bi[p]), blocks.len(blocks.bi[p]),
                                  blocks.lo(blocks.bj[p]), blocks.len(blocks.bj[p]), scratch.data(),
                                  scratch.data() + kSymBlock * kSymBlock, form, store);
        }
      });
    };
    // bfloat16 dS only for bfloat16 inputs (ds_t is T otherwise, and ds_bf16 false).
    using ds_t = std::conditional_t<std::is_same_v<scalar_t, at::BFloat16>, at::BFloat16, T>;
    if (ds_bf16) {
      symmetric(dg.mutable_data_ptr<ds_t>());
    } else {
      symmetric(dg.mutable_data_ptr<T>());
    }
  });

  // GEMM operands: with the bfloat16 GEMM, x (y) as they are and dS rounded to bfloat16 like any
  // bfloat16 operand (the CUDA kernels do the same; the GEMM multiplies exactly, accumulates in
  // float and rounds once, to the output, so .to(dtype) is a no-op); otherwise all in op-math.
  const auto operand = [&](const at::Tensor& t) {
    return bf16_gemm ? t.contiguous() : opmath_operand(t);
  };
  const at::Tensor ds = bf16_gemm && two ? dg.to(at::kBFloat16) : dg;
  const at::Tensor a = operand(x_in);
  if (!two) {
    return {at::bmm(ds, a).to(dtype)};
  }
  const at::Tensor b = operand(*y_in);
  return {at::bmm(ds, b).to(dtype), at::bmm(ds.transpose(1, 2), a).to(dtype)};
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, CPU, m) {
  m.impl("bilinear_pool_forward", &cookbook_ops::bilinear_pool_forward_cpu);
  m.impl("bilinear_pool_backward", &cookbook_ops::bilinear_pool_backward_cpu);
}
