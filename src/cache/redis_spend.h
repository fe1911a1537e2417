// auth.state_redis: the spend store on Redis (auth/spend_store.h), here because hiredis may appear
// only in this module.
#pragma once

#include <memory>

#include "auth/spend_store.h"
#include "config/auth_config.h"

namespace semrouter::cache {

// One synchronous hiredis connection, made on the first sync and again, at most every
// reconnect_ms, after it fails; every round trip is bounded by timeout_ms. Totals are plain
// Redis strings `PREFIX NAME` changed by INCRBYFLOAT and EXPIREAT, inside one Lua script per
// batch that first marks the batch's id (`PREFIX batch:ID`, SET NX, kept a day), so a batch sent
// twice counts once. Not thread-safe: the Guard calls it from its flusher thread only.
std::unique_ptr<auth::SpendStore> make_redis_spend_store(const config::SpendRedisConfig& cfg);

} // namespace semrouter::cache
