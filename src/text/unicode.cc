#include "text/unicode.h"

#include <cstdlib>

#include <utf8proc.h>

namespace semrouter::text {

OffsetString decode_utf8(std::string_view s, uint32_t base) {
  OffsetString out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back({c, base + uint32_t(i), base + uint32_t(i + 1)});
      ++i;
      continue;
    }
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                          utf8proc_ssize_t(s.size() - i), &cp);
    if (n <= 0) {
      out.push_back({0xFFFD, base + uint32_t(i), base + uint32_t(i + 1)});
      ++i;
      continue;
    }
    out.push_back({char32_t(cp), base + uint32_t(i), base + uint32_t(i + size_t(n))});
    i += size_t(n);
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(utf8proc_int32_t(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), size_t(n));
}

std::string encode_utf8(const OffsetString& s, size_t from, size_t to) {
  std::string out;
  if (to > s.size())
    to = s.size();
  out.reserve(to > from ? to - from : 0);
  for (size_t i = from; i < to; ++i)
    append_utf8(out, s[i].cp);
  return out;
}

bool is_whitespace(char32_t c) {
  switch (c) {
  case 0x09:
  case 0x0A:
  case 0x0B:
  case 0x0C:
  case 0x0D:
  case 0x20:
  case 0x85:
  case 0xA0:
  case 0x1680:
  case 0x2028:
  case 0x2029:
  case 0x202F:
  case 0x205F:
  case 0x3000:
    return true;
  default:
    return c >= 0x2000 && c <= 0x200A;
  }
}

static utf8proc_category_t category(char32_t c) {
  return utf8proc_category(utf8proc_int32_t(c));
}

bool is_letter(char32_t c) {
  if (c < 0x80)
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  auto k = category(c);
  return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

bool is_number(char32_t c) {
  if (c < 0x80)
    return c >= '0' && c <= '9';
  auto k = category(c);
  return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

bool is_punctuation(char32_t c) {
  auto k = category(c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

bool is_mark_nonspacing(char32_t c) {
  return category(c) == UTF8PROC_CATEGORY_MN;
}

bool is_other(char32_t c) {
  auto k = category(c);
  return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CS ||
         k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CN;
}

bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_bert_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
      (c >= 123 && c <= 126))
    return true;
  return c >= 0x80 && is_punctuation(c);
}

// Maps a run of characters through utf8proc with `options`; every output character gets the
// span [run.front().begin, run.back().end).
static void map_run(const OffsetString& in, size_t from, size_t to, int options,
                    OffsetString& out) {
  std::string utf8 = encode_utf8(in, from, to);
  utf8proc_uint8_t* dst = nullptr;
  utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()),
                   utf8proc_ssize_t(utf8.size()), &dst, utf8proc_option_t(options));
  if (n < 0) { // unassigned or invalid: keep the characters as they are
    out.insert(out.end(), in.begin() + long(from), in.begin() + long(to));
    return;
  }
  OffsetString mapped =
      decode_utf8(std::string_view(reinterpret_cast<const char*>(dst), size_t(n)));
  free(dst);
  for (const auto& c : mapped)
    out.push_back({c.cp, in[from].begin, in[to - 1].end});
}

static OffsetString normalize_clusters(const OffsetString& in, int options) {
  OffsetString out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    if (in[i].cp < 0x80 && (i + 1 == in.size() || in[i + 1].cp < 0x80)) {
      out.push_back(in[i]); // ASCII followed by ASCII: already normal, starts no composition
      ++i;
      continue;
    }
    size_t j = i + 1;
    utf8proc_int32_t state = 0;
    while (j < in.size() && !utf8proc_grapheme_break_stateful(utf8proc_int32_t(in[j - 1].cp),
                                                              utf8proc_int32_t(in[j].cp), &state))
      ++j;
    map_run(in, i, j, options, out);
    i = j;
  }
  return out;
}

OffsetString nfc(const OffsetString& in) {
  return normalize_clusters(in, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
}
OffsetString nfkc(const OffsetString& in) {
  return normalize_clusters(in, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
}
OffsetString nfd(const OffsetString& in) {
  return normalize_clusters(in, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
}
OffsetString nfkd(const OffsetString& in) {
  return normalize_clusters(in, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
}

void lowercase_into(const OffsetString& in, OffsetString& out) {
  out.clear();
  out.reserve(in.size());
  for (const auto& c : in) {
    if (c.cp < 0x80) {
      char32_t l = (c.cp >= 'A' && c.cp <= 'Z') ? c.cp + 32 : c.cp;
      out.push_back({l, c.begin, c.end});
    } else if (c.cp == 0x130) { // the one unconditional multi-character lowercase mapping
      out.push_back({U'i', c.begin, c.end});
      out.push_back({0x307, c.begin, c.end});
    } else {
      out.push_back({char32_t(utf8proc_tolower(utf8proc_int32_t(c.cp))), c.begin, c.end});
    }
  }
}

size_t byte_to_char_offset(std::string_view s, size_t byte_offset) {
  size_t n = 0;
  for (size_t i = 0; i < byte_offset && i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80)
      ++n;
  return n;
}

} // namespace semrouter::text
