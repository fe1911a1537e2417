// text::Tokenizer::encode / encode_pair / pad_batch on the vocabularies the tests use: BERT's
// WordPiece (bert-base-uncased), GPT-2's byte-level BPE, ModernBERT's BPE.
// Input: a selector byte (tokenizer, pair, special tokens), a max_length byte, then the text
// (for a pair, cut in two at a point the max_length byte also picks).
// Checks: the Encoding's vectors have one length; ids are in the vocabulary; a text token's
// offsets lie inside its own text; truncation respects max_length.
#include <memory>

#include "fuzz_util.h"
#include "text/tokenizer.h"

using namespace semrouter;

namespace {

const std::vector<std::shared_ptr<const text::Tokenizer>>& tokenizers() {
  static const auto loaded = [] {
    std::vector<std::shared_ptr<const text::Tokenizer>> out;
    for (const char* rel : {"tests/fixtures/tokenizers/bert-base-uncased/tokenizer.json",
                            "tests/fixtures/tokenizers/gpt2/tokenizer.json",
                            "tests/fixtures/encoders/modernbert-seqcls/tokenizer.json"}) {
      auto t = text::Tokenizer::from_file(std::string(SEMROUTER_SOURCE_DIR) + "/" + rel);
      if (!t) {
        std::fprintf(stderr, "tokenizer fuzz: %s\n", t.error().message.c_str());
        std::abort();
      }
      out.push_back(*t);
    }
    return out;
  }();
  return loaded;
}

void check(const text::Tokenizer& t, const text::Encoding& e, std::string_view a,
           std::string_view b, size_t max_length) {
  const size_t n = e.ids.size();
  FUZZ_CHECK(e.type_ids.size() == n && e.tokens.size() == n && e.offsets.size() == n &&
             e.sequence_ids.size() == n && e.attention_mask.size() == n);
  for (size_t i = 0; i < n; ++i) {
    FUZZ_CHECK(e.ids[i] >= 0 && static_cast<size_t>(e.ids[i]) < t.vocab_size());
    FUZZ_CHECK(e.sequence_ids[i] >= -1 && e.sequence_ids[i] <= 1);
    const auto [begin, end] = e.offsets[i];
    FUZZ_CHECK(begin <= end);
    if (e.sequence_ids[i] >= 0)
      FUZZ_CHECK(end <= (e.sequence_ids[i] == 0 ? a : b).size());
  }
  // A budget below the special tokens' count still holds those; 4 covers every template here.
  if (max_length >= 4)
    FUZZ_CHECK(n <= max_length);
  FUZZ_CHECK(e.truncated == (max_length != 0 && e.untruncated_length > max_length));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2)
    return 0;
  const auto& all = tokenizers();
  const text::Tokenizer& t = *all[data[0] % all.size()];
  const bool pair = (data[0] & 8) != 0;
  text::EncodeOptions opts;
  opts.add_special_tokens = (data[0] & 16) == 0;
  opts.max_length = (data[0] & 32) ? data[1] % 64 : 0;
  const std::string_view input = fuzz::as_text(data + 2, size - 2);

  if (!pair) {
    text::Encoding e = t.encode(input, opts);
    check(t, e, input, {}, opts.max_length);
    return 0;
  }
  const size_t cut = input.empty() ? 0 : data[1] % (input.size() + 1);
  const std::string_view a = input.substr(0, cut), b = input.substr(cut);
  std::vector<text::Encoding> batch;
  batch.push_back(t.encode_pair(a, b, opts));
  check(t, batch.back(), a, b, opts.max_length);
  batch.push_back(t.encode(b, opts));
  t.pad_batch(batch);
  FUZZ_CHECK(batch[0].size() == batch[1].size());
  return 0;
}
