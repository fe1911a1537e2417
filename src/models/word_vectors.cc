#include "models/word_vectors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "models/features.h"
#include "nn/kernels.h"
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
  std::vector<std::string> words;
  for (std::string w; std::getline(vf, w);)
    words.push_back(std::move(w));
  if (words.size() != vocab)
    return make_error(
        ErrorCode::InvalidArgument,
        fmt::format("{}/vocab.txt has {} words, config.json says {}", dir, words.size(), vocab));
  size_t slots = 2;
  while (slots < 2 * words.size())
    slots *= 2;
  wv->slots_.assign(slots, Slot{});
  wv->long_words_.resize(words.size());
  for (size_t r = 0; r < words.size(); ++r)
    wv->insert(words[r], int32_t(r)); // a repeated word keeps its first row
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
  wv->sif_scale_.resize(wv->scales_.size());
  for (size_t r = 0; r < wv->scales_.size(); ++r)
    wv->sif_scale_[r] = wv->sif_[r] * wv->scales_[r];
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

namespace {

uint64_t word_hash(std::string_view w) {
  return fnv1a(w, 0x6c62272e07bb0142ull);
}

// Rows fetched this far ahead of their use: enough to overlap the cache misses of a long text.
constexpr size_t kPrefetchAhead = 8;

} // namespace

void WordVectors::insert(std::string_view word, int32_t row) {
  const uint64_t h = word_hash(word);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.row < 0) {
      s.hash = h;
      s.row = row;
      s.size = uint32_t(word.size());
      if (word.size() <= kInlineBytes)
        std::memcpy(s.text, word.data(), word.size());
      else
        long_words_[size_t(row)] = std::string(word);
      return;
    }
    if (s.hash == h && probe(word, h) >= 0)
      return; // already there: the first row stays
  }
}

int32_t WordVectors::probe(std::string_view word, uint64_t h) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.row < 0)
      return -1;
    if (s.hash != h || s.size != word.size())
      continue;
    const bool same = word.size() <= kInlineBytes
                          ? std::memcmp(s.text, word.data(), word.size()) == 0
                          : long_words_[size_t(s.row)] == word;
    if (same)
      return s.row;
  }
}

int32_t WordVectors::lookup(std::string_view word) const {
  return slots_.empty() ? -1 : probe(word, word_hash(word));
}

void WordVectors::lookup_all(const std::vector<std::string>& words, int32_t* rows) const {
  if (slots_.empty()) {
    std::fill(rows, rows + words.size(), -1);
    return;
  }
  thread_local std::vector<uint64_t> hashes;
  hashes.resize(words.size());
  for (size_t i = 0; i < words.size(); ++i)
    hashes[i] = word_hash(words[i]);
  const size_t mask = slots_.size() - 1;
  for (size_t i = 0; i < std::min(words.size(), kPrefetchAhead); ++i)
    __builtin_prefetch(&slots_[hashes[i] & mask]);
  for (size_t i = 0; i < words.size(); ++i) {
    if (i + kPrefetchAhead < words.size())
      __builtin_prefetch(&slots_[hashes[i + kPrefetchAhead] & mask]);
    rows[i] = probe(words[i], hashes[i]);
  }
}

size_t WordVectors::sentence_vector(const std::string* words, size_t count, float* out,
                                    bool sif) const {
  thread_local std::vector<int32_t> rows;
  rows.resize(count);
  for (size_t i = 0; i < count; ++i)
    rows[i] = lookup(words[i]);
  return sentence_vector_rows(rows.data(), count, out, sif);
}

size_t WordVectors::sentence_vector_rows(const int32_t* rows, size_t count, float* out,
                                         bool sif) const {
  std::fill(out, out + dim_, 0.f);
  size_t n = 0;
  const size_t row_bytes = size_t(dim_);
  // always_inline: GCC 12 drops a call to a lambda that only prefetches (it has no side effects
  // in GCC's eyes) before it would inline it.
  auto prefetch = [&](size_t i) __attribute__((always_inline)) {
    if (rows[i] < 0)
      return;
    const int8_t* q = q_.data() + size_t(rows[i]) * row_bytes;
    for (size_t b = 0; b < row_bytes; b += 64)
      __builtin_prefetch(q + b);
    __builtin_prefetch(&sif_scale_[size_t(rows[i])]);
  };
  for (size_t i = 0; i < std::min(count, kPrefetchAhead); ++i)
    prefetch(i);
  for (size_t i = 0; i < count; ++i) {
    if (i + kPrefetchAhead < count)
      prefetch(i + kPrefetchAhead);
    if (rows[i] < 0)
      continue;
    const size_t r = size_t(rows[i]);
    // sif_ * scales_, multiplied once at load (the same product as here).
    const float k = sif ? sif_scale_[r] : scales_[r];
    const int8_t* q = q_.data() + r * size_t(dim_);
    for (int64_t d = 0; d < dim_; ++d)
      out[d] += k * float(q[d]);
    ++n;
  }
  if (n == 0)
    return 0;
  finish_sentence_vector(out, n, sif);
  return n;
}

void WordVectors::weighted_row(int32_t row, float* out, bool sif) const {
  const size_t r = size_t(row);
  const float k = sif ? sif_scale_[r] : scales_[r];
  const int8_t* q = q_.data() + r * size_t(dim_);
  for (int64_t d = 0; d < dim_; ++d)
    out[d] = k * float(q[d]);
}

void WordVectors::finish_sentence_vector(float* out, size_t n, bool sif) const {
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
  // Four independent partial sums of each product, so the loop vectorises.
  const size_t n = std::min(a.size(), b.size());
  double d[4] = {}, na[4] = {}, nb[4] = {};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (size_t j = 0; j < 4; ++j) {
      const double x = a[i + j], y = b[i + j];
      d[j] += x * y;
      na[j] += x * x;
      nb[j] += y * y;
    }
  double dd = (d[0] + d[2]) + (d[1] + d[3]), aa = (na[0] + na[2]) + (na[1] + na[3]),
         bb = (nb[0] + nb[2]) + (nb[1] + nb[3]);
  for (; i < n; ++i) {
    dd += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return aa > 0 && bb > 0 ? float(dd / std::sqrt(aa * bb)) : 0.f;
}

UnitRows::UnitRows(const std::vector<std::vector<float>>& vectors) : count_(vectors.size()) {
  dim_ = vectors.empty() ? 0 : int64_t(vectors.front().size());
  rows_.assign(count_ * size_t(dim_), 0.f);
  for (size_t k = 0; k < count_; ++k) {
    const auto& v = vectors[k];
    double ss = 0;
    for (float x : v)
      ss += double(x) * x;
    if (!(ss > 0) || !std::isfinite(ss) || int64_t(v.size()) != dim_)
      continue; // zero, not finite (or, never from one embedder, another length): cosine 0
    const double inv = 1.0 / std::sqrt(ss);
    for (int64_t i = 0; i < dim_; ++i)
      rows_[k * size_t(dim_) + size_t(i)] = float(v[size_t(i)] * inv);
  }
}

void UnitRows::cosines(std::span<const float> query, float* out) const {
  double ss = 0;
  for (float x : query)
    ss += double(x) * x;
  if (!(ss > 0) || !std::isfinite(ss) || int64_t(query.size()) != dim_) {
    std::fill(out, out + count_, 0.f);
    return;
  }
  nn::kernels::dot_rows(query.data(), rows_.data(), int64_t(count_), dim_, out);
  const float inv = float(1.0 / std::sqrt(ss));
  for (size_t k = 0; k < count_; ++k)
    out[k] *= inv;
}

} // namespace semrouter::models
