// `semrouter bench`'s HTTP client: POSTs request bodies to one endpoint, at most `concurrency` at
// a time, over kept-alive HTTP/1.1 connections (plain TCP or TLS), with Asio and the router's own
// HTTP parser (src/http). One thread: the caller's.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "app/bench_request.h"
#include "core/status.h"

namespace semrouter::app {

struct ClientOptions {
  Endpoint endpoint;
  int concurrency = 4;
  double timeout_s = 300; // per request, connecting included
  std::string ca_file;    // https: trust these CAs instead of the system store
  std::vector<std::pair<std::string, std::string>> headers; // sent with every request
};

// Called on the caller's thread as each request finishes (in completion order): its index, what
// came back, and the time from the request's first byte written to its last byte read
// (connecting not included).
using RequestDone = std::function<void(size_t index, ResponseOutcome outcome, double latency_ms)>;

// Sends every body and returns when all have finished. `tick` is called every `tick_s` while
// requests run (for a progress display). Failures of single requests are outcomes, not errors;
// the error cases are the host not resolving and the TLS setup (the CA file) failing.
core::Status run_requests(const ClientOptions& options, const std::vector<std::string>& bodies,
                          const RequestDone& done, const std::function<void()>& tick,
                          double tick_s);

} // namespace semrouter::app
