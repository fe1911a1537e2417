// The `auth` section: client API keys (by SHA-256), their limits and budgets, the degrade curve,
// the spend state file and the admin token; and the keys file, whose entries share the parser.
//
// No message here ever shows a key, a hash or the admin token: config errors end up in logs.
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "config/auth_config.h"
#include "config/yaml_node.h"

namespace semrouter::config {
namespace detail {
namespace {

constexpr size_t kSha256HexChars = 64;
constexpr int64_t kMaxRequestsPerMinute = 1'000'000'000;
constexpr int64_t kMaxTokensPerMinute = 1'000'000'000'000;
constexpr double kMaxBudgetUsd = 1e9;
constexpr const char* kHashKeyHint = "`semrouter hash-key` prints it";
constexpr int64_t kMaxRedisTimeoutMs = 60'000;
constexpr int64_t kMaxRedisReconnectMs = 3'600'000;
constexpr int64_t kMinFlushMs = 10;
constexpr int64_t kMaxFlushMs = 60'000;

bool is_hex(const std::string& s) {
  for (char ch : s)
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
      return false;
  return true;
}

ApiKeyConfig parse_api_key(const Node& k) {
  k.require_map();
  // Before check_keys, so that a pasted key gets the hint rather than "unknown key".
  for (const std::string& field : k.keys())
    if (field == "key" || field == "api_key")
      fail(k[field].path(), std::string("must not hold the key itself: put the key's SHA-256 in "
                                        "sha256 instead (") +
                                kHashKeyHint + ")");
  k.check_keys({"name", "sha256", "models", "decisions", "requests_per_minute", "burst",
                "tokens_per_minute", "tenant", "daily_budget_usd", "monthly_budget_usd",
                "revoked"});
  ApiKeyConfig a;
  a.name = k.require_string("name");
  if (!k.has("sha256"))
    fail(child_path(k.path(), "sha256"),
         std::string("is required: the key's SHA-256 in hex (") + kHashKeyHint + ")");
  // The value is never echoed: it may be a key pasted into the wrong field.
  a.sha256 = core::ascii_lower(k["sha256"].as_string());
  if (a.sha256.size() != kSha256HexChars || !is_hex(a.sha256))
    fail(k["sha256"].path(),
         fmt::format("must be the key's SHA-256 as {} hex characters ({}); got {} characters{}",
                     kSha256HexChars, kHashKeyHint, a.sha256.size(),
                     a.sha256.size() == kSha256HexChars ? ", not all hex" : ""));
  a.models = k.string_list("models");
  a.decisions = k.string_list("decisions");
  for (const auto* list : {&a.models, &a.decisions})
    for (const std::string& v : *list)
      if (v.empty())
        fail(child_path(k.path(), list == &a.models ? "models" : "decisions"),
             "must not hold an empty name");
  a.requests_per_minute =
      static_cast<uint32_t>(k.get_int("requests_per_minute", 0, 0, kMaxRequestsPerMinute));
  a.burst = static_cast<uint32_t>(k.get_int("burst", 0, 0, kMaxRequestsPerMinute));
  if (a.burst > 0 && a.requests_per_minute == 0)
    fail(k["burst"].path(), "sizes the requests_per_minute bucket: set requests_per_minute too");
  a.tokens_per_minute =
      static_cast<uint64_t>(k.get_int("tokens_per_minute", 0, 0, kMaxTokensPerMinute));
  a.tenant = k.has("tenant") ? k.require_string("tenant") : a.name;
  a.daily_budget_usd = k.get_double("daily_budget_usd", 0, 0, kMaxBudgetUsd);
  a.monthly_budget_usd = k.get_double("monthly_budget_usd", 0, 0, kMaxBudgetUsd);
  a.revoked = k.get_bool("revoked", false);
  return a;
}

// A list of keys with unique names and unique hashes.
std::vector<ApiKeyConfig> parse_api_keys(const Node& list) {
  list.require_seq();
  std::vector<ApiKeyConfig> keys;
  std::map<std::string, size_t> names, hashes;
  for (size_t i = 0; i < list.size(); ++i) {
    Node item = list.at(i);
    ApiKeyConfig a = parse_api_key(item);
    if (auto [it, added] = names.emplace(a.name, i); !added)
      fail(item["name"].path(), fmt::format("duplicate key name \"{}\" (also {})", a.name,
                                            index_path(list.path(), it->second)));
    if (auto [it, added] = hashes.emplace(a.sha256, i); !added)
      fail(item["sha256"].path(),
           fmt::format("is the same key as {} (\"{}\"): give each client its own key",
                       index_path(list.path(), it->second), keys[it->second].name));
    keys.push_back(std::move(a));
  }
  return keys;
}

std::vector<BudgetStep> parse_degrade(const Node& list) {
  list.require_seq();
  std::vector<BudgetStep> steps;
  for (size_t i = 0; i < list.size(); ++i) {
    Node item = list.at(i);
    item.require_map();
    item.check_keys({"spent", "pressure"});
    for (const char* field : {"spent", "pressure"})
      if (!item.has(field))
        fail(child_path(item.path(), field), "is required (a fraction, 0 to 1)");
    BudgetStep step;
    step.spent = item["spent"].as_double(0, 1);
    step.pressure = item["pressure"].as_double(0, 1);
    if (!steps.empty() && step.spent <= steps.back().spent)
      fail(item["spent"].path(), fmt::format("({}) must be greater than the previous step's ({})",
                                             step.spent, steps.back().spent));
    steps.push_back(step);
  }
  return steps;
}

std::string resolve_admin_token(const Node& n) {
  if (n.has("admin_token_env") && n.has("admin_token_file"))
    fail(n["admin_token_file"].path(), "give admin_token_env or admin_token_file, not both");
  if (n.has("admin_token_env")) {
    const std::string var = n.require_string("admin_token_env");
    const char* value = std::getenv(var.c_str());
    if (!value || !*value)
      fail(n["admin_token_env"].path(),
           "environment variable " + var + " is not set or empty; export it or remove the key");
    return value;
  }
  if (n.has("admin_token_file")) {
    const std::string file = n.require_string("admin_token_file");
    std::ifstream in(file, std::ios::binary);
    if (!in)
      fail(n["admin_token_file"].path(), "cannot read \"" + file + "\"");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string token(core::trim(ss.str()));
    if (token.empty())
      fail(n["admin_token_file"].path(), "\"" + file + "\" is empty");
    return token;
  }
  return "";
}

// auth.state_redis, in cache.redis's shape: url redis://host[:port][/db] (no password in it),
// password_env, prefix, timeout_ms, reconnect_ms; plus flush_ms.
SpendRedisConfig parse_state_redis(const Node& r) {
  r.require_map();
  r.check_keys({"url", "password_env", "prefix", "timeout_ms", "reconnect_ms", "flush_ms"});
  SpendRedisConfig c;
  c.enabled = true;
  RedisEndpoint e = parse_redis_endpoint(r, "auth.state_redis");
  c.host = std::move(e.host);
  c.port = e.port;
  c.db = e.db;
  c.password = std::move(e.password);
  c.prefix = r.get_string("prefix", c.prefix);
  if (c.prefix.empty())
    fail(r["prefix"].path(), "must not be empty");
  c.timeout_ms =
      static_cast<uint32_t>(r.get_int("timeout_ms", c.timeout_ms, 1, kMaxRedisTimeoutMs));
  c.reconnect_ms =
      static_cast<uint32_t>(r.get_int("reconnect_ms", c.reconnect_ms, 1, kMaxRedisReconnectMs));
  c.flush_ms = static_cast<uint32_t>(r.get_int("flush_ms", c.flush_ms, kMinFlushMs, kMaxFlushMs));
  return c;
}

} // namespace

void parse_auth(const Node& root, Config& c) {
  if (!root.has("auth"))
    return;
  Node n = root["auth"];
  n.require_map();
  n.check_keys({"keys", "keys_file", "degrade", "state_file", "state_redis", "admin_token_env",
                "admin_token_file"});
  AuthConfig& a = c.auth;
  if (n.has("keys"))
    a.keys = parse_api_keys(n["keys"]);
  // The keys file is read by the auth module (on start and whenever it changes), not here.
  if (n.has("keys_file"))
    a.keys_file = n.require_string("keys_file");
  if (n.has("degrade"))
    a.degrade = parse_degrade(n["degrade"]);
  if (n.has("state_file"))
    a.state_file = n.require_string("state_file");
  if (n.has("state_redis")) {
    // Two sources of truth for one budget would disagree after the first restart.
    if (n.has("state_file"))
      fail(n["state_redis"].path(),
           "give state_file or state_redis, not both (Redis already keeps spend across restarts)");
    a.state_redis = parse_state_redis(n["state_redis"]);
  }
  if (n.has("admin_token_env"))
    a.admin_token_env = n.require_string("admin_token_env");
  if (n.has("admin_token_file"))
    a.admin_token_file = n.require_string("admin_token_file");
  a.admin_token = resolve_admin_token(n);
}

} // namespace detail

core::StatusOr<std::vector<ApiKeyConfig>> parse_keys_file(const std::string& path) {
  using core::ErrorCode;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return core::make_error(ErrorCode::NotFound, "cannot open keys file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  if (core::trim(text).empty())
    return core::make_error(ErrorCode::InvalidArgument,
                            path + ": is empty (write `keys: []` for no keys)");
  try {
    detail::Node root(YAML::Load(text), "");
    root.require_map();
    root.check_keys({"keys"});
    if (!root.has("keys"))
      detail::fail("keys", "is required (write `keys: []` for no keys)");
    return detail::parse_api_keys(root["keys"]);
  } catch (const detail::ConfigError& e) {
    return core::make_error(ErrorCode::InvalidArgument, path + ": " + e.message);
  } catch (const YAML::Exception& e) {
    return core::make_error(ErrorCode::InvalidArgument,
                            fmt::format("{}: YAML syntax error at line {}, column {}: {}", path,
                                        e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const std::exception& e) {
    return core::make_error(ErrorCode::InvalidArgument, path + ": " + e.what());
  }
}

} // namespace semrouter::config
