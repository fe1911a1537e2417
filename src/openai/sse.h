// Incremental Server-Sent Events parser. Bytes arrive in arbitrary pieces; complete events come
// out. Used to tap a streamed response (usage, first token) while the raw bytes pass through
// to the client untouched.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace semrouter::openai {

class SseParser {
public:
  // Feeds bytes; returns the `data` payloads of events completed by them (multi-line data
  // joined with '\n'). The returned views are valid until the next call.
  const std::vector<std::string>& feed(std::string_view bytes);

private:
  void line(std::string_view l);
  std::string partial_line_;
  std::string data_;
  bool has_data_ = false;
  std::vector<std::string> events_;
};

struct Usage {
  bool present = false;
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  uint64_t reasoning_tokens = 0; // completion_tokens_details.reasoning_tokens, when reported
};

// Reads "usage" from a chat completion (or a streamed chunk) JSON; present=false if absent/null.
Usage parse_usage(std::string_view json);

} // namespace semrouter::openai
