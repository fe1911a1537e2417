// Backend providers: the config keys that describe them, and the upstream call each one gets
// (path, auth headers, fields, API) from pipeline/dialects.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "pipeline/dialects.h"

namespace semrouter::pipeline {
namespace {

using json = nlohmann::json;

std::shared_ptr<const config::Config> load(const std::string& backends) {
  auto c = config::parse_config("backends:\n" + backends +
                                "models:\n  - {name: m, upstream_model: up/m, backends: [b]}\n");
  EXPECT_TRUE(c) << c.error().message;
  return c ? *c : nullptr;
}

std::string error_of(const std::string& backends) {
  auto c =
      config::parse_config("backends:\n" + backends + "models:\n  - {name: m, backends: [b]}\n");
  return c ? "" : c.error().message;
}

std::string header(const UpstreamCall& call, std::string_view name) {
  for (const auto& [k, v] : call.headers)
    if (k == name)
      return v;
  return "(none)";
}

UpstreamCall call_for(const config::Config& cfg, Api api, std::string_view original,
                      std::string_view routed, ClientCredentials creds = {}) {
  ClientRequest req;
  openai::ApiError e;
  EXPECT_TRUE(read_client_request(api, original, req, e)) << e.message;
  RouteOutcome out;
  out.body = std::string(routed);
  UpstreamCall call;
  EXPECT_TRUE(build_upstream_call(cfg.backends[0], cfg.models[0], req, out, "", creds, call, e))
      << e.message;
  return call;
}

constexpr std::string_view kChat =
    R"({"model":"up/m","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"enable_thinking":true},"top_k":5})";

TEST(Providers, ConfigKeys) {
  ::setenv("PROVIDERS_TEST_KEY", "sk-from-env", 1);
  auto c = load("  - {name: b, provider: azure, url: 'https://res.openai.azure.com', api_key_env: "
                "PROVIDERS_TEST_KEY}\n");
  ASSERT_TRUE(c);
  const auto& b = c->backends[0];
  EXPECT_TRUE(b.tls);
  EXPECT_EQ(b.port, 443);
  EXPECT_EQ(b.provider, config::Provider::Azure);
  EXPECT_EQ(b.api_version, "2024-10-21");
  EXPECT_TRUE(b.native_responses);
  EXPECT_EQ(b.api_key, "sk-from-env");

  const std::string key_file = ::testing::TempDir() + "providers_key.txt";
  std::ofstream(key_file) << "sk-from-file\n";
  auto f = load("  - {name: b, provider: anthropic, url: 'https://api.example', api_key_file: '" +
                key_file + "'}\n");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->backends[0].api_key, "sk-from-file");
  EXPECT_FALSE(f->backends[0].native_responses);
}

TEST(Providers, ConfigErrorsNameTheKey) {
  EXPECT_EQ(error_of("  - {name: b, url: 'http://h:1', provider: bedrock}\n"),
            "backends[0].provider: unknown provider \"bedrock\" (known: openai, azure, anthropic, "
            "vllm, generic)");
  EXPECT_EQ(error_of("  - {name: b, url: 'http://h:1', api_key: sk-123}\n"),
            "backends[0].api_key: keys never go in the config text: put the key in an environment "
            "variable (api_key_env) or a file (api_key_file)");
  EXPECT_EQ(error_of("  - {name: b, url: 'http://h:1', tls: {ca_file: /x}}\n"),
            "backends[0].tls: is for https:// backends (the url is http://)");
  EXPECT_EQ(error_of("  - {name: b, url: 'https://h:1', tls: {client_cert: /x}}\n"),
            "backends[0].tls: client_cert and client_key go together (mutual TLS needs both)");
  EXPECT_EQ(error_of("  - {name: b, url: 'https://h:1', tls: {ca_file: /no/such/ca.pem}}\n"),
            "backends[0].tls.ca_file: cannot read \"/no/such/ca.pem\"");
  EXPECT_EQ(error_of("  - {name: b, url: 'http://h:1', api_version: '2024'}\n"),
            "backends[0].api_version: is for provider: azure");
  EXPECT_EQ(
      error_of("  - {name: b, url: 'http://h:1', provider: anthropic, responses_api: native}\n"),
      "backends[0].responses_api: an anthropic backend does not speak the Responses API");
  EXPECT_EQ(error_of("  - {name: b, url: 'http://h:1', api_key_file: /no/such/key}\n"),
            "backends[0].api_key_file: cannot read \"/no/such/key\"");
}

TEST(Providers, VllmAndUnsetProviderKeepEveryField) {
  for (std::string p : {"", "provider: vllm, "}) {
    auto c = load("  - {name: b, " + p + "url: 'http://h:8000/v1'}\n");
    UpstreamCall call = call_for(*c, Api::Chat, kChat, kChat);
    EXPECT_EQ(call.path, "/v1/chat/completions");
    EXPECT_EQ(call.body, kChat);
    EXPECT_EQ(call.wire, Api::Chat);
  }
}

TEST(Providers, OpenAIStripsForeignFieldsAndUsesBearer) {
  ::setenv("PROVIDERS_TEST_KEY", "sk-openai", 1);
  auto c = load("  - {name: b, provider: openai, url: 'https://api.example/v1', api_key_env: "
                "PROVIDERS_TEST_KEY}\n");
  UpstreamCall call = call_for(*c, Api::Chat, kChat, kChat);
  json body = json::parse(call.body);
  EXPECT_FALSE(body.contains("chat_template_kwargs"));
  EXPECT_FALSE(body.contains("top_k"));
  EXPECT_EQ(body["model"], "up/m");
  EXPECT_EQ(header(call, "Authorization"), "Bearer sk-openai");
}

TEST(Providers, AzureDeploymentPathAndApiKeyHeader) {
  ::setenv("PROVIDERS_TEST_KEY", "az-key", 1);
  auto c = load("  - {name: b, provider: azure, url: 'https://res.openai.azure.com', api_version: "
                "'2025-01-01', api_key_env: PROVIDERS_TEST_KEY}\n");
  UpstreamCall call = call_for(*c, Api::Chat, kChat, kChat);
  EXPECT_EQ(call.path, "/openai/deployments/up/m/chat/completions?api-version=2025-01-01");
  EXPECT_EQ(header(call, "api-key"), "az-key");
  EXPECT_EQ(header(call, "Authorization"), "(none)");
}

TEST(Providers, AnthropicTranslatesChatAndSendsItsHeaders) {
  ::setenv("PROVIDERS_TEST_KEY", "ant-key", 1);
  auto c = load("  - {name: b, provider: anthropic, url: 'https://api.example', api_key_env: "
                "PROVIDERS_TEST_KEY}\n");
  const std::string routed =
      R"({"model":"up/m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"thinking":{"type":"enabled","budget_tokens":4096},"max_tokens":100})";
  UpstreamCall call = call_for(*c, Api::Chat, routed, routed);
  EXPECT_EQ(call.path, "/v1/messages");
  EXPECT_EQ(call.wire, Api::Messages);
  EXPECT_EQ(header(call, "x-api-key"), "ant-key");
  EXPECT_EQ(header(call, "anthropic-version"), "2023-06-01");
  json body = json::parse(call.body);
  EXPECT_EQ(body["system"], "Be brief.");
  EXPECT_EQ(body["thinking"]["budget_tokens"], 4096);
  EXPECT_GT(body["max_tokens"].get<int>(), 4096); // raised above the thinking budget
}

TEST(Providers, MessagesToAnthropicKeepWhatChatCannotCarry) {
  auto c = load("  - {name: b, provider: anthropic, url: 'https://api.example'}\n");
  const std::string original =
      R"({"model":"auto","max_tokens":50,"system":[{"type":"text","text":"S","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]})";
  ClientRequest req;
  openai::ApiError e;
  ASSERT_TRUE(read_client_request(Api::Messages, original, req, e));
  UpstreamCall call = call_for(*c, Api::Messages, original, req.pivot);
  json body = json::parse(call.body);
  EXPECT_EQ(body["model"], "up/m");
  EXPECT_EQ(body["system"][0]["cache_control"]["type"], "ephemeral");
}

TEST(Providers, ClientCredentialsPassOnlyWithoutKeysOfEitherSide) {
  auto c = load("  - {name: b, url: 'http://h:8000/v1'}\n");
  ClientCredentials creds{"Bearer client-key", "", false};
  EXPECT_EQ(header(call_for(*c, Api::Chat, kChat, kChat, creds), "Authorization"),
            "Bearer client-key");
  creds.router_checks_keys = true; // the client's key is the router's
  EXPECT_EQ(header(call_for(*c, Api::Chat, kChat, kChat, creds), "Authorization"), "(none)");
}

TEST(Providers, ResponsesFeaturesNeedANativeBackend) {
  auto c = load("  - {name: b, provider: vllm, url: 'http://h:8000/v1'}\n");
  const std::string original =
      R"({"model":"auto","input":"hi","tools":[{"type":"web_search_preview"}]})";
  ClientRequest req;
  openai::ApiError e;
  ASSERT_TRUE(read_client_request(Api::Responses, original, req, e));
  RouteOutcome out;
  out.body = req.pivot;
  UpstreamCall call;
  EXPECT_FALSE(build_upstream_call(c->backends[0], c->models[0], req, out, "", {}, call, e));
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("responses_api: native"), std::string::npos) << e.message;

  // Routing has put the upstream model in the chat request.
  json routed = json::parse(req.pivot);
  routed["model"] = "up/m";
  out.body = routed.dump();
  auto n = load("  - {name: b, provider: openai, url: 'http://h:8000/v1'}\n");
  EXPECT_TRUE(build_upstream_call(n->backends[0], n->models[0], req, out, "", {}, call, e));
  EXPECT_EQ(call.path, "/v1/responses");
  EXPECT_EQ(call.wire, Api::Responses);
  EXPECT_EQ(json::parse(call.body)["model"], "up/m");
}

} // namespace
} // namespace semrouter::pipeline

namespace semrouter::pipeline {
namespace {

// A model served only by Anthropic backends reasons through Anthropic's `thinking` block unless
// its config names another family or none ("").
TEST(Providers, AnthropicModelsDefaultToTheThinkingFamily) {
  auto parse = [](const std::string& models) {
    auto c = config::parse_config(
        "backends:\n  - {name: a, provider: anthropic, url: 'http://127.0.0.1:1'}\n"
        "  - {name: o, url: 'http://127.0.0.1:2/v1'}\nmodels:\n" +
        models);
    EXPECT_TRUE(c) << c.error().message;
    return c ? *c : nullptr;
  };
  auto c = parse("  - {name: claude, backends: [a]}\n  - {name: mixed, backends: [a, o]}\n"
                 "  - {name: plain, backends: [a], reasoning_family: ''}\n"
                 "  - {name: other, backends: [a], reasoning_family: qwen3}\n");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->models[0].reasoning_family, "anthropic");
  EXPECT_EQ(c->models[1].reasoning_family, ""); // not every backend is Anthropic
  EXPECT_EQ(c->models[2].reasoning_family, "");
  EXPECT_EQ(c->models[3].reasoning_family, "qwen3");
}

} // namespace
} // namespace semrouter::pipeline
