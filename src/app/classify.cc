// `semrouter classify`: run a Hugging Face model folder on texts and print JSON.
#include "app/commands.h"

#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "models/transformer.h"
#include "nn/gemm.h"
#include "text/unicode.h"

namespace semrouter::app {

using json = nlohmann::json;

namespace {

// JSON needs valid UTF-8; input bytes that are not become U+FFFD in the echo (not in the model's
// input).
std::string printable(std::string_view s) {
  std::string out;
  for (const auto& c : text::decode_utf8(s))
    text::append_utf8(out, c.cp);
  return out;
}

} // namespace

int cmd_classify(const ClassifyArgs& a) {
  auto backend = nn::parse_backend(a.backend);
  auto precision = nn::parse_precision(a.precision);
  if (!backend || !precision) {
    std::fprintf(stderr, "classify: %s\n",
                 (!backend ? backend.error() : precision.error()).message.c_str());
    return 2;
  }
  if (*backend == nn::Backend::OpenBLAS && *precision != nn::Precision::F32 &&
      *precision != nn::Precision::Auto) {
    std::fprintf(
        stderr,
        "classify: the openblas backend computes in f32 only; use --backend onednn for %s\n",
        a.precision.c_str());
    return 2;
  }
  nn::set_compute_threads(a.threads);
  models::TransformerOptions o;
  o.encoder.backend = *backend;
  o.encoder.precision = *precision;
  o.max_length = a.max_length;
  auto t0 = std::chrono::steady_clock::now();
  auto loaded = models::TransformerModel::load(a.model_dir, o);
  if (!loaded) {
    std::fprintf(stderr, "classify: cannot load model: %s\n", loaded.error().message.c_str());
    return 1;
  }
  auto& m = **loaded;
  auto t1 = std::chrono::steady_clock::now();
  models::Task task = m.default_task();
  if (!a.task.empty()) {
    auto t = models::parse_task(a.task);
    if (!t) {
      std::fprintf(stderr, "classify: %s\n", t.error().message.c_str());
      return 2;
    }
    task = *t;
  }
  std::vector<std::string> texts = a.texts;
  if (texts.empty()) { // one text per line on stdin
    std::string line;
    while (std::getline(std::cin, line))
      texts.push_back(line);
  }
  std::vector<std::string_view> views(texts.begin(), texts.end());
  auto r = m.run(views, task);
  if (!r) {
    std::fprintf(stderr, "classify: %s\n", r.error().message.c_str());
    return 2;
  }
  auto t2 = std::chrono::steady_clock::now();
  const size_t L = size_t(m.config().num_labels()), H = size_t(m.config().hidden);
  json out = {{"model", a.model_dir},
              {"architecture", m.config().architecture},
              {"task", models::task_name(task)},
              {"precision", nn::precision_name(m.precision())},
              {"backend", nn::backend_name(*backend)},
              {"threads", a.threads},
              {"load_ms", std::chrono::duration<double, std::milli>(t1 - t0).count()},
              {"inference_ms", std::chrono::duration<double, std::milli>(t2 - t1).count()}};
  json results = json::array();
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& enc = r->encodings[i];
    size_t real = 0;
    for (auto v : enc.attention_mask)
      real += v;
    json item = {{"text", printable(texts[i])}, {"tokens", real}, {"truncated", enc.truncated}};
    if (task == models::Task::Sequence) {
      auto p = models::softmax(r->logits.data() + i * L, L);
      size_t k = size_t(std::max_element(p.begin(), p.end()) - p.begin());
      item["label"] = m.labels()[k];
      item["confidence"] = p[k];
      json probs = json::object();
      for (size_t j = 0; j < L; ++j)
        probs[m.labels()[j]] = p[j];
      item["probabilities"] = probs;
    } else if (task == models::Task::Token) {
      json ents = json::array();
      for (const auto& e : m.entities_of(*r, i))
        ents.push_back(
            {{"type", e.type},
             {"score", e.score},
             {"start", text::byte_to_char_offset(texts[i], e.begin)},
             {"end", text::byte_to_char_offset(texts[i], e.end)},
             {"text", printable(std::string_view(texts[i]).substr(e.begin, e.end - e.begin))}});
      item["entities"] = ents;
    } else {
      item["embedding"] = std::vector<float>(r->pooled.begin() + long(i * H),
                                             r->pooled.begin() + long((i + 1) * H));
    }
    results.push_back(std::move(item));
  }
  out["results"] = std::move(results);
  if (task == models::Task::Embed) {
    out["dim"] = H;
    out["pooling"] = m.embed_pooling() == nn::Pooling::Mean ? "mean" : "cls";
    out["normalized"] = m.embed_normalize();
  }
  std::cout << out.dump(a.pretty ? 2 : -1) << "\n";
  return 0;
}

} // namespace semrouter::app
