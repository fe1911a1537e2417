#include "pipeline/request_signals.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstring>
#include <latch>
#include <set>
#include <type_traits>
#include <vector>

#include "core/strings.h"
#include "models/word_vectors.h"
#include "pipeline/pipeline.h"

namespace semrouter::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// Is this code point CJK (Han, kana, Hangul), where a BPE token is about one character?
bool is_cjk(uint32_t cp) {
  return (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7AF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2FFFF);
}

} // namespace

bool is_follow_up(std::string_view text, uint32_t max_words) {
  // Runs on every routed chat request: a long turn is not a follow-up, and is not read further.
  // Words are spans of the text compared without case, so a turn costs no allocation.
  constexpr size_t kMaxBytesPerWord = 24;
  if (text.size() > size_t(max_words) * kMaxBytesPerWord)
    return false;
  constexpr size_t kMaxWords = 100; // the config's limit for follow_up_max_words
  std::array<std::string_view, kMaxWords + 1> words;
  size_t n = 0, w = std::string_view::npos;
  auto word_char = [](unsigned char c) { return std::isalnum(c) || c == '\'' || c >= 0x80; };
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && word_char(static_cast<unsigned char>(text[i]))) {
      if (w == std::string_view::npos)
        w = i;
    } else if (w != std::string_view::npos) {
      if (n >= max_words || n >= kMaxWords)
        return false;
      words[n++] = text.substr(w, i - w);
      w = std::string_view::npos;
    }
  }
  if (n == 0)
    return false;
  // Openers of a reply, not of a new request ("now tell me a story", "also, what is ..." are new).
  static constexpr std::string_view kOpeners[] = {
      "yes", "yeah",   "yep",      "ok",   "okay", "sure",    "no",      "nope",   "and",
      "but", "same",   "continue", "go",   "do",   "again",   "next",    "more",   "what",
      "how", "commit", "apply",    "redo", "ship", "alright", "proceed", "repeat", "other"};
  static constexpr std::string_view kBack[] = {"it",    "that",  "this",    "those",    "these",
                                               "them",  "same",  "above",   "previous", "second",
                                               "first", "third", "last",    "former",   "latter",
                                               "again", "case",  "instead", "one"};
  auto is = [](std::string_view word, std::string_view lower) {
    return core::iequals(word, lower);
  };
  auto in = [&](std::string_view word, const auto& list) {
    return std::any_of(std::begin(list), std::end(list),
                       [&](std::string_view x) { return is(word, x); });
  };
  // "what"/"how" open a follow-up only as "what about ..." / "how about ...".
  const std::string_view first = words[0];
  bool opener = in(first, kOpeners);
  if ((is(first, "what") || is(first, "how")) && (n < 2 || !is(words[1], "about")))
    opener = false;
  if (is(first, "why") && n <= 2) // "why?", "why not?"
    opener = true;
  if (opener)
    return true;
  for (size_t k = 0; k < n; ++k)
    if (in(words[k], kBack))
      return true;
  return false;
}

std::string_view signal_text(const openai::RequestView& view, const config::HistoryConfig& history,
                             std::string& storage) {
  if (view.kind == openai::RequestKind::Completions)
    return view.prompt;
  if (history.user_turns == 1 && !history.include_system && !history.include_assistant) {
    std::string_view latest = view.latest_user_text();
    // A first user turn follows nothing: the follow-up test only matters with an earlier one.
    auto earlier_user_turn = [&] {
      size_t users = 0;
      for (const auto& m : view.messages)
        if (m.role == "user" && ++users == 2)
          return true;
      return false;
    };
    if (!history.follow_ups || !earlier_user_turn() ||
        !is_follow_up(latest, history.follow_up_max_words))
      return latest;
    // Route it with the signals of the turn it leans on: back to the first user turn that stands
    // on its own (at most kMaxFollowUpChain turns back). Its own few words would only blur them.
    constexpr int kMaxFollowUpChain = 3;
    int back = 0;
    std::string_view oldest = latest;
    for (size_t i = view.messages.size(); i-- > 0;) {
      if (view.messages[i].role != "user" || back++ == 0)
        continue; // the latest turn itself
      oldest = view.messages[i].text;
      if (!is_follow_up(oldest, history.follow_up_max_words) || back > kMaxFollowUpChain)
        return oldest;
    }
    // Every earlier turn reads as short and leaning too (a terse conversation): the first one
    // opened it.
    return oldest;
  }
  // The first message of the window: the N-th user message from the end (0: all).
  size_t start = 0;
  if (history.user_turns > 0) {
    uint32_t seen = 0;
    for (size_t i = view.messages.size(); i-- > 0;) {
      if (view.messages[i].role == "user" && ++seen == history.user_turns) {
        start = i;
        break;
      }
    }
  }
  storage.clear();
  auto add = [&](const std::string& t) {
    if (t.empty())
      return;
    if (!storage.empty())
      storage += "\n\n";
    storage += t;
  };
  if (history.include_system)
    for (size_t i = 0; i < start; ++i)
      if (view.messages[i].role == "system" || view.messages[i].role == "developer")
        add(view.messages[i].text);
  for (size_t i = start; i < view.messages.size(); ++i) {
    const auto& m = view.messages[i];
    if (m.role == "user" || (history.include_assistant && m.role == "assistant") ||
        (history.include_system && (m.role == "system" || m.role == "developer")))
      add(m.text);
  }
  return storage;
}

uint64_t estimate_tokens(std::string_view text) {
  uint64_t other_bytes = 0, cjk = 0;
  for (size_t i = 0; i < text.size();) {
    // Eight ASCII bytes at once: each is one "other" byte (a long prompt is mostly ASCII).
    constexpr size_t kStride = 8;
    constexpr uint64_t kHighBits = 0x8080808080808080ull;
    if (i + kStride <= text.size()) {
      uint64_t w = 0;
      std::memcpy(&w, text.data() + i, kStride);
      if ((w & kHighBits) == 0) {
        other_bytes += kStride;
        i += kStride;
        continue;
      }
    }
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (len >= 3 && i + len <= text.size()) {
      uint32_t cp = len == 3
                        ? ((c & 0x0Fu) << 12) | ((text[i + 1] & 0x3Fu) << 6) | (text[i + 2] & 0x3Fu)
                        : ((c & 0x07u) << 18) | ((text[i + 1] & 0x3Fu) << 12) |
                              ((text[i + 2] & 0x3Fu) << 6) | (text[i + 3] & 0x3Fu);
      if (is_cjk(cp)) {
        ++cjk;
        i += len;
        continue;
      }
    }
    other_bytes += len;
    i += len;
  }
  return cjk + (other_bytes + 3) / 4;
}

uint64_t estimate_request_tokens(const openai::RequestView& view) {
  if (view.kind == openai::RequestKind::Completions)
    return estimate_tokens(view.prompt);
  uint64_t n = 0;
  for (const auto& m : view.messages)
    n += estimate_tokens(m.text) + 4; // role and separators, as chat templates add
  return n;
}

std::vector<signals::PiiEntity> detect_pii(const models::Registry* registry,
                                           std::string_view text) {
  std::vector<signals::PiiEntity> found = signals::find_pii(text);
  if (registry && registry->pii && !text.empty()) {
    auto r = registry->pii->entities({&text, 1});
    if (r && !r->empty()) {
      std::vector<signals::PiiEntity> model;
      for (const auto& e : (*r)[0]) {
        signals::PiiEntity p;
        p.type = core::ascii_lower(e.type);
        p.begin = e.begin;
        p.end = e.end;
        p.score = e.score;
        p.source = "model";
        model.push_back(std::move(p));
      }
      found = signals::merge_pii(std::move(found), std::move(model));
    }
  }
  return found;
}

std::string_view text_window(std::string_view text, const config::WindowConfig& window,
                             std::string& storage) {
  const size_t head = window.head_words, tail = window.tail_words;
  if (head == 0 && tail == 0)
    return text;
  // n words take at least 2n - 1 bytes: a text shorter than that for head + tail + 1 words fits
  // the window without counting (most prompts).
  if (text.size() < 2 * (head + tail) + 1)
    return text;
  auto space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  // Where the head ends: after its head-th word.
  size_t words = 0, head_end = 0, i = 0;
  while (i < text.size()) {
    while (i < text.size() && space(text[i]))
      ++i;
    if (i == text.size())
      break;
    if (words == head)
      head_end = i;
    ++words;
    while (i < text.size() && !space(text[i]))
      ++i;
    if (words > head + tail)
      break; // long enough to need a window: find the tail from the end
  }
  if (words <= head + tail)
    return text;
  // Where the tail starts: before its tail-th word from the end.
  size_t j = text.size(), seen = 0, tail_start = text.size();
  while (seen < tail && j > head_end) {
    while (j > head_end && space(text[j - 1]))
      --j;
    if (j == head_end)
      break;
    while (j > head_end && !space(text[j - 1]))
      --j;
    ++seen;
    tail_start = j;
  }
  storage.assign(text.substr(0, head_end));
  while (!storage.empty() && space(storage.back()))
    storage.pop_back();
  storage += " \u2026 ";
  storage.append(text.substr(tail_start));
  return storage;
}

void compute_signals(const Snapshot& snapshot, const RequestFacts& facts,
                     const SignalSelection& which, models::InferencePool* pool,
                     signals::SignalResults& out, SignalDetails* details) {
  const config::Config& config = *snapshot.config;
  const models::Registry* registry = snapshot.models.get();
  const auto t_start = Clock::now();
  const std::string_view pii_text = facts.pii_text.empty() ? facts.text : facts.pii_text;
  // The classifiers and the embedding read a bounded window of a long text.
  std::string window_storage;
  const std::string_view model_text =
      text_window(facts.text, config.routing.window, window_storage);

  // --- Model work: the transformer-backed tasks as pool jobs, the rest inline. ---
  models::AnalyzeTasks inline_tasks = which.classifiers;
  if (which.embedding)
    inline_tasks.embedding = true;
  bool need_pii = which.pii;
  struct Job {
    models::AnalyzeTasks tasks{false, false, false, false, false, false};
    models::Analysis result;
    bool pii = false;
    std::vector<signals::PiiEntity> entities;
    double us = 0;
  };
  std::vector<Job> jobs;
  if (registry) {
    auto heavy = [&](bool& flag, const char* task, bool models::AnalyzeTasks::*member) {
      if (flag && registry->is_transformer(task)) {
        Job j;
        j.tasks.*member = true;
        jobs.push_back(std::move(j));
        flag = false;
      }
    };
    heavy(inline_tasks.domain, "domain", &models::AnalyzeTasks::domain);
    heavy(inline_tasks.complexity, "complexity", &models::AnalyzeTasks::complexity);
    heavy(inline_tasks.reasoning, "reasoning", &models::AnalyzeTasks::reasoning);
    heavy(inline_tasks.jailbreak, "jailbreak", &models::AnalyzeTasks::jailbreak);
    heavy(inline_tasks.embedding, "embeddings", &models::AnalyzeTasks::embedding);
    if (need_pii && registry->pii) {
      Job j;
      j.pii = true;
      jobs.push_back(std::move(j));
      need_pii = false;
    }
  }
  auto run_job = [&](Job& j) {
    auto t0 = Clock::now();
    if (j.pii)
      j.entities = detect_pii(registry, pii_text);
    else
      j.result = models::analyze(*registry, model_text, j.tasks);
    j.us = us_since(t0);
  };
  // Only worth a hand-over when something else runs meanwhile.
  const bool concurrent = pool && !jobs.empty() &&
                          (jobs.size() > 1 || inline_tasks.domain || inline_tasks.complexity ||
                           inline_tasks.reasoning || inline_tasks.jailbreak ||
                           inline_tasks.language || inline_tasks.embedding);
  std::latch done(concurrent ? static_cast<std::ptrdiff_t>(jobs.size()) : 0);
  if (concurrent) {
    for (Job& j : jobs) {
      if (!pool->submit([&run_job, &j, &done] {
            run_job(j);
            done.count_down();
          })) {
        run_job(j); // the pool is full: do it here rather than fail the request
        done.count_down();
      }
    }
  }

  // Inline work while the pool runs.
  models::Analysis a;
  if (registry && (inline_tasks.domain || inline_tasks.complexity || inline_tasks.reasoning ||
                   inline_tasks.jailbreak || inline_tasks.language || inline_tasks.embedding))
    a = models::analyze(*registry, model_text, inline_tasks);
  std::vector<signals::PiiEntity> pii;
  double pii_us = 0;
  if (which.pii) {
    auto t0 = Clock::now();
    if (need_pii)
      pii = detect_pii(nullptr, pii_text);
    pii_us = us_since(t0);
  }
  if (which.keyword && snapshot.keywords)
    snapshot.keywords->evaluate(signals::SignalInput{facts.text}, out);

  if (which.context_length) {
    for (const auto& c : config.signals.context_length) {
      signals::SignalResult& r = out.put("context_length", c.name);
      r.matched = facts.tokens >= c.min_tokens && facts.tokens <= c.max_tokens;
      r.confidence = 1.0;
      r.evidence.push_back(std::to_string(facts.tokens) + " tokens");
    }
  }
  if (which.metadata) {
    for (const auto& m : config.signals.metadata) {
      signals::SignalResult& r = out.put("metadata", m.name);
      r.confidence = 1.0;
      auto any_of = [&](std::string_view v) {
        if (m.values.empty())
          return !v.empty();
        return std::find(m.values.begin(), m.values.end(), v) != m.values.end();
      };
      switch (m.kind) {
      case config::MetadataKind::Header: {
        std::optional<std::string_view> v;
        if (facts.headers && *facts.headers)
          v = (*facts.headers)(m.header);
        r.matched = v && any_of(core::trim(*v));
        if (v)
          r.evidence.emplace_back(*v);
        break;
      }
      case config::MetadataKind::User:
        r.matched = any_of(facts.user);
        r.evidence.emplace_back(facts.user);
        break;
      case config::MetadataKind::Tools:
        r.matched = facts.has_tools == m.expected;
        r.evidence.emplace_back(facts.has_tools ? "tools" : "no tools");
        break;
      case config::MetadataKind::Stream:
        r.matched = facts.stream == m.expected;
        r.evidence.emplace_back(facts.stream ? "stream" : "no stream");
        break;
      }
    }
  }

  if (concurrent)
    done.wait();
  else
    for (Job& j : jobs)
      run_job(j);

  // Merge the jobs' answers into one analysis.
  double embedding_us = a.embedding_us;
  for (Job& j : jobs) {
    const models::Analysis& r = j.result;
    if (j.pii) {
      pii = std::move(j.entities); // patterns and the model, merged by detect_pii
      pii_us = j.us;
    }
    if (r.has_domain)
      a.domain = r.domain, a.has_domain = true, a.domain_us = j.us;
    if (r.has_complexity)
      a.complexity = r.complexity, a.has_complexity = true, a.complexity_us = j.us;
    if (r.has_reasoning)
      a.reasoning = r.reasoning, a.has_reasoning = true, a.reasoning_us = j.us;
    if (r.has_jailbreak)
      a.jailbreak = r.jailbreak, a.has_jailbreak = true, a.jailbreak_us = j.us;
    if (r.has_embedding)
      a.embedding = r.embedding, a.has_embedding = true, embedding_us = j.us;
  }

  // --- Classifier signals: (type, name) is true when the classifier answers `name`. ---
  const bool domain_other = a.has_domain && a.domain.confidence < config.signals.domain_threshold;
  const bool classified =
      a.has_domain || a.has_complexity || a.has_reasoning || a.has_jailbreak || a.has_language;
  // Without a classifier's answer there is nothing to set: a keyword-only config skips the walk
  // over its referenced signals and their type names.
  static const std::remove_cvref_t<decltype(snapshot.engine->referenced_signals())> kNone;
  const auto& referenced = classified ? snapshot.engine->referenced_signals() : kNone;
  for (const auto& [type, name] : referenced) {
    std::string_view value;
    double p_name = 0; // the classifier's probability of `name`
    double us = 0;
    bool have = false;
    auto prob_of = [&](const models::Classification& c, const models::TextClassifier& m) {
      const auto& labels = m.labels();
      auto it = std::find(labels.begin(), labels.end(), name);
      size_t k = size_t(it - labels.begin());
      return it != labels.end() && k < c.probabilities.size() ? double(c.probabilities[k]) : 0.0;
    };
    if (type == "domain" && a.has_domain) {
      value = domain_other ? std::string_view("other") : std::string_view(a.domain.label);
      // "other" below the threshold: how unsure the classifier was; otherwise P(name) (the
      // classifier may know "other" as a label of its own).
      p_name = name == "other" && domain_other ? 1 - a.domain.confidence
                                               : prob_of(a.domain, *registry->domain);
      us = a.domain_us, have = true;
    } else if (type == "complexity" && a.has_complexity) {
      value = a.complexity.label, p_name = prob_of(a.complexity, *registry->complexity);
      us = a.complexity_us, have = true;
    } else if (type == "reasoning" && a.has_reasoning) {
      value = a.reasoning.label, p_name = prob_of(a.reasoning, *registry->reasoning);
      us = a.reasoning_us, have = true;
    } else if (type == "jailbreak" && a.has_jailbreak) {
      value = a.jailbreak.label, p_name = prob_of(a.jailbreak, *registry->jailbreak);
      us = a.jailbreak_us, have = true;
    } else if (type == "language" && a.has_language) {
      value = a.language.code;
      p_name = value == name ? a.language.confidence : 1 - a.language.confidence;
      us = a.language_us, have = true;
    }
    if (!have)
      continue;
    signals::SignalResult& r = out.put(type, name);
    r.matched = value == name;
    // How sure the classifier is of what the signal says: P(name) when true, 1 - P(name) when
    // false (what a `not` over it reads).
    r.confidence = std::clamp(r.matched ? p_name : 1 - p_name, 0.0, 1.0);
    r.score = std::clamp(p_name, 0.0, 1.0);
    r.latency_us = us;
    r.evidence.emplace_back(value);
  }

  // --- Embedding similarity to each signal's phrases. ---
  std::vector<std::pair<std::string, double>> sims;
  if (which.embedding && a.has_embedding) {
    for (size_t i = 0; i < config.signals.embeddings.size(); ++i) {
      const auto& e = config.signals.embeddings[i];
      if (i >= snapshot.embedding_phrases.size())
        break;
      auto t0 = Clock::now();
      double best = -1, sum = 0;
      size_t best_k = 0;
      const auto& phrases = snapshot.embedding_phrases[i];
      thread_local std::vector<float> cos;
      cos.resize(phrases.size());
      phrases.cosines(a.embedding, cos.data());
      for (size_t k = 0; k < phrases.size(); ++k) {
        const double c = cos[k];
        sum += c;
        if (c > best)
          best = c, best_k = k;
      }
      double score = e.aggregation == config::EmbeddingAggregation::Max
                         ? best
                         : sum / static_cast<double>(std::max<size_t>(1, phrases.size()));
      signals::SignalResult& r = out.put("embedding", e.name);
      r.matched = score >= e.threshold;
      r.confidence = std::clamp(score, 0.0, 1.0);
      r.score = score;
      r.latency_us = embedding_us + us_since(t0);
      // (phrases has one row per e.phrases entry; none: best stays -1)
      r.evidence.emplace_back(best > -1 ? std::string_view(e.phrases[best_k]) : std::string_view());
      if (details) // for the dry run's report only: a copy of the name per signal otherwise
        sims.emplace_back(e.name, score);
    }
  }

  // --- PII signals. ---
  if (which.pii) {
    for (const auto& p : config.signals.pii) {
      signals::SignalResult& r = out.put("pii", p.name);
      double best = 0;
      for (const auto& ent : pii) {
        if (ent.score < p.min_score)
          continue;
        if (!p.types.empty() &&
            std::find(p.types.begin(), p.types.end(), ent.type) == p.types.end())
          continue;
        r.matched = true;
        best = std::max(best, ent.score);
        if (std::find(r.evidence.begin(), r.evidence.end(), ent.type) == r.evidence.end())
          r.evidence.push_back(ent.type);
      }
      r.confidence = r.matched ? best : 1.0;
      r.latency_us = pii_us;
    }
  }

  if (which.pii && facts.pii_out) {
    facts.pii_out->text = pii_text;
    facts.pii_out->entities = details ? pii : std::move(pii);
  }
  if (facts.embedding_out && a.has_embedding && !a.embedding.empty() &&
      model_text.size() == facts.text.size()) {
    facts.embedding_out->text.assign(model_text);
    if (details)
      facts.embedding_out->vector = a.embedding;
    else
      facts.embedding_out->vector = std::move(a.embedding);
  }
  if (details) {
    details->analysis = std::move(a);
    details->pii = std::move(pii);
    details->similarities = std::move(sims);
    details->total_us = us_since(t_start);
  }
}

} // namespace semrouter::pipeline
