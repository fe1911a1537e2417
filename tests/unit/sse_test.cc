#include "openai/sse.h"

#include <gtest/gtest.h>

namespace semrouter::openai {
namespace {

TEST(Sse, EventsSplitAcrossArbitraryPieces) {
  std::string stream = "data: {\"a\":1}\n\n: comment\n\ndata: line1\r\ndata: line2\r\n\r\nevent: "
                       "x\ndata: [DONE]\n\n";
  // Feed one byte at a time and all at once; both must give the same events.
  for (size_t step : {size_t{1}, size_t{3}, stream.size()}) {
    SseParser p;
    std::vector<std::string> got;
    for (size_t i = 0; i < stream.size(); i += step) {
      for (const auto& e : p.feed(std::string_view(stream).substr(i, step)))
        got.push_back(e);
    }
    ASSERT_EQ(got.size(), 3u) << "step " << step;
    EXPECT_EQ(got[0], "{\"a\":1}");
    EXPECT_EQ(got[1], "line1\nline2");
    EXPECT_EQ(got[2], "[DONE]");
  }
}

TEST(Sse, ACarriageReturnAloneEndsALineAsCrlfAndLfDo) {
  // The SSE format's three line ends, a CRLF cut between pieces counting once.
  const std::string stream = "data: a\r\rdata: b\r\n\r\ndata: c\n\ndata\r\n\r\n";
  for (size_t step = 1; step <= stream.size(); ++step) {
    SseParser p;
    std::vector<std::string> got;
    for (size_t i = 0; i < stream.size(); i += step)
      for (const auto& e : p.feed(std::string_view(stream).substr(i, step)))
        got.push_back(e);
    EXPECT_EQ(got, (std::vector<std::string>{"a", "b", "c", ""})) << "step " << step;
  }
}

// Collects what a StreamUsageFilter hands its sink.
struct Collected final : SseEventSink {
  std::vector<std::string> data;
  std::vector<bool> usage;
  void sse_event(std::string_view d, bool mentions_usage) override {
    data.emplace_back(d);
    usage.push_back(mentions_usage);
  }
};

TEST(Sse, TheUsageFilterHandsItsSinkTheEventsAnSseParserReads) {
  // Every kind of event: one data line, several, "data" alone, other fields, comments only,
  // the three line ends, usage events the client does not get, and one past kMaxHeldBytes.
  std::string stream =
      "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n"
      ": keep-alive\n\n"
      "event: x\nid: 7\ndata: one\ndata: two\r\n\r\n"
      "data\n\n"
      "data: lone\r\rdata: crlf\r\n\r\n"
      "data:{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n";
  stream += "data: " + std::string(StreamUsageFilter::kMaxHeldBytes + 10, 'x') + "\n\n";
  stream += "data: [DONE]\n\n";
  SseParser reference;
  std::vector<std::string> expected;
  for (const auto& e : reference.feed(stream))
    expected.push_back(e);
  ASSERT_EQ(expected.size(), 8u);
  for (size_t step : {size_t{1}, size_t{2}, size_t{5}, size_t{64}, size_t{4096}, stream.size()}) {
    StreamUsageFilter filter;
    Collected sink;
    std::string out;
    for (size_t i = 0; i < stream.size(); i += step)
      filter.feed(std::string_view(stream).substr(i, step), out, &sink);
    filter.finish(out, &sink);
    EXPECT_EQ(sink.data, expected) << "step " << step;
    ASSERT_EQ(sink.usage.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i)
      EXPECT_EQ(sink.usage[i], expected[i].find("\"usage\"") != std::string::npos) << i;
    // The client's stream is the one the filter gives without a sink.
    StreamUsageFilter plain;
    std::string plain_out;
    plain.feed(stream, plain_out);
    plain.finish(plain_out);
    EXPECT_EQ(out, plain_out) << "step " << step;
    EXPECT_EQ(out.find("prompt_tokens"), std::string::npos);
  }
}

TEST(Sse, AnEventEndedByALoneCrReachesTheSinkAtTheNextByteOrAtFinish) {
  // The filter waits to see whether an LF follows the CR (it belongs to the event's bytes); a
  // stream that breaks off there still hands the complete event over on finish(), which the
  // gateway and ext_proc call with the output dropped.
  const std::string usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\r\r";
  StreamUsageFilter filter;
  Collected sink;
  std::string out;
  filter.feed(usage, out, &sink);
  EXPECT_TRUE(sink.data.empty());
  std::string dropped;
  filter.finish(dropped, &sink);
  ASSERT_EQ(sink.data.size(), 1u);
  EXPECT_TRUE(sink.usage[0]);
  EXPECT_EQ(parse_usage(sink.data[0]).prompt_tokens, 1u);
  EXPECT_EQ(out + dropped, ""); // the usage-only event is not the client's
}

TEST(Sse, ASmallHoldLimitStillHandsTheSinkEveryEvent) {
  const std::string stream =
      "data: first event, longer than the limit\n\n: c\n\ndata: a\rdata: b\r\r"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2}}\r\n\r\ndata: [DONE]\n\n";
  SseParser reference;
  std::vector<std::string> expected;
  for (const auto& e : reference.feed(stream))
    expected.push_back(e);
  for (size_t limit : {size_t{1}, size_t{4}, size_t{16}})
    for (size_t step : {size_t{1}, size_t{3}, size_t{7}, stream.size()}) {
      StreamUsageFilter filter(limit);
      Collected sink;
      std::string out;
      for (size_t i = 0; i < stream.size(); i += step)
        filter.feed(std::string_view(stream).substr(i, step), out, &sink);
      filter.finish(out, &sink);
      EXPECT_EQ(sink.data, expected) << "limit " << limit << " step " << step;
    }
}

TEST(Sse, ParsesUsage) {
  Usage u = parse_usage(
      R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}})");
  EXPECT_TRUE(u.present);
  EXPECT_EQ(u.prompt_tokens, 12u);
  EXPECT_EQ(u.completion_tokens, 34u);
  EXPECT_FALSE(parse_usage(R"({"usage":null})").present);
  EXPECT_FALSE(parse_usage("[DONE]").present);
  EXPECT_FALSE(parse_usage("{\"usage\": broken").present);
}

// Only the top-level "usage" counts: not one inside the answer's text or a nested object; the
// reasoning tokens come from completion_tokens_details; other keys and types are skipped.
TEST(Sse, ParsesOnlyTheTopLevelUsage) {
  Usage u = parse_usage(
      R"({"id":"x","choices":[{"message":{"content":"say \"usage\":{\"prompt_tokens\":999}",)"
      R"("usage":{"prompt_tokens":555}}}],"usage":{"prompt_tokens":"n/a","total_tokens":9,)"
      R"("completion_tokens":7,"prompt_tokens_details":{"cached_tokens":1},)"
      R"("completion_tokens_details":{"audio_tokens":0,"reasoning_tokens":5}},"model":"m"})");
  EXPECT_TRUE(u.present);
  EXPECT_EQ(u.prompt_tokens, 0u); // not a number
  EXPECT_EQ(u.completion_tokens, 7u);
  EXPECT_EQ(u.reasoning_tokens, 5u);
  Usage first = parse_usage(R"({"usage":{"prompt_tokens":3,"completion_tokens":4},"choices":[]})");
  EXPECT_TRUE(first.present);
  EXPECT_EQ(first.prompt_tokens, 3u);
  EXPECT_EQ(first.completion_tokens, 4u);
  EXPECT_FALSE(parse_usage(R"({"choices":[{"usage":{"prompt_tokens":1}}]})").present);
  EXPECT_FALSE(parse_usage(R"(["usage"])").present);
}

// A key with an escape before "usage" has the whole answer read; counts must be whole numbers
// within 64 bits; the first reasoning_tokens of a details object counts. ("us\u0061ge" itself is
// not looked for: no backend escapes it.)
TEST(Sse, UsageEdgeCases) {
  Usage escaped =
      parse_usage(R"({"ch\u006fices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}})");
  EXPECT_TRUE(escaped.present);
  EXPECT_EQ(escaped.prompt_tokens, 2u);
  EXPECT_EQ(escaped.completion_tokens, 3u);
  EXPECT_FALSE(parse_usage(R"({"\u0069d":1,"usage":null})").present);
  Usage odd =
      parse_usage(R"({"usage":{"prompt_tokens":1.5,"completion_tokens":18446744073709551616,)"
                  R"("completion_tokens_details":{"reasoning_tokens":4,"reasoning_tokens":9}}})");
  EXPECT_TRUE(odd.present);
  EXPECT_EQ(odd.prompt_tokens, 0u);
  EXPECT_EQ(odd.completion_tokens, 0u);
  EXPECT_EQ(odd.reasoning_tokens, 4u);
  Usage max = parse_usage(R"({"usage":{"completion_tokens":18446744073709551615}})");
  EXPECT_EQ(max.completion_tokens, 18446744073709551615u);
  EXPECT_EQ(parse_usage(R"({"usage":{"prompt_t\u006fkens":7}})").prompt_tokens, 7u);
}

// The usage object is read as JSON: whitespace anywhere, counts only as whole numbers (not -1,
// 1e3 or a string); a number JSON does not allow (01), or one past a double (1e400), spoils the
// object. When a key with an escape has the whole answer read, the answer must be one JSON
// object throughout, with nothing after it.
TEST(Sse, UsageIsReadAsStrictJson) {
  Usage spaced = parse_usage("{ \"usage\" :\n { \"prompt_tokens\" : 3 ,\t\"completion_tokens\":4 ,"
                             " \"completion_tokens_details\" : { \"reasoning_tokens\" : 2 } } }");
  EXPECT_TRUE(spaced.present);
  EXPECT_EQ(spaced.prompt_tokens, 3u);
  EXPECT_EQ(spaced.completion_tokens, 4u);
  EXPECT_EQ(spaced.reasoning_tokens, 2u);
  Usage odd = parse_usage(R"({"usage":{"prompt_tokens":-1,"completion_tokens":1e3,)"
                          R"("completion_tokens_details":{"reasoning_tokens":"2"}}})");
  EXPECT_TRUE(odd.present);
  EXPECT_EQ(odd.prompt_tokens, 0u);
  EXPECT_EQ(odd.completion_tokens, 0u);
  EXPECT_EQ(odd.reasoning_tokens, 0u);
  EXPECT_FALSE(parse_usage(R"({"usage":{"prompt_tokens":01}})").present);
  EXPECT_FALSE(parse_usage(R"({"usage":[1,2]})").present);
  Usage escaped = parse_usage(R"({"\u0069d":1,"usage":{"prompt_tokens":2},"x":true})");
  EXPECT_TRUE(escaped.present);
  EXPECT_EQ(escaped.prompt_tokens, 2u);
  EXPECT_FALSE(parse_usage(R"({"\u0069d":1,"usage":{"prompt_tokens":2},"x":[})").present);
  EXPECT_FALSE(parse_usage(R"({"\u0069d":1,"usage":{"prompt_tokens":2}} trailing)").present);
  EXPECT_FALSE(parse_usage(R"({"usage":{"prompt_tokens":2,"x":1e400}})").present);
}

// A member that breaks the object after good ones gives no counts at all, not half of them.
TEST(Sse, MalformedUsageAfterGoodMembersCountsNothing) {
  for (const char* json : {R"({"usage":{"prompt_tokens":5,1}})",
                           R"({"usage":{"prompt_tokens":5,"completion_tokens":2,})",
                           R"({"usage":{"completion_tokens":2,"prompt_tokens")"}) {
    Usage u = parse_usage(json);
    EXPECT_FALSE(u.present) << json;
    EXPECT_EQ(u.prompt_tokens, 0u) << json;
    EXPECT_EQ(u.completion_tokens, 0u) << json;
  }
}

} // namespace
} // namespace semrouter::openai
