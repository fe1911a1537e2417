#include "core/strings.h"
#include "core/query.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace semrouter::core {

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool parse_u32(std::string_view s, uint32_t& out) {
  s = trim(s);
  if (s.empty() || s.size() > 10)
    return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + uint64_t(c - '0');
  }
  if (v > UINT32_MAX)
    return false;
  out = static_cast<uint32_t>(v);
  return true;
}

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n'))
    ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n'))
    --e;
  return s.substr(b, e - b);
}

size_t find_short(std::string_view s, std::string_view needle) {
  const size_t k = needle.size();
  if (k < 2)
    return s.find(needle);
  if (s.size() < k)
    return std::string_view::npos;
  const char* p = s.data();
  const size_t last = s.size() - k; // the last position a match can start at
  size_t i = 0;
#if defined(__SSE2__)
  if (s.size() >= 17) {
    // Candidates: positions where the needle's first two bytes are (a JSON key's quote and first
    // letter: rare; first and last byte would both be quotes, which JSON is full of). Bit b of
    // candidates(at) is position at + b; it reads bytes at .. at + 16.
    const __m128i b0 = _mm_set1_epi8(needle[0]), b1 = _mm_set1_epi8(needle[1]);
    auto candidates = [&](size_t at) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + at));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + at + 1));
      return unsigned(
          _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, b0), _mm_cmpeq_epi8(b, b1))));
    };
    auto check = [&](size_t at, unsigned m) {
      for (; m != 0; m &= m - 1) {
        const size_t pos = at + static_cast<size_t>(__builtin_ctz(m));
        if (std::memcmp(p + pos + 2, needle.data() + 2, k - 2) == 0)
          return pos;
      }
      return std::string_view::npos;
    };
    const size_t end = s.size() - 17; // the last position a block can start at
    // Thirty-two positions a round, one branch for both halves; every position <= last.
    for (; i + 31 <= last && i + 16 <= end; i += 32) {
      const unsigned m0 = candidates(i), m1 = candidates(i + 16);
      if ((m0 | m1) != 0) {
        if (const size_t r = check(i, m0); r != std::string_view::npos)
          return r;
        if (const size_t r = check(i + 16, m1); r != std::string_view::npos)
          return r;
      }
    }
    for (; i + 15 <= last && i <= end; i += 16)
      if (const size_t r = check(i, candidates(i)); r != std::string_view::npos)
        return r;
    if (i > last)
      return std::string_view::npos;
    // The rest, i .. last (under 16 positions): one block that ends at the text's end, or starts
    // at i when that fits, with the positions outside i .. last masked off.
    const size_t at = std::min(i, end);
    unsigned m = candidates(at) & (0xFFFFu << (i - at));
    if (last - at < 15)
      m &= (2u << (last - at)) - 1;
    return check(at, m);
  }
#endif
  for (; i <= last; ++i)
    if (p[i] == needle[0] && p[i + 1] == needle[1] &&
        std::memcmp(p + i + 2, needle.data() + 2, k - 2) == 0)
      return i;
  return std::string_view::npos;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i)
      out.append(sep);
    out.append(parts[i]);
  }
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    // The run that needs no escape is copied at once (most text is one run).
    size_t j = i;
    while (j < s.size() && static_cast<unsigned char>(s[j]) >= 0x20 && s[j] != '"' && s[j] != '\\')
      ++j;
    out.append(s.data() + i, j - i);
    if (j == s.size())
      break;
    const unsigned char c = static_cast<unsigned char>(s[j]);
    i = j + 1;
    switch (c) {
    case '"':
      out.append("\\\"");
      break;
    case '\\':
      out.append("\\\\");
      break;
    case '\n':
      out.append("\\n");
      break;
    case '\r':
      out.append("\\r");
      break;
    case '\t':
      out.append("\\t");
      break;
    case '\b':
      out.append("\\b");
      break;
    case '\f':
      out.append("\\f");
      break;
    default: { // another control character
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out.append(buf);
    }
    }
  }
  out.push_back('"');
}

std::string json_string(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  append_json_string(out, s);
  return out;
}

std::string json_number(double v) {
  // std::to_chars: what "%lld" / "%.15g" print, without printf's locale and format parsing
  // (this runs for numbers in rewritten request bodies, on every request).
  char buf[32];
  std::to_chars_result r;
  if (v == static_cast<double>(static_cast<int64_t>(v)) && v > -9.2e18 && v < 9.2e18)
    r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
  else
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 15);
  return std::string(buf, r.ptr);
}

void append_fixed(std::string& out, double v, int digits) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, digits);
  out.append(buf, r.ec == std::errc() ? r.ptr : buf);
}

void append_general(std::string& out, double v, int digits) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, digits);
  out.append(buf, r.ec == std::errc() ? r.ptr : buf);
}

std::string_view utf8_prefix(std::string_view s, size_t max) {
  if (s.size() <= max)
    return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
    --n;
  return s.substr(0, n);
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  if (!query.empty() && query.front() == '?')
    query.remove_prefix(1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name)
      continue;
    const std::string_view raw =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    std::string out;
    out.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '+') {
        out += ' ';
      } else if (raw[i] == '%' && i + 2 < raw.size() && hex_digit(raw[i + 1]) >= 0 &&
                 hex_digit(raw[i + 2]) >= 0) {
        out += static_cast<char>(hex_digit(raw[i + 1]) * 16 + hex_digit(raw[i + 2]));
        i += 2;
      } else {
        out += raw[i];
      }
    }
    return out;
  }
  return std::nullopt;
}

} // namespace semrouter::core
