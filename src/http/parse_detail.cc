#include "http/parse_detail.h"

#include <algorithm>
#include <cstring>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/strings.h"

namespace semrouter::http::detail {

namespace {

// Extensions carry nothing the router reads; a long one is only a way to make a small body
// expensive.
constexpr size_t kMaxChunkExtensionBytes = 1024;
// 16 hex digits fill 64 bits; more (even leading zeros) is an attempt to overflow someone.
constexpr unsigned kMaxChunkSizeDigits = 16;
constexpr unsigned kMaxContentLengthDigits = 19; // 10^19 - 1 fits 64 bits
// Enough for a typical message's fields without growing; the list is reused per connection.
constexpr size_t kInitialFieldCapacity = 16;

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back()))
    s.remove_suffix(1);
  return s;
}

// Calls fn(element) for each non-empty element of a comma-separated list, OWS trimmed
// (RFC 9110 §5.6.1 asks recipients to skip empty elements).
template <typename Fn> void for_each_element(std::string_view list, Fn&& fn) {
  while (true) {
    const size_t comma = list.find(',');
    std::string_view element = trim_ows(list.substr(0, comma));
    if (!element.empty())
      fn(element);
    if (comma == std::string_view::npos)
      return;
    list.remove_prefix(comma + 1);
  }
}

bool is_token(std::string_view s) {
  if (s.empty())
    return false;
  for (char c : s) {
    if (!is_token_char(c))
      return false;
  }
  return true;
}

ParseError parse_content_length(std::string_view value, uint64_t& out) {
  if (value.empty() || value.size() > kMaxContentLengthDigits)
    return ParseError::BadContentLength;
  uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9')
      return ParseError::BadContentLength; // signs, lists ("42, 42") and inner spaces too
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  out = n;
  return ParseError::None;
}

// Whether a header name (already checked to be a token) is `lower`, a lower-case name of
// letters and '-'. Setting bit 0x20 lower-cases a letter, and maps no other token byte onto a
// letter or '-' (only CR, not a token byte, becomes '-'), so this is exact and cheap.
bool is_name(std::string_view token, std::string_view lower) {
  if (token.size() != lower.size())
    return false;
  for (size_t i = 0; i < token.size(); ++i) {
    if ((token[i] | 0x20) != lower[i])
      return false;
  }
  return true;
}

// Records what a framing or connection field says. Names are compared by length first: most
// fields are none of these.
ParseError summarize_field(const Header& h, FieldSummary& s) {
  switch (h.name.size()) {
  case 4:
    if (is_name(h.name, "host"))
      ++s.host_count;
    break;
  case 6:
    if (is_name(h.name, "expect") && iequals(h.value, "100-continue"))
      s.expect_continue = true;
    break;
  case 10:
    if (is_name(h.name, "connection")) {
      for_each_element(h.value, [&](std::string_view token) {
        if (iequals(token, "close"))
          s.connection_close = true;
        else if (iequals(token, "keep-alive"))
          s.connection_keep_alive = true;
      });
    }
    break;
  case 14:
    if (is_name(h.name, "content-length")) {
      uint64_t n = 0;
      if (auto e = parse_content_length(h.value, n); e != ParseError::None)
        return e;
      // Identical repeats are allowed (RFC 9110 §8.6); differing ones mean two parsers could
      // disagree about where the body ends.
      if (s.has_content_length && s.content_length != n)
        return ParseError::ConflictingContentLength;
      s.has_content_length = true;
      s.content_length = n;
    }
    break;
  case 17:
    if (is_name(h.name, "transfer-encoding")) {
      s.has_transfer_encoding = true;
      bool syntax_ok = true;
      for_each_element(h.value, [&](std::string_view coding) {
        if (!is_token(coding)) {
          syntax_ok = false;
          return;
        }
        s.te_empty = false;
        if (s.te_chunked)
          s.te_after_chunked = true;
        if (iequals(coding, "chunked"))
          s.te_chunked = true;
        else
          s.te_unknown = true;
      });
      if (!syntax_ok)
        return ParseError::BadTransferEncoding;
    }
    break;
  default:
    break;
  }
  return ParseError::None;
}

} // namespace

ParseError parse_version(std::string_view s, Version& out) {
  constexpr std::string_view kPrefix = "HTTP/";
  constexpr size_t kVersionLength = 8; // "HTTP/1.1"
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (s.size() != kVersionLength || s.substr(0, kPrefix.size()) != kPrefix || !digit(s[5]) ||
      s[6] != '.' || !digit(s[7]))
    return ParseError::BadVersion;
  if (s[5] != '1')
    return ParseError::UnsupportedVersion;
  out = s[7] == '0' ? Version::Http10 : Version::Http11;
  return ParseError::None;
}

namespace {

// The first byte at or after `i` (and before `end`) that cannot be in a field value. Values are
// most of a head's bytes: with SSE2, 16 at a time.
size_t skip_value_chars(const char* p, size_t i, size_t end) {
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7f);
  while (i + 16 <= end) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    // Allowed: HTAB, and every byte from SP up but DEL (obs-text included).
    const __m128i at_least_space = _mm_cmpeq_epi8(_mm_max_epu8(x, space), x);
    const __m128i ok = _mm_andnot_si128(_mm_cmpeq_epi8(x, del),
                                        _mm_or_si128(at_least_space, _mm_cmpeq_epi8(x, tab)));
    const unsigned bad = ~static_cast<unsigned>(_mm_movemask_epi8(ok)) & 0xffffu;
    if (bad != 0)
      return i + static_cast<size_t>(__builtin_ctz(bad));
    i += 16;
  }
#endif
  while (i < end && is_value_char(p[i]))
    ++i;
  return i;
}

// Offsets are stored in 32 bits: no head is allowed anywhere near 4 GiB.
constexpr size_t kMaxHeadBytes = std::numeric_limits<uint32_t>::max();

} // namespace

HeadParser::HeadParser() {
  spans_.reserve(kInitialFieldCapacity);
}

void HeadParser::reset() {
  phase_ = Phase::StartLine;
  pos_ = line_start_ = name_end_ = value_begin_ = value_end_ = 0;
  start_line_end_ = head_end_ = 0;
  spans_.clear();
  error_ = ParseError::None;
}

HeadParser::Step HeadParser::fail(ParseError e) {
  error_ = e;
  return Step::Error;
}

void HeadParser::fields(std::string_view head, std::vector<Header>& out) const {
  for (const FieldSpan& f : spans_)
    out.push_back(
        {head.substr(f.name_offset, f.name_length), head.substr(f.value_offset, f.value_length)});
}

ParseError HeadParser::end_field(std::string_view data, FieldSummary& summary,
                                 const Options& options) {
  if (spans_.size() == options.max_headers)
    return ParseError::TooManyHeaders;
  size_t end = value_end_;
  while (end > value_begin_ && is_ows(data[end - 1]))
    --end;
  const FieldSpan span{
      static_cast<uint32_t>(line_start_), static_cast<uint32_t>(name_end_ - line_start_),
      static_cast<uint32_t>(value_begin_), static_cast<uint32_t>(end - value_begin_)};
  spans_.push_back(span);
  return summarize_field({data.substr(span.name_offset, span.name_length),
                          data.substr(span.value_offset, span.value_length)},
                         summary);
}

HeadParser::Step HeadParser::next(std::string_view data, const Options& options,
                                  FieldSummary& summary) {
  if (phase_ == Phase::StartLine) {
    // A start line longer than the whole head may be cannot fit in it: one limit, one error,
    // so that the error does not depend on how the bytes arrived.
    const size_t limit =
        std::min({options.max_start_line, options.max_header_bytes, kMaxHeadBytes});
    const size_t end = std::min(data.size(), limit);
    const void* lf = pos_ < end ? std::memchr(data.data() + pos_, '\n', end - pos_) : nullptr;
    if (lf == nullptr) {
      pos_ = end;
      return end == limit ? fail(ParseError::StartLineTooLong) : Step::NeedMore;
    }
    pos_ = line_start_ = start_line_end_ =
        static_cast<size_t>(static_cast<const char*>(lf) - data.data()) + 1;
    phase_ = Phase::LineStart;
    return Step::StartLine;
  }
  // Nothing at or past the limit is looked at: the head, blank line included, must end
  // within max_header_bytes.
  const size_t limit = std::min(options.max_header_bytes, kMaxHeadBytes);
  const size_t end = std::min(data.size(), limit);
  const char* p = data.data();
  // The phases follow each other in line order, so each falls through to the next: a whole line
  // costs one dispatch. `continue` leaves the switch when the bytes run out mid-line.
  while (pos_ < end) {
    switch (phase_) {
    case Phase::LineStart: {
      const char c = p[pos_];
      if (c == '\r') {
        ++pos_;
        phase_ = Phase::BlankLf;
        continue;
      }
      if (c == '\n')
        return fail(ParseError::BareLf);
      if (is_ows(c))
        return fail(ParseError::ObsFold);
      line_start_ = pos_;
      phase_ = Phase::Name;
      [[fallthrough]];
    }
    case Phase::Name:
      while (pos_ < end && is_token_char(p[pos_]))
        ++pos_;
      if (pos_ == end)
        continue;
      if (p[pos_] != ':')
        return fail(is_ows(p[pos_]) ? ParseError::SpaceBeforeColon : ParseError::BadHeaderName);
      if (pos_ == line_start_)
        return fail(ParseError::BadHeaderName);
      name_end_ = pos_++;
      phase_ = Phase::ValueSpace;
      [[fallthrough]];
    case Phase::ValueSpace:
      while (pos_ < end && is_ows(p[pos_]))
        ++pos_;
      if (pos_ == end)
        continue;
      value_begin_ = pos_;
      phase_ = Phase::Value;
      [[fallthrough]];
    case Phase::Value:
      pos_ = skip_value_chars(p, pos_, end);
      if (pos_ == end)
        continue;
      if (p[pos_] != '\r')
        return fail(p[pos_] == '\n' ? ParseError::BareLf : ParseError::BadHeaderValue);
      value_end_ = pos_++;
      phase_ = Phase::ValueLf;
      if (pos_ == end)
        continue;
      [[fallthrough]];
    case Phase::ValueLf:
      if (p[pos_] != '\n')
        return fail(ParseError::BareCr);
      ++pos_;
      if (auto e = end_field(data, summary, options); e != ParseError::None)
        return fail(e);
      phase_ = Phase::LineStart;
      continue;
    case Phase::BlankLf:
      if (p[pos_] != '\n')
        return fail(ParseError::BareCr);
      head_end_ = ++pos_;
      return Step::Complete;
    case Phase::StartLine:
      break; // handled above
    }
  }
  return end == limit ? fail(ParseError::HeaderTooLarge) : Step::NeedMore;
}

size_t leading_empty_lines(std::string_view data, size_t& skipped_lines, bool& pending) {
  size_t n = 0;
  pending = false;
  while (skipped_lines < kMaxLeadingEmptyLines && n < data.size() && data[n] == '\r') {
    if (n + 1 == data.size()) {
      pending = true;
      break;
    }
    if (data[n + 1] != '\n')
      break;
    n += 2;
    ++skipped_lines;
  }
  return n;
}

ParseError transfer_framing(const FieldSummary& s, Version v, Framing& framing) {
  if (!s.has_transfer_encoding)
    return ParseError::None;
  if (s.has_content_length)
    return ParseError::ContentLengthWithTransferEncoding;
  if (v == Version::Http10)
    return ParseError::TransferEncodingInHttp10;
  // Chunked must be last and only once, or the body's end cannot be found (RFC 9112 §6.3).
  if (s.te_empty || s.te_after_chunked)
    return ParseError::BadTransferEncoding;
  if (s.te_unknown)
    return ParseError::UnknownTransferCoding;
  framing = Framing::Chunked;
  return ParseError::None;
}

// ---- BodyDecoder ----

void BodyDecoder::start(Framing framing, uint64_t content_length, const Options& options) {
  framing_ = framing;
  max_body_ = options.max_body_bytes;
  max_trailer_bytes_ = options.max_header_bytes;
  max_trailers_ = options.max_headers;
  remaining_ = 0;
  total_ = 0;
  size_digits_ = 0;
  extension_bytes_ = 0;
  trailer_bytes_ = 0;
  trailers_ = 0;
  error_ = ParseError::None;
  switch (framing) {
  case Framing::None:
    state_ = State::Complete;
    break;
  case Framing::ContentLength:
    remaining_ = content_length;
    state_ = content_length == 0 ? State::Complete : State::Data;
    break;
  case Framing::Chunked:
    state_ = State::Size;
    break;
  case Framing::UntilClose:
    state_ = State::Data;
    break;
  }
}

ParseResult BodyDecoder::fail(ParseError e) {
  error_ = e;
  state_ = State::Complete;
  return {Event::Error, 0, {}};
}

ParseResult BodyDecoder::next(std::string_view data) {
  if (error_ != ParseError::None)
    return {Event::Error, 0, {}};
  if (state_ == State::Complete)
    return {Event::Done, 0, {}};
  switch (framing_) {
  case Framing::ContentLength: {
    if (data.empty())
      return {Event::NeedMore, 0, {}};
    const size_t n = remaining_ < data.size() ? static_cast<size_t>(remaining_) : data.size();
    remaining_ -= n;
    if (remaining_ == 0)
      state_ = State::Complete;
    return {Event::Body, n, data.substr(0, n)};
  }
  case Framing::UntilClose:
    if (data.empty())
      return {Event::NeedMore, 0, {}};
    if (data.size() > max_body_ - total_)
      return fail(ParseError::BodyTooLarge);
    total_ += data.size();
    return {Event::Body, data.size(), data};
  case Framing::Chunked:
    return chunked(data);
  case Framing::None:
    break;
  }
  return {Event::Done, 0, {}};
}

ParseResult BodyDecoder::chunked(std::string_view data) {
  size_t i = 0;
  while (i < data.size()) {
    if (state_ == State::Data) {
      const size_t avail = data.size() - i;
      const size_t n = remaining_ < avail ? static_cast<size_t>(remaining_) : avail;
      remaining_ -= n;
      if (remaining_ == 0)
        state_ = State::DataCr;
      return {Event::Body, i + n, data.substr(i, n)};
    }
    const char c = data[i++];
    if (state_ >= State::TrailerStart && ++trailer_bytes_ > max_trailer_bytes_)
      return fail(ParseError::HeaderTooLarge);
    switch (state_) {
    case State::Size: {
      const int v = core::hex_digit(c);
      if (v >= 0) {
        if (++size_digits_ > kMaxChunkSizeDigits)
          return fail(ParseError::BadChunkSize);
        remaining_ = (remaining_ << 4) | static_cast<uint64_t>(v);
        break;
      }
      if (size_digits_ == 0)
        return fail(ParseError::BadChunkSize);
      if (c == ';')
        state_ = State::Extension;
      else if (is_ows(c))
        state_ = State::SizeSpace;
      else if (c == '\r')
        state_ = State::SizeLf;
      else
        return fail(c == '\n' ? ParseError::BareLf : ParseError::BadChunkSize);
      break;
    }
    case State::SizeSpace:
      if (c == ';')
        state_ = State::Extension;
      else if (!is_ows(c))
        return fail(ParseError::BadChunkSize);
      break;
    case State::Extension:
      if (c == '\r')
        state_ = State::SizeLf;
      else if (c == '\n')
        return fail(ParseError::BareLf);
      else if (!is_value_char(c) || ++extension_bytes_ > kMaxChunkExtensionBytes)
        return fail(ParseError::BadChunkExtension);
      break;
    case State::SizeLf:
      if (c != '\n')
        return fail(ParseError::BareCr);
      // The announced size counts against the limit before any of its data is read.
      if (remaining_ > max_body_ - total_)
        return fail(ParseError::BodyTooLarge);
      total_ += remaining_;
      size_digits_ = 0;
      extension_bytes_ = 0;
      state_ = remaining_ == 0 ? State::TrailerStart : State::Data;
      break;
    case State::DataCr:
      if (c != '\r')
        return fail(ParseError::BadChunkEnd);
      state_ = State::DataLf;
      break;
    case State::DataLf:
      if (c != '\n')
        return fail(ParseError::BadChunkEnd);
      state_ = State::Size;
      break;
    case State::TrailerStart:
      if (c == '\r') {
        state_ = State::FinalLf;
      } else if (is_ows(c)) {
        return fail(ParseError::ObsFold);
      } else if (is_token_char(c)) {
        if (++trailers_ > max_trailers_)
          return fail(ParseError::TooManyHeaders);
        state_ = State::TrailerName;
      } else {
        return fail(c == '\n' ? ParseError::BareLf : ParseError::BadHeaderName);
      }
      break;
    case State::TrailerName:
      if (c == ':')
        state_ = State::TrailerValue;
      else if (is_ows(c))
        return fail(ParseError::SpaceBeforeColon);
      else if (!is_token_char(c))
        return fail(ParseError::BadHeaderName);
      break;
    case State::TrailerValue:
      if (c == '\r')
        state_ = State::TrailerLf;
      else if (c == '\n')
        return fail(ParseError::BareLf);
      else if (!is_value_char(c))
        return fail(ParseError::BadHeaderValue);
      break;
    case State::TrailerLf:
      if (c != '\n')
        return fail(ParseError::BareCr);
      state_ = State::TrailerStart;
      break;
    case State::FinalLf:
      if (c != '\n')
        return fail(ParseError::BareCr);
      state_ = State::Complete;
      return {Event::Done, i, {}};
    case State::Data:
    case State::Complete:
      break; // handled above the switch
    }
  }
  return {Event::NeedMore, i, {}};
}

ParseResult BodyDecoder::eof() {
  if (error_ != ParseError::None)
    return {Event::Error, 0, {}};
  if (state_ == State::Complete)
    return {Event::Closed, 0, {}};
  if (framing_ == Framing::UntilClose) {
    state_ = State::Complete;
    return {Event::Done, 0, {}};
  }
  return fail(ParseError::Truncated);
}

} // namespace semrouter::http::detail
