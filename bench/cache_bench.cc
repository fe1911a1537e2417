// Semantic cache lookup latency and memory (docs/benchmarks.md):
//   cache-bench [--entries 10000,100000,1000000] [--queries 2000] [--redis host:port]
//   cache-bench --churn 5000 [--stores 30000] [--m 16 --ef-construction 100 --ef-search 64]
//   cache-bench --threads 2 [--scopes 8]
//   cache-bench --recall FILE.jsonl[,FILE.jsonl...] [--queries 1000] [--min-entries M]
// Fills one scope with N entries (unit vectors of the default embedder's dimension, a question's
// text and a 400-byte answer), then times lookups of real questions: the embedding alone, the
// lookup alone, and both (what a request pays). Reports p50/p99, the build time and the resident
// memory per entry. With --redis, the same against the Redis store (entries in Redis, the index
// mirrored in process).
// With --churn N: the HNSW graph's recall under eviction. A full cache of N entries takes --stores
// more (each evicts the oldest and reuses its graph slot), then perturbed copies of live vectors
// are looked up and the nearest found compared with a brute-force scan; scattered vectors and
// clustered ones (questions' embeddings cluster), with the store's cost per entry.
// With --threads T: how the cache scales with workers. A full cache of 10,000 entries over
// --scopes S takes 4,000 misses (a lookup, then a store of the same new vector, as a request of
// the default config does), from 1 thread and from T threads sharing them; pairs per second.
// With --recall: the index's answers against a brute-force scan on real questions' embeddings
// (the default embedder). Every text in the files (the string fields text, question, prompt, a
// and b of each JSON line) but --queries held out goes into one scope; then each held-out text,
// and each of --queries stored texts reworded ("Quick question: " before it), is looked up. A
// lookup agrees when the index's best is as near as the scan's best; recall@4 is the share of the
// index's 4 that are as near as the scan's 4th; "original found": a reworded text's best is the
// stored text it rewords.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

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

std::vector<float> unit(std::vector<float> v) {
  float norm = 0;
  for (float x : v)
    norm += x * x;
  for (float& x : v)
    x /= std::sqrt(norm);
  return v;
}

// The brute-force reference: a plain loop, independent of the kernel the cache measures with.
float dot(const std::vector<float>& a, const std::vector<float>& b) {
  float s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

struct ChurnOptions {
  size_t entries = 5000, stores = 30000, queries = 2500, dim = 100;
  cache::HnswOptions hnsw;
};

// One row of the churn table: `clusters` 0 draws scattered vectors, else that many centres with
// noise around each.
void churn(const ChurnOptions& co, size_t clusters) {
  cache::Options o;
  o.max_entries = co.entries;
  o.max_bytes = 1ull << 40;
  o.hnsw = co.hnsw;
  o.hnsw.min_entries = 64; // the graph's recall: every scope past 64 entries is one
  auto c = cache::make_memory_cache(o);
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  std::vector<std::vector<float>> centres(clusters);
  for (auto& ce : centres) {
    ce.resize(co.dim);
    for (float& x : ce)
      x = g(rng);
    ce = unit(std::move(ce));
  }
  auto draw = [&] {
    std::vector<float> v(co.dim);
    if (clusters == 0) {
      for (float& x : v)
        x = g(rng);
    } else {
      const auto& ce = centres[rng() % clusters];
      for (size_t i = 0; i < co.dim; ++i)
        v[i] = ce[i] + 0.06f * g(rng); // about 0.75 cosine between two of one cluster
    }
    return unit(std::move(v));
  };
  std::vector<std::vector<float>> live(co.entries); // entry i lives in slot i % entries
  std::vector<double> store_us;
  const size_t total = co.entries + co.stores;
  for (size_t i = 0; i < total; ++i) {
    cache::Entry e;
    e.scope = 1;
    e.exact = i + 1;
    e.vector = draw();
    e.text = std::to_string(i);
    e.answer = "a";
    live[i % co.entries] = e.vector;
    const auto a = Clock::now();
    c->store(std::move(e));
    if (i >= co.entries)
      store_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
    if (total >= 20000 && i % (total / 5) == 0)
      std::cerr << fmt::format("  {}/{} stored\n", i, total);
  }
  size_t nearest = 0, exact = 0;
  for (size_t qi = 0; qi < co.queries; ++qi) {
    const size_t j = rng() % co.entries;
    std::vector<float> q = live[j];
    for (float& x : q)
      x += 0.03f * g(rng);
    q = unit(std::move(q));
    size_t best = 0;
    float best_s = -2;
    for (size_t k = 0; k < co.entries; ++k)
      if (float s = dot(q, live[k]); s > best_s)
        best_s = s, best = k;
    // Entry i was stored as text i and lives in slot i % entries; the live one is the latest.
    const size_t want = total - co.entries + (best + co.entries - total % co.entries) % co.entries;
    auto got = c->nearest(q, 1, "");
    nearest += !got.empty() && got[0].first.text == std::to_string(want);
    auto same = c->nearest(live[j], 1, "");
    const size_t want_j = total - co.entries + (j + co.entries - total % co.entries) % co.entries;
    exact += !same.empty() && same[0].first.text == std::to_string(want_j);
  }
  double mean = 0;
  for (double x : store_us)
    mean += x / double(store_us.size());
  std::cout << fmt::format("| {} | {} | {} | {} | {:.1f} | {:.1f} | {} / {} | {} / {} |\n",
                           clusters ? fmt::format("{} clusters", clusters) : "scattered", co.hnsw.m,
                           co.hnsw.ef_construction, co.hnsw.ef_search, mean, pct(store_us, 0.99),
                           nearest, co.queries, exact, co.queries);
  std::cout.flush();
}

// Misses (lookup + store of a new vector) per second from `threads` threads into a full cache of
// 10,000 entries of the default embedder's dimension (384) spread over `scopes` scopes.
double miss_rate(size_t threads, size_t scopes, uint32_t min_entries) {
  constexpr size_t kEntries = 10000, kMisses = 4000, kDim = 384;
  cache::Options o;
  o.max_entries = kEntries;
  o.max_bytes = 1ull << 40;
  o.hnsw.min_entries = min_entries;
  auto c = cache::make_memory_cache(o);
  std::mt19937 rng(1);
  std::normal_distribution<float> g;
  auto draw = [&g](std::mt19937& r) {
    std::vector<float> v(kDim);
    for (float& x : v)
      x = g(r);
    return unit(std::move(v));
  };
  auto entry = [](uint64_t scope, uint64_t exact, std::vector<float> v) {
    cache::Entry e;
    e.scope = scope;
    e.exact = exact;
    e.vector = std::move(v);
    e.text = "q";
    e.answer = "{}";
    return e;
  };
  for (size_t i = 0; i < kEntries + kEntries / 5; ++i)
    c->store(entry(i % scopes, 1'000'000 + i, draw(rng)));
  const size_t per = kMisses / threads;
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937 r(uint32_t(100 + t));
      for (size_t i = 0; i < per; ++i) {
        std::vector<float> v = draw(r);
        cache::Query q;
        q.scope = (i * threads + t) % scopes;
        q.vector = &v;
        q.threshold = 0.9f;
        c->lookup(q);
        c->store(entry(q.scope, uint64_t(t) << 32 | (i + 1), std::move(v)));
      }
    });
  }
  for (auto& th : pool)
    th.join();
  return double(per * threads) / std::chrono::duration<double>(Clock::now() - t0).count();
}

// The --recall table's rows: one per query kind.
int recall(const models::Embedder& embedder, const std::string& files, size_t queries,
           uint32_t min_entries) {
  std::vector<std::string> texts;
  std::set<std::string> seen;
  for (const auto& f : core::split(files, ',')) {
    std::ifstream in{std::string(f)};
    if (!in) {
      std::cerr << "cache-bench: cannot open " << f << "\n";
      return 1;
    }
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object())
        continue;
      for (const char* key : {"text", "question", "prompt", "a", "b"})
        if (auto it = j.find(key);
            it != j.end() && it->is_string() && !it->get<std::string>().empty())
          if (seen.insert(it->get<std::string>()).second)
            texts.push_back(it->get<std::string>());
    }
  }
  // Texts the embedder has no vector for (no known word) cannot be stored in the index.
  std::vector<std::vector<float>> vecs;
  {
    std::vector<std::string> kept;
    for (auto& t : texts)
      if (auto v = pipeline::cache_embedding(embedder, t); !v.empty())
        vecs.push_back(std::move(v)), kept.push_back(std::move(t));
    texts = std::move(kept);
  }
  if (queries == 0 || texts.size() < 2 * queries || texts.size() - queries < 4) {
    std::cerr << fmt::format("cache-bench: {} texts; --recall needs --queries >= 1 and at least "
                             "max(2 x --queries, --queries + 4)\n",
                             texts.size());
    return 1;
  }
  std::vector<size_t> order(texts.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::mt19937 rng(11);
  std::shuffle(order.begin(), order.end(), rng);
  {
    std::vector<std::string> t2;
    std::vector<std::vector<float>> v2;
    for (size_t i : order)
      t2.push_back(std::move(texts[i])), v2.push_back(std::move(vecs[i]));
    texts = std::move(t2), vecs = std::move(v2);
  }
  const size_t stored = texts.size() - queries;
  cache::Options o;
  o.max_entries = stored + 1;
  o.max_bytes = 1ull << 40;
  o.hnsw.min_entries = min_entries;
  auto c = cache::make_memory_cache(o);
  for (size_t i = 0; i < stored; ++i) {
    cache::Entry e;
    e.scope = 1;
    e.exact = i + 1;
    e.vector = vecs[i];
    e.text = std::to_string(i);
    e.answer = "a";
    c->store(std::move(e));
  }
  // `of[j]`: the stored text query j rewords (none for held-out questions).
  auto measure = [&](const char* kind, const std::vector<std::vector<float>>& qs,
                     const std::vector<size_t>& of) {
    size_t agree = 0, in4 = 0, above = 0, above_agree = 0, original = 0;
    std::vector<double> us;
    for (size_t j = 0; j < qs.size(); ++j) {
      const auto& q = qs[j];
      std::vector<std::pair<float, size_t>> all(stored);
      for (size_t k = 0; k < stored; ++k)
        all[k] = {dot(q, vecs[k]), k};
      std::partial_sort(all.begin(), all.begin() + 4, all.end(), std::greater<>());
      const auto a = Clock::now();
      auto got = c->nearest(q, 4, "");
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
      // Ties (texts with the same vector) and the kernels' rounding aside: an entry as near as
      // the scan's best is the best.
      constexpr float kTie = 1e-5f;
      const bool same = !got.empty() && got[0].second >= all[0].first - kTie;
      agree += same;
      if (all[0].first >= 0.6f)
        ++above, above_agree += same;
      for (const auto& g : got)
        in4 += g.second >= all[3].first - kTie;
      original += !of.empty() && !got.empty() && got[0].first.text == std::to_string(of[j]);
    }
    std::cout << fmt::format(
        "| {} | {} | {} / {} | {} / {} | {:.3f} | {} | {:.1f} |\n", kind, stored, agree, qs.size(),
        above_agree, above, double(in4) / double(4 * qs.size()),
        of.empty() ? std::string("–") : fmt::format("{} / {}", original, qs.size()), pct(us, 0.5));
    std::cout.flush();
  };
  std::cout << "| queries | entries | best agrees | best agrees, best >= 0.6 | recall@4 | "
               "original found | nearest() p50 µs |\n|---|---:|---:|---:|---:|---:|---:|\n";
  measure("held-out questions",
          std::vector<std::vector<float>>(vecs.begin() + long(stored), vecs.end()), {});
  std::vector<std::vector<float>> reworded;
  std::vector<size_t> of;
  for (size_t i = 0; i < queries; ++i) {
    auto v = pipeline::cache_embedding(embedder, "Quick question: " + texts[i]);
    if (!v.empty())
      reworded.push_back(std::move(v)), of.push_back(i);
  }
  measure("stored questions, reworded", reworded, of);
  return 0;
}

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
  ChurnOptions co;
  app.add_option("--churn", co.entries,
                 "Measure the graph's recall under eviction in a cache of this many entries "
                 "(replaces the latency table)");
  app.add_option("--stores", co.stores, "With --churn: stores after the cache is full");
  app.add_option("--m", co.hnsw.m, "With --churn: hnsw.m");
  app.add_option("--ef-construction", co.hnsw.ef_construction,
                 "With --churn: hnsw.ef_construction");
  app.add_option("--ef-search", co.hnsw.ef_search, "With --churn: hnsw.ef_search");
  size_t threads = 0, scopes = 8;
  app.add_option("--threads", threads,
                 "Misses per second (lookup + store) from 1 and from this many threads "
                 "(replaces the latency table)");
  uint32_t min_entries = cache::HnswOptions{}.min_entries;
  app.add_option("--min-entries", min_entries,
                 "hnsw.min_entries for the latency table, --threads and --recall: a scope "
                 "larger than this is searched by HNSW, a smaller one by the flat index "
                 "(default: the config's default)");
  app.add_option("--scopes", scopes, "With --threads: scopes the entries spread over")
      ->check(CLI::PositiveNumber);
  std::string recall_files;
  app.add_option("--recall", recall_files,
                 "Compare the index's nearest entries with a brute-force scan on real questions "
                 "from these JSONL files (comma-separated; replaces the latency table)");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) {
    std::cout << "| scopes | threads | misses (lookup + store) per second |\n|---:|---:|---:|\n";
    for (size_t t : {size_t(1), threads}) {
      std::cout << fmt::format("| {} | {} | {:.0f} |\n", scopes, t,
                               miss_rate(t, scopes, min_entries));
      std::cout.flush();
    }
    return 0;
  }
  if (app.count("--churn")) {
    std::cout << "| vectors | m | ef_construction | ef_search | store µs (mean) | store µs (p99) | "
                 "nearest found | exact found |\n|---|---:|---:|---:|---:|---:|---:|---:|\n";
    churn(co, 0);
    churn(co, 50);
    return 0;
  }

  auto reg = models::Registry::load(models::default_model_specs(), models_dir);
  if (!reg || !(*reg)->embeddings) {
    std::cerr << "cache-bench: cannot load the default embedder\n";
    return 1;
  }
  const models::Embedder& embedder = *(*reg)->embeddings;
  if (!recall_files.empty())
    return recall(embedder, recall_files, app.count("--queries") ? queries : 1000, min_entries);
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
    o.hnsw.min_entries = min_entries;
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
