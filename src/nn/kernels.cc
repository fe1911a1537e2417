#include "nn/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// One clone per ISA level; the dynamic loader picks the best the CPU has. The loops are plain so
// the compiler vectorises them (expf / erff / tanhf through glibc's vector math library).
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define SR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SR_CLONES
#endif

// On a lambda that only prefetches: GCC 12 finds such a function free of side effects and drops
// the call whose result is unused before it would inline it, so without this no prefetch is left.
#define SR_ALWAYS_INLINE __attribute__((always_inline))

namespace semrouter::nn::kernels {

SR_CLONES void layer_norm_to(const float* in, float* out, int64_t rows, int64_t cols,
                             const float* gamma, const float* beta, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * cols;
    float* y = out + r * cols;
    float mean = 0;
#pragma omp simd reduction(+ : mean)
    for (int64_t i = 0; i < cols; ++i)
      mean += x[i];
    mean /= float(cols);
    float var = 0;
#pragma omp simd reduction(+ : var)
    for (int64_t i = 0; i < cols; ++i) {
      float d = x[i] - mean;
      var += d * d;
    }
    var /= float(cols);
    const float inv = 1.f / std::sqrt(var + eps);
    if (beta) {
#pragma omp simd
      for (int64_t i = 0; i < cols; ++i)
        y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < cols; ++i)
        y[i] = (x[i] - mean) * inv * gamma[i];
    }
  }
}

void layer_norm(float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta,
                float eps) {
  layer_norm_to(x, x, rows, cols, gamma, beta, eps);
}

SR_CLONES void add_inplace(float* y, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    y[i] += x[i];
}

SR_CLONES void gelu_inplace(float* x, int64_t n) {
  constexpr float kInvSqrt2 = 0.70710678118654752440f;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    x[i] = 0.5f * x[i] * (1.f + erff(x[i] * kInvSqrt2));
}

SR_CLONES void tanh_inplace(float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    x[i] = tanhf(x[i]);
}

SR_CLONES void geglu_row(const float* in, float* out, int64_t n) {
  constexpr float kInvSqrt2 = 0.70710678118654752440f;
  const float* gate = in + n;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    out[i] = 0.5f * in[i] * (1.f + erff(in[i] * kInvSqrt2)) * gate[i];
}

SR_CLONES void softmax_row(float* x, int64_t n) {
  float mx = x[0];
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < n; ++i)
    mx = x[i] > mx ? x[i] : mx;
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    x[i] = expf(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.f / sum;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    x[i] *= inv;
}

SR_CLONES void rope_row(float* x, const float* cos, const float* sin, int64_t half) {
  float* x2 = x + half;
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    float a = x[i], b = x2[i];
    x[i] = a * cos[i] - b * sin[i];
    x2[i] = b * cos[i] + a * sin[i];
  }
}

SR_CLONES void scale_inplace(float* x, float s, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    x[i] *= s;
}

namespace {

// Eight floats as one GCC vector: each clone compiles it to its ISA (one ymm register with AVX2,
// two xmm with the baseline). The dot products below are written with it because the plain loop
// vectorised into a single accumulator (one FMA chain: its latency, not the FMA rate, set the
// pace) and summed its tail through the stack. Loads go through an unaligned, may_alias variant
// of the type; they and the horizontal sum are macros, not inline functions, because a helper
// compiled for the file's -march cannot be inlined into a clone of another ISA level.
typedef float F8 __attribute__((vector_size(32)));
typedef float F8u __attribute__((vector_size(32), aligned(4), may_alias));
#define SR_LOAD8(p) (*reinterpret_cast<const F8u*>(p))
#define SR_HSUM(v)                                                                                 \
  ((((v)[0] + (v)[4]) + ((v)[1] + (v)[5])) + (((v)[2] + (v)[6]) + ((v)[3] + (v)[7])))

} // namespace

SR_CLONES float dot(const float* a, const float* b, int64_t n) {
  // Four independent accumulators, then the last n % 8 products one by one.
  F8 s0 = {}, s1 = {}, s2 = {}, s3 = {};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 += SR_LOAD8(a + i) * SR_LOAD8(b + i);
    s1 += SR_LOAD8(a + i + 8) * SR_LOAD8(b + i + 8);
    s2 += SR_LOAD8(a + i + 16) * SR_LOAD8(b + i + 16);
    s3 += SR_LOAD8(a + i + 24) * SR_LOAD8(b + i + 24);
  }
  for (; i + 8 <= n; i += 8)
    s0 += SR_LOAD8(a + i) * SR_LOAD8(b + i);
  const F8 t = (s0 + s1) + (s2 + s3);
  float s = SR_HSUM(t);
  for (; i < n; ++i)
    s += a[i] * b[i];
  return s;
}

// The dot products of q with four rows x0..x3 into s0..s3: two accumulators per row, so eight
// independent FMA chains share each load of the query. A macro for the reason above; it reads q,
// dim and d8 (dim rounded down to 8) from the caller, and its own names start with m (mx0 ...)
// so that none shadows an argument.
#define SR_DOT4(X0, X1, X2, X3, S0, S1, S2, S3)                                                    \
  do {                                                                                             \
    const float *mx0 = (X0), *mx1 = (X1), *mx2 = (X2), *mx3 = (X3);                                \
    F8 ma0 = {}, ma1 = {}, ma2 = {}, ma3 = {}, mb0 = {}, mb1 = {}, mb2 = {}, mb3 = {};             \
    int64_t mi = 0;                                                                                \
    for (; mi + 16 <= d8; mi += 16) {                                                              \
      const F8 mu = SR_LOAD8(q + mi), mv = SR_LOAD8(q + mi + 8);                                   \
      ma0 += mu * SR_LOAD8(mx0 + mi), mb0 += mv * SR_LOAD8(mx0 + mi + 8);                          \
      ma1 += mu * SR_LOAD8(mx1 + mi), mb1 += mv * SR_LOAD8(mx1 + mi + 8);                          \
      ma2 += mu * SR_LOAD8(mx2 + mi), mb2 += mv * SR_LOAD8(mx2 + mi + 8);                          \
      ma3 += mu * SR_LOAD8(mx3 + mi), mb3 += mv * SR_LOAD8(mx3 + mi + 8);                          \
    }                                                                                              \
    if (mi < d8) {                                                                                 \
      const F8 mu = SR_LOAD8(q + mi);                                                              \
      ma0 += mu * SR_LOAD8(mx0 + mi), ma1 += mu * SR_LOAD8(mx1 + mi);                              \
      ma2 += mu * SR_LOAD8(mx2 + mi), ma3 += mu * SR_LOAD8(mx3 + mi);                              \
      mi += 8;                                                                                     \
    }                                                                                              \
    const F8 mt0 = ma0 + mb0, mt1 = ma1 + mb1, mt2 = ma2 + mb2, mt3 = ma3 + mb3;                   \
    float ms0 = SR_HSUM(mt0), ms1 = SR_HSUM(mt1), ms2 = SR_HSUM(mt2), ms3 = SR_HSUM(mt3);          \
    for (; mi < dim; ++mi) {                                                                       \
      ms0 += q[mi] * mx0[mi], ms1 += q[mi] * mx1[mi];                                              \
      ms2 += q[mi] * mx2[mi], ms3 += q[mi] * mx3[mi];                                              \
    }                                                                                              \
    (S0) = ms0, (S1) = ms1, (S2) = ms2, (S3) = ms3;                                                \
  } while (0)

SR_CLONES void dot_rows(const float* q, const float* rows, int64_t n, int64_t dim, float* out) {
  const int64_t d8 = dim & ~int64_t(7);
  int64_t r = 0;
  for (; r + 4 <= n; r += 4) {
    const float* x0 = rows + r * dim;
    SR_DOT4(x0, x0 + dim, x0 + 2 * dim, x0 + 3 * dim, out[r], out[r + 1], out[r + 2], out[r + 3]);
  }
  for (; r < n; ++r)
    out[r] = dot(q, rows + r * dim, dim);
}

SR_CLONES void dot_rows_at(const float* q, const float* rows, const uint32_t* at, int64_t n,
                           int64_t dim, float* out) {
  const int64_t d8 = dim & ~int64_t(7);
  const size_t row_bytes = size_t(dim) * sizeof(float);
  // The rows lie scattered, mostly out of the caches: each group's rows are fetched kLead groups
  // ahead of its dot products.
  constexpr int64_t kLead = 4;
  auto fetch = [&](int64_t from) SR_ALWAYS_INLINE {
    for (int64_t r = from; r < std::min(n, from + 4); ++r) {
      const auto row = reinterpret_cast<uintptr_t>(rows + size_t(at[r]) * size_t(dim));
      for (uintptr_t line = row & ~uintptr_t(63); line < row + row_bytes; line += 64)
        __builtin_prefetch(reinterpret_cast<const void*>(line));
    }
  };
  for (int64_t g = 0; g < kLead; ++g)
    fetch(4 * g);
  for (int64_t r = 0; r < n; r += 4) {
    fetch(r + 4 * kLead);
    // A last group of fewer than four repeats its first row: every row's score comes from the
    // same arithmetic, wherever it falls.
    const float* x0 = rows + size_t(at[r]) * size_t(dim);
    const float* x1 = r + 1 < n ? rows + size_t(at[r + 1]) * size_t(dim) : x0;
    const float* x2 = r + 2 < n ? rows + size_t(at[r + 2]) * size_t(dim) : x0;
    const float* x3 = r + 3 < n ? rows + size_t(at[r + 3]) * size_t(dim) : x0;
    float s0, s1, s2, s3;
    SR_DOT4(x0, x1, x2, x3, s0, s1, s2, s3);
    out[r] = s0;
    if (r + 1 < n)
      out[r + 1] = s1;
    if (r + 2 < n)
      out[r + 2] = s2;
    if (r + 3 < n)
      out[r + 3] = s3;
  }
}

#undef SR_DOT4

#undef SR_LOAD8
#undef SR_HSUM

SR_CLONES void to_bf16(const float* x, uint16_t* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    __builtin_memcpy(&u, &x[i], 4);
    u += 0x7FFFu + ((u >> 16) & 1u); // inputs are finite activations: no NaN handling needed
    out[i] = uint16_t(u >> 16);
  }
}

SR_CLONES float quantize_row_u8(const float* x, uint8_t* out, int64_t n) {
  float mx = 0;
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < n; ++i) {
    float a = x[i] < 0 ? -x[i] : x[i];
    mx = a > mx ? a : mx;
  }
  const float s = mx > 0 ? mx / 127.f : 1.f;
  const float inv = 1.f / s;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i] * inv;
    int32_t q = int32_t(v + (v >= 0 ? 0.5f : -0.5f)); // round half away from zero
    out[i] = uint8_t(q + 128);
  }
  return s;
}

SR_CLONES void dequantize_row(const int32_t* acc, float a_scale, const float* w_scale,
                              const float* bias, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    y[i] = float(acc[i]) * (a_scale * w_scale[i]) + bias[i];
}

SR_CLONES float quantize_row_s8(const float* x, int8_t* out, int64_t n) {
  float mx = 0;
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < n; ++i) {
    float a = x[i] < 0 ? -x[i] : x[i];
    mx = a > mx ? a : mx;
  }
  const float s = mx > 0 ? mx / 127.f : 1.f;
  const float inv = 1.f / s;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i] * inv;
    out[i] = int8_t(int32_t(v + (v >= 0 ? 0.5f : -0.5f))); // round half away from zero
  }
  return s;
}

SR_CLONES void dot_rows_at_s8(const int16_t* q, const int8_t* rows, const uint32_t* at, int64_t n,
                              int64_t stride, int32_t* out) {
  // As dot_rows_at: the rows are scattered, so each is fetched kLead rows ahead. The sum below
  // is int16 times int8 widened to int16, the form GCC turns into pmaddwd (pairs of products
  // summed into int32 lanes): 32 bytes of a row in about ten instructions with AVX2.
  constexpr int64_t kLead = 16;
  auto fetch = [&](int64_t r) SR_ALWAYS_INLINE {
    if (r >= n)
      return;
    const auto row = reinterpret_cast<uintptr_t>(rows + size_t(at[r]) * size_t(stride));
    for (uintptr_t line = row & ~uintptr_t(63); line < row + uintptr_t(stride); line += 64)
      __builtin_prefetch(reinterpret_cast<const void*>(line));
  };
  for (int64_t r = 0; r < kLead; ++r)
    fetch(r);
  for (int64_t r = 0; r < n; ++r) {
    fetch(r + kLead);
    const int8_t* x = rows + size_t(at[r]) * size_t(stride);
    int32_t acc = 0;
    for (int64_t i = 0; i < stride; ++i)
      acc += q[i] * int16_t(x[i]);
    out[r] = acc;
  }
}

#if defined(__x86_64__)
namespace {

// 128-bit codes with AVX-512's VPOPCNTQ (not part of x86-64-v4, so not a clone of its own): eight
// rows per step, four to a register. The two words' counts of each row are summed by taking the
// even and the odd words of two registers apart, and narrowed to bytes.
__attribute__((target("avx512f,avx512vpopcntdq"))) void
hamming2_vpopcnt(const uint64_t* q, const uint64_t* codes, int64_t n, uint8_t* out) {
  const __m512i qq = _mm512_set_epi64(int64_t(q[1]), int64_t(q[0]), int64_t(q[1]), int64_t(q[0]),
                                      int64_t(q[1]), int64_t(q[0]), int64_t(q[1]), int64_t(q[0]));
  const __m512i even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
  int64_t r = 0;
  for (; r + 8 <= n; r += 8) {
    const __m512i a = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(codes + 2 * r), qq));
    const __m512i b =
        _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(codes + 2 * r + 8), qq));
    const __m512i d = _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b),
                                       _mm512_permutex2var_epi64(a, odd, b));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + r), _mm512_maskz_cvtepi64_epi8(0xFF, d));
  }
  for (; r < n; ++r)
    out[r] = uint8_t(__builtin_popcountll(codes[2 * r] ^ q[0]) +
                     __builtin_popcountll(codes[2 * r + 1] ^ q[1]));
}

const bool kHasVpopcnt = __builtin_cpu_supports("avx512vpopcntdq");

// count_at_most with AVX-512BW: one compare into a mask per 64 bytes, the tail a masked load.
__attribute__((target("avx512f,avx512bw,popcnt"))) size_t
count_at_most_avx512(const uint8_t* d, int64_t n, uint8_t x) {
  const __m512i x64 = _mm512_set1_epi8(static_cast<char>(x));
  size_t c = 0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    c += size_t(_mm_popcnt_u64(_mm512_cmple_epu8_mask(_mm512_loadu_si512(d + i), x64)));
  if (i < n) {
    const __mmask64 tail = (uint64_t(1) << (n - i)) - 1; // n - i < 64
    c += size_t(_mm_popcnt_u64(
        _mm512_mask_cmple_epu8_mask(tail, _mm512_maskz_loadu_epi8(tail, d + i), x64)));
  }
  return c;
}

const bool kHasAvx512bw = __builtin_cpu_supports("avx512bw");

} // namespace
#endif

size_t count_at_most(const uint8_t* d, int64_t n, uint8_t x) {
#if defined(__x86_64__)
  if (kHasAvx512bw)
    return count_at_most_avx512(d, n, x);
  // SSE2 (every x86-64): sixteen bytes a step, min(d, x) == d, a mask of the matches counted.
  const __m128i x16 = _mm_set1_epi8(static_cast<char>(x));
  size_t c = 0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i));
    c += size_t(
        __builtin_popcount(unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, x16), v)))));
  }
  for (; i < n; ++i)
    c += d[i] <= x;
  return c;
#else
  size_t c = 0;
  for (int64_t i = 0; i < n; ++i)
    c += d[i] <= x;
  return c;
#endif
}

SR_CLONES void hamming_rows(const uint64_t* q, const uint64_t* codes, int64_t n, int64_t words,
                            uint8_t* out) {
#if defined(__x86_64__)
  if (words == 2 && kHasVpopcnt) {
    hamming2_vpopcnt(q, codes, n, out);
    return;
  }
#endif
  // The cache's 128-bit codes: a loop of a fixed width, which the compiler unrolls.
  if (words == 2) {
    const uint64_t q0 = q[0], q1 = q[1];
    for (int64_t r = 0; r < n; ++r)
      out[r] = uint8_t(__builtin_popcountll(codes[2 * r] ^ q0) +
                       __builtin_popcountll(codes[2 * r + 1] ^ q1));
    return;
  }
  for (int64_t r = 0; r < n; ++r) {
    unsigned d = 0;
    for (int64_t w = 0; w < words; ++w)
      d += unsigned(__builtin_popcountll(codes[r * words + w] ^ q[w]));
    out[r] = uint8_t(d < 255 ? d : 255);
  }
}

} // namespace semrouter::nn::kernels
