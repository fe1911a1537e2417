// Routing-decision latency on the keyword-only config (tests/fixtures/configs/keyword_demo.yaml):
// parse + keyword signals + decision + body rewrite, the per-request work before the upstream
// call without any classifier. The default config with its classifiers is measured by
// bench/decision_latency.cc.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "cache/prefilter.h"

#include "openai/request.h"
#include "pipeline/pipeline.h"

namespace {

using namespace semrouter;

std::shared_ptr<const pipeline::Snapshot> default_snapshot() {
  static auto snap = [] {
    auto c = config::load_config_file(std::string(SEMROUTER_SOURCE_DIR) +
                                      "/tests/fixtures/configs/keyword_demo.yaml");
    if (!c) {
      std::fprintf(stderr, "%s\n", c.error().message.c_str());
      std::exit(1);
    }
    return *pipeline::build_snapshot(*c, 1);
  }();
  return snap;
}

std::string words(int n) {
  static const char* vocab[] = {"the",   "model",   "should", "answer",  "this", "question",
                                "about", "history", "and",    "explain", "what", "happened",
                                "in",    "europe",  "during", "war"};
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i)
      s += ' ';
    s += vocab[(i * 7) % 16];
  }
  return s;
}

void route_body(benchmark::State& state, const std::string& body) {
  auto snap = default_snapshot();
  core::Random random(1);
  for (auto _ : state) {
    auto out = pipeline::route(*snap, {}, body, random);
    benchmark::DoNotOptimize(out.body.data());
  }
}

void BM_RouteDefaultDecision(benchmark::State& state) {
  std::string body = R"({"model":"auto","messages":[{"role":"user","content":")" +
                     words(static_cast<int>(state.range(0))) + R"("}],"temperature":0.7})";
  route_body(state, body);
}
BENCHMARK(BM_RouteDefaultDecision)->Arg(10)->Arg(50)->Arg(300);

void BM_RouteMathWithReasoningAndSystemPrompt(benchmark::State& state) {
  std::string body =
      R"({"model":"auto","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"prove that )" +
      words(static_cast<int>(state.range(0))) + R"("}]})";
  route_body(state, body);
}
BENCHMARK(BM_RouteMathWithReasoningAndSystemPrompt)->Arg(10)->Arg(50)->Arg(300);

// An agent's request: 0 or 50 function tools (about 17 kB of JSON) before the messages. The
// parse and every top-level walk (the body rewrite's, the cache scope's) pass over the tools.
void BM_RouteWithTools(benchmark::State& state) {
  std::string tools = "[";
  for (int i = 0; i < state.range(0); ++i) {
    if (i)
      tools += ",";
    tools += R"({"type":"function","function":{"name":"get_weather_)" + std::to_string(i) +
             R"(","description":"Get the \"current\" weather in a given location","parameters":)"
             R"({"type":"object","properties":{"location":{"type":"string","description":)"
             R"("The city and state, e.g. San Francisco, CA"},"unit":{"type":"string","enum":)"
             R"(["celsius","fahrenheit"]}},"required":["location"]}}})";
  }
  tools += "]";
  route_body(state, R"({"model":"auto","tools":)" + tools +
                        R"(,"messages":[{"role":"user","content":"what is the weather in )" +
                        words(20) + R"("}],"temperature":0.7})");
}
BENCHMARK(BM_RouteWithTools)->Arg(0)->Arg(50);

// parse_request alone on a 90 kB user message: ASCII, accented Latin, Chinese. The reader's
// string walk passes non-ASCII bytes and validates a string holding them once, at its end.
void BM_ParseLongMessage(benchmark::State& state) {
  static const char* kUnits[] = {"plain ascii ", "caf\xC3\xA9 na\xC3\xAFve ",
                                 "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C "};
  std::string text;
  while (text.size() < 90000)
    text += kUnits[state.range(0)];
  const std::string body =
      R"({"model":"auto","messages":[{"role":"user","content":")" + text + R"("}]})";
  for (auto _ : state) {
    auto view = openai::parse_request(body, openai::RequestKind::ChatCompletions);
    benchmark::DoNotOptimize(view->messages.data());
  }
}
BENCHMARK(BM_ParseLongMessage)->ArgName("ascii0_latin1_chinese2")->Arg(0)->Arg(1)->Arg(2);

void BM_PassthroughConcreteModel(benchmark::State& state) {
  route_body(state,
             R"({"model":"llama-3.1-8b","messages":[{"role":"user","content":"hello there"}]})");
}
BENCHMARK(BM_PassthroughConcreteModel);

// The semantic cache's prefilter choosing 384 entries by code distance (cache/prefilter.h): the
// cut by bisection on counts, of 2,000 entries (gateway_bench's scopes) and of 10,000, and what
// for_each_nearest picks for 10,000 (the histogram under a sampled bound). Distances: 128-bit
// codes of unrelated vectors (binomial around 64), and a fifth of the entries near-ties of the
// query (0-3 bits), as with gateway_bench's questions of one topic.
const std::vector<uint8_t>& code_distances(bool clustered) {
  static const auto make = [](bool near) {
    std::mt19937 rng(7);
    std::binomial_distribution<int> coins(128, 0.5);
    std::vector<uint8_t> d(10000);
    for (size_t i = 0; i < d.size(); ++i)
      d[i] = near && i % 5 == 0 ? uint8_t(rng() % 4) : uint8_t(coins(rng));
    return d;
  };
  static const std::vector<uint8_t> unrelated = make(false), topic = make(true);
  return clustered ? topic : unrelated;
}

void BM_PrefilterCounts(benchmark::State& state) {
  const auto& d = code_distances(state.range(0) != 0);
  const size_t n = size_t(state.range(1));
  size_t sum = 0;
  auto visit = [&](size_t e) { sum += e; };
  for (auto _ : state)
    cache::prefilter_detail::nearest_by_counts(d.data(), n, 384, visit);
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_PrefilterCounts)
    ->ArgNames({"clustered", "n"})
    ->Args({0, 2000})
    ->Args({1, 2000})
    ->Args({0, 10000})
    ->Args({1, 10000});

void BM_PrefilterSampledBound(benchmark::State& state) {
  const auto& d = code_distances(state.range(0) != 0);
  size_t sum = 0;
  auto visit = [&](size_t e) { sum += e; };
  for (auto _ : state)
    cache::for_each_nearest(d.data(), d.size(), 384, visit);
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_PrefilterSampledBound)->ArgName("clustered")->Arg(0)->Arg(1);

} // namespace

BENCHMARK_MAIN();
