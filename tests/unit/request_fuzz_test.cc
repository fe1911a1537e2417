// Property test over client-controlled bytes: random mutations of valid bodies must never crash
// the parser or the router, and whenever a body is accepted, the rewritten body must be valid
// JSON in which every field the router does not own is unchanged. Seeded: deterministic.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "pipeline/pipeline.h"

namespace semrouter::pipeline {
namespace {

using nlohmann::json;

const char* kSeeds[] = {
    R"({"model":"auto","messages":[{"role":"user","content":"prove the theorem"}]})",
    R"({"model":"auto","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"solve x"}],"temperature":0.5})",
    R"( { "model" : "MoM" , "messages" : [ { "role" : "user" , "content" : [ {"type":"text","text":"an integral"} ] } ] , "x" : {"a":[1,2,{"b":"\"}"}]} } )",
    R"({"model":"auto","messages":[{"role":"system","content":null},{"role":"user","content":"urgent: step by step"}],"chat_template_kwargs":{"enable_thinking":false}})",
    R"({"model":"gpt","messages":[{"role":"user","content":"hi"}]})",
    R"({"model":"auto","messages":[{"role":"user","content":"python \u00e9 \\ \" \n"}],"tools":[{"type":"function"}],"stream":true})",
};

const char* kConfig = R"(
backends: [{name: b, url: 'http://127.0.0.1:9/v1'}]
models:
  - {name: q, upstream_model: org/q, backends: [b], reasoning_family: qwen3}
  - {name: g, upstream_model: org/g, backends: [b], reasoning_family: gpt-oss}
  - {name: gpt, backends: [b]}
signals:
  keywords:
    - {name: math, keywords: [prove, solve, integral]}
    - {name: code, keywords: [python]}
decisions:
  - name: math
    rules: {keyword: math}
    models: [{model: q, reasoning: true}]
    plugins: {system_prompt: {mode: insert, content: "Think \"carefully\"."}}
  - name: code
    rules: {keyword: code}
    models: [{model: g, reasoning: true, effort: high}]
    plugins: {system_prompt: {mode: replace, content: "Code."}}
)";

std::string mutate(std::string s, core::Random& r) {
  static const char kBytes[] = "{}[],:\"\\ ntrufalse0123456789.-eE\x00\xff\xc3\xa9";
  int edits = 1 + static_cast<int>(r.next() % 4);
  for (int i = 0; i < edits; ++i) {
    size_t pos = s.empty() ? 0 : r.next() % s.size();
    switch (r.next() % 4) {
    case 0: // delete a run
      s.erase(pos, 1 + r.next() % 4);
      break;
    case 1: // insert a byte
      s.insert(s.begin() + static_cast<long>(pos), kBytes[r.next() % (sizeof(kBytes) - 1)]);
      break;
    case 2: // overwrite a byte
      if (!s.empty())
        s[pos] = kBytes[r.next() % (sizeof(kBytes) - 1)];
      break;
    case 3: // duplicate a slice
      if (!s.empty())
        s.insert(pos, s.substr(r.next() % s.size(), 1 + r.next() % 12));
      break;
    }
  }
  return s;
}

TEST(RequestFuzz, MutatedBodiesNeverCrashAndAcceptedOnesStayValid) {
  auto config = config::parse_config(kConfig);
  ASSERT_TRUE(config) << config.error().message;
  auto snap = build_snapshot(*config, 1);
  ASSERT_TRUE(snap);
  core::Random r(20261122);
  core::Random route_random(1);
  size_t accepted = 0, rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string body = mutate(kSeeds[iter % (sizeof(kSeeds) / sizeof(kSeeds[0]))], r);
    RequestMeta meta;
    RouteOutcome out = route(**snap, meta, body, route_random);
    if (out.action == RouteAction::Reply) {
      ++rejected;
      json err = json::parse(out.reply_body, nullptr, false);
      ASSERT_FALSE(err.is_discarded()) << out.reply_body;
      ASSERT_TRUE(err.contains("error")) << out.reply_body;
      continue;
    }
    ++accepted;
    json original = json::parse(body, nullptr, false);
    json sent = json::parse(out.body, nullptr, false);
    ASSERT_FALSE(sent.is_discarded())
        << "invalid JSON sent upstream\nin:  " << body << "\nout: " << out.body;
    if (original.is_discarded())
      continue; // simdjson accepted what nlohmann rejects (e.g. raw bytes)
    for (auto it = original.begin(); it != original.end(); ++it) {
      if (it.key() == "model" || it.key() == "messages" || it.key() == "chat_template_kwargs" ||
          it.key() == "reasoning_effort")
        continue;
      ASSERT_EQ(sent[it.key()], it.value())
          << it.key() << "\nin:  " << body << "\nout: " << out.body;
    }
    ASSERT_EQ(sent["messages"].size() >= original["messages"].size(), true) << body;
  }
  // The mutations must exercise both outcomes, or the test proves nothing.
  EXPECT_GT(accepted, 1000u);
  EXPECT_GT(rejected, 1000u);
}

TEST(RequestFuzz, ScannerNeverReadsPastTheEnd) {
  core::Random r(7);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s = mutate(kSeeds[iter % (sizeof(kSeeds) / sizeof(kSeeds[0]))], r);
    auto fields = openai::scan_top_level(s);
    if (!fields)
      continue;
    for (const auto& f : *fields) {
      ASSERT_LE(f.value.begin, f.value.end);
      ASSERT_LE(f.value.end, s.size());
    }
  }
}

} // namespace
} // namespace semrouter::pipeline
