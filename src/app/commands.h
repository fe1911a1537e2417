// Subcommands of the semrouter binary that live outside main.cc.
#pragma once

#include <string>
#include <vector>

namespace semrouter::app {

struct ClassifyArgs {
  std::string model_dir;
  std::string task; // empty: what the model's head does (embed for bare encoders)
  std::string precision = "auto";
  std::string backend = "onednn";
  int threads = 1;
  size_t max_length = 0; // 0: the model's
  bool pretty = false;
  std::vector<std::string> texts; // empty: one text per line on stdin
};
int cmd_classify(const ClassifyArgs& args);

} // namespace semrouter::app

namespace semrouter::app {

struct TrainArgs {
  std::string task;              // domain, complexity, jailbreak, language
  std::vector<std::string> data; // one or more files, concatenated
  std::string out;
  double holdout = 0.1; // fraction held out by id hash, never trained on
  uint64_t seed = 42;
  int epochs = 0;       // 0: the task's default
  int buckets_log2 = 0; // 0: the task's default
  int window_words = 0; // jailbreak: scoring window (0: the task's default)
  int ensemble = 5;     // models trained with different seeds, weights averaged
  double max_fpr =
      0.02; // jailbreak: threshold for at most this false-positive rate (calibration slice)
  bool include_options = false;
  std::string vectors; // word-vector folder for dense features (empty: none)
  double vector_scale = 1.0;
};
int cmd_train(const TrainArgs& args);

struct EvalArgs {
  std::string task;
  std::string model_dir;
  std::string data;
  std::string split = "all"; // all, or holdout (the records `train` held out)
  double holdout = 0.1;
  bool json = false;
  bool include_options = false;
  bool adversarial = false; // jailbreak: also score adversarial variants
};
int cmd_eval(const EvalArgs& args);

} // namespace semrouter::app
