// Pieces shared by RequestParser and ResponseParser: character classes, the one-pass head
// parser and the body decoder. Not part of the module's interface.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/strings.h"
#include "http/message.h"

namespace semrouter::http::detail {

// ---- character classes (RFC 9110 §5.6.2 tokens, §5.5 field values) ----

enum CharClass : uint8_t {
  kTokenChar = 1,  // tchar
  kValueChar = 2,  // field-vchar, SP or HTAB (obs-text included)
  kTargetChar = 4, // any visible byte: a request target is not decoded here
};

constexpr std::array<uint8_t, 256> make_char_classes() {
  std::array<uint8_t, 256> t{};
  constexpr std::string_view kTokenPunctuation = "!#$%&'*+-.^_`|~";
  for (int c = 0; c < 256; ++c) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (alnum || kTokenPunctuation.find(static_cast<char>(c)) != std::string_view::npos)
      t[c] |= kTokenChar;
    if (c == '\t' || (c >= 0x20 && c != 0x7f))
      t[c] |= kValueChar;
    if (c > 0x20 && c != 0x7f)
      t[c] |= kTargetChar;
  }
  return t;
}

inline constexpr std::array<uint8_t, 256> kCharClasses = make_char_classes();

inline bool is_token_char(char c) {
  return kCharClasses[static_cast<unsigned char>(c)] & kTokenChar;
}
inline bool is_value_char(char c) {
  return kCharClasses[static_cast<unsigned char>(c)] & kValueChar;
}
inline bool is_target_char(char c) {
  return kCharClasses[static_cast<unsigned char>(c)] & kTargetChar;
}
inline bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

// "HTTP/1.1" → Http11. Syntax errors are BadVersion, other major versions UnsupportedVersion.
ParseError parse_version(std::string_view s, Version& out);

using core::iequals;

// What the fields say about framing and the connection, gathered as they are parsed.
struct FieldSummary {
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool has_transfer_encoding = false;
  bool te_chunked = false;       // chunked is among the codings
  bool te_after_chunked = false; // a coding follows chunked (or chunked repeats)
  bool te_unknown = false;       // a coding other than chunked
  bool te_empty = true;          // no coding at all yet
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool expect_continue = false;
  unsigned host_count = 0;
};

// ---- the head ----

// Parses a head as its bytes arrive, in one pass: each header line is validated while its end
// is searched for, and a line split across reads resumes where it stopped, so every byte is
// looked at once however the head arrives. The start line is only delimited here (its syntax
// differs between requests and responses: the caller checks it on Step::StartLine).
//
// Positions are offsets from the head's first byte: the caller presents the head again from
// that byte on every call, so its buffer may move between calls. Limits are checked in byte
// order, and no byte past a limit is looked at, so the outcome (and the error) never depends on
// how the bytes were split.
class HeadParser {
public:
  enum class Step : uint8_t {
    NeedMore,  // every byte given is used
    StartLine, // the start line is complete: data[0, start_line_end()) with its CRLF
    Complete,  // the blank line is found: the head is data[0, head_end())
    Error,     // error()
  };

  HeadParser();
  Step next(std::string_view data, const Options& options, FieldSummary& summary);
  void reset(); // keeps the field list's capacity
  // Appends views of the fields into `head` (the same bytes as parsed, possibly moved).
  void fields(std::string_view head, std::vector<Header>& out) const;

  bool started() const { return pos_ > 0; }
  size_t start_line_end() const { return start_line_end_; }
  size_t head_end() const { return head_end_; }
  ParseError error() const { return error_; }

private:
  enum class Phase : uint8_t {
    StartLine, // searching for the start line's LF
    LineStart, // first byte of a header line, or the blank line's CR
    Name,
    ValueSpace, // whitespace after the colon
    Value,
    ValueLf, // the LF after a value's CR
    BlankLf, // the LF of the blank line
  };
  struct FieldSpan {
    uint32_t name_offset, name_length, value_offset, value_length;
  };
  Step fail(ParseError e);
  ParseError end_field(std::string_view data, FieldSummary& summary, const Options& options);

  Phase phase_ = Phase::StartLine;
  size_t pos_ = 0;        // next byte to look at
  size_t line_start_ = 0; // first byte of the current header line
  size_t name_end_ = 0;
  size_t value_begin_ = 0;
  size_t value_end_ = 0; // where the value's CR is
  size_t start_line_end_ = 0;
  size_t head_end_ = 0;
  std::vector<FieldSpan> spans_;
  ParseError error_ = ParseError::None;
};

// Bytes of leading CRLFs ("\r\n\r\n…") to skip before a start line, at most
// kMaxLeadingEmptyLines of them; RFC 9112 §2.2 asks servers to ignore at least one (old clients
// sent an extra CRLF after a POST body). `pending` is set when the input ends in a lone CR that
// may start another.
inline constexpr size_t kMaxLeadingEmptyLines = 4;
size_t leading_empty_lines(std::string_view data, size_t& skipped_lines, bool& pending);

// The framing a message's transfer-coding fields ask for, or an error: shared by requests and
// responses (RFC 9112 §6.1, §6.3). Sets `framing` to Chunked, or leaves it when there is no
// Transfer-Encoding.
ParseError transfer_framing(const FieldSummary& s, Version v, Framing& framing);

// ---- the body ----

// Delimits and (for chunked bodies) decodes a body, byte exact however the input is split:
// control bytes (chunk sizes, extensions, trailers) go through a per-byte state machine, data
// bytes are handed out as views without copying.
class BodyDecoder {
public:
  void start(Framing framing, uint64_t content_length, const Options& options);
  // Body, Done, NeedMore (every byte consumed) or Error (error()).
  ParseResult next(std::string_view data);
  // The peer closed: Done for a body that ends at close, Error(Truncated) for any other.
  ParseResult eof();
  ParseError error() const { return error_; }
  Framing framing() const { return framing_; }

private:
  enum class State : uint8_t {
    Size,      // hex digits of a chunk size
    SizeSpace, // whitespace after the size: only ';' may follow
    Extension, // chunk extensions, up to CR
    SizeLf,    // LF ending the size line
    Data,      // chunk data (or a Content-Length / until-close body)
    DataCr,    // CR after chunk data
    DataLf,    // LF after chunk data
    // The trailer states come last: next() counts a byte against the trailer limit when the
    // state is TrailerStart or later.
    TrailerStart, // start of a trailer line, or the final CRLF
    TrailerName,
    TrailerValue,
    TrailerLf, // LF ending a trailer line
    FinalLf,   // LF of the final CRLF
    Complete,
  };
  ParseResult fail(ParseError e);
  ParseResult chunked(std::string_view data);

  Framing framing_ = Framing::None;
  State state_ = State::Complete;
  uint64_t remaining_ = 0; // of the Content-Length body or of the current chunk
  uint64_t total_ = 0;     // body bytes announced so far (chunked, until close)
  uint64_t max_body_ = 0;
  size_t max_trailer_bytes_ = 0;
  size_t max_trailers_ = 0;
  unsigned size_digits_ = 0;
  size_t extension_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  size_t trailers_ = 0;
  ParseError error_ = ParseError::None;
};

} // namespace semrouter::http::detail
