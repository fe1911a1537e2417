#include "pipeline/pipeline.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

} // namespace
} // namespace semrouter::pipeline
