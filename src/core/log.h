// Logging goes through spdlog; this header keeps the one place that sets it up.
#pragma once

#include <string_view>

#include <spdlog/spdlog.h>

namespace semrouter::core {

// Sets the global level from a name ("trace", "debug", "info", "warn", "error", "off").
// Returns false if the name is unknown (the level is then left unchanged).
bool set_log_level(std::string_view level);

} // namespace semrouter::core
