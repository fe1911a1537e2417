// Reasoning families: how a model family is told to think or not.
//   qwen3     -> chat_template_kwargs.enable_thinking = true|false
//   deepseek  -> chat_template_kwargs.thinking = true|false
//   gpt-oss   -> reasoning_effort = "low"|"medium"|"high"
#pragma once

#include <optional>
#include <string>

#include "config/config.h"

namespace semrouter::routing {

// One field to set in the request body. `sub` empty: body[key] = value; else body[key][sub].
struct BodyFieldEdit {
  std::string key;
  std::string sub;
  std::string raw_json_value;
};

struct ReasoningPlan {
  std::optional<BodyFieldEdit>
      edit;           // nothing to change when the model has no family or mode is Unset
  std::string header; // value of x-semrouter-reasoning: "on", "off", "on;effort=high", "unset"
};

ReasoningPlan plan_reasoning(const config::Config& config, const config::ModelConfig& model,
                             config::ReasoningMode mode, const std::string& effort);

// The effort level for a reasoning need P(reason): "low", "medium" or "high" by
// signals.reasoning's effort thresholds.
const char* effort_for_need(const config::ReasoningSignalConfig& rc, double p_reason);

// `reasoning: auto`: the mode and effort a model reference gets for a reasoning need (the
// reference's own threshold, else signals.reasoning.threshold; its own effort, else by need).
struct NeedPlan {
  config::ReasoningMode mode = config::ReasoningMode::Off;
  std::string effort;
};
NeedPlan plan_by_need(const config::ReasoningSignalConfig& rc, const config::ModelRefConfig& ref,
                      double p_reason);

} // namespace semrouter::routing
