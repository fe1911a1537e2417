// A thread's most recent answers to lookups whose answers never change, so that a hot path asks
// the same question (a metric's labels, a model's load state) without its owner's lock or map.
// An answer is named by its owner's id, which is never reused (new_owner_id()), and a string key;
// slots are direct-mapped, and a lookup that misses is answered by the owner and then put here.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace semrouter::core {

// Ids for owners of recent answers: never reused in the process, so a cached answer cannot name
// an owner that was destroyed and another made at its address.
inline uint64_t new_owner_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

template <typename T, size_t N> class RecentAnswers {
public:
  static T* find(uint64_t owner, std::string_view key) {
    const Slot& s = slot(owner, key);
    return s.owner == owner && s.key == key ? s.value : nullptr;
  }
  static void put(uint64_t owner, std::string_view key, T* value) {
    Slot& s = slot(owner, key);
    s.owner = owner;
    s.key.assign(key);
    s.value = value;
  }

private:
  struct Slot {
    uint64_t owner = 0;
    std::string key;
    T* value = nullptr;
  };
  static Slot& slot(uint64_t owner, std::string_view key) {
    thread_local std::array<Slot, N> slots;
    return slots[(std::hash<std::string_view>{}(key) + owner * 0x9e3779b97f4a7c15ull) % N];
  }
};

} // namespace semrouter::core
