#include "core/u64_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace semrouter::core {

// Key 0 lives beside the slots; the other keys in them. Each kind is found, replaced and erased
// on its own.
TEST(U64Map, KeyZeroAndOthers) {
  U64Map<uint32_t> m;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.find(0), nullptr);
  EXPECT_EQ(m.find(7), nullptr);
  EXPECT_FALSE(m.erase(0));
  EXPECT_FALSE(m.erase(7));
  m[0] = 5;
  m[7] = 9;
  m[UINT64_MAX] = 11;
  EXPECT_EQ(m.size(), 3u);
  ASSERT_NE(m.find(0), nullptr);
  EXPECT_EQ(*m.find(0), 5u);
  EXPECT_EQ(*m.find(7), 9u);
  EXPECT_EQ(*m.find(UINT64_MAX), 11u);
  m[0] = 6;
  EXPECT_EQ(*m.find(0), 6u);
  EXPECT_EQ(m.size(), 3u);
  EXPECT_TRUE(m.erase(0));
  EXPECT_FALSE(m.contains(0));
  EXPECT_TRUE(m.contains(7));
  EXPECT_EQ(m.size(), 2u);
  m.clear();
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.find(7), nullptr);
  m[3] = 1; // usable again after clear()
  EXPECT_EQ(*m.find(3), 1u);
}

// Against std::unordered_map over a long run of inserts, replacements and erases, with keys
// drawn from a small range (many erases of present keys) and keys that differ only in their high
// bits or only in their low bits (the sequence-and-slot index keys of the cache). Every key of the
// range is checked after every step, so an erase whose backward shift strands a later key of its
// run (found by a probe that stops at the hole) fails here.
TEST(U64Map, AgreesWithUnorderedMapThroughInsertsAndErases) {
  for (int shape = 0; shape < 3; ++shape) {
    U64Map<uint64_t> m;
    std::unordered_map<uint64_t, uint64_t> ref;
    std::vector<uint64_t> keys;
    for (uint64_t k = 0; k < 300; ++k)
      keys.push_back(shape == 0 ? k : shape == 1 ? k << 40 : (k % 7) << 32 | (k / 7));
    uint64_t rng = 88172645463325252ull;
    auto next = [&] {
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      return rng;
    };
    for (int step = 0; step < 6000; ++step) {
      const uint64_t key = keys[next() % keys.size()];
      // Grow first, then hover, then drain: the table sees every fill level.
      const int phase = step / 2000;
      const bool insert = next() % 10 < (phase == 0 ? 8u : phase == 1 ? 5u : 2u);
      if (insert) {
        const uint64_t v = next();
        m[key] = v;
        ref[key] = v;
      } else {
        EXPECT_EQ(m.erase(key), ref.erase(key) == 1) << "step " << step;
      }
      ASSERT_EQ(m.size(), ref.size()) << "step " << step;
      if (step % 50 == 0 || step > 5900)
        for (uint64_t k : keys) {
          auto r = ref.find(k);
          const uint64_t* got = m.find(k);
          ASSERT_EQ(got != nullptr, r != ref.end()) << "key " << k << " step " << step;
          if (got)
            ASSERT_EQ(*got, r->second);
        }
    }
  }
}

// A run that wraps past the table's end: keys whose home is the last slot of a 16-slot table
// spill into slots 0, 1, ..., where keys at home there must still be found after any erase.
TEST(U64Map, EraseInARunThatWrapsPastTheEnd) {
  std::vector<uint64_t> last, first;
  for (uint64_t k = 1; last.size() < 3 || first.size() < 2; ++k) {
    const uint64_t home = (k * 0x9e3779b97f4a7c15ull) >> 60; // 16 slots
    if (home == 15 && last.size() < 3)
      last.push_back(k);
    else if (home == 0 && first.size() < 2)
      first.push_back(k);
  }
  for (size_t erased = 0; erased < 5; ++erased) {
    U64Map<uint32_t> m;
    std::vector<uint64_t> keys = {last[0], last[1], first[0], last[2], first[1]};
    for (size_t i = 0; i < keys.size(); ++i)
      m[keys[i]] = uint32_t(i);
    ASSERT_TRUE(m.erase(keys[erased]));
    for (size_t i = 0; i < keys.size(); ++i) {
      const uint32_t* v = m.find(keys[i]);
      if (i == erased) {
        EXPECT_EQ(v, nullptr);
      } else {
        ASSERT_NE(v, nullptr) << "erased " << erased << ", key " << i;
        EXPECT_EQ(*v, i);
      }
    }
  }
}

// reserve() makes room up front: the inserts after it keep the map's array.
TEST(U64Map, ReserveMakesRoomForTheInsertsAfterIt) {
  U64Map<uint32_t> m;
  m.reserve(100);
  m[1] = 1;
  const uint32_t* first = m.find(1);
  for (uint64_t k = 2; k <= 100; ++k)
    m[k] = uint32_t(k);
  EXPECT_EQ(m.find(1), first) << "no rehash";
  for (uint64_t k = 1; k <= 100; ++k)
    ASSERT_EQ(*m.find(k), k);
}

// A key already there is reached without growing the table, even when the next insert would
// grow it (the cache's index reassigns slots in code that must not throw).
TEST(U64Map, AnExistingKeyNeverGrowsTheTable) {
  U64Map<uint32_t> m;
  uint64_t k = 1;
  // Fill until the next insert would grow: the address of a value then stays put across
  // reads through operator[] of keys already there.
  for (;; ++k) {
    m[k] = uint32_t(k);
    const uint32_t* before = m.find(1);
    m[1] = 1;
    if (m.find(1) != before)
      FAIL() << "operator[] of an existing key moved the table at " << k << " keys";
    if (k == 1000)
      break;
  }
  for (uint64_t j = 1; j <= 1000; ++j)
    ASSERT_EQ(*m.find(j), j == 1 ? 1u : uint32_t(j));
}

} // namespace semrouter::core
