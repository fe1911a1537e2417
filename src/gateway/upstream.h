// Upstream side of the gateway: keep-alive connection pools and backend choice.
// Internal to the gateway module (includes Beast).
#pragma once

#include "gateway/beast.h"

#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "pipeline/exchange.h"

namespace semrouter::gateway {

// A coarse deadline for the operations on one stream. Beast's own per-operation timers cost
// 12-15% of gateway throughput (interleaved A/B runs); instead a per-worker sweep (every
// kSweepInterval) cancels the stream of every deadline that has passed, and the operation's
// operation_aborted is turned into beast::error::timeout. Timeouts fire up to one sweep late.
// Registered in its worker's list for its lifetime; touched only from that worker's thread.
class Deadline {
public:
  using List = std::list<Deadline*>;
  Deadline(List& list, boost::beast::tcp_stream* stream) : list_(list), stream_(stream) {
    list_.push_front(this);
    it_ = list_.begin();
  }
  ~Deadline() { list_.erase(it_); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void watch(boost::beast::tcp_stream* stream) { stream_ = stream; }
  void set(std::chrono::milliseconds d) {
    at_ = core::SteadyClock::now() + d;
    fired_ = false;
  }
  void clear() { at_ = core::TimePoint::max(); }
  // After an operation: an abort caused by this deadline becomes a timeout.
  void adjust(boost::system::error_code& ec) const {
    if (fired_ && ec == boost::asio::error::operation_aborted)
      ec = boost::beast::error::timeout;
  }
  // Called by the sweep.
  void expire_if_due(core::TimePoint now) {
    if (at_ > now)
      return;
    at_ = core::TimePoint::max();
    fired_ = true;
    boost::system::error_code ignored;
    if (stream_)
      stream_->socket().cancel(ignored);
  }

private:
  List& list_;
  List::iterator it_;
  boost::beast::tcp_stream* stream_;
  core::TimePoint at_ = core::TimePoint::max();
  bool fired_ = false;
};
constexpr auto kSweepInterval = std::chrono::milliseconds(50);

// One connection to a backend: plain TCP, or TLS over TCP for https:// backends. It is an
// AsyncStream (Beast's HTTP reads and Asio's writes take it) that dispatches at run time; the
// TCP layer underneath is what deadlines and disconnect watches cancel.
class UpstreamConn {
public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  explicit UpstreamConn(const executor_type& ex)
      : plain_(std::make_unique<boost::beast::tcp_stream>(ex)) {}
  UpstreamConn(const executor_type& ex, std::shared_ptr<boost::asio::ssl::context> ctx)
      : ctx_(std::move(ctx)),
        tls_(std::make_unique<boost::beast::ssl_stream<boost::beast::tcp_stream>>(ex, *ctx_)) {}

  boost::beast::tcp_stream& tcp() { return tls_ ? tls_->next_layer() : *plain_; }
  boost::beast::ssl_stream<boost::beast::tcp_stream>* tls() { return tls_.get(); }
  executor_type get_executor() { return tcp().get_executor(); }

  template <class Buffers, class Token> auto async_read_some(const Buffers& b, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const Buffers& bufs) {
          if (tls_)
            tls_->async_read_some(bufs, std::move(handler));
          else
            plain_->socket().async_read_some(bufs, std::move(handler));
        },
        token, b);
  }
  template <class Buffers, class Token> auto async_write_some(const Buffers& b, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const Buffers& bufs) {
          if (tls_)
            tls_->async_write_some(bufs, std::move(handler));
          else
            plain_->socket().async_write_some(bufs, std::move(handler));
        },
        token, b);
  }

  // The backend's circuit-breaker connection slot, held for as long as the connection lives.
  pipeline::BreakerSlot slot;

private:
  std::shared_ptr<boost::asio::ssl::context> ctx_; // outlives the TLS stream made from it
  std::unique_ptr<boost::beast::tcp_stream> plain_;
  std::unique_ptr<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls_;
};

// TLS client contexts, one per distinct TLS setting (CA file, client certificate, verification),
// built on first use and shared by every worker (an SSL_CTX is safe to share once set up).
class TlsContexts {
public:
  // The context for this backend; on a setup error (unreadable CA or key) null and `error`.
  std::shared_ptr<boost::asio::ssl::context> get(const config::BackendConfig& backend,
                                                 std::string& error);

private:
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<boost::asio::ssl::context>> contexts_;
};

// Idle keep-alive connections per endpoint (scheme, host:port and TLS identity). One per worker
// thread: not thread-safe.
class UpstreamPools {
public:
  // An idle connection to this backend's endpoint, or nullptr.
  std::unique_ptr<UpstreamConn> take(const config::BackendConfig& backend);
  // Returns a connection whose response was read completely and which the server keeps alive.
  void give_back(const config::BackendConfig& backend, std::unique_ptr<UpstreamConn> conn);

private:
  static std::string key(const config::BackendConfig& b);
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConn>>> idle_;
};

// A pooled connection that is still open and has nothing unread (the server has not closed it
// or answered out of turn).
bool looks_alive(UpstreamConn& conn);

// Resolves (asynchronously; every address in turn), connects and, for https://, does the TLS
// handshake (SNI, certificate and host name verification), all within `timeout`. On failure
// `ec` is set and `detail` says what failed (e.g. the certificate check).
boost::asio::awaitable<std::unique_ptr<UpstreamConn>>
connect_backend(const config::BackendConfig& backend, std::chrono::milliseconds timeout,
                Deadline& deadline, TlsContexts& tls, boost::system::error_code& ec,
                std::string& detail);

using pipeline::order_backends;
using pipeline::upstream_base_path;

} // namespace semrouter::gateway
