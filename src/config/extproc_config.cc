// `listeners.extproc`, the `extproc` section and `server.mode`.
#include <filesystem>

#include "config/yaml_node.h"

namespace semrouter::config::detail {
namespace {

// A header name as Envoy accepts it in a header mutation: lower case, token characters.
void check_header_name(const Node& n, const std::string& name, bool allow_empty) {
  if (name.empty()) {
    if (allow_empty)
      return;
    fail(n.path(), "must not be empty");
  }
  for (char ch : name) {
    const bool ok =
        (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
    if (!ok)
      fail(n.path(),
           "\"" + name + "\" is not a lower-case header name (letters, digits, '-', '_', '.')");
  }
}

std::string readable_file(const Node& n) {
  std::string path = n.as_string();
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_regular_file(path, ec))
    fail(n.path(), "\"" + path + "\" is not a readable file");
  return path;
}

} // namespace

void parse_extproc(const Node& root, Config& c) {
  ExtProcConfig& e = c.extproc;
  if (root.has("listeners") && root["listeners"].has("extproc")) {
    Node l = root["listeners"]["extproc"];
    e.enabled = true;
    e.listener = parse_listener(l, e.listener, /*allow_tls=*/true);
    if (l.has("tls")) {
      Node t = l["tls"];
      t.require_map();
      t.check_keys({"cert_file", "key_file", "ca_file"});
      if (!t.has("cert_file") || !t.has("key_file"))
        fail(t.path(), "needs both cert_file and key_file (ca_file is optional: with it, clients "
                       "must present a certificate it signed)");
      e.tls_cert_file = readable_file(t["cert_file"]);
      e.tls_key_file = readable_file(t["key_file"]);
      if (t.has("ca_file"))
        e.tls_ca_file = readable_file(t["ca_file"]);
    }
  }
  if (root.has("extproc")) {
    Node x = root["extproc"];
    x.require_map();
    x.check_keys({"model_header", "backend_header", "bypass_header", "observability_mode",
                  "max_body_bytes", "threads"});
    e.model_header = core::ascii_lower(x.get_string("model_header", e.model_header));
    check_header_name(x["model_header"], e.model_header, false);
    e.backend_header = core::ascii_lower(x.get_string("backend_header", e.backend_header));
    check_header_name(x["backend_header"], e.backend_header, false);
    e.bypass_header = core::ascii_lower(x.get_string("bypass_header", e.bypass_header));
    check_header_name(x["bypass_header"], e.bypass_header, true);
    e.observability_mode = x.get_bool("observability_mode", e.observability_mode);
    e.max_body_bytes = static_cast<uint64_t>(x.get_int("max_body_bytes", 0, 0, 1LL << 32));
    e.threads = static_cast<uint32_t>(x.get_int("threads", 0, 1, 256));
  }
  if (e.threads == 0)
    e.threads = c.server.workers;
  if (e.max_body_bytes == 0)
    e.max_body_bytes = c.server.max_body_bytes;

  c.mode = e.enabled ? ServeMode::Both : ServeMode::Gateway;
  if (root.has("server") && root["server"].has("mode")) {
    Node s = root["server"];
    c.mode = s.get_choice<ServeMode>("mode", "gateway",
                                     {{"gateway", ServeMode::Gateway},
                                      {"extproc", ServeMode::ExtProc},
                                      {"both", ServeMode::Both}});
    if (c.mode != ServeMode::Gateway && !e.enabled)
      fail(s["mode"].path(), fmt::format("\"{}\" needs an ext_proc listener: add "
                                         "listeners.extproc {{address, port}}",
                                         s["mode"].as_string()));
  }
}

} // namespace semrouter::config::detail
