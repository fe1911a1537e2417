// Upstream side of the gateway: keep-alive connection pools and backend choice.
// Internal to the gateway module (includes Beast).
#pragma once

#include "gateway/beast.h"

#include <chrono>
#include <list>
#include <memory>
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

// Idle keep-alive connections per endpoint (host:port). One per worker thread: not thread-safe.
class UpstreamPools {
public:
  // An idle connection to this backend's endpoint, or nullptr.
  std::unique_ptr<boost::beast::tcp_stream> take(const config::BackendConfig& backend);
  // Returns a connection whose response was read completely and which the server keeps alive.
  void give_back(const config::BackendConfig& backend,
                 std::unique_ptr<boost::beast::tcp_stream> conn);

private:
  static std::string key(const config::BackendConfig& b) {
    return b.host + ":" + std::to_string(b.port);
  }
  std::unordered_map<std::string, std::vector<std::unique_ptr<boost::beast::tcp_stream>>> idle_;
};

// Connects with a timeout (numeric addresses skip the resolver). On failure `ec` is set.
boost::asio::awaitable<std::unique_ptr<boost::beast::tcp_stream>>
connect_backend(const config::BackendConfig& backend, std::chrono::milliseconds timeout,
                Deadline& deadline, boost::system::error_code& ec);

using pipeline::order_backends;
using pipeline::upstream_base_path;

} // namespace semrouter::gateway
