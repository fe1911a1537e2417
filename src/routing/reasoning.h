// Reasoning families: how a model family is told to think or not.
//   qwen3     -> chat_template_kwargs.enable_thinking = true|false
//   deepseek  -> chat_template_kwargs.thinking = true|false
//   gpt-oss   -> reasoning_effort = "low"|"medium"|"high"
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace semrouter::routing {

// One field to set in the request body. `sub` empty: body[key] = value; else body[key][sub].
struct BodyFieldEdit {
  std::string key;
  std::string sub;
  std::string raw_json_value;
};

struct ReasoningPlan {
  // Body fields to set: none when the model has no family or mode is Unset; two sub-keys of
  // chat_template_kwargs when the family takes a thinking budget too.
  std::vector<BodyFieldEdit> edits;
  std::string header; // x-semrouter-reasoning: "on", "off", "on;effort=high;budget=4096", "unset"
};

// `budget_tokens` (0: none) reaches families that take a thinking budget: chat_template_kwargs
// families with a budget_parameter, and thinking (Anthropic) families (at least 1024 there).
ReasoningPlan plan_reasoning(const config::Config& config, const config::ModelConfig& model,
                             config::ReasoningMode mode, const std::string& effort,
                             uint32_t budget_tokens = 0);

// Index of an effort level in signals.reasoning's per-effort tables (low 0, medium 1, high 2;
// anything else, e.g. minimal, counts as low).
int effort_index(std::string_view effort);
// One level down under load: high -> medium -> low -> "" (reasoning off).
std::string step_down(std::string_view effort);

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
