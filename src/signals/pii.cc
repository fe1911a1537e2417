#include "signals/pii.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <numeric>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace semrouter::signals {
namespace {

constexpr std::string_view kEmail = "email";
constexpr std::string_view kPhone = "phone";
constexpr std::string_view kCreditCard = "credit_card";
constexpr std::string_view kUsSsn = "us_ssn";
constexpr std::string_view kIpAddress = "ip_address";
constexpr std::string_view kIban = "iban";

constexpr size_t kCardMinDigits = 13;
constexpr size_t kCardMaxDigits = 19;
constexpr size_t kMaxCardGroups = 5; // 4-4-4-4-3 is the longest grouping
constexpr size_t kPhoneMinDigits = 8;
constexpr size_t kPhoneMaxDigits = 15;
constexpr size_t kPhoneMaxParenDigits = 4; // the "(0)" in "+44 (0)20 ..."
constexpr size_t kIbanMinLength = 15;
constexpr size_t kIbanMaxLength = 34;
constexpr size_t kMaxIbanGroups = 8; // after the first four characters
constexpr size_t kMaxDomainLabel = 63;
constexpr size_t kSsnLength = 11; // "AAA-GG-SSSS"
constexpr size_t kSsnDigits = 9;
constexpr size_t kIpv4MinDigits = 4;  // "1.2.3.4"
constexpr size_t kMinEntityBytes = 4; // "1::2" (IPv6); every other entity is longer
constexpr size_t kIpv6Groups = 8;
constexpr size_t kIpv6MaxGroupLength = 4;

constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
constexpr bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}
constexpr bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
}
constexpr bool is_alpha(char c) {
  return is_upper(c) || is_lower(c);
}
constexpr bool is_alnum(char c) {
  return is_digit(c) || is_alpha(c);
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

size_t digit_run_end(std::string_view t, size_t i) {
  while (i < t.size() && is_digit(t[i]))
    ++i;
  return i;
}

// A number may start at `i` when the byte before is not a letter or digit, and not a '.' or '-'
// right after a digit (then `i` is inside "1.5" or "12-34").
bool number_starts_at(std::string_view t, size_t i) {
  if (i == 0)
    return true;
  char p = t[i - 1];
  if (is_alnum(p))
    return false;
  return !((p == '.' || p == '-') && i >= 2 && is_digit(t[i - 2]));
}

// The same for a number ending just before `j`.
bool number_ends_at(std::string_view t, size_t j) {
  if (j >= t.size())
    return true;
  char c = t[j];
  if (is_alnum(c))
    return false;
  return !((c == '.' || c == '-') && j + 1 < t.size() && is_digit(t[j + 1]));
}

void add(std::vector<PiiEntity>& out, std::string_view type, size_t begin, size_t end,
         double score = 1.0) {
  PiiEntity e;
  e.type = std::string(type);
  e.begin = begin;
  e.end = end;
  e.score = score;
  out.push_back(std::move(e));
}

// ---- e-mail ----

bool is_local_char(char c) {
  return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

// The address around the '@' at `at`, starting no earlier than `floor`. Returns its end (0 if
// none) and sets `begin`.
size_t match_email(std::string_view t, size_t at, size_t floor, size_t& begin) {
  size_t n = t.size();
  size_t b = at;
  while (b > floor && is_local_char(t[b - 1]))
    --b;
  // A local part has no "..": keep what follows the last one ("wait..bob@x.org").
  for (size_t k = at; k >= b + 2; --k) {
    if (t[k - 1] == '.' && t[k - 2] == '.') {
      b = k;
      break;
    }
  }
  // Leading punctuation belongs to the prose ("-bob@x.org", "...bob@x.org").
  while (b < at && !is_alnum(t[b]) && t[b] != '_')
    ++b;
  if (b == at || t[at - 1] == '.')
    return 0;

  // Domain: labels of letters, digits and inner hyphens joined by single dots; the last label
  // (the TLD) is two or more letters. A trailing '.' or '-' is not part of it.
  size_t q = at + 1;
  size_t end = 0;
  size_t labels = 0;
  bool tld_ok = false;
  while (q < n && is_alnum(t[q])) {
    size_t s = q;
    while (q < n && (is_alnum(t[q]) || t[q] == '-'))
      ++q;
    size_t e = q;
    while (t[e - 1] == '-')
      --e;
    if (e - s > kMaxDomainLabel)
      return 0;
    ++labels;
    tld_ok = e - s >= 2 && std::all_of(t.begin() + s, t.begin() + e, is_alpha);
    end = e;
    if (e != q)
      break;
    if (q + 1 < n && t[q] == '.' && is_alnum(t[q + 1])) {
      ++q;
      continue;
    }
    break;
  }
  if (labels < 2 || !tld_ok)
    return 0;
  begin = b;
  return end;
}

void scan_email(std::string_view t, std::vector<PiiEntity>& out) {
  size_t floor = 0; // a hit never reaches back into the previous one
  size_t at = t.find('@');
  while (at != std::string_view::npos) {
    size_t begin = 0;
    size_t end = match_email(t, at, floor, begin);
    if (end != 0) {
      add(out, kEmail, begin, end);
      floor = end;
      at = t.find('@', end);
    } else {
      at = t.find('@', at + 1);
    }
  }
}

// ---- phone ----

bool is_phone_sep(char c) {
  return c == ' ' || c == '-' || c == '.';
}

// Reads exactly `count` digits at `q` and advances past them.
bool read_digits(std::string_view t, size_t& q, size_t count) {
  if (q + count > t.size())
    return false;
  for (size_t k = 0; k < count; ++k) {
    if (!is_digit(t[q + k]))
      return false;
  }
  q += count;
  return true;
}

// North American number at `p`: an optional "+1" or "1" prefix, then "(555) 123-4567" or
// "555-123-4567" (both separators the same: '-', '.' or ' '). Returns its end, or 0.
size_t match_nanp(std::string_view t, size_t p) {
  size_t n = t.size();
  size_t q = p;
  if (t[q] == '+') {
    if (q + 1 >= n || t[q + 1] != '1')
      return 0;
    q += 2;
    if (q < n && is_phone_sep(t[q]))
      ++q;
  } else if (t[q] == '1' && q + 2 < n && is_phone_sep(t[q + 1]) &&
             (is_digit(t[q + 2]) || t[q + 2] == '(')) {
    q += 2;
  }
  if (q < n && t[q] == '(') {
    ++q;
    if (!read_digits(t, q, 3) || q >= n || t[q] != ')')
      return 0;
    ++q;
    if (q < n && t[q] == ' ')
      ++q;
    if (!read_digits(t, q, 3) || q >= n || !is_phone_sep(t[q]))
      return 0;
    ++q;
  } else {
    if (!read_digits(t, q, 3) || q >= n || !is_phone_sep(t[q]))
      return 0;
    char sep = t[q++];
    if (!read_digits(t, q, 3) || q >= n || t[q] != sep)
      return 0;
    ++q;
  }
  if (!read_digits(t, q, 4) || !number_ends_at(t, q))
    return 0;
  return q;
}

// One group of an international number at `q`: a digit run, or (when `paren_allowed`) one to
// four digits in parentheses. Returns its end (0 if there is none) and adds its digits.
size_t read_phone_group(std::string_view t, size_t q, bool paren_allowed, size_t& digits,
                        bool& paren) {
  size_t n = t.size();
  paren = false;
  if (q < n && is_digit(t[q])) {
    size_t e = digit_run_end(t, q);
    digits += e - q;
    return e;
  }
  if (!paren_allowed || q >= n || t[q] != '(')
    return 0;
  size_t e = digit_run_end(t, q + 1);
  size_t len = e - q - 1;
  if (len == 0 || len > kPhoneMaxParenDigits || e >= n || t[e] != ')')
    return 0;
  digits += len;
  paren = true;
  return e + 1;
}

// E.164-like number at the '+' at `p`: "+44 20 7946 0958", "+49-30-1234567", "+15551234567";
// groups joined by at most one '-', '.' or ' ', 8 to 15 digits in all. Returns its end, or 0.
size_t match_international(std::string_view t, size_t p) {
  size_t n = t.size();
  if (p + 1 >= n || !is_digit(t[p + 1]) || t[p + 1] == '0')
    return 0;
  size_t digits = 0;
  bool paren = false;
  bool paren_seen = false;
  size_t end = read_phone_group(t, p + 1, false, digits, paren);
  while (true) {
    size_t g = end;
    if (g < n && is_phone_sep(t[g]))
      ++g;
    size_t e = read_phone_group(t, g, !paren_seen, digits, paren);
    if (e == 0)
      break;
    paren_seen = paren_seen || paren;
    end = e;
    if (digits > kPhoneMaxDigits)
      return 0;
  }
  if (digits < kPhoneMinDigits || !number_ends_at(t, end))
    return 0;
  return end;
}

void scan_phone(std::string_view t, std::vector<PiiEntity>& out) {
  size_t n = t.size();
  size_t i = 0;
  while (i < n) {
    char c = t[i];
    if (c == '+' || c == '(') {
      if (i == 0 || !is_alnum(t[i - 1])) {
        size_t end = match_nanp(t, i);
        if (end == 0 && c == '+')
          end = match_international(t, i);
        if (end != 0) {
          add(out, kPhone, i, end, kPhoneScore);
          i = end;
          continue;
        }
      }
      ++i;
    } else if (is_digit(c)) {
      if (number_starts_at(t, i)) {
        size_t end = match_nanp(t, i);
        if (end != 0) {
          add(out, kPhone, i, end, kPhoneScore);
          i = end;
          continue;
        }
      }
      i = digit_run_end(t, i);
    } else {
      ++i;
    }
  }
}

// Calls `step(i)` at each digit where no earlier match covers it; `step` returns where the scan
// resumes (past i). The card, SSN and IPv4 scanners share this walk.
template <typename Step> void for_each_digit(std::string_view t, Step step) {
  for (size_t i = 0; i < t.size();)
    i = is_digit(t[i]) ? step(i) : i + 1;
}

// ---- payment card ----

// 13-19 digits in one run, or grouped 4-4-4-4(-1..4) or Amex/Diners 4-6-5 / 4-6-4.
bool card_layout_ok(const std::array<size_t, kMaxCardGroups>& len, size_t groups) {
  if (groups == 1)
    return true;
  if (groups == 3 && len[0] == 4 && len[1] == 6 && (len[2] == 5 || len[2] == 4))
    return true;
  for (size_t k = 0; k + 1 < groups; ++k) {
    if (len[k] != 4)
      return false;
  }
  return len[groups - 1] >= 1 && len[groups - 1] <= 4;
}

void scan_credit_card(std::string_view t, std::vector<PiiEntity>& out) {
  const size_t n = t.size();
  for_each_digit(t, [&](size_t i) {
    // Digit groups joined by one separator, the same (' ' or '-') throughout.
    std::array<size_t, kMaxCardGroups> group_len{};
    std::array<size_t, kMaxCardGroups> group_end{};
    size_t groups = 0;
    char sep = 0;
    size_t q = i;
    while (true) {
      size_t s = q;
      q = digit_run_end(t, q);
      if (groups < kMaxCardGroups) {
        group_len[groups] = q - s;
        group_end[groups] = q;
      }
      ++groups;
      if (q + 1 < n && (t[q] == ' ' || t[q] == '-') && (sep == 0 || t[q] == sep) &&
          is_digit(t[q + 1])) {
        sep = t[q++];
        continue;
      }
      break;
    }
    // The longest prefix of whole groups that is a card; a card number never starts with 0.
    if (number_starts_at(t, i) && t[i] != '0') {
      size_t usable = std::min(groups, kMaxCardGroups);
      for (size_t g = usable; g > 0; --g) {
        size_t digits = std::accumulate(group_len.begin(), group_len.begin() + g, size_t{0});
        if (digits < kCardMinDigits)
          break;
        size_t end = group_end[g - 1];
        if (digits > kCardMaxDigits || !card_layout_ok(group_len, g) || !number_ends_at(t, end) ||
            !luhn_valid(t.substr(i, end - i)))
          continue;
        add(out, kCreditCard, i, end);
        break;
      }
    }
    return q;
  });
}

// ---- US SSN ----

size_t match_ssn(std::string_view t, size_t i) {
  size_t n = t.size();
  if (i + kSsnLength > n || !number_starts_at(t, i))
    return 0;
  char sep = t[i + 3];
  if (sep != '-' && sep != ' ')
    return 0;
  size_t end = i + kSsnLength;
  if (!us_ssn_valid(t.substr(i, kSsnLength)) || !number_ends_at(t, end))
    return 0;
  // With spaces it must not be three groups of a longer spaced number.
  if (sep == ' ' && ((i >= 2 && t[i - 1] == ' ' && is_digit(t[i - 2])) ||
                     (end + 1 < n && t[end] == ' ' && is_digit(t[end + 1]))))
    return 0;
  return end;
}

void scan_us_ssn(std::string_view t, std::vector<PiiEntity>& out) {
  for_each_digit(t, [&](size_t i) {
    size_t end = match_ssn(t, i);
    if (end == 0)
      return digit_run_end(t, i);
    add(out, kUsSsn, i, end);
    return end;
  });
}

// ---- IP addresses ----

// Reads the whole run of digit groups joined by single dots at `i` into `run_end`. Returns the
// end when the run is a dotted quad (four groups of 0-255, at most three digits) ending at a
// number boundary, else 0.
size_t match_ipv4(std::string_view t, size_t i, size_t& run_end) {
  size_t n = t.size();
  size_t q = i;
  size_t parts = 0;
  bool ok = true;
  while (true) {
    size_t s = q;
    q = digit_run_end(t, q);
    if (q - s > 3) {
      ok = false;
    } else {
      int value = 0;
      for (size_t k = s; k < q; ++k)
        value = value * 10 + (t[k] - '0');
      ok = ok && value <= 255;
    }
    ++parts;
    if (q + 1 < n && t[q] == '.' && is_digit(t[q + 1])) {
      ++q;
      continue;
    }
    break;
  }
  run_end = q;
  if (!ok || parts != 4 || !number_ends_at(t, q))
    return 0;
  return q;
}

void scan_ipv4(std::string_view t, std::vector<PiiEntity>& out) {
  for_each_digit(t, [&](size_t i) {
    size_t run_end = i;
    size_t end = match_ipv4(t, i, run_end);
    if (end != 0 && number_starts_at(t, i))
      add(out, kIpAddress, i, end);
    return run_end;
  });
}

bool is_ipv6_char(char c) {
  return is_hex(c) || c == ':';
}

// Checks the hex groups of an IPv6 address (`s` holds only hex digits and colons). With
// `ipv4_tail`, `s` is what precedes an embedded dotted quad and ends with its ':'.
bool ipv6_groups_ok(std::string_view s, bool ipv4_tail) {
  size_t n = s.size();
  size_t k = 0;
  size_t groups = ipv4_tail ? 2 : 0;
  bool compressed = false;
  if (n >= 2 && s[0] == ':' && s[1] == ':') {
    compressed = true;
    k = 2;
  } else if (n == 0 || s[0] == ':') {
    return false;
  }
  while (k < n) {
    size_t start = k;
    while (k < n && is_hex(s[k]))
      ++k;
    if (k == start || k - start > kIpv6MaxGroupLength)
      return false;
    ++groups;
    if (k == n)
      break;
    ++k; // ':'
    if (k == n) {
      if (!ipv4_tail)
        return false;
      break;
    }
    if (s[k] == ':') {
      if (compressed)
        return false;
      compressed = true;
      ++k;
    }
  }
  // Two groups at least, so "::1" or a slice like "[::2]" is not reported.
  if (groups < 2)
    return false;
  return compressed ? groups < kIpv6Groups : groups == kIpv6Groups;
}

// An IPv6 address on the run [i, j) of hex digits and colons. Returns its end, or 0.
size_t match_ipv6(std::string_view t, size_t i, size_t j) {
  size_t n = t.size();
  // One trailing ':' is punctuation ("at fe80::1: down").
  if (j - i >= 2 && t[j - 1] == ':' && t[j - 2] != ':')
    --j;
  if (std::count(t.begin() + i, t.begin() + j, ':') < 2)
    return 0;
  size_t end = j;
  size_t groups_end = j;
  bool ipv4_tail = false;
  if (j + 1 < n && t[j] == '.' && is_digit(t[j + 1])) {
    size_t v4 = t.rfind(':', j - 1) + 1; // the run holds at least two colons
    if (v4 == j || !std::all_of(t.begin() + v4, t.begin() + j, is_digit))
      return 0;
    size_t run_end = 0;
    end = match_ipv4(t, v4, run_end);
    if (end == 0)
      return 0;
    ipv4_tail = true;
    groups_end = v4;
  }
  if (end < n && (is_alnum(t[end]) || t[end] == '_'))
    return 0;
  if (end + 1 < n && t[end] == '.' && is_alnum(t[end + 1]))
    return 0;
  if (!ipv6_groups_ok(t.substr(i, groups_end - i), ipv4_tail))
    return 0;
  // Real addresses have a decimal digit somewhere; C++ like "Face::Bad" has none.
  if (!std::any_of(t.begin() + i, t.begin() + end, is_digit))
    return 0;
  return end;
}

void scan_ipv6(std::string_view t, std::vector<PiiEntity>& out) {
  size_t n = t.size();
  size_t i = 0;
  while (i < n) {
    char c = t[i];
    if (!is_ipv6_char(c)) {
      ++i;
      continue;
    }
    if (i > 0 && (is_alnum(t[i - 1]) || t[i - 1] == '_' || t[i - 1] == '.')) {
      // Inside a word or number: skip the word, but not a ':' ("Address:fe80::1").
      if (c == ':') {
        ++i;
      } else {
        while (i < n && (is_alnum(t[i]) || t[i] == '_'))
          ++i;
      }
      continue;
    }
    size_t j = i;
    while (j < n && is_ipv6_char(t[j]))
      ++j;
    size_t end = match_ipv6(t, i, j);
    if (end != 0) {
      add(out, kIpAddress, i, end);
      i = end;
    } else {
      i = j;
    }
  }
}

// ---- IBAN ----

struct IbanCountry {
  char code[3];
  uint8_t length;
};

// IBAN lengths from the SWIFT IBAN registry, for the countries most likely to appear.
constexpr IbanCountry kIbanLengths[] = {
    {"AD", 24}, {"AE", 23}, {"AT", 20}, {"BE", 16}, {"BG", 22}, {"BR", 29}, {"CH", 21},
    {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DK", 18}, {"EE", 20}, {"ES", 24}, {"FI", 18},
    {"FR", 27}, {"GB", 22}, {"GR", 27}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23},
    {"IS", 26}, {"IT", 27}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27},
    {"MT", 31}, {"NL", 18}, {"NO", 15}, {"PL", 28}, {"PT", 25}, {"RO", 24}, {"SA", 24},
    {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"TR", 26}, {"UA", 29},
};

// 0 when the country is not in the table.
size_t iban_length_for(char a, char b) {
  for (const IbanCountry& c : kIbanLengths) {
    if (c.code[0] == a && c.code[1] == b)
      return c.length;
  }
  return 0;
}

bool is_iban_char(char c) {
  return is_upper(c) || is_digit(c);
}

// An IBAN at `i`: compact ("DE89370400440532013000") or in groups of four joined by single
// spaces, the last group one to four long. Returns its end, or 0.
size_t match_iban(std::string_view t, size_t i) {
  size_t n = t.size();
  if (i + 4 > n || !is_upper(t[i + 1]) || !is_digit(t[i + 2]) || !is_digit(t[i + 3]))
    return 0;
  size_t j = i + 4;
  while (j < n && is_iban_char(t[j]))
    ++j;
  if (j < n && is_alnum(t[j]))
    return 0;
  if (j > i + 4) {
    size_t len = j - i;
    if (len >= kIbanMinLength && len <= kIbanMaxLength && iban_valid(t.substr(i, len)))
      return j;
    return 0;
  }
  std::array<size_t, kMaxIbanGroups> group_end{};
  std::array<size_t, kMaxIbanGroups> length{}; // IBAN characters up to that group's end
  size_t groups = 0;
  size_t total = 4;
  size_t q = j;
  while (groups < kMaxIbanGroups && q + 1 < n && t[q] == ' ') {
    size_t g = q + 1;
    size_t e = g;
    while (e < n && e - g <= 4 && is_iban_char(t[e]))
      ++e;
    size_t len = e - g;
    if (len == 0 || len > 4 || (e < n && is_alnum(t[e])))
      break;
    total += len;
    group_end[groups] = e;
    length[groups] = total;
    ++groups;
    q = e;
    if (len < 4)
      break;
  }
  // Longest first, so a following word of four capitals or digits is dropped if need be.
  for (size_t g = groups; g > 0; --g) {
    if (length[g - 1] < kIbanMinLength)
      break;
    if (length[g - 1] <= kIbanMaxLength && iban_valid(t.substr(i, group_end[g - 1] - i)))
      return group_end[g - 1];
  }
  return 0;
}

void scan_iban(std::string_view t, std::vector<PiiEntity>& out) {
  size_t n = t.size();
  size_t i = 0;
  while (i < n) {
    if (!is_upper(t[i])) {
      ++i;
      continue;
    }
    if (i == 0 || !is_alnum(t[i - 1])) {
      size_t end = match_iban(t, i);
      if (end != 0) {
        add(out, kIban, i, end);
        i = end;
        continue;
      }
    }
    while (i < n && is_alnum(t[i]))
      ++i;
  }
}

// ---- overlaps ----

// NaN would break the ordering; it ranks below every real score.
double rank_of(double score) {
  return std::isnan(score) ? -std::numeric_limits<double>::infinity() : score;
}

// Keeps, among overlapping spans, the one with the higher score, then the longer, then the
// earlier; drops empty spans. Sorted by begin.
std::vector<PiiEntity> resolve_overlaps(std::vector<PiiEntity> all) {
  std::erase_if(all, [](const PiiEntity& e) { return e.begin >= e.end; });
  if (all.size() <= 1)
    return all;
  std::vector<size_t> order(all.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const PiiEntity& a = all[x];
    const PiiEntity& b = all[y];
    if (rank_of(a.score) != rank_of(b.score))
      return rank_of(a.score) > rank_of(b.score);
    if (a.end - a.begin != b.end - b.begin)
      return a.end - a.begin > b.end - b.begin;
    return a.begin < b.begin;
  });
  std::vector<std::pair<size_t, size_t>> taken; // disjoint spans, sorted by begin
  std::vector<PiiEntity> kept;
  for (size_t idx : order) {
    PiiEntity& e = all[idx];
    auto it =
        std::lower_bound(taken.begin(), taken.end(), e.begin,
                         [](const std::pair<size_t, size_t>& s, size_t b) { return s.first < b; });
    if (it != taken.end() && it->first < e.end)
      continue;
    if (it != taken.begin() && std::prev(it)->second > e.begin)
      continue;
    taken.insert(it, {e.begin, e.end});
    kept.push_back(std::move(e));
  }
  std::sort(kept.begin(), kept.end(),
            [](const PiiEntity& a, const PiiEntity& b) { return a.begin < b.begin; });
  return kept;
}

// What a text holds that some recogniser needs: every entity has 8 digits or more for a phone
// (NANP has 10, international numbers 8 or more), 13 for a card, 9 for an SSN, 4 digits and 3
// dots for an IPv4 address, two ':' for IPv6, an upper-case letter and kIbanMinLength bytes
// for an IBAN, an '@' for an e-mail address.
struct Holds {
  size_t digits = 0, colons = 0, upper = 0, dots = 0, at = 0, bytes = 0;
  explicit Holds(std::string_view t) : bytes(t.size()) {
    for (char c : t) {
      digits += is_digit(c);
      colons += c == ':';
      upper += is_upper(c);
      dots += c == '.';
      at += c == '@';
    }
  }
  bool email() const { return at > 0; }
  bool phone() const { return digits >= kPhoneMinDigits; }
  bool card() const { return digits >= kCardMinDigits; }
  bool ssn() const { return digits >= kSsnDigits; }
  bool ipv4() const { return digits >= kIpv4MinDigits && dots >= 3; }
  bool ipv6() const { return colons >= 2; }
  bool iban() const { return upper > 0 && bytes >= kIbanMinLength; }
  // Most segments of digit-heavy text (a table, a log) are short numbers none of them reads.
  // (A card's or an SSN's digits are enough for a phone.)
  bool any() const { return email() || phone() || ipv4() || ipv6() || iban(); }
  static_assert(kPhoneMinDigits <= kCardMinDigits && kPhoneMinDigits <= kSsnDigits);
};

// Every recogniser over `t`, each in turn; hits are shifted by `offset`. With `holds` (what `t`
// holds), only the recognisers whose entities `t` could hold.
void scan_all(std::string_view t, size_t offset, std::vector<PiiEntity>& out, const Holds* holds) {
  const size_t first = out.size();
  if (!holds || holds->email())
    scan_email(t, out);
  if (!holds || holds->phone())
    scan_phone(t, out);
  if (!holds || holds->card())
    scan_credit_card(t, out);
  if (!holds || holds->ssn())
    scan_us_ssn(t, out);
  if (!holds || holds->ipv4())
    scan_ipv4(t, out);
  if (!holds || holds->ipv6())
    scan_ipv6(t, out);
  if (!holds || holds->iban())
    scan_iban(t, out);
  for (size_t k = first; k < out.size(); ++k)
    out[k].begin += offset, out[k].end += offset;
}

// ---- pre-filter ----
//
// find_pii runs the recognisers only on the segments of the text that can hold an entity. Why
// that finds exactly what scanning the whole text finds:
//  - Every entity is made of letters, digits and ". - _ % + @ : ( )" and spaces; a space only
//    ever sits between [0-9A-Z)] and [0-9A-Z(] (digit groups, "(555) 123", "+1 (", IBAN
//    groups). Any other byte (non-ASCII, newline, ',', '?', ...) and any other space is a cut:
//    a segment is a maximal run without cuts.
//  - What the recognisers check around a candidate reads a cut as they read the start or end of
//    the text: a cut is neither a letter, a digit, '.', '-', '_' nor a separator they would step
//    over (a space they would step over has an entity character on both sides, so is no cut),
//    and no scan skips past a cut. So each recogniser finds in a segment what it finds there in
//    the whole text; a tie between two hits resolves the same, as it only happens within one
//    segment, where the recognisers run in the same order.
//  - Every entity holds a digit or an '@' (an IPv6 address without a decimal digit is not
//    reported), so a segment without either is skipped.

constexpr std::array<bool, 256> kSegmentBytes = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[size_t(c)] = is_alnum(char(c)) || c == '.' || c == '-' || c == '_' || c == '%' || c == '+' ||
                   c == '@' || c == ':' || c == '(' || c == ')';
  return t;
}();

bool is_segment_byte(char c) {
  return kSegmentBytes[static_cast<unsigned char>(c)];
}

// Is text[i] inside a segment (not a cut)?
bool in_segment(std::string_view t, size_t i) {
  const char c = t[i];
  if (c != ' ')
    return is_segment_byte(c);
  if (i == 0 || i + 1 >= t.size())
    return false;
  const char l = t[i - 1], r = t[i + 1];
  return (is_digit(l) || is_upper(l) || l == ')') && (is_digit(r) || is_upper(r) || r == '(');
}

// The first digit or '@' at or after `from`, or t.size(). Sixteen bytes at a time where SSE2 is
// there: bytes 0x30..0x40 ('0'..'9', ":;<=>?@") are candidates, checked one by one.
size_t next_trigger(std::string_view t, size_t from) {
  const size_t n = t.size();
  size_t i = from;
  auto trigger = [](char c) { return is_digit(c) || c == '@'; };
#if defined(__SSE2__)
  const __m128i lo = _mm_set1_epi8(0x2F), hi = _mm_set1_epi8(0x41);
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.data() + i));
    // Signed compares: bytes >= 0x80 are negative, so never in range.
    const __m128i in = _mm_and_si128(_mm_cmpgt_epi8(v, lo), _mm_cmplt_epi8(v, hi));
    unsigned mask = unsigned(_mm_movemask_epi8(in));
    while (mask != 0) {
      const size_t k = i + size_t(__builtin_ctz(mask));
      if (trigger(t[k]))
        return k;
      mask &= mask - 1;
    }
  }
#endif
  for (; i < n; ++i)
    if (trigger(t[i]))
      return i;
  return n;
}

} // namespace

const std::vector<std::string>& pattern_pii_types() {
  static const std::vector<std::string> types = {std::string(kEmail),      std::string(kPhone),
                                                 std::string(kCreditCard), std::string(kUsSsn),
                                                 std::string(kIpAddress),  std::string(kIban)};
  return types;
}

std::vector<PiiEntity> find_pii_unfiltered(std::string_view text) {
  std::vector<PiiEntity> hits;
  scan_all(text, 0, hits, nullptr);
  return resolve_overlaps(std::move(hits));
}

std::vector<PiiEntity> find_pii(std::string_view text) {
  std::vector<PiiEntity> hits;
  const size_t n = text.size();
  size_t from = 0;
  while (from < n) {
    const size_t trigger = next_trigger(text, from);
    if (trigger == n)
      break;
    // The segment around it; the next trigger is looked for past it.
    size_t begin = trigger, end = trigger + 1;
    while (begin > 0 && in_segment(text, begin - 1))
      --begin;
    while (end < n && in_segment(text, end))
      ++end;
    from = end;
    if (end - begin < kMinEntityBytes)
      continue;
    const std::string_view segment = text.substr(begin, end - begin);
    const Holds holds(segment);
    if (holds.any())
      scan_all(segment, begin, hits, &holds);
  }
  return resolve_overlaps(std::move(hits));
}

std::vector<PiiEntity> merge_pii(std::vector<PiiEntity> a, std::vector<PiiEntity> b) {
  a.insert(a.end(), std::make_move_iterator(b.begin()), std::make_move_iterator(b.end()));
  return resolve_overlaps(std::move(a));
}

std::string redact_pii(std::string_view text, const std::vector<PiiEntity>& entities) {
  std::string out;
  out.reserve(text.size());
  size_t cursor = 0;
  for (const PiiEntity& e : entities) {
    if (e.begin < cursor || e.begin >= e.end || e.end > text.size())
      continue;
    out.append(text.substr(cursor, e.begin - cursor));
    out += '[';
    for (char c : e.type)
      out += is_lower(c) ? static_cast<char>(c - 'a' + 'A') : c;
    out += ']';
    cursor = e.end;
  }
  out.append(text.substr(cursor));
  return out;
}

bool luhn_valid(std::string_view digits_with_separators) {
  size_t digits = 0;
  int sum = 0;
  for (size_t k = digits_with_separators.size(); k > 0; --k) {
    char c = digits_with_separators[k - 1];
    if (c == ' ' || c == '-')
      continue;
    if (!is_digit(c))
      return false;
    int d = c - '0';
    if (digits % 2 == 1) {
      d *= 2;
      if (d > 9)
        d -= 9;
    }
    sum += d;
    ++digits;
  }
  return digits >= kCardMinDigits && digits <= kCardMaxDigits && sum % 10 == 0;
}

bool iban_valid(std::string_view iban) {
  std::array<char, kIbanMaxLength> buf{};
  size_t len = 0;
  for (char c : iban) {
    if (c == ' ')
      continue;
    if (len == kIbanMaxLength || !is_iban_char(c))
      return false;
    buf[len++] = c;
  }
  if (len < kIbanMinLength || !is_upper(buf[0]) || !is_upper(buf[1]) || !is_digit(buf[2]) ||
      !is_digit(buf[3]))
    return false;
  // Check digits run 02-98; 00, 01 and 99 would pass the modulus in place of 97, 98 and 02.
  int check = (buf[2] - '0') * 10 + (buf[3] - '0');
  if (check < 2 || check > 98)
    return false;
  size_t expected = iban_length_for(buf[0], buf[1]);
  if (expected != 0 && expected != len)
    return false;
  // ISO 7064 MOD 97-10: the first four characters moved to the end, letters as 10-35.
  int rem = 0;
  for (size_t k = 0; k < len; ++k) {
    char c = buf[(k + 4) % len];
    rem = is_digit(c) ? (rem * 10 + (c - '0')) % 97 : (rem * 100 + (c - 'A' + 10)) % 97;
  }
  return rem == 1;
}

bool us_ssn_valid(std::string_view ssn) {
  std::array<int, 9> d{};
  size_t count = 0;
  if (ssn.size() == kSsnLength) {
    char sep = ssn[3];
    if ((sep != '-' && sep != ' ') || ssn[6] != sep)
      return false;
  } else if (ssn.size() != d.size()) {
    return false;
  }
  for (size_t k = 0; k < ssn.size(); ++k) {
    if (ssn.size() == kSsnLength && (k == 3 || k == 6))
      continue;
    if (!is_digit(ssn[k]))
      return false;
    d[count++] = ssn[k] - '0';
  }
  int area = d[0] * 100 + d[1] * 10 + d[2];
  int group = d[3] * 10 + d[4];
  int serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
  return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

} // namespace semrouter::signals
