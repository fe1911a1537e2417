// The router's configuration: built once from YAML, validated, then immutable.
// Every request holds a shared_ptr to the snapshot it started with; a reload builds a new one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/auth_config.h"
#include "config/dashboard_config.h"
#include "config/observability_config.h"
#include "config/resilience_config.h"
#include "core/status.h"

namespace semrouter::config {

struct ListenerConfig {
  std::string address = "127.0.0.1";
  uint16_t port = 0; // 0: the OS picks (tests)
};

struct TimeoutsConfig {
  uint32_t connect_ms = 2000;
  uint32_t first_byte_ms = 60000;
  uint32_t idle_ms = 60000; // longest silence between two chunks of a streamed body
  uint32_t total_ms = 600000;
};

// How a backend is called: auth header, path layout, request fields and API shape.
enum class Provider {
  OpenAI,    // Authorization: Bearer; OpenAI's request fields only; speaks the Responses API
  Azure,     // api-key; /openai/deployments/<upstream model>/...?api-version=
  Anthropic, // x-api-key + anthropic-version; the Messages API (chat is translated)
  Vllm,      // Authorization: Bearer; every field passes (chat_template_kwargs, top_k, ...)
  Generic,   // like vllm
};
std::string_view provider_name(Provider p);

// TLS towards an https:// backend. Verification against the system store is the default.
struct BackendTlsConfig {
  std::string ca_file;     // PEM bundle to verify the server with (instead of the system store)
  std::string client_cert; // PEM certificate for mutual TLS (with client_key)
  std::string client_key;
  std::string server_name; // SNI and the name verified; default: the URL's host
  bool insecure_skip_verify = false;
};

struct BackendConfig {
  std::string name;
  std::string url;  // as written, e.g. http://127.0.0.1:8000/v1
  bool tls = false; // https://
  std::string host; // parsed from url
  uint16_t port = 80;
  std::string base_path; // path prefix from url without trailing slash, e.g. "/v1" or ""
  Provider provider = Provider::OpenAI;
  // `provider` was written: an explicit openai or azure backend gets only OpenAI's request fields
  // (a backend without one is usually a vLLM-style server and gets every field).
  bool provider_explicit = false;
  std::string api_key_env;
  std::string api_key_file;
  std::string api_key; // resolved from api_key_env or api_key_file at load time; never logged
  BackendTlsConfig tls_config;
  std::string api_version;                      // azure: the api-version query parameter
  std::string anthropic_version = "2023-06-01"; // anthropic: the anthropic-version header
  bool native_responses = false; // forwards /v1/responses as is (default: openai, azure)
  uint32_t weight = 1;
  TimeoutsConfig timeouts;
  uint32_t max_idle_connections = 64;
  // A pooled connection idle longer than this is closed (0: kept until the server closes it).
  uint32_t idle_connection_timeout_ms = 60000;
  // A pooled plain-TCP connection idle at least this long is peeked at (one system call) before
  // a request goes out on it; one idle less is reused when the event loop has seen nothing
  // arrive on it since its last answer. 0: always peek.
  uint32_t liveness_check_after_ms = 250;
  // resilience.circuit_breaker unless the backend sets its own `circuit_breaker`.
  CircuitBreakerConfig circuit_breaker;
  bool circuit_breaker_set = false;
  // Active health checks: resilience.health_checks.path unless `health_check.path` is set;
  // `health_check.enabled: false` leaves the backend out (a hosted API without a health path).
  std::string health_check_path;
  bool health_check_enabled = true;
  // Which idle upstream connections this backend may reuse: its name, endpoint and TLS identity
  // (connection_key()). Set by the loader; built on use when empty (a config made in code).
  std::string pool_key;
  std::string connection_key() const;
};

struct ModelBackendRef {
  std::string backend;
  uint32_t weight = 0; // 0: use the backend's own weight
};

struct PricingConfig {
  double input_per_1m = 0.0;
  double output_per_1m = 0.0;
};

struct ModelConfig {
  std::string name;
  std::string upstream_model; // the id sent upstream; defaults to name
  std::vector<ModelBackendRef> backends;
  std::string reasoning_family; // "" if the model has no reasoning switch
  PricingConfig pricing;
  // PII types this model may see when a decision's pii plugin is on ("*" = every type). Empty:
  // none, so the plugin redacts, blocks or reroutes whatever it finds.
  std::vector<std::string> allowed_pii;
  bool allows_pii(std::string_view type) const;
  // The model's name in a cost-quality router's training data (default: name).
  std::string router_name;
  double cost() const { return pricing.input_per_1m + pricing.output_per_1m; }
  uint32_t max_concurrent = 0; // requests to this model at once (0: unlimited)
};

enum class ReasoningFamilyType {
  ChatTemplateKwargs, // body.chat_template_kwargs.<parameter> = true/false
  ReasoningEffort,    // body.<parameter> = "low" | "medium" | "high"
  Thinking, // Anthropic: body.<parameter> = {"type":"enabled","budget_tokens":N} | disabled
};

struct ReasoningFamilyConfig {
  std::string name;
  ReasoningFamilyType type = ReasoningFamilyType::ChatTemplateKwargs;
  std::string parameter;
  std::string default_effort = "medium"; // for ReasoningEffort when reasoning is on
  std::string off_effort = "low";        // for ReasoningEffort when reasoning is off
  // ChatTemplateKwargs: the kwarg that takes a thinking-token budget ("" = none), set beside
  // `parameter` when reasoning is on with a budget.
  std::string budget_parameter;
};

enum class KeywordOperator { Any, All };

struct KeywordSignalConfig {
  std::string name;
  std::vector<std::string> keywords;
  KeywordOperator op = KeywordOperator::Any;
  bool case_sensitive = false;
  bool word_boundary = true;
  bool regex = false; // keywords are RE2 patterns rather than literal words
};

// True when the text is close to any of `phrases` (cosine of sentence embeddings).
enum class EmbeddingAggregation { Max, Mean };
struct EmbeddingSignalConfig {
  std::string name;
  std::vector<std::string> phrases;
  double threshold = 0.6; // cosine similarity in [-1, 1]
  EmbeddingAggregation aggregation = EmbeddingAggregation::Max;
};

// True when personal data of one of `types` (any type when empty) is found.
struct PiiSignalConfig {
  std::string name;
  std::vector<std::string> types;
  double min_score = 0.5; // model-found entities below it are ignored
};

// True when the request's estimated token count lies in [min_tokens, max_tokens].
struct ContextLengthSignalConfig {
  std::string name;
  uint64_t min_tokens = 0;
  uint64_t max_tokens = UINT64_MAX;
};

// Facts about the request rather than its text.
enum class MetadataKind { Header, User, Tools, Stream };
struct MetadataSignalConfig {
  std::string name;
  MetadataKind kind = MetadataKind::Header;
  std::string header;              // Header: lower-case name
  std::vector<std::string> values; // Header / User: any of these; empty = present and non-empty
  bool expected = true;            // Tools / Stream: the value that makes the signal true
};

// The reasoning-need classifier's probability P(reason) -> reasoning on or off and an effort
// level, for model references with `reasoning: auto`.
struct ReasoningSignalConfig {
  double threshold = 0.5; // reasoning on at or above it (a model reference may set its own)
  double medium = 0.75;   // effort "medium" at or above it, "high" at or above `high`, else "low"
  double high = 0.9;
  // Per effort (low, medium, high): the thinking-token budget where the family takes one, and a
  // cap on completion tokens (max_tokens) while reasoning is on. 0: none.
  uint32_t budget_tokens[3] = {1024, 4096, 16384};
  uint32_t max_tokens[3] = {0, 0, 0};
};

struct SignalsConfig {
  std::vector<KeywordSignalConfig> keywords;
  std::vector<EmbeddingSignalConfig> embeddings;
  std::vector<PiiSignalConfig> pii;
  std::vector<ContextLengthSignalConfig> context_length;
  std::vector<MetadataSignalConfig> metadata;
  // The domain classifier's answer becomes "other" when its confidence is below this.
  double domain_threshold = 0.0;
  ReasoningSignalConfig reasoning;
};

// A node of a decision's rule tree.
struct RuleNode {
  // Compare: a signal's score (a classifier's probability of `signal_name`, an embedding
  // signal's similarity) against `value` with `op`.
  enum class Kind { And, Or, Not, Signal, Always, Compare };
  enum class Op { Ge, Gt, Le, Lt };
  Kind kind = Kind::Always;
  std::vector<RuleNode> children; // And / Or: one or more; Not: exactly one
  std::string signal_type;        // Signal, Compare: e.g. "keyword", "reasoning"
  std::string signal_name;        // Signal: the configured signal's name; Compare: the label
  Op op = Op::Ge;                 // Compare
  double value = 0;               // Compare
};

// ByNeed (`reasoning: auto`): on when the reasoning classifier's P(reason) reaches the threshold,
// with an effort level from it.
enum class ReasoningMode { Unset, On, Off, ByNeed };

struct ModelRefConfig {
  std::string model;
  uint32_t weight = 1;
  ReasoningMode reasoning = ReasoningMode::Unset; // Unset: leave the request as the client sent it
  std::string effort;        // ReasoningEffort families; "" = the family's default (ByNeed: by P)
  double need_threshold = 0; // ByNeed: P(reason) to turn reasoning on; 0 = signals.reasoning's
};

enum class SystemPromptMode { Insert, Replace };

struct SystemPromptPluginConfig {
  bool enabled = false;
  SystemPromptMode mode = SystemPromptMode::Insert;
  std::string content;
};

// Answer the request without calling a model (jailbreak guard): an OpenAI-shaped response with
// finish_reason "content_filter", streamed when the client asked for a stream.
struct BlockPluginConfig {
  bool enabled = false;
  std::string message = "I can't help with that request.";
};

// What to do when a request carries personal data the chosen model may not see
// (ModelConfig::allowed_pii). Every message is scanned, since every message goes upstream.
enum class PiiAction { Redact, Block, Reroute };
struct PiiPluginConfig {
  bool enabled = false;
  PiiAction action = PiiAction::Redact;
  std::vector<std::string> types; // the types the policy covers; empty = every type found
  double min_score = 0.5;         // model-found entities below it are ignored
  std::string message = "This request contains personal data that cannot be sent to a model.";
};

// Upstream request headers to set or remove, and response headers to add.
struct HeadersPluginConfig {
  std::vector<std::pair<std::string, std::string>> set; // names lower-case
  std::vector<std::string> remove;
  std::vector<std::pair<std::string, std::string>> response_set;
};

// Request-parameter overrides: `set` writes a top-level key (raw JSON value); `max` caps a
// numeric key when the client sent a larger value (or sets it when `fill` and absent); `remove`
// drops a key.
struct ParamsPluginConfig {
  std::vector<std::pair<std::string, std::string>> set; // key -> raw JSON
  std::vector<std::pair<std::string, double>> max;
  std::vector<std::string> fill_max; // keys of `max` also set when the client left them out
  std::vector<std::string> remove;
  bool enabled() const { return !set.empty() || !max.empty() || !remove.empty(); }
};

// plugins.cache: a decision's own cache settings over the `cache` section's defaults.
struct CachePluginConfig {
  bool set = false; // the decision has plugins.cache (else the `cache` section decides)
  bool enabled = true;
  double similarity = 0; // 0: cache.similarity
  uint32_t ttl_s = 0;    // 0: cache.ttl_s
};

enum class ToolsFallback { KeepAll, KeepTopK };

// plugins.tools (and the `tools` section, its default): when a request carries more than
// max_tools tools, only the top_k most similar to the latest user text go upstream, plus the
// tools named in tool_choice, those already called in the conversation and `always`.
struct ToolsPluginConfig {
  bool set = false;     // the decision has plugins.tools
  bool enabled = false; // filtering is on
  uint32_t max_tools = 8;
  uint32_t top_k = 5;
  double min_similarity = 0.0; // tools below it are not relevant; none relevant: `fallback`
  ToolsFallback fallback = ToolsFallback::KeepAll;
  std::vector<std::string> always; // tool names always kept
  std::vector<std::string> allow;  // non-empty: only these may go upstream
  std::vector<std::string> block;  // never go upstream
};

struct PluginsConfig {
  SystemPromptPluginConfig system_prompt;
  BlockPluginConfig block;
  PiiPluginConfig pii;
  HeadersPluginConfig headers;
  ParamsPluginConfig params;
  CachePluginConfig cache;
  ToolsPluginConfig tools;
};

// Under load, move the choice toward cheaper models: the threshold rises by `shift` (threshold
// mode), the target quality drops by it (cheapest), λ grows by it (utility). Pressure starts
// when the strong (most expensive) candidate has more than max_inflight requests in flight or its
// recent p95 time to first token is above ttft_p95_ms; it ends when both are below (1 −
// hysteresis) of their limits.
struct LoadShiftConfig {
  uint32_t max_inflight = 0; // 0: not watched
  uint32_t ttft_p95_ms = 0;  // 0: not watched
  double shift = 0.2;
  double hysteresis = 0.2;
  bool enabled() const { return max_inflight > 0 || ttft_p95_ms > 0; }
};

// Cost-quality selection among a decision's models by a trained router (`routers`).
enum class SelectionMode {
  Threshold, // strong when p(strong) − p(weak) ≥ threshold
  Cheapest,  // the cheapest model whose predicted success ≥ target_quality
  Utility,   // argmax predicted success − λ · cost / (the dearest candidate's cost)
};
struct SelectionConfig {
  bool enabled = false;
  std::string router; // a key of Config::routers
  SelectionMode mode = SelectionMode::Threshold;
  std::string strong, weak; // threshold mode: model names among the decision's models
  double threshold = 0.0;
  double target_strong_share = -1; // ≥ 0: hold this share online (window quantile)
  uint32_t window = 1000;          // recent requests the online quantile and share use
  double target_quality = 0.5;     // cheapest mode
  double lambda = 0.1;             // utility mode
  LoadShiftConfig load;
};

struct DecisionConfig {
  std::string name;
  std::string description;
  int priority = 0; // higher wins when several decisions match
  RuleNode rules;
  std::vector<ModelRefConfig> models;
  PluginsConfig plugins;
  SelectionConfig selection;
  // `reasoning: auto` under load: while the chosen model is over these limits (in flight, p95
  // time to first token; released below (1 - hysteresis) of them), the effort steps down one
  // level (high -> medium -> low -> off). Set them below `selection.load`'s so effort gives way
  // before the shift to cheaper models. `shift` is unused.
  LoadShiftConfig reasoning_load;
  // Models to try, in order, when every backend of the chosen model is ejected, unhealthy,
  // breaking or failing (x-semrouter-fallback names the one that answered).
  std::vector<std::string> fallback;
};

// A model behind a task (`classifiers.<task>`): the embedded default or a user's folder.
struct ClassifierConfig {
  std::string task;               // domain, complexity, jailbreak, language, embeddings, pii
  std::string type;               // linear, transformer, fasttext, word_vectors
  std::string path;               // absolute, or relative to ClassifiersConfig::dir
  std::string precision = "auto"; // transformer: auto, f32, bf16, int8
};

struct ClassifiersConfig {
  std::string dir; // base of relative paths; "" = the models folder built in at compile time
  std::map<std::string, ClassifierConfig> tasks;
};

// How the winning decision is chosen among those whose rules are true.
enum class DecisionStrategy {
  Priority,   // the highest priority (ties: listed first)
  Confidence, // the highest confidence (ties: higher priority, then listed first)
};

// Which messages the text signals read.
struct HistoryConfig {
  uint32_t user_turns = 1;        // the latest N user messages (0: every user message)
  bool include_system = false;    // also the system / developer messages
  bool include_assistant = false; // also assistant messages among those turns
  // With user_turns 1: a short latest turn that leans on the conversation ("yes, do it", "and
  // for the second case?") is read together with the user turn it follows.
  bool follow_ups = true;
  uint32_t follow_up_max_words = 8;
};

// Requests with the same session header stay on the model the session started with, unless a
// decision of higher priority than the session's fires.
struct SessionsConfig {
  bool enabled = false;
  std::string header = "x-session-id";
  uint32_t ttl_s = 3600;
  uint32_t max_sessions = 100000;
};

// What the model-backed signals (the classifiers and the embedding) read of a long text: its
// first head_words and last tail_words words, as transformer classifiers truncate to their
// window. Keywords and PII read everything. 0 and 0: everything.
struct WindowConfig {
  uint32_t head_words = 512;
  uint32_t tail_words = 128;
};

struct RoutingConfig {
  DecisionStrategy strategy = DecisionStrategy::Priority;
  HistoryConfig history;
  WindowConfig window;
  SessionsConfig sessions;
  // Adds x-semrouter-signals (every computed signal, its value and confidence) to responses.
  bool debug_headers = false;
};

struct ServerConfig {
  uint32_t workers =
      1; // event-loop threads, each with its own upstream pools (one acceptor feeds them)
  uint64_t max_body_bytes = 8u << 20;
  uint32_t inference_workers = 2; // threads running transformer-backed signals concurrently
  uint32_t client_header_timeout_ms = 30000;
  uint32_t reload_poll_ms = 1000; // how often the config file is checked for changes; 0 disables
  uint64_t random_seed = 0;       // 0: seeded from the clock
  // SIGTERM/SIGINT: how long requests in flight (streams included) may take to finish after the
  // listeners close and /ready turns 503; then the connections are closed.
  uint32_t drain_timeout_ms = 5000;
  // Before that, how long the listeners stay open with /ready answering 503, so load balancers
  // that poll readiness stop sending new requests before connections are refused.
  uint32_t drain_delay_ms = 0;
  std::string log_level = "info";
  // Each worker hands the plain-TCP sends and reads of one pass over its ready handlers to the
  // kernel in one io_uring_enter, where the kernel allows it (gateway/io_batch.h); false: one
  // system call each.
  bool io_uring = true;
};

// Which front doors `serve` opens (the admin port is always served).
enum class ServeMode {
  Gateway, // the OpenAI-compatible HTTP gateway
  ExtProc, // the Envoy ext_proc gRPC service alone
  Both,    // both, sharing sessions, load state and metrics
};

// The Envoy ext_proc service: `listeners.extproc` and the `extproc` section.
struct ExtProcConfig {
  bool enabled = false; // listeners.extproc is present
  ListenerConfig listener{"127.0.0.1", 8803};
  // TLS for the gRPC listener; with ca_file, clients (Envoy) must present a certificate it signed.
  std::string tls_cert_file, tls_key_file, tls_ca_file;
  // Request headers set for Envoy's route table: the chosen model's name and backend's name.
  std::string model_header = "x-semrouter-model";
  std::string backend_header = "x-semrouter-backend";
  // A request carrying this header (any value but "0"/"false") is let through unrouted; "" turns
  // the bypass off.
  std::string bypass_header = "x-semrouter-skip";
  // Envoy's observability_mode: the service only watches (shadow routing for metrics) and
  // sends no responses.
  bool observability_mode = false;
  uint64_t max_body_bytes = 0; // 0: server.max_body_bytes
  uint32_t threads = 0;        // completion-queue threads; 0: server.workers
};

enum class CacheBackend { Memory, Redis };
enum class CacheEviction { Lru, Lfu, Fifo };

// The `cache` section: the semantic cache's store and the defaults of every decision's
// plugins.cache (docs/config.md#cache).
struct CacheConfig {
  bool enabled = false; // decisions without plugins.cache (and passthrough requests) cache
  CacheBackend backend = CacheBackend::Memory;
  double similarity = 0.6;  // least cosine similarity for a semantic candidate (then verified)
  uint32_t short_words = 4; // texts of at most this many words need short_similarity
  double short_similarity = 0.97;
  uint32_t max_words = 64; // a longer latest user turn is looked up by the exact tier only
  uint32_t ttl_s = 3600;
  uint64_t max_entries = 10000;
  uint64_t max_bytes = 64ull << 20;
  CacheEviction eviction = CacheEviction::Lru;
  uint32_t hnsw_min_entries = 32768, hnsw_m = 16, hnsw_ef_construction = 100, hnsw_ef_search = 64;
  // Where a request's tenant comes from, first found wins: "header:<name>", "api_key" (a hash
  // of the Authorization header), "user" (the body's user field).
  std::vector<std::string> tenant{"header:x-tenant-id", "api_key", "user"};
  double max_temperature = 1.0;  // requests above it neither read nor fill the cache
  bool cache_tool_calls = false; // store answers that call tools
  std::string bypass_header = "x-semrouter-cache-bypass"; // any value but 0/false: skip both
  // The verifier (cache/verifier.h).
  bool verify = true;
  double verify_word_similarity = 0.6;
  double verify_rare_weight = 0.9;
  // Redis: redis://[:password@]host:port[/db]; the password from password_env rather than the
  // URL.
  std::string redis_host = "127.0.0.1";
  uint16_t redis_port = 6379;
  uint32_t redis_db = 0;
  std::string redis_password; // resolved from redis.password_env at load time
  std::string redis_prefix = "semrouter:cache:";
  uint32_t redis_timeout_ms = 100;
  uint32_t redis_reconnect_ms = 500;
};

struct Config {
  ListenerConfig gateway{"127.0.0.1", 8801};
  ListenerConfig admin{"127.0.0.1", 8802};
  ServerConfig server;
  ServeMode mode = ServeMode::Gateway; // server.mode; default: both when listeners.extproc is set
  ExtProcConfig extproc;
  CacheConfig cache;
  AuthConfig auth;
  ResilienceConfig resilience;
  DashboardConfig dashboard;  // the admin port's dashboard (docs/dashboard.md)
  TracingConfig tracing;      // OTLP traces (docs/observability.md)
  AccessLogConfig access_log; // one line per request (docs/observability.md)
  ToolsPluginConfig tools;    // the `tools` section: plugins.tools for decisions without one
  std::vector<std::string> auto_model_names{"auto", "MoM"};
  std::vector<BackendConfig> backends;
  std::vector<ModelConfig> models;
  std::map<std::string, ReasoningFamilyConfig> reasoning_families;
  std::string default_model;
  SignalsConfig signals;
  std::vector<DecisionConfig> decisions;
  ClassifiersConfig classifiers;
  // Trained cost-quality routers by name: folder paths (relative ones resolve against
  // classifiers.dir, i.e. the models folder by default).
  std::map<std::string, std::string> routers;
  RoutingConfig routing;
  std::string default_decision_name = "default";
  // `default_decision` given as a mapping: the fallback's models and plugins (it has no rules).
  // Absent: the fallback sends default_model the request as the client wrote it.
  std::optional<DecisionConfig> default_decision;
  // The YAML text this config was parsed from, as written (before ${VAR} expansion): what the
  // dashboard shows, secrets masked, and diffs against the previous generation.
  std::string source;

  const ModelConfig* find_model(std::string_view name) const;
  const BackendConfig* find_backend(std::string_view name) const;
  bool is_auto_name(std::string_view name) const;
};

// The PII types the pattern recognisers find (signals::find_pii), for validating config.
const std::vector<std::string>& pattern_pii_types();

// Reasoning families every config has unless it redefines them: qwen3, deepseek, gpt-oss.
std::map<std::string, ReasoningFamilyConfig> builtin_reasoning_families();

// Parses and validates YAML text. Errors name the key path and the reason, e.g.
// `decisions[2].models[0].model: unknown model "gpt-5" (known: qwen3-8b, llama-3.1-8b)`.
core::StatusOr<std::shared_ptr<const Config>> parse_config(std::string_view yaml_text);
core::StatusOr<std::shared_ptr<const Config>> load_config_file(const std::string& path);

// The built-in demo configuration (used by `semrouter serve` without --config).
std::string_view embedded_default_config();

} // namespace semrouter::config
