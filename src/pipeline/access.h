// Client API keys at the front doors (gateway and ext_proc): who is calling, may they, and how
// much budget is left. Before routing, `check_caller` authenticates and takes the rate-limit
// estimate; after it, `check_route` holds the routed model and decision against the key. Errors
// come back as API errors with their headers, for the transport to render in its client's shape.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "auth/auth.h"
#include "openai/errors.h"
#include "pipeline/exchange.h"

namespace semrouter::pipeline {

struct Access {
  bool ok = true;
  openai::ApiError error;                                   // when !ok
  std::vector<std::pair<std::string, std::string>> headers; // www-authenticate, retry-after, ...
  std::string reason; // client_errors label: unauthorized, rate_limited, forbidden
  std::shared_ptr<const config::ApiKeyConfig> key; // null: the router checks no keys
  Runtime::Caller caller;
  uint64_t estimated_tokens = 0;
  // What routing gets (null without keys).
  const Runtime::Caller* caller_for_routing() const { return key ? &caller : nullptr; }
};

openai::ApiError key_error(auth::Verdict v);

// Before routing. `body_bytes` sizes the token estimate.
Access check_caller(auth::Guard& guard, const HeaderLookup& headers, size_t body_bytes);

// After routing: false (and access.error) when the key may not use the routed model or decision.
// Settles the key's admission for a request that goes no further (a refusal or a reply routing
// made), so its estimate returns to the bucket.
bool check_route(auth::Guard& guard, Access& access, const RouteOutcome& out);

// Hands the key and its estimate to the outcome, for the Exchange to settle.
inline void attach_key(const Access& access, RouteOutcome& out) {
  out.key = access.key;
  out.estimated_tokens = access.estimated_tokens;
}

} // namespace semrouter::pipeline
