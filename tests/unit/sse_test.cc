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

} // namespace
} // namespace semrouter::openai
