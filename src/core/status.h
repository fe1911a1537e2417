// Status and StatusOr: expected failures are values, never exceptions.
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace semrouter::core {

// What went wrong, coarse enough for a caller to act on.
enum class ErrorCode {
  InvalidArgument,  // the input is malformed; the caller should fix it
  NotFound,         // a named thing does not exist
  Unavailable,      // a dependency (upstream, file) cannot be reached now; retrying may work
  DeadlineExceeded, // a timeout fired
  Internal,         // a bug or an impossible state
};

struct Error {
  ErrorCode code = ErrorCode::Internal;
  std::string message;
};

template <typename T> using StatusOr = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;

inline tl::unexpected<Error> make_error(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

inline const char* error_code_name(ErrorCode code) {
  switch (code) {
  case ErrorCode::InvalidArgument:
    return "invalid_argument";
  case ErrorCode::NotFound:
    return "not_found";
  case ErrorCode::Unavailable:
    return "unavailable";
  case ErrorCode::DeadlineExceeded:
    return "deadline_exceeded";
  case ErrorCode::Internal:
    return "internal";
  }
  return "internal";
}

} // namespace semrouter::core
