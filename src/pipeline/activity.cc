#include "pipeline/activity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace semrouter::pipeline {

int signal_type_index(std::string_view type) {
  for (size_t i = 0; i < kSignalTypes.size(); ++i)
    if (kSignalTypes[i] == type)
      return static_cast<int>(i);
  return -1;
}

void time_signals(const signals::SignalResults& results, SignalTimings& timings) {
  // Keys are "type:name" in sorted order: a type's signals come together, so its slot is looked
  // up once per run of them.
  std::string_view type;
  int slot = -1;
  for (const auto& [key, r] : results.all()) {
    const std::string_view k(key);
    if (type.empty() || !k.starts_with(type) || k.size() == type.size() || k[type.size()] != ':') {
      type = k.substr(0, k.find(':'));
      slot = signal_type_index(type);
    }
    if (slot >= 0)
      timings.us[size_t(slot)] = std::max(timings.us[size_t(slot)], float(r.latency_us));
  }
}

double latency_bin_upper_ms(size_t i) {
  if (i >= kLatencyBins)
    return std::numeric_limits<double>::infinity();
  return kLatencyFirstMs * std::pow(kLatencyFactor, double(i));
}

size_t latency_bin(double ms) {
  if (!(ms > kLatencyFirstMs)) // also NaN and negatives
    return 0;
  // The first i with first * factor^i >= ms.
  const double i = std::ceil(std::log(ms / kLatencyFirstMs) / std::log(kLatencyFactor) - 1e-9);
  return i >= double(kLatencyBins) ? kLatencyBins : static_cast<size_t>(i);
}

double histogram_quantile(const LatencyHistogram& h, double q) {
  uint64_t total = 0;
  for (uint32_t c : h)
    total += c;
  if (total == 0)
    return -1;
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * double(total);
  uint64_t below = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    if (h[i] == 0)
      continue;
    if (double(below + h[i]) >= rank) {
      // Geometric interpolation inside the bin (the bins are geometric); the first bin starts at
      // lower/factor, the overflow bin reports its lower bound.
      const double upper = latency_bin_upper_ms(i);
      const double lower = i == 0 ? kLatencyFirstMs / kLatencyFactor : latency_bin_upper_ms(i - 1);
      if (i >= kLatencyBins)
        return lower;
      const double f = std::clamp((rank - double(below)) / double(h[i]), 0.0, 1.0);
      return lower * std::pow(upper / lower, f);
    }
    below += h[i];
  }
  return latency_bin_upper_ms(kLatencyBins - 1);
}

ActivityLog::ActivityLog(Options options)
    : options_(options), bucket_ms_(int64_t(std::max<uint32_t>(1, options.bucket_s)) * 1000) {
  ring_.resize(std::max<size_t>(1, options_.capacity));
  const uint32_t span = std::max(options_.history_s, std::max<uint32_t>(1, options_.bucket_s));
  buckets_.resize((span + options_.bucket_s - 1) / std::max<uint32_t>(1, options_.bucket_s));
  names_.reserve(64);
}

size_t ActivityLog::slot(int64_t start_ms) const {
  const auto n = int64_t(buckets_.size());
  // Floor division and a positive remainder: times before 1970 (tests) map like any other.
  int64_t k = start_ms / bucket_ms_;
  if (start_ms % bucket_ms_ != 0 && start_ms < 0)
    --k;
  return size_t(((k % n) + n) % n);
}

uint16_t ActivityLog::name_id(const std::string& name) {
  auto it = name_ids_.find(name);
  if (it != name_ids_.end())
    return it->second;
  if (names_.size() + 1 >= kMaxHistoryNames && name != "(other)")
    return name_id("(other)"); // bounded: configured names are few, past the bound one slot
  names_.push_back(name);
  const auto id = uint16_t(names_.size() - 1);
  name_ids_.emplace(name, id);
  return id;
}

void ActivityLog::add_to(std::vector<NameTotals>& list, uint16_t id, const ActivityRecord& r,
                         bool error) {
  NameTotals* t = nullptr;
  for (auto& x : list)
    if (x.name == id) {
      t = &x;
      break;
    }
  if (!t) {
    list.push_back(NameTotals{id});
    t = &list.back();
  }
  t->requests += 1;
  t->errors += error ? 1 : 0;
  t->prompt_tokens += r.prompt_tokens;
  t->completion_tokens += r.completion_tokens;
  t->cost += r.cost;
}

void ActivityLog::record(ActivityRecord&& r) {
  const int64_t start = r.unix_ms - ((r.unix_ms % bucket_ms_) + bucket_ms_) % bucket_ms_;
  const bool error = r.status >= 500;
  std::lock_guard lock(mu_);
  r.seq = next_seq_++;
  // Within the span of the newest bucket seen? (A clock step backwards by more than the span, or
  // a record from before the start, only enters the ring.)
  TrafficBucket& b = buckets_[slot(start)];
  bool count = true;
  if (b.start_ms != start) {
    if (b.start_ms > start)
      count = false; // a newer interval lives in this slot already: this one is past the span
    else {
      // A new interval: reset the slot, keeping its vectors' capacity.
      auto models = std::move(b.models);
      auto decisions = std::move(b.decisions);
      models.clear();
      decisions.clear();
      b = TrafficBucket{};
      b.models = std::move(models);
      b.decisions = std::move(decisions);
      b.start_ms = start;
    }
  }
  if (count) {
    b.requests += 1;
    b.errors += error ? 1 : 0;
    b.client_errors += r.status >= 400 && r.status < 499 ? 1 : 0;
    b.aborted += r.status == 499 ? 1 : 0;
    b.fallbacks += r.fallback.empty() ? 0 : 1;
    b.cache_hits += r.cache == "hit" ? 1 : 0;
    b.cache_misses += r.cache == "miss" ? 1 : 0;
    b.blocked += r.blocked ? 1 : 0;
    b.pii += r.pii.empty() ? 0 : 1;
    b.streamed += r.stream ? 1 : 0;
    b.latency[latency_bin(r.latency_ms)] += 1;
    if (r.ttft_ms >= 0) {
      b.ttft[latency_bin(r.ttft_ms)] += 1;
      b.ttft_count += 1;
    }
    const std::string& answered = r.fallback.empty() ? r.model : r.fallback;
    if (!answered.empty())
      add_to(b.models, name_id(answered), r, error);
    if (!r.decision.empty())
      add_to(b.decisions, name_id(r.decision), r, error);
    for (size_t i = 0; i < kSignalTypes.size(); ++i) {
      const float us = r.signal_us.us[i];
      if (us < 0)
        continue;
      SignalTotals& s = b.signals[i];
      s.count += 1;
      s.sum_us += us;
      s.max_us = std::max(s.max_us, us);
    }
  }
  // The old record leaves the lock with `r` and is freed outside it.
  std::swap(ring_[(r.seq - 1) % ring_.size()], r);
}

uint64_t ActivityLog::next_seq() const {
  std::lock_guard lock(mu_);
  return next_seq_;
}

std::vector<ActivityRecord> ActivityLog::since(uint64_t& cursor, size_t max,
                                               uint64_t* missed) const {
  std::vector<ActivityRecord> out;
  std::lock_guard lock(mu_);
  const uint64_t oldest = next_seq_ > ring_.size() ? next_seq_ - ring_.size() : 1;
  if (missed)
    *missed = cursor < oldest && cursor > 0 ? oldest - cursor : 0;
  uint64_t from = std::max<uint64_t>(cursor, oldest);
  const uint64_t to = std::min<uint64_t>(next_seq_, from + max);
  if (to > from)
    out.reserve(to - from);
  for (uint64_t s = from; s < to; ++s)
    out.push_back(ring_[(s - 1) % ring_.size()]);
  cursor = std::max(cursor, to);
  return out;
}

std::vector<ActivityRecord> ActivityLog::latest(size_t n) const {
  uint64_t cursor;
  {
    std::lock_guard lock(mu_);
    cursor = next_seq_ > n ? next_seq_ - n : 1;
  }
  return since(cursor, n);
}

TrafficHistory ActivityLog::history(int64_t now_ms, uint32_t seconds) const {
  TrafficHistory h;
  h.bucket_s = options_.bucket_s;
  const int64_t last = now_ms - ((now_ms % bucket_ms_) + bucket_ms_) % bucket_ms_;
  const int64_t n = int64_t(buckets_.size());
  int64_t count =
      std::clamp<int64_t>((int64_t(seconds) * 1000 + bucket_ms_ - 1) / bucket_ms_, 1, n);
  const int64_t started =
      options_.started_ms - ((options_.started_ms % bucket_ms_) + bucket_ms_) % bucket_ms_;
  if (options_.started_ms > 0 && last >= started)
    count = std::min<int64_t>(count, (last - started) / bucket_ms_ + 1);
  h.buckets.resize(size_t(count));
  std::lock_guard lock(mu_);
  for (int64_t k = 0; k < count; ++k) {
    const int64_t start = last - (count - 1 - k) * bucket_ms_;
    const TrafficBucket& b = buckets_[slot(start)];
    if (b.start_ms == start)
      h.buckets[size_t(k)] = b;
    h.buckets[size_t(k)].start_ms = start;
  }
  h.names = names_;
  return h;
}

} // namespace semrouter::pipeline
