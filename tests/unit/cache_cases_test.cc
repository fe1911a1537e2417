// Data-driven cache and tool-filter cases: every tests/cases/cache/*.yaml holds a config and a
// list of steps run in order against one cache. A step is a request (body and headers) with what
// routing must do: hit, miss or bypass, the verifier's reason, the tools kept. A forwarded step
// may give the upstream's answer (`answer`, with `finish_reason` or `error`), which the response
// phase offers to the cache as the real exchange would.
#include <filesystem>
#include <map>
#include <optional>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "metrics/metrics.h"
#include "pipeline/pipeline.h"
#include "yaml_json.h"

namespace semrouter::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string header_value(const RouteOutcome& out, std::string_view name) {
  for (const auto& [k, v] : out.response_headers)
    if (k == name)
      return v;
  return "";
}

TEST(CacheCases, AllCaseFiles) {
  std::vector<fs::path> paths;
  for (const auto& e :
       fs::directory_iterator(fs::path(SEMROUTER_SOURCE_DIR) / "tests" / "cases" / "cache"))
    if (e.path().extension() == ".yaml")
      paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  ASSERT_FALSE(paths.empty());
  for (const auto& p : paths) {
    SCOPED_TRACE(p.filename().string());
    YAML::Node root = YAML::LoadFile(p.string());
    auto config = config::parse_config(root["config"].as<std::string>());
    ASSERT_TRUE(config) << config.error().message;
    auto snap = build_snapshot(*config, 1, /*load_models=*/true);
    ASSERT_TRUE(snap) << snap.error().message;
    metrics::Registry registry;
    CacheRuntime cache(registry);
    ToolVectors tool_vectors;
    core::Random random(1);
    std::printf("[ cache cases ] %s: %zu steps\n", p.filename().c_str(), root["steps"].size());
    for (const auto& step : root["steps"]) {
      const std::string name = step["name"].as<std::string>();
      SCOPED_TRACE(name);
      std::map<std::string, std::string> headers;
      if (step["headers"])
        for (const auto& kv : step["headers"])
          headers[kv.first.as<std::string>()] = kv.second.as<std::string>();
      HeaderLookup lookup = [&](std::string_view n) -> std::optional<std::string_view> {
        auto it = headers.find(std::string(n));
        if (it == headers.end())
          return std::nullopt;
        return std::string_view(it->second);
      };
      RequestMeta meta;
      meta.headers = &lookup;
      meta.cache = &cache;
      meta.tool_vectors = &tool_vectors;
      const std::string body = test_support::yaml_to_json(step["request"]).dump();
      RouteOutcome out = route(**snap, meta, body, random);
      const YAML::Node e = step["expect"];
      if (e["cache"]) {
        EXPECT_EQ(out.cache, e["cache"].as<std::string>()) << body;
        EXPECT_EQ(header_value(out, "x-semrouter-cache"), e["cache"].as<std::string>());
      }
      if (e["reason"]) {
        EXPECT_EQ(header_value(out, "x-semrouter-cache-reason"), e["reason"].as<std::string>());
      }
      if (e["rejected"]) {
        EXPECT_TRUE(header_value(out, "x-semrouter-cache-rejected")
                        .starts_with(e["rejected"].as<std::string>()))
            << "rejected: " << header_value(out, "x-semrouter-cache-rejected");
      }
      if (e["content"]) {
        ASSERT_EQ(out.action, RouteAction::Reply);
        if (out.reply_content_type == "text/event-stream") {
          std::string content;
          size_t pos = 0;
          bool done = false;
          while ((pos = out.reply_body.find("data: ", pos)) != std::string::npos) {
            size_t end = out.reply_body.find("\n\n", pos);
            std::string data = out.reply_body.substr(pos + 6, end - pos - 6);
            pos = end;
            if (data == "[DONE]") {
              done = true;
              continue;
            }
            json ev = json::parse(data);
            if (!ev["choices"].empty() && ev["choices"][0]["delta"].contains("content"))
              content += ev["choices"][0]["delta"]["content"].get<std::string>();
          }
          EXPECT_TRUE(done);
          EXPECT_EQ(content, e["content"].as<std::string>());
        } else {
          json r = json::parse(out.reply_body);
          EXPECT_EQ(r["choices"][0]["message"]["content"], e["content"].as<std::string>());
        }
      }
      if (e["tools_include"] || e["tools_exclude"] || e["tools_count"]) {
        ASSERT_EQ(out.action, RouteAction::Forward);
        json sent = json::parse(out.body);
        std::vector<std::string> names;
        for (const auto& t : sent["tools"])
          names.push_back(t["function"]["name"]);
        auto has = [&](const std::string& n) {
          return std::find(names.begin(), names.end(), n) != names.end();
        };
        if (e["tools_count"]) {
          EXPECT_EQ(names.size(), e["tools_count"].as<size_t>());
        }
        if (e["tools_include"])
          for (const auto& n : e["tools_include"].as<std::vector<std::string>>())
            EXPECT_TRUE(has(n)) << n << " was filtered out";
        if (e["tools_exclude"])
          for (const auto& n : e["tools_exclude"].as<std::vector<std::string>>())
            EXPECT_FALSE(has(n)) << n << " went upstream";
        // The client's order is kept.
        json client = json::parse(body);
        size_t at = 0;
        for (const auto& n : names) {
          while (at < client["tools"].size() && client["tools"][at]["function"]["name"] != n)
            ++at;
          EXPECT_LT(at, client["tools"].size()) << n << " out of the client's order";
        }
        // The kept tools are the client's objects, byte for byte.
        json sent_req = json::parse(body);
        for (const auto& t : sent["tools"]) {
          bool same = false;
          for (const auto& c : sent_req["tools"])
            same = same || c.dump() == t.dump();
          EXPECT_TRUE(same) << t.dump();
        }
      }
      if (e["tools_header"]) {
        EXPECT_EQ(header_value(out, "x-semrouter-tools"), e["tools_header"].as<std::string>());
      }
      if (e["decision"]) {
        EXPECT_EQ(out.decision, e["decision"].as<std::string>());
      }
      // The upstream's answer, offered to the cache like the exchange does on finish(200).
      if (step["answer"] && out.action == RouteAction::Forward && out.cache_fill) {
        const std::string finish =
            step["finish_reason"] ? step["finish_reason"].as<std::string>() : "stop";
        json answer = {
            {"id", "x"},
            {"object", "chat.completion"},
            {"model", out.model->upstream_model},
            {"choices",
             {{{"index", 0},
               {"message", {{"role", "assistant"}, {"content", step["answer"].as<std::string>()}}},
               {"finish_reason", finish}}}},
            {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 7}, {"total_tokens", 12}}}};
        if (step["error"])
          answer = {{"error", {{"message", "boom"}}}};
        openai::AnswerCapture capture;
        capture.body(answer.dump());
        cache.fill(*out.cache_fill, capture);
      }
    }
  }
}

} // namespace
} // namespace semrouter::pipeline
