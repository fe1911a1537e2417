// The dashboard's server side: the activity ring and the traffic history (pipeline/activity),
// the `dashboard` config section, prompt redaction, the dry run's decision path, the config
// page's masking and diff, and the dashboard's JSON APIs and event stream.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <thread>

#include "dashboard/assets.h"
#include "dashboard/config_view.h"
#include "dashboard/dashboard.h"
#include "pipeline/activity.h"
#include "pipeline/exchange.h"
#include "pipeline/pipeline.h"

namespace semrouter {
namespace {

using pipeline::ActivityLog;
using pipeline::ActivityRecord;

constexpr int64_t kT0 = 1'700'000'000'000; // a bucket boundary (divisible by 10 s)

ActivityRecord rec(int64_t ms, std::string decision = "d", std::string model = "m",
                   int status = 200) {
  ActivityRecord r;
  r.unix_ms = ms;
  r.decision = std::move(decision);
  r.model = std::move(model);
  r.status = status;
  r.latency_ms = 10;
  return r;
}

ActivityLog::Options opts(size_t capacity, uint32_t bucket_s = 10, uint32_t history_s = 60) {
  ActivityLog::Options o;
  o.capacity = capacity;
  o.bucket_s = bucket_s;
  o.history_s = history_s;
  o.started_ms = 0; // no start bound
  return o;
}

// ---- the ring ----

TEST(ActivityRing, KeepsTheLatestRecordsInOrder) {
  ActivityLog log(opts(3));
  EXPECT_EQ(log.next_seq(), 1u);
  EXPECT_TRUE(log.latest(10).empty());
  for (int i = 0; i < 5; ++i)
    log.record(rec(kT0 + i, "d" + std::to_string(i)));
  EXPECT_EQ(log.next_seq(), 6u);
  auto latest = log.latest(10);
  ASSERT_EQ(latest.size(), 3u);
  EXPECT_EQ(latest[0].seq, 3u);
  EXPECT_EQ(latest[0].decision, "d2");
  EXPECT_EQ(latest[2].seq, 5u);
  EXPECT_EQ(latest[2].decision, "d4");
  auto two = log.latest(2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].seq, 4u);
}

TEST(ActivityRing, SinceAdvancesTheCursorAndCountsWhatWasOverwritten) {
  ActivityLog log(opts(4));
  for (int i = 0; i < 6; ++i)
    log.record(rec(kT0 + i));
  uint64_t cursor = 1, missed = 0;
  auto got = log.since(cursor, 100, &missed);
  EXPECT_EQ(missed, 2u); // seqs 1 and 2 are gone
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got.front().seq, 3u);
  EXPECT_EQ(cursor, 7u);
  EXPECT_TRUE(log.since(cursor, 100, &missed).empty());
  EXPECT_EQ(missed, 0u);
  log.record(rec(kT0 + 7));
  got = log.since(cursor, 100, &missed);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].seq, 7u);
  // `max` bounds one call; the next call goes on.
  cursor = 4;
  got = log.since(cursor, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].seq, 5u);
  EXPECT_EQ(cursor, 6u);
}

TEST(ActivityRing, ConcurrentWritersAndReadersLoseNothing) {
  ActivityLog log(opts(100000));
  constexpr int kThreads = 4, kEach = 5000;
  std::vector<std::thread> threads;
  std::atomic<bool> done{false};
  uint64_t seen = 0;
  std::thread reader([&] {
    uint64_t cursor = 1;
    while (!done.load()) {
      for (const auto& r : log.since(cursor, 1000)) {
        EXPECT_EQ(r.seq, seen + 1);
        seen = r.seq;
      }
    }
    for (const auto& r : log.since(cursor, 100000))
      seen = r.seq;
  });
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i)
        log.record(rec(kT0 + i, "d" + std::to_string(t)));
    });
  for (auto& th : threads)
    th.join();
  done = true;
  reader.join();
  EXPECT_EQ(seen, uint64_t(kThreads * kEach));
  auto h = log.history(kT0 + kEach, 60);
  uint64_t total = 0;
  for (const auto& b : h.buckets)
    total += b.requests;
  EXPECT_EQ(total, uint64_t(kThreads * kEach));
}

// ---- the history ----

TEST(ActivityHistory, BucketsCountOutcomesPerInterval) {
  ActivityLog log(opts(100, 10, 60));
  ActivityRecord a = rec(kT0 + 1000, "math", "qwen");
  a.prompt_tokens = 10;
  a.completion_tokens = 5;
  a.cost = 0.5;
  a.ttft_ms = 20;
  a.stream = true;
  a.signal_us.us[size_t(pipeline::signal_type_index("domain"))] = 40;
  log.record(ActivityRecord(a));
  ActivityRecord b = rec(kT0 + 2000, "math", "qwen", 502);
  b.fallback = "llama";
  b.signal_us.us[size_t(pipeline::signal_type_index("domain"))] = 60;
  log.record(ActivityRecord(b));
  ActivityRecord c = rec(kT0 + 12000, "code", "qwen", 200);
  c.cache = "hit";
  log.record(ActivityRecord(c));
  ActivityRecord d = rec(kT0 + 13000, "guard", "", 200);
  d.blocked = true;
  log.record(ActivityRecord(d));
  log.record(rec(kT0 + 14000, "", "", 404));
  log.record(rec(kT0 + 15000, "math", "qwen", 499));

  auto h = log.history(kT0 + 15000, 30);
  EXPECT_EQ(h.bucket_s, 10u);
  ASSERT_EQ(h.buckets.size(), 3u); // kT0-10 s (empty), kT0, kT0+10 s
  EXPECT_EQ(h.buckets[0].start_ms, kT0 - 10000);
  EXPECT_EQ(h.buckets[0].requests, 0u);
  const auto& b0 = h.buckets[1];
  EXPECT_EQ(b0.start_ms, kT0);
  EXPECT_EQ(b0.requests, 2u);
  EXPECT_EQ(b0.errors, 1u);
  EXPECT_EQ(b0.fallbacks, 1u);
  EXPECT_EQ(b0.streamed, 1u);
  EXPECT_EQ(b0.ttft_count, 1u);
  EXPECT_EQ(b0.signals[size_t(pipeline::signal_type_index("domain"))].count, 2u);
  EXPECT_DOUBLE_EQ(b0.signals[size_t(pipeline::signal_type_index("domain"))].sum_us, 100);
  EXPECT_FLOAT_EQ(b0.signals[size_t(pipeline::signal_type_index("domain"))].max_us, 60);
  // Per model: the answering model (a fallback's) gets the request.
  std::map<std::string, pipeline::NameTotals> models, decisions;
  for (const auto& m : b0.models)
    models[h.names[m.name]] = m;
  for (const auto& m : b0.decisions)
    decisions[h.names[m.name]] = m;
  EXPECT_EQ(models["qwen"].requests, 1u);
  EXPECT_EQ(models["qwen"].prompt_tokens, 10u);
  EXPECT_DOUBLE_EQ(models["qwen"].cost, 0.5);
  EXPECT_EQ(models["llama"].requests, 1u);
  EXPECT_EQ(models["llama"].errors, 1u);
  EXPECT_EQ(decisions["math"].requests, 2u);
  const auto& b1 = h.buckets[2];
  EXPECT_EQ(b1.requests, 4u);
  EXPECT_EQ(b1.cache_hits, 1u);
  EXPECT_EQ(b1.blocked, 1u);
  EXPECT_EQ(b1.client_errors, 1u);
  EXPECT_EQ(b1.aborted, 1u);
  EXPECT_EQ(b1.errors, 0u);
}

TEST(ActivityHistory, AnIntervalAnHourLaterReusesTheSlot) {
  ActivityLog log(opts(10, 10, 60)); // 6 slots
  log.record(rec(kT0));
  log.record(rec(kT0 + 60000)); // the same slot, a minute later
  auto h = log.history(kT0 + 60000, 60);
  ASSERT_EQ(h.buckets.size(), 6u);
  EXPECT_EQ(h.buckets.back().start_ms, kT0 + 60000);
  EXPECT_EQ(h.buckets.back().requests, 1u);
  for (size_t i = 0; i + 1 < h.buckets.size(); ++i)
    EXPECT_EQ(h.buckets[i].requests, 0u) << i;
  // A late record for the overwritten interval enters the ring but no bucket.
  log.record(rec(kT0 + 5));
  h = log.history(kT0 + 60000, 60);
  EXPECT_EQ(h.buckets.back().requests, 1u);
  EXPECT_EQ(log.latest(10).size(), 3u);
}

TEST(ActivityHistory, StartsNoEarlierThanTheProcess) {
  auto o = opts(10, 10, 3600);
  o.started_ms = kT0 + 25000;
  ActivityLog log(o);
  auto h = log.history(kT0 + 41000, 3600);
  ASSERT_EQ(h.buckets.size(), 3u); // the buckets of +20 s, +30 s, +40 s
  EXPECT_EQ(h.buckets.front().start_ms, kT0 + 20000);
}

TEST(ActivityHistory, NamesAreBounded) {
  ActivityLog log(opts(10, 10, 60));
  for (size_t i = 0; i < pipeline::kMaxHistoryNames + 50; ++i)
    log.record(rec(kT0, "d" + std::to_string(i), "m"));
  auto h = log.history(kT0, 10);
  EXPECT_LE(h.names.size(), pipeline::kMaxHistoryNames);
  EXPECT_EQ(h.names.back(), "(other)");
  uint32_t total = 0;
  for (const auto& d : h.buckets.back().decisions)
    total += d.requests;
  EXPECT_EQ(total, pipeline::kMaxHistoryNames + 50);
}

TEST(ActivityHistory, QuantilesFromTheFixedHistogram) {
  pipeline::LatencyHistogram h{};
  EXPECT_EQ(pipeline::histogram_quantile(h, 0.5), -1);
  for (int i = 0; i < 100; ++i)
    h[pipeline::latency_bin(i < 90 ? 10.0 : 1000.0)] += 1;
  const double p50 = pipeline::histogram_quantile(h, 0.5);
  const double p95 = pipeline::histogram_quantile(h, 0.95);
  // Within one bin (a factor of 1.4) of the truth.
  EXPECT_GT(p50, 10.0 / 1.4);
  EXPECT_LE(p50, 10.0 * 1.4);
  EXPECT_GT(p95, 1000.0 / 1.4);
  EXPECT_LE(p95, 1000.0 * 1.4);
  // Bins: the first covers up to 0.25 ms, each next one 1.4 times more; the last is overflow.
  EXPECT_EQ(pipeline::latency_bin(0), 0u);
  EXPECT_EQ(pipeline::latency_bin(0.25), 0u);
  EXPECT_EQ(pipeline::latency_bin(0.26), 1u);
  EXPECT_EQ(pipeline::latency_bin(1e9), pipeline::kLatencyBins);
  EXPECT_TRUE(std::isinf(pipeline::latency_bin_upper_ms(pipeline::kLatencyBins)));
  for (size_t i = 0; i < pipeline::kLatencyBins; ++i)
    EXPECT_EQ(pipeline::latency_bin(pipeline::latency_bin_upper_ms(i)), i) << i;
}

// ---- config ----

TEST(DashboardConfig, DefaultsAndKeys) {
  const std::string base = "backends: [{name: b, url: 'http://h:1'}]\nmodels: [{name: m, "
                           "backends: [b]}]\n";
  auto c = config::parse_config(base);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE((*c)->dashboard.enabled);
  EXPECT_FALSE((*c)->dashboard.show_prompts);
  EXPECT_EQ((*c)->dashboard.recent, 1000u);
  EXPECT_EQ((*c)->dashboard.bucket_s, 10u);
  EXPECT_EQ((*c)->dashboard.history_minutes, 60u);
  EXPECT_EQ((*c)->source, base);

  c = config::parse_config(base + "dashboard: {enabled: false, show_prompts: true, "
                                  "prompt_max_chars: 100, recent: 50, bucket_s: 5, "
                                  "history_minutes: 30}\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_FALSE((*c)->dashboard.enabled);
  EXPECT_TRUE((*c)->dashboard.show_prompts);
  EXPECT_EQ((*c)->dashboard.prompt_max_chars, 100u);
  EXPECT_EQ((*c)->dashboard.recent, 50u);
  EXPECT_EQ((*c)->dashboard.bucket_s, 5u);
  EXPECT_EQ((*c)->dashboard.history_minutes, 30u);

  c = config::parse_config(base + "dashboard: false\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_FALSE((*c)->dashboard.enabled);
}

TEST(DashboardConfig, ErrorsNameTheKey) {
  const std::string base = "backends: [{name: b, url: 'http://h:1'}]\nmodels: [{name: m, "
                           "backends: [b]}]\n";
  auto error = [&](const std::string& section) {
    auto c = config::parse_config(base + section);
    return c ? std::string("(accepted)") : c.error().message;
  };
  EXPECT_NE(
      error("dashboard: {show_prompt: true}\n").find("dashboard: unknown key \"show_prompt\""),
      std::string::npos)
      << error("dashboard: {show_prompt: true}\n");
  EXPECT_NE(error("dashboard: {recent: 5}\n").find("dashboard.recent"), std::string::npos);
  EXPECT_NE(error("dashboard: {bucket_s: 0}\n").find("dashboard.bucket_s"), std::string::npos);
  EXPECT_NE(error("dashboard: {show_prompts: maybe}\n").find("dashboard.show_prompts"),
            std::string::npos);
  const std::string too_many = error("dashboard: {bucket_s: 1, history_minutes: 1440}\n");
  EXPECT_NE(too_many.find("dashboard.bucket_s"), std::string::npos) << too_many;
  EXPECT_NE(too_many.find("86400 buckets"), std::string::npos) << too_many;
  EXPECT_NE(error("dashboard: [1]\n").find("dashboard"), std::string::npos);
}

// ---- routing: prompts, timings, the decision path ----

std::shared_ptr<const pipeline::Snapshot> snapshot_of(const std::string& yaml) {
  auto c = config::parse_config(yaml);
  EXPECT_TRUE(c) << c.error().message;
  auto s = pipeline::build_snapshot(*c, 1);
  EXPECT_TRUE(s) << s.error().message;
  return *s;
}

const char* kRoutingConfig = R"(
backends: [{name: b, url: 'http://127.0.0.1:1/v1'}]
models:
  - {name: a, backends: [b], pricing: {input_per_1m: 1000000, output_per_1m: 2000000}}
  - {name: c, backends: [b]}
signals:
  keywords:
    - {name: math, keywords: [integral]}
    - {name: urgent, keywords: [asap]}
    - {name: calm, keywords: [relax]}
decisions:
  - name: guard
    priority: 100
    rules: {keyword: urgent}
    models: [{model: c}]
    plugins: {block: {enabled: true, message: blocked}}
  - name: math
    priority: 10
    rules: {and: [{keyword: math}, {not: {keyword: calm}}]}
    models: [{model: a}]
)";

TEST(DashboardRouting, PromptIsRedactedAndCutOnlyWhenAsked) {
  auto snap = snapshot_of(kRoutingConfig);
  core::Random random(1);
  const std::string body =
      R"({"model":"auto","messages":[{"role":"user","content":"integral of my card 4111 1111 1111 1111, mail jo@example.com please"}]})";
  pipeline::RequestMeta meta;
  auto out = pipeline::route(*snap, meta, body, random);
  EXPECT_EQ(out.prompt, ""); // off unless asked
  meta.prompt_chars = 200;
  out = pipeline::route(*snap, meta, body, random);
  EXPECT_EQ(out.prompt, "integral of my card [CREDIT_CARD], mail [EMAIL] please");
  meta.prompt_chars = 20;
  out = pipeline::route(*snap, meta, body, random);
  EXPECT_EQ(out.prompt, "integral of my card ");
  // A cut through a number still hides it: it is found before the cut.
  meta.prompt_chars = 25;
  out = pipeline::route(*snap, meta, body, random);
  EXPECT_EQ(out.prompt, "integral of my card [CRED");
  EXPECT_EQ(out.prompt.find("4111"), std::string::npos);
}

TEST(DashboardRouting, SignalsAreTimedByType) {
  auto snap = snapshot_of(kRoutingConfig);
  core::Random random(1);
  pipeline::RequestMeta meta;
  meta.observe = true;
  auto out = pipeline::route(
      *snap, meta, R"({"model":"auto","messages":[{"role":"user","content":"an integral"}]})",
      random);
  const auto k = size_t(pipeline::signal_type_index("keyword"));
  EXPECT_GE(out.signal_us.us[k], 0.0f);
  EXPECT_LT(out.signal_us.us[size_t(pipeline::signal_type_index("domain"))], 0.0f);
}

// Every swap moves version() on (a gateway worker keeps its own copy of the snapshot until it
// does); a failed reload does not.
TEST(SnapshotStore, VersionCountsSwaps) {
  auto snap = snapshot_of(kRoutingConfig);
  pipeline::SnapshotStore store(snap);
  const uint64_t v0 = store.version();
  store.set(snapshot_of(kRoutingConfig));
  EXPECT_EQ(store.version(), v0 + 1);
  EXPECT_NE(store.get(), snap);
  EXPECT_FALSE(store.reload_from_file("/nonexistent/semrouter.yaml"));
  EXPECT_EQ(store.version(), v0 + 1);
  const std::string path = testing::TempDir() + "semrouter_version_test.yaml";
  std::ofstream(path) << kRoutingConfig;
  auto before = store.get();
  ASSERT_TRUE(store.reload_from_file(path));
  EXPECT_EQ(store.version(), v0 + 2);
  EXPECT_NE(store.get(), before);
  std::remove(path.c_str());
}

TEST(DashboardRouting, DryRunShowsEverySignalAndTheDecisionPath) {
  auto snap = snapshot_of(kRoutingConfig);
  pipeline::SnapshotStore store(snap);
  metrics::Registry registry;
  pipeline::Runtime rt(store, registry);
  core::Random random(1);
  pipeline::HeaderLookup headers = [](std::string_view) { return std::nullopt; };
  auto out = rt.dry_run(
      *snap, headers,
      R"({"model":"auto","messages":[{"role":"user","content":"an integral, relax"}]})", random);
  auto j = nlohmann::json::parse(pipeline::dry_run_body(out));
  // The existing fields stay.
  EXPECT_EQ(j["decision"], "default");
  EXPECT_TRUE(j.contains("body"));
  EXPECT_TRUE(j.contains("route_us"));
  EXPECT_EQ(j["signals"]["keyword:math"]["matched"], true);
  EXPECT_EQ(j["signals"]["keyword:calm"]["matched"], true);
  EXPECT_EQ(j["signals"]["keyword:urgent"]["matched"], false);
  const auto& path = j["decision_path"];
  EXPECT_EQ(path["strategy"], "priority");
  EXPECT_EQ(path["default"], true);
  ASSERT_EQ(path["decisions"].size(), 2u);
  EXPECT_EQ(path["decisions"][0]["name"], "guard");
  EXPECT_EQ(path["decisions"][0]["matched"], false);
  const auto& math = path["decisions"][1];
  EXPECT_EQ(math["name"], "math");
  EXPECT_EQ(math["matched"], false);
  EXPECT_EQ(math["chosen"], false);
  // and: [keyword:math ✓, not: [keyword:calm ✓] ✗] ✗
  EXPECT_EQ(math["rule"]["kind"], "and");
  EXPECT_EQ(math["rule"]["result"], false);
  EXPECT_EQ(math["rule"]["children"][0]["signal"], "keyword:math");
  EXPECT_EQ(math["rule"]["children"][0]["result"], true);
  EXPECT_EQ(math["rule"]["children"][1]["kind"], "not");
  EXPECT_EQ(math["rule"]["children"][1]["result"], false);
  EXPECT_EQ(math["rule"]["children"][1]["children"][0]["result"], true);

  out = rt.dry_run(*snap, headers,
                   R"({"model":"auto","messages":[{"role":"user","content":"an integral"}]})",
                   random);
  j = nlohmann::json::parse(pipeline::dry_run_body(out));
  EXPECT_EQ(j["decision"], "math");
  // The second route on this thread reuses the first one's signal entries: none of the first
  // request's results or evidence comes with them.
  EXPECT_EQ(j["signals"]["keyword:calm"]["matched"], false);
  EXPECT_TRUE(j["signals"]["keyword:calm"]["evidence"].empty()) << j["signals"].dump();
  EXPECT_EQ(j["signals"]["keyword:math"]["evidence"], nlohmann::json::array({"integral"}))
      << j["signals"].dump();
  EXPECT_EQ(j["decision_path"]["winner"], "math");
  EXPECT_EQ(j["decision_path"]["decisions"][1]["chosen"], true);
  EXPECT_EQ(j["decision_path"]["decisions"][1]["rule"]["result"], true);
  // A live route is not explained (no copies of the signals on the hot path).
  out =
      rt.route(*snap, openai::RequestKind::ChatCompletions, headers,
               R"({"model":"auto","messages":[{"role":"user","content":"an integral"}]})", random);
  EXPECT_EQ(out.explain, nullptr);
}

// ---- what the runtime records ----

TEST(DashboardRecording, RepliesAndExchangesAreRecorded) {
  auto snap = snapshot_of(kRoutingConfig);
  pipeline::SnapshotStore store(snap);
  metrics::Registry registry;
  pipeline::Runtime rt(store, registry);
  core::Random random(1);
  pipeline::HeaderLookup headers = [](std::string_view name) -> std::optional<std::string_view> {
    if (name == "x-tenant-id")
      return std::string_view("team-a");
    return std::nullopt;
  };
  // A guard's answer and a refusal: recorded by route().
  rt.route(*snap, openai::RequestKind::ChatCompletions, headers,
           R"({"model":"auto","messages":[{"role":"user","content":"asap"}]})", random);
  rt.route(*snap, openai::RequestKind::ChatCompletions, headers,
           R"({"model":"nope","messages":[{"role":"user","content":"x"}]})", random);
  // A forwarded request: recorded when its exchange finishes.
  auto out =
      rt.route(*snap, openai::RequestKind::ChatCompletions, headers,
               R"({"model":"auto","messages":[{"role":"user","content":"an integral"}]})", random);
  ASSERT_EQ(out.action, pipeline::RouteAction::Forward);
  EXPECT_EQ(rt.activity.next_seq(), 3u); // not yet
  {
    pipeline::Exchange ex(rt, out, core::SteadyClock::now());
    ex.response_head(200, true);
    ex.stream_bytes("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n");
    ex.stream_bytes(
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n");
    ex.fallback_to(*snap->config->find_model("c"));
    ex.finish(200);
  }
  // An exchange the client left.
  { pipeline::Exchange ex(rt, out, core::SteadyClock::now()); }
  auto recs = rt.activity.latest(10);
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[0].decision, "guard");
  EXPECT_TRUE(recs[0].blocked);
  EXPECT_EQ(recs[0].status, 200);
  EXPECT_EQ(recs[0].tenant, "team-a");
  EXPECT_EQ(recs[1].status, 404);
  EXPECT_EQ(recs[1].error, "model_not_found");
  EXPECT_EQ(recs[2].decision, "math");
  EXPECT_EQ(recs[2].model, "a");
  EXPECT_EQ(recs[2].fallback, "c");
  EXPECT_TRUE(recs[2].stream);
  EXPECT_EQ(recs[2].prompt_tokens, 3u);
  EXPECT_EQ(recs[2].completion_tokens, 4u);
  EXPECT_GE(recs[2].ttft_ms, 0);
  EXPECT_EQ(recs[2].signals, std::vector<std::string>{"keyword:math"});
  EXPECT_EQ(recs[2].prompt, ""); // show_prompts is off
  EXPECT_EQ(recs[3].status, 499);
  EXPECT_EQ(recs[3].fallback, "");
}

TEST(DashboardRecording, NothingIsRecordedWhenTheDashboardIsOff) {
  auto snap = snapshot_of(std::string(kRoutingConfig) + "dashboard: {enabled: false}\n");
  pipeline::SnapshotStore store(snap);
  metrics::Registry registry;
  pipeline::Runtime rt(store, registry);
  core::Random random(1);
  pipeline::HeaderLookup headers = [](std::string_view) { return std::nullopt; };
  auto out =
      rt.route(*snap, openai::RequestKind::ChatCompletions, headers,
               R"({"model":"auto","messages":[{"role":"user","content":"an integral"}]})", random);
  EXPECT_FALSE(out.observed);
  { pipeline::Exchange ex(rt, out, core::SteadyClock::now()); }
  rt.route(*snap, openai::RequestKind::ChatCompletions, headers, R"({"model":"nope"})", random);
  EXPECT_EQ(rt.activity.next_seq(), 1u);
  dashboard::Dashboard d(rt);
  EXPECT_FALSE(d.handle({"GET", "/", "", ""}));
  EXPECT_FALSE(d.handle({"GET", "/api/v1/dashboard/info", "", ""}));
  EXPECT_FALSE(d.is_stream("/api/v1/dashboard/events"));
}

// ---- the config page ----

TEST(ConfigView, MasksSecretsInBlockAndFlowStyle) {
  const std::string text = R"(backends:
  - name: hosted
    url: https://api.example.com/v1
    api_key: sk-live-123   # a comment stays
    api_key_env: OPENAI_KEY
  - {name: b, url: 'http://u:pa55@h:1/v1', api_key: "sk-x", weight: 2}
auth:
  admin_token_file: /run/token
  keys: [{name: k, sha256: abcdef0123}]
cache:
  redis: {url: 'redis://:hunter2@127.0.0.1:6379/0', password_env: REDIS_PW}
decisions:
  - plugins: {headers: {set: {Authorization: "Bearer abc", x-team: search}}}
    rules: {keyword: password_reset}
secret_ref: ${MY_SECRET}
max_tokens: 512
{"api_key": "sk-json", "name": "j"}
)";
  const std::string m = dashboard::mask_secrets(text);
  for (const char* leak :
       {"sk-live-123", "sk-x", "pa55", "abcdef0123", "hunter2", "Bearer abc", "sk-json"})
    EXPECT_EQ(m.find(leak), std::string::npos) << leak << " in\n" << m;
  EXPECT_NE(m.find("api_key: ********   # a comment stays"), std::string::npos) << m;
  EXPECT_NE(m.find("api_key: \"********\", weight: 2"), std::string::npos) << m;
  EXPECT_NE(m.find("http://u:********@h:1/v1"), std::string::npos) << m;
  EXPECT_NE(m.find("redis://:********@127.0.0.1"), std::string::npos) << m;
  EXPECT_NE(m.find("\"api_key\": \"********\", \"name\": \"j\""), std::string::npos) << m;
  // What is not a secret stays as written.
  for (const char* kept :
       {"api_key_env: OPENAI_KEY", "admin_token_file: /run/token", "password_env: REDIS_PW",
        "x-team: search", "keyword: password_reset", "secret_ref: ${MY_SECRET}", "max_tokens: 512",
        "url: https://api.example.com/v1"})
    EXPECT_NE(m.find(kept), std::string::npos) << kept << " in\n" << m;
  EXPECT_EQ(std::count(m.begin(), m.end(), '\n'), std::count(text.begin(), text.end(), '\n'));
}

TEST(ConfigView, SecretKeys) {
  for (const char* k : {"api_key", "API-KEY", "x-api-key", "authorization", "admin_token",
                        "password", "redis_password", "client_secret", "sha256", "token"})
    EXPECT_TRUE(dashboard::is_secret_key(k)) << k;
  for (const char* k : {"api_key_env", "admin_token_file", "password_env", "max_tokens",
                        "budget_tokens", "name", "url", "keys", "tokens_per_minute"})
    EXPECT_FALSE(dashboard::is_secret_key(k)) << k;
}

std::string render(const std::vector<dashboard::DiffLine>& d) {
  std::string s;
  for (const auto& l : d)
    s += std::string(1, l.op) + l.text + "\n";
  return s;
}

TEST(ConfigView, LineDiff) {
  EXPECT_EQ(render(dashboard::line_diff("a\nb\nc\n", "a\nb\nc\n")), " a\n b\n c\n");
  EXPECT_EQ(render(dashboard::line_diff("a\nb\nc", "a\nx\nc")), " a\n-b\n+x\n c\n");
  EXPECT_EQ(render(dashboard::line_diff("a\nc", "a\nb\nc")), " a\n+b\n c\n");
  EXPECT_EQ(render(dashboard::line_diff("a\nb\nc\nd", "b\nd\ne")), "-a\n b\n-c\n d\n+e\n");
  EXPECT_EQ(render(dashboard::line_diff("", "x")), "+x\n");
  EXPECT_EQ(render(dashboard::line_diff("x\r\ny", "x\ny")), " x\n y\n");
  // Too large for the table: the middle is replaced wholesale, still correct.
  std::string a, b;
  for (int i = 0; i < 3000; ++i) {
    a += "a" + std::to_string(i) + "\n";
    b += "b" + std::to_string(i) + "\n";
  }
  auto d = dashboard::line_diff(a, b);
  EXPECT_EQ(d.size(), 6000u);
  EXPECT_EQ(d.front().op, '-');
  EXPECT_EQ(d.back().op, '+');
}

// ---- the dashboard's answers ----

class DashboardApi : public ::testing::Test {
protected:
  void SetUp() override {
    snap_ = snapshot_of(std::string(kRoutingConfig) + "dashboard: {show_prompts: true}\n");
    store_ = std::make_unique<pipeline::SnapshotStore>(snap_);
    rt_ = std::make_unique<pipeline::Runtime>(*store_, registry_);
    dash_ = std::make_unique<dashboard::Dashboard>(*rt_);
  }
  nlohmann::json get(std::string_view path, std::string_view query = "") {
    auto r = dash_->handle({"GET", path, query, ""});
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->content_type, "application/json");
    return nlohmann::json::parse(r->body);
  }
  void route(std::string_view content) {
    core::Random random(1);
    pipeline::HeaderLookup headers = [](std::string_view) { return std::nullopt; };
    std::string body = R"({"model":"auto","messages":[{"role":"user","content":")" +
                       std::string(content) + R"("}]})";
    auto out = rt_->route(*snap_, openai::RequestKind::ChatCompletions, headers, body, random);
    if (out.action == pipeline::RouteAction::Forward) {
      pipeline::Exchange ex(*rt_, out, core::SteadyClock::now());
      ex.response_head(200, false);
      ex.body(R"({"usage":{"prompt_tokens":2,"completion_tokens":3}})");
      ex.finish(200);
    }
  }
  metrics::Registry registry_;
  std::shared_ptr<const pipeline::Snapshot> snap_;
  std::unique_ptr<pipeline::SnapshotStore> store_;
  std::unique_ptr<pipeline::Runtime> rt_;
  std::unique_ptr<dashboard::Dashboard> dash_;
};

TEST_F(DashboardApi, PagesAndAssets) {
  for (std::string_view path : {"/", "/ui", "/ui/", "/index.html"}) {
    auto r = dash_->handle({"GET", path, "", ""});
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->content_type, "text/html; charset=utf-8");
    EXPECT_NE(r->body.find("data-token-required=\"false\""), std::string::npos);
    EXPECT_EQ(r->body.find("%BASE%"), std::string::npos);
    EXPECT_NE(r->body.find("/ui/" + std::string(dashboard::assets_version()) + "/app.js"),
              std::string::npos);
  }
  const std::string base = "/ui/" + std::string(dashboard::assets_version()) + "/";
  struct Want {
    const char* file;
    const char* type;
  };
  for (auto [file, type] : {Want{"app.js", "text/javascript; charset=utf-8"},
                            Want{"style.css", "text/css; charset=utf-8"},
                            Want{"vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"},
                            Want{"vendor/uPlot.min.css", "text/css; charset=utf-8"},
                            Want{"favicon.svg", "image/svg+xml"},
                            Want{"pages/live.js", "text/javascript; charset=utf-8"}}) {
    auto r = dash_->handle({"GET", base + file, "", ""});
    ASSERT_TRUE(r) << file;
    EXPECT_EQ(r->status, 200) << file;
    EXPECT_EQ(r->content_type, type) << file;
    EXPECT_FALSE(r->body.empty());
    bool immutable = false;
    for (const auto& [k, v] : r->headers)
      immutable = immutable || (k == "cache-control" && v.find("immutable") != std::string::npos);
    EXPECT_TRUE(immutable) << file;
  }
  // An older build's URL still works, uncached; an unknown file is a 404; a POST is a 405.
  auto old = dash_->handle({"GET", "/ui/0123456789ab/app.js", "", ""});
  ASSERT_TRUE(old);
  EXPECT_EQ(old->status, 200);
  EXPECT_EQ(dash_->handle({"GET", base + "nope.js", "", ""})->status, 404);
  EXPECT_EQ(dash_->handle({"POST", "/api/v1/dashboard/info", "", ""})->status, 405);
  EXPECT_EQ(dash_->handle({"GET", "/api/v1/dashboard/nope", "", ""})->status, 404);
  // Not the dashboard's: the gateway answers.
  EXPECT_FALSE(dash_->handle({"GET", "/metrics", "", ""}));
  EXPECT_FALSE(dash_->handle({"GET", "/api/v1/route", "", ""}));
  EXPECT_TRUE(dashboard::Dashboard::is_public("/"));
  EXPECT_TRUE(dashboard::Dashboard::is_public(base + "app.js"));
  EXPECT_FALSE(dashboard::Dashboard::is_public("/api/v1/dashboard/info"));
  EXPECT_FALSE(dashboard::Dashboard::is_public("/metrics"));
}

TEST_F(DashboardApi, DecisionsTrafficAndInfo) {
  route("an integral with card 4111 1111 1111 1111");
  route("asap");
  auto info = get("/api/v1/dashboard/info");
  EXPECT_EQ(info["generation"], 1);
  EXPECT_EQ(info["show_prompts"], true);
  EXPECT_EQ(info["models"], nlohmann::json({"a", "c"}));
  EXPECT_EQ(info["next_seq"], 3);

  auto d = get("/api/v1/dashboard/decisions", "limit=10");
  ASSERT_EQ(d["decisions"].size(), 2u);
  const auto& first = d["decisions"][0];
  EXPECT_EQ(first["decision"], "math");
  EXPECT_EQ(first["model"], "a");
  EXPECT_EQ(first["prompt"], "an integral with card [CREDIT_CARD]");
  EXPECT_EQ(first["prompt_tokens"], 2);
  EXPECT_EQ(first["cost"], 8.0); // 2 × $1 + 3 × $2 (per token, this config's prices)
  EXPECT_EQ(d["decisions"][1]["blocked"], true);
  EXPECT_EQ(get("/api/v1/dashboard/decisions", "since=2")["decisions"].size(), 1u);
  auto bad = dash_->handle({"GET", "/api/v1/dashboard/decisions", "limit=x", ""});
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("limit"), std::string::npos);

  auto t = get("/api/v1/dashboard/traffic", "seconds=60");
  ASSERT_GE(t["t"].size(), 1u);
  EXPECT_EQ(t["bucket_s"], 10);
  EXPECT_EQ(t["totals"]["requests"], 2);
  EXPECT_EQ(t["totals"]["blocked"], 1);
  // Summed over the series: a 10-s bucket may have turned between the requests and this read.
  auto sum = [](const nlohmann::json& series) {
    double total = 0;
    for (const auto& v : series)
      total += v.get<double>();
    return total;
  };
  EXPECT_EQ(sum(t["models"]["a"]["tokens"]), 5.0);
  EXPECT_EQ(sum(t["decisions"]["guard"]["requests"]), 1.0);
  EXPECT_TRUE(t["signals"].contains("keyword"));
  EXPECT_EQ(t["t"].size(), t["rps"].size());
  EXPECT_EQ(t["t"].size(), t["latency_ms"]["p95"].size());
}

TEST_F(DashboardApi, EventStream) {
  route("an integral");
  EXPECT_TRUE(dash_->is_stream("/api/v1/dashboard/events"));
  EXPECT_FALSE(dash_->is_stream("/api/v1/dashboard/info"));
  uint64_t cursor = 0;
  std::string first =
      dash_->stream_open({"GET", "/api/v1/dashboard/events", "backlog=5", ""}, cursor);
  EXPECT_EQ(first.rfind("retry: ", 0), 0u) << first;
  EXPECT_NE(first.find("event: hello\n"), std::string::npos);
  EXPECT_NE(first.find("id: 1\nevent: decision\ndata: {"), std::string::npos) << first;
  EXPECT_EQ(dash_->stream_next(cursor), "");
  route("asap");
  std::string next = dash_->stream_next(cursor);
  EXPECT_EQ(next.rfind("id: 2\nevent: decision\ndata: ", 0), 0u) << next;
  EXPECT_EQ(next.substr(next.size() - 2), "\n\n");
  auto j = nlohmann::json::parse(next.substr(next.find("data: ") + 6));
  EXPECT_EQ(j["decision"], "guard");
  // Without a backlog, only what comes next.
  std::string none =
      dash_->stream_open({"GET", "/api/v1/dashboard/events", "backlog=0", ""}, cursor);
  EXPECT_EQ(none.find("event: decision"), std::string::npos);
}

TEST_F(DashboardApi, ConfigWithPreviousGenerationAndLastError) {
  auto c = get("/api/v1/dashboard/config");
  EXPECT_EQ(c["generation"], 1);
  EXPECT_TRUE(c["previous"].is_null());
  EXPECT_TRUE(c["last_error"].is_null());
  EXPECT_NE(c["config"].get<std::string>().find("name: guard"), std::string::npos);

  const std::string path = ::testing::TempDir() + "dashboard_test_config.yaml";
  std::string next = std::string(kRoutingConfig) + "dashboard: {show_prompts: false}\n";
  next.replace(next.find("priority: 10\n"), 13, "priority: 20\n");
  std::ofstream(path) << next;
  ASSERT_TRUE(store_->reload_from_file(path));
  std::ofstream(path) << "models: [";
  ASSERT_FALSE(store_->reload_from_file(path));
  c = get("/api/v1/dashboard/config");
  EXPECT_EQ(c["generation"], 2);
  EXPECT_EQ(c["previous"]["generation"], 1);
  EXPECT_EQ(c["previous"]["added"], 2);
  EXPECT_EQ(c["previous"]["removed"], 2);
  EXPECT_NE(c["last_error"].get<std::string>().find("YAML syntax error"), std::string::npos);
  bool saw = false;
  for (const auto& l : c["diff"])
    saw = saw || (l[0] == "+" && l[1] == "    priority: 20");
  EXPECT_TRUE(saw) << c["diff"].dump();
  std::remove(path.c_str());
}

} // namespace
} // namespace semrouter
