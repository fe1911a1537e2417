#include "http/message.h"

#include "http/parse_detail.h"

namespace semrouter::http {

Method method_from_string(std::string_view m) {
  // Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET.
  switch (m.size()) {
  case 3:
    if (m == "GET")
      return Method::Get;
    if (m == "PUT")
      return Method::Put;
    break;
  case 4:
    if (m == "POST")
      return Method::Post;
    if (m == "HEAD")
      return Method::Head;
    break;
  case 5:
    if (m == "PATCH")
      return Method::Patch;
    break;
  case 6:
    if (m == "DELETE")
      return Method::Delete;
    break;
  case 7:
    if (m == "OPTIONS")
      return Method::Options;
    break;
  default:
    break;
  }
  return Method::Other;
}

const Header* find_header(std::span<const Header> headers, std::string_view name) {
  for (const Header& h : headers) {
    if (detail::iequals(h.name, name))
      return &h;
  }
  return nullptr;
}

int error_status(ParseError e) {
  constexpr int kBadRequest = 400;
  constexpr int kContentTooLarge = 413;
  constexpr int kUriTooLong = 414;
  constexpr int kHeaderFieldsTooLarge = 431;
  constexpr int kNotImplemented = 501;
  constexpr int kBadGateway = 502;
  constexpr int kVersionNotSupported = 505;
  switch (e) {
  case ParseError::StartLineTooLong:
    return kUriTooLong;
  case ParseError::HeaderTooLarge:
  case ParseError::TooManyHeaders:
    return kHeaderFieldsTooLarge;
  case ParseError::BodyTooLarge:
    return kContentTooLarge;
  case ParseError::UnknownTransferCoding:
    return kNotImplemented;
  case ParseError::UnsupportedVersion:
    return kVersionNotSupported;
  case ParseError::BadStatusLine:
  case ParseError::SwitchingProtocols:
  case ParseError::TooManyInterimResponses:
    return kBadGateway;
  default:
    return kBadRequest;
  }
}

std::string_view error_name(ParseError e) {
  switch (e) {
  case ParseError::None:
    return "none";
  case ParseError::BadMethod:
    return "bad_method";
  case ParseError::BadTarget:
    return "bad_target";
  case ParseError::BadVersion:
    return "bad_version";
  case ParseError::UnsupportedVersion:
    return "unsupported_version";
  case ParseError::BadStatusLine:
    return "bad_status_line";
  case ParseError::StartLineTooLong:
    return "start_line_too_long";
  case ParseError::HeaderTooLarge:
    return "header_too_large";
  case ParseError::TooManyHeaders:
    return "too_many_headers";
  case ParseError::BareLf:
    return "bare_lf";
  case ParseError::BareCr:
    return "bare_cr";
  case ParseError::ObsFold:
    return "obs_fold";
  case ParseError::BadHeaderName:
    return "bad_header_name";
  case ParseError::SpaceBeforeColon:
    return "space_before_colon";
  case ParseError::BadHeaderValue:
    return "bad_header_value";
  case ParseError::BadContentLength:
    return "bad_content_length";
  case ParseError::ConflictingContentLength:
    return "conflicting_content_length";
  case ParseError::ContentLengthWithTransferEncoding:
    return "content_length_with_transfer_encoding";
  case ParseError::BadTransferEncoding:
    return "bad_transfer_encoding";
  case ParseError::TransferEncodingInHttp10:
    return "transfer_encoding_in_http10";
  case ParseError::UnknownTransferCoding:
    return "unknown_transfer_coding";
  case ParseError::MissingHost:
    return "missing_host";
  case ParseError::MultipleHost:
    return "multiple_host";
  case ParseError::BadChunkSize:
    return "bad_chunk_size";
  case ParseError::BadChunkExtension:
    return "bad_chunk_extension";
  case ParseError::BadChunkEnd:
    return "bad_chunk_end";
  case ParseError::BodyTooLarge:
    return "body_too_large";
  case ParseError::SwitchingProtocols:
    return "switching_protocols";
  case ParseError::TooManyInterimResponses:
    return "too_many_interim_responses";
  case ParseError::Truncated:
    return "truncated";
  }
  return "unknown";
}

} // namespace semrouter::http
