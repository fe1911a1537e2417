#include "pipeline/sessions.h"

namespace semrouter::pipeline {

std::optional<SessionEntry> SessionStore::get(std::string_view id, std::chrono::seconds ttl,
                                              Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = items_.find(std::string(id));
  if (it == items_.end())
    return std::nullopt;
  if (now - it->second.last_seen > ttl) {
    lru_.erase(it->second.lru);
    items_.erase(it);
    return std::nullopt;
  }
  it->second.last_seen = now;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.entry;
}

void SessionStore::put(std::string_view id, SessionEntry entry, size_t capacity,
                       Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string key(id);
  auto it = items_.find(key);
  if (it != items_.end()) {
    it->second.entry = std::move(entry);
    it->second.last_seen = now;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return;
  }
  while (!lru_.empty() && items_.size() >= capacity) {
    items_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(key);
  items_.emplace(std::move(key), Item{std::move(entry), now, lru_.begin()});
}

size_t SessionStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return items_.size();
}

} // namespace semrouter::pipeline
