// Computes the signals a request's decisions read: keyword, embedding similarity, PII, context
// length, request metadata, and the classifier signals (domain, complexity, reasoning, jailbreak,
// language).
// Embedded-default models run inline (microseconds, sharing one featurisation pass); transformer-
// backed tasks run concurrently on the inference pool, one job each, while the rest runs here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "models/inference_pool.h"
#include "models/registry.h"
#include "openai/request.h"
#include "signals/pii.h"
#include "signals/signal.h"

namespace semrouter::pipeline {

struct Snapshot;

// A request header by lower-case name; nullopt when absent.
using HeaderLookup = std::function<std::optional<std::string_view>(std::string_view)>;

// An embedding of a text, kept so that a later stage embedding the same text (the semantic
// cache, with the same embedder) reads it instead of computing it again.
struct TextEmbedding {
  std::string text;
  std::vector<float> vector; // as the embedder returned it (not normalised again)
};

// The PII entities found in a text (patterns and the model, as detect_pii() merges them), kept
// so that the PII policy reads them instead of scanning the same text again.
struct KnownPii {
  // The text scanned (empty: nothing was): the request's one message or prompt, or (several
  // messages) a joined copy that route() drops before its PII policy runs. Compared by address
  // and size only, never read.
  std::string_view text;
  std::vector<signals::PiiEntity> entities;
};

// What signals read of a request.
struct RequestFacts {
  std::string_view text; // the signal text (routing.history)
  // What the PII signals scan: every message (all of it goes upstream), joined; empty: `text`.
  std::string_view pii_text;
  uint64_t tokens = 0;   // estimated tokens of everything sent upstream
  std::string_view user; // the body's `user` field
  bool has_tools = false;
  bool stream = false;
  const HeaderLookup* headers = nullptr;
  // When set and the embedding signals embed the whole signal text (not a window of it), that
  // embedding is left here.
  TextEmbedding* embedding_out = nullptr;
  // When set and the PII signals run, what they found in pii_text is left here.
  KnownPii* pii_out = nullptr;
};

// Which signal types to compute.
struct SignalSelection {
  bool keyword = false, embedding = false, pii = false, context_length = false, metadata = false;
  models::AnalyzeTasks classifiers{false, false, false, false, false, false};
  bool any() const {
    const auto& c = classifiers;
    return keyword || embedding || pii || context_length || metadata || c.domain || c.complexity ||
           c.reasoning || c.jailbreak || c.language;
  }
};

// What the classify API reports beyond the rule-level results.
struct SignalDetails {
  models::Analysis analysis;
  std::vector<signals::PiiEntity> pii;
  std::vector<std::pair<std::string, double>> similarities; // per embedding signal
  double total_us = 0;
};

// The text signals read: the latest user message by default (a view into `view`, no copy), or
// the turns routing.history asks for joined by blank lines (kept in `storage`).
// A short user turn that leans on the conversation rather than saying what it wants: at most
// `max_words` words, and it opens like a reply ("yes", "ok", "and", "what about", "go on", "do
// it", "why?") or points back ("it", "that", "the second one", "same"). "thanks, unrelated: what
// is the capital of Australia?" and "good night!" do not.
bool is_follow_up(std::string_view text, uint32_t max_words);

std::string_view signal_text(const openai::RequestView& view, const config::HistoryConfig& history,
                             std::string& storage);

// The part of `text` the model-backed signals read (routing.window): the text itself when it has
// at most head_words + tail_words words, else its first head_words and last tail_words words
// joined by " … " (kept in `storage`). Linear in the text, no allocation for short texts.
std::string_view text_window(std::string_view text, const config::WindowConfig& window,
                             std::string& storage);

// A tokenizer-free estimate of the tokens of `text`: about four bytes per token for
// Latin-script text, one per CJK character (what BPE vocabularies of current LLMs give within
// ~20% on English prose).
uint64_t estimate_tokens(std::string_view text);
uint64_t estimate_request_tokens(const openai::RequestView& view);

// PII in `text`: the pattern recognisers, plus the registry's token classifier when configured
// (its labels lower-cased).
std::vector<signals::PiiEntity> detect_pii(const models::Registry* registry, std::string_view text);

// Computes the selected signals into `out`. `pool` may be null (everything inline).
void compute_signals(const Snapshot& snapshot, const RequestFacts& facts,
                     const SignalSelection& which, models::InferencePool* pool,
                     signals::SignalResults& out, SignalDetails* details = nullptr);

} // namespace semrouter::pipeline
