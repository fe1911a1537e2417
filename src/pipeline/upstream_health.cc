#include "pipeline/upstream_health.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/strings.h"
#include "pipeline/exchange.h"

namespace semrouter::pipeline {

const char* backend_state_name(BackendState s) {
  switch (s) {
  case BackendState::Available:
    return "available";
  case BackendState::Ejected:
    return "ejected";
  case BackendState::Unhealthy:
    return "unhealthy";
  }
  return "available";
}

const char* breaker_limit_name(BreakerLimit l) {
  switch (l) {
  case BreakerLimit::Connections:
    return "connections";
  case BreakerLimit::Pending:
    return "pending";
  case BreakerLimit::Requests:
    return "requests";
  }
  return "requests";
}

UpstreamHealth::UpstreamHealth(metrics::Registry& r)
    : ejections_(r.counter("semrouter_upstream_ejections_total",
                           "Backends ejected by passive outlier detection, by backend.",
                           {"backend"})),
      ejected_(r.gauge("semrouter_upstream_ejected",
                       "1 while the backend is ejected by outlier detection.", {"backend"})),
      healthy_(r.gauge("semrouter_upstream_healthy",
                       "Active health checks: 1 healthy, 0 unhealthy (1 without checks).",
                       {"backend"})),
      checks_(r.counter("semrouter_upstream_health_checks_total",
                        "Active health checks, by backend and result (ok, failed).",
                        {"backend", "result"})),
      trips_(r.counter("semrouter_upstream_breaker_trips_total",
                       "Requests that found a backend's circuit breaker at its limit, by backend "
                       "and limit (connections, pending, requests).",
                       {"backend", "limit"})),
      open_connections_(r.gauge(
          "semrouter_upstream_connections",
          "Upstream connections in use by a request (idle pooled ones not counted), by backend.",
          {"backend"})),
      in_flight_(r.gauge("semrouter_upstream_requests_in_flight",
                         "Requests in flight to the backend.", {"backend"})),
      retries_(r.counter("semrouter_retries_total",
                         "Retries (another attempt after a failure), by reason.", {"reason"})),
      budget_exhausted_(r.counter("semrouter_retry_budget_exhausted_total",
                                  "Retries refused because the retry budget was spent.")
                            .with({})),
      fallbacks_(r.counter("semrouter_fallbacks_total",
                           "Requests a fallback model answered, by decision and models.",
                           {"decision", "from", "to"})) {}

void UpstreamHealth::configure(const config::Config& config, uint64_t generation) {
  // Only forward: a request still holding an older snapshot (one that waited in the admission
  // queue across a reload) must not put the old settings and backend table back.
  if (configured_through_.load(std::memory_order_acquire) > generation)
    return;
  std::unique_lock lock(table_mu_);
  if (configured_through_.load(std::memory_order_relaxed) > generation)
    return;
  settings_ = config.resilience;
  std::map<std::string, std::shared_ptr<BackendHealth>, std::less<>> next;
  for (const auto& b : config.backends) {
    auto it = table_.find(b.name);
    next.emplace(b.name, it != table_.end() ? it->second : std::make_shared<BackendHealth>(b.name));
  }
  // A backend whose checks were turned off (all of them, or its own) is healthy again: nothing
  // would ever find it healthy otherwise.
  for (const auto& bc : config.backends) {
    if (config.resilience.health_checks.interval_ms != 0 && bc.health_check_enabled)
      continue;
    auto& b = next.at(bc.name);
    std::lock_guard bl(b->mu_);
    b->healthy_ = true;
    b->check_passes_ = b->check_failures_ = 0;
  }
  // Outlier detection turned off: ejections under way end now, not at their hour's end.
  if (config.resilience.outlier.consecutive_failures == 0)
    for (auto& [name, b] : next) {
      std::lock_guard bl(b->mu_);
      b->ejected_until_.store(core::TimePoint{});
      b->consecutive_failures_ = 0;
    }
  table_ = std::move(next);
  configured_through_.store(generation + 1, std::memory_order_release);
}

config::ResilienceConfig UpstreamHealth::settings() const {
  std::shared_lock lock(table_mu_);
  return settings_;
}

std::shared_ptr<BackendHealth> UpstreamHealth::backend(std::string_view name) {
  {
    std::shared_lock lock(table_mu_);
    if (auto it = table_.find(name); it != table_.end())
      return it->second;
  }
  std::unique_lock lock(table_mu_);
  auto [it, added] = table_.try_emplace(std::string(name), nullptr);
  if (added)
    it->second = std::make_shared<BackendHealth>(std::string(name));
  return it->second;
}

BackendState UpstreamHealth::state(BackendHealth& b, core::TimePoint now) {
  // Without the lock: read on every request by every worker, written rarely.
  if (b.ejected_until_.load(std::memory_order_acquire) > now)
    return BackendState::Ejected;
  if (!b.healthy_.load(std::memory_order_acquire))
    return BackendState::Unhealthy;
  return BackendState::Available;
}

uint32_t UpstreamHealth::ejected_count(core::TimePoint now) {
  uint32_t n = 0;
  for (const auto& [name, b] : table_) {
    std::lock_guard lock(b->mu_);
    n += b->ejected_until_.load() > now;
  }
  return n;
}

std::vector<UpstreamHealth::Target> UpstreamHealth::plan(const config::Config& config,
                                                         const config::ModelConfig& model,
                                                         const std::vector<std::string>& fallback,
                                                         core::Random& random, core::TimePoint now,
                                                         bool* panic) {
  std::vector<Target> out;
  auto add_available = [&](const config::ModelConfig& m) {
    for (const config::BackendConfig* b : order_backends(config, m, random))
      if (auto h = backend(b->name); state(*h, now) == BackendState::Available)
        out.push_back({&m, b, std::move(h)});
  };
  add_available(model);
  const bool own_out = out.empty();
  for (const std::string& name : fallback) {
    const config::ModelConfig* m = config.find_model(name);
    if (m && m != &model)
      add_available(*m);
  }
  if (panic)
    *panic = out.empty();
  // Every backend of the model is out: they are tried anyway, after the fallbacks' available
  // ones (an ejected backend may have recovered).
  if (own_out)
    for (const config::BackendConfig* b : order_backends(config, model, random))
      out.push_back({&model, b, backend(b->name)});
  return out;
}

bool UpstreamHealth::record_failure(BackendHealth& b, std::string_view kind, core::TimePoint now) {
  config::OutlierConfig o;
  uint32_t total = 0;
  {
    std::shared_lock lock(table_mu_);
    o = settings_.outlier;
    total = static_cast<uint32_t>(table_.size());
  }
  uint32_t failures = 0;
  {
    std::lock_guard lock(b.mu_);
    b.last_failure_ = std::string(kind);
    if (b.ejected_until_.load() > now)
      return false; // already out (a request that started before the ejection)
    failures = ++b.consecutive_failures_;
  }
  if (o.consecutive_failures == 0 || failures < o.consecutive_failures)
    return false;
  // The cap: at least one backend may always be ejected; beyond that, max_ejected_percent.
  {
    std::shared_lock lock(table_mu_);
    const uint32_t cap = std::max<uint32_t>(
        1, static_cast<uint32_t>(std::floor(o.max_ejected_percent / 100.0 * total)));
    if (ejected_count(now) >= cap) {
      spdlog::warn("upstream {}: {} failures in a row, but {} of {} backends are already "
                   "ejected (max_ejected_percent {}): kept in",
                   b.name(), failures, cap, total, o.max_ejected_percent);
      return false;
    }
  }
  std::chrono::milliseconds span;
  {
    std::lock_guard lock(b.mu_);
    // A backend clean for a whole base interval since its last ejection starts over.
    if (b.times_ejected_ > 0 &&
        now - b.last_ejection_end_ > std::chrono::milliseconds(o.base_ejection_ms))
      b.times_ejected_ = 0;
    ++b.times_ejected_;
    const uint64_t ms =
        std::min<uint64_t>(uint64_t(o.base_ejection_ms) * b.times_ejected_, o.max_ejection_ms);
    span = std::chrono::milliseconds(ms);
    b.ejected_until_.store(now + span, std::memory_order_release);
    b.last_ejection_end_ = now + span;
    b.consecutive_failures_ = 0;
    ++b.ejections_total_;
  }
  ejections_.with({b.name()}).inc();
  spdlog::warn("upstream {}: ejected for {} ms after {} failures in a row (last: {})", b.name(),
               span.count(), failures, kind);
  return true;
}

void UpstreamHealth::record_success(BackendHealth& b) {
  // Every answered request lands here: a backend with no failures in a row is not written to, so
  // the workers do not pass its cache line back and forth.
  if (b.consecutive_failures_.load(std::memory_order_relaxed) == 0)
    return;
  std::lock_guard lock(b.mu_);
  b.consecutive_failures_ = 0;
}

void UpstreamHealth::record_check(BackendHealth& b, bool ok, std::string_view detail,
                                  uint64_t generation) {
  checks_.with({b.name(), ok ? "ok" : "failed"}).inc();
  // Held until the result is recorded, so that a reload's configure() comes wholly before or
  // after it.
  std::shared_lock table_lock(table_mu_);
  const uint64_t through = configured_through_.load(std::memory_order_relaxed);
  if (generation != 0 && through != 0 && generation != through - 1)
    return;
  const config::HealthCheckConfig& h = settings_.health_checks;
  std::lock_guard lock(b.mu_);
  if (ok) {
    b.check_failures_ = 0;
    if (!b.healthy_ && ++b.check_passes_ >= h.healthy_threshold) {
      b.healthy_ = true;
      b.check_passes_ = 0;
      spdlog::info("upstream {}: healthy again (health checks)", b.name());
    }
    return;
  }
  b.check_passes_ = 0;
  b.last_failure_ = "health check: " + std::string(detail);
  if (b.healthy_ && ++b.check_failures_ >= h.unhealthy_threshold) {
    b.healthy_ = false;
    b.check_failures_ = 0;
    spdlog::warn("upstream {}: unhealthy after {} failed health checks ({})", b.name(),
                 h.unhealthy_threshold, detail);
  }
}

BreakerSlot UpstreamHealth::acquire(const config::BackendConfig& cfg, BackendHealth& b,
                                    BreakerLimit limit) {
  std::atomic<uint32_t>* counter = &b.requests;
  uint32_t max = cfg.circuit_breaker.max_requests;
  if (limit == BreakerLimit::Connections)
    counter = &b.connections, max = cfg.circuit_breaker.max_connections;
  else if (limit == BreakerLimit::Pending)
    counter = &b.pending, max = cfg.circuit_breaker.max_pending;
  uint32_t now = counter->load(std::memory_order_relaxed);
  do {
    if (now >= max) {
      trips_.with({b.name(), breaker_limit_name(limit)}).inc();
      std::lock_guard lock(b.mu_);
      ++b.trips_total_;
      return {};
    }
  } while (!counter->compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
  // The slot keeps `b` itself alive, not whatever the table now holds under its name (a reload
  // may have replaced it): its counter lives in `b`.
  return BreakerSlot(b.shared_from_this(), counter);
}

RetryTicket UpstreamHealth::try_retry(std::string_view reason) {
  config::RetryConfig r;
  {
    std::shared_lock lock(table_mu_);
    r = settings_.retries;
  }
  const double requests = active_requests_.load(std::memory_order_relaxed);
  const uint32_t allowed = std::max<uint32_t>(
      r.min_retry_concurrency, static_cast<uint32_t>(requests * r.budget_percent / 100.0));
  uint32_t now = active_retries_.load(std::memory_order_relaxed);
  do {
    if (now >= allowed) {
      budget_exhausted_.inc();
      return RetryTicket();
    }
  } while (!active_retries_.compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
  retries_.with({reason}).inc();
  return RetryTicket(&active_retries_);
}

std::chrono::milliseconds UpstreamHealth::backoff(uint32_t n, core::Random& random) const {
  config::RetryConfig r;
  {
    std::shared_lock lock(table_mu_);
    r = settings_.retries;
  }
  const double cap = std::min<double>(r.max_backoff_ms, double(r.backoff_ms) *
                                                            std::ldexp(1.0, int(std::min(n, 20u))));
  return std::chrono::milliseconds(static_cast<int64_t>(random.uniform() * cap));
}

void UpstreamHealth::count_fallback(std::string_view decision, std::string_view from,
                                    std::string_view to) {
  fallbacks_.with({decision, from, to}).inc();
}

void UpstreamHealth::refresh_gauges(core::TimePoint now) {
  std::shared_lock lock(table_mu_);
  for (const auto& [name, b] : table_) {
    const BackendState s = state(*b, now);
    ejected_.with({name}).set(s == BackendState::Ejected ? 1 : 0);
    {
      std::lock_guard bl(b->mu_);
      healthy_.with({name}).set(b->healthy_ ? 1 : 0);
    }
    open_connections_.with({name}).set(b->connections.load(std::memory_order_relaxed));
    in_flight_.with({name}).set(b->requests.load(std::memory_order_relaxed));
  }
}

std::string UpstreamHealth::json(const config::Config& config, core::TimePoint now) {
  std::string out = "{\"backends\":[";
  bool first = true;
  for (const auto& bc : config.backends) {
    auto b = backend(bc.name);
    const BackendState s = state(*b, now);
    std::lock_guard lock(b->mu_);
    const core::TimePoint until = b->ejected_until_.load();
    const int64_t left =
        until > now ? std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count()
                    : 0;
    out += first ? "" : ",";
    first = false;
    out += fmt::format(
        "{{\"name\":{},\"url\":{},\"state\":\"{}\",\"healthy\":{},\"consecutive_failures\":{},"
        "\"ejected_ms_left\":{},\"times_ejected\":{},\"ejections_total\":{},"
        "\"last_failure\":{},\"connections\":{},\"pending\":{},\"requests\":{},"
        "\"breaker_trips_total\":{},\"circuit_breaker\":{{\"max_connections\":{},"
        "\"max_pending\":{},\"max_requests\":{}}},\"health_check\":{}}}",
        core::json_string(bc.name), core::json_string(bc.url), backend_state_name(s),
        b->healthy_ ? "true" : "false", b->consecutive_failures_.load(), left, b->times_ejected_,
        b->ejections_total_, core::json_string(b->last_failure_), b->connections.load(),
        b->pending.load(), b->requests.load(), b->trips_total_, bc.circuit_breaker.max_connections,
        bc.circuit_breaker.max_pending, bc.circuit_breaker.max_requests,
        bc.health_check_enabled && config.resilience.health_checks.interval_ms > 0
            ? core::json_string(bc.health_check_path)
            : std::string("null"));
  }
  const auto& r = config.resilience.retries;
  out +=
      fmt::format("],\"retries\":{{\"max_retries\":{},\"budget_percent\":{},"
                  "\"min_retry_concurrency\":{},\"active_retries\":{},\"active_requests\":{}}}}}",
                  r.max_retries, r.budget_percent, r.min_retry_concurrency, active_retries_.load(),
                  active_requests_.load());
  return out;
}

} // namespace semrouter::pipeline
