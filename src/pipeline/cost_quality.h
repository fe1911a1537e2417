// Runtime state of cost–quality selection, shared by every worker and kept across config
// reloads: per-model load (requests in flight, recent time to first token) and per-decision
// calibration (a window of recent router scores for holding a target share of strong calls) and
// load pressure (with hysteresis, so the shift does not flap).
#pragma once

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

namespace semrouter::pipeline {

class LoadTracker {
public:
  // The gateway calls these around each upstream request.
  void start(const std::string& model);
  void finish(const std::string& model);
  void record_ttft(const std::string& model, double seconds);

  int64_t inflight(const std::string& model) const;
  // p95 of the last 200 times to first token of the past 30 s (seconds); nullopt with fewer
  // than 10 such samples (old samples expire, so a model that gets no traffic recovers).
  std::optional<double> ttft_p95(const std::string& model) const;

private:
  struct PerModel {
    std::atomic<int64_t> inflight{0};
    std::deque<std::pair<std::chrono::steady_clock::time_point, double>> ttft; // guarded by mu_
  };
  PerModel& get(const std::string& model);
  const PerModel* find(const std::string& model) const;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<PerModel>> models_;
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
