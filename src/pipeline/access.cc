#include "pipeline/access.h"

#include <cmath>

namespace semrouter::pipeline {

openai::ApiError key_error(auth::Verdict v) {
  switch (v) {
  case auth::Verdict::Missing:
    return {401, "authentication_error", "missing_api_key",
            "an API key is required: send \"Authorization: Bearer <key>\" (or x-api-key)", ""};
  case auth::Verdict::Revoked:
    return {401, "authentication_error", "revoked_api_key", "this API key has been revoked", ""};
  default:
    return {401, "authentication_error", "invalid_api_key", "the API key is not valid", ""};
  }
}

Access check_caller(auth::Guard& guard, const HeaderLookup& headers, size_t body_bytes) {
  Access a;
  if (!guard.enabled())
    return a;
  a.estimated_tokens = body_bytes / 4 + 1;
  auth::Identity id = guard.authenticate(auth::presented_key(headers));
  if (id.verdict != auth::Verdict::Ok) {
    a.ok = false;
    a.error = key_error(id.verdict);
    a.headers.emplace_back("www-authenticate", "Bearer");
    a.reason = "unauthorized";
    return a;
  }
  a.key = id.key;
  auth::Admission adm = guard.admit(*a.key, a.estimated_tokens);
  if (!adm.ok) {
    const bool budget = adm.reason == "budget";
    a.ok = false;
    a.error = {429, budget ? "insufficient_quota" : "rate_limit_error",
               budget ? "budget_exhausted" : "rate_limit_exceeded", adm.message, ""};
    a.headers.emplace_back("retry-after",
                           std::to_string(static_cast<long>(std::ceil(adm.retry_after_s))));
    a.headers.emplace_back("x-semrouter-limit", adm.reason);
    a.reason = "rate_limited";
    a.key = nullptr; // refused before anything was taken: nothing to settle
    return a;
  }
  a.caller.tenant = a.key->tenant.empty() ? a.key->name : a.key->tenant;
  if (a.key->daily_budget_usd > 0 || a.key->monthly_budget_usd > 0)
    a.caller.budget_pressure = guard.budget_pressure(*a.key, &a.caller.budget_spent);
  return a;
}

bool check_route(auth::Guard& guard, Access& access, const RouteOutcome& out) {
  if (!access.key)
    return true;
  const config::ApiKeyConfig& k = *access.key;
  if (out.model) {
    const bool model_ok = guard.allows_model(k, out.model->name);
    if (!model_ok || !guard.allows_decision(k, out.decision)) {
      guard.count_rejection(k, model_ok ? "decision" : "model");
      guard.settle(k, access.estimated_tokens, 0, 0, 0); // nothing went upstream
      access.ok = false;
      access.reason = "forbidden";
      const bool routed = out.requested_model != out.model->name;
      access.error = {
          403, "permission_error", "not_allowed",
          "API key " + k.name + " may not use " +
              (model_ok ? "decision " + out.decision
                        : "model " + out.model->name +
                              (routed ? " (routed from \"" + out.requested_model + "\")" : "")),
          "model"};
      return false;
    }
  }
  if (out.action == RouteAction::Reply) // answered here (an error, a guard, a cache hit)
    guard.settle(k, access.estimated_tokens, 0, 0, 0);
  return true;
}

} // namespace semrouter::pipeline
