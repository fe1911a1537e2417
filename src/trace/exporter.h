// Span export off the request path: a bounded queue that request threads hand finished spans to
// (never waiting on I/O), and one background thread that sends them in batches to a `SpanSink`
// (the OTLP/HTTP collector in production, a fake in tests). When the collector is down or slow
// the queue fills and new spans are dropped and counted; a failed batch is dropped and counted,
// never retried, so nothing grows without bound.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/status.h"
#include "metrics/metrics.h"
#include "trace/span.h"

namespace semrouter::trace {

// Where batches go. Called only from the exporter thread; it may block up to its own timeout.
class SpanSink {
public:
  virtual ~SpanSink() = default;
  // Sends one ExportTraceServiceRequest body. An error: the batch is dropped.
  virtual core::Status send(const std::string& body) = 0;
};

// An OTLP/HTTP collector at an http:// endpoint: `POST {endpoint}/v1/traces` with
// `Content-Type: application/json`, over a blocking socket with a timeout for the whole
// exchange, one connection per batch. A 2xx answer is success. https:// is not supported (the
// config rejects it): run a local collector or agent that forwards over TLS.
class HttpSink : public SpanSink {
public:
  struct Options {
    std::string endpoint; // http://host[:port][/base]
    uint32_t timeout_ms = 2000;
    std::vector<std::pair<std::string, std::string>> headers; // added to every request
  };
  // Fails on an endpoint it cannot use (not http://, no host, a bad port).
  static core::StatusOr<std::unique_ptr<HttpSink>> create(Options options);
  core::Status send(const std::string& body) override;

private:
  explicit HttpSink(Options options) : options_(std::move(options)) {}
  Options options_;
  std::string host_, port_, path_, head_; // head_: everything before Content-Length
};

struct ExporterOptions {
  size_t batch_size = 512;           // spans per request to the sink, at most
  uint32_t flush_interval_ms = 1000; // a partial batch waits at most this long
  size_t queue_size = 4096;          // spans waiting, at most; beyond it new spans are dropped
  Resource resource;
};

// Counters, shared with /metrics when a registry is given.
struct ExporterMetrics {
  explicit ExporterMetrics(metrics::Registry& r);
  metrics::Counter& exported;
  metrics::Family<metrics::Counter>& dropped; // by reason: queue_full, export_failed
  metrics::Family<metrics::Counter>& batches; // by result: ok, error
};

class BatchExporter {
public:
  // Starts the exporter thread. `registry` may be null (tests): the counters are kept anyway.
  BatchExporter(ExporterOptions options, std::unique_ptr<SpanSink> sink,
                metrics::Registry* registry);
  // Stops the thread after one last attempt to send what is queued.
  ~BatchExporter();
  BatchExporter(const BatchExporter&) = delete;
  BatchExporter& operator=(const BatchExporter&) = delete;

  // Hands a request's spans over. Thread-safe, never blocks on I/O (a short lock to append):
  // the spans that do not fit in the queue are dropped and counted ("queue_full").
  void submit(std::vector<Span>&& spans);

  uint64_t exported() const { return exported_.load(); }
  uint64_t dropped() const { return dropped_.load(); }
  // Waits (bounded) until the queue is empty and no batch is in flight; tests and shutdown.
  bool drain(std::chrono::milliseconds timeout);

private:
  void run();
  void count_dropped(const char* reason, uint64_t n);

  const ExporterOptions options_;
  std::unique_ptr<SpanSink> sink_;
  std::unique_ptr<ExporterMetrics> metrics_;
  std::mutex mu_;
  std::condition_variable wake_;    // the thread: a full batch, or stop
  std::condition_variable drained_; // drain(): the queue emptied
  std::deque<Span> queue_;
  bool stop_ = false;
  bool sending_ = false;
  std::atomic<uint64_t> exported_{0}, dropped_{0};
  std::thread thread_;
};

} // namespace semrouter::trace
