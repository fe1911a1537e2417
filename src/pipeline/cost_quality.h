// Runtime state of cost–quality selection, shared by every worker and kept across config
// reloads: per-model load (requests in flight, recent time to first token) and per-decision
// calibration (a window of recent router scores for holding a target share of strong calls) and
// load pressure (with hysteresis, so the shift does not flap).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/recent.h"
#include "core/shard.h"

namespace semrouter::pipeline {

class LoadTracker {
  struct PerModel;

public:
  LoadTracker();
  ~LoadTracker();
  LoadTracker(const LoadTracker&) = delete;
  LoadTracker& operator=(const LoadTracker&) = delete;

  // One model's state, made on first use and kept for the tracker's life (models are never
  // removed), so a request looks its model up once and keeps the reference. Each thread keeps its
  // recent answers in a small cache: the lookup on every request takes no lock.
  class Model {
  public:
    // The gateway calls these around each upstream request (lock-free).
    void start() { state_.shard().inflight.fetch_add(1, std::memory_order_relaxed); }
    void finish() { state_.shard().inflight.fetch_sub(1, std::memory_order_relaxed); }
    // `when`: when the first token came (the caller's clock reading; a test's chosen time).
    void record_ttft(double seconds,
                     std::chrono::steady_clock::time_point when = std::chrono::steady_clock::now());

    int64_t inflight() const;
    // p95 of the model's last 200 times to first token (the newest across the threads' rings;
    // samples of the same tenth of a second count as equally new) of the past 30 s, in seconds
    // (kept as floats); nullopt with fewer than 10 such samples (old samples expire, so a model
    // that gets no traffic recovers).
    std::optional<double> ttft_p95() const;

  private:
    friend class LoadTracker;
    Model(PerModel& state, std::chrono::steady_clock::time_point epoch)
        : state_(state), epoch_(epoch) {}
    PerModel& state_;
    std::chrono::steady_clock::time_point epoch_;
  };
  // (Const: a model not seen yet is made with nothing in flight and no samples, which is what
  // the readers would report for it anyway.)
  Model& model(const std::string& name) const;

  // By name, for tests and callers outside the request path.
  void start(const std::string& name) { model(name).start(); }
  void finish(const std::string& name) { model(name).finish(); }
  void record_ttft(const std::string& name, double seconds) { model(name).record_ttft(seconds); }

  int64_t inflight(const std::string& name) const { return model(name).inflight(); }
  std::optional<double> ttft_p95(const std::string& name) const { return model(name).ttft_p95(); }

  static constexpr size_t kTtftWindow = 200;
  static constexpr size_t kShards = 4;

private:
  // Every request writes its model's state twice or three times, from whichever worker runs it:
  // each thread writes a shard of its own (core::thread_shard), on cache lines of its own, and the
  // readers add the shards up.
  struct alignas(64) Shard {
    std::atomic<int64_t> inflight{0}; // starts minus finishes on this shard (may be negative)
    // A ring of the thread's last kTtftWindow samples, each one word: the time it was taken
    // (tenths of a second since the tracker's epoch, plus one; 0: an empty slot; it would wrap
    // after 13 years) in the high 32 bits, the seconds as a float in the low 32.
    std::atomic<uint64_t> ttft_next{0};
    std::array<std::atomic<uint64_t>, kTtftWindow> ttft{};
  };
  struct PerModel {
    std::array<Shard, kShards> shards;
    Shard& shard() { return shards[core::thread_shard() % kShards]; }
  };
  struct Entry {
    PerModel state;
    Model handle;
    explicit Entry(std::chrono::steady_clock::time_point epoch) : handle(state, epoch) {}
  };
  const uint64_t id_; // never reused, so a thread's cached answer cannot name another tracker
  const std::chrono::steady_clock::time_point epoch_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::unique_ptr<Entry>, std::less<>> models_;
};

// What selection decided, for headers and metrics.
struct SelectionReport {
  bool active = false;
  std::string choice;       // threshold mode: "strong" or "weak"; else the model name
  double score = 0;         // threshold: p(strong) − p(weak); else the chosen model's p
  double threshold = 0;     // the effective threshold (or target quality / λ) used
  bool pressure = false;    // the load shift was applied
  double strong_share = -1; // threshold mode: realised share over the window (−1: n/a)
};

class SelectionState {
public:
  // Threshold mode: records `score`, returns the threshold to use now (the configured one, or
  // the window's quantile for target_strong_share once warmed up).
  double threshold(const std::string& decision, const config::SelectionConfig& sel, double score);
  // Records whether the request went strong; returns the realised share over the window.
  double record_choice(const std::string& decision, const config::SelectionConfig& sel,
                       bool strong);
  // Load pressure on `model` for this decision, with hysteresis.
  bool pressure(const std::string& decision, const config::SelectionConfig& sel,
                const LoadTracker& load, const std::string& model) {
    return pressure(decision, sel.load, load, model);
  }
  // The same for any limits under any key (reasoning_load uses "reasoning:<decision>").
  bool pressure(const std::string& key, const config::LoadShiftConfig& limits,
                const LoadTracker& load, const std::string& model);

private:
  struct PerDecision {
    std::deque<double> scores;
    std::deque<bool> strong;
    size_t strong_count = 0;
    double cached_threshold = 0;
    size_t since_recompute = 1u << 30;
    bool pressure = false;
    std::string signature; // router, pair and target the window was filled under
  };
  std::mutex mu_;
  std::map<std::string, PerDecision> d_;
};

// Both, as the gateway owns them.
struct CostQualityRuntime {
  LoadTracker load;
  SelectionState selection;
};

} // namespace semrouter::pipeline
