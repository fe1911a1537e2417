#include "models/registry.h"

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "models/linear_classifier.h"
#include "models/transformer.h"
#include "models/word_vectors.h"

#ifndef SEMROUTER_MODELS_DIR
#define SEMROUTER_MODELS_DIR "models"
#endif

namespace semrouter::models {

using core::ErrorCode;
using core::make_error;

std::vector<ModelSpec> default_model_specs() {
  return {{"domain", "linear", "domain", "auto"},
          {"complexity", "linear", "complexity", "auto"},
          {"jailbreak", "linear", "jailbreak", "auto"},
          {"language", "fasttext", "lid.176.ftz", "auto"},
          {"embeddings", "word_vectors", "glove-100d-sif", "auto"}};
}

std::string default_models_dir() {
  if (const char* env = std::getenv("SEMROUTER_MODELS_DIR"); env && *env)
    return env;
  return SEMROUTER_MODELS_DIR;
}

core::StatusOr<std::shared_ptr<const Registry>> Registry::load(const std::vector<ModelSpec>& specs,
                                                               const std::string& base) {
  auto r = std::make_shared<Registry>();
  for (const auto& s : specs) {
    std::filesystem::path p(s.path);
    std::string path = p.is_absolute() ? s.path : (std::filesystem::path(base) / p).string();
    auto fail = [&](const core::Error& e) {
      return make_error(
          e.code, fmt::format("classifiers.{} ({} at {}): {}", s.task, s.type, path, e.message));
    };
    std::string detail;
    if (s.type == "linear") {
      auto m = LinearTextClassifier::load(path);
      if (!m)
        return fail(m.error());
      if (!(*m)->config().task.empty() && (*m)->config().task != s.task)
        return fail({ErrorCode::InvalidArgument,
                     fmt::format("the folder holds a \"{}\" model", (*m)->config().task)});
      detail = fmt::format("{} labels", (*m)->labels().size());
      if (s.task == "domain")
        r->domain = *m;
      else if (s.task == "complexity")
        r->complexity = *m;
      else if (s.task == "jailbreak")
        r->jailbreak = *m;
      else
        return fail({ErrorCode::InvalidArgument, "a linear model cannot back this task"});
    } else if (s.type == "transformer") {
      auto prec = nn::parse_precision(s.precision);
      if (!prec)
        return fail(prec.error());
      TransformerOptions o;
      o.encoder.precision = *prec;
      auto m = TransformerModel::load(path, o);
      if (!m)
        return fail(m.error());
      detail =
          fmt::format("{}, {}", (*m)->config().architecture, nn::precision_name((*m)->precision()));
      if (s.task == "embeddings") {
        r->embeddings = *m;
      } else if (s.task == "pii") {
        if (!(*m)->supports(Task::Token))
          return fail({ErrorCode::InvalidArgument, "pii needs a token-classification model"});
        r->pii = *m;
      } else {
        if (!(*m)->supports(Task::Sequence))
          return fail({ErrorCode::InvalidArgument, "needs a sequence-classification model"});
        (s.task == "domain"       ? r->domain
         : s.task == "complexity" ? r->complexity
                                  : r->jailbreak) = *m;
      }
    } else if (s.type == "fasttext") {
      auto m = LanguageId::load(path);
      if (!m)
        return fail(m.error());
      r->language = *m;
    } else if (s.type == "word_vectors") {
      auto m = WordVectors::load(path);
      if (!m)
        return fail(m.error());
      detail = fmt::format("{} words x {}", (*m)->vocab_size(), (*m)->dim());
      r->embeddings = *m;
    } else {
      return fail({ErrorCode::InvalidArgument, fmt::format("unknown type \"{}\"", s.type)});
    }
    r->loaded.push_back(fmt::format("{}: {} {}{}", s.task, s.type, path,
                                    detail.empty() ? "" : " (" + detail + ")"));
  }
  return std::shared_ptr<const Registry>(std::move(r));
}

} // namespace semrouter::models
