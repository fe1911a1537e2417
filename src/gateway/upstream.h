// Upstream side of the gateway: keep-alive connection pools and backend choice.
// Internal to the gateway module (includes Beast).
#pragma once

#include "gateway/beast.h"

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "core/clock.h"

namespace semrouter::gateway {

// Idle keep-alive connections per endpoint (host:port). One per worker thread: not thread-safe.
class UpstreamPools {
public:
  // An idle connection to this backend's endpoint, or nullptr.
  std::unique_ptr<boost::beast::tcp_stream> take(const config::BackendConfig& backend);
  // Returns a connection whose response was read completely and which the server keeps alive.
  void give_back(const config::BackendConfig& backend, std::unique_ptr<boost::beast::tcp_stream> conn);

private:
  static std::string key(const config::BackendConfig& b) { return b.host + ":" + std::to_string(b.port); }
  std::unordered_map<std::string, std::vector<std::unique_ptr<boost::beast::tcp_stream>>> idle_;
};

// Connects with a timeout (numeric addresses skip the resolver). On failure `ec` is set.
boost::asio::awaitable<std::unique_ptr<boost::beast::tcp_stream>>
connect_backend(const config::BackendConfig& backend, std::chrono::milliseconds timeout, boost::system::error_code& ec);

// The model's backends in the order to try: one weighted random pick, then the others by weight.
std::vector<const config::BackendConfig*> order_backends(const config::Config& config, const config::ModelConfig& model,
                                                         core::Random& random);

// The path prefix for upstream calls: the backend URL's path; /v1 if the URL has no path at all;
// nothing if the path is exactly "/" (a server that serves /chat/completions at its root).
std::string upstream_base_path(const config::BackendConfig& backend);

} // namespace semrouter::gateway
