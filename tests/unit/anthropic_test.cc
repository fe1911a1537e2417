#include "openai/anthropic.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/clock.h"
#include "sse_line_ends.h"

namespace semrouter::openai::anthropic {
namespace {

using nlohmann::json;

constexpr int64_t kCreated = 1700000000;

json parse(std::string_view s) {
  return json::parse(s);
}

json to_chat(std::string_view body) {
  std::string chat;
  ApiError error;
  EXPECT_TRUE(request_to_chat(body, chat, error)) << error.message;
  return json::accept(chat) ? json::parse(chat) : json();
}

ApiError to_chat_error(std::string_view body) {
  std::string chat = "untouched";
  ApiError error;
  EXPECT_FALSE(request_to_chat(body, chat, error)) << body;
  EXPECT_EQ(chat, "untouched");
  return error;
}

json from_chat(std::string_view body) {
  return parse(request_from_chat(body));
}

// ---- Stream helpers ----

// Feeds `input` in pieces of `step` bytes, then calls finish().
template <class Stream> std::string run(Stream& s, std::string_view input, size_t step) {
  std::string out;
  for (size_t i = 0; i < input.size(); i += step)
    s.feed(input.substr(i, step), out);
  s.finish(out);
  return out;
}

// Runs `input` through a fresh translator with several piece sizes; all must give one output.
template <class Stream, class... Args>
std::string run_all_ways(std::string_view input, Args... args) {
  Stream whole(args...);
  const std::string expected = run(whole, input, input.size() + 1);
  for (size_t step : {size_t{1}, size_t{2}, size_t{7}, size_t{64}}) {
    Stream s(args...);
    EXPECT_EQ(run(s, input, step), expected) << "step " << step;
  }
  return expected;
}

struct AnthropicEvent {
  std::string type;
  json data;
};

// Splits `event: T\ndata: J\n\n` events, checking each is well formed and J.type == T.
std::vector<AnthropicEvent> anthropic_events(std::string_view s) {
  std::vector<AnthropicEvent> out;
  while (!s.empty()) {
    const size_t end = s.find("\n\n");
    if (end == std::string_view::npos) {
      ADD_FAILURE() << "unterminated event: " << s;
      break;
    }
    std::string_view ev = s.substr(0, end);
    s.remove_prefix(end + 2);
    const size_t nl = ev.find('\n');
    if (ev.substr(0, 7) != "event: " || nl == std::string_view::npos ||
        ev.substr(nl + 1, 6) != "data: ") {
      ADD_FAILURE() << "malformed event: " << ev;
      continue;
    }
    AnthropicEvent e{std::string(ev.substr(7, nl - 7)), json()};
    std::string_view data = ev.substr(nl + 7);
    if (!json::accept(data)) {
      ADD_FAILURE() << "invalid JSON: " << data;
      continue;
    }
    e.data = json::parse(data);
    EXPECT_EQ(e.data.value("type", ""), e.type);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<std::string> types(const std::vector<AnthropicEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events)
    out.push_back(e.type);
  return out;
}

// Builds the message the way the Anthropic SDKs' stream accumulators do.
json accumulate_message(const std::vector<AnthropicEvent>& events) {
  json message;
  std::vector<std::string> input_json;
  bool stopped = false;
  for (const auto& e : events) {
    const json& d = e.data;
    if (e.type == "message_start") {
      message = d.at("message");
    } else if (e.type == "content_block_start") {
      EXPECT_EQ(d.at("index").get<size_t>(), message.at("content").size());
      message["content"].push_back(d.at("content_block"));
      input_json.emplace_back();
    } else if (e.type == "content_block_delta") {
      const size_t i = d.at("index").get<size_t>();
      json& block = message["content"].at(i);
      const json& delta = d.at("delta");
      const std::string type = delta.at("type").get<std::string>();
      if (type == "text_delta") {
        EXPECT_EQ(block.at("type"), "text");
        block["text"] = block["text"].get<std::string>() + delta.at("text").get<std::string>();
      } else if (type == "thinking_delta") {
        EXPECT_EQ(block.at("type"), "thinking");
        block["thinking"] =
            block["thinking"].get<std::string>() + delta.at("thinking").get<std::string>();
      } else if (type == "input_json_delta") {
        EXPECT_EQ(block.at("type"), "tool_use");
        input_json.at(i) += delta.at("partial_json").get<std::string>();
      } else {
        ADD_FAILURE() << "unexpected delta " << type;
      }
    } else if (e.type == "content_block_stop") {
      const size_t i = d.at("index").get<size_t>();
      json& block = message["content"].at(i);
      if (block.at("type") == "tool_use" && !input_json.at(i).empty())
        block["input"] = json::parse(input_json.at(i));
    } else if (e.type == "message_delta") {
      message["stop_reason"] = d.at("delta").at("stop_reason");
      message["stop_sequence"] = d.at("delta").at("stop_sequence");
      for (auto& [k, v] : d.at("usage").items())
        message["usage"][k] = v;
    } else if (e.type == "message_stop") {
      stopped = true;
    }
  }
  EXPECT_TRUE(stopped);
  return message;
}

// The `data:` payloads of an OpenAI stream; checks each is JSON or [DONE].
std::vector<std::string> chat_events(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    const size_t end = s.find("\n\n");
    if (end == std::string_view::npos) {
      ADD_FAILURE() << "unterminated event: " << s;
      break;
    }
    std::string_view ev = s.substr(0, end);
    s.remove_prefix(end + 2);
    if (ev.substr(0, 6) != "data: ") {
      ADD_FAILURE() << "malformed event: " << ev;
      continue;
    }
    std::string data(ev.substr(6));
    EXPECT_TRUE(data == "[DONE]" || json::accept(data)) << data;
    out.push_back(std::move(data));
  }
  return out;
}

struct ChatAccumulated {
  std::string role, content, reasoning, finish_reason;
  json tool_calls = json::array(); // by index: {id, name, arguments}
  json usage;
  bool done = false;
  bool role_first = false;
};

ChatAccumulated accumulate_chat(const std::vector<std::string>& events) {
  ChatAccumulated a;
  for (size_t n = 0; n < events.size(); ++n) {
    if (events[n] == "[DONE]") {
      EXPECT_EQ(n + 1, events.size()) << "[DONE] must be last";
      a.done = true;
      continue;
    }
    json c = json::parse(events[n]);
    EXPECT_EQ(c.at("object"), "chat.completion.chunk");
    if (c.contains("usage"))
      a.usage = c["usage"];
    for (const json& choice : c.at("choices")) {
      const json& d = choice.at("delta");
      if (d.contains("role")) {
        a.role = d["role"];
        a.role_first = n == 0;
      }
      if (d.contains("content"))
        a.content += d["content"].get<std::string>();
      if (d.contains("reasoning_content"))
        a.reasoning += d["reasoning_content"].get<std::string>();
      if (d.contains("tool_calls")) {
        for (const json& t : d["tool_calls"]) {
          const size_t i = t.at("index");
          while (a.tool_calls.size() <= i)
            a.tool_calls.push_back({{"id", ""}, {"name", ""}, {"arguments", ""}});
          json& call = a.tool_calls[i];
          if (t.contains("id"))
            call["id"] = t["id"];
          if (t.contains("function") && t["function"].contains("name"))
            call["name"] = t["function"]["name"];
          if (t.contains("function") && t["function"].contains("arguments"))
            call["arguments"] = call["arguments"].get<std::string>() +
                                t["function"]["arguments"].get<std::string>();
        }
      }
      if (!choice.at("finish_reason").is_null())
        a.finish_reason = choice["finish_reason"];
    }
  }
  return a;
}

// ---- request_to_chat ----

TEST(AnthropicRequestToChat, MapsTopLevelFields) {
  json chat = to_chat(R"({
    "model": "claude-sonnet-4-5", "max_tokens": 1024, "system": "Be terse.",
    "messages": [{"role": "user", "content": "Hi"}],
    "stop_sequences": ["END", "STOP"], "temperature": 0.7, "top_p": 0.9, "top_k": 40,
    "stream": true, "metadata": {"user_id": "user-42"},
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "service_tier": "auto"})");
  EXPECT_EQ(chat, parse(R"({
    "model": "claude-sonnet-4-5",
    "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
    "max_tokens": 1024, "stop": ["END", "STOP"], "temperature": 0.7, "top_p": 0.9, "top_k": 40,
    "stream": true, "stream_options": {"include_usage": true},
    "thinking": {"type": "enabled", "budget_tokens": 2048}, "user": "user-42"})"));
}

TEST(AnthropicRequestToChat, SystemBlocksAreJoined) {
  json chat = to_chat(R"({"model": "m", "max_tokens": 5,
    "system": [{"type": "text", "text": "One."},
               {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "x"}], "stream": false})");
  EXPECT_EQ(chat["messages"][0], parse(R"({"role": "system", "content": "One.\n\nTwo."})"));
  EXPECT_FALSE(chat.contains("stream"));
  EXPECT_FALSE(chat.contains("stream_options"));
}

TEST(AnthropicRequestToChat, ContentBlocks) {
  json chat = to_chat(R"({"model": "m", "max_tokens": 5, "messages": [
    {"role": "user", "content": [{"type": "text", "text": "only"}]},
    {"role": "assistant", "content": [
      {"type": "thinking", "thinking": "hmm", "signature": "sig"},
      {"type": "redacted_thinking", "data": "xx"},
      {"type": "text", "text": "answer"}]},
    {"role": "user", "content": [
      {"type": "text", "text": "look"},
      {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
      {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
      {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}]}
  ]})");
  EXPECT_EQ(chat["messages"], parse(R"([
    {"role": "user", "content": "only"},
    {"role": "assistant", "content": "answer"},
    {"role": "user", "content": [
      {"type": "text", "text": "look"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
      {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
      {"type": "text", "text": "doc"}]}])"));
}

TEST(AnthropicRequestToChat, ToolUseAndToolResults) {
  json chat = to_chat(R"({"model": "m", "max_tokens": 5, "messages": [
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": [
      {"type": "text", "text": "Checking."},
      {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"z": 1, "a": [true]}},
      {"type": "tool_use", "id": "toolu_2", "name": "shot", "input": {}}]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
      {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": false, "content": [
        {"type": "text", "text": "line1"}, {"type": "text", "text": "line2"},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/s.png"}}]},
      {"type": "text", "text": "and?"}]},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_3", "name": "n"}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_3"}]}
  ]})");
  EXPECT_EQ(chat["messages"], parse(R"([
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
      {"id": "toolu_1", "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"z\":1,\"a\":[true]}"}},
      {"id": "toolu_2", "type": "function", "function": {"name": "shot", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "toolu_2", "content": "line1\nline2"},
    {"role": "user", "content": [
      {"type": "image_url", "image_url": {"url": "https://x.test/s.png"}},
      {"type": "text", "text": "and?"}]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "toolu_3", "type": "function", "function": {"name": "n", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "toolu_3", "content": ""}])"));
}

TEST(AnthropicRequestToChat, ToolsAndToolChoice) {
  const std::string head = R"({"model": "m", "max_tokens": 5,
    "messages": [{"role": "user", "content": "x"}],
    "tools": [{"name": "get_weather", "description": "Weather now", "input_schema":
                {"type": "object", "properties": {"zeta": {"type": "string"},
                 "alpha": {"type": "number"}}, "required": ["zeta"]}},
              {"type": "custom", "name": "noschema"}])";
  std::string chat_text;
  ApiError error;
  ASSERT_TRUE(request_to_chat(head + "}", chat_text, error));
  // The schema keeps its key order.
  EXPECT_NE(chat_text.find(R"("properties":{"zeta":{"type":"string"},"alpha":)"), std::string::npos)
      << chat_text;
  json chat = parse(chat_text);
  EXPECT_EQ(chat["tools"], parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
      "parameters": {"type": "object", "properties": {"zeta": {"type": "string"},
                     "alpha": {"type": "number"}}, "required": ["zeta"]}}},
    {"type": "function", "function": {"name": "noschema",
      "parameters": {"type": "object", "properties": {}}}}])"));
  EXPECT_FALSE(chat.contains("tool_choice"));

  struct Case {
    const char* choice;
    const char* expected;
    bool parallel_off;
  } cases[] = {
      {R"({"type": "auto"})", R"("auto")", false},
      {R"({"type": "any"})", R"("required")", false},
      {R"({"type": "none"})", R"("none")", false},
      {R"({"type": "tool", "name": "get_weather"})",
       R"({"type": "function", "function": {"name": "get_weather"}})", false},
      {R"({"type": "auto", "disable_parallel_tool_use": true})", R"("auto")", true},
      {R"({"type": "any", "disable_parallel_tool_use": false})", R"("required")", false},
  };
  for (const Case& c : cases) {
    json out = to_chat(head + R"(, "tool_choice": )" + c.choice + "}");
    EXPECT_EQ(out["tool_choice"], parse(c.expected)) << c.choice;
    EXPECT_EQ(out.contains("parallel_tool_calls"), c.parallel_off) << c.choice;
    if (c.parallel_off) {
      EXPECT_EQ(out["parallel_tool_calls"], false);
    }
  }
}

TEST(AnthropicRequestToChat, MalformedRequestsAre400WithParam) {
  const std::string ok_messages = R"("messages": [{"role": "user", "content": "x"}])";
  auto body = [&](std::string_view extra) {
    return std::string(R"({"model": "m", "max_tokens": 5, )") + ok_messages + std::string(extra) +
           "}";
  };
  auto with_messages = [](std::string_view messages) {
    return std::string(R"({"model": "m", "max_tokens": 5, "messages": )") + std::string(messages) +
           "}";
  };
  struct Case {
    std::string body;
    std::string param;
    std::string in_message; // a part the message must contain
  } cases[] = {
      {"not json", "", "not valid JSON"},
      {"[1,2]", "", "JSON object"},
      {R"({"max_tokens": 5, )" + ok_messages + "}", "model", "model"},
      {R"({"model": 7, "max_tokens": 5, )" + ok_messages + "}", "model", "string"},
      {R"({"model": "m", "max_tokens": 5})", "messages", "Field required"},
      {R"({"model": "m", "max_tokens": 5, "messages": {}})", "messages", "array"},
      {R"({"model": "m", )" + ok_messages + "}", "max_tokens", "Field required"},
      {R"({"model": "m", "max_tokens": 0, )" + ok_messages + "}", "max_tokens", "positive"},
      {R"({"model": "m", "max_tokens": "9", )" + ok_messages + "}", "max_tokens", "positive"},
      {R"({"model": "m", "max_tokens": -3, )" + ok_messages + "}", "max_tokens", "positive"},
      {with_messages(R"([{"role": "system", "content": "x"}])"), "messages.0.role", "user"},
      {with_messages(R"([7])"), "messages.0", "object"},
      {with_messages(R"([{"role": "user"}])"), "messages.0.content", "Field required"},
      {with_messages(R"([{"role": "user", "content": 5}])"), "messages.0.content", "string"},
      {with_messages(R"([{"role": "user", "content": [{"text": "x"}]}])"),
       "messages.0.content.0.type", "Field required"},
      {with_messages(R"([{"role": "user", "content": ["x"]}])"), "messages.0.content.0.type",
       "Field required"},
      {with_messages(R"([{"role": "user", "content": [{"type": "text", "text": "a"},
                         {"type": "search_result", "source": "s"}]}])"),
       "messages.0.content.1.type", "\"search_result\""},
      {with_messages(R"([{"role": "user", "content": [{"type": "text", "text": 5}]}])"),
       "messages.0.content.0.text", "string"},
      {with_messages(R"([{"role": "user", "content": [{"type": "tool_use", "id": "a",
                         "name": "b", "input": {}}]}])"),
       "messages.0.content.0.type", "assistant"},
      {with_messages(R"([{"role": "assistant", "content": [{"type": "tool_result",
                         "tool_use_id": "a"}]}])"),
       "messages.0.content.0.type", "user"},
      {with_messages(R"([{"role": "assistant", "content": [{"type": "image",
                         "source": {"type": "url", "url": "https://x"}}]}])"),
       "messages.0.content.0.type", "user messages"},
      {with_messages(R"([{"role": "assistant", "content": [{"type": "tool_use", "id": 5,
                         "name": "b"}]}])"),
       "messages.0.content.0.id", "string"},
      {with_messages(R"([{"role": "user", "content": [{"type": "image",
                         "source": {"type": "file", "file_id": "f"}}]}])"),
       "messages.0.content.0.source.type", "\"file\""},
      {with_messages(R"([{"role": "user", "content": [{"type": "document",
                         "source": {"type": "base64", "media_type": "application/pdf",
                         "data": "JVBE"}}]}])"),
       "messages.0.content.0.source.type", "\"base64\""},
      {with_messages(R"([{"role": "user", "content": [{"type": "tool_result",
                         "tool_use_id": "t", "content": [{"type": "video"}]}]}])"),
       "messages.0.content.0.content.0.type", "\"video\""},
      {body(R"(, "system": 5)"), "system", "string"},
      {body(R"(, "system": [{"type": "image"}])"), "system.0", "text block"},
      {body(R"(, "stop_sequences": "END")"), "stop_sequences", "array"},
      {body(R"(, "stop_sequences": ["a", 1])"), "stop_sequences.1", "string"},
      {body(R"(, "temperature": "hot")"), "temperature", "number"},
      {body(R"(, "top_k": 1.5)"), "top_k", "number"},
      {body(R"(, "stream": "yes")"), "stream", "boolean"},
      {body(R"(, "thinking": "on")"), "thinking", "object"},
      {body(R"(, "tools": {})"), "tools", "array"},
      {body(R"(, "tools": [{"type": "web_search_20250305", "name": "web_search"}])"),
       "tools.0.type", "web_search_20250305"},
      {body(R"(, "tools": [{"description": "no name"}])"), "tools.0.name", "string"},
      {body(R"(, "tool_choice": "auto")"), "tool_choice", "object"},
      {body(R"(, "tool_choice": {"type": "sometimes"})"), "tool_choice.type", "auto"},
      {body(R"(, "tool_choice": {"type": "tool"})"), "tool_choice.name", "string"},
  };
  for (const Case& c : cases) {
    ApiError e = to_chat_error(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_NE(e.message.find(c.in_message), std::string::npos) << e.message;
    // The error renders in Anthropic's shape.
    json rendered = parse(anthropic::error_body(e));
    EXPECT_EQ(rendered["type"], "error");
    EXPECT_EQ(rendered["error"]["type"], "invalid_request_error");
  }
}

// ---- request_from_chat ----

TEST(AnthropicRequestFromChat, SystemImagesToolsAndAlternation) {
  json out = from_chat(R"({"model": "claude-x", "messages": [
    {"role": "system", "content": "Sys one."},
    {"role": "developer", "content": [{"type": "text", "text": "Dev two."}]},
    {"role": "user", "content": "first"},
    {"role": "user", "content": [
      {"type": "text", "text": "second"},
      {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A", "detail": "high"}},
      {"type": "image_url", "image_url": {"url": "https://x.test/i.png"}},
      {"type": "image_url", "image_url": {"url": "ftp://nope"}},
      {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}},
      {"type": "text", "text": ""}]},
    {"role": "assistant", "content": "calling", "tool_calls": [
      {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"b\":1,\"a\":2}"}},
      {"id": "functions.g:1", "type": "function", "function": {"name": "g", "arguments": "not json"}},
      {"id": "call_3", "type": "function", "function": {"name": "h", "arguments": "[1]"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "r1"},
    {"role": "tool", "tool_call_id": "functions.g:1", "content": [{"type": "text", "text": "r2"}]},
    {"role": "user", "content": "thanks"},
    {"role": "assistant", "content": ""},
    {"role": "assistant", "content": null, "reasoning_content": "unsigned thoughts"}
  ], "max_tokens": 100})");
  EXPECT_EQ(out["system"], "Sys one.\n\nDev two.");
  EXPECT_EQ(out["messages"], parse(R"([
    {"role": "user", "content": [
      {"type": "text", "text": "first"}, {"type": "text", "text": "second"},
      {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4A"}},
      {"type": "image", "source": {"type": "url", "url": "https://x.test/i.png"}}]},
    {"role": "assistant", "content": [
      {"type": "text", "text": "calling"},
      {"type": "tool_use", "id": "call_1", "name": "f", "input": {"b": 1, "a": 2}},
      {"type": "tool_use", "id": "functions_g_1", "name": "g", "input": {}},
      {"type": "tool_use", "id": "call_3", "name": "h", "input": {}}]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "call_1", "content": "r1"},
      {"type": "tool_result", "tool_use_id": "functions_g_1", "content": "r2"},
      {"type": "text", "text": "thanks"}]}])"));
  EXPECT_EQ(out["max_tokens"], 100);
}

TEST(AnthropicRequestFromChat, SamplingParameters) {
  json out = from_chat(R"({"model": "m", "messages": [{"role": "user", "content": "x"}],
    "max_tokens": 10, "max_completion_tokens": 20, "stop": ["A", " ", "", "B"],
    "temperature": 1.6, "top_p": 0.5, "top_k": 3, "stream": true, "user": "u1",
    "n": 2, "logprobs": true, "top_logprobs": 2, "response_format": {"type": "json_object"},
    "stream_options": {"include_usage": true}, "chat_template_kwargs": {"a": 1},
    "seed": 7, "frequency_penalty": 0.1})");
  EXPECT_EQ(out, parse(R"({"model": "m", "messages": [
    {"role": "user", "content": [{"type": "text", "text": "x"}]}],
    "max_tokens": 20, "stop_sequences": ["A", "B"], "temperature": 1.0, "top_p": 0.5,
    "top_k": 3, "stream": true, "metadata": {"user_id": "u1"}})"));

  json defaults = from_chat(R"({"model": "m", "messages": [], "stop": "END", "max_tokens": 0})");
  EXPECT_EQ(defaults["max_tokens"], kDefaultMaxTokens);
  EXPECT_EQ(defaults["stop_sequences"], parse(R"(["END"])"));
  EXPECT_EQ(from_chat(R"({"messages": [], "max_tokens": 77})")["max_tokens"], 77);
}

TEST(AnthropicRequestFromChat, ToolsAndToolChoice) {
  const std::string head = R"({"model": "m", "messages": [{"role": "user", "content": "x"}],
    "tools": [{"type": "function", "function": {"name": "f", "description": "does f",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                "strict": true}},
              {"type": "function", "function": {"name": "bare"}},
              {"type": "web_search_preview"}])";
  json out = from_chat(head + "}");
  EXPECT_EQ(out["tools"], parse(R"([
    {"name": "f", "description": "does f",
     "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
    {"name": "bare", "input_schema": {"type": "object", "properties": {}}}])"));
  EXPECT_FALSE(out.contains("tool_choice"));

  struct Case {
    const char* extra;
    const char* expected; // "" = no tool_choice
  } cases[] = {
      {R"(, "tool_choice": "auto")", R"({"type": "auto"})"},
      {R"(, "tool_choice": "required")", R"({"type": "any"})"},
      {R"(, "tool_choice": "none")", R"({"type": "none"})"},
      {R"(, "tool_choice": {"type": "function", "function": {"name": "f"}})",
       R"({"type": "tool", "name": "f"})"},
      {R"(, "parallel_tool_calls": false)",
       R"({"type": "auto", "disable_parallel_tool_use": true})"},
      {R"(, "tool_choice": "required", "parallel_tool_calls": false)",
       R"({"type": "any", "disable_parallel_tool_use": true})"},
      {R"(, "tool_choice": "none", "parallel_tool_calls": false)", R"({"type": "none"})"},
      {R"(, "parallel_tool_calls": true)", ""},
      {R"(, "tool_choice": 5)", ""},
  };
  for (const Case& c : cases) {
    json o = from_chat(head + c.extra + "}");
    if (std::string_view(c.expected).empty()) {
      EXPECT_FALSE(o.contains("tool_choice")) << c.extra;
    } else {
      EXPECT_EQ(o["tool_choice"], parse(c.expected)) << c.extra;
    }
  }
  // No tools: no tool_choice either (Anthropic refuses one without tools).
  EXPECT_FALSE(from_chat(R"({"messages": [], "tool_choice": "required"})").contains("tool_choice"));
}

TEST(AnthropicRequestFromChat, Thinking) {
  // Copied; max_tokens raised past the budget; temperature, top_k and a low top_p dropped.
  json out = from_chat(R"({"messages": [], "max_tokens": 1000, "temperature": 0.3, "top_k": 5,
    "top_p": 0.5, "thinking": {"type": "enabled", "budget_tokens": 8000}})");
  EXPECT_EQ(out["thinking"], parse(R"({"type": "enabled", "budget_tokens": 8000})"));
  EXPECT_EQ(out["max_tokens"], 8000 + 1024);
  EXPECT_FALSE(out.contains("temperature"));
  EXPECT_FALSE(out.contains("top_k"));
  EXPECT_FALSE(out.contains("top_p"));
  json high_p = from_chat(R"({"messages": [], "max_tokens": 9000, "top_p": 0.97,
    "thinking": {"type": "enabled", "budget_tokens": 8000}})");
  EXPECT_EQ(high_p["max_tokens"], 9000);
  EXPECT_EQ(high_p["top_p"], 0.97);
  // Disabled thinking leaves sampling alone.
  json off = from_chat(R"({"messages": [], "temperature": 0.3, "thinking": {"type": "disabled"}})");
  EXPECT_EQ(off["thinking"], parse(R"({"type": "disabled"})"));
  EXPECT_EQ(off["temperature"], 0.3);
  // reasoning_effort, when there is no thinking object.
  for (auto [effort, budget] : {std::pair{"low", 1024}, {"medium", 4096}, {"high", 16384}}) {
    json o = from_chat(std::string(R"({"messages": [], "reasoning_effort": ")") + effort + "\"}");
    EXPECT_EQ(o["thinking"], json({{"type", "enabled"}, {"budget_tokens", budget}})) << effort;
    EXPECT_GT(o["max_tokens"].get<int>(), budget) << effort;
  }
  EXPECT_FALSE(
      from_chat(R"({"messages": [], "reasoning_effort": "minimal"})").contains("thinking"));
  json both = from_chat(R"({"messages": [], "reasoning_effort": "high",
    "thinking": {"type": "enabled", "budget_tokens": 2000}})");
  EXPECT_EQ(both["thinking"]["budget_tokens"], 2000);
}

TEST(AnthropicRequestFromChat, NotAnObjectGivesEmptyObject) {
  EXPECT_EQ(request_from_chat("nope"), "{}");
  EXPECT_EQ(request_from_chat("[]"), "{}");
  EXPECT_EQ(request_from_chat(""), "{}");
}

// ---- Round trips ----

TEST(AnthropicRoundTrip, ToolConversationSurvivesBothWays) {
  const std::string original = R"({
    "model": "claude-sonnet-4-5", "system": "You are terse.",
    "messages": [
      {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
      {"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
         "input": {"city": "Paris", "unit": "c"}},
        {"type": "tool_use", "id": "toolu_02", "name": "get_weather",
         "input": {"city": "Rome", "unit": "c"}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "toolu_02", "content": "24C"},
        {"type": "text", "text": "Which is warmer?"}]}],
    "max_tokens": 1024, "stop_sequences": ["END"], "temperature": 0.5, "top_k": 40,
    "stream": true,
    "tools": [{"name": "get_weather", "description": "Current weather",
               "input_schema": {"type": "object", "properties": {
                 "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                 "required": ["city"]}}],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
    "metadata": {"user_id": "u-1"}})";
  std::string chat;
  ApiError error;
  ASSERT_TRUE(request_to_chat(original, chat, error)) << error.message;
  EXPECT_NE(chat.find(R"("arguments":"{\"city\":\"Paris\",\"unit\":\"c\"}")"), std::string::npos)
      << chat;
  const std::string back = request_from_chat(chat);
  EXPECT_EQ(parse(back), parse(original)) << back;
  // Key order survives too, and the output's top level reads in a natural order.
  EXPECT_NE(back.find(R"("input_schema":{"type":"object","properties":{"city":)"),
            std::string::npos)
      << back;
  EXPECT_EQ(back.rfind(R"({"model":"claude-sonnet-4-5","system":)", 0), 0u) << back;
}

TEST(AnthropicRoundTrip, MessageSurvivesBothWays) {
  const std::string original = R"({"id": "msg_01XYZ", "type": "message", "role": "assistant",
    "model": "claude-x", "content": [
      {"type": "thinking", "thinking": "Let me see.", "signature": ""},
      {"type": "text", "text": "Calling."},
      {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {"q": "x", "n": 2}}],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 11, "output_tokens": 7, "cache_read_input_tokens": 30}})";
  const std::string chat = response_to_chat(original, kCreated);
  EXPECT_EQ(parse(response_from_chat(chat)), parse(original));
}

// ---- Answers ----

TEST(AnthropicResponseToChat, MapsMessage) {
  json chat = parse(response_to_chat(R"({"id": "msg_1", "type": "message", "role": "assistant",
    "model": "claude-x", "content": [
      {"type": "thinking", "thinking": "a", "signature": "s1"},
      {"type": "redacted_thinking", "data": "zz"},
      {"type": "thinking", "thinking": "b", "signature": "s2"},
      {"type": "text", "text": "Hello "},
      {"type": "text", "text": "world"},
      {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"y": 1, "x": {"k": null}}}],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
              "cache_creation_input_tokens": 20}})",
                                     kCreated));
  EXPECT_EQ(chat, parse(R"({"id": "msg_1", "object": "chat.completion", "created": 1700000000,
    "model": "claude-x", "choices": [{"index": 0, "message": {"role": "assistant",
      "content": "Hello world", "tool_calls": [{"id": "toolu_1", "type": "function",
        "function": {"name": "f", "arguments": "{\"y\":1,\"x\":{\"k\":null}}"}}],
      "reasoning_content": "ab"}, "logprobs": null, "finish_reason": "tool_calls"}],
    "usage": {"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
              "prompt_tokens_details": {"cached_tokens": 100}}})"));

  // Tool calls alone: content null; nothing at all: an empty string.
  json tools_only = parse(response_to_chat(
      R"({"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]})", kCreated));
  EXPECT_TRUE(tools_only["choices"][0]["message"]["content"].is_null());
  json empty = parse(response_to_chat(R"({"content": []})", kCreated));
  EXPECT_EQ(empty["choices"][0]["message"]["content"], "");
  EXPECT_FALSE(empty["choices"][0]["message"].contains("reasoning_content"));
  EXPECT_EQ(empty["choices"][0]["finish_reason"], "stop");
  // created defaults to now.
  EXPECT_GT(parse(response_to_chat(R"({"content": []})"))["created"].get<int64_t>(), kCreated);
}

TEST(AnthropicResponseToChat, StopReasons) {
  for (auto [stop, finish] : {std::pair{"end_turn", "stop"},
                              {"stop_sequence", "stop"},
                              {"pause_turn", "stop"},
                              {"max_tokens", "length"},
                              {"tool_use", "tool_calls"},
                              {"refusal", "content_filter"},
                              {"something_new", "stop"}}) {
    json chat = parse(response_to_chat(
        std::string(R"({"content": [], "stop_reason": ")") + stop + "\"}", kCreated));
    EXPECT_EQ(chat["choices"][0]["finish_reason"], finish) << stop;
  }
}

TEST(AnthropicResponseToChat, ErrorsAndGarbage) {
  json err = parse(response_to_chat(
      R"({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})"));
  EXPECT_EQ(err, parse(R"({"error": {"message": "Overloaded", "type": "server_error",
    "param": null, "code": "overloaded"}})"));
  for (std::string_view bad : {"", "garbage", "[]", R"({"content": "text"})", "null"}) {
    json e = parse(response_to_chat(bad));
    EXPECT_EQ(e["error"]["type"], "upstream_error") << bad;
  }
}

TEST(AnthropicResponseFromChat, MapsCompletion) {
  json msg = parse(response_from_chat(R"({"id": "chatcmpl-abc123", "object": "chat.completion",
    "created": 1, "model": "qwen3", "choices": [{"index": 0, "message": {"role": "assistant",
      "content": "The answer.", "reasoning_content": "Thinking...", "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "f", "arguments": "{\"b\":[1],\"a\":\"x\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "oops"}}]},
      "finish_reason": "tool_calls"}],
    "usage": {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59,
              "prompt_tokens_details": {"cached_tokens": 32}}})"));
  EXPECT_EQ(msg, parse(R"({"id": "msg_abc123", "type": "message", "role": "assistant",
    "model": "qwen3", "content": [
      {"type": "thinking", "thinking": "Thinking...", "signature": ""},
      {"type": "text", "text": "The answer."},
      {"type": "tool_use", "id": "call_1", "name": "f", "input": {"b": [1], "a": "x"}},
      {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 18, "output_tokens": 9, "cache_read_input_tokens": 32}})"));

  // vLLM's "reasoning"; no usage; an empty answer still has one (empty) text block.
  json r = parse(response_from_chat(R"({"id": "x1", "model": "m", "choices": [{"index": 0,
    "message": {"role": "assistant", "content": null, "reasoning": "r"},
    "finish_reason": "length"}]})"));
  EXPECT_EQ(r["id"], "msg_x1");
  EXPECT_EQ(r["content"], parse(R"([{"type": "thinking", "thinking": "r", "signature": ""}])"));
  EXPECT_EQ(r["stop_reason"], "max_tokens");
  EXPECT_EQ(r["usage"], parse(R"({"input_tokens": 0, "output_tokens": 0})"));
  json empty = parse(
      response_from_chat(R"({"choices": [{"message": {"role": "assistant", "content": ""}}]})"));
  EXPECT_EQ(empty["content"], parse(R"([{"type": "text", "text": ""}])"));
  EXPECT_EQ(empty["stop_reason"], "end_turn");
  EXPECT_EQ(empty["id"], "msg_semrouter");
  EXPECT_EQ(parse(response_from_chat(R"({"id": "msg_kept", "choices": [{"message": {}}]})"))["id"],
            "msg_kept");
}

TEST(AnthropicResponseFromChat, StopReasons) {
  for (auto [finish, stop] : {std::pair{"stop", "end_turn"},
                              {"length", "max_tokens"},
                              {"tool_calls", "tool_use"},
                              {"function_call", "tool_use"},
                              {"content_filter", "refusal"},
                              {"weird", "end_turn"}}) {
    json msg = parse(response_from_chat(std::string(R"({"choices": [{"message": {"content": "x"},
      "finish_reason": ")") + finish + "\"}]}"));
    EXPECT_EQ(msg["stop_reason"], stop) << finish;
  }
  EXPECT_EQ(stop_reason_for(""), "end_turn");
  EXPECT_EQ(finish_reason_for(""), "stop");
}

TEST(AnthropicResponseFromChat, ErrorsAndGarbage) {
  json err = parse(response_from_chat(
      R"({"error": {"message": "bad things", "type": "BadRequestError", "code": 400}})"));
  EXPECT_EQ(err, parse(R"({"type": "error", "error": {"type": "invalid_request_error",
    "message": "bad things"}})"));
  for (std::string_view bad : {"", "garbage", "[]", R"({"choices": []})", R"({"choices": [1]})"}) {
    json e = parse(response_from_chat(bad));
    EXPECT_EQ(e["type"], "error") << bad;
    EXPECT_EQ(e["error"]["type"], "api_error") << bad;
  }
}

// ---- Errors ----

TEST(AnthropicErrors, ErrorBodyTypeFollowsStatus) {
  struct Case {
    int status;
    const char* type;
  } cases[] = {{400, "invalid_request_error"},
               {401, "authentication_error"},
               {403, "permission_error"},
               {404, "not_found_error"},
               {405, "invalid_request_error"},
               {413, "request_too_large"},
               {429, "rate_limit_error"},
               {500, "api_error"},
               {502, "api_error"},
               {504, "api_error"},
               {503, "overloaded_error"},
               {529, "overloaded_error"},
               {200, "api_error"}};
  for (const Case& c : cases) {
    ApiError e;
    e.status = c.status;
    e.message = "msg \"quoted\"";
    EXPECT_EQ(anthropic::error_body(e), std::string(R"({"type":"error","error":{"type":")") +
                                            c.type + R"(","message":"msg \"quoted\""}})")
        << c.status;
  }
  EXPECT_EQ(parse(anthropic::error_body(body_too_large(10)))["error"]["type"], "request_too_large");
  EXPECT_EQ(parse(anthropic::error_body(model_not_found("x", "y")))["error"]["type"],
            "not_found_error");
}

TEST(AnthropicErrors, ToOpenAi) {
  struct Case {
    std::string body;
    int status;
    std::string expected;
  } cases[] = {
      {R"({"type":"error","error":{"type":"invalid_request_error","message":"bad"}})", 400,
       R"({"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}})"},
      {R"({"type":"error","error":{"type":"api_error","message":"boom"}})", 500,
       R"({"error":{"message":"boom","type":"server_error","param":null,"code":null}})"},
      {R"({"type":"error","error":{"type":"request_too_large","message":"big"}})", 413,
       R"({"error":{"message":"big","type":"invalid_request_error","param":null,)"
       R"("code":"request_too_large"}})"},
      {R"({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}})", 429,
       R"({"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":null}})"},
      {"upstream exploded\n", 429,
       R"({"error":{"message":"upstream exploded","type":"rate_limit_error","param":null,)"
       R"("code":null}})"},
      {"", 503,
       R"({"error":{"message":"The backend answered with HTTP status 503.","type":)"
       R"("server_error","param":null,"code":"overloaded"}})"},
      {R"({"message":"plain"})", 401,
       R"({"error":{"message":"plain","type":"authentication_error","param":null,"code":null}})"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(error_to_openai(c.body, c.status), c.expected) << c.body;
}

TEST(AnthropicErrors, FromOpenAi) {
  struct Case {
    std::string body;
    int status;
    std::string expected;
  } cases[] = {
      {R"({"error":{"message":"no such model","type":"invalid_request_error","code":null}})", 404,
       R"({"type":"error","error":{"type":"not_found_error","message":"no such model"}})"},
      {R"({"object":"error","message":"too long","type":"BadRequestError","code":400})", 400,
       R"({"type":"error","error":{"type":"invalid_request_error","message":"too long"}})"},
      {R"({"detail":"Not Found"})", 404,
       R"({"type":"error","error":{"type":"not_found_error","message":"Not Found"}})"},
      {R"({"error":"rate limited"})", 429,
       R"({"type":"error","error":{"type":"rate_limit_error","message":"rate limited"}})"},
      {"<html>Bad Gateway</html>", 502,
       R"({"type":"error","error":{"type":"api_error","message":"<html>Bad Gateway</html>"}})"},
      {"", 529,
       R"({"type":"error","error":{"type":"overloaded_error","message":)"
       R"("The backend answered with HTTP status 529."}})"},
      // No HTTP status (inside a stream): vLLM's numeric code decides.
      {R"({"error":{"message":"slow","code":429}})", 0,
       R"({"type":"error","error":{"type":"rate_limit_error","message":"slow"}})"},
      {R"({"error":{"message":"odd","code":"x"}})", 200,
       R"({"type":"error","error":{"type":"api_error","message":"odd"}})"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(error_from_openai(c.body, c.status), c.expected) << c.body;
  // Invalid UTF-8 in a text body still gives valid JSON.
  EXPECT_TRUE(json::accept(error_from_openai("bad \xff\xfe bytes", 500)));
  EXPECT_TRUE(json::accept(error_to_openai("bad \xc3 bytes", 500)));
  // A huge text body is cut.
  EXPECT_LT(error_from_openai(std::string(100000, 'x'), 500).size(), 3000u);
}

// ---- StreamFromChat ----

std::string chat_chunk(std::string_view choices_or_tail) {
  return std::string(R"(data: {"id":"chatcmpl-abc","object":"chat.completion.chunk",)"
                     R"("created":1,"model":"qwen3",)") +
         std::string(choices_or_tail) + "}\n\n";
}
std::string chat_delta(std::string_view delta, std::string_view finish = "null") {
  return chat_chunk(std::string(R"("choices":[{"index":0,"delta":)") + std::string(delta) +
                    R"(,"finish_reason":)" + std::string(finish) + "}]");
}

const std::string kChatStream =
    chat_delta(R"({"role":"assistant","content":""})") +
    chat_delta(R"({"reasoning_content":"Let me "})") +
    chat_delta(R"({"reasoning_content":"think."})") + chat_delta(R"({"content":"Hello"})") +
    chat_delta(R"({"content":" wörld"})") +
    chat_delta(R"({"tool_calls":[{"index":0,"id":"call_1","type":"function",)"
               R"("function":{"name":"get_weather","arguments":""}}]})") +
    chat_delta(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]})") +
    chat_delta(R"({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]})") +
    chat_delta(R"({"tool_calls":[{"index":1,"id":"call_2","type":"function",)"
               R"("function":{"name":"get_time","arguments":"{}"}}]})") +
    chat_delta("{}", R"("tool_calls")") +
    chat_chunk(R"("choices":[],"usage":{"prompt_tokens":20,"completion_tokens":10,)"
               R"("total_tokens":30,"prompt_tokens_details":{"cached_tokens":5}})") +
    "data: [DONE]\n\n";

TEST(AnthropicStreamFromChat, TranslatesAFullStream) {
  const std::string out = run_all_ways<StreamFromChat>(kChatStream);
  auto events = anthropic_events(out);
  EXPECT_EQ(types(events), (std::vector<std::string>{
                               "message_start", "content_block_start", "content_block_delta",
                               "content_block_delta", "content_block_stop", "content_block_start",
                               "content_block_delta", "content_block_delta", "content_block_stop",
                               "content_block_start", "content_block_delta", "content_block_delta",
                               "content_block_stop", "content_block_start", "content_block_delta",
                               "content_block_stop", "message_delta", "message_stop"}));
  // The exact wire form of the first events.
  EXPECT_EQ(out.substr(0, out.find("event: content_block_delta")),
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"
            "\"msg_abc\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"qwen3\","
            "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
            "{\"input_tokens\":0,\"output_tokens\":0}}}\n\n"
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
            "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n");
  EXPECT_EQ(accumulate_message(events), parse(R"({"id": "msg_abc", "type": "message",
    "role": "assistant", "model": "qwen3", "content": [
      {"type": "thinking", "thinking": "Let me think.", "signature": ""},
      {"type": "text", "text": "Hello wörld"},
      {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
      {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 15, "output_tokens": 10, "cache_read_input_tokens": 5}})"));
}

TEST(AnthropicStreamFromChat, EveryLineEndGivesTheSameOutput) {
  // An upstream's chat stream with CRLF or lone-CR line ends (all three are SSE line ends).
  const std::string out = run_all_ways<StreamFromChat>(kChatStream);
  EXPECT_EQ(run_all_ways<StreamFromChat>(test_support::with_line_ends(kChatStream, "\r\n")), out);
  EXPECT_EQ(run_all_ways<StreamFromChat>(test_support::with_line_ends(kChatStream, "\r")), out);
}

TEST(AnthropicStreamFromChat, FinishIsIdempotentAndClosesOpenStreams) {
  StreamFromChat s;
  std::string out;
  s.feed(kChatStream, out);
  EXPECT_TRUE(s.done());
  std::string after;
  s.finish(after);
  s.finish(after);
  s.feed(chat_delta(R"({"content":"late"})"), after);
  EXPECT_EQ(after, "");

  // No [DONE]: finish() closes the open block and the message. "reasoning" is vLLM's field.
  const std::string cut = chat_delta(R"({"reasoning":"r"})") + chat_delta(R"({"content":"par)");
  StreamFromChat open;
  std::string o1 = run(open, cut, 1);
  std::string again;
  open.finish(again);
  EXPECT_EQ(again, "");
  auto events = anthropic_events(o1);
  EXPECT_EQ(types(events).back(), "message_stop");
  json message = accumulate_message(events);
  EXPECT_EQ(message["content"],
            parse(R"([{"type": "thinking", "thinking": "r", "signature": ""}])"));
  EXPECT_EQ(message["stop_reason"], "end_turn");
  // The last event is used even without its blank line.
  StreamFromChat unterminated;
  std::string o2;
  unterminated.feed(chat_delta(R"({"content":"x"})", R"("length")") + "data: [DONE]", o2);
  unterminated.finish(o2);
  EXPECT_EQ(accumulate_message(anthropic_events(o2))["stop_reason"], "max_tokens");
}

TEST(AnthropicStreamFromChat, NothingReceivedEmitsNothing) {
  StreamFromChat s;
  std::string out;
  s.feed(": keep-alive\n\n", out);
  s.finish(out);
  EXPECT_EQ(out, "");
  // A bare [DONE] still makes a complete, empty message.
  StreamFromChat bare;
  std::string b = run(bare, "data: [DONE]\n\n", 1);
  json m = accumulate_message(anthropic_events(b));
  EXPECT_EQ(m["content"], json::array());
  EXPECT_EQ(m["stop_reason"], "end_turn");
}

TEST(AnthropicStreamFromChat, ErrorPayloadBecomesErrorEvent) {
  const std::string input =
      chat_delta(R"({"content":"Hi"})") +
      R"(data: {"error":{"message":"context too long","type":"BadRequestError","code":400}})" +
      "\n\n" + chat_delta(R"({"content":"ignored"})") + "data: [DONE]\n\n";
  const std::string out = run_all_ways<StreamFromChat>(input);
  auto events = anthropic_events(out);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type, "error");
  EXPECT_EQ(events.back().data, parse(R"({"type": "error", "error": {
    "type": "invalid_request_error", "message": "context too long"}})"));
  EXPECT_EQ(types(events), (std::vector<std::string>{"message_start", "content_block_start",
                                                     "content_block_delta", "error"}));
}

TEST(AnthropicStreamFromChat, ToolCallEdgeCases) {
  // Ids repeated on every chunk (some backends), an id that needs cleaning, a call without an
  // id, arguments as the very first piece, and other choices ignored.
  const std::string input =
      chat_delta(R"({"tool_calls":[{"index":0,"id":"call.a","function":{"name":"f",)"
                 R"("arguments":"{\"x\""}}]})") +
      chat_delta(R"({"tool_calls":[{"index":0,"id":"call.a","function":{"arguments":":1}"}}]})") +
      chat_chunk(R"("choices":[{"index":1,"delta":{"content":"other choice"}}])") +
      chat_delta(R"({"tool_calls":[{"index":1,"function":{"name":"g","arguments":"{}"}}]})") +
      chat_delta("{}", R"("tool_calls")") + "data: [DONE]\n\n";
  json m = accumulate_message(anthropic_events(run_all_ways<StreamFromChat>(input)));
  EXPECT_EQ(m["content"], parse(R"([
    {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
    {"type": "tool_use", "id": "toolu_1", "name": "g", "input": {}}])"));
}

TEST(AnthropicStreamFromChat, ToolCallsWithoutIndex) {
  // Backends that leave the index out send one call at a time: whole calls one per piece, or a
  // named first piece followed by argument pieces. Each call gets its own tool_use block.
  const std::string input = chat_delta(R"({"role":"assistant","content":""})") +
                            chat_delta(R"({"tool_calls":[{"id":"call_a","type":"function",)"
                                       R"("function":{"name":"f","arguments":"{\"q\":1}"}}]})") +
                            chat_delta(R"({"tool_calls":[{"id":"call_b","type":"function",)"
                                       R"("function":{"name":"g","arguments":"{\"q\""}}]})") +
                            chat_delta(R"({"tool_calls":[{"function":{"arguments":":2}"}}]})") +
                            chat_delta("{}", R"("tool_calls")") + "data: [DONE]\n\n";
  json m = accumulate_message(anthropic_events(run_all_ways<StreamFromChat>(input)));
  EXPECT_EQ(m["content"], parse(R"([
    {"type": "tool_use", "id": "call_a", "name": "f", "input": {"q": 1}},
    {"type": "tool_use", "id": "call_b", "name": "g", "input": {"q": 2}}])"));
  EXPECT_EQ(m["stop_reason"], "tool_use");
}

// ---- StreamToChat ----

std::string anthropic_event(std::string_view type, std::string_view data) {
  return "event: " + std::string(type) + "\ndata: " + std::string(data) + "\n\n";
}

const std::string kAnthropicStream =
    anthropic_event("message_start",
                    R"({"type":"message_start","message":{"id":"msg_1","type":"message",)"
                    R"("role":"assistant","model":"claude-x","content":[],"stop_reason":null,)"
                    R"("stop_sequence":null,"usage":{"input_tokens":10,)"
                    R"("cache_read_input_tokens":4,"cache_creation_input_tokens":2,)"
                    R"("output_tokens":1}}})") +
    anthropic_event("ping", R"({"type": "ping"})") +
    anthropic_event("content_block_start",
                    R"({"type":"content_block_start","index":0,"content_block":)"
                    R"({"type":"thinking","thinking":"","signature":""}})") +
    anthropic_event("content_block_delta", R"({"type":"content_block_delta","index":0,"delta":)"
                                           R"({"type":"thinking_delta","thinking":"Hmm."}})") +
    anthropic_event("content_block_delta", R"({"type":"content_block_delta","index":0,"delta":)"
                                           R"({"type":"signature_delta","signature":"EqQBCg"}})") +
    anthropic_event("content_block_stop", R"({"type":"content_block_stop","index":0})") +
    anthropic_event("content_block_start",
                    R"({"type":"content_block_start","index":1,"content_block":)"
                    R"({"type":"text","text":""}})") +
    anthropic_event("content_block_delta", R"({"type":"content_block_delta","index":1,"delta":)"
                                           R"({"type":"text_delta","text":"Hi "}})") +
    anthropic_event("content_block_delta", R"({"type":"content_block_delta","index":1,"delta":)"
                                           R"({"type":"text_delta","text":"thére"}})") +
    anthropic_event("content_block_stop", R"({"type":"content_block_stop","index":1})") +
    anthropic_event("content_block_start",
                    R"({"type":"content_block_start","index":2,"content_block":)"
                    R"({"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}})") +
    anthropic_event("content_block_delta", R"({"type":"content_block_delta","index":2,"delta":)"
                                           R"({"type":"input_json_delta","partial_json":""}})") +
    anthropic_event("content_block_delta",
                    R"({"type":"content_block_delta","index":2,"delta":)"
                    R"({"type":"input_json_delta","partial_json":"{\"city\": \"Par"}})") +
    anthropic_event("content_block_delta",
                    R"({"type":"content_block_delta","index":2,"delta":)"
                    R"({"type":"input_json_delta","partial_json":"is\"}"}})") +
    anthropic_event("content_block_stop", R"({"type":"content_block_stop","index":2})") +
    anthropic_event("message_delta", R"({"type":"message_delta","delta":{"stop_reason":"tool_use",)"
                                     R"("stop_sequence":null},"usage":{"output_tokens":42}})") +
    anthropic_event("message_stop", R"({"type":"message_stop"})");

TEST(AnthropicStreamToChat, TranslatesAFullStream) {
  const std::string out = run_all_ways<StreamToChat>(kAnthropicStream, kCreated, true);
  auto events = chat_events(out);
  ASSERT_EQ(events.size(), 10u) << out;
  EXPECT_EQ(out.substr(0, out.find("\n\n") + 2),
            "data: {\"id\":\"msg_1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
            "\"model\":\"claude-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
            "\"content\":\"\"},\"finish_reason\":null}]}\n\n");
  EXPECT_EQ(parse(events[4]), parse(R"({"id": "msg_1", "object": "chat.completion.chunk",
    "created": 1700000000, "model": "claude-x", "choices": [{"index": 0, "delta": {"tool_calls": [
      {"index": 0, "id": "toolu_1", "type": "function",
       "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": null}]})"));
  EXPECT_EQ(parse(events[8]), parse(R"({"id": "msg_1", "object": "chat.completion.chunk",
    "created": 1700000000, "model": "claude-x", "choices": [],
    "usage": {"prompt_tokens": 16, "completion_tokens": 42, "total_tokens": 58,
              "prompt_tokens_details": {"cached_tokens": 4}}})"));
  ChatAccumulated a = accumulate_chat(events);
  EXPECT_TRUE(a.role_first);
  EXPECT_EQ(a.role, "assistant");
  EXPECT_EQ(a.reasoning, "Hmm.");
  EXPECT_EQ(a.content, "Hi thére");
  EXPECT_EQ(a.tool_calls, parse(R"([{"id": "toolu_1", "name": "get_weather",
    "arguments": "{\"city\": \"Paris\"}"}])"));
  EXPECT_EQ(a.finish_reason, "tool_calls");
  EXPECT_TRUE(a.done);

  // CRLF line ends give the same output.
  EXPECT_EQ(run_all_ways<StreamToChat>(test_support::with_line_ends(kAnthropicStream, "\r\n"),
                                       kCreated, true),
            out);
  // So do lone CRs, the SSE format's third line end.
  EXPECT_EQ(run_all_ways<StreamToChat>(test_support::with_line_ends(kAnthropicStream, "\r"),
                                       kCreated, true),
            out);
}

TEST(AnthropicStreamToChat, WithoutUsageChunk) {
  const std::string out = run_all_ways<StreamToChat>(kAnthropicStream, kCreated, false);
  auto events = chat_events(out);
  EXPECT_EQ(events.size(), 9u);
  EXPECT_EQ(out.find("\"usage\""), std::string::npos);
}

TEST(AnthropicStreamToChat, FinishClosesAndIsIdempotent) {
  const std::string cut = kAnthropicStream.substr(0, kAnthropicStream.find("event: message_delta"));
  StreamToChat s(kCreated);
  std::string out = run(s, cut, 3);
  std::string again;
  s.finish(again);
  EXPECT_EQ(again, "");
  ChatAccumulated a = accumulate_chat(chat_events(out));
  EXPECT_EQ(a.finish_reason, "stop");
  EXPECT_TRUE(a.done);
  EXPECT_EQ(a.usage["prompt_tokens"], 16);
  EXPECT_EQ(a.usage["completion_tokens"], 1);

  // A complete stream: finish() adds nothing.
  StreamToChat whole(kCreated);
  std::string w;
  whole.feed(kAnthropicStream, w);
  EXPECT_TRUE(whole.done());
  std::string extra;
  whole.finish(extra);
  EXPECT_EQ(extra, "");

  // Nothing (or only pings) received: nothing emitted.
  StreamToChat empty(kCreated);
  std::string e;
  empty.feed(anthropic_event("ping", R"({"type":"ping"})"), e);
  empty.finish(e);
  EXPECT_EQ(e, "");

  // message_delta without message_stop: only [DONE] is missing.
  const std::string no_stop =
      kAnthropicStream.substr(0, kAnthropicStream.find("event: message_stop"));
  StreamToChat partial(kCreated);
  auto events = chat_events(run(partial, no_stop, 5));
  EXPECT_EQ(events.size(), 10u);
  EXPECT_EQ(accumulate_chat(events).finish_reason, "tool_calls");
}

TEST(AnthropicStreamToChat, ErrorEvent) {
  const std::string input =
      kAnthropicStream.substr(0, kAnthropicStream.find("event: content_block_start")) +
      anthropic_event(
          "error",
          R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})") +
      anthropic_event("message_stop", R"({"type":"message_stop"})");
  const std::string out = run_all_ways<StreamToChat>(input, kCreated, true);
  auto events = chat_events(out);
  ASSERT_EQ(events.size(), 2u) << out;
  EXPECT_EQ(parse(events[1]), parse(R"({"error": {"message": "Overloaded",
    "type": "server_error", "param": null, "code": "overloaded"}})"));
}

TEST(AnthropicStreamToChat, StopReasonsAndWholeToolInput) {
  // A tool_use whose input arrives whole in content_block_start (no deltas); max_tokens.
  const std::string input =
      anthropic_event("message_start",
                      R"({"type":"message_start","message":{"id":"m","model":"x"}})") +
      anthropic_event("content_block_start",
                      R"({"type":"content_block_start","index":0,"content_block":)"
                      R"({"type":"tool_use","id":"t","name":"f","input":{"b":1,"a":2}}})") +
      anthropic_event("content_block_stop", R"({"type":"content_block_stop","index":0})") +
      anthropic_event("message_delta",
                      R"({"type":"message_delta","delta":{"stop_reason":"max_tokens"},)"
                      R"("usage":{"input_tokens":3,"output_tokens":4}})") +
      anthropic_event("message_stop", R"({"type":"message_stop"})");
  ChatAccumulated a =
      accumulate_chat(chat_events(run_all_ways<StreamToChat>(input, kCreated, true)));
  EXPECT_EQ(a.tool_calls, parse(R"([{"id": "t", "name": "f", "arguments": "{\"b\":1,\"a\":2}"}])"));
  EXPECT_EQ(a.finish_reason, "length");
  EXPECT_EQ(a.usage, parse(R"({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})"));
}

// ---- Hostile input ----

const std::vector<std::string>& hostile_bodies() {
  static const std::vector<std::string> bodies = [] {
    std::vector<std::string> b = {
        "",
        "null",
        "0",
        "\"str\"",
        "[]",
        "{}",
        "{",
        "{\"a\":}",
        "\xff\xfe",
        "{\"model\":\"\xc3\x28\",\"max_tokens\":1,\"messages\":[]}",
        R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"\ud800"}]})",
        R"({"model":1,"messages":1,"max_tokens":[],"system":{},"tools":"x","tool_choice":[],
            "stop":{},"stop_sequences":{},"temperature":"x","thinking":1,"metadata":"x",
            "content":5,"choices":{},"usage":"x","stop_reason":3,"error":5,"type":5,"id":5})",
        R"({"model":"m","max_tokens":18446744073709551615,"messages":[]})",
        R"({"model":"m","max_tokens":1e400,"messages":[]})",
        R"({"model":"m","max_tokens":99999999999999999999999,"messages":[]})",
        R"({"messages":[null,1,"x",[],{"role":5},{"role":"user","content":[null,1,{"type":5}]},
            {"role":"assistant","tool_calls":[null,1,{"function":5},{"function":{"name":5,
            "arguments":5}},{"id":5,"function":{"arguments":"{\"a\":"}}]},
            {"role":"tool","content":[1,null,{"type":"text","text":5}]},
            {"role":"user","content":[{"type":"image_url","image_url":5},
            {"type":"image_url","image_url":{"url":"data:,"}},
            {"type":"image_url","image_url":{"url":"data:image/png;base64"}},
            {"type":"image_url","image_url":"data:x;base64,AA"}]}],
            "tools":[null,{"function":null},{"type":"function","function":{"name":""}}],
            "thinking":{"type":"enabled","budget_tokens":18446744073709551615},
            "max_tokens":18446744073709551615})",
        R"({"choices":[{"message":{"content":[1,{"type":"text","text":5}],"tool_calls":5,
            "function_call":{"name":5,"arguments":{"x":1}},"reasoning":5},"finish_reason":5}],
            "usage":{"prompt_tokens":-5,"completion_tokens":1.5,
            "prompt_tokens_details":{"cached_tokens":"x"}}})",
        R"({"content":[null,1,{"type":"tool_use","input":null},{"type":"text","text":5}],
            "usage":{"input_tokens":18446744073709551615,"cache_read_input_tokens":5}})",
        R"({"type":"error","error":null})",
        R"({"error":{"message":5,"code":-1}})",
        R"({"a":1,"a":2,"a":{"b":3}})",
    };
    b.push_back(std::string(100000, '[') + std::string(100000, ']'));
    b.push_back(std::string(100000, '{'));
    b.push_back("{\"messages\":" + std::string(2000, '[') + std::string(2000, ']') + "}");
    return b;
  }();
  return bodies;
}

void expect_all_functions_survive(const std::string& body) {
  std::string chat;
  ApiError error;
  bool ok = false;
  EXPECT_NO_THROW(ok = request_to_chat(body, chat, error));
  if (ok) {
    EXPECT_TRUE(json::accept(chat)) << chat;
  } else {
    EXPECT_TRUE(error.status == 400 || error.status == 500) << error.status;
  }
  for (std::string out :
       {request_from_chat(body), response_to_chat(body), response_from_chat(body),
        error_to_openai(body, 500), error_from_openai(body, 500), error_from_openai(body, 0)})
    EXPECT_TRUE(json::accept(out)) << "in: " << body.substr(0, 200) << "\nout: " << out;
  for (std::string_view framing : {"data: ", "event: x\ndata: "}) {
    const std::string stream = std::string(framing) + body + "\n\n";
    StreamToChat to_chat_stream(kCreated);
    std::string o1 = run(to_chat_stream, stream, 3);
    chat_events(o1);
    StreamFromChat from_chat_stream;
    std::string o2 = run(from_chat_stream, stream, 3);
    anthropic_events(o2);
  }
}

TEST(AnthropicHostile, GarbageNeverThrowsAndGivesValidJson) {
  for (const std::string& body : hostile_bodies())
    expect_all_functions_survive(body);
  // Invalid UTF-8 in the request is a 400.
  ApiError e = to_chat_error("{\"model\":\"\xc3\x28\",\"max_tokens\":1,\"messages\":[]}");
  EXPECT_EQ(e.status, 400);
  // A repeated key keeps its last value, so the output is unambiguous.
  json chat = to_chat(R"({"model":"a","model":"b","max_tokens":1,"messages":[]})");
  EXPECT_EQ(chat["model"], "b");
  // Many keys parse in linear time (a quadratic parse would take minutes here).
  std::string many = R"({"model":"m","max_tokens":1,"messages":[],"x":{)";
  for (int i = 0; i < 200000; ++i)
    many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":0";
  many += "}}";
  EXPECT_EQ(to_chat(many)["model"], "m");
}

TEST(AnthropicHostile, EveryTruncationOfValidInputs) {
  const std::string inputs[] = {
      R"({"model":"m","max_tokens":9,"system":[{"type":"text","text":"s"}],"messages":[
        {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image","source":
        {"type":"base64","media_type":"image/png","data":"AA"}}]},{"role":"assistant",
        "content":[{"type":"tool_use","id":"t","name":"f","input":{"a":1}}]},{"role":"user",
        "content":[{"type":"tool_result","tool_use_id":"t","content":"ok"}]}],"tools":[{"name":
        "f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"}})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"assistant",
        "tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]},{"role":"tool",
        "tool_call_id":"c","content":"r"}],"thinking":{"type":"enabled","budget_tokens":9}})",
      R"({"id":"chatcmpl-1","choices":[{"message":{"content":"x","tool_calls":[{"id":"c",
        "function":{"name":"f","arguments":"{}"}}]},"finish_reason":"stop"}],"usage":
        {"prompt_tokens":1}})",
  };
  for (const std::string& input : inputs) {
    for (size_t n = 0; n <= input.size(); ++n)
      expect_all_functions_survive(input.substr(0, n));
  }
}

TEST(AnthropicHostile, StreamsSurviveTruncationAndNoise) {
  // Every truncation of both valid streams, then finish(): well-formed events only.
  for (size_t n = 0; n <= kChatStream.size(); n += 3) {
    StreamFromChat s;
    auto events = anthropic_events(run(s, std::string_view(kChatStream).substr(0, n), 11));
    if (!events.empty()) {
      EXPECT_EQ(events.back().type, "message_stop") << n;
    }
  }
  for (size_t n = 0; n <= kAnthropicStream.size(); n += 3) {
    StreamToChat s(kCreated);
    auto events = chat_events(run(s, std::string_view(kAnthropicStream).substr(0, n), 11));
    if (!events.empty()) {
      EXPECT_EQ(events.back(), "[DONE]") << n;
    }
  }
  // Random bytes, and valid streams with random bytes flipped.
  core::Random rng(42);
  for (int round = 0; round < 200; ++round) {
    std::string noise;
    const std::string& base = round % 2 ? kChatStream : kAnthropicStream;
    if (round % 3 == 0) {
      for (int i = 0; i < 500; ++i)
        noise += static_cast<char>(rng.next() & 0xFF);
    } else {
      noise = base;
      for (int i = 0; i < 10; ++i)
        noise[rng.next() % noise.size()] = static_cast<char>(rng.next() & 0xFF);
    }
    const size_t step = 1 + rng.next() % 50;
    StreamToChat a(kCreated);
    chat_events(run(a, noise, step));
    StreamFromChat b;
    anthropic_events(run(b, noise, step));
  }
}

} // namespace
} // namespace semrouter::openai::anthropic
