// Dense layers over two GEMM backends: oneDNN (f32, bf16, int8) and OpenBLAS (f32).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace semrouter::nn {

enum class Backend { OneDNN, OpenBLAS };
enum class Precision { Auto, F32, BF16, INT8 };

const char* backend_name(Backend b);
const char* precision_name(Precision p);
core::StatusOr<Backend> parse_backend(const std::string& s);
core::StatusOr<Precision> parse_precision(const std::string& s);

struct CpuFeatures {
  bool avx2 = false, avx512f = false, avx512_bf16 = false, avx512_vnni = false, avx_vnni = false,
       amx_bf16 = false, amx_int8 = false;
  static const CpuFeatures& get();
  bool fast_bf16() const { return avx512_bf16 || amx_bf16; }
  bool fast_int8() const { return avx512_vnni || avx_vnni || amx_int8; }
  std::string describe() const;
};

// What `Auto` resolves to on this CPU: bf16 where the CPU has native bf16 dot products, else f32.
// (int8 is never chosen automatically: it changes results more; ask for it explicitly.)
Precision resolve_precision(Precision requested, Backend backend);

// Sets how many threads one GEMM (and one attention call) may use on the calling thread.
void set_compute_threads(int n);

// y[M, out] = x[M, in] · Wᵀ + b, with W in the Hugging Face layout [out, in].
class Linear {
public:
  Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;
  ~Linear();
  // `bias` may be empty. The weights are converted/packed for the chosen backend and precision
  // once, here; the f32 copy is dropped when another precision is used.
  static core::StatusOr<Linear> make(std::vector<float> weight, std::vector<float> bias,
                                     int64_t out, int64_t in, Backend backend, Precision precision);

  // `x` has row stride `in`, `y` row stride `ldy` (>= out). `scratch` is reused across calls.
  void forward(const float* x, int64_t M, float* y, int64_t ldy,
               std::vector<uint8_t>& scratch) const;
  int64_t out() const { return out_; }
  int64_t in() const { return in_; }
  Precision precision() const { return precision_; }

private:
  struct OneDnnState;
  int64_t out_ = 0, in_ = 0;
  Backend backend_ = Backend::OneDNN;
  Precision precision_ = Precision::F32;
  std::vector<float> w_f32_; // [out, in]
  std::vector<float> bias_;
  std::vector<int8_t> w_s8_; // [out, in]
  std::vector<float> w_scale_;
  std::unique_ptr<OneDnnState> dnnl_;
};

// Row-major C[M, N] = alpha · A[M, K] · op(B) + beta · C with explicit leading dimensions, on the
// backend's f32 GEMM. op(B) = Bᵀ when `trans_b` (B is [N, K]), else B ([K, N]).
void sgemm(Backend backend, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc);

} // namespace semrouter::nn
