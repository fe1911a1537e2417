// Labeled data for `semrouter train` / `semrouter eval`: JSONL records with `text` and `label`,
// or the data pack's own formats (MMLU-Pro questions with per-model correctness; jailbreak
// records with families), gzip or plain, with a deterministic held-out split by id.
#pragma once

#include <functional>

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace semrouter::models {

struct Example {
  std::string text;
  std::string label;
  std::string split_key; // the record's id (or family), what the held-out split hashes
  std::string kind;      // the pack's finer type when it has one (jailbreak `kind`)
};

struct DatasetOptions {
  std::string task; // domain, complexity, jailbreak, language
  // complexity from MMLU-Pro records: a question is "hard" when fewer than `hard_threshold` of
  // the `small_models` that answered it got it right.
  std::vector<std::string> small_models;
  double hard_threshold = 0.5;
  bool include_options = false; // MMLU-Pro: append the answer options to the question text
};

// The small and mid-size open models (≤ 35B parameters) of the MMLU-Pro pack.
const std::vector<std::string>& default_small_models();

core::StatusOr<std::vector<Example>> load_examples(const std::string& path,
                                                   const DatasetOptions& opts);

// Calls `fn` on every non-blank line of a JSONL file (gzip or plain); an error from `fn` stops
// the walk and comes back prefixed with "path:line: ".
core::Status for_each_jsonl(const std::string& path,
                            const std::function<core::Status(std::string_view line)>& fn);

// The same, each line parsed as JSON first (a line that is not JSON is an error naming it).
core::Status for_each_json_record(const std::string& path,
                                  const std::function<core::Status(const nlohmann::json&)>& fn);

// True when `key` falls in the held-out fraction (hash of the key, stable across runs and
// machines).
bool in_holdout(const std::string& key, double fraction);

// The sorted distinct labels of `examples` (the class ids of a new model), with the task's
// canonical order where it has one (complexity: easy, hard; jailbreak: benign, jailbreak).
std::vector<std::string> label_set(const std::string& task, const std::vector<Example>& examples);

} // namespace semrouter::models
