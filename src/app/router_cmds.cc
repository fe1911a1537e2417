// `semrouter train router`, `semrouter eval router` and `semrouter calibrate`: cost–quality
// routers trained on per-prompt outcomes, measured with RouteLLM's PGR / APGR / CPT.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "models/dataset.h"
#include "models/quality_router.h"
#include "models/registry.h"
#include "models/transformer.h"
#include "models/word_vectors.h"

namespace semrouter::app {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double secs_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

core::StatusOr<models::OutcomeSet> load_all(const std::vector<std::string>& files) {
  models::OutcomeSet all;
  for (const auto& f : files) {
    auto d = models::load_outcomes(f);
    if (!d)
      return tl::unexpected(d.error());
    if (all.models.empty()) {
      all = std::move(*d);
      continue;
    }
    // Align a second file's models with the first's (new models are appended).
    for (const auto& m : d->models)
      if (all.model_index(m) < 0) {
        all.models.push_back(m);
        for (auto& r : all.rows)
          r.scores.push_back(std::nanf(""));
      }
    // Rows with an id already seen merge their scores into it (one file per model works).
    std::map<std::string, size_t> by_id;
    for (size_t i = 0; i < all.rows.size(); ++i)
      by_id.emplace(all.rows[i].id, i);
    for (auto& r : d->rows) {
      auto it = by_id.find(r.id);
      if (it == by_id.end()) {
        it = by_id.emplace(r.id, all.rows.size()).first;
        all.rows.push_back(
            {r.id, r.text, r.category, std::vector<float>(all.models.size(), std::nanf(""))});
      }
      for (size_t m = 0; m < d->models.size(); ++m)
        if (!std::isnan(r.scores[m]))
          all.rows[it->second].scores[size_t(all.model_index(d->models[m]))] = r.scores[m];
    }
  }
  return all;
}

// The rows of a split: holdout (20% by id hash), train (the rest) or all.
std::vector<size_t> rows_of(const models::OutcomeSet& d, const std::string& split) {
  std::vector<size_t> rows;
  for (size_t i = 0; i < d.rows.size(); ++i) {
    bool h = models::router_holdout(d.rows[i].id);
    if (split == "all" || (split == "holdout") == h)
      rows.push_back(i);
  }
  return rows;
}

int fail(const char* cmd, const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", cmd, msg.c_str());
  return 1;
}

} // namespace

int cmd_train_router(const TrainRouterArgs& a) {
  const auto t0 = Clock::now();
  auto data = load_all(a.data);
  if (!data)
    return fail("train router", data.error().message);
  if (!a.models.empty()) {
    // Keep only the named models (the router predicts these).
    std::vector<int> keep;
    for (const auto& m : a.models) {
      int i = data->model_index(m);
      if (i < 0)
        return fail("train router", fmt::format("--models: \"{}\" is not in the data (it has: {})",
                                                m, fmt::join(data->models, ", ")));
      keep.push_back(i);
    }
    for (auto& r : data->rows) {
      std::vector<float> s;
      for (int i : keep)
        s.push_back(r.scores[size_t(i)]);
      r.scores = std::move(s);
    }
    data->models = a.models;
  }
  auto kind = models::parse_router_kind(a.type);
  if (!kind)
    return fail("train router", kind.error().message);
  std::vector<size_t> rows = rows_of(*data, "train");
  std::fprintf(
      stderr,
      "train router: %zu prompts, %zu models; %zu for training, %zu held out (20%% by id)\n",
      data->rows.size(), data->models.size(), rows.size(), data->rows.size() - rows.size());
  // The embedder: a transformer folder, or the embedded GloVe SIF vectors.
  std::shared_ptr<const models::Embedder> embedder;
  std::string etype, epath_abs;
  if (!a.embeddings.empty()) {
    auto tm = models::TransformerModel::load(a.embeddings, {});
    if (!tm)
      return fail("train router", "--embeddings: " + tm.error().message);
    embedder = *tm;
    etype = "transformer";
    epath_abs = std::filesystem::absolute(a.embeddings).string();
  } else {
    epath_abs = (std::filesystem::path(models::default_models_dir()) / "glove-100d-sif").string();
    auto wv = models::WordVectors::load_shared(epath_abs);
    if (!wv)
      return fail("train router", wv.error().message);
    embedder = *wv;
    etype = "word_vectors";
  }
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  std::string rel =
      std::filesystem::relative(epath_abs, std::filesystem::absolute(a.out), ec).string();
  models::QualityRouterOptions o;
  o.kind = *kind;
  o.k = a.k;
  o.rank = a.rank;
  o.seed = a.seed;
  if (a.buckets_log2)
    o.buckets_log2 = uint32_t(a.buckets_log2);
  o.epochs = a.epochs ? a.epochs : (*kind == models::QualityRouterKind::Mf ? 20 : 8);
  o.progress = [&](const std::string& line) {
    std::fprintf(stderr, "train router: [%.1fs] %s\n", secs_since(t0), line.c_str());
  };
  auto r = models::QualityRouter::train(*data, rows, embedder, etype, ec ? epath_abs : rel, o);
  if (!r)
    return fail("train router", r.error().message);
  if (auto st = (*r)->save(a.out); !st)
    return fail("train router", st.error().message);
  std::fprintf(stderr, "train router: wrote %s (%s, %zu models) in %.1fs\n", a.out.c_str(),
               models::router_kind_name(*kind), data->models.size(), secs_since(t0));
  return 0;
}

int cmd_eval_router(const EvalRouterArgs& a) {
  auto router = models::QualityRouter::load(a.router_dir);
  if (!router)
    return fail("eval router", router.error().message);
  auto data = load_all({a.data});
  if (!data)
    return fail("eval router", data.error().message);
  if (a.pairs.empty() && a.frontier_models.empty())
    return fail("eval router",
                "name a pair (--strong A --weak B, or --pair A:B) or --frontier models");
  std::vector<size_t> rows = rows_of(*data, a.split);
  if (rows.empty())
    return fail("eval router", "no prompts in the " + a.split + " split");
  const auto& rm = (*router)->models();
  auto need = [&](const std::string& m) -> std::string {
    if ((*router)->model_index(m) < 0)
      return fmt::format("the router does not know \"{}\" (it predicts: {})", m,
                         fmt::join(rm, ", "));
    if (data->model_index(m) < 0)
      return fmt::format("the data has no outcomes for \"{}\"", m);
    return "";
  };
  for (const auto& [s, w] : a.pairs)
    for (const auto& m : {s, w})
      if (auto e = need(m); !e.empty())
        return fail("eval router", e);
  for (const auto& m : a.frontier_models)
    if (auto e = need(m); !e.empty())
      return fail("eval router", e);

  // Predict every prompt once.
  const auto t0 = Clock::now();
  std::vector<std::vector<float>> pred(rows.size());
  std::vector<double> lat_us(rows.size());
  for (size_t j = 0; j < rows.size(); ++j) {
    auto t = Clock::now();
    (*router)->predict(data->rows[rows[j]].text, pred[j]);
    lat_us[j] = std::chrono::duration<double, std::micro>(Clock::now() - t).count();
  }
  std::vector<double> sorted_lat = lat_us;
  std::sort(sorted_lat.begin(), sorted_lat.end());
  auto pct = [&](double p) {
    return sorted_lat[std::min(sorted_lat.size() - 1, size_t(p * sorted_lat.size()))];
  };

  json report = {{"router", a.router_dir}, {"type", models::router_kind_name((*router)->kind())},
                 {"data", a.data},         {"split", a.split},
                 {"prompts", rows.size()}, {"latency_us", {{"p50", pct(0.5)}, {"p99", pct(0.99)}}},
                 {"pairs", json::array()}};
  std::string text;
  text += fmt::format(
      "router {} ({}), {} prompts ({} split), scored in {:.1f}s; latency p50 {:.1f} µs, "
      "p99 {:.1f} µs\n",
      a.router_dir, models::router_kind_name((*router)->kind()), rows.size(), a.split,
      secs_since(t0), pct(0.5), pct(0.99));
  std::vector<models::PairEvaluation> evals;
  for (const auto& [sname, wname] : a.pairs) {
    int si = (*router)->model_index(sname), wi = (*router)->model_index(wname);
    int ds = data->model_index(sname), dw = data->model_index(wname);
    std::vector<double> score(rows.size());
    std::vector<float> ts(rows.size()), tw(rows.size());
    for (size_t j = 0; j < rows.size(); ++j) {
      score[j] = double(pred[j][size_t(si)]) - double(pred[j][size_t(wi)]);
      ts[j] = data->rows[rows[j]].scores[size_t(ds)];
      tw[j] = data->rows[rows[j]].scores[size_t(dw)];
    }
    models::PairEvaluation e = models::evaluate_pair(sname, wname, score, ts, tw);
    if (e.n == 0)
      return fail("eval router", fmt::format("no prompt in the {} split has outcomes for both {} "
                                             "and {}",
                                             a.split, sname, wname));
    json curve = json::array();
    const size_t n = e.curve.size() - 1;
    for (int p = 0; p <= 100; ++p) {
      const auto& c = e.curve[size_t(std::lround(double(n) * p / 100.0))];
      curve.push_back({{"share", c.share},
                       {"quality", c.quality},
                       {"pgr", c.pgr},
                       {"threshold", std::isinf(c.threshold) ? json(nullptr) : json(c.threshold)}});
    }
    report["pairs"].push_back(
        {{"strong", sname},
         {"weak", wname},
         {"n", e.n},
         {"quality_strong", e.q_strong},
         {"quality_weak", e.q_weak},
         {"apgr", e.apgr},
         {"cpt50", e.cpt50},
         {"cpt80", e.cpt80},
         {"oracle",
          {{"apgr", e.oracle_apgr}, {"cpt50", e.oracle_cpt50}, {"cpt80", e.oracle_cpt80}}},
         {"random", {{"apgr", 0.5}, {"cpt50", 0.5}, {"cpt80", 0.8}}},
         {"curve", curve}});
    text += fmt::format("\n{} (strong, {:.3f}) vs {} (weak, {:.3f}), {} prompts\n", sname,
                        e.q_strong, wname, e.q_weak, e.n);
    text += "  share of strong calls | quality | PGR   | threshold (score ≥)\n";
    for (int p = 0; p <= 10; ++p) {
      const auto& c = e.curve[size_t(std::lround(double(n) * p / 10.0))];
      text += fmt::format(
          "  {:>20.0f}% | {:.4f}  | {:+.3f} | {}\n", c.share * 100, c.quality, c.pgr,
          std::isinf(c.threshold) ? std::string("-") : fmt::format("{:.4f}", c.threshold));
    }
    text +=
        fmt::format("  APGR {:.3f} (random 0.500, oracle {:.3f})   CPT(50%) {:.1f}% (random 50%, "
                    "oracle {:.1f}%)   CPT(80%) {:.1f}% (random 80%, oracle {:.1f}%)\n",
                    e.apgr, e.oracle_apgr, e.cpt50 * 100, e.oracle_cpt50 * 100, e.cpt80 * 100,
                    e.oracle_cpt80 * 100);
    evals.push_back(std::move(e));
  }

  // N-model frontier: utility selection over λ, and each model alone.
  std::vector<models::FrontierPoint> frontier;
  std::vector<double> costs;
  json singles = json::array();
  if (!a.frontier_models.empty()) {
    for (const auto& m : a.frontier_models) {
      auto it =
          std::find_if(a.costs.begin(), a.costs.end(), [&](const auto& c) { return c.first == m; });
      if (it == a.costs.end())
        return fail(
            "eval router",
            fmt::format("--cost {}=PRICE is missing (a cost per call for every frontier model)",
                        m));
      costs.push_back(it->second);
    }
    std::vector<std::vector<float>> p2, t2;
    for (size_t j = 0; j < rows.size(); ++j) {
      std::vector<float> pp, tt;
      bool complete = true;
      for (const auto& m : a.frontier_models) {
        pp.push_back(pred[j][size_t((*router)->model_index(m))]);
        float t = data->rows[rows[j]].scores[size_t(data->model_index(m))];
        complete = complete && !std::isnan(t);
        tt.push_back(t);
      }
      if (complete)
        p2.push_back(std::move(pp)), t2.push_back(std::move(tt));
    }
    frontier = models::utility_frontier(p2, t2, costs);
    json pts = json::array();
    text += fmt::format("\nCost–quality frontier over {} ({} prompts where all answered)\n",
                        fmt::join(a.frontier_models, ", "), p2.size());
    for (size_t m = 0; m < costs.size(); ++m) {
      double q = 0;
      for (const auto& t : t2)
        q += t[m];
      q /= double(std::max<size_t>(1, t2.size()));
      singles.push_back({{"model", a.frontier_models[m]}, {"cost", costs[m]}, {"quality", q}});
      text += fmt::format("  always {:<32} cost {:>8.3f}  quality {:.4f}\n", a.frontier_models[m],
                          costs[m], q);
    }
    for (const auto& p : frontier)
      pts.push_back({{"lambda", p.lambda}, {"cost", p.cost}, {"quality", p.quality}});
    for (size_t i = 0; i < frontier.size(); i += 6)
      text += fmt::format("  router λ={:<10.4g} cost {:>8.3f}  quality {:.4f}\n",
                          frontier[i].lambda, frontier[i].cost, frontier[i].quality);
    report["frontier"] = {
        {"models", a.frontier_models}, {"costs", costs}, {"singles", singles}, {"points", pts}};
  }

  if (!a.svg.empty()) {
    std::vector<models::Series> series;
    if (!evals.empty()) {
      const auto& e = evals.front();
      models::Series r{"router", "#1f77b4", {}}, o{"oracle", "#2ca02c", {}, true},
          rnd{"random", "#888888", {{0, 0}, {1, 1}}, true};
      for (size_t i = 0; i < e.curve.size(); i += std::max<size_t>(1, e.curve.size() / 200))
        r.points.emplace_back(e.curve[i].share, e.curve[i].pgr),
            o.points.emplace_back(e.oracle[i].share, e.oracle[i].pgr);
      r.points.emplace_back(1, e.curve.back().pgr);
      o.points.emplace_back(1, e.oracle.back().pgr);
      series = {r, o, rnd};
      std::string svg = models::svg_chart(fmt::format("{} vs {}: APGR {:.3f}, CPT(50%) {:.0f}%",
                                                      e.strong, e.weak, e.apgr, e.cpt50 * 100),
                                          "share of strong calls", "PGR", series, 0, 1, 0, 1.25);
      if (!(std::ofstream(a.svg) << svg))
        return fail("eval router", "cannot write " + a.svg);
    }
    if (!frontier.empty()) {
      models::Series f{"router (λ sweep)", "#1f77b4", {}, false, true},
          s{"single models", "#d62728", {}, true, true};
      double cmax = 0, qmin = 1, qmax = 0;
      for (const auto& p : frontier)
        f.points.emplace_back(p.cost, p.quality), cmax = std::max(cmax, p.cost),
                                                  qmin = std::min(qmin, p.quality),
                                                  qmax = std::max(qmax, p.quality);
      for (const auto& x : singles) {
        s.points.emplace_back(x["cost"].get<double>(), x["quality"].get<double>());
        cmax = std::max(cmax, x["cost"].get<double>());
        qmin = std::min(qmin, x["quality"].get<double>());
        qmax = std::max(qmax, x["quality"].get<double>());
      }
      std::sort(s.points.begin(), s.points.end());
      std::string path = a.svg;
      auto dot = path.rfind(".svg");
      path = (dot == std::string::npos ? path : path.substr(0, dot)) + "-frontier.svg";
      // Degenerate axes (all costs 0, one quality) still get a drawable range.
      double qlo = std::floor(qmin * 20) / 20, qhi = std::ceil(qmax * 20) / 20;
      if (qhi <= qlo)
        qhi = qlo + 0.05;
      std::ofstream fout(path);
      if (!(fout << models::svg_chart("Cost–quality frontier", "mean cost per prompt",
                                      "quality (accuracy)", {f, s}, 0, cmax > 0 ? cmax * 1.05 : 1.0,
                                      qlo, qhi)))
        return fail("eval router", "cannot write " + path);
    }
  }
  if (!a.out_json.empty())
    if (!(std::ofstream(a.out_json) << report.dump(2) << "\n"))
      return fail("eval router", "cannot write " + a.out_json);
  if (a.json)
    std::printf("%s\n", report.dump(2).c_str());
  else
    std::fputs(text.c_str(), stdout);
  return 0;
}

int cmd_calibrate(const CalibrateArgs& a) {
  auto router = models::QualityRouter::load(a.router_dir);
  if (!router)
    return fail("calibrate", router.error().message);
  int si = (*router)->model_index(a.strong), wi = (*router)->model_index(a.weak);
  if (si < 0 || wi < 0)
    return fail("calibrate",
                fmt::format("the router predicts {}; --strong and --weak must be among them",
                            fmt::join((*router)->models(), ", ")));
  // Prompts: any JSONL with "prompt" / "text" / the MMLU-Pro "question" (outcomes not needed).
  std::vector<std::string> prompts;
  auto st = models::for_each_json_record(a.data, [&](const json& r) -> core::Status {
    for (const char* k : {"prompt", "text", "question"})
      if (r.contains(k) && r[k].is_string()) {
        std::string t = r[k].get<std::string>();
        if (std::string(k) == "question" && r.contains("options") && r["options"].is_array()) {
          char letter = 'A';
          for (const auto& o : r["options"])
            t += fmt::format("\n{}. {}", letter++, o.is_string() ? o.get<std::string>() : o.dump());
        }
        prompts.push_back(std::move(t));
        return {};
      }
    return core::make_error(core::ErrorCode::InvalidArgument,
                            "no \"prompt\", \"text\" or \"question\"");
  });
  if (!st)
    return fail("calibrate", st.error().message);
  if (prompts.empty())
    return fail("calibrate", a.data + ": no prompts");
  std::vector<double> scores;
  std::vector<float> p;
  for (const auto& t : prompts) {
    (*router)->predict(t, p);
    scores.push_back(double(p[size_t(si)]) - double(p[size_t(wi)]));
  }
  std::vector<double> sorted = scores;
  std::sort(sorted.begin(), sorted.end());
  // Strong when score ≥ threshold: the (1 − share) quantile.
  size_t k = size_t(std::floor((1.0 - a.target_strong_share) * double(sorted.size())));
  double threshold = k >= sorted.size() ? sorted.back() + 1e-9 : sorted[k];
  size_t strong = 0;
  for (double s : scores)
    strong += s >= threshold;
  double share = double(strong) / double(scores.size());
  if (a.json) {
    std::printf("%s\n", json({{"threshold", threshold},
                              {"target_strong_share", a.target_strong_share},
                              {"strong_share_on_data", share},
                              {"prompts", scores.size()},
                              {"strong", a.strong},
                              {"weak", a.weak}})
                            .dump(2)
                            .c_str());
  } else {
    std::printf("threshold %.6f: %.1f%% of %zu prompts go to %s (target %.1f%%)\n", threshold,
                share * 100, scores.size(), a.strong.c_str(), a.target_strong_share * 100);
    std::printf("in a decision (strong and weak are your model names, with router_name %s and "
                "%s):\n  selection: {router: NAME, strong: STRONG, weak: WEAK, threshold: %.6f}\n",
                a.strong.c_str(), a.weak.c_str(), threshold);
  }
  return 0;
}

} // namespace semrouter::app
