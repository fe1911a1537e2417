// `semrouter bench`'s wire side without sockets: the target URL, the configurations to run
// (model x reasoning) with the body fields each sets, the request body, and the collector that
// turns an HTTP response's bytes (JSON or SSE) into what the report needs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/bench_data.h"
#include "config/config.h"
#include "core/status.h"
#include "http/response_parser.h"
#include "openai/answer.h"
#include "openai/sse.h"
#include "routing/reasoning.h"

namespace semrouter::app {

// Where requests go: http[s]://host[:port][/path]. The chat path is the URL's path if it ends in
// /chat/completions, the path + /chat/completions if it ends in /v1, else path +
// /v1/chat/completions.
struct Endpoint {
  bool tls = false;
  std::string host; // without brackets for IPv6
  uint16_t port = 0;
  std::string path; // e.g. /v1/chat/completions
};
core::StatusOr<Endpoint> parse_endpoint(std::string_view url);

enum class ReasoningChoice {
  Unset,  // no reasoning field is sent: the model's (or the router's) default
  On,     // the model's reasoning family turned on
  Off,    // ... turned off
  Router, // a routed model (auto): the router decides
};
std::string_view reasoning_choice_name(ReasoningChoice r); // unset, on, off, router

// One configuration of the benchmark: every record is sent with this model and these fields.
struct BenchConfiguration {
  std::string label; // "auto", "qwen3-8b/on", "qwen3-8b"
  std::string model;
  ReasoningChoice reasoning = ReasoningChoice::Unset;
  std::string family;                        // the reasoning family used ("" when none)
  std::vector<routing::BodyFieldEdit> edits; // the reasoning fields set in the body
};

// The configurations for `models` x `reasoning`: a routed model (an auto name of `config`, or
// auto/MoM without one) runs once with ReasoningChoice::Router; a fixed model runs once per
// reasoning choice, with the fields of its reasoning family: from `config` when the model is in
// it (exactly what the router would set), else `default_family` (a built-in family name).
// Warnings (a model with no family asked for on/off, skipped) go to `warnings`. An unknown
// family is an error naming --reasoning-family.
core::StatusOr<std::vector<BenchConfiguration>>
plan_configurations(const std::vector<std::string>& models,
                    const std::vector<ReasoningChoice>& reasoning, const config::Config* config,
                    const std::string& default_family, std::vector<std::string>& warnings);

struct RequestOptions {
  bool stream = true; // with stream_options.include_usage, so usage comes at the end
  int max_tokens = 0; // 0: not sent
  std::optional<double> temperature;
};

// The chat-completions body for one record in one configuration.
std::string build_request_body(const BenchRecord& record, const BenchConfiguration& cfg,
                               const RequestOptions& options);

// What came back for one request.
struct ResponseOutcome {
  int status = 0;        // 0: no response (connect error, timeout, broken connection)
  std::string error;     // empty on success: else why (a transport error or the error body)
  bool streamed = false; // the answer came as SSE
  double ttft_ms = -1;   // streams: first content (or reasoning) token after sending; -1: none
  openai::Answer answer; // content, reasoning content, usage
  // The router's x-semrouter-* response headers (empty from other endpoints).
  std::string routed_model, decision, reasoning, fallback, cache;
  bool keep_alive = false;
  bool ok() const { return status == 200 && error.empty(); }
};

// Feeds the bytes of one HTTP response, in any pieces, and fills a ResponseOutcome. No sockets:
// the client passes what it reads; tests pass canned bytes.
class ResponseCollector {
public:
  enum class State {
    More,   // read more and call feed() again
    Done,   // the response is complete: outcome() is final
    Failed, // a protocol error: outcome().error says which; close the connection
  };

  // `buffer` holds every byte not consumed yet; `consumed` comes back with how many of them to
  // drop. `elapsed_ms`: time since the request was sent (for the time to first token).
  State feed(std::string_view buffer, double elapsed_ms, size_t& consumed);
  // The connection closed with every byte fed: Done for a body delimited by the close, else
  // Failed.
  State eof(double elapsed_ms);
  // Whether any byte of the response has arrived (a stale pooled connection has none).
  bool started() const { return started_; }
  const ResponseOutcome& outcome() const { return out_; }

private:
  State finish();
  void on_body(std::string_view piece, double elapsed_ms);

  http::ResponseParser parser_;
  openai::SseParser events_;
  openai::AnswerCapture capture_;
  ResponseOutcome out_;
  std::string body_; // non-streamed bodies, and error bodies
  size_t seen_text_ = 0;
  bool started_ = false;
  bool sse_ = false;
};

// The message of an OpenAI-style error body ({"error": {"message": ...}}), or the body's first
// 200 bytes.
std::string error_message(int status, std::string_view body);

} // namespace semrouter::app
