// The cache module's stores and verifier, the answer capture and replay, the tool filter and the
// cache config, without a server.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cache/cache.h"
#include "cache/memory.h"
#include "cache/prefilter.h"
#include "cache/verifier.h"
#include "config/config.h"
#include "nn/kernels.h"
#include "openai/answer.h"
#include "openai/sse.h"
#include "pipeline/cache_stage.h"
#include "pipeline/tools_stage.h"

namespace semrouter {
namespace {

using nlohmann::json;

// A unit vector along axis i, bent toward axis j by `t`.
std::vector<float> vec(int i, int j = -1, float t = 0) {
  std::vector<float> v(8, 0.f);
  v[size_t(i)] = 1.f;
  if (j >= 0)
    v[size_t(j)] = t;
  float n = std::sqrt(1 + t * t);
  for (float& x : v)
    x /= n;
  return v;
}

// A random unit vector of `dim` floats.
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

cache::Entry entry(uint64_t scope, uint64_t exact, std::vector<float> v, std::string text,
                   int64_t expires_ms = 0, std::string tenant = "") {
  cache::Entry e;
  e.scope = scope;
  e.exact = exact;
  e.vector = std::move(v);
  e.text = std::move(text);
  e.answer = "{\"content\":\"" + e.text + "\"}";
  e.expires_ms = expires_ms;
  e.tenant = std::move(tenant);
  return e;
}

cache::Query query(uint64_t scope, uint64_t exact, const std::vector<float>* v, int64_t now = 0) {
  cache::Query q;
  q.scope = scope;
  q.exact = exact;
  q.vector = v;
  q.threshold = 0.9;
  q.now_ms = now;
  return q;
}

TEST(MemoryCache, ExactThenSemanticWithinOneScopeOnly) {
  auto c = cache::make_memory_cache({});
  ASSERT_TRUE(c->store(entry(1, 100, vec(0), "a")));
  auto v = vec(0);
  auto exact = c->lookup(query(1, 100, nullptr));
  ASSERT_TRUE(exact.hit);
  EXPECT_TRUE(exact.exact);
  auto near = vec(0, 1, 0.2f); // cosine 0.98
  auto sem = c->lookup(query(1, 999, &near));
  ASSERT_TRUE(sem.hit);
  EXPECT_FALSE(sem.exact);
  EXPECT_NEAR(sem.similarity, 1 / std::sqrt(1.04), 1e-4);
  auto far = vec(0, 1, 1.0f); // cosine 0.71
  EXPECT_FALSE(c->lookup(query(1, 999, &far)).hit);
  EXPECT_FALSE(c->lookup(query(2, 100, &v)).hit) << "another scope";
}

TEST(MemoryCache, TtlExpires) {
  auto c = cache::make_memory_cache({});
  const int64_t now = cache::now_ms();
  c->store(entry(1, 1, vec(0), "a", now + 1000));
  EXPECT_TRUE(c->lookup(query(1, 1, nullptr, now + 500)).hit);
  EXPECT_FALSE(c->lookup(query(1, 1, nullptr, now + 1001)).hit);
  EXPECT_EQ(c->stats().entries, 0u);
  EXPECT_EQ(c->stats().evicted_ttl, 1u);
}

TEST(MemoryCache, EvictionPolicies) {
  for (auto [policy, evicted] : {std::pair{cache::Eviction::Lru, 2},
                                 {cache::Eviction::Fifo, 1},
                                 {cache::Eviction::Lfu, 2}}) {
    cache::Options o;
    o.max_entries = 2;
    o.eviction = policy;
    auto c = cache::make_memory_cache(o);
    c->store(entry(1, 1, vec(0), "one"));
    c->store(entry(1, 2, vec(1), "two"));
    ASSERT_TRUE(c->lookup(query(1, 1, nullptr)).hit); // "one" used (twice for LFU)
    c->lookup(query(1, 1, nullptr));
    c->store(entry(1, 3, vec(2), "three"));
    EXPECT_EQ(c->stats().entries, 2u);
    EXPECT_EQ(c->stats().evicted_capacity, 1u);
    EXPECT_EQ(c->lookup(query(1, uint64_t(evicted), nullptr)).hit.has_value(), false)
        << "policy " << int(policy);
    EXPECT_TRUE(c->lookup(query(1, 3, nullptr)).hit);
  }
}

TEST(MemoryCache, BoundedByBytes) {
  cache::Options o;
  o.max_bytes = 4096;
  auto c = cache::make_memory_cache(o);
  for (uint64_t i = 1; i <= 50; ++i)
    c->store(entry(1, i, vec(int(i % 8)), std::string(200, 'x')));
  EXPECT_LE(c->stats().bytes, 4096u);
  EXPECT_GT(c->stats().entries, 0u);
  EXPECT_TRUE(c->lookup(query(1, 50, nullptr)).hit) << "the newest stays";
}

TEST(MemoryCache, HnswPastMinEntriesFindsTheSameNeighbours) {
  cache::Options o;
  o.hnsw.min_entries = 64;
  o.max_entries = 100000;
  auto c = cache::make_memory_cache(o);
  std::mt19937 rng(7);
  std::vector<std::vector<float>> all;
  for (int i = 0; i < 600; ++i) {
    std::vector<float> v = random_unit(rng, 32);
    all.push_back(v);
    c->store(entry(7, uint64_t(i + 1), v, "t" + std::to_string(i)));
  }
  int found = 0;
  for (int i = 0; i < 600; i += 7) {
    auto q = query(7, 0, &all[size_t(i)]);
    auto l = c->lookup(q);
    found += l.hit && l.hit->text == "t" + std::to_string(i);
  }
  EXPECT_GE(found, 84) << "an exact vector is its own nearest neighbour"; // 86 queries
  // Deleting most entries rebuilds the graph; the rest stay findable.
  auto [page, total] = c->list("", 0, 1000);
  EXPECT_EQ(total, 600u);
  for (size_t i = 0; i < page.size(); ++i)
    if (page[i].text != "t5")
      c->erase(page[i].id);
  auto l = c->lookup(query(7, 0, &all[5]));
  ASSERT_TRUE(l.hit);
  EXPECT_EQ(l.hit->text, "t5");
}

// The flat index compares every vector while a scope holds up to 384 entries, and past that only
// the 384 whose sign codes are nearest the query's. Near copies of stored vectors are still found,
// random queries mostly get the brute-force best, and entries moved by removals keep their codes.
TEST(MemoryCache, FlatIndexPrefilteredBySignCodesFindsNearVectors) {
  auto nearest_by_scan = [](const std::vector<std::vector<float>>& all,
                            const std::vector<bool>& live, const std::vector<float>& q) {
    size_t best = 0;
    float best_s = -2;
    for (size_t i = 0; i < all.size(); ++i) {
      if (!live[i])
        continue;
      float s = 0;
      for (size_t d = 0; d < q.size(); ++d)
        s += q[d] * all[i][d];
      if (s > best_s)
        best_s = s, best = i;
    }
    return std::pair{best, best_s};
  };
  for (const size_t n : {size_t(300), size_t(385), size_t(3000)}) {
    SCOPED_TRACE(n);
    cache::Options o;
    o.max_entries = 100000;
    ASSERT_GT(o.hnsw.min_entries, n) << "every entry stays in the flat index";
    auto c = cache::make_memory_cache(o);
    std::mt19937 rng(11);
    std::normal_distribution<float> g;
    std::vector<std::vector<float>> all;
    for (size_t i = 0; i < n; ++i) {
      all.push_back(random_unit(rng, 32));
      c->store(entry(5, i + 1, all.back(), "t" + std::to_string(i)));
    }
    std::vector<bool> live(n, true);
    auto near_copy = [&](size_t i) {
      std::vector<float> v = all[i];
      float norm = 0;
      for (float& x : v)
        x += 0.05f * g(rng), norm += x * x;
      for (float& x : v)
        x /= std::sqrt(norm);
      return v;
    };
    int copies = 0, found = 0, random = 0, agree = 0;
    for (size_t i = 0; i < n; i += 13) {
      const auto q = near_copy(i);
      auto got = c->nearest(q, 1, "");
      ++copies;
      found += !got.empty() && got[0].first.text == "t" + std::to_string(i);
      const auto r = random_unit(rng, 32);
      const auto [best, best_s] = nearest_by_scan(all, live, r);
      auto rg = c->nearest(r, 1, "");
      ++random;
      agree += !rg.empty() && rg[0].second >= best_s - 1e-5f;
    }
    EXPECT_EQ(found, copies) << "a near copy finds its original";
    if (n <= 384)
      EXPECT_EQ(agree, random) << "a small scope is searched exactly";
    else
      EXPECT_GE(agree * 10, random * 8) << agree << " of " << random;
    // Removals move the last entry into the freed slot, its code with it.
    auto [page, total] = c->list("", 0, 100000);
    ASSERT_EQ(total, n);
    for (const auto& e : page) {
      const size_t i = std::stoul(e.text.substr(1));
      if (i % 2 == 0) {
        ASSERT_TRUE(c->erase(e.id));
        live[i] = false;
      }
    }
    found = 0, copies = 0;
    for (size_t i = 1; i < n; i += 6) {
      auto got = c->nearest(near_copy(i), 1, "");
      ++copies;
      found += !got.empty() && got[0].first.text == "t" + std::to_string(i);
    }
    EXPECT_EQ(found, copies) << "the entries left are found after removals";
  }
}

// A store of a vector just searched for takes the sign code the search computed (the index keeps
// recent searches' codes by the vector's hash). The code must be the stored vector's own: each
// entry is then found by its own vector among 1,500 (with a wrong code, its code distance to its
// own vector would be about 64 of 128 bits, and the prefilter would pass it over).
TEST(MemoryCache, AStoreAfterItsSearchFindsItsEntry) {
  cache::Options o;
  o.max_entries = 100000;
  auto c = cache::make_memory_cache(o);
  std::mt19937 rng(5);
  for (size_t i = 0; i < 1000; ++i) // past kRerank: searches go through the codes
    c->store(entry(3, i + 1, random_unit(rng, 48), "old"));
  std::vector<std::vector<float>> added;
  for (size_t i = 0; i < 500; ++i) {
    added.push_back(random_unit(rng, 48));
    auto q = query(3, 5000 + i, &added.back());
    q.threshold = 0.999;
    EXPECT_FALSE(c->lookup(q).hit); // the miss whose answer is stored next
    // Other requests' searches come between a search and its store, as with many connections:
    // one may take this vector's slot of the recent codes, and the store must then see that the
    // slot's code is another vector's.
    for (int k = 0; k < 16; ++k) {
      auto other = random_unit(rng, 48);
      c->lookup(query(3, 9999, &other));
    }
    c->store(entry(3, 5000 + i, added.back(), "new" + std::to_string(i)));
  }
  int found = 0;
  for (size_t i = 0; i < added.size(); ++i) {
    auto q = query(3, 1, &added[i]);
    q.exact = 777777; // no exact hit: the semantic tier alone
    q.threshold = 0.999;
    auto r = c->lookup(q);
    found += r.hit && r.hit->text == "new" + std::to_string(i);
  }
  EXPECT_EQ(found, 500);
}

// Past kRerank entries a search ranks its candidates by int8 copies of their vectors, then
// compares the best of those exactly: what it returns are the floats' own cosines, best first.
// Among near copies of one vector (closer together than int8's steps) it returns one of them.
TEST(MemoryCache, CodedSearchReturnsExactSimilarities) {
  cache::Options o;
  o.max_entries = 100000;
  auto c = cache::make_memory_cache(o);
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0, 1e-3f);
  std::vector<std::vector<float>> stored;
  const auto base = random_unit(rng, 100);
  for (size_t i = 0; i < 900; ++i) {
    std::vector<float> v = i < 600 ? random_unit(rng, 100) : base;
    if (i >= 600) { // near copies of one vector
      for (float& x : v)
        x += g(rng);
      float n = 0;
      for (float x : v)
        n += x * x;
      for (float& x : v)
        x /= std::sqrt(n);
    }
    stored.push_back(v);
    c->store(entry(4, i + 1, v, "e" + std::to_string(i)));
  }
  auto cosine = [&](const std::vector<float>& a, size_t i) {
    double s = 0;
    for (size_t d = 0; d < a.size(); ++d)
      s += double(a[d]) * stored[i][d];
    return s;
  };
  for (size_t i = 0; i < stored.size(); i += 7) {
    auto q = query(4, 1, &stored[i]);
    q.exact = 888888; // the semantic tier alone
    q.threshold = 0.0;
    auto r = c->lookup(q);
    ASSERT_TRUE(r.hit) << i;
    const size_t got = std::stoul(r.hit->text.substr(1));
    if (i < 600)
      EXPECT_EQ(got, i);
    else
      EXPECT_GE(got, 600u) << i;
    EXPECT_NEAR(r.similarity, cosine(stored[i], got), 1e-5) << i;
  }
  // nearest() lists the floats' cosines too, best first.
  for (size_t from : {5u, 700u}) {
    auto near = c->nearest(stored[from], 8, "");
    ASSERT_EQ(near.size(), 8u);
    for (size_t k = 0; k < near.size(); ++k) {
      EXPECT_NEAR(near[k].second, cosine(stored[from], std::stoul(near[k].first.text.substr(1))),
                  1e-5)
          << from << " " << k;
      if (k > 0) {
        EXPECT_GE(near[k - 1].second, near[k].second);
      }
    }
  }
}

// A vector with a NaN or an infinity (a corrupt Redis entry, say) is not indexed: its entry
// answers by exact key only, and searches of the scope go on ranking the others.
TEST(MemoryCache, NonFiniteVectorsStayOutOfTheIndex) {
  cache::Options o;
  o.max_entries = 100000;
  auto c = cache::make_memory_cache(o);
  std::mt19937 rng(13);
  std::vector<std::vector<float>> stored;
  for (size_t i = 0; i < 600; ++i) { // past kRerank: the coded search and its int8 pass
    stored.push_back(random_unit(rng, 64));
    auto v = stored.back();
    if (i < 20)
      v[i % 64] =
          i % 2 ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    c->store(entry(6, i + 1, v, "e" + std::to_string(i)));
  }
  auto exact = query(6, 3, &stored[2]);
  exact.threshold = 0.999;
  auto hit = c->lookup(exact); // entry 2's exact key
  ASSERT_TRUE(hit.hit);
  EXPECT_TRUE(hit.exact);
  for (size_t i = 0; i < 40; ++i) {
    auto q = query(6, 999999, &stored[i]); // the semantic tier alone
    q.threshold = 0.999;
    auto r = c->lookup(q);
    if (i < 20) {
      EXPECT_FALSE(r.hit) << i;
    } else {
      ASSERT_TRUE(r.hit) << i;
      EXPECT_EQ(r.hit->text, "e" + std::to_string(i));
    }
  }
}

// The prefilter's choice, on made-up distances: the `keep` smallest, ties at the cut taken in
// index order, every entry visited once and in index order, at lengths around the 16-byte blocks.
TEST(CachePrefilter, VisitsTheKeepNearestInIndexOrder) {
  std::mt19937 rng(5);
  auto check = [](const std::vector<uint8_t>& dist, size_t keep, const std::string& what) {
    std::vector<size_t> want(dist.size());
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = i;
    std::stable_sort(want.begin(), want.end(),
                     [&](size_t a, size_t b) { return dist[a] < dist[b]; });
    want.resize(std::min(keep, dist.size()));
    std::sort(want.begin(), want.end());
    std::vector<size_t> got;
    cache::for_each_nearest(dist.data(), dist.size(), keep, [&](size_t i) { got.push_back(i); });
    EXPECT_EQ(got, want) << what << ", n " << dist.size() << ", keep " << keep;
  };
  for (size_t n :
       {size_t(0), size_t(1), size_t(15), size_t(16), size_t(17), size_t(385), size_t(1000)}) {
    for (size_t keep : {size_t(0), size_t(1), size_t(7), size_t(384), n}) {
      std::vector<uint8_t> d(n);
      for (auto& x : d)
        x = uint8_t(rng() % 129); // 128-bit codes: 0..128
      check(d, keep, "random");
      std::fill(d.begin(), d.end(), uint8_t(40));
      check(d, keep, "all equal");
      for (size_t i = 0; i < n; ++i)
        d[i] = uint8_t(i % 3 == 0 ? 0 : 255); // a cut at 0, and the largest distance
      check(d, keep, "zeros and 255");
      for (size_t i = 0; i < n; ++i)
        d[i] = uint8_t(i < n / 2 ? 10 : 11); // ties at the cut outnumber what is left
      check(d, keep, "ties");
    }
  }
  // More entries at one distance than 16-bit counts hold.
  check(std::vector<uint8_t>(70000, uint8_t(64)), 384, "70,000 equal");
  // Past 4,096 entries, keeping few: the cut from a sample's bound. Codes' distances (binomial
  // around 64), uniform ones, and samples (every 16th entry) that mislead both ways: the bound
  // too low (the sample near, the rest far) or too loose (all equal), which the full pass takes.
  std::binomial_distribution<int> coins(128, 0.5);
  for (size_t n : {size_t(4096), size_t(5000), size_t(10000), size_t(40000)}) {
    for (size_t keep : {size_t(1), size_t(7), size_t(384), n / 8, n / 8 + 1}) {
      std::vector<uint8_t> d(n);
      for (auto& x : d)
        x = uint8_t(coins(rng));
      check(d, keep, "binomial");
      for (auto& x : d)
        x = uint8_t(rng() % 129);
      check(d, keep, "uniform");
      for (size_t i = 0; i < n; ++i)
        d[i] = uint8_t(i % 16 == 0 ? 20 : 30 + rng() % 3);
      check(d, keep, "sample near, the rest far");
      for (size_t i = 0; i < n; ++i)
        d[i] = uint8_t(i % 16 == 0 ? 90 : 10 + rng() % 60);
      check(d, keep, "sample far, the rest near");
      std::fill(d.begin(), d.end(), uint8_t(40));
      check(d, keep, "all equal");
      for (size_t i = 0; i < n; ++i)
        d[i] = uint8_t(i < n / 2 ? 10 : 11);
      check(d, keep, "ties");
    }
  }
}

// Vectors longer than the codes cover (4,096 floats) are scanned exactly at any scope size.
TEST(MemoryCache, LongVectorsAreSearchedExactlyPastTheCodedSize) {
  cache::Options o;
  o.max_entries = 1000;
  auto c = cache::make_memory_cache(o);
  std::mt19937 rng(13);
  std::vector<std::vector<float>> all;
  for (int i = 0; i < 400; ++i) {
    all.push_back(random_unit(rng, 4097));
    c->store(entry(6, uint64_t(i + 1), all.back(), "t" + std::to_string(i)));
  }
  for (int k = 0; k < 20; ++k) {
    const auto q = random_unit(rng, 4097);
    float best = -2;
    for (const auto& v : all) {
      float s = 0;
      for (size_t d = 0; d < q.size(); ++d)
        s += q[d] * v[d];
      best = std::max(best, s);
    }
    auto got = c->nearest(q, 1, "");
    ASSERT_FALSE(got.empty());
    EXPECT_GE(got[0].second, best - 1e-4f) << "query " << k;
  }
}

TEST(MemoryCache, HnswReusesTheSlotsOfEvictedEntries) {
  // A full cache under churn: every store evicts one entry, whose graph slot the next store
  // takes over. The newest entries stay findable by their exact vectors.
  cache::Options o;
  o.hnsw.min_entries = 16;
  o.max_entries = 100;
  auto c = cache::make_memory_cache(o);
  std::mt19937 rng(3);
  std::vector<std::vector<float>> all;
  for (int i = 0; i < 1000; ++i) {
    std::vector<float> v = random_unit(rng, 16);
    all.push_back(v);
    c->store(entry(9, uint64_t(i + 1), v, "t" + std::to_string(i)));
  }
  EXPECT_EQ(c->stats().entries, 100u);
  int found = 0;
  for (int i = 900; i < 1000; ++i) {
    auto l = c->lookup(query(9, 0, &all[size_t(i)]));
    found += l.hit && l.hit->text == "t" + std::to_string(i);
  }
  EXPECT_GE(found, 98);
  EXPECT_FALSE(c->lookup(query(9, 0, &all[10])).hit.has_value() &&
               c->lookup(query(9, 0, &all[10])).hit->text == "t10")
      << "an evicted entry is gone";
}

// Stores, lookups, erases and flushes from four threads at once, over scopes both flat and in a
// graph, with every store evicting: searches and inserts run outside the cache's own mutex, so
// an entry may leave while its insert is under way. Afterwards the count and the ids agree, no
// lookup ever answered from another scope, and the newest entries are found by their vectors.
TEST(MemoryCache, ConcurrentStoresLookupsAndRemovalsKeepTheIndexesConsistent) {
  cache::Options o;
  o.hnsw.min_entries = 64;
  o.max_entries = 400;
  auto c = cache::make_memory_cache(o);
  std::atomic<int> wrong_scope{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(uint32_t(100 + t));
      for (int i = 0; i < 1500; ++i) {
        const uint64_t scope = uint64_t(i % 3); // scope 2 stays small (flat), 0 and 1 grow graphs
        if (scope == 2 && i % 2)
          continue;
        std::vector<float> v = random_unit(rng, 16);
        const std::string text =
            std::to_string(scope) + ":" + std::to_string(t) + ":" + std::to_string(i);
        c->store(entry(scope, uint64_t(t) << 32 | uint64_t(i + 1), v, text));
        auto l = c->lookup(query(scope, 0, &v));
        if (l.hit && l.hit->text.substr(0, 2) != std::to_string(scope) + ":")
          ++wrong_scope;
        if (t == 3 && i % 97 == 0 && l.hit)
          c->erase(l.hit->id);
        if (t == 2 && i == 700)
          c->flush();
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(wrong_scope.load(), 0);
  EXPECT_EQ(c->stats().entries, c->list("", 0, 10000).first.size());
  EXPECT_LE(c->stats().entries, 400u);
  // Quiet again: each of the last entries stored is found by its own vector.
  std::mt19937 rng(7);
  std::vector<std::vector<float>> fresh;
  for (int i = 0; i < 100; ++i) {
    fresh.push_back(random_unit(rng, 16));
    c->store(entry(1, 90000 + uint64_t(i), fresh.back(), "fresh" + std::to_string(i)));
  }
  int found = 0;
  for (int i = 0; i < 100; ++i) {
    auto l = c->lookup(query(1, 0, &fresh[size_t(i)]));
    found += l.hit && l.hit->text == "fresh" + std::to_string(i);
  }
  EXPECT_GE(found, 98);
}

// The distance of the flat scan and the HNSW graph: the clone the CPU runs (AVX-512, AVX2 or the
// baseline) agrees with a double-precision sum at every length, tails of each vector width
// included.
TEST(CacheDot, MatchesAPlainSumAtEveryLength) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t n : {0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 100, 101, 384, 1000}) {
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    double want = 0;
    for (int64_t i = 0; i < n; ++i) {
      a[size_t(i)] = u(rng), b[size_t(i)] = u(rng);
      want += double(a[size_t(i)]) * b[size_t(i)];
    }
    EXPECT_NEAR(nn::kernels::dot(a.data(), b.data(), n), want, 1e-4 * (1 + std::sqrt(double(n))))
        << n;
  }
  // Rows at once (four at a time, then one by one): each the dot product of its own row, at
  // widths with and without a tail of each vector width.
  for (int64_t dim : {1, 7, 8, 9, 16, 24, 100, 101, 384}) {
    for (int64_t rows : {0, 1, 3, 4, 5, 37}) {
      std::vector<float> q(static_cast<size_t>(dim)), m(static_cast<size_t>(dim * rows)),
          out(static_cast<size_t>(rows) + 1, -7.f);
      for (float& x : q)
        x = u(rng);
      for (float& x : m)
        x = u(rng);
      nn::kernels::dot_rows(q.data(), m.data(), rows, dim, out.data());
      for (int64_t r = 0; r < rows; ++r) {
        double want = 0;
        for (int64_t i = 0; i < dim; ++i)
          want += double(q[size_t(i)]) * m[size_t(r * dim + i)];
        EXPECT_NEAR(out[size_t(r)], want, 1e-4 * (1 + std::sqrt(double(dim))))
            << "dim " << dim << " row " << r << " of " << rows;
      }
      EXPECT_EQ(out[size_t(rows)], -7.f) << "wrote past row " << rows;
      // The same rows picked out of order (repeats too): each score is its row's, and equal to
      // the bit to dot_rows' own for a row of one of dot_rows' groups of four.
      std::vector<uint32_t> at;
      for (int64_t k = 0; k < rows + 2 && rows > 0; ++k)
        at.push_back(uint32_t((k * 7 + 3) % rows));
      std::vector<float> picked(at.size() + 1, -7.f);
      nn::kernels::dot_rows_at(q.data(), m.data(), at.data(), int64_t(at.size()), dim,
                               picked.data());
      for (size_t k = 0; k < at.size(); ++k) {
        if (int64_t(at[k]) < rows / 4 * 4)
          EXPECT_EQ(picked[k], out[at[k]]) << "dim " << dim << " pick " << k << " row " << at[k];
        else
          EXPECT_NEAR(picked[k], out[at[k]], 1e-4 * (1 + std::sqrt(double(dim))))
              << "dim " << dim << " pick " << k << " row " << at[k];
      }
      EXPECT_EQ(picked[at.size()], -7.f) << "wrote past pick " << at.size();
    }
  }
  // int8 rows (the rerank's first pass): quantised within half a step of each value, and the
  // picked rows' integer dot products exact, at strides with and without a tail of each width.
  for (int64_t dim : {1, 31, 32, 33, 100, 384}) {
    const int64_t stride = (dim + 31) / 32 * 32, rows = 9;
    std::vector<float> x(static_cast<size_t>(dim));
    std::vector<int8_t> m(static_cast<size_t>(stride * rows), 0);
    for (int64_t r = 0; r < rows; ++r) {
      for (float& v : x)
        v = u(rng) * (r == 0 ? 0.f : 0.3f); // row 0: all zeros (scale 1)
      if (r == 1)
        x[0] = -0.9f; // the largest magnitude negative: -127
      const float scale = nn::kernels::quantize_row_s8(x.data(), &m[size_t(r * stride)], dim);
      for (int64_t i = 0; i < dim; ++i) {
        const int8_t qv = m[size_t(r * stride + i)];
        EXPECT_GE(qv, -127) << "dim " << dim;
        EXPECT_NEAR(double(qv) * scale, x[size_t(i)], scale * 0.5 + 1e-6)
            << "dim " << dim << " row " << r << " at " << i;
      }
      if (r == 1) {
        EXPECT_EQ(m[size_t(r * stride)], -127);
      }
    }
    std::vector<int16_t> q(static_cast<size_t>(stride), 0);
    std::uniform_int_distribution<int> iv(-127, 127);
    for (int64_t i = 0; i < dim; ++i)
      q[size_t(i)] = int16_t(iv(rng));
    std::vector<uint32_t> at = {3, 0, 8, 3, 1, 5, 7, 2, 6, 4, 8};
    std::vector<int32_t> got(at.size() + 1, -7);
    nn::kernels::dot_rows_at_s8(q.data(), m.data(), at.data(), int64_t(at.size()), stride,
                                got.data());
    for (size_t k = 0; k < at.size(); ++k) {
      int32_t want = 0;
      for (int64_t i = 0; i < stride; ++i)
        want += int32_t(q[size_t(i)]) * m[size_t(int64_t(at[k]) * stride + i)];
      EXPECT_EQ(got[k], want) << "dim " << dim << " pick " << k;
    }
    EXPECT_EQ(got[at.size()], -7) << "wrote past pick " << at.size();
  }
  // Counts of distances at most x (the prefilter's bisection), at every length to 200 (the
  // 64-byte steps and their masked tails, or the 16-byte ones) and at the signed edges.
  {
    std::uniform_int_distribution<int> byte(0, 255);
    std::vector<uint8_t> d(200);
    for (auto& v : d)
      v = uint8_t(byte(rng));
    for (int64_t n = 0; n <= 200; ++n)
      for (int x : {0, 1, 127, 128, 200, 254, 255}) {
        size_t want = 0;
        for (int64_t i = 0; i < n; ++i)
          want += d[size_t(i)] <= x;
        ASSERT_EQ(nn::kernels::count_at_most(d.data(), n, uint8_t(x)), want) << n << " " << x;
      }
  }
  // Hamming distances of codes (the flat index's prefilter): 2 words, its fixed-width loop (or
  // eight rows a step with VPOPCNTQ, where the CPU has it: lengths around the step), and other
  // widths, whose distances are capped at 255.
  std::uniform_int_distribution<uint64_t> bits;
  for (auto [words, rows] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 37}, {2, 2}, {2, 7}, {2, 8}, {2, 9}, {2, 16}, {2, 37}, {3, 37}, {5, 37}}) {
    std::vector<uint64_t> q(static_cast<size_t>(words)), codes(static_cast<size_t>(words * rows));
    for (auto& w : q)
      w = bits(rng);
    for (auto& w : codes)
      w = bits(rng);
    codes[0] = q[0]; // distance 0 in the first word
    for (int64_t w = 0; w < words; ++w)
      codes[size_t(words + w)] = ~q[size_t(w)]; // row 1: every bit differs
    std::vector<uint8_t> out(size_t(rows) + 1, 7);
    nn::kernels::hamming_rows(q.data(), codes.data(), rows, words, out.data());
    for (int64_t r = 0; r < rows; ++r) {
      unsigned want = 0;
      for (int64_t w = 0; w < words; ++w)
        for (int b = 0; b < 64; ++b)
          want += unsigned(((codes[size_t(r * words + w)] ^ q[size_t(w)]) >> b) & 1u);
      EXPECT_EQ(out[size_t(r)], std::min(want, 255u))
          << "words " << words << " row " << r << " of " << rows;
    }
    EXPECT_EQ(out[size_t(rows)], 7) << "wrote past row " << rows;
  }
}

TEST(MemoryCache, AdminOperations) {
  auto c = cache::make_memory_cache({});
  c->store(entry(1, 1, vec(0), "a", 0, "t1"));
  c->store(entry(1, 2, vec(1), "b", 0, "t1"));
  c->store(entry(2, 3, vec(2), "c", 0, "t2"));
  auto [page, total] = c->list("", 1, 1);
  EXPECT_EQ(total, 3u);
  ASSERT_EQ(page.size(), 1u);
  auto [t1, n1] = c->list("t1", 0, 10);
  EXPECT_EQ(n1, 2u);
  auto got = c->get(t1[0].id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->tenant, "t1");
  auto near = vec(2);
  auto nn = c->nearest(near, 1, "");
  ASSERT_EQ(nn.size(), 1u);
  EXPECT_EQ(nn[0].first.text, "c");
  EXPECT_TRUE(c->erase(t1[0].id));
  EXPECT_FALSE(c->erase(t1[0].id));
  EXPECT_FALSE(c->erase("not-an-id"));
  EXPECT_EQ(c->erase_tenant("t1"), 1u);
  EXPECT_EQ(c->flush(), 1u);
  EXPECT_EQ(c->stats().entries, 0u);
  EXPECT_EQ(c->stats().bytes, 0u);
}

// Entries live in slots that removed entries hand on: what a slot held before never answers for
// what it holds now, by id, exact key, index search or listing.
TEST(MemoryCache, SlotsOfRemovedEntriesServeTheNextOnes) {
  cache::MemoryCache c({});
  std::vector<std::string> evicted;
  c.on_evict([&](const std::string& id) { evicted.push_back(id); });
  auto va = vec(0), vb = vec(1), vc = vec(2), vd = vec(3);
  c.store(entry(1, 1, va, "a"));
  const std::string a_id = c.list("", 0, 10).first.at(0).id;
  EXPECT_TRUE(c.erase(a_id));
  c.store(entry(1, 2, vb, "b")); // takes a's slot
  EXPECT_FALSE(c.lookup(query(1, 99, &va)).hit) << "a's vector, a's slot";
  auto b = c.lookup(query(1, 99, &vb));
  ASSERT_TRUE(b.hit);
  EXPECT_EQ(b.hit->text, "b");
  EXPECT_FALSE(c.get(a_id));
  EXPECT_FALSE(c.lookup(query(1, 1, nullptr)).hit) << "a's exact key";
  EXPECT_EQ(c.ids(""), std::vector<std::string>{b.hit->id});
  auto nn = c.nearest(va, 1, "");
  ASSERT_EQ(nn.size(), 1u);
  EXPECT_EQ(nn[0].first.text, "b");
  EXPECT_NEAR(nn[0].second, 0.0, 1e-6);

  // A newer answer to the same exact key replaces the older one, index entry included.
  c.store(entry(1, 5, vc, "c1"));
  c.store(entry(1, 5, vd, "c2"));
  auto exact = c.lookup(query(1, 5, nullptr));
  ASSERT_TRUE(exact.hit);
  EXPECT_EQ(exact.hit->text, "c2");
  EXPECT_FALSE(c.lookup(query(1, 99, &vc)).hit) << "the replaced answer's vector";
  EXPECT_EQ(c.stats().entries, 2u);
  ASSERT_EQ(evicted.size(), 1u) << "a replaced answer is reported; an erased one is not";

  // The same id again (a Redis resync) with another vector: one entry, found by the new one.
  cache::Entry again = entry(1, 7, va, "r1");
  again.id = "00000000000000aa";
  c.store(again);
  again.vector = vb;
  again.exact = 8;
  again.text = "r2";
  c.store(again);
  EXPECT_EQ(c.stats().entries, 3u);
  EXPECT_FALSE(c.lookup(query(1, 7, nullptr)).hit);
  auto r = c.lookup(query(1, 8, nullptr));
  ASSERT_TRUE(r.hit);
  EXPECT_EQ(r.hit->text, "r2");
  EXPECT_EQ(evicted.size(), 1u) << "a resync is not an eviction";

  // Holes in the slots, then a policy switch that evicts: the survivors are the most used.
  cache::MemoryCache d({});
  std::vector<std::string> ids;
  for (uint64_t i = 1; i <= 10; ++i) {
    d.store(entry(1, i, vec(int(i % 8)), "e" + std::to_string(i)));
    ids.push_back(d.lookup(query(1, i, nullptr)).hit->id);
  }
  for (size_t i = 0; i < 10; i += 2)
    EXPECT_TRUE(d.erase(ids[i])); // e1, e3, e5, e7, e9 go
  for (uint64_t i : {4u, 6u, 6u, 10u, 10u, 10u})
    ASSERT_TRUE(d.lookup(query(1, i, nullptr)).hit);
  cache::Options lfu;
  lfu.eviction = cache::Eviction::Lfu;
  lfu.max_entries = 3;
  d.set_options(lfu);
  EXPECT_EQ(d.stats().entries, 3u);
  EXPECT_EQ(d.stats().evicted_capacity, 2u);
  EXPECT_FALSE(d.lookup(query(1, 2, nullptr)).hit) << "used once (its store's lookup)";
  EXPECT_FALSE(d.lookup(query(1, 8, nullptr)).hit);
  for (uint64_t i : {4u, 6u, 10u})
    EXPECT_TRUE(d.lookup(query(1, i, nullptr)).hit) << i;
  EXPECT_EQ(d.ids("").size(), 3u);
  EXPECT_EQ(d.list("", 0, 10).second, 3u);
}

TEST(MemoryCache, VerifierReadingsCountInBytesAndLeaveWithTheirEntry) {
  auto c = cache::make_memory_cache({});
  cache::Verifier v({}, nullptr);
  c->store(entry(1, 1, vec(0), "convert 5 miles to km"));
  const uint64_t stored = c->stats().bytes;
  auto near = vec(0, 1, 0.1f);
  auto q = query(1, 2, &near);
  q.text = "convert 8 miles to km";
  q.verifier = &v;
  auto r = c->lookup(q); // a candidate: read once, rejected on its numbers
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.rejected, "numbers");
  const uint64_t read = c->stats().bytes;
  EXPECT_GT(read, stored);
  q.text = "convert 5 miles to km!";
  r = c->lookup(q); // the kept reading answers the same way as reading the text again
  ASSERT_TRUE(r.hit);
  EXPECT_EQ(c->stats().bytes, read);
  EXPECT_TRUE(c->erase(r.hit->id));
  EXPECT_EQ(c->stats().bytes, 0u);
}

TEST(CacheNormalize, CaseSpacesAndTrailingPunctuation) {
  EXPECT_EQ(cache::normalize("  What IS   the capital of France? "),
            "what is the capital of france");
  EXPECT_EQ(cache::normalize("..."), "");
  // Line breaks and indentation stay (code differs by them); "!" stays ("10!" is not "10").
  EXPECT_EQ(cache::normalize("def f():\n    return 1\n\n\n"), "def f():\n    return 1");
  EXPECT_NE(cache::normalize("if x:\n  y()\nz()"), cache::normalize("if x:\n  y()\n  z()"));
  EXPECT_EQ(cache::normalize("compute 10!"), "compute 10!");
}

// The byte-at-a-time normalisation normalize() replaced: the reference it must agree with.
std::string reference_normalize(std::string_view text) {
  std::string out;
  bool line_start = true, space = false;
  for (unsigned char c : text) {
    if (c == '\r')
      continue;
    if (c == '\n') {
      while (!out.empty() && out.back() == ' ')
        out.pop_back();
      if (!out.empty() && out.back() != '\n')
        out += '\n';
      line_start = true;
      space = false;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
      if (line_start && !out.empty())
        out += c == '\t' ? '\t' : ' ';
      else if (!line_start)
        space = true;
      continue;
    }
    if (space && !out.empty() && out.back() != '\n')
      out += ' ';
    space = false;
    line_start = false;
    out += (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : char(c);
  }
  while (!out.empty() && (out.back() == '?' || out.back() == '.' || out.back() == ' ' ||
                          out.back() == '\n' || out.back() == '\t'))
    out.pop_back();
  return out;
}

TEST(CacheNormalize, AgreesWithTheByteAtATimeReference) {
  // Random texts over the bytes every branch reads: each blank, CR, the trailing punctuation,
  // both ends of A-Z, bytes next to them, UTF-8 and NUL.
  const std::string alphabet = std::string(" \t\n\r\f\v?.!AZaz@[`{09\xc3\xa9", 21) + '\0';
  std::mt19937 rng(7);
  for (int t = 0; t < 20000; ++t) {
    std::string text(rng() % 40, ' ');
    for (char& c : text)
      c = alphabet[rng() % alphabet.size()];
    ASSERT_EQ(cache::normalize(text), reference_normalize(text)) << testing::PrintToString(text);
  }
  std::string all;
  for (int c = 0; c < 256; ++c)
    all += char(c), all += ' ', all += char(c);
  EXPECT_EQ(cache::normalize(all), reference_normalize(all));
}

// Prose: long stretches of words and single spaces (what normalize() takes sixteen bytes at a
// time), broken now and then by a double space, a tab, a line break or a CR, at every offset.
std::string random_prose(std::mt19937& rng, size_t size) {
  const std::string letters = "abcdefghijklmnopqrstuvwxyzAZ09?.!\xc3\xa9@[`{";
  const std::string rare = std::string(" \t\n\r\f\v", 6);
  std::string text(size, ' ');
  for (char& c : text) {
    const unsigned r = rng() % 100;
    c = r < 80 ? letters[rng() % letters.size()] : r < 97 ? ' ' : rare[rng() % rare.size()];
  }
  return text;
}

TEST(CacheNormalize, AgreesWithTheReferenceOnProse) {
  std::mt19937 rng(11);
  for (int t = 0; t < 20000; ++t) {
    const std::string text = random_prose(rng, rng() % 200);
    ASSERT_EQ(cache::normalize(text), reference_normalize(text)) << testing::PrintToString(text);
  }
  // Upper case at both ends of a stretch, and a stretch that fills the text exactly.
  for (const std::string text :
       {"ABCDEFGHIJKLMNOP", "ABCDEFGH IJKLMNO Q", "Hello World Again Now "})
    EXPECT_EQ(cache::normalize(text), reference_normalize(text));
}

TEST(CacheWordCount, CountsRunsBetweenBlanksAtEveryOffset) {
  auto reference = [](std::string_view s) {
    size_t n = 0;
    bool in = false;
    for (char c : s) {
      const bool blank = c == ' ' || c == '\n' || c == '\t' || c == '\r';
      n += !blank && !in;
      in = !blank;
    }
    return n;
  };
  std::mt19937 rng(5);
  for (int t = 0; t < 20000; ++t) {
    const std::string text = random_prose(rng, rng() % 200);
    ASSERT_EQ(pipeline::cache_word_count(text), reference(text)) << testing::PrintToString(text);
  }
  EXPECT_EQ(pipeline::cache_word_count(std::string(40, 'a')), 1u);
  EXPECT_EQ(pipeline::cache_word_count("one two\tthree\nfour\r\nfive  six seven eight nine"), 9u);
}

TEST(CacheHash, ShortTextsKeepFnv1aAndEveryByteOfALongTextCounts) {
  // Under kLaneHashBytes the hash is FNV-1a, so tenant names and the keys of ordinary prompts
  // stay what earlier versions (and other replicas on a shared Redis) computed.
  auto fnv1a = [](std::string_view text, uint64_t h) {
    for (unsigned char c : text)
      h = (h ^ c) * 0x100000001b3ull;
    return h;
  };
  EXPECT_EQ(cache::hash_bytes("key-abc"), fnv1a("key-abc", 0xcbf29ce484222325ull));
  std::mt19937 rng(3);
  const std::string short_text = random_prose(rng, cache::kLaneHashBytes - 1);
  EXPECT_EQ(cache::hash_bytes(short_text, 42), fnv1a(short_text, 42));
  // ... and only there: at kLaneHashBytes the lanes take over.
  const std::string at_threshold = short_text + 'x';
  EXPECT_NE(cache::hash_bytes(at_threshold, 42), fnv1a(at_threshold, 42));
  // From kLaneHashBytes on, eight bytes per lane: a change anywhere (in a lane's word, in the
  // tail, or only the length) changes it, and so does the seed it chains from.
  const size_t n = cache::kLaneHashBytes;
  for (size_t size : {n, n + 1, n + 31, n + 100}) {
    const std::string text = random_prose(rng, size);
    const uint64_t h = cache::hash_bytes(text);
    EXPECT_NE(cache::hash_bytes(text, 1), h);
    EXPECT_NE(cache::hash_bytes(text + ' '), h);
    for (size_t i = 0; i < size; ++i) {
      std::string changed = text;
      changed[i] ^= 1;
      ASSERT_NE(cache::hash_bytes(changed), h) << size << " " << i;
    }
  }
  // Swapping two 8-byte words of different lanes changes it too.
  std::string a(n, 'a');
  a.replace(8, 8, "BBBBBBBB");
  std::string b(n, 'a');
  b.replace(16, 8, "BBBBBBBB");
  EXPECT_NE(cache::hash_bytes(a), cache::hash_bytes(b));
}

TEST(Verifier, RejectsNearMissesAndKeepsSurfaceVariants) {
  cache::Verifier v({}, nullptr); // no word vectors: the rule checks only
  EXPECT_EQ(v.check("convert 5 miles to km", "convert 8 miles to km"), "numbers");
  EXPECT_EQ(v.check("convert 1,000 yen", "convert 1000 yen"), "");
  EXPECT_EQ(v.check("buy two tickets", "buy 2 tickets"), "numbers"); // words and digits differ
  EXPECT_EQ(v.check("which foods are safe for dogs", "which foods aren't safe for dogs"),
            "negation");
  EXPECT_TRUE(v.check("what is the capital of france", "what is the capital of germany")
                  .starts_with("anchors"));
  EXPECT_TRUE(v.check("How do I install Node on my Mac?", "How do I install Node on my PC?")
                  .starts_with("anchors"));
  EXPECT_EQ(v.check("convert km to miles", "convert miles to km"), "direction");
  EXPECT_EQ(v.check("when was the eiffel tower built", "how tall is the eiffel tower"), "question");
  // One typo in a word is forgiven, not in a name (Iceland / Ireland) or a version.
  EXPECT_EQ(v.check("What is the capital of Iceland?", "What is the capital of Ireland?"),
            "anchors:iceland");
  EXPECT_TRUE(v.check("install java8 on linux", "install java9 on linux").starts_with("anchors"));
  EXPECT_EQ(v.check("What is the capital of France?", "what's the capital of france"), "");
  // Numbers are a multiset: the same ones in another order agree (both for a text read afresh
  // and for a cached reading); one more or one fewer does not.
  EXPECT_EQ(v.check("pick a number between 3 and 15", "pick a number between 15 and 3"), "");
  EXPECT_EQ(v.check(*cache::read_for_verifier("add 7, 2 and 7"), *v.prepare("add 2, 7 and 7")), "");
  EXPECT_EQ(v.check("add 7, 2 and 7", "add 2 and 7"), "numbers");
}

TEST(AnswerCapture, StreamedAnswerIsCompleteOnlyWithDoneAndStop) {
  openai::AnswerCapture c;
  c.event(R"({"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})");
  c.event(R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})");
  c.event(R"({"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]})");
  EXPECT_EQ(c.why_not(), "incomplete");
  c.event(R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})");
  c.event("[DONE]");
  EXPECT_TRUE(c.complete()) << c.why_not();
  EXPECT_EQ(c.answer().content, "Hello");
  EXPECT_EQ(c.answer().completion_tokens, 2u);

  openai::AnswerCapture cut;
  cut.body(R"({"choices":[{"index":0,"message":{"content":"The"},"finish_reason":"length"}]})");
  EXPECT_EQ(cut.why_not(), "length");
  openai::AnswerCapture err;
  err.body(R"({"error":{"message":"overloaded"}})");
  EXPECT_EQ(err.why_not(), "error");
  openai::AnswerCapture two;
  two.body(R"({"choices":[{"index":0,"message":{"content":"a"},"finish_reason":"stop"},)"
           R"({"index":1,"message":{"content":"b"},"finish_reason":"stop"}]})");
  EXPECT_EQ(two.why_not(), "choices");
}

TEST(AnswerCapture, WholeBodyEdgeCases) {
  const std::string usage = R"("usage":{"prompt_tokens":3, "completion_tokens":2,)"
                            R"("completion_tokens_details":{"reasoning_tokens":1}})";
  openai::AnswerCapture ok;
  ok.body(R"({"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi",)"
          R"("refusal":null},"finish_reason":"stop"}],)" +
          usage + "}");
  EXPECT_TRUE(ok.complete()) << ok.why_not();
  EXPECT_EQ(ok.answer().model, "m");
  EXPECT_EQ(ok.answer().content, "hi");
  EXPECT_EQ(ok.answer().prompt_tokens, 3u);
  EXPECT_EQ(ok.answer().completion_tokens, 2u);
  EXPECT_EQ(ok.answer().reasoning_tokens, 1u);
  // Kept compact, as the replay sends it.
  EXPECT_EQ(ok.answer().usage_json,
            R"({"prompt_tokens":3,"completion_tokens":2,"completion_tokens_details":)"
            R"({"reasoning_tokens":1}})");
  // Every JSON type a provider's usage may carry comes back compact and unchanged.
  openai::AnswerCapture odd;
  odd.body(
      R"({"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{ "cost" : 0.25, "n":-3,)"
      R"( "big":18446744073709551615, "flags":[true, false, null, []], "note":"a\"b\n",)"
      R"( "empty":{}, "e":1e300}})");
  EXPECT_TRUE(odd.complete()) << odd.why_not();
  EXPECT_EQ(odd.answer().usage_json,
            R"({"cost":0.25,"n":-3,"big":18446744073709551615,"flags":[true,false,null,[]],)"
            R"("note":"a\"b\n","empty":{},"e":1e+300})");

  auto why = [](std::string_view body) {
    openai::AnswerCapture c;
    c.body(body);
    return c.why_not();
  };
  EXPECT_EQ(why(R"({"choices":[{"message":{"content":"x","refusal":"no"},)"
                R"("finish_reason":"stop"}]})"),
            "unsupported");
  EXPECT_EQ(why(R"({"choices":[{"message":{"content":"x","audio":null},"finish_reason":"stop"}]})"),
            "unsupported");
  EXPECT_EQ(why(R"({"choices":[{"message":{"content":null},"finish_reason":"stop"}]})"),
            "unsupported");
  EXPECT_EQ(why(R"({"choices":[7]})"), "error");
  EXPECT_EQ(why(R"({"choices":[]})"), "error");
  EXPECT_EQ(why(R"({"choices":[{"message":"x"}]})"), "error");
  EXPECT_EQ(why("[1,2]"), "error");
  EXPECT_EQ(why(R"({"choices":[{"message":{"content":"x"},"finish_reason":"stop"}])"), "error");
  EXPECT_EQ(why(R"({"error":null,"choices":[{"message":{"content":"x"},"finish_reason":"stop"}]})"),
            "error");

  openai::AnswerCapture tools;
  tools.body(R"({"choices":[{"message":{"content":null,"tool_calls":[ {"id":"c1", "type":)"
             R"("function","function":{"name":"f","arguments":"{\"a\": 1}"}} ]},)"
             R"("finish_reason":"tool_calls"}]})");
  EXPECT_TRUE(tools.complete()) << tools.why_not();
  EXPECT_EQ(tools.answer().tool_calls_json,
            R"([{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\": 1}"}}])");
}

TEST(AnswerReplay, StoredFormHoldsWhatNlohmannWrote) {
  // The direct writer stores the members nlohmann's writer did, with the same values (entries
  // in Redis from older replicas and new ones read the same), and escapes as JSON requires.
  openai::Answer a;
  a.model = "m\"1";
  a.content = "line\nnext \x01 \\ naïve";
  a.reasoning_content = "because";
  a.finish_reason = "tool_calls";
  a.tool_calls_json = R"([{"id":"c1","function":{"name":"f","arguments":"{}"}}])";
  a.prompt_tokens = 4;
  a.completion_tokens = 9;
  a.reasoning_tokens = 2;
  a.usage = true;
  a.usage_json = R"({"prompt_tokens":4,"completion_tokens":9})";
  json j = {{"model", a.model},
            {"content", a.content},
            {"finish_reason", a.finish_reason},
            {"prompt_tokens", a.prompt_tokens},
            {"completion_tokens", a.completion_tokens},
            {"reasoning_tokens", a.reasoning_tokens},
            {"usage", a.usage},
            {"usage_object", json::parse(a.usage_json)},
            {"reasoning_content", a.reasoning_content},
            {"tool_calls", json::parse(a.tool_calls_json)}};
  EXPECT_EQ(json::parse(openai::answer_to_json(a)), j);
  auto back = openai::answer_from_json(openai::answer_to_json(a));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->content, a.content);
  EXPECT_EQ(back->model, a.model);
  EXPECT_EQ(json::parse(back->tool_calls_json), json::parse(a.tool_calls_json));
  a.reasoning_content.clear();
  a.tool_calls_json.clear();
  a.usage_json.clear();
  a.usage = false;
  j.erase("reasoning_content");
  j.erase("tool_calls");
  j.erase("usage_object");
  j["usage"] = false;
  EXPECT_EQ(openai::answer_to_json(a), j.dump()); // flat members: the same bytes
}

TEST(AnswerReplay, JsonAndSseCarryTheSameAnswer) {
  openai::Answer a;
  a.model = "m";
  a.content = std::string("naïve ") + std::string(150, 'x'); // pieces cut at character starts
  a.finish_reason = "stop";
  a.prompt_tokens = 4;
  a.completion_tokens = 9;
  a.usage = true;
  auto back = openai::answer_from_json(openai::answer_to_json(a));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->content, a.content);
  json r = json::parse(openai::answer_response(*back, "chatcmpl-x", 1));
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["content"], a.content);
  EXPECT_EQ(r["usage"]["completion_tokens"], 9);

  const std::string sse = openai::answer_stream(*back, "chatcmpl-x", 1, /*include_usage=*/true);
  openai::SseParser p;
  std::string content;
  bool role = false, done = false, usage = false;
  std::string finish;
  for (const auto& ev : p.feed(sse)) {
    if (ev == "[DONE]") {
      done = true;
      continue;
    }
    json j = json::parse(ev); // every piece is valid UTF-8 JSON
    EXPECT_EQ(j["object"], "chat.completion.chunk");
    if (j.contains("usage"))
      usage = true;
    if (j["choices"].empty())
      continue;
    const json& d = j["choices"][0]["delta"];
    role = role || d.value("role", "") == "assistant";
    content += d.value("content", "");
    if (j["choices"][0]["finish_reason"].is_string())
      finish = j["choices"][0]["finish_reason"];
  }
  EXPECT_TRUE(role && done && usage);
  EXPECT_EQ(content, a.content);
  EXPECT_EQ(finish, "stop");
}

TEST(ToolFilter, ToolTextSplitsNames) {
  EXPECT_EQ(pipeline::tool_text("get_weatherForecast", "Weather"), "get weather forecast. Weather");
}

TEST(CacheConfig, KeysAndErrors) {
  auto ok = config::parse_config(R"(
backends: [{name: b, url: 'http://127.0.0.1:9/v1'}]
models: [{name: m, backends: [b]}]
default_model: m
cache: {enabled: true, backend: redis, redis: {url: 'redis://10.0.0.5:6390/2'}, eviction: lfu,
        tenant: [user, 'header:x-org'], verify: {word_similarity: 0.7}}
tools: {max_tools: 10, top_k: 3, always: [a], fallback: keep_top_k}
)");
  ASSERT_TRUE(ok) << ok.error().message;
  const auto& c = (*ok)->cache;
  EXPECT_EQ(c.backend, config::CacheBackend::Redis);
  EXPECT_EQ(c.redis_host, "10.0.0.5");
  EXPECT_EQ(c.redis_port, 6390);
  EXPECT_EQ(c.redis_db, 2u);
  EXPECT_EQ(c.eviction, config::CacheEviction::Lfu);
  EXPECT_DOUBLE_EQ(c.verify_word_similarity, 0.7);
  EXPECT_EQ((*ok)->tools.top_k, 3u);
  EXPECT_EQ((*ok)->tools.fallback, config::ToolsFallback::KeepTopK);

  const std::string base = R"(
backends: [{name: b, url: 'http://127.0.0.1:9/v1'}]
models: [{name: m, backends: [b]}]
default_model: m
)";
  auto err = [&](const std::string& extra) {
    auto r = config::parse_config(base + extra);
    return r ? std::string("accepted") : r.error().message;
  };
  EXPECT_EQ(err("cache: {backend: redis}"),
            "cache.backend: redis needs cache.redis {url: redis://host:port}");
  EXPECT_EQ(err("cache: {redis: {url: 'redis://:pw@h:1'}}"),
            "cache.redis.url: must not carry a password: put it in an environment variable and "
            "name it in cache.redis.password_env");
  EXPECT_EQ(err("cache: {eviction: random}"),
            "cache.eviction: unknown eviction \"random\" (known: lru, lfu, fifo)");
  EXPECT_EQ(err("cache: {tenant: [org]}"),
            "cache.tenant[0]: unknown tenant source \"org\" (known: header:<name>, api_key, user)");
  EXPECT_EQ(err("tools: {max_tools: 4, top_k: 5}"),
            "tools.top_k: (5) must not exceed max_tools (4): filtering would keep more tools "
            "than it starts from");
  EXPECT_EQ(err("cache: {simlarity: 0.9}").substr(0, 30), "cache: unknown key \"simlarity\"");
}

} // namespace
} // namespace semrouter
