#include "dashboard/config_view.h"

#include <algorithm>
#include <cstdint>

#include "core/strings.h"

namespace semrouter::dashboard {
namespace {

constexpr std::string_view kMask = "********";
// The quadratic diff's table is (n+1)×(m+1) 32-bit cells: at most 16 MB.
constexpr size_t kMaxDiffCells = size_t(4) << 20;

bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Masks `scheme://user:password@` in one line.
void mask_url_passwords(std::string& line) {
  size_t from = 0;
  for (;;) {
    const size_t scheme = line.find("://", from);
    if (scheme == std::string::npos)
      return;
    const size_t start = scheme + 3;
    size_t end = start;
    while (end < line.size() && line[end] != '/' && line[end] != '@' && line[end] != ' ' &&
           line[end] != '"' && line[end] != '\'' && line[end] != ',')
      ++end;
    from = start;
    if (end >= line.size() || line[end] != '@')
      continue;
    const size_t colon = line.find(':', start);
    if (colon == std::string::npos || colon >= end || colon + 1 == end)
      continue;
    line.replace(colon + 1, end - colon - 1, kMask);
    from = colon + 1 + kMask.size();
  }
}

// Masks the values of secret keys in one line: `key: value`, `"key": "value",`,
// `{name: x, api_key: y}`.
void mask_line(std::string& line) {
  size_t i = 0;
  while (i < line.size()) {
    // A key starts at the line's first non-blank (after a list's "- "), or after '{' or ','.
    size_t k = i;
    while (k < line.size() && (line[k] == ' ' || line[k] == '\t'))
      ++k;
    if (k < line.size() && line[k] == '-' && k + 1 < line.size() && line[k + 1] == ' ') {
      k += 2;
      while (k < line.size() && line[k] == ' ')
        ++k;
    }
    if (k < line.size() && line[k] == '#')
      return; // a comment
    char quote = 0;
    if (k < line.size() && (line[k] == '"' || line[k] == '\''))
      quote = line[k++];
    const size_t key_begin = k;
    while (k < line.size() && is_key_char(line[k]))
      ++k;
    const size_t key_end = k;
    if (quote && k < line.size() && line[k] == quote)
      ++k;
    while (k < line.size() && line[k] == ' ')
      ++k;
    const bool is_pair = key_end > key_begin && k < line.size() && line[k] == ':' &&
                         (k + 1 == line.size() || line[k + 1] == ' ' || line[k + 1] == '"' ||
                          line[k + 1] == '\'' || quote);
    size_t next = std::string::npos;
    if (is_pair) {
      size_t v = k + 1;
      while (v < line.size() && line[v] == ' ')
        ++v;
      size_t v_end = v;
      bool quoted = false;
      if (v < line.size() && (line[v] == '"' || line[v] == '\'')) {
        const char q = line[v];
        quoted = true;
        v_end = v + 1;
        while (v_end < line.size() && line[v_end] != q) {
          if (q == '"' && line[v_end] == '\\' && v_end + 1 < line.size())
            ++v_end;
          ++v_end;
        }
        v_end = std::min(v_end + 1, line.size()); // past the closing quote
      } else if (v < line.size() && (line[v] == '{' || line[v] == '[')) {
        v_end = v; // a nested flow mapping or sequence: its pairs are scanned next
      } else {
        while (v_end < line.size() && line[v_end] != ',' && line[v_end] != '}' &&
               line[v_end] != ']' && !(line[v_end] == '#' && line[v_end - 1] == ' ')) {
          if (line.compare(v_end, 2, "${") == 0) { // ${VAR} is one token, braces and all
            const size_t close = line.find('}', v_end);
            v_end = close == std::string::npos ? line.size() : close + 1;
            continue;
          }
          ++v_end;
        }
        while (v_end > v && line[v_end - 1] == ' ')
          --v_end;
      }
      const std::string_view value(line.data() + v, v_end - v);
      const std::string_view inner =
          quoted && value.size() >= 2 ? value.substr(1, value.size() - 2) : value;
      const bool env_ref = inner.starts_with("${") && inner.ends_with("}") &&
                           inner.find("${", 2) == std::string_view::npos;
      const bool nested = !quoted && (value.empty() || value[0] == '{' || value[0] == '[' ||
                                      value[0] == '|' || value[0] == '>');
      if (is_secret_key(std::string_view(line.data() + key_begin, key_end - key_begin)) &&
          !env_ref && !nested && !value.empty()) {
        std::string masked =
            quoted ? std::string(1, value[0]) + std::string(kMask) + std::string(1, value[0])
                   : std::string(kMask);
        line.replace(v, v_end - v, masked);
        v_end = v + masked.size();
      }
      next = v_end;
    }
    // On to the next flow-style pair: after the next ',' or '{' (outside quotes) from the end of
    // this pair's value, or from the first non-blank when this was no pair.
    size_t j = next == std::string::npos ? k : next;
    char in_quote = 0;
    while (j < line.size()) {
      const char c = line[j];
      if (in_quote) {
        if (c == '\\' && in_quote == '"')
          ++j;
        else if (c == in_quote)
          in_quote = 0;
      } else if (c == '"' || c == '\'') {
        in_quote = c;
      } else if (c == '#' && j > 0 && line[j - 1] == ' ') {
        return;
      } else if (c == ',' || c == '{') {
        break;
      }
      ++j;
    }
    if (j >= line.size())
      return;
    i = j + 1;
  }
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos)
      nl = text.size();
    std::string_view l = text.substr(start, nl - start);
    if (!l.empty() && l.back() == '\r')
      l.remove_suffix(1);
    lines.push_back(l);
    start = nl + 1;
  }
  return lines;
}

} // namespace

bool is_secret_key(std::string_view key) {
  std::string k = core::ascii_lower(key);
  std::replace(k.begin(), k.end(), '-', '_');
  if (ends_with(k, "_env") || ends_with(k, "_file") || ends_with(k, "_path"))
    return false;
  static constexpr std::string_view kExact[] = {
      "api_key",     "apikey",      "x_api_key", "authorization", "proxy_authorization",
      "cookie",      "set_cookie",  "sha256",    "token",         "bearer",
      "private_key", "credentials", "key_hash"};
  for (std::string_view e : kExact)
    if (k == e)
      return true;
  return k.find("password") != std::string::npos || k.find("passwd") != std::string::npos ||
         k.find("secret") != std::string::npos || ends_with(k, "_token") ||
         ends_with(k, "_api_key") || ends_with(k, "_apikey");
}

std::string mask_secrets(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 64);
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    const bool last = nl == std::string_view::npos;
    std::string line(text.substr(start, last ? std::string_view::npos : nl - start));
    mask_line(line);
    mask_url_passwords(line);
    out += line;
    if (last)
      break;
    out += '\n';
    start = nl + 1;
  }
  return out;
}

std::vector<DiffLine> line_diff(std::string_view before, std::string_view after) {
  const std::vector<std::string_view> a = split_lines(before), b = split_lines(after);
  size_t head = 0;
  while (head < a.size() && head < b.size() && a[head] == b[head])
    ++head;
  size_t tail = 0;
  while (tail < a.size() - head && tail < b.size() - head &&
         a[a.size() - 1 - tail] == b[b.size() - 1 - tail])
    ++tail;
  std::vector<DiffLine> out;
  for (size_t i = 0; i < head; ++i)
    out.push_back({' ', std::string(a[i])});
  const size_t n = a.size() - head - tail, m = b.size() - head - tail;
  auto A = [&](size_t i) { return a[head + i]; };
  auto B = [&](size_t j) { return b[head + j]; };
  if ((n + 1) * (m + 1) > kMaxDiffCells) {
    for (size_t i = 0; i < n; ++i)
      out.push_back({'-', std::string(A(i))});
    for (size_t j = 0; j < m; ++j)
      out.push_back({'+', std::string(B(j))});
  } else {
    // lcs[i][j]: the longest common subsequence of A[i..] and B[j..].
    std::vector<uint32_t> lcs((n + 1) * (m + 1), 0);
    auto at = [&](size_t i, size_t j) -> uint32_t& { return lcs[i * (m + 1) + j]; };
    for (size_t i = n; i-- > 0;)
      for (size_t j = m; j-- > 0;)
        at(i, j) = A(i) == B(j) ? at(i + 1, j + 1) + 1 : std::max(at(i + 1, j), at(i, j + 1));
    size_t i = 0, j = 0;
    while (i < n && j < m) {
      if (A(i) == B(j)) {
        out.push_back({' ', std::string(A(i))});
        ++i, ++j;
      } else if (at(i + 1, j) >= at(i, j + 1)) {
        out.push_back({'-', std::string(A(i++))});
      } else {
        out.push_back({'+', std::string(B(j++))});
      }
    }
    for (; i < n; ++i)
      out.push_back({'-', std::string(A(i))});
    for (; j < m; ++j)
      out.push_back({'+', std::string(B(j))});
  }
  for (size_t i = a.size() - tail; i < a.size(); ++i)
    out.push_back({' ', std::string(a[i])});
  return out;
}

} // namespace semrouter::dashboard
