// The dashboard's cost on the request path (docs/dashboard.md): what a request pays once its
// outcome is final (the record built from the routing outcome, one ActivityLog::record call) and
// what routing pays to time its signals by type, alone and with writers on other threads.
//   build/bench/bench_activity --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>

#include "pipeline/activity.h"
#include "pipeline/pipeline.h"

namespace {

using namespace semrouter;

// A record as Exchange::finish fills it for a routed, streamed answer (short names, two signals).
pipeline::ActivityRecord sample(int64_t ms) {
  pipeline::ActivityRecord r;
  r.unix_ms = ms;
  r.tenant = "team-search";
  r.decision = "math";
  r.model = "qwen3-8b";
  r.reasoning = "on;budget=4096";
  r.cache = "miss";
  r.signals = {"domain:math", "keyword:math"};
  r.confidence = 0.93;
  r.stream = true;
  r.status = 200;
  r.latency_ms = 412;
  r.ttft_ms = 38;
  r.prompt_tokens = 120;
  r.completion_tokens = 380;
  r.cost = 0.0004;
  r.signal_us.us[0] = 3;
  r.signal_us.us[5] = 25;
  return r;
}

pipeline::ActivityLog& shared_log() {
  static pipeline::ActivityLog log({1000, 10, 3600, 0});
  return log;
}

// Copying the outcome's fields into a record (what the Exchange does at construction).
void BM_BuildRecord(benchmark::State& state) {
  const pipeline::ActivityRecord base = sample(1'700'000'000'000);
  for (auto _ : state) {
    pipeline::ActivityRecord r = base;
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_BuildRecord);

// The record built and recorded, as the request path runs it (the ring slot swap and the bucket
// update under one lock). Threads > 1: as many workers finishing requests at once.
void BM_BuildAndRecord(benchmark::State& state) {
  pipeline::ActivityLog& log = shared_log();
  const pipeline::ActivityRecord base = sample(1'700'000'000'000);
  int64_t t = 1'700'000'000'000;
  for (auto _ : state) {
    pipeline::ActivityRecord r = base;
    r.unix_ms = t += 7;
    log.record(std::move(r));
  }
}
BENCHMARK(BM_BuildAndRecord)->Threads(1)->Threads(4)->UseRealTime();

// Timing the signals by type, on the results of the demo config's referenced signals (about 30:
// keywords, classifiers per label, embeddings, PII, context length, metadata).
void BM_TimeSignals(benchmark::State& state) {
  signals::SignalResults results;
  const char* keys[] = {"keyword",   "domain",         "embedding", "pii",        "reasoning",
                        "jailbreak", "context_length", "metadata",  "complexity", "language"};
  for (int i = 0; i < 30; ++i) {
    signals::SignalResult r;
    r.latency_us = i;
    results.set(keys[i % 10], "name" + std::to_string(i), r);
  }
  for (auto _ : state) {
    pipeline::SignalTimings t;
    pipeline::time_signals(results, t);
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_TimeSignals);

// route() on the keyword demo config with and without `observe` (signal timings by type).
void BM_RouteObserve(benchmark::State& state) {
  static auto snap = [] {
    auto c = config::load_config_file(std::string(SEMROUTER_SOURCE_DIR) +
                                      "/tests/fixtures/configs/keyword_demo.yaml");
    if (!c) {
      std::fprintf(stderr, "%s\n", c.error().message.c_str());
      std::exit(1);
    }
    return *pipeline::build_snapshot(*c, 1);
  }();
  const std::string body =
      R"({"model":"auto","messages":[{"role":"user","content":"What is the derivative of x^2 times the integral of sin x?"}]})";
  pipeline::RequestMeta meta;
  meta.observe = state.range(0) != 0;
  core::Random random(1);
  for (auto _ : state) {
    auto out = pipeline::route(*snap, meta, body, random);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_RouteObserve)->Arg(0)->Arg(1);

} // namespace

BENCHMARK_MAIN();
