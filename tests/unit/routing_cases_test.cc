// Data-driven routing cases: every tests/cases/routing/*.yaml holds a config and a list of
// requests with the decision, model, rewritten body fields and headers each must produce.
// A new routing bug becomes a new case in YAML, not new test code.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "pipeline/pipeline.h"

namespace semrouter::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// YAML scalar -> JSON value: quoted scalars are strings; plain ones may be bool, null or numbers.
json to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    json o = json::object();
    for (const auto& kv : n)
      o[kv.first.Scalar()] = to_json(kv.second);
    return o;
  }
  if (n.IsSequence()) {
    json a = json::array();
    for (const auto& e : n)
      a.push_back(to_json(e));
    return a;
  }
  if (n.IsNull())
    return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() == "!")
    return s;
  if (s == "true")
    return true;
  if (s == "false")
    return false;
  if (s == "null" || s == "~")
    return nullptr;
  try {
    size_t used = 0;
    long long i = std::stoll(s, &used);
    if (used == s.size())
      return i;
    double d = std::stod(s, &used);
    if (used == s.size())
      return d;
  } catch (...) {
  }
  return s;
}

struct CaseFile {
  fs::path path;
  YAML::Node root;
};

std::vector<CaseFile> load_case_files() {
  std::vector<CaseFile> files;
  fs::path dir = fs::path(SEMROUTER_SOURCE_DIR) / "tests" / "cases" / "routing";
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml")
      continue;
    files.push_back({entry.path(), YAML::LoadFile(entry.path().string())});
  }
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  return files;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(RoutingCases, AllCaseFiles) {
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
    auto snap = build_snapshot(*config, 1);
    ASSERT_TRUE(snap) << snap.error().message;
    core::Random random(f.root["seed"] ? f.root["seed"].as<uint64_t>() : 1);

    for (const auto& c : f.root["cases"]) {
      ++total;
      std::string name = c["name"].as<std::string>();
      SCOPED_TRACE(name);
      RequestMeta meta;
      if (c["endpoint"] && c["endpoint"].as<std::string>() == "completions")
        meta.kind = openai::RequestKind::Completions;
      std::string body = c["request"].as<std::string>();
      RouteOutcome out = route(**snap, meta, body, random);
      const YAML::Node e = c["expect"];
      std::string action = e["action"] ? e["action"].as<std::string>() : "forward";
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
      // Whatever routing changes, the fields it does not own must be untouched.
      json original = json::parse(body);
      for (auto it = original.begin(); it != original.end(); ++it) {
        static const std::set<std::string> kRouted{"model", "messages", "chat_template_kwargs",
                                                   "reasoning_effort"};
        if (kRouted.count(it.key()))
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
