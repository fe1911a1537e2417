// `semrouter bench`: replays a dataset against a router or any OpenAI-compatible endpoint, one
// configuration (model x reasoning) after the other, and reports per configuration and category.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "app/bench_client.h"
#include "app/bench_data.h"
#include "app/bench_report.h"
#include "app/bench_request.h"
#include "app/bench_svg.h"
#include "app/commands.h"
#include "config/config.h"
#include "core/strings.h"

namespace semrouter::app {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kTickSeconds = 0.25;
constexpr double kTtyRedrawSeconds = 0.1;
constexpr double kPlainLineSeconds = 2.0;
constexpr int kBarWidth = 24;

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "bench: %s\n", message.c_str());
  return code;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string duration_text(double s) {
  if (s < 60)
    return fmt::format("{:.0f}s", s);
  const auto total = static_cast<long>(s + 0.5);
  if (total < 3600)
    return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
}

// The progress display on stderr: a bar redrawn in place on a terminal, a plain line every few
// seconds (and a last one) otherwise, so logs and CI output stay readable.
class Progress {
public:
  Progress(bool enabled, bool tty, std::string label, size_t total)
      : enabled_(enabled), tty_(tty), label_(std::move(label)), total_(total), start_(Clock::now()),
        last_draw_(start_) {}

  void update(size_t done, size_t errors) {
    done_ = done;
    errors_ = errors;
    if (tty_ && seconds_since(last_draw_) >= kTtyRedrawSeconds)
      draw(false);
  }
  void tick() {
    if (tty_ || seconds_since(last_draw_) >= kPlainLineSeconds)
      draw(false);
  }
  void finish() { draw(true); }

private:
  void draw(bool final) {
    if (!enabled_)
      return;
    last_draw_ = Clock::now();
    const double elapsed = seconds_since(start_);
    const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0;
    std::string eta;
    if (final)
      eta = fmt::format("done in {:.1f}s", elapsed);
    else if (rate > 0)
      eta = "ETA " + duration_text(static_cast<double>(total_ - done_) / rate);
    else
      eta = "ETA -";
    std::string errors =
        errors_ ? fmt::format(", {} error{}", errors_, errors_ == 1 ? "" : "s") : std::string();
    const size_t pct = total_ ? done_ * 100 / total_ : 100;
    if (tty_) {
      const int filled = total_ ? static_cast<int>(done_ * kBarWidth / total_) : kBarWidth;
      std::string bar(static_cast<size_t>(filled), '#');
      bar.resize(kBarWidth, '.');
      std::fprintf(stderr, "\r\033[K%s [%s] %zu/%zu (%zu%%) %.1f req/s, %s%s%s", label_.c_str(),
                   bar.c_str(), done_, total_, pct, rate, eta.c_str(), errors.c_str(),
                   final ? "\n" : "");
    } else {
      std::fprintf(stderr, "%s: %zu/%zu (%zu%%) %.1f req/s, %s%s\n", label_.c_str(), done_, total_,
                   pct, rate, eta.c_str(), errors.c_str());
    }
    std::fflush(stderr);
  }

  bool enabled_;
  bool tty_;
  std::string label_;
  size_t total_;
  size_t done_ = 0, errors_ = 0;
  Clock::time_point start_, last_draw_;
};

core::StatusOr<std::vector<ReasoningChoice>> reasoning_choices(const std::vector<std::string>& in) {
  std::vector<ReasoningChoice> out;
  for (const auto& r : in) {
    if (r == "on")
      out.push_back(ReasoningChoice::On);
    else if (r == "off")
      out.push_back(ReasoningChoice::Off);
    else if (r == "unset")
      out.push_back(ReasoningChoice::Unset);
    else
      return core::make_error(
          core::ErrorCode::InvalidArgument,
          fmt::format("--reasoning: unknown value \"{}\" (known: on, off, unset)", r));
  }
  if (out.empty())
    out.push_back(ReasoningChoice::Unset);
  return out;
}

// Writes `text` to `path`, making its folder first.
core::Status write_file(const std::string& path, const std::string& text, const char* flag) {
  std::error_code ec;
  if (auto dir = std::filesystem::path(path).parent_path(); !dir.empty())
    std::filesystem::create_directories(dir, ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out || !(out << text) || !out.flush())
    return core::make_error(core::ErrorCode::Unavailable,
                            fmt::format("{}: cannot write {}", flag, path));
  return {};
}

} // namespace

int cmd_bench(const BenchArgs& args) {
  auto endpoint = parse_endpoint(args.target);
  if (!endpoint)
    return fail(2, endpoint.error().message);
  auto choices = reasoning_choices(args.reasoning);
  if (!choices)
    return fail(2, choices.error().message);

  std::shared_ptr<const config::Config> router_config;
  if (!args.config_path.empty()) {
    auto c = config::load_config_file(args.config_path);
    if (!c)
      return fail(2, "--config: " + c.error().message);
    router_config = *c;
  }
  PriceTable prices;
  if (!args.pricing.empty()) {
    auto p = load_price_file(args.pricing);
    if (!p)
      return fail(2, p.error().message);
    prices = std::move(*p);
  } else if (router_config) {
    prices = prices_from_config(*router_config);
  }

  ClientOptions client;
  client.endpoint = *endpoint;
  client.concurrency = args.concurrency;
  client.timeout_s = args.timeout_s;
  client.ca_file = args.ca_file;
  if (!args.api_key_env.empty()) {
    const char* key = std::getenv(args.api_key_env.c_str());
    if (!key || !*key)
      return fail(2, fmt::format("--api-key-env: environment variable {} is not set or empty",
                                 args.api_key_env));
    client.headers.emplace_back("Authorization", std::string("Bearer ") + key);
  }
  if (!args.use_cache)
    client.headers.emplace_back("Cache-Control", "no-store");
  for (const auto& h : args.headers) {
    size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0 || core::trim(h.substr(0, colon)).empty())
      return fail(2, fmt::format("--header: expected \"Name: value\", got \"{}\"", h));
    client.headers.emplace_back(std::string(core::trim(h.substr(0, colon))),
                                std::string(core::trim(h.substr(colon + 1))));
  }

  auto records = load_bench_records(args.data, args.limit);
  if (!records)
    return fail(2, "--data: " + records.error().message);

  std::vector<std::string> warnings;
  auto configurations = plan_configurations(args.models, *choices, router_config.get(),
                                            args.reasoning_family, warnings);
  if (!configurations)
    return fail(2, configurations.error().message);
  for (const auto& w : warnings)
    std::fprintf(stderr, "bench: warning: %s\n", w.c_str());

  RequestOptions request;
  request.stream = !args.no_stream;
  request.max_tokens = args.max_tokens;
  if (args.temperature >= 0)
    request.temperature = args.temperature;

  const bool tty = isatty(fileno(stderr)) != 0;
  BenchReport report;
  report.target = args.target;
  report.data = args.data;
  report.records = records->size();
  report.streamed = request.stream;
  report.concurrency = args.concurrency;
  report.warnings = warnings;
  const auto t0 = Clock::now();
  size_t answered = 0;
  for (size_t ci = 0; ci < configurations->size(); ++ci) {
    const BenchConfiguration& cfg = (*configurations)[ci];
    std::vector<std::string> bodies;
    bodies.reserve(records->size());
    for (const auto& rec : *records)
      bodies.push_back(build_request_body(rec, cfg, request));
    std::vector<RequestResult> results(records->size());
    Progress progress(!args.quiet, tty,
                      fmt::format("bench [{}/{}] {}", ci + 1, configurations->size(), cfg.label),
                      bodies.size());
    size_t done = 0, errors = 0;
    auto on_done = [&](size_t index, ResponseOutcome outcome, double latency_ms) {
      RequestResult& r = results[index];
      r.record = index;
      r.latency_ms = latency_ms;
      if (outcome.ok()) {
        r.grade = grade_answer((*records)[index], outcome.answer.content);
        ++answered;
      } else {
        r.grade.gradable = !(*records)[index].answer.empty();
        ++errors;
      }
      r.response = std::move(outcome);
      progress.update(++done, errors);
    };
    auto st = run_requests(
        client, bodies, on_done, [&] { progress.tick(); }, kTickSeconds);
    progress.finish();
    if (!st)
      return fail(1, st.error().message);
    report.configurations.push_back(summarize(cfg, *records, results, prices));
  }
  report.wall_s = seconds_since(t0);
  report.comparisons = compare(report.configurations);

  std::fputs(format_report(report).c_str(), stdout);
  std::fflush(stdout);

  if (!args.out_json.empty()) {
    if (auto st = write_file(args.out_json, report_json(report).dump(2) + "\n", "--out-json"); !st)
      return fail(1, st.error().message);
    std::fprintf(stderr, "bench: wrote %s\n", args.out_json.c_str());
  }
  if (!args.out_svg.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(args.out_svg, ec);
    if (ec)
      return fail(1, fmt::format("--out-svg: cannot create {}: {}", args.out_svg, ec.message()));
    const std::pair<const char*, std::string> charts[] = {
        {"accuracy-vs-tokens.svg", accuracy_vs_tokens_svg(report)},
        {"category-accuracy.svg", category_accuracy_svg(report)}};
    for (const auto& [name, svg] : charts) {
      if (svg.empty()) {
        std::fprintf(stderr, "bench: %s not written: no gradable answers\n", name);
        continue;
      }
      const std::string path = (std::filesystem::path(args.out_svg) / name).string();
      if (auto st = write_file(path, svg, "--out-svg"); !st)
        return fail(1, st.error().message);
      std::fprintf(stderr, "bench: wrote %s\n", path.c_str());
    }
  }
  if (answered == 0)
    return fail(1, "no request got an answer (see the errors above)");
  return 0;
}

} // namespace semrouter::app
