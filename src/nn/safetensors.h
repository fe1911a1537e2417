// Read-only, memory-mapped safetensors files (F32, F16, BF16 and I8 tensors).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace semrouter::nn {

enum class DType { F32, F16, BF16, I8 };
const char* dtype_name(DType d);

float f16_to_f32(uint16_t h);
inline float bf16_to_f32(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
// Round-to-nearest-even, as PyTorch's conversion.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu)) // NaN stays NaN
    return uint16_t((u >> 16) | 0x40);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// A tensor inside the mapping; `data` stays valid while the SafeTensors object lives.
struct TensorView {
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  int64_t numel() const;
  // Row `r` of a 2-D tensor (or element range [r*cols, (r+1)*cols) of any tensor) as f32.
  void row_to_f32(int64_t r, int64_t cols, float* out) const;
};

class SafeTensors {
public:
  static core::StatusOr<std::shared_ptr<const SafeTensors>> open(const std::string& path);
  ~SafeTensors();

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // The tensor `name`, which must have exactly `shape`; otherwise an error naming the tensor, the
  // expected shape and what the file holds.
  core::StatusOr<TensorView> get(const std::string& name, const std::vector<int64_t>& shape) const;
  // Copies the tensor to f32 (after the same checks as `get`).
  core::StatusOr<std::vector<float>> to_f32(const std::string& name,
                                            const std::vector<int64_t>& shape) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::string& path() const { return path_; }

private:
  SafeTensors() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
};

std::string shape_string(const std::vector<int64_t>& shape);

// Writes a safetensors file with every tensor stored as `dtype` (F32, F16 or BF16); used for the
// embedded default models and by tests and benchmarks.
using TensorMap = std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>;
core::Status write_safetensors(const std::string& path, const TensorMap& t,
                               DType dtype = DType::F32);
inline core::Status write_safetensors_f32(const std::string& path, const TensorMap& t) {
  return write_safetensors(path, t, DType::F32);
}
uint16_t f32_to_f16(float f);

} // namespace semrouter::nn
