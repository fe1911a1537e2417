// `semrouter train <task>` and `semrouter eval <task>` for the embedded default classifiers.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "models/dataset.h"
#include "models/eval.h"
#include "models/language_id.h"
#include "models/linear_classifier.h"

namespace semrouter::app {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double secs_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Split {
  std::vector<models::Example> train, holdout;
};

Split split(std::vector<models::Example> all, double fraction) {
  Split s;
  for (auto& e : all)
    (models::in_holdout(e.split_key, fraction) ? s.holdout : s.train).push_back(std::move(e));
  return s;
}

// Task defaults: what worked best on the data pack (see models/README.md). `window_words` 0
// means the default (16).
void task_defaults(const std::string& task, int window_words, models::LinearClassifierConfig& cfg) {
  if (task == "jailbreak") {
    cfg.window_words = window_words ? window_words : 16;
    cfg.window_stride = std::max(1, cfg.window_words / 2);
  }
  if (task == "language") {
    cfg.features.word_bigrams = false;
    cfg.features.char_ngram_min = 1;
    cfg.features.char_ngram_max = 4;
  }
}

std::vector<int> label_ids(const std::vector<models::Example>& ex,
                           const std::vector<std::string>& labels, bool* unknown = nullptr) {
  std::vector<int> y;
  y.reserve(ex.size());
  for (const auto& e : ex) {
    auto it = std::find(labels.begin(), labels.end(), e.label);
    if (it == labels.end()) {
      if (unknown)
        *unknown = true;
      y.push_back(-1);
    } else {
      y.push_back(int(it - labels.begin()));
    }
  }
  return y;
}

models::EvalReport run_eval(const models::LinearTextClassifier& m,
                            const std::vector<models::Example>& ex,
                            std::vector<double>* pos_scores_out = nullptr) {
  const auto& labels = m.labels();
  std::vector<int> truth, pred;
  std::vector<double> pos, us;
  bool binary = m.config().positive >= 0 && labels.size() == 2;
  for (const auto& e : ex) {
    auto it = std::find(labels.begin(), labels.end(), e.label);
    if (it == labels.end())
      continue; // a label the model does not know cannot be scored; counted as skipped by the
                // caller
    auto t0 = Clock::now();
    auto c = m.classify_one(e.text);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    truth.push_back(int(it - labels.begin()));
    pred.push_back(c.label_id);
    if (binary)
      pos.push_back(c.probabilities[size_t(m.config().positive)]);
  }
  auto r = models::evaluate(labels, truth, pred, binary ? &pos : nullptr,
                            std::max(0, m.config().positive));
  models::set_latency(r, us);
  if (pos_scores_out)
    *pos_scores_out = pos;
  return r;
}

// The smallest threshold whose false-positive rate on `neg_scores` stays within `max_fpr`.
double threshold_for_fpr(std::vector<double> neg_scores, double max_fpr) {
  if (neg_scores.empty())
    return 0.5;
  std::sort(neg_scores.begin(), neg_scores.end());
  size_t allowed = size_t(max_fpr * double(neg_scores.size()));
  size_t idx = neg_scores.size() - 1 - std::min(allowed, neg_scores.size() - 1);
  return std::min(0.99, std::max(0.05, neg_scores[idx] + 1e-6));
}

// Adversarial variants of a text (jailbreak evaluation): what attackers do to slip past a
// classifier without changing what the prompt asks for.
std::vector<std::pair<std::string, std::string>> adversarial_variants(const std::string& t,
                                                                      size_t i) {
  static const char* kBenign[] = {
      "Thanks so much, I really appreciate your help with my homework today.",
      "By the way, the weather here has been lovely and we went for a walk in the park.",
      "Also, could you recommend a good recipe for banana bread afterwards?",
  };
  const std::string benign = kBenign[i % 3];
  std::vector<std::pair<std::string, std::string>> v;
  v.emplace_back("append benign sentence", t + " " + benign);
  v.emplace_back("append three benign sentences",
                 t + "\n\n" + kBenign[0] + " " + kBenign[1] + " " + kBenign[2]);
  v.emplace_back("prepend benign sentence", benign + " " + t);
  std::string upper = t, mixed = t;
  for (auto& c : upper)
    c = char(std::toupper(static_cast<unsigned char>(c)));
  for (size_t k = 0; k < mixed.size(); ++k)
    if (k % 2)
      mixed[k] = char(std::toupper(static_cast<unsigned char>(mixed[k])));
  v.emplace_back("upper case", upper);
  v.emplace_back("alternating case", mixed);
  std::string ws;
  for (char c : t)
    ws += c == ' ' ? std::string("   \t ") : std::string(1, c);
  v.emplace_back("extra whitespace", ws);
  std::string zw;
  for (size_t k = 0; k < t.size(); ++k) {
    zw += t[k];
    if (k % 3 == 2 && static_cast<unsigned char>(t[k]) < 0x80 &&
        std::isalpha(static_cast<unsigned char>(t[k])))
      zw += "\u200B";
  }
  v.emplace_back("zero-width characters", zw);
  v.emplace_back("base64-looking padding",
                 t + " " +
                     std::string("U29tZSByYW5kb20gcGFkZGluZyB0byBjb25mdXNlIHRoZSBjbGFzc2lmaWVy") +
                     "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE9PQ==");
  return v;
}

} // namespace

int cmd_train(const TrainArgs& a) {
  auto t0 = Clock::now();
  models::DatasetOptions dopt;
  dopt.task = a.task;
  dopt.small_models = models::default_small_models();
  dopt.include_options = a.include_options;
  std::vector<models::Example> all;
  for (const auto& file : a.data) {
    auto data = models::load_examples(file, dopt);
    if (!data) {
      std::fprintf(stderr, "train: %s\n", data.error().message.c_str());
      return 2;
    }
    std::fprintf(stderr, "read %zu records from %s\n", data->size(), file.c_str());
    all.insert(all.end(), std::make_move_iterator(data->begin()),
               std::make_move_iterator(data->end()));
  }
  Split s = split(std::move(all), a.holdout);
  std::fprintf(
      stderr, "train %s: %zu records, %zu for training, %zu held out (%.0f%% by id hash) [%.1fs]\n",
      a.task.c_str(), s.train.size() + s.holdout.size(), s.train.size(), s.holdout.size(),
      a.holdout * 100, secs_since(t0));
  if (s.train.empty()) {
    std::fprintf(stderr, "train: nothing left to train on after the held-out split\n");
    return 2;
  }
  models::LinearClassifierConfig cfg;
  cfg.task = a.task;
  cfg.labels = models::label_set(a.task, s.train);
  if (cfg.labels.size() < 2) {
    std::fprintf(stderr, "train: the training data has only one label (\"%s\")\n",
                 cfg.labels[0].c_str());
    return 2;
  }
  if (a.task == "complexity" || a.task == "reasoning" || a.task == "jailbreak")
    cfg.positive = 1;
  models::LinearTrainOptions to;
  task_defaults(a.task, a.window_words, cfg);
  if (a.buckets_log2)
    cfg.features.buckets_log2 = uint32_t(a.buckets_log2);
  if (a.epochs)
    to.epochs = a.epochs;
  to.seed = a.seed;

  // Binary tasks keep 10% of the training records (never the held-out ones) to calibrate.
  std::vector<models::Example> fit = s.train, calib;
  if (cfg.positive >= 0) {
    fit.clear();
    for (auto& e : s.train)
      (models::in_holdout("calib:" + e.split_key, 0.1) ? calib : fit).push_back(e);
  }
  models::FeatureHasher hasher(cfg.features);
  std::shared_ptr<const models::WordVectors> vectors;
  if (!a.vectors.empty()) {
    auto v = models::WordVectors::load(a.vectors);
    if (!v) {
      std::fprintf(stderr, "train: --vectors: %s\n", v.error().message.c_str());
      return 2;
    }
    vectors = *v;
    cfg.vectors = a.vectors;
    cfg.vector_scale = float(a.vector_scale);
  }
  // A classifier with no weights yet, only to featurize the training texts the way it will at run
  // time.
  models::LinearTextClassifier featurizer(cfg, {}, vectors);
  const uint32_t dim = models::LinearTextClassifier::feature_dim(hasher, vectors.get());
  std::vector<models::SparseVec> x(fit.size());
  std::vector<int> y = label_ids(fit, cfg.labels);
  {
    std::vector<std::string> words;
    for (size_t i = 0; i < fit.size(); ++i) {
      models::words_of(fit[i].text, words);
      featurizer.featurize(words, x[i]);
    }
  }
  // Records with a finer `kind` (the jailbreak pack): every kind weighs the same in its class, so
  // short, rare kinds (harmful requests) are not drowned by long, common ones.
  {
    std::map<std::string, double> per_kind;
    for (const auto& e : fit)
      per_kind[e.kind] += 1;
    if (per_kind.size() > 1 && !(per_kind.size() == 1 && per_kind.begin()->first.empty())) {
      to.sample_weights.resize(fit.size());
      double mean = double(fit.size()) / double(per_kind.size());
      for (size_t i = 0; i < fit.size(); ++i)
        to.sample_weights[i] = float(std::sqrt(mean / per_kind[fit[i].kind]));
    }
  }
  // Balance classes for binary tasks (inverse frequency).
  if (cfg.positive >= 0) {
    std::vector<double> cnt(cfg.labels.size(), 0);
    for (int v : y)
      cnt[size_t(v)] += 1;
    for (double c : cnt)
      to.class_weights.push_back(float(double(y.size()) / (double(cnt.size()) * std::max(1.0, c))));
  }
  std::fprintf(stderr, "features: 2^%u hashed buckets, %s%s[%.1fs]\n", cfg.features.buckets_log2,
               vectors ? fmt::format("{}-d SIF word vectors, ", vectors->dim()).c_str() : "",
               cfg.features.char_ngram_min
                   ? fmt::format("char {}-{} grams, ", cfg.features.char_ngram_min,
                                 cfg.features.char_ngram_max)
                         .c_str()
                   : "",
               secs_since(t0));
  to.progress = [&](int epoch, double loss) {
    std::fprintf(stderr, "epoch %d/%d  loss %.4f  [%.1fs]\n", epoch, to.epochs, loss,
                 secs_since(t0));
  };
  // Several seeds, weights averaged: for a linear model this is exactly the ensemble of their
  // logits, at the cost of one model. It removes most of the run-to-run spread.
  models::LinearModel lm;
  const int members = std::max(1, a.ensemble);
  for (int k = 0; k < members; ++k) {
    models::LinearTrainOptions tk = to;
    tk.seed = a.seed + uint64_t(k) * 1000003u;
    if (members > 1)
      std::fprintf(stderr, "ensemble member %d/%d (seed %llu)\n", k + 1, members,
                   (unsigned long long)tk.seed);
    auto mk = models::train_linear(x, y, dim, uint32_t(cfg.labels.size()), tk);
    if (k == 0) {
      lm = std::move(mk);
    } else {
      for (size_t i = 0; i < lm.w.size(); ++i)
        lm.w[i] += mk.w[i];
      for (size_t i = 0; i < lm.b.size(); ++i)
        lm.b[i] += mk.b[i];
    }
  }
  if (members > 1) {
    for (auto& v : lm.w)
      v /= float(members);
    for (auto& v : lm.b)
      v /= float(members);
  }
  models::LinearTextClassifier clf(cfg, std::move(lm), vectors);
  if (cfg.positive >= 0 && !calib.empty()) {
    // Calibrate the positive margin on the calibration slice, then pick the threshold.
    std::vector<double> margins;
    std::vector<int> cy;
    std::vector<std::string> words;
    std::vector<float> z;
    for (const auto& e : calib) {
      models::words_of(e.text, words);
      clf.logits(words, z);
      margins.push_back(double(z[1] - z[0]));
      cy.push_back(e.label == cfg.labels[1]);
    }
    clf.mutable_config().calibration = models::Platt::fit(margins, cy);
    if (a.task == "jailbreak") {
      std::vector<double> neg;
      for (const auto& e : calib)
        if (e.label == "benign")
          neg.push_back(clf.positive_probability(e.text));
      clf.mutable_config().threshold = threshold_for_fpr(neg, a.max_fpr);
    }
    std::fprintf(stderr, "calibrated on %zu records: a=%.3f b=%.3f threshold=%.3f\n", calib.size(),
                 clf.config().calibration->a, clf.config().calibration->b, clf.config().threshold);
  }
  if (auto st = clf.save(a.out, a.vectors); !st) {
    std::fprintf(stderr, "train: %s\n", st.error().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "saved %s [%.1fs]\n", a.out.c_str(), secs_since(t0));
  if (!s.holdout.empty()) {
    auto r = run_eval(clf, s.holdout);
    std::fprintf(stderr, "\nheld-out evaluation:\n");
    std::cout << r.to_text();
    std::ofstream(a.out + "/holdout_eval.json") << r.to_json().dump(2) << "\n";
  }
  return 0;
}

namespace {

// Language identification with a fastText model file (lid.176.ftz): accuracy over the labels
// present in the data (the model knows 176 languages; only those are scored).
int eval_fasttext_language(const EvalArgs& a) {
  auto lid = models::LanguageId::load(a.model_dir);
  if (!lid) {
    std::fprintf(stderr, "eval: %s\n", lid.error().message.c_str());
    return 1;
  }
  models::DatasetOptions dopt;
  dopt.task = "language";
  auto data = models::load_examples(a.data, dopt);
  if (!data) {
    std::fprintf(stderr, "eval: %s\n", data.error().message.c_str());
    return 2;
  }
  std::vector<std::string> labels = models::label_set("language", *data);
  labels.push_back("(other)");
  std::vector<int> truth, pred;
  std::vector<double> us;
  for (const auto& e : *data) {
    auto t0 = Clock::now();
    auto g = (*lid)->detect(e.text);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    truth.push_back(int(std::find(labels.begin(), labels.end(), e.label) - labels.begin()));
    auto it = std::find(labels.begin(), labels.end() - 1, g.code);
    pred.push_back(int(it - labels.begin()));
  }
  auto r = models::evaluate(labels, truth, pred);
  models::set_latency(r, us);
  if (a.json) {
    auto j = r.to_json();
    j["task"] = "language";
    j["data"] = a.data;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << r.to_text();
  }
  return 0;
}

} // namespace

// Sentence similarity: JSONL pairs {"a", "b", "label": paraphrase | related | unrelated}; reports
// the mean cosine per label and how well cosine ranks paraphrases above the others (ROC-AUC),
// with SIF weighting and, for comparison, the plain mean of the word vectors.
int eval_embeddings(const EvalArgs& a) {
  auto wv = models::WordVectors::load(a.model_dir);
  if (!wv) {
    std::fprintf(stderr, "eval: %s\n", wv.error().message.c_str());
    return 1;
  }
  std::ifstream f(a.data);
  if (!f) {
    std::fprintf(stderr, "eval: cannot open %s\n", a.data.c_str());
    return 2;
  }
  struct Pair {
    std::string a, b, label;
  };
  std::vector<Pair> pairs;
  std::string line;
  size_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    try {
      auto j = json::parse(line);
      pairs.push_back({j.at("a").get<std::string>(), j.at("b").get<std::string>(),
                       j.at("label").get<std::string>()});
    } catch (const std::exception& e) {
      std::fprintf(stderr, "eval: %s:%zu: %s\n", a.data.c_str(), n, e.what());
      return 2;
    }
  }
  json out = {{"task", "embeddings"}, {"data", a.data}, {"pairs", pairs.size()}};
  std::string text;
  for (bool sif : {true, false}) {
    std::map<std::string, std::vector<double>> cos;
    std::vector<double> us;
    std::vector<float> va, vb;
    for (const auto& p : pairs) {
      auto t0 = Clock::now();
      (*wv)->embed_one(p.a, va, sif);
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      (*wv)->embed_one(p.b, vb, sif);
      cos[p.label].push_back(models::cosine(va, vb));
    }
    auto auc = [&](const std::string& pos, const std::string& neg) {
      std::vector<double> s;
      std::vector<int> y;
      for (double c : cos[pos])
        s.push_back(c), y.push_back(1);
      for (double c : cos[neg])
        s.push_back(c), y.push_back(0);
      return models::roc_auc(s, y);
    };
    json m = json::object();
    std::string name = sif ? "sif" : "plain_mean";
    text += fmt::format("{}:\n", sif ? "SIF (weighted, common component removed)"
                                     : "plain mean of word vectors");
    for (auto& [label, v] : cos) {
      double mean = 0;
      for (double c : v)
        mean += c;
      mean /= double(std::max<size_t>(1, v.size()));
      m["mean_cosine"][label] = mean;
      text += fmt::format("  mean cosine {:<10} {:.3f} (n={})\n", label, mean, v.size());
    }
    m["auc_paraphrase_vs_unrelated"] = auc("paraphrase", "unrelated");
    m["auc_paraphrase_vs_related"] = auc("paraphrase", "related");
    m["auc_related_vs_unrelated"] = auc("related", "unrelated");
    models::EvalReport lat;
    models::set_latency(lat, us);
    m["latency_us"] = {{"p50", lat.latency_p50_us}, {"p99", lat.latency_p99_us}};
    text += fmt::format(
        "  ROC-AUC paraphrase vs unrelated {:.3f}, paraphrase vs related {:.3f}, related vs "
        "unrelated {:.3f}\n  latency per text p50 {:.1f} us\n",
        m["auc_paraphrase_vs_unrelated"].get<double>(),
        m["auc_paraphrase_vs_related"].get<double>(), m["auc_related_vs_unrelated"].get<double>(),
        lat.latency_p50_us);
    out[name] = m;
  }
  std::cout << (a.json ? out.dump(2) + "\n" : text);
  return 0;
}

int cmd_eval(const EvalArgs& a) {
  if (a.task == "language" && std::filesystem::is_regular_file(a.model_dir))
    return eval_fasttext_language(a);
  if (a.task == "embeddings")
    return eval_embeddings(a);
  auto m = models::LinearTextClassifier::load(a.model_dir);
  if (!m) {
    std::fprintf(stderr, "eval: %s\n", m.error().message.c_str());
    return 1;
  }
  if (!(*m)->config().task.empty() && (*m)->config().task != a.task) {
    std::fprintf(stderr, "eval: %s holds a \"%s\" model, not \"%s\"\n", a.model_dir.c_str(),
                 (*m)->config().task.c_str(), a.task.c_str());
    return 2;
  }
  models::DatasetOptions dopt;
  dopt.task = a.task;
  dopt.small_models = models::default_small_models();
  dopt.include_options = a.include_options;
  auto data = models::load_examples(a.data, dopt);
  if (!data) {
    std::fprintf(stderr, "eval: %s\n", data.error().message.c_str());
    return 2;
  }
  std::vector<models::Example> ex;
  for (auto& e : *data)
    if (a.split == "all" || models::in_holdout(e.split_key, a.holdout))
      ex.push_back(std::move(e));
  size_t known = 0;
  for (const auto& e : ex)
    known +=
        std::find((*m)->labels().begin(), (*m)->labels().end(), e.label) != (*m)->labels().end();
  if (known == 0) {
    std::fprintf(stderr, "eval: no record has a label the model knows\n");
    return 2;
  }
  auto r = run_eval(**m, ex);
  json j = r.to_json();
  std::string adv_text;
  if (a.adversarial) {
    // Recall on adversarial variants of the attacks, false-positive rate on the same variants of
    // benign prompts.
    const auto& cfg = (*m)->config();
    if (cfg.positive < 0) {
      std::fprintf(stderr, "eval: --adversarial needs a binary model (jailbreak)\n");
      return 2;
    }
    const std::string& pos = cfg.labels[size_t(cfg.positive)];
    std::map<std::string, std::pair<double, double>> hit,
        n; // variant -> (positives caught, benign flagged)
    for (size_t i = 0; i < ex.size(); ++i) {
      bool is_pos = ex[i].label == pos;
      for (auto& [name, text] : adversarial_variants(ex[i].text, i)) {
        bool flagged = (*m)->classify_one(text).label_id == cfg.positive;
        if (is_pos) {
          hit[name].first += flagged;
          n[name].first += 1;
        } else {
          hit[name].second += flagged;
          n[name].second += 1;
        }
      }
    }
    json adv = json::object();
    std::string& text = adv_text;
    text = "\nadversarial variants              recall    FPR\n";
    for (auto& [name, h] : hit) {
      double rec = n[name].first ? h.first / n[name].first : 0,
             fpr = n[name].second ? h.second / n[name].second : 0;
      adv[name] = {{"recall", rec},
                   {"false_positive_rate", fpr},
                   {"positives", n[name].first},
                   {"negatives", n[name].second}};
      text += fmt::format("  {:<30}  {:.4f}  {:.4f}\n", name, rec, fpr);
    }
    j["adversarial"] = adv;
  }
  j["skipped_unknown_label"] = ex.size() - known;
  j["task"] = a.task;
  j["data"] = a.data;
  j["split"] = a.split;
  if (a.json)
    std::cout << j.dump(2) << "\n";
  else
    std::cout << "\n"
              << r.to_text()
              << (ex.size() > known
                      ? fmt::format("({} records with unknown labels skipped)\n", ex.size() - known)
                      : "")
              << adv_text;
  return 0;
}

} // namespace semrouter::app
