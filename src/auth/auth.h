// Client API keys: who is calling (authenticate), what they may use (allows_model,
// allows_decision), how fast (admit / settle: token buckets per key) and how much they may spend
// (daily and monthly budgets, kept across restarts in auth.state_file, or shared by every replica
// through a SpendStore when auth.state_redis is set).
//
// Secrets (presented keys, their hashes, the admin token) never reach logs, metrics or
// usage_json(): keys are known there by their configured name only.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "auth/spend_store.h"
#include "config/auth_config.h"
#include "core/status.h"
#include "metrics/metrics.h"

namespace semrouter::auth {

// Lower-case hex SHA-256 of `data` (OpenSSL EVP), 64 characters.
std::string sha256_hex(std::string_view data);

// Equality whose time does not depend on where the inputs differ (CRYPTO_memcmp). Inputs of
// different lengths are unequal, after a comparison of the same cost as an equal-length one.
bool constant_time_equals(std::string_view a, std::string_view b);

// A request header by its lower-case name; nullopt when absent.
using HeaderFn = std::function<std::optional<std::string_view>(std::string_view lower_name)>;

// The key a client presented: `Authorization: Bearer <k>` (scheme case-insensitive), else
// `x-api-key`, else `api-key`. nullopt if none (an empty value counts as none). The view points
// into the header value the HeaderFn returned.
std::optional<std::string_view> presented_key(const HeaderFn& header);

enum class Verdict {
  Ok,      // a known, valid key: go on (check its models / decisions, then admit)
  Missing, // no key presented: answer 401
  Invalid, // a key nobody configured: answer 401
  Revoked, // a configured key marked revoked: answer 401 saying so (`key` names it)
};

struct Identity {
  Verdict verdict = Verdict::Missing;
  // Set for Ok and Revoked; null otherwise, and for Ok when auth is disabled. The snapshot the
  // request started with: a reload does not change it under the request.
  std::shared_ptr<const config::ApiKeyConfig> key;
};

// The outcome of admit(). When !ok, answer 429 with Retry-After (ceil of retry_after_s).
struct Admission {
  bool ok = true;
  double retry_after_s = 0;
  std::string reason;  // "requests", "tokens" or "budget" (the metrics' reason label)
  std::string message; // for the client: names the key and the limit, never the key itself
};

// Wall-clock time (budgets follow UTC days and months); injectable for tests.
using Clock = std::function<std::chrono::system_clock::time_point()>;

// The auth state of one process: the key set (config keys plus auth.keys_file, swapped whole on
// a reload), and per key name its token buckets, usage and spend, which survive reloads.
// Thread-safe: every method may be called from any thread. Register one Guard per metrics
// registry (it creates the semrouter_key_* families, labelled by key name and tenant).
//
// With auth.state_redis, a flusher thread owned here sends the spend settled since its last
// exchange to the SpendStore every flush_ms and reads back each key's shared totals for the
// current day and month, which then drive admit's budget check and budget_pressure. Requests
// never wait on the store: while it fails, spend keeps counting here and goes with a later
// exchange.
class Guard {
public:
  explicit Guard(metrics::Registry& registry, Clock clock = {});
  ~Guard(); // stops the flusher after a last exchange, and saves the spend state
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  // On load and on every reload. Takes the config's keys and those of keys_file; limits, degrade
  // curve and state_file apply at once. Each key's buckets, usage and spend are kept by name.
  // When state_file is new (start-up), the spend kept there is loaded (a missing file is empty;
  // a corrupt one is logged and ignored). Returns an error when keys_file cannot be read or is
  // invalid, or clashes with the config's keys: the keys file's previous contents (none on the
  // first call) stay in force, with everything else from `cfg`. Auth is then still enabled if
  // `cfg` enables it, so a broken file never opens the door.
  // A state_redis that changed stops the flusher (waiting for an exchange in progress, at most
  // about two of the store's timeouts) and starts one for the new store.
  core::Status configure(const config::AuthConfig& cfg);
  // How configure() builds the store auth.state_redis names (app sets it before the first
  // configure: the Redis store lives in the cache module). Without one, a config with
  // state_redis logs an error and spend is kept in this process only.
  void set_spend_store_factory(SpendStoreFactory factory);
  bool enabled() const { return enabled_.load(std::memory_order_acquire); }

  // Hashes the presented key and looks it up (hash comparison constant-time). Re-reads
  // keys_file first when its modification time or size changed (checked at most once a second).
  // With auth disabled: {Ok, nullptr}.
  Identity authenticate(std::optional<std::string_view> presented);
  // Checks keys_file now, without waiting for the once-a-second check, and reloads it if it
  // changed. Returns the reload's error (the previous keys stay). For tests and the admin API.
  core::Status reload_keys_file_if_changed();

  // An empty list allows everything; entries may hold `*` wildcards ("gpt-*", "*").
  bool allows_model(const config::ApiKeyConfig& k, std::string_view model) const;
  bool allows_decision(const config::ApiKeyConfig& k, std::string_view decision) const;

  // Before the upstream call. Refuses with reason "budget" while the daily or monthly budget is
  // spent (retry_after_s: until that UTC day or month ends), else takes 1 request and
  // `estimated_tokens` from the key's buckets (capacity: the per-minute limit, refilled
  // continuously); refuses with "requests" or "tokens" and the wait until enough has refilled
  // when one is short, taking nothing from either. A request estimated above the whole token
  // bucket passes when the bucket is full (and leaves it in debt) rather than never.
  Admission admit(const config::ApiKeyConfig& k, uint64_t estimated_tokens);
  // After the answer, exactly once per admitted request (zeros when it failed): corrects the
  // token bucket by (prompt + completion - estimated) and adds usage and spend. Saves the spend
  // state at most once a second.
  void settle(const config::ApiKeyConfig& k, uint64_t estimated_tokens, uint64_t prompt_tokens,
              uint64_t completion_tokens, double cost_usd);
  // Counts a refusal decided by the caller (e.g. "model", "decision") in
  // semrouter_key_rejections_total. The reason must come from a fixed set (it is a label).
  void count_rejection(const config::ApiKeyConfig& k, std::string_view reason);

  // The routing pressure (0..1) of the degrade curve's last step at or below the larger of the
  // key's spent fractions of its daily and monthly budgets (0 without budgets); that fraction
  // goes to *spent_fraction.
  double budget_pressure(const config::ApiKeyConfig& k, double* spent_fraction = nullptr) const;

  // The admin API's view: per key (by name) tenant, revoked, requests, tokens, cost, limits,
  // budget spent / remaining for the day and the month, pressure. Never a key or a hash.
  std::string usage_json() const;
  // Brings the gauges that move without traffic (budget remaining after a new day) up to date;
  // call before exposing the metrics.
  void refresh_metrics();
  // Writes the spend state to state_file atomically (a temporary file, then rename). Errors are
  // logged. Without a state_file, does nothing.
  void save_state();
  // One exchange with the spend store (blocking): sends what was settled since the last
  // successful one (a failed batch is sent again, as it was, so it counts once) and sets each
  // configured key's spend for the current day and month to the shared total plus what is not
  // sent yet. The flusher calls it every state_redis.flush_ms; tests call it directly. False when
  // there is no store or it failed (counted in semrouter_auth_spend_store_errors_total, logged
  // once until it works again).
  bool sync_spend();

private:
  struct KeyState;
  struct KeySet;
  using TimePoint = std::chrono::system_clock::time_point;

  TimePoint now() const { return clock_ ? clock_() : std::chrono::system_clock::now(); }
  KeyState& state_locked(const config::ApiKeyConfig& k, TimePoint now);
  void refill_locked(KeyState& s, const config::ApiKeyConfig& k, TimePoint now);
  void publish_budget_locked(KeyState& s, const config::ApiKeyConfig& k, TimePoint now);
  void load_state_locked(const std::string& path, TimePoint now);
  core::Status rebuild_keys(bool force_read);
  void maybe_reload_keys_file();
  void configure_spend_store(const config::SpendRedisConfig& cfg);
  void start_flusher(uint32_t interval_ms);
  void stop_flusher();
  void add_pending_spend_locked(const std::string& total, double usd, int64_t expire_at_unix_s);

  metrics::Family<metrics::Counter>& requests_total_;
  metrics::Family<metrics::Counter>& tokens_total_;
  metrics::Family<metrics::Gauge>& cost_total_;
  metrics::Family<metrics::Counter>& rejections_total_;
  metrics::Family<metrics::Gauge>& budget_remaining_;
  metrics::Family<metrics::Counter>& store_errors_;
  metrics::Family<metrics::Gauge>& store_up_metric_;
  Clock clock_;
  std::atomic<bool> enabled_{false};

  // Guards the key sources and the keys file's fingerprint; held across file reads so that one
  // thread reloads at a time. Taken before mu_, never after.
  std::mutex reload_mu_;
  std::vector<config::ApiKeyConfig> config_keys_;
  std::vector<config::ApiKeyConfig> file_keys_; // the keys file's last good contents
  std::string keys_file_;
  std::string keys_file_fingerprint_; // mtime and size last read ("" : never read)
  std::atomic<int64_t> last_keys_file_check_ms_{0};

  // Guards everything below.
  mutable std::mutex mu_;
  std::shared_ptr<const KeySet> keys_;
  std::vector<config::BudgetStep> degrade_;
  std::string state_file_;
  std::map<std::string, std::unique_ptr<KeyState>> states_; // by key name, kept across reloads
  TimePoint last_save_{};
  // The spend store's side: settled spend not yet in a batch (by total name, e.g.
  // "day:2025-03-10:team"), the batch being sent (kept, with its id, until it succeeds), and
  // whether a store is configured (only then does settle record pending spend).
  std::map<std::string, SpendIncrement> pending_spend_;
  SpendBatch in_flight_;
  uint64_t batch_seq_ = 0;
  std::string instance_id_; // random, names this process's batches
  bool store_active_ = false;
  bool store_up_ = true; // the last exchange worked (for logging each outage once)

  std::mutex save_mu_; // one writer of state_file at a time

  // Guards the spend store and its settings; held across an exchange. Taken before mu_, never
  // after. store_config_ is written with reload_mu_ held too, so configure() reads it under
  // reload_mu_ alone.
  std::mutex sync_mu_;
  SpendStoreFactory store_factory_;
  config::SpendRedisConfig store_config_;
  std::unique_ptr<SpendStore> store_;

  // The flusher thread (only with a store).
  std::mutex flusher_mu_;
  std::condition_variable flusher_cv_;
  bool flusher_stop_ = false;
  std::thread flusher_;
};

} // namespace semrouter::auth
