// Text features for the embedded default models: normalisation that attackers cannot trivially
// dodge (case, zero-width characters, whitespace runs), words, and hashed sparse features
// (word unigrams and bigrams, character n-grams of words) as fastText builds them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace semrouter::models {

// Lowercased words (letters and digits; Unicode-aware), after dropping zero-width and other
// invisible format characters. Digits runs are kept as written.
void words_of(std::string_view text, std::vector<std::string>& out);
// The same, and where each word starts: the byte offset in `text` of its first character.
void words_of(std::string_view text, std::vector<std::string>& out, std::vector<uint32_t>& begins);

struct FeatureOptions {
  uint32_t buckets_log2 = 18; // hash space 2^bits
  bool word_bigrams = true;
  int char_ngram_min = 3; // 0 disables character n-grams
  int char_ngram_max = 5;
};

// A sparse vector: sorted unique indices with values, L2-normalised.
struct SparseVec {
  std::vector<uint32_t> idx;
  std::vector<float> val;
};

class FeatureHasher {
public:
  explicit FeatureHasher(FeatureOptions o = {}) : o_(o) {}
  const FeatureOptions& options() const { return o_; }
  uint32_t dim() const { return 1u << o_.buckets_log2; }
  // Sublinear term frequency (1 + log tf) per hashed feature, then L2 normalisation.
  void features(const std::vector<std::string>& words, SparseVec& out) const;
  void features(std::string_view text, SparseVec& out) const;
  // The pieces, for callers that score many spans of one text (window scoring): the features of
  // one word (unigram and character n-grams), of a word pair (bigram), and the vector of ids.
  void word_ids(const std::string& word, std::vector<uint32_t>& out) const;
  uint32_t bigram_id(const std::string& a, const std::string& b) const;
  // Sorts and counts `ids` (destroyed) into a normalised SparseVec.
  static void from_ids(std::vector<uint32_t>& ids, SparseVec& out);

private:
  FeatureOptions o_;
};

uint64_t fnv1a(std::string_view s, uint64_t seed = 0xcbf29ce484222325ull);

// Sorts feature ids ascending: what std::sort gives, by radix sort when there are many (a long
// text's thousands of ids, a window's hundreds).
void sort_ids(std::vector<uint32_t>& ids);

} // namespace semrouter::models
