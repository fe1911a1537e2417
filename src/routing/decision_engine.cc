#include "routing/decision_engine.h"

#include <algorithm>
#include <cmath>

namespace semrouter::routing {
namespace {

void collect(const config::RuleNode& rule, std::set<std::pair<std::string, std::string>>& out) {
  if (rule.kind == config::RuleNode::Kind::Signal || rule.kind == config::RuleNode::Kind::Compare)
    out.emplace(rule.signal_type, rule.signal_name);
  for (const auto& c : rule.children)
    collect(c, out);
}

} // namespace

bool evaluate_rule(const config::RuleNode& rule, const signals::SignalResults& results,
                   std::vector<std::string>& matched, double& confidence_sum) {
  using Kind = config::RuleNode::Kind;
  switch (rule.kind) {
  case Kind::Always:
    return true;
  case Kind::Signal: {
    const signals::SignalResult* r = results.get(rule.signal_type, rule.signal_name);
    if (!r || !r->matched)
      return false;
    matched.push_back(rule.signal_type + ":" + rule.signal_name);
    confidence_sum += r->confidence;
    return true;
  }
  case Kind::Compare: {
    const signals::SignalResult* r = results.get(rule.signal_type, rule.signal_name);
    if (!r)
      return false;
    using Op = config::RuleNode::Op;
    const double s = r->score;
    const bool ok = rule.op == Op::Ge   ? s >= rule.value
                    : rule.op == Op::Gt ? s > rule.value
                    : rule.op == Op::Le ? s <= rule.value
                                        : s < rule.value;
    if (!ok)
      return false;
    matched.push_back(rule.signal_type + ":" + rule.signal_name);
    // How far past the threshold, as a confidence: 0.5 at it, 1 at the far end of the scale.
    const double room = rule.op == Op::Ge || rule.op == Op::Gt ? 1 - rule.value : rule.value;
    const double past = std::abs(s - rule.value);
    confidence_sum += room > 0 ? 0.5 + 0.5 * std::min(1.0, past / room) : 1.0;
    return true;
  }
  case Kind::And: {
    size_t mark = matched.size();
    double conf_mark = confidence_sum;
    for (const auto& c : rule.children) {
      if (!evaluate_rule(c, results, matched, confidence_sum)) {
        matched.resize(mark);
        confidence_sum = conf_mark;
        return false;
      }
    }
    return true;
  }
  case Kind::Or: {
    bool any = false;
    for (const auto& c : rule.children)
      any = evaluate_rule(c, results, matched, confidence_sum) || any;
    return any;
  }
  case Kind::Not: {
    // What was true under a NOT does not explain a match; evaluate into a scratch list.
    std::vector<std::string> scratch;
    double scratch_conf = 0;
    return !evaluate_rule(rule.children.front(), results, scratch, scratch_conf);
  }
  }
  return false;
}

DecisionEngine::DecisionEngine(const config::Config& config) : config_(config) {
  auto by_need = [](const config::DecisionConfig& d) {
    for (const auto& m : d.models)
      if (m.reasoning == config::ReasoningMode::ByNeed)
        return true;
    return false;
  };
  for (const auto& d : config.decisions) {
    by_priority_.push_back(&d);
    collect(d.rules, referenced_);
    // `reasoning: auto` reads the reasoning classifier after the decision.
    if (by_need(d))
      referenced_.emplace("reasoning", "reason");
  }
  if (config.default_decision && by_need(*config.default_decision))
    referenced_.emplace("reasoning", "reason");
  std::stable_sort(by_priority_.begin(), by_priority_.end(),
                   [](const auto* a, const auto* b) { return a->priority > b->priority; });
}

bool DecisionEngine::references_type(std::string_view type) const {
  for (const auto& [t, n] : referenced_) {
    if (t == type)
      return true;
  }
  return false;
}

DecisionResult DecisionEngine::decide(const signals::SignalResults& results) const {
  const bool by_confidence = config_.routing.strategy == config::DecisionStrategy::Confidence;
  DecisionResult best;
  bool found = false;
  for (const config::DecisionConfig* d : by_priority_) {
    std::vector<std::string> matched;
    double conf_sum = 0;
    if (!evaluate_rule(d->rules, results, matched, conf_sum))
      continue;
    double confidence = matched.empty() ? 1.0 : conf_sum / static_cast<double>(matched.size());
    // by_priority_ is in priority order, so a later candidate wins only on strictly higher
    // confidence.
    if (found && !(by_confidence && confidence > best.confidence))
      continue;
    best.decision = d;
    best.priority = d->priority;
    best.name = d->name;
    best.confidence = confidence;
    best.matched = std::move(matched);
    found = true;
    if (!by_confidence)
      break;
  }
  if (found)
    return best;
  DecisionResult r;
  r.is_default = true;
  r.decision = config_.default_decision ? &*config_.default_decision : nullptr;
  r.name = config_.default_decision_name;
  r.confidence = 0.0;
  return r;
}

RuleTrace trace_rule(const config::RuleNode& rule, const signals::SignalResults& results) {
  using Kind = config::RuleNode::Kind;
  RuleTrace t;
  switch (rule.kind) {
  case Kind::Always:
    t.kind = "always";
    t.result = true;
    return t;
  case Kind::Signal:
  case Kind::Compare: {
    t.kind = rule.kind == Kind::Signal ? "signal" : "compare";
    t.signal = rule.signal_type + ":" + rule.signal_name;
    const signals::SignalResult* r = results.get(rule.signal_type, rule.signal_name);
    t.computed = r != nullptr;
    if (rule.kind == Kind::Compare) {
      using Op = config::RuleNode::Op;
      t.op = rule.op == Op::Ge ? ">=" : rule.op == Op::Gt ? ">" : rule.op == Op::Le ? "<=" : "<";
      t.value = rule.value;
      t.score = r ? r->score : 0;
    } else {
      t.score = r ? r->confidence : 0;
    }
    // The same verdict evaluate_rule gives (one place decides what a node means).
    std::vector<std::string> matched;
    double conf = 0;
    t.result = evaluate_rule(rule, results, matched, conf);
    return t;
  }
  case Kind::And:
  case Kind::Or:
  case Kind::Not: {
    t.kind = rule.kind == Kind::And ? "and" : rule.kind == Kind::Or ? "or" : "not";
    for (const auto& c : rule.children)
      t.children.push_back(trace_rule(c, results));
    std::vector<std::string> matched;
    double conf = 0;
    t.result = evaluate_rule(rule, results, matched, conf);
    return t;
  }
  }
  return t;
}

std::vector<DecisionTrace> DecisionEngine::explain(const signals::SignalResults& results) const {
  std::vector<DecisionTrace> out;
  out.reserve(by_priority_.size());
  for (const config::DecisionConfig* d : by_priority_) {
    DecisionTrace t;
    t.name = d->name;
    t.priority = d->priority;
    std::vector<std::string> matched;
    double conf_sum = 0;
    t.matched = evaluate_rule(d->rules, results, matched, conf_sum);
    if (t.matched)
      t.confidence = matched.empty() ? 1.0 : conf_sum / static_cast<double>(matched.size());
    t.rule = trace_rule(d->rules, results);
    out.push_back(std::move(t));
  }
  return out;
}

const config::ModelRefConfig& choose_model(const std::vector<config::ModelRefConfig>& candidates,
                                           core::Random& random) {
  uint64_t total = 0;
  for (const auto& c : candidates)
    total += c.weight;
  if (candidates.size() == 1 || total == 0)
    return candidates.front();
  double pick = random.uniform() * static_cast<double>(total);
  for (const auto& c : candidates) {
    if (pick < static_cast<double>(c.weight))
      return c;
    pick -= static_cast<double>(c.weight);
  }
  return candidates.back();
}

} // namespace semrouter::routing
