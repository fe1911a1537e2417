// Per-prompt latency of each embedded default model, and of all of them together, on one core,
// for prompts of 10, 50 and 300 words (p50 / p99 over many distinct prompts). Prints a markdown
// table for docs/benchmarks.md.   build/bin/defaults-bench [--models DIR] [--data FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "models/dataset.h"
#include "models/linear_classifier.h"
#include "models/registry.h"
#include "models/word_vectors.h"

using namespace semrouter;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  CLI::App app{"Latency of the embedded default models"};
  std::string dir = models::default_models_dir();
  std::string data = std::string(SEMROUTER_SOURCE_DIR) + "/data/mmlu_pro/questions.jsonl.gz";
  int prompts = 400, rounds = 5;
  app.add_option("--models", dir);
  app.add_option("--data", data);
  app.add_option("--prompts", prompts);
  app.add_option("--rounds", rounds);
  CLI11_PARSE(app, argc, argv);
  auto reg = models::Registry::load(models::default_model_specs(), dir);
  if (!reg) {
    std::fprintf(stderr, "%s\n", reg.error().message.c_str());
    return 1;
  }
  models::DatasetOptions o;
  o.task = "domain";
  auto ex = models::load_examples(data, o);
  if (!ex) {
    std::fprintf(stderr, "%s\n", ex.error().message.c_str());
    return 1;
  }
  // Prompts of exactly N words, cut from consecutive questions.
  std::vector<std::string> words;
  for (const auto& e : *ex) {
    size_t s = 0;
    const std::string& t = e.text;
    while (s < t.size()) {
      size_t b = t.find_first_not_of(" \t\n", s);
      if (b == std::string::npos)
        break;
      size_t en = t.find_first_of(" \t\n", b);
      words.push_back(t.substr(b, en == std::string::npos ? std::string::npos : en - b));
      s = en == std::string::npos ? t.size() : en;
    }
  }
  const auto& R = **reg;
  auto* domain = dynamic_cast<const models::LinearTextClassifier*>(R.domain.get());
  auto* complexity = dynamic_cast<const models::LinearTextClassifier*>(R.complexity.get());
  auto* jailbreak = dynamic_cast<const models::LinearTextClassifier*>(R.jailbreak.get());
  auto* vectors = dynamic_cast<const models::WordVectors*>(R.embeddings.get());
  struct Item {
    const char* name;
    std::function<void(const std::string&)> fn;
  };
  std::vector<float> emb;
  volatile float sink = 0;
  std::vector<Item> items = {
      {"domain", [&](const std::string& t) { sink = sink + domain->classify_one(t).confidence; }},
      {"complexity",
       [&](const std::string& t) { sink = sink + float(complexity->positive_probability(t)); }},
      {"jailbreak",
       [&](const std::string& t) { sink = sink + float(jailbreak->positive_probability(t)); }},
      {"language", [&](const std::string& t) { sink = sink + R.language->detect(t).confidence; }},
      {"embedding", [&](const std::string& t) {
         vectors->embed_one(t, emb);
         sink = sink + emb[0];
       }}};
  items.push_back({"all together (models::analyze)", [&](const std::string& t) {
                     auto a = models::analyze(R, t);
                     sink = sink + a.domain.confidence + a.embedding[0];
                   }});
  std::printf(
      "| model | 10 words p50 / p99 (µs) | 50 words p50 / p99 (µs) | 300 words p50 / p99 (µs) |\n");
  std::printf("|---|---|---|---|\n");
  for (auto& it : items) {
    std::printf("| %s |", it.name);
    for (size_t n : {size_t(10), size_t(50), size_t(300)}) {
      std::vector<std::string> texts;
      for (int p = 0; p < prompts; ++p) {
        std::string t;
        size_t start = (size_t(p) * 7919) % (words.size() - n);
        for (size_t k = 0; k < n; ++k)
          t += (k ? " " : "") + words[start + k];
        texts.push_back(std::move(t));
      }
      for (const auto& t : texts) // warm-up
        it.fn(t);
      std::vector<double> us;
      for (int r = 0; r < rounds; ++r)
        for (const auto& t : texts) {
          auto t0 = Clock::now();
          it.fn(t);
          us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        }
      std::sort(us.begin(), us.end());
      std::printf(" %.1f / %.1f |", us[us.size() / 2], us[size_t(double(us.size()) * 0.99)]);
    }
    std::printf("\n");
  }
  return sink == 12345.f;
}
