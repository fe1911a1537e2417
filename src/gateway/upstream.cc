#include "gateway/upstream.h"

#include <algorithm>

namespace semrouter::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

std::unique_ptr<beast::tcp_stream> UpstreamPools::take(const config::BackendConfig& backend) {
  auto it = idle_.find(key(backend));
  if (it == idle_.end())
    return nullptr;
  auto& list = it->second;
  // No liveness probe here (it would cost two syscalls per request): a connection the server
  // closed while idle fails on first use, and the gateway retries that once on a fresh one.
  while (!list.empty()) {
    std::unique_ptr<beast::tcp_stream> conn = std::move(list.back());
    list.pop_back();
    if (conn->socket().is_open())
      return conn;
  }
  return nullptr;
}

void UpstreamPools::give_back(const config::BackendConfig& backend,
                              std::unique_ptr<beast::tcp_stream> conn) {
  auto& list = idle_[key(backend)];
  if (list.size() >= backend.max_idle_connections)
    return; // dropping closes it
  conn->expires_never();
  list.push_back(std::move(conn));
}

asio::awaitable<std::unique_ptr<beast::tcp_stream>>
connect_backend(const config::BackendConfig& backend, std::chrono::milliseconds timeout,
                Deadline& deadline, boost::system::error_code& ec) {
  auto executor = co_await asio::this_coro::executor;
  auto conn = std::make_unique<beast::tcp_stream>(executor);
  ec.clear();
  boost::system::error_code addr_ec;
  auto address = asio::ip::make_address(backend.host, addr_ec);
  deadline.watch(conn.get());
  if (!addr_ec) {
    deadline.set(timeout);
    co_await conn->async_connect(tcp::endpoint(address, backend.port),
                                 asio::redirect_error(asio::use_awaitable, ec));
  } else {
    // Name resolution is not cancellable through the socket, so the deadline (armed after it)
    // bounds the connect only; resolution has the resolver's own timeouts.
    tcp::resolver resolver(executor);
    auto results = co_await resolver.async_resolve(backend.host, std::to_string(backend.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    deadline.set(timeout);
    if (!ec)
      co_await conn->async_connect(results, asio::redirect_error(asio::use_awaitable, ec));
  }
  deadline.adjust(ec);
  deadline.clear();
  if (ec)
    co_return nullptr;
  boost::system::error_code ignored;
  conn->socket().set_option(tcp::no_delay(true), ignored);
  co_return conn;
}

} // namespace semrouter::gateway
