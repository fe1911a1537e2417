// Routing-decision latency on the embedded default config with its embedded classifiers: one
// pipeline::route() call per request (parse, every referenced signal, decision, plugins, the
// rewritten body), on the 420 hand-written chat prompts of data/eval/domain_chat.jsonl.
//
// Concurrency C runs C threads that route their share of the requests at once; each call's
// latency is wall time, so at C above the core count it includes waiting for a core (what a
// request sees when C requests arrive together). Prints p50 / p99 / mean per concurrency and,
// with --json, one JSON line per concurrency.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "metrics/metrics.h"
#include "models/quality_router.h"
#include "pipeline/cache_stage.h"
#include "pipeline/pipeline.h"
#include "pipeline/request_signals.h"
#include "signals/keyword.h"

using namespace semrouter;

namespace {

double us_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The stages of route() on its own, each timed by calling what route() calls: where a long
// prompt's time goes. Prints one table row per size (p50 of each stage over the requests).
// `meta`: what the route column's route() call gets (with --cache, the cache stage).
void print_breakdown(const pipeline::Snapshot& snap, const pipeline::RequestMeta& meta,
                     const std::vector<std::string>& bodies, int rounds, int words) {
  enum class Stage : size_t {
    Parse,
    Facts,
    Window,
    Domain,
    Complexity,
    Reasoning,
    Jailbreak,
    Language,
    Embedding,
    Pii,
    Keywords,
    Route,
    Count
  };
  std::vector<std::vector<double>> t(size_t(Stage::Count));
  auto at = [&](Stage s) -> std::vector<double>& { return t[size_t(s)]; };
  const config::Config& cfg = *snap.config;
  core::Random random(1);
  for (int r = 0; r < rounds; ++r)
    for (const auto& b : bodies) {
      auto t0 = std::chrono::steady_clock::now();
      auto view = openai::parse_request(b, openai::RequestKind::ChatCompletions);
      at(Stage::Parse).push_back(us_since(t0));
      if (!view)
        std::abort();
      // As route() gathers them: the signal text, the PII text (every message; one message is
      // read in place) and the token estimate.
      t0 = std::chrono::steady_clock::now();
      std::string storage, pii_storage;
      std::string_view text = pipeline::signal_text(*view, cfg.routing.history, storage);
      std::string_view pii_text = view->messages.size() == 1 ? view->messages[0].text : "";
      if (view->messages.size() > 1) {
        for (const auto& m : view->messages) {
          if (!pii_storage.empty())
            pii_storage += "\n\n";
          pii_storage += m.text;
        }
        pii_text = pii_storage;
      }
      volatile uint64_t tokens = pipeline::estimate_request_tokens(*view);
      (void)tokens;
      at(Stage::Facts).push_back(us_since(t0));
      t0 = std::chrono::steady_clock::now();
      std::string window_storage;
      std::string_view model_text = pipeline::text_window(text, cfg.routing.window, window_storage);
      at(Stage::Window).push_back(us_since(t0));
      models::Analysis a = models::analyze(*snap.models, model_text, snap.referenced.classifiers);
      at(Stage::Domain).push_back(a.domain_us); // includes the shared featurisation
      at(Stage::Complexity).push_back(a.complexity_us);
      at(Stage::Reasoning).push_back(a.reasoning_us);
      at(Stage::Jailbreak).push_back(a.jailbreak_us);
      at(Stage::Language).push_back(a.language_us);
      at(Stage::Embedding).push_back(a.embedding_us);
      t0 = std::chrono::steady_clock::now();
      auto pii = pipeline::detect_pii(nullptr, pii_text);
      at(Stage::Pii).push_back(us_since(t0));
      t0 = std::chrono::steady_clock::now();
      signals::SignalResults results;
      if (snap.keywords)
        snap.keywords->evaluate(signals::SignalInput{text}, results);
      at(Stage::Keywords).push_back(us_since(t0));
      t0 = std::chrono::steady_clock::now();
      pipeline::route(snap, meta, b, random);
      at(Stage::Route).push_back(us_since(t0));
    }
  std::printf("| %d |", words);
  for (const auto& stage : t)
    std::printf(" %.0f |", median(stage));
  std::printf("\n");
}

// "miss 72, bypass 8": how often the cache stage gave each answer.
std::string outcome_list(const std::map<std::string, int>& outcomes) {
  std::string out;
  for (const auto& [name, count] : outcomes)
    out += (out.empty() ? "" : ", ") + name + " " + std::to_string(count);
  return out;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Routing-decision latency of the default config (p50/p99 per concurrency)."};
  std::vector<int> concurrency{1, 64};
  int rounds = 20;
  std::string data = std::string(SEMROUTER_SOURCE_DIR) + "/data/eval/domain_chat.jsonl";
  bool json = false;
  std::string router_dir;
  app.add_option("-c,--concurrency", concurrency, "Concurrent routing threads (repeatable)");
  app.add_option("--router", router_dir,
                 "Instead: time one cost-quality router's scoring (QualityRouter::predict) per "
                 "prompt, single-threaded");
  app.add_option("-r,--rounds", rounds, "Passes over the prompt set per concurrency");
  app.add_option("--data", data, "JSONL with a \"text\" field per line");
  app.add_flag("--json", json, "Also print one JSON line per concurrency");
  std::vector<int> words;
  bool no_window = false;
  app.add_option("--words", words,
                 "Instead: route long prompts of about N words (repeatable; each built from the "
                 "data set's prompts), single-threaded");
  app.add_flag("--no-window", no_window, "With --words: routing.window off (classifiers read all)");
  bool breakdown = false;
  app.add_flag("--breakdown", breakdown,
               "With --words: also time each stage of route() on its own (p50 per stage)");
  bool with_cache = false;
  app.add_flag("--cache", with_cache,
               "With --words: route with the config's semantic cache, as the server does (an "
               "in-memory store that stays empty, so each lookup misses as a new long prompt "
               "does; the table's cache column says what the stage answered)");
  CLI11_PARSE(app, argc, argv);
  if (with_cache && words.empty()) {
    std::fprintf(stderr, "--cache: only with --words\n");
    return 2;
  }

  if (!router_dir.empty()) {
    auto r = models::QualityRouter::load(router_dir);
    if (!r) {
      std::fprintf(stderr, "router: %s\n", r.error().message.c_str());
      return 1;
    }
    std::vector<std::string> texts;
    std::ifstream rin(data);
    for (std::string line; std::getline(rin, line);)
      if (!line.empty())
        texts.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
    std::vector<float> p;
    for (const auto& t : texts) // warm-up
      (*r)->predict(t, p);
    std::vector<double> lat;
    for (int round = 0; round < rounds; ++round)
      for (const auto& t : texts) {
        auto t0 = std::chrono::steady_clock::now();
        (*r)->predict(t, p);
        lat.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count());
      }
    std::sort(lat.begin(), lat.end());
    std::printf(
        "| router | type | prompts | p50 µs | p99 µs |\n|---|---|---|---|---|\n| %s | %s | %zu | "
        "%.1f | %.1f |\n",
        router_dir.c_str(), models::router_kind_name((*r)->kind()), lat.size(), lat[lat.size() / 2],
        lat[std::min(lat.size() - 1, size_t(0.99 * double(lat.size())))]);
    return 0;
  }
  auto cfg = config::parse_config(config::embedded_default_config());
  if (!cfg) {
    std::fprintf(stderr, "config: %s\n", cfg.error().message.c_str());
    return 1;
  }
  if (no_window) {
    auto c = std::make_shared<config::Config>(**cfg);
    c->routing.window = {0, 0};
    *cfg = c;
  }
  auto snap = pipeline::build_snapshot(*cfg, 1, /*load_models=*/true);
  if (!snap) {
    std::fprintf(stderr, "models: %s\n", snap.error().message.c_str());
    return 1;
  }
  std::vector<std::string> bodies;
  std::ifstream in(data);
  for (std::string line; std::getline(in, line);) {
    if (line.empty())
      continue;
    auto j = nlohmann::json::parse(line);
    nlohmann::json body = {{"model", "auto"},
                           {"messages", {{{"role", "user"}, {"content", j["text"]}}}}};
    bodies.push_back(body.dump());
  }
  if (bodies.empty()) {
    std::fprintf(stderr, "no prompts in %s\n", data.c_str());
    return 1;
  }
  if (!words.empty()) {
    // Long prompts: the data set's prompts joined until each has about N words; 8 different
    // ones per size, routed in turn.
    std::vector<std::string> texts;
    std::ifstream tin(data);
    for (std::string line; std::getline(tin, line);)
      if (!line.empty())
        texts.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
    metrics::Registry registry;
    pipeline::CacheRuntime cache(registry);
    pipeline::RequestMeta meta;
    if (with_cache)
      meta.cache = &cache;
    std::printf(
        "| words | window | cache | requests | p50 µs | p99 µs |\n|---|---|---|---|---|---|\n");
    std::vector<std::vector<std::string>> long_sets;
    for (int n : words) {
      std::vector<std::string> longs;
      size_t next = 0;
      for (int v = 0; v < 8; ++v) {
        std::string t;
        int count = 0;
        while (count < n) {
          const std::string& p = texts[next++ % texts.size()];
          t += p;
          t += '\n';
          count += int(std::count(p.begin(), p.end(), ' ')) + 1;
        }
        longs.push_back(
            nlohmann::json({{"model", "auto"}, {"messages", {{{"role", "user"}, {"content", t}}}}})
                .dump());
      }
      core::Random random(1);
      for (const auto& b : longs) // warm-up
        pipeline::route(**snap, meta, b, random);
      std::vector<double> lat;
      std::map<std::string, int> outcomes; // the cache stage's answers
      for (int r = 0; r < rounds; ++r)
        for (const auto& b : longs) {
          auto t0 = std::chrono::steady_clock::now();
          const auto out = pipeline::route(**snap, meta, b, random);
          ++outcomes[out.cache.empty() ? "none" : out.cache];
          lat.push_back(
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                  .count());
        }
      std::sort(lat.begin(), lat.end());
      std::printf("| %d | %s | %s | %zu | %.1f | %.1f |\n", n, no_window ? "off" : "on",
                  outcome_list(outcomes).c_str(), lat.size(), lat[lat.size() / 2],
                  lat[std::min(lat.size() - 1, size_t(0.99 * lat.size()))]);
      long_sets.push_back(std::move(longs));
    }
    if (breakdown) {
      std::printf("\np50 µs per stage (domain includes the featurisation the classifiers share; "
                  "PII is one scan of every message; route is the whole call, with the cache stage "
                  "under --cache):\n\n"
                  "| words | parse | facts | window | domain | complexity | reasoning | jailbreak "
                  "| language | embedding | pii | keywords | route |\n"
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
      for (size_t k = 0; k < words.size(); ++k)
        print_breakdown(**snap, meta, long_sets[k], rounds, words[k]);
    }
    return 0;
  }
  // Warm-up: page in the models, fill caches and thread-local buffers.
  core::Random warm(1);
  for (const auto& b : bodies)
    pipeline::route(**snap, {}, b, warm);

  std::printf("| concurrency | requests | p50 µs | p99 µs | mean µs |\n|---|---|---|---|---|\n");
  for (int c : concurrency) {
    std::vector<std::vector<double>> per_thread(static_cast<size_t>(c));
    std::vector<std::thread> threads;
    for (int t = 0; t < c; ++t) {
      threads.emplace_back([&, t] {
        core::Random random(static_cast<uint64_t>(t) + 1);
        auto& lat = per_thread[static_cast<size_t>(t)];
        for (int r = 0; r < rounds; ++r) {
          for (size_t i = static_cast<size_t>(t); i < bodies.size(); i += static_cast<size_t>(c)) {
            auto t0 = std::chrono::steady_clock::now();
            auto out = pipeline::route(**snap, {}, bodies[i], random);
            auto t1 = std::chrono::steady_clock::now();
            if (out.action == pipeline::RouteAction::Forward && out.body.empty())
              std::abort();
            lat.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
          }
        }
      });
    }
    for (auto& th : threads)
      th.join();
    std::vector<double> all;
    for (auto& v : per_thread)
      all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) { return all[std::min(all.size() - 1, size_t(p * all.size()))]; };
    double mean = 0;
    for (double v : all)
      mean += v;
    mean /= static_cast<double>(all.size());
    std::printf("| %d | %zu | %.1f | %.1f | %.1f |\n", c, all.size(), pct(0.50), pct(0.99), mean);
    if (json)
      std::printf("{\"concurrency\":%d,\"requests\":%zu,\"p50_us\":%.2f,\"p99_us\":%.2f,"
                  "\"mean_us\":%.2f}\n",
                  c, all.size(), pct(0.50), pct(0.99), mean);
  }
  return 0;
}
