#include "pipeline/exchange.h"

#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/strings.h"
#include "pipeline/dialects.h"

namespace semrouter::pipeline {

RequestMetrics::RequestMetrics(metrics::Registry& r)
    : requests(r.counter("semrouter_requests_total",
                         "Requests answered, by routed model, decision and HTTP status.",
                         {"model", "decision", "status"})),
      duration(r.histogram("semrouter_request_duration_seconds",
                           "Time from request received to response complete, by model.", {"model"},
                           metrics::latency_buckets())),
      ttft(r.histogram(
          "semrouter_time_to_first_token_seconds",
          "Streaming: time from request received to the first upstream event, by model.", {"model"},
          metrics::latency_buckets())),
      upstream_errors(
          r.counter("semrouter_upstream_errors_total",
                    "Upstream failures by backend and kind (connect, timeout, reset, protocol, "
                    "too_large, status_5xx).",
                    {"backend", "kind"})),
      model_errors(r.counter("semrouter_model_errors_total",
                             "Upstream failures by routed model and kind (as "
                             "semrouter_upstream_errors_total).",
                             {"model", "kind"})),
      inflight(r.gauge("semrouter_inflight_requests", "Requests being processed now.").with({})),
      prompt_tokens(r.counter("semrouter_prompt_tokens_total",
                              "Prompt tokens reported by upstream usage.", {"model"})),
      completion_tokens(r.counter("semrouter_completion_tokens_total",
                                  "Completion tokens reported by upstream usage.", {"model"})),
      reasoning_tokens(r.counter("semrouter_reasoning_tokens_total",
                                 "Reasoning tokens reported by upstream usage "
                                 "(completion_tokens_details.reasoning_tokens), part of "
                                 "completion tokens.",
                                 {"model"})),
      reasoning_requests(r.counter("semrouter_reasoning_requests_total",
                                   "Routed requests by decision and whether the router turned "
                                   "reasoning on (on, off, or unset: left as the client sent it).",
                                   {"decision", "reasoning"})),
      reasoning_stepdowns(r.counter("semrouter_reasoning_stepdowns_total",
                                    "Requests whose reasoning effort stepped down a level under "
                                    "load (decisions[].reasoning_load), by decision.",
                                    {"decision"})),
      client_errors(r.counter("semrouter_client_errors_total",
                              "Requests rejected before routing, by reason.", {"reason"})),
      routing(r.histogram("semrouter_routing_duration_seconds",
                          "Time to route a request (parse, signals, decision, plugins).", {},
                          {25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
                           50e-3, 100e-3})
                  .with({})),
      selections(r.counter("semrouter_selection_total",
                           "Cost-quality selections by decision and choice (strong, weak, or "
                           "the model), and whether the load shift was on.",
                           {"decision", "choice", "load"})),
      strong_share(r.gauge("semrouter_strong_share",
                           "Realised share of strong calls over the decision's window "
                           "(threshold selection).",
                           {"decision"})),
      selection_threshold(r.gauge("semrouter_selection_threshold",
                                  "The threshold (or target quality, or lambda) selection used "
                                  "last, load shift included.",
                                  {"decision"})),
      load_pressure(r.gauge("semrouter_load_pressure",
                            "1 while a decision's load shift toward cheaper models is on.",
                            {"decision"})),
      pii_actions(r.counter("semrouter_pii_actions_total",
                            "Requests the pii plugin changed, by action (redacted, rerouted, "
                            "blocked).",
                            {"action"})),
      tools_filtered(r.counter("semrouter_tools_filtered_total",
                               "Requests whose tool list plugins.tools shortened, by decision.",
                               {"decision"})),
      tools_removed(r.counter("semrouter_tools_removed_total",
                              "Tools plugins.tools kept from the upstream, by decision.",
                              {"decision"})) {}

namespace {

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ActivityLog::Options activity_options(const config::DashboardConfig& d) {
  ActivityLog::Options o;
  o.capacity = d.recent;
  o.bucket_s = d.bucket_s;
  o.history_s = d.history_minutes * 60;
  o.started_ms = unix_now_ms();
  return o;
}

// What a routed request's record starts with; the response phase adds status, times and usage.
ActivityRecord activity_record(const RouteOutcome& out) {
  ActivityRecord r;
  r.tenant = out.tenant;
  r.decision = out.decision;
  if (out.model)
    r.model = out.model->name;
  r.reasoning = out.reasoning;
  r.cache = out.cache;
  r.pii = out.pii;
  r.session = out.session;
  r.prompt = out.prompt;
  r.signals = out.matched_signals;
  r.confidence = out.confidence;
  r.blocked = out.blocked;
  r.stream = out.stream;
  r.route_us = out.route_us;
  r.signal_us = out.signal_us;
  return r;
}

// The dashboard's tenant label: the key's tenant, else the x-tenant-id header (cut: a client's
// header must not grow the ring without bound).
std::string tenant_label(const Runtime::Caller* caller, const HeaderLookup& headers) {
  constexpr size_t kMaxTenantBytes = 64;
  if (caller && !caller->tenant.empty())
    return caller->tenant;
  if (headers)
    if (auto h = headers("x-tenant-id"))
      return std::string(core::utf8_prefix(core::trim(*h), kMaxTenantBytes));
  return {};
}

} // namespace

Runtime::Runtime(SnapshotStore& s, metrics::Registry& r)
    : store(s), registry(r), metrics(r), cache(r), auth(r), upstreams(r), admission(r),
      activity(activity_options(s.get()->config->dashboard)) {}

void Runtime::record_reply(const RouteOutcome& out) {
  ActivityRecord r = activity_record(out);
  r.unix_ms = unix_now_ms();
  r.status = out.cache == "hit" ? 200 : out.reply_status;
  if (!out.blocked && out.cache != "hit")
    r.error = out.error_type;
  r.latency_ms = out.route_us / 1000;
  activity.record(std::move(r));
}

UpstreamHealth& Runtime::upstreams_for(const Snapshot& snapshot) {
  upstreams.configure(*snapshot.config, snapshot.generation);
  return upstreams;
}

void Exchange::fallback_to(const config::ModelConfig& model) {
  if (model.name == model_)
    return;
  load_->finish();
  model_ = model.name;
  model_config_ = &model;
  load_ = &rt_.cost_quality.load.model(model_);
  load_->start();
  fill_.reset();
}

auth::Guard& Runtime::auth_for(const Snapshot& snapshot) {
  if (auth_through_.load(std::memory_order_acquire) > snapshot.generation)
    return auth; // configured from this generation or a later one
  std::lock_guard lock(auth_mu_);
  // Only forward (a request on an older snapshot must not put the old keys back).
  if (auth_through_.load(std::memory_order_relaxed) <= snapshot.generation) {
    if (auto st = auth.configure(snapshot.config->auth); !st)
      spdlog::error("auth: {} (the previous keys stay in force)", st.error().message);
    auth_through_.store(snapshot.generation + 1, std::memory_order_release);
  }
  return auth;
}

RequestMeta Runtime::meta_for(openai::RequestKind kind, const HeaderLookup& headers) {
  RequestMeta meta;
  meta.kind = kind;
  meta.headers = &headers;
  meta.sessions = &sessions;
  meta.pool = pool;
  meta.cost_quality = &cost_quality;
  meta.cache = &cache;
  meta.tool_vectors = &tool_vectors;
  return meta;
}

RouteOutcome Runtime::route(const Snapshot& snapshot, openai::RequestKind kind,
                            const HeaderLookup& headers, std::string_view body,
                            core::Random& random, bool may_reply, const Caller* caller,
                            RequestTrace* trace) {
  RequestMeta meta = meta_for(kind, headers);
  meta.may_reply = may_reply;
  meta.trace_signals = trace && trace->sampled();
  if (caller) {
    meta.tenant = caller->tenant;
    meta.budget_spent = caller->budget_spent;
    meta.budget_pressure = caller->budget_pressure;
  }
  const config::DashboardConfig& dashboard = snapshot.config->dashboard;
  if (dashboard.enabled) {
    meta.observe = true;
    meta.prompt_chars = dashboard.show_prompts ? dashboard.prompt_max_chars : 0;
  }
  RouteOutcome out = pipeline::route(snapshot, meta, body, random);
  if (dashboard.enabled) {
    out.observed = true;
    out.tenant = tenant_label(caller, headers);
  }
  if (trace)
    trace->routed(out, dashboard.enabled ? out.tenant : tenant_label(caller, headers));
  RequestMetrics& m = metrics;
  m.routing.observe(out.route_us * 1e-6);
  if (!out.pii.empty())
    m.pii_actions.with({out.pii}).inc();
  if (out.selection.active) {
    const auto& sr = out.selection;
    m.selections.with({out.decision, sr.choice, sr.pressure ? "pressure" : "normal"}).inc();
    if (sr.strong_share >= 0)
      m.strong_share.with({out.decision}).set(sr.strong_share);
    m.selection_threshold.with({out.decision}).set(sr.threshold);
    m.load_pressure.with({out.decision}).set(sr.pressure ? 1 : 0);
  }
  if (out.reasoning_stepped_down)
    m.reasoning_stepdowns.with({out.decision}).inc();
  if (out.action == RouteAction::Forward && out.decision != "passthrough") {
    const std::string_view r = out.reasoning;
    m.reasoning_requests
        .with({out.decision, r.starts_with("on")    ? "on"
                             : r.starts_with("off") ? "off"
                                                    : "unset"})
        .inc();
  }
  if (out.tools_kept < out.tools_total) {
    m.tools_filtered.with({out.decision}).inc();
    m.tools_removed.with({out.decision}).inc(double(out.tools_total - out.tools_kept));
  }
  if (out.cache == "hit") {
    // Answered from the cache: counted under the model whose answer it is.
    m.requests.with({out.model->name, out.decision, "200"}).inc();
    if (out.observed)
      record_reply(out);
    return out;
  }
  if (out.action == RouteAction::Reply) {
    if (!out.blocked)
      m.client_errors.with({out.error_type}).inc();
    // The model label stays "-": a client's made-up model names must not mint new series. A
    // blocked request keeps its (configured, so bounded) decision name.
    m.requests.with({"-", out.blocked ? out.decision : "-", std::to_string(out.reply_status)})
        .inc();
    if (out.observed)
      record_reply(out);
  }
  return out;
}

RouteOutcome Runtime::dry_run(const Snapshot& snapshot, const HeaderLookup& headers,
                              std::string_view body, core::Random& random) {
  RequestMeta meta = meta_for(openai::RequestKind::ChatCompletions, headers);
  meta.sessions = nullptr;     // a dry run neither starts nor moves a session,
  meta.cost_quality = nullptr; // nor feeds calibration or load state
  meta.cache = nullptr;        // nor reads or fills the cache
  meta.explain = true;         // and says why: every signal and every decision's rule tree
  return pipeline::route(snapshot, meta, body, random);
}

namespace {

nlohmann::json rule_json(const routing::RuleTrace& t) {
  nlohmann::json j = {{"kind", t.kind}, {"result", t.result}};
  if (!t.signal.empty()) {
    j["signal"] = t.signal;
    j["computed"] = t.computed;
    j["score"] = t.score;
  }
  if (t.kind == "compare") {
    j["op"] = t.op;
    j["value"] = t.value;
  }
  if (!t.children.empty()) {
    nlohmann::json children = nlohmann::json::array();
    for (const auto& c : t.children)
      children.push_back(rule_json(c));
    j["children"] = std::move(children);
  }
  return j;
}

// The dry run's explanation: ,"signals":{...},"decision_path":{...}
std::string explain_json(const RouteExplain& e) {
  nlohmann::json signals = nlohmann::json::object();
  for (const auto& [key, r] : e.signals.all())
    signals[key] = {{"matched", r.matched},
                    {"confidence", r.confidence},
                    {"score", r.score},
                    {"latency_us", r.latency_us},
                    {"evidence", r.evidence}};
  nlohmann::json decisions = nlohmann::json::array();
  for (const auto& d : e.decisions)
    decisions.push_back({{"name", d.name},
                         {"priority", d.priority},
                         {"matched", d.matched},
                         {"confidence", d.confidence},
                         {"chosen", !e.is_default && d.name == e.winner},
                         {"rule", rule_json(d.rule)}});
  nlohmann::json path = {{"strategy", e.strategy},
                         {"winner", e.winner},
                         {"default", e.is_default},
                         {"decisions", std::move(decisions)}};
  return ",\"signals\":" + signals.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         ",\"decision_path\":" +
         path.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

std::string dry_run_body(const RouteOutcome& out) {
  const bool blocked = out.blocked || !out.model;
  std::string body =
      "{\"model\":" + (blocked ? std::string("null") : core::json_string(out.model->name)) +
      ",\"upstream_model\":" +
      (blocked ? std::string("null") : core::json_string(out.model->upstream_model)) +
      ",\"decision\":" + core::json_string(out.decision) +
      fmt::format(",\"confidence\":{}", out.confidence) +
      ",\"reasoning\":" + core::json_string(out.reasoning) + ",\"matched_signals\":[";
  for (size_t i = 0; i < out.matched_signals.size(); ++i) {
    if (i)
      body += ',';
    body += core::json_string(out.matched_signals[i]);
  }
  if (blocked) // the block plugin's own answer, as the client would get it
    body += "],\"blocked\":true,\"reply\":" + (out.reply_content_type == "application/json"
                                                   ? out.reply_body
                                                   : core::json_string(out.reply_body));
  else
    body += "],\"body\":" + out.body;
  body += ",\"pii\":" + (out.pii.empty() ? std::string("null") : core::json_string(out.pii)) +
          ",\"session\":" +
          (out.session.empty() ? std::string("null") : core::json_string(out.session)) +
          ",\"route_us\":" + fmt::format("{:.1f}", out.route_us);
  if (out.explain)
    body += explain_json(*out.explain);
  body += '}';
  return body;
}

Exchange::Exchange(Runtime& runtime, RouteOutcome& out, core::TimePoint start, RequestTrace* trace)
    : rt_(runtime), model_(out.model ? out.model->name : std::string("-")), decision_(out.decision),
      start_(start), fill_(std::move(out.cache_fill)), key_(out.key), model_config_(out.model),
      estimated_tokens_(out.estimated_tokens), trace_(trace),
      load_(&runtime.cost_quality.load.model(model_)) {
  if (trace_ && key_)
    trace_->set_key(key_->name);
  if (out.observed) {
    observed_ = true;
    activity_ = activity_record(out);
  }
  rt_.metrics.inflight.add(1);
  load_->start();
}

Exchange::~Exchange() {
  finish(kClientClosedRequest);
  // The answer is stored once the transport is done with the client (the gateway destroys the
  // exchange after the last byte is written): the store's insert never delays the answer.
  if (fill_ && status_ == 200 && finished_status_ == 200) {
    try {
      // The entry moves into the store when nothing else holds it (the exchange took the fill
      // from the outcome).
      rt_.cache.fill(*fill_, capture_, fill_.use_count() == 1);
    } catch (const std::exception& e) { // a destructor must not throw: the answer is not kept
      spdlog::warn("cache: could not store an answer: {}", e.what());
    }
  }
}

void Exchange::first_token() {
  if (ttft_recorded_)
    return;
  ttft_recorded_ = true;
  const auto now = core::SteadyClock::now();
  const double s = core::seconds_between(start_, now);
  ttft_s_ = s;
  if (streamed_)
    rt_.metrics.ttft.with({model_}).observe(s);
  load_->record_ttft(s, now);
}

void Exchange::response_head(int status, bool event_stream) {
  status_ = status;
  streamed_ = event_stream;
  if (!event_stream && status < 400) // a quick error is not a served answer
    first_token();
}

void Exchange::stream_bytes(std::string_view piece) {
  for (const std::string& event : sse_.feed(piece))
    sse_event(event, true);
}

void Exchange::sse_event(std::string_view data, bool mentions_usage) {
  first_token();
  if (mentions_usage)
    count_usage(openai::parse_usage(data));
  if (fill_)
    capture_.event(data);
}

void Exchange::count_usage(const openai::Usage& usage) {
  if (!usage.present)
    return;
  prompt_tokens_ += usage.prompt_tokens;
  completion_tokens_ += usage.completion_tokens;
  rt_.metrics.prompt_tokens.with({model_}).inc(usage.prompt_tokens);
  rt_.metrics.completion_tokens.with({model_}).inc(usage.completion_tokens);
  reasoning_tokens_ += usage.reasoning_tokens;
  if (usage.reasoning_tokens > 0)
    rt_.metrics.reasoning_tokens.with({model_}).inc(usage.reasoning_tokens);
}

void Exchange::body(std::string_view body) {
  if (status_ != 200)
    return;
  count_usage(openai::parse_usage(body));
  if (fill_)
    capture_.body(body);
}

void Exchange::upstream_error(std::string_view backend, std::string_view kind) {
  rt_.metrics.upstream_errors.with({std::string(backend), std::string(kind)}).inc();
  rt_.metrics.model_errors.with({model_, std::string(kind)}).inc();
}

void Exchange::finish(int status) {
  if (finished_)
    return;
  finished_ = true;
  finished_status_ = status;
  rt_.metrics.requests.with({model_, decision_, std::to_string(status)}).inc();
  const double seconds = core::seconds_between(start_, core::SteadyClock::now());
  rt_.metrics.duration.with({model_}).observe(seconds);
  load_->finish();
  rt_.metrics.inflight.add(-1);
  settle();
  if (observed_)
    record_activity(status, seconds);
  if (trace_)
    trace_->finished(status, model_, streamed_ && ttft_recorded_ ? ttft_s_ : -1, streamed_,
                     prompt_tokens_, completion_tokens_, reasoning_tokens_);
}

void Exchange::record_activity(int status, double seconds) {
  ActivityRecord& r = activity_;
  r.unix_ms = unix_now_ms();
  r.status = status;
  r.stream = r.stream || streamed_; // what the upstream answered: SSE
  if (model_ != r.model)
    r.fallback = model_;
  r.latency_ms = seconds * 1000;
  // A non-streamed answer's "first token" is the whole answer: only streams have a TTFT here.
  r.ttft_ms = streamed_ && ttft_recorded_ ? ttft_s_ * 1000 : -1;
  r.prompt_tokens = prompt_tokens_;
  r.completion_tokens = completion_tokens_;
  r.reasoning_tokens = reasoning_tokens_;
  if (model_config_)
    r.cost = (double(prompt_tokens_) * model_config_->pricing.input_per_1m +
              double(completion_tokens_) * model_config_->pricing.output_per_1m) /
             1e6;
  // activity_ takes the record the ring displaced; it goes with this Exchange, off the log's lock.
  rt_.activity.record(std::move(r));
}

void Exchange::settle() {
  if (!key_ || settled_)
    return;
  settled_ = true;
  // No usage reported (an error, a stream without it): the estimate stands for the prompt.
  const bool reported = prompt_tokens_ + completion_tokens_ > 0;
  const uint64_t prompt = reported ? prompt_tokens_ : (status_ == 200 ? estimated_tokens_ : 0);
  double cost = 0;
  if (model_config_)
    cost = (double(prompt) * model_config_->pricing.input_per_1m +
            double(completion_tokens_) * model_config_->pricing.output_per_1m) /
           1e6;
  rt_.auth.settle(*key_, estimated_tokens_, prompt, completion_tokens_, cost);
}

std::vector<const config::BackendConfig*> order_backends(const config::Config& config,
                                                         const config::ModelConfig& model,
                                                         core::Random& random) {
  struct Choice {
    const config::BackendConfig* backend;
    uint32_t weight;
  };
  std::vector<Choice> choices;
  for (const auto& ref : model.backends) {
    const config::BackendConfig* b = config.find_backend(ref.backend);
    if (b)
      choices.push_back({b, ref.weight ? ref.weight : b->weight});
  }
  std::vector<const config::BackendConfig*> order;
  if (choices.empty())
    return order;
  uint64_t total = 0;
  for (const auto& c : choices)
    total += c.weight;
  double pick = random.uniform() * static_cast<double>(total);
  size_t first = choices.size() - 1;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (pick < choices[i].weight) {
      first = i;
      break;
    }
    pick -= choices[i].weight;
  }
  order.push_back(choices[first].backend);
  choices.erase(choices.begin() + static_cast<long>(first));
  std::stable_sort(choices.begin(), choices.end(),
                   [](const Choice& a, const Choice& b) { return a.weight > b.weight; });
  for (const auto& c : choices)
    order.push_back(c.backend);
  return order;
}

std::string upstream_base_path(const config::BackendConfig& backend) {
  if (backend.base_path.empty())
    return "/v1";
  if (backend.base_path == "/")
    return "";
  return backend.base_path;
}

bool request_stream_usage(Api client, const config::BackendConfig& backend, UpstreamCall& call) {
  // Azure takes stream_options from this api-version on (ISO dates compare as strings).
  constexpr std::string_view kAzureStreamOptionsSince = "2024-09-01";
  // Chat and legacy completions streams take stream_options alike (OpenAI, vLLM); a translated
  // stream asks for usage already (anthropic.cc, responses_api.cc).
  if ((client != Api::Chat && client != Api::Completions) || call.wire != client)
    return false;
  if (backend.provider == config::Provider::Azure &&
      std::string_view(backend.api_version) < kAzureStreamOptionsSince)
    return false;
  std::string& body = call.body;
  if (body.find("\"stream\"") == std::string::npos)
    return false;
  auto fields = openai::scan_top_level(body);
  if (!fields || fields->empty())
    return false;
  const openai::TopLevelField* stream = nullptr;
  const openai::TopLevelField* options = nullptr;
  for (const auto& f : *fields) {
    if (f.key == "stream")
      stream = &f;
    else if (f.key == "stream_options")
      options = &f;
  }
  auto value_of = [&](const openai::TopLevelField& f) {
    return std::string_view(body).substr(f.value.begin, f.value.end - f.value.begin);
  };
  if (!stream || value_of(*stream) != "true")
    return false;
  std::string value = R"({"include_usage":true})";
  if (options) {
    nlohmann::json so = nlohmann::json::parse(value_of(*options), nullptr, false);
    if (!so.is_object() && !so.is_null())
      return false; // the upstream answers a malformed stream_options as it would have
    if (so.is_object()) {
      auto asked = [&](const char* key) {
        auto it = so.find(key);
        return it != so.end() && it->is_boolean() && it->get<bool>();
      };
      if (asked("include_usage") || asked("continuous_usage_stats"))
        return false;
      so["include_usage"] = true;
      value = so.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    body.replace(options->value.begin, options->value.end - options->value.begin, value);
  } else {
    body.insert(fields->back().value.end, ",\"stream_options\":" + value);
  }
  return true;
}

std::string upstream_path(const config::BackendConfig& backend, openai::RequestKind kind) {
  return upstream_base_path(backend) +
         (kind == openai::RequestKind::Completions ? "/completions" : "/chat/completions");
}

} // namespace semrouter::pipeline
