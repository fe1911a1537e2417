#include "models/quality_router.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "models/dataset.h"
#include "models/transformer.h"
#include "models/word_vectors.h"
#include "nn/safetensors.h"

namespace semrouter::models {
namespace {

using core::ErrorCode;
using core::make_error;
using json = nlohmann::json;
constexpr float kUnknown = -1.0f; // stored outcome of a model that did not answer

float sigmoid(float z) {
  return 1.0f / (1.0f + std::exp(-z));
}

void normalize(std::vector<float>& v) {
  double n = 0;
  for (float x : v)
    n += double(x) * x;
  if (n > 0) {
    float inv = float(1.0 / std::sqrt(n));
    for (float& x : v)
      x *= inv;
  }
}

std::string id_string(const json& j) {
  return j.is_string() ? j.get<std::string>() : j.dump();
}

} // namespace

int OutcomeSet::model_index(std::string_view name) const {
  for (size_t i = 0; i < models.size(); ++i)
    if (models[i] == name)
      return int(i);
  return -1;
}

core::StatusOr<OutcomeSet> load_outcomes(const std::string& path) {
  struct Raw {
    std::string id, text, category;
    std::map<std::string, float> scores;
  };
  std::vector<Raw> raw;
  std::set<std::string> names;
  auto st = for_each_json_record(path, [&](const json& r) -> core::Status {
    if (!r.is_object())
      return make_error(ErrorCode::InvalidArgument, "a record must be a JSON object");
    Raw x;
    const json* scores = nullptr;
    if (r.contains("question") && r["question"].is_string() && r.contains("correct")) {
      x.text = r["question"].get<std::string>();
      if (r.contains("options") && r["options"].is_array()) {
        char letter = 'A';
        for (const auto& o : r["options"])
          x.text +=
              fmt::format("\n{}. {}", letter++, o.is_string() ? o.get<std::string>() : o.dump());
      }
      scores = &r["correct"];
    } else {
      const char* key = r.contains("prompt") ? "prompt" : "text";
      if (!r.contains(key) || !r[key].is_string())
        return make_error(ErrorCode::InvalidArgument,
                          "needs \"prompt\" (or \"text\") and \"scores\", or the MMLU-Pro "
                          "\"question\" and \"correct\"");
      x.text = r[key].get<std::string>();
      if (!r.contains("scores"))
        return make_error(ErrorCode::InvalidArgument, "needs \"scores\": {\"model\": score}");
      scores = &r["scores"];
    }
    if (!scores->is_object())
      return make_error(ErrorCode::InvalidArgument, "scores/correct must be an object");
    for (auto it = scores->begin(); it != scores->end(); ++it) {
      names.insert(it.key());
      if (it->is_null())
        continue;
      double v = it->is_boolean()  ? double(it->get<bool>())
                 : it->is_number() ? it->get<double>()
                                   : -1;
      if (!(v >= 0 && v <= 1))
        return make_error(ErrorCode::InvalidArgument,
                          fmt::format("score of \"{}\" must be a number in [0, 1], true/false or "
                                      "null; got {}",
                                      it.key(), it->dump()));
      x.scores[it.key()] = float(v);
    }
    x.id = r.contains("id") ? id_string(r["id"]) : x.text;
    if (r.contains("category") && r["category"].is_string())
      x.category = r["category"].get<std::string>();
    raw.push_back(std::move(x));
    return {};
  });
  if (!st)
    return tl::unexpected(st.error());
  if (raw.empty() || names.empty())
    return make_error(ErrorCode::InvalidArgument, path + ": no records with model outcomes");
  OutcomeSet out;
  out.models.assign(names.begin(), names.end());
  out.rows.reserve(raw.size());
  for (auto& r : raw) {
    Outcome o{std::move(r.id), std::move(r.text), std::move(r.category),
              std::vector<float>(out.models.size(), std::numeric_limits<float>::quiet_NaN())};
    for (size_t m = 0; m < out.models.size(); ++m)
      if (auto it = r.scores.find(out.models[m]); it != r.scores.end())
        o.scores[m] = it->second;
    out.rows.push_back(std::move(o));
  }
  return out;
}

bool router_holdout(const std::string& id) {
  return in_holdout("id:" + id, 0.2);
}

core::StatusOr<QualityRouterKind> parse_router_kind(std::string_view s) {
  if (s == "knn")
    return QualityRouterKind::Knn;
  if (s == "mf")
    return QualityRouterKind::Mf;
  if (s == "linear")
    return QualityRouterKind::Linear;
  if (s == "random")
    return QualityRouterKind::Random;
  return make_error(ErrorCode::InvalidArgument,
                    fmt::format("unknown router type \"{}\" (knn, mf, linear, random)", s));
}

const char* router_kind_name(QualityRouterKind k) {
  switch (k) {
  case QualityRouterKind::Knn:
    return "knn";
  case QualityRouterKind::Mf:
    return "mf";
  case QualityRouterKind::Linear:
    return "linear";
  case QualityRouterKind::Random:
    return "random";
  }
  return "?";
}

void QualityRouter::transpose_embeddings() {
  const size_t N = emb_.size() / size_t(dim_), D = size_t(dim_);
  emb_t_.resize(emb_.size());
  for (size_t i = 0; i < N; ++i)
    for (size_t d = 0; d < D; ++d)
      emb_t_[d * N + i] = emb_[i * D + d];
}

int QualityRouter::model_index(std::string_view name) const {
  for (size_t i = 0; i < models_.size(); ++i)
    if (models_[i] == name)
      return int(i);
  return -1;
}

void QualityRouter::embed(std::string_view text, std::vector<float>& out) const {
  out.assign(size_t(dim_), 0.0f);
  if (!embedder_)
    return;
  if (auto* wv = dynamic_cast<const WordVectors*>(embedder_.get())) {
    wv->embed_one(text, out);
  } else if (auto e = embedder_->embed({&text, 1}); e && !e->empty()) {
    out = std::move((*e)[0]);
  }
  normalize(out);
}

void QualityRouter::linear_features(std::string_view text, const std::vector<float>& e,
                                    SparseVec& x) const {
  FeatureHasher h(feat_);
  h.features(text, x);
  // The embedding as dense features after the hashed buckets (both halves unit length).
  const uint32_t base = h.dim();
  for (size_t k = 0; k < e.size(); ++k) {
    x.idx.push_back(base + uint32_t(k));
    x.val.push_back(e[k]);
  }
}

void QualityRouter::predict(std::string_view text, std::vector<float>& out) const {
  thread_local std::vector<float> e;
  if (kind_ != QualityRouterKind::Random)
    embed(text, e);
  predict_embedded(text, e, out);
}

void QualityRouter::predict_embedded(std::string_view text, const std::vector<float>& e,
                                     std::vector<float>& out) const {
  const size_t M = models_.size();
  out.assign(M, 0.0f);
  switch (kind_) {
  case QualityRouterKind::Random: {
    // A pseudo-random value per (text, model): the same prompt always gets the same answer.
    uint64_t h = fnv1a(text, 0x9e3779b97f4a7c15ull + seed_);
    for (size_t m = 0; m < M; ++m) {
      uint64_t z = h + 0x9e3779b97f4a7c15ull * (m + 1); // splitmix64
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      out[m] = float(double(z >> 11) * 0x1.0p-53);
    }
    return;
  }
  case QualityRouterKind::Knn: {
    const size_t N = outcomes_.size() / M;
    // Similarities as `dim` saxpy passes over the transposed table (vectorises without
    // reassociating a dot product).
    thread_local std::vector<float> sim;
    sim.assign(N, 0.0f);
    for (int64_t d = 0; d < dim_; ++d) {
      const float ed = e[size_t(d)];
      const float* col = &emb_t_[size_t(d) * N];
      for (size_t i = 0; i < N; ++i)
        sim[i] += ed * col[i];
    }
    thread_local std::vector<std::pair<float, uint32_t>> top;
    top.resize(N);
    for (size_t i = 0; i < N; ++i)
      top[i] = {sim[i], uint32_t(i)};
    size_t k = std::min<size_t>(size_t(k_), N);
    std::nth_element(top.begin(), top.begin() + long(k - 1), top.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    // Similarity-weighted mean outcome, shrunk toward the model's prior (2 pseudo-counts).
    constexpr float kPrior = 2.0f;
    for (size_t m = 0; m < M; ++m) {
      float num = kPrior * prior_[m], den = kPrior;
      for (size_t j = 0; j < k; ++j) {
        float y = outcomes_[size_t(top[j].second) * M + m];
        if (y < 0)
          continue;
        float w = std::max(top[j].first, 0.0f);
        w *= w;
        num += w * y;
        den += w;
      }
      out[m] = num / den;
    }
    return;
  }
  case QualityRouterKind::Mf: {
    thread_local std::vector<float> u;
    u.assign(size_t(rank_), 0.0f);
    for (int r = 0; r < rank_; ++r) {
      const float* p = &proj_[size_t(r) * size_t(dim_)];
      float s = 0;
      for (int64_t d = 0; d < dim_; ++d)
        s += p[d] * e[size_t(d)];
      u[size_t(r)] = s;
    }
    for (size_t m = 0; m < M; ++m) {
      float z = mbias_[m];
      for (int r = 0; r < rank_; ++r)
        z += mvec_[m * size_t(rank_) + size_t(r)] * u[size_t(r)];
      out[m] = sigmoid(z);
    }
    return;
  }
  case QualityRouterKind::Linear: {
    thread_local SparseVec x;
    linear_features(text, e, x);
    for (size_t m = 0; m < M; ++m)
      out[m] = lb_[m];
    for (size_t j = 0; j < x.idx.size(); ++j) {
      const float* w = &lw_[size_t(x.idx[j]) * M];
      const float v = x.val[j];
      for (size_t m = 0; m < M; ++m)
        out[m] += v * w[m];
    }
    for (size_t m = 0; m < M; ++m)
      out[m] = sigmoid(out[m]);
    return;
  }
  }
}

core::StatusOr<std::shared_ptr<QualityRouter>>
QualityRouter::train(const OutcomeSet& data, const std::vector<size_t>& rows,
                     std::shared_ptr<const Embedder> embedder, const std::string& embedder_type,
                     const std::string& embedder_path, const QualityRouterOptions& opts) {
  if (rows.empty())
    return make_error(ErrorCode::InvalidArgument, "no training prompts");
  if (!embedder && opts.kind != QualityRouterKind::Random)
    return make_error(ErrorCode::InvalidArgument, "the router needs an embedder");
  std::shared_ptr<QualityRouter> r(new QualityRouter());
  r->kind_ = opts.kind;
  r->models_ = data.models;
  r->embedder_ = std::move(embedder);
  r->embedder_type_ = embedder_type;
  r->embedder_path_ = embedder_path;
  r->dim_ = r->embedder_ ? r->embedder_->dim() : 0;
  r->k_ = opts.k;
  r->rank_ = opts.rank;
  r->seed_ = opts.seed;
  const size_t M = data.models.size(), N = rows.size();
  auto say = [&](const std::string& s) {
    if (opts.progress)
      opts.progress(s);
  };
  // Priors: each model's mean outcome on the training prompts.
  r->prior_.assign(M, 0.5f);
  for (size_t m = 0; m < M; ++m) {
    double sum = 0, n = 0;
    for (size_t i : rows)
      if (!std::isnan(data.rows[i].scores[m]))
        sum += data.rows[i].scores[m], n += 1;
    if (n > 0)
      r->prior_[m] = float(std::clamp(sum / n, 0.01, 0.99));
  }
  if (opts.kind == QualityRouterKind::Random)
    return r;
  // Embeddings of every training prompt.
  std::vector<std::vector<float>> E(N);
  for (size_t j = 0; j < N; ++j) {
    r->embed(data.rows[rows[j]].text, E[j]);
    if ((j + 1) % 2000 == 0 || j + 1 == N)
      say(fmt::format("embedded {}/{} prompts", j + 1, N));
  }
  std::mt19937_64 rng(opts.seed);
  // A validation slice of the training prompts (10% by a salted hash of the id) picks k, or the
  // epoch to stop at; the caller's held-out prompts are never looked at.
  std::vector<size_t> order, val;
  for (size_t j = 0; j < N; ++j)
    (in_holdout("router-validation:" + data.rows[rows[j]].id, 0.1) ? val : order).push_back(j);
  if (order.empty() || val.empty())
    order.resize(N), std::iota(order.begin(), order.end(), 0), val.clear();
  auto val_loss = [&]() {
    double loss = 0, n = 0;
    std::vector<float> p;
    for (size_t j : val) {
      r->predict_embedded(data.rows[rows[j]].text, E[j], p);
      const auto& y = data.rows[rows[j]].scores;
      for (size_t m = 0; m < M; ++m) {
        if (std::isnan(y[m]))
          continue;
        float q = std::clamp(p[m], 1e-6f, 1 - 1e-6f);
        loss -= y[m] * std::log(q) + (1 - y[m]) * std::log(1 - q);
        n += 1;
      }
    }
    return n > 0 ? loss / n : 0.0;
  };

  if (opts.kind == QualityRouterKind::Knn) {
    auto build = [&](const std::vector<size_t>& use) {
      r->emb_.resize(use.size() * size_t(r->dim_));
      r->outcomes_.resize(use.size() * M);
      for (size_t t = 0; t < use.size(); ++t) {
        const size_t j = use[t];
        std::copy(E[j].begin(), E[j].end(), r->emb_.begin() + long(t * size_t(r->dim_)));
        for (size_t m = 0; m < M; ++m) {
          float y = data.rows[rows[j]].scores[m];
          r->outcomes_[t * M + m] = std::isnan(y) ? kUnknown : y;
        }
      }
      r->transpose_embeddings();
    };
    if (opts.k > 0) {
      r->k_ = opts.k; // asked for explicitly
    } else if (!val.empty()) {
      build(order);
      double best = 1e300;
      r->k_ = 100;
      for (int k : {10, 25, 50, 100, 200, 400}) {
        int saved = r->k_;
        r->k_ = k;
        double l = val_loss();
        say(fmt::format("knn k={}: validation loss {:.4f}", k, l));
        if (l < best)
          best = l;
        else
          r->k_ = saved;
      }
    } else {
      r->k_ = 100; // too little data to choose
    }
    say(fmt::format("knn: k={}", r->k_));
    std::vector<size_t> all(N);
    std::iota(all.begin(), all.end(), 0);
    build(all);
    return r;
  }

  if (opts.kind == QualityRouterKind::Mf) {
    const size_t R = size_t(opts.rank), D = size_t(r->dim_);
    std::normal_distribution<float> init(0.0f, 0.1f);
    r->proj_.resize(R * D);
    for (float& p : r->proj_)
      p = init(rng);
    r->mvec_.resize(M * R);
    for (float& v : r->mvec_)
      v = init(rng);
    r->mbias_.resize(M);
    for (size_t m = 0; m < M; ++m)
      r->mbias_[m] = std::log(r->prior_[m] / (1 - r->prior_[m]));
    const float lr = 0.05f, l2 = 1e-4f;
    std::vector<float> u(R), gu(R);
    double best_val = 1e300;
    int best_epoch = 0;
    std::tuple<std::vector<float>, std::vector<float>, std::vector<float>> best;
    for (int ep = 0; ep < opts.epochs; ++ep) {
      std::shuffle(order.begin(), order.end(), rng);
      double loss = 0, count = 0;
      for (size_t j : order) {
        const auto& y = data.rows[rows[j]].scores;
        const auto& e = E[j];
        for (size_t k = 0; k < R; ++k) {
          float s = 0;
          for (size_t d = 0; d < D; ++d)
            s += r->proj_[k * D + d] * e[d];
          u[k] = s;
        }
        std::fill(gu.begin(), gu.end(), 0.0f);
        for (size_t m = 0; m < M; ++m) {
          if (std::isnan(y[m]))
            continue;
          float* v = &r->mvec_[m * R];
          float z = r->mbias_[m];
          for (size_t k = 0; k < R; ++k)
            z += v[k] * u[k];
          float p = sigmoid(z), g = p - y[m];
          loss += -(y[m] * std::log(std::max(p, 1e-7f)) +
                    (1 - y[m]) * std::log(std::max(1 - p, 1e-7f)));
          count += 1;
          for (size_t k = 0; k < R; ++k) {
            gu[k] += g * v[k];
            v[k] -= lr * (g * u[k] + l2 * v[k]);
          }
          r->mbias_[m] -= lr * g;
        }
        for (size_t k = 0; k < R; ++k)
          for (size_t d = 0; d < D; ++d)
            r->proj_[k * D + d] -= lr * (gu[k] * e[d] + l2 * r->proj_[k * D + d]);
      }
      double vl = val_loss();
      say(fmt::format("mf epoch {}/{}: loss {:.4f}, validation {:.4f}", ep + 1, opts.epochs,
                      loss / std::max(count, 1.0), vl));
      if (vl < best_val) {
        best_val = vl;
        best = {r->proj_, r->mvec_, r->mbias_};
        best_epoch = ep + 1;
      }
    }
    if (best_epoch > 0) {
      std::tie(r->proj_, r->mvec_, r->mbias_) = best;
      say(fmt::format("mf: kept epoch {} (lowest validation loss)", best_epoch));
    }
    return r;
  }

  // Linear: multi-label logistic regression, AdaGrad, one pass per epoch in a seeded order.
  r->feat_.buckets_log2 = opts.buckets_log2;
  r->feat_.word_bigrams = true;
  r->feat_.char_ngram_min = 0;
  r->feat_.char_ngram_max = 0;
  r->feat_dim_ = (1u << opts.buckets_log2) + uint32_t(r->dim_);
  r->lw_.assign(size_t(r->feat_dim_) * M, 0.0f);
  r->lb_.resize(M);
  for (size_t m = 0; m < M; ++m)
    r->lb_[m] = std::log(r->prior_[m] / (1 - r->prior_[m]));
  std::vector<SparseVec> X(N);
  for (size_t j = 0; j < N; ++j)
    r->linear_features(data.rows[rows[j]].text, E[j], X[j]);
  std::vector<float> G(r->lw_.size(), 1e-6f), Gb(M, 1e-6f);
  const float lr = 0.2f, l2 = 1e-6f;
  std::vector<float> z(M);
  double best_val = 1e300;
  int best_epoch = 0;
  std::vector<float> best_w, best_b;
  for (int ep = 0; ep < opts.epochs; ++ep) {
    std::shuffle(order.begin(), order.end(), rng);
    double loss = 0, count = 0;
    for (size_t j : order) {
      const auto& y = data.rows[rows[j]].scores;
      const SparseVec& x = X[j];
      for (size_t m = 0; m < M; ++m)
        z[m] = r->lb_[m];
      for (size_t t = 0; t < x.idx.size(); ++t) {
        const float* w = &r->lw_[size_t(x.idx[t]) * M];
        for (size_t m = 0; m < M; ++m)
          z[m] += x.val[t] * w[m];
      }
      for (size_t m = 0; m < M; ++m) {
        if (std::isnan(y[m])) {
          z[m] = 0; // no gradient
          continue;
        }
        float p = sigmoid(z[m]);
        loss +=
            -(y[m] * std::log(std::max(p, 1e-7f)) + (1 - y[m]) * std::log(std::max(1 - p, 1e-7f)));
        count += 1;
        z[m] = p - y[m];
        Gb[m] += z[m] * z[m];
        r->lb_[m] -= lr * z[m] / std::sqrt(Gb[m]);
      }
      for (size_t t = 0; t < x.idx.size(); ++t) {
        float* w = &r->lw_[size_t(x.idx[t]) * M];
        float* g2 = &G[size_t(x.idx[t]) * M];
        for (size_t m = 0; m < M; ++m) {
          if (z[m] == 0)
            continue;
          float g = z[m] * x.val[t] + l2 * w[m];
          g2[m] += g * g;
          w[m] -= lr * g / std::sqrt(g2[m]);
        }
      }
    }
    double vl = val_loss();
    say(fmt::format("linear epoch {}/{}: loss {:.4f}, validation {:.4f}", ep + 1, opts.epochs,
                    loss / std::max(count, 1.0), vl));
    if (vl < best_val) {
      best_val = vl;
      best_w = r->lw_;
      best_b = r->lb_;
      best_epoch = ep + 1;
    }
  }
  if (best_epoch > 0) {
    r->lw_ = std::move(best_w);
    r->lb_ = std::move(best_b);
    say(fmt::format("linear: kept epoch {} (lowest validation loss)", best_epoch));
  }
  return r;
}

core::Status QualityRouter::save(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return make_error(ErrorCode::Internal, fmt::format("cannot create {}: {}", dir, ec.message()));
  json cfg = {{"format", "semrouter-quality-router"},
              {"version", 1},
              {"type", router_kind_name(kind_)},
              {"models", models_},
              {"prior", prior_},
              {"seed", seed_},
              {"embeddings", {{"type", embedder_type_}, {"path", embedder_path_}, {"dim", dim_}}}};
  nn::TensorMap t;
  const int64_t M = int64_t(models_.size());
  if (kind_ == QualityRouterKind::Knn) {
    cfg["k"] = k_;
    const int64_t N = int64_t(outcomes_.size()) / M;
    t["embeddings"] = {{N, dim_}, emb_};
    t["outcomes"] = {{N, M}, outcomes_};
  } else if (kind_ == QualityRouterKind::Mf) {
    cfg["rank"] = rank_;
    t["projection"] = {{rank_, dim_}, proj_};
    t["model_vectors"] = {{M, rank_}, mvec_};
    t["model_bias"] = {{M}, mbias_};
  } else if (kind_ == QualityRouterKind::Linear) {
    cfg["buckets_log2"] = feat_.buckets_log2;
    t["weight"] = {{int64_t(feat_dim_), M}, lw_};
    t["bias"] = {{M}, lb_};
  }
  if (!t.empty())
    if (auto st = nn::write_safetensors(dir + "/router.safetensors", t, nn::DType::F16); !st)
      return st;
  std::ofstream out(dir + "/config.json");
  out << cfg.dump(2) << "\n";
  if (!out)
    return make_error(ErrorCode::Internal, "cannot write " + dir + "/config.json");
  return {};
}

core::StatusOr<std::shared_ptr<const QualityRouter>>
QualityRouter::load(const std::string& dir, std::shared_ptr<const Embedder> embedder) {
  // A hand-edited config.json with a wrong type must be an error, not an exception.
  try {
    return load_checked(dir, std::move(embedder));
  } catch (const std::exception& e) {
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("router {}: config.json: {}", dir, e.what()));
  }
}

core::StatusOr<std::shared_ptr<const QualityRouter>>
QualityRouter::load_checked(const std::string& dir, std::shared_ptr<const Embedder> embedder) {
  auto fail = [&](const std::string& m) {
    return make_error(ErrorCode::InvalidArgument, fmt::format("router {}: {}", dir, m));
  };
  std::ifstream in(dir + "/config.json");
  if (!in)
    return make_error(ErrorCode::NotFound, fmt::format("router {}: no config.json", dir));
  json cfg;
  try {
    in >> cfg;
  } catch (const json::exception& e) {
    return fail(std::string("config.json: ") + e.what());
  }
  if (cfg.value("format", "") != "semrouter-quality-router")
    return fail("config.json is not a semrouter quality router (format)");
  std::shared_ptr<QualityRouter> r(new QualityRouter());
  auto kind = parse_router_kind(cfg.value("type", ""));
  if (!kind)
    return fail(kind.error().message);
  r->kind_ = *kind;
  r->models_ = cfg.value("models", std::vector<std::string>{});
  r->prior_ = cfg.value("prior", std::vector<float>{});
  r->seed_ = cfg.value("seed", uint64_t(7));
  if (r->models_.empty() || r->prior_.size() != r->models_.size())
    return fail("models and prior must be non-empty and of the same length");
  const int64_t M = int64_t(r->models_.size());
  const json emb = cfg.value("embeddings", json::object());
  r->embedder_type_ = emb.value("type", "");
  r->embedder_path_ = emb.value("path", "");
  r->dim_ = emb.value("dim", int64_t(0));
  if (r->kind_ == QualityRouterKind::Random)
    return std::shared_ptr<const QualityRouter>(r);
  if (embedder) {
    r->embedder_ = std::move(embedder);
  } else {
    std::filesystem::path p(r->embedder_path_);
    std::string path =
        p.is_absolute() ? r->embedder_path_ : (std::filesystem::path(dir) / p).string();
    if (r->embedder_type_ == "word_vectors") {
      auto wv = WordVectors::load_shared(path);
      if (!wv)
        return fail("embeddings: " + wv.error().message);
      r->embedder_ = *wv;
    } else if (r->embedder_type_ == "transformer") {
      auto tm = TransformerModel::load(path, {});
      if (!tm)
        return fail("embeddings: " + tm.error().message);
      r->embedder_ = *tm;
    } else {
      return fail("embeddings.type must be word_vectors or transformer");
    }
  }
  if (r->embedder_->dim() != r->dim_)
    return fail(fmt::format("the embedder gives {} dimensions; the router was trained on {}",
                            r->embedder_->dim(), r->dim_));
  auto st = nn::SafeTensors::open(dir + "/router.safetensors");
  if (!st)
    return fail(st.error().message);
  auto get = [&](const std::string& name, const std::vector<int64_t>& shape,
                 std::vector<float>& out) -> core::Status {
    auto v = (*st)->to_f32(name, shape);
    if (!v)
      return tl::unexpected(v.error());
    out = std::move(*v);
    return {};
  };
  core::Status s;
  if (r->kind_ == QualityRouterKind::Knn) {
    r->k_ = cfg.value("k", 100);
    if (r->k_ < 1)
      return fail("k must be at least 1");
    auto it = (*st)->tensors().find("outcomes");
    if (it == (*st)->tensors().end() || it->second.shape.size() != 2)
      return fail("router.safetensors has no [N, M] outcomes");
    const int64_t N = it->second.shape[0];
    if (!(s = get("embeddings", {N, r->dim_}, r->emb_)) ||
        !(s = get("outcomes", {N, M}, r->outcomes_)))
      return fail(s.error().message);
    r->transpose_embeddings();
  } else if (r->kind_ == QualityRouterKind::Mf) {
    r->rank_ = cfg.value("rank", 16);
    if (r->rank_ < 1 || r->rank_ > 4096)
      return fail("rank must be between 1 and 4096");
    if (!(s = get("projection", {r->rank_, r->dim_}, r->proj_)) ||
        !(s = get("model_vectors", {M, r->rank_}, r->mvec_)) ||
        !(s = get("model_bias", {M}, r->mbias_)))
      return fail(s.error().message);
  } else {
    r->feat_.buckets_log2 = cfg.value("buckets_log2", 16u);
    if (r->feat_.buckets_log2 < 8 || r->feat_.buckets_log2 > 24)
      return fail("buckets_log2 must be between 8 and 24");
    r->feat_.word_bigrams = true;
    r->feat_.char_ngram_min = 0;
    r->feat_.char_ngram_max = 0;
    r->feat_dim_ = (1u << r->feat_.buckets_log2) + uint32_t(r->dim_);
    if (!(s = get("weight", {int64_t(r->feat_dim_), M}, r->lw_)) || !(s = get("bias", {M}, r->lb_)))
      return fail(s.error().message);
  }
  return std::shared_ptr<const QualityRouter>(r);
}

// ---- evaluation ----

namespace {

// Curve of routing the top-scored prompts to the strong model, at every share k/n.
std::vector<CurvePoint> curve_of(const std::vector<double>& score, const std::vector<float>& s,
                                 const std::vector<float>& w, double qs, double qw) {
  const size_t n = score.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return score[a] > score[b]; });
  std::vector<CurvePoint> c(n + 1);
  double sum_w = 0;
  for (size_t i = 0; i < n; ++i)
    sum_w += w[i];
  const double gap = qs - qw;
  c[0] = {0.0, sum_w / double(n), 0.0, std::numeric_limits<double>::infinity()};
  c[0].pgr = gap != 0 ? (c[0].quality - qw) / gap : 0;
  // Prompts with the same score cannot be told apart by any threshold: within a tie group the
  // curve takes the group's expected gain (random tie-breaking), not the file order.
  double q = sum_w;
  for (size_t g = 0; g < n;) {
    size_t e = g;
    double group_gain = 0;
    while (e < n && score[order[e]] == score[order[g]]) {
      group_gain += double(s[order[e]]) - double(w[order[e]]);
      ++e;
    }
    for (size_t k = g + 1; k <= e; ++k) {
      double taken = double(k - g) / double(e - g);
      c[k].share = double(k) / double(n);
      c[k].quality = (q + group_gain * taken) / double(n);
      c[k].pgr = gap != 0 ? (c[k].quality - qw) / gap : 0;
      c[k].threshold = score[order[g]];
    }
    q += group_gain;
    g = e;
  }
  return c;
}

double area(const std::vector<CurvePoint>& c) {
  double a = 0;
  for (size_t i = 1; i < c.size(); ++i)
    a += (c[i].share - c[i - 1].share) * (c[i].pgr + c[i - 1].pgr) / 2;
  return a;
}

double cpt(const std::vector<CurvePoint>& c, double x) {
  for (const auto& p : c)
    if (p.pgr >= x)
      return p.share;
  return 1.0;
}

} // namespace

PairEvaluation evaluate_pair(const std::string& strong_name, const std::string& weak_name,
                             const std::vector<double>& scores, const std::vector<float>& strong,
                             const std::vector<float>& weak) {
  PairEvaluation e;
  e.strong = strong_name;
  e.weak = weak_name;
  std::vector<double> sc;
  std::vector<float> s, w;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(strong[i]) || std::isnan(weak[i]))
      continue;
    sc.push_back(scores[i]);
    s.push_back(strong[i]);
    w.push_back(weak[i]);
  }
  e.n = sc.size();
  if (e.n == 0)
    return e;
  for (size_t i = 0; i < e.n; ++i)
    e.q_strong += s[i], e.q_weak += w[i];
  e.q_strong /= double(e.n);
  e.q_weak /= double(e.n);
  e.curve = curve_of(sc, s, w, e.q_strong, e.q_weak);
  std::vector<double> gain(e.n);
  for (size_t i = 0; i < e.n; ++i)
    gain[i] = double(s[i]) - double(w[i]);
  e.oracle = curve_of(gain, s, w, e.q_strong, e.q_weak);
  e.apgr = area(e.curve);
  e.oracle_apgr = area(e.oracle);
  e.cpt50 = cpt(e.curve, 0.5);
  e.cpt80 = cpt(e.curve, 0.8);
  e.oracle_cpt50 = cpt(e.oracle, 0.5);
  e.oracle_cpt80 = cpt(e.oracle, 0.8);
  return e;
}

std::vector<FrontierPoint> utility_frontier(const std::vector<std::vector<float>>& predicted,
                                            const std::vector<std::vector<float>>& truth,
                                            const std::vector<double>& costs) {
  std::vector<FrontierPoint> out;
  double max_cost = *std::max_element(costs.begin(), costs.end());
  if (max_cost <= 0)
    max_cost = 1;
  // λ as selection.lambda reads it: predicted success per the dearest model's cost.
  for (int i = 0; i <= 60; ++i) {
    double lambda = i == 0 ? 0 : std::pow(10.0, -2 + 3.0 * (i - 1) / 59.0);
    FrontierPoint p;
    p.lambda = lambda;
    size_t n = 0;
    for (size_t j = 0; j < predicted.size(); ++j) {
      size_t best = 0;
      double best_u = -1e300;
      for (size_t m = 0; m < costs.size(); ++m) {
        double u = predicted[j][m] - lambda * costs[m] / max_cost;
        if (u > best_u)
          best_u = u, best = m;
      }
      if (std::isnan(truth[j][best]))
        continue;
      p.cost += costs[best];
      p.quality += truth[j][best];
      ++n;
    }
    if (n) {
      p.cost /= double(n);
      p.quality /= double(n);
    }
    out.push_back(p);
  }
  return out;
}

std::string svg_chart(const std::string& title, const std::string& x_label,
                      const std::string& y_label, const std::vector<Series>& series, double x_min,
                      double x_max, double y_min, double y_max) {
  const double W = 640, H = 420, L = 60, R = 170, T = 40, B = 50;
  auto X = [&](double x) { return L + (x - x_min) / (x_max - x_min) * (W - L - R); };
  auto Y = [&](double y) { return H - B - (y - y_min) / (y_max - y_min) * (H - T - B); };
  auto esc = [](const std::string& s) {
    std::string o;
    for (char c : s)
      o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
    return o;
  };
  std::string s =
      fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
                  "font-family=\"sans-serif\" "
                  "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
                  "<text x=\"{}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
                  W, H, L, esc(title));
  for (int i = 0; i <= 5; ++i) { // grid and ticks
    double fx = x_min + (x_max - x_min) * i / 5, fy = y_min + (y_max - y_min) * i / 5;
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", X(fx),
        Y(y_min), X(fx), Y(y_max));
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n",
        X(x_min), Y(fy), X(x_max), Y(fy));
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.3g}</text>\n",
                     X(fx), H - B + 16, fx);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.3g}</text>\n", L - 6,
                     Y(fy) + 4, fy);
  }
  s += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", L, T,
      W - L - R, H - T - B);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                   (L + W - R) / 2, H - 12, esc(x_label));
  s += fmt::format("<text x=\"14\" y=\"{:.1f}\" transform=\"rotate(-90 14 {:.1f})\" "
                   "text-anchor=\"middle\">{}</text>\n",
                   (T + H - B) / 2, (T + H - B) / 2, esc(y_label));
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& sr = series[k];
    std::string pts;
    for (const auto& [x, y] : sr.points)
      pts += fmt::format("{:.1f},{:.1f} ", X(x), Y(std::clamp(y, y_min, y_max)));
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n",
                     sr.colour, sr.dashed ? " stroke-dasharray=\"5,4\"" : "", pts);
    if (sr.markers)
      for (const auto& [x, y] : sr.points)
        s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", X(x),
                         Y(std::clamp(y, y_min, y_max)), sr.colour);
    double ly = T + 14 + 18 * double(k);
    s +=
        fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"{}\" "
                    "stroke-width=\"2\"{}/>\n<text x=\"{}\" y=\"{:.1f}\">{}</text>\n",
                    W - R + 10, ly, W - R + 34, ly, sr.colour,
                    sr.dashed ? " stroke-dasharray=\"5,4\"" : "", W - R + 40, ly + 4, esc(sr.name));
  }
  s += "</svg>\n";
  return s;
}

} // namespace semrouter::models
