#include "pipeline/cache_stage.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cache/verifier.h"
#include "core/query.h"
#include "core/strings.h"
#include "models/word_vectors.h"
#include "pipeline/pipeline.h"

namespace semrouter::pipeline {
namespace {

// Top-level fields that change what the answer says: their raw values are part of the scope.
// OpenAI's, and the sampling and structured-output fields of vLLM, SGLang and llama.cpp. Other
// fields (tracing, metadata, a client's own vendor fields) do not split the cache; temperature
// is checked against cache.max_temperature, max_tokens against the cached answer's length.
constexpr std::string_view kScopeFields[] = {"tools",
                                             "tool_choice",
                                             "functions",
                                             "function_call",
                                             "parallel_tool_calls",
                                             "response_format",
                                             "n",
                                             "logprobs",
                                             "top_logprobs",
                                             "stop",
                                             "seed",
                                             "logit_bias",
                                             "presence_penalty",
                                             "frequency_penalty",
                                             "top_p",
                                             "top_k",
                                             "min_p",
                                             "typical_p",
                                             "repetition_penalty",
                                             "length_penalty",
                                             "min_tokens",
                                             "ignore_eos",
                                             "stop_token_ids",
                                             "bad_words",
                                             "reasoning_effort",
                                             "reasoning",
                                             "chat_template",
                                             "chat_template_kwargs",
                                             "thinking",
                                             "modalities",
                                             "audio",
                                             "prediction",
                                             "web_search_options",
                                             "guided_json",
                                             "guided_regex",
                                             "guided_choice",
                                             "guided_grammar",
                                             "guided_decoding_backend",
                                             "structured_outputs",
                                             "grammar",
                                             "json_schema",
                                             "add_generation_prompt",
                                             "continue_final_message",
                                             "documents",
                                             "mm_processor_kwargs"};

// A JSON string member, or "" when absent or not a string.
std::string json_str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const openai::TopLevelField* field(const openai::RequestView& v, std::string_view key) {
  for (const auto& f : v.fields)
    if (f.key == key)
      return &f;
  return nullptr;
}

std::string_view raw(std::string_view body, const openai::Span& s) {
  return body.substr(s.begin, s.end - s.begin);
}

bool cache_enabled(const config::Config& c, const config::DecisionConfig* d) {
  if (d && d->plugins.cache.set)
    return d->plugins.cache.enabled;
  return c.cache.enabled;
}

bool any_cache(const config::Config& c) {
  if (c.cache.enabled)
    return true;
  for (const auto& d : c.decisions)
    if (d.plugins.cache.set && d.plugins.cache.enabled)
      return true;
  return c.default_decision && c.default_decision->plugins.cache.set &&
         c.default_decision->plugins.cache.enabled;
}

cache::Options options(const config::CacheConfig& cc) {
  cache::Options o;
  o.max_entries = cc.max_entries;
  o.max_bytes = cc.max_bytes;
  o.eviction = cc.eviction == config::CacheEviction::Lfu    ? cache::Eviction::Lfu
               : cc.eviction == config::CacheEviction::Fifo ? cache::Eviction::Fifo
                                                            : cache::Eviction::Lru;
  o.hnsw = {cc.hnsw_min_entries, cc.hnsw_m, cc.hnsw_ef_construction, cc.hnsw_ef_search};
  return o;
}

std::string signature(const config::CacheConfig& cc) {
  if (cc.backend == config::CacheBackend::Memory)
    return "memory";
  return fmt::format("redis {} {} {} {} {} {} {:x}", cc.redis_host, cc.redis_port, cc.redis_db,
                     cc.redis_prefix, cc.redis_timeout_ms, cc.redis_reconnect_ms,
                     cache::hash_bytes(cc.redis_password));
}

// The request's tenant from the configured sources, first found wins.
std::string tenant_of(const config::CacheConfig& cc, const RequestMeta& meta,
                      const openai::RequestView& view) {
  if (!meta.tenant.empty()) // an authenticated key's tenant comes first
    return "key:" + meta.tenant;
  for (const std::string& src : cc.tenant) {
    if (src == "user") {
      if (!view.user.empty())
        return "user:" + view.user;
    } else if (src == "api_key") {
      if (meta.headers && *meta.headers)
        if (auto h = (*meta.headers)("authorization"); h && !core::trim(*h).empty())
          return "key:" + cache::format_id(cache::hash_bytes(core::trim(*h))).substr(0, 12);
    } else if (src.starts_with("header:")) {
      if (meta.headers && *meta.headers)
        if (auto h = (*meta.headers)(std::string_view(src).substr(7)); h && !core::trim(*h).empty())
          return "hdr:" + std::string(core::trim(*h));
    }
  }
  return "";
}

bool truthy(std::string_view v) {
  v = core::trim(v);
  return !v.empty() && v != "0" && !core::iequals(v, "false") && !core::iequals(v, "no");
}

std::optional<std::string_view> header(const RequestMeta& meta, std::string_view name) {
  if (!meta.headers || !*meta.headers || name.empty())
    return std::nullopt;
  return (*meta.headers)(name);
}

} // namespace

size_t cache_word_count(std::string_view s) {
  size_t n = 0;
  bool in = false;
  size_t i = 0;
#if defined(__SSE2__)
  // A word starts at a byte that is not a blank after one that is: sixteen bytes at a time.
  for (; i + 16 <= s.size(); i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
    const __m128i blank = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t')),
                     _mm_cmpeq_epi8(v, _mm_set1_epi8('\r'))));
    const unsigned word = ~unsigned(_mm_movemask_epi8(blank)) & 0xFFFFu;
    n += size_t(__builtin_popcount(word & ~((word << 1) | unsigned(in))));
    in = (word >> 15) & 1u;
  }
#endif
  for (char c : s.substr(i)) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in)
      ++n;
    in = !space;
  }
  return n;
}

double cache_threshold(const config::CacheConfig& cc, const config::CachePluginConfig* plugin,
                       size_t words) {
  double t = plugin && plugin->set && plugin->similarity > 0 ? plugin->similarity : cc.similarity;
  if (words <= cc.short_words)
    t = std::max(t, cc.short_similarity);
  return t;
}

namespace {

// `vec` at unit length; empty when it is zero.
std::vector<float> unit_length(std::vector<float> vec) {
  double norm = 0;
  for (float x : vec)
    norm += double(x) * x;
  if (norm <= 0)
    return {};
  const float inv = float(1.0 / std::sqrt(norm));
  for (float& x : vec)
    x *= inv;
  return vec;
}

} // namespace

std::vector<float> cache_embedding(const models::Embedder& embedder, std::string_view text) {
  std::string_view one[1] = {text};
  auto v = embedder.embed(one);
  if (!v || v->empty())
    return {};
  return unit_length(std::move((*v)[0]));
}

cache::Verifier cache_verifier(const config::CacheConfig& cc, const models::Embedder* embedder) {
  cache::VerifierOptions o;
  o.word_similarity = cc.verify_word_similarity;
  o.rare_weight = cc.verify_rare_weight;
  // The substitution check reads word vectors: the embedded default embedder has them.
  return cache::Verifier(o, dynamic_cast<const models::WordVectors*>(embedder));
}

CacheRuntime::CacheRuntime(metrics::Registry& r)
    : lookups(r.counter("semrouter_cache_lookups_total",
                        "Requests of caching decisions by outcome: hit, miss, or bypass "
                        "(cache-control, the bypass header, temperature, backend down).",
                        {"decision", "outcome"})),
      hits(r.counter("semrouter_cache_hits_total", "Cache hits by tier (exact, semantic).",
                     {"tier"})),
      rejections(r.counter("semrouter_cache_verifier_rejections_total",
                           "Semantic near misses the verifier refused, by reason (numbers, "
                           "negation, anchors, order, substitution).",
                           {"reason"})),
      lookup_seconds(r.histogram("semrouter_cache_lookup_duration_seconds",
                                 "Cache lookup time, the embedding included.", {},
                                 {10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3,
                                  10e-3, 50e-3})
                         .with({})),
      stores(r.counter("semrouter_cache_stores_total",
                       "Answers offered to the cache by result: stored, or why not (error, "
                       "incomplete, length, tool_calls, choices, finish_reason, unavailable).",
                       {"result"})),
      saved_tokens(r.counter("semrouter_cache_saved_tokens_total",
                             "Completion tokens of answers served from the cache, by model.",
                             {"model"})),
      entries(r.gauge("semrouter_cache_entries", "Entries in the cache.").with({})),
      bytes(r.gauge("semrouter_cache_bytes", "Bytes the cache's entries hold.").with({})),
      evictions(r.counter("semrouter_cache_evictions_total",
                          "Entries evicted, by reason (capacity, ttl).", {"reason"})),
      up(r.gauge("semrouter_cache_backend_up",
                 "1 while the cache's store answers (Redis reachable), 0 while it does not.",
                 {"backend"})) {}

std::shared_ptr<cache::Cache> CacheRuntime::store_for(const Snapshot& snapshot) {
  std::lock_guard<std::mutex> lock(mu_);
  // A request still on an older snapshot than the last one seen leaves the store as it is.
  if (generation_ != UINT64_MAX && snapshot.generation <= generation_)
    return cache_;
  generation_ = snapshot.generation;
  const config::Config& c = *snapshot.config;
  if (!any_cache(c)) {
    cache_.reset();
    signature_.clear();
    return cache_;
  }
  const config::CacheConfig& cc = c.cache;
  std::string sig = signature(cc);
  if (cache_ && sig == signature_) {
    cache_->set_options(options(cc));
    return cache_;
  }
  if (cc.backend == config::CacheBackend::Redis) {
    cache::RedisOptions ro;
    ro.host = cc.redis_host;
    ro.port = cc.redis_port;
    ro.db = cc.redis_db;
    ro.password = cc.redis_password;
    ro.prefix = cc.redis_prefix;
    ro.timeout_ms = cc.redis_timeout_ms;
    ro.reconnect_ms = cc.redis_reconnect_ms;
    cache_ = cache::make_redis_cache(options(cc), ro);
  } else {
    cache_ = cache::make_memory_cache(options(cc));
  }
  signature_ = std::move(sig);
  spdlog::info("cache: {} store ready (max {} entries, {} bytes)", cache_->backend(),
               cc.max_entries, cc.max_bytes);
  return cache_;
}

std::shared_ptr<cache::Cache> CacheRuntime::current() {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_;
}

void CacheRuntime::fill(CacheFill& f, const openai::AnswerCapture& capture, bool take) {
  std::string why = capture.why_not();
  const openai::Answer& a = capture.answer();
  if (why.empty() && !a.tool_calls_json.empty() && !f.tool_calls)
    why = "tool_calls";
  if (!why.empty()) {
    stores.with({why}).inc();
    return;
  }
  cache::Entry e = take ? std::move(f.entry) : f.entry;
  e.answer = openai::answer_to_json(a);
  // A stream without usage (the client did not ask for it): the length estimated from the text,
  // so that max_tokens still bounds what a hit may return.
  e.completion_tokens = static_cast<uint32_t>(
      a.completion_tokens ? a.completion_tokens
                          : estimate_tokens(a.content) + estimate_tokens(a.reasoning_content));
  const bool ok = f.store->store(std::move(e));
  stores.with({ok ? "stored" : "unavailable"}).inc();
  if (ok) {
    cache::Stats s = f.store->stats();
    entries.set(double(s.entries));
    bytes.set(double(s.bytes));
  }
}

void CacheRuntime::refresh_metrics() {
  auto c = current();
  if (!c)
    return;
  cache::Stats s = c->stats();
  entries.set(double(s.entries));
  bytes.set(double(s.bytes));
  up.with({std::string(c->backend())}).set(s.up ? 1 : 0);
  std::lock_guard<std::mutex> lock(mu_);
  if (s.evicted_capacity > evicted_capacity_)
    evictions.with({"capacity"}).inc(double(s.evicted_capacity - evicted_capacity_));
  if (s.evicted_ttl > evicted_ttl_)
    evictions.with({"ttl"}).inc(double(s.evicted_ttl - evicted_ttl_));
  evicted_capacity_ = s.evicted_capacity;
  evicted_ttl_ = s.evicted_ttl;
}

StageResult cache_lookup(const Snapshot& snapshot, const RequestMeta& meta,
                         const openai::RequestView& view, std::string_view body_text,
                         const config::DecisionConfig* decision, const config::ModelConfig& model,
                         const TextEmbedding* known, RouteOutcome& out) {
  const config::Config& config = *snapshot.config;
  if (!meta.cache || view.kind != openai::RequestKind::ChatCompletions ||
      !cache_enabled(config, decision))
    return StageResult::Continue;
  std::shared_ptr<cache::Cache> store = meta.cache->store_for(snapshot);
  if (!store)
    return StageResult::Continue;
  const config::CacheConfig& cc = config.cache;
  const config::CachePluginConfig* plugin = decision ? &decision->plugins.cache : nullptr;
  const auto t0 = std::chrono::steady_clock::now();
  auto outcome = [&](std::string_view what, std::string_view reason = {}) {
    out.cache = std::string(what);
    out.response_headers.emplace_back("x-semrouter-cache", out.cache);
    if (!reason.empty())
      out.response_headers.emplace_back("x-semrouter-cache-reason", std::string(reason));
    meta.cache->lookups.with({out.decision, out.cache}).inc();
  };

  // What the client asked of caches.
  bool read = true, write = true;
  std::string_view reason;
  if (auto cc_header = header(meta, "cache-control")) {
    const std::string v = core::ascii_lower(*cc_header);
    if (v.find("no-store") != std::string::npos)
      read = write = false, reason = "no-store";
    else if (v.find("no-cache") != std::string::npos)
      read = false, reason = "no-cache";
  }
  if (auto b = header(meta, cc.bypass_header); b && truthy(*b))
    read = write = false, reason = "header";
  if (!meta.may_reply && read)
    read = false, reason = "observing";
  // Answers whose extra parts the cache does not keep (token log-probabilities, audio).
  if (const auto* lp = field(view, "logprobs"); lp && raw(body_text, lp->value) == "true")
    read = write = false, reason = "unsupported";
  if (field(view, "audio") || field(view, "top_logprobs"))
    read = write = false, reason = "unsupported";
  if (const auto* t = field(view, "temperature"); t && !body_text.empty()) {
    const std::string v(raw(body_text, t->value));
    char* end = nullptr;
    const double temp = std::strtod(v.c_str(), &end);
    if (end != v.c_str() && temp > cc.max_temperature)
      read = write = false, reason = "temperature";
  }
  if (!write && !read) {
    outcome("bypass", reason);
    return StageResult::Continue;
  }
  const std::string_view text = view.latest_user_text();
  if (core::trim(text).empty()) {
    outcome("bypass", "no_user_text");
    return StageResult::Continue;
  }

  // The scope: tenant, decision, model, kind, the conversation around the latest user turn, and
  // the answer-changing fields.
  cache::Entry entry;
  entry.tenant = tenant_of(cc, meta, view);
  entry.decision = out.decision;
  entry.model = model.name;
  uint64_t scope = cache::hash_bytes(entry.tenant);
  // The decision and the model between separators. Below kLaneHashBytes hash_bytes is FNV-1a,
  // which hashes pieces in turn as it hashes them joined: the same key without the joined copy.
  if (entry.decision.size() + entry.model.size() + 3 < cache::kLaneHashBytes) {
    for (std::string_view piece :
         {std::string_view("\x1f"), std::string_view(entry.decision), std::string_view("\x1f"),
          std::string_view(entry.model), std::string_view("\x1f")})
      scope = cache::hash_bytes(piece, scope);
  } else {
    scope = cache::hash_bytes("\x1f" + entry.decision + "\x1f" + entry.model + "\x1f", scope);
  }
  size_t latest = view.messages.size();
  for (size_t i = view.messages.size(); i-- > 0;)
    if (view.messages[i].role == "user") {
      latest = i;
      break;
    }
  for (size_t i = 0; i < view.messages.size(); ++i) {
    scope = cache::hash_bytes(i == latest ? std::string_view("\x1e<latest>")
                                          : raw(body_text, view.messages[i].span),
                              cache::hash_bytes("\x1e", scope));
  }
  // The latest turn's parts other than text (images, audio, files) must match byte for byte:
  // "what is in this image?" asks something else of every image.
  if (latest < view.messages.size() && !view.messages[latest].content_is_string) {
    const std::string_view msg = raw(body_text, view.messages[latest].span);
    auto j = nlohmann::json::parse(msg, nullptr, false);
    if (j.is_object() && j.contains("content") && j["content"].is_array()) {
      for (const auto& part : j["content"])
        if (!part.is_object() || json_str(part, "type") != "text")
          scope = cache::hash_bytes(part.dump(), cache::hash_bytes("\x1c", scope));
    } else {
      scope = cache::hash_bytes(msg, cache::hash_bytes("\x1c", scope));
    }
  }
  std::vector<const openai::TopLevelField*> fields;
  for (const auto& f : view.fields)
    if (std::find(std::begin(kScopeFields), std::end(kScopeFields), f.key) !=
        std::end(kScopeFields))
      fields.push_back(&f);
  std::sort(fields.begin(), fields.end(),
            [](const auto* a, const auto* b) { return a->key < b->key; });
  for (const auto* f : fields)
    scope = cache::hash_bytes(raw(body_text, f->value), cache::hash_bytes(f->key + "=", scope));
  // What routing changes in the request: the upstream model, the reasoning plan, and the
  // decision's system prompt and parameters (a reload that changes them starts a new scope).
  scope = cache::hash_bytes(model.upstream_model + "\x1b" + out.reasoning, scope);
  if (decision) {
    const config::PluginsConfig& p = decision->plugins;
    if (p.system_prompt.enabled)
      scope = cache::hash_bytes(
          p.system_prompt.content +
              (p.system_prompt.mode == config::SystemPromptMode::Replace ? "\x1br" : "\x1bi"),
          scope);
    for (const auto& [k, v] : p.params.set)
      scope = cache::hash_bytes(k + "=" + v, scope);
    for (const auto& [k, v] : p.params.max)
      scope = cache::hash_bytes(k + "<" + std::to_string(v), scope);
    for (const auto& k : p.params.remove)
      scope = cache::hash_bytes("-" + k, scope);
  }
  entry.scope = scope;
  const std::string normal = cache::normalize(text);
  entry.exact = cache::hash_bytes(normal, cache::hash_bytes("\x1d", scope));

  // The semantic tier reads the latest user turn when it fits the embedder's window.
  const size_t words = cache_word_count(text);
  const models::Embedder* embedder =
      snapshot.models && snapshot.models->embeddings ? snapshot.models->embeddings.get() : nullptr;
  if (embedder && words <= cc.max_words) {
    // The embedding signals may have embedded this very text with this embedder already.
    entry.vector = known && !known->vector.empty() && known->text == text
                       ? unit_length(known->vector)
                       : cache_embedding(*embedder, text);
    entry.text = std::string(text);
  } else {
    entry.text = std::string(core::utf8_prefix(text, 4096));
  }

  const int64_t now = cache::now_ms();
  const uint32_t ttl = plugin && plugin->set && plugin->ttl_s ? plugin->ttl_s : cc.ttl_s;
  entry.created_ms = now;
  entry.expires_ms = now + int64_t(ttl) * 1000;

  if (read) {
    const double threshold = cache_threshold(cc, plugin, words);
    const cache::Verifier verifier = cache_verifier(cc, embedder);
    cache::Query q;
    q.scope = entry.scope;
    q.exact = entry.exact;
    q.text = text;
    q.vector = entry.vector.empty() ? nullptr : &entry.vector;
    q.threshold = threshold;
    q.verifier = cc.verify ? &verifier : nullptr;
    q.now_ms = now;
    for (std::string_view key : {"max_completion_tokens", "max_tokens"})
      if (const auto* f = field(view, key)) {
        const std::string v(raw(body_text, f->value));
        const long long n = std::atoll(v.c_str());
        if (n > 0)
          q.max_completion_tokens = static_cast<uint32_t>(std::min<long long>(n, UINT32_MAX));
      }
    cache::Lookup found = store->lookup(q);
    meta.cache->lookup_seconds.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!found.rejected.empty()) {
      // The metric's label is the kind of reason only ("anchors", not "anchors:<word>").
      meta.cache->rejections.with({found.rejected.substr(0, found.rejected.find(':'))}).inc();
      out.response_headers.emplace_back("x-semrouter-cache-rejected", found.rejected);
    }
    if (found.unavailable) {
      outcome("bypass", "unavailable");
      return StageResult::Continue;
    }
    if (found.hit) {
      auto answer = openai::answer_from_json(found.hit->answer);
      if (answer) {
        bool include_usage = false;
        if (const auto* so = field(view, "stream_options")) {
          auto j = nlohmann::json::parse(raw(body_text, so->value), nullptr, false);
          include_usage = j.is_object() && j.contains("include_usage") &&
                          j["include_usage"].is_boolean() && j["include_usage"].get<bool>();
        }
        const std::string id = "chatcmpl-cache-" + found.hit->id;
        const int64_t created = static_cast<int64_t>(std::time(nullptr));
        out.action = RouteAction::Reply;
        out.reply_status = 200;
        out.model = &model;
        out.reply_content_type = view.stream ? "text/event-stream" : "application/json";
        out.reply_body = view.stream ? openai::answer_stream(*answer, id, created, include_usage)
                                     : openai::answer_response(*answer, id, created);
        outcome("hit");
        meta.cache->hits.with({found.exact ? "exact" : "semantic"}).inc();
        meta.cache->saved_tokens.with({model.name}).inc(double(answer->completion_tokens));
        out.response_headers.emplace_back("x-semrouter-cache-similarity",
                                          fmt::format("{:.4f}", found.similarity));
        out.response_headers.emplace_back("x-semrouter-cache-entry", found.hit->id);
        return StageResult::Reply;
      }
    }
  }
  if (read)
    outcome("miss");
  else
    outcome("bypass", reason);
  if (write) {
    auto fill = std::make_shared<CacheFill>();
    fill->store = std::move(store);
    fill->entry = std::move(entry);
    fill->tool_calls = cc.cache_tool_calls;
    out.cache_fill = std::move(fill);
  }
  return StageResult::Continue;
}

namespace {

nlohmann::json summary_json(const cache::Summary& s) {
  return {{"id", s.id},
          {"tenant", s.tenant},
          {"text", s.text},
          {"decision", s.decision},
          {"model", s.model},
          {"created_ms", s.created_ms},
          {"expires_ms", s.expires_ms},
          {"hits", s.hits},
          {"bytes", s.bytes}};
}

// The cache API's parameters: absent and empty read the same.
std::string query_param(std::string_view query, std::string_view name) {
  return core::query_param(query, name).value_or(std::string());
}

std::pair<int, std::string> error(int status, std::string_view type, std::string_view message) {
  nlohmann::json j = {{"error", {{"message", message}, {"type", type}, {"code", nullptr}}}};
  return {status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

} // namespace

std::pair<int, std::string> cache_admin(CacheRuntime& rt, const Snapshot& snapshot,
                                        std::string_view method, std::string_view path,
                                        std::string_view query, std::string_view body) {
  auto store = rt.store_for(snapshot);
  if (!store)
    return error(404, "not_found_error",
                 "the cache is off: enable it in the `cache` section or a decision's "
                 "plugins.cache");
  using nlohmann::json;
  constexpr std::string_view kEntries = "/api/v1/cache/entries/";
  if (path == "/api/v1/cache" && method == "GET") {
    uint64_t offset = std::strtoull(query_param(query, "offset").c_str(), nullptr, 10);
    std::string lim = query_param(query, "limit");
    uint64_t limit = lim.empty() ? 50 : std::strtoull(lim.c_str(), nullptr, 10);
    limit = std::clamp<uint64_t>(limit, 1, 1000);
    auto [page, total] = store->list(query_param(query, "tenant"), offset, limit);
    json j = {{"backend", store->backend()},
              {"total", total},
              {"offset", offset},
              {"limit", limit},
              {"entries", json::array()}};
    for (const auto& s : page)
      j["entries"].push_back(summary_json(s));
    return {200, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
  }
  if (path == "/api/v1/cache" && method == "DELETE") {
    std::string tenant = query_param(query, "tenant");
    if (tenant.empty())
      return error(400, "invalid_request_error",
                   "DELETE /api/v1/cache needs ?tenant=<tenant> (POST /api/v1/cache/flush "
                   "empties the whole cache)");
    uint64_t n = store->erase_tenant(tenant);
    rt.refresh_metrics();
    return {200, json({{"deleted", n}, {"tenant", tenant}}).dump()};
  }
  if (path == "/api/v1/cache/flush" && method == "POST") {
    uint64_t n = store->flush();
    rt.refresh_metrics();
    return {200, json({{"deleted", n}}).dump()};
  }
  if (path == "/api/v1/cache/lookup" && method == "POST") {
    json req = json::parse(body, nullptr, false);
    if (!req.is_object() || !req.contains("text") || !req["text"].is_string())
      return error(400, "invalid_request_error",
                   "expected a JSON object {\"text\": \"...\", \"tenant\"?: \"...\", \"k\"?: 5}");
    const std::string text = req["text"].get<std::string>();
    const std::string tenant = json_str(req, "tenant");
    const size_t k = req.contains("k") && req["k"].is_number_unsigned()
                         ? std::clamp<size_t>(req["k"].get<size_t>(), 1, 100)
                         : 5;
    json j = {{"text", text}, {"nearest", json::array()}};
    const models::Embedder* embedder = snapshot.models && snapshot.models->embeddings
                                           ? snapshot.models->embeddings.get()
                                           : nullptr;
    if (embedder) {
      if (std::vector<float> vec = cache_embedding(*embedder, text); !vec.empty()) {
        const cache::Verifier verifier = cache_verifier(snapshot.config->cache, embedder);
        for (const auto& [s, sim] : store->nearest(vec, k, tenant)) {
          json e = summary_json(s);
          e["similarity"] = sim;
          std::string why = verifier.check(s.text, text);
          e["verifier"] = why.empty() ? json("pass") : json(why);
          j["nearest"].push_back(std::move(e));
        }
      }
    }
    return {200, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
  }
  if (path.starts_with(kEntries)) {
    std::string_view id = path.substr(kEntries.size());
    if (method == "GET") {
      auto e = store->get(id);
      if (!e)
        return error(404, "not_found_error", "no cache entry " + std::string(id));
      cache::Summary s{e->id,         e->tenant,     e->text, e->decision, e->model,
                       e->created_ms, e->expires_ms, e->hits, e->bytes()};
      json j = summary_json(s);
      j["answer"] = json::parse(e->answer, nullptr, false);
      return {200, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
    }
    if (method == "DELETE") {
      if (!store->erase(id))
        return error(404, "not_found_error", "no cache entry " + std::string(id));
      rt.refresh_metrics();
      return {200, json({{"deleted", 1}, {"id", id}}).dump()};
    }
    return error(405, "invalid_request_error", "use GET or DELETE on a cache entry");
  }
  return error(404, "not_found_error",
               "unknown cache endpoint " + std::string(method) + " " + std::string(path));
}

} // namespace semrouter::pipeline
