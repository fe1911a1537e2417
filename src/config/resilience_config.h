// The `resilience` section: how the gateway treats failing and overloaded upstreams (retries and
// their budget, passive outlier detection, active health checks, circuit breakers) and how much
// work it admits at once. Parsed by resilience_config.cc; enforced by pipeline/upstream_health.h
// and the gateway.
#pragma once

#include <cstdint>
#include <string>

namespace semrouter::config {

// Retries of one request, only before any byte of the answer reached the client.
struct RetryConfig {
  uint32_t max_retries = 2; // attempts after the first (across backends and fallback models)
  // Full-jitter exponential backoff before retrying the same backend: a random wait in
  // [0, min(max_backoff_ms, backoff_ms * 2^n)]. A retry on another backend goes at once.
  uint32_t backoff_ms = 25;
  uint32_t max_backoff_ms = 1000;
  // A 429/503 whose retry-after asks for longer than this is answered as is, not retried.
  uint32_t max_retry_after_ms = 5000;
  // Retries in flight stay within this share of the requests in flight (Envoy's retry budget),
  // but at least `min_retry_concurrency`, so retries never multiply an outage's load.
  double budget_percent = 20;
  uint32_t min_retry_concurrency = 3;
};

// Passive outlier detection per backend.
struct OutlierConfig {
  uint32_t consecutive_failures = 5; // connect failures, timeouts, resets, 5xx; 0: off
  uint32_t base_ejection_ms = 30000; // ejected for base * (times ejected), up to max
  uint32_t max_ejection_ms = 300000;
  double max_ejected_percent = 50; // of all backends (at least one may always be ejected)
};

// Active health checks: GET <path> on every backend, 2xx is healthy.
struct HealthCheckConfig {
  uint32_t interval_ms = 0; // 0: no active checks
  uint32_t timeout_ms = 1000;
  std::string path = "/health"; // a backend's health_check.path overrides it
  uint32_t unhealthy_threshold = 3;
  uint32_t healthy_threshold = 2;
};

// Per backend, per process. A limit reached: the backend is skipped (the next one, then the
// fallback models), and with nothing left the client gets 503 with retry-after.
struct CircuitBreakerConfig {
  uint32_t max_connections = 1024; // open upstream connections (pooled idle ones included)
  uint32_t max_pending = 1024;     // requests waiting for a connection to be set up
  uint32_t max_requests = 1024;    // requests in flight
};

// Admission: requests forwarded at once, process-wide (models may set their own max_concurrent).
// Beyond it a request waits in a bounded queue (higher decision priority first), and past the
// queue's bound or its wait it gets 503 (the global limit) or 429 (a model's) with retry-after.
struct LimitsConfig {
  uint32_t max_concurrent = 0; // 0: unlimited
  uint32_t max_queue = 256;    // waiting requests, all limits together; 0: no waiting
  uint32_t queue_timeout_ms = 5000;
  // A client's own bound on the wait, in milliseconds (the shorter of it and queue_timeout_ms).
  std::string deadline_header = "x-semrouter-deadline-ms";
};

struct ResilienceConfig {
  RetryConfig retries;
  OutlierConfig outlier;
  HealthCheckConfig health_checks;
  CircuitBreakerConfig circuit_breaker;
  LimitsConfig limits;
};

} // namespace semrouter::config
