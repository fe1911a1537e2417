// Where several routers keep one spend total per key and UTC period (auth.state_redis). The
// Guard owns one and talks to it from its own flusher thread only, never from a request: the
// store's calls block on the network (bounded by its timeout).
//
// The implementation lives in the `cache` module (cache/redis_spend.h, the only place hiredis
// may appear); `app` hands the Guard a factory for it at start-up.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/auth_config.h"
#include "core/status.h"

namespace semrouter::auth {

// Spend to add to one shared total. `name` is the total's name inside the store ("day:2025-03-10:
// team", "month:2025-03:team"): the store prefixes it, nothing else.
struct SpendIncrement {
  std::string name;
  double usd = 0;
  int64_t expire_at_unix_s = 0; // the total may be dropped after this (a little past its period)
};

// One batch of increments, applied exactly once however often it is sent: a batch whose reply
// was lost (a timeout) is sent again under the same id, and the store ignores the repeat.
struct SpendBatch {
  std::string id; // unique per process and batch
  std::vector<SpendIncrement> increments;
};

class SpendStore {
public:
  virtual ~SpendStore() = default;

  // Applies `batch` (when it has increments), then reads the totals named in `read` (0 for one
  // that does not exist), in one round trip. Blocking. Errors: Unavailable when the store cannot
  // be reached or answers too slowly (the batch may or may not have been applied: send it again,
  // with the same id), Internal when it refuses a command. Called from one thread at a time.
  virtual core::StatusOr<std::vector<double>> sync(const SpendBatch& batch,
                                                   const std::vector<std::string>& read) = 0;
};

// Builds a store for auth.state_redis. Must not block (connect on the first sync).
using SpendStoreFactory =
    std::function<std::unique_ptr<SpendStore>(const config::SpendRedisConfig& cfg)>;

} // namespace semrouter::auth
