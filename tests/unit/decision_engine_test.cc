#include "routing/decision_engine.h"
#include "routing/reasoning.h"

#include <gtest/gtest.h>

namespace semrouter::routing {
namespace {

using config::RuleNode;

RuleNode sig(const std::string& name) {
  RuleNode n;
  n.kind = RuleNode::Kind::Signal;
  n.signal_type = "keyword";
  n.signal_name = name;
  return n;
}
RuleNode op(RuleNode::Kind kind, std::vector<RuleNode> children) {
  RuleNode n;
  n.kind = kind;
  n.children = std::move(children);
  return n;
}

signals::SignalResults results(std::map<std::string, bool> values) {
  signals::SignalResults r;
  for (const auto& [name, v] : values) {
    signals::SignalResult s;
    s.matched = v;
    s.confidence = v ? 1.0 : 0.0;
    r.set("keyword", name, s);
  }
  return r;
}

TEST(Rules, AndOrNotTruthTable) {
  using K = RuleNode::Kind;
  RuleNode tree = op(K::And, {sig("a"), op(K::Or, {sig("b"), sig("c")}), op(K::Not, {sig("d")})});
  struct Row {
    bool a, b, c, d, expected;
  };
  Row rows[] = {{true, true, false, false, true},
                {true, false, true, false, true},
                {true, false, false, false, false},
                {false, true, true, false, false},
                {true, true, true, true, false}};
  for (const Row& row : rows) {
    auto r = results({{"a", row.a}, {"b", row.b}, {"c", row.c}, {"d", row.d}});
    std::vector<std::string> matched;
    double conf = 0;
    EXPECT_EQ(evaluate_rule(tree, r, matched, conf), row.expected);
    if (row.expected) {
      // Only signals that made the tree true are listed; nothing under NOT.
      for (const auto& m : matched)
        EXPECT_NE(m, "keyword:d");
    }
  }
  // A signal that was never computed counts as false.
  std::vector<std::string> matched;
  double conf = 0;
  EXPECT_FALSE(evaluate_rule(sig("missing"), results({}), matched, conf));
}

config::Config make_config() {
  config::Config c;
  config::ModelConfig m1{"small", "org/small", {{"b", 0}}, "qwen3", {}};
  config::ModelConfig m2{"big", "org/big", {{"b", 0}}, "gpt-oss", {}};
  config::ModelConfig m3{"plain", "plain", {{"b", 0}}, "", {}};
  c.models = {m1, m2, m3};
  c.reasoning_families = config::builtin_reasoning_families();
  config::DecisionConfig low{"low", "", 1, sig("a"), {{"small", 1, config::ReasoningMode::Off, ""}},
                             {}};
  config::DecisionConfig high{
      "high", "", 10, sig("b"), {{"big", 1, config::ReasoningMode::On, "high"}}, {}};
  config::DecisionConfig tie{"tie", "", 10, sig("c"), {{"small", 1, config::ReasoningMode::On, ""}},
                             {}};
  c.decisions = {low, high, tie};
  return c;
}

TEST(DecisionEngine, PriorityThenOrderThenDefault) {
  config::Config c = make_config();
  DecisionEngine engine(c);
  EXPECT_EQ(engine.referenced_signals().size(), 3u);
  EXPECT_TRUE(engine.references_type("keyword"));
  EXPECT_EQ(engine.decide(results({{"a", true}, {"b", true}})).name, "high");
  EXPECT_EQ(engine.decide(results({{"b", true}, {"c", true}})).name,
            "high"); // tie: listed first wins
  EXPECT_EQ(engine.decide(results({{"a", true}})).name, "low");
  DecisionResult none = engine.decide(results({{"a", false}}));
  EXPECT_EQ(none.decision, nullptr);
  EXPECT_EQ(none.name, "default");
  DecisionResult hit = engine.decide(results({{"c", true}}));
  EXPECT_EQ(hit.matched, std::vector<std::string>{"keyword:c"});
  EXPECT_DOUBLE_EQ(hit.confidence, 1.0);
}

TEST(DecisionEngine, WeightedChoiceFollowsWeights) {
  std::vector<config::ModelRefConfig> refs = {{"x", 1, {}, ""}, {"y", 3, {}, ""}, {"z", 0, {}, ""}};
  core::Random random(42);
  std::map<std::string, int> counts;
  for (int i = 0; i < 4000; ++i)
    counts[choose_model(refs, random).model]++;
  EXPECT_EQ(counts["z"], 0);
  EXPECT_NEAR(counts["y"] / 4000.0, 0.75, 0.03);
}

TEST(Reasoning, FamiliesWriteTheirFields) {
  config::Config c = make_config();
  auto on_qwen = plan_reasoning(c, c.models[0], config::ReasoningMode::On, "");
  ASSERT_EQ(on_qwen.edits.size(), 1u);
  EXPECT_EQ(on_qwen.edits[0].key, "chat_template_kwargs");
  EXPECT_EQ(on_qwen.edits[0].sub, "enable_thinking");
  EXPECT_EQ(on_qwen.edits[0].raw_json_value, "true");
  EXPECT_EQ(on_qwen.header, "on");
  auto off_qwen = plan_reasoning(c, c.models[0], config::ReasoningMode::Off, "", 4096);
  ASSERT_EQ(off_qwen.edits.size(), 1u); // no budget when thinking is off
  EXPECT_EQ(off_qwen.edits[0].raw_json_value, "false");
  auto gpt = plan_reasoning(c, c.models[1], config::ReasoningMode::On, "high", 16384);
  ASSERT_EQ(gpt.edits.size(), 1u); // the effort is gpt-oss's budget
  EXPECT_EQ(gpt.edits[0].key, "reasoning_effort");
  EXPECT_EQ(gpt.edits[0].raw_json_value, "\"high\"");
  EXPECT_EQ(gpt.header, "on;effort=high");
  auto gpt_off = plan_reasoning(c, c.models[1], config::ReasoningMode::Off, "");
  EXPECT_EQ(gpt_off.edits[0].raw_json_value, "\"low\"");
  auto plain = plan_reasoning(c, c.models[2], config::ReasoningMode::On, "");
  EXPECT_TRUE(plain.edits.empty());
  EXPECT_EQ(plain.header, "on;family=none");
  auto unset = plan_reasoning(c, c.models[0], config::ReasoningMode::Unset, "");
  EXPECT_TRUE(unset.edits.empty());
  config::Config ds = c;
  ds.models[0].reasoning_family = "deepseek";
  EXPECT_EQ(plan_reasoning(ds, ds.models[0], config::ReasoningMode::On, "").edits[0].sub,
            "thinking");
}

// A thinking budget reaches the families that take one: Qwen3's chat-template kwarg, Anthropic's
// thinking object (at least 1024 tokens; disabled when off); DeepSeek's template has none.
TEST(Reasoning, BudgetsPerFamily) {
  config::Config c = make_config();
  auto qwen = plan_reasoning(c, c.models[0], config::ReasoningMode::On, "medium", 4096);
  ASSERT_EQ(qwen.edits.size(), 2u);
  EXPECT_EQ(qwen.edits[1].key, "chat_template_kwargs");
  EXPECT_EQ(qwen.edits[1].sub, "thinking_budget");
  EXPECT_EQ(qwen.edits[1].raw_json_value, "4096");
  EXPECT_EQ(qwen.header, "on;budget=4096");
  config::Config ds = c;
  ds.models[0].reasoning_family = "deepseek";
  EXPECT_EQ(plan_reasoning(ds, ds.models[0], config::ReasoningMode::On, "", 4096).edits.size(), 1u);
  config::Config an = c;
  an.models[0].reasoning_family = "anthropic";
  auto on = plan_reasoning(an, an.models[0], config::ReasoningMode::On, "low", 512);
  ASSERT_EQ(on.edits.size(), 1u);
  EXPECT_EQ(on.edits[0].key, "thinking");
  EXPECT_EQ(on.edits[0].raw_json_value, "{\"type\":\"enabled\",\"budget_tokens\":1024}");
  EXPECT_EQ(on.header, "on;budget=1024");
  auto off = plan_reasoning(an, an.models[0], config::ReasoningMode::Off, "");
  EXPECT_EQ(off.edits[0].raw_json_value, "{\"type\":\"disabled\"}");
  EXPECT_EQ(step_down("high"), "medium");
  EXPECT_EQ(step_down("medium"), "low");
  EXPECT_EQ(step_down("low"), "");
  EXPECT_EQ(effort_index("high"), 2);
  EXPECT_EQ(effort_index("minimal"), 0);
}

} // namespace
} // namespace semrouter::routing
