#include "nn/gemm.h"

#include <cblas.h>
#include <cpuid.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "nn/kernels.h"
#include "nn/safetensors.h"

namespace semrouter::nn {

using core::ErrorCode;
using core::make_error;

const char* backend_name(Backend b) {
  return b == Backend::OneDNN ? "onednn" : "openblas";
}

const char* precision_name(Precision p) {
  switch (p) {
  case Precision::Auto:
    return "auto";
  case Precision::F32:
    return "f32";
  case Precision::BF16:
    return "bf16";
  case Precision::INT8:
    return "int8";
  }
  return "?";
}

core::StatusOr<Backend> parse_backend(const std::string& s) {
  if (s == "onednn")
    return Backend::OneDNN;
  if (s == "openblas")
    return Backend::OpenBLAS;
  return make_error(ErrorCode::InvalidArgument,
                    fmt::format("unknown GEMM backend \"{}\" (onednn, openblas)", s));
}

core::StatusOr<Precision> parse_precision(const std::string& s) {
  if (s == "auto")
    return Precision::Auto;
  if (s == "f32")
    return Precision::F32;
  if (s == "bf16")
    return Precision::BF16;
  if (s == "int8")
    return Precision::INT8;
  return make_error(ErrorCode::InvalidArgument,
                    fmt::format("unknown precision \"{}\" (auto, f32, bf16, int8)", s));
}

const CpuFeatures& CpuFeatures::get() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
    unsigned a, b, cx, d;
    if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
      c.avx2 = b & (1u << 5);
      c.avx512f = b & (1u << 16);
      c.avx512_vnni = cx & (1u << 11);
      c.amx_bf16 = d & (1u << 22);
      c.amx_int8 = d & (1u << 25);
    }
    if (__get_cpuid_count(7, 1, &a, &b, &cx, &d)) {
      c.avx512_bf16 = a & (1u << 5);
      c.avx_vnni = a & (1u << 4);
    }
    return c;
  }();
  return f;
}

std::string CpuFeatures::describe() const {
  std::string s;
  auto add = [&](bool on, const char* n) {
    if (on)
      s += (s.empty() ? "" : " ") + std::string(n);
  };
  add(avx2, "avx2");
  add(avx512f, "avx512f");
  add(avx512_bf16, "avx512_bf16");
  add(avx512_vnni, "avx512_vnni");
  add(avx_vnni, "avx_vnni");
  add(amx_bf16, "amx_bf16");
  add(amx_int8, "amx_int8");
  return s.empty() ? "baseline" : s;
}

Precision resolve_precision(Precision requested, Backend backend) {
  if (backend == Backend::OpenBLAS)
    return Precision::F32;
  if (requested != Precision::Auto)
    return requested;
  return CpuFeatures::get().fast_bf16() ? Precision::BF16 : Precision::F32;
}

void set_compute_threads(int n) {
  n = std::max(1, n);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

void sgemm(Backend backend, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  if (M == 0 || N == 0)
    return;
  if (backend == Backend::OneDNN) {
    dnnl_sgemm('N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, blasint(M),
                blasint(N), blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C,
                blasint(ldc));
  }
}

namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream s(cpu_engine());
  return s;
}

} // namespace

// oneDNN matmul (f32 or bf16): weights reordered once into the layout oneDNN prefers, kept for
// every M, so no call re-packs them (sgemm would, which dominates at a few tokens).
struct Linear::OneDnnState {
  uint64_t id = 0; // unique per layer, keys the per-thread primitive cache
  dnnl::memory::data_type src_dt = dnnl::memory::data_type::f32;
  dnnl::memory::desc w_md;
  dnnl::memory weights;
  dnnl::memory bias;
};

namespace {

std::atomic<uint64_t> next_layer_id{1};

// A primitive for one (layer, M, ldy) with its memory objects and argument array, bound once per
// thread: steady-state calls only swap data handles, so they allocate nothing.
struct BoundMatmul {
  dnnl::matmul prim;
  dnnl::memory src, dst;
  dnnl_exec_arg_t args[4];
};

struct BoundKey {
  uint64_t id;
  int64_t m, ldy;
  bool operator==(const BoundKey& o) const { return id == o.id && m == o.m && ldy == o.ldy; }
};
struct BoundKeyHash {
  size_t operator()(const BoundKey& k) const {
    return std::hash<uint64_t>()(k.id * 0x9E3779B97F4A7C15ull ^
                                 uint64_t(k.m) * 0xC2B2AE3D27D4EB4Full ^ uint64_t(k.ldy));
  }
};

BoundMatmul& bound_matmul(dnnl::memory::data_type src_dt, const dnnl::memory::desc& w_md,
                          const dnnl::memory& weights, const dnnl::memory& bias, uint64_t id,
                          int64_t M, int64_t K, int64_t N, int64_t ldy) {
  thread_local std::unordered_map<BoundKey, BoundMatmul, BoundKeyHash> cache;
  BoundKey key{id, M, ldy};
  auto it = cache.find(key);
  if (it != cache.end())
    return it->second;
  using dt = dnnl::memory::data_type;
  dnnl::memory::desc src({M, K}, src_dt, {K, 1});
  dnnl::memory::desc dst({M, N}, dt::f32, {ldy, 1});
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, w_md, bias.get_desc(), dst),
                                  cpu_engine());
  BoundMatmul b{dnnl::matmul(pd),
                dnnl::memory(src, cpu_engine(), DNNL_MEMORY_NONE),
                dnnl::memory(dst, cpu_engine(), DNNL_MEMORY_NONE),
                {}};
  b.args[0] = {DNNL_ARG_SRC, b.src.get()};
  b.args[1] = {DNNL_ARG_WEIGHTS, weights.get()};
  b.args[2] = {DNNL_ARG_BIAS, bias.get()};
  b.args[3] = {DNNL_ARG_DST, b.dst.get()};
  return cache.emplace(key, std::move(b)).first->second;
}

} // namespace

Linear::Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;
Linear::~Linear() = default;

core::StatusOr<Linear> Linear::make(std::vector<float> weight, std::vector<float> bias, int64_t out,
                                    int64_t in, Backend backend, Precision precision) {
  if (int64_t(weight.size()) != out * in)
    return make_error(ErrorCode::Internal, "Linear: weight size does not match its shape");
  Linear l;
  l.out_ = out;
  l.in_ = in;
  l.backend_ = backend;
  l.precision_ = resolve_precision(precision, backend);
  l.bias_ = bias.empty() ? std::vector<float>(size_t(out), 0.f) : std::move(bias);
  try {
    if (l.precision_ == Precision::F32 && backend == Backend::OpenBLAS) {
      l.w_f32_ = std::move(weight);
    } else if (l.precision_ == Precision::F32 || l.precision_ == Precision::BF16) {
      using dt = dnnl::memory::data_type;
      using tag = dnnl::memory::format_tag;
      auto st = std::make_unique<OneDnnState>();
      st->id = next_layer_id.fetch_add(1);
      st->src_dt = l.precision_ == Precision::BF16 ? dt::bf16 : dt::f32;
      // Let oneDNN pick the weight layout for a typical M, then keep it for every M.
      const int64_t ref_m = 128;
      dnnl::memory::desc src({ref_m, in}, st->src_dt, tag::ab);
      dnnl::memory::desc wany({in, out}, st->src_dt, tag::any);
      dnnl::memory::desc bmd({1, out}, dt::f32, tag::ab);
      dnnl::memory::desc dst({ref_m, out}, dt::f32, tag::ab);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wany, bmd, dst), cpu_engine());
      st->w_md = pd.weights_desc();
      // The HF weight [out, in] is the [in, out] matrix in column-major order ("ba").
      dnnl::memory wsrc({{in, out}, dt::f32, tag::ba}, cpu_engine(), weight.data());
      st->weights = dnnl::memory(st->w_md, cpu_engine());
      dnnl::reorder(wsrc, st->weights).execute(thread_stream(), wsrc, st->weights);
      st->bias = dnnl::memory(bmd, cpu_engine());
      std::memcpy(st->bias.get_data_handle(), l.bias_.data(), size_t(out) * 4);
      thread_stream().wait();
      l.dnnl_ = std::move(st);
    } else { // INT8: symmetric per-output-channel weights
      l.w_s8_.resize(size_t(out * in));
      l.w_scale_.resize(size_t(out));
      for (int64_t o = 0; o < out; ++o) {
        const float* w = weight.data() + o * in;
        float mx = 0;
        for (int64_t k = 0; k < in; ++k)
          mx = std::max(mx, std::fabs(w[k]));
        float s = mx > 0 ? mx / 127.f : 1.f;
        l.w_scale_[size_t(o)] = s;
        for (int64_t k = 0; k < in; ++k)
          l.w_s8_[size_t(o * in + k)] = int8_t(std::lrintf(w[k] / s));
      }
    }
  } catch (const dnnl::error& e) {
    return make_error(ErrorCode::Internal,
                      fmt::format("oneDNN cannot build a {} layer [{}x{}]: {}",
                                  precision_name(l.precision_), out, in, e.what()));
  }
  return l;
}

namespace {

template <typename T> T* scratch_as(std::vector<uint8_t>& s, size_t count) {
  if (s.size() < count * sizeof(T) + 64)
    s.resize(count * sizeof(T) + 64);
  return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(s.data()) + 63) & ~uintptr_t(63));
}

} // namespace

void Linear::forward(const float* x, int64_t M, float* y, int64_t ldy,
                     std::vector<uint8_t>& scratch) const {
  if (M == 0)
    return;
  const int64_t N = out_, K = in_;
  if (precision_ == Precision::F32 && backend_ == Backend::OpenBLAS) {
    for (int64_t m = 0; m < M; ++m)
      std::memcpy(y + m * ldy, bias_.data(), size_t(N) * 4);
    sgemm(backend_, true, M, N, K, 1.f, x, K, w_f32_.data(), K, 1.f, y, ldy);
    return;
  }
  if (precision_ == Precision::F32 || precision_ == Precision::BF16) {
    const void* src = x;
    if (precision_ == Precision::BF16) {
      uint16_t* xb = scratch_as<uint16_t>(scratch, size_t(M * K));
      kernels::to_bf16(x, xb, M * K);
      src = xb;
    }
    BoundMatmul& mm = bound_matmul(dnnl_->src_dt, dnnl_->w_md, dnnl_->weights, dnnl_->bias,
                                   dnnl_->id, M, K, N, ldy);
    mm.src.set_data_handle(const_cast<void*>(src));
    mm.dst.set_data_handle(y);
    dnnl::error::wrap_c_api(
        dnnl_primitive_execute(mm.prim.get(), thread_stream().get(), 4, mm.args),
        "matmul execution failed");
    thread_stream().wait();
    return;
  }
  // INT8: dynamic per-row activation quantisation to u8 with zero point 128, s32 accumulation,
  // then y = a_scale[m] · w_scale[n] · acc + b.
  const size_t q_bytes = (size_t(M * K) + 63) & ~size_t(63), acc_bytes = size_t(M * N) * 4;
  if (scratch.size() < q_bytes + acc_bytes + size_t(M) * 4 + 64)
    scratch.resize(q_bytes + acc_bytes + size_t(M) * 4 + 64);
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) &
                                             ~uintptr_t(63));
  uint8_t* xq = base;
  int32_t* acc = reinterpret_cast<int32_t*>(base + q_bytes);
  float* a_scale = reinterpret_cast<float*>(base + q_bytes + acc_bytes);
  for (int64_t m = 0; m < M; ++m)
    a_scale[m] = kernels::quantize_row_u8(x + m * K, xq + m * K, K);
  const int32_t co = 0;
  // C = (A - ao)·(B - bo); A is u8 with offset 128, so A - ao is the signed quantised value.
  dnnl_gemm_u8s8s32('N', 'T', 'F', M, N, K, 1.f, xq, K, uint8_t(128), w_s8_.data(), K, 0, 0.f, acc,
                    N, &co);
  for (int64_t m = 0; m < M; ++m)
    kernels::dequantize_row(acc + m * N, a_scale[m], w_scale_.data(), bias_.data(), y + m * ldy, N);
}

} // namespace semrouter::nn
