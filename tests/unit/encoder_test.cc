// The encoders against the Hugging Face transformers reference outputs in
// tests/fixtures/encoders (see its README): every case alone and every padded batch, in f32 within
// 1e-4, and in bf16 / int8 within the documented tolerance (same argmax, logits within 2e-2).
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "models/inference_pool.h"
#include "models/transformer.h"
#include "nn/gemm.h"

using namespace semrouter;
using json = nlohmann::json;

namespace {

std::string folder(const std::string& name) {
  return std::string(SEMROUTER_SOURCE_DIR) + "/tests/fixtures/encoders/" + name;
}

const json& cases_of(const std::string& name) {
  static std::map<std::string, json> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    std::ifstream f(folder(name) + "/cases.json");
    it = cache.emplace(name, json::parse(f)).first;
  }
  return it->second;
}

std::vector<float> flat(const json& j) {
  std::vector<float> out;
  if (j.is_array()) {
    for (const auto& e : j) {
      auto v = flat(e);
      out.insert(out.end(), v.begin(), v.end());
    }
  } else {
    out.push_back(j.get<float>());
  }
  return out;
}

// Max |a - b| over the first `n` values.
double max_diff(const float* a, const std::vector<float>& b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i)
    m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

models::Task task_for(const std::string& name) {
  if (name.find("seqcls") != std::string::npos)
    return models::Task::Sequence;
  if (name.find("tokcls") != std::string::npos)
    return models::Task::Token;
  return models::Task::Embed;
}

std::shared_ptr<models::TransformerModel> load(const std::string& name,
                                               nn::Precision p = nn::Precision::F32,
                                               nn::Backend b = nn::Backend::OneDNN) {
  models::TransformerOptions o;
  o.encoder.precision = p;
  o.encoder.backend = b;
  auto m = models::TransformerModel::load(folder(name), o);
  EXPECT_TRUE(m.has_value()) << (m ? "" : m.error().message);
  return m ? *m : nullptr;
}

constexpr double kTol = 1e-4;

void check_case(const std::string& name, const models::TransformerModel& m, const json& c,
                double* worst) {
  std::string text = c["text"];
  std::string_view tv = text;
  auto r = m.run({&tv, 1}, task_for(name), c.contains("hidden_states"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->encodings[0].ids, c["input_ids"].get<std::vector<int32_t>>())
      << name << " " << c["name"];
  const size_t S = r->encodings[0].size(), H = size_t(m.config().hidden),
               L = size_t(m.config().num_labels());
  auto want_h = flat(c["last_hidden_state"]);
  ASSERT_EQ(want_h.size(), S * H);
  double d = max_diff(r->hidden.data(), want_h, S * H);
  EXPECT_LE(d, kTol) << name << " " << c["name"] << " last_hidden_state";
  *worst = std::max(*worst, d);
  if (c.contains("hidden_states")) {
    const auto& hs = c["hidden_states"];
    ASSERT_EQ(r->all_hidden.size(), hs.size());
    for (size_t l = 0; l < hs.size(); ++l) {
      auto w = flat(hs[l]);
      EXPECT_LE(max_diff(r->all_hidden[l].data(), w, S * H), kTol)
          << name << " hidden_states[" << l << "]";
    }
  }
  if (c.contains("logits")) {
    auto want = flat(c["logits"]);
    ASSERT_EQ(r->logits.size(), want.size());
    d = max_diff(r->logits.data(), want, want.size());
    EXPECT_LE(d, kTol) << name << " " << c["name"] << " logits";
    *worst = std::max(*worst, d);
  }
  if (c.contains("predicted_label")) {
    auto cls = m.classify({&tv, 1});
    ASSERT_TRUE(cls.has_value());
    EXPECT_EQ((*cls)[0].label, c["predicted_label"].get<std::string>()) << name << " " << c["name"];
    auto want_p = flat(c["probabilities"]);
    EXPECT_LE(max_diff((*cls)[0].probabilities.data(), want_p, L), kTol);
  }
  if (c.contains("predicted_labels")) {
    auto want = c["predicted_labels"].get<std::vector<std::string>>();
    for (size_t s = 0; s < S; ++s) {
      const float* row = r->logits.data() + s * L;
      size_t k = size_t(std::max_element(row, row + L) - row);
      EXPECT_EQ(m.labels()[k], want[s]) << name << " " << c["name"] << " token " << s;
    }
  }
  if (c.contains("sentence_embedding")) {
    auto want = flat(c["sentence_embedding"]);
    d = max_diff(r->pooled.data(), want, H);
    EXPECT_LE(d, kTol) << name << " " << c["name"] << " sentence_embedding";
    *worst = std::max(*worst, d);
  }
}

class EncoderFixture : public ::testing::TestWithParam<std::string> {};

} // namespace

TEST_P(EncoderFixture, EveryCaseAloneMatchesReference) {
  const std::string name = GetParam();
  auto m = load(name);
  ASSERT_TRUE(m);
  const json& cases = cases_of(name);
  double worst = 0;
  size_t n = 0;
  for (const auto& c : cases["cases"]) {
    check_case(name, *m, c, &worst);
    ++n;
  }
  EXPECT_EQ(n, 16u);
  std::cout << name << ": max |diff| over " << n << " cases = " << worst << "\n";
}

TEST_P(EncoderFixture, PaddedBatchesMatchReferenceAtRealPositions) {
  const std::string name = GetParam();
  auto m = load(name);
  ASSERT_TRUE(m);
  const json& cases = cases_of(name);
  const size_t H = size_t(m->config().hidden), L = size_t(m->config().num_labels());
  for (const auto& b : cases["batches"]) {
    auto texts = b["texts"].get<std::vector<std::string>>();
    std::vector<std::string_view> views(texts.begin(), texts.end());
    auto r = m->run(views, task_for(name));
    ASSERT_TRUE(r.has_value()) << r.error().message;
    auto shape = b["shape"].get<std::vector<size_t>>();
    ASSERT_EQ(size_t(r->batch.B), shape[0]);
    ASSERT_EQ(size_t(r->batch.S), shape[1]);
    const size_t S = shape[1];
    auto ids = flat(b["input_ids"]);
    auto mask = b["attention_mask"].get<std::vector<std::vector<int>>>();
    auto want_h = flat(b["last_hidden_state"]);
    std::vector<float> want_logits =
        b.contains("logits") ? flat(b["logits"]) : std::vector<float>();
    for (size_t i = 0; i < shape[0]; ++i) {
      for (size_t s = 0; s < S; ++s) {
        EXPECT_EQ(r->batch.ids[i * S + s], int32_t(ids[i * S + s]));
        EXPECT_EQ(int(r->batch.mask[i * S + s]), mask[i][s]);
        if (!mask[i][s])
          continue;
        EXPECT_LE(max_diff(r->hidden.data() + (i * S + s) * H,
                           std::vector<float>(want_h.begin() + long((i * S + s) * H),
                                              want_h.begin() + long((i * S + s + 1) * H)),
                           H),
                  kTol)
            << name << " " << b["name"] << " row " << i << " pos " << s;
        if (task_for(name) == models::Task::Token) {
          EXPECT_LE(max_diff(r->logits.data() + (i * S + s) * L,
                             std::vector<float>(want_logits.begin() + long((i * S + s) * L),
                                                want_logits.begin() + long((i * S + s + 1) * L)),
                             L),
                    kTol);
        }
      }
      if (task_for(name) == models::Task::Sequence) {
        EXPECT_LE(max_diff(r->logits.data() + i * L,
                           std::vector<float>(want_logits.begin() + long(i * L),
                                              want_logits.begin() + long((i + 1) * L)),
                           L),
                  kTol)
            << name << " " << b["name"] << " row " << i;
      }
      if (task_for(name) == models::Task::Embed) {
        auto want = flat(b["sentence_embedding"]);
        EXPECT_LE(max_diff(r->pooled.data() + i * H,
                           std::vector<float>(want.begin() + long(i * H),
                                              want.begin() + long((i + 1) * H)),
                           H),
                  kTol);
      }
    }
  }
}

// OpenBLAS as the GEMM backend gives the same answers.
TEST_P(EncoderFixture, OpenBlasBackendMatches) {
  const std::string name = GetParam();
  auto m = load(name, nn::Precision::F32, nn::Backend::OpenBLAS);
  ASSERT_TRUE(m);
  double worst = 0;
  for (const auto& c : cases_of(name)["cases"])
    check_case(name, *m, c, &worst);
}

// Reduced precision, against the f32 reference. The documented tolerance (docs/benchmarks.md):
// bf16 — sequence classification and embeddings within 2e-2 with the same argmax; token
// classification within 4e-2 (0.028 measured; 0.030 with the baseline-ISA kernels). int8 — within
// 0.1 (sequence) / 0.2 (token) with the same sequence argmax. Token argmaxes may only differ where
// the reference's top-two margin is inside twice the bound (the random fixture models have tokens
// whose top two logits tie to 1e-4).
TEST_P(EncoderFixture, ReducedPrecisionStaysWithinTolerance) {
  const std::string name = GetParam();
  const bool token = task_for(name) == models::Task::Token;
  for (auto p : {nn::Precision::BF16, nn::Precision::INT8}) {
    const double bound = p == nn::Precision::BF16 ? (token ? 4e-2 : 2e-2) : (token ? 0.2 : 0.1);
    models::TransformerOptions o;
    o.encoder.precision = p;
    auto mm = models::TransformerModel::load(folder(name), o);
    if (!mm) {
      // Only acceptable where oneDNN has no kernel for this CPU.
      EXPECT_FALSE(p == nn::Precision::BF16 && nn::CpuFeatures::get().avx512f)
          << mm.error().message;
      continue;
    }
    auto& m = **mm;
    EXPECT_EQ(m.precision(), p);
    double worst = 0;
    int flips = 0, tolerated = 0;
    for (const auto& c : cases_of(name)["cases"]) {
      std::string text = c["text"];
      std::string_view tv = text;
      auto r = m.run({&tv, 1}, task_for(name));
      ASSERT_TRUE(r.has_value());
      if (c.contains("logits")) {
        auto want = flat(c["logits"]);
        worst = std::max(worst, max_diff(r->logits.data(), want, want.size()));
        const size_t L = size_t(m.config().num_labels());
        for (size_t row = 0; row < want.size() / L; ++row) {
          const float* a = r->logits.data() + row * L;
          const float* b = want.data() + row * L;
          if ((std::max_element(a, a + L) - a) == (std::max_element(b, b + L) - b))
            continue;
          std::vector<float> sorted(b, b + L);
          std::sort(sorted.rbegin(), sorted.rend());
          if (token && sorted[0] - sorted[1] < 2 * bound)
            ++tolerated;
          else
            ++flips;
        }
      } else {
        auto want = flat(c["sentence_embedding"]);
        worst = std::max(worst, max_diff(r->pooled.data(), want, want.size()));
      }
    }
    std::cout << name << " " << nn::precision_name(p) << ": max |diff| " << worst
              << ", argmax flips " << flips << " (+" << tolerated << " inside the tie band)\n";
    EXPECT_EQ(flips, 0) << name << " " << nn::precision_name(p);
    EXPECT_LE(worst, bound) << name << " " << nn::precision_name(p);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EncoderFixture,
                         ::testing::Values("bert-seqcls", "bert-tokcls", "bert-embed",
                                           "modernbert-seqcls", "modernbert-tokcls"),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

TEST(Encoder, TokenClassifierMergesBioTagsIntoEntitiesWithSpans) {
  std::vector<std::string> tags{"O",       "B-PERSON", "I-PERSON", "O",
                                "B-EMAIL", "I-EMAIL",  "I-PHONE",  "O"};
  std::vector<float> scores{1, 0.8f, 0.6f, 1, 0.9f, 0.7f, 0.5f, 1};
  std::vector<std::pair<uint32_t, uint32_t>> off{{0, 0},   {3, 7},   {8, 13},  {14, 16},
                                                 {17, 20}, {20, 30}, {31, 35}, {0, 0}};
  auto e = models::merge_bio(tags, scores, off);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].type, "PERSON");
  EXPECT_EQ(e[0].begin, 3u);
  EXPECT_EQ(e[0].end, 13u);
  EXPECT_FLOAT_EQ(e[0].score, 0.7f);
  EXPECT_EQ(e[1].type, "EMAIL");
  EXPECT_EQ(e[1].end, 30u);
  EXPECT_EQ(e[2].type, "PHONE"); // an I- tag of another type starts a new entity
}

TEST(Encoder, BadFoldersAreClearErrors) {
  auto m = models::TransformerModel::load("/nonexistent-folder");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("not a directory"), std::string::npos);
  // A tokenizer folder has no config.json.
  auto t = models::TransformerModel::load(std::string(SEMROUTER_SOURCE_DIR) +
                                          "/tests/fixtures/tokenizers/gpt2");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("config.json"), std::string::npos) << t.error().message;
  nlohmann::json cfg = {{"model_type", "t5"}, {"architectures", {"T5ForConditionalGeneration"}}};
  auto c = nn::EncoderConfig::from_json(cfg);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("not supported"), std::string::npos);
  // Asking a sequence classifier for token classification names what it can do.
  auto seq = load("bert-seqcls");
  ASSERT_TRUE(seq);
  std::string_view tv = "hello";
  auto r = seq->run({&tv, 1}, models::Task::Token);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("seq"), std::string::npos) << r.error().message;
}

TEST(Encoder, MisShapedTensorIsNamedWithExpectedShape) {
  // A config that disagrees with the weights: hidden 64 in the file, 32 claimed here.
  std::ifstream f(folder("bert-seqcls") + "/config.json");
  json cfg = json::parse(f);
  cfg["hidden_size"] = 32;
  auto c = nn::EncoderConfig::from_json(cfg);
  ASSERT_TRUE(c);
  auto st = nn::SafeTensors::open(folder("bert-seqcls") + "/model.safetensors");
  ASSERT_TRUE(st);
  auto e = nn::Encoder::load(*c, *st, {});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("bert.embeddings.word_embeddings.weight"), std::string::npos)
      << e.error().message;
  EXPECT_NE(e.error().message.find("expected [30522, 32]"), std::string::npos) << e.error().message;
  // A missing tensor.
  std::string tmp = ::testing::TempDir() + "/tiny.safetensors";
  ASSERT_TRUE(nn::write_safetensors_f32(tmp, {{"x", {{2}, {1.f, 2.f}}}}));
  auto st2 = nn::SafeTensors::open(tmp);
  ASSERT_TRUE(st2);
  auto e2 = nn::Encoder::load(*c, *st2, {});
  ASSERT_FALSE(e2);
  EXPECT_NE(e2.error().message.find("missing tensor"), std::string::npos) << e2.error().message;
}

TEST(InferencePool, RunsJobsOffTheCallerAndRefusesWhenFull) {
  models::InferencePool::Options o;
  o.workers = 1;
  o.queue_capacity = 2;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> done{0};
  {
    models::InferencePool pool(o);
    auto blocker = [&] {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return release; });
      ++done;
    };
    ASSERT_TRUE(pool.submit(blocker)); // taken by the worker...
    while (pool.queued() != 0)
      std::this_thread::yield();
    EXPECT_TRUE(pool.submit([&] { ++done; }));
    EXPECT_TRUE(pool.submit([&] { ++done; }));
    EXPECT_FALSE(pool.submit([&] { ++done; })); // ...and the queue (2) is full
    {
      std::lock_guard<std::mutex> l(mu);
      release = true;
    }
    cv.notify_all();
  } // the destructor drains the queue
  EXPECT_EQ(done.load(), 3);
}
