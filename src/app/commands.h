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

namespace semrouter::app {

// `semrouter train router`: a cost–quality router from per-prompt outcomes.
struct TrainRouterArgs {
  std::vector<std::string> data;
  std::string out;
  std::string type = "linear";     // knn, mf, linear, random
  std::vector<std::string> models; // keep only these models (default: every model in the data)
  std::string embeddings;          // transformer folder (default: the embedded GloVe SIF vectors)
  int k = 0;                       // 0: chosen on the validation slice
  int rank = 16;
  int epochs = 0;       // 0: the type's default
  int buckets_log2 = 0; // linear: hashed feature space (0: 16)
  uint64_t seed = 7;
};
int cmd_train_router(const TrainRouterArgs& args);

// `semrouter eval router`: quality vs share of strong calls, PGR, APGR, CPT on outcome data.
struct EvalRouterArgs {
  std::string router_dir;
  std::string data;
  std::string split = "holdout"; // holdout (never trained on), train, or all
  std::vector<std::pair<std::string, std::string>> pairs; // (strong, weak)
  std::vector<std::string> frontier_models;               // N-model cost–quality frontier
  std::vector<std::pair<std::string, double>> costs;      // model -> cost per call
  bool json = false;
  std::string out_json; // also write the JSON report here
  std::string svg;      // PGR-vs-share plot of the first pair (and the frontier next to it)
};
int cmd_eval_router(const EvalRouterArgs& args);

// `semrouter calibrate`: the threshold that sends a target share of prompts to the strong model.
struct CalibrateArgs {
  std::string router_dir;
  std::string data;
  std::string strong, weak;
  double target_strong_share = 0.3;
  bool json = false;
};
int cmd_calibrate(const CalibrateArgs& args);

} // namespace semrouter::app

namespace semrouter::app {

// `semrouter bench`: replays a JSONL dataset against a router or any OpenAI-compatible endpoint
// per configuration (model x reasoning) and reports accuracy, latency, time to first token,
// tokens and cost (docs/bench-cli.md).
struct BenchArgs {
  std::string data;
  std::string target;
  std::vector<std::string> models{"auto"};
  std::vector<std::string> reasoning;     // on, off, unset (default: unset)
  std::string reasoning_family = "qwen3"; // for models the config does not name
  int concurrency = 4;
  size_t limit = 0; // 0: every record
  std::string out_json;
  std::string out_svg; // a folder
  std::string api_key_env;
  std::string pricing;              // a JSON price file
  std::string config_path;          // the router's config: pricing, reasoning families, auto names
  std::vector<std::string> headers; // "Name: value"
  std::string ca_file;
  int max_tokens = 0;
  double temperature = -1; // < 0: not sent
  double timeout_s = 300;
  bool no_stream = false;
  bool use_cache = false; // else every request carries Cache-Control: no-store
  bool quiet = false;     // no progress on stderr
};
int cmd_bench(const BenchArgs& args);

} // namespace semrouter::app
