#include "routing/reasoning.h"

#include <algorithm>

#include "core/strings.h"

namespace semrouter::routing {

ReasoningPlan plan_reasoning(const config::Config& config, const config::ModelConfig& model,
                             config::ReasoningMode mode, const std::string& effort,
                             uint32_t budget_tokens) {
  ReasoningPlan plan;
  if (mode == config::ReasoningMode::Unset) {
    plan.header = "unset";
    return plan;
  }
  bool on = mode == config::ReasoningMode::On;
  plan.header = on ? "on" : "off";
  if (model.reasoning_family.empty()) {
    plan.header += ";family=none";
    return plan;
  }
  auto it = config.reasoning_families.find(model.reasoning_family);
  if (it == config.reasoning_families.end())
    return plan; // validated at load; defensive
  const config::ReasoningFamilyConfig& fam = it->second;
  if (fam.type == config::ReasoningFamilyType::ChatTemplateKwargs) {
    plan.edits.push_back({"chat_template_kwargs", fam.parameter, on ? "true" : "false"});
    if (on && budget_tokens > 0 && !fam.budget_parameter.empty()) {
      plan.edits.push_back(
          {"chat_template_kwargs", fam.budget_parameter, std::to_string(budget_tokens)});
      plan.header += ";budget=" + std::to_string(budget_tokens);
    }
  } else if (fam.type == config::ReasoningFamilyType::Thinking) {
    // Anthropic's extended thinking: a budget of at least 1024 tokens when enabled.
    constexpr uint32_t kMinThinkingBudget = 1024;
    constexpr uint32_t kDefaultThinkingBudget = 4096;
    if (on) {
      const uint32_t b =
          std::max(kMinThinkingBudget, budget_tokens ? budget_tokens : kDefaultThinkingBudget);
      plan.edits.push_back({fam.parameter, "",
                            "{\"type\":\"enabled\",\"budget_tokens\":" + std::to_string(b) + "}"});
      plan.header += ";budget=" + std::to_string(b);
    } else {
      plan.edits.push_back({fam.parameter, "", "{\"type\":\"disabled\"}"});
    }
  } else {
    std::string value = on ? (effort.empty() ? fam.default_effort : effort) : fam.off_effort;
    plan.edits.push_back({fam.parameter, "", core::json_string(value)});
    plan.header += ";effort=" + value;
  }
  return plan;
}

int effort_index(std::string_view effort) {
  if (effort == "high")
    return 2;
  if (effort == "medium")
    return 1;
  return 0;
}

std::string step_down(std::string_view effort) {
  if (effort == "high")
    return "medium";
  if (effort == "medium")
    return "low";
  return "";
}

const char* effort_for_need(const config::ReasoningSignalConfig& rc, double p_reason) {
  if (p_reason >= rc.high)
    return "high";
  if (p_reason >= rc.medium)
    return "medium";
  return "low";
}

NeedPlan plan_by_need(const config::ReasoningSignalConfig& rc, const config::ModelRefConfig& ref,
                      double p_reason) {
  NeedPlan plan;
  const double threshold = ref.need_threshold > 0 ? ref.need_threshold : rc.threshold;
  if (p_reason < threshold)
    return plan;
  plan.mode = config::ReasoningMode::On;
  plan.effort = ref.effort.empty() ? effort_for_need(rc, p_reason) : ref.effort;
  return plan;
}

} // namespace semrouter::routing
