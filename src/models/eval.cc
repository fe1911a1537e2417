#include "models/eval.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace semrouter::models {

double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney U with average ranks for ties.
  double rank_sum = 0, pos = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]])
      ++j;
    double avg = (double(i) + double(j - 1)) / 2 + 1;
    for (size_t k = i; k < j; ++k)
      if (labels[order[k]]) {
        rank_sum += avg;
        pos += 1;
      }
    i = j;
  }
  double neg = double(scores.size()) - pos;
  if (pos == 0 || neg == 0)
    return 0.5;
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

EvalReport evaluate(const std::vector<std::string>& labels, const std::vector<int>& truth,
                    const std::vector<int>& pred, const std::vector<double>* positive_scores,
                    int positive) {
  EvalReport r;
  r.labels = labels;
  r.n = truth.size();
  const size_t C = labels.size();
  r.confusion.assign(C, std::vector<int>(C, 0));
  size_t right = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    r.confusion[size_t(truth[i])][size_t(pred[i])]++;
    right += truth[i] == pred[i];
  }
  r.accuracy = r.n ? double(right) / double(r.n) : 0;
  double f1_sum = 0;
  for (size_t c = 0; c < C; ++c) {
    int tp = r.confusion[c][c], fp = 0, fn = 0;
    for (size_t k = 0; k < C; ++k)
      if (k != c) {
        fp += r.confusion[k][c];
        fn += r.confusion[c][k];
      }
    ClassMetrics m;
    m.label = labels[c];
    m.support = tp + fn;
    m.precision = tp + fp ? double(tp) / (tp + fp) : 0;
    m.recall = tp + fn ? double(tp) / (tp + fn) : 0;
    m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0;
    f1_sum += m.f1;
    r.classes.push_back(m);
  }
  r.macro_f1 = C ? f1_sum / double(C) : 0;
  if (C == 2) {
    size_t p = size_t(positive), q = 1 - p;
    int tp = r.confusion[p][p], fn = r.confusion[p][q], fp = r.confusion[q][p],
        tn = r.confusion[q][q];
    r.recall = tp + fn ? double(tp) / (tp + fn) : 0;
    r.false_positive_rate = fp + tn ? double(fp) / (fp + tn) : 0;
    if (positive_scores) {
      std::vector<int> bin(truth.size());
      for (size_t i = 0; i < truth.size(); ++i)
        bin[i] = truth[i] == positive;
      r.roc_auc = roc_auc(*positive_scores, bin);
    }
  }
  return r;
}

void set_latency(EvalReport& r, std::vector<double> us) {
  if (us.empty())
    return;
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us[std::min(us.size() - 1, size_t(p * double(us.size())))]; };
  r.latency_p50_us = pct(0.5);
  r.latency_p99_us = pct(0.99);
  r.latency_mean_us = std::accumulate(us.begin(), us.end(), 0.0) / double(us.size());
}

nlohmann::json EvalReport::to_json() const {
  nlohmann::json j = {{"n", n},
                      {"accuracy", accuracy},
                      {"macro_f1", macro_f1},
                      {"labels", labels},
                      {"confusion", confusion}};
  nlohmann::json cls = nlohmann::json::array();
  for (const auto& c : classes)
    cls.push_back({{"label", c.label},
                   {"precision", c.precision},
                   {"recall", c.recall},
                   {"f1", c.f1},
                   {"support", c.support}});
  j["per_class"] = cls;
  if (roc_auc)
    j["roc_auc"] = *roc_auc;
  if (recall)
    j["recall"] = *recall;
  if (false_positive_rate)
    j["false_positive_rate"] = *false_positive_rate;
  j["latency_us"] = {{"p50", latency_p50_us}, {"p99", latency_p99_us}, {"mean", latency_mean_us}};
  return j;
}

std::string EvalReport::to_text() const {
  std::string s =
      fmt::format("n = {}  accuracy = {:.4f}  macro-F1 = {:.4f}", n, accuracy, macro_f1);
  if (roc_auc)
    s += fmt::format("  ROC-AUC = {:.4f}", *roc_auc);
  if (recall)
    s += fmt::format("  recall = {:.4f}  FPR = {:.4f}", *recall, *false_positive_rate);
  s += fmt::format("\nlatency per text: p50 {:.1f} us, p99 {:.1f} us\n\n", latency_p50_us,
                   latency_p99_us);
  size_t w = 5;
  for (const auto& l : labels)
    w = std::max(w, l.size());
  s += fmt::format("{:<{}}  precision  recall     F1  support\n", "class", w);
  for (const auto& c : classes)
    s += fmt::format("{:<{}}  {:9.4f}  {:6.4f}  {:5.4f}  {:7}\n", c.label, w, c.precision, c.recall,
                     c.f1, c.support);
  s += "\nconfusion matrix (rows: truth, columns: predicted, in label order)\n";
  for (size_t i = 0; i < confusion.size(); ++i) {
    s += fmt::format("{:<{}}", labels[i], w);
    for (int v : confusion[i])
      s += fmt::format(" {:4}", v);
    s += "\n";
  }
  return s;
}

} // namespace semrouter::models
