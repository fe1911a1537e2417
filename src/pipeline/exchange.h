// Both directions of a request, transport-neutral. `Runtime` is what every transport shares for
// the life of the process (config store, sessions, cost-quality state, inference pool, request
// metrics); `Exchange` is one forwarded request's response phase (in-flight slot, time to first
// token, usage, the request count and duration). The HTTP gateway and the ext_proc service feed
// them what they see and keep no routing or accounting logic of their own, so the two report
// exactly the same metrics for the same traffic.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth.h"
#include "core/clock.h"
#include "metrics/metrics.h"
#include "models/inference_pool.h"
#include "openai/sse.h"
#include "pipeline/activity.h"
#include "pipeline/admission.h"
#include "pipeline/cost_quality.h"
#include "pipeline/pipeline.h"
#include "pipeline/request_trace.h"
#include "pipeline/sessions.h"
#include "pipeline/upstream_health.h"

namespace semrouter::trace {
class BatchExporter;
class AccessLog;
} // namespace semrouter::trace

namespace semrouter::pipeline {

// nginx's status for "the client went away"; never sent, only counted.
constexpr int kClientClosedRequest = 499;

// The request-level metric families, registered once per process. Thread-safe (atomics).
struct RequestMetrics {
  explicit RequestMetrics(metrics::Registry& r);

  metrics::Family<metrics::Counter>& requests;
  metrics::Family<metrics::Histogram>& duration;
  metrics::Family<metrics::Histogram>& ttft;
  metrics::Family<metrics::Counter>& upstream_errors; // by backend and kind
  metrics::Family<metrics::Counter>& model_errors;    // by model and kind
  metrics::Gauge& inflight;
  metrics::Family<metrics::Counter>& prompt_tokens;
  metrics::Family<metrics::Counter>& completion_tokens;
  metrics::Family<metrics::Counter>& reasoning_tokens;    // by model
  metrics::Family<metrics::Counter>& reasoning_requests;  // by decision and on/off
  metrics::Family<metrics::Counter>& reasoning_stepdowns; // by decision
  metrics::Family<metrics::Counter>& client_errors;
  metrics::Histogram& routing;
  metrics::Family<metrics::Counter>& selections;
  metrics::Family<metrics::Gauge>& strong_share;
  metrics::Family<metrics::Gauge>& selection_threshold;
  metrics::Family<metrics::Gauge>& load_pressure;
  metrics::Family<metrics::Counter>& pii_actions;
  metrics::Family<metrics::Counter>& tools_filtered; // by decision
  metrics::Family<metrics::Counter>& tools_removed;  // by decision
};

// Shared by every transport and thread. Owned by `app`, outlives the servers.
class Runtime {
public:
  Runtime(SnapshotStore& store, metrics::Registry& registry);
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  SnapshotStore& store;
  metrics::Registry& registry;
  RequestMetrics metrics;
  SessionStore sessions;           // x-session-id stickiness
  CostQualityRuntime cost_quality; // per-model load, per-decision calibration
  CacheRuntime cache;              // the semantic cache's store and metrics
  ToolVectors tool_vectors;        // plugins.tools: tool-description embeddings
  auth::Guard auth;                // client API keys, rate limits, budgets (see auth_for)
  UpstreamHealth upstreams;        // outlier detection, health checks, breakers, retry budget
  Admission admission;             // resilience.limits and models' max_concurrent
  // Recent outcomes and the traffic history for the dashboard (sized by the dashboard section at
  // start; recorded while dashboard.enabled).
  ActivityLog activity;
  // Transformer-backed signals run here; null: inline. Set before serving starts.
  models::InferencePool* pool = nullptr;
  // Tracing (null: off; the client's traceparent is forwarded as it is) and its sampling ratio
  // for new traces; the access log (null: off). Owned by `app`, set before serving starts.
  trace::BatchExporter* tracer = nullptr;
  double trace_sample_ratio = 1.0;
  trace::AccessLog* access_log = nullptr;

  // What routing gets besides the body.
  RequestMeta meta_for(openai::RequestKind kind, const HeaderLookup& headers);

  // The key guard set up for this snapshot's `auth` section (re-configured when a reload brings
  // a new generation; a keys file that fails to load keeps the previous keys and is logged).
  auth::Guard& auth_for(const Snapshot& snapshot);
  // The upstream state set up for this snapshot's `resilience` section and backends.
  UpstreamHealth& upstreams_for(const Snapshot& snapshot);

private:
  void record_reply(const RouteOutcome& out); // an answer routing made itself, for the dashboard
  std::mutex auth_mu_;                        // serialises configuring the keys
  // The generation the keys were last configured from, plus one (0: never); written under
  // auth_mu_, read without it by the per-request check.
  std::atomic<uint64_t> auth_through_{0};

public:
  // Who is calling, as routing sees it (from the API key; empty without keys).
  struct Caller {
    std::string tenant;
    double budget_spent = -1;
    double budget_pressure = 0;
  };

  // Routes a live request and records what routing did (time, PII action, selection gauges).
  // A Reply is counted here as answered (requests_total with model "-", or the blocking
  // decision); a Forward is counted by its Exchange.
  // `may_reply` false: the transport forwards the request whatever routing says (ext_proc's
  // observability mode), so the cache is not read. `trace` (when given) is told what routing
  // decided, and gets every signal for its spans when sampled.
  RouteOutcome route(const Snapshot& snapshot, openai::RequestKind kind,
                     const HeaderLookup& headers, std::string_view body, core::Random& random,
                     bool may_reply = true, const Caller* caller = nullptr,
                     RequestTrace* trace = nullptr);

  // POST /api/v1/route: the same routing without touching sessions, calibration, load state
  // or metrics.
  RouteOutcome dry_run(const Snapshot& snapshot, const HeaderLookup& headers, std::string_view body,
                       core::Random& random);
};

// The model's backends in the order to try: one weighted random pick, then the others by weight.
std::vector<const config::BackendConfig*> order_backends(const config::Config& config,
                                                         const config::ModelConfig& model,
                                                         core::Random& random);

// The path prefix for upstream calls: the backend URL's path; /v1 if the URL has no path at all;
// nothing if the path is exactly "/" (a server that serves /chat/completions at its root).
std::string upstream_base_path(const config::BackendConfig& backend);

// The upstream path for a request kind: base path + /chat/completions or /completions.
std::string upstream_path(const config::BackendConfig& backend, openai::RequestKind kind);

enum class Api;
struct UpstreamCall;

// The usage of a chat or completions stream, asked for on the client's behalf. An OpenAI-compatible
// server streams usage only when the request asks (stream_options.include_usage); without it the
// completion tokens would go uncounted (key budgets and token rate limits, the token metrics)
// and the cache would store the answer without usage. When `call` is a chat (completions)
// stream of a chat (completions) client (`client`) whose request did not ask, this sets
// stream_options.include_usage: true in call.body (a splice: the rest goes byte for byte) and
// returns true: the transport must then pass the answer through an openai::StreamUsageFilter for
// the client, and the upstream's bytes to the Exchange. False (nothing changed) when the client
// asked itself, set vLLM's continuous_usage_stats (usage in every chunk, which it did not get
// before), or the backend may not take the field (an Azure api_version before 2024-09-01).
bool request_stream_usage(Api client, const config::BackendConfig& backend, UpstreamCall& call);

// The JSON body of a dry run (POST /api/v1/route) for a routing outcome.
std::string dry_run_body(const RouteOutcome& out);

// One forwarded request's response phase. Construct it once routing returned Forward; it takes
// the model's in-flight slot (cost-quality load) and the in-flight gauge until finish() or
// destruction. Feed it what the upstream answers. The request is counted exactly once: by
// finish(), or as 499 (client closed) when destroyed unfinished. Not thread-safe: one transport
// thread at a time.
class Exchange final : public openai::SseEventSink {
public:
  // `trace` (may be null) is told how the answer ended; it must outlive the exchange. The exchange
  // takes the outcome's cache fill (out.cache_fill is null after), so the store that follows a
  // miss moves the entry in rather than copying it.
  Exchange(Runtime& runtime, RouteOutcome& out, core::TimePoint start,
           RequestTrace* trace = nullptr);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  const std::string& model() const { return model_; }
  // The model this attempt goes to (a fallback, or the routed one again): usage, cost, latency
  // and the request count go to it. Once a fallback was tried the answer is not cached (the cache
  // keeps what the routed model answers first time). Nothing happens for the current model.
  void fallback_to(const config::ModelConfig& model);

  // The upstream's response head arrived. A non-streamed answer below 400 arrives whole with its
  // head: that is its time to first token.
  void response_head(int status, bool event_stream);
  // A piece of a streamed (SSE) body as it arrived: the first complete event is the time to
  // first token, and every event carrying `usage` adds to the token counters.
  void stream_bytes(std::string_view piece);
  // Or, where the transport runs a StreamUsageFilter over the same bytes, the events it passes
  // on (feed(piece, out, &exchange)): one pass over the stream instead of two. Not both.
  void sse_event(std::string_view data, bool mentions_usage) override;
  // A complete non-streamed body (its usage counts when the status was 200; a cache miss stores
  // it when finish(200) follows).
  void body(std::string_view body);
  // An upstream failure (kind: connect, timeout, reset, protocol, too_large, status_5xx, ...).
  void upstream_error(std::string_view backend, std::string_view kind);
  // The answer is complete with this status, as the client saw it (a 200 fills the cache on a
  // miss, when the exchange is destroyed; a client gone midway, 499, stores nothing). Later calls
  // do nothing.
  void finish(int status);
  bool finished() const { return finished_; }

private:
  void first_token();
  void count_usage(const openai::Usage& usage);
  void settle(); // the key's usage and spend, once
  void record_activity(int status, double seconds);
  bool settled_ = false;
  Runtime& rt_;
  std::string model_;
  std::string decision_;
  core::TimePoint start_;
  int status_ = 0;
  bool finished_ = false;
  int finished_status_ = 0;
  bool ttft_recorded_ = false;
  bool streamed_ = false;
  openai::SseParser sse_;
  std::shared_ptr<CacheFill> fill_; // a cache miss: the answer is stored when it completes
  openai::AnswerCapture capture_;
  std::shared_ptr<const config::ApiKeyConfig> key_;
  const config::ModelConfig* model_config_ = nullptr;
  uint64_t estimated_tokens_ = 0;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0, reasoning_tokens_ = 0;
  double ttft_s_ = 0;
  bool observed_ = false;   // the dashboard records this request (dashboard.enabled)
  ActivityRecord activity_; // its record so far: what routing decided
  RequestTrace* trace_ = nullptr;
  LoadTracker::Model* load_; // the model's in-flight count and times to first token
};

} // namespace semrouter::pipeline
