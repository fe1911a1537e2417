// A small number fixed per thread, for spreading state that every worker writes on every request
// (metric counts, recent samples) over cache lines of their own: threads take the numbers in turn
// as they first ask, so a process's first few threads (the gateway's workers) get distinct ones.
#pragma once

#include <atomic>
#include <cstddef>

namespace semrouter::core {

inline size_t thread_shard() {
  static std::atomic<size_t> next{0};
  thread_local const size_t shard = next.fetch_add(1, std::memory_order_relaxed);
  return shard;
}

} // namespace semrouter::core
