// Writing HTTP/1.1 heads and chunk framing by hand: appends into a caller's std::string (reserve
// once, reuse per connection) with no allocation per header.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "http/message.h"

namespace semrouter::http {

inline constexpr std::string_view kCrLf = "\r\n";
// The zero-size chunk and the empty trailer section that end a chunked body.
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";
// The interim answer to "Expect: 100-continue".
inline constexpr std::string_view kContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";

// The standard reason phrase of a status ("Not Found"), "Unknown" for codes without one.
std::string_view reason_phrase(int status);

// "HTTP/1.1 404 Not Found\r\n"; an empty reason means reason_phrase(status).
void append_status_line(std::string& out, Version version, int status,
                        std::string_view reason = {});
// "POST /v1/chat/completions HTTP/1.1\r\n". The target is written as given: it comes from the
// router's config and the client's already-validated query, never from an upstream.
void append_request_line(std::string& out, std::string_view method, std::string_view target);
// "Name: value\r\n". CR, LF and NUL are dropped from both, so that no string (a config value,
// an upstream's header) can split a header or start a new one.
void append_header(std::string& out, std::string_view name, std::string_view value);
void append_header(std::string& out, std::string_view name, uint64_t value);
// "Host: example.com:8080\r\n": brackets an IPv6 address, and leaves out a default port (80, or
// 443 with `tls`).
void append_host_header(std::string& out, std::string_view host, uint16_t port, bool tls);
// The connection and framing headers, then the blank line that ends the head:
//   HTTP/1.1: "Connection: close" unless keep_alive; HTTP/1.0: "Connection: keep-alive" if it.
//   ContentLength: "Content-Length: n"; Chunked: "Transfer-Encoding: chunked"; None and
//   UntilClose: nothing. UntilClose never keeps the connection alive, whatever keep_alive says.
// Chunked to an HTTP/1.0 peer is the caller's bug: such a client gets UntilClose.
void append_head_end(std::string& out, Version version, bool keep_alive, Framing framing,
                     uint64_t content_length = 0);

// A whole response head in one call; the headers are written in order, as given.
struct ResponseHead {
  int status = 200;
  Version version = Version::Http11; // the client's
  std::string_view reason;           // empty: reason_phrase(status)
  std::span<const Header> headers;
  bool keep_alive = true;
  Framing framing = Framing::ContentLength;
  uint64_t content_length = 0;
};
void append_response_head(std::string& out, const ResponseHead& head);

// A whole request head for an upstream; always HTTP/1.1.
struct RequestHead {
  std::string_view method = "POST";
  std::string_view target = "/";
  std::string_view host; // the Host value as it should appear (see append_host_header)
  std::span<const Header> headers;
  bool keep_alive = true;
  Framing framing = Framing::ContentLength; // None: no body; UntilClose is not for requests
  uint64_t content_length = 0;
};
void append_request_head(std::string& out, const RequestHead& head);

// "<hex size>\r\n" on the stack, for a gather write of [size line, data, CRLF] that copies
// nothing.
class ChunkHead {
public:
  explicit ChunkHead(uint64_t size);
  std::string_view view() const { return {buf_, len_}; }

private:
  static constexpr size_t kMaxLength = 16 + 2; // 64 bits in hex, CRLF
  char buf_[kMaxLength];
  uint8_t len_ = 0;
};

// One chunk: size line, data, CRLF. Empty data writes nothing: a zero-size chunk would end the
// body (use kLastChunk for that).
void append_chunk(std::string& out, std::string_view data);

} // namespace semrouter::http
