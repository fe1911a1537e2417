#include "routing/reasoning.h"

#include "core/strings.h"

namespace semrouter::routing {

ReasoningPlan plan_reasoning(const config::Config& config, const config::ModelConfig& model,
                             config::ReasoningMode mode, const std::string& effort) {
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
    plan.edit = BodyFieldEdit{"chat_template_kwargs", fam.parameter, on ? "true" : "false"};
  } else {
    std::string value = on ? (effort.empty() ? fam.default_effort : effort) : fam.off_effort;
    plan.edit = BodyFieldEdit{fam.parameter, "", core::json_string(value)};
    plan.header += ";effort=" + value;
  }
  return plan;
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
