// Semantic cache lookup latency and memory (docs/benchmarks.md):
//   cache-bench [--entries 10000,100000,1000000] [--queries 2000] [--redis host:port]
// Fills one scope with N entries (unit vectors of the default embedder's dimension, a question's
// text and a 400-byte answer), then times lookups of real questions: the embedding alone, the
// lookup alone, and both (what a request pays). Reports p50/p99, the build time and the resident
// memory per entry. With --redis, the same against the Redis store (entries in Redis, the index
// mirrored in process).
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <random>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cache/cache.h"
#include "core/strings.h"
#include "models/registry.h"
#include "pipeline/cache_stage.h"

using namespace semrouter;
using Clock = std::chrono::steady_clock;

namespace {

double rss_mib() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return double(resident) * 4096.0 / (1024.0 * 1024.0);
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

const char* kQuestions[] = {
    "How do I reset my router to factory settings?",
    "What is the boiling point of water at high altitude?",
    "Can you explain how compound interest works?",
    "What are the symptoms of vitamin D deficiency?",
    "How do I undo the last commit in git?",
    "What's a good recipe for banana bread?",
    "Why is the sky blue during the day?",
    "How long should I boil an egg for a soft yolk?",
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Semantic cache lookup latency and memory per entry"};
  std::string sizes = "10000,100000,1000000", models_dir = SEMROUTER_SOURCE_DIR "/models";
  std::string redis;
  size_t queries = 2000;
  app.add_option("--entries", sizes, "Comma-separated entry counts");
  app.add_option("--queries", queries, "Timed lookups per size");
  app.add_option("--redis", redis, "host:port of a Redis to bench the shared store on");
  app.add_option("--models", models_dir, "The embedded default models' folder");
  CLI11_PARSE(app, argc, argv);

  auto reg = models::Registry::load(models::default_model_specs(), models_dir);
  if (!reg || !(*reg)->embeddings) {
    std::cerr << "cache-bench: cannot load the default embedder\n";
    return 1;
  }
  const models::Embedder& embedder = *(*reg)->embeddings;
  const size_t dim = size_t(embedder.dim());
  config::CacheConfig cc;
  const cache::Verifier verifier = pipeline::cache_verifier(cc, &embedder);
  std::vector<std::vector<float>> qvecs;
  for (const char* q : kQuestions)
    qvecs.push_back(pipeline::cache_embedding(embedder, q));

  std::cout << "| store | entries | build s | MiB/1k entries | embed p50 µs | lookup p50 µs | "
               "lookup p99 µs | embed+lookup p50 µs | embed+lookup p99 µs |\n"
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& s : core::split(sizes, ',')) {
    const size_t n = std::stoull(s);
    cache::Options o;
    o.max_entries = n + 1 + std::size(kQuestions);
    o.max_bytes = 1ull << 40;
    std::unique_ptr<cache::Cache> c;
    if (redis.empty()) {
      c = cache::make_memory_cache(o);
    } else {
      cache::RedisOptions r;
      auto colon = redis.rfind(':');
      r.host = redis.substr(0, colon);
      r.port = uint16_t(std::stoi(redis.substr(colon + 1)));
      r.prefix = "semrouter:bench:";
      r.timeout_ms = 2000;
      c = cache::make_redis_cache(o, r);
      c->flush();
    }
    std::mt19937 rng(42);
    std::normal_distribution<float> g;
    const double rss0 = rss_mib();
    const auto t0 = Clock::now();
    for (size_t i = 0; i < n; ++i) {
      cache::Entry e;
      e.scope = 1;
      e.exact = i + 1;
      e.vector.resize(dim);
      float norm = 0;
      for (float& x : e.vector)
        x = g(rng), norm += x * x;
      for (float& x : e.vector)
        x /= std::sqrt(norm);
      e.text = fmt::format("synthetic question number {} about something", i);
      e.answer = std::string(400, 'a');
      e.model = "m";
      e.decision = "d";
      if (!c->store(std::move(e))) {
        std::cerr << "cache-bench: the store refused an entry (is Redis up?)\n";
        return 1;
      }
      if (n >= 100000 && i % (n / 10) == 0)
        std::cerr << fmt::format("  {}: {}/{} stored\n", c->backend(), i, n);
    }
    // The questions asked below are in the cache too, so every timed lookup is a semantic hit
    // that runs the verifier (the costliest path).
    for (size_t i = 0; i < std::size(kQuestions); ++i) {
      cache::Entry e;
      e.scope = 1;
      e.exact = n + 1 + i;
      e.vector = qvecs[i];
      e.text = kQuestions[i];
      e.answer = std::string(400, 'a');
      c->store(std::move(e));
    }
    const double build_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double per_k = (rss_mib() - rss0) * 1000.0 / double(n);
    std::vector<double> emb, look, both;
    int hits = 0;
    for (size_t i = 0; i < queries; ++i) {
      const char* text = kQuestions[i % std::size(kQuestions)];
      const auto a = Clock::now();
      std::vector<float> v = pipeline::cache_embedding(embedder, text);
      const auto b = Clock::now();
      cache::Query q;
      q.scope = 1;
      q.exact = 0;
      q.text = text;
      q.vector = &v;
      q.threshold = 0.6;
      q.verifier = &verifier;
      cache::Lookup l = c->lookup(q);
      const auto d = Clock::now();
      hits += l.hit.has_value();
      emb.push_back(std::chrono::duration<double, std::micro>(b - a).count());
      look.push_back(std::chrono::duration<double, std::micro>(d - b).count());
      both.push_back(std::chrono::duration<double, std::micro>(d - a).count());
    }
    if (hits != int(queries))
      std::cerr << fmt::format("cache-bench: {} of {} lookups hit (expected all)\n", hits, queries);
    std::cout << fmt::format("| {} | {} | {:.1f} | {:.2f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | "
                             "{:.1f} |\n",
                             c->backend(), n, build_s, per_k, pct(emb, 0.5), pct(look, 0.5),
                             pct(look, 0.99), pct(both, 0.5), pct(both, 0.99));
    std::cout.flush();
    if (!redis.empty())
      c->flush();
  }
  return 0;
}
