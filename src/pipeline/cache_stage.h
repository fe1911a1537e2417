// The semantic cache's two stages: the lookup (after the decision and the model are known:
// answer from the cache, or note what the response phase must store) and the fill (when the
// upstream's answer completed). Also the admin operations behind /api/v1/cache.
//
// The scope of an entry (what must match exactly besides the text): the tenant, the decision,
// the model, the request kind, every message before the latest user turn byte for byte (system
// prompt and history), and the raw values of the top-level fields that change the answer:
// tools, tool_choice, functions, function_call, response_format, n, logprobs, top_logprobs,
// stop, seed, logit_bias, presence_penalty, frequency_penalty, top_p, reasoning_effort,
// chat_template_kwargs, thinking, modalities, audio. The exact key adds the normalised latest
// user turn; the semantic tier embeds that turn (when it has at most cache.max_words words).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "cache/cache.h"
#include "cache/verifier.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "models/models.h"
#include "openai/answer.h"
#include "openai/request.h"

namespace semrouter::pipeline {

struct Snapshot;
struct RouteOutcome;
struct RequestMeta;

// What the response phase needs to store an answer once it is complete.
struct CacheFill {
  std::shared_ptr<cache::Cache> store;
  cache::Entry entry; // all but the answer
  bool tool_calls = false;
};

class CacheRuntime {
public:
  explicit CacheRuntime(metrics::Registry& r);

  // The store for this snapshot's `cache` section, made on first use and replaced when the
  // backend settings change on reload (bounds and eviction apply in place); null when the config
  // has no cache. Thread-safe.
  std::shared_ptr<cache::Cache> store_for(const Snapshot& snapshot);
  std::shared_ptr<cache::Cache> current();

  // Stores a completed answer (or counts why not). The entry is moved out of `f` when `take` is
  // set (its last owner is done with it), else copied.
  void fill(CacheFill& f, const openai::AnswerCapture& capture, bool take = false);
  // Entries, bytes, evictions and the backend's health into the gauges (before a scrape).
  void refresh_metrics();

  metrics::Family<metrics::Counter>& lookups;    // decision, outcome
  metrics::Family<metrics::Counter>& hits;       // tier
  metrics::Family<metrics::Counter>& rejections; // reason
  metrics::Histogram& lookup_seconds;
  metrics::Family<metrics::Counter>& stores; // result
  metrics::Family<metrics::Counter>& saved_tokens;
  metrics::Gauge& entries;
  metrics::Gauge& bytes;
  metrics::Family<metrics::Counter>& evictions; // reason
  metrics::Family<metrics::Gauge>& up;          // backend

private:
  std::mutex mu_;
  std::shared_ptr<cache::Cache> cache_;
  std::string signature_;
  uint64_t generation_ = UINT64_MAX;
  uint64_t evicted_capacity_ = 0, evicted_ttl_ = 0;
};

enum class StageResult {
  Continue, // nothing to answer here: go on to the next stage
  Reply,    // `out` is a complete answer for the client
};

struct TextEmbedding;

// The cache lookup stage. On a hit `out` becomes the Reply (JSON or SSE as the request asks);
// on a miss `out.cache_fill` says what to store later. `body` is the text `view` reads. Always sets
// x-semrouter-cache when the decision caches. `known` (may be null): an embedding the signals
// computed, used when its text is the one the cache embeds.
StageResult cache_lookup(const Snapshot& snapshot, const RequestMeta& meta,
                         const openai::RequestView& view, std::string_view body,
                         const config::DecisionConfig* decision, const config::ModelConfig& model,
                         const TextEmbedding* known, RouteOutcome& out);

// The least similarity a semantic hit needs: the decision's plugins.cache.similarity, else
// cache.similarity; at least cache.short_similarity for texts of at most short_words words.
double cache_threshold(const config::CacheConfig& cc, const config::CachePluginConfig* plugin,
                       size_t words);
// The embedding the cache stores and searches: the embedder's vector at unit length (empty when
// the embedder fails).
std::vector<float> cache_embedding(const models::Embedder& embedder, std::string_view text);
size_t cache_word_count(std::string_view text);
// The verifier for a `cache` section (word vectors when the embedder is the default one).
cache::Verifier cache_verifier(const config::CacheConfig& cc, const models::Embedder* embedder);

// /api/v1/cache...: GET /api/v1/cache?tenant=&offset=&limit= (list), GET|DELETE
// /api/v1/cache/entries/{id}, DELETE /api/v1/cache?tenant=T, POST /api/v1/cache/flush,
// POST /api/v1/cache/lookup {"text", "tenant"?, "k"?}. Returns (status, JSON body).
std::pair<int, std::string> cache_admin(CacheRuntime& rt, const Snapshot& snapshot,
                                        std::string_view method, std::string_view path,
                                        std::string_view query, std::string_view body);

} // namespace semrouter::pipeline
