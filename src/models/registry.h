// Loads the model behind each task (domain, complexity, reasoning, jailbreak, language, embeddings,
// pii) from
// specs the caller translates from its config: the embedded defaults or a user's transformer
// folders, behind the same interfaces, so a config can swap either kind in per task.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "models/language_id.h"
#include "models/models.h"

namespace semrouter::models {

struct ModelSpec {
  std::string task; // domain, complexity, reasoning, jailbreak, language, embeddings, pii
  std::string type; // linear, transformer, fasttext, word_vectors
  std::string path; // absolute, or relative to the registry's base folder
  std::string precision = "auto";
};

struct Registry {
  std::shared_ptr<const TextClassifier> domain, complexity, reasoning, jailbreak;
  std::shared_ptr<const LanguageId> language;
  std::shared_ptr<const Embedder> embeddings;
  std::shared_ptr<const TokenClassifier> pii;
  // One line per loaded model: "domain: linear /path (14 labels)".
  std::vector<std::string> loaded;
  // Tasks backed by a transformer folder: heavy enough (milliseconds) to run on the inference
  // pool, one job per task, beside the embedded defaults (microseconds, run inline).
  std::set<std::string> transformer_tasks;
  bool is_transformer(std::string_view task) const {
    return transformer_tasks.count(std::string(task)) > 0;
  }

  // `base` resolves relative paths. Errors name the task and the path.
  static core::StatusOr<std::shared_ptr<const Registry>> load(const std::vector<ModelSpec>& specs,
                                                              const std::string& base);
};

// Every task's answer for one text. Linear models with the same features share one tokenisation
// and hashing pass, and the embedding reuses their SIF vector.
struct Analysis {
  Classification domain, complexity, reasoning, jailbreak;
  LanguageGuess language;
  std::vector<float> embedding;
  bool has_domain = false, has_complexity = false, has_reasoning = false, has_jailbreak = false,
       has_language = false, has_embedding = false;
  // Time per task; the first linear model's includes the shared tokenisation and hashing.
  double domain_us = 0, complexity_us = 0, reasoning_us = 0, jailbreak_us = 0, language_us = 0,
         embedding_us = 0;
};
// Which tasks analyze() runs (a routing rule may need only one of them).
struct AnalyzeTasks {
  bool domain = true, complexity = true, reasoning = true, jailbreak = true, language = true,
       embedding = true;
};
Analysis analyze(const Registry& r, std::string_view text, const AnalyzeTasks& tasks = {});

// The specs of the embedded defaults (models/README.md): what a config without a `classifiers`
// section gets.
std::vector<ModelSpec> default_model_specs();
// The models folder built in at compile time (override with SEMROUTER_MODELS_DIR).
std::string default_models_dir();

} // namespace semrouter::models
