#include "openai/anthropic.h"

#include <algorithm>
#include <ctime>
#include <exception>
#include <limits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "core/strings.h"

namespace semrouter::openai::anthropic {
namespace {

// Insertion-ordered, so copied values (tool schemas, tool inputs) keep their key order: models
// tend to fill arguments in schema order, and a stable order keeps prompt caches warm.
using json = nlohmann::ordered_json;

constexpr std::string_view kChatIdPrefix = "chatcmpl-";
constexpr std::string_view kMessageIdPrefix = "msg_";
constexpr std::string_view kSystemSeparator = "\n\n";
constexpr std::string_view kToolResultSeparator = "\n";
// Objects with more fields than this find repeated keys through a hash map, not a scan.
constexpr size_t kLinearKeyScan = 8;
// Thinking budgets for reasoning_effort low/medium/high.
constexpr uint64_t kBudgetLow = 1024, kBudgetMedium = 4096, kBudgetHigh = 16384;
// Room left for the answer when max_tokens must grow past a thinking budget.
constexpr uint64_t kAnswerHeadroom = 1024;
// With thinking enabled Anthropic accepts top_p only in [0.95, 1].
constexpr double kThinkingMinTopP = 0.95;
constexpr double kMaxTemperature = 1.0;
// An error body that is not JSON becomes the message, cut to this many bytes.
constexpr size_t kMaxErrorText = 2048;

int64_t now() {
  return static_cast<int64_t>(std::time(nullptr));
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---- Parsing: simdjson (UTF-8 validated, depth-limited, linear) into ordered_json ----

void convert(simdjson::dom::element e, json& out) {
  using simdjson::dom::element_type;
  switch (e.type()) {
  case element_type::ARRAY: {
    out = json::array();
    const simdjson::dom::array array = e.get_array().value_unsafe(); // a copy: outlives the result
    for (simdjson::dom::element v : array) {
      json item;
      convert(v, item);
      out.push_back(std::move(item));
    }
    return;
  }
  case element_type::OBJECT: {
    out = json::object();
    // ordered_json's own insert scans every key (quadratic on a hostile object); append to the
    // underlying vector instead, replacing a repeated key's value (the last one wins).
    auto& fields = out.get_ref<json::object_t&>();
    simdjson::dom::object obj = e.get_object().value_unsafe();
    const bool linear = obj.size() <= kLinearKeyScan;
    std::unordered_map<std::string_view, size_t> seen;
    for (simdjson::dom::key_value_pair field : obj) {
      json value;
      convert(field.value, value);
      auto at = fields.end();
      if (linear) {
        for (auto it = fields.begin(); it != fields.end(); ++it) {
          if (it->first == field.key) {
            at = it;
            break;
          }
        }
      } else if (auto s = seen.find(field.key); s != seen.end()) {
        at = fields.begin() + static_cast<std::ptrdiff_t>(s->second);
      }
      if (at != fields.end()) {
        at->second = std::move(value);
        continue;
      }
      if (!linear)
        seen.emplace(field.key, fields.size());
      fields.emplace_back(std::string(field.key), std::move(value));
    }
    return;
  }
  case element_type::INT64: {
    const int64_t v = e.get_int64().value_unsafe();
    // Like nlohmann's own parser: non-negative integers are unsigned.
    if (v >= 0)
      out = static_cast<uint64_t>(v);
    else
      out = v;
    return;
  }
  case element_type::UINT64:
    out = e.get_uint64().value_unsafe();
    return;
  case element_type::DOUBLE:
    out = e.get_double().value_unsafe();
    return;
  case element_type::STRING:
    out = std::string(e.get_string().value_unsafe());
    return;
  case element_type::BOOL:
    out = e.get_bool().value_unsafe();
    return;
  case element_type::NULL_VALUE:
    out = nullptr;
    return;
  }
}

thread_local simdjson::dom::parser tl_parser;

// A discarded value when `text` is not valid JSON (or not valid UTF-8, or nested too deep);
// `why` then says what is wrong.
json parse(std::string_view text, std::string* why = nullptr) {
  simdjson::padded_string padded(text);
  simdjson::dom::element doc;
  if (auto err = tl_parser.parse(padded).get(doc); err != simdjson::SUCCESS) {
    if (why != nullptr)
      *why = simdjson::error_message(err);
    return json(json::value_t::discarded);
  }
  json out;
  convert(doc, out);
  return out;
}

// ---- Reading ----

const json* field(const json* j, const char* key) {
  if (j == nullptr || !j->is_object())
    return nullptr;
  auto it = j->find(key);
  return it == j->end() ? nullptr : &*it;
}
const json* field(const json& j, const char* key) {
  return field(&j, key);
}

std::string_view as_string(const json* v) {
  return v != nullptr && v->is_string() ? std::string_view(v->get_ref<const std::string&>())
                                        : std::string_view();
}
std::string_view string_field(const json* j, const char* key) {
  return as_string(field(j, key));
}
std::string_view string_field(const json& j, const char* key) {
  return as_string(field(j, key));
}

// A non-negative integer member, or 0.
uint64_t count_field(const json* j, const char* key) {
  const json* v = field(j, key);
  return v != nullptr && v->is_number_unsigned() ? v->get<uint64_t>() : 0;
}

bool is_array(const json* v) {
  return v != nullptr && v->is_array();
}
bool is_object(const json* v) {
  return v != nullptr && v->is_object();
}
// Absent and null mean the same: not set.
bool is_set(const json* v) {
  return v != nullptr && !v->is_null();
}

// The text of a string, or the texts of an array's {"type":"text","text"} items joined.
std::string joined_text(const json* content, std::string_view separator) {
  if (content == nullptr)
    return {};
  if (content->is_string())
    return content->get<std::string>();
  std::string out;
  if (!content->is_array())
    return out;
  bool first = true;
  for (const json& part : *content) {
    if (string_field(part, "type") != "text")
      continue;
    if (!first)
      out += separator;
    out += string_field(part, "text");
    first = false;
  }
  return out;
}

// An Anthropic message id for a chat completion id: "chatcmpl-X" -> "msg_X".
std::string message_id(std::string_view chat_id) {
  if (core::starts_with(chat_id, kMessageIdPrefix))
    return std::string(chat_id);
  if (core::starts_with(chat_id, kChatIdPrefix))
    chat_id.remove_prefix(kChatIdPrefix.size());
  if (chat_id.empty())
    chat_id = "semrouter";
  return std::string(kMessageIdPrefix) + std::string(chat_id);
}

// Anthropic tool ids must match ^[a-zA-Z0-9_-]+$; other backends' ids may not.
std::string tool_id(std::string_view id, std::string_view fallback) {
  if (id.empty())
    return std::string(fallback);
  std::string out(id);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok)
      c = '_';
  }
  return out;
}

json default_input_schema() {
  return json{{"type", "object"}, {"properties", json::object()}};
}

json text_block(std::string_view text) {
  return json{{"type", "text"}, {"text", std::string(text)}};
}

std::string sse_event(std::string_view type, const json& data) {
  std::string out = "event: ";
  out += type;
  out += "\ndata: ";
  out += dump(data);
  out += "\n\n";
  return out;
}

// ---- request_to_chat ----

bool fail(ApiError& error, const std::string& param, std::string_view message) {
  std::string text = param.empty() ? std::string(message) : param + ": " + std::string(message);
  error = invalid_request(std::move(text), param);
  return false;
}

std::string index_path(std::string_view base, size_t i) {
  return std::string(base) + "." + std::to_string(i);
}

// A text, image or document block -> a chat content part.
bool block_to_part(const json& block, const std::string& path, bool user, json& part,
                   ApiError& error) {
  const std::string_view type = string_field(block, "type");
  if (type == "text") {
    const json* text = field(block, "text");
    if (text == nullptr || !text->is_string())
      return fail(error, path + ".text", "must be a string");
    part = json{{"type", "text"}, {"text", *text}};
    return true;
  }
  if (type == "image") {
    if (!user)
      return fail(error, path + ".type", "image blocks are only allowed in user messages");
    const json* source = field(block, "source");
    if (!is_object(source))
      return fail(error, path + ".source", "Field required");
    const std::string_view source_type = string_field(source, "type");
    std::string url;
    if (source_type == "base64") {
      const json* media_type = field(source, "media_type");
      const json* data = field(source, "data");
      if (media_type == nullptr || !media_type->is_string() || data == nullptr ||
          !data->is_string())
        return fail(error, path + ".source", "media_type and data must be strings");
      url = "data:" + media_type->get<std::string>() + ";base64," + data->get<std::string>();
    } else if (source_type == "url") {
      const json* u = field(source, "url");
      if (u == nullptr || !u->is_string())
        return fail(error, path + ".source.url", "must be a string");
      url = u->get<std::string>();
    } else {
      return fail(error, path + ".source.type",
                  "image source type \"" + std::string(source_type) + "\" is not supported");
    }
    part = json{{"type", "image_url"}, {"image_url", json{{"url", std::move(url)}}}};
    return true;
  }
  if (type == "document") {
    const json* source = field(block, "source");
    const std::string_view source_type = string_field(source, "type");
    if (source_type == "text") {
      const json* data = field(source, "data");
      if (data == nullptr || !data->is_string())
        return fail(error, path + ".source.data", "must be a string");
      part = json{{"type", "text"}, {"text", *data}};
      return true;
    }
    if (source_type == "content") {
      const json* content = field(source, "content");
      if (content == nullptr || !(content->is_string() || content->is_array()))
        return fail(error, path + ".source.content", "must be a string or an array");
      part = json{{"type", "text"}, {"text", joined_text(content, kSystemSeparator)}};
      return true;
    }
    return fail(error, path + ".source.type",
                "document source type \"" + std::string(source_type) +
                    "\" is not supported (only text documents are)");
  }
  if (type.empty())
    return fail(error, path + ".type", "Field required");
  return fail(error, path + ".type",
              "content block type \"" + std::string(type) + "\" is not supported");
}

// Chat content for parts: a plain string for one text part (or none), else the parts.
json collapse(json parts) {
  if (parts.empty())
    return "";
  if (parts.size() == 1 && string_field(parts[0], "type") == "text")
    return parts[0]["text"];
  return parts;
}

// One Anthropic message -> chat messages appended to `out`: a user message's tool_result blocks
// become role "tool" messages placed before the rest of its content.
bool message_to_chat(const json& m, size_t i, json& out, ApiError& error) {
  const std::string path = index_path("messages", i);
  if (!m.is_object())
    return fail(error, path, "must be an object");
  const std::string_view role = string_field(m, "role");
  if (role != "user" && role != "assistant")
    return fail(error, path + ".role", "must be \"user\" or \"assistant\"");
  const bool user = role == "user";
  const json* content = field(m, "content");
  if (content == nullptr)
    return fail(error, path + ".content", "Field required");
  if (content->is_string()) {
    out.push_back(json{{"role", std::string(role)}, {"content", *content}});
    return true;
  }
  if (!content->is_array())
    return fail(error, path + ".content", "must be a string or an array of content blocks");

  json parts = json::array(), tool_calls = json::array(), tool_messages = json::array();
  for (size_t j = 0; j < content->size(); ++j) {
    const json& block = (*content)[j];
    const std::string block_path = index_path(path + ".content", j);
    const std::string_view type = string_field(block, "type");
    if (type == "thinking" || type == "redacted_thinking")
      continue; // the pivot format has no place for them; backends re-think
    if (type == "tool_use") {
      if (user)
        return fail(error, block_path + ".type",
                    "tool_use blocks are only allowed in assistant messages");
      const json* id = field(block, "id");
      const json* name = field(block, "name");
      if (id == nullptr || !id->is_string())
        return fail(error, block_path + ".id", "must be a string");
      if (name == nullptr || !name->is_string())
        return fail(error, block_path + ".name", "must be a string");
      const json* input = field(block, "input");
      tool_calls.push_back(json{
          {"id", *id},
          {"type", "function"},
          {"function", json{{"name", *name},
                            {"arguments", is_set(input) ? dump(*input) : std::string("{}")}}}});
      continue;
    }
    if (type == "tool_result") {
      if (!user)
        return fail(error, block_path + ".type",
                    "tool_result blocks are only allowed in user messages");
      const json* id = field(block, "tool_use_id");
      if (id == nullptr || !id->is_string())
        return fail(error, block_path + ".tool_use_id", "must be a string");
      std::string text;
      const json* result = field(block, "content");
      if (is_set(result) && result->is_string()) {
        text = result->get<std::string>();
      } else if (is_array(result)) {
        bool first = true;
        for (size_t k = 0; k < result->size(); ++k) {
          json part;
          if (!block_to_part((*result)[k], index_path(block_path + ".content", k), true, part,
                             error))
            return false;
          if (string_field(part, "type") != "text") {
            // Tool messages carry text only: an image result goes with the user content.
            parts.push_back(std::move(part));
            continue;
          }
          if (!first)
            text += kToolResultSeparator;
          text += string_field(part, "text");
          first = false;
        }
      } else if (is_set(result)) {
        return fail(error, block_path + ".content", "must be a string or an array");
      }
      tool_messages.push_back(
          json{{"role", "tool"}, {"tool_call_id", *id}, {"content", std::move(text)}});
      continue;
    }
    json part;
    if (!block_to_part(block, block_path, user, part, error))
      return false;
    parts.push_back(std::move(part));
  }

  if (user) {
    for (json& t : tool_messages)
      out.push_back(std::move(t));
    if (!parts.empty() || tool_messages.empty())
      out.push_back(json{{"role", "user"}, {"content", collapse(std::move(parts))}});
    return true;
  }
  json message = json{{"role", "assistant"}};
  if (parts.empty())
    message["content"] = tool_calls.empty() ? json("") : json(nullptr);
  else
    message["content"] = collapse(std::move(parts));
  if (!tool_calls.empty())
    message["tool_calls"] = std::move(tool_calls);
  out.push_back(std::move(message));
  return true;
}

bool tools_to_chat(const json& tools, json& out, ApiError& error) {
  if (!tools.is_array())
    return fail(error, "tools", "must be an array");
  json converted = json::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& tool = tools[i];
    const std::string path = index_path("tools", i);
    if (!tool.is_object())
      return fail(error, path, "must be an object");
    if (const json* type = field(tool, "type"); is_set(type) && as_string(type) != "custom")
      return fail(error, path + ".type",
                  "tool type \"" + (type->is_string() ? type->get<std::string>() : dump(*type)) +
                      "\" is not supported (only custom tools are)");
    const json* name = field(tool, "name");
    if (name == nullptr || !name->is_string())
      return fail(error, path + ".name", "must be a string");
    json function = json{{"name", *name}};
    if (const json* d = field(tool, "description"); d != nullptr && d->is_string())
      function["description"] = *d;
    const json* schema = field(tool, "input_schema");
    function["parameters"] = is_object(schema) ? *schema : default_input_schema();
    converted.push_back(json{{"type", "function"}, {"function", std::move(function)}});
  }
  if (!converted.empty())
    out["tools"] = std::move(converted);
  return true;
}

bool tool_choice_to_chat(const json& choice, json& out, ApiError& error) {
  if (!choice.is_object())
    return fail(error, "tool_choice", "must be an object");
  const std::string_view type = string_field(choice, "type");
  if (type == "auto") {
    out["tool_choice"] = "auto";
  } else if (type == "any") {
    out["tool_choice"] = "required";
  } else if (type == "none") {
    out["tool_choice"] = "none";
  } else if (type == "tool") {
    const json* name = field(choice, "name");
    if (name == nullptr || !name->is_string())
      return fail(error, "tool_choice.name", "must be a string");
    out["tool_choice"] = json{{"type", "function"}, {"function", json{{"name", *name}}}};
  } else {
    return fail(error, "tool_choice.type", "must be one of auto, any, tool, none");
  }
  if (const json* d = field(choice, "disable_parallel_tool_use");
      d != nullptr && d->is_boolean() && d->get<bool>())
    out["parallel_tool_calls"] = false;
  return true;
}

bool request_to_chat_impl(std::string_view body, std::string& chat, ApiError& error) {
  std::string why;
  const json req = parse(body, &why);
  if (req.is_discarded())
    return fail(error, "", "The request body is not valid JSON: " + why);
  if (!req.is_object())
    return fail(error, "", "The request body must be a JSON object.");

  json out = json::object();
  const json* model = field(req, "model");
  if (model == nullptr)
    return fail(error, "model", "Field required");
  if (!model->is_string())
    return fail(error, "model", "must be a string");
  out["model"] = *model;

  json messages = json::array();
  if (const json* system = field(req, "system"); is_set(system)) {
    std::string text;
    if (system->is_string()) {
      text = system->get<std::string>();
    } else if (system->is_array()) {
      for (size_t i = 0; i < system->size(); ++i) {
        const json& block = (*system)[i];
        const json* t = field(block, "text");
        if (string_field(block, "type") != "text" || t == nullptr || !t->is_string())
          return fail(error, index_path("system", i), "must be a text block");
        if (i > 0)
          text += kSystemSeparator;
        text += t->get<std::string>();
      }
    } else {
      return fail(error, "system", "must be a string or an array of text blocks");
    }
    if (!text.empty())
      messages.push_back(json{{"role", "system"}, {"content", std::move(text)}});
  }
  const json* input = field(req, "messages");
  if (input == nullptr)
    return fail(error, "messages", "Field required");
  if (!input->is_array())
    return fail(error, "messages", "must be an array");
  for (size_t i = 0; i < input->size(); ++i) {
    if (!message_to_chat((*input)[i], i, messages, error))
      return false;
  }
  out["messages"] = std::move(messages);

  const json* max_tokens = field(req, "max_tokens");
  if (max_tokens == nullptr)
    return fail(error, "max_tokens", "Field required");
  if (!max_tokens->is_number_unsigned() || max_tokens->get<uint64_t>() == 0)
    return fail(error, "max_tokens", "must be a positive integer");
  out["max_tokens"] = *max_tokens;

  if (const json* stop = field(req, "stop_sequences"); is_set(stop)) {
    if (!stop->is_array())
      return fail(error, "stop_sequences", "must be an array of strings");
    for (size_t i = 0; i < stop->size(); ++i) {
      if (!(*stop)[i].is_string())
        return fail(error, index_path("stop_sequences", i), "must be a string");
    }
    if (!stop->empty())
      out["stop"] = *stop;
  }
  for (const char* key : {"temperature", "top_p", "top_k"}) {
    const json* v = field(req, key);
    if (!is_set(v))
      continue;
    const bool ok = std::string_view(key) == "top_k" ? v->is_number_integer() : v->is_number();
    if (!ok)
      return fail(error, key, "must be a number");
    out[key] = *v;
  }
  if (const json* stream = field(req, "stream"); is_set(stream)) {
    if (!stream->is_boolean())
      return fail(error, "stream", "must be a boolean");
    if (stream->get<bool>()) {
      out["stream"] = true;
      out["stream_options"] = json{{"include_usage", true}};
    }
  }
  if (const json* tools = field(req, "tools"); is_set(tools) && !tools_to_chat(*tools, out, error))
    return false;
  if (const json* choice = field(req, "tool_choice");
      is_set(choice) && !tool_choice_to_chat(*choice, out, error))
    return false;
  if (const json* thinking = field(req, "thinking"); is_set(thinking)) {
    if (!thinking->is_object())
      return fail(error, "thinking", "must be an object");
    out["thinking"] = *thinking;
  }
  if (const json* user = field(field(req, "metadata"), "user_id");
      user != nullptr && user->is_string())
    out["user"] = *user;
  chat = dump(out);
  return true;
}

// ---- request_from_chat ----

// An image_url URL -> an Anthropic image block; nullopt-like null for what Anthropic cannot take.
json image_block(std::string_view url) {
  if (core::starts_with(url, "data:")) {
    const size_t comma = url.find(',');
    if (comma == std::string_view::npos)
      return nullptr;
    std::string_view header = url.substr(5, comma - 5);
    constexpr std::string_view kBase64 = ";base64";
    if (header.size() < kBase64.size() || header.substr(header.size() - kBase64.size()) != kBase64)
      return nullptr;
    header.remove_suffix(kBase64.size());
    return json{{"type", "image"},
                {"source", json{{"type", "base64"},
                                {"media_type", std::string(header)},
                                {"data", std::string(url.substr(comma + 1))}}}};
  }
  if (core::starts_with(url, "https://") || core::starts_with(url, "http://"))
    return json{{"type", "image"}, {"source", json{{"type", "url"}, {"url", std::string(url)}}}};
  return nullptr;
}

// Chat content -> Anthropic blocks: non-empty text parts (Anthropic rejects empty ones), and
// images when `images`. Other parts (audio, files, refusals) have no counterpart and are dropped.
json content_to_blocks(const json* content, bool images) {
  json blocks = json::array();
  if (content == nullptr)
    return blocks;
  if (content->is_string()) {
    if (!content->get_ref<const std::string&>().empty())
      blocks.push_back(text_block(content->get_ref<const std::string&>()));
    return blocks;
  }
  if (!content->is_array())
    return blocks;
  for (const json& part : *content) {
    const std::string_view type = string_field(part, "type");
    if (type == "text") {
      if (const std::string_view text = string_field(part, "text"); !text.empty())
        blocks.push_back(text_block(text));
    } else if (type == "image_url" && images) {
      const json* image_url = field(part, "image_url");
      const std::string_view url = image_url != nullptr && image_url->is_string()
                                       ? as_string(image_url)
                                       : string_field(image_url, "url");
      if (json block = image_block(url); !block.is_null())
        blocks.push_back(std::move(block));
    }
  }
  return blocks;
}

// Appends to `messages`, merging into the last message when it has the same role: Anthropic
// wants user and assistant to alternate (tool results are user content).
void append_message(json& messages, std::string_view role, json blocks) {
  if (blocks.empty())
    return;
  if (!messages.empty() && string_field(messages.back(), "role") == role) {
    json& content = messages.back()["content"];
    for (json& b : blocks)
      content.push_back(std::move(b));
    return;
  }
  messages.push_back(json{{"role", std::string(role)}, {"content", std::move(blocks)}});
}

json tool_calls_to_blocks(const json* tool_calls, size_t message_index) {
  json blocks = json::array();
  if (!is_array(tool_calls))
    return blocks;
  for (size_t k = 0; k < tool_calls->size(); ++k) {
    const json& call = (*tool_calls)[k];
    const json* function = field(call, "function");
    if (!is_object(function))
      continue;
    const json* arguments = field(function, "arguments");
    json input = arguments != nullptr && arguments->is_string() ? parse(as_string(arguments))
                 : is_object(arguments)                         ? *arguments
                                                                : json();
    if (!input.is_object())
      input = json::object();
    const std::string fallback = "toolu_" + std::to_string(message_index) + "_" + std::to_string(k);
    blocks.push_back(json{{"type", "tool_use"},
                          {"id", tool_id(string_field(call, "id"), fallback)},
                          {"name", std::string(string_field(function, "name"))},
                          {"input", std::move(input)}});
  }
  return blocks;
}

json tools_from_chat(const json* tools) {
  json out = json::array();
  if (!is_array(tools))
    return out;
  for (const json& tool : *tools) {
    const json* function = field(tool, "function");
    const std::string_view type = string_field(tool, "type");
    if (!is_object(function) || (!type.empty() && type != "function"))
      continue;
    const std::string_view name = string_field(function, "name");
    if (name.empty())
      continue;
    json t = json{{"name", std::string(name)}};
    if (const json* d = field(function, "description"); d != nullptr && d->is_string())
      t["description"] = *d;
    const json* parameters = field(function, "parameters");
    t["input_schema"] = is_object(parameters) ? *parameters : default_input_schema();
    out.push_back(std::move(t));
  }
  return out;
}

// tool_choice for an Anthropic request, or null when none (or not understood).
json tool_choice_from_chat(const json* choice) {
  if (choice == nullptr)
    return nullptr;
  const std::string_view s = as_string(choice);
  if (s == "auto")
    return json{{"type", "auto"}};
  if (s == "required")
    return json{{"type", "any"}};
  if (s == "none")
    return json{{"type", "none"}};
  if (string_field(choice, "type") == "function") {
    const std::string_view name = string_field(field(choice, "function"), "name");
    if (!name.empty())
      return json{{"type", "tool"}, {"name", std::string(name)}};
  }
  return nullptr;
}

std::string request_from_chat_impl(std::string_view chat_body) {
  const json req = parse(chat_body);
  if (!req.is_object())
    return "{}";

  std::string system;
  json messages = json::array();
  if (const json* input = field(req, "messages"); is_array(input)) {
    for (size_t i = 0; i < input->size(); ++i) {
      const json& m = (*input)[i];
      const std::string_view role = string_field(m, "role");
      const json* content = field(m, "content");
      if (role == "system" || role == "developer") {
        std::string text = joined_text(content, kSystemSeparator);
        if (text.empty())
          continue;
        if (!system.empty())
          system += kSystemSeparator;
        system += text;
      } else if (role == "user") {
        append_message(messages, "user", content_to_blocks(content, true));
      } else if (role == "assistant") {
        json blocks = content_to_blocks(content, false);
        for (json& b : tool_calls_to_blocks(field(m, "tool_calls"), i))
          blocks.push_back(std::move(b));
        append_message(messages, "assistant", std::move(blocks));
      } else if (role == "tool") {
        json result = json{
            {"type", "tool_result"},
            {"tool_use_id", tool_id(string_field(m, "tool_call_id"), "toolu_" + std::to_string(i))},
            {"content", joined_text(content, kToolResultSeparator)}};
        append_message(messages, "user", json::array({std::move(result)}));
      }
    }
  }

  uint64_t max_tokens = count_field(&req, "max_completion_tokens");
  if (max_tokens == 0)
    max_tokens = count_field(&req, "max_tokens");
  if (max_tokens == 0)
    max_tokens = kDefaultMaxTokens;

  json thinking;
  if (const json* t = field(req, "thinking"); is_object(t)) {
    thinking = *t;
  } else {
    const std::string_view effort = string_field(req, "reasoning_effort");
    const uint64_t budget = effort == "low"      ? kBudgetLow
                            : effort == "medium" ? kBudgetMedium
                            : effort == "high"   ? kBudgetHigh
                                                 : 0;
    if (budget > 0)
      thinking = json{{"type", "enabled"}, {"budget_tokens", budget}};
  }
  const bool thinking_on = string_field(thinking, "type") == "enabled";
  if (thinking_on) {
    const uint64_t budget = count_field(&thinking, "budget_tokens");
    if (max_tokens <= budget)
      max_tokens = budget + kAnswerHeadroom;
  }

  json out = json::object();
  if (const json* model = field(req, "model"); model != nullptr && model->is_string())
    out["model"] = *model;
  if (!system.empty())
    out["system"] = std::move(system);
  out["messages"] = std::move(messages);
  out["max_tokens"] = max_tokens;

  json stop_sequences = json::array();
  const json* stop = field(req, "stop");
  auto add_stop = [&](const json& s) {
    // Anthropic rejects empty or whitespace-only stop sequences.
    if (s.is_string() && !core::trim(s.get_ref<const std::string&>()).empty())
      stop_sequences.push_back(s);
  };
  if (stop != nullptr && stop->is_string())
    add_stop(*stop);
  else if (is_array(stop))
    for (const json& s : *stop)
      add_stop(s);
  if (!stop_sequences.empty())
    out["stop_sequences"] = std::move(stop_sequences);

  // Anthropic takes no temperature or top_k with thinking, and top_p only in [0.95, 1].
  if (const json* t = field(req, "temperature"); t != nullptr && t->is_number() && !thinking_on)
    out["temperature"] = std::min(t->get<double>(), kMaxTemperature); // OpenAI's range is 0..2
  if (const json* p = field(req, "top_p");
      p != nullptr && p->is_number() && (!thinking_on || p->get<double>() >= kThinkingMinTopP))
    out["top_p"] = *p;
  if (const json* k = field(req, "top_k"); k != nullptr && k->is_number_integer() && !thinking_on)
    out["top_k"] = *k;
  if (const json* s = field(req, "stream"); s != nullptr && s->is_boolean())
    out["stream"] = *s;

  json tools = tools_from_chat(field(req, "tools"));
  if (!tools.empty()) {
    out["tools"] = std::move(tools);
    json choice = tool_choice_from_chat(field(req, "tool_choice"));
    const json* parallel = field(req, "parallel_tool_calls");
    if (parallel != nullptr && parallel->is_boolean() && !parallel->get<bool>()) {
      if (choice.is_null())
        choice = json{{"type", "auto"}};
      if (string_field(choice, "type") != "none")
        choice["disable_parallel_tool_use"] = true;
    }
    if (!choice.is_null())
      out["tool_choice"] = std::move(choice);
  }
  if (!thinking.is_null())
    out["thinking"] = std::move(thinking);
  if (const json* user = field(req, "user"); user != nullptr && user->is_string())
    out["metadata"] = json{{"user_id", *user}};
  return dump(out);
}

// ---- Answers ----

std::string upstream_error(std::string message) {
  json j = json{{"error", json{{"message", std::move(message)},
                               {"type", "upstream_error"},
                               {"param", nullptr},
                               {"code", "upstream_broken"}}}};
  return dump(j);
}

std::string response_to_chat_impl(std::string_view body, int64_t created) {
  const json msg = parse(body);
  if (string_field(msg, "type") == "error")
    return error_to_openai(body, 0);
  const json* content = field(msg, "content");
  if (!is_array(content))
    return upstream_error("The backend's answer is not an Anthropic message.");

  std::string text, thinking;
  bool has_text = false, has_thinking = false;
  json tool_calls = json::array();
  for (const json& block : *content) {
    const std::string_view type = string_field(block, "type");
    if (type == "text") {
      text += string_field(block, "text");
      has_text = true;
    } else if (type == "thinking") {
      thinking += string_field(block, "thinking");
      has_thinking = true;
    } else if (type == "tool_use") {
      const json* input = field(block, "input");
      tool_calls.push_back(json{
          {"id", std::string(string_field(block, "id"))},
          {"type", "function"},
          {"function", json{{"name", std::string(string_field(block, "name"))},
                            {"arguments", is_set(input) ? dump(*input) : std::string("{}")}}}});
    }
  }
  json message = json{{"role", "assistant"}};
  message["content"] = has_text || tool_calls.empty() ? json(std::move(text)) : json(nullptr);
  if (!tool_calls.empty())
    message["tool_calls"] = std::move(tool_calls);
  if (has_thinking)
    message["reasoning_content"] = std::move(thinking);

  const json* usage = field(msg, "usage");
  const uint64_t cache_read = count_field(usage, "cache_read_input_tokens");
  const uint64_t prompt = count_field(usage, "input_tokens") + cache_read +
                          count_field(usage, "cache_creation_input_tokens");
  const uint64_t completion = count_field(usage, "output_tokens");

  json out = json{{"id", std::string(string_field(msg, "id"))},
                  {"object", "chat.completion"},
                  {"created", created},
                  {"model", std::string(string_field(msg, "model"))}};
  out["choices"] = json::array(
      {json{{"index", 0},
            {"message", std::move(message)},
            {"logprobs", nullptr},
            {"finish_reason", std::string(finish_reason_for(string_field(msg, "stop_reason")))}}});
  out["usage"] = json{{"prompt_tokens", prompt},
                      {"completion_tokens", completion},
                      {"total_tokens", prompt + completion},
                      {"prompt_tokens_details", json{{"cached_tokens", cache_read}}}};
  return dump(out);
}

// Anthropic usage for chat usage: input_tokens excludes the cached tokens prompt_tokens counts.
json usage_from_chat(uint64_t prompt, uint64_t completion, uint64_t cached) {
  json usage =
      json{{"input_tokens", prompt > cached ? prompt - cached : 0}, {"output_tokens", completion}};
  if (cached > 0)
    usage["cache_read_input_tokens"] = cached;
  return usage;
}

uint64_t cached_tokens(const json* usage) {
  return count_field(field(usage, "prompt_tokens_details"), "cached_tokens");
}

std::string response_from_chat_impl(std::string_view body) {
  const json resp = parse(body);
  if (is_set(field(resp, "error")))
    return error_from_openai(body, 0);
  const json* choices = field(resp, "choices");
  if (!is_array(choices) || choices->empty() || !(*choices)[0].is_object()) {
    ApiError e;
    e.status = 502;
    e.message = "The backend's answer is not a chat completion.";
    return anthropic::error_body(e);
  }
  const json& choice = (*choices)[0];
  const json* message = field(choice, "message");

  json content = json::array();
  std::string_view reasoning = string_field(message, "reasoning_content");
  if (reasoning.empty())
    reasoning = string_field(message, "reasoning");
  if (!reasoning.empty())
    content.push_back(
        json{{"type", "thinking"}, {"thinking", std::string(reasoning)}, {"signature", ""}});
  std::string text = joined_text(field(message, "content"), "");
  if (text.empty())
    text = string_field(message, "refusal");
  if (!text.empty())
    content.push_back(text_block(text));
  for (json& b : tool_calls_to_blocks(field(message, "tool_calls"), 0))
    content.push_back(std::move(b));
  if (const json* call = field(message, "function_call"); is_object(call)) {
    // The legacy single call: shaped as a one-element tool_calls list.
    json wrapped = json::array({json{{"id", "toolu_function_call"}, {"function", *call}}});
    for (json& b : tool_calls_to_blocks(&wrapped, 0))
      content.push_back(std::move(b));
  }
  if (content.empty())
    content.push_back(text_block("")); // Anthropic's content is never empty

  const json* usage = field(resp, "usage");
  json out =
      json{{"id", message_id(string_field(resp, "id"))},
           {"type", "message"},
           {"role", "assistant"},
           {"model", std::string(string_field(resp, "model"))},
           {"content", std::move(content)},
           {"stop_reason", std::string(stop_reason_for(string_field(choice, "finish_reason")))},
           {"stop_sequence", nullptr}};
  out["usage"] = usage_from_chat(count_field(usage, "prompt_tokens"),
                                 count_field(usage, "completion_tokens"), cached_tokens(usage));
  return dump(out);
}

// ---- Errors ----

// The message an error body carries, in the shapes servers use; else its text.
std::string error_message(const json& j, std::string_view body) {
  const json* error = field(j, "error");
  if (error != nullptr && error->is_string() && !error->get_ref<const std::string&>().empty())
    return error->get<std::string>();
  for (const json* holder : {error, &j}) {
    if (const std::string_view m = string_field(holder, "message"); !m.empty())
      return std::string(m);
  }
  if (const json* detail = field(j, "detail"); is_set(detail)) // FastAPI / vLLM
    return detail->is_string() ? detail->get<std::string>() : dump(*detail);
  return std::string(core::utf8_prefix(core::trim(body), kMaxErrorText));
}

std::string fallback_message(int status) {
  return "The backend answered with HTTP status " + std::to_string(status) + ".";
}

std::string error_to_openai_impl(std::string_view body, int status) {
  const json j = parse(body);
  std::string type(string_field(field(j, "error"), "type"));
  if (type.empty())
    type = error_type_for_status(status);
  std::string message = error_message(j, body);
  if (message.empty())
    message = fallback_message(status);
  json code = nullptr;
  if (type == "api_error") {
    type = "server_error";
  } else if (type == "overloaded_error") {
    type = "server_error";
    code = "overloaded";
  } else if (type == "request_too_large") {
    type = "invalid_request_error";
    code = "request_too_large";
  }
  json out = json{{"error", json{{"message", std::move(message)},
                                 {"type", std::move(type)},
                                 {"param", nullptr},
                                 {"code", std::move(code)}}}};
  return dump(out);
}

bool is_error_status(int status) {
  return status >= 400 && status < 600;
}

std::string error_from_openai_impl(std::string_view body, int status) {
  const json j = parse(body);
  ApiError e;
  e.status = status;
  if (!is_error_status(status)) {
    // In a stream there is no status; vLLM puts it in the error's "code".
    const json* code = field(field(j, "error"), "code");
    const uint64_t v = code != nullptr && code->is_number_unsigned() ? code->get<uint64_t>() : 0;
    if (v >= 400 && v < 600)
      e.status = static_cast<int>(v);
  }
  e.message = error_message(j, body);
  if (e.message.empty())
    e.message = fallback_message(status);
  return anthropic::error_body(e);
}

} // namespace

// ---- Public functions: each catches what a bug or an allocation failure could throw ----

bool request_to_chat(std::string_view body, std::string& chat, ApiError& error) {
  try {
    return request_to_chat_impl(body, chat, error);
  } catch (const std::exception& e) {
    error = internal_error(std::string("translating the Anthropic request failed: ") + e.what());
    return false;
  }
}

std::string request_from_chat(std::string_view chat_body) {
  try {
    return request_from_chat_impl(chat_body);
  } catch (const std::exception&) {
    return "{}";
  }
}

std::string response_to_chat(std::string_view anthropic_body) {
  return response_to_chat(anthropic_body, now());
}

std::string response_to_chat(std::string_view anthropic_body, int64_t created) {
  try {
    return response_to_chat_impl(anthropic_body, created);
  } catch (const std::exception&) {
    return upstream_error("The backend's answer could not be translated.");
  }
}

std::string response_from_chat(std::string_view chat_body) {
  try {
    return response_from_chat_impl(chat_body);
  } catch (const std::exception&) {
    ApiError e;
    e.status = 502;
    e.message = "The backend's answer could not be translated.";
    return anthropic::error_body(e);
  }
}

std::string_view finish_reason_for(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded")
    return "length";
  if (stop_reason == "tool_use")
    return "tool_calls";
  if (stop_reason == "refusal")
    return "content_filter";
  return "stop"; // end_turn, stop_sequence, pause_turn, or none given
}

std::string_view stop_reason_for(std::string_view finish_reason) {
  if (finish_reason == "tool_calls" || finish_reason == "function_call")
    return "tool_use";
  if (finish_reason == "content_filter")
    return "refusal";
  if (finish_reason == "length")
    return "max_tokens";
  return "end_turn";
}

std::string_view error_type_for_status(int status) {
  switch (status) {
  case 400:
    return "invalid_request_error";
  case 401:
    return "authentication_error";
  case 403:
    return "permission_error";
  case 404:
    return "not_found_error";
  case 413:
    return "request_too_large";
  case 429:
    return "rate_limit_error";
  case 503:
  case 529:
    return "overloaded_error";
  default:
    break;
  }
  if (status >= 400 && status < 500)
    return "invalid_request_error";
  return "api_error";
}

std::string error_body(const ApiError& e) {
  try {
    json j = json{{"type", "error"},
                  {"error", json{{"type", std::string(error_type_for_status(e.status))},
                                 {"message", e.message}}}};
    return dump(j);
  } catch (const std::exception&) {
    return R"({"type":"error","error":{"type":"api_error","message":"error"}})";
  }
}

std::string error_to_openai(std::string_view anthropic_error_body, int status) {
  try {
    return error_to_openai_impl(anthropic_error_body, status);
  } catch (const std::exception&) {
    return R"({"error":{"message":"error","type":"server_error","param":null,"code":null}})";
  }
}

std::string error_from_openai(std::string_view openai_error_body, int status) {
  try {
    return error_from_openai_impl(openai_error_body, status);
  } catch (const std::exception&) {
    return R"({"type":"error","error":{"type":"api_error","message":"error"}})";
  }
}

// ---- StreamToChat ----

StreamToChat::StreamToChat(int64_t created, bool include_usage)
    : created_(created != 0 ? created : now()), include_usage_(include_usage) {}

void StreamToChat::feed(std::string_view bytes, std::string& out) {
  try {
    for (const std::string& data : sse_.feed(bytes))
      event(data, out);
  } catch (const std::exception&) {
    // Only an allocation failure gets here; the event is lost, the stream goes on.
  }
}

void StreamToChat::finish(std::string& out) {
  try {
    // An event the upstream did not terminate with a blank line still counts.
    for (const std::string& data : sse_.feed("\n\n"))
      event(data, out);
    if (done_ || !started_)
      return;
    if (!finished_)
      finish_chunks(out, "stop");
    out += "data: [DONE]\n\n";
    done_ = true;
  } catch (const std::exception&) {
  }
}

void StreamToChat::chunk(std::string& out, std::string_view delta_json,
                         std::string_view finish_reason) {
  constexpr std::string_view kRoleDelta = R"({"role":"assistant","content":""})";
  if (!started_) {
    started_ = true;
    // Clients expect the role first, whatever the upstream began with.
    if (delta_json != kRoleDelta)
      chunk(out, kRoleDelta);
  }
  // id_ and model_ come from parsed (UTF-8 validated) JSON; delta_json is dumped JSON.
  out += "data: {\"id\":";
  core::append_json_string(out, id_);
  out += ",\"object\":\"chat.completion.chunk\",\"created\":";
  out += std::to_string(created_);
  out += ",\"model\":";
  core::append_json_string(out, model_);
  out += ",\"choices\":[{\"index\":0,\"delta\":";
  out += delta_json;
  out += ",\"finish_reason\":";
  if (finish_reason.empty())
    out += "null";
  else
    core::append_json_string(out, finish_reason);
  out += "}]}\n\n";
}

void StreamToChat::finish_chunks(std::string& out, std::string_view finish_reason) {
  chunk(out, "{}", finish_reason);
  finished_ = true;
  if (!include_usage_)
    return;
  json usage = json{{"prompt_tokens", prompt_tokens_},
                    {"completion_tokens", completion_tokens_},
                    {"total_tokens", prompt_tokens_ + completion_tokens_}};
  if (cached_tokens_ > 0)
    usage["prompt_tokens_details"] = json{{"cached_tokens", cached_tokens_}};
  json c =
      json{{"id", id_},       {"object", "chat.completion.chunk"}, {"created", created_},
           {"model", model_}, {"choices", json::array()},          {"usage", std::move(usage)}};
  out += "data: ";
  out += dump(c);
  out += "\n\n";
}

void StreamToChat::event(std::string_view data, std::string& out) {
  if (done_)
    return;
  const json ev = parse(data);
  const std::string_view type = string_field(ev, "type");
  auto read_usage = [&](const json* usage) {
    if (const json* input = field(usage, "input_tokens"); input != nullptr) {
      cached_tokens_ = count_field(usage, "cache_read_input_tokens");
      prompt_tokens_ = count_field(usage, "input_tokens") + cached_tokens_ +
                       count_field(usage, "cache_creation_input_tokens");
    }
    if (field(usage, "output_tokens") != nullptr)
      completion_tokens_ = count_field(usage, "output_tokens");
  };
  auto content_delta = [&](const char* key, std::string_view text) {
    if (!text.empty())
      chunk(out, dump(json{{key, std::string(text)}}));
  };

  if (type == "message_start") {
    const json* message = field(ev, "message");
    id_ = string_field(message, "id");
    model_ = string_field(message, "model");
    read_usage(field(message, "usage"));
    if (!started_)
      chunk(out, R"({"role":"assistant","content":""})");
  } else if (type == "content_block_start") {
    const uint64_t index = count_field(&ev, "index");
    const json* block = field(ev, "content_block");
    const std::string_view block_type = string_field(block, "type");
    Block& b = blocks_[index];
    b = Block{};
    if (block_type == "text") {
      b.kind = BlockKind::Text;
      content_delta("content", string_field(block, "text"));
    } else if (block_type == "thinking") {
      b.kind = BlockKind::Thinking;
      content_delta("reasoning_content", string_field(block, "thinking"));
    } else if (block_type == "tool_use") {
      b.kind = BlockKind::ToolUse;
      b.tool_index = next_tool_++;
      if (const json* input = field(block, "input"); is_object(input) && !input->empty())
        b.start_input = dump(*input);
      json call = json{{"index", b.tool_index},
                       {"id", std::string(string_field(block, "id"))},
                       {"type", "function"},
                       {"function", json{{"name", std::string(string_field(block, "name"))},
                                         {"arguments", ""}}}};
      chunk(out, dump(json{{"tool_calls", json::array({std::move(call)})}}));
    }
  } else if (type == "content_block_delta") {
    const json* delta = field(ev, "delta");
    const std::string_view delta_type = string_field(delta, "type");
    if (delta_type == "text_delta") {
      content_delta("content", string_field(delta, "text"));
    } else if (delta_type == "thinking_delta") {
      content_delta("reasoning_content", string_field(delta, "thinking"));
    } else if (delta_type == "input_json_delta") {
      auto it = blocks_.find(count_field(&ev, "index"));
      const std::string_view partial = string_field(delta, "partial_json");
      if (it == blocks_.end() || it->second.kind != BlockKind::ToolUse || partial.empty())
        return;
      it->second.got_delta = true;
      json call = json{{"index", it->second.tool_index},
                       {"function", json{{"arguments", std::string(partial)}}}};
      chunk(out, dump(json{{"tool_calls", json::array({std::move(call)})}}));
    }
  } else if (type == "content_block_stop") {
    // A tool_use whose input came whole in its start (no deltas): send it as the arguments.
    auto it = blocks_.find(count_field(&ev, "index"));
    if (it == blocks_.end() || it->second.kind != BlockKind::ToolUse || it->second.got_delta ||
        it->second.start_input.empty())
      return;
    it->second.got_delta = true;
    json call = json{{"index", it->second.tool_index},
                     {"function", json{{"arguments", it->second.start_input}}}};
    chunk(out, dump(json{{"tool_calls", json::array({std::move(call)})}}));
  } else if (type == "message_delta") {
    read_usage(field(ev, "usage"));
    if (!finished_)
      finish_chunks(out, finish_reason_for(string_field(field(ev, "delta"), "stop_reason")));
  } else if (type == "message_stop") {
    if (!finished_)
      finish_chunks(out, "stop");
    out += "data: [DONE]\n\n";
    done_ = true;
  } else if (type == "error") {
    out += "data: ";
    out += error_to_openai(data, 0);
    out += "\n\n";
    done_ = true;
  }
  // ping and unknown events: nothing to say.
}

// ---- StreamFromChat ----

void StreamFromChat::feed(std::string_view bytes, std::string& out) {
  try {
    for (const std::string& data : sse_.feed(bytes))
      event(data, out);
  } catch (const std::exception&) {
    // Only an allocation failure gets here; the event is lost, the stream goes on.
  }
}

void StreamFromChat::finish(std::string& out) {
  try {
    for (const std::string& data : sse_.feed("\n\n"))
      event(data, out);
    if (done_ || !started_)
      return;
    end(out);
  } catch (const std::exception&) {
  }
}

void StreamFromChat::start(std::string& out) {
  json message = json{{"id", id_},
                      {"type", "message"},
                      {"role", "assistant"},
                      {"model", model_},
                      {"content", json::array()},
                      {"stop_reason", nullptr},
                      {"stop_sequence", nullptr},
                      {"usage", json{{"input_tokens", 0}, {"output_tokens", 0}}}};
  out +=
      sse_event("message_start", json{{"type", "message_start"}, {"message", std::move(message)}});
  started_ = true;
}

void StreamFromChat::open_block(std::string& out, Open kind, const std::string& block_json) {
  close_block(out);
  out += "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":";
  out += std::to_string(next_block_);
  out += ",\"content_block\":";
  out += block_json;
  out += "}\n\n";
  open_ = kind;
  ++next_block_;
}

void StreamFromChat::close_block(std::string& out) {
  if (open_ == Open::None)
    return;
  out += sse_event("content_block_stop",
                   json{{"type", "content_block_stop"}, {"index", next_block_ - 1}});
  open_ = Open::None;
}

void StreamFromChat::end(std::string& out) {
  if (done_)
    return;
  if (!started_)
    start(out); // a bare [DONE]: still a complete (empty) message
  close_block(out);
  json delta = json{{"stop_reason", std::string(stop_reason_for(finish_reason_))},
                    {"stop_sequence", nullptr}};
  out += sse_event(
      "message_delta",
      json{{"type", "message_delta"},
           {"delta", std::move(delta)},
           {"usage", usage_from_chat(prompt_tokens_, completion_tokens_, cached_tokens_)}});
  out += sse_event("message_stop", json{{"type", "message_stop"}});
  done_ = true;
}

void StreamFromChat::event(std::string_view data, std::string& out) {
  if (done_)
    return;
  if (core::trim(data) == "[DONE]") {
    end(out);
    return;
  }
  const json c = parse(data);
  if (!c.is_object())
    return;
  if (is_set(field(c, "error"))) {
    out += "event: error\ndata: ";
    out += error_from_openai(data, 0);
    out += "\n\n";
    done_ = true;
    return;
  }
  if (!started_) {
    id_ = message_id(string_field(c, "id"));
    model_ = string_field(c, "model");
    start(out);
  }
  if (const json* usage = field(c, "usage"); is_object(usage)) {
    prompt_tokens_ = count_field(usage, "prompt_tokens");
    completion_tokens_ = count_field(usage, "completion_tokens");
    cached_tokens_ = cached_tokens(usage);
  }
  const json* choices = field(c, "choices");
  if (!is_array(choices))
    return;
  auto delta_event = [&](json delta) {
    out += sse_event("content_block_delta", json{{"type", "content_block_delta"},
                                                 {"index", next_block_ - 1},
                                                 {"delta", std::move(delta)}});
  };
  for (const json& choice : *choices) {
    if (!choice.is_object() || count_field(&choice, "index") != 0)
      continue; // only the first choice has a place in an Anthropic message
    const json* delta = field(choice, "delta");
    std::string_view reasoning = string_field(delta, "reasoning_content");
    if (reasoning.empty())
      reasoning = string_field(delta, "reasoning");
    if (!reasoning.empty()) {
      if (open_ != Open::Thinking)
        open_block(out, Open::Thinking, R"({"type":"thinking","thinking":"","signature":""})");
      delta_event(json{{"type", "thinking_delta"}, {"thinking", std::string(reasoning)}});
    }
    if (const std::string_view text = string_field(delta, "content"); !text.empty()) {
      if (open_ != Open::Text)
        open_block(out, Open::Text, R"({"type":"text","text":""})");
      delta_event(json{{"type", "text_delta"}, {"text", std::string(text)}});
    }
    if (const json* calls = field(delta, "tool_calls"); is_array(calls)) {
      for (size_t k = 0; k < calls->size(); ++k) {
        const json& call = (*calls)[k];
        const json* function = field(call, "function");
        const std::string_view id = string_field(call, "id");
        const std::string_view name = string_field(function, "name");
        const std::string_view arguments = string_field(function, "arguments");
        // The chat index names the call. Backends that leave it out (Ollama before 0.4.7, some
        // Gemini proxies) send one call at a time, often whole in one piece: a piece that names
        // a function starts the next call, any other continues the last one.
        const json* index = field(call, "index");
        int64_t i = 0;
        if (index != nullptr && index->is_number_integer()) {
          i = index->get<int64_t>();
        } else if (!tools_.empty()) {
          const int64_t last = *tools_.rbegin();
          i = name.empty() ? open_tool_
                           : (last < std::numeric_limits<int64_t>::max() ? last + 1 : last);
        }
        if (!tools_.contains(i) && (!id.empty() || !name.empty() || !arguments.empty())) {
          tools_.insert(i);
          json block = json{{"type", "tool_use"},
                            {"id", tool_id(id, "toolu_" + std::to_string(next_block_))},
                            {"name", std::string(name)},
                            {"input", json::object()}};
          open_block(out, Open::ToolUse, dump(block));
          open_tool_ = i;
        }
        // Arguments of a call whose block was closed cannot be sent any more (Anthropic blocks
        // do not interleave); backends stream calls one after the other.
        if (!arguments.empty() && open_ == Open::ToolUse && open_tool_ == i)
          delta_event(json{{"type", "input_json_delta"}, {"partial_json", std::string(arguments)}});
      }
    }
    if (const std::string_view reason = string_field(choice, "finish_reason"); !reason.empty())
      finish_reason_ = reason;
  }
}

} // namespace semrouter::openai::anthropic
