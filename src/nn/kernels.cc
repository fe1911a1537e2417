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

SR_CLONES float dot(const float* a, const float* b, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i)
    s += a[i] * b[i];
  return s;
}

SR_CLONES void dot_rows(const float* q, const float* rows, int64_t n, int64_t dim, float* out) {
  for (int64_t r = 0; r < n; ++r) {
    const float* x = rows + r * dim;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < dim; ++i)
      s += q[i] * x[i];
    out[r] = s;
  }
}

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

} // namespace semrouter::nn::kernels
