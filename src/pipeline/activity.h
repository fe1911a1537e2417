// What the dashboard shows of the traffic: the outcomes of recent requests (a bounded ring) and
// the traffic history of the last hour (fixed-interval buckets of counts, small latency
// histograms and per-model / per-decision totals). Fed where a request's outcome is final:
// `Exchange::finish` for forwarded requests, `Runtime::route` for requests routing answers
// itself (cache hits, guards, errors). Read by the dashboard module.
//
// Threading: every method is thread-safe. `record` takes one short lock (a slot swap and a
// bucket update, no allocation once the names are known, no JSON); readers copy under the same
// lock and do their formatting outside it.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "signals/signal.h"

namespace semrouter::pipeline {

// The signal types whose latency the history keeps, in a fixed order (the index is the slot).
inline constexpr std::array<std::string_view, 10> kSignalTypes{
    "keyword", "embedding",  "pii",       "context_length", "metadata",
    "domain",  "complexity", "reasoning", "jailbreak",      "language"};
// The slot of a signal type, or -1 when it is not one of kSignalTypes.
int signal_type_index(std::string_view type);

// Per signal type, the time it took for one request (microseconds; -1: not computed). Signals of
// one type share their computation (one classifier call answers every domain signal), so a type
// is timed once.
struct SignalTimings {
  std::array<float, kSignalTypes.size()> us;
  SignalTimings() { us.fill(-1.0f); }
};

// Per signal type, the longest time one of its signals took, into `timings` (what routing records
// when the dashboard is on).
void time_signals(const signals::SignalResults& results, SignalTimings& timings);

// One request's outcome, as the Live page shows it.
struct ActivityRecord {
  uint64_t seq = 0;      // set by ActivityLog::record: 1, 2, 3, ...
  int64_t unix_ms = 0;   // wall-clock time the outcome was final
  std::string tenant;    // the key's tenant, else the x-tenant-id header; "" when neither
  std::string decision;  // the decision, "passthrough", or "" (refused before a decision)
  std::string model;     // the routed model; "" when none
  std::string fallback;  // the model that answered instead (a fallback), else ""
  std::string reasoning; // the x-semrouter-reasoning value
  std::string cache;     // "hit", "miss", "bypass" or ""
  std::string pii;       // "redacted", "rerouted", "blocked" or ""
  std::string session;   // "new", "sticky", "escalated" or ""
  std::string error;     // the error type of a refused request ("" otherwise)
  std::string prompt;    // the latest user text, PII-redacted; only with dashboard.show_prompts
  std::vector<std::string> signals; // the signals that made the decision's rules true
  double confidence = 0;
  bool blocked = false; // a guard answered (nothing went upstream)
  bool stream = false;
  int status = 0;
  double latency_ms = 0; // request received to response complete
  double ttft_ms = -1;   // to the first token; -1 when there was none
  double route_us = 0;
  uint64_t prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;
  double cost = 0; // from the model's pricing and the reported usage (USD)
  SignalTimings signal_us;
};

// Latency histogram buckets: geometric, kLatencyFirstMs × kLatencyFactor^i, plus one overflow.
inline constexpr size_t kLatencyBins = 40;
inline constexpr double kLatencyFirstMs = 0.25;
inline constexpr double kLatencyFactor = 1.4; // the last bound is ~125 s
using LatencyHistogram = std::array<uint32_t, kLatencyBins + 1>;
// The upper bound of bin i in milliseconds (infinity for the overflow bin).
double latency_bin_upper_ms(size_t i);
size_t latency_bin(double ms);
// The q-quantile (0..1) of a histogram in milliseconds, interpolated geometrically inside its
// bin; -1 when empty.
double histogram_quantile(const LatencyHistogram& h, double q);

// Totals of one model or one decision within a bucket; `name` indexes TrafficHistory::names.
struct NameTotals {
  uint16_t name = 0;
  uint32_t requests = 0;
  uint32_t errors = 0;
  uint64_t prompt_tokens = 0, completion_tokens = 0;
  double cost = 0;
};

struct SignalTotals {
  uint32_t count = 0;
  double sum_us = 0;
  float max_us = 0;
};

// One interval of traffic. Errors are status >= 500; client errors 400..498; 499 (the client
// left) is `aborted`.
struct TrafficBucket {
  int64_t start_ms = -1; // -1: no traffic in this interval
  uint32_t requests = 0, errors = 0, client_errors = 0, aborted = 0, fallbacks = 0;
  uint32_t cache_hits = 0, cache_misses = 0, blocked = 0, pii = 0, streamed = 0;
  LatencyHistogram latency{}, ttft{};
  uint32_t ttft_count = 0;
  std::vector<NameTotals> models, decisions;
  std::array<SignalTotals, kSignalTypes.size()> signals{};
};

// A copy of part of the history: contiguous buckets, oldest first, each `bucket_s` long (an
// interval without traffic is a bucket with start_ms set and zero counts).
struct TrafficHistory {
  uint32_t bucket_s = 10;
  std::vector<TrafficBucket> buckets;
  std::vector<std::string> names; // model and decision names by NameTotals::name
};

class ActivityLog {
public:
  struct Options {
    size_t capacity = 1000;    // recent records kept
    uint32_t bucket_s = 10;    // history interval
    uint32_t history_s = 3600; // history span
    int64_t started_ms = 0;    // wall clock at start: the history never reaches before it
  };
  explicit ActivityLog(Options options);
  ActivityLog(const ActivityLog&) = delete;
  ActivityLog& operator=(const ActivityLog&) = delete;

  // Stores an outcome (assigning its seq) and adds it to its time's bucket. A record older than
  // the history's span only enters the ring. `r` takes the record it displaces from the ring
  // (freed by the caller, outside the log's lock).
  void record(ActivityRecord&& r);

  // The seq the next record will get (records so far + 1).
  uint64_t next_seq() const;
  // The records with seq >= cursor, oldest first, at most `max`; the cursor moves past the last
  // one returned. Records the ring already overwrote are skipped: `missed` (when given) says how
  // many.
  std::vector<ActivityRecord> since(uint64_t& cursor, size_t max, uint64_t* missed = nullptr) const;
  // The latest `n` records, oldest first.
  std::vector<ActivityRecord> latest(size_t n) const;

  // The buckets covering the last `seconds` before `now_ms` (and not before the start), oldest
  // first; the last is the bucket `now_ms` falls in.
  TrafficHistory history(int64_t now_ms, uint32_t seconds) const;

  const Options& options() const { return options_; }

private:
  size_t slot(int64_t start_ms) const;       // the bucket slot of an interval
  uint16_t name_id(const std::string& name); // under mu_
  static void add_to(std::vector<NameTotals>& list, uint16_t id, const ActivityRecord& r,
                     bool error);

  const Options options_;
  const int64_t bucket_ms_;
  mutable std::mutex mu_;
  std::vector<ActivityRecord> ring_;
  uint64_t next_seq_ = 1;
  std::vector<TrafficBucket> buckets_; // slot = (start_ms / bucket_ms_) % size
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint16_t> name_ids_;
};

// Past this many distinct model and decision names, the rest are counted as "(other)".
inline constexpr size_t kMaxHistoryNames = 256;

} // namespace semrouter::pipeline
