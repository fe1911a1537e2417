#include "openai/answer.h"

#include <charconv>

#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "core/strings.h"
#include "openai/responses.h"

namespace semrouter::openai {
namespace {

using nlohmann::json;
using simdjson::dom::element;
using simdjson::dom::object;

std::string str_or_empty(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A non-negative integer member, or 0 when absent or of another type.
uint64_t count_or_zero(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// The same two readers on simdjson's DOM, which parses an upstream's answer several times faster
// than nlohmann (the answer is read once per forwarded request when the cache may store it).
std::string_view str_or_empty(object o, std::string_view key) {
  std::string_view out;
  if (o[key].get(out) != simdjson::SUCCESS)
    return {};
  return out;
}

uint64_t count_or_zero(object o, std::string_view key) {
  uint64_t v = 0;
  if (o[key].get_uint64().get(v) != simdjson::SUCCESS)
    return 0;
  return v;
}

bool has(object o, std::string_view key) {
  return o[key].error() == simdjson::SUCCESS;
}

// A member that is present and not null.
bool has_value(object o, std::string_view key) {
  element e;
  return o[key].get(e) == simdjson::SUCCESS && !e.is_null();
}

// Appends e as compact JSON. simdjson::minify builds its text a byte at a time in a vector that
// grows by doubling (eight allocations for a usage object); this writes into `out`, whose
// capacity a reused answer keeps. Doubles and strings keep simdjson's own formatting.
void append_minified(element e, std::string& out) {
  object o;
  simdjson::dom::array items;
  int64_t i = 0;
  uint64_t u = 0;
  bool b = false;
  if (e.get_object().get(o) == simdjson::SUCCESS) {
    out.push_back('{');
    bool first = true;
    for (auto field : o) {
      if (!first)
        out.push_back(',');
      first = false;
      core::append_json_string(out, field.key);
      out.push_back(':');
      append_minified(field.value, out);
    }
    out.push_back('}');
  } else if (e.get_array().get(items) == simdjson::SUCCESS) {
    out.push_back('[');
    bool first = true;
    for (element x : items) {
      if (!first)
        out.push_back(',');
      first = false;
      append_minified(x, out);
    }
    out.push_back(']');
  } else if (e.is_int64() && e.get_int64().get(i) == simdjson::SUCCESS) {
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, i).ptr);
  } else if (e.is_uint64() && e.get_uint64().get(u) == simdjson::SUCCESS) {
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, u).ptr);
  } else if (e.get_bool().get(b) == simdjson::SUCCESS) {
    out.append(b ? "true" : "false");
  } else if (e.is_null()) {
    out.append("null");
  } else { // a double or a string
    out.append(simdjson::minify(e));
  }
}

void read_usage(object j, Answer& a) {
  element ue;
  object u;
  if (j["usage"].get(ue) != simdjson::SUCCESS || ue.get_object().get(u) != simdjson::SUCCESS)
    return;
  a.usage = true;
  a.usage_json.clear();
  a.usage_json.reserve(128); // most usage objects: one allocation, not one per doubling
  append_minified(ue, a.usage_json);
  a.prompt_tokens = count_or_zero(u, "prompt_tokens");
  a.completion_tokens = count_or_zero(u, "completion_tokens");
  object d;
  if (u["completion_tokens_details"].get_object().get(d) == simdjson::SUCCESS)
    a.reasoning_tokens = count_or_zero(d, "reasoning_tokens");
}

// Parses `text` into a thread's reused parser: the top-level object, or an error.
simdjson::simdjson_result<object> parse_object(std::string_view text) {
  thread_local simdjson::dom::parser parser;
  thread_local std::string padded;
  padded.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  padded.assign(text);
  return parser.parse(padded.data(), text.size(), /*realloc_if_needed=*/false).get_object();
}

} // namespace

void AnswerCapture::body(std::string_view text) {
  done_ = true;
  object j;
  if (parse_object(text).get(j) != simdjson::SUCCESS || has(j, "error")) {
    error_ = true;
    return;
  }
  a_.model = str_or_empty(j, "model");
  read_usage(j, a_);
  simdjson::dom::array choices;
  if (j["choices"].get_array().get(choices) != simdjson::SUCCESS || choices.size() == 0) {
    error_ = true;
    return;
  }
  multi_ = choices.size() > 1;
  object c, m;
  if (choices.at(0).get_object().get(c) != simdjson::SUCCESS) {
    // nlohmann's find on a non-object answered "absent": no message, so an error
    error_ = true;
    return;
  }
  a_.finish_reason = str_or_empty(c, "finish_reason");
  if (c["message"].get_object().get(m) != simdjson::SUCCESS) {
    error_ = true;
    return;
  }
  a_.content = str_or_empty(m, "content");
  a_.reasoning_content = str_or_empty(m, "reasoning_content");
  simdjson::dom::array tools;
  if (m["tool_calls"].get_array().get(tools) == simdjson::SUCCESS && tools.size() > 0)
    a_.tool_calls_json = simdjson::minify(tools);
  // Parts the replay would lose: a refusal, audio, or an answer with no content at all.
  element content;
  const bool string_content = m["content"].get(content) == simdjson::SUCCESS && content.is_string();
  if (has_value(m, "refusal") || has(m, "audio") || (!string_content && a_.tool_calls_json.empty()))
    unsupported_ = true;
}

void AnswerCapture::event(std::string_view data) {
  stream_ = true;
  if (core::trim(data) == "[DONE]") {
    done_ = true;
    return;
  }
  object j;
  if (parse_object(data).get(j) != simdjson::SUCCESS || has(j, "error")) {
    error_ = true;
    return;
  }
  if (a_.model.empty())
    a_.model = str_or_empty(j, "model");
  read_usage(j, a_);
  simdjson::dom::array choices;
  if (j["choices"].get_array().get(choices) != simdjson::SUCCESS)
    return;
  for (element ce : choices) {
    object c;
    if (ce.get_object().get(c) != simdjson::SUCCESS)
      continue;
    if (count_or_zero(c, "index") != 0) {
      multi_ = true;
      continue;
    }
    std::string_view finish;
    if (c["finish_reason"].get(finish) == simdjson::SUCCESS)
      a_.finish_reason = finish;
    object d;
    if (c["delta"].get_object().get(d) != simdjson::SUCCESS)
      continue;
    a_.content += str_or_empty(d, "content");
    a_.reasoning_content += str_or_empty(d, "reasoning_content");
    if (has_value(d, "refusal") || has(d, "audio"))
      unsupported_ = true;
    simdjson::dom::array tools;
    if (d["tool_calls"].get_array().get(tools) == simdjson::SUCCESS && tools.size() > 0)
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
  // Written directly, keys in the order nlohmann's object (a std::map) gave them, so stored
  // entries read the same as before. usage_json and tool_calls_json are compact JSON already
  // (minified from the upstream's answer).
  std::string out;
  out.reserve(a.content.size() + a.reasoning_content.size() + a.tool_calls_json.size() +
              a.usage_json.size() + a.model.size() + 192);
  out += "{\"completion_tokens\":";
  out += std::to_string(a.completion_tokens);
  out += ",\"content\":";
  core::append_json_string(out, a.content);
  out += ",\"finish_reason\":";
  core::append_json_string(out, a.finish_reason);
  out += ",\"model\":";
  core::append_json_string(out, a.model);
  out += ",\"prompt_tokens\":";
  out += std::to_string(a.prompt_tokens);
  if (!a.reasoning_content.empty()) {
    out += ",\"reasoning_content\":";
    core::append_json_string(out, a.reasoning_content);
  }
  out += ",\"reasoning_tokens\":";
  out += std::to_string(a.reasoning_tokens);
  if (!a.tool_calls_json.empty()) {
    out += ",\"tool_calls\":";
    out += a.tool_calls_json;
  }
  out += a.usage ? ",\"usage\":true" : ",\"usage\":false";
  if (!a.usage_json.empty()) {
    out += ",\"usage_object\":";
    out += a.usage_json;
  }
  out += '}';
  return out;
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
