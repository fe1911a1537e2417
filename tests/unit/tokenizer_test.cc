// Every reference tokenisation in tests/fixtures (produced by Hugging Face transformers) must be
// reproduced id for id; see tests/fixtures/tokenizers/README.md for their provenance.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "text/tokenizer.h"

using namespace semrouter;
using json = nlohmann::json;

namespace {

std::string fixture(const std::string& rel) {
  return std::string(SEMROUTER_SOURCE_DIR) + "/tests/fixtures/" + rel;
}

json load_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return json::parse(f);
}

std::shared_ptr<const text::Tokenizer> load(const std::string& dir) {
  auto t = text::Tokenizer::from_file(fixture(dir + "/tokenizer.json"));
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return t ? *t : nullptr;
}

void check_cases(const std::string& dir) {
  auto tok = load("tokenizers/" + dir);
  ASSERT_TRUE(tok);
  json cases = load_json(fixture("tokenizers/" + dir + "/cases.json"));
  size_t n = 0, bad = 0;
  for (const auto& c : cases["cases"]) {
    std::string text = c["text"];
    auto enc = tok->encode(text);
    auto want = c["input_ids"].get<std::vector<int32_t>>();
    ++n;
    if (enc.ids != want) {
      ++bad;
      ADD_FAILURE() << dir << ": ids differ for " << c.dump().substr(0, 300)
                    << "\n got tokens: " << json(enc.tokens).dump();
    } else {
      EXPECT_EQ(enc.tokens, c["tokens"].get<std::vector<std::string>>()) << text;
    }
    // Offsets must lie inside the text and be ordered.
    for (size_t k = 0; k < enc.size(); ++k) {
      EXPECT_LE(enc.offsets[k].first, enc.offsets[k].second);
      EXPECT_LE(enc.offsets[k].second, text.size());
    }
  }
  EXPECT_GT(n, 200u);
  EXPECT_EQ(bad, 0u);
  if (cases.contains("pairs"))
    for (const auto& c : cases["pairs"]) {
      auto enc = tok->encode_pair(c["text"].get<std::string>(), c["text_pair"].get<std::string>());
      EXPECT_EQ(enc.ids, c["input_ids"].get<std::vector<int32_t>>()) << c["text"];
      EXPECT_EQ(enc.type_ids, c["token_type_ids"].get<std::vector<int32_t>>()) << c["text"];
    }
}

} // namespace

TEST(Tokenizer, BertWordPieceMatchesReference) {
  check_cases("bert-base-uncased");
}
TEST(Tokenizer, Gpt2ByteLevelBpeMatchesReference) {
  check_cases("gpt2");
}

// The encoder folders' tokenizers (BERT WordPiece, ModernBERT BPE with [CLS]/[SEP] template)
// with truncation to the model's max length.
TEST(Tokenizer, EncoderFoldersMatchWithTruncation) {
  for (const std::string dir : {"bert-seqcls", "modernbert-seqcls"}) {
    auto tok = load("encoders/" + dir);
    ASSERT_TRUE(tok);
    EXPECT_EQ(tok->model_max_length(), 128u);
    json cases = load_json(fixture("encoders/" + dir + "/cases.json"));
    for (const auto& c : cases["cases"]) {
      text::EncodeOptions o;
      o.max_length = c["max_length"];
      auto enc = tok->encode(c["text"].get<std::string>(), o);
      EXPECT_EQ(enc.ids, c["input_ids"].get<std::vector<int32_t>>()) << dir << " " << c["name"];
      EXPECT_EQ(enc.truncated, c["truncated"].get<bool>()) << dir << " " << c["name"];
      EXPECT_EQ(enc.untruncated_length, c["num_tokens_untruncated"].get<size_t>())
          << dir << " " << c["name"];
    }
    for (const auto& b : cases["batches"]) {
      std::vector<text::Encoding> batch;
      text::EncodeOptions o;
      o.max_length = 128;
      for (const auto& t : b["texts"])
        batch.push_back(tok->encode(t.get<std::string>(), o));
      tok->pad_batch(batch);
      auto ids = b["input_ids"].get<std::vector<std::vector<int32_t>>>();
      auto mask = b["attention_mask"].get<std::vector<std::vector<int32_t>>>();
      ASSERT_EQ(batch.size(), ids.size());
      for (size_t i = 0; i < batch.size(); ++i) {
        EXPECT_EQ(batch[i].ids, ids[i]) << dir << " " << b["name"] << " row " << i;
        EXPECT_EQ(
            std::vector<int32_t>(batch[i].attention_mask.begin(), batch[i].attention_mask.end()),
            mask[i]);
      }
    }
  }
}

TEST(Tokenizer, OffsetsPointAtTheOriginalText) {
  auto tok = load("tokenizers/bert-base-uncased");
  ASSERT_TRUE(tok);
  std::string text = "Héllo, WORLD résumé";
  auto enc = tok->encode(text);
  ASSERT_GE(enc.size(), 5u);
  EXPECT_EQ(enc.tokens[1], "hello");
  EXPECT_EQ(text.substr(enc.offsets[1].first, enc.offsets[1].second - enc.offsets[1].first),
            "Héllo");
  EXPECT_EQ(enc.tokens[2], ",");
  EXPECT_EQ(text.substr(enc.offsets[2].first, 1), ",");
  EXPECT_EQ(enc.offsets[0], std::make_pair(0u, 0u)); // [CLS]

  auto gpt = load("tokenizers/gpt2");
  ASSERT_TRUE(gpt);
  std::string t2 = "naïve café";
  auto e2 = gpt->encode(t2);
  ASSERT_FALSE(e2.ids.empty());
  EXPECT_EQ(e2.offsets.front().first, 0u);
  EXPECT_EQ(e2.offsets.back().second, t2.size());
}

TEST(Tokenizer, UnsupportedComponentsAreClearErrors) {
  auto t = text::Tokenizer::from_json(R"({"model":{"type":"Unigram","vocab":[["a",0.0]]}})");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("Unigram"), std::string::npos) << t.error().message;
  auto t2 = text::Tokenizer::from_json(
      R"({"model":{"type":"WordPiece","vocab":{"[UNK]":0}},"normalizer":{"type":"Precompiled"}})");
  ASSERT_FALSE(t2);
  EXPECT_NE(t2.error().message.find("Precompiled"), std::string::npos) << t2.error().message;
  auto t3 = text::Tokenizer::from_json("{not json");
  ASSERT_FALSE(t3);
  auto t4 = text::Tokenizer::from_file("/nonexistent/tokenizer.json");
  ASSERT_FALSE(t4);
}

TEST(Tokenizer, PaddingAndPairsTruncateLongestFirst) {
  auto tok = load("tokenizers/bert-base-uncased");
  ASSERT_TRUE(tok);
  text::EncodeOptions o;
  o.max_length = 8;
  auto e = tok->encode_pair("one two three four five six", "alpha beta", o);
  EXPECT_EQ(e.size(), 8u);
  EXPECT_TRUE(e.truncated);
  // [CLS] a a a [SEP] b b [SEP]: the longer first sequence loses tokens first
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"[CLS]", "one", "two", "three", "[SEP]", "alpha",
                                                "beta", "[SEP]"}));
  std::vector<text::Encoding> batch{tok->encode("a"), tok->encode("a b c")};
  tok->pad_batch(batch);
  EXPECT_EQ(batch[0].size(), batch[1].size());
  EXPECT_EQ(batch[0].attention_mask, (std::vector<uint8_t>{1, 1, 1, 0, 0}));
  EXPECT_EQ(batch[0].ids.back(), tok->pad_id());
}

// A long word without spaces (pasted base64, a hostile prompt) goes through the heap-ordered
// merge: every byte is still covered, in order, and the merges are the same wherever the word's
// period repeats. (The old rescan of every pair after each merge took 10.5 s on this 100 KB word,
// the heap 0.19 s.)
TEST(Tokenizer, LongWordWithoutSpacesIsMergedAndCoveredInOrder) {
  auto tok = load("tokenizers/gpt2");
  ASSERT_TRUE(tok);
  std::string word;
  for (int i = 0; i < 100000; ++i)
    word += "qzxAb"[i % 5];
  auto enc = tok->encode(word);
  ASSERT_GT(enc.size(), 0u);
  EXPECT_LT(enc.size(), word.size() * 3 / 4); // merges happened
  size_t at = 0;
  std::string joined;
  for (size_t k = 0; k < enc.size(); ++k) {
    EXPECT_EQ(enc.offsets[k].first, at) << k;
    at = enc.offsets[k].second;
    joined += enc.tokens[k];
  }
  EXPECT_EQ(at, word.size());
  EXPECT_EQ(joined, word); // byte-level tokens of ASCII letters are the letters themselves
  // The same merges apply to a repeat of the word's period wherever it starts.
  auto small = tok->encode(word.substr(0, 5000));
  for (size_t k = 0; k + 1 < small.size(); ++k)
    EXPECT_EQ(small.ids[k], enc.ids[k]) << k;
}
