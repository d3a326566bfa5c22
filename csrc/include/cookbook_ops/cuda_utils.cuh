// Device helpers shared by the CUDA kernels: 16-byte vector I/O for every floating dtype,
// the split of a row into an unaligned head, an aligned vector body and a tail, exp/log in
// op-math precision, and warp/block reductions of arbitrary (trivially copyable) structs.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace cookbook_ops {
namespace cuda {

constexpr int kVecBytes = 16;

// Elements of T in one 16-byte access: 8 for 16-bit types, 4 for float, 2 for double.
template <typename T>
__host__ __device__ constexpr int vec_width() {
  return kVecBytes / static_cast<int>(sizeof(T));
}

template <typename T>
__host__ __device__ constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

// Elements before the first 16-byte aligned address at or after p. Tensors are always
// element-aligned, so the division is exact.
template <typename T>
__device__ __forceinline__ int elements_to_alignment(const T* p) {
  const auto misalign = static_cast<int>(reinterpret_cast<uintptr_t>(p) & (kVecBytes - 1));
  return ((kVecBytes - misalign) & (kVecBytes - 1)) / static_cast<int>(sizeof(T));
}

__device__ __forceinline__ bool is_vec_aligned(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & (kVecBytes - 1)) == 0;
}

// --- 16-byte loads and stores with conversion to and from the op-math type ---------------
// Raw bits and explicit conversions, because torch builds extensions with the implicit
// half/bfloat16 conversions and operators disabled; on sm_80+ one cvt rounds and packs two
// values (round to nearest even, as the scalar stores).

__device__ __forceinline__ uint4 load_vec_raw(const void* p) {
  return __ldg(reinterpret_cast<const uint4*>(p));
}

// Explicit PTX: a plain uint4 assignment gets split into four 32-bit stores when the compiler
// cannot prove the alignment the caller guarantees.
__device__ __forceinline__ void store_vec_raw(void* p, uint4 v) {
  asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z),
               "r"(v.w)
               : "memory");
}

template <typename T>
struct VecIO;

template <>
struct VecIO<float> {
  using acc_t = float;
  __device__ __forceinline__ static void unpack(uint4 r, float (&v)[4]) {
    v[0] = __uint_as_float(r.x);
    v[1] = __uint_as_float(r.y);
    v[2] = __uint_as_float(r.z);
    v[3] = __uint_as_float(r.w);
  }
  __device__ __forceinline__ static uint4 pack(const float (&v)[4]) {
    return make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]),
                      __float_as_uint(v[3]));
  }
  __device__ __forceinline__ static float load(const float* p) { return __ldg(p); }
  __device__ __forceinline__ static void store(float* p, float v) { *p = v; }
};

template <>
struct VecIO<double> {
  using acc_t = double;
  __device__ __forceinline__ static void unpack(uint4 r, double (&v)[2]) {
    v[0] = __hiloint2double(static_cast<int>(r.y), static_cast<int>(r.x));
    v[1] = __hiloint2double(static_cast<int>(r.w), static_cast<int>(r.z));
  }
  __device__ __forceinline__ static uint4 pack(const double (&v)[2]) {
    return make_uint4(
        static_cast<unsigned>(__double2loint(v[0])), static_cast<unsigned>(__double2hiint(v[0])),
        static_cast<unsigned>(__double2loint(v[1])), static_cast<unsigned>(__double2hiint(v[1])));
  }
  __device__ __forceinline__ static double load(const double* p) { return __ldg(p); }
  __device__ __forceinline__ static void store(double* p, double v) { *p = v; }
};

template <>
struct VecIO<c10::BFloat16> {
  using acc_t = float;
  // A bfloat16 is the high half of a float: widening is a shift or a mask, exact.
  __device__ __forceinline__ static void unpack2(unsigned w, float& lo, float& hi) {
    lo = __uint_as_float(w << 16);
    hi = __uint_as_float(w & 0xffff0000u);
  }
  __device__ __forceinline__ static unsigned pack2(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned w;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(w) : "f"(hi), "f"(lo));
    return w;
#else
    return static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
           (static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
#endif
  }
  __device__ __forceinline__ static void unpack(uint4 r, float (&v)[8]) {
    unpack2(r.x, v[0], v[1]);
    unpack2(r.y, v[2], v[3]);
    unpack2(r.z, v[4], v[5]);
    unpack2(r.w, v[6], v[7]);
  }
  __device__ __forceinline__ static uint4 pack(const float (&v)[8]) {
    return make_uint4(pack2(v[0], v[1]), pack2(v[2], v[3]), pack2(v[4], v[5]), pack2(v[6], v[7]));
  }
  __device__ __forceinline__ static float load(const c10::BFloat16* p) {
    return __uint_as_float(static_cast<unsigned>(__ldg(&p->x)) << 16);
  }
  __device__ __forceinline__ static void store(c10::BFloat16* p, float v) {
    p->x = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
};

template <>
struct VecIO<c10::Half> {
  using acc_t = float;
  __device__ __forceinline__ static void unpack2(unsigned w, float& lo, float& hi) {
    lo = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xffffu)));
    hi = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
  }
  __device__ __forceinline__ static unsigned pack2(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned w;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(w) : "f"(hi), "f"(lo));
    return w;
#else
    return static_cast<unsigned>(__half_as_ushort(__float2half_rn(lo))) |
           (static_cast<unsigned>(__half_as_ushort(__float2half_rn(hi))) << 16);
#endif
  }
  __device__ __forceinline__ static void unpack(uint4 r, float (&v)[8]) {
    unpack2(r.x, v[0], v[1]);
    unpack2(r.y, v[2], v[3]);
    unpack2(r.z, v[4], v[5]);
    unpack2(r.w, v[6], v[7]);
  }
  __device__ __forceinline__ static uint4 pack(const float (&v)[8]) {
    return make_uint4(pack2(v[0], v[1]), pack2(v[2], v[3]), pack2(v[4], v[5]), pack2(v[6], v[7]));
  }
  __device__ __forceinline__ static float load(const c10::Half* p) {
    return __half2float(__ushort_as_half(__ldg(&p->x)));
  }
  __device__ __forceinline__ static void store(c10::Half* p, float v) {
    p->x = __half_as_ushort(__float2half_rn(v));
  }
};

// uint8 images blend in float; results round to nearest even (as torch.round) and saturate
// to [0, 255], so a blend of valid pixels can never wrap around.
template <>
struct VecIO<uint8_t> {
  using acc_t = float;
  __device__ __forceinline__ static uint8_t saturate(float v) {
    return static_cast<uint8_t>(::min(::max(__float2int_rn(v), 0), 255));
  }
  __device__ __forceinline__ static void unpack(uint4 r, float (&v)[16]) {
    const unsigned w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int j = 0; j < 16; ++j) v[j] = __uint2float_rn((w[j >> 2] >> (8 * (j & 3))) & 0xffu);
  }
  __device__ __forceinline__ static uint4 pack(const float (&v)[16]) {
    unsigned w[4] = {0u, 0u, 0u, 0u};
#pragma unroll
    for (int j = 0; j < 16; ++j)
      w[j >> 2] |= static_cast<unsigned>(saturate(v[j])) << (8 * (j & 3));
    return make_uint4(w[0], w[1], w[2], w[3]);
  }
  __device__ __forceinline__ static float load(const uint8_t* p) {
    return __uint2float_rn(__ldg(p));
  }
  __device__ __forceinline__ static void store(uint8_t* p, float v) { *p = saturate(v); }
};

// K consecutive op-math values (weights and the like) starting at p; one or two 16-byte loads
// when p is 16-byte aligned, scalar loads otherwise (the caller decides once per row).
template <typename T, int K>
__device__ __forceinline__ void load_values(const T* p, bool aligned, T (&v)[K]) {
  constexpr int kPer = vec_width<T>();
  if constexpr (K % kPer == 0) {
    if (aligned) {
#pragma unroll
      for (int j = 0; j < K; j += kPer) {
        T part[kPer];
        VecIO<T>::unpack(load_vec_raw(p + j), part);
#pragma unroll
        for (int q = 0; q < kPer; ++q) v[j + q] = part[q];
      }
      return;
    }
  }
#pragma unroll
  for (int j = 0; j < K; ++j) v[j] = __ldg(p + j);
}

// --- the row split ------------------------------------------------------------------------
// A row of n elements is visited as `head` scalar elements (up to the first 16-byte boundary),
// then whole kVec-element vectors, then the scalar tail. Lane `lane` of a group of `group`
// threads takes every group-th element or vector, so each element is visited exactly once
// and each thread sees its elements in increasing column order (first-index tie breaking
// relies on that). The visitor provides
//   scalar(col)                         one element
//   vectors<U>(col, stride)             U vectors starting at col, col + stride, ...
// so that it can issue U independent 16-byte loads before using any of them.
// head == n gives an all-scalar visit (for rows whose pointers cannot be co-aligned).
template <int kVec, int kUnroll, typename Visitor>
__device__ __forceinline__ void visit_row(int64_t n, int64_t head, int lane, int group,
                                          Visitor& visitor) {
  for (int64_t c = lane; c < head; c += group) visitor.scalar(c);
  const int64_t body_vecs = (n - head) / kVec;
  const int64_t vec_stride = static_cast<int64_t>(group) * kVec;
  int64_t k = lane;
  for (; k + static_cast<int64_t>(kUnroll - 1) * group < body_vecs; k += kUnroll * group) {
    visitor.template vectors<kUnroll>(head + k * kVec, vec_stride);
  }
  for (; k < body_vecs; k += group) visitor.template vectors<1>(head + k * kVec, vec_stride);
  for (int64_t c = head + body_vecs * kVec + lane; c < n; c += group) visitor.scalar(c);
}

// --- op-math exp/log ----------------------------------------------------------------------
// float: one multiply and the SFU exp2 (about 2 ulp for the arguments near 0 that dominate a
// softmax sum). The flush-to-zero form, because without it every call also carries a
// denormal-range fix-up (three more instructions); results below 2^-126 become 0, far below
// what any float sum or gradient here can resolve. double: libdevice, because float64
// gradcheck needs full precision.
__device__ __forceinline__ float opmath_exp(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x * 1.4426950408889634f));
  return y;
}
__device__ __forceinline__ double opmath_exp(double x) { return ::exp(x); }
__device__ __forceinline__ float opmath_log(float x) { return ::logf(x); }
__device__ __forceinline__ double opmath_log(double x) { return ::log(x); }

template <typename T>
__device__ __forceinline__ T quiet_nan() {
  return static_cast<T>(__longlong_as_double(0x7ff8000000000000LL));
}
template <>
__device__ __forceinline__ float quiet_nan<float>() {
  return __int_as_float(0x7fffffff);
}

template <typename T>
__device__ __forceinline__ T infinity() {
  return static_cast<T>(__longlong_as_double(0x7ff0000000000000LL));
}
template <>
__device__ __forceinline__ float infinity<float>() {
  return __int_as_float(0x7f800000);
}

// --- reductions ---------------------------------------------------------------------------
// Structs reduce member by member: give them a `shfl_xor(const T&, int lane_mask, int width)`
// overload found by argument-dependent lookup.
__device__ __forceinline__ float shfl_xor(float v, int lane_mask, int width) {
  return __shfl_xor_sync(0xffffffffu, v, lane_mask, width);
}
__device__ __forceinline__ double shfl_xor(double v, int lane_mask, int width) {
  return __shfl_xor_sync(0xffffffffu, v, lane_mask, width);
}
__device__ __forceinline__ int64_t shfl_xor(int64_t v, int lane_mask, int width) {
  return __shfl_xor_sync(0xffffffffu, static_cast<long long>(v), lane_mask, width);
}

// Butterfly over aligned groups of `width` lanes (a power of two <= 32): every lane ends with
// its group's result. All 32 lanes of the warp must call it.
template <typename T, typename Op>
__device__ __forceinline__ T warp_allreduce(T v, Op op, int width) {
  for (int mask = width >> 1; mask > 0; mask >>= 1) v = op(v, shfl_xor(v, mask, width));
  return v;
}

// Whole-block reduction; the result is valid in thread 0 only. blockDim.x must be a multiple
// of 32, every thread must call it, and `scratch` must hold 32 values. The scratch is not
// reused afterwards, so one barrier suffices.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T identity, T* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = warp_allreduce(v, op, 32);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x >> 5) ? scratch[lane] : identity;
    v = warp_allreduce(v, op, 32);
  }
  return v;
}

}  // namespace cuda
}  // namespace cookbook_ops
