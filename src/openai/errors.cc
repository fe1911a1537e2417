#include "openai/errors.h"

#include <fmt/format.h>

#include "core/strings.h"

namespace semrouter::openai {

std::string error_body(const ApiError& e) {
  std::string out = "{\"error\":{\"message\":";
  core::append_json_string(out, e.message);
  out += ",\"type\":";
  core::append_json_string(out, e.type);
  out += ",\"param\":";
  if (e.param.empty()) {
    out += "null";
  } else {
    core::append_json_string(out, e.param);
  }
  out += ",\"code\":";
  if (e.code.empty()) {
    out += "null";
  } else {
    core::append_json_string(out, e.code);
  }
  out += "}}";
  return out;
}

ApiError invalid_request(std::string message, std::string param, std::string code) {
  return {400, "invalid_request_error", std::move(code), std::move(message), std::move(param)};
}

ApiError model_not_found(std::string_view model, std::string_view known) {
  return {404, "invalid_request_error", "model_not_found",
          fmt::format("The model `{}` does not exist. Available models: {}.", model, known),
          "model"};
}

ApiError not_found_path(std::string_view path) {
  return {404, "invalid_request_error", "not_found", fmt::format("Unknown request URL: {}", path),
          ""};
}

ApiError method_not_allowed(std::string_view method, std::string_view path,
                            std::string_view allowed) {
  return {405, "invalid_request_error", "method_not_allowed",
          fmt::format("Method {} is not allowed on {} (allowed: {}).", method, path, allowed), ""};
}

ApiError body_too_large(uint64_t limit) {
  return {413, "invalid_request_error", "body_too_large",
          fmt::format("The request body exceeds the limit of {} bytes.", limit), ""};
}

ApiError upstream_unreachable(std::string_view model, std::string_view detail) {
  return {502, "upstream_error", "upstream_unreachable",
          fmt::format("No backend of model `{}` could be reached: {}", model, detail), ""};
}

ApiError overloaded(std::string message) {
  return {503, "server_error", "overloaded", std::move(message), ""};
}

ApiError model_overloaded(std::string_view model, std::string message) {
  return {429, "rate_limit_error", "model_overloaded",
          fmt::format("Model `{}` is at its concurrency limit: {}", model, message), ""};
}

ApiError upstream_broken(std::string_view model, std::string_view backend,
                         std::string_view detail) {
  return {502, "upstream_error", "upstream_broken",
          fmt::format("The response of model `{}` (backend {}) was broken off: {}", model, backend,
                      detail),
          ""};
}

ApiError upstream_timeout(std::string_view model, std::string_view detail) {
  return {504, "upstream_error", "upstream_timeout",
          fmt::format("The backend of model `{}` timed out: {}", model, detail), ""};
}

ApiError upstream_refused(std::string_view model, int status, std::string_view detail) {
  if (status == 429)
    return {429, "rate_limit_error", "upstream_rate_limited",
            fmt::format("The backends of model `{}` are rate limiting: {}", model, detail), ""};
  return {503, "server_error", "upstream_unavailable",
          fmt::format("The backends of model `{}` are unavailable: {}", model, detail), ""};
}

ApiError internal_error(std::string message) {
  return {500, "server_error", "internal_error", std::move(message), ""};
}

} // namespace semrouter::openai
