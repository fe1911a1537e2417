// Tokenizers loaded from a Hugging Face `tokenizer.json`, matching the `tokenizers` library:
// WordPiece (BERT) and byte-level BPE (GPT-2, RoBERTa, ModernBERT), with their normalizers,
// pre-tokenizers, added tokens and post-processors, truncation, padding and offsets.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "text/unicode.h"

namespace semrouter::text {

// The result of encoding one text (or a pair). All vectors have the same length.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;
  std::vector<std::string> tokens;
  // Byte offsets [begin, end) into the input text the token came from; {0, 0} for special
  // tokens added by the post-processor and for padding. For a pair, offsets of the second
  // sequence's tokens index the second text (see `sequence_ids`).
  std::vector<std::pair<uint32_t, uint32_t>> offsets;
  std::vector<int8_t>
      sequence_ids; // 0 or 1 for text tokens, -1 for added special tokens and padding
  std::vector<uint8_t> attention_mask;
  bool truncated = false;
  size_t untruncated_length = 0; // with special tokens, before truncation
  size_t size() const { return ids.size(); }
};

struct EncodeOptions {
  bool add_special_tokens = true;
  // 0 = no truncation. Counts special tokens, like `max_length` in transformers.
  size_t max_length = 0;
};

class Tokenizer {
public:
  // Loads `tokenizer.json`; if `tokenizer_config.json` sits beside it, `model_max_length` is
  // read from it. Unsupported component types are errors naming the component.
  static core::StatusOr<std::shared_ptr<const Tokenizer>>
  from_file(const std::string& tokenizer_json_path);
  static core::StatusOr<std::shared_ptr<const Tokenizer>> from_json(std::string_view json,
                                                                    size_t model_max_length = 0);
  ~Tokenizer();

  Encoding encode(std::string_view text, const EncodeOptions& opts = {}) const;
  Encoding encode_pair(std::string_view a, std::string_view b,
                       const EncodeOptions& opts = {}) const;
  // Pads every encoding on the right to the longest one with the pad token (attention 0).
  void pad_batch(std::vector<Encoding>& batch) const;

  // From tokenizer_config.json (or the truncation section); 0 when unknown.
  size_t model_max_length() const { return model_max_length_; }
  int32_t pad_id() const { return pad_id_; }
  size_t vocab_size() const;
  std::string_view model_type() const; // "WordPiece" or "BPE"
  // The id of a token string, or -1.
  int32_t token_to_id(std::string_view token) const;

  struct Impl;

private:
  Tokenizer();
  std::unique_ptr<Impl> impl_;
  size_t model_max_length_ = 0;
  int32_t pad_id_ = 0;
};

} // namespace semrouter::text
