// The `tracing` and `access_log` sections.
#include "config/yaml_node.h"

namespace semrouter::config::detail {

namespace {

bool valid_header_name(std::string_view name) {
  if (name.empty())
    return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'))
      return false;
  return true;
}

} // namespace

void parse_observability(const Node& root, Config& c) {
  if (root.has("tracing")) {
    TracingConfig& t = c.tracing;
    Node n = root["tracing"];
    if (n.is_scalar()) {
      t.enabled = n.as_bool();
    } else {
      n.require_map();
      n.check_keys({"enabled", "endpoint", "service_name", "sample_ratio", "batch_size",
                    "flush_interval_ms", "queue_size", "timeout_ms", "headers"});
      t.enabled = n.get_bool("enabled", true); // a tracing section turns tracing on
      t.endpoint = n.get_string("endpoint", t.endpoint);
      if (!t.endpoint.starts_with("http://"))
        fail(n["endpoint"].path(),
             "must be an http:// URL of an OTLP/HTTP collector (https is not supported: send to "
             "a local collector or agent)");
      if (t.endpoint.size() <= 7 || t.endpoint[7] == '/' || t.endpoint[7] == ':')
        fail(n["endpoint"].path(), "has no host");
      t.service_name = n.get_string("service_name", t.service_name);
      if (t.service_name.empty())
        fail(n["service_name"].path(), "must not be empty");
      t.sample_ratio = n.get_double("sample_ratio", t.sample_ratio, 0.0, 1.0);
      t.batch_size = static_cast<uint32_t>(n.get_int("batch_size", t.batch_size, 1, 100000));
      t.flush_interval_ms =
          static_cast<uint32_t>(n.get_int("flush_interval_ms", t.flush_interval_ms, 10, 600000));
      t.queue_size = static_cast<uint32_t>(n.get_int("queue_size", t.queue_size, 1, 10000000));
      t.timeout_ms = static_cast<uint32_t>(n.get_int("timeout_ms", t.timeout_ms, 10, 600000));
      if (t.queue_size < t.batch_size)
        fail(n["queue_size"].path(),
             fmt::format("must hold at least one batch ({} spans)", t.batch_size));
      if (n.has("headers")) {
        Node h = n["headers"];
        h.require_map();
        for (const std::string& k : h.keys()) {
          if (!valid_header_name(k))
            fail(h[k].path(), "is not a valid header name");
          std::string v = h[k].as_string();
          for (char ch : v)
            if (ch == '\r' || ch == '\n' || static_cast<unsigned char>(ch) < 0x20)
              fail(h[k].path(), "contains a control character");
          t.headers.emplace_back(k, std::move(v));
        }
      }
    }
  }
  if (root.has("access_log")) {
    AccessLogConfig& a = c.access_log;
    Node n = root["access_log"];
    if (n.is_scalar()) {
      a.enabled = n.as_bool();
      return;
    }
    n.require_map();
    n.check_keys({"enabled", "format", "path"});
    a.enabled = n.get_bool("enabled", true); // an access_log section turns it on
    a.format = n.get_choice<AccessLogFormat>(
        "format", "json", {{"json", AccessLogFormat::Json}, {"text", AccessLogFormat::Text}});
    a.path = n.get_string("path", a.path);
    if (a.path.empty())
      fail(n["path"].path(), "must not be empty (stdout, stderr or a file)");
  }
}

} // namespace semrouter::config::detail
