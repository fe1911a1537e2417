#include "http/response_parser.h"

namespace semrouter::http {

namespace {

constexpr size_t kInitialHeaderCapacity = 16;
constexpr int kFirstFinalStatus = 200;
constexpr int kMinStatus = 100;
constexpr int kSwitchingProtocols = 101;

} // namespace

ResponseParser::ResponseParser(const Options& options) : options_(options) {
  headers_.reserve(kInitialHeaderCapacity);
}

void ResponseParser::reset_head() {
  head_.reset();
  skipped_lines_ = 0;
  reason_offset_ = reason_length_ = 0;
  status_ = 0;
  reason_ = {};
  version_ = Version::Http11;
  headers_.clear();
  fields_ = {};
  framing_ = Framing::None;
}

void ResponseParser::reset(bool head_request) {
  reset_head();
  head_request_ = head_request;
  phase_ = Phase::Head;
  interim_ = 0;
  error_ = ParseError::None;
}

std::string_view ResponseParser::header(std::string_view name) const {
  const Header* h = find_header(headers_, name);
  return h ? h->value : std::string_view();
}

bool ResponseParser::keep_alive() const {
  if (error_ != ParseError::None || fields_.connection_close || framing_ == Framing::UntilClose)
    return false;
  return version_ == Version::Http11 || fields_.connection_keep_alive;
}

bool ResponseParser::in_progress() const {
  return phase_ == Phase::Body || (phase_ == Phase::Head && (head_.started() || interim_ > 0));
}

ParseResult ResponseParser::fail(ParseError e, size_t consumed) {
  error_ = e;
  phase_ = Phase::Failed;
  return {Event::Error, consumed, {}};
}

ParseResult ResponseParser::parse(std::string_view data) {
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

ParseResult ResponseParser::on_eof() {
  switch (phase_) {
  case Phase::Failed:
    return {Event::Error, 0, {}};
  case Phase::Done:
    return {Event::Closed, 0, {}};
  case Phase::Body: {
    ParseResult r = body_.eof();
    if (r.event == Event::Error)
      return fail(body_.error(), 0);
    phase_ = Phase::Done;
    return r;
  }
  case Phase::Head:
    break;
  }
  if (!in_progress())
    return {Event::Closed, 0, {}};
  return fail(ParseError::Truncated, 0);
}

ParseResult ResponseParser::parse_head(std::string_view data) {
  size_t consumed = 0;
  while (true) {
    if (!head_.started()) {
      bool pending = false;
      const size_t skip = detail::leading_empty_lines(data, skipped_lines_, pending);
      consumed += skip;
      data.remove_prefix(skip);
      if (pending)
        return {Event::NeedMore, consumed, {}};
    }
    switch (head_.next(data, options_, fields_)) {
    case detail::HeadParser::Step::NeedMore:
      return {Event::NeedMore, consumed, {}};
    case detail::HeadParser::Step::Error:
      return fail(head_.error(), consumed);
    case detail::HeadParser::Step::StartLine:
      if (auto e = parse_status_line(data.substr(0, head_.start_line_end())); e != ParseError::None)
        return fail(e, consumed);
      break;
    case detail::HeadParser::Step::Complete: {
      const size_t head_end = head_.head_end();
      if (auto e = finish_head(data.substr(0, head_end)); e != ParseError::None)
        return fail(e, consumed);
      if (status_ >= kFirstFinalStatus) {
        phase_ = Phase::Body;
        return {Event::Head, consumed + head_end, {}};
      }
      // An interim response: consumed, and the final one follows on the same bytes.
      if (++interim_ > kMaxInterimResponses)
        return fail(ParseError::TooManyInterimResponses, consumed);
      consumed += head_end;
      data.remove_prefix(head_end);
      reset_head();
      break;
    }
    }
  }
}

ParseError ResponseParser::parse_status_line(std::string_view line) {
  if (line.size() < 2 || line[line.size() - 2] != '\r')
    return ParseError::BareLf;
  line.remove_suffix(2);
  constexpr size_t kVersionLength = 8; // "HTTP/1.1"
  constexpr size_t kCodeBegin = kVersionLength + 1;
  constexpr size_t kCodeEnd = kCodeBegin + 3;
  if (line.size() < kVersionLength)
    return ParseError::BadVersion;
  if (auto e = detail::parse_version(line.substr(0, kVersionLength), version_);
      e != ParseError::None)
    return e;
  if (line.size() < kCodeEnd || line[kVersionLength] != ' ')
    return ParseError::BadStatusLine;
  int code = 0;
  for (size_t i = kCodeBegin; i < kCodeEnd; ++i) {
    if (line[i] < '0' || line[i] > '9')
      return ParseError::BadStatusLine;
    code = code * 10 + (line[i] - '0');
  }
  if (code < kMinStatus)
    return ParseError::BadStatusLine;
  if (code == kSwitchingProtocols)
    return ParseError::SwitchingProtocols;
  status_ = code;
  // Some servers omit the space before an empty reason; nothing depends on the reason.
  if (line.size() > kCodeEnd) {
    if (line[kCodeEnd] != ' ')
      return ParseError::BadStatusLine;
    for (size_t i = kCodeEnd + 1; i < line.size(); ++i) {
      if (!detail::is_value_char(line[i]))
        return line[i] == '\r' ? ParseError::BareCr : ParseError::BadStatusLine;
    }
    reason_offset_ = kCodeEnd + 1;
    reason_length_ = line.size() - reason_offset_;
  }
  return ParseError::None;
}

ParseError ResponseParser::finish_head(std::string_view head) {
  reason_ = head.substr(reason_offset_, reason_length_);
  if (status_ < kFirstFinalStatus)
    return ParseError::None; // interim: no body, and its fields are about to be dropped
  head_.fields(head, headers_);
  // Framing fields are still checked on bodiless responses: an upstream sending both is broken.
  if (auto e = detail::transfer_framing(fields_, version_, framing_); e != ParseError::None)
    return e;
  if (framing_ != Framing::Chunked)
    framing_ = fields_.has_content_length ? Framing::ContentLength : Framing::UntilClose;
  // RFC 9112 §6.3 rule 1: whatever these say, they have no body.
  if (head_request_ || !status_has_body(status_))
    framing_ = Framing::None;
  if (framing_ == Framing::ContentLength && fields_.content_length > options_.max_body_bytes)
    return ParseError::BodyTooLarge;
  body_.start(framing_, fields_.content_length, options_);
  return ParseError::None;
}

} // namespace semrouter::http
