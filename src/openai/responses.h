// Answers the router gives itself, in the OpenAI shapes, when nothing goes upstream (a blocked
// prompt): a complete response or a valid SSE stream.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "openai/request.h"

namespace semrouter::openai {

// Appends `{"id":ID,"object":"OBJECT","created":N,"model":MODEL` (the object left open).
void append_response_head(std::string& out, std::string_view object, std::string_view id,
                          std::string_view model, int64_t created);

// A response whose only choice is `message` with finish_reason "content_filter".
// Chat: `chat.completion` (or, with `stream`, `chat.completion.chunk` events: the role, the
// content, the finish reason, then `data: [DONE]`). Completions: `text_completion`, likewise.
std::string content_filter_response(RequestKind kind, std::string_view model,
                                    std::string_view message, bool stream, std::string_view id,
                                    int64_t created);

} // namespace semrouter::openai
