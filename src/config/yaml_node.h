// Internal to the config module: a YAML node that knows its key path, and the helpers every
// section parser shares, so each error names the key and the reason. yaml-cpp stays behind this
// header; only the config module's .cc files include it.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "config/config.h"
#include "core/strings.h"

namespace semrouter::config::detail {

// Thrown only by the config parsers (loader.cc and the section files) and caught by
// parse_config.
struct ConfigError {
  std::string message;
};

[[noreturn]] inline void fail(const std::string& path, const std::string& reason) {
  throw ConfigError{path.empty() ? reason : path + ": " + reason};
}

inline std::string child_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

inline std::string index_path(const std::string& parent, size_t i) {
  return fmt::format("{}[{}]", parent, i);
}

// Expands ${VAR} and ${VAR:-default} from the environment in a scalar.
inline std::string expand_env(const std::string& path, const std::string& in) {
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    if (in[i] == '$' && i + 1 < in.size() && in[i + 1] == '{') {
      size_t end = in.find('}', i + 2);
      if (end == std::string::npos)
        fail(path, "unterminated ${...} in \"" + in + "\"");
      std::string expr = in.substr(i + 2, end - i - 2);
      std::string name = expr, fallback;
      bool has_default = false;
      if (auto pos = expr.find(":-"); pos != std::string::npos) {
        name = expr.substr(0, pos);
        fallback = expr.substr(pos + 2);
        has_default = true;
      }
      const char* value = std::getenv(name.c_str());
      if (value && *value) {
        out += value;
      } else if (has_default) {
        out += fallback;
      } else {
        fail(path, "environment variable " + name + " is not set (write ${" + name +
                       ":-default} to give a default)");
      }
      i = end + 1;
    } else {
      out += in[i++];
    }
  }
  return out;
}

// JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
inline bool is_json_number(const std::string& v) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])))
      ++i;
    return i > start;
  };
  if (i < v.size() && v[i] == '-')
    ++i;
  if (i < v.size() && v[i] == '0')
    ++i;
  else if (!digits())
    return false;
  if (i < v.size() && v[i] == '.') {
    ++i;
    if (!digits())
      return false;
  }
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '+' || v[i] == '-'))
      ++i;
    if (!digits())
      return false;
  }
  return i == v.size();
}

// A YAML node with the key path that led to it, and the keys that were read from it.
class Node {
public:
  Node(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  bool is_map() const { return node_.IsMap(); }
  bool is_seq() const { return node_.IsSequence(); }
  bool is_scalar() const { return node_.IsScalar(); }
  bool defined() const { return node_.IsDefined() && !node_.IsNull(); }
  size_t size() const { return node_.size(); }

  void require_map() const {
    if (!node_.IsMap())
      fail(path_, "expected a mapping (key: value pairs)");
  }
  void require_seq() const {
    if (!node_.IsSequence())
      fail(path_, "expected a list");
  }

  bool has(const std::string& key) const {
    return node_.IsMap() && node_[key].IsDefined() && !node_[key].IsNull();
  }
  Node operator[](const std::string& key) const { return Node(node_[key], child_path(path_, key)); }
  Node at(size_t i) const { return Node(node_[i], index_path(path_, i)); }

  std::string as_string() const {
    if (!node_.IsScalar())
      fail(path_, "expected a string");
    return expand_env(path_, node_.Scalar());
  }
  std::string get_string(const std::string& key, const std::string& def) const {
    return has(key) ? (*this)[key].as_string() : def;
  }
  std::string require_string(const std::string& key) const {
    if (!has(key))
      fail(child_path(path_, key), "is required");
    std::string v = (*this)[key].as_string();
    if (v.empty())
      fail(child_path(path_, key), "must not be empty");
    return v;
  }
  bool as_bool() const {
    std::string s = core::ascii_lower(as_string());
    if (s == "true" || s == "yes" || s == "on")
      return true;
    if (s == "false" || s == "no" || s == "off")
      return false;
    fail(path_, "expected true or false, got \"" + node_.Scalar() + "\"");
  }
  bool get_bool(const std::string& key, bool def) const {
    return has(key) ? (*this)[key].as_bool() : def;
  }
  int64_t as_int(int64_t min, int64_t max) const {
    std::string s = as_string();
    int64_t v = 0;
    try {
      size_t used = 0;
      v = std::stoll(s, &used);
      if (used != s.size())
        throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail(path_, "expected an integer, got \"" + s + "\"");
    }
    if (v < min || v > max)
      fail(path_, fmt::format("must be between {} and {}, got {}", min, max, v));
    return v;
  }
  int64_t get_int(const std::string& key, int64_t def, int64_t min, int64_t max) const {
    return has(key) ? (*this)[key].as_int(min, max) : def;
  }
  double as_double(double min, double max) const {
    std::string s = as_string();
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(s, &used);
      if (used != s.size())
        throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail(path_, "expected a number, got \"" + s + "\"");
    }
    if (!(v >= min && v <= max))
      fail(path_, fmt::format("must be between {} and {}, got {}", min, max, v));
    return v;
  }
  double get_double(const std::string& key, double def, double min, double max) const {
    return has(key) ? (*this)[key].as_double(min, max) : def;
  }
  std::vector<std::string> string_list(const std::string& key) const {
    std::vector<std::string> out;
    if (!has(key))
      return out;
    Node list = (*this)[key];
    if (list.is_scalar())
      return {list.as_string()};
    list.require_seq();
    for (size_t i = 0; i < list.size(); ++i)
      out.push_back(list.at(i).as_string());
    return out;
  }
  // Fails on any key not in `known`: typos must not be silently ignored. Fails on a repeated
  // key too: YAML forbids it, and the first block would win while the later one, never read,
  // was what its author meant.
  void check_keys(std::initializer_list<const char*> known) const {
    if (!node_.IsMap())
      return;
    std::vector<std::string> seen;
    for (const auto& kv : node_) {
      std::string key = kv.first.Scalar();
      if (std::find(seen.begin(), seen.end(), key) != seen.end())
        fail(path_, "duplicate key \"" + key + "\" (YAML keys must be unique)");
      seen.push_back(key);
      bool ok = false;
      for (const char* k : known)
        ok = ok || key == k;
      if (!ok) {
        std::vector<std::string> names(known.begin(), known.end());
        fail(path_, "unknown key \"" + key + "\" (known: " + core::join(names, ", ") + ")");
      }
    }
  }
  // An enumerated value: `key` (or `def` when absent) must be one of `choices`; otherwise
  // `path.key: unknown key "v" (known: a, b)`.
  template <typename E>
  E get_choice(const std::string& key, const std::string& def,
               std::initializer_list<std::pair<const char*, E>> choices) const {
    std::string v = get_string(key, def);
    std::vector<std::string> names;
    for (const auto& [name, value] : choices) {
      if (v == name)
        return value;
      names.push_back(name);
    }
    fail(child_path(path_, key),
         "unknown " + key + " \"" + v + "\" (known: " + core::join(names, ", ") + ")");
  }
  // The node as a raw JSON value: plain scalars that read as JSON literals (numbers, true, false,
  // null) stay literals; everything else scalar is a string; lists and mappings recurse.
  // Aliases make a YAML graph cyclic (`&a [*a]`) or exponentially large (anchors repeating
  // anchors), so depth and size are bounded: beyond them it is an error, not a stack overflow.
  static constexpr int kMaxJsonDepth = 64;
  static constexpr size_t kMaxJsonBytes = 64 << 10; // a generous request field
  std::string to_json(int depth = 0) const {
    if (depth > kMaxJsonDepth)
      fail(path_, fmt::format("nested more than {} levels deep (an alias inside its own anchor?)",
                              kMaxJsonDepth));
    if (!defined())
      return "null";
    if (node_.IsScalar()) {
      std::string v = as_string();
      if (node_.Tag() != "!") {
        if (v == "true" || v == "false" || v == "null")
          return v;
        if (is_json_number(v))
          return v;
        if (v.size() > 1 && v[0] == '.' && is_json_number("0" + v))
          return "0" + v; // YAML's .5
      }
      return core::json_string(v);
    }
    std::string out;
    if (node_.IsSequence()) {
      out = "[";
      for (size_t i = 0; i < size(); ++i) {
        out += (i ? "," : "") + at(i).to_json(depth + 1);
        check_json_size(out);
      }
      return out + "]";
    }
    out = "{";
    bool first = true;
    for (const std::string& k : keys()) {
      out += first ? "" : ",";
      first = false;
      out += core::json_string(k) + ":" + (*this)[k].to_json(depth + 1);
      check_json_size(out);
    }
    return out + "}";
  }
  void check_json_size(const std::string& json) const {
    if (json.size() > kMaxJsonBytes)
      fail(path_,
           fmt::format("more than {} bytes as JSON (aliases repeating anchors?)", kMaxJsonBytes));
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& kv : node_)
      out.push_back(kv.first.Scalar());
    return out;
  }

private:
  YAML::Node node_;
  std::string path_;
};

// A listener's address (an IP address) and port; with `allow_tls`, also its `tls` key (read by
// the caller).
ListenerConfig parse_listener(const Node& n, ListenerConfig def, bool allow_tls);

// Section parsers that live in their own files (one file per config section).
// extproc_config.cc: `listeners.extproc`, the `extproc` section and `server.mode`.
void parse_extproc(const Node& root, Config& c);
// cache_config.cc: the `cache` and `tools` sections, and plugins.cache / plugins.tools.
void parse_cache(const Node& root, Config& c);
// A Redis server's address from a section's `url` (redis://host[:port][/db], IPv6 in brackets,
// no password) and `password_env`; `section` names the section in errors ("cache.redis").
struct RedisEndpoint {
  std::string host;
  uint16_t port = 6379;
  uint32_t db = 0;
  std::string password;
};
RedisEndpoint parse_redis_endpoint(const Node& r, const std::string& section);
void parse_cache_plugin(const Node& n, CachePluginConfig& p);
void parse_tools_plugin(const Node& n, ToolsPluginConfig& p);
// auth_config.cc: the `auth` section (client API keys, budgets, the admin token).
void parse_auth(const Node& root, Config& c);
// resilience_config.cc: the `resilience` section and each backend's circuit_breaker and
// health_check.
void parse_resilience(const Node& root, Config& c);
// dashboard_config.cc: the `dashboard` section.
void parse_dashboard(const Node& root, Config& c);
// observability_config.cc: the `tracing` and `access_log` sections.
void parse_observability(const Node& root, Config& c);

} // namespace semrouter::config::detail
