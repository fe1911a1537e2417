// The request pipeline, transport-agnostic: parse -> signals -> decide -> select -> plugins ->
// rewrite. The gateway (HTTP) and later ext_proc (gRPC) are thin adapters around it.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/status.h"
#include "models/quality_router.h"
#include "models/registry.h"
#include "models/word_vectors.h"
#include "openai/errors.h"
#include "openai/request.h"
#include "pipeline/activity.h"
#include "pipeline/cache_stage.h"
#include "pipeline/cost_quality.h"
#include "pipeline/request_signals.h"
#include "pipeline/sessions.h"
#include "pipeline/tools_stage.h"
#include "routing/decision_engine.h"
#include "signals/keyword.h"

namespace semrouter::pipeline {

// A config and everything compiled from it. Immutable once built; requests hold a shared_ptr
// to the snapshot they started with, so a reload never changes a request in flight.
struct Snapshot {
  std::shared_ptr<const config::Config> config;
  std::unique_ptr<signals::KeywordSignals> keywords;
  std::unique_ptr<routing::DecisionEngine> engine;
  // The signal types some decision reads: only these are computed per request.
  SignalSelection referenced;
  // Every configured signal: what POST /api/v1/classify reports.
  SignalSelection all_signals;
  // Per signals.embeddings entry, the embedding of each phrase (computed once, when the models
  // load), scaled to unit length.
  std::vector<models::UnitRows> embedding_phrases;
  // The cost-quality routers of `routers`, loaded with the models.
  std::map<std::string, std::shared_ptr<const models::QualityRouter>> routers;
  uint64_t generation = 0;
  std::string models_json; // the GET /v1/models body, built once
  // The model behind each task (`classifiers`); null when the snapshot was built without them
  // (tests of routing alone).
  std::shared_ptr<const models::Registry> models;
};

// Loads the models of a `classifiers` section: the embedded defaults, replaced task by task by
// the config's entries. Errors name the task and the path.
core::StatusOr<std::shared_ptr<const models::Registry>>
load_classifiers(const config::ClassifiersConfig& classifiers);

// Compiles a config into a snapshot; fails on what the YAML loader cannot see (bad regexes).
// With `load_models`, also loads the classifiers, reusing `previous`'s when its `classifiers`
// section is the same (a reload that only changes routing does not reload models).
core::StatusOr<std::shared_ptr<const Snapshot>>
build_snapshot(std::shared_ptr<const config::Config> config, uint64_t generation,
               bool load_models = false, const Snapshot* previous = nullptr);

// Holds the current snapshot; swapped atomically on reload.
class SnapshotStore {
public:
  explicit SnapshotStore(std::shared_ptr<const Snapshot> initial) : current_(std::move(initial)) {}
  std::shared_ptr<const Snapshot> get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }
  void set(std::shared_ptr<const Snapshot> next) {
    std::lock_guard<std::mutex> lock(mu_);
    install(std::move(next));
  }
  // Counts the swaps: a reader that keeps its own copy of get() (a gateway worker) takes a new
  // one when this changes, and so pays no lock on its requests.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  // Loads and compiles `path`; on success swaps it in. On failure the old snapshot stays and
  // the error is returned (and kept for the admin API).
  core::Status reload_from_file(const std::string& path);
  std::string last_error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_error_;
  }
  uint64_t reloads_ok() const { return reloads_ok_.load(); }
  uint64_t reloads_failed() const { return reloads_failed_.load(); }
  // The config the current one replaced and its generation (null and 0 before any swap): the
  // dashboard diffs against it. Only the config is kept, not its compiled snapshot (models).
  std::pair<std::shared_ptr<const config::Config>, uint64_t> previous() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {previous_config_, previous_generation_};
  }

private:
  // Swaps `next` in, keeping the config it replaces; under mu_.
  void install(std::shared_ptr<const Snapshot> next) {
    if (current_) {
      previous_config_ = current_->config;
      previous_generation_ = current_->generation;
    }
    current_ = std::move(next);
    version_.fetch_add(1, std::memory_order_release);
  }
  mutable std::mutex mu_;
  std::shared_ptr<const config::Config> previous_config_;
  uint64_t previous_generation_ = 0;
  std::shared_ptr<const Snapshot> current_;
  std::atomic<uint64_t> version_{0};
  std::string last_error_;
  std::atomic<uint64_t> reloads_ok_{0};
  std::atomic<uint64_t> reloads_failed_{0};
};

// What the transport must do with a request.
enum class RouteAction {
  // Send `body` to the backends of `model`, then add `response_headers` to whatever the
  // upstream answers.
  Forward,
  // Answer the client now with `reply_status` and `reply_body` (an OpenAI-shaped JSON body);
  // nothing goes upstream.
  Reply,
};

struct RouteExplain;

struct RouteOutcome {
  RouteAction action = RouteAction::Reply;
  int reply_status = 500;
  std::string reply_body;
  // "application/json", or "text/event-stream" for a blocked stream (literals only: no allocation)
  std::string_view reply_content_type = "application/json";
  bool blocked = false;   // the decision's block plugin answered (a Reply with status 200)
  std::string error_type; // for metrics when action == Reply

  const config::ModelConfig* model = nullptr;
  std::string requested_model;
  std::string decision; // decision name, or "passthrough" for a concrete model name
  double confidence = 0.0;
  std::string reasoning; // x-semrouter-reasoning value
  std::vector<std::string> matched_signals;
  bool stream = false;
  std::string body; // the body to send upstream
  std::vector<std::pair<std::string, std::string>> response_headers;
  // The decision's headers plugin: upstream request headers to set (replacing the client's) and
  // to drop.
  std::vector<std::pair<std::string, std::string>> upstream_set_headers;
  std::vector<std::string> upstream_remove_headers;
  std::string session;       // "new", "sticky", "escalated" or "" (no session header)
  std::string pii;           // what the pii plugin did: "redacted", "rerouted", "blocked" or ""
  double route_us = 0;       // time spent routing (parse, signals, decision, plugins)
  SelectionReport selection; // cost-quality selection, when the decision has one
  bool reasoning_stepped_down = false; // reasoning_load: the effort gave way to load pressure
  std::string cache; // the cache stage's outcome: "hit", "miss", "bypass" or "" (not caching)
  // A miss the response phase stores when the answer completes (null: nothing to store).
  std::shared_ptr<CacheFill> cache_fill;
  size_t tools_total = 0, tools_kept = 0; // plugins.tools: the request's tools and those sent
  bool budget_degraded = false; // the key's budget pressure sent this to a cheaper candidate
  // The client's API key (null: the router checks no keys): its usage and spend are settled
  // when the answer completes, against the estimate its rate limit took up front.
  std::shared_ptr<const config::ApiKeyConfig> key;
  uint64_t estimated_tokens = 0;
  // What a fallback model needs to be sent the same request (retarget): the request kind, the
  // reasoning the decision planned, and the decision's fallback models.
  openai::RequestKind kind = openai::RequestKind::ChatCompletions;
  config::ReasoningMode reasoning_mode = config::ReasoningMode::Unset;
  std::string reasoning_effort;
  uint32_t reasoning_budget = 0;
  // The body fields the reasoning plan set: (key, "") or (object key, sub-key).
  std::vector<std::pair<std::string, std::string>> reasoning_fields;
  std::vector<std::string> fallback; // the decision's fallback models, in order
  int priority = 0;                  // the decision's priority (admission queue order)
  // What the dashboard records (pipeline/activity.h), set when the snapshot's dashboard is on.
  bool observed = false;
  std::string tenant;      // the key's tenant, else the x-tenant-id header ("" : neither)
  std::string prompt;      // dashboard.show_prompts: the latest user text, PII-redacted
  SignalTimings signal_us; // per signal type, the time it took
  // Dry runs: every computed signal and every decision's rule tree as evaluated.
  std::shared_ptr<const RouteExplain> explain;
  // A sampled trace (RequestMeta::trace_signals): every computed signal, for its span.
  std::shared_ptr<const signals::SignalResults> traced_signals;
};

// Why a request went where it did: the dry run's signals and decision path.
struct RouteExplain {
  signals::SignalResults signals;
  std::vector<routing::DecisionTrace> decisions; // in the order the engine tries them
  std::string strategy;                          // "priority" or "confidence"
  std::string winner;                            // the decision the rules picked
  bool is_default = false;                       // no decision matched
};

struct RequestMeta {
  openai::RequestKind kind = openai::RequestKind::ChatCompletions;
  const HeaderLookup* headers = nullptr;      // the client's request headers (metadata signals)
  SessionStore* sessions = nullptr;           // routing.sessions; null: no stickiness
  models::InferencePool* pool = nullptr;      // transformer-backed signals; null: inline
  CostQualityRuntime* cost_quality = nullptr; // load and calibration state; null: static
  CacheRuntime* cache = nullptr;              // the semantic cache; null: no cache stage
  // False when the transport cannot answer the request itself (ext_proc's observability mode):
  // the cache is not read, only filled.
  bool may_reply = true;
  ToolVectors* tool_vectors = nullptr; // tool-description embeddings; null: not shared
  // The client's API key's tenant ("" : no key): it scopes the cache and sessions.
  std::string tenant;
  // The key's budget: the spent fraction (−1: no budget) and the degrade pressure (0..1). With
  // pressure p, a decision with several candidates sends the request to its cheapest one with
  // probability p.
  double budget_spent = -1;
  double budget_pressure = 0;
  // For the dashboard: time the signals by type (observe), keep the latest user text redacted and
  // cut to this many bytes (prompt_chars; 0: none), explain the decision (dry runs).
  bool observe = false;
  uint32_t prompt_chars = 0;
  bool explain = false;
  // A sampled trace: keep every computed signal in the outcome (RouteOutcome::traced_signals).
  bool trace_signals = false;
};

// Routes one request. Never throws; a bad request comes back as RouteAction::Reply.
RouteOutcome route(const Snapshot& snapshot, const RequestMeta& meta, std::string_view body,
                   core::Random& random);

// POST /api/v1/classify: every classifier's answer and every configured signal for
// {"text": "..."} or for a chat request's {"messages": [...]} (read as routing reads it), with
// value, confidence and latency. Returns (status, JSON body); errors are OpenAI-shaped.
std::pair<int, std::string> classify(const Snapshot& snapshot, std::string_view body,
                                     const RequestMeta& meta = {});

// The routed body for another model (a fallback): its upstream model id, and the decision's
// reasoning plan redone for its family (the first model's reasoning fields removed where the
// new family sets none). Everything else (plugins, redaction, tools) stays as routed.
std::string retarget(const config::Config& config, const RouteOutcome& out,
                     const config::ModelConfig& to);

// Fills a Reply outcome from an API error.
void set_error(RouteOutcome& out, const openai::ApiError& error);

} // namespace semrouter::pipeline
