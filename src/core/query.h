// URL query strings (`a=1&b=x%20y`), for the admin APIs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace semrouter::core {

// The first value of `name` in `query` (a leading '?' is skipped), with '+' and valid %XX
// escapes decoded (an invalid escape stays as written); nullopt when the parameter is absent,
// "" when it has no value.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

} // namespace semrouter::core
