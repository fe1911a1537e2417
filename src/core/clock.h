// Injectable time and randomness, so tests can be deterministic.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace semrouter::core {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

inline double seconds_between(TimePoint a, TimePoint b) {
  return std::chrono::duration<double>(b - a).count();
}

// A small, fast, seedable generator (splitmix64). Not thread-safe: one per thread.
class Random {
public:
  explicit Random(uint64_t seed = 0x9e3779b97f4a7c15ULL) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }

private:
  uint64_t state_;
};

} // namespace semrouter::core
