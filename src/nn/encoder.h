// BERT and ModernBERT encoders with their task heads, computed in f32 (GEMMs optionally in bf16
// or int8), from Hugging Face `config.json` + safetensors weights.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "nn/gemm.h"
#include "nn/safetensors.h"

namespace semrouter::nn {

enum class Arch { Bert, ModernBert };
enum class HeadKind { None, SequenceClassification, TokenClassification };
enum class Pooling { Cls, Mean };

struct EncoderConfig {
  Arch arch = Arch::Bert;
  HeadKind head = HeadKind::None;
  std::string architecture; // e.g. "ModernBertForSequenceClassification"
  int64_t vocab_size = 0, hidden = 0, layers = 0, heads = 0, intermediate = 0, max_positions = 512;
  int64_t type_vocab_size = 2;
  float norm_eps = 1e-12f;
  // ModernBERT
  int64_t local_attention = 128;
  int64_t global_every = 3;
  float global_rope_theta = 160000.f, local_rope_theta = 10000.f;
  bool attention_bias = false, mlp_bias = false, norm_bias = false, classifier_bias = false;
  Pooling classifier_pooling = Pooling::Cls;
  std::vector<std::string> labels; // id2label, index = class id
  int64_t num_labels() const { return int64_t(labels.size()); }
  int64_t head_dim() const { return hidden / heads; }
  bool is_global_layer(int64_t l) const { return arch == Arch::Bert || l % global_every == 0; }

  // From a parsed config.json. Unsupported architectures and activations are errors.
  static core::StatusOr<EncoderConfig> from_json(const nlohmann::json& j);
};

struct EncoderOptions {
  Backend backend = Backend::OneDNN;
  Precision precision = Precision::Auto;
};

// One padded batch: B sequences of S tokens, row-major.
struct Batch {
  int64_t B = 0, S = 0;
  std::vector<int32_t> ids, type_ids;
  std::vector<uint8_t> mask;
};

// Buffers reused across calls; grows to the largest batch seen and never shrinks, so steady-state
// inference allocates nothing. One per thread that runs the encoder.
struct Workspace {
  std::vector<float> x, qkv, ctx, tmp, ff, ff2, scores, rope_cos, rope_sin, head;
  std::vector<uint8_t> scratch;
  int64_t rope_len = 0;
  const void* rope_owner = nullptr; // the encoder whose tables rope_cos / rope_sin hold
};

class Encoder {
public:
  // Loads the weights named as transformers names them (with or without the "bert." /
  // "model." prefix of the task classes). Missing or mis-shaped tensors are errors naming them.
  static core::StatusOr<std::unique_ptr<Encoder>> load(const EncoderConfig& cfg,
                                                       std::shared_ptr<const SafeTensors> weights,
                                                       const EncoderOptions& opts);
  ~Encoder();

  // Runs the encoder; the last hidden state [B·S, hidden] is left in `ws.x` (for ModernBERT after
  // final_norm). With `all_hidden`, also returns the embedding output and every layer's output.
  void forward(const Batch& batch, Workspace& ws,
               std::vector<std::vector<float>>* all_hidden = nullptr) const;

  // Heads, applied to `ws.x` after forward().
  // Sequence classification logits [B, num_labels].
  void sequence_logits(const Batch& batch, Workspace& ws, std::vector<float>& logits) const;
  // Token classification logits [B·S, num_labels].
  void token_logits(const Batch& batch, Workspace& ws, std::vector<float>& logits) const;
  // Pooled sentence embeddings [B, hidden], optionally L2-normalised.
  void pool(const Batch& batch, const Workspace& ws, Pooling pooling, bool normalize,
            std::vector<float>& out) const;
  // BERT's pooler output tanh(dense(h[CLS])) [B, hidden]; empty if the model has no pooler.
  void pooler_output(const Batch& batch, Workspace& ws, std::vector<float>& out) const;

  const EncoderConfig& config() const { return cfg_; }
  Precision precision() const { return precision_; }
  Backend backend() const { return opts_.backend; }

private:
  struct Layer;
  Encoder() = default;
  void attention(const Batch& batch, int64_t layer, Workspace& ws) const;
  void embed(const Batch& batch, Workspace& ws) const;

  EncoderConfig cfg_;
  EncoderOptions opts_;
  Precision precision_ = Precision::F32;
  std::shared_ptr<const SafeTensors> weights_;
  TensorView word_emb_{}, pos_emb_{}, type_emb_{};
  std::vector<float> emb_norm_w_, emb_norm_b_, final_norm_w_, final_norm_b_;
  std::vector<Layer> layers_;
  // heads (always f32: they are small)
  bool has_pooler_ = false;
  Linear pooler_, head_dense_, classifier_;
  std::vector<float> head_norm_w_, head_norm_b_;
};

} // namespace semrouter::nn
