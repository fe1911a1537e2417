// SSE text with its line ends rewritten, for tests that feed a stream's parsers the format's
// other two line ends (CRLF and a lone CR) and expect the same result as with LF.
#pragma once

#include <string>
#include <string_view>

namespace semrouter::test_support {

// `text` with every "\n" replaced by `end` ("\r\n" or "\r").
inline std::string with_line_ends(std::string_view text, std::string_view end) {
  std::string out;
  out.reserve(text.size() * end.size());
  for (char c : text) {
    if (c == '\n')
      out += end;
    else
      out += c;
  }
  return out;
}

} // namespace semrouter::test_support
