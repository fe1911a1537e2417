// Per-request cost of the API translations (src/openai/anthropic.h, src/openai/responses_api.h):
// an Anthropic Messages or OpenAI Responses request to the chat pivot, a routed chat request to
// Anthropic's Messages, whole answers both ways, and whole streamed answers through the stream
// translators. Each runs on a small request (a system prompt and one question) and a large one
// (20 messages with tool calls and their results, 8 tools). The end-to-end cost through the
// gateway is measured by bench/translate_bench.sh.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "openai/anthropic.h"
#include "openai/responses_api.h"

namespace {

using namespace semrouter;
using json = nlohmann::json;

constexpr int kLargeMessages = 20;
constexpr int kLargeTools = 8;
constexpr int kSmallAnswerWords = 30;
constexpr int kLargeAnswerWords = 400;

std::string words(int n, int seed) {
  static const char* vocab[] = {"the",    "request", "should",   "return", "a",      "list",
                                "of",     "orders",  "shipped",  "last",   "week",   "from",
                                "Berlin", "and",     "explain",  "why",    "two",    "failed",
                                "with",   "status",  "pending,", "then",   "retry.", "Python"};
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i)
      s += ' ';
    s += vocab[(i * 7 + seed) % 24];
  }
  return s;
}

const std::string kSystem =
    "You are a careful assistant for an online shop's support team. " + words(40, 1);
const std::string kQuestion =
    "Can you explain why this Python function returns None instead of the list I expect?";

json tool_schema(int i) {
  return {{"type", "object"},
          {"properties",
           {{"order_id", {{"type", "string"}, {"description", "The order's id, e.g. A-1234"}}},
            {"city", {{"type", "string"}, {"description", "City name, " + words(6, i)}}},
            {"units", {{"type", "string"}, {"enum", {"metric", "imperial"}}}},
            {"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", 100}}}}},
          {"required", {"order_id"}}};
}
std::string tool_name(int i) {
  return "lookup_tool_" + std::to_string(i);
}
std::string tool_description(int i) {
  return "Looks things up for the agent: " + words(14, i);
}
json tool_input(int i) {
  return {{"order_id", "A-" + std::to_string(1000 + i)}, {"city", "Berlin"}, {"limit", 10}};
}

// ---- Anthropic Messages requests ----

std::string anthropic_small() {
  return json{{"model", "claude-sonnet"},
              {"max_tokens", 64},
              {"temperature", 0.7},
              {"system", "You are helpful."},
              {"messages", {{{"role", "user"}, {"content", kQuestion}}}}}
      .dump();
}

// 20 messages, user and assistant in turn: plain turns, and five assistant turns (messages 1, 5,
// 9, 13, 17) with a tool_use whose result the next user turn carries; 8 tools with JSON schemas.
std::string anthropic_large() {
  json tools = json::array();
  for (int i = 0; i < kLargeTools; ++i)
    tools.push_back({{"name", tool_name(i)},
                     {"description", tool_description(i)},
                     {"input_schema", tool_schema(i)}});
  json messages = json::array();
  for (int i = 0; i < kLargeMessages; ++i) {
    bool user = i % 2 == 0;
    if (!user && i % 4 == 1) {
      messages.push_back({{"role", "assistant"},
                          {"content",
                           {{{"type", "text"}, {"text", words(20, i)}},
                            {{"type", "tool_use"},
                             {"id", "toolu_" + std::to_string(i)},
                             {"name", tool_name(i % kLargeTools)},
                             {"input", tool_input(i)}}}}});
    } else if (user && i % 4 == 2) {
      messages.push_back({{"role", "user"},
                          {"content",
                           {{{"type", "tool_result"},
                             {"tool_use_id", "toolu_" + std::to_string(i - 1)},
                             {"content", "{\"status\":\"shipped\",\"eta\":\"2 days\",\"note\":\"" +
                                             words(15, i) + "\"}"}},
                            {{"type", "text"}, {"text", words(30, i)}}}}});
    } else {
      messages.push_back({{"role", user ? "user" : "assistant"}, {"content", words(50, i)}});
    }
  }
  return json{{"model", "claude-sonnet"},
              {"max_tokens", 1024},
              {"temperature", 0.3},
              {"system", kSystem},
              {"metadata", {{"user_id", "user-42"}}},
              {"tools", tools},
              {"tool_choice", {{"type", "auto"}}},
              {"messages", messages}}
      .dump();
}

// ---- Responses requests ----

std::string responses_small() {
  return json{{"model", "gpt-4.1"},
              {"instructions", "You are helpful."},
              {"input", kQuestion},
              {"temperature", 0.7},
              {"max_output_tokens", 64}}
      .dump();
}

// The same conversation as anthropic_large() in Responses items: messages, function_call and
// function_call_output items, 8 function tools.
std::string responses_large() {
  json tools = json::array();
  for (int i = 0; i < kLargeTools; ++i)
    tools.push_back({{"type", "function"},
                     {"name", tool_name(i)},
                     {"description", tool_description(i)},
                     {"parameters", tool_schema(i)}});
  json input = json::array();
  for (int i = 0; i < kLargeMessages; ++i) {
    bool user = i % 2 == 0;
    if (!user && i % 4 == 1) {
      input.push_back({{"type", "message"},
                       {"role", "assistant"},
                       {"content", {{{"type", "output_text"}, {"text", words(20, i)}}}}});
      input.push_back({{"type", "function_call"},
                       {"call_id", "call_" + std::to_string(i)},
                       {"name", tool_name(i % kLargeTools)},
                       {"arguments", tool_input(i).dump()}});
    } else if (user && i % 4 == 2) {
      input.push_back({{"type", "function_call_output"},
                       {"call_id", "call_" + std::to_string(i - 1)},
                       {"output", "{\"status\":\"shipped\",\"eta\":\"2 days\",\"note\":\"" +
                                      words(15, i) + "\"}"}});
      input.push_back(
          {{"role", "user"}, {"content", {{{"type", "input_text"}, {"text", words(30, i)}}}}});
    } else if (user) {
      input.push_back({{"role", "user"}, {"content", words(50, i)}});
    } else {
      input.push_back({{"type", "message"},
                       {"role", "assistant"},
                       {"content", {{{"type", "output_text"}, {"text", words(50, i)}}}}});
    }
  }
  return json{{"model", "gpt-4.1"},       {"instructions", kSystem}, {"input", input},
              {"tools", tools},           {"tool_choice", "auto"},   {"temperature", 0.3},
              {"max_output_tokens", 1024}}
      .dump();
}

// ---- Chat answers ----

// A chat.completion: `content_words` of text; with `tool_calls`, two calls after the text.
std::string chat_answer(int content_words, bool tool_calls) {
  json message = {{"role", "assistant"}, {"content", words(content_words, 3)}};
  if (tool_calls) {
    json calls = json::array();
    for (int i = 0; i < 2; ++i)
      calls.push_back(
          {{"id", "call_" + std::to_string(i)},
           {"type", "function"},
           {"function", {{"name", tool_name(i)}, {"arguments", tool_input(i).dump()}}}});
    message["tool_calls"] = calls;
  }
  return json{{"id", "chatcmpl-bench"},
              {"object", "chat.completion"},
              {"created", 1767225600},
              {"model", "m"},
              {"choices",
               {{{"index", 0},
                 {"message", message},
                 {"finish_reason", tool_calls ? "tool_calls" : "stop"}}}},
              {"usage",
               {{"prompt_tokens", 1200},
                {"completion_tokens", content_words},
                {"total_tokens", 1200 + content_words},
                {"prompt_tokens_details", {{"cached_tokens", 1024}}}}}}
      .dump();
}

// A streamed chat answer as the upstream's SSE events, one string per event (as they arrive
// from the network, one read each): a role chunk, `chunks` content chunks of one word, a
// finish_reason chunk, a usage chunk and [DONE].
std::vector<std::string> chat_stream(int chunks) {
  auto event = [](const json& delta, const char* finish_reason) {
    json chunk = {{"id", "chatcmpl-bench"},
                  {"object", "chat.completion.chunk"},
                  {"created", 1767225600},
                  {"model", "m"},
                  {"choices",
                   {{{"index", 0},
                     {"delta", delta},
                     {"finish_reason", finish_reason ? json(finish_reason) : json(nullptr)}}}}};
    return "data: " + chunk.dump() + "\n\n";
  };
  std::vector<std::string> events;
  events.push_back(event({{"role", "assistant"}, {"content", ""}}, nullptr));
  for (int i = 0; i < chunks; ++i) {
    std::string piece = " ";
    piece += words(1, i);
    events.push_back(event({{"content", piece}}, nullptr));
  }
  events.push_back(event(json::object(), "stop"));
  json usage = {
      {"id", "chatcmpl-bench"},
      {"object", "chat.completion.chunk"},
      {"created", 1767225600},
      {"model", "m"},
      {"choices", json::array()},
      {"usage",
       {{"prompt_tokens", 1200}, {"completion_tokens", chunks}, {"total_tokens", 1200 + chunks}}}};
  events.push_back("data: " + usage.dump() + "\n\n");
  events.push_back("data: [DONE]\n\n");
  return events;
}

[[noreturn]] void fail(const char* what, const std::string& message) {
  std::fprintf(stderr, "translate_bench: %s: %s\n", what, message.c_str());
  std::exit(1);
}

const std::string& request_for(bool large, bool anthropic) {
  static const std::string a_small = anthropic_small(), a_large = anthropic_large();
  static const std::string r_small = responses_small(), r_large = responses_large();
  if (anthropic)
    return large ? a_large : a_small;
  return large ? r_large : r_small;
}

// The chat request a large/small Anthropic request routes as (what a routed request looks like
// before it goes to an Anthropic backend).
const std::string& chat_request(bool large) {
  static const std::string small_chat = [] {
    std::string chat;
    openai::ApiError error;
    if (!openai::anthropic::request_to_chat(request_for(false, true), chat, error))
      fail("anthropic small", error.message);
    return chat;
  }();
  static const std::string large_chat = [] {
    std::string chat;
    openai::ApiError error;
    if (!openai::anthropic::request_to_chat(request_for(true, true), chat, error))
      fail("anthropic large", error.message);
    return chat;
  }();
  return large ? large_chat : small_chat;
}

// Arg 0: small request / answer; 1: large.
const std::string& chat_answer_for(bool large) {
  static const std::string small = chat_answer(kSmallAnswerWords, false);
  static const std::string large_answer = chat_answer(kLargeAnswerWords, true);
  return large ? large_answer : small;
}

void label(benchmark::State& state, size_t bytes) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.SetLabel((state.range(0) ? "large, " : "small, ") + std::to_string(bytes) + " B in");
}

// ---- Anthropic ----

void BM_AnthropicRequestToChat(benchmark::State& state) {
  const std::string& body = request_for(state.range(0) != 0, true);
  std::string chat;
  openai::ApiError error;
  for (auto _ : state) {
    chat.clear();
    if (!openai::anthropic::request_to_chat(body, chat, error))
      fail("anthropic request_to_chat", error.message);
    benchmark::DoNotOptimize(chat.data());
  }
  label(state, body.size());
}
BENCHMARK(BM_AnthropicRequestToChat)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_AnthropicRequestFromChat(benchmark::State& state) {
  const std::string& chat = chat_request(state.range(0) != 0);
  for (auto _ : state) {
    std::string body = openai::anthropic::request_from_chat(chat);
    benchmark::DoNotOptimize(body.data());
  }
  label(state, chat.size());
}
BENCHMARK(BM_AnthropicRequestFromChat)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_AnthropicResponseFromChat(benchmark::State& state) {
  const std::string& answer = chat_answer_for(state.range(0) != 0);
  for (auto _ : state) {
    std::string body = openai::anthropic::response_from_chat(answer);
    benchmark::DoNotOptimize(body.data());
  }
  label(state, answer.size());
}
BENCHMARK(BM_AnthropicResponseFromChat)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_AnthropicResponseToChat(benchmark::State& state) {
  const std::string message =
      openai::anthropic::response_from_chat(chat_answer_for(state.range(0) != 0));
  for (auto _ : state) {
    std::string body = openai::anthropic::response_to_chat(message, 1767225600);
    benchmark::DoNotOptimize(body.data());
  }
  label(state, message.size());
}
BENCHMARK(BM_AnthropicResponseToChat)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// One whole streamed answer of range(0) content chunks, one upstream event per feed().
template <typename Stream> void run_stream(benchmark::State& state, Stream make) {
  const std::vector<std::string> events = chat_stream(static_cast<int>(state.range(0)));
  size_t bytes = 0;
  for (const auto& e : events)
    bytes += e.size();
  std::string out;
  for (auto _ : state) {
    auto stream = make();
    out.clear();
    for (const auto& e : events)
      stream.feed(e, out);
    stream.finish(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * events.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.SetLabel(std::to_string(events.size()) + " events, " + std::to_string(bytes) + " B in, " +
                 std::to_string(out.size()) + " B out");
}

void BM_AnthropicStreamFromChat(benchmark::State& state) {
  run_stream(state, [] { return openai::anthropic::StreamFromChat(); });
}
BENCHMARK(BM_AnthropicStreamFromChat)->Arg(20)->Arg(200)->Unit(benchmark::kMicrosecond);

// The backend side: an Anthropic backend's stream (made once by StreamFromChat) back to chat.
void BM_AnthropicStreamToChat(benchmark::State& state) {
  openai::anthropic::StreamFromChat make_anthropic;
  std::string anthropic_sse;
  for (const auto& e : chat_stream(static_cast<int>(state.range(0))))
    make_anthropic.feed(e, anthropic_sse);
  make_anthropic.finish(anthropic_sse);
  // Split back into events, one feed() each.
  std::vector<std::string> events;
  for (size_t start = 0; start < anthropic_sse.size();) {
    size_t end = anthropic_sse.find("\n\n", start);
    end = end == std::string::npos ? anthropic_sse.size() : end + 2;
    events.push_back(anthropic_sse.substr(start, end - start));
    start = end;
  }
  std::string out;
  for (auto _ : state) {
    openai::anthropic::StreamToChat stream(1767225600);
    out.clear();
    for (const auto& e : events)
      stream.feed(e, out);
    stream.finish(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * events.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * anthropic_sse.size()));
  state.SetLabel(std::to_string(events.size()) + " events, " +
                 std::to_string(anthropic_sse.size()) + " B in, " + std::to_string(out.size()) +
                 " B out");
}
BENCHMARK(BM_AnthropicStreamToChat)->Arg(20)->Arg(200)->Unit(benchmark::kMicrosecond);

// ---- Responses ----

void BM_ResponsesRequestToChat(benchmark::State& state) {
  const std::string& body = request_for(state.range(0) != 0, false);
  openai::ApiError error;
  for (auto _ : state) {
    openai::responses_api::ChatRequest chat;
    if (!openai::responses_api::request_to_chat(body, chat, error))
      fail("responses request_to_chat", error.message);
    if (!chat.unsupported.empty())
      fail("responses request_to_chat", chat.unsupported);
    benchmark::DoNotOptimize(chat.body.data());
  }
  label(state, body.size());
}
BENCHMARK(BM_ResponsesRequestToChat)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_ResponsesResponseFromChat(benchmark::State& state) {
  const std::string& answer = chat_answer_for(state.range(0) != 0);
  for (auto _ : state) {
    // A fresh response id per answer, as the gateway does.
    std::string body = openai::responses_api::response_from_chat(answer);
    benchmark::DoNotOptimize(body.data());
  }
  label(state, answer.size());
}
BENCHMARK(BM_ResponsesResponseFromChat)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_ResponsesResponseToChat(benchmark::State& state) {
  const std::string response =
      openai::responses_api::response_from_chat(chat_answer_for(state.range(0) != 0), "resp_b");
  for (auto _ : state) {
    std::string body = openai::responses_api::response_to_chat(response);
    benchmark::DoNotOptimize(body.data());
  }
  label(state, response.size());
}
BENCHMARK(BM_ResponsesResponseToChat)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_ResponsesStreamFromChat(benchmark::State& state) {
  run_stream(state, [] { return openai::responses_api::StreamFromChat(); });
}
BENCHMARK(BM_ResponsesStreamFromChat)->Arg(20)->Arg(200)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
