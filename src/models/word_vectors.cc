#include "models/word_vectors.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "models/features.h"
#include "nn/safetensors.h"

namespace semrouter::models {

using core::ErrorCode;
using core::make_error;

core::StatusOr<std::shared_ptr<const WordVectors>> WordVectors::load(const std::string& dir) {
  std::ifstream cf(dir + "/config.json");
  if (!cf)
    return make_error(ErrorCode::NotFound, fmt::format("{}/config.json: cannot open", dir));
  auto wv = std::make_shared<WordVectors>();
  size_t vocab = 0;
  try {
    auto j = nlohmann::json::parse(cf);
    if (j.value("format", "") != "semrouter-word-vectors-v1")
      return make_error(
          ErrorCode::InvalidArgument,
          fmt::format("{}/config.json: format must be \"semrouter-word-vectors-v1\"", dir));
    wv->dim_ = j.at("dim").get<int64_t>();
    vocab = j.at("vocab_size").get<size_t>();
  } catch (const std::exception& e) {
    return make_error(ErrorCode::InvalidArgument, fmt::format("{}/config.json: {}", dir, e.what()));
  }
  std::ifstream vf(dir + "/vocab.txt");
  if (!vf)
    return make_error(ErrorCode::NotFound, fmt::format("{}/vocab.txt: cannot open", dir));
  std::string w;
  int32_t row = 0;
  while (std::getline(vf, w))
    wv->index_.emplace(w, row++);
  if (size_t(row) != vocab)
    return make_error(
        ErrorCode::InvalidArgument,
        fmt::format("{}/vocab.txt has {} words, config.json says {}", dir, row, vocab));
  auto st = nn::SafeTensors::open(dir + "/model.safetensors");
  if (!st)
    return tl::unexpected(st.error());
  const int64_t V = int64_t(vocab), D = wv->dim_;
  auto vec = (*st)->get("vectors", {V, D});
  if (!vec)
    return tl::unexpected(vec.error());
  if (vec->dtype != nn::DType::I8)
    return make_error(ErrorCode::InvalidArgument, fmt::format("{}: \"vectors\" must be I8", dir));
  wv->q_.resize(size_t(V * D));
  std::memcpy(wv->q_.data(), vec->data, wv->q_.size());
  auto sc = (*st)->to_f32("scales", {V});
  auto sif = (*st)->to_f32("sif", {V});
  auto pc = (*st)->to_f32("pc", {D});
  for (auto* r : {&sc, &sif, &pc})
    if (!*r)
      return tl::unexpected(r->error());
  wv->scales_ = std::move(*sc);
  wv->sif_ = std::move(*sif);
  wv->pc_ = std::move(*pc);
  return std::shared_ptr<const WordVectors>(std::move(wv));
}

core::StatusOr<std::shared_ptr<const WordVectors>>
WordVectors::load_shared(const std::string& dir) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<const WordVectors>> cache;
  std::error_code ec;
  std::string key = std::filesystem::weakly_canonical(dir, ec).string();
  if (ec)
    key = dir;
  std::lock_guard<std::mutex> l(mu);
  if (auto it = cache.find(key); it != cache.end())
    if (auto sp = it->second.lock())
      return sp;
  auto v = load(dir);
  if (v)
    cache[key] = *v;
  return v;
}

int32_t WordVectors::lookup(const std::string& word) const {
  auto it = index_.find(word);
  return it == index_.end() ? -1 : it->second;
}

size_t WordVectors::sentence_vector(const std::string* words, size_t count, float* out,
                                    bool sif) const {
  std::fill(out, out + dim_, 0.f);
  size_t n = 0;
  for (size_t i = 0; i < count; ++i) {
    const std::string& w = words[i];
    auto it = index_.find(w);
    if (it == index_.end())
      continue;
    const size_t r = size_t(it->second);
    const float k = (sif ? sif_[r] : 1.f) * scales_[r];
    const int8_t* q = q_.data() + r * size_t(dim_);
    for (int64_t d = 0; d < dim_; ++d)
      out[d] += k * float(q[d]);
    ++n;
  }
  if (n == 0)
    return 0;
  float dot = 0;
  for (int64_t d = 0; d < dim_; ++d) {
    out[d] /= float(n);
    dot += sif ? out[d] * pc_[size_t(d)] : 0.f;
  }
  double ss = 0;
  for (int64_t d = 0; d < dim_; ++d) {
    out[d] -= dot * pc_[size_t(d)];
    ss += double(out[d]) * out[d];
  }
  if (ss > 0) {
    float inv = float(1.0 / std::sqrt(ss));
    for (int64_t d = 0; d < dim_; ++d)
      out[d] *= inv;
  }
  return n;
}

void WordVectors::embed_one(std::string_view text, std::vector<float>& out, bool sif) const {
  thread_local std::vector<std::string> words;
  words_of(text, words);
  out.resize(size_t(dim_));
  sentence_vector(words.data(), words.size(), out.data(), sif);
}

core::StatusOr<std::vector<std::vector<float>>>
WordVectors::embed(std::span<const std::string_view> texts) const {
  std::vector<std::vector<float>> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    embed_one(texts[i], out[i]);
  return out;
}

float WordVectors::row_cosine(int32_t a, int32_t b) const {
  const int8_t* x = q_.data() + size_t(a) * size_t(dim_);
  const int8_t* y = q_.data() + size_t(b) * size_t(dim_);
  int64_t d = 0, nx = 0, ny = 0;
  for (int64_t i = 0; i < dim_; ++i) {
    d += int64_t(x[i]) * y[i];
    nx += int64_t(x[i]) * x[i];
    ny += int64_t(y[i]) * y[i];
  }
  return nx > 0 && ny > 0 ? float(double(d) / std::sqrt(double(nx) * double(ny))) : 0.f;
}

float cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    d += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  return na > 0 && nb > 0 ? float(d / std::sqrt(na * nb)) : 0.f;
}

} // namespace semrouter::models
