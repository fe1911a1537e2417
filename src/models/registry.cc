#include "models/registry.h"

#include <chrono>
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
          {"reasoning", "linear", "reasoning", "auto"},
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
      else if (s.task == "reasoning")
        r->reasoning = *m;
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
      r->transformer_tasks.insert(s.task);
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
         : s.task == "reasoning"  ? r->reasoning
                                  : r->jailbreak) = *m;
      }
    } else if (s.type == "fasttext") {
      auto m = LanguageId::load(path);
      if (!m)
        return fail(m.error());
      r->language = *m;
    } else if (s.type == "word_vectors") {
      auto m = WordVectors::load_shared(path);
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
  // The linear models were made here, not const: their rows may still move into one table.
  std::vector<LinearTextClassifier*> linear;
  for (const auto* task : {&r->domain, &r->complexity, &r->reasoning, &r->jailbreak})
    if (auto* m = dynamic_cast<const LinearTextClassifier*>(task->get()))
      linear.push_back(const_cast<LinearTextClassifier*>(m));
  LinearTextClassifier::share_rows(linear);
  return std::shared_ptr<const Registry>(std::move(r));
}

Analysis analyze(const Registry& r, std::string_view text, const AnalyzeTasks& tasks) {
  Analysis a;
  thread_local PreparedText p;
  p.key = 0;
  auto run = [&](const TextClassifier* m, Classification& out) {
    if (!m)
      return false;
    if (auto* lin = dynamic_cast<const LinearTextClassifier*>(m)) {
      if (p.key != lin->features_key())
        lin->prepare(text, p); // the first linear model hashes the text; the others reuse it
      out = lin->classify_prepared(p);
      return true;
    }
    auto c = m->classify({&text, 1});
    if (!c)
      return false;
    out = std::move((*c)[0]);
    return true;
  };
  using Clock = std::chrono::steady_clock;
  auto timed = [](double& us, auto&& fn) {
    auto t0 = Clock::now();
    auto r = fn();
    us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    return r;
  };
  if (tasks.domain)
    a.has_domain = timed(a.domain_us, [&] { return run(r.domain.get(), a.domain); });
  if (tasks.complexity)
    a.has_complexity =
        timed(a.complexity_us, [&] { return run(r.complexity.get(), a.complexity); });
  if (tasks.reasoning)
    a.has_reasoning = timed(a.reasoning_us, [&] { return run(r.reasoning.get(), a.reasoning); });
  if (tasks.jailbreak)
    a.has_jailbreak = timed(a.jailbreak_us, [&] { return run(r.jailbreak.get(), a.jailbreak); });
  if (r.language && tasks.language)
    a.language = timed(a.language_us, [&] { return r.language->detect(text); }),
    a.has_language = true;
  auto te = Clock::now();
  if (!tasks.embedding) {
    // not asked for
  } else if (auto* wv = dynamic_cast<const WordVectors*>(r.embeddings.get())) {
    // The prepared SIF vector is this embedding when the classifiers share the table.
    auto* lin = dynamic_cast<const LinearTextClassifier*>(r.domain.get());
    if (lin && p.key == lin->features_key() && lin->vectors().get() == wv && !p.dense.empty())
      a.embedding = p.dense;
    else
      wv->embed_one(text, a.embedding);
    a.has_embedding = true;
  } else if (r.embeddings) {
    auto e = r.embeddings->embed({&text, 1});
    if (e)
      a.embedding = std::move((*e)[0]), a.has_embedding = true;
  }
  a.embedding_us = std::chrono::duration<double, std::micro>(Clock::now() - te).count();
  return a;
}

} // namespace semrouter::models
