// Keyword signals: every configured keyword of every keyword signal compiled into one RE2::Set,
// so the text is scanned once however many signals there are.
//
// Keywords that are plain ASCII text (any non-regex keyword, and a regex that only spells out
// text, like `c\+\+`) are found faster than the set's automaton reads a long text: one
// vectorised pass finds where such a keyword can start (a word start for whole-word keywords,
// the keyword's first two letters for the others), and the keyword's own pattern, run on the few
// bytes around each of those places with the whole text as context, decides. The answers are
// the set's (evaluate_with_set).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "signals/signal.h"

#include <re2/re2.h>
#include <re2/set.h>

#if defined(__SSSE3__)
#include <tmmintrin.h>
#endif

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
  // Thread-safe (RE2 matching is const). Linear in the text.
  void evaluate(const SignalInput& input, SignalResults& out) const;
  // The same answers from the RE2 set alone over the whole text: the reference evaluate() must
  // equal (for tests and benchmarks).
  void evaluate_with_set(const SignalInput& input, SignalResults& out) const;
  size_t size() const { return specs_.size(); }

private:
  // A keyword looked for by the literal scan.
  struct Literal {
    size_t pattern = 0; // its index among all keywords (the set's index)
    std::string text;   // the bytes it matches, ASCII
    bool case_sensitive = false;
    bool word_boundary = true;
    bool at_word_start = false;   // whole-word and starts with a word byte: only at word starts
    bool plain = false;           // a keyword, not a regex: its bytes and ASCII neighbours decide
    uint16_t key = 0;             // its first two bytes, each | 0x20 (pair_key)
    std::unique_ptr<re2::RE2> re; // its own pattern, the set's: the final say on a candidate
  };

  KeywordSignals() = default;
  // Sets hit[pattern] for every keyword found in `text` (the literal scan, then the set of the
  // other keywords).
  void find(std::string_view text, std::vector<char>& hit) const;
  // False when the text needs the whole set (a character that RE2 folds to an ASCII letter).
  bool scan_literals(std::string_view text, std::vector<char>& hit) const;
  void check_candidate(std::string_view text, size_t at, bool word_start, std::vector<char>& hit,
                       size_t& found) const;
  void report(const std::vector<char>& hit, double elapsed_us, SignalResults& out) const;

  std::vector<KeywordSpec> specs_;
  size_t pattern_count_ = 0; // keywords of all specs, in order: the set's indices
  std::unique_ptr<re2::RE2::Set> set_;
  // The literal scan's keywords; the others in `rest_` (rest_index_: its index -> pattern).
  std::vector<Literal> literals_;
  std::unique_ptr<re2::RE2::Set> rest_;
  std::vector<size_t> rest_index_;
  // A set of ASCII bytes that sixteen bytes are tested against at once (SSSE3).
  struct ByteSet {
    uint8_t by_low[16] = {}; // bit h of by_low[l]: byte (h << 4 | l) is in, for h < 8
    bool all = false;        // every byte, non-ASCII too (after a one-byte keyword)
    void add(uint32_t byte) {
      if (byte < 0x80)
        by_low[byte & 0xF] |= uint8_t(1u << (byte >> 4));
    }
    void add_all() { all = true; }
#if defined(__SSSE3__)
    struct Nibbles {
      __m128i low, high;
    };
    static Nibbles nibbles(__m128i v);
    unsigned members(const Nibbles& v) const; // bit k: byte k is in the set
#endif
  };
  // The first bytes of the word-start literals (both cases of a letter unless case-sensitive),
  // and their second bytes folded.
  ByteSet start_first_, start_second_;
  // Filters of 2^16 bits for the word-start literals: a hash of the folded first four bytes of
  // those with three or more (a three-byte one with each byte that may follow it), the folded
  // first two of the shorter ones (read everywhere when there is one of one or two bytes, else
  // only in the last three bytes of the text).
  std::vector<uint64_t> start_quads_, start_pairs_;
  bool tiny_starts_ = false;
  // The other literals: their folded first two bytes, compared at every position, then the
  // four-byte filter (unless one of them is shorter).
  std::vector<uint16_t> anywhere_pairs_;
  std::vector<uint64_t> anywhere_quads_;
  bool anywhere_short_ = false;
  std::vector<size_t> start_literals_, anywhere_literals_; // indices into literals_
  bool folds_k_or_s_ = false; // a case-insensitive literal has k or s (RE2 folds U+212A, U+017F)
};

} // namespace semrouter::signals
