#include "gateway/client_request.h"

#include <algorithm>

namespace semrouter::gateway {

namespace hp = ::semrouter::http;

namespace {

uint64_t size_bit(size_t n) {
  return uint64_t{1} << std::min<size_t>(n, 63);
}

} // namespace

void ClientRequest::set_head(const hp::RequestParser& parser, std::string_view head) {
  head_.assign(head);
  // The parser's views point into `head`; the same bytes now live in head_.
  auto rebase = [&](std::string_view v) {
    if (v.empty())
      return std::string_view();
    return std::string_view(head_.data() + (v.data() - head.data()), v.size());
  };
  method_ = rebase(parser.method());
  target_ = rebase(parser.target());
  method_kind_ = parser.method_kind();
  version_ = hp::version_number(parser.version());
  keep_alive_ = parser.keep_alive();
  headers_.clear();
  name_sizes_ = 0;
  for (const hp::Header& h : parser.headers()) {
    headers_.push_back({rebase(h.name), rebase(h.value)});
    name_sizes_ |= size_bit(h.name.size());
  }
  body_.clear();
}

void ClientRequest::clear() {
  head_.clear();
  method_ = {};
  target_ = {};
  method_kind_ = hp::Method::Other;
  version_ = 11;
  keep_alive_ = false;
  headers_.clear();
  name_sizes_ = 0;
  body_.clear();
}

std::optional<std::string_view> ClientRequest::find(std::string_view name) const {
  if (!(name_sizes_ & size_bit(name.size())))
    return std::nullopt;
  if (const hp::Header* h = hp::find_header(headers_, name))
    return h->value;
  return std::nullopt;
}

std::string_view ClientRequest::operator[](std::string_view name) const {
  return find(name).value_or(std::string_view());
}

} // namespace semrouter::gateway
