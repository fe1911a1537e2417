// The vocabulary shared by the HTTP/1.1 parsers and writers: versions, header fields, parse
// errors and the status each maps to, parser options and the events a parser reports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>

namespace semrouter::http {

enum class Version : uint8_t {
  Http10,
  Http11, // also HTTP/1.2 .. 1.9, which RFC 9110 says to treat as the highest minor we know
};

// 10 or 11, the way Beast numbers versions.
inline unsigned version_number(Version v) {
  return v == Version::Http10 ? 10 : 11;
}

// The methods the router tells apart; anything else is Other (the string is still available).
enum class Method : uint8_t { Other, Get, Head, Post, Put, Delete, Options, Patch };

Method method_from_string(std::string_view method);

// One header field. From a parser: views into the caller's buffer, the value without its
// surrounding whitespace. To a writer: whatever the caller owns for the duration of the call.
struct Header {
  std::string_view name;
  std::string_view value;
};

// The first header named `name` (ASCII case-insensitive), or nullptr.
const Header* find_header(std::span<const Header> headers, std::string_view name);

// Whether a response with this status can carry a body: 1xx, 204 and 304 never do (RFC 9112
// section 6.3), whatever their framing fields say.
constexpr bool status_has_body(int status) {
  return status >= 200 && status != 204 && status != 304;
}

// How a message body is delimited.
enum class Framing : uint8_t {
  None,          // no body: a request without Content-Length, a 204/304 or a response to HEAD
  ContentLength, // exactly content_length() bytes
  Chunked,       // Transfer-Encoding: chunked
  UntilClose,    // responses only: the body ends when the peer closes the connection
};

// Why a message was rejected. error_status() gives the status to answer a client with; a
// response that fails to parse is the upstream's fault, and the gateway answers 502 for all of
// them. Every error ends the connection: the parser cannot tell where the next message starts.
enum class ParseError : uint8_t {
  None,
  BadMethod,          // the method is empty, not a token, or not followed by one space
  BadTarget,          // the target is empty, has a control byte, or is neither "/…", "*" nor
                      // absolute ("scheme://…"); authority-form (CONNECT) is not served
  BadVersion,         // not "HTTP/<digit>.<digit>", or not followed by CRLF
  UnsupportedVersion, // well-formed but not HTTP/1.x (HTTP/2.0 prior knowledge, HTTP/0.9)
  BadStatusLine,      // responses: not "HTTP/x.y SP 3DIGIT [SP reason]", or a status under 100
  StartLineTooLong,   // the request or status line is longer than Options::max_start_line
  HeaderTooLarge,     // the head (or the trailer section) is over Options::max_header_bytes
  TooManyHeaders,     // more header (or trailer) lines than Options::max_headers
  BareLf,             // a line ends in LF without CR
  BareCr,             // a CR not followed by LF
  ObsFold,            // a header line starts with whitespace (obsolete line folding)
  BadHeaderName,      // empty, not a token (a CR or NUL in it too), or no colon
  SpaceBeforeColon,   // whitespace inside a header name or between it and its colon
  BadHeaderValue,     // a control byte (other than HTAB) in a header value
  BadContentLength,   // not a plain decimal number that fits 64 bits (lists included)
  ConflictingContentLength,          // two Content-Length fields with different values
  ContentLengthWithTransferEncoding, // both framings at once: the classic smuggling vector
  BadTransferEncoding,      // empty, not a token list, chunked twice or not the last coding
  TransferEncodingInHttp10, // HTTP/1.0 has no transfer codings; the framing cannot be trusted
  UnknownTransferCoding,    // a coding other than chunked (gzip, identity, …)
  MissingHost,              // an HTTP/1.1 request without Host (when Options::require_host)
  MultipleHost,             // more than one Host field
  BadChunkSize,             // not 1-16 hex digits, or whitespace not followed by ';'
  BadChunkExtension,        // a control byte in, or too long, a chunk extension
  BadChunkEnd,              // chunk data not followed by CRLF
  BodyTooLarge,             // Content-Length or the chunks add up to over max_body_bytes
  SwitchingProtocols,       // responses: a 101; the router never asks for an upgrade
  TooManyInterimResponses,  // responses: more 1xx heads than kMaxInterimResponses
  Truncated,                // the peer closed in the middle of a message
};

// The status to answer a client whose request failed with `e` (400, 413, 414, 431, 501, 505;
// 502 for the response-only errors).
int error_status(ParseError e);
// A stable snake_case name for logs and metrics labels ("bad_chunk_size").
std::string_view error_name(ParseError e);

inline constexpr size_t kDefaultMaxStartLine = 8 * 1024;
inline constexpr size_t kDefaultMaxHeaderBytes = 16 * 1024;
inline constexpr size_t kDefaultMaxHeaders = 100;
// Matches the default of server.max_body_bytes.
inline constexpr uint64_t kDefaultMaxRequestBodyBytes = 8u << 20;
// An upstream streams for as long as it generates: no limit by default.
inline constexpr uint64_t kUnlimitedBody = std::numeric_limits<uint64_t>::max();

struct Options {
  // The request or status line, CRLF included (and never more than max_header_bytes).
  size_t max_start_line = kDefaultMaxStartLine;
  // The whole head: start line, header lines and the blank line. Trailers have the same limit.
  size_t max_header_bytes = kDefaultMaxHeaderBytes;
  size_t max_headers = kDefaultMaxHeaders;
  uint64_t max_body_bytes = kDefaultMaxRequestBodyBytes;
  // Requests only: RFC 9112 says an HTTP/1.1 request without Host is a 400.
  bool require_host = true;
};

inline Options default_response_options() {
  Options o;
  o.max_body_bytes = kUnlimitedBody;
  return o;
}

// What one call to parse() produced.
enum class Event : uint8_t {
  NeedMore, // read more bytes and call again with every byte not consumed (the head is only
            // consumed once complete, so its bytes are passed again)
  Head,     // the head is complete; the accessors are valid until reset()
  Body,     // ParseResult::body is the next piece of the body, a view into the input
  Done,     // the message is complete; bytes after the consumed ones belong to the next message
  Error,    // error() says why; answer (a request) and close the connection
  Closed,   // on_eof() only: the peer closed between messages, nothing was lost
};

struct ParseResult {
  Event event = Event::NeedMore;
  size_t consumed = 0;   // bytes of the input used up: the caller drops them
  std::string_view body; // Event::Body only
};

} // namespace semrouter::http
