// An incremental, zero-copy HTTP/1.1 request parser (RFC 9112) for the client side of the
// gateway.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "http/message.h"
#include "http/parse_detail.h"

namespace semrouter::http {

// Parses one request at a time out of a buffer the caller owns and fills from its socket.
//
// The caller passes every byte it holds that has not been consumed yet, and drops the
// `consumed` ones from the front of its buffer afterwards. Typical loop:
//
//   parse(buf) → NeedMore: read more, call again with the whole unconsumed buffer
//              → Head:     look at method(), target(), headers(); answer 100 Continue if
//                          expects_continue()
//              → Body:     append result.body; call again
//              → Done:     serve the request, then reset() and parse what follows (pipelining)
//              → Error:    answer error_status(error()) and close
//
// The head is consumed only once complete, so its bytes stay at the front of the buffer until
// Event::Head; the buffer may move between calls until then, since the parser keeps offsets.
// From Event::Head on, the views it hands out (method, target, headers) point into the buffer
// passed to that call: they stay valid until reset() or until the caller overwrites or moves
// those bytes (compacting the buffer while it still needs the headers is the caller's bug).
// Body pieces are views into the input of the call that returned them.
//
// No allocations after the first few requests (the header list is reused), no exceptions, not
// thread-safe: one parser per connection.
class RequestParser {
public:
  explicit RequestParser(const Options& options = {});

  // Parses as far as `data` allows and reports one event; see Event.
  ParseResult parse(std::string_view data);
  // The peer closed its side after every byte was passed to parse(): Closed when no request was
  // in progress, Error(Truncated) otherwise.
  ParseResult on_eof();
  // Ready for the next request on the connection. Views from the previous one are then invalid.
  void reset();

  // ---- valid from Event::Head until reset() ----
  std::string_view method() const { return method_; }
  Method method_kind() const { return method_kind_; }
  std::string_view target() const { return target_; } // as sent: path and query, not decoded
  Version version() const { return version_; }
  std::span<const Header> headers() const { return headers_; }
  // The first value of a header (ASCII case-insensitive name), or "" when absent.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const { return find_header(headers_, name) != nullptr; }
  // Whether the connection may serve another request after this one: HTTP/1.1 unless
  // "Connection: close", HTTP/1.0 only with "Connection: keep-alive". False after an error.
  bool keep_alive() const;
  // "Expect: 100-continue" on an HTTP/1.1 request: the client waits for an interim
  // "100 Continue" (or a final answer) before it sends the body.
  bool expects_continue() const { return fields_.expect_continue; }
  Framing framing() const { return framing_; } // None, ContentLength or Chunked
  uint64_t content_length() const { return fields_.content_length; }

  // Whether some bytes of a request (not just leading empty lines) have been seen.
  bool in_progress() const;
  ParseError error() const { return error_; }
  const Options& options() const { return options_; }

private:
  enum class Phase : uint8_t { Head, Body, Done, Failed };

  ParseResult parse_head(std::string_view data);
  ParseError parse_request_line(std::string_view line);
  ParseError finish_head(std::string_view head);
  ParseResult fail(ParseError e, size_t consumed);

  Options options_;
  Phase phase_ = Phase::Head;
  detail::HeadParser head_;
  detail::BodyDecoder body_;
  size_t skipped_lines_ = 0;
  // Offsets of the request line's parts, kept while the rest of the head arrives.
  size_t method_length_ = 0;
  size_t target_offset_ = 0;
  size_t target_length_ = 0;
  std::string_view method_;
  std::string_view target_;
  Method method_kind_ = Method::Other;
  Version version_ = Version::Http11;
  std::vector<Header> headers_;
  detail::FieldSummary fields_;
  Framing framing_ = Framing::None;
  ParseError error_ = ParseError::None;
};

} // namespace semrouter::http
