#include "pipeline/tools_stage.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "cache/cache.h"
#include "core/strings.h"
#include "pipeline/cache_stage.h"

namespace semrouter::pipeline {
namespace {

using nlohmann::json;

std::string json_str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size())
    return 0;
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += double(a[i]) * b[i];
  return s;
}

// Lower-case words of at least three letters, lightly stemmed, without the commonest words.
std::set<std::string> content_stems(std::string_view text) {
  static const std::unordered_set<std::string> stop = {
      "the",  "and",   "for",  "with", "that", "this", "from",   "what",  "how",   "can",
      "you",  "your",  "are",  "was",  "get",  "set",  "list",   "all",   "any",   "please",
      "into", "about", "give", "tell", "does", "will", "should", "would", "could", "have"};
  std::set<std::string> out;
  std::string w;
  auto flush = [&] {
    if (w.size() >= 3 && !stop.count(w)) {
      if (w.size() > 4 && w.ends_with("ing"))
        w.resize(w.size() - 3);
      else if (w.size() > 3 && w.ends_with("es"))
        w.resize(w.size() - 2);
      else if (w.size() > 3 && w.back() == 's')
        w.pop_back();
      out.insert(w);
    }
    w.clear();
  };
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)))
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else
      flush();
  }
  flush();
  return out;
}

} // namespace

std::string tool_text(std::string_view name, std::string_view description) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '_' || c == '-' || c == '.') {
      out += ' ';
      continue;
    }
    if (std::isupper(static_cast<unsigned char>(c)) && i > 0 &&
        std::islower(static_cast<unsigned char>(name[i - 1])))
      out += ' ';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (!description.empty()) {
    out += ". ";
    out += description;
  }
  return out;
}

std::vector<float> ToolVectors::get(const models::Embedder& embedder, std::string_view text) {
  const uint64_t key = cache::hash_bytes(text);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (embedder_ != &embedder) {
      vectors_.clear();
      embedder_ = &embedder;
    }
    if (auto it = vectors_.find(key); it != vectors_.end())
      return it->second;
  }
  std::vector<float> v = cache_embedding(embedder, text);
  std::lock_guard<std::mutex> lock(mu_);
  if (embedder_ == &embedder) {
    if (vectors_.size() >= 8192)
      vectors_.clear();
    vectors_.emplace(key, v);
  }
  return v;
}

ToolFilter filter_tools(const openai::RequestView& view, std::string_view body,
                        const config::ToolsPluginConfig& plugin, const models::Embedder* embedder,
                        ToolVectors* vectors) {
  ToolFilter out;
  const openai::TopLevelField* tools = nullptr;
  const openai::TopLevelField* choice = nullptr;
  for (const auto& f : view.fields) {
    if (f.key == "tools")
      tools = &f;
    else if (f.key == "tool_choice")
      choice = &f;
  }
  if (!tools || body[tools->value.begin] != '[')
    return out;
  const std::vector<openai::Span> elems = openai::scan_array_elements(body, tools->value);
  out.total = elems.size();
  const bool has_lists = !plugin.block.empty() || !plugin.allow.empty();
  if (elems.size() <= plugin.max_tools && !has_lists) {
    out.kept = out.total;
    return out;
  }

  struct Tool {
    openai::Span span;
    std::string name, description;
    std::string params; // parameter names and descriptions: read for word overlap only
  };
  std::vector<Tool> all;
  for (const auto& s : elems) {
    Tool t{s, "", "", ""};
    json j = json::parse(body.substr(s.begin, s.end - s.begin), nullptr, false);
    if (j.is_object()) {
      const json* fn = j.contains("function") && j["function"].is_object() ? &j["function"] : &j;
      t.name = json_str(*fn, "name");
      t.description = json_str(*fn, "description");
      // The parameters' names and descriptions say what the tool works on ("city", "amount").
      if (auto p = fn->find("parameters"); p != fn->end() && p->is_object())
        if (auto props = p->find("properties"); props != p->end() && props->is_object())
          for (const auto& [key, val] : props->items()) {
            t.params += ' ';
            t.params += tool_text(key, "");
            if (val.is_object())
              t.params += ' ' + json_str(val, "description");
          }
    }
    all.push_back(std::move(t));
  }
  // Names that must stay: always, tool_choice, called earlier.
  std::set<std::string> forced(plugin.always.begin(), plugin.always.end());
  std::string choice_name;
  if (choice) {
    json j = json::parse(body.substr(choice->value.begin, choice->value.end - choice->value.begin),
                         nullptr, false);
    if (j.is_object() && j.contains("function") && j["function"].is_object())
      choice_name = json_str(j["function"], "name");
  }
  std::set<std::string> called;
  if (view.messages_span.end > view.messages_span.begin) {
    json msgs = json::parse(
        body.substr(view.messages_span.begin, view.messages_span.end - view.messages_span.begin),
        nullptr, false);
    if (msgs.is_array())
      for (const json& m : msgs) {
        if (!m.is_object())
          continue;
        if (m.contains("tool_calls") && m["tool_calls"].is_array())
          for (const json& c : m["tool_calls"])
            if (c.is_object() && c.contains("function") && c["function"].is_object())
              called.insert(json_str(c["function"], "name"));
        if (json_str(m, "role") == "tool" && !json_str(m, "name").empty())
          called.insert(json_str(m, "name"));
      }
  }
  auto listed = [](const std::vector<std::string>& l, const std::string& n) {
    return std::find(l.begin(), l.end(), n) != l.end();
  };

  out.scores.resize(all.size());
  std::vector<size_t> candidates;
  for (size_t i = 0; i < all.size(); ++i) {
    ToolScore& s = out.scores[i];
    s.name = all[i].name;
    if (listed(plugin.block, s.name) ||
        (!plugin.allow.empty() && !listed(plugin.allow, s.name) && !forced.count(s.name))) {
      s.why = listed(plugin.block, s.name) ? "blocked" : "not_allowed";
      continue;
    }
    if (forced.count(s.name) || s.name == choice_name || called.count(s.name)) {
      s.kept = true;
      s.why = forced.count(s.name) ? "always" : s.name == choice_name ? "tool_choice" : "called";
      continue;
    }
    candidates.push_back(i);
  }
  size_t forced_kept = 0;
  for (const auto& s : out.scores)
    forced_kept += s.kept;
  if (forced_kept + candidates.size() > plugin.max_tools) {
    const std::string_view text = view.latest_user_text();
    std::vector<float> q;
    if (embedder)
      q = cache_embedding(*embedder, text);
    const std::set<std::string> q_words = content_stems(text);
    for (size_t i : candidates) {
      const std::string tt = tool_text(all[i].name, all[i].description);
      double sim = 0;
      if (!q.empty()) {
        std::vector<float> v =
            vectors ? vectors->get(*embedder, tt) : cache_embedding(*embedder, tt);
        sim = dot(q, v);
      }
      // Word overlap: the share of the query's content words the tool's text names.
      double overlap = 0;
      if (!q_words.empty()) {
        const std::set<std::string> t_words = content_stems(tt + " " + all[i].params);
        size_t common = 0;
        for (const auto& w : q_words) {
          bool hit = t_words.count(w) > 0;
          // "remind" / "reminder", "translate" / "translation": a shared start of five letters.
          for (auto it = t_words.begin(); !hit && it != t_words.end(); ++it)
            hit = w.size() >= 5 && it->size() >= 5 && w.compare(0, 5, *it, 0, 5) == 0;
          common += hit;
        }
        overlap = double(common) / double(q_words.size());
      }
      out.scores[i].score = sim + overlap;
    }
    std::vector<size_t> ranked = candidates;
    std::stable_sort(ranked.begin(), ranked.end(),
                     [&](size_t a, size_t b) { return out.scores[a].score > out.scores[b].score; });
    size_t relevant = 0;
    for (size_t i : ranked)
      relevant += out.scores[i].score >= plugin.min_similarity;
    if (relevant == 0 && plugin.fallback == config::ToolsFallback::KeepAll) {
      for (size_t i : candidates)
        out.scores[i].kept = true, out.scores[i].why = "fallback";
    } else {
      const size_t k = relevant == 0 ? plugin.top_k : std::min<size_t>(plugin.top_k, relevant);
      for (size_t r = 0; r < ranked.size(); ++r) {
        ToolScore& s = out.scores[ranked[r]];
        s.kept = r < k;
        s.why = r < k ? (relevant == 0 ? "fallback" : "top_k") : "filtered";
      }
    }
  } else {
    for (size_t i : candidates)
      out.scores[i].kept = true, out.scores[i].why = "under_limit";
  }

  // The forced choice went (blocked): the request must not name it any more.
  for (size_t i = 0; i < all.size(); ++i)
    if (!choice_name.empty() && all[i].name == choice_name && !out.scores[i].kept)
      out.drop_tool_choice = true;
  std::string arr = "[";
  for (size_t i = 0; i < all.size(); ++i) {
    if (!out.scores[i].kept)
      continue;
    if (arr.size() > 1)
      arr += ',';
    arr.append(body.substr(all[i].span.begin, all[i].span.end - all[i].span.begin));
    ++out.kept;
  }
  arr += "]";
  out.applied = out.kept != out.total;
  if (out.applied)
    out.tools_json = std::move(arr);
  return out;
}

} // namespace semrouter::pipeline
