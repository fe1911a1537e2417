#include "nn/kernels.h"

#include <cmath>

// One clone per ISA level; the dynamic loader picks the best the CPU has. The loops are plain so
// the compiler vectorises them (expf / erff / tanhf through glibc's vector math library).
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define SR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SR_CLONES
#endif

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

SR_CLONES void dot_rows(const float* q, const float* rows, int64_t n, int64_t dim, float* out) {
  // Four rows at a time, two accumulators each: eight independent FMA chains share each load of
  // the query.
  const int64_t d8 = dim & ~int64_t(7);
  int64_t r = 0;
  for (; r + 4 <= n; r += 4) {
    const float* x0 = rows + r * dim;
    const float* x1 = x0 + dim;
    const float* x2 = x1 + dim;
    const float* x3 = x2 + dim;
    F8 a0 = {}, a1 = {}, a2 = {}, a3 = {}, b0 = {}, b1 = {}, b2 = {}, b3 = {};
    int64_t i = 0;
    for (; i + 16 <= d8; i += 16) {
      const F8 u = SR_LOAD8(q + i), v = SR_LOAD8(q + i + 8);
      a0 += u * SR_LOAD8(x0 + i), b0 += v * SR_LOAD8(x0 + i + 8);
      a1 += u * SR_LOAD8(x1 + i), b1 += v * SR_LOAD8(x1 + i + 8);
      a2 += u * SR_LOAD8(x2 + i), b2 += v * SR_LOAD8(x2 + i + 8);
      a3 += u * SR_LOAD8(x3 + i), b3 += v * SR_LOAD8(x3 + i + 8);
    }
    if (i < d8) {
      const F8 u = SR_LOAD8(q + i);
      a0 += u * SR_LOAD8(x0 + i), a1 += u * SR_LOAD8(x1 + i);
      a2 += u * SR_LOAD8(x2 + i), a3 += u * SR_LOAD8(x3 + i);
      i += 8;
    }
    const F8 t0 = a0 + b0, t1 = a1 + b1, t2 = a2 + b2, t3 = a3 + b3;
    float s0 = SR_HSUM(t0), s1 = SR_HSUM(t1), s2 = SR_HSUM(t2), s3 = SR_HSUM(t3);
    for (; i < dim; ++i) {
      s0 += q[i] * x0[i], s1 += q[i] * x1[i];
      s2 += q[i] * x2[i], s3 += q[i] * x3[i];
    }
    out[r] = s0, out[r + 1] = s1, out[r + 2] = s2, out[r + 3] = s3;
  }
  for (; r < n; ++r)
    out[r] = dot(q, rows + r * dim, dim);
}

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

SR_CLONES void hamming_rows(const uint64_t* q, const uint64_t* codes, int64_t n, int64_t words,
                            uint8_t* out) {
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
