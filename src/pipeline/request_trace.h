// One request as tracing and the access log see it, for both front doors. The transport creates
// it when a request arrives and feeds it what happens (routing feeds it through Runtime::route,
// the response phase through Exchange); when it is destroyed, after the answer went out, it hands
// the request's spans to the exporter and its line to the access log. Both are queued for
// background threads: nothing here does I/O.
//
// Spans (when the request is sampled): the request (SERVER, the client's traceparent as parent),
// routing (INTERNAL) with one child per computed signal and one for the decision, and one CLIENT
// span per upstream attempt, whose id is the parent in the traceparent the upstream receives.
//
// Not thread-safe: one transport thread (or the routing thread, while the transport waits) at a
// time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "pipeline/request_signals.h"
#include "signals/signal.h"
#include "trace/access_log.h"
#include "trace/context.h"
#include "trace/span.h"

namespace semrouter::pipeline {

class Runtime;
struct RouteOutcome;

class RequestTrace {
public:
  // What the transport knows when the request arrives.
  struct Origin {
    std::string_view transport = "gateway"; // gateway or extproc
    std::string_view method = "POST";
    std::string_view path;   // without the query
    std::string_view api;    // chat, completions, messages, responses, embeddings
    std::string_view client; // the client's address ("" unknown)
    std::string_view host;   // the Host (or :authority) the client addressed
  };
  RequestTrace(Runtime& runtime, const HeaderLookup& headers, const Origin& origin,
               core::TimePoint start);
  ~RequestTrace();
  RequestTrace(const RequestTrace&) = delete;
  RequestTrace& operator=(const RequestTrace&) = delete;

  // Tracing is on: the transport sends upstream_traceparent() (and the client's tracestate)
  // instead of the client's own headers. Off: it forwards the client's headers as they are.
  bool propagating() const { return propagate_; }
  // Spans are recorded for this request (parent-based: the client's sampled flag, else the
  // ratio).
  bool sampled() const { return sampled_; }
  const std::string& tracestate() const { return tracestate_; }
  const trace::TraceId& trace_id() const { return trace_id_; }
  const trace::SpanId& server_span_id() const { return server_span_; }

  // Routing is done (called by Runtime::route).
  void routed(const RouteOutcome& out, const std::string& tenant);
  // The request was refused (authentication, rate limits, admission, a bad body, ...).
  void refused(int status, std::string_view error_type);
  // A new upstream attempt: its CLIENT span starts now. Returns the `traceparent` for the
  // upstream request (its parent is this attempt's span).
  std::string upstream_attempt(const config::BackendConfig& backend, std::string_view model,
                               std::string_view upstream_model, std::string_view path,
                               bool fallback);
  // The current attempt failed before an answer was relayed (kind: connect, timeout, status_503,
  // ...); its span ends now.
  void upstream_failed(std::string_view kind);
  // The current attempt's answer head arrived.
  void upstream_status(int status);
  // The answer is complete (called by Exchange::finish): the status the client saw, the model
  // that answered, time to first token (seconds; < 0: none), usage.
  void finished(int status, const std::string& model, double ttft_s, bool streamed,
                uint64_t prompt_tokens, uint64_t completion_tokens, uint64_t reasoning_tokens);
  // The API key that made the request.
  void set_key(std::string_view name) { entry_.key = name; }

private:
  uint64_t unix_ns(core::TimePoint t) const;
  void end_attempt(core::TimePoint end);
  void emit();

  Runtime& rt_;
  bool propagate_ = false;
  bool sampled_ = false;
  bool logging_ = false;
  core::TimePoint start_;
  uint64_t start_unix_ns_ = 0;
  trace::TraceId trace_id_{};
  trace::SpanId parent_{}; // the client's span, when it sent a valid traceparent
  bool has_parent_ = false;
  uint8_t flags_ = 0;
  trace::SpanId server_span_{};
  std::string tracestate_;
  trace::AccessLogEntry entry_;
  std::string host_;
  std::string_view transport_; // a literal: "gateway" or "extproc"
  std::string requested_model_;
  // routing
  bool routed_ = false;
  core::TimePoint route_end_;
  double route_us_ = 0;
  double confidence_ = 0;
  std::string pii_, session_, matched_;
  std::shared_ptr<const signals::SignalResults> signals_;
  // upstream attempts (ended ones are spans already)
  std::vector<trace::Span> spans_;
  trace::Span attempt_;
  bool attempt_open_ = false;
  core::TimePoint attempt_start_;
  core::TimePoint first_attempt_start_;
  uint32_t attempts_ = 0;
};

} // namespace semrouter::pipeline
