// Subcommands of the semrouter binary that live outside main.cc.
#pragma once

#include <string>
#include <vector>

namespace semrouter::app {

struct ClassifyArgs {
  std::string model_dir;
  std::string task;        // empty: what the model's head does (embed for bare encoders)
  std::string precision = "auto";
  std::string backend = "onednn";
  int threads = 1;
  size_t max_length = 0;   // 0: the model's
  bool pretty = false;
  std::vector<std::string> texts; // empty: one text per line on stdin
};
int cmd_classify(const ClassifyArgs& args);

} // namespace semrouter::app
