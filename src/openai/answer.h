// A chat completion's answer, captured from the upstream's response (a whole JSON body, or the
// SSE chunks of a stream as they pass) and replayed later in either shape: what the semantic
// cache stores and serves.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace semrouter::openai {

struct Answer {
  std::string model;
  std::string content;
  std::string reasoning_content; // DeepSeek / vLLM reasoning parsers' field, when present
  std::string finish_reason;
  std::string tool_calls_json; // the assistant's tool_calls array, raw JSON ("" when none)
  uint64_t prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;
  bool usage = false;
  std::string usage_json; // the upstream's usage object as it sent it ("" when none)
};

// Collects an answer from one upstream response. Only a single-choice answer that completed is
// `complete()`; `why_not()` says what kept it from being one.
class AnswerCapture {
public:
  // A non-streamed chat.completion body.
  void body(std::string_view json);
  // One SSE event's data (a chat.completion.chunk, or "[DONE]").
  void event(std::string_view data);
  bool complete() const { return why_not().empty(); }
  // "" when complete; else: error, incomplete, choices, unsupported, tool_calls, length, ...
  std::string why_not() const;
  const Answer& answer() const { return a_; }

private:
  Answer a_;
  bool error_ = false;
  bool done_ = false; // [DONE] seen (streams) or a whole body parsed
  bool stream_ = false;
  bool multi_ = false;          // more than one choice
  bool streamed_tools_ = false; // streamed tool-call deltas are not reassembled: marked only
  bool unsupported_ = false;    // a refusal, audio, or no content: parts a replay would lose
};

// The compact JSON form the cache stores, and back.
std::string answer_to_json(const Answer& a);
std::optional<Answer> answer_from_json(std::string_view json);

// The answer as a chat.completion body, or as a valid SSE stream of chat.completion.chunk events
// (the role, the content in pieces, the finish reason, usage when `include_usage`, then
// `data: [DONE]`).
std::string answer_response(const Answer& a, std::string_view id, int64_t created);
std::string answer_stream(const Answer& a, std::string_view id, int64_t created,
                          bool include_usage);

} // namespace semrouter::openai
