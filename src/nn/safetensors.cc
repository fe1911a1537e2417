#include "nn/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace semrouter::nn {

using core::ErrorCode;
using core::make_error;

const char* dtype_name(DType d) {
  switch (d) {
  case DType::F32:
    return "F32";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  case DType::I8:
    return "I8";
  }
  return "?";
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t man = h & 0x3FF;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else { // subnormal: normalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while ((man & 0x400) == 0);
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3FF) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7F800000u | man << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

void TensorView::row_to_f32(int64_t r, int64_t cols, float* out) const {
  switch (dtype) {
  case DType::F32:
    std::memcpy(out, static_cast<const float*>(data) + r * cols, size_t(cols) * 4);
    break;
  case DType::F16: {
    const uint16_t* p = static_cast<const uint16_t*>(data) + r * cols;
    for (int64_t i = 0; i < cols; ++i)
      out[i] = f16_to_f32(p[i]);
    break;
  }
  case DType::BF16: {
    const uint16_t* p = static_cast<const uint16_t*>(data) + r * cols;
    for (int64_t i = 0; i < cols; ++i)
      out[i] = bf16_to_f32(p[i]);
    break;
  }
  case DType::I8: {
    const int8_t* p = static_cast<const int8_t*>(data) + r * cols;
    for (int64_t i = 0; i < cols; ++i)
      out[i] = float(p[i]);
    break;
  }
  }
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafeTensors::~SafeTensors() {
  if (map_)
    munmap(map_, size_);
}

core::StatusOr<std::shared_ptr<const SafeTensors>> SafeTensors::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return make_error(ErrorCode::NotFound,
                      fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < 8) {
    ::close(fd);
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("{}: too small to be a safetensors file", path));
  }
  void* map = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED)
    return make_error(ErrorCode::Unavailable,
                      fmt::format("cannot map {}: {}", path, std::strerror(errno)));
  std::shared_ptr<SafeTensors> f(new SafeTensors());
  f->path_ = path;
  f->map_ = map;
  f->size_ = size_t(st.st_size);
  const auto* bytes = static_cast<const uint8_t*>(map);
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes, 8);
  if (hlen > f->size_ - 8)
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("{}: header length {} exceeds the file", path, hlen));
  const uint8_t* data = bytes + 8 + hlen;
  size_t data_size = f->size_ - 8 - hlen;
  try {
    auto h = nlohmann::json::parse(bytes + 8, bytes + 8 + hlen);
    for (auto it = h.begin(); it != h.end(); ++it) {
      if (it.key() == "__metadata__")
        continue;
      const auto& v = it.value();
      std::string dt = v.at("dtype").get<std::string>();
      TensorView t{};
      size_t esize;
      if (dt == "F32")
        t.dtype = DType::F32, esize = 4;
      else if (dt == "F16")
        t.dtype = DType::F16, esize = 2;
      else if (dt == "BF16")
        t.dtype = DType::BF16, esize = 2;
      else if (dt == "I8")
        t.dtype = DType::I8, esize = 1;
      else
        return make_error(
            ErrorCode::InvalidArgument,
            fmt::format("{}: tensor \"{}\" has dtype {}; supported: F32, F16, BF16, I8", path,
                        it.key(), dt));
      t.shape = v.at("shape").get<std::vector<int64_t>>();
      auto off = v.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2 || off[0] > off[1] || off[1] > data_size ||
          (off[1] - off[0]) != uint64_t(t.numel()) * esize)
        return make_error(
            ErrorCode::InvalidArgument,
            fmt::format("{}: tensor \"{}\" has inconsistent data_offsets", path, it.key()));
      t.data = data + off[0];
      f->tensors_.emplace(it.key(), std::move(t));
    }
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("{}: bad header: {}", path, e.what()));
  }
  return std::shared_ptr<const SafeTensors>(std::move(f));
}

core::StatusOr<TensorView> SafeTensors::get(const std::string& name,
                                            const std::vector<int64_t>& shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    return make_error(ErrorCode::NotFound,
                      fmt::format("{}: missing tensor \"{}\" (expected shape {})", path_, name,
                                  shape_string(shape)));
  if (it->second.shape != shape)
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("{}: tensor \"{}\" has shape {}, expected {}", path_, name,
                                  shape_string(it->second.shape), shape_string(shape)));
  return it->second;
}

core::StatusOr<std::vector<float>> SafeTensors::to_f32(const std::string& name,
                                                       const std::vector<int64_t>& shape) const {
  auto t = get(name, shape);
  if (!t)
    return tl::unexpected(t.error());
  std::vector<float> out(size_t(t->numel()));
  t->row_to_f32(0, t->numel(), out.data());
  return out;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = int32_t((u >> 23) & 0xFF) - 127 + 15;
  uint32_t man = u & 0x7FFFFF;
  if (((u >> 23) & 0xFF) == 0xFF) // inf / NaN
    return uint16_t(sign | 0x7C00 | (man ? 0x200 : 0));
  if (exp >= 31)
    return uint16_t(sign | 0x7C00); // overflow -> inf
  if (exp <= 0) {                   // subnormal or zero
    if (exp < -10)
      return uint16_t(sign);
    man |= 0x800000;
    uint32_t shift = uint32_t(14 - exp);
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1)))
      ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = sign | uint32_t(exp) << 10 | man >> 13;
  uint32_t rem = man & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
    ++half; // may carry into the exponent, which is the correct rounding
  return uint16_t(half);
}

core::Status write_safetensors(const std::string& path, const TensorMap& t, DType dtype) {
  if (dtype == DType::I8)
    return make_error(ErrorCode::InvalidArgument,
                      "write_safetensors: I8 needs scales; write F32, F16 or BF16");
  const size_t esize = dtype == DType::F32 ? 4 : 2;
  nlohmann::json h = nlohmann::json::object();
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (const auto& [name, v] : t) {
    uint64_t n = v.second.size() * esize;
    h[name] = {{"dtype", dtype_name(dtype)}, {"shape", v.first}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string header = h.dump();
  while (header.size() % 8)
    header += ' ';
  std::ofstream f(path, std::ios::binary);
  if (!f)
    return make_error(ErrorCode::Unavailable, fmt::format("cannot write {}", path));
  uint64_t hl = header.size();
  f.write(reinterpret_cast<const char*>(&hl), 8);
  f.write(header.data(), std::streamsize(header.size()));
  std::vector<uint16_t> buf;
  for (const auto& [name, v] : t) {
    if (dtype == DType::F32) {
      f.write(reinterpret_cast<const char*>(v.second.data()), std::streamsize(v.second.size() * 4));
      continue;
    }
    buf.resize(v.second.size());
    for (size_t i = 0; i < buf.size(); ++i)
      buf[i] = dtype == DType::F16 ? f32_to_f16(v.second[i]) : f32_to_bf16(v.second[i]);
    f.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size() * 2));
  }
  if (!f)
    return make_error(ErrorCode::Unavailable, fmt::format("write to {} failed", path));
  return {};
}

} // namespace semrouter::nn
