// at::vec::Vectorized with AVX2 + FMA bodies in a source file compiled for baseline x86-64,
// plus a fast exp for the non-positive arguments that softmax-style kernels produce.
//
// setup.py compiles each source once, without -mavx2, and a plain include of ATen's vec
// headers then gives the generic Vectorized whose exp() is a scalar loop: several times
// slower than ATen's own kernels, which are compiled once per ISA and picked at run time.
// Here the vec headers, and the kernels a file writes between COOKBOOK_OPS_VEC_BEGIN and
// COOKBOOK_OPS_VEC_END, are compiled for AVX2 + FMA + F16C through target pragmas while the
// rest of the file (registration, argument checks, static initializers) stays baseline, so
// the library still loads on any x86-64 CPU. Callers test vec_kernels_available() before
// running vector code and keep a scalar path for the CPUs where it is false.
//
// Rules for code between BEGIN and END: no namespace-scope objects with dynamic
// initialization (they would run AVX2 instructions at load time on every CPU), and no
// calls into it from baseline code except through functions checked as above.
#pragma once

// vec_base.h defines __at_align__; once it is in, the choice below can no longer be made.
#if defined(__at_align__)
#error "cookbook_ops/cpu_vec.h must be included before any ATen/cpu/vec header"
#endif

#include <ATen/AccumulateType.h>
#include <ATen/NumericUtils.h>
#include <ATen/OpMathType.h>
#include <ATen/Version.h>
#include <ATen/native/Math.h>
#include <ATen/native/cpu/zmath.h>
#include <c10/util/BFloat16-math.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <c10/util/Load.h>
#include <c10/util/MathConstants.h>
#include <c10/util/copysign.h>
#include <c10/util/irange.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

// The headers above are the non-vector dependencies of ATen/cpu/vec/vec.h. Including them
// first keeps their inline functions out of the AVX2 region, so baseline code that calls them
// can never end up in an AVX2-compiled copy.

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && \
    !defined(CPU_CAPABILITY)
// Built with AVX2 enabled for the whole file (-mavx2 -mfma -mf16c or -march=...): only the
// vec headers' own switch is missing.
#define COOKBOOK_OPS_VEC_AVX2 1
#define COOKBOOK_OPS_VEC_BEGIN
#define COOKBOOK_OPS_VEC_END
#define CPU_CAPABILITY_AVX2
#define CPU_CAPABILITY cookbook_ops_avx2
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#undef CPU_CAPABILITY
#undef CPU_CAPABILITY_AVX2

#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(CPU_CAPABILITY)
#define COOKBOOK_OPS_VEC_AVX2 1
// -Wpsabi: GCC notes that 256-bit arguments change the ABI, which only matters across
// differently compiled callers; every such call stays inside the region.
#define COOKBOOK_OPS_VEC_BEGIN                                             \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx,avx2,fma,f16c\")") \
      _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wpsabi\"")
#define COOKBOOK_OPS_VEC_END _Pragma("GCC diagnostic pop") _Pragma("GCC pop_options")
#include <immintrin.h>

COOKBOOK_OPS_VEC_BEGIN
// The GCC C++ front end does not update the ISA macros for a target pragma. sleef.h declares
// its 256-bit functions only under __AVX__, and ATen's vec headers choose their AVX2 bodies by
// CPU_CAPABILITY_AVX2. CPU_CAPABILITY names the inline namespace: a name of our own keeps
// these instantiations from sharing symbols with libtorch's at::vec::AVX2 ones.
#define __AVX__ 1
#include <sleef.h>
#undef __AVX__
#define CPU_CAPABILITY_AVX2
#define CPU_CAPABILITY cookbook_ops_avx2
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunknown-pragmas"  // their `#pragma unroll`
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#pragma GCC diagnostic pop
#undef CPU_CAPABILITY
#undef CPU_CAPABILITY_AVX2
COOKBOOK_OPS_VEC_END

#else  // other compilers and CPUs: Vectorized as the build's flags make it (generic, NEON, ...)
#define COOKBOOK_OPS_VEC_AVX2 0
#define COOKBOOK_OPS_VEC_BEGIN
#define COOKBOOK_OPS_VEC_END
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#endif

// For the hot loops of vector kernels. Torch's headers make a translation unit large enough
// for GCC's inline-unit-growth limit to stop inlining small Vectorized helpers into them; a
// call per vector, with its operands spilled to memory, costs more than the work.
#if defined(__GNUC__)
#define COOKBOOK_OPS_FLATTEN __attribute__((flatten))
#else
#define COOKBOOK_OPS_FLATTEN
#endif

namespace cookbook_ops::cpu {

// True when the code between COOKBOOK_OPS_VEC_BEGIN/END may run on this CPU. It also honours
// ATEN_CPU_CAPABILITY=default, ATen's switch for its own scalar kernels, so one environment
// variable exercises the scalar paths everywhere.
inline bool vec_kernels_available() {
  static const bool available = [] {
#if COOKBOOK_OPS_VEC_AVX2
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") ||
        !__builtin_cpu_supports("f16c")) {
      return false;
    }
    return at::get_cpu_capability() != "DEFAULT";
#else
    // Baseline-compiled vectors run anywhere; ATen's capability string cannot be used here
    // because it reads DEFAULT on CPUs (plain NEON, say) whose baseline vectors are the point.
    const char* forced = std::getenv("ATEN_CPU_CAPABILITY");
    return forced == nullptr || std::string(forced) != "default";
#endif
  }();
  return available;
}

}  // namespace cookbook_ops::cpu

COOKBOOK_OPS_VEC_BEGIN
namespace cookbook_ops::cpu {

// exp(t) for t <= 0 (or barely above 0 from rounding): within 2.6 ulp for t >= -20 and 5 ulp
// below, where the values are under 2e-9 of the exp(0) = 1 that every softmax row holds.
// Below -86 it returns exp(-86) ~ 4e-38 instead of underflowing: such terms are far below
// rounding next to that 1, and the clamp keeps 2^n a normal float without a second compare.
// NaN in gives NaN out when the NaN has a zero low payload (every NaN that arithmetic
// produces); callers must not rely on it otherwise.
//
// t = n ln2 + r with n = round(t / ln2) from the 1.5 * 2^23 rounding trick, |r| <= ln2 / 2;
// exp(r) from a degree-5 polynomial whose two leading coefficients are exactly 1 (so
// exp(0) == 1), fitted for least relative error; then 2^n is added straight into the exponent
// bits. Softmax kernels are bound by the FMA ports, so this spends 7 FMAs: a one-constant ln2
// reduction (its error, n * 2e-9 relative, only shows for tiny results) and no table.
C10_ALWAYS_INLINE at::vec::Vectorized<float> exp_nonpositive(const at::vec::Vectorized<float>& t) {
  using Vec = at::vec::Vectorized<float>;
  using IVec = at::vec::Vectorized<int32_t>;
  const Vec x = at::vec::clamp_min(t, Vec(-86.0f));
  const Vec round_magic(12582912.0f);  // 1.5 * 2^23
  const Vec k = at::vec::fmadd(x, Vec(1.44269504f), round_magic);
  const Vec n = k - round_magic;
  const Vec r = at::vec::fmadd(n, Vec(-0.693147182f), x);
  Vec p = Vec(8.31250381e-03f);
  p = at::vec::fmadd(p, r, Vec(4.18900922e-02f));
  p = at::vec::fmadd(p, r, Vec(1.66671142e-01f));
  p = at::vec::fmadd(p, r, Vec(4.99992311e-01f));
  p = at::vec::fmadd(p, r, Vec(1.0f));
  p = at::vec::fmadd(p, r, Vec(1.0f));
  // The low bits of k hold n (two's complement); shifting them into the exponent field and
  // adding scales p by 2^n.
  const IVec scale = at::vec::cast<int32_t>(k) << IVec(23);
  return at::vec::cast<float>(at::vec::cast<int32_t>(p) + scale);
}

// Two op-math vectors at a time from scalar_t (one full Vectorized<scalar_t> for 16-bit
// types, converted to float), and back with one rounding.
template <typename scalar_t>
struct OpmathIO {
  using T = at::opmath_type<scalar_t>;
  using Vec = at::vec::Vectorized<T>;
  static constexpr int64_t kStep = 2 * Vec::size();

  C10_ALWAYS_INLINE static void load(const scalar_t* p, Vec& lo, Vec& hi) {
    if constexpr (at::vec::is_reduced_floating_point_v<scalar_t>) {
      at::vec::load_to_float(p, lo, hi);
    } else {
      lo = Vec::loadu(p);
      hi = Vec::loadu(p + Vec::size());
    }
  }
  C10_ALWAYS_INLINE static void store(scalar_t* p, const Vec& lo, const Vec& hi) {
    if constexpr (at::vec::is_reduced_floating_point_v<scalar_t>) {
      at::vec::convert_from_float<scalar_t>(lo, hi).store(p);
    } else {
      lo.store(p);
      hi.store(p + Vec::size());
    }
  }
};

// Double precision is for gradcheck and exactness, not speed: Sleef's 1-ulp exp.
C10_ALWAYS_INLINE at::vec::Vectorized<double> exp_nonpositive(
    const at::vec::Vectorized<double>& t) {
  return t.exp();
}

}  // namespace cookbook_ops::cpu
COOKBOOK_OPS_VEC_END
