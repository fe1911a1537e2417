#include "openai/sse.h"

#include <simdjson.h>

namespace semrouter::openai {

const std::vector<std::string>& SseParser::feed(std::string_view bytes) {
  events_.clear();
  size_t start = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != '\n')
      continue;
    std::string_view piece = bytes.substr(start, i - start);
    if (!partial_line_.empty()) {
      partial_line_.append(piece);
      std::string whole = std::move(partial_line_);
      partial_line_.clear();
      line(whole);
    } else {
      line(piece);
    }
    start = i + 1;
  }
  partial_line_.append(bytes.substr(start));
  return events_;
}

void SseParser::line(std::string_view l) {
  if (!l.empty() && l.back() == '\r')
    l.remove_suffix(1);
  if (l.empty()) { // dispatch
    if (has_data_)
      events_.push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  if (l.front() == ':')
    return; // comment
  std::string_view field = l, value;
  if (auto colon = l.find(':'); colon != std::string_view::npos) {
    field = l.substr(0, colon);
    value = l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_)
      data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  }
}

Usage parse_usage(std::string_view json) {
  Usage u;
  if (json.find("\"usage\"") == std::string_view::npos)
    return u;
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS || !doc.is_object())
    return u;
  simdjson::dom::element usage;
  if (doc["usage"].get(usage) != simdjson::SUCCESS || !usage.is_object())
    return u;
  uint64_t v = 0;
  if (usage["prompt_tokens"].get(v) == simdjson::SUCCESS)
    u.prompt_tokens = v;
  if (usage["completion_tokens"].get(v) == simdjson::SUCCESS)
    u.completion_tokens = v;
  simdjson::dom::element details;
  if (usage["completion_tokens_details"].get(details) == simdjson::SUCCESS && details.is_object() &&
      details["reasoning_tokens"].get(v) == simdjson::SUCCESS)
    u.reasoning_tokens = v;
  u.present = true;
  return u;
}

} // namespace semrouter::openai
