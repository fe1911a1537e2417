// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header parsed and
// written, and the ids of new traces and spans from a fast per-thread generator.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace semrouter::trace {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

// The sampled bit of trace-flags.
constexpr uint8_t kSampledFlag = 0x01;

// What a `traceparent` header carries.
struct TraceParent {
  TraceId trace_id{};
  SpanId parent_id{};
  uint8_t flags = 0;
  bool sampled() const { return (flags & kSampledFlag) != 0; }
};

// Parses a `traceparent` value: version 00 is exactly 55 characters
// (`00-<32 hex>-<16 hex>-<2 hex>`, lower-case hex), with neither id all zeros. A higher version
// is read by its first four fields as the spec asks (longer values must continue with '-');
// version ff is invalid. nullopt: invalid, and the caller starts a new trace.
std::optional<TraceParent> parse_traceparent(std::string_view value);

// `00-<trace id>-<span id>-<flags>`.
std::string format_traceparent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags);

// Lower-case hex of an id.
std::string to_hex(const TraceId& id);
std::string to_hex(const SpanId& id);
void append_hex(std::string& out, const uint8_t* bytes, size_t n);

// Random, never all-zero ids from this thread's generator (xoshiro256**, seeded once per thread
// from std::random_device). Thread-safe: each thread has its own state, no lock.
TraceId new_trace_id();
SpanId new_span_id();

// Trace-id ratio sampling (as OpenTelemetry's TraceIdRatioBased): the trace is sampled when its
// last 8 bytes, read as a big-endian integer, fall below ratio × 2^64. Deterministic per trace
// id, so every service with the same ratio agrees.
bool sample_by_ratio(const TraceId& id, double ratio);

} // namespace semrouter::trace
