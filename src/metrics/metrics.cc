#include "metrics/metrics.h"

#include <cmath>
#include <cstdio>

namespace semrouter::metrics {
namespace {

std::string format_double(double v) {
  if (std::isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) { // 10, not 1e+01: dashboards select le="10"
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // Shortest round-trip is nicer to read; try fewer digits first.
  for (int prec = 1; prec <= 17; ++prec) {
    char shorter[64];
    std::snprintf(shorter, sizeof shorter, "%.*g", prec, v);
    if (std::strtod(shorter, nullptr) == v)
      return shorter;
  }
  return buf;
}

std::string label_block(const std::vector<std::string>& names,
                        const std::vector<std::string>& values, const std::string& extra_name = "",
                        const std::string& extra_value = "") {
  if (names.empty() && extra_name.empty())
    return "";
  std::string out = "{";
  bool first = true;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (!first)
      out += ',';
    first = false;
    out += names[i] + "=\"" + escape_label_value(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    if (!first)
      out += ',';
    out += extra_name + "=\"" + extra_value + "\"";
  }
  out += '}';
  return out;
}

void header(std::string& out, const std::string& name, const std::string& help, const char* type) {
  out += "# HELP " + name + " " + help + "\n";
  out += "# TYPE " + name + " " + type + "\n";
}

} // namespace

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), lines_per_shard_((bounds.size() + 2 + 7) / 8),
      lines_(kShards * lines_per_shard_) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i])
    ++i;
  const size_t shard = core::thread_shard() % kShards;
  cell(shard, i).fetch_add(1, std::memory_order_relaxed);
  if (v > 0)
    cell(shard, bounds_.size() + 1)
        .fetch_add(static_cast<uint64_t>(std::llround(v * 1e6)), std::memory_order_relaxed);
}

void Histogram::read(std::vector<uint64_t>& cumulative, double& sum, uint64_t& count) const {
  cumulative.assign(bounds_.size() + 1, 0);
  uint64_t running = 0;
  uint64_t sum_micros = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    for (size_t s = 0; s < kShards; ++s)
      running += cell(s, i).load(std::memory_order_relaxed);
    cumulative[i] = running;
  }
  for (size_t s = 0; s < kShards; ++s)
    sum_micros += cell(s, bounds_.size() + 1).load(std::memory_order_relaxed);
  count = running; // consistent with the buckets even while observations race
  sum = static_cast<double>(sum_micros) / 1e6;
}

Family<Counter>& Registry::counter(std::string name, std::string help,
                                   std::vector<std::string> labels) {
  std::lock_guard<std::mutex> lock(mu_);
  counters_.push_back(
      std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(labels)));
  order_.push_back({Type::Counter, counters_.back().get()});
  return *counters_.back();
}

Family<Gauge>& Registry::gauge(std::string name, std::string help,
                               std::vector<std::string> labels) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_.push_back(
      std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(labels)));
  order_.push_back({Type::Gauge, gauges_.back().get()});
  return *gauges_.back();
}

Family<Histogram>& Registry::histogram(std::string name, std::string help,
                                       std::vector<std::string> labels,
                                       std::vector<double> bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  histograms_.push_back(std::make_unique<Family<Histogram>>(std::move(name), std::move(help),
                                                            std::move(labels), std::move(bounds)));
  order_.push_back({Type::Histogram, histograms_.back().get()});
  return *histograms_.back();
}

std::string Registry::expose() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out.reserve(4096);
  for (const Entry& e : order_) {
    if (e.type == Type::Counter) {
      auto* f = static_cast<Family<Counter>*>(e.family);
      header(out, f->name(), f->help(), "counter");
      f->for_each([&](const std::vector<std::string>& values, const Counter& c) {
        out +=
            f->name() + label_block(f->labels(), values) + " " + std::to_string(c.value()) + "\n";
      });
    } else if (e.type == Type::Gauge) {
      auto* f = static_cast<Family<Gauge>*>(e.family);
      header(out, f->name(), f->help(), "gauge");
      f->for_each([&](const std::vector<std::string>& values, const Gauge& g) {
        out += f->name() + label_block(f->labels(), values) + " " + format_double(g.value()) + "\n";
      });
    } else {
      auto* f = static_cast<Family<Histogram>*>(e.family);
      header(out, f->name(), f->help(), "histogram");
      f->for_each([&](const std::vector<std::string>& values, const Histogram& h) {
        std::vector<uint64_t> cumulative;
        double sum = 0;
        uint64_t count = 0;
        h.read(cumulative, sum, count);
        for (size_t i = 0; i < cumulative.size(); ++i) {
          std::string le = i < h.bounds().size() ? format_double(h.bounds()[i]) : "+Inf";
          out += f->name() + "_bucket" + label_block(f->labels(), values, "le", le) + " " +
                 std::to_string(cumulative[i]) + "\n";
        }
        out +=
            f->name() + "_sum" + label_block(f->labels(), values) + " " + format_double(sum) + "\n";
        out += f->name() + "_count" + label_block(f->labels(), values) + " " +
               std::to_string(count) + "\n";
      });
    }
  }
  return out;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
          0.5,    1,     2.5,    5,     10,   30,    60,   120};
}

} // namespace semrouter::metrics
