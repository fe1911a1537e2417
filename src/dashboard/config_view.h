// The Config page's text work: a config's YAML with its secrets masked, and a line diff between
// two generations. Plain functions over strings (no YAML parser: the text is shown as written,
// comments and layout included).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace semrouter::dashboard {

// True for a key whose value is a secret: api_key, authorization, password, *_token, secret,
// sha256 (a key's hash), ... Keys that name where a secret comes from (*_env, *_file) are not.
bool is_secret_key(std::string_view key);

// `text` with the value of every secret key replaced by "********" (quotes kept), in block and
// flow (JSON) style alike, and the password of every URL with credentials
// (scheme://user:password@host). ${VAR} references are names, not secrets: they stay.
std::string mask_secrets(std::string_view text);

struct DiffLine {
  char op = ' '; // ' ' in both, '-' only in the old text, '+' only in the new
  std::string text;
};

// A line diff (longest common subsequence after trimming the common head and tail). When the
// changed middle is too large for the quadratic table, it is reported as removed then added.
std::vector<DiffLine> line_diff(std::string_view before, std::string_view after);

} // namespace semrouter::dashboard
