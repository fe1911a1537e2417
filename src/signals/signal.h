// What a signal produces, and the set of results a decision engine reads.
#pragma once

#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace semrouter::signals {

// The request as signals see it: no JSON, no HTTP.
struct SignalInput {
  std::string_view text; // the text under classification (by default the latest user message)
};

struct SignalResult {
  bool matched = false;
  double confidence = 0.0; // in [0, 1]
  // What threshold rules compare: a classifier's probability of the signal's label, an
  // embedding signal's similarity; otherwise the confidence.
  double score = 0.0;
  double latency_us = 0.0;           // time spent computing it
  std::vector<std::string> evidence; // e.g. the keywords that matched
};

// Results keyed by (type, name), e.g. ("keyword", "math_terms").
class SignalResults {
public:
  void set(std::string_view type, std::string_view name, SignalResult result) {
    results_[key(type, name)] = std::move(result);
  }
  // nullptr if the signal was not computed.
  const SignalResult* get(std::string_view type, std::string_view name) const {
    // Rules look signals up many times a request: the key is composed on the stack when short.
    char buf[96];
    if (type.size() + name.size() + 1 <= sizeof buf) {
      std::memcpy(buf, type.data(), type.size());
      buf[type.size()] = ':';
      std::memcpy(buf + type.size() + 1, name.data(), name.size());
      auto it = results_.find(std::string_view(buf, type.size() + 1 + name.size()));
      return it == results_.end() ? nullptr : &it->second;
    }
    auto it = results_.find(key(type, name));
    return it == results_.end() ? nullptr : &it->second;
  }
  const std::map<std::string, SignalResult, std::less<>>& all() const { return results_; }

private:
  static std::string key(std::string_view type, std::string_view name) {
    std::string k(type);
    k += ':';
    k += name;
    return k;
  }
  std::map<std::string, SignalResult, std::less<>> results_;
};

} // namespace semrouter::signals
