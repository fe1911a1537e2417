#include "gateway/upstream.h"

#include <cerrno>
#include <sys/socket.h>

#include <sys/stat.h>

#include <algorithm>

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

std::string UpstreamPools::key(const config::BackendConfig& b) {
  std::string k = (b.tls ? "https://" : "http://") + b.host + ":" + std::to_string(b.port);
  if (b.tls) {
    const auto& t = b.tls_config;
    k += '|' + t.server_name + '|' + t.ca_file + '|' + t.client_cert +
         (t.insecure_skip_verify ? "|insecure" : "");
  }
  return k;
}

std::unique_ptr<UpstreamConn> UpstreamPools::take(const config::BackendConfig& backend) {
  auto it = idle_.find(key(backend));
  if (it == idle_.end())
    return nullptr;
  auto& list = it->second;
  // Only a connection known to be idle and alive is reused: a POST sent on one the server has
  // closed could not be told apart from one the server read and then failed on, and resending
  // that would run (and bill) the request twice. One non-blocking peek per reuse tells.
  while (!list.empty()) {
    std::unique_ptr<UpstreamConn> conn = std::move(list.back());
    list.pop_back();
    if (looks_alive(*conn))
      return conn;
  }
  return nullptr;
}

bool looks_alive(UpstreamConn& conn) {
  auto& socket = conn.tcp().socket();
  if (!socket.is_open())
    return false;
  char byte;
  const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0)
    return false; // the server closed it
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK;
  // Bytes while idle: on plain HTTP an unsolicited answer (a 408, a close); over TLS a record
  // (a session ticket is harmless; a close_notify is followed by the close, seen next time).
  return conn.tls() != nullptr;
}

void UpstreamPools::give_back(const config::BackendConfig& backend,
                              std::unique_ptr<UpstreamConn> conn) {
  auto& list = idle_[key(backend)];
  if (list.size() >= backend.max_idle_connections)
    return; // dropping closes it
  conn->tcp().expires_never();
  list.push_back(std::move(conn));
}

namespace {

// Name resolution is cancelled through its resolver, not a socket: a timer of its own does it.
// Shared with the timer's handler, which may run after the coroutine has moved on.
struct Resolution {
  explicit Resolution(const asio::any_io_executor& ex) : resolver(ex), timer(ex) {}
  tcp::resolver resolver;
  asio::steady_timer timer;
  bool timed_out = false;
};

} // namespace

asio::awaitable<std::unique_ptr<UpstreamConn>> connect_backend(const config::BackendConfig& backend,
                                                               std::chrono::milliseconds timeout,
                                                               Deadline& deadline, TlsContexts& tls,
                                                               boost::system::error_code& ec,
                                                               std::string& detail) {
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
    deadline.set(left());
    co_await stream.async_connect(tcp::endpoint(address, backend.port),
                                  asio::redirect_error(asio::use_awaitable, ec));
  } else {
    auto r = std::make_shared<Resolution>(executor);
    r->timer.expires_after(left());
    r->timer.async_wait([r](const boost::system::error_code& e) {
      if (!e) {
        r->timed_out = true;
        r->resolver.cancel();
      }
    });
    auto results = co_await r->resolver.async_resolve(
        backend.host, std::to_string(backend.port), asio::redirect_error(asio::use_awaitable, ec));
    r->timer.cancel();
    if (r->timed_out) {
      ec = beast::error::timeout;
      detail = "resolving " + backend.host + " took longer than connect_ms";
    }
    if (!ec) {
      // Every address the name has, in turn, within what is left of the connect time.
      deadline.set(left());
      co_await stream.async_connect(results, asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  deadline.adjust(ec);
  deadline.clear();
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
