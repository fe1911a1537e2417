#include "openai/responses_api.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/strings.h"
#include "openai/sse.h"

namespace semrouter::openai::responses_api {
namespace {

// Ordered, so that translated bodies keep the client's key order and events read naturally
// ("type" first, "sequence_number" last).
using json = nlohmann::ordered_json;

// JSON nested deeper than this is refused before parsing: nlohmann's copy, comparison and dump
// recurse, and a hostile body of a few megabytes of '[' would overflow the stack.
constexpr size_t kMaxDepth = 256;

bool nesting_within(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

// Never throws: a discarded value for invalid JSON (invalid UTF-8 included) or too deep nesting.
json parse(std::string_view text) {
  if (!nesting_within(text, kMaxDepth))
    return json(json::value_t::discarded);
  return json::parse(text.begin(), text.end(), nullptr, false);
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const json* find(const json& j, const char* key) {
  if (!j.is_object())
    return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

// A present, non-null member.
const json* given(const json& j, const char* key) {
  const json* v = find(j, key);
  return v && !v->is_null() ? v : nullptr;
}

std::string str(const json& j, const char* key) {
  const json* v = find(j, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

uint64_t count(const json& j, const char* key) {
  const json* v = find(j, key);
  return v && v->is_number_unsigned() ? v->get<uint64_t>() : 0;
}

int64_t integer(const json& j, const char* key) {
  const json* v = find(j, key);
  return v && v->is_number_integer() ? v->get<int64_t>() : 0;
}

// The text of a chat content value: a string, or its text parts joined.
std::string content_text(const json& c) {
  if (c.is_string())
    return c.get<std::string>();
  std::string out;
  if (c.is_array())
    for (const json& p : c)
      out += str(p, "text");
  return out;
}

std::string server_error_body(std::string message) {
  return error_body({502, "server_error", "upstream_broken", std::move(message), ""});
}

// ---------------------------------------------------------------------------------------------
// Request: Responses -> chat

bool is_hosted_tool(std::string_view type) {
  static const std::set<std::string_view> kHosted = {
      "file_search", "computer_use_preview", "computer_use", "code_interpreter", "image_generation",
      "mcp",         "local_shell"};
  return core::starts_with(type, "web_search") || kHosted.count(type) > 0;
}

class RequestTranslator {
public:
  RequestTranslator(ChatRequest& out, ApiError& error) : out_(out), error_(error) {}

  bool run(const json& req) {
    if (!req.is_object())
      return fail("The request body must be a JSON object.", "");
    if (given(req, "previous_response_id"))
      unsupported("previous_response_id: the router keeps no conversation state");
    if (given(req, "conversation"))
      unsupported("conversation: the router keeps no conversation state");
    if (given(req, "prompt"))
      unsupported("prompt: stored prompt templates live in OpenAI's store");

    json body = json::object();
    if (const json* model = given(req, "model")) {
      if (!model->is_string())
        return fail("model: must be a string", "model");
      body["model"] = *model;
    }
    json messages = json::array();
    if (const json* instructions = given(req, "instructions")) {
      if (!instructions->is_string())
        return fail("instructions: must be a string", "instructions");
      if (!instructions->get_ref<const std::string&>().empty())
        messages.push_back({{"role", "system"}, {"content", *instructions}});
    }
    const json* input = given(req, "input");
    if (!input)
      return fail("Missing required parameter: 'input'.", "input");
    if (!input_items(*input, messages))
      return false;
    if (messages.empty() && out_.unsupported.empty())
      return fail("input: must hold at least one message", "input");
    body["messages"] = std::move(messages);

    if (const json* tools = given(req, "tools"); tools && !translate_tools(*tools, body))
      return false;
    if (const json* choice = given(req, "tool_choice");
        choice && !translate_tool_choice(*choice, body))
      return false;
    if (const json* v = given(req, "parallel_tool_calls")) {
      if (!v->is_boolean())
        return fail("parallel_tool_calls: must be a boolean", "parallel_tool_calls");
      body["parallel_tool_calls"] = *v;
    }
    if (const json* v = given(req, "max_output_tokens")) {
      if (!v->is_number_integer())
        return fail("max_output_tokens: must be an integer", "max_output_tokens");
      body["max_tokens"] = *v;
    }
    for (const char* key : {"temperature", "top_p"}) {
      if (const json* v = given(req, key)) {
        if (!v->is_number())
          return fail(std::string(key) + ": must be a number", key);
        body[key] = *v;
      }
    }
    if (const json* v = given(req, "user")) {
      if (!v->is_string())
        return fail("user: must be a string", "user");
      body["user"] = *v;
    }
    if (const json* v = given(req, "reasoning")) {
      if (!v->is_object())
        return fail("reasoning: must be an object", "reasoning");
      if (const json* effort = given(*v, "effort")) {
        if (!effort->is_string())
          return fail("reasoning.effort: must be a string", "reasoning.effort");
        body["reasoning_effort"] = *effort;
      }
    }
    if (const json* v = given(req, "text"); v && !translate_text(*v, body))
      return false;
    if (const json* v = given(req, "stream")) {
      if (!v->is_boolean())
        return fail("stream: must be a boolean", "stream");
      out_.stream = v->get<bool>();
      if (out_.stream) {
        body["stream"] = true;
        body["stream_options"] = {{"include_usage", true}};
      }
    }
    // store, include, truncation, metadata, background, service_tier, ...: nothing in chat to
    // carry them to, and nothing a chat backend would do differently for them.
    out_.body = dump(body);
    return true;
  }

private:
  bool fail(std::string message, std::string param) {
    error_ = invalid_request(std::move(message), std::move(param));
    return false;
  }

  void unsupported(std::string what) {
    if (out_.unsupported.empty())
      out_.unsupported = std::move(what);
  }

  static std::string at(const std::string& where, size_t i) {
    return where + "[" + std::to_string(i) + "]";
  }

  const json* required_string(const json& obj, const char* key, const std::string& where) {
    const json* v = find(obj, key);
    if (!v || !v->is_string()) {
      fail(where + "." + key + ": must be a string", where + "." + key);
      return nullptr;
    }
    return v;
  }

  // A Responses content value (a string or an array of parts) as a chat one. `text_only`: the
  // target (a tool message) takes text alone, so images and files are unsupported.
  bool translate_content(const json& content, const std::string& where, bool text_only,
                         json& result) {
    if (content.is_string()) {
      result = content;
      return true;
    }
    if (!content.is_array())
      return fail(where + ": must be a string or an array of content parts", where);
    json parts = json::array();
    bool only_text = true;
    for (size_t i = 0; i < content.size(); ++i) {
      const json& p = content[i];
      const std::string here = at(where, i);
      if (!p.is_object())
        return fail(here + ": must be an object", here);
      const json* type = find(p, "type");
      if (!type || !type->is_string())
        return fail(here + ".type: must be a string", here + ".type");
      const std::string& t = type->get_ref<const std::string&>();
      if (t == "input_text" || t == "output_text" || t == "text") {
        const json* text = required_string(p, "text", here);
        if (!text)
          return false;
        parts.push_back({{"type", "text"}, {"text", *text}});
      } else if (t == "refusal") {
        const json* text = required_string(p, "refusal", here);
        if (!text)
          return false;
        parts.push_back({{"type", "text"}, {"text", *text}});
      } else if (text_only && (t == "input_image" || t == "input_file")) {
        unsupported(here + ": chat completions carries only text in a tool output");
      } else if (t == "input_image") {
        const json* url = given(p, "image_url");
        if (url && url->is_string()) {
          json image = {{"url", *url}};
          if (const json* detail = given(p, "detail"); detail && detail->is_string())
            image["detail"] = *detail;
          parts.push_back({{"type", "image_url"}, {"image_url", std::move(image)}});
          only_text = false;
        } else if (given(p, "file_id")) {
          unsupported(here + ": an input_image by file_id needs OpenAI's file store");
        } else {
          return fail(here + ": an input_image needs image_url or file_id", here + ".image_url");
        }
      } else if (t == "input_file") {
        json file = json::object();
        for (const char* key : {"filename", "file_data", "file_id"})
          if (const json* v = given(p, key); v && v->is_string())
            file[key] = *v;
        if (file.contains("file_data") || file.contains("file_id")) {
          parts.push_back({{"type", "file"}, {"file", std::move(file)}});
          only_text = false;
        } else if (given(p, "file_url")) {
          unsupported(here + ": an input_file by file_url cannot be carried by chat completions");
        } else {
          return fail(here + ": an input_file needs file_data, file_id or file_url", here);
        }
      } else {
        unsupported(here + ": " + t + " parts cannot be carried by chat completions");
      }
    }
    // One text part reads best as a plain string, which every chat template takes.
    if (parts.empty())
      result = "";
    else if (only_text && parts.size() == 1)
      result = parts[0]["text"];
    else
      result = std::move(parts);
    return true;
  }

  bool input_items(const json& input, json& messages) {
    if (input.is_string()) {
      messages.push_back({{"role", "user"}, {"content", input}});
      return true;
    }
    if (!input.is_array())
      return fail("input: must be a string or an array of input items", "input");
    // messages.back() is an assistant turn a following function_call joins: chat carries the
    // text and the tool calls of one turn in one message.
    bool assistant_open = false;
    for (size_t i = 0; i < input.size(); ++i) {
      const json& item = input[i];
      const std::string here = at("input", i);
      if (!item.is_object())
        return fail(here + ": must be an object", here);
      const json* type = given(item, "type");
      if (type && !type->is_string())
        return fail(here + ".type: must be a string", here + ".type");
      const std::string t = type ? type->get<std::string>() : "message";
      if (t == "message") {
        const std::string role = str(item, "role");
        if (role != "user" && role != "assistant" && role != "system" && role != "developer")
          return fail(here + ".role: must be one of user, assistant, system, developer",
                      here + ".role");
        const json* content = find(item, "content");
        if (!content)
          return fail(here + ".content: missing", here + ".content");
        json c;
        if (!translate_content(*content, here + ".content", false, c))
          return false;
        // Chat backends (vLLM, Ollama, llama.cpp templates) know "system"; few know "developer".
        messages.push_back(
            {{"role", role == "developer" ? "system" : role}, {"content", std::move(c)}});
        assistant_open = role == "assistant";
      } else if (t == "function_call") {
        const json* call_id = required_string(item, "call_id", here);
        const json* name = call_id ? required_string(item, "name", here) : nullptr;
        const json* arguments = name ? required_string(item, "arguments", here) : nullptr;
        if (!arguments)
          return false;
        json call = {{"id", *call_id},
                     {"type", "function"},
                     {"function", {{"name", *name}, {"arguments", *arguments}}}};
        if (!assistant_open) {
          messages.push_back({{"role", "assistant"}, {"content", nullptr}});
          assistant_open = true;
        }
        json& m = messages.back();
        if (!m.contains("tool_calls"))
          m["tool_calls"] = json::array();
        m["tool_calls"].push_back(std::move(call));
      } else if (t == "function_call_output") {
        const json* call_id = required_string(item, "call_id", here);
        if (!call_id)
          return false;
        const json* output = find(item, "output");
        if (!output)
          return fail(here + ".output: missing", here + ".output");
        json c;
        if (!translate_content(*output, here + ".output", true, c))
          return false;
        messages.push_back({{"role", "tool"}, {"tool_call_id", *call_id}, {"content", c}});
        assistant_open = false;
      } else if (t == "reasoning") {
        // Reasoning is the backend's own; chat has no way to hand it back.
      } else if (t == "item_reference") {
        unsupported(here + ": item_reference needs stored items; the router keeps no "
                           "conversation state");
        assistant_open = false;
      } else {
        unsupported(here + ": " + t + " items cannot be carried by chat completions");
        assistant_open = false;
      }
    }
    return true;
  }

  bool translate_tools(const json& tools, json& body) {
    if (!tools.is_array())
      return fail("tools: must be an array", "tools");
    json out = json::array();
    for (size_t i = 0; i < tools.size(); ++i) {
      const json& tool = tools[i];
      const std::string here = at("tools", i);
      if (!tool.is_object())
        return fail(here + ": must be an object", here);
      const json* type = find(tool, "type");
      if (!type || !type->is_string())
        return fail(here + ".type: must be a string", here + ".type");
      const std::string& t = type->get_ref<const std::string&>();
      if (t != "function") {
        unsupported(here + ": " + t +
                    (is_hosted_tool(t) ? " is a hosted tool"
                                       : " tools cannot be carried by chat completions"));
        continue;
      }
      const json* name = required_string(tool, "name", here);
      if (!name)
        return false;
      json function = {{"name", *name}};
      if (const json* v = given(tool, "description"))
        function["description"] = *v;
      if (const json* v = given(tool, "parameters"))
        function["parameters"] = *v;
      if (const json* v = given(tool, "strict"); v && v->is_boolean())
        function["strict"] = *v;
      out.push_back({{"type", "function"}, {"function", std::move(function)}});
    }
    // An empty array is refused by some backends; no tools is no key.
    if (!out.empty())
      body["tools"] = std::move(out);
    return true;
  }

  bool translate_tool_choice(const json& choice, json& body) {
    if (choice.is_string()) {
      const std::string& c = choice.get_ref<const std::string&>();
      if (c != "auto" && c != "none" && c != "required")
        return fail("tool_choice: must be auto, none, required or an object", "tool_choice");
      if (body.contains("tools")) // vLLM refuses a tool_choice without tools
        body["tool_choice"] = choice;
      return true;
    }
    if (!choice.is_object())
      return fail("tool_choice: must be a string or an object", "tool_choice");
    const std::string type = str(choice, "type");
    if (type != "function") {
      unsupported("tool_choice: " + (type.empty() ? std::string("this choice") : type) +
                  " cannot be carried by chat completions");
      return true;
    }
    const json* name = required_string(choice, "name", "tool_choice");
    if (!name)
      return false;
    if (body.contains("tools"))
      body["tool_choice"] = {{"type", "function"}, {"function", {{"name", *name}}}};
    return true;
  }

  bool translate_text(const json& text, json& body) {
    if (!text.is_object())
      return fail("text: must be an object", "text");
    if (const json* verbosity = given(text, "verbosity"); verbosity && verbosity->is_string())
      body["verbosity"] = *verbosity;
    const json* format = given(text, "format");
    if (!format)
      return true;
    if (!format->is_object())
      return fail("text.format: must be an object", "text.format");
    const std::string type = str(*format, "type");
    if (type == "text")
      return true;
    if (type == "json_object") {
      body["response_format"] = {{"type", "json_object"}};
      return true;
    }
    if (type != "json_schema")
      return fail("text.format.type: must be text, json_schema or json_object", "text.format.type");
    json schema = json::object();
    for (const char* key : {"name", "description", "schema", "strict"})
      if (const json* v = given(*format, key))
        schema[key] = *v;
    body["response_format"] = {{"type", "json_schema"}, {"json_schema", std::move(schema)}};
    return true;
  }

  ChatRequest& out_;
  ApiError& error_;
};

// ---------------------------------------------------------------------------------------------
// Responses: the output items and the Response object, shared by the whole and streamed paths.

struct Part {
  bool refusal = false;
  std::string text;
};

struct Item {
  enum class Kind { Reasoning, Message, FunctionCall };
  Kind kind = Kind::Message;
  std::string id;
  std::string text;        // reasoning: the summary text; function call: the arguments
  std::vector<Part> parts; // message content
  std::string call_id, name;
  bool open = false; // streams: added, not yet done
};

Item make_item(Item::Kind kind, std::string id, std::string text = {}) {
  Item it;
  it.kind = kind;
  it.id = std::move(id);
  it.text = std::move(text);
  return it;
}

// The hex part of "resp_<hex>", from which item ids derive.
std::string id_suffix(std::string_view response_id) {
  if (core::starts_with(response_id, "resp_"))
    response_id.remove_prefix(5);
  return std::string(response_id);
}

std::string item_id(std::string_view prefix, const std::string& suffix, size_t index) {
  return std::string(prefix) + suffix + "_" + std::to_string(index);
}

json part_json(const Part& p) {
  if (p.refusal)
    return {{"type", "refusal"}, {"refusal", p.text}};
  return {{"type", "output_text"}, {"text", p.text}, {"annotations", json::array()}};
}

json summary_part(const std::string& text) {
  return {{"type", "summary_text"}, {"text", text}};
}

json item_json(const Item& it, std::string_view status) {
  switch (it.kind) {
  case Item::Kind::Reasoning: {
    json summary = json::array();
    if (!it.text.empty())
      summary.push_back(summary_part(it.text));
    return {{"type", "reasoning"}, {"id", it.id}, {"summary", std::move(summary)}};
  }
  case Item::Kind::Message: {
    json content = json::array();
    for (const Part& p : it.parts)
      content.push_back(part_json(p));
    return {{"type", "message"},
            {"id", it.id},
            {"status", status},
            {"role", "assistant"},
            {"content", std::move(content)}};
  }
  case Item::Kind::FunctionCall:
    return {{"type", "function_call"}, {"id", it.id},          {"call_id", it.call_id},
            {"name", it.name},         {"arguments", it.text}, {"status", status}};
  }
  return json::object();
}

// A chat usage object in the Responses shape; null when there is none.
json usage_from_chat(const json* u) {
  if (!u || !u->is_object())
    return nullptr;
  const uint64_t in = count(*u, "prompt_tokens"), out = count(*u, "completion_tokens");
  uint64_t cached = 0, reasoning = 0;
  if (const json* d = find(*u, "prompt_tokens_details"))
    cached = count(*d, "cached_tokens");
  if (const json* d = find(*u, "completion_tokens_details"))
    reasoning = count(*d, "reasoning_tokens");
  const json* total = find(*u, "total_tokens");
  return {
      {"input_tokens", in},
      {"input_tokens_details", {{"cached_tokens", cached}}},
      {"output_tokens", out},
      {"output_tokens_details", {{"reasoning_tokens", reasoning}}},
      {"total_tokens", total && total->is_number_unsigned() ? total->get<uint64_t>() : in + out}};
}

// A Responses usage object in the chat shape; null when there is none.
json usage_to_chat(const json* u) {
  if (!u || !u->is_object())
    return nullptr;
  const uint64_t in = count(*u, "input_tokens"), out = count(*u, "output_tokens");
  uint64_t cached = 0, reasoning = 0;
  if (const json* d = find(*u, "input_tokens_details"))
    cached = count(*d, "cached_tokens");
  if (const json* d = find(*u, "output_tokens_details"))
    reasoning = count(*d, "reasoning_tokens");
  const json* total = find(*u, "total_tokens");
  return {
      {"prompt_tokens", in},
      {"completion_tokens", out},
      {"total_tokens", total && total->is_number_unsigned() ? total->get<uint64_t>() : in + out},
      {"prompt_tokens_details", {{"cached_tokens", cached}}},
      {"completion_tokens_details", {{"reasoning_tokens", reasoning}}}};
}

} // namespace

struct RequestEcho::Fields {
  json values; // the Response's fields the request sets, each as it goes into the Response
};

namespace {

// What a Response echoes of a request (see RequestEcho); null when the request sets none of it.
std::shared_ptr<const RequestEcho::Fields> echo_fields(const json& req) {
  if (!req.is_object())
    return nullptr;
  json values = json::object();
  for (const char* key :
       {"instructions", "max_output_tokens", "parallel_tool_calls", "previous_response_id",
        "temperature", "tool_choice", "tools", "top_p", "truncation", "user"})
    if (const json* v = given(req, key))
      values[key] = *v;
  if (const json* v = given(req, "metadata"); v && v->is_object())
    values["metadata"] = *v;
  if (const json* v = given(req, "reasoning"); v && v->is_object()) {
    json reasoning = {{"effort", nullptr}, {"summary", nullptr}};
    for (const char* key : {"effort", "summary"})
      if (const json* f = given(*v, key))
        reasoning[key] = *f;
    values["reasoning"] = std::move(reasoning);
  }
  if (const json* v = given(req, "text"); v && v->is_object()) {
    json text = {{"format", {{"type", "text"}}}};
    for (const auto& [key, f] : v->items())
      if (!f.is_null())
        text[key] = f;
    values["text"] = std::move(text);
  }
  if (values.empty())
    return nullptr;
  auto fields = std::make_shared<RequestEcho::Fields>();
  fields->values = std::move(values);
  return fields;
}

// How a chat answer ended, in Responses terms.
struct Ending {
  std::string status;            // completed, incomplete, failed, in_progress
  std::string incomplete_reason; // max_output_tokens, content_filter
};

Ending ending_from_finish_reason(std::string_view finish_reason) {
  if (finish_reason == "length")
    return {"incomplete", "max_output_tokens"};
  if (finish_reason == "content_filter")
    return {"incomplete", "content_filter"};
  return {"completed", ""};
}

struct ResponseHead {
  std::string id;
  int64_t created_at = 0;
  std::string model;
};

json response_json(const ResponseHead& head, const Ending& ending, const std::vector<Item>& items,
                   const json& usage, const json& error, const RequestEcho& echo) {
  const std::string item_status = ending.status == "completed" || ending.status == "in_progress"
                                      ? ending.status
                                      : std::string("incomplete");
  json output = json::array();
  for (const Item& it : items)
    output.push_back(item_json(it, item_status));
  json incomplete = nullptr;
  if (!ending.incomplete_reason.empty())
    incomplete = {{"reason", ending.incomplete_reason}};
  json r = {{"id", head.id},
            {"object", "response"},
            {"created_at", head.created_at},
            {"status", ending.status},
            {"background", false},
            {"error", error},
            {"incomplete_details", std::move(incomplete)},
            {"instructions", nullptr},
            {"max_output_tokens", nullptr},
            {"metadata", json::object()},
            {"model", head.model},
            {"output", std::move(output)},
            {"parallel_tool_calls", true},
            {"previous_response_id", nullptr},
            {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
            {"store", false},
            {"temperature", nullptr},
            {"text", {{"format", {{"type", "text"}}}}},
            {"tool_choice", "auto"},
            {"tools", json::array()},
            {"top_p", nullptr},
            {"truncation", "disabled"},
            {"usage", usage},
            {"user", nullptr}};
  if (const RequestEcho::Fields* echoed = echo.fields())
    for (const auto& [key, value] : echoed->values.items())
      r[key] = value; // replaces the default in place: the key order stays
  return r;
}

// A tool call's arguments: a string, or (from lax backends) an object to serialise.
std::string arguments_text(const json* fn) {
  const json* a = fn ? find(*fn, "arguments") : nullptr;
  if (!a || a->is_null())
    return "";
  return a->is_string() ? a->get<std::string>() : dump(*a);
}

// The reasoning text of a chat message or delta (DeepSeek/vLLM reasoning_content, or reasoning).
std::string reasoning_text(const json& m) {
  std::string r = str(m, "reasoning_content");
  return r.empty() ? str(m, "reasoning") : r;
}

// An OpenAI error object's code as a string ("" when null or absent); some backends send numbers.
std::string error_code(const json& e) {
  const json* c = given(e, "code");
  if (!c)
    return "";
  return c->is_string() ? c->get<std::string>() : dump(*c);
}

std::string random_hex() {
  thread_local core::Random rng([] {
    uint64_t seed =
        static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
    seed ^= std::hash<std::thread::id>()(std::this_thread::get_id()) * 0x9e3779b97f4a7c15ULL;
    try {
      std::random_device rd;
      seed ^= (static_cast<uint64_t>(rd()) << 32) | rd();
    } catch (...) { // no entropy device: the clock and thread id must do
    }
    return seed;
  }());
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016" PRIx64 "%016" PRIx64, rng.next(), rng.next());
  return buf;
}

} // namespace

// ---------------------------------------------------------------------------------------------

bool request_to_chat(std::string_view body, ChatRequest& out, ApiError& error) {
  out = ChatRequest{};
  const json req = parse(body);
  if (req.is_discarded()) {
    error = invalid_request("We could not parse the JSON body of your request.", "");
    return false;
  }
  try {
    RequestTranslator translator(out, error);
    if (translator.run(req)) {
      out.echo.fields_ = echo_fields(req);
      return true;
    }
  } catch (...) { // allocation failure: nothing else throws
    error = internal_error("The request could not be translated.");
  }
  out = ChatRequest{};
  return false;
}

RequestEcho::RequestEcho(std::string_view request_body) {
  try {
    fields_ = echo_fields(parse(request_body));
  } catch (...) { // allocation failure: nothing to echo
  }
}

std::string new_response_id() {
  return "resp_" + random_hex();
}

namespace {

std::string passthrough_unguarded(std::string_view original, std::string_view routed_chat) {
  json req = parse(original);
  const json routed = parse(routed_chat);
  if (!req.is_object() || !routed.is_object())
    return std::string(original);

  if (const json* model = given(routed, "model"); model && model->is_string())
    req["model"] = *model;
  if (const json* effort = given(routed, "reasoning_effort"); effort && effort->is_string()) {
    if (!req.contains("reasoning") || !req["reasoning"].is_object())
      req["reasoning"] = json::object();
    req["reasoning"]["effort"] = *effort;
  }

  // Function tools routing filtered out go; hosted tools were never in the chat body and stay.
  if (const json* tools = find(req, "tools"); tools && tools->is_array()) {
    std::set<std::string> kept;
    if (const json* routed_tools = find(routed, "tools"); routed_tools && routed_tools->is_array())
      for (const json& t : *routed_tools)
        if (const json* fn = find(t, "function"))
          kept.insert(str(*fn, "name"));
    json left = json::array();
    std::set<std::string> removed;
    for (const json& t : *tools) {
      if (str(t, "type") == "function" && !kept.count(str(t, "name")))
        removed.insert(str(t, "name"));
      else
        left.push_back(t);
    }
    if (!removed.empty()) {
      const json* choice = find(req, "tool_choice");
      const bool choice_removed =
          choice && str(*choice, "type") == "function" && removed.count(str(*choice, "name")) > 0;
      if (left.empty() || choice_removed)
        req.erase("tool_choice");
      if (left.empty())
        req.erase("tools");
      else
        req["tools"] = std::move(left);
    }
  }

  // The system prompt: what request_to_chat made the first system message.
  const json* messages = find(routed, "messages");
  if (!messages || !messages->is_array() || messages->empty())
    return dump(req);
  const json& first = (*messages)[0];
  const std::string role = str(first, "role");
  const json* routed_content = find(first, "content");
  if ((role != "system" && role != "developer") || !routed_content)
    return dump(req);
  const std::string routed_text = content_text(*routed_content);
  std::optional<size_t> input_index; // the system prompt is input[i], not instructions
  std::string current;
  bool has_prompt = false;
  if (const json* instructions = find(req, "instructions");
      instructions && instructions->is_string() && !instructions->get<std::string>().empty()) {
    current = instructions->get<std::string>();
    has_prompt = true;
  } else if (const json* input = find(req, "input"); input && input->is_array()) {
    for (size_t i = 0; i < input->size(); ++i) {
      const json& item = (*input)[i];
      if (str(item, "type") == "reasoning")
        continue;
      const std::string r = str(item, "role");
      const std::string type = str(item, "type");
      if ((type.empty() || type == "message") && (r == "system" || r == "developer")) {
        input_index = i;
        has_prompt = true;
        if (const json* c = find(item, "content"))
          current = content_text(*c);
      }
      break;
    }
  }
  if (has_prompt && current == routed_text)
    return dump(req);
  if (input_index) {
    json content = routed_text;
    if (routed_content->is_array()) { // keep the parts (insert mode adds one), in Responses form
      content = json::array();
      for (const json& p : *routed_content)
        if (str(p, "type") == "text")
          content.push_back({{"type", "input_text"}, {"text", str(p, "text")}});
    }
    req["input"][*input_index]["content"] = std::move(content);
  } else {
    req["instructions"] = routed_text;
  }
  return dump(req);
}

std::string response_from_chat_unguarded(std::string_view chat_body, std::string_view response_id,
                                         const RequestEcho& echo) {
  const json chat = parse(chat_body);
  if (!chat.is_object())
    return server_error_body("The backend's answer is not valid JSON.");
  if (given(chat, "error"))
    return std::string(chat_body);
  const json* choices = find(chat, "choices");
  if (!choices || !choices->is_array() || choices->empty() || !(*choices)[0].is_object())
    return server_error_body("The backend's answer has no choices.");
  const json& choice = (*choices)[0];
  const json* message = find(choice, "message");
  if (!message || !message->is_object())
    return server_error_body("The backend's answer has no message.");

  ResponseHead head{response_id.empty() ? new_response_id() : std::string(response_id),
                    integer(chat, "created"), str(chat, "model")};
  const std::string suffix = id_suffix(head.id);
  std::vector<Item> items;
  if (std::string r = reasoning_text(*message); !r.empty()) {
    Item it = make_item(Item::Kind::Reasoning, item_id("rs_", suffix, items.size()), std::move(r));
    items.push_back(std::move(it));
  }
  Item msg = make_item(Item::Kind::Message, item_id("msg_", suffix, items.size()));
  if (const json* c = find(*message, "content"); c && !content_text(*c).empty())
    msg.parts.push_back({false, content_text(*c)});
  if (std::string refusal = str(*message, "refusal"); !refusal.empty())
    msg.parts.push_back({true, std::move(refusal)});
  if (!msg.parts.empty())
    items.push_back(std::move(msg));
  auto add_call = [&](const json& fn, std::string call_id) {
    Item it = make_item(Item::Kind::FunctionCall, item_id("fc_", suffix, items.size()));
    it.call_id = call_id.empty() ? item_id("call_", suffix, items.size()) : std::move(call_id);
    it.name = str(fn, "name");
    it.text = arguments_text(&fn);
    items.push_back(std::move(it));
  };
  if (const json* calls = find(*message, "tool_calls"); calls && calls->is_array())
    for (const json& call : *calls)
      if (const json* fn = find(call, "function"); fn && fn->is_object())
        add_call(*fn, str(call, "id"));
  if (const json* fn = find(*message, "function_call"); fn && fn->is_object()) // legacy
    add_call(*fn, "");

  const Ending ending = ending_from_finish_reason(str(choice, "finish_reason"));
  return dump(
      response_json(head, ending, items, usage_from_chat(find(chat, "usage")), nullptr, echo));
}

std::string response_to_chat_unguarded(std::string_view response_body) {
  const json r = parse(response_body);
  if (!r.is_object())
    return server_error_body("The backend's answer is not valid JSON.");
  const json* error = given(r, "error");
  const json* output = find(r, "output");
  if (error && !output)
    return std::string(response_body); // already an error body
  if (str(r, "status") == "failed" || (error && error->is_object())) {
    ApiError e{502, "server_error", "", "The backend's response failed.", ""};
    if (error) {
      e.code = error_code(*error);
      if (std::string m = str(*error, "message"); !m.empty())
        e.message = std::move(m);
    }
    return error_body(e);
  }
  if (!output || !output->is_array())
    return server_error_body("The backend's answer is not a Response.");

  std::string content, refusal, reasoning;
  json tool_calls = json::array();
  for (const json& item : *output) {
    const std::string type = str(item, "type");
    if (type == "message") {
      if (const json* parts = find(item, "content"); parts && parts->is_array())
        for (const json& p : *parts) {
          content += str(p, "type") == "output_text" ? str(p, "text") : "";
          refusal += str(p, "type") == "refusal" ? str(p, "refusal") : "";
        }
    } else if (type == "reasoning") {
      for (const char* key : {"summary", "content"})
        if (const json* parts = find(item, key); parts && parts->is_array())
          for (const json& p : *parts) {
            if (!reasoning.empty())
              reasoning += "\n\n";
            reasoning += str(p, "text");
          }
    } else if (type == "function_call") {
      tool_calls.push_back(
          {{"id", str(item, "call_id")},
           {"type", "function"},
           {"function", {{"name", str(item, "name")}, {"arguments", arguments_text(&item)}}}});
    }
  }
  std::string finish_reason = tool_calls.empty() ? "stop" : "tool_calls";
  if (const json* details = find(r, "incomplete_details")) {
    const std::string reason = str(*details, "reason");
    if (reason == "max_output_tokens")
      finish_reason = "length";
    else if (reason == "content_filter")
      finish_reason = "content_filter";
  }
  json message = {{"role", "assistant"}};
  message["content"] = content.empty() && !tool_calls.empty() ? json(nullptr) : json(content);
  if (!reasoning.empty())
    message["reasoning_content"] = reasoning;
  if (!refusal.empty())
    message["refusal"] = refusal;
  if (!tool_calls.empty())
    message["tool_calls"] = std::move(tool_calls);
  json chat = {{"id", str(r, "id")},
               {"object", "chat.completion"},
               {"created", integer(r, "created_at")},
               {"model", str(r, "model")},
               {"choices", json::array({{{"index", 0},
                                         {"message", std::move(message)},
                                         {"logprobs", nullptr},
                                         {"finish_reason", finish_reason}}})}};
  if (json usage = usage_to_chat(find(r, "usage")); !usage.is_null())
    chat["usage"] = std::move(usage);
  return dump(chat);
}

} // namespace

// The guards: nothing above throws on any input (types are checked before every access), but an
// allocation can fail, and a handler must not be taken down by a translation.

std::string passthrough_request(std::string_view original, std::string_view routed_chat) {
  try {
    return passthrough_unguarded(original, routed_chat);
  } catch (...) {
    return std::string(original);
  }
}

std::string response_from_chat(std::string_view chat_body, std::string_view response_id,
                               const RequestEcho& echo) {
  try {
    return response_from_chat_unguarded(chat_body, response_id, echo);
  } catch (...) {
    return server_error_body("The backend's answer could not be translated.");
  }
}

std::string response_to_chat(std::string_view response_body) {
  try {
    return response_to_chat_unguarded(response_body);
  } catch (...) {
    return server_error_body("The backend's answer could not be translated.");
  }
}

// ---------------------------------------------------------------------------------------------
// StreamFromChat

struct StreamFromChat::State {
  State(std::string response_id, RequestEcho echo_of_request) : echo(std::move(echo_of_request)) {
    head.id = response_id.empty() ? new_response_id() : std::move(response_id);
    suffix = id_suffix(head.id);
  }

  void feed(std::string_view bytes, std::string& out) {
    if (over)
      return;
    if (!bytes.empty())
      fed = true;
    for (const std::string& data : sse.feed(bytes)) {
      if (over)
        return;
      event(data, out);
    }
  }

  void finish(std::string& out) {
    if (over || !fed)
      return;
    if (!started)
      fail("upstream_broken", "The backend's stream held no chat completion chunk.", out);
    else if (finish_reason.empty())
      fail("upstream_broken", "The backend's stream ended before the answer was finished.", out);
    else
      complete(out);
  }

  void event(std::string_view data, std::string& out) {
    if (core::trim(data) == "[DONE]") {
      if (started)
        complete(out);
      else
        fail("upstream_broken", "The backend's stream held no chat completion chunk.", out);
      return;
    }
    const json chunk = parse(data);
    if (!chunk.is_object())
      return; // an unreadable event is skipped; the stream goes on
    if (const json* e = given(chunk, "error")) {
      std::string message = str(*e, "message");
      fail(error_code(*e), message.empty() ? "The backend failed." : message, out,
           str(*e, "param"));
      return;
    }
    if (!started)
      start(chunk, out);
    if (json u = usage_from_chat(find(chunk, "usage")); !u.is_null())
      usage = std::move(u);
    const json* choices = find(chunk, "choices");
    if (!choices || !choices->is_array())
      return;
    for (const json& c : *choices) {
      if (!c.is_object() || integer(c, "index") != 0)
        continue; // one answer per response: choice 0
      if (const json* delta = find(c, "delta"); delta && delta->is_object())
        on_delta(*delta, out);
      if (std::string f = str(c, "finish_reason"); !f.empty())
        finish_reason = std::move(f);
    }
  }

  void emit(std::string_view type, const json& fields, std::string& out) {
    json e = {{"type", type}};
    for (const auto& [key, value] : fields.items())
      e[key] = value;
    e["sequence_number"] = seq++;
    out += "event: ";
    out += type;
    out += "\ndata: ";
    out += dump(e);
    out += "\n\n";
  }

  void start(const json& chunk, std::string& out) {
    started = true;
    head.model = str(chunk, "model");
    head.created_at = integer(chunk, "created");
    const json r = response_json(head, {"in_progress", ""}, {}, nullptr, nullptr, echo);
    emit("response.created", {{"response", r}}, out);
    emit("response.in_progress", {{"response", r}}, out);
  }

  void on_delta(const json& delta, std::string& out) {
    if (std::string r = reasoning_text(delta); !r.empty())
      reasoning_delta(r, out);
    if (std::string c = str(delta, "content"); !c.empty())
      text_delta(false, c, out);
    if (std::string r = str(delta, "refusal"); !r.empty())
      text_delta(true, r, out);
    if (const json* calls = find(delta, "tool_calls"); calls && calls->is_array())
      for (const json& call : *calls)
        if (call.is_object())
          tool_delta(call, out);
    if (const json* fn = find(delta, "function_call"); fn && fn->is_object()) // legacy
      tool_delta({{"index", 0}, {"function", *fn}}, out);
  }

  size_t open_item(Item it, std::string& out) {
    const size_t index = items.size();
    it.open = true;
    items.push_back(std::move(it));
    emit("response.output_item.added",
         {{"output_index", index}, {"item", item_json(items[index], "in_progress")}}, out);
    return index;
  }

  void reasoning_delta(const std::string& delta, std::string& out) {
    if (!reasoning_item) {
      close_text(out);
      const size_t i =
          open_item(make_item(Item::Kind::Reasoning, item_id("rs_", suffix, items.size())), out);
      reasoning_item = i;
      emit("response.reasoning_summary_part.added",
           {{"item_id", items[i].id},
            {"output_index", i},
            {"summary_index", 0},
            {"part", summary_part("")}},
           out);
    }
    const size_t i = *reasoning_item;
    items[i].text += delta;
    emit("response.reasoning_summary_text.delta",
         {{"item_id", items[i].id}, {"output_index", i}, {"summary_index", 0}, {"delta", delta}},
         out);
  }

  void close_reasoning(std::string& out) {
    if (!reasoning_item)
      return;
    const size_t i = *reasoning_item;
    reasoning_item.reset();
    const Item& it = items[i];
    emit("response.reasoning_summary_text.done",
         {{"item_id", it.id}, {"output_index", i}, {"summary_index", 0}, {"text", it.text}}, out);
    emit("response.reasoning_summary_part.done",
         {{"item_id", it.id},
          {"output_index", i},
          {"summary_index", 0},
          {"part", summary_part(it.text)}},
         out);
    close_item(i, out);
  }

  void text_delta(bool refusal, const std::string& delta, std::string& out) {
    if (!text_item) {
      close_reasoning(out);
      text_item =
          open_item(make_item(Item::Kind::Message, item_id("msg_", suffix, items.size())), out);
    }
    const size_t i = *text_item;
    if (items[i].parts.empty() || items[i].parts.back().refusal != refusal) {
      close_part(i, out);
      items[i].parts.push_back({refusal, ""});
      emit("response.content_part.added",
           {{"item_id", items[i].id},
            {"output_index", i},
            {"content_index", items[i].parts.size() - 1},
            {"part", part_json(items[i].parts.back())}},
           out);
    }
    items[i].parts.back().text += delta;
    json fields = {{"item_id", items[i].id},
                   {"output_index", i},
                   {"content_index", items[i].parts.size() - 1},
                   {"delta", delta}};
    if (!refusal)
      fields["logprobs"] = json::array();
    emit(refusal ? "response.refusal.delta" : "response.output_text.delta", fields, out);
  }

  // Ends the last content part of message item i (if any).
  void close_part(size_t i, std::string& out) {
    const Item& it = items[i];
    if (it.parts.empty())
      return;
    const Part& p = it.parts.back();
    json fields = {{"item_id", it.id}, {"output_index", i}, {"content_index", it.parts.size() - 1}};
    if (p.refusal) {
      fields["refusal"] = p.text;
      emit("response.refusal.done", fields, out);
    } else {
      fields["text"] = p.text;
      fields["logprobs"] = json::array();
      emit("response.output_text.done", fields, out);
    }
    emit("response.content_part.done",
         {{"item_id", it.id},
          {"output_index", i},
          {"content_index", it.parts.size() - 1},
          {"part", part_json(p)}},
         out);
  }

  void close_text(std::string& out) {
    if (!text_item)
      return;
    const size_t i = *text_item;
    text_item.reset();
    close_part(i, out);
    close_item(i, out);
  }

  void tool_delta(const json& call, std::string& out) {
    // The chat index names the call; backends that leave it out send one call at a time.
    int64_t index = last_tool_index < 0 ? 0 : last_tool_index;
    if (const json* v = find(call, "index"); v && v->is_number_integer())
      index = v->get<int64_t>();
    else if (std::string id = str(call, "id"); !id.empty() && !tool_call_ids.count(id))
      index = tool_items.empty() ? 0 : tool_items.rbegin()->first + 1;
    last_tool_index = index;
    const json* fn = find(call, "function");
    const std::string name = fn ? str(*fn, "name") : "";
    const std::string args = arguments_text(fn);
    auto found = tool_items.find(index);
    size_t i;
    if (found == tool_items.end()) {
      close_reasoning(out);
      close_text(out);
      Item it = make_item(Item::Kind::FunctionCall, item_id("fc_", suffix, items.size()));
      it.call_id = str(call, "id");
      if (it.call_id.empty())
        it.call_id = item_id("call_", suffix, items.size());
      tool_call_ids.insert(it.call_id);
      it.name = name;
      i = open_item(std::move(it), out);
      tool_items[index] = i;
    } else {
      i = found->second;
      if (items[i].name.empty())
        items[i].name = name;
    }
    if (args.empty())
      return;
    items[i].text += args;
    emit("response.function_call_arguments.delta",
         {{"item_id", items[i].id}, {"output_index", i}, {"delta", args}}, out);
  }

  void close_item(size_t i, std::string& out) {
    Item& it = items[i];
    if (!it.open)
      return;
    it.open = false;
    if (it.kind == Item::Kind::FunctionCall)
      emit("response.function_call_arguments.done",
           {{"item_id", it.id}, {"output_index", i}, {"arguments", it.text}}, out);
    emit("response.output_item.done",
         {{"output_index", i}, {"item", item_json(it, ending().status)}}, out);
  }

  Ending ending() const { return ending_from_finish_reason(finish_reason); }

  void complete(std::string& out) {
    close_reasoning(out);
    close_text(out);
    for (size_t i = 0; i < items.size(); ++i)
      close_item(i, out);
    const Ending e = ending();
    emit(e.status == "completed" ? "response.completed" : "response.incomplete",
         {{"response", response_json(head, e, items, usage, nullptr, echo)}}, out);
    over = true;
  }

  void fail(const std::string& code, const std::string& message, std::string& out,
            const std::string& param = "") {
    if (!started)
      start(json::object(), out);
    emit("error",
         {{"code", code.empty() ? json(nullptr) : json(code)},
          {"message", message},
          {"param", param.empty() ? json(nullptr) : json(param)}},
         out);
    const json error = {{"code", code.empty() ? "server_error" : code}, {"message", message}};
    emit("response.failed",
         {{"response", response_json(head, {"failed", ""}, items, usage, error, echo)}}, out);
    over = true;
  }

  SseParser sse;
  ResponseHead head;
  RequestEcho echo;
  std::string suffix;
  uint64_t seq = 0;
  bool fed = false, started = false, over = false;
  std::vector<Item> items;
  std::optional<size_t> text_item, reasoning_item; // the open message / reasoning item
  std::map<int64_t, size_t> tool_items;            // chat tool-call index -> item
  std::set<std::string> tool_call_ids;
  int64_t last_tool_index = -1;
  std::string finish_reason;
  json usage = nullptr;
};

StreamFromChat::StreamFromChat(std::string response_id, RequestEcho echo)
    : state_(std::make_unique<State>(std::move(response_id), std::move(echo))) {}
StreamFromChat::~StreamFromChat() = default;
StreamFromChat::StreamFromChat(StreamFromChat&&) noexcept = default;
StreamFromChat& StreamFromChat::operator=(StreamFromChat&&) noexcept = default;

void StreamFromChat::feed(std::string_view bytes, std::string& out) {
  try {
    state_->feed(bytes, out);
  } catch (...) { // nothing above throws but allocation; the stream must not take the caller down
    state_->over = true;
  }
}

void StreamFromChat::finish(std::string& out) {
  try {
    state_->finish(out);
  } catch (...) {
    state_->over = true;
  }
}

bool StreamFromChat::done() const {
  return state_->over;
}

// ---------------------------------------------------------------------------------------------
// StreamToChat

struct StreamToChat::State {
  void feed(std::string_view bytes, std::string& out) {
    if (over)
      return;
    if (!bytes.empty())
      fed = true;
    for (const std::string& data : sse.feed(bytes)) {
      if (over)
        return;
      event(data, out);
    }
  }

  void finish(std::string& out) {
    if (over || !fed)
      return;
    error({502, "upstream_error", "upstream_broken",
           "The backend's stream ended before the response was completed.", ""},
          out);
  }

  void event(std::string_view data, std::string& out) {
    const json e = parse(data);
    if (!e.is_object())
      return;
    const std::string type = str(e, "type");
    if (type == "response.created" || type == "response.in_progress") {
      if (const json* r = find(e, "response"))
        read_head(*r);
      role(out);
    } else if (type == "response.output_text.delta") {
      text(str(e, "item_id"), str(e, "delta"), out);
    } else if (type == "response.output_text.done") {
      catch_up_text(str(e, "item_id"), str(e, "text"), out);
    } else if (type == "response.refusal.delta") {
      delta({{"refusal", str(e, "delta")}}, out);
    } else if (type == "response.reasoning_summary_text.delta" ||
               type == "response.reasoning_text.delta") {
      delta({{"reasoning_content", str(e, "delta")}}, out);
    } else if (type == "response.output_item.added" || type == "response.output_item.done") {
      const json* item = find(e, "item");
      if (item && str(*item, "type") == "function_call")
        call_item(*item, integer(e, "output_index"), out);
    } else if (type == "response.function_call_arguments.delta") {
      if (auto k = call_index(e))
        call_arguments(*k, str(e, "delta"), out);
    } else if (type == "response.function_call_arguments.done") {
      if (auto k = call_index(e))
        catch_up_arguments(*k, str(e, "arguments"), out);
    } else if (type == "response.completed" || type == "response.incomplete") {
      complete(find(e, "response"), out);
    } else if (type == "response.failed") {
      const json* r = find(e, "response");
      const json* err = r ? given(*r, "error") : nullptr;
      ApiError a{502, "server_error", "", "The backend's response failed.", ""};
      if (err) {
        a.code = error_code(*err);
        if (std::string m = str(*err, "message"); !m.empty())
          a.message = std::move(m);
      }
      error(a, out);
    } else if (type == "error") {
      ApiError a{502, "server_error", error_code(e), str(e, "message"), str(e, "param")};
      if (a.message.empty())
        a.message = "The backend failed.";
      error(a, out);
    }
  }

  void read_head(const json& r) {
    if (id.empty())
      id = str(r, "id");
    if (model.empty())
      model = str(r, "model");
    if (created == 0)
      created = integer(r, "created_at");
  }

  void chunk(const json& delta, const json& finish_reason, std::string& out) {
    const json c = {{"id", id},
                    {"object", "chat.completion.chunk"},
                    {"created", created},
                    {"model", model},
                    {"choices", json::array({{{"index", 0},
                                              {"delta", delta},
                                              {"logprobs", nullptr},
                                              {"finish_reason", finish_reason}}})}};
    out += "data: ";
    out += dump(c);
    out += "\n\n";
  }

  void role(std::string& out) {
    if (role_sent)
      return;
    role_sent = true;
    chunk({{"role", "assistant"}, {"content", ""}}, nullptr, out);
  }

  void delta(const json& d, std::string& out) {
    role(out);
    chunk(d, nullptr, out);
  }

  void text(const std::string& item, const std::string& piece, std::string& out) {
    if (piece.empty())
      return;
    streamed_text[item] += piece;
    delta({{"content", piece}}, out);
  }

  // A .done event carries the whole text: what no delta carried yet goes out now.
  void catch_up_text(const std::string& item, const std::string& whole, std::string& out) {
    const std::string& sent = streamed_text[item];
    if (whole.size() > sent.size() && whole.compare(0, sent.size(), sent) == 0)
      text(item, whole.substr(sent.size()), out);
  }

  std::optional<size_t> call_index(const json& e) const {
    if (auto it = call_by_item.find(str(e, "item_id")); it != call_by_item.end())
      return it->second;
    if (auto it = call_by_output.find(integer(e, "output_index")); it != call_by_output.end())
      return it->second;
    return std::nullopt;
  }

  void call_item(const json& item, int64_t output_index, std::string& out) {
    const std::string item_id = str(item, "id");
    std::optional<size_t> known;
    if (auto it = call_by_item.find(item_id); !item_id.empty() && it != call_by_item.end())
      known = it->second;
    else if (auto it = call_by_output.find(output_index); it != call_by_output.end())
      known = it->second;
    if (known) { // output_item.done: catch up on arguments no delta carried
      catch_up_arguments(*known, arguments_text(&item), out);
      return;
    }
    const size_t k = call_arguments_sent.size();
    call_by_item[item_id] = k;
    call_by_output[output_index] = k;
    call_arguments_sent.emplace_back();
    json call = {{"index", k},
                 {"id", str(item, "call_id")},
                 {"type", "function"},
                 {"function", {{"name", str(item, "name")}, {"arguments", ""}}}};
    delta({{"tool_calls", json::array({call})}}, out);
    call_arguments(k, arguments_text(&item), out);
  }

  void call_arguments(size_t k, const std::string& piece, std::string& out) {
    if (piece.empty())
      return;
    call_arguments_sent[k] += piece;
    json call = {{"index", k}, {"function", {{"arguments", piece}}}};
    delta({{"tool_calls", json::array({call})}}, out);
  }

  void catch_up_arguments(size_t k, const std::string& whole, std::string& out) {
    const std::string& sent = call_arguments_sent[k];
    if (whole.size() > sent.size() && whole.compare(0, sent.size(), sent) == 0)
      call_arguments(k, whole.substr(sent.size()), out);
  }

  void complete(const json* r, std::string& out) {
    if (r)
      read_head(*r);
    role(out);
    bool calls = !call_arguments_sent.empty();
    if (const json* output = r ? find(*r, "output") : nullptr; output && output->is_array())
      for (const json& item : *output)
        calls = calls || str(item, "type") == "function_call";
    std::string finish_reason = calls ? "tool_calls" : "stop";
    if (const json* details = r ? find(*r, "incomplete_details") : nullptr) {
      const std::string reason = str(*details, "reason");
      if (reason == "max_output_tokens")
        finish_reason = "length";
      else if (reason == "content_filter")
        finish_reason = "content_filter";
    }
    chunk(json::object(), finish_reason, out);
    if (json u = usage_to_chat(r ? find(*r, "usage") : nullptr); !u.is_null()) {
      const json c = {
          {"id", id},       {"object", "chat.completion.chunk"}, {"created", created},
          {"model", model}, {"choices", json::array()},          {"usage", std::move(u)}};
      out += "data: ";
      out += dump(c);
      out += "\n\n";
    }
    out += "data: [DONE]\n\n";
    over = true;
  }

  void error(const ApiError& e, std::string& out) {
    out += "data: ";
    out += error_body(e);
    out += "\n\n";
    over = true;
  }

  SseParser sse;
  bool fed = false, over = false, role_sent = false;
  std::string id, model;
  int64_t created = 0;
  std::map<std::string, size_t> call_by_item;       // function_call item id -> chat tool-call index
  std::map<int64_t, size_t> call_by_output;         // output_index -> chat tool-call index
  std::vector<std::string> call_arguments_sent;     // per chat tool-call index
  std::map<std::string, std::string> streamed_text; // per message item id
};

StreamToChat::StreamToChat() : state_(std::make_unique<State>()) {}
StreamToChat::~StreamToChat() = default;
StreamToChat::StreamToChat(StreamToChat&&) noexcept = default;
StreamToChat& StreamToChat::operator=(StreamToChat&&) noexcept = default;

void StreamToChat::feed(std::string_view bytes, std::string& out) {
  try {
    state_->feed(bytes, out);
  } catch (...) {
    state_->over = true;
  }
}

void StreamToChat::finish(std::string& out) {
  try {
    state_->finish(out);
  } catch (...) {
    state_->over = true;
  }
}

bool StreamToChat::done() const {
  return state_->over;
}

} // namespace semrouter::openai::responses_api
