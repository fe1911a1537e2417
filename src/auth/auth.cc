#include "auth/auth.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "core/strings.h"

namespace semrouter::auth {
namespace {

using config::ApiKeyConfig;
using core::ErrorCode;
using SystemTime = std::chrono::system_clock::time_point;

constexpr double kSecondsPerMinute = 60;
constexpr int64_t kKeysFileCheckIntervalMs = 1000;
constexpr auto kSaveInterval = std::chrono::seconds(1);
constexpr int kStateVersion = 1;
// Refills add fractions of a request; a level this close to what is needed counts as enough, so
// 1/3 + 2/3 of a request is one request.
constexpr double kLevelSlack = 1e-9;
// The key set is indexed by the first 16 hex digits of the hash; the full hash is then compared
// in constant time. A lookup's timing can only tell how a SHA-256 output falls into buckets,
// which says nothing about any configured key.
constexpr size_t kIndexHexDigits = 16;

std::chrono::sys_days utc_date(SystemTime t) {
  return std::chrono::floor<std::chrono::days>(t);
}

std::string utc_day(SystemTime t) {
  const std::chrono::year_month_day d{utc_date(t)};
  return fmt::format("{:04d}-{:02d}-{:02d}", static_cast<int>(d.year()),
                     static_cast<unsigned>(d.month()), static_cast<unsigned>(d.day()));
}

std::string utc_month(SystemTime t) {
  const std::chrono::year_month_day d{utc_date(t)};
  return fmt::format("{:04d}-{:02d}", static_cast<int>(d.year()), static_cast<unsigned>(d.month()));
}

int64_t unix_seconds(std::chrono::sys_days d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d.time_since_epoch()).count();
}

// The spend store's totals are named by period, then key name (which may hold anything, so it
// goes last). They may be dropped a day after their period ends: late batches (a replica whose
// clock is behind, a resend after an outage) still find them.
constexpr std::chrono::days kTotalGrace{1};

std::string day_total(const std::string& day, const std::string& key) {
  return "day:" + day + ":" + key;
}

std::string month_total(const std::string& month, const std::string& key) {
  return "month:" + month + ":" + key;
}

int64_t day_total_expiry(SystemTime t) {
  return unix_seconds(utc_date(t) + std::chrono::days{1} + kTotalGrace);
}

int64_t month_total_expiry(SystemTime t) {
  const std::chrono::year_month_day d{utc_date(t)};
  const std::chrono::year_month next = d.year() / d.month() + std::chrono::months{1};
  return unix_seconds(std::chrono::sys_days{next / std::chrono::day{1}} + kTotalGrace);
}

// The tenant metrics show for a key: the configured one, else the name (as routing uses it).
const std::string& tenant_of(const ApiKeyConfig& k) {
  return k.tenant.empty() ? k.name : k.tenant;
}

double seconds_until(SystemTime from, std::chrono::sys_days to) {
  return std::chrono::duration<double>(to - from).count();
}

double seconds_to_day_end(SystemTime t) {
  return seconds_until(t, utc_date(t) + std::chrono::days{1});
}

double seconds_to_month_end(SystemTime t) {
  const std::chrono::year_month_day d{utc_date(t)};
  const std::chrono::year_month next = d.year() / d.month() + std::chrono::months{1};
  return seconds_until(t, std::chrono::sys_days{next / std::chrono::day{1}});
}

// Spend of one key in the current UTC day and month.
struct Spend {
  std::string day; // "YYYY-MM-DD"
  double day_usd = 0;
  std::string month; // "YYYY-MM"
  double month_usd = 0;

  // Starts a new day or month when `t` is in another one.
  void roll(SystemTime t) {
    std::string today = utc_day(t), this_month = utc_month(t);
    if (day != today) {
      day = std::move(today);
      day_usd = 0;
    }
    if (month != this_month) {
      month = std::move(this_month);
      month_usd = 0;
    }
  }
  // What counts at `t` without changing anything (0 for a past period).
  double day_at(SystemTime t) const { return day == utc_day(t) ? day_usd : 0; }
  double month_at(SystemTime t) const { return month == utc_month(t) ? month_usd : 0; }
};

// `*` matches any run of characters (none included); everything else matches itself.
bool glob_match(std::string_view pattern, std::string_view s) {
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pattern.size() && pattern[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

bool list_allows(const std::vector<std::string>& list, std::string_view value) {
  if (list.empty())
    return true;
  return std::any_of(list.begin(), list.end(),
                     [&](const std::string& pattern) { return glob_match(pattern, value); });
}

uint64_t index_of_hash(std::string_view hex) {
  uint64_t v = 0;
  for (size_t i = 0; i < kIndexHexDigits && i < hex.size(); ++i) {
    const char c = hex[i];
    v = (v << 4) | static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return v;
}

// The keys file's identity for change detection: modification time and size ("missing" when it
// cannot be stat'ed). Size too, because two writes within one mtime tick look alike otherwise.
std::string file_fingerprint(const std::string& path) {
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(path, ec);
  if (ec)
    return "missing";
  const auto size = std::filesystem::file_size(path, ec);
  if (ec)
    return "missing";
  return fmt::format("{}:{}", mtime.time_since_epoch().count(), size);
}

// Writes `text` to `path` through a temporary file in the same folder and a rename, so a reader
// (or a crash) sees the old file or the new one, never half of one. Returns "" or the error.
std::string write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return std::string("cannot create ") + tmp + ": " + std::strerror(errno);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      const std::string err = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return "cannot write " + tmp + ": " + err;
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    return "cannot replace " + path + ": " + err;
  }
  return "";
}

// Names a clash between the config's keys and the keys file's ("" : none). Hashes are never
// shown, only the names of the keys that share one.
std::string find_clash(const std::vector<ApiKeyConfig>& config_keys,
                       const std::vector<ApiKeyConfig>& file_keys) {
  for (const ApiKeyConfig& f : file_keys) {
    for (const ApiKeyConfig& c : config_keys) {
      if (f.name == c.name)
        return "key name \"" + f.name + "\" is also in auth.keys";
      if (f.sha256 == c.sha256)
        return "key \"" + f.name + "\" is the same key as auth.keys' \"" + c.name + "\"";
    }
  }
  return "";
}

} // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    return ""; // matches no configured hash
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(static_cast<size_t>(length) * 2, '\0');
  for (unsigned int i = 0; i < length; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

bool constant_time_equals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    // Same work as an equal-length comparison, so the length is all a timing can tell.
    (void)CRYPTO_memcmp(a.data(), a.data(), a.size());
    return false;
  }
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<std::string_view> presented_key(const HeaderFn& header) {
  if (!header)
    return std::nullopt;
  if (auto authorization = header("authorization")) {
    constexpr std::string_view kBearer = "bearer";
    const std::string_view v = core::trim(*authorization);
    if (v.size() > kBearer.size() && core::iequals(v.substr(0, kBearer.size()), kBearer) &&
        (v[kBearer.size()] == ' ' || v[kBearer.size()] == '\t')) {
      const std::string_view token = core::trim(v.substr(kBearer.size() + 1));
      if (!token.empty())
        return token;
    }
  }
  for (const char* name : {"x-api-key", "api-key"}) {
    if (auto v = header(name)) {
      const std::string_view token = core::trim(*v);
      if (!token.empty())
        return token;
    }
  }
  return std::nullopt;
}

struct Guard::KeyState {
  // Token buckets: levels, and the capacities they were last refilled under (0: unlimited).
  double request_level = 0, token_level = 0;
  double request_capacity = 0, token_capacity = 0;
  TimePoint refilled{};
  uint64_t requests = 0, prompt_tokens = 0, completion_tokens = 0;
  double cost_usd = 0;
  Spend spend;
  // This key's metric children (set on first use and when its tenant changes; the families own
  // them), and the tenant they are labelled with.
  std::string metric_tenant;
  metrics::Counter* requests_metric = nullptr;
  metrics::Counter* prompt_metric = nullptr;
  metrics::Counter* completion_metric = nullptr;
  metrics::Gauge* cost_metric = nullptr;
};

struct Guard::KeySet {
  std::vector<std::shared_ptr<const ApiKeyConfig>> keys; // by name
  std::unordered_map<uint64_t, std::vector<size_t>> by_hash;
};

namespace {

double spent_fraction_of(const ApiKeyConfig& k, const Spend& s, SystemTime t) {
  double fraction = 0;
  if (k.daily_budget_usd > 0)
    fraction = std::max(fraction, s.day_at(t) / k.daily_budget_usd);
  if (k.monthly_budget_usd > 0)
    fraction = std::max(fraction, s.month_at(t) / k.monthly_budget_usd);
  return fraction;
}

double pressure_of(const std::vector<config::BudgetStep>& curve, const ApiKeyConfig& k,
                   double fraction) {
  if (k.daily_budget_usd <= 0 && k.monthly_budget_usd <= 0)
    return 0;
  double pressure = 0;
  for (const config::BudgetStep& step : curve)
    if (fraction >= step.spent)
      pressure = step.pressure;
  return pressure;
}

} // namespace

Guard::Guard(metrics::Registry& registry, Clock clock)
    : requests_total_(registry.counter(
          "semrouter_key_requests_total",
          "Requests per client API key, counted when settled (answered or failed).",
          {"key", "tenant"})),
      tokens_total_(registry.counter("semrouter_key_tokens_total",
                                     "Tokens per client API key, by kind (prompt, completion).",
                                     {"key", "tenant", "kind"})),
      cost_total_(registry.gauge("semrouter_key_cost_usd_total",
                                 "Cost in USD per client API key since the process started.",
                                 {"key", "tenant"})),
      rejections_total_(registry.counter("semrouter_key_rejections_total",
                                         "Requests refused per client API key, by reason "
                                         "(requests, tokens, budget, revoked, ...).",
                                         {"key", "tenant", "reason"})),
      budget_remaining_(registry.gauge("semrouter_key_budget_remaining_usd",
                                       "Budget left per client API key in the current UTC period "
                                       "(day, month); only keys with that budget.",
                                       {"key", "tenant", "period"})),
      store_errors_(registry.counter("semrouter_auth_spend_store_errors_total",
                                     "Failed exchanges with the spend store (auth.state_redis); "
                                     "spend keeps counting locally and is sent later.")),
      store_up_metric_(registry.gauge("semrouter_auth_spend_store_up",
                                      "1 while the spend store (auth.state_redis) answers, 0 "
                                      "while it fails.")),
      clock_(std::move(clock)) {
  std::random_device rd;
  instance_id_ = fmt::format("{:08x}{:08x}-{}", rd(), rd(), ::getpid());
}

Guard::~Guard() {
  stop_flusher();
  try {
    bool unsent = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      unsent = store_active_ && (!pending_spend_.empty() || !in_flight_.increments.empty());
    }
    if (unsent && !sync_spend())
      spdlog::warn("auth: spend not yet sent to the spend store is lost (it is unreachable)");
  } catch (const std::exception& e) {
    spdlog::warn("auth: cannot send the last spend to the spend store: {}", e.what());
  }
  try {
    save_state();
  } catch (const std::exception& e) {
    spdlog::warn("auth: cannot save the spend state: {}", e.what());
  }
}

void Guard::set_spend_store_factory(SpendStoreFactory factory) {
  std::lock_guard<std::mutex> lock(sync_mu_);
  store_factory_ = std::move(factory);
}

void Guard::start_flusher(uint32_t interval_ms) {
  {
    std::lock_guard<std::mutex> lock(flusher_mu_);
    flusher_stop_ = false;
  }
  flusher_ = std::thread([this, interval = std::chrono::milliseconds(interval_ms)] {
    std::unique_lock<std::mutex> lock(flusher_mu_);
    while (!flusher_stop_) {
      lock.unlock();
      try {
        sync_spend(); // at once on start: the shared totals, before the first interval
      } catch (const std::exception& e) {
        spdlog::warn("auth: spend store exchange failed: {}", e.what());
      }
      lock.lock();
      flusher_cv_.wait_for(lock, interval, [this] { return flusher_stop_; });
    }
  });
}

void Guard::stop_flusher() {
  {
    std::lock_guard<std::mutex> lock(flusher_mu_);
    flusher_stop_ = true;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable())
    flusher_.join();
}

void Guard::configure_spend_store(const config::SpendRedisConfig& cfg) {
  // reload_mu_ is held, which every writer of store_config_ holds too: reading it needs no
  // sync_mu_, which an exchange in progress may hold for a while. A reload that leaves
  // state_redis alone does not wait.
  if (cfg == store_config_)
    return;
  stop_flusher(); // it takes sync_mu_: not held here
  bool start = false;
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    store_config_ = cfg;
    store_.reset();
    if (cfg.enabled) {
      if (store_factory_)
        store_ = store_factory_(cfg);
      else
        spdlog::error("auth: state_redis is set but this process has no Redis spend store; "
                      "spend is kept in this process only");
    }
    start = store_ != nullptr;
    std::lock_guard<std::mutex> state_lock(mu_);
    store_active_ = start;
    store_up_ = true;
    if (start) {
      store_up_metric_.with({}).set(1);
      store_errors_.with({});
      spdlog::info("auth: spend is shared through redis {}:{} (prefix \"{}\", sent every {} ms)",
                   cfg.host, cfg.port, cfg.prefix, cfg.flush_ms);
    } else {
      // Spend not sent stays counted here; nothing would send it any more.
      pending_spend_.clear();
      in_flight_ = {};
    }
  }
  if (start)
    start_flusher(cfg.flush_ms);
}

void Guard::add_pending_spend_locked(const std::string& total, double usd,
                                     int64_t expire_at_unix_s) {
  SpendIncrement& inc = pending_spend_[total];
  inc.name = total;
  inc.usd += usd;
  inc.expire_at_unix_s = expire_at_unix_s;
}

bool Guard::sync_spend() {
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  if (!store_)
    return false;
  const TimePoint t = now();
  const std::string today = utc_day(t), this_month = utc_month(t);
  SpendBatch batch;
  std::vector<std::string> read;
  std::vector<std::shared_ptr<const ApiKeyConfig>> read_keys;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_.increments.empty() && !pending_spend_.empty()) {
      in_flight_.id = fmt::format("{}-{}", instance_id_, ++batch_seq_);
      for (auto& [name, inc] : pending_spend_)
        in_flight_.increments.push_back(std::move(inc));
      pending_spend_.clear();
    }
    batch = in_flight_;
    if (keys_)
      for (const auto& k : keys_->keys) {
        read.push_back(day_total(today, k->name));
        read.push_back(month_total(this_month, k->name));
        read_keys.push_back(k);
      }
  }
  auto totals = store_->sync(batch, read);

  std::lock_guard<std::mutex> lock(mu_);
  if (!totals) {
    store_errors_.with({}).inc();
    store_up_metric_.with({}).set(0);
    if (store_up_)
      spdlog::warn("auth: the spend store failed ({}); counting spend here and retrying every "
                   "{} ms",
                   totals.error().message, store_config_.flush_ms);
    store_up_ = false;
    return false;
  }
  if (!store_up_)
    spdlog::info("auth: the spend store answers again");
  store_up_ = true;
  store_up_metric_.with({}).set(1);
  in_flight_ = {};
  const TimePoint after = now();
  auto not_sent = [this](const std::string& total) {
    auto it = pending_spend_.find(total);
    return it == pending_spend_.end() ? 0.0 : it->second.usd;
  };
  for (size_t i = 0; i < read_keys.size(); ++i) {
    const ApiKeyConfig& k = *read_keys[i];
    KeyState& s = state_locked(k, after);
    // A period that ended during the exchange starts from zero (state_locked rolled it).
    if (s.spend.day == today)
      s.spend.day_usd = (*totals)[2 * i] + not_sent(day_total(today, k.name));
    if (s.spend.month == this_month)
      s.spend.month_usd = (*totals)[2 * i + 1] + not_sent(month_total(this_month, k.name));
    publish_budget_locked(s, k, after);
  }
  return true;
}

Guard::KeyState& Guard::state_locked(const ApiKeyConfig& k, TimePoint t) {
  std::unique_ptr<KeyState>& slot = states_[k.name];
  if (!slot)
    slot = std::make_unique<KeyState>();
  KeyState& s = *slot;
  const std::string& tenant = tenant_of(k);
  if (!s.requests_metric || s.metric_tenant != tenant) {
    s.metric_tenant = tenant;
    s.requests_metric = &requests_total_.with({k.name, tenant});
    s.prompt_metric = &tokens_total_.with({k.name, tenant, "prompt"});
    s.completion_metric = &tokens_total_.with({k.name, tenant, "completion"});
    s.cost_metric = &cost_total_.with({k.name, tenant});
  }
  s.spend.roll(t);
  return s;
}

void Guard::refill_locked(KeyState& s, const ApiKeyConfig& k, TimePoint t) {
  // A clock that went back refills nothing (and does not take back either).
  const double elapsed = s.refilled == TimePoint{}
                             ? 0
                             : std::max(0.0, std::chrono::duration<double>(t - s.refilled).count());
  s.refilled = t;
  // A bucket holds `capacity` and fills at `per_minute`.
  auto refill = [elapsed](double& level, double& seen_capacity, double capacity,
                          double per_minute) {
    if (per_minute <= 0) {
      level = 0;
      seen_capacity = 0;
      return;
    }
    if (seen_capacity != capacity) { // a new limit: a new key starts full, a lower one clips
      level = seen_capacity <= 0 ? capacity : std::min(level, capacity);
      seen_capacity = capacity;
    }
    level = std::min(capacity, level + elapsed * per_minute / kSecondsPerMinute);
  };
  const double rpm = static_cast<double>(k.requests_per_minute);
  refill(s.request_level, s.request_capacity, k.burst > 0 ? static_cast<double>(k.burst) : rpm,
         rpm);
  refill(s.token_level, s.token_capacity, static_cast<double>(k.tokens_per_minute),
         static_cast<double>(k.tokens_per_minute));
}

void Guard::publish_budget_locked(KeyState& s, const ApiKeyConfig& k, TimePoint t) {
  if (k.daily_budget_usd > 0)
    budget_remaining_.with({k.name, tenant_of(k), "day"})
        .set(std::max(0.0, k.daily_budget_usd - s.spend.day_at(t)));
  if (k.monthly_budget_usd > 0)
    budget_remaining_.with({k.name, tenant_of(k), "month"})
        .set(std::max(0.0, k.monthly_budget_usd - s.spend.month_at(t)));
}

void Guard::load_state_locked(const std::string& path, TimePoint t) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec))
      spdlog::warn("auth: cannot read the spend state {}; starting from none", path);
    return; // no file yet: nothing spent
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::map<std::string, Spend> loaded;
  try {
    const nlohmann::json j = nlohmann::json::parse(ss.str());
    if (!j.is_object() || j.value("version", 0) != kStateVersion || !j.contains("keys") ||
        !j["keys"].is_object())
      throw std::runtime_error("not a version 1 spend state");
    for (const auto& [name, entry] : j["keys"].items()) {
      Spend s;
      s.day = entry.at("day").get<std::string>();
      s.day_usd = entry.at("day_usd").get<double>();
      s.month = entry.at("month").get<std::string>();
      s.month_usd = entry.at("month_usd").get<double>();
      if (!std::isfinite(s.day_usd) || !std::isfinite(s.month_usd) || s.day_usd < 0 ||
          s.month_usd < 0)
        throw std::runtime_error("a negative or non-finite amount");
      loaded[name] = std::move(s);
    }
  } catch (const std::exception& e) {
    spdlog::warn("auth: ignoring the corrupt spend state {} ({}); starting from none", path,
                 e.what());
    return;
  }
  // Spend already counted in this process (a state_file that changed on reload) is kept: for each
  // period the larger amount wins.
  for (auto& [name, spend] : loaded) {
    spend.roll(t);
    std::unique_ptr<KeyState>& slot = states_[name];
    if (!slot)
      slot = std::make_unique<KeyState>();
    Spend& mine = slot->spend;
    mine.roll(t);
    mine.day_usd = std::max(mine.day_usd, spend.day_usd);
    mine.month_usd = std::max(mine.month_usd, spend.month_usd);
  }
  spdlog::info("auth: loaded the spend of {} keys from {}", loaded.size(), path);
}

core::Status Guard::configure(const config::AuthConfig& cfg) {
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  config_keys_ = cfg.keys;
  if (cfg.keys_file != keys_file_) { // another file: the old one's keys do not carry over
    file_keys_.clear();
    keys_file_fingerprint_.clear();
    keys_file_ = cfg.keys_file;
  }
  const TimePoint t = now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    degrade_ = cfg.degrade;
    if (cfg.state_file != state_file_) {
      state_file_ = cfg.state_file;
      if (!state_file_.empty())
        load_state_locked(state_file_, t);
    }
  }
  core::Status status = rebuild_keys(true);
  configure_spend_store(cfg.state_redis); // after the keys: its first exchange reads their totals
  last_keys_file_check_ms_.store(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
  enabled_.store(cfg.enabled(), std::memory_order_release);
  return status;
}

core::Status Guard::rebuild_keys(bool force_read) {
  core::Status status;
  if (!keys_file_.empty()) {
    std::string fingerprint = file_fingerprint(keys_file_);
    if (!force_read && fingerprint == keys_file_fingerprint_)
      return status; // unchanged
    keys_file_fingerprint_ = std::move(fingerprint);
    auto parsed = config::parse_keys_file(keys_file_);
    if (!parsed) {
      status = tl::unexpected(parsed.error());
    } else if (std::string clash = find_clash(config_keys_, *parsed); !clash.empty()) {
      status = core::make_error(ErrorCode::InvalidArgument, keys_file_ + ": " + clash);
    } else {
      file_keys_ = std::move(*parsed);
      spdlog::info("auth: keys file {}: {} keys", keys_file_, file_keys_.size());
    }
    if (!status)
      spdlog::warn("auth: keeping the keys file's previous keys: {}", status.error().message);
  }

  auto set = std::make_shared<KeySet>();
  for (const ApiKeyConfig& k : config_keys_)
    set->keys.push_back(std::make_shared<const ApiKeyConfig>(k));
  // The previous file contents may clash with a changed config: the config wins.
  const size_t config_count = set->keys.size();
  for (const ApiKeyConfig& k : file_keys_) {
    bool clashes = false;
    for (size_t i = 0; i < config_count; ++i)
      clashes = clashes || set->keys[i]->name == k.name || set->keys[i]->sha256 == k.sha256;
    if (!clashes)
      set->keys.push_back(std::make_shared<const ApiKeyConfig>(k));
  }
  std::sort(set->keys.begin(), set->keys.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  for (size_t i = 0; i < set->keys.size(); ++i)
    set->by_hash[index_of_hash(set->keys[i]->sha256)].push_back(i);

  const TimePoint t = now();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& k : set->keys)
    publish_budget_locked(state_locked(*k, t), *k, t); // metrics from the start, at zero
  keys_ = std::move(set);
  return status;
}

void Guard::maybe_reload_keys_file() {
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now().time_since_epoch()).count();
  const int64_t last = last_keys_file_check_ms_.load(std::memory_order_relaxed);
  if (now_ms >= last && now_ms - last < kKeysFileCheckIntervalMs)
    return;
  // One thread checks; the others go on with the keys they have.
  std::unique_lock<std::mutex> lock(reload_mu_, std::try_to_lock);
  if (!lock.owns_lock())
    return;
  last_keys_file_check_ms_.store(now_ms, std::memory_order_relaxed);
  if (!keys_file_.empty())
    (void)rebuild_keys(false); // errors are logged; the previous keys stay
}

core::Status Guard::reload_keys_file_if_changed() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  last_keys_file_check_ms_.store(
      std::chrono::duration_cast<std::chrono::milliseconds>(now().time_since_epoch()).count(),
      std::memory_order_relaxed);
  if (keys_file_.empty())
    return {};
  return rebuild_keys(false);
}

Identity Guard::authenticate(std::optional<std::string_view> presented) {
  if (!enabled())
    return {Verdict::Ok, nullptr};
  maybe_reload_keys_file();
  if (!presented || presented->empty())
    return {Verdict::Missing, nullptr};
  const std::string hash = sha256_hex(*presented);
  std::shared_ptr<const KeySet> set;
  {
    std::lock_guard<std::mutex> lock(mu_);
    set = keys_;
  }
  if (!set || hash.empty())
    return {Verdict::Invalid, nullptr};
  std::shared_ptr<const ApiKeyConfig> found;
  if (auto it = set->by_hash.find(index_of_hash(hash)); it != set->by_hash.end())
    for (size_t i : it->second) // all of them, without stopping at a match
      if (constant_time_equals(set->keys[i]->sha256, hash))
        found = set->keys[i];
  if (!found)
    return {Verdict::Invalid, nullptr};
  if (found->revoked) {
    count_rejection(*found, "revoked");
    return {Verdict::Revoked, found};
  }
  return {Verdict::Ok, found};
}

bool Guard::allows_model(const ApiKeyConfig& k, std::string_view model) const {
  return list_allows(k.models, model);
}

bool Guard::allows_decision(const ApiKeyConfig& k, std::string_view decision) const {
  return list_allows(k.decisions, decision);
}

Admission Guard::admit(const ApiKeyConfig& k, uint64_t estimated_tokens) {
  const TimePoint t = now();
  Admission a;
  std::lock_guard<std::mutex> lock(mu_);
  KeyState& s = state_locked(k, t);

  std::string spent;
  double wait = 0;
  if (k.daily_budget_usd > 0 && s.spend.day_usd >= k.daily_budget_usd) {
    spent = "daily";
    wait = seconds_to_day_end(t);
  }
  if (k.monthly_budget_usd > 0 && s.spend.month_usd >= k.monthly_budget_usd) {
    spent = spent.empty() ? "monthly" : "daily and monthly";
    wait = std::max(wait, seconds_to_month_end(t));
  }
  if (!spent.empty()) {
    a.ok = false;
    a.reason = "budget";
    a.retry_after_s = wait;
    a.message = fmt::format("the {} budget of API key \"{}\" is spent", spent, k.name);
    rejections_total_.with({k.name, tenant_of(k), a.reason}).inc();
    return a;
  }

  refill_locked(s, k, t);
  const double rpm = static_cast<double>(k.requests_per_minute);
  const double tpm = static_cast<double>(k.tokens_per_minute);
  double request_wait = 0, token_wait = 0;
  if (rpm > 0 && s.request_level < 1 - kLevelSlack)
    request_wait = (1 - s.request_level) * kSecondsPerMinute / rpm;
  const double tokens = static_cast<double>(estimated_tokens);
  if (tpm > 0) {
    const double need = std::min(tokens, tpm); // more than a full bucket passes on a full one
    if (s.token_level < need - kLevelSlack)
      token_wait = (need - s.token_level) * kSecondsPerMinute / tpm;
  }
  if (request_wait > 0 || token_wait > 0) {
    a.ok = false;
    a.retry_after_s = std::max(request_wait, token_wait);
    if (request_wait > 0) {
      a.reason = "requests";
      a.message = fmt::format("API key \"{}\" is limited to {} requests per minute", k.name,
                              k.requests_per_minute);
    } else {
      a.reason = "tokens";
      a.message = fmt::format("API key \"{}\" is limited to {} tokens per minute", k.name,
                              k.tokens_per_minute);
    }
    rejections_total_.with({k.name, tenant_of(k), a.reason}).inc();
    return a;
  }
  if (rpm > 0)
    s.request_level -= 1;
  if (tpm > 0)
    s.token_level -= tokens;
  return a;
}

void Guard::settle(const ApiKeyConfig& k, uint64_t estimated_tokens, uint64_t prompt_tokens,
                   uint64_t completion_tokens, double cost_usd) {
  const TimePoint t = now();
  bool save = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    KeyState& s = state_locked(k, t);
    refill_locked(s, k, t);
    if (k.tokens_per_minute > 0) {
      const double used =
          static_cast<double>(prompt_tokens) + static_cast<double>(completion_tokens);
      s.token_level =
          std::min(s.token_capacity, s.token_level + static_cast<double>(estimated_tokens) - used);
    }
    if (!std::isfinite(cost_usd) || cost_usd < 0)
      cost_usd = 0;
    s.requests += 1;
    s.prompt_tokens += prompt_tokens;
    s.completion_tokens += completion_tokens;
    s.cost_usd += cost_usd;
    s.spend.day_usd += cost_usd;
    s.spend.month_usd += cost_usd;
    if (store_active_ && cost_usd > 0) {
      add_pending_spend_locked(day_total(s.spend.day, k.name), cost_usd, day_total_expiry(t));
      add_pending_spend_locked(month_total(s.spend.month, k.name), cost_usd, month_total_expiry(t));
    }
    s.requests_metric->inc();
    s.prompt_metric->inc(prompt_tokens);
    s.completion_metric->inc(completion_tokens);
    s.cost_metric->add(cost_usd);
    publish_budget_locked(s, k, t);
    if (!state_file_.empty() && cost_usd > 0 &&
        (t - last_save_ >= kSaveInterval || t < last_save_)) {
      last_save_ = t;
      save = true;
    }
  }
  if (save)
    save_state();
}

void Guard::count_rejection(const ApiKeyConfig& k, std::string_view reason) {
  rejections_total_.with({k.name, tenant_of(k), reason}).inc();
}

double Guard::budget_pressure(const ApiKeyConfig& k, double* spent_fraction) const {
  const TimePoint t = now();
  std::lock_guard<std::mutex> lock(mu_);
  double fraction = 0;
  if (auto it = states_.find(k.name); it != states_.end())
    fraction = spent_fraction_of(k, it->second->spend, t);
  if (spent_fraction)
    *spent_fraction = fraction;
  return pressure_of(degrade_, k, fraction);
}

std::string Guard::usage_json() const {
  const TimePoint t = now();
  const std::string today = utc_day(t), this_month = utc_month(t);
  nlohmann::ordered_json keys = nlohmann::ordered_json::array();
  std::lock_guard<std::mutex> lock(mu_);
  if (keys_) {
    for (const auto& key : keys_->keys) {
      const ApiKeyConfig& k = *key;
      static const KeyState kNone;
      auto it = states_.find(k.name);
      const KeyState& s = it == states_.end() ? kNone : *it->second;
      auto period = [](const std::string& name, double spent, double budget) {
        nlohmann::ordered_json p;
        p["period"] = name;
        p["spent_usd"] = spent;
        p["budget_usd"] = budget > 0 ? nlohmann::ordered_json(budget) : nullptr;
        p["remaining_usd"] =
            budget > 0 ? nlohmann::ordered_json(std::max(0.0, budget - spent)) : nullptr;
        return p;
      };
      const double fraction = spent_fraction_of(k, s.spend, t);
      nlohmann::ordered_json entry;
      entry["name"] = k.name;
      entry["tenant"] = k.tenant;
      entry["revoked"] = k.revoked;
      entry["requests"] = s.requests;
      entry["prompt_tokens"] = s.prompt_tokens;
      entry["completion_tokens"] = s.completion_tokens;
      entry["cost_usd"] = s.cost_usd;
      entry["limits"] = {{"requests_per_minute", k.requests_per_minute},
                         {"burst", k.burst},
                         {"tokens_per_minute", k.tokens_per_minute},
                         {"models", k.models},
                         {"decisions", k.decisions}};
      entry["budget"] = {{"day", period(today, s.spend.day_at(t), k.daily_budget_usd)},
                         {"month", period(this_month, s.spend.month_at(t), k.monthly_budget_usd)},
                         {"spent_fraction", fraction},
                         {"pressure", pressure_of(degrade_, k, fraction)}};
      keys.push_back(std::move(entry));
    }
  }
  nlohmann::ordered_json out;
  out["keys"] = std::move(keys);
  return out.dump();
}

void Guard::refresh_metrics() {
  const TimePoint t = now();
  std::lock_guard<std::mutex> lock(mu_);
  if (!keys_)
    return;
  for (const auto& k : keys_->keys)
    publish_budget_locked(state_locked(*k, t), *k, t);
}

void Guard::save_state() {
  std::lock_guard<std::mutex> save_lock(save_mu_); // writes in the order they were taken
  std::string path, text;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_file_.empty())
      return;
    path = state_file_;
    const TimePoint t = now();
    const std::string today = utc_day(t), this_month = utc_month(t);
    nlohmann::ordered_json keys = nlohmann::ordered_json::object();
    for (const auto& [name, s] : states_) {
      const Spend& sp = s->spend;
      if ((sp.day != today || sp.day_usd <= 0) && (sp.month != this_month || sp.month_usd <= 0))
        continue; // nothing that still counts
      keys[name] = {{"day", sp.day},
                    {"day_usd", sp.day_usd},
                    {"month", sp.month},
                    {"month_usd", sp.month_usd}};
    }
    nlohmann::ordered_json j;
    j["version"] = kStateVersion;
    j["keys"] = std::move(keys);
    text = j.dump(2) + "\n";
    last_save_ = t;
  }
  if (std::string err = write_atomically(path, text); !err.empty())
    spdlog::warn("auth: cannot save the spend state: {}", err);
}

} // namespace semrouter::auth
