// One ext_proc stream, as Envoy drives it: the state machine that turns Envoy's
// ProcessingRequest messages into ProcessingResponse messages around the shared pipeline. It
// knows the protocol's messages (protobuf) but not gRPC: the server feeds it one message at a
// time and writes what it answers, so it can be driven directly in tests.
//
// One stream is one HTTP request:
//   request_headers  -> remember path, method and headers; CONTINUE (or answer / pass through)
//   request_body     -> (BUFFERED, whole) route it: body + header mutations, or ImmediateResponse
//   response_headers -> status, content type; add the x-semrouter-* headers; SSE switches the
//                       response body to STREAMED (mode_override)
//   response_body    -> usage and time to first token; the request is counted when it ends;
//                       the usage chunk the router asked for on the client's behalf is cut out
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "envoy/service/ext_proc/v3/external_processor.pb.h"
#include "metrics/metrics.h"
#include "pipeline/exchange.h"

namespace semrouter::extproc {

namespace pb = envoy::service::ext_proc::v3;

// ext_proc's own counters, shared by every stream (registered once per process).
struct ExtProcMetrics {
  explicit ExtProcMetrics(metrics::Registry& r);
  metrics::Family<metrics::Counter>& requests;
  metrics::Counter& routed;      // request bodies routed and forwarded with mutations
  metrics::Counter& replied;     // answered by the router (ImmediateResponse)
  metrics::Counter& passthrough; // paths the router does not own
  metrics::Counter& bypassed;    // the bypass header
  metrics::Counter& observed;    // observability mode: routed in the shadow, nothing sent
  metrics::Counter& protocol_errors;
  metrics::Gauge& streams; // streams open now
};

// What the processor tells the transport to do after a message.
enum class Step {
  // Write the filled-in response, then read the next message.
  Respond,
  // Write nothing (observability mode, or a body piece being collected); read the next message.
  Read,
  // End the stream with gRPC status INVALID_ARGUMENT and error() as its message: Envoy broke
  // the protocol (an empty message, a phase out of order).
  Fail,
};

class StreamProcessor {
public:
  StreamProcessor(pipeline::Runtime& runtime, ExtProcMetrics& metrics, core::Random& random);
  ~StreamProcessor();
  StreamProcessor(const StreamProcessor&) = delete;
  StreamProcessor& operator=(const StreamProcessor&) = delete;

  // Handles one message; fills `out` when it returns Respond (`out` must be empty on entry).
  Step on_message(const pb::ProcessingRequest& in, pb::ProcessingResponse& out);
  // The stream ended. `cancelled`: it broke off (Envoy reset it, the client went away) rather
  // than closing after the last phase. Finishes the request's accounting. Idempotent.
  void on_close(bool cancelled);

  const std::string& error() const { return error_; }

private:
  enum class Phase {
    RequestHeaders, // waiting for the request headers
    RequestBody,    // an owned request: waiting for (the rest of) its body
    Upstream,       // forwarded: waiting for the response headers
    ResponseBody,   // waiting for (the rest of) the response body
    PassThrough,    // not ours (unowned path, bypass): every later message is CONTINUE
    Answered,       // the router answered (ImmediateResponse): the stream should end
    Done,           // the response is complete
  };

  Step request_headers(const pb::HttpHeaders& h, pb::ProcessingResponse& out);
  Step request_body(const pb::HttpBody& b, pb::ProcessingResponse& out);
  Step route(pb::ProcessingResponse& out);
  Step response_headers(const pb::HttpHeaders& h, pb::ProcessingResponse& out);
  Step response_body(const pb::HttpBody& b, pb::ProcessingResponse& out);
  Step fail(std::string message);
  // Answers the client (ImmediateResponse) with an OpenAI-shaped body.
  Step reply(pb::ProcessingResponse& out, int status, std::string_view body,
             std::string_view content_type,
             const std::vector<std::pair<std::string, std::string>>& headers = {});
  Step reply_error(pb::ProcessingResponse& out, const openai::ApiError& e);
  std::optional<std::string_view> header(std::string_view name) const;
  bool observing() const;
  // A stream whose usage the client did not ask for: the usage filter rewrites its pieces and
  // taps them for the exchange.
  bool filtering_stream() const;
  // Envoy's message passes unchanged: answer with the empty (CONTINUE) `answer` just created in
  // the response, or say nothing when observing.
  Step unchanged(const void* answer);

  pipeline::Runtime& rt_;
  ExtProcMetrics& m_;
  core::Random& random_;
  Phase phase_ = Phase::RequestHeaders;
  std::shared_ptr<const pipeline::Snapshot> snap_; // the request finishes on this snapshot
  core::TimePoint start_;
  std::vector<std::pair<std::string, std::string>> headers_; // request headers, names lower case
  std::string path_;                                         // :path without the query
  std::string query_;                                        // "?..." or ""
  openai::RequestKind kind_ = openai::RequestKind::ChatCompletions;
  std::string body_;     // the request body, collected
  bool observe_ = false; // observability mode (config, or the request says so)
  pipeline::RouteOutcome out_;
  // Tracing and the access log for a routed request; declared before exchange_, which reports
  // to it, so it is destroyed (and emits) after it.
  std::optional<pipeline::RequestTrace> trace_;
  std::optional<pipeline::Exchange> exchange_;
  const config::BackendConfig* backend_ = nullptr;
  int status_ = 0;            // the upstream's response status
  bool event_stream_ = false; // the response is SSE
  bool saw_response_body_ = false;
  std::string response_body_; // a buffered response body, collected
  // The router asked for the stream's usage; the client did not (pipeline::request_stream_usage).
  bool hide_usage_ = false;
  openai::StreamUsageFilter usage_filter_;
  bool closed_ = false;
  std::string error_;
};

} // namespace semrouter::extproc
