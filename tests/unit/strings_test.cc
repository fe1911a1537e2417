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

TEST(Strings, JsonStringEscapesControlAndQuotes) {
  EXPECT_EQ(json_string("a\"b\\c\nd\te\x01"), "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
  EXPECT_EQ(json_string("héllo"), "\"héllo\""); // UTF-8 passes through
}

} // namespace semrouter::core
