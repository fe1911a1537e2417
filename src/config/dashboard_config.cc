// The `dashboard` section.
#include "config/yaml_node.h"

namespace semrouter::config::detail {

namespace {
// Bounds the history's memory: each bucket holds two latency histograms and per-model totals.
constexpr int64_t kMaxBuckets = 8640;
} // namespace

void parse_dashboard(const Node& root, Config& c) {
  if (!root.has("dashboard"))
    return;
  DashboardConfig& d = c.dashboard;
  Node n = root["dashboard"];
  if (n.is_scalar()) { // `dashboard: false` turns it off, `dashboard: true` keeps the defaults
    d.enabled = n.as_bool();
    return;
  }
  n.require_map();
  n.check_keys(
      {"enabled", "show_prompts", "prompt_max_chars", "recent", "bucket_s", "history_minutes"});
  d.enabled = n.get_bool("enabled", d.enabled);
  d.show_prompts = n.get_bool("show_prompts", d.show_prompts);
  d.prompt_max_chars =
      static_cast<uint32_t>(n.get_int("prompt_max_chars", d.prompt_max_chars, 16, 65536));
  d.recent = static_cast<uint32_t>(n.get_int("recent", d.recent, 10, 100000));
  d.bucket_s = static_cast<uint32_t>(n.get_int("bucket_s", d.bucket_s, 1, 300));
  d.history_minutes =
      static_cast<uint32_t>(n.get_int("history_minutes", d.history_minutes, 1, 1440));
  const int64_t buckets = int64_t(d.history_minutes) * 60 / d.bucket_s;
  if (buckets > kMaxBuckets)
    fail(n["bucket_s"].defined() ? n["bucket_s"].path() : n["history_minutes"].path(),
         fmt::format("{} minutes in {} s buckets is {} buckets, more than {}: use longer buckets "
                     "or a shorter history",
                     d.history_minutes, d.bucket_s, buckets, kMaxBuckets));
  if (int64_t(d.history_minutes) * 60 < d.bucket_s)
    fail(n["bucket_s"].path(),
         fmt::format("is longer than the history ({} minutes)", d.history_minutes));
}

} // namespace semrouter::config::detail
