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

} // namespace
} // namespace semrouter::pipeline
