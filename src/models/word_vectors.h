// Sentence embeddings without a transformer: int8 GloVe word vectors over a compact vocabulary,
// averaged with SIF weights (a / (a + p(w))), the corpus's common component removed, then
// L2-normalised. Built by scripts/build-word-vectors.py (models/glove-100d-sif).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
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
  // The same from the words' rows (lookup(); -1 for a word not in the vocabulary): for callers
  // that take the vectors of many spans of one text and look each word up once.
  size_t sentence_vector_rows(const int32_t* rows, size_t n, float* out, bool sif = true) const;
  // The pieces of a sentence vector, for callers that sum the same words for many spans:
  // a row's vector times its weight (dim() floats), and the sum of n > 0 of those turned into
  // the sentence vector in place (the mean, the common component removed, L2-normalised).
  // Adding the weighted rows in word order, then finishing, gives sentence_vector_rows()'s result.
  void weighted_row(int32_t row, float* out, bool sif = true) const;
  void finish_sentence_vector(float* sum, size_t n, bool sif = true) const;
  void embed_one(std::string_view text, std::vector<float>& out, bool sif = true) const;
  // Row of a word, or -1.
  int32_t lookup(std::string_view word) const;
  // The rows of many words (rows[i] for words[i]); their table entries are fetched ahead, so a
  // long text's words cost less than one lookup() each.
  void lookup_all(const std::vector<std::string>& words, int32_t* rows) const;
  // The SIF weight a / (a + p(w)) of a row: near 1 for rare words, small for common ones.
  float sif_weight(int32_t row) const { return sif_[size_t(row)]; }
  // Cosine similarity of two rows' vectors.
  float row_cosine(int32_t a, int32_t b) const;
  size_t vocab_size() const { return scales_.size(); }

private:
  // The vocabulary as an open-addressing table (linear probing, a power of two of slots, at most
  // half full): one slot holds a word of up to kInlineBytes bytes, so a lookup usually touches
  // one cache line.
  static constexpr size_t kInlineBytes = 16;
  struct Slot {
    uint64_t hash = 0;
    int32_t row = -1; // -1: empty
    uint32_t size = 0;
    char text[kInlineBytes] = {};
  };
  void insert(std::string_view word, int32_t row);
  int32_t probe(std::string_view word, uint64_t hash) const;

  int64_t dim_ = 0;
  std::vector<Slot> slots_;
  std::vector<std::string> long_words_; // by row: the words longer than kInlineBytes
  std::vector<float> sif_scale_;        // [V] sif_ * scales_, the SIF weight of a row's vector
  std::vector<int8_t> q_;               // [V, dim]
  std::vector<float> scales_;           // [V]
  std::vector<float> sif_;              // [V]
  std::vector<float> pc_;               // [dim], unit length
};

float cosine(const std::vector<float>& a, const std::vector<float>& b);

// Fixed vectors (an embedding signal's phrases), each scaled to unit length once, so that the
// cosine of a query against all of them is one row of dot products (nn::kernels::dot_rows) and
// one norm, instead of three sums in double per pair. A zero vector stays zero: its cosine is 0,
// as cosine() says.
class UnitRows {
public:
  UnitRows() = default;
  // Every vector must have the same length (an embedder's dimension).
  explicit UnitRows(const std::vector<std::vector<float>>& vectors);
  size_t size() const { return count_; }
  // out[k] = cosine(query, vectors[k]) for every k; 0 for all when the query's length differs
  // from dim() or it is zero or not finite (as cosine() says). `out` must hold size() values.
  void cosines(std::span<const float> query, float* out) const;

private:
  std::vector<float> rows_; // [count_, dim_]
  size_t count_ = 0;
  int64_t dim_ = 0;
};

} // namespace semrouter::models
