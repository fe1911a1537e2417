// Classification metrics for `semrouter eval`: accuracy, per-class precision / recall / F1,
// confusion matrix, ROC-AUC for binary tasks, latency percentiles.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace semrouter::models {

struct ClassMetrics {
  std::string label;
  double precision = 0, recall = 0, f1 = 0;
  int support = 0;
};

struct EvalReport {
  size_t n = 0;
  double accuracy = 0, macro_f1 = 0;
  std::vector<ClassMetrics> classes;
  std::vector<std::vector<int>> confusion; // [truth][predicted]
  std::vector<std::string> labels;
  std::optional<double> roc_auc; // binary tasks, from the positive-class scores
  // Binary tasks: the positive class's recall and false-positive rate at the model's threshold.
  std::optional<double> recall, false_positive_rate;
  double latency_p50_us = 0, latency_p99_us = 0, latency_mean_us = 0;

  nlohmann::json to_json() const;
  std::string to_text() const;
};

// `truth` and `pred` are class ids into `labels`. `positive_scores` (optional, binary tasks) are
// scores of class `positive` used for ROC-AUC.
EvalReport evaluate(const std::vector<std::string>& labels, const std::vector<int>& truth,
                    const std::vector<int>& pred,
                    const std::vector<double>* positive_scores = nullptr, int positive = 1);
// Area under the ROC curve (ties counted half), from scores and 0/1 labels.
double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels);
// Fills the latency fields from per-item microseconds.
void set_latency(EvalReport& r, std::vector<double> micros);

} // namespace semrouter::models
