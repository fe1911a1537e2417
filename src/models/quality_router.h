// Cost–quality routers (RouteLLM / Hybrid LLM style): for a prompt, each candidate model's chance
// of a good answer, learned from per-prompt outcome data. Four kinds:
//   knn     similarity-weighted outcomes of the k most similar training prompts (embeddings);
//   mf      matrix factorisation: learned model vectors against a projection of the embedding;
//   linear  a multi-label logistic classifier on hashed words and bigrams plus the embedding;
//   random  a uniform value per (prompt, model) from a hash of the prompt: the baseline.
// A pair's routing score is the predicted gain of the strong model, p(strong) − p(weak).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "models/features.h"
#include "models/linear.h"
#include "models/models.h"

namespace semrouter::models {

// Per-prompt outcomes of several models.
struct Outcome {
  std::string id;
  std::string text;
  std::string category;
  std::vector<float> scores; // per OutcomeSet::models index, in [0, 1]; NaN = not evaluated
};

struct OutcomeSet {
  std::vector<std::string> models;
  std::vector<Outcome> rows;
  int model_index(std::string_view name) const; // -1 if absent
};

// Reads JSONL (gzip or plain), one prompt per line, in either shape:
//   {"id": ..., "prompt" (or "text"): "...", "scores": {"model": 0.8, ...}}   (null: unknown)
//   the MMLU-Pro pack's {"id", "question", "options": [...], "category", "correct": {"m": 0|1}}
// (the prompt is the question and its lettered options, as a user would send it).
core::StatusOr<OutcomeSet> load_outcomes(const std::string& path);

// The router's held-out split: 20% of the ids, by hash; never trained or tuned on.
bool router_holdout(const std::string& id);

enum class QualityRouterKind { Knn, Mf, Linear, Random };
core::StatusOr<QualityRouterKind> parse_router_kind(std::string_view s);
const char* router_kind_name(QualityRouterKind k);

struct QualityRouterOptions {
  QualityRouterKind kind = QualityRouterKind::Linear;
  int k = 100;                // knn: neighbours
  int rank = 16;              // mf: latent dimension
  int epochs = 20;            // mf, linear
  uint32_t buckets_log2 = 16; // linear: hashed feature space
  uint64_t seed = 7;
  std::function<void(const std::string& line)> progress; // one line per epoch / phase
};

class QualityRouter {
public:
  // Trains on `rows` (indices into `data.rows`), embedding each prompt with `embedder`.
  // `embeddings_ref` is how the saved router names its embedder ({"type", "path"} relative to
  // the output folder), so load() finds it again.
  static core::StatusOr<std::shared_ptr<QualityRouter>>
  train(const OutcomeSet& data, const std::vector<size_t>& rows,
        std::shared_ptr<const Embedder> embedder, const std::string& embedder_type,
        const std::string& embedder_path, const QualityRouterOptions& opts);

  // Loads a folder written by save(): config.json + router.safetensors. The embedder comes from
  // the config (a word-vector folder or a transformer folder, relative to `dir`), unless
  // `embedder` is given.
  static core::StatusOr<std::shared_ptr<const QualityRouter>>
  load(const std::string& dir, std::shared_ptr<const Embedder> embedder = nullptr);
  core::Status save(const std::string& dir) const;

  const std::vector<std::string>& models() const { return models_; }
  int model_index(std::string_view name) const;
  QualityRouterKind kind() const { return kind_; }
  const std::string& embedder_type() const { return embedder_type_; }
  // P(good answer) for every model, in models() order. Thread-safe.
  void predict(std::string_view text, std::vector<float>& out) const;
  // The same from an embedding computed elsewhere (the linear kind also needs the text).
  void predict_embedded(std::string_view text, const std::vector<float>& embedding,
                        std::vector<float>& out) const;

private:
  QualityRouter() = default;
  static core::StatusOr<std::shared_ptr<const QualityRouter>>
  load_checked(const std::string& dir, std::shared_ptr<const Embedder> embedder);
  void embed(std::string_view text, std::vector<float>& out) const;
  void linear_features(std::string_view text, const std::vector<float>& e, SparseVec& x) const;

  QualityRouterKind kind_ = QualityRouterKind::Linear;
  std::vector<std::string> models_;
  std::vector<float> prior_; // per model: training mean
  std::shared_ptr<const Embedder> embedder_;
  std::string embedder_type_, embedder_path_;
  int64_t dim_ = 0; // embedding width
  // knn
  int k_ = 100;
  std::vector<float> emb_;   // [N, dim], L2-normalised (what is saved)
  std::vector<float> emb_t_; // [dim, N], the same transposed (what predict reads)
  void transpose_embeddings();
  std::vector<float> outcomes_; // [N, M], -1 = unknown
  // mf
  int rank_ = 16;
  std::vector<float> proj_;  // [rank, dim]
  std::vector<float> mvec_;  // [M, rank]
  std::vector<float> mbias_; // [M]
  // linear
  FeatureOptions feat_;
  uint32_t feat_dim_ = 0; // hashed buckets + dim_
  std::vector<float> lw_; // [feat_dim, M]
  std::vector<float> lb_; // [M]
  uint64_t seed_ = 7;
};

// ---- evaluation (RouteLLM's definitions) ----

// One point of a routing curve: the share of strong calls and the quality reached.
struct CurvePoint {
  double share = 0;
  double quality = 0;
  double pgr = 0;
  double threshold = 0; // the score at or above which prompts went to the strong model
};

struct PairEvaluation {
  std::string strong, weak;
  size_t n = 0; // prompts where both models have an outcome
  double q_strong = 0, q_weak = 0;
  std::vector<CurvePoint> curve;    // the router, share 0..1
  std::vector<CurvePoint> oracle;   // sorted by the true gain
  double apgr = 0, oracle_apgr = 0; // area under PGR vs share over [0, 1]
  double cpt50 = 1, cpt80 = 1;      // smallest share reaching PGR ≥ 0.5 / 0.8
  double oracle_cpt50 = 1, oracle_cpt80 = 1;
  // random router: PGR = share in expectation, so APGR 0.5, CPT(x) = x.
};

// scores[i] = the router's score of prompt i (higher: more in need of the strong model);
// strong[i], weak[i] = the true outcomes (NaN rows are skipped).
PairEvaluation evaluate_pair(const std::string& strong_name, const std::string& weak_name,
                             const std::vector<double>& scores, const std::vector<float>& strong,
                             const std::vector<float>& weak);

// The N-model cost–quality frontier of utility selection (argmax p − λ·cost / max cost, as a
// decision's selection computes it) over λ from 0 to 10.
struct FrontierPoint {
  double lambda = 0;
  double cost = 0;    // mean cost per prompt
  double quality = 0; // mean true outcome
};
std::vector<FrontierPoint> utility_frontier(const std::vector<std::vector<float>>& predicted,
                                            const std::vector<std::vector<float>>& truth,
                                            const std::vector<double>& costs);

// An SVG line chart: each series is (name, colour, points (x, y)).
struct Series {
  std::string name, colour;
  std::vector<std::pair<double, double>> points;
  bool dashed = false;
  bool markers = false;
};
std::string svg_chart(const std::string& title, const std::string& x_label,
                      const std::string& y_label, const std::vector<Series>& series, double x_min,
                      double x_max, double y_min, double y_max);

} // namespace semrouter::models
