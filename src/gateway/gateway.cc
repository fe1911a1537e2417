#include "gateway/gateway.h"

#include "gateway/beast.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <deque>
#include <limits>
#include <list>
#include <optional>
#include <pthread.h>
#include <sched.h>
#include <span>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "core/shard.h"
#include "core/strings.h"
#include "dashboard/dashboard.h"
#include "gateway/client_request.h"
#include "gateway/io_batch.h"
#include "gateway/upstream.h"
#include "http/request_parser.h"
#include "http/response_parser.h"
#include "openai/errors.h"
#include "openai/sse.h"
#include "pipeline/access.h"
#include "pipeline/dialects.h"

namespace semrouter::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace hp = ::semrouter::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

namespace {

using namespace std::string_view_literals;

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxUpstreamBodyBytes = 256u << 20; // non-streamed upstream bodies
constexpr size_t kRelayBufferBytes = 16 * 1024;
// Bodies whose routing text is at least this long are routed off the worker's loop (about 5,000
// words: some 100 us of signals; below it, the hop to the routing thread costs more than it saves).
constexpr size_t kOffloadRoutingBytes = 32 * 1024;
constexpr int kRoutingThreadNice = 19;
constexpr auto kClientWriteTimeout = std::chrono::seconds(30);
constexpr auto kDashboardPoll = std::chrono::milliseconds(250);
constexpr auto kDashboardKeepAlive = std::chrono::seconds(15);
using pipeline::kClientClosedRequest;

// The routing thread (named sr-routing) runs under SCHED_IDLE. Under EEVDF a running task keeps
// its CPU for up to a slice against a waking one unless it is SCHED_IDLE, so at nice 19 a long
// prompt's routing still held a worker's short request back by up to about a millisecond;
// a SCHED_IDLE task is preempted at once. It is not starved: the kernel still gives it the
// smallest fair-share weight (3, against nice 19's 15) when the CPU is saturated. Where the
// policy cannot be set, nice 19 is the fallback.
void lower_routing_thread_priority() {
  pthread_setname_np(pthread_self(), "sr-routing");
  sched_param param{};
  param.sched_priority = 0;
  if (const int err = pthread_setschedparam(pthread_self(), SCHED_IDLE, &param); err != 0) {
    // Linux: a thread's nice value is set through its thread id.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kRoutingThreadNice);
    spdlog::warn("routing thread: SCHED_IDLE refused ({}); running at nice {}", std::strerror(err),
                 kRoutingThreadNice);
  }
}

// Hop-by-hop and framing headers are ours to set; every other upstream response header
// (retry-after, x-ratelimit-*, openai-processing-ms, ...) reaches the client.
bool is_hop_by_hop(std::string_view name) {
  static constexpr std::string_view kSkip[] = {
      "connection", "keep-alive",  "transfer-encoding",  "content-length",   "te",
      "trailer",    "upgrade",     "proxy-authenticate", "proxy-connection", "server",
      "date",       "content-type"};
  for (auto k : kSkip) {
    if (core::iequals(name, k))
      return true;
  }
  return false;
}

// A retry-after value: delay-seconds, or an HTTP-date (RFC 9110 section 10.2.3) as a delay from
// `now` (0 when it has passed). Empty when it is neither.
std::optional<std::chrono::milliseconds>
retry_after_delay(std::string_view value, std::chrono::system_clock::time_point now) {
  value = core::trim(value);
  if (uint32_t seconds = 0; core::parse_u32(value, seconds))
    return std::chrono::milliseconds(uint64_t(seconds) * 1000);
  // IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT": the form senders must use.
  const std::string text(value);
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0')
    return std::nullopt;
  const time_t when = timegm(&tm);
  if (when == time_t(-1))
    return std::nullopt;
  // In seconds, clamped to a day: a date in the year 9999 overflows nanoseconds.
  const int64_t left =
      int64_t(when) -
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  return std::chrono::milliseconds(std::clamp<int64_t>(left, 0, 86400) * 1000);
}

// The header names an upstream's Connection fields list ("Connection: x-trace, keep-alive"):
// hop-by-hop, like the fixed list above. Usually empty (keep-alive and close only).
std::vector<std::string_view> connection_options(std::span<const hp::Header> fields) {
  std::vector<std::string_view> out;
  for (const hp::Header& field : fields) {
    if (!core::iequals(field.name, "connection"))
      continue;
    std::string_view v = field.value;
    while (!v.empty()) {
      const size_t comma = v.find(',');
      const std::string_view token = core::trim(v.substr(0, comma));
      if (!token.empty() && !core::iequals(token, "keep-alive") && !core::iequals(token, "close"))
        out.push_back(token);
      v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
    }
  }
  return out;
}

// Watches the client socket while a request is proxied. If the client goes away, the upstream
// connection is closed so the model server stops generating.
struct DisconnectWatch {
  core::TimePoint started;
  tcp::socket* client = nullptr;
  beast::tcp_stream* upstream = nullptr;
  asio::steady_timer* queue_timer = nullptr; // set while the request waits for admission
  bool armed = false;
  bool done = false;
  bool client_gone = false;
};

awaitable<void> watch_client(tcp::socket& client, std::shared_ptr<DisconnectWatch> watch) {
  // co_spawn starts this on a later turn of the loop: the request may have ended in between, and
  // its connection (and `client`) with it. Nothing may touch the socket then.
  if (watch->done)
    co_return;
  boost::system::error_code ec;
  co_await client.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
  if (watch->done)
    co_return;
  if (ec)
    co_return;
  boost::system::error_code ec2;
  size_t available = client.available(ec2);
  if (ec2 || available == 0) { // readable with nothing to read: the peer closed
    watch->client_gone = true;
    if (watch->queue_timer)
      watch->queue_timer->cancel(); // stop waiting for a slot nobody will use
    if (watch->upstream) {
      boost::system::error_code ignored;
      cancel_socket(watch->upstream->socket()); // before the close: see IoBatcher::cancel
      watch->upstream->socket().close(ignored);
    }
  }
  // available > 0: a pipelined request; stop watching, the session will read it.
}

// Watching a socket costs syscalls on every request, and most requests to a fast upstream end
// before a disconnect could matter. So watches are armed lazily: the sweep arms those of
// requests in flight for longer than kWatchDelay. A client that leaves costs the upstream at
// most about that long of wasted work.
constexpr auto kWatchDelay = std::chrono::milliseconds(100);
// How often each worker looks over its idle upstream connections (UpstreamPools::sweep).
constexpr auto kPoolSweepInterval = std::chrono::milliseconds(1000);

// Bytes read from a connection and not yet parsed. The parser keeps offsets until a
// head is complete, so the unparsed bytes may move (compaction) between reads.
class ReadBuffer {
public:
  ReadBuffer() = default;
  explicit ReadBuffer(std::vector<char> storage) : data_(std::move(storage)) {}
  std::string_view view() const { return {data_.data() + begin_, end_ - begin_}; }
  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_)
      begin_ = end_ = 0;
  }
  // Room for at least `min` more bytes at the end.
  asio::mutable_buffer prepare(size_t min) {
    if (data_.size() - end_ < min) {
      if (begin_ > 0) {
        std::memmove(data_.data(), data_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      }
      if (data_.size() - end_ < min)
        data_.resize(std::max(data_.size() * 2, end_ + min));
    }
    return asio::buffer(data_.data() + end_, data_.size() - end_);
  }
  void commit(size_t n) { end_ += n; }
  std::vector<char> release() { return std::move(data_); }

private:
  std::vector<char> data_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

// Per-worker state: one event loop, its upstream pools and its random source. Touched only from
// its own thread.
// An io_context whose shutdown can be run on demand. Shutting down destroys every queued handler,
// and with them the frames of suspended coroutines.
class Loop : public asio::io_context {
public:
  Loop() : asio::io_context(1) {}
  void shutdown_now() { shutdown(); }
};

struct Worker {
  explicit Worker(uint64_t seed) : random(seed) {}
  // Suspended coroutines still queued on the loop own Deadlines, watches and relay buffers that
  // unregister from the lists below when destroyed: destroy them first, while the lists exist
  // (ASan caught the other order at exit).
  ~Worker() { ioc.shutdown_now(); }
  Loop ioc;
  // The loop's watcher of peers' FINs, for async_read_ready (use_service locks on every call).
  PeerClosePoller* poller = &asio::use_service<PeerClosePoller>(ioc);
  // The loop's sends and reads, gathered per pass into one io_uring_enter once started (run()).
  IoBatcher* batcher = &poller->batcher();
  core::Random random;
  UpstreamPools pools;
  std::list<std::shared_ptr<DisconnectWatch>> watches; // requests in flight on this worker
  Deadline::List deadlines;                            // every live Deadline of this worker
  std::vector<std::vector<char>> read_buffers;         // free list; see PooledReadBuffer

  // The store's current snapshot, as this worker holds it. Its copies count references on a
  // control block of the worker's own, not on the one every worker shares (whose cache line the
  // workers would pass back and forth on every request), and taking one needs no lock. A reload
  // is seen at the worker's next request; an idle worker drops the replaced one at its next pool
  // sweep (pool_sweep_loop).
  std::shared_ptr<const pipeline::Snapshot> snapshot(const pipeline::SnapshotStore& store) {
    const uint64_t version = store.version(); // read first: the copy below is at least as new
    if (!local_snapshot || version != local_version) {
      auto holder = std::make_shared<std::shared_ptr<const pipeline::Snapshot>>(store.get());
      local_snapshot = std::shared_ptr<const pipeline::Snapshot>(holder, holder->get());
      local_version = version;
    }
    return local_snapshot;
  }
  std::shared_ptr<const pipeline::Snapshot> local_snapshot;
  uint64_t local_version = 0;
};

// An upstream read buffer borrowed from the worker's free list: a fresh 16 KiB buffer per request
// would be a large malloc/free on every request.
class PooledReadBuffer : public ReadBuffer {
public:
  explicit PooledReadBuffer(Worker& w) : ReadBuffer(take(w)), w_(w) {}
  ~PooledReadBuffer() {
    if (w_.read_buffers.size() < kMaxPooledReadBuffers)
      w_.read_buffers.push_back(release());
  }
  PooledReadBuffer(const PooledReadBuffer&) = delete;
  PooledReadBuffer& operator=(const PooledReadBuffer&) = delete;

private:
  static std::vector<char> take(Worker& w) {
    if (w.read_buffers.empty())
      return {};
    std::vector<char> v = std::move(w.read_buffers.back());
    w.read_buffers.pop_back();
    return v;
  }
  static constexpr size_t kMaxPooledReadBuffers = 256;
  Worker& w_;
};

// The client side of one connection: its stream and the deadline of its current operation.
struct ClientConn {
  ClientConn(tcp::socket socket, Worker& w)
      : stream(std::move(socket)), deadline(w.deadlines, &stream), batcher(*w.batcher) {
    peer_watch.socket = &stream.socket();
  }
  PeerWatch peer_watch; // outlives the socket: see PeerWatch
  beast::tcp_stream stream;
  Deadline deadline;
  IoBatcher& batcher;
  // A write to the client failed or timed out: what it got is cut short, so nothing more may
  // follow on this connection (a pipelined answer would land inside the cut one).
  bool broken = false;
};

// The per-worker sweep: fires due deadlines and arms disconnect watches.
awaitable<void> sweeper(Worker& w) {
  asio::steady_timer timer(w.ioc);
  while (true) {
    timer.expires_after(kSweepInterval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec)
      co_return;
    const auto now = core::SteadyClock::now();
    // Expiring may cancel a stream whose coroutine then resumes later; the list is only walked
    // here.
    for (auto it = w.deadlines.begin(); it != w.deadlines.end();)
      (*it++)->expire_if_due(now);
    const auto cutoff = now - kWatchDelay;
    for (auto& watch : w.watches) {
      if (watch->armed || watch->done || watch->started > cutoff)
        continue;
      watch->armed = true;
      asio::co_spawn(w.ioc, watch_client(*watch->client, watch), asio::detached);
    }
  }
}

using Request = ClientRequest;

// Response heads are written by hand: Beast's serializer machinery measured as a visible share
// of the per-request CPU, and our heads are simple. Values are stripped of CR/LF so a config
// string can never split a header.
void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": "sv);
  const size_t n = value.size();
  if (std::memchr(value.data(), '\r', n) == nullptr &&
      std::memchr(value.data(), '\n', n) == nullptr) {
    out.append(value); // the usual case: one copy, not a byte at a time
  } else {
    for (char c : value)
      if (c != '\r' && c != '\n')
        out.push_back(c);
  }
  out.append("\r\n"sv);
}

// How a response body is delimited.
enum class Framing {
  None,          // 1xx, 204 and 304: no body can follow, so no framing header either
  ContentLength, // the body's size is known
  Chunked,       // HTTP/1.1 streams
  UntilClose,    // HTTP/1.0 streams: the body ends when the connection closes
};

std::string response_head(int status, unsigned version, std::string_view content_type,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          bool keep_alive, Framing framing, size_t content_length = 0,
                          bool no_cache = false,
                          const std::vector<std::pair<std::string, std::string>>* more = nullptr) {
  std::string out;
  out.reserve(256);
  out.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(http::obsolete_reason(static_cast<http::status>(status)));
  out.append("\r\nServer: semrouter\r\n"sv);
  if (!content_type.empty()) // none for a 204 or 304
    append_header(out, "Content-Type", content_type);
  if (no_cache)
    out.append("Cache-Control: no-cache\r\n"sv);
  for (const auto& [k, v] : headers)
    append_header(out, k, v);
  if (more) {
    for (const auto& [k, v] : *more)
      append_header(out, k, v);
  }
  if (version == 10) {
    if (keep_alive)
      out.append("Connection: keep-alive\r\n"sv);
  } else if (!keep_alive) {
    out.append("Connection: close\r\n"sv);
  }
  switch (framing) {
  case Framing::ContentLength:
    out.append("Content-Length: "sv);
    out.append(std::to_string(content_length));
    out.append("\r\n"sv);
    break;
  case Framing::Chunked:
    out.append("Transfer-Encoding: chunked\r\n"sv);
    break;
  case Framing::None:
  case Framing::UntilClose:
    break;
  }
  out.append("\r\n"sv);
  return out;
}

// `buffers` as the message of one sendmsg.
template <size_t N> struct MessageOf {
  explicit MessageOf(const std::array<asio::const_buffer, N>& buffers) {
    for (size_t i = 0; i < N; ++i)
      iov[i] = {const_cast<void*>(buffers[i].data()), buffers[i].size()};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
  }
  MessageOf(const MessageOf&) = delete; // msg points into iov
  MessageOf& operator=(const MessageOf&) = delete;
  std::array<iovec, N> iov{};
  msghdr msg{};
};

// Drops `sent` bytes from the front of `buffers`: true when nothing is left.
template <size_t N> bool consume_sent(std::array<asio::const_buffer, N>& buffers, size_t sent) {
  for (auto& b : buffers) {
    const size_t used = std::min(sent, b.size());
    b += used;
    sent -= used;
  }
  return std::all_of(buffers.begin(), buffers.end(), [](const auto& b) { return b.size() == 0; });
}

// Sends as much of `buffers` as the socket takes now, with one non-blocking sendmsg, and drops
// it from the front of `buffers`; true when nothing is left. A request to a model server, and most
// answers, fit the socket's send buffer whole: then they skip Asio's write operation and its trip
// through the event loop. `ec` is set on an error other than a full socket (EPIPE and ECONNRESET
// read as they do from Asio's writes).
template <size_t N>
bool send_now(int fd, std::array<asio::const_buffer, N>& buffers, boost::system::error_code& ec) {
  const MessageOf<N> m(buffers);
  ssize_t n;
  do
    n = ::sendmsg(fd, &m.msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      ec.assign(errno, boost::system::system_category());
    return false;
  }
  return consume_sent(buffers, static_cast<size_t>(n));
}

// send_now, as one of the calls the loop hands to the kernel together at the end of its pass
// (IoBatcher; only while batcher.active(), which callers check to spare a coroutine frame
// otherwise); a cancel_socket() first ends it with operation_aborted in `ec`.
template <size_t N>
awaitable<bool> send_soon(IoBatcher& batcher, int fd, std::array<asio::const_buffer, N>& buffers,
                          boost::system::error_code& ec) {
  const MessageOf<N> m(buffers);
  boost::system::error_code sec;
  const size_t n =
      co_await batcher.async_sendmsg(fd, &m.msg, asio::redirect_error(use_awaitable, sec));
  if (sec) {
    if (sec != asio::error::would_block && sec != asio::error::try_again)
      ec = sec;
    co_return false;
  }
  co_return consume_sent(buffers, n);
}

constexpr std::string_view kCrLf = "\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";

// One piece of a relayed body as the buffers of one sendmsg: "<hex size>\r\n", the data and
// "\r\n" (chunked framing), or the data alone. `parts` points into `head`: not copyable.
struct ChunkOut {
  char head[2 * sizeof(size_t) + 2];
  std::array<asio::const_buffer, 3> parts;
  ChunkOut(std::string_view data, bool chunked) {
    if (!chunked) {
      parts = {asio::const_buffer(data.data(), data.size()), asio::const_buffer(),
               asio::const_buffer()};
      return;
    }
    char* end = std::to_chars(head, head + sizeof head - 2, data.size(), 16).ptr;
    *end++ = '\r';
    *end++ = '\n';
    parts = {asio::const_buffer(head, static_cast<size_t>(end - head)),
             asio::const_buffer(data.data(), data.size()),
             asio::const_buffer(kCrLf.data(), kCrLf.size())};
  }
  ChunkOut(const ChunkOut&) = delete;
  ChunkOut& operator=(const ChunkOut&) = delete;
};
using HeaderList = std::vector<std::pair<std::string, std::string>>;
// Named constants: g++ 12 miscompiles braced temporaries inside co_await expressions.
const HeaderList kAllowGet{{"allow", "GET"}};
const HeaderList kAllowPost{{"allow", "POST"}};
const HeaderList kNoHeaders{};
// Request headers passed on to the upstream (besides authorization, handled separately).
constexpr std::array<std::string_view, 6> kForwardedHeaders{"x-request-id",   "accept",
                                                            "openai-beta",    "openai-organization",
                                                            "openai-project", "idempotency-key"};
// The W3C trace context: continued (a new parent id) when tracing is on, else passed on as is.
constexpr std::array<std::string_view, 2> kTraceHeaders{"traceparent", "tracestate"};

std::string_view target_path(std::string_view target) {
  // Absolute-form ("http://host/v1/models"), what a client set up for a forward proxy sends,
  // names the same path (RFC 9112 section 3.2.2: a server must accept it).
  if (!target.starts_with('/')) {
    if (const auto scheme = target.find("://"); scheme != std::string_view::npos && scheme > 0) {
      const auto slash = target.find_first_of("/?", scheme + 3);
      target = slash == std::string_view::npos ? std::string_view("/")
               : target[slash] == '?'          ? std::string_view("/")
                                               : target.substr(slash);
    }
  }
  auto q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

// The client's request headers by lower-case name, for metadata signals and sessions. Beast
// compares field names case-insensitively.
pipeline::HeaderLookup header_lookup(const Request& req) {
  return [&req](std::string_view name) { return req.find(name); };
}

const HeaderList kBearerChallenge{{"www-authenticate", "Bearer"}};

// The Host header for a backend: brackets around an IPv6 address, no port when it is the
// scheme's default.
// "Host: host[:port]\r\n" for a backend, appended in place (no string built per request). The
// host comes from the config's URL, which holds no CR or LF.
void append_host_header(std::string& out, const config::BackendConfig& b) {
  const bool v6 = b.host.find(':') != std::string::npos;
  out.append("Host: "sv);
  if (v6)
    out.push_back('[');
  out.append(b.host);
  if (v6)
    out.push_back(']');
  if (b.port != (b.tls ? 443 : 80)) {
    char digits[8];
    const auto r = std::to_chars(digits, digits + sizeof digits, b.port);
    out.push_back(':');
    out.append(digits, r.ptr);
  }
  out.append("\r\n"sv);
}

} // namespace

struct Gateway::Impl {
  explicit Impl(pipeline::Runtime& runtime)
      : rt(runtime), store(runtime.store), m(runtime.metrics),
        connections(
            runtime.registry.gauge("semrouter_client_connections", "Open client connections.")
                .with({})),
        dashboard(runtime) {}

  pipeline::Runtime& rt;
  pipeline::SnapshotStore& store;
  pipeline::RequestMetrics& m;
  metrics::Gauge& connections;
  // Gateway requests from their head being read to their answer's last byte: what a drain waits
  // for (the in-flight gauge misses a request that is uploading, queued, or being written out).
  // Declared before the workers: their sessions' frames, destroyed with them, decrement it. Every
  // request of every worker writes it: on a cache line of its own, not on the one that holds the
  // members every request reads.
  alignas(64) std::atomic<int64_t> active_requests{0};
  alignas(64) std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> gateway_acceptor; // null in admin-only mode
  std::unique_ptr<tcp::acceptor> admin_acceptor;
  std::function<void()> reload_callback;
  std::function<void()> on_drain;
  std::unique_ptr<asio::signal_set> signals;
  // The drain a signal starts runs here (it waits out the grace period off the loops); run()
  // joins it before returning, so the Gateway is never destroyed under it.
  std::thread shutdown_thread;
  std::atomic<bool> draining{false};
  std::atomic<bool> stopped{false};
  std::atomic<size_t> next_worker{0};
  // Routing of bodies over kOffloadRoutingBytes: one thread at the lowest priority (SCHED_IDLE,
  // see lower_routing_thread_priority), so that long prompts yield the CPU to the workers' short
  // requests at once; under saturation they slow down, never starve.
  asio::thread_pool routing_pool{1};

  awaitable<void> accept_loop(tcp::acceptor& acceptor, bool admin);
  awaitable<void> session(tcp::socket socket, Worker& w, bool admin);
  awaitable<bool> handle(ClientConn& client, Worker& w, Request& req, bool admin);
  awaitable<bool> proxy(ClientConn& client, Worker& w, Request& req, pipeline::Api api);
  // resilience.health_checks: every interval, one GET per backend (on worker 0's loop).
  awaitable<void> health_check_loop(Worker& w);
  awaitable<void> pool_sweep_loop(Worker& w);
  awaitable<void> health_check(Worker& w, std::shared_ptr<const pipeline::Snapshot> snap,
                               const config::BackendConfig& backend);
  TlsContexts tls; // shared by the workers
  dashboard::Dashboard dashboard;
  // A dashboard event stream: polled every kDashboardPoll until the client leaves or the router
  // drains; a comment line keeps idle streams (and their proxies) from timing out.
  awaitable<void> stream_dashboard(ClientConn& client, const Request& req,
                                   const dashboard::Request& dreq);
  awaitable<void> send(ClientConn& client, const Request& req, http::status status,
                       std::string body, std::string_view content_type, bool keep_alive,
                       const std::vector<std::pair<std::string, std::string>>& headers = {},
                       const std::vector<std::pair<std::string, std::string>>* more = nullptr);
  awaitable<void> send_error(ClientConn& client, const Request& req, const openai::ApiError& e,
                             bool keep_alive,
                             const std::vector<std::pair<std::string, std::string>>& headers = {});
};

Gateway::Gateway(pipeline::Runtime& runtime) : impl_(std::make_unique<Impl>(runtime)) {}

Gateway::~Gateway() = default;

uint16_t Gateway::port() const {
  return impl_->gateway_acceptor ? impl_->gateway_acceptor->local_endpoint().port() : 0;
}
uint16_t Gateway::admin_port() const {
  return impl_->admin_acceptor ? impl_->admin_acceptor->local_endpoint().port() : 0;
}

void Gateway::on_reload_signal(std::function<void()> callback) {
  impl_->reload_callback = std::move(callback);
}

void Gateway::on_drain(std::function<void()> callback) {
  impl_->on_drain = std::move(callback);
}

core::Status Gateway::listen(const config::ListenerConfig* gw, const config::ListenerConfig& admin,
                             uint32_t workers) {
  uint64_t seed = impl_->store.get()->config->server.random_seed;
  if (seed == 0)
    seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  for (uint32_t i = 0; i < std::max<uint32_t>(workers, 1); ++i)
    impl_->workers.push_back(std::make_unique<Worker>(seed + i * 0x9e3779b97f4a7c15ULL));
  auto open = [&](const config::ListenerConfig& l,
                  const char* what) -> core::StatusOr<std::unique_ptr<tcp::acceptor>> {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(l.address, ec);
    if (ec)
      return core::make_error(core::ErrorCode::InvalidArgument,
                              fmt::format("{} listener: invalid address \"{}\"", what, l.address));
    auto acc = std::make_unique<tcp::acceptor>(impl_->workers.front()->ioc);
    tcp::endpoint ep(address, l.port);
    acc->open(ep.protocol(), ec);
    if (!ec)
      acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec)
      acc->bind(ep, ec);
    if (!ec)
      acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return core::make_error(core::ErrorCode::Unavailable,
                              fmt::format("{} listener: cannot listen on {}:{}: {}", what,
                                          l.address, l.port, ec.message()));
    return acc;
  };
  if (gw) {
    auto g = open(*gw, "gateway");
    if (!g)
      return tl::unexpected(g.error());
    impl_->gateway_acceptor = std::move(*g);
  }
  auto a = open(admin, "admin");
  if (!a)
    return tl::unexpected(a.error());
  impl_->admin_acceptor = std::move(*a);
  // Signal handlers go in now, not in run(): a SIGHUP sent as soon as the caller announces
  // readiness must not kill the process. Signals are queued until the loop runs.
  Impl& im = *impl_;
  im.signals = std::make_unique<asio::signal_set>(im.workers.front()->ioc, SIGINT, SIGTERM, SIGHUP);
  wait_for_signal();
  return {};
}

void Gateway::wait_for_signal() {
  Impl& im = *impl_;
  im.signals->async_wait([this, &im](const boost::system::error_code& ec, int sig) {
    if (ec)
      return;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading the config");
      if (im.reload_callback)
        im.reload_callback();
      wait_for_signal();
      return;
    }
    // Draining from here (shutdown() below says so again): an answer written after this line is
    // logged closes its connection, whenever the shutdown thread gets to run.
    im.draining = true;
    spdlog::info("signal {}: shutting down", sig);
    // On worker 0's loop, which run() drives on its own thread: run() joins it there.
    if (!im.shutdown_thread.joinable())
      im.shutdown_thread = std::thread([this, &im] {
        const auto& server = im.store.get()->config->server;
        shutdown(server.drain_timeout_ms, server.drain_delay_ms);
      });
  });
}

void Gateway::run() {
  Impl& im = *impl_;
  Worker& w0 = *im.workers.front();
  if (im.gateway_acceptor)
    asio::co_spawn(w0.ioc, im.accept_loop(*im.gateway_acceptor, false), asio::detached);
  asio::co_spawn(w0.ioc, im.accept_loop(*im.admin_acceptor, true), asio::detached);

  for (auto& w : im.workers) {
    asio::co_spawn(w->ioc, sweeper(*w), asio::detached);
    asio::co_spawn(w->ioc, im.pool_sweep_loop(*w), asio::detached);
  }
  asio::co_spawn(w0.ioc, im.health_check_loop(w0), asio::detached);
  // The routing thread counts into a shard of its own, after the workers'.
  asio::post(im.routing_pool, [n = im.workers.size()] {
    lower_routing_thread_priority();
    core::set_thread_shard(n);
  });

  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>>> guards;
  for (auto& w : im.workers)
    guards.push_back(std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
        w->ioc.get_executor()));
  // Each worker writes its own shard of the shared counters (core/shard.h), whichever threads
  // touched them first.
  const bool io_uring = im.store.get()->config->server.io_uring;
  auto start_batching = [io_uring](Worker& w, size_t i) {
    if (!io_uring) {
      if (i == 0)
        spdlog::info("server.io_uring is false: sends and reads are one system call each");
      return;
    }
    std::string why;
    if (!w.batcher->start(why))
      spdlog::info("worker {}: sends and reads are one system call each (io_uring batching is "
                   "unavailable: {})",
                   i, why);
  };
  for (size_t i = 1; i < im.workers.size(); ++i)
    threads.emplace_back([&im, i, &start_batching] {
      core::set_thread_shard(i);
      start_batching(*im.workers[i], i);
      im.workers[i]->ioc.run();
    });
  // Guards keep idle loops alive; shutdown() stops the loops directly.
  core::set_thread_shard(0);
  start_batching(w0, 0);
  w0.ioc.run();
  for (auto& w : im.workers)
    w->ioc.stop();
  for (auto& t : threads)
    t.join();
  if (im.shutdown_thread.joinable())
    im.shutdown_thread.join();
  // The loops are gone: waiters still queued could never be woken, and their wake-ups hold
  // timers of those loops. Dropped now, before the loops are destroyed.
  im.rt.admission.close();
}

void Gateway::shutdown(uint32_t grace_ms, uint32_t delay_ms) {
  Impl& im = *impl_;
  if (im.stopped.exchange(true))
    return;
  im.draining = true; // /ready answers 503 from now on
  if (delay_ms > 0) {
    spdlog::info("draining: /ready answers 503; new connections are accepted for {} ms more",
                 delay_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  }
  if (im.on_drain)
    im.on_drain();
  // Close the acceptors on their own loop.
  asio::post(im.workers.front()->ioc, [&im] {
    boost::system::error_code ec;
    if (im.gateway_acceptor)
      im.gateway_acceptor->close(ec);
    if (im.admin_acceptor)
      im.admin_acceptor->close(ec);
    if (im.signals)
      im.signals->cancel(ec);
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while ((im.active_requests.load() > 0 || im.m.inflight.value() > 0) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (auto& w : im.workers)
    w->ioc.stop();
}

awaitable<void> Gateway::Impl::health_check_loop(Worker& w) {
  asio::steady_timer timer(w.ioc);
  while (!stopped) {
    auto snap = store.get();
    const config::HealthCheckConfig& hc = snap->config->resilience.health_checks;
    if (hc.interval_ms > 0) {
      rt.upstreams_for(*snap);
      for (const auto& b : snap->config->backends)
        if (b.health_check_enabled)
          asio::co_spawn(w.ioc, health_check(w, snap, b), asio::detached);
    }
    // Without checks, look again now and then: a reload may turn them on.
    timer.expires_after(std::chrono::milliseconds(hc.interval_ms > 0 ? hc.interval_ms : 1000));
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

// Closes the worker's idle upstream connections that the server closed, that timed out, or whose
// backend a reload removed.
awaitable<void> Gateway::Impl::pool_sweep_loop(Worker& w) {
  asio::steady_timer timer(w.ioc);
  while (!stopped) {
    timer.expires_after(kPoolSweepInterval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec)
      co_return;
    w.pools.sweep(store.get()->config->backends, core::SteadyClock::now());
    // A worker without requests lets go of the snapshot a reload replaced (its models with it).
    if (w.local_snapshot && store.version() != w.local_version)
      w.local_snapshot.reset();
  }
}

awaitable<void> Gateway::Impl::health_check(Worker& w,
                                            std::shared_ptr<const pipeline::Snapshot> snap,
                                            const config::BackendConfig& backend) {
  const auto timeout = std::chrono::milliseconds(snap->config->resilience.health_checks.timeout_ms);
  Deadline deadline(w.deadlines, nullptr);
  boost::system::error_code ec;
  std::string detail;
  auto conn = co_await connect_backend(backend, timeout, deadline, tls, ec, detail);
  bool ok = false;
  if (!ec) {
    std::string head = "GET " + backend.health_check_path + " HTTP/1.1\r\n";
    append_host_header(head, backend);
    head.append("User-Agent: semrouter-health-check\r\nConnection: close\r\n\r\n");
    deadline.watch(&conn->tcp());
    deadline.set(timeout);
    co_await asio::async_write(*conn, asio::buffer(head), asio::redirect_error(use_awaitable, ec));
    http::response_parser<http::empty_body> parser;
    parser.skip(true); // the body does not matter
    beast::flat_buffer buf;
    if (!ec)
      co_await http::async_read_header(*conn, buf, parser, asio::redirect_error(use_awaitable, ec));
    deadline.adjust(ec);
    if (!ec) {
      const int status = parser.get().result_int();
      ok = status >= 200 && status < 300;
      if (!ok)
        detail = "GET " + backend.health_check_path + " answered " + std::to_string(status);
    }
    deadline.watch(nullptr);
  }
  if (ec && detail.empty())
    detail = ec.message();
  rt.upstreams.record_check(*rt.upstreams.backend(backend.name), ok, detail, snap->generation);
}

awaitable<void> Gateway::Impl::accept_loop(tcp::acceptor& acceptor, bool admin) {
  while (true) {
    Worker& w = *workers[next_worker.fetch_add(1) % workers.size()];
    boost::system::error_code ec;
    tcp::socket socket =
        co_await acceptor.async_accept(w.ioc, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open())
        co_return;
      spdlog::warn("accept failed: {}", ec.message());
      // Out of file descriptors and similar: back off briefly instead of spinning.
      asio::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(w.ioc, session(std::move(socket), w, admin), asio::detached);
  }
}

awaitable<void> Gateway::Impl::send(ClientConn& client, const Request& req, http::status status,
                                    std::string body, std::string_view content_type,
                                    bool keep_alive,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    const std::vector<std::pair<std::string, std::string>>* more) {
  // A 1xx, 204 or 304 has no body and no framing; the answer to HEAD has the head a GET would
  // get (its Content-Length included) and no body (RFC 9110 sections 6.4.1 and 9.3.2).
  const int code = static_cast<int>(status);
  const bool bodiless = !hp::status_has_body(code);
  keep_alive = keep_alive && !draining; // a draining router closes after each answer: it says so
  std::string head = response_head(
      code, req.version(), bodiless ? std::string_view() : content_type, headers, keep_alive,
      bodiless ? Framing::None : Framing::ContentLength, body.size(), false, more);
  if (bodiless || req.method() == hp::Method::Head)
    body.clear();
  std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
  boost::system::error_code ec;
  const int client_fd = client.stream.socket().native_handle();
  const bool whole = client.batcher.active()
                         ? co_await send_soon(client.batcher, client_fd, buffers, ec)
                         : send_now(client_fd, buffers, ec);
  if (!whole && !ec) {
    client.deadline.set(kClientWriteTimeout);
    co_await asio::async_write(client.stream.socket(), buffers,
                               asio::redirect_error(use_awaitable, ec));
    client.deadline.clear();
  }
  if (ec)
    client.broken = true;
}

awaitable<void>
Gateway::Impl::send_error(ClientConn& client, const Request& req, const openai::ApiError& e,
                          bool keep_alive,
                          const std::vector<std::pair<std::string, std::string>>& headers) {
  co_await send(client, req, static_cast<http::status>(e.status), openai::error_body(e),
                "application/json", keep_alive, headers);
}

awaitable<void> Gateway::Impl::stream_dashboard(ClientConn& client, const Request& req,
                                                const dashboard::Request& dreq) {
  const bool chunked = req.version() != 10;
  uint64_t cursor = 0;
  std::string data = dashboard.stream_open(dreq, cursor);
  std::string head = response_head(200, req.version(), "text/event-stream", kNoHeaders, false,
                                   chunked ? Framing::Chunked : Framing::UntilClose, 0, true);
  // `raw`: the head and the last chunk, written as they are.
  auto write = [&](std::string_view text, bool raw) -> awaitable<bool> {
    ChunkOut out(text, chunked && !raw);
    boost::system::error_code ec;
    client.deadline.set(kClientWriteTimeout);
    co_await asio::async_write(client.stream.socket(), out.parts,
                               asio::redirect_error(use_awaitable, ec));
    client.deadline.adjust(ec);
    client.deadline.clear();
    co_return !ec;
  };
  if (!co_await write(head, true))
    co_return;
  if (!data.empty() && !co_await write(data, false))
    co_return;
  asio::steady_timer timer(client.stream.get_executor());
  auto idle_since = core::SteadyClock::now();
  while (!draining) {
    timer.expires_after(kDashboardPoll);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec)
      co_return;
    data = dashboard.stream_next(cursor);
    const auto now = core::SteadyClock::now();
    if (data.empty() && now - idle_since >= kDashboardKeepAlive)
      data = ": keep-alive\n\n";
    if (data.empty())
      continue;
    idle_since = now;
    if (!co_await write(data, false))
      co_return;
  }
  if (chunked)
    co_await write(kLastChunk, true);
}

namespace {

constexpr size_t kReadChunkBytes = 16 * 1024;

// Why reading a request ended without one to serve.
enum class ReadEnd {
  Request, // a request is ready
  Closed,  // the client closed (or stalled, or the read failed): nothing to answer
  Error,   // malformed or over a limit: answered with `status`, then the connection closes
};

} // namespace

awaitable<void> Gateway::Impl::session(tcp::socket socket, Worker& w, bool admin) {
  ClientConn client(std::move(socket), w);
  beast::tcp_stream& stream = client.stream;
  connections.add(1);
  // From the worker's copy of the snapshot (a new connection takes no lock either), not kept: a
  // long keep-alive connection must not hold a snapshot a reload replaced.
  uint64_t max_body = 0;
  std::chrono::milliseconds header_timeout{0};
  {
    const auto snap = w.snapshot(store);
    max_body = snap->config->server.max_body_bytes;
    header_timeout = std::chrono::milliseconds(snap->config->server.client_header_timeout_ms);
  }
  hp::Options options;
  options.max_header_bytes = kMaxHeaderBytes;
  options.max_body_bytes = max_body;
  hp::RequestParser parser(options);
  ReadBuffer in;
  ClientRequest req;
  // Counts this connection's current request in active_requests (gateway port only: the admin
  // port's dashboard streams never end, and a drain must not wait for them).
  struct Active {
    std::atomic<int64_t>& n;
    bool on = false;
    void start() {
      if (!on)
        n.fetch_add(1);
      on = true;
    }
    void stop() {
      if (on)
        n.fetch_sub(1);
      on = false;
    }
    ~Active() { stop(); }
  } active{active_requests};
  for (bool first = true;; first = false) {
    // From the second request on: a keep-alive client, whose reads then wait for epoll after
    // their first short read (see ready_read.h), so from its third request on no read tries a
    // recv that finds nothing. A client that sends one request and closes never costs the
    // epoll_ctl.
    if (!first && client.peer_watch.fd == -1)
      w.poller->watch(client.peer_watch);
    active.stop();
    parser.reset();
    req.clear();
    // The whole request (head and body) within client_header_timeout_ms of the first read;
    // that also bounds how long an idle keep-alive connection stays open.
    client.deadline.set(header_timeout);
    ReadEnd end = ReadEnd::Closed;
    while (true) {
      const hp::ParseResult r = parser.parse(in.view());
      if (r.event == hp::Event::Head) {
        if (!admin)
          active.start();
        req.set_head(parser, in.view().substr(0, r.consumed));
        in.consume(r.consumed);
        // curl and others wait for "100 Continue" before sending a large body.
        if (parser.expects_continue()) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          boost::system::error_code ec;
          co_await asio::async_write(stream.socket(), asio::buffer(kContinue),
                                     asio::redirect_error(use_awaitable, ec));
          if (ec)
            break;
        }
        continue;
      }
      if (r.event == hp::Event::Body) {
        req.body().append(r.body);
        in.consume(r.consumed);
        continue;
      }
      if (r.event == hp::Event::Done) {
        in.consume(r.consumed);
        end = ReadEnd::Request;
        break;
      }
      if (r.event == hp::Event::Error) {
        end = ReadEnd::Error;
        break;
      }
      // NeedMore
      in.consume(r.consumed);
      boost::system::error_code ec;
      const size_t n = co_await async_read_ready(client.peer_watch, in.prepare(kReadChunkBytes),
                                                 asio::redirect_error(use_awaitable, ec));
      in.commit(n);
      if (ec) {
        // The peer closed, reset or stalled past the deadline: a half-sent request has nobody
        // to answer to.
        break;
      }
    }
    client.deadline.clear();
    if (end == ReadEnd::Closed)
      break;
    if (end == ReadEnd::Error) {
      const hp::ParseError pe = parser.error();
      const int status = hp::error_status(pe);
      ClientRequest plain;
      openai::ApiError e;
      if (pe == hp::ParseError::BodyTooLarge) {
        m.client_errors.with({"body_too_large"}).inc();
        e = openai::body_too_large(max_body);
      } else {
        m.client_errors.with({"malformed_http"}).inc();
        e = openai::invalid_request(
            pe == hp::ParseError::UnsupportedVersion
                ? std::string("HTTP version not supported: semrouter speaks HTTP/1.0 and HTTP/1.1")
                : fmt::format("malformed HTTP request: {}", hp::error_name(pe)),
            "", std::string(hp::error_name(pe)));
        e.status = status;
      }
      co_await send_error(client, plain, e, false);
      break;
    }
    // A bug must not end in silence: the request is answered 500 and logged, the connection
    // closed (whatever was half-written on it).
    bool keep = false;
    std::string failure;
    try {
      keep = co_await handle(client, w, req, admin);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty()) {
      spdlog::error("{} {}: internal error: {}", req.method_string(), req.target(), failure);
      m.client_errors.with({"internal_error"}).inc();
      co_await send_error(client, req, openai::internal_error("internal error: " + failure), false);
      break;
    }
    if (!keep || draining || client.broken)
      break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  connections.add(-1);
}

namespace {

enum class Endpoint {
  Health,
  Ready,
  Metrics,
  ConfigStatus,
  RouteDryRun,
  Classify,
  ChatCompletions,
  Completions,
  Messages,
  Responses,
  Embeddings,
  Models,
  Keys,
  Upstreams
};

struct EndpointSpec {
  std::string_view path;
  Endpoint endpoint;
  hp::Method verb;
  bool on_gateway_port;
  bool on_admin_port;
};

constexpr EndpointSpec kEndpoints[] = {
    {"/health", Endpoint::Health, hp::Method::Get, true, true},
    {"/ready", Endpoint::Ready, hp::Method::Get, true, true},
    {"/v1/chat/completions", Endpoint::ChatCompletions, hp::Method::Post, true, false},
    {"/v1/completions", Endpoint::Completions, hp::Method::Post, true, false},
    {"/v1/messages", Endpoint::Messages, hp::Method::Post, true, false},
    {"/v1/responses", Endpoint::Responses, hp::Method::Post, true, false},
    {"/v1/embeddings", Endpoint::Embeddings, hp::Method::Post, true, false},
    {"/v1/models", Endpoint::Models, hp::Method::Get, true, false},
    {"/metrics", Endpoint::Metrics, hp::Method::Get, false, true},
    {"/api/v1/config", Endpoint::ConfigStatus, hp::Method::Get, false, true},
    {"/api/v1/route", Endpoint::RouteDryRun, hp::Method::Post, false, true},
    {"/api/v1/classify", Endpoint::Classify, hp::Method::Post, false, true},
    {"/api/v1/keys", Endpoint::Keys, hp::Method::Get, false, true},
    {"/api/v1/upstreams", Endpoint::Upstreams, hp::Method::Get, false, true},
};

const EndpointSpec* find_endpoint(std::string_view path, bool admin) {
  for (const auto& e : kEndpoints) {
    if (e.path == path && (admin ? e.on_admin_port : e.on_gateway_port))
      return &e;
  }
  return nullptr;
}

} // namespace

awaitable<bool> Gateway::Impl::handle(ClientConn& client, Worker& w, Request& req, bool admin) {
  const bool keep = req.keep_alive();
  std::string_view path = target_path(std::string_view(req.target().data(), req.target().size()));
  // The admin port's bearer token (probes of /health and /ready stay open, and so do the
  // dashboard's page and static files, which hold no data: a browser cannot send a bearer header
  // when it loads a page, and the page asks for the token before its first API call).
  if (admin && path != "/health" && path != "/ready" && !dashboard::Dashboard::is_public(path)) {
    const std::string& token = store.get()->config->auth.admin_token;
    if (!token.empty()) {
      std::string_view auth = req["authorization"];
      std::string_view given;
      if (auth.size() > 7 && core::iequals(auth.substr(0, 7), "bearer "))
        given = core::trim(auth.substr(7));
      if (!auth::constant_time_equals(given, token)) {
        m.client_errors.with({"admin_unauthorized"}).inc();
        openai::ApiError e{401, "authentication_error", "invalid_admin_token",
                           given.empty() ? "the admin API needs \"Authorization: Bearer <token>\" "
                                           "(auth.admin_token_env / auth.admin_token_file)"
                                         : "the admin token is not valid",
                           ""};
        co_await send_error(client, req, e, keep, kBearerChallenge);
        co_return keep;
      }
    }
  }
  if (admin) {
    std::string_view target(req.target().data(), req.target().size());
    const auto q = target.find('?');
    const bool head = req.method() == hp::Method::Head; // served as GET, without the body
    const dashboard::Request dreq{
        head ? std::string_view("GET") : std::string_view(req.method_string()), path,
        q == std::string_view::npos ? std::string_view() : target.substr(q + 1), req.body()};
    if (dashboard.is_stream(path)) {
      if (head) { // the stream's head alone
        const std::string h = response_head(200, req.version(), "text/event-stream", kNoHeaders,
                                            false, Framing::None, 0, true);
        boost::system::error_code ec;
        client.deadline.set(kClientWriteTimeout);
        co_await asio::async_write(client.stream.socket(), asio::buffer(h),
                                   asio::redirect_error(use_awaitable, ec));
        client.deadline.clear();
      } else {
        co_await stream_dashboard(client, req, dreq);
      }
      co_return false;
    }
    if (auto reply = dashboard.handle(dreq)) {
      co_await send(client, req, static_cast<http::status>(reply->status), std::move(reply->body),
                    reply->content_type, keep, reply->headers);
      co_return keep;
    }
  }
  if (admin && (path == "/api/v1/cache" || path.starts_with("/api/v1/cache/"))) {
    std::string_view target(req.target().data(), req.target().size());
    std::string_view query;
    if (auto q = target.find('?'); q != std::string_view::npos)
      query = target.substr(q);
    auto [status, body] = pipeline::cache_admin(
        rt.cache, *store.get(), std::string_view(req.method_string()), path, query, req.body());
    co_await send(client, req, static_cast<http::status>(status), std::move(body),
                  "application/json", keep);
    co_return keep;
  }
  const EndpointSpec* spec = find_endpoint(path, admin);
  if (!spec) {
    m.client_errors.with({"unknown_path"}).inc();
    co_await send_error(client, req, openai::not_found_path(path), keep);
    co_return keep;
  }
  if (req.method() != spec->verb &&
      !(req.method() == hp::Method::Head && spec->verb == hp::Method::Get)) {
    const bool get = spec->verb == hp::Method::Get;
    co_await send_error(client, req,
                        openai::method_not_allowed(req.method_string(), path, get ? "GET" : "POST"),
                        keep, get ? kAllowGet : kAllowPost);
    co_return keep;
  }

  switch (spec->endpoint) {
  case Endpoint::Health:
    co_await send(client, req, http::status::ok, "{\"status\":\"ok\"}", "application/json", keep);
    co_return keep;
  case Endpoint::Ready:
    if (draining) {
      co_await send(client, req, http::status::service_unavailable, "{\"status\":\"draining\"}",
                    "application/json", false);
      co_return false;
    }
    co_await send(client, req, http::status::ok, "{\"status\":\"ready\"}", "application/json",
                  keep);
    co_return keep;
  case Endpoint::Metrics:
    rt.cache.refresh_metrics();
    rt.upstreams_for(*store.get()).refresh_gauges(core::SteadyClock::now());
    co_await send(client, req, http::status::ok, rt.registry.expose(),
                  "text/plain; version=0.0.4; charset=utf-8", keep);
    co_return keep;
  case Endpoint::ConfigStatus: {
    auto snap = store.get();
    std::string body = fmt::format(
        "{{\"generation\":{},\"reloads_ok\":{},\"reloads_failed\":{},\"last_error\":{}}}",
        snap->generation, store.reloads_ok(), store.reloads_failed(),
        store.last_error().empty() ? "null" : core::json_string(store.last_error()));
    co_await send(client, req, http::status::ok, std::move(body), "application/json", keep);
    co_return keep;
  }
  case Endpoint::RouteDryRun: {
    auto snap = store.get();
    pipeline::HeaderLookup headers = header_lookup(req);
    pipeline::RouteOutcome out = rt.dry_run(*snap, headers, req.body(), w.random);
    if (out.action == pipeline::RouteAction::Reply && !out.blocked) {
      co_await send(client, req, static_cast<http::status>(out.reply_status), out.reply_body,
                    "application/json", keep);
      co_return keep;
    }
    co_await send(client, req, http::status::ok, pipeline::dry_run_body(out), "application/json",
                  keep);
    co_return keep;
  }
  case Endpoint::Classify: {
    // Admin only, and fast (tens to hundreds of microseconds on the embedded defaults), so it
    // runs on the admin loop.
    pipeline::HeaderLookup headers = header_lookup(req);
    auto [status, body] = pipeline::classify(
        *store.get(), req.body(), rt.meta_for(openai::RequestKind::ChatCompletions, headers));
    co_await send(client, req, static_cast<http::status>(status), body, "application/json", keep);
    co_return keep;
  }
  case Endpoint::ChatCompletions:
    co_return co_await proxy(client, w, req, pipeline::Api::Chat);
  case Endpoint::Completions:
    co_return co_await proxy(client, w, req, pipeline::Api::Completions);
  case Endpoint::Messages:
    co_return co_await proxy(client, w, req, pipeline::Api::Messages);
  case Endpoint::Responses:
    co_return co_await proxy(client, w, req, pipeline::Api::Responses);
  case Endpoint::Embeddings:
    co_return co_await proxy(client, w, req, pipeline::Api::Embeddings);
  case Endpoint::Models: {
    auto snap = store.get();
    auth::Guard& guard = rt.auth_for(*snap);
    if (guard.enabled()) {
      auth::Identity id = guard.authenticate(auth::presented_key(header_lookup(req)));
      if (id.verdict != auth::Verdict::Ok) {
        co_await send_error(client, req, pipeline::key_error(id.verdict), keep, kBearerChallenge);
        co_return keep;
      }
    }
    co_await send(client, req, http::status::ok, snap->models_json, "application/json", keep);
    co_return keep;
  }
  case Endpoint::Keys: {
    rt.auth_for(*store.get());
    co_await send(client, req, http::status::ok, rt.auth.usage_json(), "application/json", keep);
    co_return keep;
  }
  case Endpoint::Upstreams: {
    auto snap = store.get();
    std::string body = rt.upstreams_for(*snap).json(*snap->config, core::SteadyClock::now());
    co_await send(client, req, http::status::ok, std::move(body), "application/json", keep);
    co_return keep;
  }
  }
  co_return keep;
}

namespace {

const char* classify_error(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout)
    return "timeout";
  if (ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
      ec == asio::error::network_unreachable || ec == asio::error::host_not_found)
    return "connect";
  if (ec == asio::error::connection_reset || ec == asio::error::eof ||
      ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec == asio::error::broken_pipe)
    return "reset";
  return "protocol";
}

} // namespace

awaitable<bool> Gateway::Impl::proxy(ClientConn& client, Worker& w, Request& req,
                                     pipeline::Api api) {
  beast::tcp_stream& stream = client.stream;
  const auto start = core::SteadyClock::now();
  const bool keep = req.keep_alive();
  auto snap = w.snapshot(store); // this request finishes on it, whatever reloads happen
  const config::Config& config = *snap->config;
  pipeline::HeaderLookup headers = header_lookup(req);
  // Tracing and the access log (inert when both are off). Destroyed last, after the answer.
  std::string client_address;
  if (rt.tracer || rt.access_log) {
    boost::system::error_code aec;
    const auto ep = stream.socket().remote_endpoint(aec);
    if (!aec)
      client_address = ep.address().to_string();
  }
  pipeline::RequestTrace trace(rt, headers,
                               {"gateway", "POST", target_path(req.target()),
                                pipeline::api_name(api), client_address, req["host"]},
                               start);
  auto reject = [&](const openai::ApiError& e, const char* reason,
                    const HeaderList& extra = kNoHeaders) -> awaitable<void> {
    trace.refused(e.status, reason);
    m.client_errors.with({reason}).inc();
    co_await send(client, req, static_cast<http::status>(e.status),
                  pipeline::error_body_for(api, e), "application/json", keep, extra);
  };
  // Errors in the client's API's own shape (OpenAI or Anthropic).
  auto send_api_error = [&](const openai::ApiError& e, const HeaderList& extra) -> awaitable<void> {
    co_await send(client, req, static_cast<http::status>(e.status),
                  pipeline::error_body_for(api, e), "application/json", keep, extra);
  };
  // Client API keys: who is calling, may they, and how much budget is left.
  auth::Guard& guard = rt.auth_for(*snap);
  pipeline::Access access = pipeline::check_caller(guard, headers, req.body().size());
  if (!access.ok) {
    co_await reject(access.error, access.reason.c_str(), access.headers);
    co_return keep;
  }
  pipeline::ClientRequest creq;
  {
    openai::ApiError e;
    if (!pipeline::read_client_request(api, req.body(), creq, e)) {
      co_await reject(e, "invalid_request");
      co_return keep;
    }
  }
  // The usual route is built in place (no default outcome to move over); a long prompt's signals
  // take up to about a millisecond, so they run on the routing thread while this worker's other
  // connections keep flowing, and the request resumes here.
  const bool offload =
      api != pipeline::Api::Embeddings && creq.routing_body().size() >= kOffloadRoutingBytes;
  pipeline::RouteOutcome out =
      api == pipeline::Api::Embeddings ? pipeline::route_embeddings(*snap, req.body())
      : offload                        ? pipeline::RouteOutcome{}
                : rt.route(*snap, creq.kind(), headers, creq.routing_body(), w.random, true,
                           access.caller_for_routing(), &trace);
  if (offload) {
    core::Random random(w.random.next());
    out = co_await asio::co_spawn(
        routing_pool,
        [&]() -> awaitable<pipeline::RouteOutcome> {
          co_return rt.route(*snap, creq.kind(), headers, creq.routing_body(), random, true,
                             access.caller_for_routing(), &trace);
        },
        use_awaitable);
  }
  if (!pipeline::check_route(guard, access, out)) {
    co_await reject(access.error, access.reason.c_str());
    co_return keep;
  }
  if (out.action == pipeline::RouteAction::Reply) {
    const bool sse = out.reply_content_type.starts_with("text/event-stream");
    co_await send(client, req, static_cast<http::status>(out.reply_status),
                  pipeline::reply_for(api, out.reply_status, out.reply_body, sse, creq.echo),
                  out.reply_content_type, keep, out.response_headers);
    co_return keep;
  }
  pipeline::attach_key(access, out);
  const config::ModelConfig& routed_model = *out.model;
  const config::ResilienceConfig& res = config.resilience;

  // From here on the client socket is watched (lazily, see kWatchDelay): a client that leaves
  // while its request waits for admission or is proxied is noticed.
  auto watch = std::make_shared<DisconnectWatch>();
  watch->started = start;
  watch->client = &stream.socket();
  w.watches.push_front(watch);
  struct WatchStop {
    Worker& w;
    std::list<std::shared_ptr<DisconnectWatch>>::iterator it;
    beast::tcp_stream& stream;
    ~WatchStop() {
      auto watch = *it;
      w.watches.erase(it);
      watch->done = true;
      watch->upstream = nullptr;
      // Completes the pending wait; the watcher sees done and returns without touching anything.
      if (watch->armed && !watch->client_gone)
        cancel_socket(stream.socket());
    }
  } watch_stop{w, w.watches.begin(), stream};

  // Admission: a slot under the global and the model's concurrency limits, or a bounded wait
  // (without limits, nothing to take: no lock on the hot path).
  pipeline::AdmissionTicket admitted;
  rt.admission.configure(config, snap->generation); // a reload's limits, queued waiters included
  if (res.limits.max_concurrent > 0 || routed_model.max_concurrent > 0) {
    struct Wake {
      asio::steady_timer timer;
      explicit Wake(asio::io_context& ioc) : timer(ioc) {}
    };
    auto wake = std::make_shared<Wake>(w.ioc);
    auto entry = rt.admission.enter(config, routed_model, out.priority, [wake, &w] {
      asio::post(w.ioc, [wake] { wake->timer.cancel(); });
    });
    if (entry.verdict == pipeline::Admission::Verdict::Admitted) {
      admitted = std::move(entry.ticket);
    } else {
      uint32_t wait_ms =
          entry.verdict == pipeline::Admission::Verdict::Queued ? res.limits.queue_timeout_ms : 0;
      if (auto d = headers(res.limits.deadline_header); d && wait_ms > 0) {
        uint32_t client_ms = 0;
        if (core::parse_u32(*d, client_ms))
          wait_ms = std::min(wait_ms, client_ms);
      }
      const bool model_limit = std::string_view(entry.limit) == "model";
      const char* reason = "queue_full";
      if (entry.verdict == pipeline::Admission::Verdict::Queued) {
        const auto queued_at = core::SteadyClock::now();
        wake->timer.expires_after(std::chrono::milliseconds(wait_ms));
        boost::system::error_code wec;
        watch->queue_timer = &wake->timer;
        co_await wake->timer.async_wait(asio::redirect_error(use_awaitable, wec));
        watch->queue_timer = nullptr;
        admitted = rt.admission.claim(entry.waiter);
        if (!admitted)
          admitted = rt.admission.abandon(entry.waiter);
        rt.admission.observe_wait(core::seconds_between(queued_at, core::SteadyClock::now()));
        if (watch->client_gone) {
          // Nobody to answer: give any slot straight back and close (counted, traced as 499).
          admitted = {};
          rt.admission.count_rejected(entry.limit, "client_gone");
          trace.refused(499, "client_gone");
          co_return false;
        }
        reason = "timeout";
      }
      if (!admitted) {
        rt.admission.count_rejected(entry.limit, reason);
        const HeaderList retry_after{{"retry-after", "1"}};
        const std::string why =
            std::string_view(reason) == "timeout"
                ? fmt::format("waited {} ms in the queue without a slot", wait_ms)
                : std::string("the wait queue is full");
        const openai::ApiError e = model_limit
                                       ? openai::model_overloaded(routed_model.name, why)
                                       : openai::overloaded("The router is at its concurrency "
                                                            "limit: " +
                                                            why + "; retry shortly.");
        co_await reject(e, model_limit ? "model_overloaded" : "overloaded", retry_after);
        co_return keep;
      }
    }
  }

  // The response phase's accounting (in flight, time to first token, usage, the request count).
  pipeline::Exchange exchange(rt, out, start, &trace);
  auto finish = [&](int status) { exchange.finish(status); };
  pipeline::UpstreamHealth& health = rt.upstreams_for(*snap);
  health.request_started();
  struct RequestDone {
    pipeline::UpstreamHealth& h;
    ~RequestDone() { h.request_finished(); }
  } request_done{health};

  // What to try, in order: the model's available backends (a weighted pick first), then the
  // decision's fallback models'.
  const std::vector<pipeline::UpstreamHealth::Target> plan =
      health.plan(config, routed_model, out.fallback, w.random, start);

  std::string query;
  if (auto q = req.target().find('?'); q != std::string_view::npos)
    query = std::string(req.target().substr(q));
  const pipeline::ClientCredentials credentials{req["authorization"], req["x-api-key"],
                                                guard.enabled()};
  std::string last_error = "no backend configured";
  bool timed_out = false;
  // The last attempt's 429 or 503, when a retry was to follow it: if none can (no time, every
  // breaker full), the client gets that status, not a 502.
  int refused_status = 0;
  std::chrono::milliseconds refused_after{0};
  bool all_breaking = !plan.empty();
  // Retries: each needs one of max_retries and a ticket from the budget, held until the retry
  // ends. Only failures before any byte reached the client are retried.
  uint32_t retries = 0;
  pipeline::RetryTicket retry_ticket;
  auto may_retry = [&](const char* reason) {
    if (retries >= res.retries.max_retries)
      return false;
    pipeline::RetryTicket t = health.try_retry(reason);
    if (!t)
      return false;
    retry_ticket = std::move(t);
    ++retries;
    return true;
  };
  const config::BackendConfig* previous = nullptr;
  uint32_t same_backend_retries = 0;
  // What each backend's retry-after asked: no attempt goes to it before then (another backend
  // goes at once).
  std::vector<std::pair<const config::BackendConfig*, core::TimePoint>> not_before;
  pipeline::BreakerSlot request_slot;
  pipeline::AdmissionTicket fallback_slot; // a fallback model's concurrency slot, while on it
  pipeline::RouteOutcome retargeted;       // the routed request for a fallback model
  auto drop_fallback_header = [&out] {
    std::erase_if(out.response_headers,
                  [](const auto& h) { return h.first == "x-semrouter-fallback"; });
  };
  size_t next = 0;
  bool fallback_full = false; // a fallback was passed over: its model's max_concurrent was reached
  for (uint32_t attempt = 0; attempt <= res.retries.max_retries && !plan.empty(); ++attempt) {
    // The next target whose circuit breaker has room (the plan repeats when retries outnumber
    // it).
    const pipeline::UpstreamHealth::Target* target = nullptr;
    pipeline::BackendHealth* bh = nullptr; // the target's, kept alive by `plan`
    request_slot = {}; // the last attempt's slot is free again: a retry on its backend may take it
    fallback_slot = {};
    for (size_t k = 0; k < plan.size() && !target; ++k) {
      const auto& t = plan[(next + k) % plan.size()];
      // A fallback model's max_concurrent holds for the requests it takes over too.
      if (t.model != &routed_model) {
        auto ticket = rt.admission.try_model(*t.model);
        if (!ticket) {
          fallback_full = true;
          continue;
        }
        fallback_slot = std::move(*ticket);
      }
      request_slot = health.acquire(*t.backend, *t.health, pipeline::BreakerLimit::Requests);
      if (request_slot) {
        target = &t;
        bh = t.health.get();
        next = (next + k + 1) % plan.size();
      } else {
        fallback_slot = {};
      }
    }
    if (!target)
      break; // every breaker is at its limit
    all_breaking = false;
    const config::BackendConfig* backend = target->backend;
    const config::ModelConfig& model = *target->model;
    if (attempt > 0) {
      // Backoff: none when moving to another backend (the failure was the other one's); capped
      // exponential with full jitter on the same one; at least what a retry-after asked for.
      auto wait = backend == previous ? health.backoff(same_backend_retries++, w.random)
                                      : std::chrono::milliseconds(0);
      for (const auto& [b, t] : not_before)
        if (b == backend)
          wait = std::max(wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    t - core::SteadyClock::now()));
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          start + std::chrono::milliseconds(backend->timeouts.total_ms) - core::SteadyClock::now());
      if (wait >= left)
        break; // no time left for another try
      if (wait.count() > 0) {
        asio::steady_timer pause(w.ioc, wait);
        boost::system::error_code pec;
        co_await pause.async_wait(asio::redirect_error(use_awaitable, pec));
      }
      if (watch->client_gone) {
        finish(kClientClosedRequest);
        co_return false;
      }
    }
    previous = backend;
    timed_out = false; // the final error tells of the last attempt's failure
    refused_status = 0;
    const bool fallback = &model != &routed_model;
    // The accounting and the header follow the model of this attempt (a retry may come back to
    // the routed model after a fallback failed).
    exchange.fallback_to(model);
    drop_fallback_header();
    if (fallback) {
      if (retargeted.model != &model) {
        retargeted = out;
        retargeted.model = &model;
        retargeted.body = pipeline::retarget(config, out, model);
      }
      out.response_headers.emplace_back("x-semrouter-fallback", model.name);
    }
    const pipeline::RouteOutcome& routed = fallback ? retargeted : out;

    const auto& t = backend->timeouts;
    const auto deadline = start + std::chrono::milliseconds(t.total_ms);
    auto remaining = [&](uint32_t ms) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                        core::SteadyClock::now());
      return std::max(std::chrono::milliseconds(1), std::min(std::chrono::milliseconds(ms), left));
    };
    pipeline::UpstreamCall call;
    {
      openai::ApiError e;
      if (!pipeline::build_upstream_call(*backend, model, creq, routed, query, credentials, call,
                                         e)) {
        finish(e.status);
        co_await send(client, req, static_cast<http::status>(e.status),
                      pipeline::error_body_for(api, e), "application/json", keep,
                      out.response_headers);
        co_return keep;
      }
    }
    // A chat stream's usage is asked for whether the client asked or not (the accounting needs
    // it); a client that did not ask gets the stream without it (usage_filter below).
    const bool hide_usage = out.stream && pipeline::request_stream_usage(api, *backend, call);

    // The request head is written by hand (see response_head); the body is sent from call.body.
    std::string up_head;
    up_head.reserve(512);
    up_head.append("POST ");
    up_head.append(call.path);
    up_head.append(" HTTP/1.1\r\n");
    append_host_header(up_head, *backend);
    up_head.append("Content-Type: application/json\r\nUser-Agent: semrouter\r\n");
    for (const auto& [k, v] : call.headers)
      append_header(up_head, k, v);
    // The client's headers we pass on, less what the decision's headers plugin removes or
    // replaces; then the plugin's own.
    auto overridden = [&](std::string_view name) {
      for (const auto& r : out.upstream_remove_headers)
        if (r == name)
          return true;
      for (const auto& [k, v] : out.upstream_set_headers)
        if (k == name)
          return true;
      return false;
    };
    for (std::string_view h : kForwardedHeaders) {
      if (auto v = req[h]; !v.empty() && !overridden(h))
        append_header(up_head, h, v);
    }
    // This attempt's span is the upstream's parent; tracestate goes on unchanged.
    const std::string traceparent =
        trace.upstream_attempt(*backend, model.name, model.upstream_model, call.path, fallback);
    if (trace.propagating()) {
      if (!overridden("traceparent"))
        append_header(up_head, "traceparent", traceparent);
      if (!trace.tracestate().empty() && !overridden("tracestate"))
        append_header(up_head, "tracestate", trace.tracestate());
    } else {
      for (std::string_view h : kTraceHeaders)
        if (auto v = req[h]; !v.empty() && !overridden(h))
          append_header(up_head, h, v);
    }
    if (call.wire == pipeline::Api::Messages)
      if (auto v = req["anthropic-beta"]; !v.empty() && !overridden("anthropic-beta"))
        append_header(up_head, "anthropic-beta", v);
    for (const auto& [k, v] : out.upstream_set_headers)
      append_header(up_head, k, v);
    up_head.append("Content-Length: ");
    up_head.append(std::to_string(call.body.size()));
    up_head.append("\r\n\r\n");
    const std::array<asio::const_buffer, 2> up_buffers{asio::buffer(up_head),
                                                       asio::buffer(call.body)};
    pipeline::AnswerCodec codec(api, call.wire,
                                api != pipeline::Api::Chat || call.wire == pipeline::Api::Chat ||
                                    !out.stream || pipeline::wants_stream_usage(req.body()));

    // A pooled connection is reused only when it looks alive (upstream.cc). If writing the
    // request to it fails, the server never had it: it goes again on a fresh connection. A
    // failure after the request went out is not resent here: the server may have read it.
    bool retry_next = false; // this attempt failed in a way worth another attempt
    for (int send_try = 0; send_try < 2; ++send_try) {
      // Declared before `conn`, so it is destroyed after it: the sweep never sees a deadline that
      // points at a stream that no longer exists.
      Deadline upstream_deadline(w.deadlines, nullptr);
      boost::system::error_code ec;
      bool reused = false;
      std::unique_ptr<UpstreamConn> conn =
          send_try == 0 ? w.pools.take(*backend, core::SteadyClock::now()) : nullptr;
      if (conn) {
        // In use again: it takes a connection slot (idle, it held none).
        conn->slot = health.acquire(*backend, *bh, pipeline::BreakerLimit::Connections);
        if (conn->slot)
          reused = true;
        else // the limit is reached (the path below reports it): the connection stays pooled
          w.pools.put_back_unused(*backend, std::move(conn));
      }
      if (!conn) {
        pipeline::BreakerSlot pending =
            health.acquire(*backend, *bh, pipeline::BreakerLimit::Pending);
        pipeline::BreakerSlot connection =
            pending ? health.acquire(*backend, *bh, pipeline::BreakerLimit::Connections)
                    : pipeline::BreakerSlot();
        if (!connection) {
          last_error = fmt::format("{}: circuit breaker open ({} limit)", backend->name,
                                   pending ? "connections" : "pending");
          retry_next = may_retry("breaker");
          all_breaking = !retry_next;
          break;
        }
        std::string detail;
        conn = co_await connect_backend(*backend, remaining(t.connect_ms), upstream_deadline, tls,
                                        ec, detail);
        if (ec) {
          if (watch->client_gone) {
            finish(kClientClosedRequest);
            co_return false;
          }
          const char* kind = !detail.empty() && detail.starts_with("TLS") ? "tls"
                             : detail.starts_with("backend ")             ? "tls_config"
                                                                          : classify_error(ec);
          exchange.upstream_error(backend->name, kind);
          trace.upstream_failed(kind);
          health.record_failure(*bh, kind, core::SteadyClock::now());
          const std::string why = detail.empty() ? ec.message() : detail;
          last_error =
              fmt::format("{} ({}:{}): {}", backend->name, backend->host, backend->port, why);
          timed_out = ec == beast::error::timeout;
          spdlog::warn("upstream {}: connect failed: {}", backend->name, why);
          retry_next = may_retry("connect");
          break;
        }
        conn->slot = std::move(connection);
        conn->watch_peer_close(); // a connection for the pool; health checks' go unwatched
      }
      watch->upstream = &conn->tcp();
      upstream_deadline.watch(&conn->tcp());
      // first_byte_ms covers writing the request and reading the whole response head.
      const core::TimePoint head_until = core::SteadyClock::now() + remaining(t.first_byte_ms);
      upstream_deadline.set_at(head_until);
      if (auto rest = up_buffers;
          conn->tls() != nullptr ||
          (!(w.batcher->active()
                 ? co_await send_soon(*w.batcher, conn->tcp().socket().native_handle(), rest, ec)
                 : send_now(conn->tcp().socket().native_handle(), rest, ec)) &&
           !ec))
        co_await asio::async_write(*conn, rest, asio::redirect_error(use_awaitable, ec));
      upstream_deadline.adjust(ec);
      if (ec && reused && ec != beast::error::timeout && !watch->client_gone) {
        watch->upstream = nullptr;
        continue; // the server had closed it: the request never went out
      }
      // The answer, parsed by src/http as it arrives: pieces of the body are views into `ubuf`,
      // relayed before the next read.
      hp::ResponseParser parser;
      PooledReadBuffer ubuf(w);
      boost::system::error_code rec; // why the last read failed
      size_t upstream_bytes = 0;     // read from this connection for this attempt
      // The next parsed event, by `until`: an absolute time, so bytes that trickle in without
      // completing an event (a head or a chunk line one byte at a time) do not push it back.
      auto next_event = [&](core::TimePoint until) -> awaitable<hp::ParseResult> {
        while (true) {
          const hp::ParseResult r = parser.parse(ubuf.view());
          if (r.event != hp::Event::NeedMore)
            co_return r;
          ubuf.consume(r.consumed);
          upstream_deadline.set_at(until);
          const size_t n = co_await conn->async_read_some(ubuf.prepare(kRelayBufferBytes),
                                                          asio::redirect_error(use_awaitable, rec));
          upstream_deadline.adjust(rec);
          ubuf.commit(n);
          upstream_bytes += n;
          if (rec) {
            if (rec == asio::error::eof || rec == asio::ssl::error::stream_truncated) {
              const hp::ParseResult e = parser.on_eof();
              if (e.event == hp::Event::Done) {
                rec = {};
                co_return e;
              }
            }
            co_return hp::ParseResult{hp::Event::Error, 0, {}};
          }
        }
      };
      // What went wrong reading the answer: a read error, or what the parser refused.
      auto read_failure = [&]() -> std::pair<const char*, std::string> {
        if (rec)
          return {classify_error(rec), rec.message()};
        if (parser.error() == hp::ParseError::Truncated || parser.error() == hp::ParseError::None)
          return {"reset", "the connection closed in the middle of the answer"};
        return {"protocol", fmt::format("malformed response: {}", hp::error_name(parser.error()))};
      };
      hp::ParseResult head_event;
      if (!ec)
        head_event = co_await next_event(head_until);
      if (watch->client_gone) {
        finish(kClientClosedRequest);
        co_return false;
      }
      // A pooled connection the server closed just as it was reused (its idle timeout) looks
      // like one it read the request on and then failed: a POST is sent again only when the
      // client's Idempotency-Key makes that safe (as Go's HTTP client does).
      if (!ec && head_event.event != hp::Event::Head && reused && upstream_bytes == 0 &&
          (rec == asio::error::eof || rec == asio::error::connection_reset ||
           rec == asio::ssl::error::stream_truncated) &&
          !req["idempotency-key"].empty()) {
        watch->upstream = nullptr;
        continue;
      }
      if (ec || head_event.event != hp::Event::Head) {
        watch->upstream = nullptr;
        auto [kind, why] =
            ec ? std::pair<const char*, std::string>(classify_error(ec), ec.message())
               : read_failure();
        exchange.upstream_error(backend->name, kind);
        trace.upstream_failed(kind);
        health.record_failure(*bh, kind, core::SteadyClock::now());
        last_error = fmt::format("{}: {}", backend->name, why);
        timed_out = ec == beast::error::timeout || rec == beast::error::timeout;
        spdlog::warn("upstream {}: {}", backend->name, why);
        break; // the request went out: not retried
      }

      // We have a response header. Its views point into `ubuf` until the next read.
      const int status = parser.status();
      trace.upstream_status(status);
      if (status >= 500)
        health.record_failure(*bh, "status_5xx", core::SteadyClock::now());
      else
        health.record_success(*bh);
      // 429, 502, 503 and 504 say the request was not served: another attempt (after what
      // retry-after asks, if it asks for no more than max_retry_after_ms) may be.
      if (status == 429 || status == 502 || status == 503 || status == 504) {
        std::chrono::milliseconds asked{0};
        bool within = true;
        if (auto ra = parser.header("retry-after"); !ra.empty()) {
          // A value that is neither seconds nor an HTTP-date is relayed, not taken as 0.
          const auto delay = retry_after_delay(ra, std::chrono::system_clock::now());
          asked = delay.value_or(std::chrono::milliseconds(0));
          within = delay && asked.count() <= res.retries.max_retry_after_ms;
        }
        // A retry on this backend that could not start before total_ms ends would only turn
        // this answer into a 502: the client gets it as it is. (A retry on another backend
        // goes at once.)
        const bool same_next = plan[next % plan.size()].backend == backend;
        within =
            within && (!same_next || asked < std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 deadline - core::SteadyClock::now()));
        const std::string reason = "status_" + std::to_string(status);
        if (within && may_retry(reason.c_str())) {
          exchange.upstream_error(backend->name, status == 429 ? "status_429" : "status_5xx");
          trace.upstream_failed(reason);
          last_error = fmt::format("{}: answered {}", backend->name, status);
          if (status == 429 || status == 503) {
            refused_status = status;
            refused_after = asked;
          }
          if (asked.count() > 0) {
            const auto until = core::SteadyClock::now() + asked;
            auto it = std::find_if(not_before.begin(), not_before.end(),
                                   [&](const auto& nb) { return nb.first == backend; });
            if (it == not_before.end())
              not_before.emplace_back(backend, until);
            else
              it->second = std::max(it->second, until);
          }
          retry_next = true;
          watch->upstream = nullptr;
          break; // dropping the connection discards the rest of this answer
        }
      }
      // From here on the request is committed to this backend.
      std::string content_type(parser.header("content-type"));
      const bool event_stream =
          core::starts_with(core::ascii_lower(content_type), "text/event-stream");
      exchange.response_head(status, event_stream);
      if (status >= 500)
        exchange.upstream_error(backend->name, "status_5xx");
      std::vector<std::pair<std::string, std::string>> headers;
      const std::vector<std::string_view> listed = connection_options(parser.headers());
      for (const hp::Header& field : parser.headers()) {
        // An upstream's own x-semrouter-* headers would contradict ours: ours win.
        if (is_hop_by_hop(field.name) ||
            (field.name.size() >= 12 && core::iequals(field.name.substr(0, 12), "x-semrouter-")))
          continue;
        if (std::any_of(listed.begin(), listed.end(),
                        [&](std::string_view o) { return core::iequals(o, field.name); }))
          continue; // named in Connection: hop-by-hop too (RFC 9110 section 7.6.1)
        headers.emplace_back(field.name, field.value);
      }
      ubuf.consume(head_event.consumed);
      // routing's own (x-semrouter-*) follow: response_head() writes both lists
      if (content_type.empty())
        content_type = "application/json";
      if (fallback)
        health.count_fallback(out.decision, routed_model.name, model.name);
      bool upstream_ok = true;

      if (parser.framing() == hp::Framing::None) { // a 204 or 304
        // No body can follow: the client gets the status and the headers, unframed, whatever its
        // API (a translated error body would be a body the client's parser does not expect). The
        // connection is not pooled: its parser stops at the head.
        watch->upstream = nullptr;
        upstream_deadline.clear();
        upstream_deadline.watch(nullptr);
        finish(status);
        co_await send(client, req, static_cast<http::status>(status), std::string(), "", keep,
                      headers, &out.response_headers);
        co_return keep;
      }

      if (!event_stream) {
        std::string body;
        bool complete = false, failed = false;
        while (true) {
          const hp::ParseResult piece =
              co_await next_event(core::SteadyClock::now() + remaining(t.idle_ms));
          if (piece.event == hp::Event::Body) {
            body.append(piece.body);
            ubuf.consume(piece.consumed);
            if (body.size() > kMaxUpstreamBodyBytes)
              break;
            continue;
          }
          complete = piece.event == hp::Event::Done;
          failed = !complete;
          if (complete)
            ubuf.consume(piece.consumed);
          break;
        }
        if (watch->client_gone) {
          finish(kClientClosedRequest);
          co_return false;
        }
        if (!complete) {
          auto [kind, why] = failed ? read_failure()
                                    : std::pair<const char*, std::string>(
                                          "too_large", "the body exceeds the relay limit");
          exchange.upstream_error(backend->name, kind);
          if (failed)
            health.record_failure(*bh, kind, core::SteadyClock::now());
          auto e = rec == beast::error::timeout
                       ? openai::upstream_timeout(model.name, "no complete response in time")
                       : openai::upstream_broken(model.name, backend->name, why);
          finish(e.status);
          co_await send_api_error(e, out.response_headers);
          co_return keep;
        }
        // The client's API and the chat form the accounting reads.
        const bool as_is = codec.passthrough() && codec.pivot_is_upstream();
        std::string pivot;
        std::string answer = as_is ? std::string() : codec.body(status, body, pivot);
        exchange.body(codec.pivot_is_upstream() ? std::string_view(body) : std::string_view(pivot));
        if (as_is)
          answer = std::move(body);
        else if (!codec.passthrough())
          content_type = "application/json";
        watch->upstream = nullptr;
        upstream_deadline.clear();
        upstream_deadline.watch(nullptr); // the pooled connection is no longer ours to cancel
        if (parser.keep_alive() && ubuf.view().empty())
          w.pools.give_back(*backend, std::move(conn));
        finish(status);
        co_await send(client, req, static_cast<http::status>(status), std::move(answer),
                      content_type, keep, headers, &out.response_headers);
        co_return keep;
      }

      // Streaming: relay every piece as it arrives, as one HTTP chunk each.
      // HTTP/1.0 has no chunked encoding: such a client gets the stream until the connection
      // closes.
      const bool chunked = req.version() != 10;
      const bool stream_keep = keep && chunked && !draining;
      std::string head = response_head(status, req.version(), content_type, headers, stream_keep,
                                       chunked ? Framing::Chunked : Framing::UntilClose, 0,
                                       /*no_cache=*/true, &out.response_headers);
      boost::system::error_code wec;
      client.deadline.set(kClientWriteTimeout);
      // Each write below goes out with send_now when the socket takes it whole (nearly always:
      // a chunk is a few hundred bytes), through Asio only when it is full.
      const int client_fd = stream.socket().native_handle();
      auto write_all = [&]<size_t N>(std::array<asio::const_buffer, N> parts) -> awaitable<void> {
        if (!send_now(client_fd, parts, wec) && !wec)
          co_await asio::async_write(stream.socket(), parts,
                                     asio::redirect_error(use_awaitable, wec));
      };
      co_await write_all(std::array{asio::const_buffer(asio::buffer(head))});
      client.deadline.adjust(wec);
      // Cleared after each write: a deadline left armed would fire while the upstream is quiet,
      // cancel the client socket, and end the disconnect watch with it (a client leaving after
      // that would go unnoticed until idle_ms).
      client.deadline.clear();
      auto write_chunk = [&](std::string_view data) -> awaitable<void> {
        ChunkOut chunk(data, chunked);
        co_await write_all(chunk.parts);
      };
      auto write_last_chunk = [&]() -> awaitable<void> {
        if (chunked)
          co_await write_all(std::array{asio::const_buffer(asio::buffer(kLastChunk))});
      };
      // as_is: the client gets the upstream's bytes; with hide_usage, less the usage it did not
      // ask for (an event split across reads is held until it is whole).
      const bool as_is = codec.passthrough() && codec.pivot_is_upstream();
      // The usage filter also taps the stream for the exchange (one pass over the bytes).
      const bool filter_taps = as_is && hide_usage;
      openai::StreamUsageFilter usage_filter;
      std::string to_client, pivot;
      while (!wec) {
        // What is buffered already is parsed here: next_event (a coroutine frame) only to read.
        hp::ParseResult next = parser.parse(ubuf.view());
        if (next.event == hp::Event::NeedMore) {
          ubuf.consume(next.consumed);
          next = co_await next_event(core::SteadyClock::now() + remaining(t.idle_ms));
        }
        if (next.event == hp::Event::Done) {
          ubuf.consume(next.consumed);
          break;
        }
        if (next.event != hp::Event::Body) {
          upstream_ok = false;
          break;
        }
        {
          std::string_view piece = next.body;
          if (!as_is) {
            to_client.clear();
            pivot.clear();
            codec.stream(piece, to_client, pivot);
          } else if (hide_usage) {
            to_client.clear();
            usage_filter.feed(piece, to_client, &exchange);
          }
          if (!filter_taps)
            exchange.stream_bytes(codec.pivot_is_upstream() ? piece : std::string_view(pivot));
          const bool whole_piece = as_is && !hide_usage;
          if (whole_piece || !to_client.empty()) {
            client.deadline.set(std::chrono::milliseconds(t.idle_ms));
            // Inline, not write_chunk: no coroutine frame per chunk when the socket takes it.
            ChunkOut chunk(whole_piece ? piece : std::string_view(to_client), chunked);
            if (!send_now(client_fd, chunk.parts, wec) && !wec)
              co_await asio::async_write(stream.socket(), chunk.parts,
                                         asio::redirect_error(use_awaitable, wec));
            client.deadline.adjust(wec);
            client.deadline.clear();
          }
          ubuf.consume(next.consumed);
        }
      }
      watch->upstream = nullptr;
      if (filter_taps && (wec || watch->client_gone || !upstream_ok)) {
        // Broken off: an event whose blank line was a lone CR is complete, though the filter
        // waits for the next byte to send it. The tap counts it (as SseParser would); the
        // client, which gets no more of this stream, does not.
        std::string dropped;
        usage_filter.finish(dropped, &exchange);
      }
      if (wec || watch->client_gone) {
        // The client went away: dropping `conn` closes the upstream connection, which is how an
        // OpenAI-compatible server learns to stop generating.
        finish(kClientClosedRequest);
        co_return false;
      }
      if (!upstream_ok) {
        auto [kind, why] = read_failure();
        exchange.upstream_error(backend->name, kind);
        health.record_failure(*bh, kind, core::SteadyClock::now());
        spdlog::warn("upstream {}: stream broken off: {}", backend->name, why);
        auto e = rec == beast::error::timeout
                     ? openai::upstream_timeout(model.name, "the stream stalled")
                     : openai::upstream_broken(model.name, backend->name, why);
        std::string event = pipeline::stream_error_event(api, e);
        client.deadline.set(kClientWriteTimeout);
        co_await write_chunk(event);
        co_await write_last_chunk();
        client.deadline.clear();
        finish(e.status);
        // The client saw a 200 head: the error event, which the SDKs raise, is how it learns
        // the stream broke off (OpenAI's API reports errors mid-stream the same way).
        co_return false;
      }
      if (!as_is || hide_usage) {
        to_client.clear();
        pivot.clear();
        if (as_is) {
          usage_filter.finish(to_client, &exchange);
        } else {
          codec.finish(to_client, pivot);
          exchange.stream_bytes(pivot);
        }
        if (!to_client.empty()) {
          client.deadline.set(kClientWriteTimeout);
          co_await write_chunk(to_client);
        }
      }
      co_await write_last_chunk();
      client.deadline.clear();
      upstream_deadline.clear();
      upstream_deadline.watch(nullptr); // the pooled connection is no longer ours to cancel
      if (parser.keep_alive() && ubuf.view().empty())
        w.pools.give_back(*backend, std::move(conn));
      finish(status);
      co_return stream_keep && !wec;
    }
    if (watch->client_gone) {
      finish(kClientClosedRequest);
      co_return false;
    }
    if (!retry_next)
      break;
  }
  if (all_breaking) {
    // Every backend (and fallback) is at its circuit breaker's limit: shed the request fast.
    const openai::ApiError e = openai::overloaded(fmt::format(
        "Every backend of model `{}` is at its circuit breaker's limit{}; retry shortly.",
        routed_model.name,
        fallback_full ? ", and its fallback models are at their max_concurrent limit" : ""));
    const HeaderList retry_after{{"retry-after", "1"}};
    HeaderList extra = out.response_headers;
    extra.insert(extra.end(), retry_after.begin(), retry_after.end());
    finish(e.status);
    co_await send_api_error(e, extra);
    co_return keep;
  }
  // Nothing answered: no fallback served it, and the routed model carries the failure.
  exchange.fallback_to(routed_model);
  drop_fallback_header();
  if (refused_status != 0) {
    const openai::ApiError e =
        openai::upstream_refused(routed_model.name, refused_status, last_error);
    HeaderList extra = out.response_headers;
    const auto seconds = std::max<int64_t>(1, (refused_after.count() + 999) / 1000);
    extra.emplace_back("retry-after", std::to_string(seconds));
    finish(e.status);
    co_await send_api_error(e, extra);
    co_return keep;
  }
  const openai::ApiError e = timed_out
                                 ? openai::upstream_timeout(routed_model.name, last_error)
                                 : openai::upstream_unreachable(routed_model.name, last_error);
  finish(e.status);
  co_await send_api_error(e, out.response_headers);
  co_return keep;
}

} // namespace semrouter::gateway
