// Sentence embeddings without a transformer: int8 GloVe word vectors over a compact vocabulary,
// averaged with SIF weights (a / (a + p(w))), the corpus's common component removed, then
// L2-normalised. Built by scripts/build-word-vectors.py (models/glove-100d-sif).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/models.h"

namespace semrouter::models {

class WordVectors : public Embedder {
public:
  static core::StatusOr<std::shared_ptr<const WordVectors>> load(const std::string& dir);
  // The same folder loaded once per process while any user holds it: the default classifiers
  // and the embedder then share one table (and one prepared SIF vector per text).
  static core::StatusOr<std::shared_ptr<const WordVectors>> load_shared(const std::string& dir);

  int64_t dim() const override { return dim_; }
  core::StatusOr<std::vector<std::vector<float>>>
  embed(std::span<const std::string_view> texts) const override;
  // The SIF sentence vector of already-split words into `out` (dim() floats); returns how many
  // words were in the vocabulary (0: `out` is all zeros).
  size_t sentence_vector(const std::vector<std::string>& words, float* out) const {
    return sentence_vector(words.data(), words.size(), out);
  }
  // `sif` false: the plain mean of the word vectors (no weights, no component removed), for
  // comparison.
  size_t sentence_vector(const std::string* words, size_t n, float* out, bool sif = true) const;
  void embed_one(std::string_view text, std::vector<float>& out, bool sif = true) const;
  // Row of a word, or -1.
  int32_t lookup(const std::string& word) const;
  // The SIF weight a / (a + p(w)) of a row: near 1 for rare words, small for common ones.
  float sif_weight(int32_t row) const { return sif_[size_t(row)]; }
  // Cosine similarity of two rows' vectors.
  float row_cosine(int32_t a, int32_t b) const;
  size_t vocab_size() const { return scales_.size(); }

private:
  int64_t dim_ = 0;
  std::unordered_map<std::string, int32_t> index_;
  std::vector<int8_t> q_;     // [V, dim]
  std::vector<float> scales_; // [V]
  std::vector<float> sif_;    // [V]
  std::vector<float> pc_;     // [dim], unit length
};

float cosine(const std::vector<float>& a, const std::vector<float>& b);

} // namespace semrouter::models
