// The `resilience` config section, upstream health (outlier detection, health-check state,
// circuit breakers, the retry budget, fallback plans), admission control, and the body a
// fallback model is sent.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "metrics/metrics.h"
#include "pipeline/admission.h"
#include "pipeline/exchange.h"
#include "pipeline/upstream_health.h"

namespace semrouter::pipeline {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

const char* kBase = R"(
backends:
  - {name: a, url: "http://127.0.0.1:1/v1"}
  - {name: b, url: "http://127.0.0.1:2/v1", weight: 5}
  - {name: c, url: "http://127.0.0.1:3/v1"}
  - {name: d, url: "http://127.0.0.1:4/v1"}
models:
  - {name: m1, backends: [a, b], reasoning_family: qwen3}
  - {name: m2, backends: [c], reasoning_family: deepseek}
  - {name: m3, backends: [d], max_concurrent: 1}
)";

std::shared_ptr<const config::Config> load(const std::string& extra = "") {
  auto c = config::parse_config(std::string(kBase) + extra);
  EXPECT_TRUE(c) << c.error().message;
  return c ? *c : nullptr;
}

std::string error_of(const std::string& extra) {
  auto c = config::parse_config(std::string(kBase) + extra);
  return c ? "" : c.error().message;
}

// ---- config ----

TEST(ResilienceConfig, DefaultsWithoutTheSection) {
  auto c = load();
  const auto& r = c->resilience;
  EXPECT_EQ(r.retries.max_retries, 2u);
  EXPECT_EQ(r.outlier.consecutive_failures, 5u);
  EXPECT_EQ(r.health_checks.interval_ms, 0u);
  EXPECT_EQ(r.limits.max_concurrent, 0u);
  EXPECT_EQ(c->backends[0].circuit_breaker.max_requests, 1024u);
  EXPECT_EQ(c->backends[0].health_check_path, "/health");
  EXPECT_EQ(c->find_model("m3")->max_concurrent, 1u);
  EXPECT_EQ(c->server.drain_timeout_ms, 5000u);
}

TEST(ResilienceConfig, EveryKeyAndBackendOverrides) {
  auto c = config::parse_config(R"(
server: {drain_timeout_ms: 20000}
backends:
  - name: a
    url: "http://127.0.0.1:1/v1"
    circuit_breaker: {max_requests: 7}
    health_check: {path: /ping}
  - name: b
    url: "https://api.example.com/v1"
    health_check: {enabled: false}
models:
  - {name: m1, backends: [a]}
  - {name: m2, backends: [b]}
decisions:
  - {name: d, rules: always, models: [m1], fallback: [m2]}
resilience:
  retries: {max_retries: 3, backoff_ms: 10, max_backoff_ms: 100, max_retry_after_ms: 2000,
            budget_percent: 10, min_retry_concurrency: 1}
  outlier_detection: {consecutive_failures: 2, base_ejection_ms: 1000, max_ejection_ms: 4000,
                      max_ejected_percent: 100}
  health_checks: {interval_ms: 500, timeout_ms: 200, path: /healthz, unhealthy_threshold: 1,
                  healthy_threshold: 1}
  circuit_breaker: {max_connections: 10, max_pending: 5, max_requests: 20}
  limits: {max_concurrent: 64, max_queue: 8, queue_timeout_ms: 100, deadline_header: X-Deadline}
)");
  ASSERT_TRUE(c) << c.error().message;
  const auto& cfg = **c;
  EXPECT_EQ(cfg.resilience.retries.max_retries, 3u);
  EXPECT_EQ(cfg.resilience.retries.budget_percent, 10);
  EXPECT_EQ(cfg.resilience.outlier.max_ejection_ms, 4000u);
  EXPECT_EQ(cfg.resilience.limits.deadline_header, "x-deadline");
  // A partial override inherits the section's other limits.
  EXPECT_EQ(cfg.backends[0].circuit_breaker.max_requests, 7u);
  EXPECT_EQ(cfg.backends[0].circuit_breaker.max_pending, 5u);
  EXPECT_TRUE(cfg.backends[0].circuit_breaker_set);
  EXPECT_EQ(cfg.backends[0].health_check_path, "/ping");
  EXPECT_EQ(cfg.backends[1].health_check_path, "/healthz");
  EXPECT_FALSE(cfg.backends[1].health_check_enabled);
  EXPECT_EQ(cfg.backends[1].circuit_breaker.max_requests, 20u);
  EXPECT_EQ(cfg.decisions[0].fallback, std::vector<std::string>{"m2"});
  EXPECT_EQ(cfg.server.drain_timeout_ms, 20000u);
}

TEST(ResilienceConfig, ErrorsNameTheKeyAndTheReason) {
  EXPECT_NE(error_of("resilience: {retry: {}}\n").find("resilience: unknown key \"retry\""),
            std::string::npos)
      << error_of("resilience: {retry: {}}\n");
  EXPECT_NE(error_of("resilience: {retries: {backoff_ms: 50, max_backoff_ms: 10}}\n")
                .find("resilience.retries.max_backoff_ms: is below backoff_ms"),
            std::string::npos);
  EXPECT_NE(
      error_of("resilience: {retries: {max_retries: 11}}\n").find("resilience.retries.max_retries"),
      std::string::npos);
  EXPECT_NE(error_of("resilience: {health_checks: {interval_ms: 50}}\n").find("below 100 ms"),
            std::string::npos);
  EXPECT_NE(error_of("resilience: {health_checks: {path: health}}\n").find("is not a path"),
            std::string::npos);
  EXPECT_NE(error_of("decisions:\n  - {name: d, rules: always, models: [m1], fallback: [zz]}\n")
                .find("decisions[0].fallback[0]: unknown model \"zz\""),
            std::string::npos);
  EXPECT_NE(error_of("decisions:\n  - {name: d, rules: always, models: [m1], fallback: [m2, m2]}\n")
                .find("listed twice"),
            std::string::npos);
  auto bad_backend = config::parse_config(R"(
backends:
  - {name: a, url: "http://127.0.0.1:1/v1", circuit_breaker: {max_request: 1}}
models: [{name: m, backends: [a]}]
)");
  ASSERT_FALSE(bad_backend);
  EXPECT_NE(bad_backend.error().message.find("backends[0].circuit_breaker: unknown key"),
            std::string::npos)
      << bad_backend.error().message;
}

// ---- upstream health ----

struct HealthFixture : ::testing::Test {
  metrics::Registry registry;
  UpstreamHealth health{registry};
  core::Random random{42};
  core::TimePoint t0 = core::SteadyClock::now();

  void use(const config::Config& c, uint64_t generation = 1) { health.configure(c, generation); }
  BackendState state_of(const char* name, core::TimePoint now) {
    return health.state(*health.backend(name), now);
  }
  void fail(const char* name, int n, core::TimePoint now) {
    for (int i = 0; i < n; ++i)
      health.record_failure(*health.backend(name), "connect", now);
  }
};

TEST_F(HealthFixture, ConsecutiveFailuresEjectForAGrowingCappedInterval) {
  auto c = load("resilience: {outlier_detection: {consecutive_failures: 3, base_ejection_ms: "
                "1000, max_ejection_ms: 2500}}\n");
  use(*c);
  fail("a", 2, t0);
  health.record_success(*health.backend("a")); // a success in between starts the count over
  fail("a", 2, t0);
  EXPECT_EQ(state_of("a", t0), BackendState::Available);
  fail("a", 1, t0);
  EXPECT_EQ(state_of("a", t0), BackendState::Ejected);
  EXPECT_EQ(state_of("a", t0 + milliseconds(999)), BackendState::Ejected);
  EXPECT_EQ(state_of("a", t0 + milliseconds(1001)), BackendState::Available);
  // Ejected again soon after: twice the base; the third time the cap (2500, not 3000).
  auto t1 = t0 + milliseconds(1100);
  fail("a", 3, t1);
  EXPECT_EQ(state_of("a", t1 + milliseconds(1999)), BackendState::Ejected);
  EXPECT_EQ(state_of("a", t1 + milliseconds(2001)), BackendState::Available);
  auto t2 = t1 + milliseconds(2100);
  fail("a", 3, t2);
  EXPECT_EQ(state_of("a", t2 + milliseconds(2499)), BackendState::Ejected);
  EXPECT_EQ(state_of("a", t2 + milliseconds(2501)), BackendState::Available);
  // Clean for longer than the base interval: the next ejection is the base again.
  auto t3 = t2 + milliseconds(2500 + 1500);
  fail("a", 3, t3);
  EXPECT_EQ(state_of("a", t3 + milliseconds(1001)), BackendState::Available);
  auto page = json::parse(health.json(*c, t3));
  EXPECT_EQ(page["backends"][0]["name"], "a");
  EXPECT_EQ(page["backends"][0]["ejections_total"], 4);
  EXPECT_EQ(page["backends"][0]["state"], "ejected");
  EXPECT_EQ(page["backends"][0]["last_failure"], "connect");
}

TEST_F(HealthFixture, TheShareEjectedIsCapped) {
  // Four backends, at most 50%: two may be out at once, a third stays in.
  auto c = load("resilience: {outlier_detection: {consecutive_failures: 1, max_ejected_percent: "
                "50}}\n");
  use(*c);
  fail("a", 1, t0);
  fail("b", 1, t0);
  fail("c", 1, t0);
  EXPECT_EQ(state_of("a", t0), BackendState::Ejected);
  EXPECT_EQ(state_of("b", t0), BackendState::Ejected);
  EXPECT_EQ(state_of("c", t0), BackendState::Available);
  // 0%: still one may go (a dead backend must not be tried first forever).
  auto z = load("resilience: {outlier_detection: {consecutive_failures: 1, max_ejected_percent: "
                "0}}\n");
  use(*z, 2);
  fail("d", 1, t0);
  EXPECT_EQ(state_of("d", t0), BackendState::Available); // a and b are still out
}

TEST_F(HealthFixture, PlanSkipsEjectedBackendsThenTriesFallbacksThenPanics) {
  auto c = load("resilience: {outlier_detection: {consecutive_failures: 1, max_ejected_percent: "
                "100}}\n");
  use(*c);
  const auto& m1 = *c->find_model("m1");
  bool panic = true;
  auto plan = health.plan(*c, m1, {"m2"}, random, t0, &panic);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_FALSE(panic);
  EXPECT_EQ(plan[2].model->name, "m2");
  EXPECT_EQ(plan[2].backend->name, "c");
  for (const auto& t : plan) // each target carries its backend's state for the attempt
    EXPECT_EQ(t.health, health.backend(t.backend->name)) << t.backend->name;
  fail("b", 1, t0);
  plan = health.plan(*c, m1, {"m2"}, random, t0, &panic);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].backend->name, "a"); // the heavy backend is out: never tried first
  fail("a", 1, t0);
  plan = health.plan(*c, m1, {"m2"}, random, t0, &panic);
  // Every own backend out: the fallback's available one first, then the own ones anyway (one
  // may have recovered), as docs/config.md says.
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_FALSE(panic);
  EXPECT_EQ(plan[0].model->name, "m2");
  EXPECT_EQ(plan[1].model->name, "m1");
  EXPECT_EQ(plan[2].model->name, "m1");
  fail("c", 1, t0);
  plan = health.plan(*c, m1, {"m2"}, random, t0, &panic);
  EXPECT_TRUE(panic); // nothing available: the model's own backends anyway
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].model->name, "m1");
  for (const auto& t : plan) // the panic targets too
    EXPECT_EQ(t.health, health.backend(t.backend->name)) << t.backend->name;
}

TEST_F(HealthFixture, HealthChecksNeedThresholdsInARow) {
  auto c = load("resilience: {health_checks: {interval_ms: 1000, unhealthy_threshold: 2, "
                "healthy_threshold: 3}}\n");
  use(*c);
  auto a = health.backend("a");
  health.record_check(*a, false, "refused");
  health.record_check(*a, true, "");
  health.record_check(*a, false, "refused");
  EXPECT_EQ(health.state(*a, t0), BackendState::Available);
  health.record_check(*a, false, "refused");
  EXPECT_EQ(health.state(*a, t0), BackendState::Unhealthy);
  health.record_check(*a, true, "");
  health.record_check(*a, true, "");
  EXPECT_EQ(health.state(*a, t0), BackendState::Unhealthy);
  health.record_check(*a, true, "");
  EXPECT_EQ(health.state(*a, t0), BackendState::Available);
  // Unhealthy backends leave the plan like ejected ones.
  health.record_check(*a, false, "x");
  health.record_check(*a, false, "x");
  auto plan = health.plan(*c, *c->find_model("m1"), {}, random, t0);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].backend->name, "b");
  // A reload that turns the checks off makes it healthy again.
  auto off = load();
  use(*off, 2);
  EXPECT_EQ(health.state(*a, t0), BackendState::Available);
}

TEST_F(HealthFixture, TurningOutlierDetectionOffEndsEjectionsAndOlderConfigsDoNotComeBack) {
  auto c = load("resilience: {outlier_detection: {consecutive_failures: 1, base_ejection_ms: "
                "60000}}\n");
  use(*c, 1);
  fail("a", 1, t0);
  EXPECT_EQ(health.state(*health.backend("a"), t0), BackendState::Ejected);
  auto off = load("resilience: {outlier_detection: {consecutive_failures: 0}}\n");
  use(*off, 2);
  EXPECT_EQ(health.state(*health.backend("a"), t0), BackendState::Available);
  // A request still on generation 1 does not put its settings back.
  use(*c, 1);
  fail("a", 1, t0);
  EXPECT_EQ(health.state(*health.backend("a"), t0), BackendState::Available);
}

TEST_F(HealthFixture, CircuitBreakerSlotsAreLimitedAndReturned) {
  auto c = load("resilience: {circuit_breaker: {max_requests: 2, max_pending: 1}}\n");
  use(*c);
  const auto& cfg = c->backends[0];
  auto a = health.backend("a");
  {
    BreakerSlot s1 = health.acquire(cfg, *a, BreakerLimit::Requests);
    BreakerSlot s2 = health.acquire(cfg, *a, BreakerLimit::Requests);
    BreakerSlot s3 = health.acquire(cfg, *a, BreakerLimit::Requests);
    EXPECT_TRUE(s1);
    EXPECT_TRUE(s2);
    EXPECT_FALSE(s3);
    EXPECT_EQ(a->requests.load(), 2u);
    BreakerSlot p1 = health.acquire(cfg, *a, BreakerLimit::Pending);
    EXPECT_TRUE(p1);
    EXPECT_FALSE(health.acquire(cfg, *a, BreakerLimit::Pending));
    BreakerSlot moved = std::move(s1);
    EXPECT_EQ(a->requests.load(), 2u);
  }
  EXPECT_EQ(a->requests.load(), 0u);
  EXPECT_EQ(a->pending.load(), 0u);
  EXPECT_EQ(json::parse(health.json(*c, t0))["backends"][0]["breaker_trips_total"], 2);
}

TEST_F(HealthFixture, RetryBudgetIsAShareOfRequestsWithAFloor) {
  auto c = load("resilience: {retries: {budget_percent: 20, min_retry_concurrency: 2}}\n");
  use(*c);
  // 5 requests in flight: 20% is 1, the floor is 2.
  for (int i = 0; i < 5; ++i)
    health.request_started();
  RetryTicket r1 = health.try_retry("connect");
  RetryTicket r2 = health.try_retry("connect");
  RetryTicket r3 = health.try_retry("connect");
  EXPECT_TRUE(r1);
  EXPECT_TRUE(r2);
  EXPECT_FALSE(r3);
  // 20 in flight: 4 retries.
  for (int i = 0; i < 15; ++i)
    health.request_started();
  RetryTicket r4 = health.try_retry("status_503");
  RetryTicket r5 = health.try_retry("status_503");
  EXPECT_TRUE(r4);
  EXPECT_TRUE(r5);
  EXPECT_FALSE(health.try_retry("status_503"));
  r1 = RetryTicket(); // a retry ends: its place is free
  EXPECT_TRUE(health.try_retry("status_503"));
  const std::string page = registry.expose();
  EXPECT_NE(page.find("semrouter_retry_budget_exhausted_total 2"), std::string::npos) << page;
  EXPECT_NE(page.find("semrouter_retries_total{reason=\"connect\"} 2"), std::string::npos);
}

TEST_F(HealthFixture, BackoffIsCappedFullJitter) {
  auto c = load("resilience: {retries: {backoff_ms: 100, max_backoff_ms: 300}}\n");
  use(*c);
  for (uint32_t n = 0; n < 6; ++n) {
    const int64_t cap = std::min<int64_t>(300, 100 << n);
    int64_t most = 0;
    for (int i = 0; i < 200; ++i) {
      const int64_t ms = health.backoff(n, random).count();
      EXPECT_GE(ms, 0);
      EXPECT_LE(ms, cap);
      most = std::max(most, ms);
    }
    EXPECT_GT(most, cap / 2) << "n=" << n; // jitter spreads over the whole range
  }
}

TEST_F(HealthFixture, StateSurvivesAReloadThatKeepsTheBackend) {
  auto c = load("resilience: {outlier_detection: {consecutive_failures: 1}}\n");
  use(*c);
  fail("a", 1, t0);
  auto next = load("resilience: {outlier_detection: {consecutive_failures: 1}}\n");
  use(*next, 2);
  EXPECT_EQ(state_of("a", t0), BackendState::Ejected);
}

// ---- a fallback model's body ----

TEST(Retarget, TheFallbackGetsItsModelIdAndItsFamilysReasoningFields) {
  auto c = load();
  RouteOutcome out;
  out.decision = "d";
  out.kind = openai::RequestKind::ChatCompletions;
  out.body = R"({"model":"m1","messages":[{"role":"user","content":"hi"}],)"
             R"("chat_template_kwargs":{"enable_thinking":true},"temperature":0.2})";
  out.reasoning_mode = config::ReasoningMode::On;
  out.reasoning_fields = {{"chat_template_kwargs", "enable_thinking"}};
  auto body = json::parse(retarget(*c, out, *c->find_model("m2")));
  EXPECT_EQ(body["model"], "m2");
  EXPECT_EQ(body["temperature"], 0.2);
  EXPECT_EQ(body["chat_template_kwargs"]["thinking"], true); // deepseek's switch
  EXPECT_FALSE(body["chat_template_kwargs"].contains("enable_thinking"));
  // A model without a family: the first family's fields go.
  auto plain = json::parse(retarget(*c, out, *c->find_model("m3")));
  EXPECT_EQ(plain["model"], "m3");
  EXPECT_FALSE(plain.contains("chat_template_kwargs"));
  // A passthrough request keeps its fields.
  out.decision = "passthrough";
  auto pass = json::parse(retarget(*c, out, *c->find_model("m3")));
  EXPECT_TRUE(pass.contains("chat_template_kwargs"));
}

// ---- admission ----

struct AdmissionFixture : ::testing::Test {
  metrics::Registry registry;
  Admission admission{registry};
  std::vector<std::string> woken;

  Admission::Entry enter(const config::Config& c, const char* model, int priority,
                         const char* tag) {
    std::string t = tag;
    return admission.enter(c, *c.find_model(model), priority, [this, t] { woken.push_back(t); });
  }
};

TEST_F(AdmissionFixture, GlobalLimitQueuesByPriorityAndWakesInOrder) {
  auto c = load("resilience: {limits: {max_concurrent: 2, max_queue: 3}}\n");
  auto a = enter(*c, "m1", 0, "a");
  auto b = enter(*c, "m1", 0, "b");
  ASSERT_EQ(a.verdict, Admission::Verdict::Admitted);
  ASSERT_EQ(b.verdict, Admission::Verdict::Admitted);
  auto low = enter(*c, "m1", 0, "low");
  auto high = enter(*c, "m2", 10, "high");
  auto low2 = enter(*c, "m1", 0, "low2");
  ASSERT_EQ(low.verdict, Admission::Verdict::Queued);
  EXPECT_STREQ(low.limit, "global");
  ASSERT_EQ(high.verdict, Admission::Verdict::Queued);
  auto full = enter(*c, "m1", 100, "full");
  EXPECT_EQ(full.verdict, Admission::Verdict::Rejected); // the queue holds 3
  EXPECT_EQ(admission.queued(), 3u);
  a.ticket = AdmissionTicket(); // a slot frees: the higher priority goes first
  ASSERT_EQ(woken, std::vector<std::string>{"high"});
  AdmissionTicket th = admission.claim(high.waiter);
  EXPECT_TRUE(th);
  EXPECT_FALSE(admission.claim(high.waiter)); // once
  // The low one gives up; the next slot goes to low2.
  EXPECT_FALSE(admission.abandon(low.waiter));
  b.ticket = AdmissionTicket();
  ASSERT_EQ(woken, (std::vector<std::string>{"high", "low2"}));
  // Woken but gone before it claimed: abandon hands back the slots, which return on drop.
  EXPECT_TRUE(admission.abandon(low2.waiter));
  EXPECT_EQ(admission.in_flight(), 1u);
  th = AdmissionTicket();
  EXPECT_EQ(admission.in_flight(), 0u);
  EXPECT_EQ(admission.queued(), 0u);
}

TEST_F(AdmissionFixture, AModelsLimitHoldsOnlyItsOwnRequests) {
  auto c = load("resilience: {limits: {max_queue: 4}}\n"); // m3: max_concurrent 1
  auto first = enter(*c, "m3", 0, "first");
  ASSERT_EQ(first.verdict, Admission::Verdict::Admitted);
  auto second = enter(*c, "m3", 0, "second");
  ASSERT_EQ(second.verdict, Admission::Verdict::Queued);
  EXPECT_STREQ(second.limit, "model");
  auto other = enter(*c, "m1", 0, "other"); // another model passes the waiting one
  EXPECT_EQ(other.verdict, Admission::Verdict::Admitted);
  other.ticket = AdmissionTicket();
  EXPECT_TRUE(woken.empty()); // m3 is still full
  first.ticket = AdmissionTicket();
  EXPECT_EQ(woken, std::vector<std::string>{"second"});
  EXPECT_TRUE(admission.claim(second.waiter));
}

TEST_F(AdmissionFixture, NoQueueMeansAnImmediateRefusal) {
  auto c = load("resilience: {limits: {max_concurrent: 1, max_queue: 0}}\n");
  auto a = enter(*c, "m1", 0, "a");
  EXPECT_EQ(enter(*c, "m1", 0, "b").verdict, Admission::Verdict::Rejected);
  a.ticket = AdmissionTicket();
  EXPECT_EQ(enter(*c, "m1", 0, "c").verdict, Admission::Verdict::Admitted);
}

} // namespace
} // namespace semrouter::pipeline
