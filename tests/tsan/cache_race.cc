// The memory cache under ThreadSanitizer (scripts/tsan-cache.sh; `make tsan`, run by CI): four
// threads store, look up, erase and flush at once over graph scopes, then over flat scopes large
// enough for the prefiltered search, with every store evicting. A lookup's search and a store's
// insert run under the scope's lock with the cache's mutex released; a race there is a report, and
// the run fails. (The same load runs in the unit suite as
// MemoryCache.ConcurrentStoresLookupsAndRemovalsKeepTheIndexesConsistent, where ASan sees a race
// only when it frees memory under a reader; TSan sees every unordered access. The unit suite runs
// the graph case only; the prefiltered flat case runs here alone.)
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache.h"

namespace {

std::vector<float> random_unit(std::mt19937& rng, size_t dim) {
  std::normal_distribution<float> g;
  std::vector<float> v(dim);
  float n = 0;
  for (float& x : v)
    x = g(rng), n += x * x;
  for (float& x : v)
    x /= std::sqrt(n);
  return v;
}

// One run of the race: 6,000 stores and lookups from 4 threads into a cache with these bounds.
void race(const semrouter::cache::Options& o, const char* what) {
  using namespace semrouter;
  auto c = cache::make_memory_cache(o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(uint32_t(100 + t));
      for (int i = 0; i < 1500; ++i) {
        std::vector<float> v = random_unit(rng, 16);
        cache::Entry e;
        e.scope = uint64_t(i % 3);
        e.exact = uint64_t(t) << 32 | uint64_t(i + 1);
        e.vector = v;
        e.text = "q" + std::to_string(i);
        e.answer = "{}";
        c->store(std::move(e));
        cache::Query q;
        q.scope = uint64_t(i % 3);
        q.vector = &v;
        q.threshold = 0.9;
        auto l = c->lookup(q);
        if (t == 3 && i % 97 == 0 && l.hit)
          c->erase(l.hit->id);
        if (t == 2 && i == 700)
          c->flush();
        if (t == 1 && i % 250 == 0)
          c->nearest(v, 3, "");
      }
    });
  }
  for (auto& th : threads)
    th.join();
  std::printf("cache_race (%s): %llu entries after 6000 stores from 4 threads\n", what,
              static_cast<unsigned long long>(c->stats().entries));
}

} // namespace

int main() {
  semrouter::cache::Options o;
  // Scopes past 64 entries move into HNSW graphs.
  o.hnsw.min_entries = 64;
  o.max_entries = 400;
  race(o, "graphs");
  // Flat scopes of up to 600 entries: past 384 a search is prefiltered by the entries' codes.
  o.hnsw.min_entries = semrouter::cache::HnswOptions{}.min_entries;
  o.max_entries = 1800;
  race(o, "flat, prefiltered");
  return 0;
}
