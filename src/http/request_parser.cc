#include "http/request_parser.h"

namespace semrouter::http {

namespace {

// Enough for a typical request's headers without growing; the list is reused per connection.
constexpr size_t kInitialHeaderCapacity = 16;

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// origin-form ("/path?query"), asterisk-form ("*") or absolute-form with an authority
// ("http://host/path"). The authority-form of CONNECT ("host:443") is not something the router
// serves, and without the "//" it cannot be told from a scheme.
bool is_valid_target_form(std::string_view t) {
  if (t.front() == '/' || t == "*")
    return true;
  if (!is_alpha(t.front()))
    return false;
  for (size_t i = 1; i < t.size(); ++i) {
    const char c = t[i];
    if (c == ':')
      return t.substr(i + 1).starts_with("//");
    if (!is_alpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.')
      return false;
  }
  return false;
}

} // namespace

RequestParser::RequestParser(const Options& options) : options_(options) {
  headers_.reserve(kInitialHeaderCapacity);
}

void RequestParser::reset() {
  phase_ = Phase::Head;
  head_.reset();
  skipped_lines_ = 0;
  method_length_ = target_offset_ = target_length_ = 0;
  method_ = target_ = {};
  method_kind_ = Method::Other;
  version_ = Version::Http11;
  headers_.clear();
  fields_ = {};
  framing_ = Framing::None;
  error_ = ParseError::None;
}

std::string_view RequestParser::header(std::string_view name) const {
  const Header* h = find_header(headers_, name);
  return h ? h->value : std::string_view();
}

bool RequestParser::keep_alive() const {
  if (error_ != ParseError::None || fields_.connection_close)
    return false;
  return version_ == Version::Http11 || fields_.connection_keep_alive;
}

bool RequestParser::in_progress() const {
  return phase_ == Phase::Body || (phase_ == Phase::Head && head_.started());
}

ParseResult RequestParser::fail(ParseError e, size_t consumed) {
  error_ = e;
  phase_ = Phase::Failed;
  return {Event::Error, consumed, {}};
}

ParseResult RequestParser::parse(std::string_view data) {
  switch (phase_) {
  case Phase::Head:
    return parse_head(data);
  case Phase::Body: {
    ParseResult r = body_.next(data);
    if (r.event == Event::Error)
      return fail(body_.error(), r.consumed);
    if (r.event == Event::Done)
      phase_ = Phase::Done;
    return r;
  }
  case Phase::Done:
    return {Event::Done, 0, {}};
  case Phase::Failed:
    break;
  }
  return {Event::Error, 0, {}};
}

ParseResult RequestParser::on_eof() {
  if (phase_ == Phase::Failed)
    return {Event::Error, 0, {}};
  if (!in_progress())
    return {Event::Closed, 0, {}};
  return fail(ParseError::Truncated, 0);
}

ParseResult RequestParser::parse_head(std::string_view data) {
  size_t consumed = 0;
  if (!head_.started()) {
    bool pending = false;
    consumed = detail::leading_empty_lines(data, skipped_lines_, pending);
    data.remove_prefix(consumed);
    if (pending)
      return {Event::NeedMore, consumed, {}};
  }
  while (true) {
    switch (head_.next(data, options_, fields_)) {
    case detail::HeadParser::Step::NeedMore:
      return {Event::NeedMore, consumed, {}};
    case detail::HeadParser::Step::Error:
      return fail(head_.error(), consumed);
    case detail::HeadParser::Step::StartLine:
      // Checked as soon as it is complete, so that non-HTTP bytes (a TLS hello on the plain
      // port) are turned away at once instead of after max_header_bytes.
      if (auto e = parse_request_line(data.substr(0, head_.start_line_end()));
          e != ParseError::None)
        return fail(e, consumed);
      break;
    case detail::HeadParser::Step::Complete: {
      const size_t head_end = head_.head_end();
      if (auto e = finish_head(data.substr(0, head_end)); e != ParseError::None)
        return fail(e, consumed);
      phase_ = Phase::Body;
      return {Event::Head, consumed + head_end, {}};
    }
    }
  }
}

ParseError RequestParser::parse_request_line(std::string_view line) {
  // The head parser ends the start line at its LF; RFC 9112 wants CRLF.
  if (line.size() < 2 || line[line.size() - 2] != '\r')
    return ParseError::BareLf;
  line.remove_suffix(2);
  size_t i = 0;
  while (i < line.size() && detail::is_token_char(line[i]))
    ++i;
  if (i == 0 || i == line.size() || line[i] != ' ')
    return ParseError::BadMethod;
  method_length_ = i;
  const size_t target_begin = i + 1;
  size_t j = target_begin;
  while (j < line.size() && detail::is_target_char(line[j]))
    ++j;
  if (j == line.size() || line[j] != ' ')
    return line.find('\r', j) != std::string_view::npos ? ParseError::BareCr
                                                        : ParseError::BadTarget;
  if (j == target_begin || !is_valid_target_form(line.substr(target_begin, j - target_begin)))
    return ParseError::BadTarget;
  target_offset_ = target_begin;
  target_length_ = j - target_begin;
  return detail::parse_version(line.substr(j + 1), version_);
}

ParseError RequestParser::finish_head(std::string_view head) {
  method_ = head.substr(0, method_length_);
  target_ = head.substr(target_offset_, target_length_);
  method_kind_ = method_from_string(method_);
  head_.fields(head, headers_);
  if (fields_.host_count > 1)
    return ParseError::MultipleHost;
  if (fields_.host_count == 0 && version_ == Version::Http11 && options_.require_host)
    return ParseError::MissingHost;
  // RFC 9110 §10.1.1: a server ignores 100-continue from an HTTP/1.0 client.
  if (version_ == Version::Http10)
    fields_.expect_continue = false;
  if (auto e = detail::transfer_framing(fields_, version_, framing_); e != ParseError::None)
    return e;
  if (framing_ != Framing::Chunked && fields_.has_content_length) {
    // Refused before any of the body is read, so the client can be told at once (413).
    if (fields_.content_length > options_.max_body_bytes)
      return ParseError::BodyTooLarge;
    framing_ = Framing::ContentLength;
  }
  // A request without either has no body (RFC 9112 §6.3, rule 7).
  body_.start(framing_, fields_.content_length, options_);
  return ParseError::None;
}

} // namespace semrouter::http
