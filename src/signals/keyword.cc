#include "signals/keyword.h"

#include <chrono>

#include <re2/re2.h>
#include <re2/set.h>

namespace semrouter::signals {

KeywordSignals::~KeywordSignals() = default;

core::StatusOr<std::unique_ptr<KeywordSignals>>
KeywordSignals::create(const std::vector<KeywordSpec>& specs) {
  std::unique_ptr<KeywordSignals> ks(new KeywordSignals());
  ks->specs_ = specs;
  RE2::Options options;
  options.set_case_sensitive(true); // per-pattern (?i) instead
  options.set_log_errors(false);
  options.set_encoding(RE2::Options::EncodingUTF8);
  ks->set_ = std::make_unique<RE2::Set>(options, RE2::UNANCHORED);
  for (size_t s = 0; s < specs.size(); ++s) {
    const KeywordSpec& spec = specs[s];
    for (size_t k = 0; k < spec.keywords.size(); ++k) {
      std::string body = spec.regex ? spec.keywords[k] : RE2::QuoteMeta(spec.keywords[k]);
      std::string pattern;
      if (!spec.case_sensitive)
        pattern += "(?i)";
      if (spec.word_boundary) {
        // Not \b: it needs a word character on the keyword's side, so "C++" or "tl;dr" would
        // never match. Instead the keyword must not touch a letter, digit or underscore (Unicode).
        pattern += "(?:^|[^\\pL\\pN_])(?:" + body + ")(?:[^\\pL\\pN_]|$)";
      } else {
        pattern += "(?:" + body + ")";
      }
      std::string error;
      if (ks->set_->Add(pattern, &error) < 0) {
        return core::make_error(core::ErrorCode::InvalidArgument,
                                "keyword signal \"" + spec.name + "\": invalid " +
                                    (spec.regex ? "regex" : "pattern") + " \"" + spec.keywords[k] +
                                    "\": " + error);
      }
      ++ks->pattern_count_;
    }
  }
  if (ks->pattern_count_ > 0 && !ks->set_->Compile()) {
    return core::make_error(core::ErrorCode::InvalidArgument,
                            "keyword signals: the patterns are too large to compile");
  }
  return ks;
}

void KeywordSignals::evaluate(const SignalInput& input, SignalResults& out) const {
  auto start = std::chrono::steady_clock::now();
  std::vector<int> hits;
  if (pattern_count_ > 0)
    set_->Match(input.text, &hits);
  // Patterns were added spec by spec, keyword by keyword: set index = running keyword index.
  std::vector<char> hit(pattern_count_, 0);
  for (int h : hits)
    hit[static_cast<size_t>(h)] = 1;
  double elapsed_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  size_t index = 0;
  for (const KeywordSpec& spec : specs_) {
    SignalResult r;
    size_t count = 0;
    for (const std::string& keyword : spec.keywords) {
      if (hit[index++]) {
        ++count;
        r.evidence.push_back(keyword);
      }
    }
    r.matched = spec.op == KeywordOperator::Any ? count > 0 : count == spec.keywords.size();
    r.confidence = r.matched ? 1.0 : 0.0;
    r.latency_us = elapsed_us;
    out.set("keyword", spec.name, std::move(r));
  }
}

} // namespace semrouter::signals
