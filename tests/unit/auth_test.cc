#include "auth/auth.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "config/config.h"

namespace semrouter::auth {
namespace {

using namespace std::chrono_literals;
using config::ApiKeyConfig;
using config::AuthConfig;
using SystemTime = std::chrono::system_clock::time_point;

// 2025-03-10 12:00:00 UTC.
const SystemTime kNoon = std::chrono::sys_days{std::chrono::year{2025} / 3 / 10} + 12h;

// Time that moves only when a test says so.
struct FakeClock {
  SystemTime t = kNoon;
  Clock fn() {
    return [this] { return t; };
  }
};

// A folder under the system temp folder, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    path = std::filesystem::temp_directory_path() /
           ("semrouter-auth-" + std::to_string(::getpid()) + "-" + info->name());
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Makes the next check see the file as changed even within one mtime tick.
void bump_mtime(const std::string& path) {
  auto t = std::filesystem::last_write_time(path);
  std::filesystem::last_write_time(path, t + 2s);
}

ApiKeyConfig make_key(const std::string& name, const std::string& secret) {
  ApiKeyConfig k;
  k.name = name;
  k.tenant = name;
  k.sha256 = sha256_hex(secret);
  return k;
}

std::string key_entry(const std::string& name, const std::string& secret,
                      const std::string& extra = "") {
  return "  - name: " + name + "\n    sha256: " + sha256_hex(secret) + "\n" + extra;
}

// ---------------------------------------------------------------------------------------------
// Hashing, comparison, headers.

TEST(AuthCrypto, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Binary input: the view's length counts, not a NUL.
  EXPECT_NE(sha256_hex(std::string_view("a\0b", 3)), sha256_hex("a"));
}

TEST(AuthCrypto, ConstantTimeEquals) {
  EXPECT_TRUE(constant_time_equals("", ""));
  EXPECT_TRUE(constant_time_equals("abc", "abc"));
  EXPECT_FALSE(constant_time_equals("abc", "abd"));
  EXPECT_FALSE(constant_time_equals("abc", "xbc"));
  EXPECT_FALSE(constant_time_equals("abc", "abcd"));
  EXPECT_FALSE(constant_time_equals("abcd", "abc"));
  EXPECT_FALSE(constant_time_equals("", "a"));
  EXPECT_TRUE(constant_time_equals(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
  EXPECT_FALSE(constant_time_equals(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

HeaderFn headers(std::map<std::string, std::string> h) {
  auto held = std::make_shared<std::map<std::string, std::string>>(std::move(h));
  return [held](std::string_view name) -> std::optional<std::string_view> {
    auto it = held->find(std::string(name));
    if (it == held->end())
      return std::nullopt;
    return std::string_view(it->second);
  };
}

TEST(AuthHeaders, PresentedKeyPrecedence) {
  EXPECT_EQ(presented_key(headers({})), std::nullopt);
  EXPECT_EQ(presented_key(HeaderFn{}), std::nullopt);
  EXPECT_EQ(presented_key(headers({{"authorization", "Bearer sk-1"}})), "sk-1");
  EXPECT_EQ(presented_key(headers({{"authorization", "bearer   sk-1  "}})), "sk-1");
  EXPECT_EQ(presented_key(headers({{"x-api-key", "sk-2"}})), "sk-2");
  EXPECT_EQ(presented_key(headers({{"api-key", "sk-3"}})), "sk-3");
  // Bearer first, then x-api-key, then api-key.
  EXPECT_EQ(presented_key(headers(
                {{"authorization", "Bearer sk-1"}, {"x-api-key", "sk-2"}, {"api-key", "sk-3"}})),
            "sk-1");
  EXPECT_EQ(presented_key(headers({{"x-api-key", "sk-2"}, {"api-key", "sk-3"}})), "sk-2");
  // Another scheme, or an empty bearer, falls through to the API key headers.
  EXPECT_EQ(presented_key(headers({{"authorization", "Basic dXNlcjpwdw=="}, {"api-key", "sk-3"}})),
            "sk-3");
  EXPECT_EQ(presented_key(headers({{"authorization", "Bearer "}, {"x-api-key", "sk-2"}})), "sk-2");
  EXPECT_EQ(presented_key(headers({{"authorization", "Bearersk-1"}})), std::nullopt);
  EXPECT_EQ(presented_key(headers({{"x-api-key", "  "}})), std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// Authentication and key sets.

AuthConfig two_keys() {
  AuthConfig cfg;
  cfg.keys.push_back(make_key("alpha", "sk-alpha"));
  ApiKeyConfig old = make_key("old", "sk-old");
  old.revoked = true;
  cfg.keys.push_back(old);
  return cfg;
}

TEST(AuthGuard, AuthenticateVerdicts) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  // Not configured: auth is off and everyone passes (no key to go with it).
  EXPECT_FALSE(guard.enabled());
  EXPECT_EQ(guard.authenticate(std::nullopt).verdict, Verdict::Ok);
  EXPECT_EQ(guard.authenticate(std::nullopt).key, nullptr);

  ASSERT_TRUE(guard.configure(two_keys()));
  EXPECT_TRUE(guard.enabled());
  Identity ok = guard.authenticate("sk-alpha");
  EXPECT_EQ(ok.verdict, Verdict::Ok);
  ASSERT_NE(ok.key, nullptr);
  EXPECT_EQ(ok.key->name, "alpha");
  EXPECT_EQ(guard.authenticate(std::nullopt).verdict, Verdict::Missing);
  EXPECT_EQ(guard.authenticate("").verdict, Verdict::Missing);
  Identity bad = guard.authenticate("sk-nobody");
  EXPECT_EQ(bad.verdict, Verdict::Invalid);
  EXPECT_EQ(bad.key, nullptr);
  // The hash itself is not a key.
  EXPECT_EQ(guard.authenticate(sha256_hex("sk-alpha")).verdict, Verdict::Invalid);
  Identity revoked = guard.authenticate("sk-old");
  EXPECT_EQ(revoked.verdict, Verdict::Revoked);
  ASSERT_NE(revoked.key, nullptr);
  EXPECT_EQ(revoked.key->name, "old");
  EXPECT_NE(registry.expose().find(
                R"(semrouter_key_rejections_total{key="old",tenant="old",reason="revoked"} 1)"),
            std::string::npos);

  // A snapshot outlives the reload that drops its key.
  ASSERT_TRUE(guard.configure(AuthConfig{}));
  EXPECT_EQ(ok.key->name, "alpha");
  EXPECT_FALSE(guard.enabled());
}

TEST(AuthGuard, KeysFileHotReload) {
  TempDir dir;
  const std::string keys = dir.file("keys.yaml");
  write_file(keys, "keys:\n" + key_entry("file-a", "sk-file-a"));
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg = two_keys();
  cfg.keys_file = keys;
  ASSERT_TRUE(guard.configure(cfg));
  EXPECT_EQ(guard.authenticate("sk-file-a").verdict, Verdict::Ok);
  EXPECT_EQ(guard.authenticate("sk-alpha").verdict, Verdict::Ok); // config keys stay too
  EXPECT_EQ(guard.authenticate("sk-file-b").verdict, Verdict::Invalid);

  // A new key and a revocation: seen at the next check (forced here, no waiting).
  write_file(keys, "keys:\n" + key_entry("file-a", "sk-file-a", "    revoked: true\n") +
                       key_entry("file-b", "sk-file-b"));
  bump_mtime(keys);
  ASSERT_TRUE(guard.reload_keys_file_if_changed());
  EXPECT_EQ(guard.authenticate("sk-file-b").verdict, Verdict::Ok);
  EXPECT_EQ(guard.authenticate("sk-file-a").verdict, Verdict::Revoked);

  // The same through authenticate's own once-a-second check, driven by the injected clock.
  write_file(keys, "keys:\n" + key_entry("file-c", "sk-file-c"));
  bump_mtime(keys);
  EXPECT_EQ(guard.authenticate("sk-file-c").verdict, Verdict::Invalid); // checked < 1 s ago
  clock.t += 1s;
  EXPECT_EQ(guard.authenticate("sk-file-c").verdict, Verdict::Ok);
  EXPECT_EQ(guard.authenticate("sk-file-b").verdict, Verdict::Invalid);
}

TEST(AuthGuard, BrokenKeysFileKeepsPreviousKeys) {
  TempDir dir;
  const std::string keys = dir.file("keys.yaml");
  write_file(keys, "keys:\n" + key_entry("file-a", "sk-file-a"));
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg;
  cfg.keys_file = keys;
  ASSERT_TRUE(guard.configure(cfg));

  write_file(keys, "keys:\n  - name: file-b\n    sha256: nothex\n");
  bump_mtime(keys);
  auto st = guard.reload_keys_file_if_changed();
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find(keys + ": keys[0].sha256: "), std::string::npos)
      << st.error().message;
  EXPECT_EQ(guard.authenticate("sk-file-a").verdict, Verdict::Ok);

  // A half-written (empty) file and a vanished one change nothing either.
  write_file(keys, "");
  bump_mtime(keys);
  EXPECT_FALSE(guard.reload_keys_file_if_changed());
  std::filesystem::remove(keys);
  EXPECT_FALSE(guard.reload_keys_file_if_changed());
  EXPECT_EQ(guard.authenticate("sk-file-a").verdict, Verdict::Ok);
  // A config reload with the file still missing: an error, the previous keys stay.
  EXPECT_FALSE(guard.configure(cfg));
  EXPECT_EQ(guard.authenticate("sk-file-a").verdict, Verdict::Ok);

  // A key in both the file and the config is refused.
  write_file(keys, "keys:\n" + key_entry("dup", "sk-alpha"));
  AuthConfig both = two_keys();
  both.keys_file = keys;
  auto clash = guard.configure(both);
  ASSERT_FALSE(clash);
  EXPECT_NE(clash.error().message.find("\"alpha\""), std::string::npos) << clash.error().message;
  EXPECT_EQ(clash.error().message.find(sha256_hex("sk-alpha")), std::string::npos);
  EXPECT_EQ(guard.authenticate("sk-alpha").key->name, "alpha");
}

TEST(AuthGuard, BrokenKeysFileAtStartFailsClosed) {
  TempDir dir;
  metrics::Registry registry;
  Guard guard(registry);
  AuthConfig cfg;
  cfg.keys_file = dir.file("missing.yaml");
  auto st = guard.configure(cfg);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, core::ErrorCode::NotFound);
  EXPECT_TRUE(guard.enabled());
  EXPECT_EQ(guard.authenticate("anything").verdict, Verdict::Invalid);
  EXPECT_EQ(guard.authenticate(std::nullopt).verdict, Verdict::Missing);
}

TEST(AuthGuard, ModelAndDecisionWildcards) {
  metrics::Registry registry;
  Guard guard(registry);
  ApiKeyConfig k = make_key("k", "sk");
  EXPECT_TRUE(guard.allows_model(k, "anything")); // empty list: all
  EXPECT_TRUE(guard.allows_decision(k, "anything"));
  k.models = {"gpt-*", "qwen3-8b", "*-mini", "llama-*-instruct"};
  EXPECT_TRUE(guard.allows_model(k, "gpt-4o"));
  EXPECT_TRUE(guard.allows_model(k, "gpt-"));
  EXPECT_TRUE(guard.allows_model(k, "qwen3-8b"));
  EXPECT_TRUE(guard.allows_model(k, "o4-mini"));
  EXPECT_TRUE(guard.allows_model(k, "llama-3.1-8b-instruct"));
  EXPECT_FALSE(guard.allows_model(k, "llama-3.1-8b"));
  EXPECT_FALSE(guard.allows_model(k, "qwen3-8b-fp8"));
  EXPECT_FALSE(guard.allows_model(k, "gpt"));
  EXPECT_FALSE(guard.allows_model(k, "GPT-4o")); // names are case-sensitive
  EXPECT_FALSE(guard.allows_model(k, ""));
  k.decisions = {"*"};
  EXPECT_TRUE(guard.allows_decision(k, "math"));
  k.decisions = {"math", "code"};
  EXPECT_TRUE(guard.allows_decision(k, "code"));
  EXPECT_FALSE(guard.allows_decision(k, "general"));
}

// ---------------------------------------------------------------------------------------------
// Rate limits.

TEST(AuthLimits, RequestsRefusedThenRecovered) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg;
  cfg.keys.push_back(make_key("k", "sk"));
  cfg.keys[0].requests_per_minute = 2;
  ASSERT_TRUE(guard.configure(cfg));
  const ApiKeyConfig& k = cfg.keys[0];
  EXPECT_TRUE(guard.admit(k, 0).ok);
  EXPECT_TRUE(guard.admit(k, 0).ok);
  Admission refused = guard.admit(k, 0);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.reason, "requests");
  EXPECT_DOUBLE_EQ(refused.retry_after_s, 30); // one request per 30 s
  EXPECT_NE(refused.message.find("2 requests per minute"), std::string::npos);
  clock.t += 10s;
  refused = guard.admit(k, 0);
  EXPECT_FALSE(refused.ok);
  EXPECT_NEAR(refused.retry_after_s, 20, 1e-9);
  clock.t += 20s;
  EXPECT_TRUE(guard.admit(k, 0).ok);
  EXPECT_FALSE(guard.admit(k, 0).ok);
  // A long pause refills to the capacity, not beyond.
  clock.t += 1h;
  EXPECT_TRUE(guard.admit(k, 0).ok);
  EXPECT_TRUE(guard.admit(k, 0).ok);
  EXPECT_FALSE(guard.admit(k, 0).ok);
  EXPECT_NE(registry.expose().find(
                R"(semrouter_key_rejections_total{key="k",tenant="k",reason="requests"} 4)"),
            std::string::npos)
      << registry.expose();
}

TEST(AuthLimits, BurstSizesTheRequestBucketNotItsRate) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg;
  cfg.keys.push_back(make_key("k", "sk"));
  cfg.keys[0].requests_per_minute = 600; // one every 100 ms
  cfg.keys[0].burst = 2;
  ASSERT_TRUE(guard.configure(cfg));
  const ApiKeyConfig& k = cfg.keys[0];
  EXPECT_TRUE(guard.admit(k, 0).ok);
  EXPECT_TRUE(guard.admit(k, 0).ok);
  Admission refused = guard.admit(k, 0);
  ASSERT_FALSE(refused.ok);
  EXPECT_NEAR(refused.retry_after_s, 0.1, 1e-9);
  clock.t += 100ms;
  EXPECT_TRUE(guard.admit(k, 0).ok);
  EXPECT_FALSE(guard.admit(k, 0).ok);
  clock.t += 1h; // refills to the burst, not to 600
  EXPECT_TRUE(guard.admit(k, 0).ok);
  EXPECT_TRUE(guard.admit(k, 0).ok);
  EXPECT_FALSE(guard.admit(k, 0).ok);
}

TEST(AuthLimits, TokensRefusedThenRecoveredAndSettled) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg;
  cfg.keys.push_back(make_key("k", "sk"));
  cfg.keys[0].requests_per_minute = 100;
  cfg.keys[0].tokens_per_minute = 600; // 10 tokens a second
  ASSERT_TRUE(guard.configure(cfg));
  const ApiKeyConfig& k = cfg.keys[0];
  EXPECT_TRUE(guard.admit(k, 500).ok);
  Admission refused = guard.admit(k, 200);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.reason, "tokens");
  EXPECT_NEAR(refused.retry_after_s, 10, 1e-9); // 100 short at 10 a second
  clock.t += 10s;
  // The answer used 300 tokens, not 500: 200 come back.
  guard.settle(k, 500, 100, 200, 0);
  EXPECT_TRUE(guard.admit(k, 400).ok); // 100 + 100 refilled + 200 returned
  EXPECT_FALSE(guard.admit(k, 1).ok);
  // More than estimated goes into debt.
  guard.settle(k, 400, 400, 200, 0); // 200 more than estimated
  refused = guard.admit(k, 1);
  EXPECT_FALSE(refused.ok);
  EXPECT_NEAR(refused.retry_after_s, 20.1, 1e-9);
  // A request larger than the whole bucket passes once the bucket is full.
  clock.t += 2min;
  EXPECT_TRUE(guard.admit(k, 5000).ok);
  EXPECT_FALSE(guard.admit(k, 1).ok);
}

TEST(AuthLimits, ARefusalTakesFromNeitherBucket) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg;
  cfg.keys.push_back(make_key("k", "sk"));
  cfg.keys[0].requests_per_minute = 2;
  cfg.keys[0].tokens_per_minute = 100;
  ASSERT_TRUE(guard.configure(cfg));
  const ApiKeyConfig& k = cfg.keys[0];
  ASSERT_TRUE(guard.admit(k, 50).ok); // 1 request and 50 tokens left
  // Short of tokens: refused, and the request bucket keeps its request.
  Admission refused = guard.admit(k, 80);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.reason, "tokens");
  EXPECT_TRUE(guard.admit(k, 10).ok); // 0 requests and 40 tokens left
  // Short of requests: refused, and the token bucket keeps its tokens.
  refused = guard.admit(k, 10);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.reason, "requests");
  EXPECT_DOUBLE_EQ(refused.retry_after_s, 30);
  clock.t += 30s;                     // 1 request and 40 + 50 tokens
  EXPECT_TRUE(guard.admit(k, 90).ok); // would fail had the refusal taken 10
}

TEST(AuthLimits, ReloadKeepsBucketsAndUsage) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg;
  cfg.keys.push_back(make_key("k", "sk"));
  cfg.keys[0].requests_per_minute = 1;
  ASSERT_TRUE(guard.configure(cfg));
  EXPECT_TRUE(guard.admit(cfg.keys[0], 0).ok);
  guard.settle(cfg.keys[0], 0, 3, 4, 0.5);
  ASSERT_TRUE(guard.configure(cfg)); // a reload: the bucket is still empty
  EXPECT_FALSE(guard.admit(cfg.keys[0], 0).ok);
  EXPECT_NE(guard.usage_json().find(R"("requests":1,"prompt_tokens":3,"completion_tokens":4)"),
            std::string::npos)
      << guard.usage_json();
  // A raised limit: the level is kept, the refill rate follows the new limit.
  cfg.keys[0].requests_per_minute = 60;
  ASSERT_TRUE(guard.configure(cfg));
  EXPECT_FALSE(guard.admit(cfg.keys[0], 0).ok);
  clock.t += 1s;
  EXPECT_TRUE(guard.admit(cfg.keys[0], 0).ok);
  // Unlimited: always admitted.
  cfg.keys[0].requests_per_minute = 0;
  ASSERT_TRUE(guard.configure(cfg));
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(guard.admit(cfg.keys[0], 1000000).ok);
}

TEST(AuthLimits, ConcurrentAdmitsTakeExactlyTheCapacity) {
  metrics::Registry registry;
  FakeClock clock; // fixed: nothing refills while the threads run
  Guard guard(registry, clock.fn());
  AuthConfig cfg;
  cfg.keys.push_back(make_key("k", "sk"));
  cfg.keys[0].requests_per_minute = 1000;
  ASSERT_TRUE(guard.configure(cfg));
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        Identity id = guard.authenticate("sk");
        if (id.key && guard.admit(*id.key, 1).ok) {
          admitted.fetch_add(1);
          guard.settle(*id.key, 1, 1, 1, 0);
        }
      }
    });
  }
  threads.emplace_back([&] { // reloads meanwhile keep the buckets
    for (int i = 0; i < 50; ++i)
      ASSERT_TRUE(guard.configure(cfg));
  });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(admitted.load(), 1000);
}

// ---------------------------------------------------------------------------------------------
// Budgets.

AuthConfig budget_config(double daily, double monthly, const std::string& state_file = "") {
  AuthConfig cfg;
  cfg.keys.push_back(make_key("team", "sk-team"));
  cfg.keys[0].daily_budget_usd = daily;
  cfg.keys[0].monthly_budget_usd = monthly;
  cfg.state_file = state_file;
  return cfg;
}

TEST(AuthBudget, PressureSteps) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg = budget_config(10, 0); // default curve: 0.5 -> 0.25, 0.75 -> 0.5, 0.9 -> 1
  ASSERT_TRUE(guard.configure(cfg));
  const ApiKeyConfig& k = cfg.keys[0];
  double fraction = -1;
  EXPECT_EQ(guard.budget_pressure(k, &fraction), 0);
  EXPECT_EQ(fraction, 0);
  guard.settle(k, 0, 0, 0, 4.9);
  EXPECT_EQ(guard.budget_pressure(k), 0);
  guard.settle(k, 0, 0, 0, 0.1); // 5.0: half
  EXPECT_EQ(guard.budget_pressure(k, &fraction), 0.25);
  EXPECT_NEAR(fraction, 0.5, 1e-12);
  guard.settle(k, 0, 0, 0, 2.5); // 7.5
  EXPECT_EQ(guard.budget_pressure(k), 0.5);
  guard.settle(k, 0, 0, 0, 1.6); // 9.1
  EXPECT_EQ(guard.budget_pressure(k), 1.0);

  // The larger of the day's and the month's fractions counts.
  AuthConfig both = budget_config(100, 12);
  both.degrade = {{0.1, 0.1}, {0.6, 0.6}};
  ASSERT_TRUE(guard.configure(both));
  EXPECT_EQ(guard.budget_pressure(both.keys[0], &fraction), 0.6); // 9.1 of 12 this month
  EXPECT_NEAR(fraction, 9.1 / 12, 1e-12);

  // A key without budgets is never under pressure.
  ApiKeyConfig free_key = make_key("free", "sk-free");
  guard.settle(free_key, 0, 0, 0, 1000);
  EXPECT_EQ(guard.budget_pressure(free_key, &fraction), 0);
}

TEST(AuthBudget, DailyBudgetSpentRefusesUntilUtcMidnight) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg = budget_config(1.0, 0);
  ASSERT_TRUE(guard.configure(cfg));
  const ApiKeyConfig& k = cfg.keys[0];
  ASSERT_TRUE(guard.admit(k, 10).ok);
  guard.settle(k, 10, 10, 10, 0.6);
  ASSERT_TRUE(guard.admit(k, 10).ok); // 0.6 spent: still under
  guard.settle(k, 10, 10, 10, 0.6);
  Admission refused = guard.admit(k, 10);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.reason, "budget");
  EXPECT_DOUBLE_EQ(refused.retry_after_s, 12 * 3600); // noon to midnight
  EXPECT_NE(refused.message.find("daily budget"), std::string::npos);
  EXPECT_NE(registry.expose().find(
                R"(semrouter_key_budget_remaining_usd{key="team",tenant="team",period="day"} 0)"),
            std::string::npos)
      << registry.expose();
  clock.t += 11h + 59min;
  EXPECT_NEAR(guard.admit(k, 10).retry_after_s, 60, 1e-9);
  // A new UTC day: the day's spend starts again.
  clock.t += 1min;
  EXPECT_TRUE(guard.admit(k, 10).ok);
  guard.refresh_metrics();
  EXPECT_NE(registry.expose().find(
                R"(semrouter_key_budget_remaining_usd{key="team",tenant="team",period="day"} 1)"),
            std::string::npos)
      << registry.expose();
}

TEST(AuthBudget, MonthlyBudgetSpentRefusesUntilMonthEnd) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg = budget_config(0, 5);
  ASSERT_TRUE(guard.configure(cfg));
  const ApiKeyConfig& k = cfg.keys[0];
  guard.settle(k, 0, 0, 0, 5);
  Admission refused = guard.admit(k, 0);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.reason, "budget");
  // 2025-03-10 12:00 to 2025-04-01 00:00: 21.5 days.
  EXPECT_DOUBLE_EQ(refused.retry_after_s, 21.5 * 86400);
  EXPECT_NE(refused.message.find("monthly budget"), std::string::npos);
  clock.t += 24h; // the next day: still the same month
  EXPECT_FALSE(guard.admit(k, 0).ok);
  clock.t = std::chrono::sys_days{std::chrono::year{2025} / 4 / 1};
  EXPECT_TRUE(guard.admit(k, 0).ok);

  // December rolls over into January.
  guard.settle(k, 0, 0, 0, 5);
  clock.t = std::chrono::sys_days{std::chrono::year{2025} / 12 / 31} + 18h;
  guard.settle(k, 0, 0, 0, 5);
  EXPECT_DOUBLE_EQ(guard.admit(k, 0).retry_after_s, 6 * 3600);
}

TEST(AuthBudget, SpendSurvivesANewGuard) {
  TempDir dir;
  const std::string state = dir.file("spend.json");
  FakeClock clock;
  AuthConfig cfg = budget_config(10, 100, state);
  {
    metrics::Registry registry;
    Guard guard(registry, clock.fn());
    ASSERT_TRUE(guard.configure(cfg));
    guard.settle(cfg.keys[0], 0, 5, 5, 6);
    guard.settle(cfg.keys[0], 0, 5, 5, 1.5); // within the second: saved by the destructor
  }
  const std::string saved = read_file(state);
  EXPECT_NE(saved.find("\"team\""), std::string::npos) << saved;
  EXPECT_EQ(saved.find(sha256_hex("sk-team")), std::string::npos); // names only
  EXPECT_EQ(std::filesystem::exists(state + ".tmp." + std::to_string(::getpid())), false);

  metrics::Registry registry;
  Guard guard(registry, clock.fn());
  ASSERT_TRUE(guard.configure(cfg));
  double fraction = 0;
  EXPECT_EQ(guard.budget_pressure(cfg.keys[0], &fraction), 0.5); // 7.5 of 10
  EXPECT_NEAR(fraction, 0.75, 1e-12);
  guard.settle(cfg.keys[0], 0, 0, 0, 2.5);
  EXPECT_EQ(guard.admit(cfg.keys[0], 0).reason, "budget");

  // settle saves on its own once a second has passed.
  clock.t += 2s;
  guard.settle(cfg.keys[0], 0, 0, 0, 0.25);
  EXPECT_NE(read_file(state).find("10.25"), std::string::npos) << read_file(state);
}

TEST(AuthBudget, PeriodRolloverResetsLoadedSpend) {
  TempDir dir;
  const std::string state = dir.file("spend.json");
  FakeClock clock;
  AuthConfig cfg = budget_config(10, 100, state);
  {
    metrics::Registry registry;
    Guard guard(registry, clock.fn());
    ASSERT_TRUE(guard.configure(cfg));
    guard.settle(cfg.keys[0], 0, 0, 0, 8);
  }
  // Restarted the next day: the day starts from zero, the month keeps its 8.
  clock.t += 24h;
  {
    metrics::Registry registry;
    Guard guard(registry, clock.fn());
    ASSERT_TRUE(guard.configure(cfg));
    double fraction = 0;
    guard.budget_pressure(cfg.keys[0], &fraction);
    EXPECT_NEAR(fraction, 0.08, 1e-12);
    const std::string usage = guard.usage_json();
    EXPECT_NE(usage.find(R"("day":{"period":"2025-03-11","spent_usd":0.0)"), std::string::npos)
        << usage;
    EXPECT_NE(usage.find(R"("month":{"period":"2025-03","spent_usd":8.0)"), std::string::npos)
        << usage;
  }
  // Restarted next month: nothing counts, and the stale entry is not written back.
  clock.t = std::chrono::sys_days{std::chrono::year{2025} / 4 / 2};
  {
    metrics::Registry registry;
    Guard guard(registry, clock.fn());
    ASSERT_TRUE(guard.configure(cfg));
    double fraction = 1;
    guard.budget_pressure(cfg.keys[0], &fraction);
    EXPECT_EQ(fraction, 0);
  }
  EXPECT_EQ(read_file(state).find("team"), std::string::npos) << read_file(state);
}

TEST(AuthBudget, CorruptStateStartsEmpty) {
  TempDir dir;
  const std::string state = dir.file("spend.json");
  for (const char* corrupt : {"{not json", "[]", R"({"version":1,"keys":{"team":{"day":1}}})",
                              R"({"version":1,"keys":{"team":{"day":"2025-03-10","day_usd":-1,)"
                              R"("month":"2025-03","month_usd":1}}})"}) {
    write_file(state, corrupt);
    metrics::Registry registry;
    FakeClock clock;
    Guard guard(registry, clock.fn());
    AuthConfig cfg = budget_config(10, 0, state);
    ASSERT_TRUE(guard.configure(cfg)) << corrupt;
    double fraction = 1;
    guard.budget_pressure(cfg.keys[0], &fraction);
    EXPECT_EQ(fraction, 0) << corrupt;
  }
}

// ---------------------------------------------------------------------------------------------
// Usage and metrics never show secrets.

TEST(AuthUsage, UsageJsonAndMetricsHoldNamesOnly) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg = budget_config(10, 0);
  cfg.keys[0].tenant = "acme";
  cfg.keys[0].requests_per_minute = 60;
  cfg.keys[0].models = {"gpt-*"};
  cfg.keys.push_back(make_key("other", "sk-other"));
  ASSERT_TRUE(guard.configure(cfg));
  ASSERT_EQ(guard.authenticate("sk-team").verdict, Verdict::Ok);
  ASSERT_TRUE(guard.admit(cfg.keys[0], 100).ok);
  guard.settle(cfg.keys[0], 100, 120, 30, 2.5);

  const std::string usage = guard.usage_json();
  EXPECT_EQ(usage.find(sha256_hex("sk-team")), std::string::npos);
  EXPECT_EQ(usage.find("sk-team"), std::string::npos);
  EXPECT_EQ(usage.find("sha256"), std::string::npos);
  EXPECT_NE(usage.find(R"("name":"team","tenant":"acme","revoked":false,"requests":1,)"
                       R"("prompt_tokens":120,"completion_tokens":30,"cost_usd":2.5)"),
            std::string::npos)
      << usage;
  EXPECT_NE(usage.find(R"("requests_per_minute":60)"), std::string::npos) << usage;
  EXPECT_NE(usage.find(R"("day":{"period":"2025-03-10","spent_usd":2.5,"budget_usd":10.0,)"
                       R"("remaining_usd":7.5})"),
            std::string::npos)
      << usage;
  EXPECT_NE(usage.find(R"("month":{"period":"2025-03","spent_usd":2.5,"budget_usd":null,)"
                       R"("remaining_usd":null})"),
            std::string::npos)
      << usage;
  EXPECT_NE(usage.find(R"("name":"other")"), std::string::npos);

  const std::string exposed = registry.expose();
  EXPECT_EQ(exposed.find(sha256_hex("sk-team")), std::string::npos);
  EXPECT_NE(exposed.find(R"(semrouter_key_requests_total{key="team",tenant="acme"} 1)"),
            std::string::npos)
      << exposed;
  EXPECT_NE(exposed.find(R"(semrouter_key_requests_total{key="other",tenant="other"} 0)"),
            std::string::npos);
  EXPECT_NE(
      exposed.find(R"(semrouter_key_tokens_total{key="team",tenant="acme",kind="prompt"} 120)"),
      std::string::npos);
  EXPECT_NE(
      exposed.find(R"(semrouter_key_tokens_total{key="team",tenant="acme",kind="completion"} 30)"),
      std::string::npos);
  EXPECT_NE(exposed.find(R"(semrouter_key_cost_usd_total{key="team",tenant="acme"} 2.5)"),
            std::string::npos);
  EXPECT_NE(exposed.find(
                R"(semrouter_key_budget_remaining_usd{key="team",tenant="acme",period="day"} 7.5)"),
            std::string::npos);
  EXPECT_EQ(exposed.find(R"(semrouter_key_budget_remaining_usd{key="other")"), std::string::npos);

  guard.count_rejection(cfg.keys[0], "model");
  EXPECT_NE(registry.expose().find(
                R"(semrouter_key_rejections_total{key="team",tenant="acme",reason="model"} 1)"),
            std::string::npos);
}

TEST(AuthUsage, MetricsCarryTheTenantAndFollowItsChange) {
  metrics::Registry registry;
  FakeClock clock;
  Guard guard(registry, clock.fn());
  AuthConfig cfg = budget_config(10, 0);
  cfg.keys[0].tenant = ""; // built in code without one: the name stands in, as for routing
  ASSERT_TRUE(guard.configure(cfg));
  guard.settle(cfg.keys[0], 0, 1, 1, 1);
  EXPECT_NE(registry.expose().find(R"(semrouter_key_requests_total{key="team",tenant="team"} 1)"),
            std::string::npos)
      << registry.expose();

  // A reload moves the key to another tenant: its counts go on under the new label.
  cfg.keys[0].tenant = "acme";
  ASSERT_TRUE(guard.configure(cfg));
  guard.settle(cfg.keys[0], 0, 1, 1, 1);
  ASSERT_TRUE(guard.admit(cfg.keys[0], 0).ok);
  guard.count_rejection(cfg.keys[0], "model");
  const std::string exposed = registry.expose();
  EXPECT_NE(exposed.find(R"(semrouter_key_requests_total{key="team",tenant="acme"} 1)"),
            std::string::npos)
      << exposed;
  EXPECT_NE(exposed.find(R"(semrouter_key_cost_usd_total{key="team",tenant="acme"} 1)"),
            std::string::npos);
  EXPECT_NE(
      exposed.find(R"(semrouter_key_rejections_total{key="team",tenant="acme",reason="model"} 1)"),
      std::string::npos);
  EXPECT_NE(exposed.find(
                R"(semrouter_key_budget_remaining_usd{key="team",tenant="acme",period="day"} 8)"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The `auth` config section and the keys file.

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

TEST(AuthConfigParse, FullSection) {
  TempDir dir;
  const std::string token_file = dir.file("admin.token");
  write_file(token_file, "  s3cret-admin\n");
  const std::string hash = sha256_hex("sk-a");
  std::string upper = hash;
  for (char& ch : upper)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  auto c = config::parse_config(std::string(kBase) + R"(
auth:
  keys:
    - name: team-a
      sha256: )" + upper + R"(
      models: [gpt-*, qwen3-8b]
      decisions: math
      requests_per_minute: 60
      tokens_per_minute: 100000
      tenant: acme
      daily_budget_usd: 5
      monthly_budget_usd: 100.5
    - name: team-b
      sha256: )" + sha256_hex("sk-b") +
                                R"(
      revoked: true
  keys_file: )" + dir.file("keys.yaml") +
                                R"(
  degrade:
    - {spent: 0.8, pressure: 0.5}
    - {spent: 0.95, pressure: 1}
  state_file: )" + dir.file("spend.json") +
                                R"(
  admin_token_file: )" + token_file +
                                "\n");
  ASSERT_TRUE(c) << c.error().message;
  const AuthConfig& a = (*c)->auth;
  ASSERT_EQ(a.keys.size(), 2u);
  EXPECT_EQ(a.keys[0].name, "team-a");
  EXPECT_EQ(a.keys[0].sha256, hash); // lower-cased
  EXPECT_EQ(a.keys[0].models, (std::vector<std::string>{"gpt-*", "qwen3-8b"}));
  EXPECT_EQ(a.keys[0].decisions, (std::vector<std::string>{"math"}));
  EXPECT_EQ(a.keys[0].requests_per_minute, 60u);
  EXPECT_EQ(a.keys[0].tokens_per_minute, 100000u);
  EXPECT_EQ(a.keys[0].tenant, "acme");
  EXPECT_EQ(a.keys[0].daily_budget_usd, 5);
  EXPECT_EQ(a.keys[0].monthly_budget_usd, 100.5);
  EXPECT_FALSE(a.keys[0].revoked);
  EXPECT_EQ(a.keys[1].tenant, "team-b"); // default: the name
  EXPECT_TRUE(a.keys[1].revoked);
  EXPECT_EQ(a.keys_file, dir.file("keys.yaml"));
  ASSERT_EQ(a.degrade.size(), 2u);
  EXPECT_EQ(a.degrade[1].spent, 0.95);
  EXPECT_EQ(a.degrade[1].pressure, 1);
  EXPECT_EQ(a.state_file, dir.file("spend.json"));
  EXPECT_EQ(a.admin_token, "s3cret-admin");
  EXPECT_TRUE(a.enabled());
}

TEST(AuthConfigParse, NoSectionMeansNoAuth) {
  auto c = config::parse_config(kBase);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_FALSE((*c)->auth.enabled());
  EXPECT_TRUE((*c)->auth.admin_token.empty());
  EXPECT_EQ((*c)->auth.degrade.size(), 3u);
}

TEST(AuthConfigParse, ErrorsNameTheKey) {
  const std::string h = sha256_hex("sk-a");
  const std::string h2 = sha256_hex("sk-b");
  struct Case {
    std::string yaml, error;
  };
  const std::vector<Case> cases = {
      {"auth: {keyz: []}", "auth: unknown key \"keyz\""},
      {"auth: {keys: [{name: a, sha256: " + h + ", rpm: 3}]}", "auth.keys[0]: unknown key \"rpm\""},
      {"auth: {keys: [{name: a, key: sk-live-123}]}",
       "auth.keys[0].key: must not hold the key itself: put the key's SHA-256 in sha256 instead "
       "(`semrouter hash-key` prints it)"},
      {"auth: {keys: [{name: a, api_key: sk-live-123}]}", "auth.keys[0].api_key: must not hold"},
      {"auth: {keys: [{name: a}]}", "auth.keys[0].sha256: is required"},
      {"auth: {keys: [{sha256: " + h + "}]}", "auth.keys[0].name: is required"},
      {"auth: {keys: [{name: a, sha256: abc123}]}",
       "auth.keys[0].sha256: must be the key's SHA-256 as 64 hex characters (`semrouter "
       "hash-key` prints it); got 6 characters"},
      {"auth: {keys: [{name: a, sha256: " + std::string(64, 'g') + "}]}",
       "got 64 characters, not all hex"},
      {"auth: {keys: [{name: a, sha256: " + h + "}, {name: a, sha256: " + h2 + "}]}",
       "auth.keys[1].name: duplicate key name \"a\" (also auth.keys[0])"},
      {"auth: {keys: [{name: a, sha256: " + h + "}, {name: b, sha256: " + h + "}]}",
       "auth.keys[1].sha256: is the same key as auth.keys[0] (\"a\")"},
      {"auth: {keys: [{name: a, sha256: " + h + ", requests_per_minute: -1}]}",
       "auth.keys[0].requests_per_minute: must be between 0 and"},
      {"auth: {keys: [{name: a, sha256: " + h + ", daily_budget_usd: lots}]}",
       "auth.keys[0].daily_budget_usd: expected a number"},
      {"auth: {keys: [{name: a, sha256: " + h + ", revoked: maybe}]}",
       "auth.keys[0].revoked: expected true or false"},
      {"auth: {keys: [{name: a, sha256: " + h + ", tenant: ''}]}",
       "auth.keys[0].tenant: must not be empty"},
      {"auth: {keys: {name: a}}", "auth.keys: expected a list"},
      {"auth: {keys_file: ''}", "auth.keys_file: must not be empty"},
      {"auth: {degrade: [{spent: 0.5, pressure: 0.2}, {spent: 0.5, pressure: 0.4}]}",
       "auth.degrade[1].spent: (0.5) must be greater than the previous step's (0.5)"},
      {"auth: {degrade: [{spent: 0.5, pressure: 2}]}",
       "auth.degrade[0].pressure: must be between 0 and 1"},
      {"auth: {degrade: [{spent: 1.5, pressure: 1}]}",
       "auth.degrade[0].spent: must be between 0 and 1"},
      {"auth: {degrade: [{spent: 0.5}]}", "auth.degrade[0].pressure: is required"},
      {"auth: {admin_token_env: SEMROUTER_AUTH_TEST_UNSET}",
       "auth.admin_token_env: environment variable SEMROUTER_AUTH_TEST_UNSET is not set"},
      {"auth: {admin_token_file: /nonexistent/semrouter/admin.token}",
       "auth.admin_token_file: cannot read \"/nonexistent/semrouter/admin.token\""},
      {"auth: {admin_token_env: X, admin_token_file: /y}",
       "auth.admin_token_file: give admin_token_env or admin_token_file, not both"},
  };
  ::unsetenv("SEMROUTER_AUTH_TEST_UNSET");
  for (const Case& c : cases) {
    const std::string err = error_of(c.yaml);
    EXPECT_NE(err.find(c.error), std::string::npos)
        << "yaml: " << c.yaml << "\nerror: " << err << "\nwant: " << c.error;
    // No message shows a key or a hash.
    EXPECT_EQ(err.find("sk-live-123"), std::string::npos) << err;
    EXPECT_EQ(err.find(h), std::string::npos) << err;
  }
}

TEST(AuthConfigParse, AdminTokenFromEnvAndFile) {
  ::setenv("SEMROUTER_AUTH_TEST_TOKEN", "tok-from-env", 1);
  auto c = config::parse_config(std::string(kBase) +
                                "auth: {admin_token_env: SEMROUTER_AUTH_TEST_TOKEN}\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ((*c)->auth.admin_token, "tok-from-env");
  EXPECT_FALSE((*c)->auth.enabled()); // an admin token alone does not turn on client keys
  ::setenv("SEMROUTER_AUTH_TEST_TOKEN", "", 1);
  EXPECT_NE(error_of("auth: {admin_token_env: SEMROUTER_AUTH_TEST_TOKEN}\n")
                .find("auth.admin_token_env: environment variable SEMROUTER_AUTH_TEST_TOKEN is "
                      "not set or empty"),
            std::string::npos);
  ::unsetenv("SEMROUTER_AUTH_TEST_TOKEN");

  TempDir dir;
  const std::string empty = dir.file("empty.token");
  write_file(empty, " \n");
  EXPECT_NE(error_of("auth: {admin_token_file: " + empty + "}\n")
                .find("auth.admin_token_file: \"" + empty + "\" is empty"),
            std::string::npos);
}

TEST(AuthConfigParse, KeysFile) {
  TempDir dir;
  const std::string path = dir.file("keys.yaml");
  write_file(path, "keys:\n" + key_entry("a", "sk-a", "    models: [gpt-*]\n") +
                       key_entry("b", "sk-b", "    tenant: acme\n"));
  auto keys = config::parse_keys_file(path);
  ASSERT_TRUE(keys) << keys.error().message;
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].models, (std::vector<std::string>{"gpt-*"}));
  EXPECT_EQ((*keys)[1].tenant, "acme");

  write_file(path, "keys: []\n");
  keys = config::parse_keys_file(path);
  ASSERT_TRUE(keys) << keys.error().message;
  EXPECT_TRUE(keys->empty());

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", path + ": is empty"},
      {"keys:\n", path + ": keys: is required"},
      {"other: 1\n", path + ": unknown key \"other\""},
      {"- a\n", path + ": expected a mapping"},
      {"keys: [{name: a, key: sk-live-9}]\n", path + ": keys[0].key: must not hold the key itself"},
      {"keys:\n" + key_entry("a", "sk-a") + key_entry("a", "sk-b"),
       path + ": keys[1].name: duplicate key name \"a\" (also keys[0])"},
      {"keys: [{name: a, sha256: 12}]\n", path + ": keys[0].sha256: must be the key's SHA-256"},
      {"keys: [{name: a\n", path + ": YAML syntax error at line"},
  };
  for (const auto& [text, want] : cases) {
    write_file(path, text);
    auto r = config::parse_keys_file(path);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, core::ErrorCode::InvalidArgument);
    EXPECT_NE(r.error().message.find(want), std::string::npos)
        << "text: " << text << "\nerror: " << r.error().message << "\nwant: " << want;
    EXPECT_EQ(r.error().message.find("sk-live-9"), std::string::npos);
  }
  auto missing = config::parse_keys_file(dir.file("nope.yaml"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, core::ErrorCode::NotFound);
}

} // namespace
} // namespace semrouter::auth
