// Quality of the semantic cache and of tool pre-filtering on hand-written sets (data/eval):
//   cache-eval pairs FILE [--similarity X] [--substitution Y] [--no-verify] [--sweep]
//     each pair's `a` is stored, `b` looked up in the same scope through the real store and
//     verifier; reports the paraphrase hit rate and the false-hit rate, per kind.
//   cache-eval tools --catalog FILE --queries FILE [--k 1,3,5,8]
//     every query carries the whole catalogue; recall@k of the needed tools through the real
//     filter (pipeline/tools_stage).
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cache/cache.h"
#include "cache/verifier.h"
#include "core/strings.h"
#include "models/registry.h"
#include "pipeline/cache_stage.h"
#include "pipeline/tools_stage.h"

using namespace semrouter;
using nlohmann::json;

namespace {

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("cannot open " + path);
  std::vector<json> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      out.push_back(json::parse(line));
  return out;
}

struct PairResult {
  std::map<std::string, std::pair<int, int>> by_kind; // kind -> (hits, n)
  int hit_ok = 0, hit_n = 0, false_hits = 0, miss_n = 0;
};

PairResult run_pairs(const std::vector<json>& pairs, const models::Embedder& embedder,
                     const config::CacheConfig& cc, bool verbose) {
  PairResult r;
  const cache::Verifier verifier = pipeline::cache_verifier(cc, &embedder);
  cache::Options o;
  auto store = cache::make_memory_cache(o);
  uint64_t scope = 1;
  for (const json& p : pairs) {
    const std::string a = p["a"], b = p["b"], expect = p["expect"], kind = p["kind"];
    cache::Entry e;
    e.scope = ++scope;
    e.exact = cache::hash_bytes(cache::normalize(a), scope);
    e.text = a;
    if (pipeline::cache_word_count(a) <= cc.max_words)
      e.vector = pipeline::cache_embedding(embedder, a);
    e.answer = "{}";
    store->store(e);
    cache::Query q;
    q.scope = scope;
    q.exact = cache::hash_bytes(cache::normalize(b), scope);
    q.text = b;
    std::vector<float> v;
    if (pipeline::cache_word_count(b) <= cc.max_words)
      v = pipeline::cache_embedding(embedder, b);
    q.vector = v.empty() ? nullptr : &v;
    q.threshold = pipeline::cache_threshold(cc, nullptr, pipeline::cache_word_count(b));
    q.verifier = cc.verify ? &verifier : nullptr;
    cache::Lookup l = store->lookup(q);
    const bool hit = l.hit.has_value();
    auto& k = r.by_kind[kind];
    k.first += hit;
    k.second += 1;
    if (expect == "hit") {
      r.hit_ok += hit;
      r.hit_n += 1;
    } else {
      r.false_hits += hit;
      r.miss_n += 1;
    }
    if (verbose && hit != (expect == "hit")) {
      double sim = (!v.empty() && !e.vector.empty())
                       ? [&] {
                           double s = 0;
                           for (size_t i = 0; i < v.size(); ++i)
                             s += v[i] * e.vector[i];
                           return s;
                         }()
                       : 0.0;
      std::cerr << fmt::format("{:5} {:10} sim={:.3f} word={:.3f} rejected={:12} | {} | {}\n",
                               hit ? "HIT" : "miss", kind, sim, verifier.alignment(a, b),
                               l.rejected, a, b);
    }
  }
  return r;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Semantic cache and tool-filter quality on hand-written sets (data/eval)"};
  app.require_subcommand(1);
  std::string models_dir = SEMROUTER_SOURCE_DIR "/models";
  app.add_option("--models", models_dir, "The embedded default models' folder");

  auto* pairs_cmd = app.add_subcommand("pairs", "Paraphrase hit rate and false-hit rate");
  std::string pairs_file;
  double similarity = -1, substitution = -1, rare = -1;
  bool no_verify = false, sweep = false, verbose = false, as_json = false;
  pairs_cmd->add_option("file", pairs_file, "JSONL of {a, b, expect: hit|miss, kind}")->required();
  pairs_cmd->add_option("--similarity", similarity, "cache.similarity (default: the config's)");
  pairs_cmd->add_option("--word-similarity", substitution, "cache.verify.word_similarity");
  pairs_cmd->add_option("--rare-weight", rare, "cache.verify.rare_weight");
  pairs_cmd->add_flag("--no-verify", no_verify, "Nearest-neighbour similarity alone");
  pairs_cmd->add_flag("--sweep", sweep, "A table over similarity thresholds");
  pairs_cmd->add_flag("-v,--verbose", verbose, "Print every wrong answer");
  pairs_cmd->add_flag("--json", as_json, "One JSON object");

  auto* tools_cmd = app.add_subcommand("tools", "Recall@k of tool pre-filtering");
  std::string catalog_file, queries_file, ks = "1,3,5,8";
  tools_cmd->add_option("--catalog", catalog_file, "JSON array of OpenAI tools")->required();
  tools_cmd->add_option("--queries", queries_file, "JSONL of {query, tools: [names]}")->required();
  tools_cmd->add_option("--k", ks, "Comma-separated k values");
  tools_cmd->add_flag("-v,--verbose", verbose, "Print every miss at the largest k");
  tools_cmd->add_flag("--json", as_json, "One JSON object");
  CLI11_PARSE(app, argc, argv);

  auto reg = models::Registry::load(models::default_model_specs(), models_dir);
  if (!reg || !(*reg)->embeddings) {
    std::cerr << "cache-eval: cannot load the default embedder from " << models_dir << "\n";
    return 1;
  }
  const models::Embedder& embedder = *(*reg)->embeddings;

  if (*pairs_cmd) {
    const auto pairs = read_jsonl(pairs_file);
    config::CacheConfig cc;
    if (similarity > 0)
      cc.similarity = similarity;
    if (substitution >= 0)
      cc.verify_word_similarity = substitution;
    cc.verify = !no_verify;
    if (rare >= 0)
      cc.verify_rare_weight = rare;
    auto report = [&](const PairResult& r, double sim) {
      const double hit_rate = r.hit_n ? double(r.hit_ok) / r.hit_n : 0;
      const double false_rate = r.miss_n ? double(r.false_hits) / r.miss_n : 0;
      if (as_json) {
        json j = {{"similarity", sim},
                  {"verify", cc.verify},
                  {"pairs", pairs.size()},
                  {"paraphrase_hit_rate", hit_rate},
                  {"false_hit_rate", false_rate},
                  {"hits", r.hit_ok},
                  {"paraphrases", r.hit_n},
                  {"false_hits", r.false_hits},
                  {"near_misses", r.miss_n},
                  {"by_kind", json::object()}};
        for (const auto& [k, v] : r.by_kind)
          j["by_kind"][k] = {{"hits", v.first}, {"n", v.second}};
        std::cout << j.dump() << "\n";
        return;
      }
      std::cout << fmt::format("similarity {:.3f} verify {}: paraphrase hits {}/{} ({:.1f}%), "
                               "false hits {}/{} ({:.2f}%)\n",
                               sim, cc.verify ? "on" : "off", r.hit_ok, r.hit_n, 100 * hit_rate,
                               r.false_hits, r.miss_n, 100 * false_rate);
    };
    if (sweep) {
      const double fixed_alignment = cc.verify_word_similarity;
      for (double al : substitution >= 0 ? std::vector<double>{fixed_alignment}
                                         : std::vector<double>{0.4, 0.5, 0.6, 0.7}) {
        cc.verify_word_similarity = al;
        for (double s = 0.50; s <= 0.951; s += 0.1) {
          cc.similarity = s;
          if (!as_json)
            std::cout << fmt::format("word_similarity {:.2f} ", al);
          report(run_pairs(pairs, embedder, cc, false), s);
        }
      }
      return 0;
    }
    PairResult r = run_pairs(pairs, embedder, cc, verbose);
    report(r, cc.similarity);
    if (!as_json)
      for (const auto& [k, v] : r.by_kind)
        std::cout << fmt::format("  {:12} {:3}/{:3} hit\n", k, v.first, v.second);
    return 0;
  }

  // Tools.
  std::ifstream cin_(catalog_file);
  if (!cin_) {
    std::cerr << "cache-eval: cannot open " << catalog_file << "\n";
    return 1;
  }
  json catalog = json::parse(cin_);
  const auto queries = read_jsonl(queries_file);
  std::vector<uint32_t> kv;
  for (const auto& s : core::split(ks, ','))
    kv.push_back(static_cast<uint32_t>(std::stoul(s)));
  pipeline::ToolVectors vectors;
  json out = json::object();
  for (uint32_t k : kv) {
    config::ToolsPluginConfig plugin;
    plugin.enabled = true;
    plugin.max_tools = 0;
    plugin.top_k = k;
    size_t needed = 0, found = 0, all_found = 0;
    for (const json& q : queries) {
      json body = {{"model", "auto"},
                   {"messages", json::array({{{"role", "user"}, {"content", q["query"]}}})},
                   {"tools", catalog}};
      const std::string text = body.dump();
      auto view = openai::parse_request(text, openai::RequestKind::ChatCompletions);
      if (!view) {
        std::cerr << "cache-eval: " << view.error().message << "\n";
        return 1;
      }
      pipeline::ToolFilter f = pipeline::filter_tools(*view, text, plugin, &embedder, &vectors);
      bool all = true;
      for (const auto& name : q["tools"]) {
        bool kept = false;
        for (const auto& s : f.scores)
          kept = kept || (s.name == name && s.kept);
        ++needed;
        found += kept;
        all = all && kept;
        if (!kept && verbose && k == kv.back())
          std::cerr << fmt::format("miss@{} {} | {}\n", k, name.get<std::string>(),
                                   q["query"].get<std::string>());
      }
      all_found += all;
    }
    const double recall = double(found) / double(needed);
    const double complete = double(all_found) / double(queries.size());
    out[std::to_string(k)] = {{"recall", recall}, {"all_needed_kept", complete}};
    if (!as_json)
      std::cout << fmt::format("k={:2}: recall {:.1f}% ({} of {} needed tools), every needed tool "
                               "kept in {:.1f}% of {} queries\n",
                               k, 100 * recall, found, needed, 100 * complete, queries.size());
  }
  if (as_json)
    std::cout << json({{"tools", catalog.size()}, {"queries", queries.size()}, {"k", out}}).dump()
              << "\n";
  return 0;
}
