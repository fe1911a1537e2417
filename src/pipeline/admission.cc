#include "pipeline/admission.h"

#include <algorithm>

namespace semrouter::pipeline {

AdmissionTicket& AdmissionTicket::operator=(AdmissionTicket&& o) noexcept {
  if (this != &o) {
    if (owner_)
      owner_->leave(model_, global_);
    owner_ = o.owner_;
    model_ = std::move(o.model_);
    global_ = o.global_;
    o.owner_ = nullptr;
  }
  return *this;
}

AdmissionTicket::~AdmissionTicket() {
  if (owner_)
    owner_->leave(model_, global_);
}

Admission::Admission(metrics::Registry& r)
    : in_flight_gauge_(
          r.gauge("semrouter_admission_in_flight", "Forwarded requests holding an admission slot.")
              .with({})),
      queued_gauge_(r.gauge("semrouter_admission_queued", "Requests waiting for an admission slot.")
                        .with({})),
      rejected_(r.counter("semrouter_admission_rejected_total",
                          "Requests refused by admission control, by limit (global, model) and "
                          "reason (queue_full, timeout).",
                          {"limit", "reason"})),
      wait_(r.histogram("semrouter_admission_wait_seconds",
                        "Time queued requests waited for an admission slot.", {},
                        metrics::latency_buckets())
                .with({})) {}

bool Admission::fits(const std::string& model, uint32_t model_limit) const {
  if (global_limit_ > 0 && global_in_flight_ >= global_limit_)
    return false;
  if (model_limit == 0)
    return true;
  auto it = model_in_flight_.find(model);
  return it == model_in_flight_.end() || it->second < model_limit;
}

void Admission::take(const std::string& model) {
  ++global_in_flight_;
  ++model_in_flight_[model];
  in_flight_gauge_.set(global_in_flight_);
}

namespace {

// Wakes admitted waiters, outside the admission lock (a wake posts to a worker's loop).
void wake_all(const std::vector<std::shared_ptr<Admission::Waiter>>& woken) {
  for (const auto& w : woken)
    if (w->wake)
      w->wake();
}

} // namespace

Admission::Entry Admission::enter(const config::Config& config, const config::ModelConfig& model,
                                  int priority, std::function<void()> wake) {
  Entry e;
  std::vector<std::shared_ptr<Waiter>> woken;
  {
    std::lock_guard lock(mu_);
    // Without configure() (no config generations: tests, tools), each request brings its limits.
    if (generation_.load(std::memory_order_relaxed) == 0)
      apply_limits_locked(config, woken);
    // Nobody jumps the queue: a waiter for the same model with no lower priority goes first.
    // (With the global limit not full, the waiters are held back by their own models' limits
    // only, so a request for another model need not wait behind them.)
    const bool waiting_ahead =
        std::any_of(queue_.begin(), queue_.end(), [&](const std::shared_ptr<Waiter>& q) {
          return q->model == model.name && q->priority >= priority;
        });
    if (closed_) {
      e.verdict = Verdict::Rejected;
      e.limit = "global";
    } else if (!waiting_ahead && fits(model.name, model.max_concurrent)) {
      take(model.name);
      e.ticket = AdmissionTicket(this, model.name, true);
    } else {
      e.limit = global_limit_ > 0 && global_in_flight_ >= global_limit_ ? "global" : "model";
      if (queue_.size() >= max_queue_) {
        e.verdict = Verdict::Rejected;
      } else {
        auto w = std::make_shared<Waiter>();
        w->priority = priority;
        w->seq = ++seq_;
        w->model = model.name;
        w->model_limit = model.max_concurrent;
        w->wake = std::move(wake);
        auto pos =
            std::find_if(queue_.begin(), queue_.end(),
                         [&](const std::shared_ptr<Waiter>& q) { return q->priority < priority; });
        queue_.insert(pos, w);
        queued_gauge_.set(static_cast<double>(queue_.size()));
        e.verdict = Verdict::Queued;
        e.waiter = std::move(w);
      }
    }
  }
  wake_all(woken);
  return e;
}

void Admission::configure(const config::Config& config, uint64_t generation) {
  if (generation <= generation_.load(std::memory_order_acquire))
    return; // the usual case: one load per request
  std::vector<std::shared_ptr<Waiter>> woken;
  {
    std::lock_guard lock(mu_);
    if (generation <= generation_.load(std::memory_order_relaxed))
      return;
    generation_.store(generation, std::memory_order_release);
    apply_limits_locked(config, woken);
  }
  wake_all(woken);
}

void Admission::apply_limits_locked(const config::Config& config,
                                    std::vector<std::shared_ptr<Waiter>>& woken) {
  global_limit_ = config.resilience.limits.max_concurrent;
  max_queue_ = config.resilience.limits.max_queue;
  // The waiters' own model limits follow the config too (a model may be gone: then it has none).
  for (auto& w : queue_) {
    const config::ModelConfig* m = config.find_model(w->model);
    w->model_limit = m ? m->max_concurrent : 0;
  }
  // A raised or lifted limit: the waiters that fit now go at once, not at the next leave.
  admit_locked(woken);
}

void Admission::admit_locked(std::vector<std::shared_ptr<Waiter>>& woken) {
  if (closed_)
    return;
  // In queue order, every waiter that now fits (a waiter held back by its own model's limit
  // does not block those behind it).
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (global_limit_ > 0 && global_in_flight_ >= global_limit_)
      break;
    if (!fits((*it)->model, (*it)->model_limit)) {
      ++it;
      continue;
    }
    take((*it)->model);
    (*it)->admitted = true;
    woken.push_back(*it);
    it = queue_.erase(it);
  }
  queued_gauge_.set(static_cast<double>(queue_.size()));
  in_flight_gauge_.set(global_in_flight_);
}

void Admission::close() {
  std::vector<std::shared_ptr<Waiter>> dropped;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    dropped.swap(queue_);
    for (auto& w : dropped)
      w->gone = true;
    queued_gauge_.set(0);
  }
  // The waiters' wake functions (and what they hold) go here, outside the lock, unwoken.
}

std::optional<AdmissionTicket> Admission::try_model(const config::ModelConfig& model) {
  if (model.max_concurrent == 0)
    return AdmissionTicket();
  std::lock_guard lock(mu_);
  const bool waiting =
      std::any_of(queue_.begin(), queue_.end(),
                  [&](const std::shared_ptr<Waiter>& q) { return q->model == model.name; });
  const auto it = model_in_flight_.find(model.name);
  if (waiting || (it != model_in_flight_.end() && it->second >= model.max_concurrent))
    return std::nullopt;
  ++model_in_flight_[model.name];
  return AdmissionTicket(this, model.name, /*global=*/false);
}

void Admission::leave(const std::string& model, bool global) {
  std::vector<std::shared_ptr<Waiter>> woken;
  {
    std::lock_guard lock(mu_);
    if (global && global_in_flight_ > 0)
      --global_in_flight_;
    if (auto it = model_in_flight_.find(model); it != model_in_flight_.end()) {
      if (it->second > 1)
        --it->second;
      else
        model_in_flight_.erase(it);
    }
    admit_locked(woken);
  }
  wake_all(woken);
}

AdmissionTicket Admission::claim(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lock(mu_);
  if (!w->admitted || w->gone)
    return {};
  w->gone = true; // claimed once
  return AdmissionTicket(this, w->model, true);
}

AdmissionTicket Admission::abandon(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lock(mu_);
  if (w->gone)
    return {};
  w->gone = true;
  if (w->admitted)
    return AdmissionTicket(this, w->model, true);
  queue_.erase(std::remove(queue_.begin(), queue_.end(), w), queue_.end());
  queued_gauge_.set(static_cast<double>(queue_.size()));
  return {};
}

uint32_t Admission::in_flight() const {
  std::lock_guard lock(mu_);
  return global_in_flight_;
}

uint32_t Admission::queued() const {
  std::lock_guard lock(mu_);
  return static_cast<uint32_t>(queue_.size());
}

void Admission::count_rejected(const char* limit, const char* reason) {
  rejected_.with({limit, reason}).inc();
}

void Admission::observe_wait(double seconds) {
  wait_.observe(seconds);
}

} // namespace semrouter::pipeline
