#include "signals/keyword.h"

#include <gtest/gtest.h>

namespace semrouter::signals {
namespace {

std::unique_ptr<KeywordSignals> make(std::vector<KeywordSpec> specs) {
  auto ks = KeywordSignals::create(specs);
  EXPECT_TRUE(ks) << ks.error().message;
  return std::move(*ks);
}

bool matched(const KeywordSignals& ks, std::string_view text, const std::string& name) {
  semrouter::signals::SignalResults r;
  ks.evaluate({text}, r);
  const SignalResult* res = r.get("keyword", name);
  EXPECT_NE(res, nullptr);
  return res && res->matched;
}

TEST(Keyword, AnyAllCaseAndWordBoundaries) {
  auto ks = make({
      {"any_ci", {"integral", "prove"}, KeywordOperator::Any, false, true, false},
      {"all", {"sql", "index"}, KeywordOperator::All, false, true, false},
      {"cs", {"API"}, KeywordOperator::Any, true, true, false},
      {"substr", {"tl;dr"}, KeywordOperator::Any, false, false, false},
  });
  EXPECT_TRUE(matched(*ks, "What is the INTEGRAL of x?", "any_ci"));
  EXPECT_FALSE(matched(*ks, "integrals are fun", "any_ci")); // word boundary
  EXPECT_FALSE(matched(*ks, "improve it", "any_ci"));        // "prove" inside a word
  EXPECT_TRUE(matched(*ks, "add an index to the SQL table", "all"));
  EXPECT_FALSE(matched(*ks, "add an index", "all"));
  EXPECT_TRUE(matched(*ks, "call the API", "cs"));
  EXPECT_FALSE(matched(*ks, "call the api", "cs"));
  EXPECT_TRUE(matched(*ks, "TL;DR please", "substr")); // punctuation quoted, not a regex
  EXPECT_FALSE(matched(*ks, "tlxdr", "substr"));
}

TEST(Keyword, RegexAndEvidence) {
  auto ks = make({{"code", {"c\\+\\+", "py(thon)?"}, KeywordOperator::Any, false, true, true}});
  semrouter::signals::SignalResults r;
  ks->evaluate({"Port this Python to C++"}, r);
  const SignalResult* res = r.get("keyword", "code");
  ASSERT_NE(res, nullptr);
  EXPECT_TRUE(res->matched);
  EXPECT_EQ(res->confidence, 1.0);
  EXPECT_EQ(res->evidence.size(), 2u);
}

TEST(Keyword, InvalidRegexIsAnErrorNamingTheSignal) {
  auto ks =
      KeywordSignals::create({{"bad", {"(unclosed"}, KeywordOperator::Any, false, true, true}});
  ASSERT_FALSE(ks);
  EXPECT_NE(ks.error().message.find("keyword signal \"bad\": invalid regex \"(unclosed\""),
            std::string::npos)
      << ks.error().message;
}

TEST(Keyword, Utf8Text) {
  auto ks = make({{"de", {"Übersetzung"}, KeywordOperator::Any, false, false, false}});
  EXPECT_TRUE(matched(*ks, "Bitte eine Übersetzung", "de"));
  auto none = make({});
  semrouter::signals::SignalResults r;
  none->evaluate({"anything"}, r);
  EXPECT_TRUE(r.all().empty());
}

} // namespace
} // namespace semrouter::signals

namespace semrouter::signals {
namespace {

TEST(Keyword, BoundariesAroundPunctuationAndUnicodeLetters) {
  auto ks = make({{"cpp", {"C++"}, KeywordOperator::Any, false, true, false},
                  {"caf", {"caf"}, KeywordOperator::Any, false, true, false}});
  EXPECT_TRUE(matched(*ks, "port it to C++ please", "cpp"));
  EXPECT_TRUE(matched(*ks, "C++", "cpp"));
  EXPECT_TRUE(matched(*ks, "(c++)", "cpp"));
  EXPECT_FALSE(matched(*ks, "C++x", "cpp"));
  EXPECT_FALSE(matched(*ks, "un café", "caf")); // é is a letter: no boundary there
  EXPECT_TRUE(matched(*ks, "caf-bar", "caf"));
}

} // namespace
} // namespace semrouter::signals

TEST(SignalResults, KeepsOneResultPerKeyInKeyOrder) {
  semrouter::signals::SignalResults r;
  auto result = [](double confidence) {
    semrouter::signals::SignalResult x;
    x.matched = true;
    x.confidence = confidence;
    return x;
  };
  r.set("pii", "email", result(0.1));
  r.set("keyword", "math", result(0.2));
  r.set("pii_extra", "x", result(0.3)); // "pii_extra:x" sorts after "pii:email" (':' < '_')
  r.set("domain", "law", result(0.4));
  r.set("keyword", "math", result(0.5)); // a second set replaces the first
  std::vector<std::string> keys;
  for (const auto& [key, x] : r.all())
    keys.push_back(key);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"domain:law", "keyword:math", "pii:email", "pii_extra:x"}));
  ASSERT_NE(r.get("keyword", "math"), nullptr);
  EXPECT_EQ(r.get("keyword", "math")->confidence, 0.5);
  ASSERT_NE(r.find("pii_extra:x"), nullptr);
  EXPECT_EQ(r.find("pii_extra:x")->confidence, 0.3);
  EXPECT_EQ(r.get("keyword", "mat"), nullptr);
  EXPECT_EQ(r.get("keyword", "mathematics"), nullptr);
  EXPECT_EQ(r.get("pii", "phone"), nullptr);
  EXPECT_EQ(r.find("zzz:last"), nullptr);
}
