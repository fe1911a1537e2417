#include "app/bench_client.h"

// Boost 1.74 with g++ 12 needs <utility> before asio (as in gateway/beast.h). Asio only here:
// no Beast, whose one home is the gateway.
#include <utility>

#include <array>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "http/writer.h"

namespace semrouter::app {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;

constexpr size_t kReadChunk = 16 * 1024;
constexpr std::string_view kUserAgent = "semrouter-bench/0.1.0";

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

bool is_ip_literal(const std::string& host) {
  ErrorCode ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// The Host header's value: brackets for IPv6, no port when it is the scheme's default.
std::string host_value(const Endpoint& e) {
  std::string h = e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host;
  if (e.port != (e.tls ? 443 : 80))
    h += ":" + std::to_string(e.port);
  return h;
}

// One connection of one worker, shared with the deadline timer's handler (which may run after
// the worker moved on: `seq` tells it whether its request is still the current one).
struct Slot {
  explicit Slot(asio::io_context& ioc) : timer(ioc) {}
  std::optional<tcp::socket> plain;
  std::optional<asio::ssl::stream<tcp::socket>> tls;
  asio::steady_timer timer;
  uint64_t seq = 0;
  bool timed_out = false;
  bool connected = false;

  tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }
  void close() {
    if (tls || plain) {
      ErrorCode ignored;
      socket().close(ignored);
    }
    connected = false;
  }
};

struct Run {
  Run(const ClientOptions& o, const std::vector<std::string>& b, const RequestDone& d)
      : options(o), bodies(b), done(d) {}
  asio::io_context ioc{1};
  const ClientOptions& options;
  const std::vector<std::string>& bodies;
  const RequestDone& done;
  tcp::resolver::results_type addresses;
  std::optional<asio::ssl::context> ssl;
  std::string host_header;
  size_t next = 0;
  size_t finished = 0;
  asio::steady_timer ticker{ioc};
  std::exception_ptr failure; // a worker that threw (a bug): reported, not swallowed
};

std::string request_head(const Run& run, const std::string& body) {
  std::vector<http::Header> headers;
  headers.push_back({"Content-Type", "application/json"});
  headers.push_back({"User-Agent", kUserAgent});
  for (const auto& [name, value] : run.options.headers)
    headers.push_back({name, value});
  http::RequestHead head;
  head.method = "POST";
  head.target = run.options.endpoint.path;
  head.host = run.host_header;
  head.headers = headers;
  head.keep_alive = true;
  head.framing = http::Framing::ContentLength;
  head.content_length = body.size();
  std::string out;
  http::append_request_head(out, head);
  return out;
}

awaitable<ErrorCode> connect(Run& run, Slot& s) {
  ErrorCode ec;
  s.plain.reset();
  s.tls.reset();
  if (run.ssl)
    s.tls.emplace(run.ioc, *run.ssl);
  else
    s.plain.emplace(run.ioc);
  co_await asio::async_connect(s.socket(), run.addresses, asio::redirect_error(use_awaitable, ec));
  if (ec)
    co_return ec;
  s.socket().set_option(tcp::no_delay(true), ec);
  if (s.tls) {
    const std::string& host = run.options.endpoint.host;
    // SNI names hosts, never addresses (RFC 6066).
    if (!is_ip_literal(host))
      SSL_set_tlsext_host_name(s.tls->native_handle(), host.c_str());
    s.tls->set_verify_mode(asio::ssl::verify_peer, ec);
    if (!ec)
      s.tls->set_verify_callback(asio::ssl::host_name_verification(host), ec);
    if (!ec)
      co_await s.tls->async_handshake(asio::ssl::stream_base::client,
                                      asio::redirect_error(use_awaitable, ec));
  }
  co_return ec;
}

awaitable<void> write_request(Slot& s, const std::string& head, const std::string& body,
                              ErrorCode& ec) {
  std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
  if (s.tls)
    co_await asio::async_write(*s.tls, buffers, asio::redirect_error(use_awaitable, ec));
  else
    co_await asio::async_write(*s.plain, buffers, asio::redirect_error(use_awaitable, ec));
}

awaitable<size_t> read_some(Slot& s, std::vector<char>& into, ErrorCode& ec) {
  if (s.tls)
    co_return co_await s.tls->async_read_some(asio::buffer(into),
                                              asio::redirect_error(use_awaitable, ec));
  co_return co_await s.plain->async_read_some(asio::buffer(into),
                                              asio::redirect_error(use_awaitable, ec));
}

bool is_eof(const ErrorCode& ec) {
  // A TLS peer that closes without close_notify: its response's framing says whether anything
  // was lost, so it is treated as a plain close.
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

awaitable<void> worker(Run& run) {
  auto slot = std::make_shared<Slot>(run.ioc);
  std::vector<char> chunk(kReadChunk);
  std::string buffer;
  const auto timeout =
      std::chrono::milliseconds(static_cast<int64_t>(run.options.timeout_s * 1000.0));
  const Endpoint& ep = run.options.endpoint;
  while (run.next < run.bodies.size()) {
    const size_t index = run.next++;
    const std::string& body = run.bodies[index];
    ResponseOutcome outcome;
    double latency_ms = 0;
    // A second attempt only when a kept-alive connection turns out closed before any byte of
    // the response: the server had closed it while idle, and nothing was processed.
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = slot->connected;
      const uint64_t seq = ++slot->seq;
      slot->timed_out = false;
      slot->timer.expires_after(timeout);
      slot->timer.async_wait([slot, seq](const ErrorCode& ec) {
        if (ec || slot->seq != seq)
          return;
        slot->timed_out = true;
        slot->close(); // fails the pending read or write
      });
      ErrorCode ec;
      if (!slot->connected) {
        ec = co_await connect(run, *slot);
        if (ec) {
          slot->timer.cancel();
          outcome = {};
          outcome.error = slot->timed_out
                              ? fmt::format("timed out connecting to {}:{}", ep.host, ep.port)
                              : fmt::format("cannot connect to {}:{}{}: {}", ep.host, ep.port,
                                            ep.tls ? " (TLS)" : "", ec.message());
          slot->close();
          break;
        }
        slot->connected = true;
      }
      const std::string head = request_head(run, body);
      const auto t0 = Clock::now();
      co_await write_request(*slot, head, body, ec);
      ResponseCollector collector;
      ResponseCollector::State state = ResponseCollector::State::More;
      buffer.clear();
      while (!ec && state == ResponseCollector::State::More) {
        size_t n = co_await read_some(*slot, chunk, ec);
        const double elapsed = ms_since(t0);
        if (is_eof(ec)) {
          ec = {};
          state = collector.eof(elapsed);
          break;
        }
        if (ec)
          break;
        buffer.append(chunk.data(), n);
        size_t consumed = 0;
        state = collector.feed(buffer, elapsed, consumed);
        buffer.erase(0, consumed);
      }
      latency_ms = ms_since(t0);
      slot->timer.cancel();
      outcome = collector.outcome();
      if (!ec && state == ResponseCollector::State::Done) {
        if (!outcome.keep_alive)
          slot->close();
        break;
      }
      const bool stale = reused && !collector.started() && !slot->timed_out;
      slot->close();
      if (stale && attempt == 0)
        continue;
      if (slot->timed_out)
        outcome.error = fmt::format("timed out after {} s", run.options.timeout_s);
      else if (ec)
        outcome.error =
            fmt::format("connection to {}:{} failed: {}", ep.host, ep.port, ec.message());
      if (outcome.error.empty())
        outcome.error = "incomplete response";
      break;
    }
    run.finished++;
    run.done(index, std::move(outcome), latency_ms);
    if (run.finished == run.bodies.size())
      run.ticker.cancel();
  }
}

awaitable<void> ticker(Run& run, double tick_s, const std::function<void()>& tick) {
  const auto every = std::chrono::milliseconds(static_cast<int64_t>(tick_s * 1000.0));
  while (run.finished < run.bodies.size()) {
    run.ticker.expires_after(every);
    ErrorCode ec;
    co_await run.ticker.async_wait(asio::redirect_error(use_awaitable, ec));
    if (run.finished < run.bodies.size())
      tick();
  }
}

} // namespace

core::Status run_requests(const ClientOptions& options, const std::vector<std::string>& bodies,
                          const RequestDone& done, const std::function<void()>& tick,
                          double tick_s) {
  using core::make_error;
  if (bodies.empty())
    return {};
  Run run(options, bodies, done);
  const Endpoint& ep = options.endpoint;
  run.host_header = host_value(ep);
  if (ep.tls) {
    // The context's constructor throws if OpenSSL cannot make one (out of memory).
    try {
      run.ssl.emplace(asio::ssl::context::tls_client);
    } catch (const std::exception& e) {
      return make_error(core::ErrorCode::Internal, fmt::format("TLS setup: {}", e.what()));
    }
    ErrorCode ec;
    if (options.ca_file.empty())
      run.ssl->set_default_verify_paths(ec);
    else
      run.ssl->load_verify_file(options.ca_file, ec);
    if (ec)
      return make_error(
          core::ErrorCode::InvalidArgument,
          options.ca_file.empty()
              ? fmt::format("TLS setup: the system's CA store: {}", ec.message())
              : fmt::format("--ca-file: cannot load {}: {}", options.ca_file, ec.message()));
  }
  {
    tcp::resolver resolver(run.ioc);
    ErrorCode ec;
    run.addresses = resolver.resolve(ep.host, std::to_string(ep.port), ec);
    if (ec)
      return make_error(core::ErrorCode::Unavailable,
                        fmt::format("--target: cannot resolve {}: {}", ep.host, ec.message()));
  }
  const size_t workers =
      std::min(bodies.size(), static_cast<size_t>(std::max(1, options.concurrency)));
  auto on_exit = [&run](std::exception_ptr e) {
    if (e && !run.failure)
      run.failure = e;
  };
  for (size_t i = 0; i < workers; ++i)
    asio::co_spawn(run.ioc, worker(run), on_exit);
  if (tick && tick_s > 0)
    asio::co_spawn(run.ioc, ticker(run, tick_s, tick), on_exit);
  run.ioc.run();
  if (run.failure) {
    try {
      std::rethrow_exception(run.failure);
    } catch (const std::exception& e) {
      return make_error(core::ErrorCode::Internal, fmt::format("bench client: {}", e.what()));
    } catch (...) {
      return make_error(core::ErrorCode::Internal, "bench client: unknown exception");
    }
  }
  if (run.finished != bodies.size())
    return make_error(
        core::ErrorCode::Internal,
        fmt::format("bench client: {} of {} requests finished", run.finished, bodies.size()));
  return {};
}

} // namespace semrouter::app
