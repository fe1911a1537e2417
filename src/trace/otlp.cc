#include <cmath>

#include <fmt/format.h>

#include "core/strings.h"
#include "trace/span.h"

namespace semrouter::trace {

namespace {

void append_value(std::string& out, const AttributeValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    out += "{\"stringValue\":";
    core::append_json_string(out, *s);
  } else if (const auto* i = std::get_if<int64_t>(&v)) {
    // OTLP/JSON: 64-bit integers are strings
    out += fmt::format("{{\"intValue\":\"{}\"", *i);
  } else if (const auto* d = std::get_if<double>(&v)) {
    // JSON has no NaN or infinity: they go as strings, as the proto3 JSON mapping says
    if (std::isfinite(*d))
      out += fmt::format("{{\"doubleValue\":{}", *d);
    else
      out += std::isnan(*d)
                 ? "{\"doubleValue\":\"NaN\""
                 : (*d > 0 ? "{\"doubleValue\":\"Infinity\"" : "{\"doubleValue\":\"-Infinity\"");
  } else {
    out += std::get<bool>(v) ? "{\"boolValue\":true" : "{\"boolValue\":false";
  }
  out += '}';
}

void append_attributes(std::string& out, const std::vector<Attribute>& attributes) {
  out += "\"attributes\":[";
  for (size_t i = 0; i < attributes.size(); ++i) {
    if (i)
      out += ',';
    out += "{\"key\":";
    core::append_json_string(out, attributes[i].key);
    out += ",\"value\":";
    append_value(out, attributes[i].value);
    out += '}';
  }
  out += ']';
}

void append_span(std::string& out, const Span& s) {
  out += "{\"traceId\":\"";
  append_hex(out, s.trace_id.data(), s.trace_id.size());
  out += "\",\"spanId\":\"";
  append_hex(out, s.span_id.data(), s.span_id.size());
  out += '"';
  if (s.has_parent) {
    out += ",\"parentSpanId\":\"";
    append_hex(out, s.parent_id.data(), s.parent_id.size());
    out += '"';
  }
  if (!s.trace_state.empty()) {
    out += ",\"traceState\":";
    core::append_json_string(out, s.trace_state);
  }
  out += ",\"name\":";
  core::append_json_string(out, s.name);
  out += fmt::format(",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",",
                     int(s.kind), s.start_unix_ns, s.end_unix_ns);
  append_attributes(out, s.attributes);
  out += fmt::format(",\"status\":{{\"code\":{}", int(s.status));
  if (!s.status_message.empty()) {
    out += ",\"message\":";
    core::append_json_string(out, s.status_message);
  }
  out += "}}";
}

} // namespace

std::string encode_otlp_json(const Resource& resource, const std::vector<Span>& spans) {
  std::string out;
  out.reserve(256 + spans.size() * 600);
  out += "{\"resourceSpans\":[{\"resource\":{";
  std::vector<Attribute> attrs{{"service.name", resource.service_name}};
  if (!resource.service_version.empty())
    attrs.push_back({"service.version", resource.service_version});
  append_attributes(out, attrs);
  out += "},\"scopeSpans\":[{\"scope\":{\"name\":\"semrouter\"},\"spans\":[";
  for (size_t i = 0; i < spans.size(); ++i) {
    if (i)
      out += ',';
    append_span(out, spans[i]);
  }
  out += "]}]}]}";
  return out;
}

} // namespace semrouter::trace
