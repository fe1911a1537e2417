// Session stickiness: the model (and the decision that chose it) each x-session-id started with.
// Shared by every worker and kept across config reloads; bounded (least recently used entries go
// first) and expiring.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace semrouter::pipeline {

struct SessionEntry {
  std::string decision; // the decision's name (the default decision's for the fallback)
  std::string model;
  int priority = 0; // the decision's priority: only a higher one moves the session
};

class SessionStore {
public:
  using Clock = std::chrono::steady_clock;

  // Lookups refresh the entry's expiry; `ttl` and `capacity` come from the config of the request
  // that touches the store, so a reload changes them without losing sessions.
  std::optional<SessionEntry> get(std::string_view id, std::chrono::seconds ttl,
                                  Clock::time_point now = Clock::now());
  void put(std::string_view id, SessionEntry entry, size_t capacity,
           Clock::time_point now = Clock::now());
  size_t size() const;

private:
  struct Item {
    SessionEntry entry;
    Clock::time_point last_seen;
    std::list<std::string>::iterator lru; // position in lru_ (front: most recent)
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Item> items_;
  std::list<std::string> lru_;
};

} // namespace semrouter::pipeline
