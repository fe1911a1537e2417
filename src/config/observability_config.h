// The `tracing` and `access_log` sections: OpenTelemetry traces exported over OTLP/HTTP (JSON)
// and one structured log line per request. Parsed by observability_config.cc; read at start by
// `app`, which builds the exporter and the log (a reload does not change them).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace semrouter::config {

struct TracingConfig {
  // On: W3C traceparent is read, continued and sent upstream, and sampled requests' spans are
  // exported. Off: the client's traceparent and tracestate are forwarded as they are.
  bool enabled = false;
  std::string endpoint = "http://127.0.0.1:4318"; // OTLP/HTTP; spans go to {endpoint}/v1/traces
  std::string service_name = "semrouter";
  double sample_ratio = 1.0; // new traces; a client's traceparent decides for its own
  uint32_t batch_size = 512;
  uint32_t flush_interval_ms = 1000;
  uint32_t queue_size = 8192; // spans waiting to be sent; beyond it, dropped and counted
  uint32_t timeout_ms = 2000; // one export request, connect to answer
  std::vector<std::pair<std::string, std::string>> headers; // e.g. authorization (${ENV} expanded)
};

enum class AccessLogFormat { Json, Text };

struct AccessLogConfig {
  bool enabled = false;
  AccessLogFormat format = AccessLogFormat::Json;
  std::string path = "stdout"; // stdout, stderr or a file (appended; reopened on SIGHUP)
};

} // namespace semrouter::config
