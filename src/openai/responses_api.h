// OpenAI's Responses API (POST /v1/responses) on top of chat completions, the router's pivot
// format. A request is translated to a chat body (routing reads and edits that one); the answer
// of a chat backend is translated back into a Response object or a stream of Responses events.
// For a backend that speaks the Responses API natively the client's request goes through with
// what routing decided applied, and its answer can be read as chat for accounting.
//
// Everything here is pure: no I/O, no clocks. Ids are injected (or drawn from
// new_response_id()). Public functions never throw; hostile bytes give an error value, or are
// skipped in streams.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "openai/errors.h"

namespace semrouter::openai::responses_api {

struct ChatRequest;

// What a Response echoes of the request it answers (OpenAI's Response object repeats the request's
// parameters): instructions, max_output_tokens, metadata, parallel_tool_calls,
// previous_response_id, reasoning (effort and summary), temperature, text, tool_choice, tools,
// top_p, truncation and user, as the client sent them. A field the client left out, or sent as
// null (or, for metadata / reasoning / text, as a non-object), keeps the Response's default; text
// without a format gets the default {"type": "text"}. `store` is not echoed: it stays false,
// because the router stores no response (a Response saying true would promise one that
// GET /v1/responses/{id} or previous_response_id cannot find). Read once per exchange:
// request_to_chat fills one from the body it parses anyway; copies share the fields, so a copy per
// attempt or per stream costs a reference count.
class RequestEcho {
public:
  RequestEcho() = default; // nothing to echo: every field keeps its default
  // From a Responses request body; unreadable bodies echo nothing.
  explicit RequestEcho(std::string_view request_body);

  bool empty() const { return fields_ == nullptr; }
  struct Fields; // responses_api.cc: the fields as they go into the Response
  const Fields* fields() const { return fields_.get(); }

private:
  friend bool request_to_chat(std::string_view body, ChatRequest& out, ApiError& error);
  std::shared_ptr<const Fields> fields_;
};

struct ChatRequest {
  std::string body; // the chat-completions request
  // "" or the first feature chat completions cannot carry, e.g.
  // "tools[2]: web_search_preview is a hosted tool" or
  // "previous_response_id: the router keeps no conversation state". The caller answers 400 with
  // it when the chosen backend does not speak the Responses API natively. What it names is left
  // out of `body`.
  std::string unsupported;
  bool stream = false; // the client asked for a stream
  RequestEcho echo;    // what the Response echoes of the request
};

// Translates a Responses request to a chat-completions request. false + `error` (400
// invalid_request_error, with `param` naming the field) when the body is malformed: not JSON, not
// an object, input missing or of a wrong type, an item or part missing a required field, ...
// Notes: instructions become the first system message; developer messages become system
// messages; reasoning items are dropped; a function_call joins the assistant message right before
// it (chat carries text and tool calls in one message).
bool request_to_chat(std::string_view body, ChatRequest& out, ApiError& error);

// For a backend that speaks the Responses API natively: the client's original request with what
// routing decided applied, read from the routed chat body: "model"; "reasoning_effort" ->
// reasoning.effort; function tools absent from the routed chat tools removed (other tools kept;
// a tool_choice naming a removed function, or any tool_choice when no tool is left, dropped);
// a routed first system message that differs from the original system prompt (instructions, or
// a leading system/developer input message) replaces it. `original` unchanged when either body
// is not a JSON object.
std::string passthrough_request(std::string_view original, std::string_view routed_chat);

// A fresh "resp_<32 hex>" id (thread-safe; randomness from a per-thread generator).
std::string new_response_id();

// A chat.completion body as a Response object. An error body ({"error":..}) comes back as it is
// (the Responses API uses the same shape); anything else that is not a chat.completion gives a
// server_error body. `response_id` "" means new_response_id(); item ids derive from it. `echo`:
// the request's parameters the Response repeats.
std::string response_from_chat(std::string_view chat_body, std::string_view response_id = {},
                               const RequestEcho& echo = {});

// A Response object as a chat.completion (content, reasoning_content, refusal, tool_calls,
// finish_reason, usage), for accounting on native backends. A failed response or an error body
// gives an {"error":..} body; an unreadable one a server_error body.
std::string response_to_chat(std::string_view response_body);

// chat.completion.chunk SSE -> Responses SSE events (`event: <type>\ndata: <json>\n\n`, each
// with an increasing sequence_number). Only choice 0 is translated. Not thread-safe: one per
// stream. `echo`: the request's parameters that every Response in the events repeats
// (response.created, response.in_progress, response.completed / incomplete / failed).
class StreamFromChat {
public:
  explicit StreamFromChat(std::string response_id = {}, RequestEcho echo = {});
  ~StreamFromChat();
  StreamFromChat(StreamFromChat&&) noexcept;
  StreamFromChat& operator=(StreamFromChat&&) noexcept;

  // Raw upstream bytes in any pieces; the complete events they finish are appended to `out`.
  // Ignored once the stream is over ([DONE], an error, or finish()).
  void feed(std::string_view bytes, std::string& out);
  // The upstream ended: closes open items and sends response.completed / response.incomplete
  // (after a finish_reason or [DONE]) or response.failed (the stream broke off, or nothing in it
  // could be read). Idempotent; appends nothing when no byte was ever fed.
  void finish(std::string& out);
  bool done() const;

private:
  struct State;
  std::unique_ptr<State> state_;
};

// Responses SSE events -> chat.completion.chunk SSE (`data: <json>\n\n`), ending with a
// finish_reason chunk, a usage chunk and `data: [DONE]`, or with `data: {"error":..}`.
// Not thread-safe: one per stream.
class StreamToChat {
public:
  StreamToChat();
  ~StreamToChat();
  StreamToChat(StreamToChat&&) noexcept;
  StreamToChat& operator=(StreamToChat&&) noexcept;

  void feed(std::string_view bytes, std::string& out);
  // The upstream ended: if the stream was not over, an error chunk (upstream_broken). Idempotent;
  // appends nothing when no byte was ever fed.
  void finish(std::string& out);
  bool done() const;

private:
  struct State;
  std::unique_ptr<State> state_;
};

} // namespace semrouter::openai::responses_api
