// Counters, gauges and histograms with labels, and their Prometheus text exposition (0.0.4).
// Thread-safe: values are atomics; looking up a labelled child takes a short lock, so hot paths
// should keep the reference they get back.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/recent.h"
#include "core/shard.h"

namespace semrouter::metrics {

// kShards atomics, each on a cache line of its own: a thread adds to its own shard
// (core::thread_shard()) and readers add the shards up. The gateway's workers write the same
// metrics on every request, and one shared atomic passed its line from core to core.
inline constexpr size_t kShards = 4;
template <typename T> class ShardedSum {
public:
  void add(T n) {
    shards_[core::thread_shard() % kShards].value.fetch_add(n, std::memory_order_relaxed);
  }
  // Sets the total: `v` in one shard, the others cleared (adds racing with it may be lost). A
  // set-only value writes one cache line: the others are written only when not already zero.
  void set(T v) {
    shards_[0].value.store(v, std::memory_order_relaxed);
    for (size_t i = 1; i < kShards; ++i)
      if (shards_[i].value.load(std::memory_order_relaxed) != T{})
        shards_[i].value.store(T{}, std::memory_order_relaxed);
  }
  T sum() const {
    T total{};
    for (const Line& l : shards_)
      total += l.value.load(std::memory_order_relaxed);
    return total;
  }

private:
  struct alignas(64) Line {
    std::atomic<T> value{};
  };
  std::array<Line, kShards> shards_;
};

class Counter {
public:
  void inc(uint64_t n = 1) { value_.add(n); }
  uint64_t value() const { return value_.sum(); }

private:
  ShardedSum<uint64_t> value_;
};

// A value that goes up and down; fractional values (a share, a threshold) are allowed. A gauge is
// either set (a level) or added to (things in progress, from every worker), not both: set()
// clears what was added.
class Gauge {
public:
  void add(double n) { value_.add(n); }
  void set(double v) { value_.set(v); }
  double value() const { return value_.sum(); }

private:
  ShardedSum<double> value_;
};

// Observations from several threads land in separate shards, as ShardedSum's adds do: each
// shard's buckets and sum on cache lines of their own. read() adds the shards up.
class Histogram {
public:
  explicit Histogram(const std::vector<double>& bounds);
  void observe(double v);
  // Snapshot for exposition: cumulative counts per bound (+Inf last), sum, count.
  void read(std::vector<uint64_t>& cumulative, double& sum, uint64_t& count) const;
  const std::vector<double>& bounds() const { return bounds_; }

private:
  struct alignas(64) Line {
    std::atomic<uint64_t> cell[8] = {};
  };
  // Cell i of shard s: buckets 0..bounds_.size(), then the sum (in millionths, to stay atomic).
  // The count is the buckets' total.
  std::atomic<uint64_t>& cell(size_t shard, size_t i) {
    return lines_[shard * lines_per_shard_ + i / 8].cell[i % 8];
  }
  const std::atomic<uint64_t>& cell(size_t shard, size_t i) const {
    return lines_[shard * lines_per_shard_ + i / 8].cell[i % 8];
  }
  std::vector<double> bounds_;
  size_t lines_per_shard_;
  std::vector<Line> lines_;
};

enum class Type { Counter, Gauge, Histogram };

// One metric name with a fixed list of label names; children per label-value tuple.
template <typename T> class Family {
public:
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)),
        bounds_(std::move(bounds)) {}

  // The child for these label values (in the order of the label names). Allocation-free once the
  // child exists: the lookup key is built in a reused thread-local buffer. Each thread keeps its
  // recent answers in a small cache, so the few children a request path asks for on every
  // request cost neither the lock nor the map (children are never removed, and a family's id is
  // never reused, so a cached answer stays valid).
  T& with(std::initializer_list<std::string_view> values) {
    thread_local std::string key;
    key.clear();
    for (std::string_view v : values) {
      key.append(v);
      key.push_back('\x1f'); // unit separator: cannot appear in a sane label value
    }
    if (T* cached = Recent::find(id_, key))
      return *cached;
    T& found = find_or_add(key, values);
    Recent::put(id_, key, &found);
    return found;
  }

  // Visits children ordered by label values, so the exposition is stable.
  template <typename F> void for_each(F&& f) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<const Child*> sorted;
    sorted.reserve(children_.size());
    for (const auto& [key, child] : children_)
      sorted.push_back(&child);
    std::sort(sorted.begin(), sorted.end(),
              [](const Child* a, const Child* b) { return a->values < b->values; });
    for (const Child* c : sorted)
      f(c->values, *c->metric);
  }
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& labels() const { return labels_; }

private:
  using Recent = core::RecentAnswers<T, 32>;

  // with()'s slow path: the child under `key`, made if new.
  T& find_or_add(std::string_view key, std::initializer_list<std::string_view> values) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = children_.find(key);
    if (it != children_.end())
      return *it->second.metric;
    Child child;
    child.values.assign(values.begin(), values.end());
    if constexpr (std::is_same_v<T, Histogram>) {
      child.metric = std::make_unique<T>(bounds_);
    } else {
      child.metric = std::make_unique<T>();
    }
    T& ref = *child.metric;
    children_.emplace(std::string(key), std::move(child));
    return ref;
  }

  struct Child {
    std::vector<std::string> values;
    std::unique_ptr<T> metric;
  };
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  const uint64_t id_ = core::new_owner_id();
  std::string name_, help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Child, KeyHash, std::equal_to<>> children_;
};

class Registry {
public:
  Family<Counter>& counter(std::string name, std::string help,
                           std::vector<std::string> labels = {});
  Family<Gauge>& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<std::string> labels,
                               std::vector<double> bounds);
  // Text exposition format, families in registration order.
  std::string expose() const;

private:
  struct Entry {
    Type type;
    void* family;
  };
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  std::vector<Entry> order_;
  mutable std::mutex mu_;
};

// Escapes a label value for the exposition format.
std::string escape_label_value(std::string_view v);

// Latency buckets in seconds, from 0.5 ms to 2 min.
std::vector<double> latency_buckets();

} // namespace semrouter::metrics
