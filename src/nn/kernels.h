// Elementwise and row kernels of the encoders. Each is compiled for AVX-512, AVX2 and the
// baseline ISA and picked at load time (GCC target_clones), so the binary stays portable.
#pragma once

#include <cstddef>
#include <cstdint>

namespace semrouter::nn::kernels {

// x[r] = LayerNorm(x[r]) · gamma + beta for each of `rows` rows of `cols` (beta may be null).
void layer_norm(float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta,
                float eps);
// out[r] = LayerNorm(in[r]) (separate buffers).
void layer_norm_to(const float* in, float* out, int64_t rows, int64_t cols, const float* gamma,
                   const float* beta, float eps);
void add_inplace(float* y, const float* x, int64_t n);
// Exact GELU: 0.5 · x · (1 + erf(x / √2)).
void gelu_inplace(float* x, int64_t n);
void tanh_inplace(float* x, int64_t n);
// out[i] = gelu(in[i]) · in[n + i] for i < n (ModernBERT's GeGLU on one row of width 2n).
void geglu_row(const float* in, float* out, int64_t n);
// Numerically stable softmax of one row, in place.
void softmax_row(float* x, int64_t n);
// Rotary embedding, half-split: x[i], x[i+d/2] rotated by the angle whose cos/sin are given.
void rope_row(float* x, const float* cos, const float* sin, int64_t half);
void scale_inplace(float* x, float s, int64_t n);
// Σ a[i] · b[i] (the semantic cache's HNSW graph distance).
float dot(const float* a, const float* b, int64_t n);
// out[r] = dot(q, rows + r · dim, dim) for each of n contiguous rows (the cache's flat scan).
void dot_rows(const float* q, const float* rows, int64_t n, int64_t dim, float* out);
// out[k] = dot(q, rows + at[k] · dim, dim) for n rows picked from a table (the cache's rerank of
// its prefiltered entries): the same arithmetic as dot_rows' groups of four for every row, each
// group's rows fetched a few groups ahead of its dot products.
void dot_rows_at(const float* q, const float* rows, const uint32_t* at, int64_t n, int64_t dim,
                 float* out);
// Symmetric per-row int8 quantisation (x ~ scale * out, |out| <= 127); returns the scale.
float quantize_row_s8(const float* x, int8_t* out, int64_t n);
// out[k] = the dot product of q (int8 values widened to int16) with row at[k] of the int8 `rows`,
// `stride` values apart (q as long; both zero past their vectors' ends): the cache's approximate
// rerank, a quarter of dot_rows_at's bytes. Each row is fetched a few rows ahead.
void dot_rows_at_s8(const int16_t* q, const int8_t* rows, const uint32_t* at, int64_t n,
                    int64_t stride, int32_t* out);
// out[r] = the Hamming distance between q and row r of `codes` (`words` 64-bit words per row),
// capped at 255 (the cache's prefilter over its sign codes).
void hamming_rows(const uint64_t* q, const uint64_t* codes, int64_t n, int64_t words, uint8_t* out);
// f32 -> bf16, round to nearest even.
void to_bf16(const float* x, uint16_t* out, int64_t n);
// Symmetric per-row int8 quantisation stored as u8 with zero point 128; returns the row's scale.
float quantize_row_u8(const float* x, uint8_t* out, int64_t n);
// How many of d[0..n) are at most x (the cache's prefilter, finding its cut by bisection):
// AVX-512BW where the CPU has it (checked at start-up), else SSE2.
size_t count_at_most(const uint8_t* d, int64_t n, uint8_t x);
// y[i] = acc[i] · (a_scale · w_scale[i]) + bias[i]
void dequantize_row(const int32_t* acc, float a_scale, const float* w_scale, const float* bias,
                    float* y, int64_t n);

} // namespace semrouter::nn::kernels
