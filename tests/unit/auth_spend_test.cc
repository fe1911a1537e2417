// Spend shared through a SpendStore (auth.state_redis): several Guards see one total per key and
// period, a failing store never loses or double-counts spend, and the Redis store itself fails
// fast when Redis is away. The Guards here talk to an in-memory store that behaves as the Redis
// one does (batch ids applied once); tests/integration/auth.test.mjs runs the real one.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "auth/auth.h"
#include "cache/redis_spend.h"
#include "config/config.h"

namespace semrouter::auth {
namespace {

using namespace std::chrono_literals;
using config::ApiKeyConfig;
using config::AuthConfig;
using SystemTime = std::chrono::system_clock::time_point;

// 2025-03-10 12:00:00 UTC.
const SystemTime kNoon = std::chrono::sys_days{std::chrono::year{2025} / 3 / 10} + 12h;

struct FakeClock {
  SystemTime t = kNoon;
  Clock fn() {
    return [this] { return t; };
  }
};

// What Redis holds: totals by name with their expiry, and the batch ids already applied.
struct SharedTotals {
  std::mutex mu;
  std::map<std::string, double> totals;
  std::map<std::string, int64_t> expiry;
  std::set<std::string> applied;
  int syncs = 0;
  // Failure modes: refuse before doing anything, or apply the batch and then lose the reply.
  bool down = false;
  bool lose_reply = false;

  double total(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = totals.find(name);
    return it == totals.end() ? 0 : it->second;
  }
};

class FakeStore : public SpendStore {
public:
  explicit FakeStore(SharedTotals& shared) : shared_(shared) {}
  core::StatusOr<std::vector<double>> sync(const SpendBatch& batch,
                                           const std::vector<std::string>& read) override {
    std::lock_guard<std::mutex> lock(shared_.mu);
    ++shared_.syncs;
    if (shared_.down)
      return core::make_error(core::ErrorCode::Unavailable, "fake store down");
    if (!batch.increments.empty() && shared_.applied.insert(batch.id).second)
      for (const SpendIncrement& inc : batch.increments) {
        shared_.totals[inc.name] += inc.usd;
        shared_.expiry[inc.name] = inc.expire_at_unix_s;
      }
    if (shared_.lose_reply)
      return core::make_error(core::ErrorCode::Unavailable, "fake store: reply lost");
    std::vector<double> out;
    for (const std::string& name : read) {
      auto it = shared_.totals.find(name);
      out.push_back(it == shared_.totals.end() ? 0 : it->second);
    }
    return out;
  }

private:
  SharedTotals& shared_;
};

SpendStoreFactory factory_for(SharedTotals& shared, std::vector<config::SpendRedisConfig>* seen) {
  return [&shared, seen](const config::SpendRedisConfig& cfg) {
    if (seen)
      seen->push_back(cfg);
    return std::make_unique<FakeStore>(shared);
  };
}

ApiKeyConfig make_key(const std::string& name, const std::string& secret) {
  ApiKeyConfig k;
  k.name = name;
  k.tenant = name;
  k.sha256 = sha256_hex(secret);
  return k;
}

// Flushes rarely on its own: the tests drive sync_spend() themselves.
AuthConfig shared_config(double daily, double monthly, uint32_t flush_ms = 60'000) {
  AuthConfig cfg;
  cfg.keys.push_back(make_key("team", "sk-team"));
  cfg.keys[0].daily_budget_usd = daily;
  cfg.keys[0].monthly_budget_usd = monthly;
  cfg.state_redis.enabled = true;
  cfg.state_redis.flush_ms = flush_ms;
  return cfg;
}

double spent_fraction(Guard& g, const ApiKeyConfig& k) {
  double f = -1;
  g.budget_pressure(k, &f);
  return f;
}

// Waits for the Guards' flusher threads to finish their first exchange (they start at once).
void wait_for_syncs(SharedTotals& shared, int n) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      if (shared.syncs >= n)
        return;
    }
    std::this_thread::sleep_for(1ms);
  }
  FAIL() << "the flusher did not reach the store";
}

TEST(AuthSpendStore, TwoGuardsShareOneTotalPerKeyAndPeriod) {
  SharedTotals shared;
  FakeClock clock;
  metrics::Registry ra, rb;
  Guard a(ra, clock.fn()), b(rb, clock.fn());
  a.set_spend_store_factory(factory_for(shared, nullptr));
  b.set_spend_store_factory(factory_for(shared, nullptr));
  AuthConfig cfg = shared_config(10, 100);
  ASSERT_TRUE(a.configure(cfg));
  ASSERT_TRUE(b.configure(cfg));
  wait_for_syncs(shared, 2);
  const ApiKeyConfig& k = cfg.keys[0];

  a.settle(k, 0, 0, 0, 3);
  EXPECT_NEAR(spent_fraction(a, k), 0.3, 1e-12); // counted here at once
  EXPECT_EQ(spent_fraction(b, k), 0);            // not yet sent
  ASSERT_TRUE(a.sync_spend());
  EXPECT_EQ(shared.total("day:2025-03-10:team"), 3);
  EXPECT_EQ(shared.total("month:2025-03:team"), 3);
  // Dropped a day after the period ends: 2025-03-12 00:00 and 2025-04-02 00:00 UTC.
  EXPECT_EQ(shared.expiry["day:2025-03-10:team"], 1741737600);
  EXPECT_EQ(shared.expiry["month:2025-03:team"], 1743552000);
  ASSERT_TRUE(b.sync_spend());
  EXPECT_NEAR(spent_fraction(b, k), 0.3, 1e-12);

  b.settle(k, 0, 0, 0, 4);
  ASSERT_TRUE(b.sync_spend());
  ASSERT_TRUE(a.sync_spend());
  EXPECT_NEAR(spent_fraction(a, k), 0.7, 1e-12);
  EXPECT_NEAR(spent_fraction(b, k), 0.7, 1e-12);
  EXPECT_EQ(shared.total("day:2025-03-10:team"), 7);

  // The shared total drives the budget check too.
  a.settle(k, 0, 0, 0, 3);
  ASSERT_TRUE(a.sync_spend());
  ASSERT_TRUE(b.sync_spend());
  EXPECT_EQ(b.admit(k, 0).reason, "budget");
  EXPECT_NE(rb.expose().find(
                R"(semrouter_key_budget_remaining_usd{key="team",tenant="team",period="day"} 0)"),
            std::string::npos)
      << rb.expose();
}

TEST(AuthSpendStore, AFailingStoreLosesNothingAndCountsOnce) {
  SharedTotals shared;
  FakeClock clock;
  metrics::Registry registry;
  Guard g(registry, clock.fn());
  g.set_spend_store_factory(factory_for(shared, nullptr));
  AuthConfig cfg = shared_config(10, 0);
  ASSERT_TRUE(g.configure(cfg));
  wait_for_syncs(shared, 1);
  const ApiKeyConfig& k = cfg.keys[0];

  // Down: requests go on, spend counts here and waits.
  shared.down = true;
  g.settle(k, 0, 0, 0, 2);
  EXPECT_FALSE(g.sync_spend());
  g.settle(k, 0, 0, 0, 1);
  EXPECT_FALSE(g.sync_spend());
  EXPECT_TRUE(g.admit(k, 0).ok);
  EXPECT_NEAR(spent_fraction(g, k), 0.3, 1e-12);
  const std::string exposed = registry.expose();
  EXPECT_NE(exposed.find("semrouter_auth_spend_store_errors_total 2"), std::string::npos)
      << exposed;
  EXPECT_NE(exposed.find("semrouter_auth_spend_store_up 0"), std::string::npos);

  // The batch lands but its reply is lost: sent again as it was (the 1 settled after it waits
  // for the next batch), it counts once.
  shared.down = false;
  shared.lose_reply = true;
  EXPECT_FALSE(g.sync_spend());
  EXPECT_EQ(shared.total("day:2025-03-10:team"), 2);
  g.settle(k, 0, 0, 0, 0.5);
  shared.lose_reply = false;
  ASSERT_TRUE(g.sync_spend());
  EXPECT_EQ(shared.total("day:2025-03-10:team"), 2);
  EXPECT_NEAR(spent_fraction(g, k), 0.35, 1e-12); // 2 shared + 1.5 not yet sent
  ASSERT_TRUE(g.sync_spend());
  EXPECT_EQ(shared.total("day:2025-03-10:team"), 3.5);
  EXPECT_NEAR(spent_fraction(g, k), 0.35, 1e-12);
  EXPECT_NE(registry.expose().find("semrouter_auth_spend_store_up 1"), std::string::npos);
}

TEST(AuthSpendStore, SpendSurvivesNewGuards) {
  SharedTotals shared;
  FakeClock clock;
  AuthConfig cfg = shared_config(10, 0);
  {
    metrics::Registry registry;
    Guard g(registry, clock.fn());
    g.set_spend_store_factory(factory_for(shared, nullptr));
    ASSERT_TRUE(g.configure(cfg));
    g.settle(cfg.keys[0], 0, 0, 0, 6); // sent by the destructor
  }
  EXPECT_EQ(shared.total("day:2025-03-10:team"), 6);
  metrics::Registry registry;
  Guard g(registry, clock.fn());
  g.set_spend_store_factory(factory_for(shared, nullptr));
  ASSERT_TRUE(g.configure(cfg));
  ASSERT_TRUE(g.sync_spend());
  EXPECT_EQ(g.budget_pressure(cfg.keys[0]), 0.25); // 0.6: the default curve's first step
  const std::string usage = g.usage_json();
  EXPECT_NE(usage.find(R"("day":{"period":"2025-03-10","spent_usd":6.0)"), std::string::npos)
      << usage;
}

TEST(AuthSpendStore, SpendOfAnEndedDayGoesToThatDay) {
  SharedTotals shared;
  FakeClock clock;
  clock.t = std::chrono::sys_days{std::chrono::year{2025} / 3 / 31} + 23h + 59min;
  metrics::Registry registry;
  Guard g(registry, clock.fn());
  g.set_spend_store_factory(factory_for(shared, nullptr));
  AuthConfig cfg = shared_config(10, 100);
  ASSERT_TRUE(g.configure(cfg));
  wait_for_syncs(shared, 1);
  g.settle(cfg.keys[0], 0, 0, 0, 4);
  clock.t += 2min; // April
  g.settle(cfg.keys[0], 0, 0, 0, 1);
  ASSERT_TRUE(g.sync_spend());
  EXPECT_EQ(shared.total("day:2025-03-31:team"), 4);
  EXPECT_EQ(shared.total("month:2025-03:team"), 4);
  EXPECT_EQ(shared.total("day:2025-04-01:team"), 1);
  EXPECT_EQ(shared.total("month:2025-04:team"), 1);
  EXPECT_NEAR(spent_fraction(g, cfg.keys[0]), 0.1, 1e-12);
}

TEST(AuthSpendStore, TheFlusherSendsOnItsOwn) {
  SharedTotals shared;
  metrics::Registry registry;
  Guard g(registry); // the real clock: the flusher runs on real time
  g.set_spend_store_factory(factory_for(shared, nullptr));
  AuthConfig cfg = shared_config(10, 0, /*flush_ms=*/10);
  ASSERT_TRUE(g.configure(cfg));
  g.settle(cfg.keys[0], 0, 0, 0, 1.5);
  double total = 0;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      total = 0;
      for (const auto& [name, usd] : shared.totals)
        if (name.starts_with("day:"))
          total += usd;
    }
    if (total > 0)
      break;
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(total, 1.5);
}

TEST(AuthSpendStore, ReconfiguredOnlyWhenStateRedisChanges) {
  SharedTotals shared;
  FakeClock clock;
  metrics::Registry registry;
  Guard g(registry, clock.fn());
  std::vector<config::SpendRedisConfig> built;
  g.set_spend_store_factory(factory_for(shared, &built));
  AuthConfig cfg = shared_config(10, 0);
  cfg.state_redis.prefix = "one:";
  ASSERT_TRUE(g.configure(cfg));
  ASSERT_TRUE(g.configure(cfg)); // a reload that leaves it as it was
  ASSERT_EQ(built.size(), 1u);
  g.settle(cfg.keys[0], 0, 0, 0, 2);
  cfg.state_redis.prefix = "two:";
  ASSERT_TRUE(g.configure(cfg));
  ASSERT_EQ(built.size(), 2u);
  EXPECT_EQ(built[1].prefix, "two:");
  ASSERT_TRUE(g.sync_spend()); // what was not sent yet goes to the new store
  EXPECT_EQ(shared.total("day:2025-03-10:team"), 2);
  // state_redis removed: no store, nothing recorded for one.
  cfg.state_redis = {};
  ASSERT_TRUE(g.configure(cfg));
  EXPECT_FALSE(g.sync_spend());
  g.settle(cfg.keys[0], 0, 0, 0, 1);
  EXPECT_NEAR(spent_fraction(g, cfg.keys[0]), 0.3, 1e-12);
}

TEST(AuthSpendStore, WithoutAFactorySpendStaysLocal) {
  FakeClock clock;
  metrics::Registry registry;
  Guard g(registry, clock.fn());
  AuthConfig cfg = shared_config(10, 0);
  ASSERT_TRUE(g.configure(cfg)); // logs an error; auth itself works
  g.settle(cfg.keys[0], 0, 0, 0, 5);
  EXPECT_FALSE(g.sync_spend());
  EXPECT_EQ(g.budget_pressure(cfg.keys[0]), 0.25);
}

TEST(AuthSpendStore, RedisStoreFailsFastWhenRedisIsAway) {
  config::SpendRedisConfig cfg;
  cfg.enabled = true;
  cfg.host = "127.0.0.1";
  cfg.port = 1; // nothing listens there
  cfg.timeout_ms = 200;
  cfg.reconnect_ms = 60'000;
  auto store = cache::make_redis_spend_store(cfg);
  SpendBatch batch{"id-1", {{"day:2025-03-10:team", 1.0, 1741737600}}};
  const auto start = std::chrono::steady_clock::now();
  auto first = store->sync(batch, {"day:2025-03-10:team"});
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, core::ErrorCode::Unavailable);
  EXPECT_NE(first.error().message.find("127.0.0.1:1"), std::string::npos) << first.error().message;
  // Within reconnect_ms it does not even try.
  auto second = store->sync(batch, {});
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("waiting to reconnect"), std::string::npos)
      << second.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

// ---------------------------------------------------------------------------------------------
// auth.state_redis in the config.

const char* kBase = R"(
backends:
  - name: local
    url: http://127.0.0.1:8000/v1
models:
  - name: qwen3-8b
    backends: [local]
)";

std::string error_of(const std::string& auth_yaml) {
  auto c = config::parse_config(std::string(kBase) + auth_yaml);
  return c ? "" : c.error().message;
}

TEST(AuthConfigParse, StateRedis) {
  auto c = config::parse_config(std::string(kBase) + R"(
auth:
  state_redis:
    url: redis://10.0.0.5:6380/3
    prefix: "acme:spend:"
    timeout_ms: 50
    reconnect_ms: 1000
    flush_ms: 100
)");
  ASSERT_TRUE(c) << c.error().message;
  const config::SpendRedisConfig& r = (*c)->auth.state_redis;
  EXPECT_TRUE(r.enabled);
  EXPECT_EQ(r.host, "10.0.0.5");
  EXPECT_EQ(r.port, 6380);
  EXPECT_EQ(r.db, 3u);
  EXPECT_EQ(r.prefix, "acme:spend:");
  EXPECT_EQ(r.timeout_ms, 50u);
  EXPECT_EQ(r.reconnect_ms, 1000u);
  EXPECT_EQ(r.flush_ms, 100u);

  c = config::parse_config(std::string(kBase) + "auth: {state_redis: {}}\n");
  ASSERT_TRUE(c) << c.error().message;
  const config::SpendRedisConfig& d = (*c)->auth.state_redis;
  EXPECT_TRUE(d.enabled);
  EXPECT_EQ(d.host, "127.0.0.1");
  EXPECT_EQ(d.port, 6379);
  EXPECT_EQ(d.db, 0u);
  EXPECT_EQ(d.prefix, "semrouter:spend:");
  EXPECT_EQ(d.flush_ms, 250u);

  c = config::parse_config(std::string(kBase) + "auth: {state_redis: {url: 'redis://[::1]:7000'}}");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ((*c)->auth.state_redis.host, "::1");
  EXPECT_EQ((*c)->auth.state_redis.port, 7000);

  ::setenv("SEMROUTER_AUTH_TEST_REDIS_PW", "pw-123", 1);
  c = config::parse_config(std::string(kBase) +
                           "auth: {state_redis: {password_env: SEMROUTER_AUTH_TEST_REDIS_PW}}");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ((*c)->auth.state_redis.password, "pw-123");
  ::unsetenv("SEMROUTER_AUTH_TEST_REDIS_PW");

  c = config::parse_config(kBase);
  ASSERT_TRUE(c);
  EXPECT_FALSE((*c)->auth.state_redis.enabled);
}

TEST(AuthConfigParse, StateRedisErrorsNameTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"auth: {state_file: /tmp/s.json, state_redis: {}}",
       "auth.state_redis: give state_file or state_redis, not both"},
      {"auth: {state_redis: {url: 'http://x'}}",
       "auth.state_redis.url: \"http://x\" is not a redis:// URL"},
      {"auth: {state_redis: {url: 'redis://:pw@host:6379'}}",
       "auth.state_redis.url: must not carry a password"},
      {"auth: {state_redis: {url: 'redis://host:99999'}}",
       "auth.state_redis.url: \"99999\" is not a port"},
      {"auth: {state_redis: {url: 'redis://host/x'}}",
       "auth.state_redis.url: \"x\" is not a database number"},
      {"auth: {state_redis: {url: 'redis://:6379'}}", "auth.state_redis.url: has no host"},
      {"auth: {state_redis: {url: 'redis://::1:6379'}}",
       "auth.state_redis.url: an IPv6 address goes in brackets"},
      {"auth: {state_redis: {prefix: ''}}", "auth.state_redis.prefix: must not be empty"},
      {"auth: {state_redis: {flush_ms: 1}}", "auth.state_redis.flush_ms: must be between 10 and"},
      {"auth: {state_redis: {timeout_ms: 0}}", "auth.state_redis.timeout_ms: must be between 1"},
      {"auth: {state_redis: {key_prefix: x}}", "auth.state_redis: unknown key \"key_prefix\""},
      {"auth: {state_redis: {password_env: SEMROUTER_AUTH_TEST_UNSET_PW}}",
       "auth.state_redis.password_env: environment variable SEMROUTER_AUTH_TEST_UNSET_PW is not "
       "set"},
      {"auth: {state_redis: redis://host}", "auth.state_redis: expected a mapping"},
  };
  ::unsetenv("SEMROUTER_AUTH_TEST_UNSET_PW");
  for (const auto& [yaml, want] : cases) {
    const std::string err = error_of(yaml);
    EXPECT_NE(err.find(want), std::string::npos)
        << "yaml: " << yaml << "\nerror: " << err << "\nwant: " << want;
  }
}

} // namespace
} // namespace semrouter::auth
