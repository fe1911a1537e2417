#include "openai/responses_api.h"
#include "sse_line_ends.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace semrouter::openai::responses_api {
namespace {

using nlohmann::json;

json chat_of(std::string_view request) {
  ChatRequest out;
  ApiError error;
  EXPECT_TRUE(request_to_chat(request, out, error)) << error.message;
  EXPECT_EQ(out.unsupported, "");
  return json::parse(out.body);
}

// The unsupported feature named, or "<error: param>" when the request is refused.
std::string unsupported_of(std::string_view request) {
  ChatRequest out;
  ApiError error;
  if (!request_to_chat(request, out, error))
    return "<error: " + error.param + ">";
  EXPECT_TRUE(json::accept(out.body));
  return out.unsupported;
}

ApiError error_of(std::string_view request) {
  ChatRequest out;
  ApiError error;
  EXPECT_FALSE(request_to_chat(request, out, error)) << request;
  EXPECT_EQ(out.body, "");
  return error;
}

struct Event {
  std::string name; // the `event:` field ("" when absent)
  json data;        // null for [DONE]
  bool done = false;
};

// Splits translated SSE output into events; every data payload must be JSON or [DONE].
std::vector<Event> events_of(const std::string& sse) {
  std::vector<Event> out;
  size_t pos = 0;
  while (pos < sse.size()) {
    size_t end = sse.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated event at " << pos;
    if (end == std::string::npos)
      break;
    std::string block = sse.substr(pos, end - pos);
    pos = end + 2;
    Event e;
    size_t line_start = 0;
    while (line_start <= block.size()) {
      size_t nl = block.find('\n', line_start);
      std::string line =
          block.substr(line_start, nl == std::string::npos ? std::string::npos : nl - line_start);
      if (line.rfind("event: ", 0) == 0) {
        e.name = line.substr(7);
      } else if (line.rfind("data: ", 0) == 0) {
        std::string data = line.substr(6);
        if (data == "[DONE]") {
          e.done = true;
        } else {
          EXPECT_TRUE(json::accept(data)) << data;
          e.data = json::parse(data, nullptr, false);
        }
      } else {
        ADD_FAILURE() << "unexpected line: " << line;
      }
      if (nl == std::string::npos)
        break;
      line_start = nl + 1;
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<std::string> types_of(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const Event& e : events)
    out.push_back(e.data.value("type", std::string()));
  return out;
}

// Responses events: named like their type, numbered 0, 1, 2, ...
void expect_well_formed(const std::vector<Event>& events) {
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].name, events[i].data.value("type", std::string("?"))) << i;
    EXPECT_EQ(events[i].data.value("sequence_number", -1), static_cast<int>(i)) << i;
  }
}

template <class Stream> std::string run_whole(const std::string& input, Stream s) {
  std::string out;
  s.feed(input, out);
  s.finish(out);
  s.finish(out); // idempotent
  return out;
}

template <class Stream> std::string run_bytewise(const std::string& input, Stream s) {
  std::string out;
  for (char c : input)
    s.feed(std::string_view(&c, 1), out);
  s.finish(out);
  return out;
}

std::string chunk(const std::string& delta, const std::string& finish = "null") {
  return "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
         "\"model\":\"qwen3\",\"choices\":[{\"index\":0,\"delta\":" +
         delta + ",\"finish_reason\":" + finish + "}]}\n\n";
}

const std::string kUsageChunk =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
    "\"model\":\"qwen3\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,"
    "\"total_tokens\":18,\"completion_tokens_details\":{\"reasoning_tokens\":3}}}\n\n";

// A chat stream with reasoning, text, then two tool calls (arguments in pieces).
const std::string kChatStream =
    chunk(R"({"role":"assistant","content":""})") + chunk(R"({"reasoning_content":"Think"})") +
    chunk(R"({"reasoning_content":"ing."})") + chunk(R"({"content":"Hello "})") +
    chunk(R"({"content":"wörld"})") +
    chunk(
        R"({"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]})") +
    chunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]})") +
    chunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]})") +
    chunk(
        R"({"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]})") +
    chunk("{}", "\"tool_calls\"") + kUsageChunk + "data: [DONE]\n\n";

// The same answer, not streamed.
const std::string kChatBody = R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,
  "model":"qwen3","choices":[{"index":0,"message":{"role":"assistant","content":"Hello wörld",
  "reasoning_content":"Thinking.","tool_calls":[
   {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
   {"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
  "finish_reason":"tool_calls"}],
  "usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,
           "completion_tokens_details":{"reasoning_tokens":3}}})";

// ---- request_to_chat ----------------------------------------------------------------------------

TEST(ResponsesApiRequest, StringInputAndScalars) {
  json c = chat_of(R"({"model":"auto","instructions":"Be brief.","input":"Hi",
    "max_output_tokens":100,"temperature":0.5,"top_p":0.9,"user":"u1","parallel_tool_calls":false,
    "stream":true,"reasoning":{"effort":"high","summary":"auto"},"store":true,"include":[],
    "truncation":"auto","metadata":{"a":"b"},"background":false})");
  EXPECT_EQ(c, json::parse(R"({"model":"auto","messages":[{"role":"system","content":"Be brief."},
    {"role":"user","content":"Hi"}],"parallel_tool_calls":false,"max_tokens":100,
    "temperature":0.5,"top_p":0.9,"user":"u1","reasoning_effort":"high","stream":true,
    "stream_options":{"include_usage":true}})"));
  ChatRequest out;
  ApiError error;
  ASSERT_TRUE(request_to_chat(R"({"model":"m","input":"x","stream":true})", out, error));
  EXPECT_TRUE(out.stream);
  ASSERT_TRUE(request_to_chat(R"({"model":"m","input":"x","instructions":""})", out, error));
  EXPECT_FALSE(out.stream);
  EXPECT_EQ(json::parse(out.body)["messages"].size(), 1u); // empty instructions: no system
}

TEST(ResponsesApiRequest, MessageItemsAndParts) {
  json c = chat_of(R"({"model":"m","input":[
    {"role":"developer","content":"Rules."},
    {"type":"message","role":"user","content":[{"type":"input_text","text":"What is this?"},
      {"type":"input_image","image_url":"https://x/y.png","detail":"low"}]},
    {"type":"reasoning","id":"rs_1","summary":[]},
    {"type":"message","role":"assistant","id":"msg_1","status":"completed",
      "content":[{"type":"output_text","text":"A cat.","annotations":[]}]},
    {"role":"assistant","content":[{"type":"refusal","refusal":"No."}]},
    {"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]},
    {"role":"user","content":[{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,AA"}]}]})");
  EXPECT_EQ(c["messages"], json::parse(R"([
    {"role":"system","content":"Rules."},
    {"role":"user","content":[{"type":"text","text":"What is this?"},
      {"type":"image_url","image_url":{"url":"https://x/y.png","detail":"low"}}]},
    {"role":"assistant","content":"A cat."},
    {"role":"assistant","content":"No."},
    {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
    {"role":"user","content":[{"type":"file","file":{"filename":"a.pdf",
      "file_data":"data:application/pdf;base64,AA"}}]}])"));
}

TEST(ResponsesApiRequest, FunctionCallsJoinTheAssistantTurn) {
  json c = chat_of(R"({"model":"m","input":[
    {"role":"user","content":"Weather and time in Paris?"},
    {"type":"reasoning","id":"rs_1","summary":[]},
    {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking."}]},
    {"type":"function_call","id":"fc_1","call_id":"call_a","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"},
    {"type":"function_call","call_id":"call_b","name":"get_time","arguments":"{}"},
    {"type":"function_call_output","call_id":"call_a","output":"18C"},
    {"type":"function_call_output","call_id":"call_b","output":[{"type":"input_text","text":"noon"}]},
    {"type":"function_call","call_id":"call_c","name":"get_time","arguments":"{}"}]})");
  EXPECT_EQ(c["messages"], json::parse(R"([
    {"role":"user","content":"Weather and time in Paris?"},
    {"role":"assistant","content":"Checking.","tool_calls":[
      {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
      {"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
    {"role":"tool","tool_call_id":"call_a","content":"18C"},
    {"role":"tool","tool_call_id":"call_b","content":"noon"},
    {"role":"assistant","content":null,"tool_calls":[
      {"id":"call_c","type":"function","function":{"name":"get_time","arguments":"{}"}}]}])"));
}

TEST(ResponsesApiRequest, ToolsToolChoiceAndFormats) {
  json c = chat_of(R"({"model":"m","input":"x","tools":[
    {"type":"function","name":"f","description":"d","parameters":{"type":"object","properties":{}},"strict":true},
    {"type":"function","name":"g"}],"tool_choice":{"type":"function","name":"f"},
    "text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true},
            "verbosity":"low"}})");
  EXPECT_EQ(c["tools"], json::parse(R"([
    {"type":"function","function":{"name":"f","description":"d",
      "parameters":{"type":"object","properties":{}},"strict":true}},
    {"type":"function","function":{"name":"g"}}])"));
  EXPECT_EQ(c["tool_choice"], json::parse(R"({"type":"function","function":{"name":"f"}})"));
  EXPECT_EQ(c["response_format"], json::parse(R"({"type":"json_schema","json_schema":
    {"name":"out","schema":{"type":"object"},"strict":true}})"));
  EXPECT_EQ(c["verbosity"], "low");

  for (const char* choice : {"auto", "none", "required"}) {
    json d = chat_of(
        std::string(
            R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":")") +
        choice + "\"}");
    EXPECT_EQ(d["tool_choice"], choice);
  }
  json o = chat_of(
      R"({"model":"m","input":"x","text":{"format":{"type":"json_object"}},"tool_choice":"auto"})");
  EXPECT_EQ(o["response_format"], json::parse(R"({"type":"json_object"})"));
  EXPECT_FALSE(o.contains("tool_choice")) << "no tools, no tool_choice";
  EXPECT_FALSE(chat_of(R"({"model":"m","input":"x","text":{"format":{"type":"text"}}})")
                   .contains("response_format"));
}

TEST(ResponsesApiRequest, UnsupportedFeaturesAreNamed) {
  EXPECT_EQ(unsupported_of(R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"},
    {"type":"function","name":"g"},{"type":"web_search_preview"}]})"),
            "tools[2]: web_search_preview is a hosted tool");
  EXPECT_EQ(unsupported_of(R"({"model":"m","input":"x","previous_response_id":"resp_1"})"),
            "previous_response_id: the router keeps no conversation state");
  EXPECT_EQ(unsupported_of(R"({"model":"m","input":"x","conversation":"conv_1"})"),
            "conversation: the router keeps no conversation state");
  EXPECT_EQ(unsupported_of(R"({"model":"m","input":[{"type":"item_reference","id":"msg_1"}]})")
                .substr(0, 24),
            "input[0]: item_reference");
  EXPECT_EQ(unsupported_of(R"({"model":"m","input":[{"role":"user","content":[
    {"type":"input_image","file_id":"file_1"}]}]})"),
            "input[0].content[0]: an input_image by file_id needs OpenAI's file store");
  EXPECT_EQ(unsupported_of(R"({"model":"m","input":[{"role":"user","content":"x"},
    {"type":"web_search_call","id":"ws_1","status":"completed"}]})"),
            "input[1]: web_search_call items cannot be carried by chat completions");
  EXPECT_EQ(unsupported_of(R"({"model":"m","input":"x","tools":[{"type":"custom","name":"c"}]})"),
            "tools[0]: custom tools cannot be carried by chat completions");
  EXPECT_EQ(unsupported_of(R"({"model":"m","input":"x","tool_choice":{"type":"file_search"}})"),
            "tool_choice: file_search cannot be carried by chat completions");
  EXPECT_EQ(unsupported_of(R"({"model":"m","input":[{"type":"function_call_output","call_id":"c",
    "output":[{"type":"input_image","image_url":"https://x"}]}]})"),
            "input[0].output[0]: chat completions carries only text in a tool output");
  // The first one wins; what is unsupported stays out of the body.
  ChatRequest out;
  ApiError error;
  ASSERT_TRUE(request_to_chat(R"({"model":"m","input":"x","previous_response_id":"r",
    "tools":[{"type":"file_search"},{"type":"function","name":"f"}]})",
                              out, error));
  EXPECT_EQ(out.unsupported, "previous_response_id: the router keeps no conversation state");
  EXPECT_EQ(json::parse(out.body)["tools"].size(), 1u);
  ASSERT_TRUE(request_to_chat(R"({"model":"m","input":"x","tools":[{"type":"mcp"}]})", out, error));
  EXPECT_FALSE(json::parse(out.body).contains("tools"));
}

TEST(ResponsesApiRequest, MalformedRequestsAreRefusedWithTheParam) {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {"not json", ""},
      {"[1,2]", ""},
      {R"({"model":"m"})", "input"},
      {R"({"model":"m","input":null})", "input"},
      {R"({"model":"m","input":42})", "input"},
      {R"({"model":7,"input":"x"})", "model"},
      {R"({"model":"m","input":"x","instructions":[]})", "instructions"},
      {R"({"model":"m","input":[]})", "input"},
      {R"({"model":"m","input":["hi"]})", "input[0]"},
      {R"({"model":"m","input":[{"role":"tool","content":"x"}]})", "input[0].role"},
      {R"({"model":"m","input":[{"role":"user"}]})", "input[0].content"},
      {R"({"model":"m","input":[{"role":"user","content":7}]})", "input[0].content"},
      {R"({"model":"m","input":[{"role":"user","content":[{"text":"x"}]}]})",
       "input[0].content[0].type"},
      {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":1}]}]})",
       "input[0].content[0].text"},
      {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_image"}]}]})",
       "input[0].content[0].image_url"},
      {R"({"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]})",
       "input[0].call_id"},
      {R"({"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":{}}]})",
       "input[0].arguments"},
      {R"({"model":"m","input":[{"type":"function_call_output","call_id":"c"}]})",
       "input[0].output"},
      {R"({"model":"m","input":[{"type":5}]})", "input[0].type"},
      {R"({"model":"m","input":"x","tools":{}})", "tools"},
      {R"({"model":"m","input":"x","tools":[{"type":"function"}]})", "tools[0].name"},
      {R"({"model":"m","input":"x","tools":[{"name":"f"}]})", "tools[0].type"},
      {R"({"model":"m","input":"x","tool_choice":"always"})", "tool_choice"},
      {R"({"model":"m","input":"x","tool_choice":{"type":"function"}})", "tool_choice.name"},
      {R"({"model":"m","input":"x","stream":"yes"})", "stream"},
      {R"({"model":"m","input":"x","max_output_tokens":"10"})", "max_output_tokens"},
      {R"({"model":"m","input":"x","max_output_tokens":1.5})", "max_output_tokens"},
      {R"({"model":"m","input":"x","temperature":"hot"})", "temperature"},
      {R"({"model":"m","input":"x","reasoning":"high"})", "reasoning"},
      {R"({"model":"m","input":"x","reasoning":{"effort":1}})", "reasoning.effort"},
      {R"({"model":"m","input":"x","text":{"format":{"type":"xml"}}})", "text.format.type"},
      {R"({"model":"m","input":"x","user":{}})", "user"},
  };
  for (const Case& c : cases) {
    ApiError e = error_of(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_FALSE(e.message.empty()) << c.body;
  }
}

TEST(ResponsesApiRequest, HostileBodiesNeverThrow) {
  std::vector<std::string> bodies = {
      "",
      "{",
      "\xff\xfe",
      "{\"model\":\"m\",\"input\":\"\xc3\x28\"}", // invalid UTF-8 inside a string
      std::string(100000, '['),
      "{\"input\":" + std::string(5000, '[') + std::string(5000, ']') + "}",
      R"({"model":"m","input":[{"role":"user","content":[null,1,"x",[]]}]})",
      R"({"model":"m","input":[{"type":"function_call","call_id":null,"name":null}]})",
      R"({"model":"m","input":"x","tools":[null],"tool_choice":[]})",
      R"({"model":"m","input":"x","text":"json"})",
      R"({"model":"m","input":"x","text":{"format":[]}})",
  };
  for (const std::string& b : bodies) {
    ChatRequest out;
    ApiError error;
    EXPECT_FALSE(request_to_chat(b, out, error)) << b.substr(0, 40);
    EXPECT_EQ(error.status, 400);
  }
  // Deep but reasonable nesting inside tool parameters is fine.
  std::string deep = std::string(100, '[') + std::string(100, ']');
  EXPECT_EQ(unsupported_of(R"({"model":"m","input":"x","tools":[{"type":"function","name":"f",
    "parameters":{"default":)" +
                           deep + "}}]}"),
            "");
}

// ---- passthrough_request ------------------------------------------------------------------------

TEST(ResponsesApiPassthrough, AppliesRoutingToTheOriginal) {
  const std::string original = R"({"model":"auto","instructions":"Be brief.","input":"Hi",
    "tools":[{"type":"function","name":"f"},{"type":"web_search_preview"},
             {"type":"function","name":"g"}],"tool_choice":{"type":"function","name":"g"},
    "store":true,"reasoning":{"summary":"auto"}})";
  const std::string routed = R"({"model":"gpt-5","messages":[
    {"role":"system","content":"You are a router-chosen expert.\n\nBe brief."},
    {"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"f"}}],
    "reasoning_effort":"low"})";
  json p = json::parse(passthrough_request(original, routed));
  EXPECT_EQ(p, json::parse(R"({"model":"gpt-5",
    "instructions":"You are a router-chosen expert.\n\nBe brief.","input":"Hi",
    "tools":[{"type":"function","name":"f"},{"type":"web_search_preview"}],
    "store":true,"reasoning":{"summary":"auto","effort":"low"}})"));
  // Keys keep their order: the client's body, edited.
  EXPECT_EQ(passthrough_request(original, routed).substr(0, 17), "{\"model\":\"gpt-5\",");
}

TEST(ResponsesApiPassthrough, LeavesWhatRoutingDidNotChange) {
  const std::string original = R"({"model":"auto","instructions":"Be brief.","input":"Hi",
    "tools":[{"type":"function","name":"f"}],"tool_choice":"required"})";
  ChatRequest chat;
  ApiError error;
  ASSERT_TRUE(request_to_chat(original, chat, error));
  json routed = json::parse(chat.body);
  routed["model"] = "small";
  json p = json::parse(passthrough_request(original, routed.dump()));
  json want = json::parse(original);
  want["model"] = "small";
  EXPECT_EQ(p, want);
  // All function tools filtered out: tools and tool_choice go.
  routed.erase("tools");
  p = json::parse(passthrough_request(original, routed.dump()));
  EXPECT_FALSE(p.contains("tools"));
  EXPECT_FALSE(p.contains("tool_choice"));
}

TEST(ResponsesApiPassthrough, SystemPromptInTheInput) {
  const std::string original = R"({"model":"auto","input":[
    {"type":"reasoning","id":"rs_1","summary":[]},
    {"role":"developer","content":[{"type":"input_text","text":"Rules."}]},
    {"role":"user","content":"Hi"}]})";
  // Unchanged: the input stays as it was.
  const std::string same = R"({"model":"m","messages":[{"role":"system","content":"Rules."},
    {"role":"user","content":"Hi"}]})";
  json p = json::parse(passthrough_request(original, same));
  EXPECT_EQ(p["input"], json::parse(original)["input"]);
  EXPECT_FALSE(p.contains("instructions"));
  // Replaced: the input message takes the routed content.
  const std::string replaced = R"({"model":"m","messages":[{"role":"system","content":"Ours."},
    {"role":"user","content":"Hi"}]})";
  p = json::parse(passthrough_request(original, replaced));
  EXPECT_EQ(p["input"][1]["content"], "Ours.");
  EXPECT_FALSE(p.contains("instructions"));
  const std::string inserted = R"({"model":"m","messages":[{"role":"system","content":[
    {"type":"text","text":"Ours."},{"type":"text","text":"Rules."}]},{"role":"user","content":"Hi"}]})";
  p = json::parse(passthrough_request(original, inserted));
  EXPECT_EQ(p["input"][1]["content"], json::parse(R"([{"type":"input_text","text":"Ours."},
    {"type":"input_text","text":"Rules."}])"));
  // No system prompt before: routing's becomes the instructions.
  p = json::parse(passthrough_request(R"({"model":"auto","input":"Hi"})", replaced));
  EXPECT_EQ(p["instructions"], "Ours.");
}

TEST(ResponsesApiPassthrough, UnreadableBodiesLeaveTheOriginal) {
  EXPECT_EQ(passthrough_request("not json", R"({"model":"x"})"), "not json");
  EXPECT_EQ(passthrough_request(R"({"model":"a","input":"x"})", "\xff"),
            R"({"model":"a","input":"x"})");
  EXPECT_EQ(passthrough_request("[]", "{}"), "[]");
  // Wrong types in either body are skipped, not trusted.
  json p =
      json::parse(passthrough_request(R"({"model":"a","input":"x","tools":"no","reasoning":3})",
                                      R"({"model":5,"reasoning_effort":"low","tools":7,
                                               "messages":[{"role":"system","content":null}]})"));
  EXPECT_EQ(p["model"], "a");
  EXPECT_EQ(p["reasoning"], json::parse(R"({"effort":"low"})"));
  EXPECT_EQ(p["tools"], "no");
}

// ---- response_from_chat / response_to_chat ------------------------------------------------------

TEST(ResponsesApiResponse, FromChat) {
  json r = json::parse(response_from_chat(kChatBody, "resp_abc"));
  EXPECT_EQ(r["id"], "resp_abc");
  EXPECT_EQ(r["object"], "response");
  EXPECT_EQ(r["created_at"], 1700000000);
  EXPECT_EQ(r["status"], "completed");
  EXPECT_TRUE(r["incomplete_details"].is_null());
  EXPECT_TRUE(r["error"].is_null());
  EXPECT_EQ(r["model"], "qwen3");
  EXPECT_EQ(r["parallel_tool_calls"], true);
  EXPECT_EQ(r["tool_choice"], "auto");
  EXPECT_EQ(r["tools"], json::array());
  EXPECT_EQ(r["output"], json::parse(R"([
    {"type":"reasoning","id":"rs_abc_0","summary":[{"type":"summary_text","text":"Thinking."}]},
    {"type":"message","id":"msg_abc_1","status":"completed","role":"assistant",
     "content":[{"type":"output_text","text":"Hello wörld","annotations":[]}]},
    {"type":"function_call","id":"fc_abc_2","call_id":"call_a","name":"get_weather",
     "arguments":"{\"city\":\"Paris\"}","status":"completed"},
    {"type":"function_call","id":"fc_abc_3","call_id":"call_b","name":"get_time",
     "arguments":"{}","status":"completed"}])"));
  EXPECT_EQ(r["usage"],
            json::parse(R"({"input_tokens":11,"input_tokens_details":{"cached_tokens":0},
    "output_tokens":7,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":18})"));
  // A fresh id when none is given.
  json fresh = json::parse(response_from_chat(kChatBody));
  EXPECT_EQ(fresh["id"].get<std::string>().substr(0, 5), "resp_");
  EXPECT_EQ(fresh["id"].get<std::string>().size(), 37u);
  EXPECT_NE(fresh["id"], json::parse(response_from_chat(kChatBody))["id"]);
}

// A request that sets every field a Response echoes, and what the Response then holds.
const std::string kEchoedRequest = R"({"model":"auto","input":"Hi","instructions":"Answer briefly.",
  "max_output_tokens":100,"metadata":{"k":"v"},"temperature":0.5,"top_p":0.9,
  "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}],
  "tool_choice":"required","parallel_tool_calls":false,"reasoning":{"effort":"high"},"user":"u1",
  "store":true,"text":{"verbosity":"low"},"truncation":"auto"})";
const json kEchoed = json::parse(R"({"instructions":"Answer briefly.","max_output_tokens":100,
  "metadata":{"k":"v"},"temperature":0.5,"top_p":0.9,
  "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}],
  "tool_choice":"required","parallel_tool_calls":false,
  "reasoning":{"effort":"high","summary":null},"user":"u1","previous_response_id":null,
  "store":false,"text":{"format":{"type":"text"},"verbosity":"low"},"truncation":"auto"})");
// The defaults of a Response for a request that sets none of them.
const json kDefaults = json::parse(R"({"instructions":null,"max_output_tokens":null,"metadata":{},
  "temperature":null,"top_p":null,"tools":[],"tool_choice":"auto","parallel_tool_calls":true,
  "reasoning":{"effort":null,"summary":null},"user":null,"previous_response_id":null,
  "store":false,"text":{"format":{"type":"text"}},"truncation":"disabled"})");

// The echoed fields of a Response; every one must be there.
json echoed_of(const json& response) {
  json out = json::object();
  for (const auto& [key, value] : kDefaults.items()) {
    EXPECT_TRUE(response.contains(key)) << key;
    out[key] = response.value(key, json());
  }
  return out;
}

TEST(ResponsesApiResponse, FromChatEchoesTheRequest) {
  ChatRequest req;
  ApiError error;
  ASSERT_TRUE(request_to_chat(kEchoedRequest, req, error)) << error.message;
  EXPECT_FALSE(req.echo.empty());
  const json r = json::parse(response_from_chat(kChatBody, "resp_abc", req.echo));
  EXPECT_EQ(echoed_of(r), kEchoed);
  // The rest of the response is the one without an echo; the key order stays.
  json plain = json::parse(response_from_chat(kChatBody, "resp_abc"));
  EXPECT_EQ(echoed_of(plain), kDefaults);
  for (const auto& [key, value] : kEchoed.items())
    plain[key] = value;
  EXPECT_EQ(r, plain);
  std::vector<std::string> keys, plain_keys;
  const auto ordered =
      nlohmann::ordered_json::parse(response_from_chat(kChatBody, "resp_abc", req.echo));
  const auto plain_ordered =
      nlohmann::ordered_json::parse(response_from_chat(kChatBody, "resp_abc"));
  for (const auto& [key, value] : ordered.items())
    keys.push_back(key);
  for (const auto& [key, value] : plain_ordered.items())
    plain_keys.push_back(key);
  EXPECT_EQ(keys, plain_keys);

  // The same echo read straight from the body.
  EXPECT_EQ(json::parse(response_from_chat(kChatBody, "resp_abc", RequestEcho(kEchoedRequest))), r);
  // An error body stays as it is.
  const std::string err = R"({"error":{"message":"no","type":"x","param":null,"code":null}})";
  EXPECT_EQ(response_from_chat(err, "resp_abc", req.echo), err);
}

TEST(ResponsesApiResponse, EchoKeepsTheDefaultsOfWhatWasNotSent) {
  // Nothing to echo: no fields at all.
  ChatRequest req;
  ApiError error;
  ASSERT_TRUE(request_to_chat(R"({"model":"m","input":"Hi","store":true})", req, error));
  EXPECT_TRUE(req.echo.empty());
  EXPECT_EQ(echoed_of(json::parse(response_from_chat(kChatBody, "r", req.echo))), kDefaults);
  EXPECT_TRUE(RequestEcho().empty());
  for (const char* body : {"", "not json", "[1]", R"({"instructions":null,"metadata":null})",
                           R"({"metadata":"x","reasoning":[],"text":7})"}) {
    EXPECT_TRUE(RequestEcho(body).empty()) << body;
    EXPECT_EQ(echoed_of(json::parse(response_from_chat(kChatBody, "r", RequestEcho(body)))),
              kDefaults)
        << body;
  }
  // Some fields: only those change; a summary without effort, a text format as sent.
  json want = kDefaults;
  want["instructions"] = "Be brief.";
  want["reasoning"] = {{"effort", nullptr}, {"summary", "auto"}};
  want["text"] = json::parse(R"({"format":{"type":"json_object"}})");
  want["previous_response_id"] = "resp_prev";
  const RequestEcho some(R"({"instructions":"Be brief.","reasoning":{"summary":"auto"},
    "text":{"format":{"type":"json_object"}},"previous_response_id":"resp_prev","user":null})");
  EXPECT_EQ(echoed_of(json::parse(response_from_chat(kChatBody, "r", some))), want);
  // A refused request echoes nothing.
  EXPECT_FALSE(request_to_chat(R"({"instructions":"x","input":7})", req, error));
  EXPECT_TRUE(req.echo.empty());
}

TEST(ResponsesApiResponse, FinishReasonsAndOddMessages) {
  auto body = [](const std::string& message, const std::string& finish) {
    return R"({"id":"c","created":1,"model":"m","choices":[{"index":0,"message":)" + message +
           R"(,"finish_reason":")" + finish +
           R"("}],"usage":{"prompt_tokens":2,"completion_tokens":3,
           "prompt_tokens_details":{"cached_tokens":1}}})";
  };
  json r = json::parse(
      response_from_chat(body(R"({"role":"assistant","content":"cut"})", "length"), "resp_x"));
  EXPECT_EQ(r["status"], "incomplete");
  EXPECT_EQ(r["incomplete_details"], json::parse(R"({"reason":"max_output_tokens"})"));
  EXPECT_EQ(r["output"][0]["status"], "incomplete");
  EXPECT_EQ(r["usage"]["total_tokens"], 5);
  EXPECT_EQ(r["usage"]["input_tokens_details"]["cached_tokens"], 1);
  r = json::parse(response_from_chat(
      body(R"({"role":"assistant","content":null,"refusal":"No."})", "content_filter"), "resp_x"));
  EXPECT_EQ(r["incomplete_details"]["reason"], "content_filter");
  EXPECT_EQ(r["output"][0]["content"], json::parse(R"([{"type":"refusal","refusal":"No."}])"));
  // Empty content: no message item. vLLM's "reasoning" field, arguments as an object.
  r = json::parse(response_from_chat(
      body(R"({"role":"assistant","content":"","reasoning":"hm","tool_calls":[{"type":"function",
        "function":{"name":"f","arguments":{"a":1}}}]})",
           "tool_calls"),
      "resp_x"));
  ASSERT_EQ(r["output"].size(), 2u);
  EXPECT_EQ(r["output"][0]["type"], "reasoning");
  EXPECT_EQ(r["output"][1]["arguments"], "{\"a\":1}");
  EXPECT_EQ(r["output"][1]["call_id"], "call_x_1");
  // No usage: null.
  r = json::parse(response_from_chat(
      R"({"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]})",
      "resp_x"));
  EXPECT_TRUE(r["usage"].is_null());
}

TEST(ResponsesApiResponse, ErrorsAndGarbage) {
  const std::string err =
      R"({"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}})";
  EXPECT_EQ(response_from_chat(err), err);
  for (const char* bad : {"", "nope", "[]", "{}", R"({"choices":[]})", R"({"choices":[1]})",
                          R"({"choices":[{"message":"x"}]})", "\xc3\x28"}) {
    json r = json::parse(response_from_chat(bad));
    EXPECT_EQ(r["error"]["type"], "server_error") << bad;
    EXPECT_EQ(r["error"]["code"], "upstream_broken") << bad;
  }
}

TEST(ResponsesApiResponse, ToChatAndBack) {
  const std::string response = response_from_chat(kChatBody, "resp_abc");
  json c = json::parse(response_to_chat(response));
  EXPECT_EQ(c["id"], "resp_abc");
  EXPECT_EQ(c["object"], "chat.completion");
  EXPECT_EQ(c["created"], 1700000000);
  EXPECT_EQ(c["model"], "qwen3");
  json original = json::parse(kChatBody);
  EXPECT_EQ(c["choices"][0]["message"], original["choices"][0]["message"]);
  EXPECT_EQ(c["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(c["usage"], json::parse(R"({"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,
    "prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":3}})"));

  json incomplete =
      json::parse(response_to_chat(R"({"id":"r","object":"response","status":"incomplete",
    "incomplete_details":{"reason":"max_output_tokens"},"output":[{"type":"message","content":[
    {"type":"output_text","text":"a"},{"type":"output_text","text":"b"}]}]})"));
  EXPECT_EQ(incomplete["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(incomplete["choices"][0]["message"]["content"], "ab");
  EXPECT_FALSE(incomplete.contains("usage"));
}

TEST(ResponsesApiResponse, ToChatErrors) {
  const std::string err = R"({"error":{"message":"bad","type":"invalid_request_error"}})";
  EXPECT_EQ(response_to_chat(err), err);
  json failed = json::parse(response_to_chat(R"({"id":"r","object":"response","status":"failed",
    "error":{"code":"rate_limit_exceeded","message":"slow down"},"output":[]})"));
  EXPECT_EQ(failed["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(failed["error"]["message"], "slow down");
  for (const char* bad : {"", "x", "[]", "{}", R"({"output":{}})", "\xff"}) {
    json r = json::parse(response_to_chat(bad));
    EXPECT_TRUE(r.contains("error")) << bad;
  }
}

// ---- StreamFromChat -----------------------------------------------------------------------------

TEST(ResponsesApiStreamFromChat, FullEventSequence) {
  const std::string out = run_whole(kChatStream, StreamFromChat("resp_abc"));
  const std::vector<Event> events = events_of(out);
  expect_well_formed(events);
  const std::vector<std::string> want = {
      "response.created",
      "response.in_progress",
      "response.output_item.added", // reasoning
      "response.reasoning_summary_part.added",
      "response.reasoning_summary_text.delta",
      "response.reasoning_summary_text.delta",
      "response.reasoning_summary_text.done",
      "response.reasoning_summary_part.done",
      "response.output_item.done",
      "response.output_item.added", // message
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added", // call_a
      "response.function_call_arguments.delta",
      "response.function_call_arguments.delta",
      "response.output_item.added", // call_b
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
  };
  ASSERT_EQ(types_of(events), want);
  EXPECT_EQ(events[0].data["response"]["status"], "in_progress");
  EXPECT_EQ(events[0].data["response"]["output"], json::array());
  EXPECT_EQ(events[0].data["response"]["id"], "resp_abc");
  EXPECT_EQ(events[9].data["item"], json::parse(R"({"type":"message","id":"msg_abc_1",
    "status":"in_progress","role":"assistant","content":[]})"));
  EXPECT_EQ(events[10].data["part"],
            json::parse(R"({"type":"output_text","text":"","annotations":[]})"));
  EXPECT_EQ(events[11].data["delta"], "Hello ");
  EXPECT_EQ(events[11].data["item_id"], "msg_abc_1");
  EXPECT_EQ(events[11].data["output_index"], 1);
  EXPECT_EQ(events[11].data["content_index"], 0);
  EXPECT_EQ(events[13].data["text"], "Hello wörld");
  EXPECT_EQ(events[16].data["item"], json::parse(R"({"type":"function_call","id":"fc_abc_2",
    "call_id":"call_a","name":"get_weather","arguments":"","status":"in_progress"})"));
  EXPECT_EQ(events[21].data["arguments"], "{\"city\":\"Paris\"}");
  EXPECT_EQ(events[21].data["item_id"], "fc_abc_2");
  EXPECT_EQ(events[23].data["arguments"], "{}");
  // The final response equals the non-streamed translation of the same answer.
  EXPECT_EQ(events.back().data["response"], json::parse(response_from_chat(kChatBody, "resp_abc")));
}

TEST(ResponsesApiStreamFromChat, EveryResponseEchoesTheRequest) {
  const RequestEcho echo(kEchoedRequest);
  const std::string out = run_whole(kChatStream, StreamFromChat("resp_abc", echo));
  EXPECT_EQ(run_bytewise(kChatStream, StreamFromChat("resp_abc", echo)), out);
  const std::vector<Event> events = events_of(out);
  expect_well_formed(events);
  std::vector<std::string> with_response;
  for (const Event& e : events)
    if (e.data.contains("response")) {
      with_response.push_back(e.name);
      EXPECT_EQ(echoed_of(e.data["response"]), kEchoed) << e.name;
    }
  EXPECT_EQ(with_response, (std::vector<std::string>{"response.created", "response.in_progress",
                                                     "response.completed"}));
  // The final response equals the non-streamed translation with the same echo.
  EXPECT_EQ(events.back().data["response"],
            json::parse(response_from_chat(kChatBody, "resp_abc", echo)));

  // An incomplete and a failed stream echo too.
  const std::string cut = chunk(R"({"content":"Once"})", "\"length\"");
  std::vector<Event> incomplete = events_of(run_whole(cut, StreamFromChat("r", echo)));
  EXPECT_EQ(incomplete.back().name, "response.incomplete");
  EXPECT_EQ(echoed_of(incomplete.back().data["response"]), kEchoed);
  std::vector<Event> failed =
      events_of(run_whole(chunk(R"({"content":"Half"})"), StreamFromChat("r", echo)));
  EXPECT_EQ(failed.back().name, "response.failed");
  EXPECT_EQ(echoed_of(failed.back().data["response"]), kEchoed);
  std::vector<Event> nothing = events_of(run_whole("data: [DONE]\n\n", StreamFromChat("r", echo)));
  EXPECT_EQ(nothing.front().name, "response.created");
  EXPECT_EQ(echoed_of(nothing.front().data["response"]), kEchoed);

  // Without an echo every response keeps the defaults.
  for (const Event& e : events_of(run_whole(kChatStream, StreamFromChat("resp_abc"))))
    if (e.data.contains("response"))
      EXPECT_EQ(echoed_of(e.data["response"]), kDefaults) << e.name;
}

TEST(ResponsesApiStreamFromChat, BytewiseAndWholeGiveTheSameOutput) {
  const std::string whole = run_whole(kChatStream, StreamFromChat("resp_abc"));
  EXPECT_EQ(run_bytewise(kChatStream, StreamFromChat("resp_abc")), whole);
  // CRLF line ends and comments from the upstream change nothing.
  const std::string commented = ": keep-alive\n\n" + kChatStream;
  EXPECT_EQ(
      run_bytewise(test_support::with_line_ends(commented, "\r\n"), StreamFromChat("resp_abc")),
      whole);
  // Lone CRs too.
  EXPECT_EQ(run_bytewise(test_support::with_line_ends(commented, "\r"), StreamFromChat("resp_abc")),
            whole);
}

TEST(ResponsesApiStreamFromChat, LengthGivesIncompleteAndFinishCloses) {
  const std::string input = chunk(R"({"role":"assistant","content":"Once"})") +
                            chunk(R"({"content":" upon"})", "\"length\"");
  StreamFromChat s("resp_x");
  std::string out;
  s.feed(input, out);
  EXPECT_FALSE(s.done());
  EXPECT_EQ(events_of(out).back().data["type"], "response.output_text.delta");
  s.finish(out); // no [DONE]: the backend closed after the finish_reason
  EXPECT_TRUE(s.done());
  const std::vector<Event> events = events_of(out);
  expect_well_formed(events);
  EXPECT_EQ(events.back().name, "response.incomplete");
  const json& r = events.back().data["response"];
  EXPECT_EQ(r["status"], "incomplete");
  EXPECT_EQ(r["incomplete_details"]["reason"], "max_output_tokens");
  EXPECT_EQ(r["output"][0]["content"][0]["text"], "Once upon");
  EXPECT_TRUE(r["usage"].is_null());
  const size_t before = out.size();
  s.finish(out);
  s.feed(chunk(R"({"content":"late"})"), out);
  EXPECT_EQ(out.size(), before);
}

TEST(ResponsesApiStreamFromChat, ErrorsInTheStream) {
  const std::string input =
      chunk(R"({"content":"Hi"})") +
      "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\","
      "\"code\":503,\"param\":null}}\n\n" +
      chunk(R"({"content":"ignored"})");
  const std::string out = run_whole(input, StreamFromChat("resp_x"));
  EXPECT_EQ(run_bytewise(input, StreamFromChat("resp_x")), out);
  const std::vector<Event> events = events_of(out);
  expect_well_formed(events);
  ASSERT_GE(events.size(), 2u);
  const Event& error = events[events.size() - 2];
  EXPECT_EQ(error.name, "error");
  EXPECT_EQ(error.data["code"], "503");
  EXPECT_EQ(error.data["message"], "overloaded");
  EXPECT_TRUE(error.data["param"].is_null());
  EXPECT_EQ(events.back().name, "response.failed");
  EXPECT_EQ(events.back().data["response"]["status"], "failed");
  EXPECT_EQ(events.back().data["response"]["error"]["message"], "overloaded");
  EXPECT_EQ(out.find("ignored"), std::string::npos);
}

TEST(ResponsesApiStreamFromChat, BrokenOffAndEmptyStreams) {
  // Nothing fed: nothing out.
  StreamFromChat empty;
  std::string out;
  empty.feed("", out);
  empty.finish(out);
  EXPECT_EQ(out, "");
  // Ended mid-answer: the open item stays open and the response fails.
  out = run_whole(chunk(R"({"content":"Hel"})"), StreamFromChat("resp_x"));
  std::vector<Event> events = events_of(out);
  expect_well_formed(events);
  EXPECT_EQ(types_of(events).back(), "response.failed");
  EXPECT_EQ(events[events.size() - 2].data["code"], "upstream_broken");
  EXPECT_EQ(events.back().data["response"]["output"][0]["content"][0]["text"], "Hel");
  // Only garbage, or [DONE] alone: failed too, with a response to fail.
  for (const std::string& input : {std::string("data: nope\n\n"), std::string("data: [DONE]\n\n"),
                                   std::string("garbage without newline")}) {
    events = events_of(run_whole(input, StreamFromChat("resp_x")));
    expect_well_formed(events);
    EXPECT_EQ(types_of(events),
              (std::vector<std::string>{"response.created", "response.in_progress", "error",
                                        "response.failed"}))
        << input;
  }
}

TEST(ResponsesApiStreamFromChat, RefusalsLegacyCallsAndOtherChoices) {
  const std::string input =
      chunk(R"({"content":"I"})") + chunk(R"({"refusal":"can't"})") +
      "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other choice\"}}]}\n\n" +
      chunk(R"({"function_call":{"name":"f","arguments":"{}"}})") +
      chunk(R"({"tool_calls":[{"id":"call_z","function":{"name":"g","arguments":"[1"}}]})") +
      chunk(R"({"tool_calls":[{"function":{"arguments":"]"}}]})", "\"stop\"") + "data: [DONE]\n\n";
  const std::string out = run_whole(input, StreamFromChat("resp_x"));
  EXPECT_EQ(run_bytewise(input, StreamFromChat("resp_x")), out);
  std::vector<Event> events = events_of(out);
  expect_well_formed(events);
  EXPECT_EQ(out.find("other choice"), std::string::npos);
  const json& r = events.back().data["response"];
  EXPECT_EQ(r["status"], "completed");
  EXPECT_EQ(r["output"][0]["content"], json::parse(R"([
    {"type":"output_text","text":"I","annotations":[]},{"type":"refusal","refusal":"can't"}])"));
  EXPECT_EQ(r["output"][1]["name"], "f");
  EXPECT_EQ(r["output"][1]["arguments"], "{}");
  EXPECT_EQ(r["output"][2]["call_id"], "call_z");
  EXPECT_EQ(r["output"][2]["arguments"], "[1]");
  std::vector<std::string> types = types_of(events);
  EXPECT_NE(std::find(types.begin(), types.end(), "response.refusal.delta"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "response.refusal.done"), types.end());
}

TEST(ResponsesApiStreamFromChat, HostileChunksNeverBreakTheStream) {
  const std::string input =
      chunk(R"({"content":"a"})") + "data: {\"choices\":7}\n\n" +
      "data: {\"choices\":[null,{\"delta\":[]},{\"index\":\"0\"}]}\n\n" +
      "data: "
      "{\"choices\":[{\"index\":0,\"delta\":{\"content\":5,\"tool_calls\":[1,{\"function\":7}],"
      "\"reasoning_content\":{}}}],\"usage\":\"many\"}\n\n" +
      "data: " + std::string(3000, '[') + "\n\n" + "data: {\"x\":\"\xc3\x28\"}\n\n" +
      "data: \xff\xfe\n\n" + "event: weird\nid: 3\nretry: 5\n\n" +
      chunk(R"({"content":"b"})", "\"stop\"") + "data: [DONE]\n\n";
  const std::string out = run_whole(input, StreamFromChat("resp_x"));
  EXPECT_EQ(run_bytewise(input, StreamFromChat("resp_x")), out);
  const std::vector<Event> events = events_of(out);
  expect_well_formed(events);
  EXPECT_EQ(events.back().name, "response.completed");
  // The tool-call delta without a function makes an item with empty name and arguments.
  EXPECT_EQ(events.back().data["response"]["output"][0]["content"][0]["text"], "a");
}

// ---- StreamToChat -------------------------------------------------------------------------------

// What a chat client reassembles from chunks.
struct Reassembled {
  std::string content, reasoning, refusal, finish_reason;
  json tool_calls = json::array();
  json usage;
  json error;
  bool done = false;
  bool role = false;
};

Reassembled reassemble(const std::string& sse) {
  Reassembled r;
  for (const Event& e : events_of(sse)) {
    EXPECT_EQ(e.name, "");
    EXPECT_FALSE(r.done) << "after [DONE]";
    if (e.done) {
      r.done = true;
      continue;
    }
    if (e.data.contains("error")) {
      r.error = e.data["error"];
      continue;
    }
    EXPECT_EQ(e.data["object"], "chat.completion.chunk");
    if (e.data.contains("usage"))
      r.usage = e.data["usage"];
    for (const json& c : e.data["choices"]) {
      const json& d = c["delta"];
      r.role = r.role || d.value("role", "") == "assistant";
      r.content += d.value("content", "");
      r.reasoning += d.value("reasoning_content", "");
      r.refusal += d.value("refusal", "");
      if (c["finish_reason"].is_string())
        r.finish_reason = c["finish_reason"];
      if (d.contains("tool_calls"))
        for (const json& t : d["tool_calls"]) {
          size_t k = t["index"];
          if (k >= r.tool_calls.size())
            r.tool_calls.push_back({{"id", ""}, {"name", ""}, {"arguments", ""}});
          if (t.contains("id"))
            r.tool_calls[k]["id"] = t["id"];
          if (t.contains("function") && t["function"].contains("name"))
            r.tool_calls[k]["name"] = t["function"]["name"];
          if (t.contains("function") && t["function"].contains("arguments"))
            r.tool_calls[k]["arguments"] = r.tool_calls[k]["arguments"].get<std::string>() +
                                           t["function"]["arguments"].get<std::string>();
        }
    }
  }
  return r;
}

TEST(ResponsesApiStreamToChat, RoundTripThroughResponsesEvents) {
  const std::string responses = run_whole(kChatStream, StreamFromChat("resp_abc"));
  const std::string chat = run_whole(responses, StreamToChat());
  EXPECT_EQ(run_bytewise(responses, StreamToChat()), chat);
  // A Responses backend's events with CRLF or lone-CR line ends read the same.
  EXPECT_EQ(run_bytewise(test_support::with_line_ends(responses, "\r\n"), StreamToChat()), chat);
  EXPECT_EQ(run_bytewise(test_support::with_line_ends(responses, "\r"), StreamToChat()), chat);
  Reassembled r = reassemble(chat);
  EXPECT_TRUE(r.role);
  EXPECT_EQ(r.content, "Hello wörld");
  EXPECT_EQ(r.reasoning, "Thinking.");
  EXPECT_EQ(r.finish_reason, "tool_calls");
  EXPECT_EQ(r.tool_calls, json::parse(R"([
    {"id":"call_a","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
    {"id":"call_b","name":"get_time","arguments":"{}"}])"));
  EXPECT_EQ(r.usage, json::parse(R"({"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,
    "prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":3}})"));
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(r.error.is_null());
  // The first chunk carries the response's id, model and time.
  json first = events_of(chat)[0].data;
  EXPECT_EQ(first["id"], "resp_abc");
  EXPECT_EQ(first["model"], "qwen3");
  EXPECT_EQ(first["created"], 1700000000);
  // The last three: finish_reason, usage, [DONE].
  std::vector<Event> events = events_of(chat);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[events.size() - 3].data["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(events[events.size() - 2].data["choices"], json::array());
  EXPECT_TRUE(events.back().done);
}

TEST(ResponsesApiStreamToChat, TextOnlyInDoneEventsAndIncomplete) {
  // A backend that sends whole texts and arguments only in the .done events.
  const std::string input =
      "event: response.created\ndata: "
      "{\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\","
      "\"created_at\":5,\"model\":\"gpt\"}}\n\n"
      "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"delta\":\"He\"}\n\n"
      "data: {\"type\":\"response.output_text.done\",\"item_id\":\"m\",\"text\":\"Hello\"}\n\n"
      "data: {\"type\":\"response.output_item.done\",\"output_index\":1,\"item\":{\"type\":"
      "\"function_call\",\"id\":\"fc\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"}}\n\n"
      "data: {\"type\":\"response.incomplete\",\"response\":{\"incomplete_details\":{\"reason\":"
      "\"max_output_tokens\"},\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}}\n\n";
  Reassembled r = reassemble(run_whole(input, StreamToChat()));
  EXPECT_EQ(r.content, "Hello");
  EXPECT_EQ(r.tool_calls, json::parse(R"([{"id":"c1","name":"f","arguments":"{}"}])"));
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.usage["total_tokens"], 3);
  EXPECT_TRUE(r.done);
}

TEST(ResponsesApiStreamToChat, ErrorsAndBrokenStreams) {
  const std::string failed = "data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n"
                             "data: "
                             "{\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":"
                             "\"slow\",\"param\":null}\n\n"
                             "data: "
                             "{\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":"
                             "\"x\",\"message\":\"y\"}}}\n\n";
  Reassembled r = reassemble(run_whole(failed, StreamToChat()));
  EXPECT_EQ(r.error["code"], "rate_limit_exceeded");
  EXPECT_EQ(r.error["message"], "slow");
  EXPECT_FALSE(r.done);
  r = reassemble(run_whole(
      "data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\","
      "\"message\":\"boom\"}}}\n\n",
      StreamToChat()));
  EXPECT_EQ(r.error["message"], "boom");
  // Broken off: an error chunk at finish(); nothing fed: nothing.
  r = reassemble(run_whole(
      "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"delta\":\"x\"}\n\n",
      StreamToChat()));
  EXPECT_EQ(r.content, "x");
  EXPECT_EQ(r.error["code"], "upstream_broken");
  std::string out;
  StreamToChat nothing;
  nothing.finish(out);
  EXPECT_EQ(out, "");
}

TEST(ResponsesApiStreamToChat, HostileEventsNeverThrow) {
  const std::string input =
      "data: [DONE]\n\ndata: 7\n\ndata: {\"type\":5}\n\n"
      "data: {\"type\":\"response.output_text.delta\",\"delta\":[1]}\n\n"
      "data: "
      "{\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"nope\",\"delta\":\"x\"}"
      "\n\n"
      "data: "
      "{\"type\":\"response.output_item.added\",\"item\":{\"type\":\"function_call\",\"name\":3,"
      "\"arguments\":{\"a\":1}}}\n\n"
      "data: {\"type\":\"response.created\",\"response\":[]}\n\n"
      "data: \xc3\x28\n\ndata: " +
      std::string(2000, '{') + "\n\n" +
      "data: {\"type\":\"response.completed\",\"response\":{\"usage\":7,\"output\":\"x\"}}\n\n";
  const std::string out = run_whole(input, StreamToChat());
  EXPECT_EQ(run_bytewise(input, StreamToChat()), out);
  Reassembled r = reassemble(out);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.finish_reason, "tool_calls");
  EXPECT_EQ(r.tool_calls[0]["arguments"], "{\"a\":1}");
}

} // namespace
} // namespace semrouter::openai::responses_api
