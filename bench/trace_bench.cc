// Tracing's and the access log's cost on the request path (docs/observability.md): one request's
// RequestTrace from arrival to emit (traceparent parsed, ids drawn, routing, one upstream
// attempt, the answer), with tracing and the access log off, the access log alone (JSON to
// /dev/null), tracing alone (spans built and queued to an exporter whose sink discards), and both.
//   build/bench/bench_trace --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include "config/config.h"
#include "metrics/metrics.h"
#include "pipeline/exchange.h"
#include "pipeline/request_trace.h"
#include "trace/access_log.h"
#include "trace/exporter.h"

namespace {

using namespace semrouter;

class DiscardSink : public trace::SpanSink {
public:
  core::Status send(const std::string&) override { return {}; }
};

constexpr const char* kConfig = R"(
backends: [{name: a, url: "http://127.0.0.1:9"}]
models: [{name: qwen3-8b, backends: [a]}]
default_model: qwen3-8b
)";

void run(benchmark::State& state, bool tracing, bool logging) {
  auto config = config::parse_config(kConfig);
  auto snap = pipeline::build_snapshot(*config, 1);
  pipeline::SnapshotStore store(*snap);
  metrics::Registry registry;
  pipeline::Runtime rt(store, registry);
  trace::ExporterOptions eo;
  eo.queue_size = 1 << 20;
  trace::BatchExporter exporter(eo, std::make_unique<DiscardSink>(), nullptr);
  auto log =
      trace::AccessLog::open({trace::AccessLogFormat::Json, "/dev/null", 64u << 20, 100}, nullptr);
  if (tracing)
    rt.tracer = &exporter;
  if (logging)
    rt.access_log = log->get();
  const config::BackendConfig& backend = (*config)->backends[0];
  pipeline::HeaderLookup headers = [](std::string_view name) -> std::optional<std::string_view> {
    if (name == "traceparent")
      return "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    return std::nullopt;
  };
  pipeline::RouteOutcome out;
  out.action = pipeline::RouteAction::Forward;
  out.model = &(*config)->models[0];
  out.decision = "math";
  out.reasoning = "on;budget=4096";
  out.requested_model = "auto";
  out.matched_signals = {"domain:math", "keyword:math"};
  out.route_us = 40;
  auto signals = std::make_shared<signals::SignalResults>();
  signals->set("domain", "math", {true, 0.9, 0.9, 25, {}});
  signals->set("keyword", "math", {true, 1, 1, 3, {"integral"}});
  out.traced_signals = signals;
  for (auto _ : state) {
    pipeline::RequestTrace t(
        rt, headers,
        {"gateway", "POST", "/v1/chat/completions", "chat", "127.0.0.1", "router:8801"},
        core::SteadyClock::now());
    t.routed(out, "team-search");
    benchmark::DoNotOptimize(
        t.upstream_attempt(backend, "qwen3-8b", "Qwen/Qwen3-8B", "/v1/chat/completions", false));
    t.upstream_status(200);
    t.finished(200, "qwen3-8b", 0.038, true, 120, 380, 200);
  }
}

void BM_Off(benchmark::State& s) {
  run(s, false, false);
}
void BM_AccessLog(benchmark::State& s) {
  run(s, false, true);
}
void BM_Tracing(benchmark::State& s) {
  run(s, true, false);
}
void BM_Both(benchmark::State& s) {
  run(s, true, true);
}
BENCHMARK(BM_Off);
BENCHMARK(BM_AccessLog);
BENCHMARK(BM_Tracing);
BENCHMARK(BM_Both);

} // namespace

BENCHMARK_MAIN();
