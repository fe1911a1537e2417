#include "gateway/upstream.h"

#include <cerrno>
#include <poll.h>
#include <sys/socket.h>

#include <sys/stat.h>

#include <algorithm>
#include <charconv>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

namespace semrouter::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

// A file's modification time, so a rotated certificate gets a fresh context.
std::string mtime_of(const std::string& path) {
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0)
    return "-";
  return std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

} // namespace

std::shared_ptr<ssl::context> TlsContexts::get(const config::BackendConfig& backend,
                                               std::string& error) {
  const config::BackendTlsConfig& t = backend.tls_config;
  std::string key = t.ca_file + '\n' + mtime_of(t.ca_file) + '\n' + t.client_cert + '\n' +
                    mtime_of(t.client_cert) + '\n' + t.client_key + '\n' + mtime_of(t.client_key) +
                    (t.insecure_skip_verify ? "\ninsecure" : "");
  std::lock_guard lock(mu_);
  if (auto it = contexts_.find(key); it != contexts_.end())
    return it->second;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  std::string what;
  if (t.insecure_skip_verify) {
    ctx->set_verify_mode(ssl::verify_none, ec);
    spdlog::warn("backend {}: TLS certificate verification is OFF (tls.insecure_skip_verify); "
                 "anyone on the path can read and change this traffic",
                 backend.name);
  } else {
    ctx->set_verify_mode(ssl::verify_peer, ec);
    if (!ec && !t.ca_file.empty()) {
      what = "tls.ca_file " + t.ca_file;
      ctx->load_verify_file(t.ca_file, ec);
    } else if (!ec) {
      what = "the system's CA store";
      ctx->set_default_verify_paths(ec);
    }
  }
  if (!ec && !t.client_cert.empty()) {
    what = "tls.client_cert " + t.client_cert;
    ctx->use_certificate_chain_file(t.client_cert, ec);
    if (!ec) {
      what = "tls.client_key " + t.client_key;
      ctx->use_private_key_file(t.client_key, ssl::context::pem, ec);
    }
  }
  if (ec) {
    error = "backend " + backend.name + ": cannot load " + what + ": " + ec.message();
    return nullptr;
  }
  contexts_[key] = ctx;
  return ctx;
}

const std::string& UpstreamPools::key(const config::BackendConfig& b) {
  if (!b.pool_key.empty())
    return b.pool_key; // the loader's
  thread_local std::string k;
  k = b.connection_key();
  return k;
}

std::unique_ptr<UpstreamConn> UpstreamPools::take(const config::BackendConfig& backend,
                                                  core::TimePoint now) {
  auto it = idle_.find(key(backend));
  if (it == idle_.end())
    return nullptr;
  auto& list = it->second;
  // Only a connection known to be idle and alive is reused: a POST sent on one the server has
  // closed could not be told apart from one the server read and then failed on, and resending
  // that would run (and bill) the request twice. The loop's readiness flags or, for a connection
  // idle longer than a moment, one non-blocking peek tells.
  while (!list.empty()) {
    std::unique_ptr<UpstreamConn> conn = std::move(list.back());
    list.pop_back();
    if (looks_alive(*conn, now, std::chrono::milliseconds(backend.liveness_check_after_ms)))
      return conn;
  }
  return nullptr;
}

bool looks_alive(UpstreamConn& conn, core::TimePoint now, std::chrono::milliseconds check_after) {
  auto& socket = conn.tcp().socket();
  if (!socket.is_open())
    return false;
  // Under load most reuses come here, and the peek below would be a fifth system call per
  // request. The flags miss a FIN the loop has not handled yet: one epoll has not reported, or
  // one it has, queued behind the handlers already waiting (under load up to a pass over the
  // loop's queue, a millisecond or so). The peek misses only one still on the wire. A server
  // closes a connection that briefly idle when it goes down or its idle timeout is shorter than
  // `check_after`; such a request fails as a reset (a 502 unless the client's Idempotency-Key
  // lets it go again). A connection idle longer is always peeked at.
  if (now - conn.idle_since < check_after && conn.quiet())
    return true;
  char byte;
  const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0)
    return false; // the server closed it
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK;
  // Bytes while idle: on plain HTTP an unsolicited answer (a 408, a close). Over TLS a record: a
  // session ticket is harmless, but a close_notify comes with the server's FIN, which the peek
  // cannot see behind it (TLS 1.3 encrypts both records alike). POLLRDHUP does.
  if (conn.tls() == nullptr)
    return false;
  pollfd p{socket.native_handle(), POLLRDHUP, 0};
  if (::poll(&p, 1, 0) < 0)
    return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0;
}

void UpstreamPools::give_back(const config::BackendConfig& backend,
                              std::unique_ptr<UpstreamConn> conn) {
  conn->slot.release();
  conn->tcp().expires_never();
  conn->idle_since = core::SteadyClock::now();
  put_back_unused(backend, std::move(conn));
}

void UpstreamPools::put_back_unused(const config::BackendConfig& backend,
                                    std::unique_ptr<UpstreamConn> conn) {
  auto& list = idle_[key(backend)];
  if (list.size() < backend.max_idle_connections)
    list.push_back(std::move(conn)); // else dropping closes it
}

void UpstreamPools::sweep(const std::vector<config::BackendConfig>& backends, core::TimePoint now) {
  if (idle_.empty())
    return;
  decltype(idle_) kept;
  for (const auto& b : backends) {
    auto it = idle_.find(key(b));
    if (it == idle_.end())
      continue;
    auto& list = it->second;
    const auto limit = std::chrono::milliseconds(b.idle_connection_timeout_ms);
    std::erase_if(list, [&](const std::unique_ptr<UpstreamConn>& c) {
      return (b.idle_connection_timeout_ms > 0 && now - c->idle_since >= limit) ||
             !looks_alive(*c, now, std::chrono::milliseconds(b.liveness_check_after_ms));
    });
    if (!list.empty())
      kept.emplace(it->first, std::move(list));
  }
  idle_.swap(kept); // what is left in `kept` (backends gone from the config) closes here
}

// One caller of resolve(): its wake-up is its timer, cancelled on its own executor when the
// lookup ends (set to expire at the end of its budget).
struct HostResolver::Waiter {
  explicit Waiter(const asio::any_io_executor& ex) : executor(ex), timer(ex) {}
  const asio::any_io_executor executor;
  asio::steady_timer timer;
};

// One lookup of a host and port, shared by the resolver thread that runs it and its callers.
// Guarded by the resolver's mutex.
struct HostResolver::Pending {
  bool done = false;
  Result result;
  std::vector<std::shared_ptr<Waiter>> waiters; // the callers still waiting
};

HostResolver::HostResolver(Lookup lookup, std::size_t threads)
    : lookup_(std::move(lookup)), pool_(threads) {}

HostResolver::~HostResolver() {
  pool_.stop();
  pool_.join();
}

HostResolver& HostResolver::shared() {
  static auto* resolver = new HostResolver(); // never destroyed: see the header
  return *resolver;
}

HostResolver::Result HostResolver::system_lookup(const std::string& host, std::uint16_t port) {
  // The synchronous resolve calls getaddrinfo on this thread; the context only owns the
  // resolver's service.
  thread_local asio::io_context context;
  tcp::resolver resolver(context);
  Result result;
  const auto found = resolver.resolve(host, std::to_string(port), result.ec);
  if (result.ec)
    return result;
  for (const auto& entry : found)
    result.endpoints.push_back(entry.endpoint());
  if (result.endpoints.empty())
    result.ec = asio::error::host_not_found;
  return result;
}

std::shared_ptr<HostResolver::Pending>
HostResolver::join(const std::string& host, std::uint16_t port, std::shared_ptr<Waiter> waiter) {
  std::string key = host + ':' + std::to_string(port);
  std::lock_guard lock(mu_);
  std::shared_ptr<Pending>& pending = in_flight_[key];
  if (!pending) {
    pending = std::make_shared<Pending>();
    asio::post(pool_, [this, key, host, port, pending] { run(key, host, port, pending); });
  }
  pending->waiters.push_back(std::move(waiter));
  return pending;
}

void HostResolver::leave(Pending& pending, const Waiter* waiter) {
  std::lock_guard lock(mu_);
  std::erase_if(pending.waiters, [&](const auto& w) { return w.get() == waiter; });
}

void HostResolver::run(const std::string& key, const std::string& host, std::uint16_t port,
                       const std::shared_ptr<Pending>& pending) {
  auto forget = [&] {
    pending->done = true;
    if (auto it = in_flight_.find(key); it != in_flight_.end() && it->second == pending)
      in_flight_.erase(it);
  };
  {
    std::lock_guard lock(mu_);
    if (pending->waiters.empty()) {
      // Every caller gave up while this waited for a thread: the lookup would only delay the
      // next. A caller that comes later starts a lookup of its own.
      forget();
      return;
    }
  }
  Result result = lookup_(host, port);
  std::lock_guard lock(mu_);
  pending->result = std::move(result);
  forget();
  // Under the lock: a caller that has left (its loop possibly gone) is no longer in the list.
  for (auto& waiter : pending->waiters)
    asio::post(waiter->executor, [waiter] { waiter->timer.cancel(); });
  pending->waiters.clear();
}

asio::awaitable<HostResolver::Result> HostResolver::resolve(const std::string& host,
                                                            std::uint16_t port,
                                                            std::chrono::milliseconds budget) {
  auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
  waiter->timer.expires_after(budget);
  const std::shared_ptr<Pending> pending = join(host, port, waiter);
  // Leaves on every way out, also when this frame is destroyed with its loop, so that the
  // resolver thread never posts to a loop that is gone.
  struct Leave {
    HostResolver& resolver;
    Pending& pending;
    const Waiter* waiter;
    ~Leave() { resolver.leave(pending, waiter); }
  } leave{*this, *pending, waiter.get()};
  bool done = false;
  {
    std::lock_guard lock(mu_);
    done = pending->done;
  }
  if (!done) {
    boost::system::error_code ignored; // cancelled: the lookup ended; expired: the budget did
    co_await waiter->timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  Result result;
  {
    std::lock_guard lock(mu_);
    if (pending->done)
      result = pending->result; // also when it came just as the budget ran out
    else
      result.ec = beast::error::timeout;
  }
  co_return result;
}

namespace {

// Connects to each address in turn until one answers, within `until`. Each but the last gets half
// of what is left (at least kMinAddressShare), so an address that never answers leaves time for
// the next; a refused one moves on at once.
asio::awaitable<void> connect_in_turn(beast::tcp_stream& stream,
                                      const std::vector<tcp::endpoint>& endpoints,
                                      core::TimePoint until, Deadline& deadline,
                                      boost::system::error_code& ec) {
  ec = asio::error::host_not_found;
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - core::SteadyClock::now());
    if (left <= std::chrono::milliseconds(0)) {
      if (i == 0) // the lookup used it all
        ec = beast::error::timeout;
      co_return; // `ec` is the last address's error
    }
    auto share = left;
    if (i + 1 < endpoints.size())
      share = std::min(left, std::max(left / 2, kMinAddressShare));
    boost::system::error_code ignored;
    stream.socket().close(ignored); // a fresh socket after a failed or abandoned attempt
    deadline.set(share);
    co_await stream.async_connect(endpoints[i], asio::redirect_error(asio::use_awaitable, ec));
    deadline.adjust(ec);
    deadline.clear();
    if (!ec || ec == asio::error::operation_aborted) // connected, or cancelled from outside
      co_return;
  }
}

} // namespace

asio::awaitable<std::unique_ptr<UpstreamConn>>
connect_backend(const config::BackendConfig& backend, std::chrono::milliseconds timeout,
                Deadline& deadline, TlsContexts& tls, boost::system::error_code& ec,
                std::string& detail, HostResolver* resolver) {
  auto executor = co_await asio::this_coro::executor;
  const auto until = core::SteadyClock::now() + timeout;
  auto left = [&] {
    return std::max(
        std::chrono::milliseconds(1),
        std::chrono::duration_cast<std::chrono::milliseconds>(until - core::SteadyClock::now()));
  };
  ec.clear();
  detail.clear();
  std::unique_ptr<UpstreamConn> conn;
  if (backend.tls) {
    std::shared_ptr<ssl::context> ctx = tls.get(backend, detail);
    if (!ctx) {
      ec = asio::error::invalid_argument;
      co_return nullptr;
    }
    conn = std::make_unique<UpstreamConn>(executor, std::move(ctx));
  } else {
    conn = std::make_unique<UpstreamConn>(executor);
  }
  beast::tcp_stream& stream = conn->tcp();
  deadline.watch(&stream);
  boost::system::error_code addr_ec;
  auto address = asio::ip::make_address(backend.host, addr_ec);
  if (!addr_ec) {
    // An IP address (most configs): no lookup, no thread hop.
    deadline.set(left());
    co_await stream.async_connect(tcp::endpoint(address, backend.port),
                                  asio::redirect_error(asio::use_awaitable, ec));
    deadline.adjust(ec);
    deadline.clear();
  } else {
    const auto budget =
        std::max(std::chrono::milliseconds(1),
                 std::chrono::ceil<std::chrono::milliseconds>(until - core::SteadyClock::now()));
    HostResolver::Result found = co_await (resolver ? *resolver : HostResolver::shared())
                                     .resolve(backend.host, backend.port, budget);
    if (found.ec == beast::error::timeout) {
      ec = found.ec;
      detail = "DNS lookup of host " + backend.host + " timed out after " +
               std::to_string(budget.count()) + " ms";
      co_return nullptr;
    }
    if (found.ec) {
      ec = found.ec;
      detail = "DNS lookup of host " + backend.host + " failed: " + ec.message();
      co_return nullptr;
    }
    co_await connect_in_turn(stream, found.endpoints, until, deadline, ec);
  }
  if (ec)
    co_return nullptr;
  boost::system::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);
  if (auto* s = conn->tls()) {
    const auto& t = backend.tls_config;
    const std::string& name = t.server_name.empty() ? backend.host : t.server_name;
    boost::system::error_code ip_ec;
    asio::ip::make_address(name, ip_ec);
    const bool is_ip = !ip_ec;
    SSL* handle = s->native_handle();
    if (!is_ip) // SNI carries host names only
      SSL_set_tlsext_host_name(handle, name.c_str());
    if (!t.insecure_skip_verify) {
      X509_VERIFY_PARAM* param = SSL_get0_param(handle);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (is_ip)
        X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
      else
        X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
    }
    deadline.set(left());
    co_await s->async_handshake(ssl::stream_base::client,
                                asio::redirect_error(asio::use_awaitable, ec));
    deadline.adjust(ec);
    deadline.clear();
    if (ec) {
      const long verify = SSL_get_verify_result(handle);
      if (verify != X509_V_OK)
        detail = std::string("TLS: certificate verification failed: ") +
                 X509_verify_cert_error_string(verify);
      else
        detail = "TLS handshake: " + ec.message();
      co_return nullptr;
    }
  }
  co_return conn;
}

} // namespace semrouter::gateway
