// Upstream side of the gateway: keep-alive connection pools and backend choice.
// Internal to the gateway module (includes Beast).
#pragma once

#include "gateway/beast.h"
#include "gateway/ready_read.h"

#include <chrono>
#include <cstdint>
#include <functional>
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
  void set(std::chrono::milliseconds d) { set_at(core::SteadyClock::now() + d); }
  void set_at(core::TimePoint at) {
    at_ = at;
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
    if (stream_)
      cancel_socket(stream_->socket());
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
      : plain_(std::make_unique<boost::beast::tcp_stream>(ex)),
        poller_(&boost::asio::use_service<PeerClosePoller>(
            boost::asio::query(ex, boost::asio::execution::context))) {
    peer_watch_.socket = &plain_->socket();
  }
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
            async_read_ready(peer_watch_, bufs, std::move(handler));
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

  // Plain TCP, once connected (and never reopened): reads from now on wait for epoll (see
  // ready_read.h). Costs one epoll_ctl, worth it for a connection that will be reused.
  void watch_peer_close() {
    if (!tls_)
      poller_->watch(peer_watch_);
  }
  // Nothing has come in since the last read ended short, as far as the loop has seen (plain TCP
  // watched by the poller only; see quiet_since_short_read).
  bool quiet() { return !tls_ && quiet_since_short_read(peer_watch_); }

  // The backend's circuit-breaker connection slot, held while a request uses the connection: an
  // idle pooled connection holds none (UpstreamPools::give_back releases it), so connections
  // another worker keeps idle never shut this one out.
  pipeline::BreakerSlot slot;
  core::TimePoint idle_since{}; // when it went back to the pool

private:
  std::shared_ptr<boost::asio::ssl::context> ctx_; // outlives the TLS stream made from it
  PeerWatch peer_watch_;                           // plain: outlives the socket, see PeerWatch
  std::unique_ptr<boost::beast::tcp_stream> plain_;
  std::unique_ptr<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls_;
  PeerClosePoller* poller_ = nullptr; // plain: the loop's, for watch_peer_close
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
  // An idle connection to this backend's endpoint that looks alive at `now`, or nullptr.
  std::unique_ptr<UpstreamConn> take(const config::BackendConfig& backend, core::TimePoint now);
  // Returns a connection whose response was read completely and which the server keeps alive.
  void give_back(const config::BackendConfig& backend, std::unique_ptr<UpstreamConn> conn);
  // Returns a connection take() handed out that carried no request: it keeps its idle time
  // (the server's idle timer did not stop either).
  void put_back_unused(const config::BackendConfig& backend, std::unique_ptr<UpstreamConn> conn);
  // Closes the idle connections the server has closed (they would sit in CLOSE_WAIT until
  // reused, and the oldest of a deep pool may never be), those idle longer than their backend's
  // idle_connection_timeout_ms, and all of those whose backend is not in `backends` (a reload
  // removed it or changed its endpoint). The worker calls it about once a second.
  void sweep(const std::vector<config::BackendConfig>& backends, core::TimePoint now);

private:
  // The pool a backend's connections go to; valid until the next call on this thread.
  static const std::string& key(const config::BackendConfig& b);
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConn>>> idle_;
};

// A pooled connection that is still open and has nothing unread (the server has not closed it
// or answered out of turn). One idle for less than `check_after` whose socket has been quiet
// since its answer was read (UpstreamConn::quiet) is taken as alive without a system call; any
// other is peeked at. The backend's liveness_check_after_ms: its default, 250 ms, is below the
// keep-alive timeouts servers ship with (gunicorn 2 s; uvicorn, Node and llama.cpp 5 s).
bool looks_alive(UpstreamConn& conn, core::TimePoint now, std::chrono::milliseconds check_after);

// Host-name lookups for new upstream connections, bounded in time. getaddrinfo blocks and cannot
// be cancelled, and Asio's own async_resolve runs it on one hidden thread per io_context, where a
// silent name server holds every later lookup behind the stuck one (6 s per try) whatever the
// caller's timeout. Here lookups run on a few threads of the resolver's own, so one stuck lookup
// does not queue the others; a caller waits for the result or its budget, whichever comes first.
// Concurrent lookups of the same host and port share one run. A lookup that outlives all its
// callers finishes in the background and its result is dropped; one still queued when all its
// callers have given up is skipped. Nothing is cached. Thread-safe.
class HostResolver {
public:
  struct Result {
    boost::system::error_code ec; // beast::error::timeout: the budget ran out first
    std::vector<boost::asio::ip::tcp::endpoint> endpoints;
  };
  // The blocking lookup, run on a resolver thread (system_lookup; tests inject slow ones).
  using Lookup = std::function<Result(const std::string& host, std::uint16_t port)>;
  static constexpr std::size_t kThreads = 4;

  explicit HostResolver(Lookup lookup = system_lookup, std::size_t threads = kThreads);
  // Drops the lookups still queued and waits for the running ones: the caller ends the lookups
  // it injected first. No resolve() may be waiting.
  ~HostResolver();
  HostResolver(const HostResolver&) = delete;
  HostResolver& operator=(const HostResolver&) = delete;

  // The one connect_backend uses by default, made on first use (a config of IP addresses never
  // starts its threads) and never destroyed, so a lookup stuck at exit does not hold up the exit.
  static HostResolver& shared();
  // getaddrinfo, through Asio's synchronous resolver (its error codes).
  static Result system_lookup(const std::string& host, std::uint16_t port);

  // The addresses of `host` (a name: the caller handles IP literals) with `port`, or the lookup's
  // error, or beast::error::timeout after `budget`. Runs on the caller's executor, which must be
  // a single thread or a strand; the frame may be destroyed while it waits (its loop shut down).
  boost::asio::awaitable<Result> resolve(const std::string& host, std::uint16_t port,
                                         std::chrono::milliseconds budget);

private:
  struct Waiter;
  struct Pending;
  std::shared_ptr<Pending> join(const std::string& host, std::uint16_t port,
                                std::shared_ptr<Waiter> waiter);
  void leave(Pending& pending, const Waiter* waiter);
  void run(const std::string& key, const std::string& host, std::uint16_t port,
           const std::shared_ptr<Pending>& pending);

  Lookup lookup_;
  std::mutex mu_; // guards in_flight_ and every Pending
  std::unordered_map<std::string, std::shared_ptr<Pending>> in_flight_; // by "host:port"
  boost::asio::thread_pool pool_; // last: stopped and joined before the rest goes
};

// Each address gets at least this long (when the budget has it) before the next is tried; two
// sweeps, so that a coarse deadline cannot cut it short to nothing.
constexpr auto kMinAddressShare = std::chrono::milliseconds(100);

// Resolves a host name (on `resolver`), connects and, for https://, does the TLS handshake (SNI,
// certificate and host name verification), all within `timeout`. An IP address in the URL skips
// the lookup. A name's addresses are tried in turn, each but the last with half of what is left
// (at least kMinAddressShare), so one that never answers does not use up the time of the others.
// On failure `ec` is set and `detail` says what failed (the DNS lookup, the certificate check).
// `resolver`: HostResolver::shared() when null (tests inject their own).
boost::asio::awaitable<std::unique_ptr<UpstreamConn>>
connect_backend(const config::BackendConfig& backend, std::chrono::milliseconds timeout,
                Deadline& deadline, TlsContexts& tls, boost::system::error_code& ec,
                std::string& detail, HostResolver* resolver = nullptr);

using pipeline::order_backends;
using pipeline::upstream_base_path;

} // namespace semrouter::gateway
