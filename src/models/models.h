// Task-level model services behind small interfaces, so a signal can be backed by a transformer
// folder or by an embedded default model, chosen by config.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace semrouter::models {

struct Classification {
  std::string label;    // the argmax label
  float confidence = 0; // its probability
  int32_t label_id = 0;
  std::vector<float> probabilities; // index = class id
  std::vector<float> logits;
};

// A span of the input recognised by a token classifier (BIO tags merged).
struct Entity {
  std::string type;   // e.g. "EMAIL_ADDRESS" (the tag without its B-/I- prefix)
  float score = 0;    // mean probability of its tokens' tags
  uint32_t begin = 0; // byte offsets into the input text
  uint32_t end = 0;
};

class TextClassifier {
public:
  virtual ~TextClassifier() = default;
  virtual const std::vector<std::string>& labels() const = 0;
  virtual core::StatusOr<std::vector<Classification>>
  classify(std::span<const std::string_view> texts) const = 0;
};

class TokenClassifier {
public:
  virtual ~TokenClassifier() = default;
  virtual core::StatusOr<std::vector<std::vector<Entity>>>
  entities(std::span<const std::string_view> texts) const = 0;
};

class Embedder {
public:
  virtual ~Embedder() = default;
  virtual int64_t dim() const = 0;
  // One vector of dim() per text (L2-normalised when the model says so).
  virtual core::StatusOr<std::vector<std::vector<float>>>
  embed(std::span<const std::string_view> texts) const = 0;
};

// Softmax of one row of logits (double accumulation; used by every classifier).
std::vector<float> softmax(const float* logits, size_t n);

// Merges per-token BIO tags into entities. `tags[i]` is token i's label ("O", "B-X", "I-X" or a
// bare "X"), `scores[i]` its probability, `offsets[i]` its byte span; tokens with an empty span
// (special tokens, padding) are skipped and end any open entity.
std::vector<Entity> merge_bio(const std::vector<std::string>& tags,
                              const std::vector<float>& scores,
                              const std::vector<std::pair<uint32_t, uint32_t>>& offsets);

} // namespace semrouter::models
