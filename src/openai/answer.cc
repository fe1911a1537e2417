#include "openai/answer.h"

#include <nlohmann/json.hpp>

#include "core/strings.h"
#include "openai/responses.h"

namespace semrouter::openai {
namespace {

using nlohmann::json;

std::string str_or_empty(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A non-negative integer member, or 0 when absent or of another type.
uint64_t count_or_zero(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

void read_usage(const json& j, Answer& a) {
  auto u = j.find("usage");
  if (u == j.end() || !u->is_object())
    return;
  a.usage = true;
  a.usage_json = u->dump(-1, ' ', false, json::error_handler_t::replace);
  a.prompt_tokens = count_or_zero(*u, "prompt_tokens");
  a.completion_tokens = count_or_zero(*u, "completion_tokens");
  if (auto d = u->find("completion_tokens_details"); d != u->end() && d->is_object())
    a.reasoning_tokens = count_or_zero(*d, "reasoning_tokens");
}

} // namespace

void AnswerCapture::body(std::string_view text) {
  done_ = true;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.contains("error")) {
    error_ = true;
    return;
  }
  a_.model = str_or_empty(j, "model");
  read_usage(j, a_);
  auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array() || choices->empty()) {
    error_ = true;
    return;
  }
  multi_ = choices->size() > 1;
  const json& c = (*choices)[0];
  a_.finish_reason = str_or_empty(c, "finish_reason");
  auto m = c.find("message");
  if (m == c.end() || !m->is_object()) {
    error_ = true;
    return;
  }
  a_.content = str_or_empty(*m, "content");
  a_.reasoning_content = str_or_empty(*m, "reasoning_content");
  if (auto t = m->find("tool_calls"); t != m->end() && t->is_array() && !t->empty())
    a_.tool_calls_json = t->dump(-1, ' ', false, json::error_handler_t::replace);
  // Parts the replay would lose: a refusal, audio, or an answer with no content at all.
  if ((m->contains("refusal") && !(*m)["refusal"].is_null()) || m->contains("audio") ||
      (!(m->contains("content") && (*m)["content"].is_string()) && a_.tool_calls_json.empty()))
    unsupported_ = true;
}

void AnswerCapture::event(std::string_view data) {
  stream_ = true;
  if (core::trim(data) == "[DONE]") {
    done_ = true;
    return;
  }
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.contains("error")) {
    error_ = true;
    return;
  }
  if (a_.model.empty())
    a_.model = str_or_empty(j, "model");
  read_usage(j, a_);
  auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array())
    return;
  for (const json& c : *choices) {
    if (!c.is_object())
      continue;
    if (count_or_zero(c, "index") != 0) {
      multi_ = true;
      continue;
    }
    if (auto f = c.find("finish_reason"); f != c.end() && f->is_string())
      a_.finish_reason = f->get<std::string>();
    auto d = c.find("delta");
    if (d == c.end() || !d->is_object())
      continue;
    a_.content += str_or_empty(*d, "content");
    a_.reasoning_content += str_or_empty(*d, "reasoning_content");
    if ((d->contains("refusal") && !(*d)["refusal"].is_null()) || d->contains("audio"))
      unsupported_ = true;
    if (auto t = d->find("tool_calls"); t != d->end() && t->is_array() && !t->empty())
      streamed_tools_ = true;
  }
}

std::string AnswerCapture::why_not() const {
  if (error_)
    return "error";
  if (!done_)
    return "incomplete";
  if (multi_)
    return "choices";
  if (unsupported_)
    return "unsupported";
  if (streamed_tools_)
    return "tool_calls";
  if (a_.finish_reason == "length")
    return "length";
  if (a_.finish_reason == "tool_calls" || a_.finish_reason == "function_call")
    return a_.tool_calls_json.empty() ? "tool_calls" : "";
  if (a_.finish_reason != "stop")
    return "finish_reason";
  return "";
}

std::string answer_to_json(const Answer& a) {
  json j = {{"model", a.model},
            {"content", a.content},
            {"finish_reason", a.finish_reason},
            {"prompt_tokens", a.prompt_tokens},
            {"completion_tokens", a.completion_tokens},
            {"reasoning_tokens", a.reasoning_tokens},
            {"usage", a.usage}};
  if (!a.usage_json.empty())
    j["usage_object"] = json::parse(a.usage_json, nullptr, false);
  if (!a.reasoning_content.empty())
    j["reasoning_content"] = a.reasoning_content;
  if (!a.tool_calls_json.empty())
    j["tool_calls"] = json::parse(a.tool_calls_json, nullptr, false);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<Answer> answer_from_json(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return std::nullopt;
  Answer a;
  a.model = str_or_empty(j, "model");
  a.content = str_or_empty(j, "content");
  a.reasoning_content = str_or_empty(j, "reasoning_content");
  a.finish_reason = str_or_empty(j, "finish_reason");
  a.prompt_tokens = count_or_zero(j, "prompt_tokens");
  a.completion_tokens = count_or_zero(j, "completion_tokens");
  a.reasoning_tokens = count_or_zero(j, "reasoning_tokens");
  a.usage = j.contains("usage") && j["usage"].is_boolean() && j["usage"].get<bool>();
  if (auto u = j.find("usage_object"); u != j.end() && u->is_object())
    a.usage_json = u->dump();
  if (auto t = j.find("tool_calls"); t != j.end() && t->is_array())
    a.tool_calls_json = t->dump();
  return a;
}

namespace {

std::string usage_json(const Answer& a) {
  if (!a.usage_json.empty())
    return a.usage_json;
  std::string u = "{\"prompt_tokens\":" + std::to_string(a.prompt_tokens) +
                  ",\"completion_tokens\":" + std::to_string(a.completion_tokens) +
                  ",\"total_tokens\":" + std::to_string(a.prompt_tokens + a.completion_tokens);
  if (a.reasoning_tokens)
    u += ",\"completion_tokens_details\":{\"reasoning_tokens\":" +
         std::to_string(a.reasoning_tokens) + "}";
  return u + "}";
}

// Pieces of at most ~`max` bytes, cut only at UTF-8 character starts.
std::vector<std::string_view> pieces(std::string_view s, size_t max) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    size_t n = std::min(max, s.size());
    while (n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
      ++n;
    out.push_back(s.substr(0, n));
    s.remove_prefix(n);
  }
  return out;
}

} // namespace

std::string answer_response(const Answer& a, std::string_view id, int64_t created) {
  std::string out;
  append_response_head(out, "chat.completion", id, a.model, created);
  out += ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":";
  if (a.content.empty() && !a.tool_calls_json.empty())
    out += "null";
  else
    core::append_json_string(out, a.content);
  if (!a.reasoning_content.empty()) {
    out += ",\"reasoning_content\":";
    core::append_json_string(out, a.reasoning_content);
  }
  if (!a.tool_calls_json.empty())
    out += ",\"tool_calls\":" + a.tool_calls_json;
  out += "},\"logprobs\":null,\"finish_reason\":";
  core::append_json_string(out, a.finish_reason);
  out += "}],\"usage\":" + usage_json(a) + "}";
  return out;
}

std::string answer_stream(const Answer& a, std::string_view id, int64_t created,
                          bool include_usage) {
  std::string out;
  auto event = [&](std::string_view choices, std::string_view tail = {}) {
    out += "data: ";
    append_response_head(out, "chat.completion.chunk", id, a.model, created);
    out += ",\"choices\":[";
    out += choices;
    out += "]";
    out += tail;
    out += "}\n\n";
  };
  event("{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
        "\"finish_reason\":null}");
  for (std::string_view p : pieces(a.reasoning_content, 64)) {
    std::string c = "{\"index\":0,\"delta\":{\"reasoning_content\":";
    core::append_json_string(c, p);
    event(c + "},\"logprobs\":null,\"finish_reason\":null}");
  }
  for (std::string_view p : pieces(a.content, 64)) {
    std::string c = "{\"index\":0,\"delta\":{\"content\":";
    core::append_json_string(c, p);
    event(c + "},\"logprobs\":null,\"finish_reason\":null}");
  }
  if (!a.tool_calls_json.empty()) {
    // Each call whole, with its index, as one delta.
    json calls = json::parse(a.tool_calls_json, nullptr, false);
    if (calls.is_array())
      for (size_t i = 0; i < calls.size(); ++i) {
        calls[i]["index"] = i;
        event("{\"index\":0,\"delta\":{\"tool_calls\":[" + calls[i].dump() +
              "]},\"logprobs\":null,\"finish_reason\":null}");
      }
  }
  std::string last = "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":";
  core::append_json_string(last, a.finish_reason);
  event(last + "}");
  if (include_usage)
    event("", ",\"usage\":" + usage_json(a));
  out += "data: [DONE]\n\n";
  return out;
}

} // namespace semrouter::openai
