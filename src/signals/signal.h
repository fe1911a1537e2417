// What a signal produces, and the set of results a decision engine reads.
#pragma once

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
    std::string k;
    key_into(k, type, name);
    results_[std::move(k)] = std::move(result);
  }
  // nullptr if the signal was not computed.
  const SignalResult* get(std::string_view type, std::string_view name) const {
    // Rules look signals up many times a request: the key is composed in a reused buffer.
    thread_local std::string k;
    key_into(k, type, name);
    auto it = results_.find(k);
    return it == results_.end() ? nullptr : &it->second;
  }
  const std::map<std::string, SignalResult>& all() const { return results_; }

private:
  static void key_into(std::string& k, std::string_view type, std::string_view name) {
    k.assign(type);
    k += ':';
    k += name;
  }
  std::map<std::string, SignalResult> results_;
};

} // namespace semrouter::signals
