// Data-driven routing cases: every tests/cases/routing/*.yaml holds a config and a list of
// requests with the decision, model, rewritten body fields and headers each must produce.
// A new routing bug becomes a new case in YAML, not new test code.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "yaml_json.h"
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "pipeline/pipeline.h"

#include <cstdlib>
#include <map>
#include <optional>

namespace semrouter::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json to_json(const YAML::Node& n) {
  return semrouter::test_support::yaml_to_json(n);
}

struct CaseFile {
  fs::path path;
  YAML::Node root;
};

std::vector<CaseFile> load_case_files() {
  // Paths are sorted before loading: YAML::Node's assignment rebinds the node it refers to,
  // so sorting loaded nodes would overwrite one file's cases with another's.
  std::vector<fs::path> paths;
  fs::path dir = fs::path(SEMROUTER_SOURCE_DIR) / "tests" / "cases" / "routing";
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".yaml")
      paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  std::vector<CaseFile> files;
  for (const auto& p : paths)
    files.push_back({p, YAML::LoadFile(p.string())});
  return files;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(RoutingCases, AllCaseFiles) {
  // Case configs name fixtures as ${SEMROUTER_SOURCE_DIR}/tests/fixtures/...
  setenv("SEMROUTER_SOURCE_DIR", SEMROUTER_SOURCE_DIR, 0);
  auto files = load_case_files();
  ASSERT_FALSE(files.empty());
  size_t total = 0;
  for (const CaseFile& f : files) {
    SCOPED_TRACE(f.path.filename().string());
    std::string yaml =
        f.root["config"]
            ? f.root["config"].as<std::string>()
            : read_file(fs::path(SEMROUTER_SOURCE_DIR) / f.root["config_file"].as<std::string>());
    auto config = config::parse_config(yaml);
    ASSERT_TRUE(config) << config.error().message;
    // `models: true` loads the classifiers (the embedded defaults unless the config says).
    const bool with_models = f.root["models"] && f.root["models"].as<bool>();
    auto snap = build_snapshot(*config, 1, with_models);
    ASSERT_TRUE(snap) << snap.error().message;
    core::Random random(f.root["seed"] ? f.root["seed"].as<uint64_t>() : 1);
    SessionStore sessions; // one per file: cases run in order and may continue a session
    EXPECT_GT(f.root["cases"].size(), 0u) << "no cases";
    std::printf("[ routing cases ] %s: %zu cases\n", f.path.filename().c_str(),
                f.root["cases"].size());

    for (const auto& c : f.root["cases"]) {
      ++total;
      std::string name = c["name"].as<std::string>();
      SCOPED_TRACE(name);
      RequestMeta meta;
      if (c["endpoint"] && c["endpoint"].as<std::string>() == "completions")
        meta.kind = openai::RequestKind::Completions;
      // Request headers, by lower-case name.
      std::map<std::string, std::string> request_headers;
      if (c["headers"])
        for (const auto& kv : c["headers"])
          request_headers[kv.first.as<std::string>()] = kv.second.as<std::string>();
      HeaderLookup lookup = [&](std::string_view name) -> std::optional<std::string_view> {
        auto it = request_headers.find(std::string(name));
        if (it == request_headers.end())
          return std::nullopt;
        return std::string_view(it->second);
      };
      meta.headers = &lookup;
      meta.sessions = &sessions;
      std::string body = c["request"].as<std::string>();
      RouteOutcome out = route(**snap, meta, body, random);
      const YAML::Node e = c["expect"];
      std::string action = e["action"] ? e["action"].as<std::string>() : "forward";
      if (action == "blocked") {
        // A guard answered: an OpenAI-shaped content_filter response, nothing upstream.
        ASSERT_EQ(out.action, RouteAction::Reply) << "routed to " << out.model->name;
        EXPECT_TRUE(out.blocked);
        EXPECT_EQ(out.reply_status, 200);
        EXPECT_EQ(out.model, nullptr);
        EXPECT_NE(out.reply_body.find("\"finish_reason\":\"content_filter\""), std::string::npos)
            << out.reply_body;
        if (e["decision"]) {
          EXPECT_EQ(out.decision, e["decision"].as<std::string>());
        }
        if (e["pii"]) {
          EXPECT_EQ(out.pii, e["pii"].as<std::string>());
        }
        if (e["message_contains"]) {
          EXPECT_NE(out.reply_body.find(e["message_contains"].as<std::string>()), std::string::npos)
              << out.reply_body;
        }
        if (e["stream"]) {
          EXPECT_EQ(out.reply_content_type, "text/event-stream");
          EXPECT_NE(out.reply_body.find("data: [DONE]"), std::string::npos);
        }
        if (e["headers"]) {
          for (const auto& kv : e["headers"]) {
            bool found = false;
            for (const auto& [k, v] : out.response_headers)
              if (k == kv.first.as<std::string>()) {
                found = true;
                EXPECT_EQ(v, kv.second.as<std::string>()) << k;
              }
            EXPECT_TRUE(found) << "missing header " << kv.first.as<std::string>();
          }
        }
        continue;
      }
      if (action == "reply") {
        ASSERT_EQ(out.action, RouteAction::Reply)
            << "routed to " << (out.model ? out.model->name : "?");
        if (e["status"]) {
          EXPECT_EQ(out.reply_status, e["status"].as<int>());
        }
        json err = json::parse(out.reply_body);
        ASSERT_TRUE(err.contains("error"));
        for (const char* k : {"message", "type", "param", "code"})
          EXPECT_TRUE(err["error"].contains(k)) << k;
        if (e["error_type"]) {
          EXPECT_EQ(err["error"]["type"], e["error_type"].as<std::string>());
        }
        if (e["error_code"]) {
          EXPECT_EQ(err["error"]["code"], e["error_code"].as<std::string>());
        }
        if (e["error_param"]) {
          EXPECT_EQ(err["error"]["param"], e["error_param"].as<std::string>());
        }
        if (e["error_message_contains"]) {
          EXPECT_NE(err["error"]["message"].get<std::string>().find(
                        e["error_message_contains"].as<std::string>()),
                    std::string::npos)
              << err.dump();
        }
        continue;
      }
      ASSERT_EQ(out.action, RouteAction::Forward) << out.reply_body;
      if (e["model"]) {
        EXPECT_EQ(out.model->name, e["model"].as<std::string>());
      }
      if (e["decision"]) {
        EXPECT_EQ(out.decision, e["decision"].as<std::string>());
      }
      if (e["reasoning"]) {
        EXPECT_EQ(out.reasoning, e["reasoning"].as<std::string>());
      }
      if (e["confidence"]) {
        EXPECT_DOUBLE_EQ(out.confidence, e["confidence"].as<double>());
      }
      if (e["matched_signals"]) {
        EXPECT_EQ(out.matched_signals, e["matched_signals"].as<std::vector<std::string>>());
      }
      if (e["headers"]) {
        for (const auto& kv : e["headers"]) {
          std::string want = kv.second.as<std::string>();
          bool found = false;
          for (const auto& [k, v] : out.response_headers) {
            if (k == kv.first.as<std::string>()) {
              found = true;
              EXPECT_EQ(v, want) << k;
            }
          }
          EXPECT_TRUE(found) << "missing header " << kv.first.as<std::string>();
        }
      }
      if (e["headers_absent"]) {
        for (const auto& h : e["headers_absent"])
          for (const auto& [k, v] : out.response_headers)
            EXPECT_NE(k, h.as<std::string>()) << "unexpected header " << k << ": " << v;
      }
      if (e["session"]) {
        EXPECT_EQ(out.session, e["session"].as<std::string>());
      }
      if (e["pii"]) {
        EXPECT_EQ(out.pii, e["pii"].as<std::string>());
      }
      if (e["upstream_headers"]) {
        for (const auto& kv : e["upstream_headers"]) {
          bool found = false;
          for (const auto& [k, v] : out.upstream_set_headers)
            if (k == kv.first.as<std::string>()) {
              found = true;
              EXPECT_EQ(v, kv.second.as<std::string>()) << k;
            }
          EXPECT_TRUE(found) << "missing upstream header " << kv.first.as<std::string>();
        }
      }
      if (e["upstream_remove"]) {
        EXPECT_EQ(out.upstream_remove_headers, e["upstream_remove"].as<std::vector<std::string>>());
      }
      if (e["body_unchanged"] && e["body_unchanged"].as<bool>()) {
        EXPECT_EQ(out.body, body);
      }
      json sent = json::parse(out.body);
      if (e["body"]) {
        for (const auto& kv : e["body"]) {
          json::json_pointer ptr(kv.first.as<std::string>());
          ASSERT_TRUE(sent.contains(ptr)) << "missing " << ptr.to_string() << " in " << out.body;
          EXPECT_EQ(sent[ptr], to_json(kv.second)) << ptr.to_string() << " in " << out.body;
        }
      }
      if (e["body_absent"]) {
        for (const auto& p : e["body_absent"]) {
          json::json_pointer ptr(p.as<std::string>());
          EXPECT_FALSE(sent.contains(ptr))
              << ptr.to_string() << " should be absent in " << out.body;
        }
      }
      // Whatever routing changes, the fields it does not own (or the case does not expect to
      // change) must be untouched.
      json original = json::parse(body);
      std::set<std::string> expected_changes{"model", "messages", "prompt", "chat_template_kwargs",
                                             "reasoning_effort"};
      for (const char* key : {"body", "body_absent"}) {
        if (!e[key])
          continue;
        const bool is_map = e[key].IsMap();
        for (const auto& item : e[key]) {
          std::string ptr = (is_map ? item.first : item).as<std::string>();
          expected_changes.insert(ptr.substr(1, ptr.find('/', 1) - 1));
        }
      }
      for (auto it = original.begin(); it != original.end(); ++it) {
        if (expected_changes.count(it.key()))
          continue;
        EXPECT_EQ(sent[it.key()], it.value()) << "field " << it.key() << " changed";
      }
    }
  }
  EXPECT_GE(total, 10u);
  std::printf("[ routing cases ] %zu cases in %zu files\n", total, files.size());
}

} // namespace
} // namespace semrouter::pipeline
