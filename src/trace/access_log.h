// Structured access logs: one line per request, as JSON (for log shippers) or as text (for a
// terminal), written by a background thread to stdout, stderr or a file. A request thread only
// formats its line and appends it to a buffer under a short lock; the writer thread does the
// I/O. A file is reopened on request (SIGHUP, for logrotate's move-and-signal); a buffer past its
// bound (a stuck disk) drops lines and counts them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"
#include "metrics/metrics.h"

namespace semrouter::trace {

// One request, as its log line says it. Empty strings and negative numbers are left out of the
// JSON line (shown as "-" in text).
struct AccessLogEntry {
  int64_t unix_ms = 0; // when the answer completed
  std::string request_id;
  std::string trace_id; // "" when the request is not traced
  std::string span_id;  // the request's server span
  std::string client;   // the client's address
  std::string method, path;
  std::string api; // chat, completions, messages, responses, embeddings
  std::string tenant, key;
  std::string decision, model, fallback, reasoning;
  std::string backend; // the backend that answered
  std::string cache;   // hit, miss, bypass
  std::string error;   // the error type of a refused or failed request
  int status = 0;
  bool stream = false;
  uint32_t retries = 0;
  double latency_ms = 0, routing_ms = -1, upstream_ms = -1, ttft_ms = -1;
  int64_t prompt_tokens = -1, completion_tokens = -1, reasoning_tokens = -1;
};

enum class AccessLogFormat { Json, Text };

// One line, with its newline.
void format_access_log(const AccessLogEntry& e, AccessLogFormat format, std::string& out);

class AccessLog {
public:
  struct Options {
    AccessLogFormat format = AccessLogFormat::Json;
    std::string path = "stdout"; // stdout, stderr or a file (appended to)
    size_t max_buffer_bytes = 8u << 20;
    uint32_t flush_interval_ms = 100;
  };
  // Opens the file and starts the writer thread. `registry` may be null.
  static core::StatusOr<std::unique_ptr<AccessLog>> open(Options options,
                                                         metrics::Registry* registry);
  // Writes what is buffered and stops the thread.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  AccessLogFormat format() const { return options_.format; }
  // Formats and queues one line. Thread-safe; never does I/O.
  void write(const AccessLogEntry& e);
  // The file is reopened by the writer thread before its next write (a rotated log). Safe to
  // call from any thread, not from a signal handler.
  void reopen();
  // Waits (bounded) until every queued line was written; tests.
  bool flush(std::chrono::milliseconds timeout);
  uint64_t dropped() const { return dropped_.load(); }

private:
  AccessLog(Options options, metrics::Registry* registry);
  void run();
  bool open_file(); // under file ownership of the writer thread (or before it starts)

  const Options options_;
  metrics::Counter* lines_ = nullptr;
  metrics::Counter* dropped_counter_ = nullptr;
  FILE* file_ = nullptr;
  bool own_file_ = false;
  std::mutex mu_;
  std::condition_variable wake_, written_;
  std::string pending_;
  bool writing_ = false;
  bool stop_ = false;
  bool reopen_ = false;
  std::atomic<uint64_t> dropped_{0};
  std::thread thread_;
};

} // namespace semrouter::trace
