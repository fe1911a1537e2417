#include "dashboard/dashboard.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include "core/query.h"
#include "core/strings.h"
#include "dashboard/assets.h"
#include "dashboard/config_view.h"
#include "openai/errors.h"
#include "pipeline/exchange.h"

namespace semrouter::dashboard {
namespace {

using nlohmann::json;

constexpr std::string_view kApiPrefix = "/api/v1/dashboard/";
constexpr std::string_view kEventsPath = "/api/v1/dashboard/events";
constexpr std::string_view kAssetPrefix = "/ui/";
constexpr std::string_view kBasePlaceholder = "%BASE%";
constexpr std::string_view kTokenPlaceholder = "%TOKEN_REQUIRED%";
constexpr size_t kDefaultBacklog = 100;   // decisions a new stream starts with
constexpr size_t kDefaultDecisions = 100; // GET .../decisions without ?limit
constexpr size_t kMaxEventsPerPoll = 256; // one poll's events at most (the next poll goes on)
constexpr uint32_t kStreamRetryMs = 3000; // EventSource-style reconnect hint
constexpr double kLatencyQuantiles[] = {0.5, 0.95, 0.99};

// The pages run only their own scripts and talk only to this port. uPlot sizes its elements
// through the CSSOM, which style-src does not restrict; 'unsafe-inline' for styles covers the
// style attributes it writes in its legend.
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' "
    "data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Rounds to `digits` decimals (so JSON shows 19.9, not 19.900000000000002).
double round_to(double v, int digits) {
  const double p = std::pow(10.0, digits);
  return std::round(v * p) / p;
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Reply json_reply(std::string body, int status = 200) {
  Reply r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  r.headers = {{"cache-control", "no-store"}, {"x-content-type-options", "nosniff"}};
  return r;
}

Reply error_reply(const openai::ApiError& e,
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
  Reply r = json_reply(openai::error_body(e), e.status);
  for (auto& h : headers)
    r.headers.push_back(std::move(h));
  return r;
}

// An unsigned query parameter: `def` when absent, nullopt when present but not a number.
std::optional<uint64_t> query_u64(std::string_view query, std::string_view name, uint64_t def) {
  auto v = core::query_param(query, name);
  if (!v)
    return def;
  uint64_t n = 0;
  if (v->empty() || v->size() > 18)
    return std::nullopt;
  for (char c : *v) {
    if (c < '0' || c > '9')
      return std::nullopt;
    n = n * 10 + uint64_t(c - '0');
  }
  return n;
}

json record_json(const pipeline::ActivityRecord& r, bool show_prompts) {
  auto opt = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json j = {{"seq", r.seq},
            {"time", r.unix_ms},
            {"tenant", opt(r.tenant)},
            {"decision", opt(r.decision)},
            {"model", opt(r.model)},
            {"fallback", opt(r.fallback)},
            {"reasoning", opt(r.reasoning)},
            {"confidence", round_to(r.confidence, 3)},
            {"cache", opt(r.cache)},
            {"pii", opt(r.pii)},
            {"blocked", r.blocked},
            {"session", opt(r.session)},
            {"stream", r.stream},
            {"status", r.status},
            {"error", opt(r.error)},
            {"latency_ms", round_to(r.latency_ms, 2)},
            {"ttft_ms", r.ttft_ms < 0 ? json(nullptr) : json(round_to(r.ttft_ms, 2))},
            {"route_us", round_to(r.route_us, 1)},
            {"prompt_tokens", r.prompt_tokens},
            {"completion_tokens", r.completion_tokens},
            {"reasoning_tokens", r.reasoning_tokens},
            {"cost", round_to(r.cost, 7)},
            {"signals", r.signals}};
  if (show_prompts)
    j["prompt"] = opt(r.prompt);
  return j;
}

std::string event_text(const pipeline::ActivityRecord& r, bool show_prompts) {
  std::string out = "id: " + std::to_string(r.seq) + "\nevent: decision\ndata: ";
  out += dump(record_json(r, show_prompts));
  out += "\n\n";
  return out;
}

// A quantile for a chart: null where the bucket has no sample.
json quantile_json(const pipeline::LatencyHistogram& h, double q) {
  const double v = pipeline::histogram_quantile(h, q);
  return v < 0 ? json(nullptr) : json(round_to(v, 2));
}

std::string quantile_key(double q) {
  return "p" + std::to_string(int(std::lround(q * 100)));
}

// The traffic history as columns (one array per series, aligned with `t`), what uPlot draws.
json traffic_json(const pipeline::TrafficHistory& h, int64_t now_ms) {
  const size_t n = h.buckets.size();
  json t = json::array(), requests = json::array(), rps = json::array(), errors = json::array(),
       client_errors = json::array(), aborted = json::array(), fallbacks = json::array(),
       cache_hits = json::array(), cache_misses = json::array(), blocked = json::array(),
       pii = json::array(), streamed = json::array();
  json latency = json::object(), ttft = json::object();
  for (double q : kLatencyQuantiles) {
    latency[quantile_key(q)] = json::array();
    ttft[quantile_key(q)] = json::array();
  }
  struct Series {
    std::vector<double> requests, tokens, prompt_tokens, completion_tokens, cost, errors;
  };
  std::map<std::string, Series> models, decisions;
  auto series = [&](std::map<std::string, Series>& m, const std::string& name) -> Series& {
    Series& s = m[name];
    if (s.requests.empty()) {
      for (auto* v :
           {&s.requests, &s.tokens, &s.prompt_tokens, &s.completion_tokens, &s.cost, &s.errors})
        v->assign(n, 0.0);
    }
    return s;
  };
  std::array<std::vector<double>, pipeline::kSignalTypes.size()> sig_mean, sig_max;
  pipeline::LatencyHistogram all_latency{}, all_ttft{};
  uint64_t total_requests = 0, total_errors = 0, total_fallbacks = 0, total_hits = 0,
           total_misses = 0, total_blocked = 0, total_tokens = 0;
  double total_cost = 0;
  const double bucket_s = double(h.bucket_s);
  for (size_t i = 0; i < n; ++i) {
    const pipeline::TrafficBucket& b = h.buckets[i];
    t.push_back(b.start_ms / 1000);
    requests.push_back(b.requests);
    // The current bucket is partly over: its rate is over the time so far.
    const double elapsed =
        i + 1 == n ? std::clamp(double(now_ms - b.start_ms) / 1000.0, 1.0, bucket_s) : bucket_s;
    rps.push_back(round_to(b.requests / elapsed, 3));
    errors.push_back(b.errors);
    client_errors.push_back(b.client_errors);
    aborted.push_back(b.aborted);
    fallbacks.push_back(b.fallbacks);
    cache_hits.push_back(b.cache_hits);
    cache_misses.push_back(b.cache_misses);
    blocked.push_back(b.blocked);
    pii.push_back(b.pii);
    streamed.push_back(b.streamed);
    for (double q : kLatencyQuantiles) {
      latency[quantile_key(q)].push_back(quantile_json(b.latency, q));
      ttft[quantile_key(q)].push_back(quantile_json(b.ttft, q));
    }
    for (size_t k = 0; k < all_latency.size(); ++k) {
      all_latency[k] += b.latency[k];
      all_ttft[k] += b.ttft[k];
    }
    total_requests += b.requests;
    total_errors += b.errors;
    total_fallbacks += b.fallbacks;
    total_hits += b.cache_hits;
    total_misses += b.cache_misses;
    total_blocked += b.blocked;
    auto add = [&](std::map<std::string, Series>& m, const pipeline::NameTotals& x) {
      if (x.name >= h.names.size())
        return;
      Series& s = series(m, h.names[x.name]);
      s.requests[i] = x.requests;
      s.errors[i] = x.errors;
      s.prompt_tokens[i] = double(x.prompt_tokens);
      s.completion_tokens[i] = double(x.completion_tokens);
      s.tokens[i] = double(x.prompt_tokens + x.completion_tokens);
      s.cost[i] = round_to(x.cost, 7);
    };
    for (const auto& x : b.models) {
      add(models, x);
      total_tokens += x.prompt_tokens + x.completion_tokens;
      total_cost += x.cost;
    }
    for (const auto& x : b.decisions)
      add(decisions, x);
    for (size_t k = 0; k < pipeline::kSignalTypes.size(); ++k) {
      const pipeline::SignalTotals& s = b.signals[k];
      if (s.count == 0 && sig_mean[k].empty())
        continue;
      if (sig_mean[k].empty()) {
        sig_mean[k].assign(n, -1);
        sig_max[k].assign(n, -1);
      }
      if (s.count > 0) {
        sig_mean[k][i] = round_to(s.sum_us / s.count, 2);
        sig_max[k][i] = round_to(s.max_us, 2);
      }
    }
  }
  auto series_json = [](const std::map<std::string, Series>& m) {
    json out = json::object();
    for (const auto& [name, s] : m)
      out[name] = {{"requests", s.requests},
                   {"errors", s.errors},
                   {"tokens", s.tokens},
                   {"prompt_tokens", s.prompt_tokens},
                   {"completion_tokens", s.completion_tokens},
                   {"cost", s.cost}};
    return out;
  };
  auto nulls = [](const std::vector<double>& v) {
    json a = json::array();
    for (double x : v)
      a.push_back(x < 0 ? json(nullptr) : json(x));
    return a;
  };
  json signals = json::object();
  for (size_t k = 0; k < pipeline::kSignalTypes.size(); ++k)
    if (!sig_mean[k].empty())
      signals[std::string(pipeline::kSignalTypes[k])] = {{"mean_us", nulls(sig_mean[k])},
                                                         {"max_us", nulls(sig_max[k])}};
  json totals = {{"requests", total_requests},   {"errors", total_errors},
                 {"fallbacks", total_fallbacks}, {"cache_hits", total_hits},
                 {"cache_misses", total_misses}, {"blocked", total_blocked},
                 {"tokens", total_tokens},       {"cost", round_to(total_cost, 7)}};
  for (double q : kLatencyQuantiles) {
    totals["latency_" + quantile_key(q) + "_ms"] = quantile_json(all_latency, q);
    totals["ttft_" + quantile_key(q) + "_ms"] = quantile_json(all_ttft, q);
  }
  return {{"bucket_s", h.bucket_s},
          {"now_ms", now_ms},
          {"t", std::move(t)},
          {"requests", std::move(requests)},
          {"rps", std::move(rps)},
          {"errors", std::move(errors)},
          {"client_errors", std::move(client_errors)},
          {"aborted", std::move(aborted)},
          {"fallbacks", std::move(fallbacks)},
          {"cache_hits", std::move(cache_hits)},
          {"cache_misses", std::move(cache_misses)},
          {"blocked", std::move(blocked)},
          {"pii", std::move(pii)},
          {"streamed", std::move(streamed)},
          {"latency_ms", std::move(latency)},
          {"ttft_ms", std::move(ttft)},
          {"models", series_json(models)},
          {"decisions", series_json(decisions)},
          {"signals", std::move(signals)},
          {"totals", std::move(totals)}};
}

} // namespace

Dashboard::Dashboard(pipeline::Runtime& runtime) : rt_(runtime) {
  if (const Asset* index = find_asset("index.html")) {
    index_html_ = std::string(index->data);
    const std::string base = std::string(kAssetPrefix) + std::string(assets_version());
    for (size_t at = index_html_.find(kBasePlaceholder); at != std::string::npos;
         at = index_html_.find(kBasePlaceholder, at + base.size()))
      index_html_.replace(at, kBasePlaceholder.size(), base);
  }
}

Dashboard::~Dashboard() = default;

bool Dashboard::enabled() const {
  return rt_.store.get()->config->dashboard.enabled;
}

std::optional<Reply> Dashboard::handle(const Request& req) {
  const std::string_view path = req.path;
  const bool page = path == "/" || path == "/ui" || path == "/ui/" || path == "/index.html";
  const bool asset = !page && path.starts_with(kAssetPrefix);
  const bool api = path.starts_with(kApiPrefix);
  if (!page && !asset && !api)
    return std::nullopt;
  auto snap = rt_.store.get();
  if (!snap->config->dashboard.enabled)
    return std::nullopt; // the gateway's 404
  if (req.method != "GET")
    return error_reply(openai::method_not_allowed(req.method, path, "GET"), {{"allow", "GET"}});
  if (page)
    return index_page(*snap);
  if (asset)
    return asset_file(path.substr(kAssetPrefix.size()));
  const std::string_view name = path.substr(kApiPrefix.size());
  if (name == "info")
    return info(*snap);
  if (name == "decisions")
    return decisions(*snap, req.query);
  if (name == "traffic")
    return traffic(req.query);
  if (name == "config")
    return config_view(*snap);
  return error_reply(openai::not_found_path(path));
}

bool Dashboard::is_public(std::string_view path) {
  return path == "/" || path == "/ui" || path == "/index.html" || path.starts_with(kAssetPrefix);
}

Reply Dashboard::index_page(const pipeline::Snapshot& snap) const {
  Reply r;
  r.content_type = "text/html; charset=utf-8";
  r.body = index_html_;
  // Whether to ask for the admin token before the first call (the page holds no data itself).
  if (auto at = r.body.find(kTokenPlaceholder); at != std::string::npos)
    r.body.replace(at, kTokenPlaceholder.size(),
                   snap.config->auth.admin_token.empty() ? "false" : "true");
  r.headers = {{"cache-control", "no-cache"},
               {"content-security-policy", std::string(kContentSecurityPolicy)},
               {"x-content-type-options", "nosniff"},
               {"x-frame-options", "DENY"},
               {"referrer-policy", "no-referrer"}};
  return r;
}

Reply Dashboard::asset_file(std::string_view rest) const {
  // /ui/<version>/<file>: the version in the URL lets the current files be cached for good; a
  // page of an older build still gets the files, uncached.
  const size_t slash = rest.find('/');
  const std::string_view version = rest.substr(0, slash);
  const std::string_view file =
      slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  const Asset* a = file.empty() || file == "index.html" ? nullptr : find_asset(file);
  if (!a)
    return error_reply(openai::not_found_path(std::string(kAssetPrefix) + std::string(rest)));
  Reply r;
  r.content_type = std::string(a->content_type);
  r.body = std::string(a->data);
  r.headers = {{"cache-control",
                version == assets_version() ? "public, max-age=31536000, immutable" : "no-cache"},
               {"x-content-type-options", "nosniff"}};
  return r;
}

Reply Dashboard::info(const pipeline::Snapshot& snap) const {
  const config::Config& c = *snap.config;
  json models = json::array(), decisions = json::array();
  for (const auto& m : c.models)
    models.push_back(m.name);
  for (const auto& d : c.decisions)
    decisions.push_back(d.name);
  decisions.push_back(c.default_decision_name);
  decisions.push_back("passthrough");
  const auto& o = rt_.activity.options();
  return json_reply(dump({{"generation", snap.generation},
                          {"assets", assets_version()},
                          {"show_prompts", c.dashboard.show_prompts},
                          {"recent", o.capacity},
                          {"bucket_s", o.bucket_s},
                          {"history_s", o.history_s},
                          {"started_ms", o.started_ms},
                          {"next_seq", rt_.activity.next_seq()},
                          {"auto_model_names", c.auto_model_names},
                          {"models", std::move(models)},
                          {"decisions", std::move(decisions)}}));
}

Reply Dashboard::decisions(const pipeline::Snapshot& snap, std::string_view query) const {
  const size_t capacity = rt_.activity.options().capacity;
  auto limit = query_u64(query, "limit", kDefaultDecisions);
  auto since = query_u64(query, "since", 0);
  if (!limit || *limit == 0)
    return error_reply(openai::invalid_request("limit: must be a whole number above 0", "limit"));
  if (!since)
    return error_reply(openai::invalid_request("since: must be a whole number (a seq)", "since"));
  const size_t n = std::min<uint64_t>(*limit, capacity);
  std::vector<pipeline::ActivityRecord> records;
  uint64_t missed = 0;
  if (*since > 0) {
    uint64_t cursor = *since;
    records = rt_.activity.since(cursor, n, &missed);
  } else {
    records = rt_.activity.latest(n);
  }
  const bool prompts = snap.config->dashboard.show_prompts;
  json list = json::array();
  for (const auto& r : records)
    list.push_back(record_json(r, prompts));
  return json_reply(dump({{"next", rt_.activity.next_seq()},
                          {"capacity", capacity},
                          {"missed", missed},
                          {"show_prompts", prompts},
                          {"decisions", std::move(list)}}));
}

Reply Dashboard::traffic(std::string_view query) const {
  const auto& o = rt_.activity.options();
  auto seconds = query_u64(query, "seconds", o.history_s);
  if (!seconds || *seconds == 0)
    return error_reply(
        openai::invalid_request("seconds: must be a whole number above 0", "seconds"));
  const int64_t now = unix_now_ms();
  const auto h = rt_.activity.history(now, uint32_t(std::min<uint64_t>(*seconds, o.history_s)));
  return json_reply(dump(traffic_json(h, now)));
}

Reply Dashboard::config_view(const pipeline::Snapshot& snap) const {
  const std::string masked = mask_secrets(snap.config->source);
  auto [previous, previous_generation] = rt_.store.previous();
  json prev = nullptr, diff = nullptr;
  if (previous) {
    const std::string before = mask_secrets(previous->source);
    prev = {{"generation", previous_generation}, {"config", before}};
    diff = json::array();
    size_t added = 0, removed = 0;
    for (const auto& l : line_diff(before, masked)) {
      diff.push_back({std::string(1, l.op), l.text});
      added += l.op == '+';
      removed += l.op == '-';
    }
    prev["added"] = added;
    prev["removed"] = removed;
  }
  const std::string last_error = rt_.store.last_error();
  return json_reply(dump({{"generation", snap.generation},
                          {"reloads_ok", rt_.store.reloads_ok()},
                          {"reloads_failed", rt_.store.reloads_failed()},
                          {"last_error", last_error.empty() ? json(nullptr) : json(last_error)},
                          {"config", masked},
                          {"previous", std::move(prev)},
                          {"diff", std::move(diff)}}));
}

bool Dashboard::is_stream(std::string_view path) const {
  return path == kEventsPath && enabled();
}

std::string Dashboard::stream_open(const Request& req, uint64_t& cursor) {
  const uint64_t next = rt_.activity.next_seq();
  const size_t capacity = rt_.activity.options().capacity;
  const uint64_t since = query_u64(req.query, "since", 0).value_or(0);
  const uint64_t backlog = std::min<uint64_t>(
      query_u64(req.query, "backlog", kDefaultBacklog).value_or(kDefaultBacklog), capacity);
  cursor = since > 0 ? since : next > backlog ? next - backlog : 1;
  std::string out = "retry: " + std::to_string(kStreamRetryMs) + "\n\n";
  out +=
      "event: hello\ndata: " + dump({{"next", next}, {"generation", rt_.store.get()->generation}}) +
      "\n\n";
  out += stream_next(cursor);
  return out;
}

std::string Dashboard::stream_next(uint64_t& cursor) {
  uint64_t missed = 0;
  auto records = rt_.activity.since(cursor, kMaxEventsPerPoll, &missed);
  if (records.empty() && missed == 0)
    return {};
  const bool prompts = rt_.store.get()->config->dashboard.show_prompts;
  std::string out;
  if (missed > 0)
    out += "event: gap\ndata: {\"missed\":" + std::to_string(missed) + "}\n\n";
  for (const auto& r : records)
    out += event_text(r, prompts);
  return out;
}

} // namespace semrouter::dashboard
