// Keyword signals: every configured keyword of every keyword signal compiled into one RE2::Set,
// so the text is scanned once however many signals there are.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "signals/signal.h"

#include <re2/re2.h>
#include <re2/set.h>

namespace semrouter::signals {

enum class KeywordOperator { Any, All };

struct KeywordSpec {
  std::string name;
  std::vector<std::string> keywords;
  KeywordOperator op = KeywordOperator::Any;
  bool case_sensitive = false;
  bool word_boundary = true;
  bool regex = false;
};

class KeywordSignals {
public:
  // Compiles the specs; an invalid regex is an InvalidArgument naming the signal and pattern.
  static core::StatusOr<std::unique_ptr<KeywordSignals>>
  create(const std::vector<KeywordSpec>& specs);
  ~KeywordSignals();

  // Evaluates every keyword signal over `input.text` and stores one result per signal.
  // Thread-safe (RE2::Set matching is const).
  void evaluate(const SignalInput& input, SignalResults& out) const;
  size_t size() const { return specs_.size(); }

private:
  KeywordSignals() = default;
  std::vector<KeywordSpec> specs_;
  size_t pattern_count_ = 0; // keywords of all specs, in order: the set's indices
  std::unique_ptr<re2::RE2::Set> set_;
};

} // namespace semrouter::signals
