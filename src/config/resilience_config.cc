// The `resilience` section, and each backend's circuit_breaker / health_check overrides (read
// here, after the section, so a backend's partial override inherits the rest).
#include "config/yaml_node.h"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace semrouter::config::detail {
namespace {

constexpr int64_t kMaxMs = 3600000; // an hour: every duration's upper bound

uint32_t get_u32(const Node& n, const char* key, uint32_t def, int64_t min, int64_t max) {
  return static_cast<uint32_t>(n.get_int(key, def, min, max));
}

CircuitBreakerConfig parse_circuit_breaker(const Node& n, CircuitBreakerConfig b) {
  n.require_map();
  n.check_keys({"max_connections", "max_pending", "max_requests"});
  b.max_connections = get_u32(n, "max_connections", b.max_connections, 1, 1000000);
  b.max_pending = get_u32(n, "max_pending", b.max_pending, 1, 1000000);
  b.max_requests = get_u32(n, "max_requests", b.max_requests, 1, 1000000);
  return b;
}

std::string parse_health_path(const Node& n, const char* key, const std::string& def) {
  std::string path = n.get_string(key, def);
  if (path.empty() || path[0] != '/')
    fail(n[key].path(), "\"" + path + "\" is not a path (it starts with /, e.g. /health)");
  return path;
}

} // namespace

void parse_resilience(const Node& root, Config& c) {
  ResilienceConfig& r = c.resilience;
  if (root.has("resilience")) {
    Node n = root["resilience"];
    n.require_map();
    n.check_keys({"retries", "outlier_detection", "health_checks", "circuit_breaker", "limits"});
    if (n.has("retries")) {
      Node t = n["retries"];
      t.require_map();
      t.check_keys({"max_retries", "backoff_ms", "max_backoff_ms", "max_retry_after_ms",
                    "budget_percent", "min_retry_concurrency"});
      RetryConfig& x = r.retries;
      x.max_retries = get_u32(t, "max_retries", x.max_retries, 0, 10);
      x.backoff_ms = get_u32(t, "backoff_ms", x.backoff_ms, 0, kMaxMs);
      x.max_backoff_ms = get_u32(t, "max_backoff_ms", x.max_backoff_ms, 0, kMaxMs);
      if (x.max_backoff_ms < x.backoff_ms)
        fail(t["max_backoff_ms"].path(), "is below backoff_ms (" + std::to_string(x.backoff_ms) +
                                             "): the first wait would exceed the longest");
      x.max_retry_after_ms = get_u32(t, "max_retry_after_ms", x.max_retry_after_ms, 0, kMaxMs);
      x.budget_percent = t.get_double("budget_percent", x.budget_percent, 0, 100);
      x.min_retry_concurrency =
          get_u32(t, "min_retry_concurrency", x.min_retry_concurrency, 0, 1000000);
    }
    if (n.has("outlier_detection")) {
      Node o = n["outlier_detection"];
      o.require_map();
      o.check_keys(
          {"consecutive_failures", "base_ejection_ms", "max_ejection_ms", "max_ejected_percent"});
      OutlierConfig& x = r.outlier;
      x.consecutive_failures = get_u32(o, "consecutive_failures", x.consecutive_failures, 0, 1000);
      x.base_ejection_ms = get_u32(o, "base_ejection_ms", x.base_ejection_ms, 1, kMaxMs);
      x.max_ejection_ms = get_u32(o, "max_ejection_ms", x.max_ejection_ms, 1, kMaxMs);
      if (x.max_ejection_ms < x.base_ejection_ms)
        fail(o["max_ejection_ms"].path(),
             "is below base_ejection_ms (" + std::to_string(x.base_ejection_ms) + ")");
      x.max_ejected_percent = o.get_double("max_ejected_percent", x.max_ejected_percent, 0, 100);
    }
    if (n.has("health_checks")) {
      Node h = n["health_checks"];
      h.require_map();
      h.check_keys(
          {"interval_ms", "timeout_ms", "path", "unhealthy_threshold", "healthy_threshold"});
      HealthCheckConfig& x = r.health_checks;
      x.interval_ms = get_u32(h, "interval_ms", x.interval_ms, 0, kMaxMs);
      if (x.interval_ms > 0 && x.interval_ms < 100)
        fail(h["interval_ms"].path(), "is below 100 ms: checks that often load the backends "
                                      "more than they tell (0 turns checks off)");
      x.timeout_ms = get_u32(h, "timeout_ms", x.timeout_ms, 1, kMaxMs);
      x.path = parse_health_path(h, "path", x.path);
      x.unhealthy_threshold = get_u32(h, "unhealthy_threshold", x.unhealthy_threshold, 1, 100);
      x.healthy_threshold = get_u32(h, "healthy_threshold", x.healthy_threshold, 1, 100);
    }
    if (n.has("circuit_breaker"))
      r.circuit_breaker = parse_circuit_breaker(n["circuit_breaker"], r.circuit_breaker);
    if (n.has("limits")) {
      Node l = n["limits"];
      l.require_map();
      l.check_keys({"max_concurrent", "max_queue", "queue_timeout_ms", "deadline_header"});
      LimitsConfig& x = r.limits;
      x.max_concurrent = get_u32(l, "max_concurrent", x.max_concurrent, 0, 1000000);
      x.max_queue = get_u32(l, "max_queue", x.max_queue, 0, 1000000);
      x.queue_timeout_ms = get_u32(l, "queue_timeout_ms", x.queue_timeout_ms, 0, kMaxMs);
      x.deadline_header = core::ascii_lower(l.get_string("deadline_header", x.deadline_header));
      const bool token =
          !x.deadline_header.empty() &&
          std::all_of(x.deadline_header.begin(), x.deadline_header.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) ||
                   std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
          });
      if (!token)
        fail(l["deadline_header"].path(),
             "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~), e.g. "
             "x-semrouter-deadline-ms");
    }
  }
  // Each backend's overrides (the loader has checked the backends' keys and names).
  for (BackendConfig& b : c.backends) {
    b.circuit_breaker = r.circuit_breaker;
    b.health_check_path = r.health_checks.path;
  }
  if (!root.has("backends") || !root["backends"].is_seq())
    return;
  Node list = root["backends"];
  for (size_t i = 0; i < list.size() && i < c.backends.size(); ++i) {
    Node b = list.at(i);
    BackendConfig& bc = c.backends[i];
    if (b.has("circuit_breaker")) {
      bc.circuit_breaker = parse_circuit_breaker(b["circuit_breaker"], r.circuit_breaker);
      bc.circuit_breaker_set = true;
    }
    if (b.has("health_check")) {
      Node h = b["health_check"];
      h.require_map();
      h.check_keys({"enabled", "path"});
      bc.health_check_enabled = h.get_bool("enabled", true);
      bc.health_check_path = parse_health_path(h, "path", r.health_checks.path);
    }
  }
}

} // namespace semrouter::config::detail
