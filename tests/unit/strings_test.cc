#include "core/strings.h"

#include <gtest/gtest.h>

namespace semrouter::core {

TEST(Strings, LowerTrimSplitJoin) {
  EXPECT_EQ(ascii_lower("MoM-ÄB"), "mom-Äb");
  EXPECT_TRUE(iequals("100-Continue", "100-continue"));
  EXPECT_FALSE(iequals("abc", "abcd"));
  EXPECT_EQ(trim("  a b \r\n"), "a b");
  EXPECT_EQ(split("a,,b", ','), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(join({"a", "b", "c"}, ", "), "a, b, c");
}

// find_short against string_view::find: every needle length from 2 to 20, matches at every
// offset (the SIMD blocks' edges and the scalar tail included), near misses that share only the
// first or the last byte, and text too short for a block.
TEST(Strings, FindShortAgreesWithFind) {
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  for (size_t k = 2; k <= 20; ++k) {
    std::string needle;
    for (size_t i = 0; i < k; ++i)
      needle.push_back(static_cast<char>('a' + next() % 3));
    for (size_t n = 0; n <= 100; ++n) { // the scalar path, one, two and three SIMD rounds
      for (int trial = 0; trial < 8; ++trial) {
        std::string text;
        for (size_t i = 0; i < n; ++i)
          text.push_back(static_cast<char>('a' + next() % 4)); // 'd' never in the needle
        if (trial % 2 == 1 && n >= k)                          // plant it somewhere
          text.replace(next() % (n - k + 1), k, needle);
        if (trial == 2 && n >= k) { // first and last byte right, a middle one wrong
          std::string near = needle;
          near[k / 2] = 'd';
          text.replace(next() % (n - k + 1), k, near);
        }
        ASSERT_EQ(find_short(text, needle), std::string_view(text).find(needle))
            << "needle " << needle << " in " << text;
      }
    }
  }
  // Every position of every length, for the block boundaries and the masked tail: the needle
  // alone, and its first two bytes alone (a candidate that must not match, also at the very end).
  for (size_t k : {2u, 3u, 7u, 16u, 17u, 18u, 33u}) {
    const std::string needle = std::string("ab") + std::string(k - 2, 'c');
    for (size_t n = k; n <= 100; ++n)
      for (size_t pos = 0; pos + k <= n; ++pos) {
        std::string text(n, 'd');
        text.replace(pos, k, needle);
        ASSERT_EQ(find_short(text, needle), pos) << "k " << k << " n " << n;
        if (k > 2) {
          text.assign(n, 'd');
          text.replace(pos, 2, "ab");
          ASSERT_EQ(find_short(text, needle), std::string_view::npos) << "k " << k << " n " << n;
        }
      }
  }
  EXPECT_EQ(find_short("{\"id\":1,\"usage\":null}", "\"usage\""), 8u);
  EXPECT_EQ(find_short("\"usag", "\"usage\""), std::string_view::npos);
  EXPECT_EQ(find_short("", "ab"), std::string_view::npos);
}

TEST(Strings, JsonStringEscapesControlAndQuotes) {
  EXPECT_EQ(json_string("a\"b\\c\nd\te\x01"), "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
  EXPECT_EQ(json_string("héllo"), "\"héllo\""); // UTF-8 passes through
}

} // namespace semrouter::core
