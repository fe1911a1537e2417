// A finished span, as the exporter sends it, and its OTLP/JSON encoding.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "trace/context.h"

namespace semrouter::trace {

// OTLP's SpanKind values.
enum class SpanKind : int { Internal = 1, Server = 2, Client = 3 };
// OTLP's status codes.
enum class SpanStatus : int { Unset = 0, Ok = 1, Error = 2 };

using AttributeValue = std::variant<std::string, int64_t, double, bool>;

struct Attribute {
  std::string key;
  AttributeValue value;
};

struct Span {
  TraceId trace_id{};
  SpanId span_id{};
  SpanId parent_id{}; // all zeros: a root span
  bool has_parent = false;
  std::string trace_state; // the client's tracestate, as received
  std::string name;
  SpanKind kind = SpanKind::Internal;
  uint64_t start_unix_ns = 0, end_unix_ns = 0;
  SpanStatus status = SpanStatus::Unset;
  std::string status_message;
  std::vector<Attribute> attributes;

  void set(std::string key, std::string_view v) {
    attributes.push_back({std::move(key), std::string(v)});
  }
  void set(std::string key, const char* v) { set(std::move(key), std::string_view(v)); }
  void set(std::string key, int64_t v) { attributes.push_back({std::move(key), v}); }
  void set(std::string key, int v) { attributes.push_back({std::move(key), int64_t(v)}); }
  void set(std::string key, uint64_t v) { attributes.push_back({std::move(key), int64_t(v)}); }
  void set(std::string key, double v) { attributes.push_back({std::move(key), v}); }
  void set(std::string key, bool v) { attributes.push_back({std::move(key), v}); }
};

// The resource every span of this process shares.
struct Resource {
  std::string service_name = "semrouter";
  std::string service_version;
};

// An ExportTraceServiceRequest in OTLP's JSON mapping: resourceSpans → scopeSpans → spans, ids
// as lower-case hex, times as decimal strings of unix nanoseconds, enums as integers, attribute
// values typed (stringValue, intValue as a string, doubleValue, boolValue).
std::string encode_otlp_json(const Resource& resource, const std::vector<Span>& spans);

} // namespace semrouter::trace
