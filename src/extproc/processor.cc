#include "extproc/processor.h"

#include "pipeline/access.h"
#include "pipeline/dialects.h"

#include <charconv>

#include <spdlog/spdlog.h>

#include "core/strings.h"
#include "openai/errors.h"

namespace semrouter::extproc {

namespace {

using envoy::config::core::v3::HeaderValueOption;
using envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
using pb::HeaderMutation;

// Largest non-streamed response body kept for usage accounting (as the gateway's relay limit).
constexpr size_t kMaxResponseBodyBytes = 256u << 20;

// Envoy hands values over in `raw_value` (newer) or `value` (older).
std::string_view value_of(const envoy::config::core::v3::HeaderValue& h) {
  return h.value().empty() ? std::string_view(h.raw_value()) : std::string_view(h.value());
}

void set_header(HeaderMutation* m, std::string_view name, std::string_view value) {
  HeaderValueOption* o = m->add_set_headers();
  o->set_append_action(HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
  o->mutable_header()->set_key(std::string(name));
  std::string v;
  v.reserve(value.size());
  for (char c : value) { // a config string must never split a header
    if (c != '\r' && c != '\n')
      v.push_back(c);
  }
  o->mutable_header()->set_raw_value(std::move(v));
}

// mode_override replaces Envoy's whole processing mode for the rest of the stream, so every
// field is spelled out.
void pass_through_mode(ProcessingMode* m) {
  m->set_request_header_mode(ProcessingMode::SKIP);
  m->set_response_header_mode(ProcessingMode::SKIP);
  m->set_request_body_mode(ProcessingMode::NONE);
  m->set_response_body_mode(ProcessingMode::NONE);
  m->set_request_trailer_mode(ProcessingMode::SKIP);
  m->set_response_trailer_mode(ProcessingMode::SKIP);
}

void streamed_response_mode(ProcessingMode* m) {
  m->set_request_header_mode(ProcessingMode::SEND);
  m->set_response_header_mode(ProcessingMode::SEND);
  m->set_request_body_mode(ProcessingMode::BUFFERED);
  m->set_response_body_mode(ProcessingMode::STREAMED);
  m->set_request_trailer_mode(ProcessingMode::SKIP);
  m->set_response_trailer_mode(ProcessingMode::SKIP);
}

} // namespace

ExtProcMetrics::ExtProcMetrics(metrics::Registry& r)
    : requests(r.counter("semrouter_extproc_requests_total",
                         "ext_proc requests by what the router did (routed, replied, passthrough, "
                         "bypassed, observed).",
                         {"action"})),
      routed(requests.with({"routed"})), replied(requests.with({"replied"})),
      passthrough(requests.with({"passthrough"})), bypassed(requests.with({"bypassed"})),
      observed(requests.with({"observed"})),
      protocol_errors(r.counter("semrouter_extproc_protocol_errors_total",
                                "ext_proc streams ended for a protocol violation by the client.",
                                {})
                          .with({})),
      streams(r.gauge("semrouter_extproc_streams", "ext_proc streams open now.").with({})) {}

StreamProcessor::StreamProcessor(pipeline::Runtime& runtime, ExtProcMetrics& metrics,
                                 core::Random& random)
    : rt_(runtime), m_(metrics), random_(random) {
  m_.streams.add(1);
}

StreamProcessor::~StreamProcessor() {
  on_close(true);
  m_.streams.add(-1);
}

bool StreamProcessor::observing() const {
  return observe_;
}

bool StreamProcessor::filtering_stream() const {
  return hide_usage_ && event_stream_ && !observing();
}

Step StreamProcessor::unchanged(const void* /*answer*/) {
  // The answer message was just created empty (CONTINUE, no mutation). Observing, Envoy waits
  // for nothing: it is left unsent (`out` is cleared before the next message).
  return observing() ? Step::Read : Step::Respond;
}

std::optional<std::string_view> StreamProcessor::header(std::string_view name) const {
  for (const auto& [k, v] : headers_) {
    if (core::iequals(k, name))
      return std::string_view(v);
  }
  return std::nullopt;
}

Step StreamProcessor::fail(std::string message) {
  m_.protocol_errors.inc();
  error_ = std::move(message);
  spdlog::warn("ext_proc: {}", error_);
  return Step::Fail;
}

Step StreamProcessor::reply(pb::ProcessingResponse& out, int status, std::string_view body,
                            std::string_view content_type,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
  phase_ = Phase::Answered;
  if (observing())
    return Step::Read;
  pb::ImmediateResponse* ir = out.mutable_immediate_response();
  ir->mutable_status()->set_code(static_cast<envoy::type::v3::StatusCode>(status));
  ir->set_body(std::string(body));
  HeaderMutation* hm = ir->mutable_headers();
  set_header(hm, "content-type", content_type);
  if (core::starts_with(content_type, "text/event-stream"))
    set_header(hm, "cache-control", "no-cache");
  for (const auto& [k, v] : headers)
    set_header(hm, k, v);
  return Step::Respond;
}

Step StreamProcessor::reply_error(pb::ProcessingResponse& out, const openai::ApiError& e) {
  rt_.metrics.client_errors.with({e.code.empty() ? e.type : e.code}).inc();
  rt_.metrics.requests.with({"-", "-", std::to_string(e.status)}).inc();
  m_.replied.inc();
  return reply(out, e.status, openai::error_body(e), "application/json");
}

Step StreamProcessor::on_message(const pb::ProcessingRequest& in, pb::ProcessingResponse& out) {
  observe_ = observe_ || in.observability_mode();
  switch (in.request_case()) {
  case pb::ProcessingRequest::kRequestHeaders:
    return request_headers(in.request_headers(), out);
  case pb::ProcessingRequest::kRequestBody:
    return request_body(in.request_body(), out);
  case pb::ProcessingRequest::kResponseHeaders:
    return response_headers(in.response_headers(), out);
  case pb::ProcessingRequest::kResponseBody:
    return response_body(in.response_body(), out);
  case pb::ProcessingRequest::kRequestTrailers:
    return unchanged(out.mutable_request_trailers());
  case pb::ProcessingRequest::kResponseTrailers:
    return unchanged(out.mutable_response_trailers());
  case pb::ProcessingRequest::REQUEST_NOT_SET:
    break;
  }
  return fail("a ProcessingRequest with none of request_headers, request_body, response_headers, "
              "response_body or trailers set");
}

Step StreamProcessor::request_headers(const pb::HttpHeaders& h, pb::ProcessingResponse& out) {
  if (phase_ != Phase::RequestHeaders)
    return fail("request_headers arrived twice on one stream (one stream carries one request)");
  start_ = core::SteadyClock::now();
  snap_ = rt_.store.get();
  const config::ExtProcConfig& cfg = snap_->config->extproc;
  observe_ = observe_ || cfg.observability_mode;
  headers_.reserve(h.headers().headers_size());
  for (const auto& hv : h.headers().headers())
    headers_.emplace_back(core::ascii_lower(hv.key()), std::string(value_of(hv)));
  const std::string_view method = header(":method").value_or("");
  const std::string_view target = header(":path").value_or("");
  const size_t q = target.find('?');
  path_ = std::string(target.substr(0, q));
  query_ = q == std::string_view::npos ? std::string() : std::string(target.substr(q));

  if (!cfg.bypass_header.empty()) {
    if (auto v = header(cfg.bypass_header); v && *v != "0" && !core::iequals(*v, "false")) {
      m_.bypassed.inc();
      phase_ = Phase::PassThrough;
      if (observing())
        return Step::Read;
      out.mutable_request_headers();
      pass_through_mode(out.mutable_mode_override());
      return Step::Respond;
    }
  }

  if (path_ == "/v1/models") {
    if (method != "GET")
      return reply_error(out, openai::method_not_allowed(method, path_, "GET"));
    m_.replied.inc();
    return reply(out, 200, snap_->models_json, "application/json");
  }
  if (path_ == "/v1/chat/completions") {
    kind_ = openai::RequestKind::ChatCompletions;
  } else if (path_ == "/v1/completions") {
    kind_ = openai::RequestKind::Completions;
  } else {
    // Not the router's: Envoy routes it as it would without us. Headers naming a route of ours
    // are the router's to set, so a client cannot pick a model cluster by sending them.
    m_.passthrough.inc();
    phase_ = Phase::PassThrough;
    if (observing())
      return Step::Read;
    HeaderMutation* hm =
        out.mutable_request_headers()->mutable_response()->mutable_header_mutation();
    hm->add_remove_headers(cfg.model_header);
    hm->add_remove_headers(cfg.backend_header);
    out.mutable_request_headers()->mutable_response()->set_clear_route_cache(true);
    pass_through_mode(out.mutable_mode_override());
    return Step::Respond;
  }
  if (method != "POST")
    return reply_error(out, openai::method_not_allowed(method, path_, "POST"));
  if (h.end_of_stream())
    return reply_error(
        out, openai::invalid_request("the request has no body: send a JSON completion request"));
  if (auto cl = header("content-length")) {
    uint64_t n = 0;
    auto [p, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
    if (ec == std::errc() && p == cl->data() + cl->size() && n > cfg.max_body_bytes)
      return reply_error(out, openai::body_too_large(cfg.max_body_bytes));
  }
  phase_ = Phase::RequestBody;
  if (observing())
    return Step::Read;
  out.mutable_request_headers();
  return Step::Respond;
}

Step StreamProcessor::request_body(const pb::HttpBody& b, pb::ProcessingResponse& out) {
  switch (phase_) {
  case Phase::RequestBody:
    break;
  case Phase::PassThrough:
    return unchanged(out.mutable_request_body());
  case Phase::Answered: // Envoy is closing the stream; nothing left to say
    return Step::Read;
  case Phase::RequestHeaders:
    return fail("request_body arrived before request_headers");
  default:
    return fail("request_body arrived after the request was routed");
  }
  const uint64_t limit = snap_->config->extproc.max_body_bytes;
  if (body_.size() + b.body().size() > limit) {
    body_.clear();
    return reply_error(out, openai::body_too_large(limit));
  }
  body_.append(b.body());
  if (!b.end_of_stream()) {
    if (observing())
      return Step::Read; // observability mode streams the body in pieces: collect them
    // BUFFERED hands the body over whole; a piece means STREAMED or BUFFERED_PARTIAL, where the
    // router could not rewrite what Envoy already sent on.
    return reply_error(
        out, openai::internal_error(
                 "ext_proc: the request body arrived in pieces; semrouter needs the ext_proc "
                 "filter's processing_mode.request_body_mode: BUFFERED, with a buffer limit "
                 "above the largest request body"));
  }
  return route(out);
}

Step StreamProcessor::route(pb::ProcessingResponse& out) {
  pipeline::HeaderLookup lookup = [this](std::string_view name) { return header(name); };
  if (rt_.tracer || rt_.access_log) {
    // The client as Envoy saw it: the first x-forwarded-for entry, when Envoy sets one.
    std::string_view client = header("x-forwarded-for").value_or("");
    client = core::trim(client.substr(0, client.find(',')));
    trace_.emplace(rt_, lookup,
                   pipeline::RequestTrace::Origin{
                       "extproc", header(":method").value_or("POST"), path_,
                       kind_ == openai::RequestKind::Completions ? "completions" : "chat", client,
                       header(":authority").value_or("")},
                   start_);
  }
  pipeline::RequestTrace* trace = trace_ ? &*trace_ : nullptr;
  // Client API keys, as on the gateway (not in observability mode: Envoy forwards anyway).
  auth::Guard& guard = rt_.auth_for(*snap_);
  pipeline::Access access;
  auto refuse = [&]() {
    if (trace)
      trace->refused(access.error.status, access.reason);
    rt_.metrics.client_errors.with({access.reason}).inc();
    rt_.metrics.requests.with({"-", "-", std::to_string(access.error.status)}).inc();
    m_.replied.inc();
    return reply(out, access.error.status, openai::error_body(access.error), "application/json",
                 access.headers);
  };
  if (!observing()) {
    access = pipeline::check_caller(guard, lookup, body_.size());
    if (!access.ok)
      return refuse();
  }
  out_ = rt_.route(*snap_, kind_, lookup, body_, random_, /*may_reply=*/!observing(),
                   access.caller_for_routing(), trace);
  if (!pipeline::check_route(guard, access, out_))
    return refuse();
  pipeline::attach_key(access, out_);
  if (out_.action == pipeline::RouteAction::Reply) {
    // Counted by Runtime::route (requests_total, client errors).
    m_.replied.inc();
    return reply(out, out_.reply_status, out_.reply_body, out_.reply_content_type,
                 out_.response_headers);
  }
  const config::Config& config = *snap_->config;
  auto order = pipeline::order_backends(config, *out_.model, random_);
  backend_ = order.empty() ? nullptr : order.front();
  exchange_.emplace(rt_, out_, start_, trace);
  // The upstream call's span: Envoy makes the call, the router names its parent.
  std::string traceparent;
  if (trace && backend_)
    traceparent = trace->upstream_attempt(*backend_, out_.model->name, out_.model->upstream_model,
                                          pipeline::upstream_path(*backend_, kind_), false);
  phase_ = Phase::Upstream;
  if (observing()) {
    m_.observed.inc();
    return Step::Read;
  }
  m_.routed.inc();
  const config::ExtProcConfig& cfg = config.extproc;
  pb::CommonResponse* common = out.mutable_request_body()->mutable_response();
  // Envoy picks the cluster again from the headers set here.
  common->set_clear_route_cache(true);
  HeaderMutation* hm = common->mutable_header_mutation();
  set_header(hm, cfg.model_header, out_.model->name);
  if (backend_) {
    set_header(hm, cfg.backend_header, backend_->name);
    // The call the gateway would make: the provider's path (base path, Azure deployments), its
    // auth header and its request fields. Envoy carries the client's own headers; a backend key
    // replaces them.
    pipeline::ClientRequest creq;
    creq.api = kind_ == openai::RequestKind::Completions ? pipeline::Api::Completions
                                                         : pipeline::Api::Chat;
    creq.original = body_;
    pipeline::UpstreamCall call;
    openai::ApiError e;
    if (pipeline::build_upstream_call(*backend_, *out_.model, creq, out_, query_,
                                      pipeline::ClientCredentials{"", "", true}, call, e) &&
        call.wire == creq.api) {
      if (call.path != path_ + query_)
        set_header(hm, ":path", call.path);
      for (const auto& [k, v] : call.headers)
        set_header(hm, core::ascii_lower(k), v);
      // A client key the router checked is the router's: it never reaches the backend.
      if (guard.enabled())
        for (const char* name : {"authorization", "x-api-key", "api-key"}) {
          bool set = false;
          for (const auto& [k, v] : call.headers)
            set = set || core::iequals(k, name);
          if (!set)
            hm->add_remove_headers(name);
        }
      // A chat stream's usage is asked for on the client's behalf, and hidden from it again in
      // response_body (STREAMED mode lets each piece be replaced).
      hide_usage_ = pipeline::request_stream_usage(creq.api, *backend_, call);
      out_.body = std::move(call.body);
    } else {
      // An Anthropic backend answers in its own shape, which only the gateway translates back.
      spdlog::warn("ext_proc: backend {} ({}) needs the gateway's API translation; the request "
                   "goes to it unchanged",
                   backend_->name, config::provider_name(backend_->provider));
    }
  }
  if (trace && trace->propagating() && !traceparent.empty()) {
    set_header(hm, "traceparent", traceparent);
    if (trace->tracestate().empty() && header("tracestate"))
      hm->add_remove_headers("tracestate"); // it belonged to an invalid traceparent
  }
  for (const auto& name : out_.upstream_remove_headers)
    hm->add_remove_headers(name);
  for (const auto& [k, v] : out_.upstream_set_headers)
    set_header(hm, k, v);
  if (out_.body != body_) {
    set_header(hm, "content-length", std::to_string(out_.body.size()));
    common->mutable_body_mutation()->set_body(std::move(out_.body));
  }
  body_.clear();
  body_.shrink_to_fit();
  return Step::Respond;
}

Step StreamProcessor::response_headers(const pb::HttpHeaders& h, pb::ProcessingResponse& out) {
  switch (phase_) {
  case Phase::Upstream:
    break;
  case Phase::PassThrough:
  case Phase::Answered:
    return unchanged(out.mutable_response_headers());
  default:
    return fail("response_headers arrived before the request was routed");
  }
  std::string content_type;
  for (const auto& hv : h.headers().headers()) {
    if (hv.key() == ":status") {
      std::string_view v = value_of(hv);
      int s = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
      if (ec == std::errc() && p == v.data() + v.size())
        status_ = s;
    } else if (core::iequals(hv.key(), "content-type")) {
      content_type = core::ascii_lower(value_of(hv));
    }
  }
  if (status_ == 0)
    return fail("response_headers without a valid :status");
  event_stream_ = core::starts_with(content_type, "text/event-stream");
  if (trace_)
    trace_->upstream_status(status_);
  exchange_->response_head(status_, event_stream_);
  if (status_ >= 500)
    exchange_->upstream_error(backend_ ? backend_->name : "-", "status_5xx");
  phase_ = Phase::ResponseBody;
  if (h.end_of_stream()) {
    exchange_->finish(status_);
    phase_ = Phase::Done;
  }
  if (observing())
    return Step::Read;
  pb::CommonResponse* common = out.mutable_response_headers()->mutable_response();
  HeaderMutation* hm = common->mutable_header_mutation();
  // An upstream's own x-semrouter-* headers would contradict ours: ours win.
  for (const auto& hv : h.headers().headers()) {
    if (core::starts_with(core::ascii_lower(hv.key()), "x-semrouter-"))
      hm->add_remove_headers(hv.key());
  }
  for (const auto& [k, v] : out_.response_headers)
    set_header(hm, k, v);
  if (event_stream_ && phase_ == Phase::ResponseBody) {
    streamed_response_mode(out.mutable_mode_override());
    if (hide_usage_) // the client's stream is shorter than the upstream's
      hm->add_remove_headers("content-length");
  }
  return Step::Respond;
}

Step StreamProcessor::response_body(const pb::HttpBody& b, pb::ProcessingResponse& out) {
  switch (phase_) {
  case Phase::ResponseBody:
    break;
  case Phase::PassThrough:
  case Phase::Answered:
    return unchanged(out.mutable_response_body());
  default:
    return fail("response_body arrived before response_headers");
  }
  saw_response_body_ = true;
  // A stream the client did not ask usage for: the filter that hides it also hands the exchange
  // the events it reads (one pass over the bytes, as in the gateway).
  const bool filter = filtering_stream();
  std::string to_client;
  if (filter) {
    usage_filter_.feed(b.body(), to_client, &*exchange_);
    if (b.end_of_stream())
      usage_filter_.finish(to_client, &*exchange_);
  } else if (event_stream_) {
    exchange_->stream_bytes(b.body());
  } else if (response_body_.size() < kMaxResponseBodyBytes) {
    response_body_.append(b.body());
  }
  if (b.end_of_stream()) {
    if (!event_stream_)
      exchange_->body(response_body_);
    exchange_->finish(status_);
    phase_ = Phase::Done;
    response_body_.clear();
  }
  if (observing())
    return Step::Read;
  pb::BodyResponse* answer = out.mutable_response_body();
  if (filter && to_client != b.body()) // the piece as the client gets it (possibly nothing, yet)
    answer->mutable_response()->mutable_body_mutation()->set_body(std::move(to_client));
  return Step::Respond;
}

void StreamProcessor::on_close(bool cancelled) {
  if (closed_)
    return;
  closed_ = true;
  if (!exchange_ || exchange_->finished())
    return;
  if (filtering_stream()) {
    // An event whose blank line was a lone CR is complete: the tap counts it (see the gateway).
    std::string dropped;
    usage_filter_.finish(dropped, &*exchange_);
  }
  // A response body that started and never ended was abandoned (the client went away). A stream
  // closed cleanly after the response head, with no body seen, is a complete answer whose body
  // the filter does not send us (response_body_mode NONE). Anything that broke off is abandoned.
  const bool complete = !cancelled && status_ != 0 && !saw_response_body_;
  exchange_->finish(complete ? status_ : pipeline::kClientClosedRequest);
}

} // namespace semrouter::extproc
