// A Hugging Face model folder (config.json, model.safetensors, tokenizer.json, and for
// sentence-transformers modules.json + pooling config) as classifier, token classifier and
// embedder.
#pragma once

#include <memory>
#include <string>

#include "models/models.h"
#include "nn/encoder.h"
#include "text/tokenizer.h"

namespace semrouter::models {

enum class Task { Sequence, Token, Embed };
const char* task_name(Task t);
core::StatusOr<Task> parse_task(const std::string& s);

struct TransformerOptions {
  nn::EncoderOptions encoder;
  size_t max_length = 0; // 0: the tokenizer's model_max_length, else max_position_embeddings
};

class TransformerModel : public TextClassifier, public TokenClassifier, public Embedder {
public:
  static core::StatusOr<std::shared_ptr<TransformerModel>>
  load(const std::string& dir, const TransformerOptions& opts = {});

  // Everything one batch produced, for callers that want raw values (tests, the CLI).
  struct Run {
    std::vector<text::Encoding> encodings; // padded to a common length
    nn::Batch batch;
    std::vector<float> hidden; // last hidden state [B·S, hidden]
    std::vector<float> logits; // [B, labels] (sequence) or [B·S, labels] (token); empty for Embed
    std::vector<float> pooled; // [B, hidden] for Embed
    std::vector<std::vector<float>> all_hidden; // with `debug_hidden`
  };
  // The entities of text `i` of a token-classification run (BIO tags merged, byte spans).
  std::vector<Entity> entities_of(const Run& r, size_t i) const;
  core::StatusOr<Run> run(std::span<const std::string_view> texts, Task task,
                          bool debug_hidden = false) const;

  const std::vector<std::string>& labels() const override { return cfg_.labels; }
  core::StatusOr<std::vector<Classification>>
  classify(std::span<const std::string_view> texts) const override;
  core::StatusOr<std::vector<std::vector<Entity>>>
  entities(std::span<const std::string_view> texts) const override;
  core::StatusOr<std::vector<std::vector<float>>>
  embed(std::span<const std::string_view> texts) const override;
  int64_t dim() const override { return cfg_.hidden; }

  const nn::EncoderConfig& config() const { return cfg_; }
  const text::Tokenizer& tokenizer() const { return *tokenizer_; }
  Task default_task() const;
  bool supports(Task t) const;
  nn::Precision precision() const { return encoder_->precision(); }
  size_t max_length() const { return max_length_; }
  nn::Pooling embed_pooling() const { return embed_pooling_; }
  bool embed_normalize() const { return embed_normalize_; }

private:
  TransformerModel() = default;
  nn::EncoderConfig cfg_;
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  std::unique_ptr<nn::Encoder> encoder_;
  size_t max_length_ = 512;
  nn::Pooling embed_pooling_ = nn::Pooling::Mean;
  bool embed_normalize_ = false;
};

} // namespace semrouter::models
