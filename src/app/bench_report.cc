#include "app/bench_report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/strings.h"

namespace semrouter::app {
namespace {

using core::ErrorCode;
using core::make_error;
using nlohmann::json;

constexpr size_t kErrorSamples = 3;
constexpr double kTokensPerMillion = 1e6;
constexpr double kMaxPrice = 1e9; // the config's own bound for pricing

// The first word of an x-semrouter-reasoning value: on, off or unset.
std::string reasoning_word(std::string_view header) {
  std::string_view w = header.substr(0, header.find(';'));
  return w.empty() ? "unset" : std::string(w);
}

std::string fmt_accuracy(const Counts& c) {
  auto a = c.accuracy();
  if (!a)
    return "-";
  return fmt::format("{:.3f} ({}/{})", *a, c.correct, c.gradable);
}

std::string fmt_ms(const Distribution& d, double v) {
  return d.n ? fmt::format("{:.1f}", v) : "-";
}

std::string fmt_usd(double v) {
  return fmt::format("{:.6f}", v);
}

std::string pct(double num, double den) {
  if (den <= 0)
    return "-";
  return fmt::format("{:.0f}%", 100.0 * num / den);
}

// A text table: the first column left-aligned, the others right-aligned.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i)
        width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      if (i == 0)
        line += fmt::format("{:<{}}", r[i], width[i]);
      else
        line += fmt::format("  {:>{}}", r[i], width[i]);
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line + "\n";
  }
  return out;
}

json optional_number(std::optional<double> v) {
  return v ? json(*v) : json(nullptr);
}

json distribution_json(const Distribution& d) {
  if (!d.n)
    return nullptr;
  return {{"n", d.n},     {"mean", d.mean}, {"p50", d.p50},
          {"p95", d.p95}, {"p99", d.p99},   {"max", d.max}};
}

json counts_json(const Counts& c, bool cost_known) {
  return {{"requests", c.requests},
          {"errors", c.errors},
          {"gradable", c.gradable},
          {"correct", c.correct},
          {"accuracy", optional_number(c.accuracy())},
          {"with_usage", c.with_usage},
          {"prompt_tokens", c.prompt_tokens},
          {"completion_tokens", c.completion_tokens},
          {"reasoning_tokens", c.reasoning_tokens},
          {"cost_usd", cost_known ? json(c.cost_usd) : json(nullptr)}};
}

} // namespace

core::StatusOr<PriceTable> parse_prices(std::string_view json_text) {
  json j = json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(ErrorCode::InvalidArgument,
                      "expected a JSON object {\"model\": {\"input_per_1m\": X, "
                      "\"output_per_1m\": Y}, ...}");
  PriceTable out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it->is_object())
      return make_error(
          ErrorCode::InvalidArgument,
          fmt::format("{}: expected {{\"input_per_1m\": X, \"output_per_1m\": Y}}", it.key()));
    Price p;
    for (auto f = it->begin(); f != it->end(); ++f) {
      if (f.key() != "input_per_1m" && f.key() != "output_per_1m")
        return make_error(ErrorCode::InvalidArgument,
                          fmt::format("{}: unknown key \"{}\" (known: input_per_1m, output_per_1m)",
                                      it.key(), f.key()));
      if (!f->is_number() || f->get<double>() < 0 || f->get<double>() > kMaxPrice)
        return make_error(ErrorCode::InvalidArgument,
                          fmt::format("{}.{}: expected a number from 0 to 1e9, got {}", it.key(),
                                      f.key(), f->dump()));
      (f.key() == "input_per_1m" ? p.input_per_1m : p.output_per_1m) = f->get<double>();
    }
    out[it.key()] = p;
  }
  return out;
}

core::StatusOr<PriceTable> load_price_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return make_error(ErrorCode::NotFound, fmt::format("--pricing: cannot open {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto prices = parse_prices(ss.str());
  if (!prices)
    return make_error(prices.error().code,
                      fmt::format("--pricing: {}: {}", path, prices.error().message));
  return prices;
}

PriceTable prices_from_config(const config::Config& config) {
  PriceTable out;
  for (const auto& m : config.models)
    out[m.name] = {m.pricing.input_per_1m, m.pricing.output_per_1m};
  return out;
}

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty())
    return 0;
  q = std::clamp(q, 0.0, 1.0);
  const double h = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

Distribution distribution(std::vector<double> values) {
  Distribution d;
  d.n = values.size();
  if (values.empty())
    return d;
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double v : values)
    sum += v;
  d.mean = sum / static_cast<double>(values.size());
  d.p50 = percentile(values, 0.50);
  d.p95 = percentile(values, 0.95);
  d.p99 = percentile(values, 0.99);
  d.max = values.back();
  return d;
}

std::optional<double> Counts::accuracy() const {
  if (gradable == 0)
    return std::nullopt;
  return static_cast<double>(correct) / static_cast<double>(gradable);
}

std::string priced_model(const BenchConfiguration& cfg, const ResponseOutcome& r) {
  if (!r.fallback.empty())
    return r.fallback;
  if (!r.routed_model.empty() && r.routed_model != "none")
    return r.routed_model;
  return cfg.model;
}

std::string category_name(const BenchRecord& record) {
  return record.category.empty() ? "(none)" : record.category;
}

ConfigurationReport summarize(const BenchConfiguration& cfg,
                              const std::vector<BenchRecord>& records,
                              const std::vector<RequestResult>& results, const PriceTable& prices) {
  ConfigurationReport rep;
  rep.config = cfg;
  std::vector<double> latencies, ttfts;
  std::set<std::string> unpriced;
  for (const RequestResult& r : results) {
    const BenchRecord& rec = records[r.record];
    const ResponseOutcome& o = r.response;
    Counts& cat = rep.categories[category_name(rec)];
    RequestRow row;
    row.id = rec.id;
    row.category = category_name(rec);
    row.status = o.status;
    row.error = o.error;
    row.gradable = r.grade.gradable;
    row.correct = r.grade.correct;
    row.extracted = r.grade.extracted;
    row.latency_ms = r.latency_ms;
    row.ttft_ms = o.ttft_ms;
    for (Counts* c : {&rep.total, &cat}) {
      c->requests++;
      if (!o.ok())
        c->errors++;
      if (r.grade.gradable) {
        c->gradable++;
        if (r.grade.correct)
          c->correct++;
      }
    }
    if (!o.ok()) {
      if (rep.error_samples.size() < kErrorSamples &&
          std::find(rep.error_samples.begin(), rep.error_samples.end(), o.error) ==
              rep.error_samples.end())
        rep.error_samples.push_back(o.error);
      rep.rows.push_back(std::move(row));
      continue;
    }
    latencies.push_back(r.latency_ms);
    if (o.ttft_ms >= 0)
      ttfts.push_back(o.ttft_ms);
    if (!o.routed_model.empty()) {
      row.route = o.routed_model + "/" + reasoning_word(o.reasoning);
      if (cfg.reasoning == ReasoningChoice::Router) {
        rep.routes[row.route]++;
        if (!o.decision.empty())
          rep.decisions[o.decision]++;
        if (reasoning_word(o.reasoning) == "on")
          rep.reasoning_on++;
      }
    }
    if (o.cache == "hit")
      rep.cache_hits++;
    if (!o.fallback.empty())
      rep.fallbacks++;
    if (o.answer.usage) {
      const std::string model = priced_model(cfg, o);
      auto price = prices.find(model);
      double cost = 0;
      if (price == prices.end())
        unpriced.insert(model);
      else
        cost = (static_cast<double>(o.answer.prompt_tokens) * price->second.input_per_1m +
                static_cast<double>(o.answer.completion_tokens) * price->second.output_per_1m) /
               kTokensPerMillion;
      row.prompt_tokens = o.answer.prompt_tokens;
      row.completion_tokens = o.answer.completion_tokens;
      row.reasoning_tokens = o.answer.reasoning_tokens;
      for (Counts* c : {&rep.total, &cat}) {
        c->with_usage++;
        c->prompt_tokens += o.answer.prompt_tokens;
        c->completion_tokens += o.answer.completion_tokens;
        c->reasoning_tokens += o.answer.reasoning_tokens;
        c->cost_usd += cost;
      }
    }
    rep.rows.push_back(std::move(row));
  }
  rep.latency_ms = distribution(std::move(latencies));
  rep.ttft_ms = distribution(std::move(ttfts));
  rep.unpriced.assign(unpriced.begin(), unpriced.end());
  return rep;
}

std::vector<Comparison> compare(const std::vector<ConfigurationReport>& reports) {
  std::vector<Comparison> out;
  for (const auto& r : reports) {
    if (r.config.reasoning != ReasoningChoice::Router)
      continue;
    for (const auto& f : reports) {
      if (f.config.reasoning == ReasoningChoice::Router)
        continue;
      Comparison c;
      c.routed = r.config.label;
      c.against = f.config.label;
      c.against_reasoning = f.config.reasoning == ReasoningChoice::On;
      c.accuracy_routed = r.total.accuracy();
      c.accuracy_against = f.total.accuracy();
      c.completion_per_request_routed = r.per_request(r.total.completion_tokens);
      c.completion_per_request_against = f.per_request(f.total.completion_tokens);
      c.reasoning_per_request_routed = r.per_request(r.total.reasoning_tokens);
      c.reasoning_per_request_against = f.per_request(f.total.reasoning_tokens);
      if (r.cost_known())
        c.cost_routed = r.total.cost_usd;
      if (f.cost_known())
        c.cost_against = f.total.cost_usd;
      c.latency_p50_routed = r.latency_ms.p50;
      c.latency_p50_against = f.latency_ms.p50;
      out.push_back(std::move(c));
    }
  }
  return out;
}

std::string comparison_sentence(const Comparison& c) {
  std::string s = c.routed + ": ";
  if (c.accuracy_routed && c.accuracy_against)
    s += fmt::format("{} of {}'s accuracy ({:.3f} vs {:.3f})",
                     pct(*c.accuracy_routed, *c.accuracy_against), c.against, *c.accuracy_routed,
                     *c.accuracy_against);
  else
    s += fmt::format("no gradable answers to compare with {}", c.against);
  s += fmt::format(" for {} of its completion tokens ({:.1f} vs {:.1f} per request",
                   pct(c.completion_per_request_routed, c.completion_per_request_against),
                   c.completion_per_request_routed, c.completion_per_request_against);
  if (c.reasoning_per_request_against > 0 || c.reasoning_per_request_routed > 0)
    s += fmt::format("; reasoning {:.1f} vs {:.1f}", c.reasoning_per_request_routed,
                     c.reasoning_per_request_against);
  s += ")";
  if (c.cost_routed && c.cost_against && *c.cost_against > 0)
    s += fmt::format(", {} of its cost", pct(*c.cost_routed, *c.cost_against));
  if (c.latency_p50_against > 0)
    s += fmt::format(", {} of its p50 latency", pct(c.latency_p50_routed, c.latency_p50_against));
  return s;
}

std::string format_report(const BenchReport& report) {
  std::string out = fmt::format(
      "semrouter bench: {} records from {} against {} ({}, concurrency {}, {:.1f} s)\n\n",
      report.records, report.data, report.target, report.streamed ? "streamed" : "not streamed",
      report.concurrency, report.wall_s);
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"configuration", "requests", "errors", "accuracy", "p50 ms", "p95 ms", "p99 ms",
                  "ttft p50 ms", "prompt/req", "completion/req", "reasoning/req", "cost USD"});
  for (const auto& c : report.configurations) {
    const Counts& t = c.total;
    rows.push_back({c.config.label, std::to_string(t.requests), std::to_string(t.errors),
                    fmt_accuracy(t), fmt_ms(c.latency_ms, c.latency_ms.p50),
                    fmt_ms(c.latency_ms, c.latency_ms.p95), fmt_ms(c.latency_ms, c.latency_ms.p99),
                    fmt_ms(c.ttft_ms, c.ttft_ms.p50),
                    t.with_usage ? fmt::format("{:.1f}", c.per_request(t.prompt_tokens)) : "-",
                    t.with_usage ? fmt::format("{:.1f}", c.per_request(t.completion_tokens)) : "-",
                    t.with_usage ? fmt::format("{:.1f}", c.per_request(t.reasoning_tokens)) : "-",
                    c.cost_known() ? fmt_usd(t.cost_usd) : "-"});
  }
  out += table(rows);

  for (const auto& c : report.configurations) {
    if (c.config.reasoning != ReasoningChoice::Router || c.routes.empty())
      continue;
    std::vector<std::string> routes, decisions;
    for (const auto& [k, n] : c.routes)
      routes.push_back(fmt::format("{} {}", k, n));
    for (const auto& [k, n] : c.decisions)
      decisions.push_back(fmt::format("{} {}", k, n));
    size_t answered = c.total.requests - c.total.errors;
    out += fmt::format("\n{} picked: {}; decisions: {}; reasoning on for {}/{}", c.config.label,
                       core::join(routes, ", "), core::join(decisions, ", "), c.reasoning_on,
                       answered);
    if (c.cache_hits)
      out += fmt::format("; {} cache hits", c.cache_hits);
    if (c.fallbacks)
      out += fmt::format("; {} answered by a fallback", c.fallbacks);
    out += "\n";
  }

  std::set<std::string> categories;
  for (const auto& c : report.configurations)
    for (const auto& [name, counts] : c.categories)
      if (counts.gradable)
        categories.insert(name);
  if (!categories.empty()) {
    out += "\naccuracy per category:\n";
    std::vector<std::vector<std::string>> crows;
    std::vector<std::string> head{"category"};
    for (const auto& c : report.configurations)
      head.push_back(c.config.label);
    crows.push_back(head);
    for (const auto& name : categories) {
      std::vector<std::string> row{name};
      for (const auto& c : report.configurations) {
        auto it = c.categories.find(name);
        row.push_back(it == c.categories.end() ? "-" : fmt_accuracy(it->second));
      }
      crows.push_back(row);
    }
    out += table(crows);
  }

  if (!report.comparisons.empty()) {
    out += "\nrouting against fixed configurations:\n";
    for (const auto& c : report.comparisons)
      out += "  " + comparison_sentence(c) + (c.against_reasoning ? "  [always reasoning]" : "") +
             "\n";
  }
  for (const auto& c : report.configurations) {
    if (!c.unpriced.empty())
      out += fmt::format("\n{}: no price for {} (give --pricing or --config): cost not shown\n",
                         c.config.label, core::join(c.unpriced, ", "));
    if (c.total.requests > c.total.errors && c.total.with_usage == 0)
      out += fmt::format("\n{}: no answer reported usage: tokens and cost not shown\n",
                         c.config.label);
    for (const auto& e : c.error_samples)
      out += fmt::format("\n{}: error: {}", c.config.label, e);
    if (!c.error_samples.empty())
      out += "\n";
  }
  if (!report.warnings.empty())
    out += "\n";
  for (const auto& w : report.warnings)
    out += "warning: " + w + "\n";
  return out;
}

json report_json(const BenchReport& report) {
  json configs = json::array();
  for (const auto& c : report.configurations) {
    json edits = json::object();
    for (const auto& e : c.config.edits) {
      json v = json::parse(e.raw_json_value, nullptr, false);
      if (e.sub.empty())
        edits[e.key] = v;
      else
        edits[e.key][e.sub] = v;
    }
    json cats = json::object();
    for (const auto& [name, counts] : c.categories)
      cats[name] = counts_json(counts, c.cost_known());
    json rows = json::array();
    for (const auto& r : c.rows) {
      json row = {{"id", r.id},
                  {"category", r.category},
                  {"status", r.status},
                  {"latency_ms", r.latency_ms},
                  {"gradable", r.gradable}};
      if (!r.error.empty())
        row["error"] = r.error;
      if (r.gradable) {
        row["correct"] = r.correct;
        row["extracted"] = r.extracted;
      }
      if (r.ttft_ms >= 0)
        row["ttft_ms"] = r.ttft_ms;
      if (r.status == 200 && r.error.empty())
        row["tokens"] = {{"prompt", r.prompt_tokens},
                         {"completion", r.completion_tokens},
                         {"reasoning", r.reasoning_tokens}};
      if (!r.route.empty())
        row["route"] = r.route;
      rows.push_back(std::move(row));
    }
    json cj = {{"label", c.config.label},
               {"model", c.config.model},
               {"reasoning", std::string(reasoning_choice_name(c.config.reasoning))},
               {"reasoning_family", c.config.family},
               {"request_fields", edits},
               {"totals", counts_json(c.total, c.cost_known())},
               {"per_request",
                {{"prompt_tokens", c.per_request(c.total.prompt_tokens)},
                 {"completion_tokens", c.per_request(c.total.completion_tokens)},
                 {"reasoning_tokens", c.per_request(c.total.reasoning_tokens)},
                 {"cost_usd", c.cost_known()
                                  ? json(c.total.cost_usd / static_cast<double>(c.total.with_usage))
                                  : json(nullptr)}}},
               {"latency_ms", distribution_json(c.latency_ms)},
               {"ttft_ms", distribution_json(c.ttft_ms)},
               {"categories", cats},
               {"unpriced_models", c.unpriced},
               {"errors", c.error_samples},
               {"results", rows}};
    if (c.config.reasoning == ReasoningChoice::Router)
      cj["router"] = {{"routes", c.routes},
                      {"decisions", c.decisions},
                      {"reasoning_on", c.reasoning_on},
                      {"cache_hits", c.cache_hits},
                      {"fallbacks", c.fallbacks}};
    configs.push_back(std::move(cj));
  }
  json comps = json::array();
  for (const auto& c : report.comparisons)
    comps.push_back(
        {{"routed", c.routed},
         {"against", c.against},
         {"against_always_reasoning", c.against_reasoning},
         {"accuracy",
          {{"routed", optional_number(c.accuracy_routed)},
           {"against", optional_number(c.accuracy_against)}}},
         {"completion_tokens_per_request",
          {{"routed", c.completion_per_request_routed},
           {"against", c.completion_per_request_against}}},
         {"reasoning_tokens_per_request",
          {{"routed", c.reasoning_per_request_routed},
           {"against", c.reasoning_per_request_against}}},
         {"cost_usd",
          {{"routed", optional_number(c.cost_routed)},
           {"against", optional_number(c.cost_against)}}},
         {"latency_p50_ms", {{"routed", c.latency_p50_routed}, {"against", c.latency_p50_against}}},
         {"summary", comparison_sentence(c)}});
  return {{"target", report.target},           {"data", report.data},
          {"records", report.records},         {"streamed", report.streamed},
          {"concurrency", report.concurrency}, {"wall_s", report.wall_s},
          {"configurations", configs},         {"comparisons", comps},
          {"warnings", report.warnings}};
}

} // namespace semrouter::app
