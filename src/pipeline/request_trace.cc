#include "pipeline/request_trace.h"

#include <chrono>

#include "core/strings.h"
#include "pipeline/exchange.h"
#include "trace/exporter.h"

namespace semrouter::pipeline {

namespace {

constexpr size_t kMaxRequestIdBytes = 128;
constexpr size_t kMaxTraceStateBytes = 512; // the spec's limit for what a vendor must pass on

int64_t unix_now_ms_wall() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double ms_between(core::TimePoint a, core::TimePoint b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

} // namespace

RequestTrace::RequestTrace(Runtime& runtime, const HeaderLookup& headers, const Origin& origin,
                           core::TimePoint start)
    : rt_(runtime), start_(start) {
  propagate_ = rt_.tracer != nullptr;
  logging_ = rt_.access_log != nullptr;
  if (!propagate_ && !logging_)
    return; // neither is on: everything below is skipped
  start_unix_ns_ = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count() -
      std::chrono::duration_cast<std::chrono::nanoseconds>(core::SteadyClock::now() - start)
          .count());
  std::optional<trace::TraceParent> parent;
  if (headers)
    if (auto tp = headers("traceparent"))
      parent = trace::parse_traceparent(*tp);
  if (parent) {
    trace_id_ = parent->trace_id;
    parent_ = parent->parent_id;
    has_parent_ = true;
    sampled_ = parent->sampled(); // parent-based: the caller decided
    // tracestate only means something beside a valid traceparent
    if (auto ts = headers("tracestate"); ts && ts->size() <= kMaxTraceStateBytes)
      tracestate_ = std::string(core::trim(*ts));
  } else {
    trace_id_ = trace::new_trace_id();
    sampled_ = propagate_ && trace::sample_by_ratio(trace_id_, rt_.trace_sample_ratio);
  }
  sampled_ = sampled_ && propagate_;
  flags_ = sampled_ ? trace::kSampledFlag : 0;
  server_span_ = trace::new_span_id();
  if (auto id = headers ? headers("x-request-id") : std::nullopt; id && !id->empty())
    entry_.request_id = std::string(core::utf8_prefix(core::trim(*id), kMaxRequestIdBytes));
  else
    entry_.request_id = trace::to_hex(server_span_);
  if (propagate_ || has_parent_) {
    entry_.trace_id = trace::to_hex(trace_id_);
    if (propagate_)
      entry_.span_id = trace::to_hex(server_span_);
  }
  entry_.client = origin.client;
  entry_.method = origin.method;
  entry_.path = origin.path;
  entry_.api = origin.api;
  host_ = origin.host;
  transport_ = origin.transport;
}

RequestTrace::~RequestTrace() {
  if (!propagate_ && !logging_)
    return;
  try {
    emit();
  } catch (const std::exception&) { // allocation failure: the line and spans are lost, no more
  }
}

uint64_t RequestTrace::unix_ns(core::TimePoint t) const {
  return start_unix_ns_ +
         static_cast<uint64_t>(std::max<int64_t>(
             0, std::chrono::duration_cast<std::chrono::nanoseconds>(t - start_).count()));
}

void RequestTrace::routed(const RouteOutcome& out, const std::string& tenant) {
  if (!propagate_ && !logging_)
    return;
  routed_ = true;
  route_end_ = core::SteadyClock::now();
  route_us_ = out.route_us;
  entry_.routing_ms = out.route_us / 1000;
  entry_.decision = out.decision;
  entry_.model = out.model ? out.model->name : std::string();
  entry_.reasoning = out.reasoning;
  entry_.cache = out.cache;
  entry_.stream = out.stream;
  entry_.tenant = tenant;
  requested_model_ = out.requested_model;
  confidence_ = out.confidence;
  pii_ = out.pii;
  session_ = out.session;
  matched_ = core::join(out.matched_signals, ",");
  signals_ = out.traced_signals;
  if (out.action == RouteAction::Reply) {
    entry_.status = out.reply_status;
    if (!out.blocked && out.cache != "hit")
      entry_.error = out.error_type;
    if (out.blocked)
      entry_.error = "blocked";
  }
}

void RequestTrace::refused(int status, std::string_view error_type) {
  entry_.status = status;
  entry_.error = error_type;
}

std::string RequestTrace::upstream_attempt(const config::BackendConfig& backend,
                                           std::string_view model, std::string_view upstream_model,
                                           std::string_view path, bool fallback) {
  if (!propagate_ && !logging_)
    return {};
  const auto now = core::SteadyClock::now();
  if (attempt_open_)
    end_attempt(now);
  if (attempts_ == 0)
    first_attempt_start_ = now;
  else
    entry_.retries = attempts_;
  ++attempts_;
  attempt_start_ = now;
  attempt_open_ = true;
  entry_.backend = backend.name;
  if (fallback)
    entry_.fallback = std::string(model);
  trace::Span& s = attempt_;
  s = trace::Span{};
  s.span_id = trace::new_span_id();
  if (!sampled_)
    return propagate_ ? trace::format_traceparent(trace_id_, s.span_id, flags_) : std::string();
  s.trace_id = trace_id_;
  s.parent_id = server_span_;
  s.has_parent = true;
  s.kind = trace::SpanKind::Client;
  const std::string_view op = path.ends_with("/completions") && !path.ends_with("/chat/completions")
                                  ? "text_completion"
                                  : "chat";
  s.name = std::string(op) + " " + std::string(upstream_model);
  s.set("gen_ai.operation.name", op);
  s.set("gen_ai.request.model", upstream_model);
  s.set("http.request.method", "POST");
  s.set("server.address", backend.host);
  s.set("server.port", int64_t(backend.port));
  s.set("url.path", path);
  s.set("semrouter.backend", backend.name);
  s.set("semrouter.model", model);
  s.set("semrouter.attempt", int64_t(attempts_));
  s.set("semrouter.fallback", fallback);
  return trace::format_traceparent(trace_id_, s.span_id, flags_);
}

void RequestTrace::end_attempt(core::TimePoint end) {
  attempt_open_ = false;
  entry_.upstream_ms = ms_between(first_attempt_start_, end);
  if (!sampled_)
    return;
  attempt_.start_unix_ns = unix_ns(attempt_start_);
  attempt_.end_unix_ns = unix_ns(end);
  spans_.push_back(std::move(attempt_));
  attempt_ = trace::Span{};
}

void RequestTrace::upstream_failed(std::string_view kind) {
  if (!attempt_open_)
    return;
  if (sampled_) {
    attempt_.set("error.type", kind);
    attempt_.status = trace::SpanStatus::Error;
    attempt_.status_message = std::string(kind);
  }
  end_attempt(core::SteadyClock::now());
}

void RequestTrace::upstream_status(int status) {
  if (!attempt_open_ || !sampled_)
    return;
  attempt_.set("http.response.status_code", int64_t(status));
  if (status >= 400) {
    attempt_.set("error.type", std::to_string(status));
    attempt_.status = trace::SpanStatus::Error;
  }
}

void RequestTrace::finished(int status, const std::string& model, double ttft_s, bool streamed,
                            uint64_t prompt_tokens, uint64_t completion_tokens,
                            uint64_t reasoning_tokens) {
  if (!propagate_ && !logging_)
    return;
  entry_.status = status;
  entry_.stream = entry_.stream || streamed;
  if (model != entry_.model && model != "-")
    entry_.fallback = model;
  if (ttft_s >= 0)
    entry_.ttft_ms = ttft_s * 1000;
  if (prompt_tokens + completion_tokens > 0) {
    entry_.prompt_tokens = int64_t(prompt_tokens);
    entry_.completion_tokens = int64_t(completion_tokens);
    entry_.reasoning_tokens = int64_t(reasoning_tokens);
  }
  if (status == kClientClosedRequest)
    entry_.error = "client_closed";
  if (attempt_open_ && sampled_) {
    if (ttft_s >= 0)
      attempt_.set("semrouter.ttft_ms", ttft_s * 1000);
    if (prompt_tokens + completion_tokens > 0) {
      attempt_.set("gen_ai.usage.input_tokens", prompt_tokens);
      attempt_.set("gen_ai.usage.output_tokens", completion_tokens);
      if (reasoning_tokens > 0)
        attempt_.set("semrouter.usage.reasoning_tokens", reasoning_tokens);
    }
    attempt_.set("gen_ai.response.model", model);
  }
}

void RequestTrace::emit() {
  const auto end = core::SteadyClock::now();
  if (attempt_open_)
    end_attempt(end);
  entry_.latency_ms = ms_between(start_, end);
  entry_.unix_ms = unix_now_ms_wall();
  if (logging_)
    rt_.access_log->write(entry_);
  if (!sampled_)
    return;

  trace::Span server;
  server.trace_id = trace_id_;
  server.span_id = server_span_;
  server.parent_id = parent_;
  server.has_parent = has_parent_;
  server.trace_state = tracestate_;
  server.kind = trace::SpanKind::Server;
  server.name = entry_.method + " " + entry_.path;
  server.start_unix_ns = start_unix_ns_;
  server.end_unix_ns = unix_ns(end);
  server.set("http.request.method", entry_.method);
  server.set("url.path", entry_.path);
  server.set("http.response.status_code", int64_t(entry_.status));
  if (!host_.empty())
    server.set("server.address", host_);
  if (!entry_.client.empty())
    server.set("client.address", entry_.client);
  server.set("semrouter.request_id", entry_.request_id);
  server.set("semrouter.api", entry_.api);
  server.set("semrouter.transport", transport_);
  if (!requested_model_.empty())
    server.set("gen_ai.request.model", requested_model_);
  if (!entry_.model.empty())
    server.set("semrouter.model", entry_.model);
  if (!entry_.decision.empty())
    server.set("semrouter.decision", entry_.decision);
  if (!entry_.tenant.empty())
    server.set("semrouter.tenant", entry_.tenant);
  if (!entry_.key.empty())
    server.set("semrouter.key", entry_.key);
  if (!entry_.cache.empty())
    server.set("semrouter.cache", entry_.cache);
  if (!entry_.fallback.empty())
    server.set("semrouter.fallback", entry_.fallback);
  server.set("semrouter.retries", int64_t(entry_.retries));
  server.set("semrouter.stream", entry_.stream);
  if (entry_.prompt_tokens >= 0) {
    server.set("gen_ai.usage.input_tokens", entry_.prompt_tokens);
    server.set("gen_ai.usage.output_tokens", entry_.completion_tokens);
  }
  if (entry_.ttft_ms >= 0)
    server.set("semrouter.ttft_ms", entry_.ttft_ms);
  if (!entry_.error.empty())
    server.set("error.type", entry_.error);
  else if (entry_.status >= 500)
    server.set("error.type", std::to_string(entry_.status));
  // A server span is an error only for 5xx: a 4xx is the client's (the HTTP conventions).
  if (entry_.status >= 500) {
    server.status = trace::SpanStatus::Error;
    server.status_message = entry_.error;
  }

  std::vector<trace::Span> out;
  out.reserve(spans_.size() + 3 + (signals_ ? signals_->all().size() : 0));
  if (routed_) {
    const auto route_start =
        route_end_ - std::chrono::nanoseconds(static_cast<int64_t>(route_us_ * 1000));
    trace::Span route;
    route.trace_id = trace_id_;
    route.span_id = trace::new_span_id();
    route.parent_id = server_span_;
    route.has_parent = true;
    route.name = "semrouter.route";
    route.start_unix_ns = unix_ns(route_start);
    route.end_unix_ns = unix_ns(route_end_);
    route.set("semrouter.route_us", route_us_);
    if (!pii_.empty())
      route.set("semrouter.pii", pii_);
    if (!session_.empty())
      route.set("semrouter.session", session_);
    if (signals_) {
      // Signals run concurrently or share one pass: each span starts with routing and lasts as
      // long as its signal took.
      for (const auto& [key, r] : signals_->all()) {
        trace::Span s;
        s.trace_id = trace_id_;
        s.span_id = trace::new_span_id();
        s.parent_id = route.span_id;
        s.has_parent = true;
        s.name = "semrouter.signal " + key;
        s.start_unix_ns = route.start_unix_ns;
        s.end_unix_ns = route.start_unix_ns + static_cast<uint64_t>(r.latency_us * 1000);
        const size_t colon = key.find(':');
        s.set("semrouter.signal.type", std::string_view(key).substr(0, colon));
        s.set("semrouter.signal.name", colon == std::string::npos
                                           ? std::string_view()
                                           : std::string_view(key).substr(colon + 1));
        s.set("semrouter.signal.matched", r.matched);
        s.set("semrouter.signal.value", r.score);
        s.set("semrouter.signal.confidence", r.confidence);
        s.set("semrouter.signal.latency_us", r.latency_us);
        out.push_back(std::move(s));
      }
    }
    trace::Span decision;
    decision.trace_id = trace_id_;
    decision.span_id = trace::new_span_id();
    decision.parent_id = route.span_id;
    decision.has_parent = true;
    decision.name = "semrouter.decision";
    decision.start_unix_ns = decision.end_unix_ns = route.end_unix_ns;
    decision.set("semrouter.decision", entry_.decision);
    if (!entry_.model.empty())
      decision.set("gen_ai.request.model", entry_.model);
    decision.set("semrouter.reasoning", entry_.reasoning);
    decision.set("semrouter.confidence", confidence_);
    decision.set("semrouter.rule_path", matched_); // the signals that made the rules true
    out.push_back(std::move(decision));
    out.push_back(std::move(route));
  }
  for (auto& s : spans_)
    out.push_back(std::move(s));
  out.push_back(std::move(server));
  rt_.tracer->submit(std::move(out));
}

} // namespace semrouter::pipeline
