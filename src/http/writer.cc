#include "http/writer.h"

#include <charconv>

namespace semrouter::http {

namespace {

constexpr size_t kMaxDecimalDigits = 20; // 2^64 - 1
constexpr uint16_t kDefaultHttpPort = 80;
constexpr uint16_t kDefaultHttpsPort = 443;

// Appends `s` without CR, LF and NUL; in the usual case (none present) that is one append.
void append_clean(std::string& out, std::string_view s) {
  size_t from = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\r' || c == '\n' || c == '\0') {
      out.append(s.data() + from, i - from);
      from = i + 1;
    }
  }
  out.append(s.data() + from, s.size() - from);
}

void append_decimal(std::string& out, uint64_t n) {
  char buf[kMaxDecimalDigits];
  const auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

std::string_view version_string(Version v) {
  return v == Version::Http10 ? "HTTP/1.0" : "HTTP/1.1";
}

} // namespace

std::string_view reason_phrase(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 206:
    return "Partial Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 402:
    return "Payment Required";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 406:
    return "Not Acceptable";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 410:
    return "Gone";
  case 411:
    return "Length Required";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 417:
    return "Expectation Failed";
  case 422:
    return "Unprocessable Content";
  case 426:
    return "Upgrade Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 499:
    return "Client Closed Request";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Unknown";
  }
}

void append_status_line(std::string& out, Version version, int status, std::string_view reason) {
  out.append(version_string(version));
  out.push_back(' ');
  append_decimal(out, static_cast<uint64_t>(status));
  out.push_back(' ');
  append_clean(out, reason.empty() ? reason_phrase(status) : reason);
  out.append(kCrLf);
}

void append_request_line(std::string& out, std::string_view method, std::string_view target) {
  out.append(method);
  out.push_back(' ');
  append_clean(out, target);
  out.append(" HTTP/1.1\r\n");
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  append_clean(out, name);
  out.append(": ");
  append_clean(out, value);
  out.append(kCrLf);
}

void append_header(std::string& out, std::string_view name, uint64_t value) {
  append_clean(out, name);
  out.append(": ");
  append_decimal(out, value);
  out.append(kCrLf);
}

void append_host_header(std::string& out, std::string_view host, uint16_t port, bool tls) {
  out.append("Host: ");
  const bool ipv6 = host.find(':') != std::string_view::npos;
  if (ipv6)
    out.push_back('[');
  append_clean(out, host);
  if (ipv6)
    out.push_back(']');
  if (port != (tls ? kDefaultHttpsPort : kDefaultHttpPort)) {
    out.push_back(':');
    append_decimal(out, port);
  }
  out.append(kCrLf);
}

void append_head_end(std::string& out, Version version, bool keep_alive, Framing framing,
                     uint64_t content_length) {
  const bool keep = keep_alive && framing != Framing::UntilClose;
  if (version == Version::Http10) {
    if (keep)
      out.append("Connection: keep-alive\r\n");
  } else if (!keep) {
    out.append("Connection: close\r\n");
  }
  switch (framing) {
  case Framing::ContentLength:
    append_header(out, "Content-Length", content_length);
    break;
  case Framing::Chunked:
    out.append("Transfer-Encoding: chunked\r\n");
    break;
  case Framing::None:
  case Framing::UntilClose:
    break;
  }
  out.append(kCrLf);
}

void append_response_head(std::string& out, const ResponseHead& head) {
  append_status_line(out, head.version, head.status, head.reason);
  for (const Header& h : head.headers)
    append_header(out, h.name, h.value);
  append_head_end(out, head.version, head.keep_alive, head.framing, head.content_length);
}

void append_request_head(std::string& out, const RequestHead& head) {
  append_request_line(out, head.method, head.target);
  out.append("Host: ");
  append_clean(out, head.host);
  out.append(kCrLf);
  for (const Header& h : head.headers)
    append_header(out, h.name, h.value);
  const Framing framing = head.framing == Framing::UntilClose ? Framing::None : head.framing;
  append_head_end(out, Version::Http11, head.keep_alive, framing, head.content_length);
}

ChunkHead::ChunkHead(uint64_t size) {
  const auto r = std::to_chars(buf_, buf_ + sizeof buf_, size, 16);
  char* p = r.ptr;
  *p++ = '\r';
  *p++ = '\n';
  len_ = static_cast<uint8_t>(p - buf_);
}

void append_chunk(std::string& out, std::string_view data) {
  if (data.empty())
    return;
  const ChunkHead head(data.size());
  out.append(head.view());
  out.append(data);
  out.append(kCrLf);
}

} // namespace semrouter::http
