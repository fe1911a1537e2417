// `semrouter bench`'s report: per configuration and per category, accuracy, latency and time
// to first token percentiles, tokens and cost; the routed configurations against each fixed one;
// the text table and the JSON. Pure functions over the collected results.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/bench_data.h"
#include "app/bench_request.h"
#include "config/config.h"
#include "core/status.h"

namespace semrouter::app {

// Prices per million tokens (completion tokens include reasoning tokens, as OpenAI counts them).
struct Price {
  double input_per_1m = 0;
  double output_per_1m = 0;
};
using PriceTable = std::map<std::string, Price>;

// {"model": {"input_per_1m": X, "output_per_1m": Y}, ...}; errors name the file and the model.
core::StatusOr<PriceTable> load_price_file(const std::string& path);
core::StatusOr<PriceTable> parse_prices(std::string_view json_text);
// Every model of a router config with its `pricing` (models without one are priced 0 there).
PriceTable prices_from_config(const config::Config& config);

// One request's result, as the report reads it.
struct RequestResult {
  size_t record = 0; // index into the records
  ResponseOutcome response;
  double latency_ms = 0; // from the request's first byte written to its last byte read
  Grade grade;
};

// Linear interpolation between closest ranks (NumPy's default): q in [0, 1]; `sorted` ascending,
// non-empty.
double percentile(const std::vector<double>& sorted, double q);

struct Distribution {
  size_t n = 0;
  double mean = 0, p50 = 0, p95 = 0, p99 = 0, max = 0;
};
Distribution distribution(std::vector<double> values);

struct Counts {
  size_t requests = 0;
  size_t errors = 0;   // no 200 answer (status, transport error, timeout)
  size_t gradable = 0; // records with an answer key
  size_t correct = 0;
  // Correct among gradable; an error counts as a wrong answer. nullopt: nothing gradable.
  std::optional<double> accuracy() const;
  uint64_t prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;
  size_t with_usage = 0; // successful answers that reported usage
  double cost_usd = 0;
};

// One request as the JSON report lists it.
struct RequestRow {
  std::string id, category;
  int status = 0;
  std::string error;
  bool gradable = false, correct = false;
  std::string extracted; // the letter or text the grader read ("" when none)
  double latency_ms = 0, ttft_ms = -1;
  uint64_t prompt_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;
  std::string route; // routed configurations: model/reasoning the router picked
};

struct ConfigurationReport {
  BenchConfiguration config;
  std::vector<RequestRow> rows;
  Counts total;
  Distribution latency_ms; // successful requests only
  Distribution ttft_ms;    // successful streamed requests that produced a token
  std::map<std::string, Counts> categories;
  // Routed configurations: what the router picked, from its response headers.
  std::map<std::string, size_t> routes;    // "qwen3-8b/on" (model / reasoning on|off|unset)
  std::map<std::string, size_t> decisions; // x-semrouter-decision
  size_t reasoning_on = 0;                 // answers whose x-semrouter-reasoning starts with "on"
  size_t cache_hits = 0;
  size_t fallbacks = 0;
  // Models answers came from that the price table lacks; cost is then unknown.
  std::vector<std::string> unpriced;
  bool cost_known() const { return unpriced.empty() && total.with_usage > 0; }
  std::vector<std::string> error_samples; // up to 3 distinct error messages

  double per_request(uint64_t tokens) const {
    return total.with_usage ? static_cast<double>(tokens) / static_cast<double>(total.with_usage)
                            : 0;
  }
};

// The model a request is priced as: the fallback that answered, else the model the router
// reports, else the configuration's.
std::string priced_model(const BenchConfiguration& cfg, const ResponseOutcome& r);

ConfigurationReport summarize(const BenchConfiguration& cfg,
                              const std::vector<BenchRecord>& records,
                              const std::vector<RequestResult>& results, const PriceTable& prices);

// A routed configuration against a fixed one ("does routing give the accuracy of reasoning for
// fewer tokens").
struct Comparison {
  std::string routed, against;
  bool against_reasoning = false; // the fixed configuration has reasoning always on
  std::optional<double> accuracy_routed, accuracy_against;
  double completion_per_request_routed = 0, completion_per_request_against = 0;
  double reasoning_per_request_routed = 0, reasoning_per_request_against = 0;
  std::optional<double> cost_routed, cost_against; // total USD
  double latency_p50_routed = 0, latency_p50_against = 0;
};
std::vector<Comparison> compare(const std::vector<ConfigurationReport>& reports);
// One sentence: "auto: 100% of qwen3-8b/on's accuracy (0.833 vs 0.833) for 45% of its
// completion tokens (30.0 vs 66.7 per request) and 52% of its cost".
std::string comparison_sentence(const Comparison& c);

struct BenchReport {
  std::string target;
  std::string data;
  size_t records = 0;
  bool streamed = true;
  int concurrency = 1;
  double wall_s = 0;
  std::vector<ConfigurationReport> configurations;
  std::vector<Comparison> comparisons;
  std::vector<std::string> warnings;
};

// The report as text for a terminal: the summary table, what the router picked, accuracy per
// category, the comparisons.
std::string format_report(const BenchReport& report);
nlohmann::json report_json(const BenchReport& report);

// "(none)" for records without a category.
std::string category_name(const BenchRecord& record);

} // namespace semrouter::app
