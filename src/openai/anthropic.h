// Translation between Anthropic's Messages API (/v1/messages) and OpenAI chat completions, the
// router's internal ("pivot") format. Two directions, each for requests, whole answers, errors
// and streams:
//  - client side: an Anthropic client talks to the router (request_to_chat, then
//    response_from_chat / StreamFromChat / error_from_openai on the way back);
//  - backend side: a routed chat request goes to an Anthropic backend (request_from_chat, then
//    response_to_chat / StreamToChat / error_to_openai on the way back).
//
// Nothing here throws: hostile input (invalid JSON or UTF-8, wrong types, deep nesting) gives a
// 400 from request_to_chat and a best-effort, always valid JSON output from everything else.
// Inputs are parsed with simdjson (UTF-8 validated, depth <= 1024, linear time), so the key order
// of copied values (tool schemas, tool inputs) is kept; a repeated key keeps its last value.
// Note: openai::error_body(ApiError) is found by argument-dependent lookup too; call this
// module's functions qualified (anthropic::error_body).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "openai/errors.h"
#include "openai/sse.h"

namespace semrouter::openai::anthropic {

// The `anthropic-version` header value the translation follows.
constexpr std::string_view kApiVersion = "2023-06-01";
// max_tokens of a translated request whose chat body sets none (Anthropic requires it).
constexpr uint64_t kDefaultMaxTokens = 4096;

// ---- Requests ----

// Client side: an Anthropic Messages request -> an OpenAI chat request. On a malformed request
// (not JSON, messages missing or not an array, an unsupported block or tool, max_tokens missing,
// ...) returns false and sets `error` (status 400, invalid_request_error, `param` the dotted path
// of the offending field, e.g. "messages.0.content.2.type"); `chat` is then left untouched.
bool request_to_chat(std::string_view body, std::string& chat, ApiError& error);

// Backend side: a routed chat request -> an Anthropic Messages request. Fields Anthropic has no
// counterpart for (n, logprobs, response_format, stream_options, ...) are dropped. A body that is
// not a JSON object gives "{}" (the router validated the body before; the backend answers 400).
std::string request_from_chat(std::string_view chat_body);

// ---- Non-streamed answers ----

// An Anthropic message -> a chat.completion (created = now, or `created`). An Anthropic error
// body gives the OpenAI error shape; a body that is not a message gives an upstream_error body.
std::string response_to_chat(std::string_view anthropic_body);
std::string response_to_chat(std::string_view anthropic_body, int64_t created);

// A chat.completion -> an Anthropic message. An OpenAI error body gives the Anthropic error shape.
// usage.input_tokens excludes cached tokens, as Anthropic counts them (prompt_tokens includes
// them); cache_read_input_tokens carries those.
std::string response_from_chat(std::string_view chat_body);

// finish_reason for a stop_reason (end_turn/stop_sequence/pause_turn -> stop, max_tokens ->
// length, tool_use -> tool_calls, refusal -> content_filter; anything else -> stop).
std::string_view finish_reason_for(std::string_view stop_reason);
// stop_reason for a finish_reason (tool_calls/function_call -> tool_use, content_filter ->
// refusal, length -> max_tokens; anything else -> end_turn).
std::string_view stop_reason_for(std::string_view finish_reason);

// ---- Errors ----

// Anthropic's error type for an HTTP status (400 invalid_request_error, 401 authentication_error,
// 403 permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error,
// 503/529 overloaded_error, other 5xx api_error, other 4xx invalid_request_error, else
// api_error).
std::string_view error_type_for_status(int status);

// {"type":"error","error":{"type":<for e.status>,"message":e.message}}.
std::string error_body(const ApiError& e);

// An Anthropic error body -> {"error":{"message","type","param","code"}}. api_error and
// overloaded_error become server_error (code "overloaded" for the latter). When the body is not
// an Anthropic error, the type comes from `status` and the message is the body's text.
std::string error_to_openai(std::string_view anthropic_error_body, int status);

// An OpenAI error body (or vLLM's {"detail":..} / {"message":..}) -> the Anthropic shape, the
// type for `status` (or, when status is not an error status, for the body's numeric "code").
// A body that is not JSON becomes the message.
std::string error_from_openai(std::string_view openai_error_body, int status);

// ---- Streams ----
// Both translators take raw SSE bytes in arbitrary pieces and append complete translated events
// to `out`; feeding byte by byte or all at once gives the same output. finish() is called at the
// upstream's end of stream: it closes whatever is still open, is idempotent, and emits nothing
// when the stream already completed (or when nothing was received). One instance per stream;
// not thread-safe.

// Anthropic events -> `data: <chat.completion.chunk>\n\n` events, then `data: [DONE]\n\n`.
class StreamToChat {
public:
  // created: the chunks' "created" (0: now). include_usage: emit the usage chunk
  // ({"choices":[],"usage":..}) after the finish_reason chunk.
  explicit StreamToChat(int64_t created = 0, bool include_usage = true);
  void feed(std::string_view bytes, std::string& out);
  void finish(std::string& out);
  bool done() const { return done_; }

private:
  enum class BlockKind { Other, Text, Thinking, ToolUse };
  struct Block {
    BlockKind kind = BlockKind::Other;
    uint64_t tool_index = 0; // the chat tool_calls index of a ToolUse block
    bool got_delta = false;  // input_json_delta seen
    std::string start_input; // a non-empty input sent whole in content_block_start
  };
  void event(std::string_view data, std::string& out);
  // Appends one chunk with choices [{"index":0,"delta":<delta_json>,"finish_reason":..}].
  void chunk(std::string& out, std::string_view delta_json, std::string_view finish_reason = {});
  void finish_chunks(std::string& out, std::string_view finish_reason);

  SseParser sse_;
  int64_t created_;
  bool include_usage_;
  bool started_ = false;  // a chunk was emitted
  bool finished_ = false; // the finish_reason chunk was emitted
  bool done_ = false;     // [DONE] (or an error) was emitted
  std::string id_, model_;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0, cached_tokens_ = 0;
  std::map<uint64_t, Block> blocks_; // by Anthropic content block index
  uint64_t next_tool_ = 0;
};

// chat.completion.chunk events -> Anthropic `event: <type>\ndata: <json>\n\n` events
// (message_start, content_block_start/delta/stop, message_delta, message_stop), as the official
// SDKs' stream accumulators expect them.
class StreamFromChat {
public:
  void feed(std::string_view bytes, std::string& out);
  void finish(std::string& out);
  bool done() const { return done_; }

private:
  enum class Open { None, Text, Thinking, ToolUse };
  void event(std::string_view data, std::string& out);
  void start(std::string& out);
  void open_block(std::string& out, Open kind, const std::string& block_json);
  void close_block(std::string& out);
  void end(std::string& out);

  SseParser sse_;
  bool started_ = false; // message_start was emitted
  bool done_ = false;    // message_stop (or an error) was emitted
  std::string id_, model_;
  Open open_ = Open::None;
  uint64_t next_block_ = 0; // index of the next content block
  int64_t open_tool_ = 0;   // the chat tool_calls index of the open ToolUse block
  std::set<int64_t> tools_; // chat tool_calls indexes that got a block
  std::string finish_reason_;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0, cached_tokens_ = 0;
};

} // namespace semrouter::openai::anthropic
