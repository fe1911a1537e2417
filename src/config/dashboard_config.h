// The `dashboard` section: the admin port's dashboard (pages, JSON APIs, the event stream) and
// the activity the router keeps for it (recent decisions, the traffic history). Parsed by
// dashboard_config.cc; read by pipeline/activity.h and the dashboard module.
#pragma once

#include <cstdint>

namespace semrouter::config {

struct DashboardConfig {
  // Serve the dashboard on the admin port and record each request's outcome for it. Off: the
  // dashboard's paths are 404 and nothing is recorded.
  bool enabled = true;
  // Keep each request's latest user text with its outcome, PII-redacted by the recognisers. Off
  // (the default): no prompt text is kept or shown.
  bool show_prompts = false;
  uint32_t prompt_max_chars = 500; // a kept prompt is cut to this many bytes (UTF-8 safe)
  // How many recent decisions the Live page can show (a ring buffer). Read at start.
  uint32_t recent = 1000;
  // The traffic history: one bucket per bucket_s seconds over history_minutes. Read at start.
  uint32_t bucket_s = 10;
  uint32_t history_minutes = 60;
};

} // namespace semrouter::config
