// Admission control: how many forwarded requests run at once, process-wide
// (resilience.limits.max_concurrent) and per model (models[].max_concurrent). Beyond a limit a
// request waits in one bounded queue, higher decision priority first, then first come; past the
// queue's bound, its wait (queue_timeout_ms) or the client's deadline it is refused. Memory is
// bounded by max_queue whatever the load.
//
// Transport-neutral and thread-safe (one mutex): the transport waits however it waits and is
// woken through the callback it gave, which runs on the thread that freed the slot (post it to
// the waiter's own thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "metrics/metrics.h"

namespace semrouter::pipeline {

class Admission;

// A request's place: it holds its slots until destroyed.
class AdmissionTicket {
public:
  AdmissionTicket() = default;
  AdmissionTicket(AdmissionTicket&& o) noexcept
      : owner_(o.owner_), model_(std::move(o.model_)), global_(o.global_) {
    o.owner_ = nullptr;
  }
  AdmissionTicket& operator=(AdmissionTicket&& o) noexcept;
  ~AdmissionTicket();
  explicit operator bool() const { return owner_ != nullptr; }

private:
  friend class Admission;
  AdmissionTicket(Admission* owner, std::string model, bool global)
      : owner_(owner), model_(std::move(model)), global_(global) {}
  Admission* owner_ = nullptr;
  std::string model_;
  bool global_ = false;
};

class Admission {
public:
  explicit Admission(metrics::Registry& registry);
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

  enum class Verdict {
    Admitted, // the ticket holds the slots: go on
    Queued,   // wait for `wake`, then call `claim`; or, when the wait ends first, `abandon`
    Rejected, // answer now: `limit` says which limit ("global" or "model"), the queue was full
  };
  // One queued request. Owned jointly by the queue and the waiting transport.
  struct Waiter {
    int priority = 0;
    uint64_t seq = 0;
    std::string model;
    uint32_t model_limit = 0;
    std::function<void()> wake; // called once, with the slots taken for this waiter
    bool admitted = false;      // under the mutex
    bool gone = false;          // abandoned
  };
  struct Entry {
    Verdict verdict = Verdict::Admitted;
    AdmissionTicket ticket;         // Admitted
    std::shared_ptr<Waiter> waiter; // Queued
    const char* limit = "";         // Queued / Rejected: "global" or "model"
  };

  // The limits of config `generation`, when it is newer than those in force (a request still on
  // an older snapshot changes nothing). Waiters that fit under a raised or lifted limit are
  // admitted at once. Called for every request, limits or not: one atomic load when unchanged.
  void configure(const config::Config& config, uint64_t generation);
  // Asks for a slot for a request to `model` (with the limits configure() set; without it, with
  // `config`'s). `wake` is kept only when the request is queued.
  Entry enter(const config::Config& config, const config::ModelConfig& model, int priority,
              std::function<void()> wake);
  // After the wake: the ticket of the slots taken for the waiter (empty if it was abandoned).
  AdmissionTicket claim(const std::shared_ptr<Waiter>& waiter);
  // The wait ended without a wake (timeout, client gone). Returns the ticket when the slots were
  // given in the meantime (the caller may use them or drop them).
  AdmissionTicket abandon(const std::shared_ptr<Waiter>& waiter);

  // A fallback attempt on `model`: one of its max_concurrent slots, at once or not at all (no
  // queue: the request waited for its own model already, and holds its global slot). Empty when
  // the model is at its limit or others wait for it; an empty ticket when it has no limit.
  std::optional<AdmissionTicket> try_model(const config::ModelConfig& model);

  // Shutdown, once the workers' loops have stopped: the queue is dropped without waking anyone
  // (their loops are gone), and nothing is admitted or queued any more.
  void close();

  uint32_t in_flight() const;
  uint32_t queued() const;

private:
  friend class AdmissionTicket;
  void leave(const std::string& model, bool global);
  bool fits(const std::string& model, uint32_t model_limit) const; // under mu_
  void take(const std::string& model);                             // under mu_
  // Admits, in queue order, the waiters that fit now; the caller wakes them outside mu_.
  void admit_locked(std::vector<std::shared_ptr<Waiter>>& woken); // under mu_
  void apply_limits_locked(const config::Config& config,
                           std::vector<std::shared_ptr<Waiter>>& woken); // under mu_
  bool closed_ = false;                                                  // under mu_
  std::atomic<uint64_t> generation_{0}; // the config generation the limits are from (0: none)

  metrics::Gauge& in_flight_gauge_;
  metrics::Gauge& queued_gauge_;
  metrics::Family<metrics::Counter>& rejected_;
  metrics::Histogram& wait_;

  mutable std::mutex mu_;
  uint32_t global_limit_ = 0; // the latest config's (0: none)
  uint32_t max_queue_ = 0;
  uint32_t global_in_flight_ = 0;
  std::map<std::string, uint32_t, std::less<>> model_in_flight_;
  std::vector<std::shared_ptr<Waiter>> queue_; // sorted: priority desc, seq asc
  uint64_t seq_ = 0;

public:
  // Refusals, by limit and reason (queue_full, timeout): for the transport to count.
  void count_rejected(const char* limit, const char* reason);
  // A queued request's wait.
  void observe_wait(double seconds);
};

} // namespace semrouter::pipeline
