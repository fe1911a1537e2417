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

} // namespace semrouter::routing
