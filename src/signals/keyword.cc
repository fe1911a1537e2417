#include "signals/keyword.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>

#include <re2/re2.h>
#include <re2/set.h>

#if defined(__SSSE3__)
#include <tmmintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace semrouter::signals {
namespace {

// At most this many different first-two-byte pairs of keywords that can start anywhere (not
// only at a word start) are compared in the vectorised pass; further ones go to the set.
constexpr size_t kMaxAnywherePairs = 8;
// Bytes on each side of a candidate that its pattern sees: a UTF-8 character at most.
constexpr size_t kContextBytes = 4;
constexpr size_t kFilterBits = size_t(1) << 16;

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

unsigned char ascii_lower(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c + 32) : c;
}

// A byte with its 0x20 bit set: an ASCII letter's lower case (other bytes may collide, which
// only makes a filter let more through).
uint32_t fold(char c) {
  return uint32_t(static_cast<unsigned char>(c)) | 0x20u;
}

uint16_t pair_key(std::string_view t, size_t p) {
  return uint16_t(fold(t[p]) << 8 | (p + 1 < t.size() ? fold(t[p + 1]) : 0u));
}

// A hash of the folded first four bytes at p (p + 4 <= size), for the 2^16-bit filters.
uint16_t quad_key(std::string_view t, size_t p) {
  uint32_t w = 0;
  std::memcpy(&w, t.data() + p, 4);
  w |= 0x20202020u;
  return uint16_t((w * 0x9E3779B1u) >> 16);
}

void set_bit(std::vector<uint64_t>& bits, uint32_t k) {
  bits[k >> 6] |= uint64_t(1) << (k & 63);
}

bool test_bit(const std::vector<uint64_t>& bits, uint32_t k) {
  return (bits[k >> 6] >> (k & 63)) & 1;
}

// The text a regex spells out, if it is only that: ASCII characters that are not operators, and
// escaped punctuation (`c\+\+` is "c++"). Anything else (classes, groups, repeats, non-ASCII)
// is a real regex and stays with the set.
bool regex_literal(std::string_view re, std::string& out) {
  out.clear();
  for (size_t i = 0; i < re.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(re[i]);
    if (c >= 0x80 || c < 0x20)
      return false;
    if (c == '\\') {
      if (i + 1 == re.size())
        return false;
      const unsigned char e = static_cast<unsigned char>(re[++i]);
      if (e >= 0x80 || e < 0x20 || is_word_byte(e))
        return false; // \d, \b, \pL, \x41, ...
      out += char(e);
      continue;
    }
    if (std::strchr(".+*?()|[]{}^$", c) != nullptr)
      return false;
    out += char(c);
  }
  return !out.empty();
}

} // namespace

KeywordSignals::~KeywordSignals() = default;

#if defined(__SSSE3__)
KeywordSignals::ByteSet::Nibbles KeywordSignals::ByteSet::nibbles(__m128i v) {
  const __m128i mask = _mm_set1_epi8(0x0F);
  // 1 << high nibble for the high nibbles 0..7; bytes >= 0x80 get 0, and so are in no set.
  const __m128i high_bit = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, char(128), 0, 0, 0, 0, 0, 0, 0, 0);
  return {_mm_and_si128(v, mask),
          _mm_shuffle_epi8(high_bit, _mm_and_si128(_mm_srli_epi16(v, 4), mask))};
}

unsigned KeywordSignals::ByteSet::members(const Nibbles& v) const {
  if (all)
    return 0xFFFFu;
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(by_low));
  const __m128i hit = _mm_and_si128(_mm_shuffle_epi8(table, v.low), v.high);
  return ~unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(hit, _mm_setzero_si128()))) & 0xFFFFu;
}
#endif

core::StatusOr<std::unique_ptr<KeywordSignals>>
KeywordSignals::create(const std::vector<KeywordSpec>& specs) {
  std::unique_ptr<KeywordSignals> ks(new KeywordSignals());
  ks->specs_ = specs;
  RE2::Options options;
  options.set_case_sensitive(true); // per-pattern (?i) instead
  options.set_log_errors(false);
  options.set_encoding(RE2::Options::EncodingUTF8);
  ks->set_ = std::make_unique<RE2::Set>(options, RE2::UNANCHORED);
  ks->rest_ = std::make_unique<RE2::Set>(options, RE2::UNANCHORED);
  ks->start_quads_.assign(kFilterBits / 64, 0);
  ks->anywhere_quads_.assign(kFilterBits / 64, 0);
  ks->start_pairs_.assign(kFilterBits / 64, 0);
  std::vector<uint16_t> anywhere;
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
      const size_t index = ks->pattern_count_++;

      // The literal scan takes plain ASCII text; anything else goes to the rest set.
      std::string text;
      bool literal = spec.regex ? regex_literal(spec.keywords[k], text)
                                : (text = spec.keywords[k], !text.empty());
      literal = literal && std::all_of(text.begin(), text.end(),
                                       [](char c) { return static_cast<unsigned char>(c) < 0x80; });
      Literal lit;
      lit.pattern = index;
      lit.text = text;
      lit.case_sensitive = spec.case_sensitive;
      lit.word_boundary = spec.word_boundary;
      lit.plain = !spec.regex;
      lit.at_word_start =
          spec.word_boundary && !text.empty() && is_word_byte(static_cast<unsigned char>(text[0]));
      if (literal && !lit.at_word_start) {
        // Compared at every position by its first two bytes: a one-byte keyword, or one pair
        // too many, would let too much through.
        const uint16_t key = text.size() >= 2 ? pair_key(text, 0) : 0;
        const bool known = std::find(anywhere.begin(), anywhere.end(), key) != anywhere.end();
        literal = text.size() >= 2 && (known || anywhere.size() < kMaxAnywherePairs);
        if (literal && !known)
          anywhere.push_back(key);
        if (literal && text.size() >= 4)
          set_bit(ks->anywhere_quads_, quad_key(text, 0));
        else if (literal)
          ks->anywhere_short_ = true;
      }
      if (literal) {
        lit.re = std::make_unique<RE2>(pattern, options);
        literal = lit.re->ok();
      }
      if (!literal) {
        if (ks->rest_->Add(pattern, &error) < 0)
          return core::make_error(core::ErrorCode::InvalidArgument,
                                  "keyword signal \"" + spec.name + "\": " + error);
        ks->rest_index_.push_back(index);
        continue;
      }
      lit.key = pair_key(text, 0);
      if (lit.at_word_start) {
        const unsigned char first = static_cast<unsigned char>(text[0]);
        ks->start_first_.add(first);
        if (!spec.case_sensitive && std::isalpha(first))
          ks->start_first_.add(first ^ 0x20u);
        if (text.size() >= 2)
          ks->start_second_.add(fold(text[1]));
        else
          ks->start_second_.add_all();
        // The filters hold the folded first four bytes (hashed), or the first two of a shorter
        // keyword (any second byte for a one-byte keyword). A three-byte keyword is also in the
        // four-byte filter with every byte that can follow it (not a word byte: it is whole-word),
        // so only the text's last three bytes need the pair filter for it.
        if (text.size() >= 4) {
          set_bit(ks->start_quads_, quad_key(text, 0));
        } else if (text.size() == 3) {
          for (uint32_t b = 0; b < 256; ++b)
            if (!is_word_byte(static_cast<unsigned char>(b)))
              set_bit(ks->start_quads_, quad_key(text + char(b), 0));
          set_bit(ks->start_pairs_, lit.key);
        } else if (text.size() == 1) {
          for (uint32_t b = 0; b < 256; ++b)
            set_bit(ks->start_pairs_, fold(text[0]) << 8 | b);
          ks->tiny_starts_ = true;
        } else {
          set_bit(ks->start_pairs_, lit.key);
          ks->tiny_starts_ = true;
        }
      }
      const bool folds = !spec.case_sensitive && text.find_first_of("kKsS") != std::string::npos;
      ks->folds_k_or_s_ = ks->folds_k_or_s_ || folds;
      (lit.at_word_start ? ks->start_literals_ : ks->anywhere_literals_)
          .push_back(ks->literals_.size());
      ks->literals_.push_back(std::move(lit));
    }
  }
  ks->anywhere_pairs_ = std::move(anywhere);
  if (ks->pattern_count_ > 0 && !ks->set_->Compile()) {
    return core::make_error(core::ErrorCode::InvalidArgument,
                            "keyword signals: the patterns are too large to compile");
  }
  if (!ks->rest_index_.empty() && !ks->rest_->Compile()) {
    return core::make_error(core::ErrorCode::InvalidArgument,
                            "keyword signals: the patterns are too large to compile");
  }
  return ks;
}

void KeywordSignals::check_candidate(std::string_view t, size_t at, bool word_start,
                                     std::vector<char>& hit, size_t& found) const {
  const size_t n = t.size();
  const uint16_t key = pair_key(t, at);
  for (size_t index : word_start ? start_literals_ : anywhere_literals_) {
    const Literal& lit = literals_[index];
    const size_t len = lit.text.size();
    if (hit[lit.pattern] || at + len > n)
      continue;
    if (len >= 2 ? lit.key != key : (lit.key >> 8) != (key >> 8))
      continue;
    // The bytes, as (?i) reads them in ASCII.
    bool same = true;
    for (size_t j = 0; j < len && same; ++j) {
      const unsigned char a = static_cast<unsigned char>(t[at + j]);
      const unsigned char b = static_cast<unsigned char>(lit.text[j]);
      same = lit.case_sensitive ? a == b : ascii_lower(a) == ascii_lower(b);
    }
    if (!same)
      continue;
    // An ASCII letter, digit or '_' next to a whole-word keyword rules it out here.
    if (lit.word_boundary &&
        ((at > 0 && is_word_byte(static_cast<unsigned char>(t[at - 1]))) ||
         (at + len < n && is_word_byte(static_cast<unsigned char>(t[at + len])))))
      continue;
    // A plain keyword's pattern is its bytes between non-word neighbours: with the neighbours
    // ASCII (or the text's ends), the checks above are the pattern's whole answer. A byte past
    // 0x7F next to it may start or end a Unicode letter, which only the pattern can tell.
    if (lit.plain) {
      const bool before_ascii = at == 0 || static_cast<unsigned char>(t[at - 1]) < 0x80;
      const bool after_ascii = at + len == n || static_cast<unsigned char>(t[at + len]) < 0x80;
      if (!lit.word_boundary || (before_ascii && after_ascii)) {
        hit[lit.pattern] = 1;
        ++found;
        continue;
      }
    }
    // The pattern decides, on the bytes around the candidate with the whole text as context
    // (so ^ and $ mean the text's start and end, as for the set).
    const size_t from = at >= kContextBytes ? at - kContextBytes : 0;
    const size_t to = std::min(n, at + len + kContextBytes);
    if (lit.re->Match(t, from, to, RE2::UNANCHORED, nullptr, 0)) {
      hit[lit.pattern] = 1;
      ++found;
    }
  }
}

bool KeywordSignals::scan_literals(std::string_view t, std::vector<char>& hit) const {
  const size_t n = t.size();
  size_t found = 0;
  // RE2's (?i) also matches KELVIN SIGN for k and LATIN SMALL LETTER LONG S for s: a text with
  // either is left to the set.
  auto folds_here = [&](size_t p) {
    return t.compare(p, 3, "\xE2\x84\xAA") == 0 || t.compare(p, 2, "\xC5\xBF") == 0;
  };
  auto at_word_start = [&](size_t p) {
    const bool quad = p + 4 <= n;
    if ((quad && test_bit(start_quads_, quad_key(t, p))) ||
        ((tiny_starts_ || !quad) && test_bit(start_pairs_, pair_key(t, p))))
      check_candidate(t, p, true, hit, found);
  };
  // At a position whose first two bytes are an anywhere keyword's: the four-byte filter, unless
  // a shorter keyword could start here.
  auto anywhere = [&](size_t p) {
    if (anywhere_short_ || (p + 4 <= n && test_bit(anywhere_quads_, quad_key(t, p))))
      check_candidate(t, p, false, hit, found);
  };
  size_t i = 0;
  bool prev_word = false;
#if defined(__SSE2__)
  // Sixteen positions at a time: word starts, positions whose two bytes (folded) are an
  // anywhere keyword's first two, and the lead bytes of the two folding characters.
  __m128i first[kMaxAnywherePairs], second[kMaxAnywherePairs];
  for (size_t k = 0; k < anywhere_pairs_.size(); ++k) {
    first[k] = _mm_set1_epi8(char(anywhere_pairs_[k] >> 8));
    second[k] = _mm_set1_epi8(char(anywhere_pairs_[k] & 0xFF));
  }
  const __m128i bit5 = _mm_set1_epi8(0x20);
#if defined(__SSSE3__)
  static const ByteSet word_bytes = [] {
    ByteSet s;
    for (uint32_t b = 0; b < 0x80; ++b)
      if (is_word_byte(static_cast<unsigned char>(b)))
        s.add(b);
    return s;
  }();
#endif
  for (; i + 17 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.data() + i));
    const __m128i lv = _mm_or_si128(v, bit5);
#if defined(__SSSE3__)
    const ByteSet::Nibbles nv = ByteSet::nibbles(v);
    const unsigned w = word_bytes.members(nv);
    unsigned starts = w & ~((w << 1) | (prev_word ? 1u : 0u)) & 0xFFFFu;
    // Only word starts whose first and second bytes occur there in some keyword.
    if (starts != 0) {
      const __m128i lw1 =
          _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.data() + i + 1)), bit5);
      starts &= start_first_.members(nv) & start_second_.members(ByteSet::nibbles(lw1));
    }
#else
    // Signed compares: bytes >= 0x80 are negative, never a letter or a digit.
    const __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(lv, _mm_set1_epi8(0x60)),
                                        _mm_cmplt_epi8(lv, _mm_set1_epi8(0x7B)));
    const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(0x2F)),
                                        _mm_cmplt_epi8(v, _mm_set1_epi8(0x3A)));
    const __m128i word =
        _mm_or_si128(_mm_or_si128(alpha, digit), _mm_cmpeq_epi8(v, _mm_set1_epi8('_')));
    const unsigned w = unsigned(_mm_movemask_epi8(word));
    unsigned starts = w & ~((w << 1) | (prev_word ? 1u : 0u)) & 0xFFFFu;
#endif
    prev_word = (w >> 15) & 1u;
    unsigned any = 0;
    if (!anywhere_pairs_.empty()) {
      const __m128i lw =
          _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.data() + i + 1)), bit5);
      __m128i m = _mm_setzero_si128();
      for (size_t k = 0; k < anywhere_pairs_.size(); ++k)
        m = _mm_or_si128(
            m, _mm_and_si128(_mm_cmpeq_epi8(lv, first[k]), _mm_cmpeq_epi8(lw, second[k])));
      any = unsigned(_mm_movemask_epi8(m));
    }
    if (folds_k_or_s_) {
      unsigned lead =
          unsigned(_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(char(0xE2))),
                                                  _mm_cmpeq_epi8(v, _mm_set1_epi8(char(0xC5))))));
      for (; lead != 0; lead &= lead - 1)
        if (folds_here(i + size_t(__builtin_ctz(lead))))
          return false;
    }
    for (; starts != 0; starts &= starts - 1)
      at_word_start(i + size_t(__builtin_ctz(starts)));
    for (; any != 0; any &= any - 1)
      anywhere(i + size_t(__builtin_ctz(any)));
    if (found == literals_.size())
      return true;
  }
#endif
  for (; i < n; ++i) {
    const bool word = is_word_byte(static_cast<unsigned char>(t[i]));
    if (folds_k_or_s_ && folds_here(i))
      return false;
    if (word && !prev_word)
      at_word_start(i);
    prev_word = word;
    if (std::find(anywhere_pairs_.begin(), anywhere_pairs_.end(), pair_key(t, i)) !=
        anywhere_pairs_.end())
      anywhere(i);
  }
  return true;
}

void KeywordSignals::find(std::string_view text, std::vector<char>& hit) const {
  if (!scan_literals(text, hit)) {
    std::fill(hit.begin(), hit.end(), 0);
    std::vector<int> all;
    set_->Match(text, &all);
    for (int h : all)
      hit[static_cast<size_t>(h)] = 1;
    return;
  }
  if (rest_index_.empty())
    return;
  std::vector<int> rest;
  rest_->Match(text, &rest);
  for (int h : rest)
    hit[rest_index_[static_cast<size_t>(h)]] = 1;
}

void KeywordSignals::evaluate(const SignalInput& input, SignalResults& out) const {
  auto start = std::chrono::steady_clock::now();
  std::vector<char> hit(pattern_count_, 0);
  if (pattern_count_ > 0)
    find(input.text, hit);
  report(
      hit,
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count(),
      out);
}

void KeywordSignals::evaluate_with_set(const SignalInput& input, SignalResults& out) const {
  auto start = std::chrono::steady_clock::now();
  std::vector<int> hits;
  if (pattern_count_ > 0)
    set_->Match(input.text, &hits);
  std::vector<char> hit(pattern_count_, 0);
  for (int h : hits)
    hit[static_cast<size_t>(h)] = 1;
  report(
      hit,
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count(),
      out);
}

void KeywordSignals::report(const std::vector<char>& hit, double elapsed_us,
                            SignalResults& out) const {
  // Patterns were added spec by spec, keyword by keyword: set index = running keyword index.
  size_t index = 0;
  for (const KeywordSpec& spec : specs_) {
    SignalResult& r = out.put("keyword", spec.name);
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
  }
}

} // namespace semrouter::signals
