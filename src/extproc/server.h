// The Envoy ext_proc front door: an envoy.service.ext_proc.v3.ExternalProcessor gRPC server
// (plus grpc.health.v1.Health) around the shared pipeline. This header is gRPC-free; gRPC lives
// in this module's .cc files only.
//
// Threading: gRPC's asynchronous API. `extproc.threads` completion queues, each polled by its
// own thread, which also does the stream's work (routing included) inline: no thread per stream
// and no hand-off per message. A stream's messages are handled one at a time (Envoy sends the
// next one only after our answer). Streams share the pipeline::Runtime (sessions, load state,
// metrics) with the HTTP gateway.
#pragma once

#include <cstdint>
#include <memory>

#include "config/config.h"
#include "core/status.h"
#include "pipeline/exchange.h"

namespace semrouter::extproc {

class ExtProcServer {
public:
  explicit ExtProcServer(pipeline::Runtime& runtime);
  ~ExtProcServer();
  ExtProcServer(const ExtProcServer&) = delete;
  ExtProcServer& operator=(const ExtProcServer&) = delete;

  // Starts serving `config.listener` (port 0 picks a free port), with TLS when the config names
  // a certificate. `seed` seeds the per-stream random sources (0: from the clock). Fails with a
  // message naming the address.
  core::Status start(const config::ExtProcConfig& config, uint64_t seed);
  uint16_t port() const;
  // Health turns NOT_SERVING, new streams are refused, open ones get up to `grace_ms` to finish
  // and are then cancelled. Blocks until done. Thread-safe; later calls do nothing.
  void shutdown(uint32_t grace_ms);

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace semrouter::extproc
