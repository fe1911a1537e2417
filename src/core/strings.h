// Small string helpers shared by every module.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace semrouter::core {

// ASCII lower-casing; bytes >= 0x80 are left as they are.
std::string ascii_lower(std::string_view s);
// ASCII case-insensitive equality. Inline: header names are compared on every message, and
// most comparisons end at the size check.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z')
      x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z')
      y = static_cast<char>(y - 'A' + 'a');
    if (x != y)
      return false;
  }
  return true;
}
std::string_view trim(std::string_view s);
// A decimal number in [0, 2^32) with optional surrounding whitespace (header values such as
// retry-after); false on anything else.
bool parse_u32(std::string_view s, uint32_t& out);
bool starts_with(std::string_view s, std::string_view prefix);
// Where `needle` first occurs in `s`, or npos. Sixteen positions at a time: those where the
// needle's first two bytes are get compared whole. For short needles in text of a few
// hundred bytes (a key in a JSON chunk), several times cheaper than glibc's memmem and
// string_view::find (which calls memchr once per occurrence of the first byte).
size_t find_short(std::string_view s, std::string_view needle);
std::vector<std::string> split(std::string_view s, char sep);
// Joins with a separator: join({"a","b"}, ", ") == "a, b".
std::string join(const std::vector<std::string>& parts, std::string_view sep);
// Appends `s` to `out` as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view s);
std::string json_string(std::string_view s);
// A JSON number: integers without a fraction ("1024"), others with 15 significant digits.
std::string json_number(double v);
// Appends v as printf's "%.<digits>f" (fixed) or "%.<digits>g" (general) would, without printf.
void append_fixed(std::string& out, double v, int digits);
void append_general(std::string& out, double v, int digits);

// The value of a hex digit (0-9, a-f, A-F), or -1.
inline int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// At most `max` bytes of `s`, cut at the start of a UTF-8 character.
std::string_view utf8_prefix(std::string_view s, size_t max);

} // namespace semrouter::core
