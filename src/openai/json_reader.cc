#include "openai/json_reader.h"

#include <simdjson.h>

#include "text/unicode.h"

namespace semrouter::openai {

bool json_detail::valid_utf8(std::string_view s) {
  return simdjson::validate_utf8(s.data(), s.size());
}

void append_json_text(std::string& out, std::string_view quoted) {
  const std::string_view s = quoted.substr(1, quoted.size() - 2);
  size_t i = 0;
  while (i < s.size()) {
    const size_t bs = s.find('\\', i);
    if (bs == std::string_view::npos) {
      out.append(s.substr(i));
      return;
    }
    out.append(s.substr(i, bs - i));
    const char e = s[bs + 1];
    i = bs + 2;
    switch (e) {
    case 'b':
      out.push_back('\b');
      break;
    case 'f':
      out.push_back('\f');
      break;
    case 'n':
      out.push_back('\n');
      break;
    case 'r':
      out.push_back('\r');
      break;
    case 't':
      out.push_back('\t');
      break;
    case 'u': {
      uint32_t cp = static_cast<uint32_t>(json_detail::hex4(s.data() + i, s.size() - i));
      i += 4;
      if (cp >= 0xD800 && cp <= 0xDBFF) { // validated: a low surrogate escape follows
        const uint32_t low =
            static_cast<uint32_t>(json_detail::hex4(s.data() + i + 2, s.size() - i - 2));
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        i += 6;
      }
      text::append_utf8(out, cp);
      break;
    }
    default:
      out.push_back(e);
      break; // '"', '\\', '/'
    }
  }
}

std::string json_text(std::string_view quoted) {
  const std::string_view inner = quoted.substr(1, quoted.size() - 2);
  if (inner.find('\\') == std::string_view::npos)
    return std::string(inner);
  std::string out;
  append_json_text(out, quoted);
  return out;
}

} // namespace semrouter::openai
