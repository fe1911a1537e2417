#include "pipeline/cost_quality.h"

#include <algorithm>

namespace semrouter::pipeline {

namespace {
constexpr size_t kTtftWindow = 200;
constexpr size_t kTtftMinSamples = 10;
constexpr auto kTtftMaxAge = std::chrono::seconds(30);
constexpr size_t kMinScores = 50; // the quantile is used once the window holds this many
constexpr size_t kRecomputeEvery = 16;
} // namespace

LoadTracker::PerModel& LoadTracker::get(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& p = models_[model];
  if (!p)
    p = std::make_unique<PerModel>();
  return *p;
}

const LoadTracker::PerModel* LoadTracker::find(const std::string& model) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : it->second.get();
}

void LoadTracker::start(const std::string& model) {
  get(model).inflight.fetch_add(1);
}
void LoadTracker::finish(const std::string& model) {
  get(model).inflight.fetch_sub(1);
}

void LoadTracker::record_ttft(const std::string& model, double seconds) {
  PerModel& p = get(model);
  std::lock_guard<std::mutex> lock(mu_);
  p.ttft.emplace_back(std::chrono::steady_clock::now(), seconds);
  if (p.ttft.size() > kTtftWindow)
    p.ttft.pop_front();
}

int64_t LoadTracker::inflight(const std::string& model) const {
  const PerModel* p = find(model);
  return p ? p->inflight.load() : 0;
}

std::optional<double> LoadTracker::ttft_p95(const std::string& model) const {
  const PerModel* p = find(model);
  if (!p)
    return std::nullopt;
  std::vector<double> v;
  const auto oldest = std::chrono::steady_clock::now() - kTtftMaxAge;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [at, secs] : p->ttft)
      if (at >= oldest)
        v.push_back(secs);
  }
  if (v.size() < kTtftMinSamples)
    return std::nullopt;
  size_t k = std::min(v.size() - 1, size_t(0.95 * double(v.size())));
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return v[k];
}

double SelectionState::threshold(const std::string& decision, const config::SelectionConfig& sel,
                                 double score) {
  if (sel.target_strong_share < 0)
    return sel.threshold;
  std::lock_guard<std::mutex> lock(mu_);
  PerDecision& d = d_[decision];
  // A reload that changes what the scores mean (router, pair, target) starts the window afresh.
  const std::string signature = sel.router + "\n" + sel.strong + "\n" + sel.weak + "\n" +
                                std::to_string(sel.target_strong_share);
  if (d.signature != signature) {
    d.scores.clear();
    d.strong.clear();
    d.strong_count = 0;
    d.since_recompute = 1u << 30;
    d.signature = signature;
  }
  d.scores.push_back(score);
  while (d.scores.size() > sel.window)
    d.scores.pop_front();
  if (d.scores.size() < kMinScores)
    return sel.threshold; // not enough traffic yet: the configured (calibrated offline) one
  if (++d.since_recompute >= kRecomputeEvery) {
    // Strong when score ≥ threshold: the (1 − share) quantile of the recent scores.
    std::vector<double> v(d.scores.begin(), d.scores.end());
    size_t k = std::min(v.size() - 1, size_t((1.0 - sel.target_strong_share) * double(v.size())));
    std::nth_element(v.begin(), v.begin() + long(k), v.end());
    // share 1: the minimum (everything goes strong); share 0: just above the maximum.
    d.cached_threshold =
        sel.target_strong_share <= 0.0 ? *std::max_element(v.begin(), v.end()) + 1e-9 : v[k];
    d.since_recompute = 0;
  }
  return d.cached_threshold;
}

double SelectionState::record_choice(const std::string& decision,
                                     const config::SelectionConfig& sel, bool strong) {
  std::lock_guard<std::mutex> lock(mu_);
  PerDecision& d = d_[decision];
  d.strong.push_back(strong);
  d.strong_count += strong;
  while (d.strong.size() > sel.window) {
    d.strong_count -= d.strong.front();
    d.strong.pop_front();
  }
  return double(d.strong_count) / double(d.strong.size());
}

bool SelectionState::pressure(const std::string& decision, const config::LoadShiftConfig& l,
                              const LoadTracker& load, const std::string& model) {
  if (!l.enabled())
    return false;
  const double inflight = double(load.inflight(model));
  const std::optional<double> p95 = load.ttft_p95(model);
  const double p95_ms = p95 ? *p95 * 1000.0 : 0.0;
  const bool over = (l.max_inflight > 0 && inflight > double(l.max_inflight)) ||
                    (l.ttft_p95_ms > 0 && p95_ms > double(l.ttft_p95_ms));
  // Released only when clearly below the limits (by the hysteresis fraction).
  const double keep = 1.0 - l.hysteresis;
  const bool clear = (l.max_inflight == 0 || inflight <= double(l.max_inflight) * keep) &&
                     (l.ttft_p95_ms == 0 || p95_ms <= double(l.ttft_p95_ms) * keep);
  std::lock_guard<std::mutex> lock(mu_);
  PerDecision& d = d_[decision];
  if (!d.pressure && over)
    d.pressure = true;
  else if (d.pressure && clear)
    d.pressure = false;
  return d.pressure;
}

} // namespace semrouter::pipeline
