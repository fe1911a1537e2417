// The HTTP front door: an OpenAI-compatible gateway port and an admin/metrics port, served by
// Boost.Beast with C++20 coroutines. This header is Beast-free; Beast lives in the .cc files of
// this module only.
//
// Threading: `workers` event loops, each on its own thread with its own upstream connection
// pools (no locks on the request path). One acceptor per listener hands sockets round-robin to
// the loops. Requests read the current config snapshot once, at arrival.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "config/config.h"
#include "core/status.h"
#include "pipeline/exchange.h"

namespace semrouter::gateway {

class Gateway {
public:
  // Routing, sessions, load state and metrics come from `runtime` (shared with ext_proc).
  explicit Gateway(pipeline::Runtime& runtime);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds the listeners (port 0 picks a free port); without `gateway` only the admin port is
  // served (ext_proc mode). Fails with a message naming the address.
  core::Status listen(const config::ListenerConfig* gateway, const config::ListenerConfig& admin,
                      uint32_t workers);
  uint16_t port() const;
  uint16_t admin_port() const;

  // Called on SIGHUP (on an event-loop thread; keep it short or hand it off).
  void on_reload_signal(std::function<void()> callback);
  // Called once when shutdown starts (SIGINT/SIGTERM or shutdown()), before the in-flight wait:
  // the other transports stop too (ext_proc). Runs on the shutting-down thread.
  void on_drain(std::function<void()> callback);

  // Serves until shutdown() or SIGINT/SIGTERM. Blocks.
  void run();
  // Turns /ready to 503, keeps accepting for `delay_ms` (so readiness pollers move traffic away),
  // stops accepting, lets in-flight requests finish for up to `grace_ms`, then stops.
  // Thread-safe; blocks for as long as that takes.
  void shutdown(uint32_t grace_ms = 5000, uint32_t delay_ms = 0);

private:
  void wait_for_signal();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace semrouter::gateway
