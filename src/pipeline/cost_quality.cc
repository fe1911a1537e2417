#include "pipeline/cost_quality.h"

#include <algorithm>
#include <cstring>

namespace semrouter::pipeline {

namespace {
constexpr size_t kTtftMinSamples = 10;
constexpr auto kTtftMaxAge = std::chrono::seconds(30);
constexpr size_t kMinScores = 50; // the quantile is used once the window holds this many
constexpr size_t kRecomputeEvery = 16;
} // namespace

namespace {
uint32_t tenths_since(std::chrono::steady_clock::time_point epoch,
                      std::chrono::steady_clock::time_point now) {
  if (now <= epoch) // a time given from before the tracker was made counts as its start
    return 0;
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now - epoch).count() / 100);
}
} // namespace

LoadTracker::LoadTracker() : id_(core::new_owner_id()), epoch_(std::chrono::steady_clock::now()) {}
LoadTracker::~LoadTracker() = default;

LoadTracker::Model& LoadTracker::model(const std::string& name) const {
  using Recent = core::RecentAnswers<Model, 8>;
  if (Model* cached = Recent::find(id_, name))
    return *cached;
  Model* found = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& e = models_[name];
    if (!e)
      e = std::make_unique<Entry>(epoch_);
    found = &e->handle;
  }
  Recent::put(id_, name, found);
  return *found;
}

void LoadTracker::Model::record_ttft(double seconds, std::chrono::steady_clock::time_point when) {
  const uint32_t at = tenths_since(epoch_, when) + 1;
  const float value = static_cast<float>(seconds);
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  Shard& shard = state_.shard();
  const uint64_t i = shard.ttft_next.fetch_add(1, std::memory_order_relaxed) % kTtftWindow;
  shard.ttft[i].store(uint64_t(at) << 32 | bits, std::memory_order_relaxed);
}

int64_t LoadTracker::Model::inflight() const {
  int64_t sum = 0;
  for (const Shard& s : state_.shards)
    sum += s.inflight.load(std::memory_order_relaxed);
  return sum;
}

std::optional<double> LoadTracker::Model::ttft_p95() const {
  const uint32_t now = tenths_since(epoch_, std::chrono::steady_clock::now()) + 1;
  const uint32_t max_age = static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(kTtftMaxAge).count() / 100);
  std::vector<uint64_t> recent; // the packed words
  recent.reserve(kShards * kTtftWindow);
  for (const Shard& shard : state_.shards)
    for (const auto& slot : shard.ttft) {
      const uint64_t word = slot.load(std::memory_order_relaxed);
      const uint32_t at = static_cast<uint32_t>(word >> 32);
      // Empty, or too old (a sample another thread took after `now` was read is not).
      if (at == 0 || (now > at && now - at > max_age))
        continue;
      recent.push_back(word);
    }
  if (recent.size() > kTtftWindow) { // the newest kTtftWindow of all the threads' samples
    // By time alone: the whole word would break ties within a tenth by the value, keeping the
    // slowest.
    std::nth_element(recent.begin(), recent.begin() + long(kTtftWindow), recent.end(),
                     [](uint64_t a, uint64_t b) { return (a >> 32) > (b >> 32); });
    recent.resize(kTtftWindow);
  }
  if (recent.size() < kTtftMinSamples)
    return std::nullopt;
  std::vector<double> v;
  v.reserve(recent.size());
  for (uint64_t word : recent) {
    const uint32_t bits = static_cast<uint32_t>(word);
    float value = 0;
    std::memcpy(&value, &bits, sizeof value);
    v.push_back(value);
  }
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
  const LoadTracker::Model& m = load.model(model);
  const double inflight = double(m.inflight());
  // The p95 reads every thread's ring: only when a limit asks for it.
  const std::optional<double> p95 = l.ttft_p95_ms > 0 ? m.ttft_p95() : std::nullopt;
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
