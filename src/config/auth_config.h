// The `auth` section: client API keys (hashed), their limits and budgets, and the admin token.
// Parsed by auth_config.cc; enforced by the auth module.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace semrouter::config {

// One client API key. The key itself never appears in the config: only its SHA-256.
struct ApiKeyConfig {
  std::string name;                   // shown in metrics, logs and the admin API
  std::string sha256;                 // lower-case hex SHA-256 of the key
  std::vector<std::string> models;    // models a request may name or be routed to; empty: all
  std::vector<std::string> decisions; // decisions it may be routed by; empty: all
  uint32_t requests_per_minute = 0;   // 0: unlimited
  uint32_t burst = 0;                 // requests a full bucket holds (0: requests_per_minute)
  uint64_t tokens_per_minute = 0;     // prompt + completion tokens; 0: unlimited
  std::string tenant;                 // cache, sessions and metrics namespace; default: name
  double daily_budget_usd = 0;        // 0: none
  double monthly_budget_usd = 0;      // 0: none
  bool revoked = false;               // still recognised, answered 401 "revoked"
};

// At `spent` (a fraction of the budget), routing degrades with `pressure` (0..1).
struct BudgetStep {
  double spent = 0;
  double pressure = 0;
};

// auth.state_redis: spend kept in Redis, shared by every replica (one total per key and UTC
// period) and kept across restarts. Mirrors cache.redis's keys, plus flush_ms.
struct SpendRedisConfig {
  bool enabled = false; // the section is present
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  uint32_t db = 0;
  std::string password; // resolved from password_env at load time, never in the config text
  std::string prefix = "semrouter:spend:";
  uint32_t timeout_ms = 100;   // per round trip; a slower Redis counts as down
  uint32_t reconnect_ms = 500; // the least time between two connection attempts
  uint32_t flush_ms = 250;     // how often spend is sent to Redis and the shared totals read back
  bool operator==(const SpendRedisConfig&) const = default;
};

struct AuthConfig {
  std::vector<ApiKeyConfig> keys;
  // A YAML file with {keys: [...]} in the same shape, re-read when it changes.
  std::string keys_file;
  std::vector<BudgetStep> degrade{{0.5, 0.25}, {0.75, 0.5}, {0.9, 1.0}};
  // Where spend is kept across restarts ("" : in memory only). At most one of state_file and
  // state_redis is set (the loader refuses both).
  std::string state_file;
  SpendRedisConfig state_redis;
  // The admin port's bearer token, from an environment variable or a file (never the config).
  std::string admin_token_env;
  std::string admin_token_file;
  std::string admin_token; // resolved at load time
  bool enabled() const { return !keys.empty() || !keys_file.empty(); }
};

// Reads a keys file (YAML `{keys: [...]}`, each entry shaped like an `auth.keys` entry) with the
// same checks and messages as the config, prefixed by the path: `PATH: keys[1].sha256: ...`.
// An empty file is an error (it may be caught half-written); `keys: []` is an empty list.
// Errors: NotFound when the file cannot be read, InvalidArgument when it is malformed.
core::StatusOr<std::vector<ApiKeyConfig>> parse_keys_file(const std::string& path);

} // namespace semrouter::config
