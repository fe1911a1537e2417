// What the router knows about its upstreams, shared by every worker thread: passive outlier
// detection (consecutive failures eject a backend for a growing interval, with a cap on the
// share ejected), active health-check state, circuit breakers (connections, pending and in-flight
// requests per backend) and the retry budget. Transport-neutral: the gateway reports what each
// attempt did and asks which backends to try; the admin API and the metrics read it.
//
// State is kept by backend name and survives reloads (a backend that a reload keeps keeps its
// ejection and counts). Thread-safe: a mutex per backend for the ejection state, atomics for the
// breaker counts; the lookup table is read under a shared lock.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "metrics/metrics.h"

namespace semrouter::pipeline {

// Whether a backend takes requests now.
enum class BackendState {
  Available, // take requests
  Ejected,   // passive outlier detection took it out until its ejection ends
  Unhealthy, // active health checks failed `unhealthy_threshold` times in a row
};
const char* backend_state_name(BackendState s);

// The circuit-breaker limit a backend has reached.
enum class BreakerLimit { Connections, Pending, Requests };
const char* breaker_limit_name(BreakerLimit l);

// One backend's shared state. Counts are process-wide (all workers).
class BackendHealth : public std::enable_shared_from_this<BackendHealth> {
public:
  explicit BackendHealth(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  // Written by every request from every worker: on a cache line of their own, apart from the
  // state below that every request reads.
  alignas(64) std::atomic<uint32_t> connections{0}; // open upstream connections (pooled included)
  std::atomic<uint32_t> pending{0};                 // requests waiting for a connection
  std::atomic<uint32_t> requests{0};                // requests in flight

private:
  friend class UpstreamHealth;
  alignas(64) std::string name_;
  std::mutex mu_; // written under it; the atomics are also read without it
  std::atomic<uint32_t> consecutive_failures_{0};
  uint32_t times_ejected_ = 0;
  std::atomic<core::TimePoint> ejected_until_{core::TimePoint{}};
  core::TimePoint last_ejection_end_{};
  std::atomic<bool> healthy_{true}; // active checks (true until checks say otherwise)
  uint32_t check_passes_ = 0, check_failures_ = 0;
  uint64_t ejections_total_ = 0;
  uint64_t trips_total_ = 0;
  std::string last_failure_;
};

// A breaker slot held for as long as its work lasts (a request in flight, a connection being set
// up). Empty when the limit was reached.
class BreakerSlot {
public:
  BreakerSlot() = default;
  BreakerSlot(std::shared_ptr<BackendHealth> b, std::atomic<uint32_t>* counter)
      : backend_(std::move(b)), counter_(counter) {}
  BreakerSlot(BreakerSlot&& o) noexcept : backend_(std::move(o.backend_)), counter_(o.counter_) {
    o.counter_ = nullptr;
  }
  BreakerSlot& operator=(BreakerSlot&& o) noexcept {
    release();
    backend_ = std::move(o.backend_);
    counter_ = o.counter_;
    o.counter_ = nullptr;
    return *this;
  }
  ~BreakerSlot() { release(); }
  explicit operator bool() const { return counter_ != nullptr; }
  void release() {
    if (counter_)
      counter_->fetch_sub(1, std::memory_order_relaxed);
    counter_ = nullptr;
    backend_.reset();
  }

private:
  std::shared_ptr<BackendHealth> backend_; // keeps the counter alive
  std::atomic<uint32_t>* counter_ = nullptr;
};

// A retry admitted by the budget, returned when the retry is over.
class RetryTicket {
public:
  RetryTicket() = default;
  explicit RetryTicket(std::atomic<uint32_t>* active) : active_(active) {}
  RetryTicket(RetryTicket&& o) noexcept : active_(o.active_) { o.active_ = nullptr; }
  RetryTicket& operator=(RetryTicket&& o) noexcept {
    if (active_)
      active_->fetch_sub(1, std::memory_order_relaxed);
    active_ = o.active_;
    o.active_ = nullptr;
    return *this;
  }
  ~RetryTicket() {
    if (active_)
      active_->fetch_sub(1, std::memory_order_relaxed);
  }
  explicit operator bool() const { return active_ != nullptr; }

private:
  std::atomic<uint32_t>* active_ = nullptr;
};

class UpstreamHealth {
public:
  explicit UpstreamHealth(metrics::Registry& registry);
  UpstreamHealth(const UpstreamHealth&) = delete;
  UpstreamHealth& operator=(const UpstreamHealth&) = delete;

  // Takes a config's `resilience` section and backends (once per generation; cheap to call per
  // request). Backends a reload removes are forgotten.
  void configure(const config::Config& config, uint64_t generation);

  // The backend's shared state (created on first use).
  std::shared_ptr<BackendHealth> backend(std::string_view name);

  BackendState state(BackendHealth& b, core::TimePoint now);

  // The targets to try for a model, in order: its available backends (one weighted pick, then
  // the rest by weight), then each fallback model's, in the fallback list's order. When none is
  // available, the model's own backends anyway (a backend that is down answers fast; one
  // wrongly ejected may answer): `panic` is set.
  struct Target {
    const config::ModelConfig* model;
    const config::BackendConfig* backend;
    std::shared_ptr<BackendHealth> health; // the backend's state (kept alive across reloads)
  };
  std::vector<Target> plan(const config::Config& config, const config::ModelConfig& model,
                           const std::vector<std::string>& fallback, core::Random& random,
                           core::TimePoint now, bool* panic = nullptr);

  // Passive outcomes of one attempt. A failure is a connect failure, timeout, reset, TLS failure
  // or 5xx answer; `consecutive_failures` of them in a row eject the backend (unless the share
  // ejected is at its cap). Returns true when this failure ejected it.
  bool record_failure(BackendHealth& b, std::string_view kind, core::TimePoint now);
  void record_success(BackendHealth& b);
  // An active health check's result, from a check started under config `generation` (0: the
  // current one). A check that started before a reload is counted in the metric but changes no
  // state: a reload that turned checks off would otherwise find the backend marked unhealthy by
  // a check still in flight, with nothing left to mark it healthy again.
  void record_check(BackendHealth& b, bool ok, std::string_view detail, uint64_t generation = 0);

  // Circuit breakers: a slot on one of the backend's limits, or an empty slot (and a trip
  // counted) when the limit is reached.
  BreakerSlot acquire(const config::BackendConfig& cfg, BackendHealth& b, BreakerLimit limit);

  // The retry budget: a forwarded request is in flight between request_started and
  // request_finished; a retry needs a ticket, refused (and counted) beyond the budget.
  void request_started() { active_requests_.fetch_add(1, std::memory_order_relaxed); }
  void request_finished() { active_requests_.fetch_sub(1, std::memory_order_relaxed); }
  RetryTicket try_retry(std::string_view reason);

  // The wait before retry number `n` (0-based) on the same backend: full jitter over the capped
  // exponential backoff.
  std::chrono::milliseconds backoff(uint32_t n, core::Random& random) const;

  // A fallback model answered for `from`.
  void count_fallback(std::string_view decision, std::string_view from, std::string_view to);

  // GET /api/v1/upstreams: every backend's state, counts and limits.
  std::string json(const config::Config& config, core::TimePoint now);

  // Ejected/healthy gauges and breaker counts into the metrics (before a scrape).
  void refresh_gauges(core::TimePoint now);

  config::ResilienceConfig settings() const;

private:
  uint32_t ejected_count(core::TimePoint now); // under table_mu_ (shared)

  metrics::Family<metrics::Counter>& ejections_;
  metrics::Family<metrics::Gauge>& ejected_;
  metrics::Family<metrics::Gauge>& healthy_;
  metrics::Family<metrics::Counter>& checks_;
  metrics::Family<metrics::Counter>& trips_;
  metrics::Family<metrics::Gauge>& open_connections_;
  metrics::Family<metrics::Gauge>& in_flight_;
  metrics::Family<metrics::Counter>& retries_;
  metrics::Counter& budget_exhausted_;
  metrics::Family<metrics::Counter>& fallbacks_;

  mutable std::shared_mutex table_mu_;
  std::map<std::string, std::shared_ptr<BackendHealth>, std::less<>> table_;
  config::ResilienceConfig settings_;
  // The generation configure() last took, plus one (0: never); written under table_mu_, read
  // without it by configure()'s per-request check.
  std::atomic<uint64_t> configured_through_{0};
  std::atomic<uint32_t> active_requests_{0};
  std::atomic<uint32_t> active_retries_{0};
};

} // namespace semrouter::pipeline
