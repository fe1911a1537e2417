// A small number fixed per thread, for spreading state that every worker writes on every request
// (metric counts, in-flight counts, recent samples) over cache lines of their own. The gateway
// numbers its worker threads 0, 1, ... (set_thread_shard); any other thread takes the next
// number of a process-wide count when it first asks. Users reduce it modulo their shard count,
// so two threads may share a shard: only speed depends on the numbering, never a result.
#pragma once

#include <atomic>
#include <cstddef>
#include <limits>

namespace semrouter::core {

namespace detail {
inline constexpr size_t kNoShard = std::numeric_limits<size_t>::max();
inline thread_local size_t thread_shard = kNoShard;
inline std::atomic<size_t> next_thread_shard{0};
} // namespace detail

// Also moves the count past `shard`, so threads numbered later do not take the same one.
inline void set_thread_shard(size_t shard) {
  detail::thread_shard = shard;
  size_t next = detail::next_thread_shard.load(std::memory_order_relaxed);
  while (next <= shard && !detail::next_thread_shard.compare_exchange_weak(
                              next, shard + 1, std::memory_order_relaxed)) {
  }
}

inline size_t thread_shard() {
  if (detail::thread_shard == detail::kNoShard) [[unlikely]]
    detail::thread_shard = detail::next_thread_shard.fetch_add(1, std::memory_order_relaxed);
  return detail::thread_shard;
}

} // namespace semrouter::core
