// Unicode helpers for the tokenizers: UTF-8 decoding that keeps byte offsets, character classes
// as the Hugging Face tokenizers define them, and normalisation through utf8proc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace semrouter::text {

// One character of a (possibly normalised) string, with the byte range in the ORIGINAL input it
// came from. Normalisation can add characters (accents split off, spaces around CJK) or drop
// them; every character produced keeps the span of the character it came from.
struct OffsetChar {
  char32_t cp;
  uint32_t begin;
  uint32_t end;
};
using OffsetString = std::vector<OffsetChar>;

// Decodes UTF-8; an invalid byte becomes U+FFFD covering that byte. `base` is added to offsets.
OffsetString decode_utf8(std::string_view s, uint32_t base = 0);
void append_utf8(std::string& out, char32_t cp);
std::string encode_utf8(const OffsetString& s, size_t from = 0, size_t to = SIZE_MAX);

// Unicode White_Space (what Rust's char::is_whitespace and the `regex` module's \s accept).
bool is_whitespace(char32_t cp);
// General category groups.
bool is_letter(char32_t cp);          // L*
bool is_number(char32_t cp);          // N*
bool is_punctuation(char32_t cp);     // P*
bool is_mark_nonspacing(char32_t cp); // Mn
bool is_other(char32_t cp);           // C* (Cc, Cf, Cs, Co, Cn)
bool is_cjk(char32_t cp);             // the CJK ideograph blocks BERT surrounds with spaces
// BERT's punctuation: all ASCII symbols 33-47, 58-64, 91-96, 123-126 plus Unicode P*.
bool is_bert_punctuation(char32_t cp);

// Normalisations that keep offsets. NFC composes within each grapheme cluster (which is where
// composition can happen); NFD and NFKD decompose per character.
OffsetString nfc(const OffsetString& in);
OffsetString nfkc(const OffsetString& in);
OffsetString nfd(const OffsetString& in);
OffsetString nfkd(const OffsetString& in);
// Full lowercase mapping per character (U+0130 becomes "i" + U+0307, as Rust's to_lowercase).
void lowercase_into(const OffsetString& in, OffsetString& out);

// Converts a byte offset into `s` to a code point index (for APIs that report character spans).
size_t byte_to_char_offset(std::string_view s, size_t byte_offset);

} // namespace semrouter::text
