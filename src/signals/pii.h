// PII recognisers: hand-written byte scanners for e-mail addresses, phone numbers, payment card
// numbers, US social security numbers, IP addresses and IBANs, plus merging and redaction.
//
// Every function here is pure and thread-safe. Offsets are byte offsets into the UTF-8 text;
// the scanners look at ASCII only, so a non-ASCII byte counts as a separator (an entity next to
// CJK text without spaces is still found, and a span never includes a non-ASCII byte).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace semrouter::signals {

// One detected piece of personal data: [begin, end) byte offsets into the scanned text.
struct PiiEntity {
  // "email", "phone", "credit_card", "us_ssn", "ip_address", "iban" from find_pii; a model's
  // own label otherwise.
  std::string type;
  size_t begin = 0;
  size_t end = 0;
  // 1.0 for pattern hits that passed their validation; kPhoneScore for phone numbers, which
  // have no checksum; the model's score otherwise.
  double score = 1.0;
  std::string source = "pattern"; // "pattern" or "model"
};

// Score of a phone-number hit: plausible by its shape, but nothing validates it.
inline constexpr double kPhoneScore = 0.85;

// The pattern recognisers' types, in a fixed order.
const std::vector<std::string>& pattern_pii_types();

// Scans `text` with every recogniser. The result is sorted by begin and has no overlapping spans:
// where two hits overlap, the higher score (a validated hit) wins, then the longer span.
// Linear in the text and cheap on prose: one vectorised pass looks for digits and '@' (every
// entity has one), and the recognisers run only on the stretch of entity characters around each.
std::vector<PiiEntity> find_pii(std::string_view text);
// The same result by running every recogniser over the whole text (the reference the pre-filter
// must equal; for tests and benchmarks).
std::vector<PiiEntity> find_pii_unfiltered(std::string_view text);

// Merges two entity lists (e.g. pattern and model hits). Empty spans are dropped; where spans
// overlap, the higher score wins, then the longer span, then the earlier one. Sorted by begin.
std::vector<PiiEntity> merge_pii(std::vector<PiiEntity> a, std::vector<PiiEntity> b);

// Replaces each entity's span by "[" + UPPERCASE(type) + "]", e.g. "[EMAIL]", "[CREDIT_CARD]".
// Entities must be sorted by begin and non-overlapping (as find_pii and merge_pii return them);
// an entity that overlaps an earlier one, is empty or lies past the end of `text` is skipped.
std::string redact_pii(std::string_view text, const std::vector<PiiEntity>& entities);

// Validators, exposed for tests.
// Luhn checksum over 13 to 19 digits; spaces and '-' are ignored, any other byte fails.
bool luhn_valid(std::string_view digits_with_separators);
// Spaces are ignored. Two uppercase letters, two check digits, then uppercase letters and digits;
// the length is the country's for the countries in the table (15 to 34 otherwise) and the number
// is 1 modulo 97.
bool iban_valid(std::string_view iban);
// AAA-GG-SSSS with '-' or ' ' separators (the same twice) or none: the area is not 000, 666 or
// 900-999, the group is not 00 and the serial is not 0000.
bool us_ssn_valid(std::string_view ssn);

} // namespace semrouter::signals
