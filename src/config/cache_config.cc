// The `cache` and `tools` sections, and a decision's plugins.cache / plugins.tools.
#include <cstdlib>

#include "config/yaml_node.h"

namespace semrouter::config::detail {

RedisEndpoint parse_redis_endpoint(const Node& r, const std::string& section) {
  RedisEndpoint e;
  const std::string url = r.get_string("url", "redis://127.0.0.1:6379");
  const std::string path = r["url"].path();
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme))
    fail(path, "\"" + url + "\" is not a redis:// URL (redis://host:port[/db])");
  std::string rest = url.substr(kScheme.size());
  if (rest.find('@') != std::string::npos)
    fail(path, "must not carry a password: put it in an environment variable and name it in " +
                   section + ".password_env");
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    const std::string db = rest.substr(slash + 1);
    rest.resize(slash);
    if (!db.empty()) {
      char* end = nullptr;
      const long v = std::strtol(db.c_str(), &end, 10);
      if (*end || v < 0 || v > 1023)
        fail(path, "\"" + db + "\" is not a database number");
      e.db = static_cast<uint32_t>(v);
    }
  }
  std::string host = rest;
  long port = 6379;
  const auto colon = rest.rfind(':');
  const bool bracketed = !rest.empty() && rest.front() == '[';
  if (colon != std::string::npos && (!bracketed || rest.find(']') < colon)) {
    if (!bracketed && rest.find(':') != colon)
      fail(path, "an IPv6 address goes in brackets: redis://[::1]:6379");
    host = rest.substr(0, colon);
    char* end = nullptr;
    port = std::strtol(rest.c_str() + colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
      fail(path, "\"" + rest.substr(colon + 1) + "\" is not a port");
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty())
    fail(path, "has no host");
  e.host = std::move(host);
  e.port = static_cast<uint16_t>(port);
  if (r.has("password_env")) {
    const std::string var = r.require_string("password_env");
    const char* v = std::getenv(var.c_str());
    if (!v || !*v)
      fail(r["password_env"].path(), "environment variable " + var + " is not set");
    e.password = v;
  }
  return e;
}

namespace {

void parse_redis(const Node& r, CacheConfig& c) {
  r.require_map();
  r.check_keys({"url", "password_env", "prefix", "timeout_ms", "reconnect_ms"});
  RedisEndpoint e = parse_redis_endpoint(r, "cache.redis");
  c.redis_host = std::move(e.host);
  c.redis_port = e.port;
  c.redis_db = e.db;
  c.redis_password = std::move(e.password);
  c.redis_prefix = r.get_string("prefix", c.redis_prefix);
  if (c.redis_prefix.empty())
    fail(r["prefix"].path(), "must not be empty");
  c.redis_timeout_ms = static_cast<uint32_t>(r.get_int("timeout_ms", c.redis_timeout_ms, 1, 60000));
  c.redis_reconnect_ms =
      static_cast<uint32_t>(r.get_int("reconnect_ms", c.redis_reconnect_ms, 1, 3600000));
}

void check_tenant_source(const Node& n, const std::string& s) {
  if (s == "api_key" || s == "user")
    return;
  if (s.starts_with("header:") && s.size() > 7) {
    for (char ch : s.substr(7))
      if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
        fail(n.path(), "\"" + s + "\": the header name must be lower case (letters, digits, '-')");
    return;
  }
  fail(n.path(), "unknown tenant source \"" + s + "\" (known: header:<name>, api_key, user)");
}

} // namespace

void parse_cache_plugin(const Node& n, CachePluginConfig& p) {
  p.set = true;
  if (n.is_scalar()) { // plugins: {cache: off}
    p.enabled = n.as_bool();
    return;
  }
  n.require_map();
  n.check_keys({"enabled", "similarity", "ttl_s"});
  p.enabled = n.get_bool("enabled", true);
  p.similarity = n.get_double("similarity", 0, 0.5, 1.0);
  p.ttl_s = static_cast<uint32_t>(n.get_int("ttl_s", 0, 1, 365LL * 86400));
}

void parse_tools_plugin(const Node& n, ToolsPluginConfig& p) {
  p.set = true;
  if (n.is_scalar()) {
    p.enabled = n.as_bool();
    return;
  }
  n.require_map();
  n.check_keys(
      {"enabled", "max_tools", "top_k", "min_similarity", "fallback", "always", "allow", "block"});
  p.enabled = n.get_bool("enabled", true);
  p.max_tools = static_cast<uint32_t>(n.get_int("max_tools", p.max_tools, 0, 100000));
  p.top_k = static_cast<uint32_t>(n.get_int("top_k", p.top_k, 1, 100000));
  if (p.top_k > p.max_tools && n.has("max_tools"))
    fail(n["top_k"].path(), fmt::format("({}) must not exceed max_tools ({}): filtering would "
                                        "keep more tools than it starts from",
                                        p.top_k, p.max_tools));
  p.min_similarity = n.get_double("min_similarity", p.min_similarity, -1.0, 1.0);
  p.fallback = n.get_choice<ToolsFallback>(
      "fallback", "keep_all",
      {{"keep_all", ToolsFallback::KeepAll}, {"keep_top_k", ToolsFallback::KeepTopK}});
  p.always = n.string_list("always");
  p.allow = n.string_list("allow");
  p.block = n.string_list("block");
  for (const auto& b : p.block)
    for (const auto& a : p.always)
      if (a == b)
        fail(n["always"].path(), "\"" + a + "\" is also in block");
}

void parse_cache(const Node& root, Config& c) {
  if (root.has("tools"))
    parse_tools_plugin(root["tools"], c.tools);
  if (!root.has("cache"))
    return;
  Node n = root["cache"];
  n.require_map();
  n.check_keys({"enabled", "backend", "similarity", "short_words", "short_similarity", "max_words",
                "ttl_s", "max_entries", "max_bytes", "eviction", "hnsw", "tenant",
                "max_temperature", "cache_tool_calls", "bypass_header", "verify", "redis"});
  CacheConfig& cc = c.cache;
  cc.enabled = n.get_bool("enabled", true);
  cc.backend = n.get_choice<CacheBackend>(
      "backend", "memory", {{"memory", CacheBackend::Memory}, {"redis", CacheBackend::Redis}});
  cc.similarity = n.get_double("similarity", cc.similarity, 0.5, 1.0);
  cc.short_words = static_cast<uint32_t>(n.get_int("short_words", cc.short_words, 0, 1000));
  cc.short_similarity = n.get_double("short_similarity", cc.short_similarity, 0.5, 1.0);
  cc.max_words = static_cast<uint32_t>(n.get_int("max_words", cc.max_words, 1, 100000));
  cc.ttl_s = static_cast<uint32_t>(n.get_int("ttl_s", cc.ttl_s, 1, 365LL * 86400));
  cc.max_entries = static_cast<uint64_t>(n.get_int("max_entries", 10000, 1, 1LL << 32));
  cc.max_bytes = static_cast<uint64_t>(n.get_int("max_bytes", 64LL << 20, 4096, 1LL << 40));
  cc.eviction = n.get_choice<CacheEviction>(
      "eviction", "lru",
      {{"lru", CacheEviction::Lru}, {"lfu", CacheEviction::Lfu}, {"fifo", CacheEviction::Fifo}});
  if (n.has("hnsw")) {
    Node h = n["hnsw"];
    h.require_map();
    h.check_keys({"min_entries", "m", "ef_construction", "ef_search"});
    cc.hnsw_min_entries =
        static_cast<uint32_t>(h.get_int("min_entries", cc.hnsw_min_entries, 64, 1LL << 30));
    cc.hnsw_m = static_cast<uint32_t>(h.get_int("m", cc.hnsw_m, 2, 128));
    cc.hnsw_ef_construction =
        static_cast<uint32_t>(h.get_int("ef_construction", cc.hnsw_ef_construction, 8, 4096));
    cc.hnsw_ef_search = static_cast<uint32_t>(h.get_int("ef_search", cc.hnsw_ef_search, 1, 4096));
  }
  if (n.has("tenant")) {
    cc.tenant = n.string_list("tenant");
    for (size_t i = 0; i < cc.tenant.size(); ++i)
      check_tenant_source(n["tenant"].is_seq() ? n["tenant"].at(i) : n["tenant"], cc.tenant[i]);
  }
  cc.max_temperature = n.get_double("max_temperature", cc.max_temperature, 0, 2);
  cc.cache_tool_calls = n.get_bool("cache_tool_calls", cc.cache_tool_calls);
  cc.bypass_header = core::ascii_lower(n.get_string("bypass_header", cc.bypass_header));
  if (n.has("verify")) {
    Node v = n["verify"];
    if (v.is_scalar()) {
      cc.verify = v.as_bool();
    } else {
      v.require_map();
      v.check_keys({"enabled", "word_similarity", "rare_weight"});
      cc.verify_rare_weight = v.get_double("rare_weight", cc.verify_rare_weight, 0, 1);
      cc.verify = v.get_bool("enabled", true);
      cc.verify_word_similarity = v.get_double("word_similarity", cc.verify_word_similarity, 0, 1);
    }
  }
  if (n.has("redis"))
    parse_redis(n["redis"], cc);
  else if (cc.backend == CacheBackend::Redis)
    fail(n["backend"].path(), "redis needs cache.redis {url: redis://host:port}");
}

} // namespace semrouter::config::detail
