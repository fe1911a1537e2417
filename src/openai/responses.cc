#include "openai/responses.h"

#include "core/strings.h"

namespace semrouter::openai {

void append_response_head(std::string& out, std::string_view object, std::string_view id,
                          std::string_view model, int64_t created) {
  out += "{\"id\":";
  core::append_json_string(out, id);
  out += ",\"object\":\"";
  out += object;
  out += "\",\"created\":";
  out += std::to_string(created);
  out += ",\"model\":";
  core::append_json_string(out, model);
}

std::string content_filter_response(RequestKind kind, std::string_view model,
                                    std::string_view message, bool stream, std::string_view id,
                                    int64_t created) {
  std::string out;
  const bool chat = kind == RequestKind::ChatCompletions;
  const std::string_view usage =
      ",\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0}";
  if (!stream) {
    append_response_head(out, chat ? "chat.completion" : "text_completion", id, model, created);
    if (chat) {
      out += ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":";
      core::append_json_string(out, message);
      out += "},\"finish_reason\":\"content_filter\"}]";
    } else {
      out += ",\"choices\":[{\"index\":0,\"text\":";
      core::append_json_string(out, message);
      out += ",\"logprobs\":null,\"finish_reason\":\"content_filter\"}]";
    }
    out += usage;
    out += "}";
    return out;
  }
  auto event = [&](std::string_view choice) {
    out += "data: ";
    append_response_head(out, chat ? "chat.completion.chunk" : "text_completion", id, model,
                         created);
    out += ",\"choices\":[";
    out += choice;
    out += "]}\n\n";
  };
  std::string content;
  core::append_json_string(content, message);
  if (chat) {
    event(
        "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}");
    event("{\"index\":0,\"delta\":{\"content\":" + content + "},\"finish_reason\":null}");
    event("{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}");
  } else {
    event("{\"index\":0,\"text\":" + content + ",\"logprobs\":null,\"finish_reason\":null}");
    event("{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"content_filter\"}");
  }
  out += "data: [DONE]\n\n";
  return out;
}

} // namespace semrouter::openai
