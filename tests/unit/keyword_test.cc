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

// clear() drops every result; the entries put() fills after it start from the defaults (no
// evidence or score left from the request before), sort by their new keys, and a copy carries
// the results alone.
TEST(SignalResults, ClearedEntriesComeBackEmptyUnderTheirNewKeys) {
  semrouter::signals::SignalResults r;
  for (const char* name : {"a_long_signal_name_past_sso", "b", "c"}) {
    auto& x = r.put("keyword", name);
    x.matched = true;
    x.confidence = x.score = x.latency_us = 0.9;
    x.evidence = {"first", "second request's evidence, long enough to live on the heap"};
  }
  r.clear();
  EXPECT_TRUE(r.all().empty());
  EXPECT_EQ(r.get("keyword", "b"), nullptr);
  r.put("domain", "z").evidence.push_back("law");
  r.put("domain", "a");
  auto& again = r.put("domain", "z"); // a second put resets the first
  EXPECT_TRUE(again.evidence.empty());
  again.evidence.push_back("math");
  std::vector<std::string> keys;
  for (const auto& [key, x] : r.all()) {
    keys.push_back(key);
    EXPECT_FALSE(x.matched) << key;
    EXPECT_EQ(x.confidence, 0.0) << key;
    EXPECT_EQ(x.score, 0.0) << key;
    EXPECT_EQ(x.latency_us, 0.0) << key;
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"domain:a", "domain:z"}));
  ASSERT_NE(r.get("domain", "z"), nullptr);
  EXPECT_EQ(r.get("domain", "z")->evidence, std::vector<std::string>{"math"});
  ASSERT_NE(r.get("domain", "a"), nullptr);
  EXPECT_TRUE(r.get("domain", "a")->evidence.empty());
  EXPECT_EQ(r.get("keyword", "a_long_signal_name_past_sso"), nullptr);
  const semrouter::signals::SignalResults copy = r;
  r.clear();
  std::vector<std::string> copied;
  for (const auto& [key, x] : copy.all())
    copied.push_back(key);
  EXPECT_EQ(copied, keys);
  EXPECT_TRUE(r.all().empty());
  // More entries than were cleared (and than the first reservation): the spares run out and the
  // list grows, every entry still found under its own key with its own result.
  for (int i = 0; i < 40; ++i)
    r.put("keyword", "k" + std::to_string(i)).score = i;
  for (int i = 0; i < 40; ++i) {
    const auto* x = r.get("keyword", "k" + std::to_string(i));
    ASSERT_NE(x, nullptr) << i;
    EXPECT_EQ(x->score, i);
    EXPECT_TRUE(x->evidence.empty()) << i;
  }
  EXPECT_EQ(r.get("domain", "z"), nullptr);
}
