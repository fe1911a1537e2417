// The semantic cache: answers to earlier requests, found again by an exact key (the normalised
// request) or by meaning (the nearest stored embedding of the latest user turn, checked by the
// verifier). Entries live in a scope: a request only ever sees answers given to requests with the
// same tenant, decision, model, system prompt, tools, response format and answer-changing
// parameters (pipeline/cache_stage.cc builds the scope). Two stores: in memory (this process) and
// Redis (shared by every replica; each keeps a mirror of the vectors in step with Redis).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace semrouter::cache {

enum class Eviction { Lru, Lfu, Fifo };

struct HnswOptions {
  uint32_t min_entries = 32768; // a scope switches from the flat index to HNSW past this
  uint32_t m = 16;
  uint32_t ef_construction = 100;
  uint32_t ef_search = 64;
};

struct RedisOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  uint32_t db = 0;
  std::string password; // from the environment, never the config text
  std::string prefix = "semrouter:cache:";
  uint32_t timeout_ms = 100;   // per command; a slower Redis counts as down
  uint32_t reconnect_ms = 500; // the least time between two connection attempts
};

struct Options {
  uint64_t max_entries = 10000;
  uint64_t max_bytes = 64ull << 20;
  Eviction eviction = Eviction::Lru;
  HnswOptions hnsw;
};

// One cached answer.
struct Entry {
  std::string id;            // 16 hex digits, unique per store
  std::string tenant;        // "" when the request named none
  uint64_t scope = 0;        // hash of everything that must match besides the text
  uint64_t exact = 0;        // hash of the scope and the normalised conversation
  std::string text;          // the embedded text (the latest user turn, bounded)
  std::vector<float> vector; // empty: exact tier only
  std::string decision;
  std::string model;
  std::string answer; // the stored answer (pipeline's compact JSON: content, usage, ...)
  uint32_t completion_tokens = 0;
  int64_t created_ms = 0; // Unix epoch
  int64_t expires_ms = 0;
  uint64_t hits = 0;

  size_t bytes() const {
    return sizeof(Entry) + id.size() + tenant.size() + text.size() + decision.size() +
           model.size() + answer.size() + vector.size() * sizeof(float);
  }
};

class Verifier;
struct VerifierReading;

struct Query {
  uint64_t scope = 0;
  uint64_t exact = 0;
  std::string_view text;
  const std::vector<float>* vector = nullptr; // null: exact tier only
  double threshold = 0.9;                     // least cosine similarity for the semantic tier
  uint32_t max_completion_tokens = 0;         // the request's max_tokens (0: none): longer
                                              // cached answers do not fit
  const Verifier* verifier = nullptr;         // null: no verification
  int64_t now_ms = 0;
};

struct Lookup {
  std::optional<Entry> hit;
  bool exact = false;
  double similarity = 0;
  std::string rejected;     // the verifier's reason for the best near miss, when it had one
  bool unavailable = false; // the store is down (Redis unreachable)
};

struct Stats {
  uint64_t entries = 0;
  uint64_t bytes = 0;
  uint64_t evicted_capacity = 0;
  uint64_t evicted_ttl = 0;
  bool up = true;
};

// A listed entry without its vector and answer.
struct Summary {
  std::string id, tenant, text, decision, model;
  int64_t created_ms = 0, expires_ms = 0;
  uint64_t hits = 0, bytes = 0;
};

class Cache {
public:
  virtual ~Cache() = default;
  virtual std::string_view backend() const = 0; // "memory" or "redis"
  virtual Lookup lookup(const Query& q) = 0;
  // Stores an entry (its id is assigned here when empty). Returns false when the store is down.
  virtual bool store(Entry e) = 0;
  virtual std::optional<Entry> get(std::string_view id) = 0;
  // Entries by creation time, newest first; `tenant` empty: all. Returns the page and the total.
  virtual std::pair<std::vector<Summary>, uint64_t> list(std::string_view tenant, uint64_t offset,
                                                         uint64_t limit) = 0;
  // The nearest entries to a vector among all scopes (admin lookups), best first.
  virtual std::vector<std::pair<Summary, double>> nearest(const std::vector<float>& v, size_t k,
                                                          std::string_view tenant) = 0;
  virtual bool erase(std::string_view id) = 0;
  virtual uint64_t erase_tenant(std::string_view tenant) = 0;
  virtual uint64_t flush() = 0;
  virtual Stats stats() = 0;
  // Bounds and eviction may change on reload without losing entries.
  virtual void set_options(const Options& o) = 0;
};

std::unique_ptr<Cache> make_memory_cache(const Options& options);
// Connects lazily: a Redis that is down at start is retried on use.
std::unique_ptr<Cache> make_redis_cache(const Options& options, const RedisOptions& redis);

// The text's normal form for the exact tier: lower case (ASCII), runs of spaces inside a line
// as one, indentation and line breaks kept, no blank lines, no leading or trailing space, no
// trailing ? or . characters.
std::string normalize(std::string_view text);

// A 64-bit hash of `s`, chainable through `h` (the seed): FNV-1a for texts under
// kLaneHashBytes, four interleaved FNV-style lanes and a final mix for longer ones (a pasted
// document's key in microseconds, not a third of a millisecond). Chaining is not the same as
// hashing the joined text.
constexpr size_t kLaneHashBytes = 4096;
uint64_t hash_bytes(std::string_view s, uint64_t h = 0xcbf29ce484222325ull);

int64_t now_ms();

// Entry ids: 16 hex digits. parse_id gives 0 for a malformed one.
std::string format_id(uint64_t id);
uint64_t parse_id(std::string_view id);

} // namespace semrouter::cache
