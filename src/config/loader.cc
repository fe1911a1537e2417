// YAML -> Config. yaml-cpp throws; everything it can throw is caught here and turned into an
// error that names the key path. Unknown keys are errors too: a typo must not be ignored.
#include <arpa/inet.h>

#include <algorithm>

#include <cctype>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "config/config.h"
#include "config/yaml_node.h"
#include "core/strings.h"

namespace semrouter::config {
namespace {

using namespace detail;

using core::ErrorCode;

// Walks parent[key] as a list of mappings that each have a unique `name` (backends, models,
// keyword signals, decisions) and calls fn(item, name) for each.
template <typename F>
void for_each_named(const Node& parent, const std::string& key, const char* kind,
                    std::initializer_list<const char*> known_keys, std::set<std::string>& names,
                    F&& fn) {
  Node list = parent[key];
  list.require_seq();
  for (size_t i = 0; i < list.size(); ++i) {
    Node item = list.at(i);
    item.require_map();
    item.check_keys(known_keys);
    std::string name = item.require_string("name");
    if (!names.insert(name).second)
      fail(item["name"].path(), std::string("duplicate ") + kind + " \"" + name + "\"");
    fn(item, std::move(name));
  }
}

TimeoutsConfig parse_timeouts(const Node& n) {
  TimeoutsConfig t;
  if (!n.defined())
    return t;
  n.require_map();
  n.check_keys({"connect_ms", "first_byte_ms", "idle_ms", "total_ms"});
  constexpr int64_t kMaxMs = 24LL * 3600 * 1000;
  t.connect_ms = static_cast<uint32_t>(n.get_int("connect_ms", t.connect_ms, 1, kMaxMs));
  t.first_byte_ms = static_cast<uint32_t>(n.get_int("first_byte_ms", t.first_byte_ms, 1, kMaxMs));
  t.idle_ms = static_cast<uint32_t>(n.get_int("idle_ms", t.idle_ms, 1, kMaxMs));
  t.total_ms = static_cast<uint32_t>(n.get_int("total_ms", t.total_ms, 1, kMaxMs));
  return t;
}

void parse_url(const std::string& path, BackendConfig& b) {
  const std::string& url = b.url;
  b.tls = core::starts_with(url, "https://");
  if (!b.tls && !core::starts_with(url, "http://"))
    fail(path, "must start with http:// or https:// (got \"" + url + "\")");
  const uint16_t default_port = b.tls ? 443 : 80;
  std::string rest = url.substr(b.tls ? 8 : 7);
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  // No path at all means the OpenAI convention, /v1 (see upstream_base_path); an explicit "/"
  // means the server root.
  b.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (b.base_path.size() > 1 && b.base_path.back() == '/')
    b.base_path.pop_back();
  if (hostport.empty())
    fail(path, "has no host");
  if (hostport.front() == '[') { // [::1]:8000
    size_t close = hostport.find(']');
    if (close == std::string::npos)
      fail(path, "unterminated IPv6 address");
    b.host = hostport.substr(1, close - 1);
    std::string after = hostport.substr(close + 1);
    b.port = default_port;
    if (!after.empty()) {
      if (after[0] != ':')
        fail(path, "expected :port after the IPv6 address");
      hostport = after.substr(1);
      try {
        int p = std::stoi(hostport);
        if (p < 1 || p > 65535)
          throw std::out_of_range("port");
        b.port = static_cast<uint16_t>(p);
      } catch (const std::exception&) {
        fail(path, "invalid port \"" + hostport + "\"");
      }
    }
    return;
  }
  size_t colon = hostport.rfind(':');
  b.host = hostport.substr(0, colon);
  b.port = default_port;
  if (colon != std::string::npos) {
    std::string port = hostport.substr(colon + 1);
    try {
      size_t used = 0;
      int p = std::stoi(port, &used);
      if (used != port.size() || p < 1 || p > 65535)
        throw std::out_of_range("port");
      b.port = static_cast<uint16_t>(p);
    } catch (const std::exception&) {
      fail(path, "invalid port \"" + port + "\"");
    }
  }
  if (b.host.empty())
    fail(path, "has no host");
}

std::string read_secret_file(const Node& n, const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    fail(n.path(), "cannot read \"" + file + "\"");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string v = ss.str();
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' '))
    v.pop_back();
  if (v.empty())
    fail(n.path(), "\"" + file + "\" is empty");
  return v;
}

// provider, credentials, TLS and the provider's own settings of one backend.
void parse_backend_profile(const Node& b, BackendConfig& bc) {
  if (b.has("api_key"))
    fail(b["api_key"].path(), "keys never go in the config text: put the key in an environment "
                              "variable (api_key_env) or a file (api_key_file)");
  std::string provider = b.get_string("provider", "openai");
  bc.provider_explicit = b.has("provider");
  static const std::pair<const char*, Provider> kProviders[] = {{"openai", Provider::OpenAI},
                                                                {"azure", Provider::Azure},
                                                                {"anthropic", Provider::Anthropic},
                                                                {"vllm", Provider::Vllm},
                                                                {"generic", Provider::Generic}};
  bool known = false;
  for (const auto& [n, p] : kProviders) {
    if (provider == n) {
      bc.provider = p;
      known = true;
    }
  }
  if (!known)
    fail(b["provider"].path(),
         "unknown provider \"" + provider + "\" (known: openai, azure, anthropic, vllm, generic)");
  bc.api_key_env = b.get_string("api_key_env", "");
  bc.api_key_file = b.get_string("api_key_file", "");
  if (!bc.api_key_env.empty() && !bc.api_key_file.empty())
    fail(b["api_key_file"].path(), "give api_key_env or api_key_file, not both");
  if (!bc.api_key_env.empty()) {
    const char* key = std::getenv(bc.api_key_env.c_str());
    if (!key || !*key)
      fail(b["api_key_env"].path(), "environment variable " + bc.api_key_env +
                                        " is not set; export it or remove api_key_env");
    bc.api_key = key;
  } else if (!bc.api_key_file.empty()) {
    bc.api_key = read_secret_file(b["api_key_file"], bc.api_key_file);
  }
  for (char c : bc.api_key) {
    if (c == '\r' || c == '\n' || static_cast<unsigned char>(c) < 0x20)
      fail(b.has("api_key_env") ? b["api_key_env"].path() : b["api_key_file"].path(),
           "the key contains a control character");
  }
  if (b.has("tls")) {
    Node t = b["tls"];
    t.require_map();
    t.check_keys({"ca_file", "client_cert", "client_key", "server_name", "insecure_skip_verify"});
    if (!bc.tls)
      fail(t.path(), "is for https:// backends (the url is http://)");
    BackendTlsConfig& tc = bc.tls_config;
    tc.ca_file = t.get_string("ca_file", "");
    tc.client_cert = t.get_string("client_cert", "");
    tc.client_key = t.get_string("client_key", "");
    tc.server_name = t.get_string("server_name", "");
    tc.insecure_skip_verify = t.get_bool("insecure_skip_verify", false);
    if (tc.client_cert.empty() != tc.client_key.empty())
      fail(t.path(), "client_cert and client_key go together (mutual TLS needs both)");
    for (const char* k : {"ca_file", "client_cert", "client_key"}) {
      std::string f = t.get_string(k, "");
      if (!f.empty() && !std::ifstream(f))
        fail(t[k].path(), "cannot read \"" + f + "\"");
    }
  }
  bc.api_version = b.get_string("api_version", bc.provider == Provider::Azure ? "2024-10-21" : "");
  if (b.has("api_version") && bc.provider != Provider::Azure)
    fail(b["api_version"].path(), "is for provider: azure");
  bc.anthropic_version = b.get_string("anthropic_version", bc.anthropic_version);
  if (b.has("anthropic_version") && bc.provider != Provider::Anthropic)
    fail(b["anthropic_version"].path(), "is for provider: anthropic");
  std::string responses = b.get_string(
      "responses_api",
      bc.provider == Provider::OpenAI || bc.provider == Provider::Azure ? "native" : "translate");
  if (responses != "native" && responses != "translate")
    fail(b["responses_api"].path(), "must be native or translate (got \"" + responses + "\")");
  if (responses == "native" && bc.provider == Provider::Anthropic)
    fail(b["responses_api"].path(), "an anthropic backend does not speak the Responses API");
  bc.native_responses = responses == "native";
}

// Names of the configured signals of each named type (keyword, embedding, pii, context_length,
// metadata), for rule references.
using SignalNames = std::map<std::string, std::set<std::string>>;

constexpr const char* kRuleOperators =
    "and, or, not, keyword, embedding, pii, context_length, metadata, domain, complexity, "
    "reasoning, jailbreak, language, signal+name, or signal+op+value";

RuleNode parse_rule(const Node& n, const SignalNames& names) {
  RuleNode r;
  if (!n.defined())
    fail(n.path(), "empty rule");
  if (n.is_scalar()) {
    std::string s = n.as_string();
    if (s == "always" || s == "true") {
      r.kind = RuleNode::Kind::Always;
      return r;
    }
    fail(n.path(), "a rule is a mapping such as {keyword: NAME}, {and: [...]}, {or: [...]}, "
                   "{not: RULE} or the word always");
  }
  n.require_map();
  const bool threshold_rule = n.has("signal") && (n.has("op") || n.has("value"));
  if (!threshold_rule && n.size() != 1 && !(n.has("signal") && n.has("name") && n.size() == 2))
    fail(n.path(), std::string("a rule node has exactly one operator (") + kRuleOperators +
                       "); got keys: " + core::join(n.keys(), ", "));
  auto children = [&](const char* op, RuleNode::Kind kind) {
    Node list = n[op];
    list.require_seq();
    if (list.size() == 0)
      fail(list.path(), "needs at least one rule");
    r.kind = kind;
    for (size_t i = 0; i < list.size(); ++i)
      r.children.push_back(parse_rule(list.at(i), names));
  };
  auto signal_ref = [&](const std::string& type, const Node& name_node) {
    r.kind = RuleNode::Kind::Signal;
    r.signal_type = type;
    r.signal_name = name_node.as_string();
    if (auto it = names.find(type); it != names.end()) {
      if (!it->second.count(r.signal_name)) {
        std::vector<std::string> known(it->second.begin(), it->second.end());
        std::string section = type == "keyword"     ? "keywords"
                              : type == "embedding" ? "embeddings"
                                                    : type;
        fail(name_node.path(),
             "unknown " + type + " signal \"" + r.signal_name + "\" (known: " +
                 (known.empty() ? "none defined in signals." + section : core::join(known, ", ")) +
                 ")");
      }
    } else if (type == "complexity") {
      if (r.signal_name != "hard" && r.signal_name != "easy")
        fail(name_node.path(), "complexity is \"hard\" or \"easy\", not \"" + r.signal_name + "\"");
    } else if (type == "reasoning") {
      if (r.signal_name != "reason" && r.signal_name != "direct")
        fail(name_node.path(),
             "reasoning is \"reason\" or \"direct\", not \"" + r.signal_name + "\"");
    } else if (type == "jailbreak") {
      if (r.signal_name != "jailbreak" && r.signal_name != "benign")
        fail(name_node.path(),
             "jailbreak is \"jailbreak\" or \"benign\", not \"" + r.signal_name + "\"");
    } else if (type == "domain" || type == "language") {
      // Domain labels come from the classifier (checked when the models are loaded; "other"
      // is the answer below signals.domain.threshold); languages are ISO 639 codes as the
      // language model reports them.
      if (r.signal_name.empty())
        fail(name_node.path(), "must not be empty");
    } else {
      fail(n.path(), "unknown signal type \"" + type +
                         "\" (known: keyword, embedding, pii, context_length, metadata, domain, "
                         "complexity, reasoning, jailbreak, language)");
    }
  };
  if (threshold_rule) {
    // {signal: TYPE, [name: LABEL,] op: ">=", value: 0.7}: a threshold on the signal's score.
    n.check_keys({"signal", "name", "op", "value"});
    r.kind = RuleNode::Kind::Compare;
    r.signal_type = n["signal"].as_string();
    static const std::map<std::string, std::string> kPositive{
        {"reasoning", "reason"}, {"complexity", "hard"}, {"jailbreak", "jailbreak"}};
    static const std::set<std::string> kScored{"reasoning", "complexity", "jailbreak",
                                               "domain",    "language",   "embedding"};
    if (!kScored.count(r.signal_type))
      fail(n["signal"].path(), "a threshold rule reads a scored signal (known: reasoning, "
                               "complexity, jailbreak, domain, language, embedding), not \"" +
                                   r.signal_type + "\"");
    if (n.has("name")) {
      signal_ref(r.signal_type, n["name"]);
      r.kind = RuleNode::Kind::Compare;
    } else if (auto it = kPositive.find(r.signal_type); it != kPositive.end()) {
      r.signal_name = it->second;
    } else {
      fail(n.path(), "a threshold rule on " + r.signal_type + " needs name: (the " +
                         (r.signal_type == "embedding" ? "signal" : "label") + " to score)");
    }
    if (!n.has("op") || !n.has("value"))
      fail(n.path(), "a threshold rule needs both op (>=, >, <=, <) and value");
    std::string op = n["op"].as_string();
    r.op = op == ">="   ? RuleNode::Op::Ge
           : op == ">"  ? RuleNode::Op::Gt
           : op == "<=" ? RuleNode::Op::Le
           : op == "<"  ? RuleNode::Op::Lt
                        : (fail(n["op"].path(), "unknown op \"" + op + "\" (known: >=, >, <=, <)"),
                          RuleNode::Op::Ge);
    r.value = n["value"].as_double(0, 1);
    return r;
  }
  static const std::set<std::string> kSignalOps{
      "keyword", "embedding",  "pii",       "context_length", "metadata",
      "domain",  "complexity", "reasoning", "jailbreak",      "language"};
  if (n.has("and")) {
    children("and", RuleNode::Kind::And);
  } else if (n.has("or")) {
    children("or", RuleNode::Kind::Or);
  } else if (n.has("not")) {
    r.kind = RuleNode::Kind::Not;
    r.children.push_back(parse_rule(n["not"], names));
  } else if (n.has("signal")) {
    if (!n.has("name"))
      fail(n.path(), "a {signal: TYPE} rule also needs name: NAME");
    signal_ref(n["signal"].as_string(), n["name"]);
  } else if (kSignalOps.count(n.keys().front())) {
    std::string type = n.keys().front();
    signal_ref(type, n[type]);
  } else {
    fail(n.path(),
         "unknown rule operator \"" + n.keys().front() + "\" (known: " + kRuleOperators + ")");
  }
  return r;
}

std::string known_list(const std::vector<std::string>& names) {
  return names.empty() ? "none" : core::join(names, ", ");
}

void parse_document(const Node& root, Config& c) {
  root.require_map();
  root.check_keys({"listeners",
                   "server",
                   "auto_model_names",
                   "backends",
                   "models",
                   "reasoning_families",
                   "default_model",
                   "default_decision",
                   "signals",
                   "decisions",
                   "classifiers",
                   "routing",
                   "routers",
                   "extproc",
                   "cache",
                   "tools",
                   "auth",
                   "resilience",
                   "dashboard",
                   "tracing",
                   "access_log"});
  // Cost-quality routers: name -> folder (read before the decisions that name them).
  if (root.has("routers")) {
    Node rs = root["routers"];
    rs.require_map();
    for (const std::string& name : rs.keys()) {
      Node r = rs[name];
      if (r.is_scalar()) {
        c.routers[name] = r.as_string();
      } else {
        r.require_map();
        r.check_keys({"path"});
        c.routers[name] = r.require_string("path");
      }
      if (c.routers[name].empty())
        fail(r.path(), "needs the router's folder");
    }
  }

  if (root.has("listeners")) {
    Node l = root["listeners"];
    l.require_map();
    l.check_keys({"gateway", "admin", "extproc"});
    if (l.has("gateway"))
      c.gateway = parse_listener(l["gateway"], c.gateway, false);
    if (l.has("admin"))
      c.admin = parse_listener(l["admin"], c.admin, false);
  }

  if (root.has("server")) {
    Node s = root["server"];
    s.require_map();
    s.check_keys({"workers", "max_body_bytes", "client_header_timeout_ms", "reload_poll_ms",
                  "random_seed", "log_level", "inference_workers", "mode", "drain_timeout_ms",
                  "drain_delay_ms", "io_uring"});
    c.server.io_uring = s.get_bool("io_uring", c.server.io_uring);
    c.server.drain_delay_ms =
        static_cast<uint32_t>(s.get_int("drain_delay_ms", c.server.drain_delay_ms, 0, 3600000));
    c.server.drain_timeout_ms =
        static_cast<uint32_t>(s.get_int("drain_timeout_ms", c.server.drain_timeout_ms, 0, 3600000));
    c.server.inference_workers =
        static_cast<uint32_t>(s.get_int("inference_workers", c.server.inference_workers, 1, 256));
    c.server.workers = static_cast<uint32_t>(s.get_int("workers", c.server.workers, 1, 256));
    c.server.max_body_bytes = static_cast<uint64_t>(s.get_int(
        "max_body_bytes", static_cast<int64_t>(c.server.max_body_bytes), 1024, 1LL << 32));
    c.server.client_header_timeout_ms = static_cast<uint32_t>(
        s.get_int("client_header_timeout_ms", c.server.client_header_timeout_ms, 1, 3600000));
    c.server.reload_poll_ms =
        static_cast<uint32_t>(s.get_int("reload_poll_ms", c.server.reload_poll_ms, 0, 3600000));
    c.server.random_seed = static_cast<uint64_t>(s.get_int("random_seed", 0, 0, INT64_MAX));
    c.server.log_level = s.get_string("log_level", c.server.log_level);
    static const std::set<std::string> kLevels{"trace", "debug", "info", "warn", "error", "off"};
    if (!kLevels.count(c.server.log_level))
      fail(s["log_level"].path(), "unknown level \"" + c.server.log_level +
                                      "\" (known: trace, debug, info, warn, error, off)");
  }

  if (root.has("auto_model_names")) {
    c.auto_model_names = root.string_list("auto_model_names");
    if (c.auto_model_names.empty())
      fail("auto_model_names", "needs at least one name");
  }

  // Reasoning families: built-ins, then the config's own (which may redefine a built-in).
  c.reasoning_families = builtin_reasoning_families();
  if (root.has("reasoning_families")) {
    Node fams = root["reasoning_families"];
    fams.require_map();
    for (const std::string& name : fams.keys()) {
      Node f = fams[name];
      f.require_map();
      f.check_keys({"type", "parameter", "default_effort", "off_effort", "budget_parameter"});
      ReasoningFamilyConfig fam;
      fam.name = name;
      std::string type = f.require_string("type");
      if (type == "chat_template_kwargs") {
        fam.type = ReasoningFamilyType::ChatTemplateKwargs;
      } else if (type == "reasoning_effort") {
        fam.type = ReasoningFamilyType::ReasoningEffort;
      } else if (type == "thinking") {
        fam.type = ReasoningFamilyType::Thinking;
      } else {
        fail(f["type"].path(), "unknown type \"" + type +
                                   "\" (known: chat_template_kwargs, reasoning_effort, thinking)");
      }
      fam.budget_parameter = f.get_string("budget_parameter", "");
      if (!fam.budget_parameter.empty() && fam.type != ReasoningFamilyType::ChatTemplateKwargs)
        fail(f["budget_parameter"].path(),
             "only chat_template_kwargs families take a budget kwarg (thinking families carry "
             "budget_tokens in their object; reasoning_effort families use the effort)");
      fam.parameter = f.require_string("parameter");
      fam.default_effort = f.get_string("default_effort", fam.default_effort);
      fam.off_effort = f.get_string("off_effort", fam.off_effort);
      c.reasoning_families[name] = fam;
    }
  }

  // Backends.
  std::set<std::string> backend_names;
  if (root.has("backends")) {
    for_each_named(root, "backends", "backend",
                   {"name", "url", "provider", "api_key_env", "api_key_file", "tls", "api_version",
                    "anthropic_version", "responses_api", "weight", "timeouts",
                    "max_idle_connections", "idle_connection_timeout_ms", "liveness_check_after_ms",
                    "api_key", "circuit_breaker", "health_check"},
                   backend_names, [&](const Node& b, std::string name) {
                     BackendConfig bc;
                     bc.name = std::move(name);
                     bc.url = b.require_string("url");
                     parse_url(b["url"].path(), bc);
                     parse_backend_profile(b, bc);
                     bc.weight = static_cast<uint32_t>(b.get_int("weight", 1, 1, 1000000));
                     bc.timeouts = parse_timeouts(b["timeouts"]);
                     bc.max_idle_connections = static_cast<uint32_t>(
                         b.get_int("max_idle_connections", bc.max_idle_connections, 0, 100000));
                     bc.idle_connection_timeout_ms = static_cast<uint32_t>(b.get_int(
                         "idle_connection_timeout_ms", bc.idle_connection_timeout_ms, 0, 86400000));
                     bc.liveness_check_after_ms = static_cast<uint32_t>(b.get_int(
                         "liveness_check_after_ms", bc.liveness_check_after_ms, 0, 86400000));
                     bc.pool_key = bc.connection_key();
                     c.backends.push_back(std::move(bc));
                   });
  }
  std::vector<std::string> backend_list(backend_names.begin(), backend_names.end());

  // Models.
  std::set<std::string> model_names;
  if (!root.has("models"))
    fail("models", "is required: list at least one model");
  {
    if (root["models"].is_seq() && root["models"].size() == 0)
      fail("models", "list at least one model");
    for_each_named(
        root, "models", "model",
        {"name", "upstream_model", "backends", "reasoning_family", "pricing", "allowed_pii",
         "router_name", "max_concurrent"},
        model_names, [&](const Node& m, std::string name) {
          ModelConfig mc;
          mc.name = std::move(name);
          for (const std::string& auto_name : c.auto_model_names) {
            if (auto_name == mc.name)
              fail(m["name"].path(),
                   "\"" + mc.name + "\" is also an auto model name; pick another");
          }
          mc.upstream_model = m.get_string("upstream_model", mc.name);
          if (!m.has("backends"))
            fail(child_path(m.path(), "backends"), "is required: name at least one backend");
          Node refs = m["backends"];
          if (refs.is_scalar()) {
            mc.backends.push_back({refs.as_string(), 0});
          } else {
            refs.require_seq();
            for (size_t j = 0; j < refs.size(); ++j) {
              Node r = refs.at(j);
              ModelBackendRef ref;
              if (r.is_scalar()) {
                ref.backend = r.as_string();
              } else {
                r.require_map();
                r.check_keys({"name", "weight"});
                ref.backend = r.require_string("name");
                ref.weight = static_cast<uint32_t>(r.get_int("weight", 0, 1, 1000000));
              }
              mc.backends.push_back(ref);
            }
          }
          if (mc.backends.empty())
            fail(m["backends"].path(), "name at least one backend");
          for (size_t j = 0; j < mc.backends.size(); ++j) {
            if (!backend_names.count(mc.backends[j].backend))
              fail(index_path(m["backends"].path(), j),
                   "unknown backend \"" + mc.backends[j].backend +
                       "\" (known: " + known_list(backend_list) + ")");
          }
          mc.reasoning_family = m.get_string("reasoning_family", "");
          // A model served only by Anthropic backends reasons through Anthropic's `thinking`
          // block unless the config says otherwise.
          if (!m.has("reasoning_family") && !mc.backends.empty() &&
              std::all_of(mc.backends.begin(), mc.backends.end(), [&](const auto& mb) {
                for (const auto& b : c.backends)
                  if (b.name == mb.backend)
                    return b.provider == Provider::Anthropic;
                return false;
              }))
            mc.reasoning_family = "anthropic";
          if (!mc.reasoning_family.empty() && !c.reasoning_families.count(mc.reasoning_family)) {
            std::vector<std::string> fams;
            for (const auto& [k, v] : c.reasoning_families)
              fams.push_back(k);
            fail(m["reasoning_family"].path(), "unknown reasoning family \"" + mc.reasoning_family +
                                                   "\" (known: " + core::join(fams, ", ") + ")");
          }
          if (m.has("pricing")) {
            Node p = m["pricing"];
            p.require_map();
            p.check_keys({"input_per_1m", "output_per_1m"});
            mc.pricing.input_per_1m = p.get_double("input_per_1m", 0, 0, 1e9);
            mc.pricing.output_per_1m = p.get_double("output_per_1m", 0, 0, 1e9);
          }
          mc.allowed_pii = m.string_list("allowed_pii");
          mc.router_name = m.get_string("router_name", mc.name);
          mc.max_concurrent = static_cast<uint32_t>(m.get_int("max_concurrent", 0, 0, 1000000));
          c.models.push_back(std::move(mc));
        });
  }
  std::vector<std::string> model_list;
  for (const auto& m : c.models)
    model_list.push_back(m.name);
  auto check_model = [&](const std::string& path, const std::string& name) {
    if (!model_names.count(name))
      fail(path, "unknown model \"" + name + "\" (known: " + known_list(model_list) + ")");
  };

  c.default_model = root.get_string("default_model", c.models.front().name);
  check_model("default_model", c.default_model);

  // Signals.
  SignalNames signal_names;
  for (const char* t : {"keyword", "embedding", "pii", "context_length", "metadata"})
    signal_names[t];
  if (root.has("signals")) {
    Node s = root["signals"];
    s.require_map();
    s.check_keys(
        {"keywords", "embeddings", "pii", "context_length", "metadata", "domain", "reasoning"});
    if (s.has("keywords")) {
      for_each_named(s, "keywords", "keyword signal",
                     {"name", "keywords", "operator", "case_sensitive", "word_boundary", "regex"},
                     signal_names["keyword"], [&](const Node& k, std::string name) {
                       KeywordSignalConfig kc;
                       kc.name = std::move(name);
                       kc.keywords = k.string_list("keywords");
                       if (kc.keywords.empty())
                         fail(child_path(k.path(), "keywords"), "list at least one keyword");
                       for (size_t j = 0; j < kc.keywords.size(); ++j) {
                         if (kc.keywords[j].empty())
                           fail(index_path(k["keywords"].path(), j), "must not be empty");
                       }
                       std::string op = core::ascii_lower(k.get_string("operator", "any"));
                       if (op == "any" || op == "or") {
                         kc.op = KeywordOperator::Any;
                       } else if (op == "all" || op == "and") {
                         kc.op = KeywordOperator::All;
                       } else {
                         fail(k["operator"].path(),
                              "unknown operator \"" + op + "\" (known: any, all)");
                       }
                       kc.case_sensitive = k.get_bool("case_sensitive", false);
                       kc.word_boundary = k.get_bool("word_boundary", true);
                       kc.regex = k.get_bool("regex", false);
                       c.signals.keywords.push_back(std::move(kc));
                     });
    }
    if (s.has("embeddings")) {
      for_each_named(
          s, "embeddings", "embedding signal", {"name", "phrases", "threshold", "aggregation"},
          signal_names["embedding"], [&](const Node& e, std::string name) {
            EmbeddingSignalConfig ec;
            ec.name = std::move(name);
            ec.phrases = e.string_list("phrases");
            if (ec.phrases.empty())
              fail(child_path(e.path(), "phrases"), "list at least one phrase");
            for (size_t j = 0; j < ec.phrases.size(); ++j)
              if (ec.phrases[j].empty())
                fail(index_path(e["phrases"].path(), j), "must not be empty");
            ec.threshold = e.get_double("threshold", ec.threshold, -1, 1);
            ec.aggregation = e.get_choice<EmbeddingAggregation>(
                "aggregation", "max",
                {{"max", EmbeddingAggregation::Max}, {"mean", EmbeddingAggregation::Mean}});
            c.signals.embeddings.push_back(std::move(ec));
          });
    }
    if (s.has("pii")) {
      for_each_named(s, "pii", "pii signal", {"name", "types", "min_score"}, signal_names["pii"],
                     [&](const Node& e, std::string name) {
                       PiiSignalConfig pc;
                       pc.name = std::move(name);
                       pc.types = e.string_list("types");
                       pc.min_score = e.get_double("min_score", pc.min_score, 0, 1);
                       c.signals.pii.push_back(std::move(pc));
                     });
    }
    if (s.has("context_length")) {
      for_each_named(
          s, "context_length", "context_length signal", {"name", "min_tokens", "max_tokens"},
          signal_names["context_length"], [&](const Node& e, std::string name) {
            ContextLengthSignalConfig cc;
            cc.name = std::move(name);
            if (!e.has("min_tokens") && !e.has("max_tokens"))
              fail(e.path(), "give min_tokens, max_tokens or both");
            cc.min_tokens = static_cast<uint64_t>(e.get_int("min_tokens", 0, 0, INT64_MAX));
            cc.max_tokens = static_cast<uint64_t>(e.get_int("max_tokens", INT64_MAX, 0, INT64_MAX));
            if (cc.max_tokens < cc.min_tokens)
              fail(e["max_tokens"].path(), "is below min_tokens");
            c.signals.context_length.push_back(std::move(cc));
          });
    }
    if (s.has("metadata")) {
      for_each_named(
          s, "metadata", "metadata signal", {"name", "header", "user", "tools", "stream", "values"},
          signal_names["metadata"], [&](const Node& e, std::string name) {
            MetadataSignalConfig mc;
            mc.name = std::move(name);
            int kinds = e.has("header") + e.has("user") + e.has("tools") + e.has("stream");
            if (kinds != 1)
              fail(e.path(), "give exactly one of header, user, tools, stream");
            if (e.has("header")) {
              mc.kind = MetadataKind::Header;
              mc.header = core::ascii_lower(e.require_string("header"));
              mc.values = e.string_list("values");
            } else if (e.has("user")) {
              mc.kind = MetadataKind::User;
              mc.values = e.string_list("user");
              if (mc.values.empty())
                fail(e["user"].path(), "list at least one user");
              if (e.has("values"))
                fail(e["values"].path(), "list the users under user: [...]");
            } else {
              if (e.has("values"))
                fail(e["values"].path(), "only header signals take values");
              mc.kind = e.has("tools") ? MetadataKind::Tools : MetadataKind::Stream;
              mc.expected = e.get_bool(e.has("tools") ? "tools" : "stream", true);
            }
            c.signals.metadata.push_back(std::move(mc));
          });
    }
    if (s.has("domain")) {
      Node d = s["domain"];
      d.require_map();
      d.check_keys({"threshold"});
      c.signals.domain_threshold = d.get_double("threshold", 0, 0, 1);
    }
    if (s.has("reasoning")) {
      Node r = s["reasoning"];
      r.require_map();
      r.check_keys({"threshold", "effort", "budget_tokens", "max_tokens"});
      // {low: N, medium: N, high: N}
      auto per_effort = [&](const char* key, uint32_t(&out)[3], int64_t min) {
        if (!r.has(key))
          return;
        Node m = r[key];
        m.require_map();
        m.check_keys({"low", "medium", "high"});
        const char* names[3] = {"low", "medium", "high"};
        for (int i = 0; i < 3; ++i)
          out[i] = static_cast<uint32_t>(m.get_int(names[i], out[i], min, 10000000));
      };
      per_effort("budget_tokens", c.signals.reasoning.budget_tokens, 0);
      per_effort("max_tokens", c.signals.reasoning.max_tokens, 0);
      auto& rc = c.signals.reasoning;
      rc.threshold = r.get_double("threshold", rc.threshold, 0.01, 1);
      if (r.has("effort")) {
        Node e = r["effort"];
        e.require_map();
        e.check_keys({"medium", "high"});
        rc.medium = e.get_double("medium", rc.medium, 0, 1);
        rc.high = e.get_double("high", rc.high, 0, 1);
        if (rc.high < rc.medium)
          fail(e.path(),
               fmt::format("high ({}) must not be below medium ({})", rc.high, rc.medium));
      }
    }
  }

  // Classifiers: which model backs each task.
  if (root.has("classifiers")) {
    Node cl = root["classifiers"];
    cl.require_map();
    cl.check_keys(
        {"dir", "domain", "complexity", "reasoning", "jailbreak", "language", "embeddings", "pii"});
    c.classifiers.dir = cl.get_string("dir", "");
    static const std::map<std::string, std::set<std::string>> kTypes{
        {"domain", {"linear", "transformer"}},
        {"complexity", {"linear", "transformer"}},
        {"reasoning", {"linear", "transformer"}},
        {"jailbreak", {"linear", "transformer"}},
        {"language", {"fasttext", "linear"}},
        {"embeddings", {"word_vectors", "transformer"}},
        {"pii", {"transformer"}}};
    for (const std::string& task : cl.keys()) {
      if (task == "dir")
        continue;
      Node t = cl[task];
      t.require_map();
      t.check_keys({"type", "path", "precision"});
      ClassifierConfig cc;
      cc.task = task;
      cc.type = t.require_string("type");
      const auto& allowed = kTypes.at(task);
      if (!allowed.count(cc.type))
        fail(t["type"].path(),
             "type \"" + cc.type + "\" cannot back " + task + " (known: " +
                 core::join(std::vector<std::string>(allowed.begin(), allowed.end()), ", ") + ")");
      cc.path = t.require_string("path");
      cc.precision = t.get_string("precision", "auto");
      static const std::set<std::string> kPrecisions{"auto", "f32", "bf16", "int8"};
      if (!kPrecisions.count(cc.precision))
        fail(t["precision"].path(),
             "unknown precision \"" + cc.precision + "\" (known: auto, f32, bf16, int8)");
      c.classifiers.tasks[task] = std::move(cc);
    }
  }

  // Load limits with hysteresis (selection.load, reasoning_load).
  auto parse_load = [](const Node& l, bool with_shift) {
    LoadShiftConfig load;
    l.require_map();
    if (with_shift)
      l.check_keys({"max_inflight", "ttft_p95_ms", "shift", "hysteresis"});
    else
      l.check_keys({"max_inflight", "ttft_p95_ms", "hysteresis"});
    load.max_inflight = static_cast<uint32_t>(l.get_int("max_inflight", 0, 0, 1000000));
    load.ttft_p95_ms = static_cast<uint32_t>(l.get_int("ttft_p95_ms", 0, 0, 3600000));
    if (with_shift)
      load.shift = l.get_double("shift", load.shift, 0, 10);
    load.hysteresis = l.get_double("hysteresis", load.hysteresis, 0, 0.95);
    if (!load.enabled())
      fail(l.path(), "give max_inflight, ttft_p95_ms or both");
    return load;
  };

  // A decision's models and plugins (shared by decisions and a mapping default_decision).
  auto parse_targets = [&](const Node& d, DecisionConfig& dc) {
    if (!d.has("models"))
      fail(child_path(d.path(), "models"), "is required: list at least one model");
    Node models = d["models"];
    models.require_seq();
    if (models.size() == 0)
      fail(models.path(), "list at least one model");
    for (size_t j = 0; j < models.size(); ++j) {
      Node m = models.at(j);
      ModelRefConfig ref;
      if (m.is_scalar()) {
        ref.model = m.as_string();
      } else {
        m.require_map();
        m.check_keys({"model", "weight", "reasoning", "effort", "reasoning_threshold"});
        ref.model = m.require_string("model");
        ref.weight = static_cast<uint32_t>(m.get_int("weight", 1, 0, 1000000));
        if (m.has("reasoning")) {
          if (m["reasoning"].as_string() == "auto")
            ref.reasoning = ReasoningMode::ByNeed;
          else
            ref.reasoning = m["reasoning"].as_bool() ? ReasoningMode::On : ReasoningMode::Off;
        }
        if (m.has("reasoning_threshold")) {
          if (ref.reasoning != ReasoningMode::ByNeed)
            fail(m["reasoning_threshold"].path(),
                 "only applies with reasoning: auto (reasoning by need)");
          ref.need_threshold = m.get_double("reasoning_threshold", 0, 0.01, 1);
        }
        ref.effort = m.get_string("effort", "");
        if (!ref.effort.empty()) {
          static const std::set<std::string> kEfforts{"minimal", "low", "medium", "high"};
          if (!kEfforts.count(ref.effort))
            fail(m["effort"].path(),
                 "unknown effort \"" + ref.effort + "\" (known: minimal, low, medium, high)");
          if (ref.reasoning == ReasoningMode::Unset)
            ref.reasoning = ReasoningMode::On;
        }
      }
      check_model(m.is_scalar() ? m.path() : m["model"].path(), ref.model);
      dc.models.push_back(std::move(ref));
    }
    uint64_t total_weight = 0;
    for (const auto& ref : dc.models)
      total_weight += ref.weight;
    if (total_weight == 0)
      fail(models.path(), "at least one model needs a weight above 0");
    if (d.has("selection")) {
      Node sn = d["selection"];
      sn.require_map();
      sn.check_keys({"router", "mode", "strong", "weak", "threshold", "target_strong_share",
                     "window", "target_quality", "lambda", "load"});
      SelectionConfig& sel = dc.selection;
      sel.enabled = true;
      sel.router = sn.require_string("router");
      if (!c.routers.count(sel.router)) {
        std::vector<std::string> known;
        for (const auto& [k, v] : c.routers)
          known.push_back(k);
        fail(sn["router"].path(),
             "unknown router \"" + sel.router + "\" (known: " +
                 (known.empty() ? "none defined in routers" : core::join(known, ", ")) + ")");
      }
      sel.mode = sn.get_choice<SelectionMode>("mode", "threshold",
                                              {{"threshold", SelectionMode::Threshold},
                                               {"cheapest", SelectionMode::Cheapest},
                                               {"utility", SelectionMode::Utility}});
      auto candidate = [&](const char* key) {
        std::string m = sn.require_string(key);
        bool found = false;
        for (const auto& ref : dc.models)
          found = found || ref.model == m;
        if (!found)
          fail(sn[key].path(), "\"" + m + "\" is not one of this decision's models");
        return m;
      };
      if (sel.mode == SelectionMode::Threshold) {
        sel.strong = candidate("strong");
        sel.weak = candidate("weak");
        if (sel.strong == sel.weak)
          fail(sn["weak"].path(), "must differ from strong");
      } else if (dc.models.size() < 2) {
        fail(models.path(), "selection needs at least two models to choose from");
      }
      sel.threshold = sn.get_double("threshold", sel.threshold, -1, 1);
      sel.target_strong_share = sn.get_double("target_strong_share", -1, 0, 1);
      sel.window = static_cast<uint32_t>(sn.get_int("window", sel.window, 50, 1000000));
      sel.target_quality = sn.get_double("target_quality", sel.target_quality, 0, 1);
      sel.lambda = sn.get_double("lambda", sel.lambda, 0, 1e6);
      if (sn.has("load"))
        sel.load = parse_load(sn["load"], true);
    }
    if (d.has("fallback")) {
      // Models to try when the chosen one cannot answer: known, and not already a candidate of
      // the decision's own (those are tried by their own backends).
      Node f = d["fallback"];
      dc.fallback = d.string_list("fallback");
      for (size_t j = 0; j < dc.fallback.size(); ++j) {
        const std::string at = f.is_scalar() ? f.path() : index_path(f.path(), j);
        if (!model_names.count(dc.fallback[j]))
          fail(at, "unknown model \"" + dc.fallback[j] +
                       "\" (known: " + known_list({model_names.begin(), model_names.end()}) + ")");
        for (size_t k = 0; k < j; ++k)
          if (dc.fallback[k] == dc.fallback[j])
            fail(at, "\"" + dc.fallback[j] + "\" is listed twice");
      }
    }
    if (d.has("reasoning_load")) {
      dc.reasoning_load = parse_load(d["reasoning_load"], false);
      bool by_need = false;
      for (const auto& m : dc.models)
        by_need = by_need || m.reasoning == ReasoningMode::ByNeed;
      if (!by_need)
        fail(d["reasoning_load"].path(),
             "steps down the effort of `reasoning: auto` models; this decision has none");
    }
    if (!d.has("plugins"))
      return;
    Node p = d["plugins"];
    p.require_map();
    p.check_keys({"system_prompt", "block", "pii", "headers", "params", "cache", "tools"});
    if (p.has("cache"))
      parse_cache_plugin(p["cache"], dc.plugins.cache);
    if (p.has("tools"))
      parse_tools_plugin(p["tools"], dc.plugins.tools);
    if (p.has("block")) {
      Node b = p["block"];
      b.require_map();
      b.check_keys({"enabled", "message"});
      dc.plugins.block.enabled = b.get_bool("enabled", true);
      dc.plugins.block.message = b.get_string("message", dc.plugins.block.message);
      if (dc.plugins.block.message.empty())
        fail(b["message"].path(), "must not be empty");
    }
    if (p.has("system_prompt")) {
      Node sp = p["system_prompt"];
      sp.require_map();
      sp.check_keys({"enabled", "mode", "content"});
      dc.plugins.system_prompt.enabled = sp.get_bool("enabled", true);
      dc.plugins.system_prompt.mode = sp.get_choice<SystemPromptMode>(
          "mode", "insert",
          {{"insert", SystemPromptMode::Insert}, {"replace", SystemPromptMode::Replace}});
      dc.plugins.system_prompt.content = sp.require_string("content");
    }
    if (p.has("pii")) {
      Node pp = p["pii"];
      pp.require_map();
      pp.check_keys({"enabled", "action", "types", "min_score", "message"});
      auto& pc = dc.plugins.pii;
      pc.enabled = pp.get_bool("enabled", true);
      pc.action = pp.get_choice<PiiAction>("action", "redact",
                                           {{"redact", PiiAction::Redact},
                                            {"block", PiiAction::Block},
                                            {"reroute", PiiAction::Reroute}});
      pc.types = pp.string_list("types");
      pc.min_score = pp.get_double("min_score", pc.min_score, 0, 1);
      pc.message = pp.get_string("message", pc.message);
      if (pc.message.empty())
        fail(pp["message"].path(), "must not be empty");
    }
    if (p.has("headers")) {
      Node h = p["headers"];
      h.require_map();
      h.check_keys({"set", "remove", "response"});
      // Headers the router writes itself: a plugin may not set, remove or duplicate them.
      static const std::set<std::string> kUpstreamReserved{
          "host",         "content-length", "transfer-encoding", "connection",
          "content-type", "user-agent",     "authorization"};
      static const std::set<std::string> kResponseReserved{
          "content-length", "transfer-encoding", "connection", "content-type",
          "server",         "cache-control",     "date"};
      auto pairs = [&](const Node& m, std::vector<std::pair<std::string, std::string>>& out,
                       const std::set<std::string>& reserved) {
        m.require_map();
        for (const std::string& k : m.keys()) {
          std::string name = core::ascii_lower(k);
          if (reserved.count(name) || core::starts_with(name, "x-semrouter-"))
            fail(m[k].path(), "the router sets " + name + " itself; it cannot be overridden");
          out.emplace_back(name, m[k].as_string());
        }
      };
      if (h.has("set"))
        pairs(h["set"], dc.plugins.headers.set, kUpstreamReserved);
      std::vector<std::string> remove = h.string_list("remove");
      for (size_t j = 0; j < remove.size(); ++j) {
        std::string name = core::ascii_lower(remove[j]);
        if (kUpstreamReserved.count(name))
          fail(index_path(h["remove"].path(), j),
               "the router sets " + name + " itself; it cannot be removed");
        dc.plugins.headers.remove.push_back(name);
      }
      if (h.has("response"))
        pairs(h["response"], dc.plugins.headers.response_set, kResponseReserved);
    }
    if (p.has("params")) {
      Node pr = p["params"];
      pr.require_map();
      pr.check_keys({"set", "max", "fill", "remove"});
      static const std::set<std::string> kProtected{"model", "messages", "prompt", "stream"};
      auto check_key = [&](const Node& at, const std::string& k) {
        if (kProtected.count(k))
          fail(at.path(), "\"" + k + "\" is the router's to set; params cannot change it");
      };
      if (pr.has("set")) {
        Node set = pr["set"];
        set.require_map();
        for (const std::string& k : set.keys()) {
          check_key(set[k], k);
          dc.plugins.params.set.emplace_back(k, set[k].to_json());
        }
      }
      if (pr.has("max")) {
        Node mx = pr["max"];
        mx.require_map();
        for (const std::string& k : mx.keys()) {
          check_key(mx[k], k);
          dc.plugins.params.max.emplace_back(k, mx[k].as_double(-1e18, 1e18));
        }
      }
      for (const auto& [k, v] : dc.plugins.params.max)
        for (const auto& [sk, sv] : dc.plugins.params.set)
          if (sk == k)
            fail(pr["max"][k].path(), "\"" + k + "\" is also under params.set; set it or cap it");
      dc.plugins.params.fill_max = pr.string_list("fill");
      for (size_t j = 0; j < dc.plugins.params.fill_max.size(); ++j) {
        const std::string& k = dc.plugins.params.fill_max[j];
        bool found = false;
        for (const auto& [mk, mv] : dc.plugins.params.max)
          found = found || mk == k;
        if (!found)
          fail(index_path(pr["fill"].path(), j), "\"" + k + "\" has no cap under params.max");
      }
      dc.plugins.params.remove = pr.string_list("remove");
      for (size_t j = 0; j < dc.plugins.params.remove.size(); ++j)
        check_key(pr["remove"].at(j), dc.plugins.params.remove[j]);
    }
  };

  // Decisions.
  std::set<std::string> decision_names;
  if (root.has("decisions")) {
    for_each_named(root, "decisions", "decision",
                   {"name", "description", "priority", "rules", "models", "plugins", "selection",
                    "reasoning_load", "fallback"},
                   decision_names, [&](const Node& d, std::string name) {
                     DecisionConfig dc;
                     dc.name = std::move(name);
                     dc.description = d.get_string("description", "");
                     dc.priority = static_cast<int>(d.get_int("priority", 0, -1000000, 1000000));
                     if (!d.has("rules"))
                       fail(child_path(d.path(), "rules"),
                            "is required (use `rules: always` to match every request)");
                     dc.rules = parse_rule(d["rules"], signal_names);
                     parse_targets(d, dc);
                     c.decisions.push_back(std::move(dc));
                   });
  }
  if (root.has("default_decision") && root["default_decision"].is_map()) {
    Node d = root["default_decision"];
    d.check_keys(
        {"name", "description", "models", "plugins", "selection", "reasoning_load", "fallback"});
    DecisionConfig dc;
    dc.name = d.get_string("name", c.default_decision_name);
    dc.description = d.get_string("description", "");
    dc.priority = INT32_MIN;
    parse_targets(d, dc);
    c.default_decision_name = dc.name;
    c.default_decision = std::move(dc);
  } else {
    c.default_decision_name = root.get_string("default_decision", c.default_decision_name);
  }
  if (decision_names.count(c.default_decision_name))
    fail("default_decision",
         "\"" + c.default_decision_name +
             "\" is also the name of a decision; the default decision is the fallback "
             "when none matches and needs its own name");

  // Routing: strategy, which messages signals read, sessions, debug headers.
  if (root.has("routing")) {
    Node r = root["routing"];
    r.require_map();
    r.check_keys({"strategy", "history", "sessions", "debug_headers", "window"});
    if (r.has("window")) {
      Node w = r["window"];
      w.require_map();
      w.check_keys({"head_words", "tail_words"});
      c.routing.window.head_words =
          static_cast<uint32_t>(w.get_int("head_words", c.routing.window.head_words, 0, 1000000));
      c.routing.window.tail_words =
          static_cast<uint32_t>(w.get_int("tail_words", c.routing.window.tail_words, 0, 1000000));
    }
    c.routing.strategy = r.get_choice<DecisionStrategy>(
        "strategy", "priority",
        {{"priority", DecisionStrategy::Priority}, {"confidence", DecisionStrategy::Confidence}});
    if (r.has("history")) {
      Node h = r["history"];
      h.require_map();
      h.check_keys({"user_turns", "include_system", "include_assistant", "follow_ups",
                    "follow_up_max_words"});
      c.routing.history.user_turns =
          static_cast<uint32_t>(h.get_int("user_turns", c.routing.history.user_turns, 0, 1000));
      c.routing.history.include_system = h.get_bool("include_system", false);
      c.routing.history.include_assistant = h.get_bool("include_assistant", false);
      c.routing.history.follow_ups = h.get_bool("follow_ups", c.routing.history.follow_ups);
      c.routing.history.follow_up_max_words = static_cast<uint32_t>(
          h.get_int("follow_up_max_words", c.routing.history.follow_up_max_words, 1, 100));
    }
    if (r.has("sessions")) {
      Node ss = r["sessions"];
      ss.require_map();
      ss.check_keys({"enabled", "header", "ttl_s", "max_sessions"});
      auto& sc = c.routing.sessions;
      sc.enabled = ss.get_bool("enabled", true);
      sc.header = core::ascii_lower(ss.get_string("header", sc.header));
      if (sc.header.empty())
        fail(ss["header"].path(), "must not be empty");
      sc.ttl_s = static_cast<uint32_t>(ss.get_int("ttl_s", sc.ttl_s, 1, 30LL * 86400));
      sc.max_sessions =
          static_cast<uint32_t>(ss.get_int("max_sessions", sc.max_sessions, 1, 100000000));
    }
    c.routing.debug_headers = r.get_bool("debug_headers", false);
  }

  // PII types: the pattern recognisers' unless a transformer (with its own labels) backs pii.
  if (!c.classifiers.tasks.count("pii")) {
    const auto& known = pattern_pii_types();
    auto check = [&](const std::string& path, const std::vector<std::string>& types, bool star_ok) {
      for (size_t j = 0; j < types.size(); ++j) {
        if (star_ok && types[j] == "*")
          continue;
        if (std::find(known.begin(), known.end(), types[j]) == known.end())
          fail(index_path(path, j), "unknown PII type \"" + types[j] +
                                        "\" (known: " + core::join(known, ", ") +
                                        "; a classifiers.pii model adds its own labels)");
      }
    };
    for (size_t i = 0; i < c.signals.pii.size(); ++i)
      check(fmt::format("signals.pii[{}].types", i), c.signals.pii[i].types, false);
    for (size_t i = 0; i < c.models.size(); ++i)
      check(fmt::format("models[{}].allowed_pii", i), c.models[i].allowed_pii, true);
    for (size_t i = 0; i < c.decisions.size(); ++i)
      check(fmt::format("decisions[{}].plugins.pii.types", i), c.decisions[i].plugins.pii.types,
            false);
  }
}

} // namespace

namespace detail {

ListenerConfig parse_listener(const Node& n, ListenerConfig def, bool allow_tls) {
  n.require_map();
  if (allow_tls)
    n.check_keys({"address", "port", "tls"});
  else
    n.check_keys({"address", "port"});
  def.address = n.get_string("address", def.address);
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, def.address.c_str(), buf) != 1 &&
      inet_pton(AF_INET6, def.address.c_str(), buf) != 1)
    fail(child_path(n.path(), "address"),
         "\"" + def.address + "\" is not an IP address (use 127.0.0.1, ::1 or 0.0.0.0)");
  def.port = static_cast<uint16_t>(n.get_int("port", def.port, 0, 65535));
  return def;
}

} // namespace detail

const ModelConfig* Config::find_model(std::string_view name) const {
  for (const auto& m : models) {
    if (m.name == name)
      return &m;
  }
  return nullptr;
}

std::string_view provider_name(Provider p) {
  switch (p) {
  case Provider::OpenAI:
    return "openai";
  case Provider::Azure:
    return "azure";
  case Provider::Anthropic:
    return "anthropic";
  case Provider::Vllm:
    return "vllm";
  case Provider::Generic:
    return "generic";
  }
  return "openai";
}

const BackendConfig* Config::find_backend(std::string_view name) const {
  for (const auto& b : backends) {
    if (b.name == name)
      return &b;
  }
  return nullptr;
}

std::string BackendConfig::connection_key() const {
  // The backend's name leads: two backends on one endpoint (one API, two keys) keep their own
  // idle connections, each holding its own backend's circuit breaker slot.
  std::string k = name;
  k.append(tls ? "|https://" : "|http://").append(host).append(":").append(std::to_string(port));
  if (tls) {
    const auto& t = tls_config;
    k.append("|").append(t.server_name).append("|").append(t.ca_file).append("|");
    k.append(t.client_cert);
    if (t.insecure_skip_verify)
      k.append("|insecure");
  }
  return k;
}

bool ModelConfig::allows_pii(std::string_view type) const {
  for (const auto& t : allowed_pii) {
    if (t == "*" || t == type)
      return true;
  }
  return false;
}

bool Config::is_auto_name(std::string_view name) const {
  for (const auto& n : auto_model_names) {
    if (n == name)
      return true;
  }
  return false;
}

const std::vector<std::string>& pattern_pii_types() {
  static const std::vector<std::string> kTypes{"email",  "phone",      "credit_card",
                                               "us_ssn", "ip_address", "iban"};
  return kTypes;
}

std::map<std::string, ReasoningFamilyConfig> builtin_reasoning_families() {
  std::map<std::string, ReasoningFamilyConfig> f;
  f["qwen3"] = {
      "qwen3",          ReasoningFamilyType::ChatTemplateKwargs, "enable_thinking", "medium", "low",
      "thinking_budget"};
  f["anthropic"] = {"anthropic", ReasoningFamilyType::Thinking, "thinking", "medium", "low", ""};
  f["deepseek"] = {"deepseek", ReasoningFamilyType::ChatTemplateKwargs, "thinking", "medium",
                   "low"};
  f["gpt-oss"] = {"gpt-oss", ReasoningFamilyType::ReasoningEffort, "reasoning_effort", "medium",
                  "low"};
  return f;
}

core::StatusOr<std::shared_ptr<const Config>> parse_config(std::string_view yaml_text) {
  auto config = std::make_shared<Config>();
  try {
    YAML::Node root = YAML::Load(std::string(yaml_text));
    if (!root.IsDefined() || root.IsNull())
      return core::make_error(ErrorCode::InvalidArgument, "the config is empty");
    parse_document(Node(root, ""), *config);
    detail::parse_extproc(Node(root, ""), *config);
    detail::parse_cache(Node(root, ""), *config);
    detail::parse_auth(Node(root, ""), *config);
    detail::parse_resilience(Node(root, ""), *config);
    detail::parse_dashboard(Node(root, ""), *config);
    detail::parse_observability(Node(root, ""), *config);
    // The admin API reconfigures and reads everything: beyond loopback it needs a token.
    const std::string& a = config->admin.address;
    const bool loopback = a == "::1" || a.starts_with("127.");
    if (!loopback && config->auth.admin_token.empty())
      detail::fail("listeners.admin",
                   "listens on " + a +
                       ", beyond loopback: set auth.admin_token_env or auth.admin_token_file so "
                       "the admin API asks for a bearer token");
  } catch (const detail::ConfigError& e) {
    return core::make_error(ErrorCode::InvalidArgument, e.message);
  } catch (const YAML::Exception& e) {
    return core::make_error(ErrorCode::InvalidArgument,
                            fmt::format("YAML syntax error at line {}, column {}: {}",
                                        e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const std::exception& e) {
    return core::make_error(ErrorCode::InvalidArgument, std::string("invalid config: ") + e.what());
  }
  config->source = std::string(yaml_text);
  return std::shared_ptr<const Config>(std::move(config));
}

core::StatusOr<std::shared_ptr<const Config>> load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return core::make_error(ErrorCode::NotFound, "cannot open config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = parse_config(ss.str());
  if (!parsed)
    return core::make_error(parsed.error().code, path + ": " + parsed.error().message);
  return parsed;
}

} // namespace semrouter::config
