// Upstream name resolution and connecting (gateway/upstream.h): a host-name lookup is bounded by
// the connect budget even when getaddrinfo hangs, a hung lookup does not hold up another host's,
// IP literals never look anything up, and a name's addresses share the budget so one that never
// answers leaves time for the next. Lookups are injected; sockets are on 127.0.0.1 only.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <map>

#include "gateway/upstream.h"

namespace semrouter::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Generous: the waits under test are hundreds of ms; a loaded machine must not fail them.
constexpr auto kSlack = std::chrono::seconds(2);

tcp::endpoint loopback(uint16_t port) {
  return {asio::ip::make_address("127.0.0.1"), port};
}

// What an injected lookup blocks on until the test opens it.
class Gate {
public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Declared after the resolver: opens the gate before the resolver joins its threads.
struct OpenAtExit {
  std::shared_ptr<Gate> gate;
  ~OpenAtExit() { gate->open(); }
};

// Lookup calls per host, from the resolver's threads.
class Calls {
public:
  void add(const std::string& host) {
    std::lock_guard lock(mu_);
    ++calls_[host];
  }
  int of(const std::string& host) {
    std::lock_guard lock(mu_);
    return calls_[host];
  }

private:
  std::mutex mu_;
  std::map<std::string, int> calls_;
};

// Runs `body` on `ioc` until it ends (other coroutines left suspended are destroyed with `ioc`).
void run(asio::io_context& ioc, asio::awaitable<void> body) {
  asio::co_spawn(ioc, std::move(body), [&](std::exception_ptr e) {
    ioc.stop();
    if (e)
      std::rethrow_exception(e);
  });
  ioc.run();
}

// The gateway's per-worker sweep, for the connect deadlines.
asio::awaitable<void> sweep(Deadline::List& deadlines) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (true) {
    timer.expires_after(kSweepInterval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      co_return;
    const auto now = core::SteadyClock::now();
    for (auto it = deadlines.begin(); it != deadlines.end();)
      (*it++)->expire_if_due(now);
  }
}

config::BackendConfig backend_at(const std::string& host, uint16_t port) {
  config::BackendConfig b;
  b.name = "b";
  b.host = host;
  b.port = port;
  return b;
}

// A loopback port that never answers: a listener with backlog 0 whose accept queue is full, so
// the kernel drops further SYNs (the connect would only retry after a second, then 3 s, ...).
class BlackHole {
public:
  BlackHole() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listener_, 0) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      return;
    port_ = ntohs(addr.sin_port);
    // Fill the queue: connect until one connection is left hanging.
    for (int i = 0; i < 16 && !full_; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      fillers_.push_back(fd);
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      pollfd p{fd, POLLOUT, 0};
      full_ = ::poll(&p, 1, 100) == 0; // a loopback handshake takes microseconds when accepted
    }
  }
  ~BlackHole() {
    for (int fd : fillers_)
      ::close(fd);
    ::close(listener_);
  }
  BlackHole(const BlackHole&) = delete;
  BlackHole& operator=(const BlackHole&) = delete;

  bool ready() const { return full_; }
  uint16_t port() const { return port_; }

private:
  int listener_ = -1;
  uint16_t port_ = 0;
  bool full_ = false;
  std::vector<int> fillers_;
};

TEST(HostResolver, WaitEndsAtTheBudgetWhenTheLookupHangs) {
  auto gate = std::make_shared<Gate>();
  HostResolver resolver([gate](const std::string&, uint16_t port) {
    gate->wait();
    return HostResolver::Result{{}, {loopback(port)}};
  });
  OpenAtExit open{gate};
  asio::io_context ioc;
  HostResolver::Result result;
  Clock::duration took{};
  run(ioc, [&]() -> asio::awaitable<void> {
    const auto start = Clock::now();
    result = co_await resolver.resolve("hang.test", 80, milliseconds(200));
    took = Clock::now() - start;
  }());
  EXPECT_EQ(result.ec, beast::error::timeout);
  EXPECT_TRUE(result.endpoints.empty());
  EXPECT_GE(took, milliseconds(190));
  EXPECT_LT(took, milliseconds(200) + kSlack);
}

TEST(HostResolver, ConnectReportsTheDnsTimeout) {
  auto gate = std::make_shared<Gate>();
  HostResolver resolver([gate](const std::string&, uint16_t port) {
    gate->wait();
    return HostResolver::Result{{}, {loopback(port)}};
  });
  OpenAtExit open{gate};
  asio::io_context ioc;
  Deadline::List deadlines;
  TlsContexts tls;
  boost::system::error_code ec;
  std::string detail;
  std::unique_ptr<UpstreamConn> conn;
  Clock::duration took{};
  const config::BackendConfig backend = backend_at("hang.test", 8000);
  run(ioc, [&]() -> asio::awaitable<void> {
    Deadline deadline(deadlines, nullptr);
    const auto start = Clock::now();
    conn =
        co_await connect_backend(backend, milliseconds(300), deadline, tls, ec, detail, &resolver);
    took = Clock::now() - start;
  }());
  EXPECT_EQ(conn, nullptr);
  EXPECT_EQ(ec, beast::error::timeout);
  // "after 300 ms", or a millisecond less on a slow start.
  EXPECT_TRUE(detail.starts_with("DNS lookup of host hang.test timed out after ") &&
              detail.ends_with(" ms"))
      << detail;
  EXPECT_LT(took, milliseconds(300) + kSlack);
}

TEST(HostResolver, ConnectReportsAFailedLookup) {
  HostResolver resolver([](const std::string&, uint16_t) {
    return HostResolver::Result{asio::error::host_not_found, {}};
  });
  asio::io_context ioc;
  Deadline::List deadlines;
  TlsContexts tls;
  boost::system::error_code ec;
  std::string detail;
  const config::BackendConfig backend = backend_at("nowhere.test", 8000);
  run(ioc, [&]() -> asio::awaitable<void> {
    Deadline deadline(deadlines, nullptr);
    auto conn =
        co_await connect_backend(backend, milliseconds(1000), deadline, tls, ec, detail, &resolver);
    EXPECT_EQ(conn, nullptr);
  }());
  EXPECT_EQ(ec, asio::error::host_not_found);
  EXPECT_EQ(detail.rfind("DNS lookup of host nowhere.test failed: ", 0), 0u) << detail;
}

TEST(HostResolver, AHungLookupDoesNotDelayAnotherHost) {
  auto gate = std::make_shared<Gate>();
  HostResolver resolver([gate](const std::string& host, uint16_t port) {
    if (host == "hang.test")
      gate->wait();
    return HostResolver::Result{{}, {loopback(port)}};
  });
  OpenAtExit open{gate};
  asio::io_context ioc;
  // Started first: its lookup holds a resolver thread until the end of the test.
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        co_await resolver.resolve("hang.test", 80, std::chrono::seconds(30));
      },
      asio::detached);
  HostResolver::Result result;
  Clock::duration took{};
  run(ioc, [&]() -> asio::awaitable<void> {
    const auto start = Clock::now();
    result = co_await resolver.resolve("other.test", 81, std::chrono::seconds(30));
    took = Clock::now() - start;
  }());
  ASSERT_FALSE(result.ec) << result.ec.message();
  ASSERT_EQ(result.endpoints.size(), 1u);
  EXPECT_EQ(result.endpoints[0], loopback(81));
  EXPECT_LT(took, kSlack);
  // The hung lookup's caller is still suspended: it leaves when `ioc` destroys its frame, while
  // the gate opens and its lookup ends on a resolver thread.
}

TEST(HostResolver, CallersOfTheSameHostShareOneLookup) {
  auto gate = std::make_shared<Gate>();
  auto calls = std::make_shared<Calls>();
  HostResolver resolver([gate, calls](const std::string& host, uint16_t port) {
    calls->add(host);
    gate->wait();
    return HostResolver::Result{{}, {loopback(port)}};
  });
  OpenAtExit open{gate};
  asio::io_context ioc;
  HostResolver::Result first;
  HostResolver::Result second;
  // One thread runs `ioc` in order: both callers are waiting before the gate opens.
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        first = co_await resolver.resolve("slow.test", 80, std::chrono::seconds(30));
      },
      asio::detached);
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        second = co_await resolver.resolve("slow.test", 80, std::chrono::seconds(30));
      },
      asio::detached);
  asio::post(ioc, [gate] { gate->open(); });
  ioc.run();
  EXPECT_FALSE(first.ec);
  EXPECT_FALSE(second.ec);
  EXPECT_EQ(first.endpoints, second.endpoints);
  EXPECT_EQ(calls->of("slow.test"), 1);
}

TEST(HostResolver, ALookupEveryCallerGaveUpOnIsSkipped) {
  auto gate = std::make_shared<Gate>();
  auto calls = std::make_shared<Calls>();
  HostResolver resolver(
      [gate, calls](const std::string& host, uint16_t port) {
        calls->add(host);
        if (host == "hang.test")
          gate->wait();
        return HostResolver::Result{{}, {loopback(port)}};
      },
      1);
  OpenAtExit open{gate};
  asio::io_context ioc;
  HostResolver::Result hung;
  // First in line for the only thread.
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        hung = co_await resolver.resolve("hang.test", 80, std::chrono::seconds(30));
      },
      asio::detached);
  run(ioc, [&]() -> asio::awaitable<void> {
    // Queued behind the hung lookup: its caller gives up.
    auto queued = co_await resolver.resolve("queued.test", 80, milliseconds(100));
    EXPECT_EQ(queued.ec, beast::error::timeout);
    gate->open();
    // Queued after the abandoned one: when it ends, the abandoned one has been dealt with.
    auto last = co_await resolver.resolve("last.test", 80, std::chrono::seconds(30));
    EXPECT_FALSE(last.ec);
  }());
  EXPECT_EQ(calls->of("queued.test"), 0);
  EXPECT_EQ(calls->of("last.test"), 1);
  EXPECT_FALSE(hung.ec); // woken by its lookup's end, before `last`'s
}

TEST(ConnectBackend, AnIpAddressIsNeverLookedUp) {
  auto calls = std::make_shared<Calls>();
  HostResolver resolver([calls](const std::string& host, uint16_t port) {
    calls->add(host);
    return HostResolver::Result{{}, {loopback(port)}};
  });
  asio::io_context ioc;
  tcp::acceptor server(ioc, loopback(0));
  const uint16_t port = server.local_endpoint().port();
  Deadline::List deadlines;
  TlsContexts tls;
  for (const std::string host : {"127.0.0.1", "loopback.test"}) {
    boost::system::error_code ec;
    std::string detail;
    std::unique_ptr<UpstreamConn> conn;
    const config::BackendConfig backend = backend_at(host, port);
    run(ioc, [&]() -> asio::awaitable<void> {
      Deadline deadline(deadlines, nullptr);
      conn = co_await connect_backend(backend, milliseconds(2000), deadline, tls, ec, detail,
                                      &resolver);
    }());
    ioc.restart();
    EXPECT_FALSE(ec) << host << ": " << ec.message() << " " << detail;
    EXPECT_NE(conn, nullptr) << host;
  }
  EXPECT_EQ(calls->of("127.0.0.1"), 0);
  EXPECT_EQ(calls->of("loopback.test"), 1); // the path that does look up, for contrast
}

TEST(ConnectBackend, AnAddressThatNeverAnswersLeavesTimeForTheNext) {
  constexpr auto kBudget = milliseconds(1600);
  BlackHole hole;
  ASSERT_TRUE(hole.ready()) << "could not fill a loopback listener's accept queue";
  asio::io_context ioc;
  tcp::acceptor server(ioc, loopback(0));
  const uint16_t port = server.local_endpoint().port();
  const uint16_t silent = hole.port();
  HostResolver resolver([silent](const std::string&, uint16_t port) {
    return HostResolver::Result{{}, {loopback(silent), loopback(port)}};
  });
  Deadline::List deadlines;
  asio::co_spawn(ioc, sweep(deadlines), asio::detached);
  TlsContexts tls;
  boost::system::error_code ec;
  std::string detail;
  std::unique_ptr<UpstreamConn> conn;
  Clock::duration took{};
  const config::BackendConfig backend = backend_at("two.test", port);
  run(ioc, [&]() -> asio::awaitable<void> {
    Deadline deadline(deadlines, nullptr);
    const auto start = Clock::now();
    conn = co_await connect_backend(backend, kBudget, deadline, tls, ec, detail, &resolver);
    took = Clock::now() - start;
  }());
  ASSERT_FALSE(ec) << ec.message() << " " << detail;
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->tcp().socket().remote_endpoint(), loopback(port));
  // Half the budget (and up to a sweep) on the silent address, then at once. One attempt over
  // the whole list under one deadline got to the second address only when all of it was gone.
  EXPECT_LT(took, kBudget);
}

TEST(ConnectBackend, AddressesThatNeverAnswerEndWithinTheBudget) {
  BlackHole hole;
  ASSERT_TRUE(hole.ready()) << "could not fill a loopback listener's accept queue";
  const uint16_t silent = hole.port();
  HostResolver resolver([silent](const std::string&, uint16_t) {
    return HostResolver::Result{{}, {loopback(silent), loopback(silent), loopback(silent)}};
  });
  asio::io_context ioc;
  Deadline::List deadlines;
  asio::co_spawn(ioc, sweep(deadlines), asio::detached);
  TlsContexts tls;
  boost::system::error_code ec;
  std::string detail;
  std::unique_ptr<UpstreamConn> conn;
  Clock::duration took{};
  const config::BackendConfig backend = backend_at("silent.test", 80);
  run(ioc, [&]() -> asio::awaitable<void> {
    Deadline deadline(deadlines, nullptr);
    const auto start = Clock::now();
    conn =
        co_await connect_backend(backend, milliseconds(300), deadline, tls, ec, detail, &resolver);
    took = Clock::now() - start;
  }());
  EXPECT_EQ(conn, nullptr);
  EXPECT_EQ(ec, beast::error::timeout);
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(300) + kSlack);
}

} // namespace
} // namespace semrouter::gateway
