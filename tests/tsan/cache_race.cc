// The memory cache under ThreadSanitizer (scripts/tsan-cache.sh; `make tsan`, run by CI): four
// threads store, look up, erase and flush at once over graph and flat scopes, with every store
// evicting. A lookup's search and a store's insert run under the scope's lock with the cache's
// mutex released; a race there is a report, and the run fails. (The same load runs in the unit
// suite as MemoryCache.ConcurrentStoresLookupsAndRemovalsKeepTheIndexesConsistent, where ASan
// sees a race only when it frees memory under a reader; TSan sees every unordered access.)
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

} // namespace

int main() {
  using namespace semrouter;
  cache::Options o;
  o.hnsw.min_entries = 64;
  o.max_entries = 400;
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
  std::printf("cache_race: %llu entries after 6000 stores from 4 threads\n",
              static_cast<unsigned long long>(c->stats().entries));
  return 0;
}
