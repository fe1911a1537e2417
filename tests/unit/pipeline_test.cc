#include "pipeline/pipeline.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "openai/sse.h"
#include "pipeline/dialects.h"
#include "pipeline/exchange.h"

namespace semrouter::pipeline {
namespace {

std::shared_ptr<const Snapshot> snapshot_of(const std::string& yaml) {
  auto c = config::parse_config(yaml);
  EXPECT_TRUE(c) << c.error().message;
  auto s = build_snapshot(*c, 1);
  EXPECT_TRUE(s) << s.error().message;
  return *s;
}

const char* kConfig = R"(
backends: [{name: b, url: 'http://127.0.0.1:1/v1'}]
models:
  - {name: fast, upstream_model: org/fast, backends: [b], reasoning_family: qwen3}
  - {name: a, backends: [b]}
  - {name: c, backends: [b]}
signals:
  keywords: [{name: k, keywords: [alpha]}]
decisions:
  - name: split
    rules: {keyword: k}
    models: [{model: a, weight: 1}, {model: c, weight: 1}]
)";

TEST(Pipeline, SameSeedSameChoices) {
  auto snap = snapshot_of(kConfig);
  std::string body = R"({"model":"auto","messages":[{"role":"user","content":"alpha"}]})";
  auto run = [&](uint64_t seed) {
    core::Random random(seed);
    std::string picks;
    for (int i = 0; i < 32; ++i)
      picks += route(*snap, {}, body, random).model->name;
    return picks;
  };
  EXPECT_EQ(run(7), run(7));
  std::string picks = run(7);
  EXPECT_NE(picks.find('a'), std::string::npos);
  EXPECT_NE(picks.find('c'), std::string::npos);
}

TEST(Pipeline, NoDecisionMatchUsesDefaultModelAndLeavesReasoningAlone) {
  auto snap = snapshot_of(kConfig);
  core::Random random(1);
  std::string body =
      R"({"model":"MoM","messages":[{"role":"user","content":"beta"}],"chat_template_kwargs":{"enable_thinking":true}})";
  RouteOutcome out = route(*snap, {}, body, random);
  ASSERT_EQ(out.action, RouteAction::Forward);
  EXPECT_EQ(out.model->name, "fast");
  EXPECT_EQ(out.decision, "default");
  EXPECT_EQ(out.reasoning, "unset");
  auto j = nlohmann::json::parse(out.body);
  EXPECT_EQ(j["model"], "org/fast");
  EXPECT_EQ(j["chat_template_kwargs"]["enable_thinking"], true);
}

TEST(Pipeline, SnapshotStoreRejectsBadFileAndKeepsServing) {
  auto snap = snapshot_of(kConfig);
  SnapshotStore store(snap);
  auto bad = store.reload_from_file("/nonexistent.yaml");
  EXPECT_FALSE(bad);
  EXPECT_EQ(store.get()->generation, 1u);
  EXPECT_EQ(store.reloads_failed(), 1u);
  EXPECT_EQ(store.last_error(), "cannot open config file /nonexistent.yaml");
}

TEST(Pipeline, BadRegexFailsSnapshotBuild) {
  auto c = config::parse_config(R"(
backends: [{name: b, url: 'http://h:1'}]
models: [{name: m, backends: [b]}]
signals: {keywords: [{name: k, keywords: ['(x'], regex: true}]}
)");
  ASSERT_TRUE(c);
  auto s = build_snapshot(*c, 1);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("keyword signal \"k\""), std::string::npos);
}

TEST(TextWindow, LongTextsKeepTheirHeadAndTail) {
  config::WindowConfig w{3, 2};
  std::string storage;
  EXPECT_EQ(text_window("one two three four five", w, storage), "one two three four five");
  EXPECT_EQ(text_window("  one  two three\nfour five ", w, storage),
            "  one  two three\nfour five ");
  EXPECT_EQ(text_window("a b c d e f g", w, storage), "a b c \u2026 f g");
  EXPECT_EQ(text_window("a b c\n\nd e   f  g\n", w, storage), "a b c \u2026 f  g\n");
  EXPECT_EQ(text_window("a b c d e f g", {0, 0}, storage), "a b c d e f g") << "0, 0: all";
  EXPECT_EQ(text_window("a b c d e f g", {2, 0}, storage), "a b \u2026 ");
  EXPECT_EQ(text_window("a b c d e f g", {0, 1}, storage), " \u2026 g");
  // At the short-text shortcut's edge: 6 one-letter words (11 bytes) need the window, 5 do not.
  EXPECT_EQ(text_window("a b c d e f", w, storage), "a b c \u2026 e f");
  EXPECT_EQ(text_window("a b c d e", w, storage), "a b c d e");
}

TEST(TextWindow, ClassifiersReadTheWindowKeywordsReadEverything) {
  // A keyword deep inside a long prompt still fires; the classifiers read only the window (the
  // classify API's reading of the same text is unaffected by the words past it).
  auto cfg = config::parse_config(R"(
backends: [{name: b, url: 'http://127.0.0.1:9/v1'}]
models: [{name: m, backends: [b]}, {name: code, backends: [b]}]
default_model: m
routing: {window: {head_words: 20, tail_words: 5}}
signals:
  keywords: [{name: py, keywords: [python]}]
decisions:
  - {name: code, priority: 10, rules: {keyword: py}, models: [code]}
)");
  ASSERT_TRUE(cfg) << cfg.error().message;
  auto snap = build_snapshot(*cfg, 1, /*load_models=*/true);
  ASSERT_TRUE(snap) << snap.error().message;
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += "the quick brown fox jumps over the lazy dog ";
  text += "and then I wrote some python ";
  for (int i = 0; i < 2000; ++i)
    text += "lorem ipsum dolor sit amet ";
  nlohmann::json body = {{"model", "auto"}, {"messages", {{{"role", "user"}, {"content", text}}}}};
  core::Random random(1);
  RouteOutcome out = route(**snap, {}, body.dump(), random);
  ASSERT_EQ(out.action, RouteAction::Forward);
  EXPECT_EQ(out.decision, "code");
}

// ---- A chat stream's usage, asked for on the client's behalf (request_stream_usage) and hidden
// from it again (openai::StreamUsageFilter).

// What a client gets of `stream` fed in pieces cut at `cuts` (ascending offsets).
std::string filtered(std::string_view stream, const std::vector<size_t>& cuts = {}) {
  openai::StreamUsageFilter filter;
  std::string out;
  size_t at = 0;
  for (size_t cut : cuts) {
    filter.feed(stream.substr(at, cut - at), out);
    at = cut;
  }
  filter.feed(stream.substr(at), out);
  filter.finish(out);
  return out;
}

// An OpenAI stream asked for usage: "usage":null in every chunk, then the usage-only chunk.
constexpr std::string_view kAskedStream =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}],"
    "\"usage\":null}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\" \\\"usage\\\":null there\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":null}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],"
    "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21}}\n\n"
    "data: [DONE]\n\n";
// The same stream as the upstream sends it to a request that did not ask.
constexpr std::string_view kUnaskedStream =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\" \\\"usage\\\":null there\"},\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n";

TEST(StreamUsageFilter, TheClientGetsTheStreamItWouldHaveHadWithoutAsking) {
  EXPECT_EQ(filtered(kAskedStream), kUnaskedStream);
}

TEST(StreamUsageFilter, EventsSplitAnywhereAcrossPiecesGiveTheSameStream) {
  for (size_t cut = 0; cut <= kAskedStream.size(); ++cut)
    ASSERT_EQ(filtered(kAskedStream, {cut}), kUnaskedStream) << "cut at " << cut;
  for (size_t a = 0; a <= kAskedStream.size(); a += 7)
    for (size_t b = a; b <= kAskedStream.size(); b += 5)
      ASSERT_EQ(filtered(kAskedStream, {a, b}), kUnaskedStream) << "cuts at " << a << ", " << b;
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < kAskedStream.size(); ++i)
    every_byte.push_back(i);
  EXPECT_EQ(filtered(kAskedStream, every_byte), kUnaskedStream);
}

TEST(StreamUsageFilter, OnlyWholeEventsGoOutAndTheRestIsHeld) {
  openai::StreamUsageFilter filter;
  std::string out;
  filter.feed("data: {\"choices\":[{\"delta\":{}}]}\n\ndata: {\"choi", out);
  EXPECT_EQ(out, "data: {\"choices\":[{\"delta\":{}}]}\n\n");
  out.clear();
  filter.feed("ces\":[],\"usage\":{\"prompt_tokens\":1}}\n", out);
  EXPECT_EQ(out, ""); // the blank line has not arrived: it may still be the usage event
  filter.feed("\ndata: [DONE]\n\n", out);
  EXPECT_EQ(out, "data: [DONE]\n\n");
}

TEST(StreamUsageFilter, AUsageChunkWithoutChoicesIsDroppedOneWithChoicesStays) {
  // vLLM and others: no "choices" key at all on the usage chunk.
  EXPECT_EQ(filtered("data: {\"id\":\"x\",\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n"),
            "data: [DONE]\n\n");
  EXPECT_EQ(filtered("data: {\"choices\": [ ] , \"usage\" : {\"prompt_tokens\":3}}\n\n"), "");
  // Usage on a chunk that carries content: the content must reach the client.
  const std::string with_choices =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}],"
      "\"usage\":{\"prompt_tokens\":3}}\n\n";
  EXPECT_EQ(filtered(with_choices), with_choices);
  // "usage" only in the text, or nested: nothing to hide.
  const std::string nested = "data: {\"choices\":[],\"x\":{\"usage\":{\"a\":1}}}\n\n";
  EXPECT_EQ(filtered(nested), nested);
}

TEST(StreamUsageFilter, ANullUsageMemberIsCutWithOneComma) {
  EXPECT_EQ(filtered("data: {\"usage\":null,\"id\":\"a\"}\n\n"), "data: {\"id\":\"a\"}\n\n");
  EXPECT_EQ(filtered("data: {\"id\":\"a\", \"usage\": null, \"n\":1}\n\n"),
            "data: {\"id\":\"a\", \"n\":1}\n\n");
  EXPECT_EQ(filtered("data: {\"id\":\"a\",\"usage\":null}\n\n"), "data: {\"id\":\"a\"}\n\n");
  EXPECT_EQ(filtered("data: {\"usage\":null}\n\n"), "data: {}\n\n");
}

TEST(StreamUsageFilter, LineEndingsCommentsAndOtherFieldsPassAsTheyAre) {
  EXPECT_EQ(filtered("data: {\"choices\":[],\"usage\":{}}\r\n\r\ndata: [DONE]\r\n\r\n"),
            "data: [DONE]\r\n\r\n");
  for (size_t cut = 0; cut < 40; ++cut)
    ASSERT_EQ(filtered("data: {\"choices\":[],\"usage\":{}}\r\rdata: [DONE]\r\r", {cut}),
              "data: [DONE]\r\r")
        << cut;
  const std::string other = ": keep-alive\n\nevent: ping\nid: 7\ndata: {\"n\":1}\n\n"
                            "data: {\"usage\":\ndata: {}}\n\n"; // two data lines: not a chunk
  EXPECT_EQ(filtered(other), other);
  EXPECT_EQ(filtered("event: x\ndata: {\"choices\":[],\"usage\":{}}\n\ndata: [DONE]\n\n"),
            "data: [DONE]\n\n");
}

TEST(StreamUsageFilter, AnUnfinishedEventGoesOutAtTheEnd) {
  EXPECT_EQ(filtered("data: {\"choices\":[]}\n\ndata: {\"choices\":[],\"usage\":{}}"),
            "data: {\"choices\":[]}\n\ndata: {\"choices\":[],\"usage\":{}}");
  EXPECT_EQ(filtered("data: {\"choices\":[],\"usage\":{}}\n\r"), ""); // a complete event
  EXPECT_EQ(filtered("data: not json \"usage\"\n\n"), "data: not json \"usage\"\n\n");
}

TEST(StreamUsageFilter, AnOversizedEventIsNotHeldBack) {
  openai::StreamUsageFilter filter;
  std::string out;
  const std::string big = "data: {\"choices\":[{\"delta\":{\"content\":\"" +
                          std::string(openai::StreamUsageFilter::kMaxHeldBytes, 'x');
  filter.feed(big, out);
  EXPECT_EQ(out, big);
  out.clear();
  filter.feed("\"}}],\"usage\":null}\n\ndata: [DONE]\n\n", out);
  EXPECT_EQ(out, "\"}}],\"usage\":null}\n\ndata: [DONE]\n\n");
}

// request_stream_usage: the call of a chat client's chat stream (or a completions client's).
UpstreamCall chat_call(std::string body) {
  UpstreamCall call;
  call.wire = Api::Chat;
  call.body = std::move(body);
  return call;
}

TEST(RequestStreamUsage, AChatStreamThatDidNotAskAsksTheUpstream) {
  config::BackendConfig backend;
  for (auto p : {config::Provider::OpenAI, config::Provider::Vllm, config::Provider::Generic}) {
    backend.provider = p;
    UpstreamCall call =
        chat_call(R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})");
    ASSERT_TRUE(request_stream_usage(Api::Chat, backend, call));
    EXPECT_EQ(call.body, R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}])"
                         R"(,"stream_options":{"include_usage":true}})");
  }
  // Other stream options stay; include_usage: false becomes true.
  UpstreamCall call =
      chat_call(R"({"stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[]})");
  ASSERT_TRUE(request_stream_usage(Api::Chat, backend, call));
  auto j = nlohmann::json::parse(call.body);
  EXPECT_EQ(j["stream_options"], nlohmann::json({{"include_usage", true}, {"x", 1}}));
  EXPECT_EQ(j["messages"], nlohmann::json::array());
  call = chat_call(R"({"stream":true,"stream_options":null,"messages":[]})");
  ASSERT_TRUE(request_stream_usage(Api::Chat, backend, call));
  EXPECT_EQ(call.body, R"({"stream":true,"stream_options":{"include_usage":true},"messages":[]})");
  // A legacy completions stream takes the same field.
  call = chat_call(R"({"model":"m","prompt":"x","stream":true})");
  call.wire = Api::Completions;
  ASSERT_TRUE(request_stream_usage(Api::Completions, backend, call));
  EXPECT_EQ(call.body,
            R"({"model":"m","prompt":"x","stream":true,"stream_options":{"include_usage":true}})");
}

TEST(RequestStreamUsage, NothingChangesWhenTheClientAskedOrNoChatStreamGoesOut) {
  config::BackendConfig backend;
  auto unchanged = [&](Api client, Api wire, const std::string& body) {
    UpstreamCall call = chat_call(body);
    call.wire = wire;
    EXPECT_FALSE(request_stream_usage(client, backend, call)) << body;
    EXPECT_EQ(call.body, body);
  };
  // The client asked: its stream keeps the usage chunk, and nothing is filtered.
  unchanged(Api::Chat, Api::Chat,
            R"({"stream":true,"stream_options":{"include_usage":true},"messages":[]})");
  // vLLM's usage in every chunk: the client would get what it never got before.
  unchanged(Api::Chat, Api::Chat,
            R"({"stream":true,"stream_options":{"continuous_usage_stats":true},"messages":[]})");
  unchanged(Api::Chat, Api::Chat, R"({"stream":false,"messages":[]})");
  unchanged(Api::Chat, Api::Chat, R"({"stream":true,"stream_options":"usage","messages":[]})");
  unchanged(Api::Chat, Api::Chat, R"({"messages":[{"role":"user","content":"\"stream\""}]})");
  unchanged(Api::Completions, Api::Chat, R"({"stream":true,"prompt":"x"})");
  unchanged(Api::Chat, Api::Completions, R"({"stream":true,"prompt":"x"})");
  unchanged(Api::Messages, Api::Chat, R"({"stream":true,"messages":[]})");
  unchanged(Api::Chat, Api::Messages, R"({"stream":true,"messages":[]})");
  // Azure before api-version 2024-09-01 refuses the field.
  backend.provider = config::Provider::Azure;
  backend.api_version = "2024-06-01";
  unchanged(Api::Chat, Api::Chat, R"({"stream":true,"messages":[]})");
  backend.api_version = "2024-10-21";
  UpstreamCall call = chat_call(R"({"stream":true,"messages":[]})");
  EXPECT_TRUE(request_stream_usage(Api::Chat, backend, call));
}

} // namespace
} // namespace semrouter::pipeline
