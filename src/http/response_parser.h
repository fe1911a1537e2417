// An incremental, zero-copy HTTP/1.1 response parser (RFC 9112) for the upstream side of the
// gateway.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "http/message.h"
#include "http/parse_detail.h"

namespace semrouter::http {

// More 1xx heads than this before the final one is an upstream stalling in a loop.
inline constexpr size_t kMaxInterimResponses = 8;

// Parses one response at a time out of a buffer the caller owns; the buffer contract is
// RequestParser's (pass every unconsumed byte, drop `consumed` ones, head views valid until
// reset() while the caller keeps those bytes in place).
//
// Interim 1xx heads (100 Continue, 103 Early Hints) are consumed and skipped: Event::Head is
// always the final response. Body pieces come out as they arrive, without copying, so a relay
// forwards an SSE stream piece by piece; a chunked body comes out decoded (chunk framing,
// extensions and trailers removed). A body delimited by the connection's close ends with the
// Done from on_eof().
//
// Errors are the upstream's fault (the gateway answers 502 for all of them). No exceptions, not
// thread-safe: one parser per upstream connection.
class ResponseParser {
public:
  explicit ResponseParser(const Options& options = default_response_options());

  // Starts on a new response; `head_request`: it answers a HEAD, so it has no body whatever its
  // headers say. Views from the previous response are then invalid.
  void reset(bool head_request = false);

  ParseResult parse(std::string_view data);
  // The upstream closed after every byte was passed to parse(): Done when that ends a body
  // delimited by close, Closed when no byte of a response was seen (a pooled connection the
  // server had closed: safe to retry), Error(Truncated) otherwise.
  ParseResult on_eof();

  // ---- valid from Event::Head until reset() ----
  int status() const { return status_; }
  std::string_view reason() const { return reason_; }
  Version version() const { return version_; }
  std::span<const Header> headers() const { return headers_; }
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const { return find_header(headers_, name) != nullptr; }
  // Whether the connection may carry another request after this response: HTTP/1.1 unless
  // "Connection: close", HTTP/1.0 only with "Connection: keep-alive", never for a body that ends
  // at close. False after an error.
  bool keep_alive() const;
  Framing framing() const { return framing_; }
  uint64_t content_length() const { return fields_.content_length; }
  // How many 1xx heads were skipped before this one.
  size_t interim_responses() const { return interim_; }

  bool in_progress() const;
  ParseError error() const { return error_; }

private:
  enum class Phase : uint8_t { Head, Body, Done, Failed };

  ParseResult parse_head(std::string_view data);
  ParseError parse_status_line(std::string_view line);
  ParseError finish_head(std::string_view head);
  void reset_head();
  ParseResult fail(ParseError e, size_t consumed);

  Options options_;
  bool head_request_ = false;
  Phase phase_ = Phase::Head;
  detail::HeadParser head_;
  detail::BodyDecoder body_;
  size_t skipped_lines_ = 0;
  size_t interim_ = 0;
  size_t reason_offset_ = 0;
  size_t reason_length_ = 0;
  int status_ = 0;
  std::string_view reason_;
  Version version_ = Version::Http11;
  std::vector<Header> headers_;
  detail::FieldSummary fields_;
  Framing framing_ = Framing::None;
  ParseError error_ = ParseError::None;
};

} // namespace semrouter::http
