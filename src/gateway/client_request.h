// One client request as the gateway serves it: the head copied out of the connection's read
// buffer (so the buffer can take the next bytes while this one is served), its header fields as
// views into that copy, and the decoded body. Filled by read_request() from the src/http parser;
// reused across the requests of a connection, so a keep-alive connection allocates nothing per
// request once its buffers have grown. Beast-free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"
#include "http/request_parser.h"

namespace semrouter::gateway {

class ClientRequest {
public:
  // Takes the head the parser just reported (Event::Head): `head` is the bytes it consumed,
  // which the parser's views point into.
  void set_head(const ::semrouter::http::RequestParser& parser, std::string_view head);
  // An empty request for answering before a head was read (errors): HTTP/1.1, closes.
  void clear();

  std::string_view method_string() const { return method_; }
  ::semrouter::http::Method method() const { return method_kind_; }
  std::string_view target() const { return target_; } // path and query, as sent
  unsigned version() const { return version_; }       // 10 or 11
  bool keep_alive() const { return keep_alive_; }
  // The first value of a header (ASCII case-insensitive name), "" when absent.
  std::string_view operator[](std::string_view name) const;
  std::optional<std::string_view> find(std::string_view name) const;
  const std::vector<::semrouter::http::Header>& headers() const { return headers_; }

  std::string& body() { return body_; }
  const std::string& body() const { return body_; }

private:
  std::string head_;
  std::string_view method_;
  std::string_view target_;
  ::semrouter::http::Method method_kind_ = ::semrouter::http::Method::Other;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  std::vector<::semrouter::http::Header> headers_;
  // Bit min(n, 63) is set when a header name of n bytes was sent: most lookups are for headers a
  // request lacks (x-semrouter-*, authorization, ...), and they end here without a scan.
  uint64_t name_sizes_ = 0;
  std::string body_;
};

} // namespace semrouter::gateway
