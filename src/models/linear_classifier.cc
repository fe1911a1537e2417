#include "models/linear_classifier.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nn/safetensors.h"

namespace semrouter::models {
namespace {

// Window scoring keeps each word's weighted vector (400 bytes) for texts up to this long: a
// window-sized text, not a 50k-word document read whole.
constexpr size_t kMaxWeightedWords = 4096;

} // namespace

using core::ErrorCode;
using core::make_error;
using json = nlohmann::json;

LinearTextClassifier::LinearTextClassifier(LinearClassifierConfig cfg, LinearModel model,
                                           std::shared_ptr<const WordVectors> vectors)
    : cfg_(std::move(cfg)), model_(std::move(model)), hasher_(cfg_.features),
      vectors_(std::move(vectors)) {
  const auto& f = cfg_.features;
  key_ = fnv1a(std::to_string(f.buckets_log2) + "/" + std::to_string(f.word_bigrams) + "/" +
               std::to_string(f.char_ngram_min) + "/" + std::to_string(f.char_ngram_max) + "/" +
               std::to_string(reinterpret_cast<uintptr_t>(vectors_.get())));
}

void LinearTextClassifier::featurize(const std::vector<std::string>& words, SparseVec& x) const {
  hasher_.features(words, x);
  if (!vectors_)
    return;
  thread_local std::vector<float> v;
  v.resize(size_t(vectors_->dim()));
  if (vectors_->sentence_vector(words, v.data()) == 0)
    return;
  for (int64_t d = 0; d < vectors_->dim(); ++d) {
    x.idx.push_back(hasher_.dim() + uint32_t(d));
    x.val.push_back(v[size_t(d)] * cfg_.vector_scale);
  }
}

void LinearTextClassifier::logits(const std::vector<std::string>& words,
                                  std::vector<float>& out) const {
  thread_local SparseVec x;
  featurize(words, x);
  out.resize(model_.classes);
  model_.logits(x, out.data());
}

void LinearTextClassifier::share_rows(const std::vector<LinearTextClassifier*>& models) {
  std::vector<LinearTextClassifier*> todo = models;
  while (!todo.empty()) {
    // One group: the models that featurise like the first one.
    const uint64_t key = todo.front()->key_;
    const uint32_t dim = todo.front()->model_.dim;
    std::vector<LinearModel*> group;
    std::erase_if(todo, [&](LinearTextClassifier* m) {
      if (m->key_ != key || m->model_.dim != dim)
        return false;
      group.push_back(&m->model_);
      return true;
    });
    fuse_rows(group);
  }
}

double LinearTextClassifier::positive_from_logits(const std::vector<float>& z) const {
  const size_t p = size_t(cfg_.positive);
  if (cfg_.calibration) {
    // margin of the positive class over the best other class
    float other = -1e30f;
    for (size_t c = 0; c < z.size(); ++c)
      if (c != p)
        other = std::max(other, z[c]);
    return (*cfg_.calibration)(double(z[p] - other));
  }
  return softmax(z.data(), z.size())[p];
}

void LinearTextClassifier::prepare(std::string_view text, PreparedText& p) const {
  p.text = text;
  words_of(text, p.words, p.begins);
  p.offsets.assign(1, 0);
  p.ids.clear();
  const bool bigrams = cfg_.features.word_bigrams;
  for (size_t w = 0; w < p.words.size(); ++w) {
    hasher_.word_ids(p.words[w], p.ids);
    if (bigrams && w + 1 < p.words.size())
      p.ids.push_back(hasher_.bigram_id(p.words[w], p.words[w + 1]));
    p.offsets.push_back(uint32_t(p.ids.size()));
  }
  thread_local std::vector<uint32_t> tmp;
  tmp.assign(p.ids.begin(), p.ids.end());
  FeatureHasher::from_ids(tmp, p.hashed);
  p.dense.clear();
  p.rows.clear();
  p.weighted.clear();
  if (vectors_) {
    // Each word looked up once: the spans' vectors reuse the rows (and window scoring fills in
    // each word's weighted vector, see positive_probability).
    p.rows.resize(p.words.size());
    vectors_->lookup_all(p.words, p.rows.data());
    p.dense.resize(size_t(vectors_->dim()));
    if (vectors_->sentence_vector_rows(p.rows.data(), p.rows.size(), p.dense.data()) == 0)
      p.dense.clear();
  }
  p.key = key_;
}

void LinearTextClassifier::span_logits(const PreparedText& p, size_t a, size_t b,
                                       std::vector<float>& z) const {
  thread_local std::vector<uint32_t> span_ids;
  thread_local SparseVec x;
  thread_local std::vector<float> dense;
  const SparseVec* hx = &p.hashed;
  const std::vector<float>* dv = &p.dense;
  if (a != 0 || b != p.words.size()) {
    span_ids.assign(p.ids.begin() + p.offsets[a], p.ids.begin() + p.offsets[b]);
    if (cfg_.features.word_bigrams && b < p.words.size())
      span_ids.pop_back(); // the bigram reaching past the span
    FeatureHasher::from_ids(span_ids, x);
    hx = &x;
    dense.clear();
    if (vectors_ && !p.weighted.empty()) {
      // The words' weighted vectors summed in order, then finished: sentence_vector_rows()'s
      // arithmetic without converting the rows again for every span.
      const size_t dim = size_t(vectors_->dim());
      dense.assign(dim, 0.f);
      size_t n = 0;
      for (size_t w = a; w < b; ++w) {
        if (p.rows[w] < 0)
          continue;
        const float* row = p.weighted.data() + w * dim;
        for (size_t d = 0; d < dim; ++d)
          dense[d] += row[d];
        ++n;
      }
      if (n == 0)
        dense.clear();
      else
        vectors_->finish_sentence_vector(dense.data(), n);
    } else if (vectors_) {
      dense.resize(size_t(vectors_->dim()));
      if (vectors_->sentence_vector_rows(p.rows.data() + a, b - a, dense.data()) == 0)
        dense.clear();
    }
    dv = &dense;
  }
  z.resize(model_.classes);
  model_.logits(*hx, z.data());
  if (!dv->empty()) // dense features live after the hashed buckets
    model_.add_dense(dv->data(), dv->size(), cfg_.vector_scale, hasher_.dim(), z.data());
}

double LinearTextClassifier::positive_probability(const PreparedText& p) const {
  thread_local std::vector<float> z;
  const auto& words = p.words;
  const std::string_view text = p.text;
  span_logits(p, 0, words.size(), z);
  double best = positive_from_logits(z);
  if (cfg_.window_words <= 0 || words.size() < 2)
    return best;
  // Each word's weighted vector, once per text: every span sums its words' rows.
  if (vectors_ && p.weighted.empty() && p.rows.size() == words.size() &&
      words.size() <= kMaxWeightedWords) {
    const size_t dim = size_t(vectors_->dim());
    p.weighted.assign(words.size() * dim, 0.f);
    for (size_t w = 0; w < words.size(); ++w)
      if (p.rows[w] >= 0)
        vectors_->weighted_row(p.rows[w], p.weighted.data() + w * dim);
  }
  auto score = [&](size_t a, size_t b) { // words [a, b)
    if (b <= a || (a == 0 && b == words.size()))
      return;
    span_logits(p, a, b, z);
    best = std::max(best, positive_from_logits(z));
  };
  // Each sentence on its own: text around a positive sentence cannot dilute it.
  size_t start = 0, first_word = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    bool end = i == text.size();
    if (!end) {
      char c = text[i];
      end = c == '\n' || ((c == '.' || c == '!' || c == '?') &&
                          (i + 1 == text.size() || text[i + 1] == ' ' || text[i + 1] == '\n'));
    }
    if (!end)
      continue;
    if (i > start) {
      // The sentence's words: those that start before its end (no word runs across a sentence
      // end, which is a newline or punctuation, so they are the words the sentence alone has).
      const size_t sentence_end = std::min(i + 1, text.size());
      size_t last = first_word;
      while (last < words.size() && p.begins[last] < sentence_end)
        ++last;
      score(first_word, last);
      first_word = last;
    }
    start = i + 1;
  }
  // Windows of words, for long texts without sentence breaks.
  const size_t W = size_t(cfg_.window_words), step = size_t(std::max(1, cfg_.window_stride));
  if (words.size() > W)
    for (size_t k = 0; k < words.size(); k += step) {
      size_t e = std::min(words.size(), k + W);
      score(k, e);
      if (e == words.size())
        break;
    }
  return best;
}

double LinearTextClassifier::positive_probability(std::string_view text) const {
  thread_local PreparedText p;
  prepare(text, p);
  return positive_probability(p);
}

Classification LinearTextClassifier::classify_prepared(const PreparedText& p) const {
  Classification c;
  if (cfg_.positive >= 0 && cfg_.labels.size() == 2) {
    double pp = positive_probability(p);
    c.probabilities.assign(2, 0.f);
    c.probabilities[size_t(cfg_.positive)] = float(pp);
    c.probabilities[size_t(1 - cfg_.positive)] = float(1 - pp);
    c.label_id = pp >= cfg_.threshold ? cfg_.positive : 1 - cfg_.positive;
  } else {
    span_logits(p, 0, p.words.size(), c.logits);
    c.probabilities = softmax(c.logits.data(), c.logits.size());
    c.label_id = int32_t(std::max_element(c.probabilities.begin(), c.probabilities.end()) -
                         c.probabilities.begin());
  }
  c.confidence = c.probabilities[size_t(c.label_id)];
  c.label = cfg_.labels[size_t(c.label_id)];
  return c;
}

Classification LinearTextClassifier::classify_one(std::string_view text) const {
  thread_local PreparedText p;
  prepare(text, p);
  return classify_prepared(p);
}

core::StatusOr<std::vector<Classification>>
LinearTextClassifier::classify(std::span<const std::string_view> texts) const {
  std::vector<Classification> out;
  out.reserve(texts.size());
  for (auto t : texts)
    out.push_back(classify_one(t));
  return out;
}

core::Status LinearTextClassifier::save(const std::string& dir,
                                        const std::string& vectors_dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return make_error(ErrorCode::Unavailable,
                      fmt::format("cannot create {}: {}", dir, ec.message()));
  json j = {{"format", "semrouter-linear-v1"},
            {"task", cfg_.task},
            {"labels", cfg_.labels},
            {"features",
             {{"buckets_log2", cfg_.features.buckets_log2},
              {"word_bigrams", cfg_.features.word_bigrams},
              {"char_ngram_min", cfg_.features.char_ngram_min},
              {"char_ngram_max", cfg_.features.char_ngram_max}}},
            {"window_words", cfg_.window_words},
            {"window_stride", cfg_.window_stride},
            {"positive", cfg_.positive},
            {"threshold", cfg_.threshold}};
  if (cfg_.calibration)
    j["calibration"] = {{"a", cfg_.calibration->a}, {"b", cfg_.calibration->b}};
  if (vectors_) {
    j["vectors"] = std::filesystem::relative(std::filesystem::absolute(vectors_dir),
                                             std::filesystem::absolute(dir))
                       .string();
    j["vector_scale"] = cfg_.vector_scale;
  }
  std::ofstream(dir + "/config.json") << j.dump(2) << "\n";
  nn::TensorMap t;
  t["w"] = {{int64_t(model_.dim), int64_t(model_.classes)}, model_.weights()};
  t["b"] = {{int64_t(model_.classes)}, model_.b};
  return nn::write_safetensors(dir + "/model.safetensors", t, nn::DType::F16);
}

core::StatusOr<std::shared_ptr<LinearTextClassifier>>
LinearTextClassifier::load(const std::string& dir) {
  std::ifstream f(dir + "/config.json");
  if (!f)
    return make_error(ErrorCode::NotFound, fmt::format("{}/config.json: cannot open", dir));
  LinearClassifierConfig cfg;
  LinearModel m;
  try {
    json j = json::parse(f);
    if (j.value("format", "") != "semrouter-linear-v1")
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("{}/config.json: format must be \"semrouter-linear-v1\"", dir));
    cfg.task = j.value("task", "");
    cfg.labels = j.at("labels").get<std::vector<std::string>>();
    const auto& fe = j.at("features");
    cfg.features.buckets_log2 = fe.value("buckets_log2", 18u);
    cfg.features.word_bigrams = fe.value("word_bigrams", true);
    cfg.features.char_ngram_min = fe.value("char_ngram_min", 3);
    cfg.features.char_ngram_max = fe.value("char_ngram_max", 5);
    cfg.window_words = j.value("window_words", 0);
    cfg.window_stride = j.value("window_stride", 0);
    cfg.positive = j.value("positive", -1);
    cfg.threshold = j.value("threshold", 0.5);
    if (j.contains("calibration"))
      cfg.calibration =
          Platt{j["calibration"].at("a").get<double>(), j["calibration"].at("b").get<double>()};
    cfg.vectors = j.value("vectors", "");
    cfg.vector_scale = j.value("vector_scale", 1.f);
    if (cfg.features.buckets_log2 < 8 || cfg.features.buckets_log2 > 26)
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("{}/config.json: features.buckets_log2 must be 8..26", dir));
    if (cfg.positive >= int(cfg.labels.size()))
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("{}/config.json: positive is not a label index", dir));
  } catch (const json::exception& e) {
    return make_error(ErrorCode::InvalidArgument, fmt::format("{}/config.json: {}", dir, e.what()));
  }
  std::shared_ptr<const WordVectors> vectors;
  if (!cfg.vectors.empty()) {
    auto v = WordVectors::load_shared(dir + "/" + cfg.vectors);
    if (!v)
      return make_error(v.error().code,
                        fmt::format("{}: word vectors: {}", dir, v.error().message));
    vectors = *v;
  }
  auto st = nn::SafeTensors::open(dir + "/model.safetensors");
  if (!st)
    return tl::unexpected(st.error());
  m.dim = (1u << cfg.features.buckets_log2) + (vectors ? uint32_t(vectors->dim()) : 0u);
  m.classes = uint32_t(cfg.labels.size());
  auto w = (*st)->to_f32("w", {int64_t(m.dim), int64_t(m.classes)});
  auto b = (*st)->to_f32("b", {int64_t(m.classes)});
  if (!w)
    return tl::unexpected(w.error());
  if (!b)
    return tl::unexpected(b.error());
  m.w = std::move(*w);
  m.b = std::move(*b);
  return std::make_shared<LinearTextClassifier>(std::move(cfg), std::move(m), std::move(vectors));
}

} // namespace semrouter::models
