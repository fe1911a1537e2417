// Signals, decisions and plugins of the routing brain that YAML cases cannot express: the
// session store's bounds, the confidence strategy, history windows, token estimates, the
// inference pool running transformer-backed signals, and the classify API.
#include <chrono>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "models/inference_pool.h"
#include "pipeline/pipeline.h"
#include "pipeline/request_signals.h"
#include "pipeline/sessions.h"
#include "routing/decision_engine.h"
#include "signals/pii.h"

namespace semrouter {
namespace {

std::string src(const std::string& rel) {
  return std::string(SEMROUTER_SOURCE_DIR) + "/" + rel;
}

std::shared_ptr<const config::Config> parse(const std::string& yaml) {
  auto c = config::parse_config(yaml);
  EXPECT_TRUE(c.has_value()) << c.error().message;
  return c ? *c : nullptr;
}

TEST(Sessions, ExpireAfterTheirTtlAndEvictTheLeastRecentlyUsed) {
  using namespace std::chrono;
  pipeline::SessionStore s;
  auto t0 = pipeline::SessionStore::Clock::now();
  s.put("a", {"math", "m1", 100}, 2, t0);
  s.put("b", {"code", "m2", 200}, 2, t0);
  ASSERT_TRUE(s.get("a", seconds(10), t0 + seconds(5))); // refreshes a: b is now the oldest
  s.put("c", {"law", "m3", 100}, 2, t0 + seconds(6));
  EXPECT_EQ(s.size(), 2u);
  EXPECT_FALSE(s.get("b", seconds(10), t0 + seconds(6))) << "b was least recently used";
  auto a = s.get("a", seconds(10), t0 + seconds(7));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->model, "m1");
  EXPECT_EQ(a->priority, 100);
  // Ten seconds of silence end a session.
  EXPECT_FALSE(s.get("c", seconds(10), t0 + seconds(17)));
  EXPECT_EQ(s.size(), 1u);
  // put() on an existing id replaces its entry without growing the store.
  s.put("a", {"code", "m2", 200}, 2, t0 + seconds(8));
  EXPECT_EQ(s.get("a", seconds(10), t0 + seconds(9))->decision, "code");
  EXPECT_EQ(s.size(), 1u);
}

TEST(Decisions, ConfidenceStrategyPicksTheMostConfidentMatch) {
  const std::string base = R"(
backends: [{name: b, url: "http://127.0.0.1:9/v1"}]
models: [{name: m, backends: [b]}]
signals: {keywords: [{name: x, keywords: [x]}, {name: y, keywords: [y]}]}
decisions:
  - {name: high, priority: 10, rules: {keyword: x}, models: [m]}
  - {name: sure, priority: 5, rules: {keyword: y}, models: [m]}
  - {name: also_sure, priority: 5, rules: {keyword: y}, models: [m]}
)";
  signals::SignalResults r;
  r.set("keyword", "x", {true, 0.6, 0, {}});
  r.set("keyword", "y", {true, 0.9, 0, {}});
  auto by_priority = parse(base);
  EXPECT_EQ(routing::DecisionEngine(*by_priority).decide(r).name, "high");
  auto by_confidence = parse(base + "routing: {strategy: confidence}\n");
  auto d = routing::DecisionEngine(*by_confidence).decide(r);
  EXPECT_EQ(d.name, "sure") << "ties keep the earlier (higher or same priority) decision";
  EXPECT_DOUBLE_EQ(d.confidence, 0.9);
  EXPECT_EQ(d.priority, 5);
  // Nothing matches: the fallback ranks below every decision.
  signals::SignalResults none;
  auto f = routing::DecisionEngine(*by_confidence).decide(none);
  EXPECT_TRUE(f.is_default);
  EXPECT_EQ(f.decision, nullptr);
  EXPECT_EQ(f.priority, INT32_MIN);
}

TEST(Signals, HistoryWindowAndTokenEstimate) {
  std::string body = R"({"model":"auto","messages":[
    {"role":"system","content":"sys"},
    {"role":"user","content":"first"},
    {"role":"assistant","content":"reply"},
    {"role":"user","content":"second"},
    {"role":"user","content":"third"}]})";
  auto view = openai::parse_request(body, openai::RequestKind::ChatCompletions);
  ASSERT_TRUE(view);
  std::string storage;
  config::HistoryConfig h;
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "third");
  h.user_turns = 2;
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "second\n\nthird");
  h.user_turns = 0;
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "first\n\nsecond\n\nthird");
  h.include_assistant = true;
  h.include_system = true;
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "sys\n\nfirst\n\nreply\n\nsecond\n\nthird");
  h.user_turns = 3;
  h.include_system = false;
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "first\n\nreply\n\nsecond\n\nthird");

  EXPECT_EQ(pipeline::estimate_tokens(""), 0u);
  EXPECT_EQ(pipeline::estimate_tokens("abcd"), 1u);
  EXPECT_EQ(pipeline::estimate_tokens("abcde"), 2u);
  EXPECT_EQ(pipeline::estimate_tokens("\xe4\xbd\xa0\xe5\xa5\xbd"), 2u); // two Han characters
  EXPECT_EQ(pipeline::estimate_tokens("caf\xc3\xa9"), 2u);              // 5 bytes, not CJK
  EXPECT_EQ(pipeline::estimate_request_tokens(*view), 4u * 5 + 1 + 2 + 2 + 2 + 2);
}

TEST(Signals, ConfigAndRecognisersAgreeOnPiiTypes) {
  EXPECT_EQ(config::pattern_pii_types(), signals::pattern_pii_types());
}

// Transformer-backed tasks run as pool jobs beside the inline ones; the answers are the same as
// running everything on the calling thread.
TEST(Signals, TransformerTasksOnThePoolMatchInline) {
  auto cfg = parse(R"(
backends: [{name: b, url: "http://127.0.0.1:9/v1"}]
models: [{name: m, backends: [b]}, {name: n, backends: [b]}]
classifiers:
  domain: {type: transformer, path: )" +
                   src("tests/fixtures/encoders/bert-seqcls") + R"(, precision: f32}
  embeddings: {type: transformer, path: )" +
                   src("tests/fixtures/encoders/bert-embed") + R"(, precision: f32}
  pii: {type: transformer, path: )" +
                   src("tests/fixtures/encoders/bert-tokcls") + R"(, precision: f32}
signals:
  embeddings: [{name: greet, phrases: [hello there, good morning], threshold: -1}]
  pii: [{name: any, min_score: 0}]
decisions:
  - {name: d, rules: {and: [{embedding: greet}, {not: {domain: astrology_is_not_a_label}}]}, models: [m]}
  - {name: e, rules: {or: [{domain: math}, {jailbreak: jailbreak}, {pii: any}]}, models: [n]}
)");
  ASSERT_TRUE(cfg);
  auto snap = pipeline::build_snapshot(cfg, 1, /*load_models=*/false);
  ASSERT_TRUE(snap); // without models, unknown domain names are not checked
  auto loaded = pipeline::build_snapshot(cfg, 1, true);
  ASSERT_FALSE(loaded) << "a domain the classifier does not know is refused";
  EXPECT_NE(loaded.error().message.find("astrology_is_not_a_label"), std::string::npos);

  auto cfg2 = parse(R"(
backends: [{name: b, url: "http://127.0.0.1:9/v1"}]
models: [{name: m, backends: [b]}, {name: n, backends: [b]}]
classifiers:
  domain: {type: transformer, path: )" +
                    src("tests/fixtures/encoders/bert-seqcls") + R"(, precision: f32}
  embeddings: {type: transformer, path: )" +
                    src("tests/fixtures/encoders/bert-embed") + R"(, precision: f32}
  pii: {type: transformer, path: )" +
                    src("tests/fixtures/encoders/bert-tokcls") + R"(, precision: f32}
signals:
  embeddings: [{name: greet, phrases: [hello there, good morning], threshold: -1}]
  pii: [{name: any, min_score: 0}]
decisions:
  - {name: d, rules: {and: [{embedding: greet}, {not: {domain: other}}, {pii: any}]}, models: [m]}
  - {name: e, rules: {or: [{domain: math}, {jailbreak: jailbreak}]}, models: [n]}
)");
  auto s = pipeline::build_snapshot(cfg2, 1, true);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_TRUE((*s)->models->is_transformer("domain"));
  EXPECT_FALSE((*s)->models->is_transformer("jailbreak"));
  models::InferencePool pool({2, 1, 16});
  const std::string text = "Hello there, mail me at a@b.co about the integral.";
  pipeline::RequestFacts facts;
  facts.text = text;
  signals::SignalResults inline_r, pooled_r;
  pipeline::SignalDetails inline_d, pooled_d;
  pipeline::compute_signals(**s, facts, (*s)->referenced, nullptr, inline_r, &inline_d);
  pipeline::compute_signals(**s, facts, (*s)->referenced, &pool, pooled_r, &pooled_d);
  ASSERT_EQ(inline_r.all().size(), pooled_r.all().size());
  for (const auto& [key, r] : inline_r.all()) {
    SCOPED_TRACE(key);
    const auto& p = pooled_r.all().at(key);
    EXPECT_EQ(r.matched, p.matched);
    EXPECT_NEAR(r.confidence, p.confidence, 1e-6);
    EXPECT_EQ(r.evidence, p.evidence);
  }
  // Every referenced signal was computed, by the right model.
  for (const char* key :
       {"embedding:greet", "domain:other", "domain:math", "jailbreak:jailbreak", "pii:any"})
    EXPECT_TRUE(inline_r.all().count(key)) << key;
  EXPECT_TRUE(inline_d.analysis.has_domain);
  EXPECT_EQ(inline_d.analysis.embedding.size(), 64u); // the BERT fixture's width, not GloVe's
  // The pattern recogniser's e-mail is among the PII, merged with the model's entities.
  bool email = false;
  for (const auto& e : pooled_d.pii)
    email = email || (e.type == "email" && text.substr(e.begin, e.end - e.begin) == "a@b.co");
  EXPECT_TRUE(email);
}

TEST(Classify, ReportsEverySignalForAMessagesArray) {
  auto cfg = parse(R"(
backends: [{name: b, url: "http://127.0.0.1:9/v1"}]
models: [{name: m, backends: [b]}]
routing: {history: {user_turns: 2}}
signals:
  keywords: [{name: kw, keywords: [integral]}]
  embeddings: [{name: calc, phrases: [compute the integral of a function]}]
  context_length: [{name: short, max_tokens: 100}]
  pii: [{name: mail, types: [email]}]
)");
  auto s = pipeline::build_snapshot(cfg, 1, true);
  ASSERT_TRUE(s) << s.error().message;
  auto [status, body] = pipeline::classify(
      **s, R"({"messages":[{"role":"user","content":"What is the integral of x?"},)"
           R"({"role":"assistant","content":"x^2/2"},)"
           R"({"role":"user","content":"Mail it to me@example.com"}]})");
  ASSERT_EQ(status, 200) << body;
  auto j = nlohmann::json::parse(body);
  // Two user turns are read, as routing.history says.
  EXPECT_TRUE(j["rules"]["keyword:kw"]["matched"].get<bool>()) << body;
  EXPECT_TRUE(j["rules"]["pii:mail"]["matched"].get<bool>());
  EXPECT_TRUE(j["rules"]["context_length:short"]["matched"].get<bool>());
  EXPECT_TRUE(j["rules"].contains("embedding:calc"));
  EXPECT_EQ(j["signals"]["pii"]["entities"][0]["text"], "me@example.com");
  EXPECT_EQ(j["signals"]["pii"]["entities"][0]["type"], "email");
  for (const char* k : {"domain", "complexity", "jailbreak", "language", "embedding"})
    EXPECT_TRUE(j["signals"].contains(k)) << k;
  EXPECT_GT(j["tokens_estimate"].get<int>(), 5);
  // Bad input is an OpenAI-shaped 400.
  auto [bad_status, bad_body] = pipeline::classify(**s, R"({"messages":"nope"})");
  EXPECT_EQ(bad_status, 400);
  EXPECT_NE(bad_body.find("\"invalid_request_error\""), std::string::npos) << bad_body;
}

} // namespace
} // namespace semrouter
