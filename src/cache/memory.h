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
#include "core/u64_map.h"

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
    uint64_t id = 0; // the entry's id, parsed; 0: the slot is free
    // The entry's key in its scope's index (0: not indexed): its slot in the low 32 bits, and
    // above them a sequence number that comes round again only after 2^32 - 1 indexed stores,
    // unlike an entry id (a Redis resync stores the same id again) or a slot, which come back
    // soon. An index insert that lands after its entry was removed or replaced is recognised by
    // it (indexed()) and undone.
    uint64_t index_key = 0;
    uint64_t tick = 0; // last access (LRU) or insertion (FIFO)
    // The entry's text as the verifier reads it, made the first time the entry is a candidate
    // (most are, again and again); its bytes count in the cache's size.
    std::shared_ptr<const VerifierReading> reading;
    size_t reading_bytes = 0;
  };
  using OrderKey = std::tuple<uint64_t, uint64_t, uint64_t>; // eviction order, then id
  OrderKey order_key(uint64_t id, const Node& n) const;
  // The live entry with this index key, or null.
  Node* indexed(uint64_t index_key);
  void remove_locked(uint64_t id, bool capacity);
  void expire_locked(int64_t now);
  void enforce_bounds_locked(uint64_t keep = 0);
  Summary summary(const Entry& e) const;

  std::mutex mu_;
  Options opt_;
  // The entries, by slot. A removed entry's slot is cleared and handed to a later store
  // (free_): the slots never move, so the maps below hold slots, and an index key names its
  // entry's slot directly (no map from index keys).
  std::vector<Node> nodes_;
  std::vector<uint32_t> free_;
  core::U64Map<uint32_t> by_id_; // entry id -> slot
  core::U64Map<uint32_t> exact_; // exact key -> slot
  // Scope -> its index. The heavy work, a lookup's search and a store's insert into the graph,
  // runs under the scope's own lock with mu_ released, so workers in different scopes search and
  // insert in parallel.
  // Lock order: mu_, then a scope's lock; never the reverse.
  std::unordered_map<uint64_t, std::shared_ptr<Scope>> scopes_;
  uint64_t next_key_ = 0; // the sequence number of the last index key
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
