// OpenAI-shaped error bodies: {"error":{"message":..,"type":..,"param":..,"code":..}}.
#pragma once

#include <string>
#include <string_view>

namespace semrouter::openai {

struct ApiError {
  int status = 500;
  std::string type; // invalid_request_error, not_found_error, upstream_error, ...
  std::string code; // model_not_found, body_too_large, ...; "" serialises as null
  std::string message;
  std::string param; // "" serialises as null
};

std::string error_body(const ApiError& e);

ApiError invalid_request(std::string message, std::string param = "", std::string code = "");
ApiError model_not_found(std::string_view model, std::string_view known);
ApiError not_found_path(std::string_view path);
ApiError method_not_allowed(std::string_view method, std::string_view path,
                            std::string_view allowed);
ApiError body_too_large(uint64_t limit);
ApiError upstream_unreachable(std::string_view model, std::string_view detail);
ApiError upstream_broken(std::string_view model, std::string_view backend, std::string_view detail);
ApiError upstream_timeout(std::string_view model, std::string_view detail);
// The last backend tried answered 429 (429 `upstream_rate_limited`) or 503 (503
// `upstream_unavailable`) and no retry could follow it (none left, or not in time).
ApiError upstream_refused(std::string_view model, int status, std::string_view detail);
ApiError internal_error(std::string message);
// Admission control and circuit breakers: the router (503, `overloaded`) or one model (429,
// `model_overloaded`) has no room now; the answer carries retry-after.
ApiError overloaded(std::string message);
ApiError model_overloaded(std::string_view model, std::string message);

} // namespace semrouter::openai
