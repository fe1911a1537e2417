// What a signal produces, and the set of results a decision engine reads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
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

// Results keyed by (type, name), e.g. ("keyword", "math_terms"), as "type:name". Kept flat: the
// entries in the order they were set, and their positions sorted by key (binary search, and
// all() in key order). A request sets a few dozen and rules read them a hundred times; a tree
// paid a node allocation per set, and a sorted vector of the entries moved strings on insert.
class SignalResults {
public:
  using Entry = std::pair<std::string, SignalResult>;

  // The entries in key order (iterates as `const Entry&`).
  class Sorted {
  public:
    class iterator {
    public:
      using value_type = Entry;
      using difference_type = std::ptrdiff_t;
      iterator() = default;
      iterator(const SignalResults* r, const uint32_t* at) : r_(r), at_(at) {}
      const Entry& operator*() const { return r_->entries_[*at_]; }
      const Entry* operator->() const { return &r_->entries_[*at_]; }
      iterator& operator++() {
        ++at_;
        return *this;
      }
      bool operator==(const iterator& o) const { return at_ == o.at_; }

    private:
      const SignalResults* r_ = nullptr;
      const uint32_t* at_ = nullptr;
    };
    explicit Sorted(const SignalResults& r) : r_(r) {}
    iterator begin() const { return {&r_, r_.order_.data()}; }
    iterator end() const { return {&r_, r_.order_.data() + r_.order_.size()}; }
    size_t size() const { return r_.order_.size(); }
    bool empty() const { return r_.order_.empty(); }

  private:
    const SignalResults& r_;
  };

  SignalResults() = default;
  // A copy holds the results, not the spare entries kept for reuse.
  SignalResults(const SignalResults& o) : entries_(o.entries_), order_(o.order_) {}
  SignalResults& operator=(const SignalResults& o) {
    entries_ = o.entries_;
    order_ = o.order_;
    return *this;
  }
  SignalResults(SignalResults&&) noexcept = default;
  SignalResults& operator=(SignalResults&&) noexcept = default;

  void set(std::string_view type, std::string_view name, SignalResult result) {
    put(type, name) = std::move(result);
  }
  // The result for (type, name), reset to its defaults (no evidence), to be filled in place. An
  // entry left by clear() is reused: its key's and its evidence list's storage, so a request
  // path that clears one SignalResults per thread sets its signals without allocating. The
  // reference lasts until the next put(), set() or clear().
  SignalResult& put(std::string_view type, std::string_view name) {
    if (entries_.capacity() == 0) { // the default config's signals, in one allocation each
      entries_.reserve(32);
      order_.reserve(32);
    }
    std::string& k = scratch_key();
    key_into(k, type, name);
    auto it = lower(k);
    if (it != order_.end() && entries_[*it].first == k)
      return reset(entries_[*it].second);
    // The entry first, then its position: a throw in between leaves an entry no lookup reaches,
    // never a position past the entries.
    if (spare_.empty()) {
      entries_.emplace_back(k, SignalResult{});
    } else {
      entries_.push_back(std::move(spare_.back()));
      spare_.pop_back();
      entries_.back().first.assign(k);
      reset(entries_.back().second);
    }
    order_.insert(it, uint32_t(entries_.size() - 1));
    return entries_.back().second;
  }
  // Drops every result; their storage stays for the next put().
  void clear() {
    for (Entry& e : entries_)
      spare_.push_back(std::move(e));
    entries_.clear();
    order_.clear();
  }
  // nullptr if the signal was not computed. A put(), set() or clear() invalidates the pointers
  // get() and find() returned and any iteration of all() (as with a vector).
  const SignalResult* get(std::string_view type, std::string_view name) const {
    // Rules look signals up many times a request: the key is composed in a reused buffer.
    std::string& k = scratch_key();
    key_into(k, type, name);
    return find(k);
  }
  // By the whole key, "type:name".
  const SignalResult* find(std::string_view key) const {
    auto it = lower(key);
    return it != order_.end() && entries_[*it].first == key ? &entries_[*it].second : nullptr;
  }
  Sorted all() const { return Sorted(*this); }

private:
  static std::string& scratch_key() {
    thread_local std::string k;
    return k;
  }
  // Every field back to its default (a field added to SignalResult later included), keeping the
  // evidence list's capacity.
  static SignalResult& reset(SignalResult& r) {
    std::vector<std::string> evidence = std::move(r.evidence);
    evidence.clear();
    r = SignalResult{};
    r.evidence = std::move(evidence);
    return r;
  }
  static void key_into(std::string& k, std::string_view type, std::string_view name) {
    k.assign(type);
    k += ':';
    k += name;
  }
  std::vector<uint32_t>::const_iterator lower(std::string_view key) const {
    return std::lower_bound(order_.begin(), order_.end(), key, [&](uint32_t i, std::string_view k) {
      return std::string_view(entries_[i].first) < k;
    });
  }
  std::vector<Entry> entries_;  // in the order they were set
  std::vector<uint32_t> order_; // positions in entries_, sorted by key
  std::vector<Entry> spare_;    // cleared entries, for put() to reuse
};

} // namespace semrouter::signals
