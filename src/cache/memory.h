// The in-memory store: entries by id, an exact-key map, and one vector index per scope (a flat
// index, exact up to 384 entries and prefiltered by sign codes past that, while the scope is
// small; HNSW past HnswOptions::min_entries). Bounded by entries
// and bytes, with per-entry TTLs and LRU / LFU / FIFO eviction. Thread-safe: one mutex for the
// entries, and one per scope for its index, under which searches and inserts run (see scopes_).
// The Redis store keeps one of these as its mirror.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "cache/cache.h"

namespace semrouter::cache {

class ScopeIndex;

class MemoryCache : public Cache {
public:
  explicit MemoryCache(const Options& options);
  ~MemoryCache() override;

  std::string_view backend() const override { return "memory"; }
  Lookup lookup(const Query& q) override;
  bool store(Entry e) override;
  std::optional<Entry> get(std::string_view id) override;
  std::pair<std::vector<Summary>, uint64_t> list(std::string_view tenant, uint64_t offset,
                                                 uint64_t limit) override;
  std::vector<std::pair<Summary, double>> nearest(const std::vector<float>& v, size_t k,
                                                  std::string_view tenant) override;
  bool erase(std::string_view id) override;
  uint64_t erase_tenant(std::string_view tenant) override;
  uint64_t flush() override;
  Stats stats() override;
  void set_options(const Options& o) override;

  // For the Redis mirror: ids of a tenant's entries, and of every entry.
  std::vector<std::string> ids(std::string_view tenant);
  // Called (under the cache's lock) for every entry evicted for capacity or replaced by a newer
  // answer to the same exact key, with its id.
  void on_evict(std::function<void(const std::string&)> cb) { on_evict_ = std::move(cb); }

private:
  struct Scope;
  class Locked;
  struct Node {
    Entry entry;
    // The entry's key in its scope's index (0: not indexed). Never reused, unlike an entry id (a
    // Redis resync stores the same id again), so an index insert that lands after its entry was
    // removed or replaced is recognised and undone.
    uint64_t index_key = 0;
    uint64_t tick = 0; // last access (LRU) or insertion (FIFO)
    // The entry's text as the verifier reads it, made the first time the entry is a candidate
    // (most are, again and again); its bytes count in the cache's size.
    std::shared_ptr<const VerifierReading> reading;
    size_t reading_bytes = 0;
  };
  using OrderKey = std::tuple<uint64_t, uint64_t, uint64_t>; // eviction order, then id
  OrderKey order_key(uint64_t id, const Node& n) const;
  void remove_locked(uint64_t id, bool capacity);
  void expire_locked(int64_t now);
  void enforce_bounds_locked(uint64_t keep = 0);
  Summary summary(const Entry& e) const;

  std::mutex mu_;
  Options opt_;
  std::unordered_map<uint64_t, Node> nodes_;
  std::unordered_map<uint64_t, uint64_t> exact_; // exact key -> id
  // Scope -> its index. The heavy work, a lookup's search and a store's insert into the graph,
  // runs under the scope's own lock with mu_ released, so workers in different scopes search and
  // insert in parallel.
  // Lock order: mu_, then a scope's lock; never the reverse.
  std::unordered_map<uint64_t, std::shared_ptr<Scope>> scopes_;
  std::unordered_map<uint64_t, uint64_t> keys_; // index key -> entry id
  uint64_t next_key_ = 0;
  // Index removals queued by remove_locked, run once mu_ is released (Locked): a removal waits
  // for its scope's lock, and must not hold mu_ while an insert into that scope runs.
  std::vector<std::pair<std::shared_ptr<Scope>, uint64_t>> unindex_;
  std::set<OrderKey> order_;
  std::set<std::pair<int64_t, uint64_t>> expiry_;
  uint64_t bytes_ = 0;
  uint64_t tick_ = 0;
  uint64_t evicted_capacity_ = 0;
  uint64_t evicted_ttl_ = 0;
  uint64_t next_id_;
  std::function<void(const std::string&)> on_evict_;
};

} // namespace semrouter::cache
