// Decisions: rule trees over signal results -> the winning decision and its candidate models.
// Built once per config snapshot; evaluation is const and thread-safe.
#pragma once

#include <climits>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "signals/signal.h"

namespace semrouter::routing {

struct DecisionResult {
  // The winner; for the fallback, the config's default_decision mapping or nullptr (then
  // default_model with the request unchanged).
  const config::DecisionConfig* decision = nullptr;
  bool is_default = false;
  int priority = INT32_MIN; // the winner's; the fallback ranks below every decision
  std::string name;
  double confidence = 0.0;          // mean confidence of the signals that made the rules true
  std::vector<std::string> matched; // "type:name" of signals that were true in the winning tree
};

// How one rule node evaluated, for explaining a decision (the dry run, the dashboard's
// Playground). Every child is evaluated, also past the first false one of an `and`.
struct RuleTrace {
  std::string kind;      // "and", "or", "not", "signal", "compare", "always"
  std::string signal;    // signal and compare: "type:name"
  std::string op;        // compare: ">=", ">", "<=", "<"
  double value = 0;      // compare: the threshold
  bool computed = false; // signal and compare: the signal had a result
  double score = 0;      // signal: its confidence; compare: the score compared
  bool result = false;   // what the node evaluated to
  std::vector<RuleTrace> children;
};

RuleTrace trace_rule(const config::RuleNode& rule, const signals::SignalResults& results);

// One decision's evaluation, in the order the engine tries them.
struct DecisionTrace {
  std::string name;
  int priority = 0;
  bool matched = false;
  double confidence = 0; // as decide() computes it, when matched
  RuleTrace rule;
};

class DecisionEngine {
public:
  explicit DecisionEngine(const config::Config& config);

  // The signals any decision references, as (type, name); only these need computing.
  const std::set<std::pair<std::string, std::string>>& referenced_signals() const {
    return referenced_;
  }
  bool references_type(std::string_view type) const;

  // Among the decisions whose rules are true, the one routing.strategy picks: the highest
  // priority (ties: listed first), or the highest confidence (ties: priority, then listed
  // first). The default decision when none matches.
  DecisionResult decide(const signals::SignalResults& results) const;
  // Every decision's rule tree evaluated over `results`, in priority order (what decide() walks).
  std::vector<DecisionTrace> explain(const signals::SignalResults& results) const;

private:
  const config::Config& config_;
  std::vector<const config::DecisionConfig*> by_priority_;
  std::set<std::pair<std::string, std::string>> referenced_;
};

// Evaluates one rule tree; appends the signals that were true and contributed to `matched`.
bool evaluate_rule(const config::RuleNode& rule, const signals::SignalResults& results,
                   std::vector<std::string>& matched, double& confidence_sum);

// Weighted random choice among a decision's candidate models.
const config::ModelRefConfig& choose_model(const std::vector<config::ModelRefConfig>& candidates,
                                           core::Random& random);

} // namespace semrouter::routing
