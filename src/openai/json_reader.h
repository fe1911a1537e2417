// A strict JSON reader over a byte span: validates as it walks and reports where each value lies,
// so a body is read once (no DOM, no padded copy). parse_request reads every client body with it.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/strings.h"
#include "openai/request.h"

namespace semrouter::openai {

namespace json_detail {

inline bool is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}
inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// The 16-bit value of the four hex digits at p (n bytes readable), or -1.
inline int hex4(const char* p, size_t n) {
  if (n < 4)
    return -1;
  int v = 0;
  for (int k = 0; k < 4; ++k) {
    const int d = core::hex_digit(p[k]);
    if (d < 0)
      return -1;
    v = v * 16 + d;
  }
  return v;
}

// Well-formed UTF-8 (Unicode's table 3-7: no overlong form, no surrogate, nothing past
// U+10FFFF), checked with simdjson's validator.
bool valid_utf8(std::string_view s);

} // namespace json_detail

// A strict RFC 8259 reader that validates as it walks (UTF-8 and escapes in strings, numbers,
// literals, nesting) and hands its caller the byte spans of what it walks over. The grammar is
// nlohmann's, the fuzz targets' oracle: a lone surrogate escape is refused, any number the grammar
// allows is accepted unless it overflows a double. Nesting stops at kMaxDepth, as simdjson's DOM
// parser did.
class JsonReader {
public:
  static constexpr int kMaxDepth = 1024;

  explicit JsonReader(std::string_view s) : p_(s.data()), n_(s.size()) {}

  size_t pos() const { return i_; }
  const char* error() const { return err_; }
  char peek() const { return i_ < n_ ? p_[i_] : '\0'; }
  [[gnu::always_inline]] void skip_ws() {
    while (i_ < n_ && static_cast<unsigned char>(p_[i_]) <= ' ' && json_detail::is_ws(p_[i_]))
      ++i_;
  }
  bool fail(const char* why) {
    if (!err_)
      err_ = why;
    return false;
  }

  // At a quote: validates the string and moves past its closing quote. `escaped` is set when it
  // holds a backslash (its text then needs decoding).
  bool string(bool& escaped) {
    const size_t begin = ++i_;
    bool high = false; // a byte >= 0x80 passed by: the string's UTF-8 is checked at its end
    while (true) {
#if defined(__SSE2__)
      // Sixteen bytes at a time up to the next quote, backslash or control byte. Non-ASCII bytes
      // do not stop the walk (text in most scripts is all of them); they are validated at once.
      while (i_ + 16 <= n_) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_ + i_));
        const __m128i control = // a byte <= 0x1F, unsigned
            _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);
        const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                         control);
        high = high || _mm_movemask_epi8(v) != 0; // (bytes past the stop may set it: harmless)
        if (const unsigned mask = unsigned(_mm_movemask_epi8(hit))) {
          i_ += static_cast<size_t>(__builtin_ctz(mask));
          break;
        }
        i_ += 16;
      }
#endif
      if (i_ >= n_)
        return fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(p_[i_]);
      if (c == '"') {
        if (high && !json_detail::valid_utf8(std::string_view(p_ + begin, i_ - begin)))
          return fail("invalid UTF-8 in a string");
        ++i_;
        return true;
      }
      if (c == '\\') {
        escaped = true;
        if (!escape())
          return false;
      } else if (c < 0x20) {
        return fail("a control character in a string");
      } else {
        high = high || c >= 0x80;
        ++i_;
      }
    }
  }

  bool number() {
    const size_t start = i_;
    if (peek() == '-')
      ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (json_detail::is_digit(peek())) {
      while (json_detail::is_digit(peek()))
        ++i_;
    } else {
      return fail("invalid number");
    }
    if (peek() == '.') {
      ++i_;
      if (!json_detail::is_digit(peek()))
        return fail("invalid number");
      while (json_detail::is_digit(peek()))
        ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-')
        ++i_;
      if (!json_detail::is_digit(peek()))
        return fail("invalid number");
      while (json_detail::is_digit(peek()))
        ++i_;
      return finite(start);
    }
    return i_ - start < 300 || finite(start);
  }

  // Any value at i_, validated and skipped; `depth` is the nesting of what holds it.
  bool value(int depth) {
    switch (peek()) {
    case '"': {
      bool escaped = false;
      return string(escaped);
    }
    case '{':
      return object(depth + 1, [this](Span, bool, int d) { return value(d); });
    case '[':
      return array(depth + 1, [this](int d) { return value(d); });
    case 't':
      return literal("true");
    case 'f':
      return literal("false");
    case 'n':
      return literal("null");
    default:
      if (peek() == '-' || json_detail::is_digit(peek()))
        return number();
      return fail(i_ >= n_ ? "unexpected end" : "unexpected character");
    }
  }

  // At a '{': member(key span with quotes, whether the key holds an escape, depth) must read the
  // member's value; i_ ends past the '}'.
  template <typename Member> bool object(int depth, Member&& member) {
    bool empty = false;
    if (!enter(depth, '}', empty) || empty)
      return !err_;
    while (true) {
      if (peek() != '"')
        return fail("expected a key");
      Span key{i_, 0};
      bool escaped = false;
      if (!string(escaped))
        return false;
      key.end = i_;
      skip_ws();
      if (peek() != ':')
        return fail("expected ':'");
      ++i_;
      skip_ws();
      if (!member(key, escaped, depth))
        return false;
      if (const After after = after_item('}', "expected ',' or '}'"); after != After::Next)
        return after == After::Closed;
    }
  }

  // At a '[': element(depth) must read each element; i_ ends past the ']'.
  template <typename Element> bool array(int depth, Element&& element) {
    bool empty = false;
    if (!enter(depth, ']', empty) || empty)
      return !err_;
    while (true) {
      if (!element(depth))
        return false;
      if (const After after = after_item(']', "expected ',' or ']'"); after != After::Next)
        return after == After::Closed;
    }
  }

private:
  // At an opening bracket: checks the depth and moves past it; `empty` when `close` follows at
  // once (then past it too).
  bool enter(int depth, char close, bool& empty) {
    if (depth > kMaxDepth)
      return fail("nested too deep");
    ++i_;
    skip_ws();
    empty = peek() == close;
    if (empty)
      ++i_;
    return true;
  }

  // After a member or an element: Next past a ',', Closed past `close`, else Failed.
  enum class After { Next, Closed, Failed };
  After after_item(char close, const char* expected) {
    skip_ws();
    if (peek() == ',') {
      ++i_;
      skip_ws();
      return After::Next;
    }
    if (peek() == close) {
      ++i_;
      return After::Closed;
    }
    fail(expected);
    return After::Failed;
  }

  // A number past a double's range (1e400) is refused, as nlohmann and simdjson refuse it.
  // (strtod reads '.' as the decimal point: the process never leaves the C locale.)
  bool finite(size_t start) {
    const std::string text(p_ + start, i_ - start);
    if (!std::isfinite(std::strtod(text.c_str(), nullptr)))
      return fail("a number past the range of a double");
    return true;
  }

  bool literal(std::string_view word) {
    if (n_ - i_ < word.size() || std::string_view(p_ + i_, word.size()) != word)
      return fail("unexpected character");
    i_ += word.size();
    return true;
  }

  // At a backslash in a string.
  bool escape() {
    if (i_ + 1 >= n_)
      return fail("unterminated string");
    switch (p_[i_ + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
      i_ += 2;
      return true;
    case 'u':
      break;
    default:
      return fail("invalid escape in a string");
    }
    const int u = json_detail::hex4(p_ + i_ + 2, n_ - i_ - 2);
    if (u < 0)
      return fail("invalid \\u escape in a string");
    i_ += 6;
    if (u >= 0xDC00 && u <= 0xDFFF)
      return fail("a lone surrogate escape in a string");
    if (u >= 0xD800 && u <= 0xDBFF) {
      const int low = i_ + 1 < n_ && p_[i_] == '\\' && p_[i_ + 1] == 'u'
                          ? json_detail::hex4(p_ + i_ + 2, n_ - i_ - 2)
                          : -1;
      if (low < 0xDC00 || low > 0xDFFF)
        return fail("a lone surrogate escape in a string");
      i_ += 6;
    }
    return true;
  }

  const char* p_;
  size_t n_;
  size_t i_ = 0;
  const char* err_ = nullptr;
};

// The text of a string JsonReader validated (`quoted` includes its quotes), escapes decoded,
// appended to `out`.
void append_json_text(std::string& out, std::string_view quoted);
std::string json_text(std::string_view quoted);

// A key's text between its quotes, as written (escapes not decoded); `key` spans the quotes.
inline std::string_view key_text(std::string_view s, Span key) {
  return s.substr(key.begin + 1, key.end - key.begin - 2);
}

// A key as JSON parsers read it ("m\u0065ssages" is "messages"): its bytes between the quotes,
// or, when it holds an escape, its decoded text in `scratch`.
inline std::string_view key_name(std::string_view s, Span key, bool escaped, std::string& scratch) {
  if (!escaped)
    return key_text(s, key);
  scratch = json_text(s.substr(key.begin, key.end - key.begin));
  return scratch;
}

} // namespace semrouter::openai
