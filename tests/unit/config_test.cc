#include "config/config.h"

#include <cstdlib>

#include <gtest/gtest.h>

namespace semrouter::config {
namespace {

const char* kBase = R"(
backends:
  - name: local
    url: http://127.0.0.1:8000/v1
models:
  - name: qwen3-8b
    backends: [local]
    reasoning_family: qwen3
  - name: llama-3.1-8b
    backends: [local]
)";

std::string error_of(const std::string& yaml) {
  auto c = parse_config(yaml);
  if (c)
    return "";
  return c.error().message;
}

TEST(Config, MinimalConfigGetsDefaults) {
  auto c = parse_config(kBase);
  ASSERT_TRUE(c) << c.error().message;
  const Config& cfg = **c;
  EXPECT_EQ(cfg.gateway.port, 8801);
  EXPECT_EQ(cfg.admin.port, 8802);
  EXPECT_EQ(cfg.auto_model_names, (std::vector<std::string>{"auto", "MoM"}));
  EXPECT_EQ(cfg.default_model, "qwen3-8b");
  ASSERT_EQ(cfg.backends.size(), 1u);
  EXPECT_EQ(cfg.backends[0].host, "127.0.0.1");
  EXPECT_EQ(cfg.backends[0].port, 8000);
  EXPECT_EQ(cfg.backends[0].base_path, "/v1");
  EXPECT_EQ(cfg.backends[0].liveness_check_after_ms, 250u);
  EXPECT_EQ(cfg.models[0].upstream_model, "qwen3-8b");
  EXPECT_EQ(cfg.reasoning_families.count("qwen3"), 1u);
  EXPECT_EQ(cfg.reasoning_families.count("deepseek"), 1u);
  EXPECT_EQ(cfg.reasoning_families.count("gpt-oss"), 1u);
  EXPECT_TRUE(cfg.is_auto_name("MoM"));
  EXPECT_FALSE(cfg.is_auto_name("mom"));
}

TEST(Config, UnknownModelInDecisionNamesKeyPathAndKnownModels) {
  std::string yaml = std::string(kBase) + R"(
decisions:
  - name: a
    rules: always
    models: [qwen3-8b]
  - name: b
    rules: always
    models: [qwen3-8b]
  - name: c
    rules: always
    models:
      - model: gpt-5
)";
  EXPECT_EQ(
      error_of(yaml),
      "decisions[2].models[0].model: unknown model \"gpt-5\" (known: qwen3-8b, llama-3.1-8b)");
}

TEST(Config, ScalarModelRefErrorPath) {
  std::string yaml = std::string(kBase) + R"(
decisions:
  - name: a
    rules: always
    models: [gpt-5]
)";
  EXPECT_EQ(error_of(yaml),
            "decisions[0].models[0]: unknown model \"gpt-5\" (known: qwen3-8b, llama-3.1-8b)");
}

TEST(Config, UnknownKeysAreErrors) {
  std::string yaml = std::string(kBase) + "\nserver: {wokers: 2}\n";
  EXPECT_EQ(
      error_of(yaml),
      "server: unknown key \"wokers\" (known: workers, max_body_bytes, client_header_timeout_ms, "
      "reload_poll_ms, random_seed, log_level, inference_workers, mode, drain_timeout_ms, "
      "drain_delay_ms, io_uring)");
}

// A repeated key: the first block would win and the later one, never read, is what its author
// meant. Refused, naming the key.
TEST(Config, DuplicateKeysAreErrors) {
  EXPECT_EQ(error_of(std::string(kBase) + "\nresilience: {limits: {max_concurrent: 1}}\n"
                                          "resilience: {limits: {max_concurrent: 7}}\n"),
            "duplicate key \"resilience\" (YAML keys must be unique)");
  EXPECT_EQ(error_of(std::string(kBase) +
                     "\nresilience: {limits: {max_concurrent: 1, max_concurrent: 2}}\n"),
            "resilience.limits: duplicate key \"max_concurrent\" (YAML keys must be unique)");
  for (const char* bad : {"\"\"", "\"x bad:\""})
    EXPECT_EQ(
        error_of(std::string(kBase) + "\nresilience: {limits: {deadline_header: " + bad + "}}\n"),
        "resilience.limits.deadline_header: must be an HTTP header name (letters, digits and "
        "!#$%&'*+-.^_`|~), e.g. x-semrouter-deadline-ms")
        << bad;
}

TEST(Config, ErrorsNameTheKey) {
  struct Case {
    std::string yaml;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"models: []", "models: list at least one model"},
      {"backends: [{name: a, url: ftp://x}]\nmodels: [{name: m, backends: [a]}]",
       "backends[0].url: must start with http:// or https:// (got \"ftp://x\")"},
      {"backends: [{name: a, url: 'http://h:99999'}]\nmodels: [{name: m, backends: [a]}]",
       "backends[0].url: invalid port \"99999\""},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [b]}]",
       "models[0].backends[0]: unknown backend \"b\" (known: a)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a], "
       "reasoning_family: foo}]",
       "models[0].reasoning_family: unknown reasoning family \"foo\" (known: anthropic, deepseek, "
       "gpt-oss, qwen3)"},
      {"backends: [{name: a, url: 'http://h:1', weight: x}]\nmodels: [{name: m, backends: [a]}]",
       "backends[0].weight: expected an integer, got \"x\""},
      {"backends: [{name: a, url: 'http://h:1', timeouts: {connect_ms: 0}}]\nmodels: [{name: m, "
       "backends: [a]}]",
       "backends[0].timeouts.connect_ms: must be between 1 and 86400000, got 0"},
      {"backends: [{name: a, url: 'http://h:1', liveness_check_after_ms: -1}]\nmodels: [{name: "
       "m, backends: [a]}]",
       "backends[0].liveness_check_after_ms: must be between 0 and 86400000, got -1"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: auto, backends: [a]}]",
       "models[0].name: \"auto\" is also an auto model name; pick another"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: "
       "[a]}]\ndefault_model: x",
       "default_model: unknown model \"x\" (known: m)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: {keyword: nope}, models: [m]}]",
       "decisions[0].rules.keyword: unknown keyword signal \"nope\" (known: none defined in "
       "signals.keywords)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: {xor: []}, models: [m]}]",
       "decisions[0].rules: unknown rule operator \"xor\" (known: and, or, not, keyword, "
       "embedding, pii, context_length, metadata, domain, complexity, reasoning, jailbreak, "
       "language, signal+name, or signal+op+value)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: {signal: sentiment, name: happy}, models: [m]}]",
       "decisions[0].rules: unknown signal type \"sentiment\" (known: keyword, embedding, pii, "
       "context_length, metadata, domain, complexity, reasoning, jailbreak, language)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: {pii: cards}, models: [m]}]",
       "decisions[0].rules.pii: unknown pii signal \"cards\" (known: none defined in signals.pii)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "signals: {pii: [{name: p, types: [passport]}]}",
       "signals.pii[0].types[0]: unknown PII type \"passport\" (known: email, phone, credit_card, "
       "us_ssn, ip_address, iban; a classifiers.pii model adds its own labels)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "signals: {metadata: [{name: x, header: x-tier, tools: true}]}",
       "signals.metadata[0]: give exactly one of header, user, tools, stream"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "signals: {context_length: [{name: x, min_tokens: 10, max_tokens: 5}]}",
       "signals.context_length[0].max_tokens: is below min_tokens"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "signals: {embeddings: [{name: x, phrases: [hi], aggregation: median}]}",
       "signals.embeddings[0].aggregation: unknown aggregation \"median\" (known: max, mean)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "routing: {strategy: random}",
       "routing.strategy: unknown strategy \"random\" (known: priority, confidence)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: always, models: [m], plugins: {pii: {action: hide}}}]",
       "decisions[0].plugins.pii.action: unknown action \"hide\" (known: redact, block, reroute)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: always, models: [m], plugins: {params: {set: {model: x}}}}]",
       "decisions[0].plugins.params.set.model: \"model\" is the router's to set; params cannot "
       "change it"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: always, models: [m], plugins: {params: {fill: [top_p]}}}]",
       "decisions[0].plugins.params.fill[0]: \"top_p\" has no cap under params.max"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: always, models: [m], plugins: {headers: {set: {Host: x}}}}]",
       "decisions[0].plugins.headers.set.Host: the router sets host itself; it cannot be "
       "overridden"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: always, models: [m], plugins: {headers: {remove: "
       "[Authorization]}}}]",
       "decisions[0].plugins.headers.remove[0]: the router sets authorization itself; it cannot "
       "be removed"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: always, models: [m], plugins: {headers: {response: "
       "{x-semrouter-model: x}}}}]",
       "decisions[0].plugins.headers.response.x-semrouter-model: the router sets "
       "x-semrouter-model itself; it cannot be overridden"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: always, models: [m], plugins: {params: {set: "
       "{temperature: 2}, max: {temperature: 1}}}}]",
       "decisions[0].plugins.params.max.temperature: \"temperature\" is also under params.set; "
       "set it or cap it"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "signals: {metadata: [{name: u, user: []}]}",
       "signals.metadata[0].user: list at least one user"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: {embedding: nope}, models: [m]}]",
       "decisions[0].rules.embedding: unknown embedding signal \"nope\" (known: none defined in "
       "signals.embeddings)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a], "
       "allowed_pii: [emails]}]",
       "models[0].allowed_pii[0]: unknown PII type \"emails\" (known: email, phone, credit_card, "
       "us_ssn, ip_address, iban; a classifiers.pii model adds its own labels)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: always, models: [{model: m, effort: extreme}]}]",
       "decisions[0].models[0].effort: unknown effort \"extreme\" (known: minimal, low, medium, "
       "high)"},
      {"backends: [{name: a, url: 'http://h:1'}]\nmodels: [{name: m, backends: [a]}]\n"
       "decisions: [{name: d, rules: always, models: [m], plugins: {system_prompt: {mode: append, "
       "content: x}}}]",
       "decisions[0].plugins.system_prompt.mode: unknown mode \"append\" (known: insert, replace)"},
      {"listeners: {gateway: {address: localhost}}\nbackends: [{name: a, url: 'http://h:1'}]\n"
       "models: [{name: m, backends: [a]}]",
       "listeners.gateway.address: \"localhost\" is not an IP address (use 127.0.0.1, ::1 or "
       "0.0.0.0)"},
      {"models: [{name: m, backends: [a]}\n", ""}, // YAML syntax error: checked below by prefix
  };
  for (const auto& c : cases) {
    std::string err = error_of(c.yaml);
    if (c.expected.empty()) {
      EXPECT_EQ(err.rfind("YAML syntax error at line", 0), 0u) << err;
    } else {
      EXPECT_EQ(err, c.expected) << c.yaml;
    }
  }
}

TEST(Config, EnvironmentExpansion) {
  setenv("SEMROUTER_TEST_PORT", "9123", 1);
  unsetenv("SEMROUTER_TEST_UNSET");
  auto c = parse_config("backends: [{name: a, url: 'http://127.0.0.1:${SEMROUTER_TEST_PORT}/v1'},"
                        " {name: b, url: 'http://127.0.0.1:${SEMROUTER_TEST_UNSET:-7000}'}]\n"
                        "models: [{name: m, backends: [a, {name: b, weight: 3}]}]");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ((*c)->backends[0].port, 9123);
  EXPECT_EQ((*c)->backends[1].port, 7000);
  EXPECT_EQ((*c)->backends[1].base_path, "");
  auto root =
      parse_config("backends: [{name: a, url: 'http://h:1/'}, {name: b, url: 'http://h:1/v1/'}]\n"
                   "models: [{name: m, backends: [a, b]}]");
  ASSERT_TRUE(root);
  EXPECT_EQ((*root)->backends[0].base_path, "/"); // explicit root: upstream path /chat/completions
  EXPECT_EQ((*root)->backends[1].base_path, "/v1");
  EXPECT_EQ((*c)->models[0].backends[1].weight, 3u);
  EXPECT_EQ(error_of("backends: [{name: a, url: 'http://h:${SEMROUTER_TEST_UNSET}'}]\nmodels: "
                     "[{name: m, backends: [a]}]"),
            "backends[0].url: environment variable SEMROUTER_TEST_UNSET is not set (write "
            "${SEMROUTER_TEST_UNSET:-default} to give a default)");
}

TEST(Config, ApiKeyFromEnvironment) {
  setenv("SEMROUTER_TEST_KEY", "sk-123", 1);
  auto c =
      parse_config("backends: [{name: a, url: 'http://h:1', api_key_env: SEMROUTER_TEST_KEY}]\n"
                   "models: [{name: m, backends: [a]}]");
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)->backends[0].api_key, "sk-123");
  unsetenv("SEMROUTER_TEST_KEY");
  EXPECT_EQ(error_of("backends: [{name: a, url: 'http://h:1', api_key_env: SEMROUTER_TEST_KEY}]\n"
                     "models: [{name: m, backends: [a]}]"),
            "backends[0].api_key_env: environment variable SEMROUTER_TEST_KEY is not set; export "
            "it or remove "
            "api_key_env");
}

TEST(Config, Ipv6BackendAndRules) {
  auto c = parse_config(R"(
backends: [{name: a, url: 'http://[::1]:8080/api/v1/'}]
models: [{name: m, backends: [a], reasoning_family: gpt-oss}]
signals:
  keywords:
    - {name: k1, keywords: [foo]}
    - {name: k2, keywords: ["ba+r"], regex: true, operator: all, case_sensitive: true}
decisions:
  - name: d
    priority: 5
    rules: {and: [{keyword: k1}, {not: {signal: keyword, name: k2}}, {or: [{keyword: k1}]}]}
    models: [{model: m, reasoning: false}]
    plugins: {system_prompt: {mode: replace, content: hi}}
)");
  ASSERT_TRUE(c) << c.error().message;
  const Config& cfg = **c;
  EXPECT_EQ(cfg.backends[0].host, "::1");
  EXPECT_EQ(cfg.backends[0].port, 8080);
  EXPECT_EQ(cfg.backends[0].base_path, "/api/v1");
  ASSERT_EQ(cfg.decisions.size(), 1u);
  const auto& d = cfg.decisions[0];
  EXPECT_EQ(d.priority, 5);
  EXPECT_EQ(d.rules.kind, RuleNode::Kind::And);
  ASSERT_EQ(d.rules.children.size(), 3u);
  EXPECT_EQ(d.rules.children[1].kind, RuleNode::Kind::Not);
  EXPECT_EQ(d.rules.children[1].children[0].signal_name, "k2");
  EXPECT_EQ(d.models[0].reasoning, ReasoningMode::Off);
  EXPECT_EQ(d.plugins.system_prompt.mode, SystemPromptMode::Replace);
  EXPECT_TRUE(d.plugins.system_prompt.enabled);
  EXPECT_EQ(cfg.signals.keywords[1].op, KeywordOperator::All);
  EXPECT_TRUE(cfg.signals.keywords[1].regex);
}

TEST(Config, EmbeddedDefaultIsValid) {
  auto c = parse_config(embedded_default_config());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_GE((*c)->decisions.size(), 3u);
}

TEST(Config, MissingFileIsAClearError) {
  auto c = load_config_file("/nonexistent/router.yaml");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message, "cannot open config file /nonexistent/router.yaml");
}

TEST(Config, ReasoningByNeedAndThresholdRules) {
  auto c = parse_config(std::string(kBase) + R"(
signals:
  reasoning: {threshold: 0.6, effort: {medium: 0.7, high: 0.95}}
decisions:
  - name: a
    rules: {signal: reasoning, op: ">=", value: 0.7}
    models: [{model: qwen3-8b, reasoning: auto, reasoning_threshold: 0.4}]
  - name: b
    rules: {and: [{signal: domain, name: math, op: "<", value: 0.3}, {reasoning: direct}]}
    models: [{model: qwen3-8b, reasoning: auto, effort: high}]
)");
  ASSERT_TRUE(c) << c.error().message;
  const auto& rc = (*c)->signals.reasoning;
  EXPECT_EQ(rc.threshold, 0.6);
  EXPECT_EQ(rc.medium, 0.7);
  EXPECT_EQ(rc.high, 0.95);
  const auto& a = (*c)->decisions[0];
  EXPECT_EQ(a.rules.kind, RuleNode::Kind::Compare);
  EXPECT_EQ(a.rules.signal_type, "reasoning");
  EXPECT_EQ(a.rules.signal_name, "reason"); // the positive class when no name is given
  EXPECT_EQ(a.rules.op, RuleNode::Op::Ge);
  EXPECT_EQ(a.rules.value, 0.7);
  EXPECT_EQ(a.models[0].reasoning, ReasoningMode::ByNeed);
  EXPECT_EQ(a.models[0].need_threshold, 0.4);
  const auto& b = (*c)->decisions[1].rules.children;
  EXPECT_EQ(b[0].kind, RuleNode::Kind::Compare);
  EXPECT_EQ(b[0].signal_name, "math");
  EXPECT_EQ(b[0].op, RuleNode::Op::Lt);
  EXPECT_EQ(b[1].signal_type, "reasoning");
  EXPECT_EQ(b[1].signal_name, "direct");

  const std::string pre =
      std::string(kBase) + "\ndecisions:\n  - name: a\n    models: [qwen3-8b]\n";
  struct Case {
    std::string rule;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"{signal: reasoning, op: \"=>\", value: 0.5}",
       "decisions[0].rules.op: unknown op \"=>\" (known: >=, >, <=, <)"},
      {"{signal: reasoning, op: \">=\", value: 1.5}",
       "decisions[0].rules.value: must be between 0 and 1, got 1.5"},
      {"{signal: reasoning, value: 0.5}",
       "decisions[0].rules: a threshold rule needs both op (>=, >, <=, <) and value"},
      {"{signal: domain, op: \">=\", value: 0.5}",
       "decisions[0].rules: a threshold rule on domain needs name: (the label to score)"},
      {"{signal: keyword, name: x, op: \">=\", value: 0.5}",
       "decisions[0].rules.signal: a threshold rule reads a scored signal (known: reasoning, "
       "complexity, jailbreak, domain, language, embedding), not \"keyword\""},
      {"{reasoning: maybe}",
       "decisions[0].rules.reasoning: reasoning is \"reason\" or \"direct\", not \"maybe\""},
  };
  for (const auto& cs : cases)
    EXPECT_EQ(error_of(pre + "    rules: " + cs.rule + "\n"), cs.expected) << cs.rule;
  EXPECT_EQ(error_of(std::string(kBase) +
                     "\ndecisions: [{name: a, rules: always, models: [{model: qwen3-8b, "
                     "reasoning: true, reasoning_threshold: 0.5}]}]\n"),
            "decisions[0].models[0].reasoning_threshold: only applies with reasoning: auto "
            "(reasoning by need)");
}

TEST(Config, ExtProcSection) {
  // Without listeners.extproc: the gateway alone, and the ext_proc defaults.
  auto plain = parse_config(kBase);
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ((*plain)->mode, ServeMode::Gateway);
  EXPECT_FALSE((*plain)->extproc.enabled);
  EXPECT_EQ((*plain)->extproc.model_header, "x-semrouter-model");
  EXPECT_EQ((*plain)->extproc.max_body_bytes, (*plain)->server.max_body_bytes);
  EXPECT_EQ((*plain)->extproc.threads, (*plain)->server.workers);

  auto both = parse_config(std::string(kBase) + R"(
listeners:
  extproc: {address: "::1", port: 9903}
server: {workers: 3}
extproc: {model_header: X-Route-Model, bypass_header: "", observability_mode: true, max_body_bytes: 2048}
)");
  ASSERT_TRUE(both) << both.error().message;
  const auto& e = (*both)->extproc;
  EXPECT_EQ((*both)->mode, ServeMode::Both);
  EXPECT_TRUE(e.enabled);
  EXPECT_EQ(e.listener.address, "::1");
  EXPECT_EQ(e.listener.port, 9903);
  EXPECT_EQ(e.model_header, "x-route-model");
  EXPECT_EQ(e.backend_header, "x-semrouter-backend");
  EXPECT_EQ(e.bypass_header, "");
  EXPECT_TRUE(e.observability_mode);
  EXPECT_EQ(e.max_body_bytes, 2048u);
  EXPECT_EQ(e.threads, 3u);

  struct Case {
    std::string yaml;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"server: {mode: extproc}",
       "server.mode: \"extproc\" needs an ext_proc listener: add listeners.extproc {address, "
       "port}"},
      {"server: {mode: envoy}", "server.mode: unknown mode \"envoy\" (known: gateway, extproc, "
                                "both)"},
      {"listeners: {extproc: {address: localhost}}",
       "listeners.extproc.address: \"localhost\" is not an IP address (use 127.0.0.1, ::1 or "
       "0.0.0.0)"},
      {"listeners: {extproc: {port: 1, tls: {cert_file: /nonexistent.crt}}}",
       "listeners.extproc.tls: needs both cert_file and key_file (ca_file is optional: with it, "
       "clients must present a certificate it signed)"},
      {"listeners: {extproc: {tls: {cert_file: /nonexistent.crt, key_file: /nonexistent.key}}}",
       "listeners.extproc.tls.cert_file: \"/nonexistent.crt\" is not a readable file"},
      {"listeners: {extproc: {tls: {cert: a}}}",
       "listeners.extproc.tls: unknown key \"cert\" (known: cert_file, key_file, ca_file)"},
      {"extproc: {model_header: \"x model\"}",
       "extproc.model_header: \"x model\" is not a lower-case header name (letters, digits, '-', "
       "'_', '.')"},
      {"extproc: {model_header: \"\"}", "extproc.model_header: must not be empty"},
      {"extproc: {threads: 0}", "extproc.threads: must be between 1 and 256, got 0"},
      {"extproc: {modelheader: x}",
       "extproc: unknown key \"modelheader\" (known: model_header, backend_header, bypass_header, "
       "observability_mode, max_body_bytes, threads)"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(error_of(std::string(kBase) + c.yaml), c.expected) << c.yaml;
}

} // namespace
} // namespace semrouter::config
