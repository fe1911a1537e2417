// A hash map from 64-bit keys to small values (slots, counts), open-addressed with linear
// probing in one array. A lookup reads one slot, rarely two, where std::unordered_map follows a
// bucket pointer to a separately allocated node (two or three cache misses on a large map). It
// never allocates per insert, and an erase shifts the slots after it back (no tombstones), so a
// long run of inserts and erases never slows it down. Keys are any 64-bit value: key 0 marks an
// empty slot in the array and is kept beside it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace semrouter::core {

template <typename V> class U64Map {
  static_assert(std::is_trivially_copyable_v<V>, "values are moved by copying slots");

public:
  size_t size() const { return size_ + (has_zero_ ? 1 : 0); }
  bool empty() const { return size() == 0; }

  V* find(uint64_t key) {
    if (key == 0)
      return has_zero_ ? &zero_ : nullptr;
    if (slots_.empty())
      return nullptr;
    for (size_t i = home(key);; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key == key)
        return &s.value;
      if (s.key == 0)
        return nullptr;
    }
  }
  const V* find(uint64_t key) const { return const_cast<U64Map*>(this)->find(key); }
  bool contains(uint64_t key) const { return find(key) != nullptr; }

  // The value under `key`, inserted as V{} when absent. Only an insert may grow the table (and
  // throw, leaving the map as it was): the value of a key already there is reached without
  // allocating, so code that must not throw can assign through it.
  V& operator[](uint64_t key) {
    if (key == 0) {
      if (!has_zero_)
        has_zero_ = true, zero_ = V{};
      return zero_;
    }
    if (2 * (size_ + 1) > slots_.size()) {
      if (V* v = find(key))
        return *v;
      grow();
    }
    size_t i = home(key);
    for (; slots_[i].key != 0; i = (i + 1) & mask_)
      if (slots_[i].key == key)
        return slots_[i].value;
    slots_[i].key = key;
    slots_[i].value = V{};
    ++size_;
    return slots_[i].value;
  }

  bool erase(uint64_t key) {
    if (key == 0) {
      const bool had = has_zero_;
      has_zero_ = false;
      return had;
    }
    if (slots_.empty())
      return false;
    size_t i = home(key);
    for (; slots_[i].key != key; i = (i + 1) & mask_)
      if (slots_[i].key == 0)
        return false;
    // Backward shift: each later slot of the run moves into the hole unless its home lies
    // cyclically after the hole (moving it would put it before its home, where no probe looks).
    for (size_t j = i;;) {
      j = (j + 1) & mask_;
      if (slots_[j].key == 0)
        break;
      const size_t h = home(slots_[j].key);
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].key = 0;
    --size_;
    return true;
  }

  // Room for n keys without growing: an insert after it does not allocate, so cannot throw.
  void reserve(size_t n) {
    size_t cap = slots_.empty() ? 16 : slots_.size();
    while (2 * n > cap)
      cap *= 2;
    if (cap != slots_.size())
      rehash(cap);
  }

  void clear() {
    std::vector<Slot>().swap(slots_);
    mask_ = 0;
    shift_ = 64;
    size_ = 0;
    has_zero_ = false;
  }

private:
  struct Slot {
    uint64_t key = 0;
    V value{};
  };

  // Fibonacci hashing: the top bits of key times 2^64 / phi, so keys that differ only in their
  // low or only in their high bits still spread.
  static size_t home(uint64_t key, int shift) {
    return size_t((key * 0x9e3779b97f4a7c15ull) >> shift);
  }
  size_t home(uint64_t key) const { return home(key, shift_); }

  void grow() { rehash(slots_.empty() ? 16 : slots_.size() * 2); }

  // The keys moved into a new array of `cap` slots, allocated first: if that throws, the map is
  // as it was.
  void rehash(size_t cap) {
    std::vector<Slot> fresh(cap);
    const size_t mask = cap - 1;
    const int shift = 64 - __builtin_ctzll(cap);
    for (const Slot& s : slots_) {
      if (s.key == 0)
        continue;
      size_t i = home(s.key, shift);
      while (fresh[i].key != 0)
        i = (i + 1) & mask;
      fresh[i] = s;
    }
    slots_.swap(fresh);
    mask_ = mask;
    shift_ = shift;
  }

  std::vector<Slot> slots_; // a power of two long, at most half full
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0; // keys in slots_ (key 0 is not among them)
  bool has_zero_ = false;
  V zero_{};
};

} // namespace semrouter::core
