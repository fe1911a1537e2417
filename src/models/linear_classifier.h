// The embedded default text classifiers: hashed word / bigram / character-n-gram features and a
// multinomial logistic regression, stored as a folder (config.json + model.safetensors in F16).
// Trained and evaluated by `semrouter train` / `semrouter eval`.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/features.h"
#include "models/linear.h"
#include "models/models.h"
#include "models/word_vectors.h"

namespace semrouter::models {

struct LinearClassifierConfig {
  std::string task;                // domain, complexity, jailbreak, language, ...
  std::vector<std::string> labels; // index = class id
  FeatureOptions features;
  // Window scoring (binary tasks): the positive probability is the maximum over the whole text
  // and every window of `window_words` words (stride `window_stride`), so text appended to or
  // prepended around a positive passage cannot dilute it. 0 disables.
  int window_words = 0;
  int window_stride = 0;
  int positive = -1;                // the positive class for binary tasks, else -1
  double threshold = 0.5;           // decision threshold on the (calibrated) positive probability
  std::optional<Platt> calibration; // maps the positive-class logit margin to a probability
  // Dense features: the SIF sentence vector of these word vectors (a folder, stored relative to
  // the model folder), times `vector_scale`, appended after the hashed buckets. Empty: none.
  std::string vectors;
  float vector_scale = 1.f;
};

// One text, tokenised and hashed once, for every model whose features match (see
// LinearTextClassifier::prepare): words, each word's feature ids, the whole text's hashed
// features, and its SIF vector.
struct PreparedText {
  std::string_view text;
  std::vector<std::string> words;
  std::vector<uint32_t> begins;  // where each word starts in `text` (byte offset)
  std::vector<uint32_t> ids;     // per word: its own ids, then the bigram with the next word
  std::vector<uint32_t> offsets; // word w's ids are [offsets[w], offsets[w + 1])
  std::vector<int32_t> rows;     // each word's row in the word vectors (-1: none); empty if none
  // Each word's weighted vector (WordVectors::weighted_row; [words × dim]) for the spans of
  // window scoring, filled by the first model that scores spans (hence mutable: a cache of the
  // prepared text, which belongs to one thread); empty until then, and when the text has too
  // many words to keep them.
  mutable std::vector<float> weighted;
  SparseVec hashed;         // the whole text, normalised
  std::vector<float> dense; // the whole text's SIF vector (unscaled); empty if none
  uint64_t key = 0;         // which feature setup produced this (0: none yet)
};

class LinearTextClassifier : public TextClassifier {
public:
  LinearTextClassifier(LinearClassifierConfig cfg, LinearModel model,
                       std::shared_ptr<const WordVectors> vectors = nullptr);
  // The feature vector of one word sequence (hashed features, then the dense vector if any).
  void featurize(const std::vector<std::string>& words, SparseVec& out) const;
  // Feature space size: hashed buckets plus the vector dimension.
  static uint32_t feature_dim(const FeatureHasher& h, const WordVectors* v) {
    return h.dim() + (v ? uint32_t(v->dim()) : 0u);
  }
  static core::StatusOr<std::shared_ptr<LinearTextClassifier>> load(const std::string& dir);
  // The models that featurise alike (the same features_key() and feature count) get their rows
  // side by side in one table (fuse_rows): the first hashes a text, and every one of them then
  // reads the same rows of memory, which the first brought into the caches. The registry does
  // this for the models it loads, before they are published; not for models already in use.
  static void share_rows(const std::vector<LinearTextClassifier*>& models);
  // `vectors_dir` is where the word vectors live now; stored relative to `dir`.
  core::Status save(const std::string& dir, const std::string& vectors_dir = "") const;

  const std::vector<std::string>& labels() const override { return cfg_.labels; }
  core::StatusOr<std::vector<Classification>>
  classify(std::span<const std::string_view> texts) const override;
  Classification classify_one(std::string_view text) const;
  // The positive-class probability (binary tasks), after windowing and calibration.
  double positive_probability(std::string_view text) const;

  const LinearClassifierConfig& config() const { return cfg_; }
  LinearClassifierConfig& mutable_config() { return cfg_; }
  const LinearModel& model() const { return model_; }
  const FeatureHasher& hasher() const { return hasher_; }
  const std::shared_ptr<const WordVectors>& vectors() const { return vectors_; }
  // Raw logits of one word sequence.
  void logits(const std::vector<std::string>& words, std::vector<float>& out) const;

  // Shared featurisation: prepare() once, then any model with the same features_key() can
  // classify the prepared text without hashing it again.
  uint64_t features_key() const { return key_; }
  void prepare(std::string_view text, PreparedText& p) const;
  Classification classify_prepared(const PreparedText& p) const;
  double positive_probability(const PreparedText& p) const;

private:
  double positive_from_logits(const std::vector<float>& z) const;
  // Logits of words [a, b) of a prepared text (the whole text reuses its precomputed features).
  void span_logits(const PreparedText& p, size_t a, size_t b, std::vector<float>& z) const;
  LinearClassifierConfig cfg_;
  LinearModel model_;
  FeatureHasher hasher_;
  std::shared_ptr<const WordVectors> vectors_;
  uint64_t key_ = 0;
};

} // namespace semrouter::models
