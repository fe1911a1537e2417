// async_read_ready (gateway/ready_read.h): after a short read the next read waits for epoll, and
// the end of stream that arrives together with the last bytes (a FIN or a reset, which raise no
// edge of their own) is still delivered, through PeerClosePoller. Every network event of a case
// is made to happen before the loop runs, so each case is the race's bad order, every time.
// The ReadyRead cases run twice: with each recv() made by the reactor (Plain), and with the recv()
// of a read that waited for epoll handed to the loop's IoBatcher (Batched, gateway/io_batch.h;
// skipped where io_uring is unavailable). Sockets are on 127.0.0.1 only.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gateway/io_batch.h"
#include "gateway/ready_read.h"
#include "gateway/upstream.h"

namespace semrouter::gateway {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Waits (outside any loop) until `fd` shows `events`, for up to 2 s.
void wait_for_events(int fd, short events) {
  pollfd p{fd, events, 0};
  for (int i = 0; i < 200 && (p.revents & events) != events; ++i) {
    p.revents = 0;
    ::poll(&p, 1, 10);
  }
  ASSERT_EQ(p.revents & events, events);
}

// One accepted loopback connection: `server` is the socket under test, on `loop`; `peer` is a
// plain blocking descriptor the test writes to and closes.
bool g_batched = false; // the current ReadyRead case's parameter

struct Pair {
  PeerWatch watch; // first: it outlives the socket, as in the gateway
  asio::io_context loop{1};
  tcp::socket server{loop};
  PeerClosePoller& poller = asio::use_service<PeerClosePoller>(loop);
  IoBatcher& batcher = asio::use_service<IoBatcher>(loop);
  int peer = -1;

  Pair() {
    if (g_batched) {
      std::string why;
      EXPECT_TRUE(batcher.start(why)) << why;
    }
    tcp::acceptor acceptor(loop, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    peer = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(acceptor.local_endpoint().port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(peer, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    acceptor.accept(server);
    watch.socket = &server;
  }
  // Hands the socket to the poller; without it, reads are Asio's own.
  bool watched() { return poller.watch(watch); }
  // The last bytes, then the FIN, both in the server's queue before the loop looks again.
  void send_then_fin(std::string_view bytes) {
    send(bytes);
    ::shutdown(peer, SHUT_WR);
    wait_for(POLLIN | POLLRDHUP);
  }
  ~Pair() {
    if (peer >= 0)
      ::close(peer);
  }
  void send(std::string_view bytes) const {
    ASSERT_EQ(::send(peer, bytes.data(), bytes.size(), 0), ssize_t(bytes.size()));
  }
  // Waits (outside the loop) until the server's socket shows `events`: the bytes and the FIN are
  // in its queue before the loop looks.
  void wait_for(short events) { wait_for_events(server.native_handle(), events); }
};

struct Result {
  bool done = false;
  boost::system::error_code ec;
  std::string bytes;
};

// One read into a 64-byte buffer, run on the loop until it completes or 2 s pass.
// Starts one read into `buffer`; its outcome lands in `r`.
void start_read(Pair& p, std::vector<char>& buffer, Result& r) {
  async_read_ready(p.watch, asio::buffer(buffer),
                   [&](const boost::system::error_code& ec, size_t n) {
                     r.done = true;
                     r.ec = ec;
                     r.bytes.assign(buffer.data(), n);
                   });
}

Result read_once(Pair& p, size_t size = 64) {
  Result r;
  std::vector<char> buffer(size);
  start_read(p, buffer, r);
  p.loop.restart();
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!r.done && std::chrono::steady_clock::now() < until)
    p.loop.run_for(std::chrono::milliseconds(20));
  if (!r.done) { // a failure: end the read before its buffer and result go
    Result timed_out = r;
    cancel_socket(p.server);
    while (!r.done)
      p.loop.run_for(std::chrono::milliseconds(20));
    return timed_out;
  }
  return r;
}

// Lets the loop take what epoll holds, without waiting.
void poll_loop(Pair& p) {
  auto work = asio::make_work_guard(p.loop); // without work, poll() returns before epoll
  p.loop.restart();
  p.loop.poll();
}

// Leaves a read of "two" queued in the batcher: a short read first, so that this one waits for
// epoll; then one handler at a time until the reactor has handed its recv() to the batcher.
void queue_read_of_two(Pair& p, std::vector<char>& buffer, Result& r) {
  ASSERT_TRUE(p.watched());
  p.send("one");
  p.wait_for(POLLIN);
  ASSERT_EQ(read_once(p).bytes, "one"); // short: the next read waits for epoll
  p.send("two");
  p.wait_for(POLLIN);
  start_read(p, buffer, r);
  auto work = asio::make_work_guard(p.loop);
  p.loop.restart();
  for (int i = 0; i < 100 && p.batcher.queued() == 0; ++i)
    p.loop.run_one_for(std::chrono::milliseconds(20));
  ASSERT_EQ(p.batcher.queued(), 1u);
}

// Whether io_uring batching works here; "" when it does.
std::string batching_unavailable() {
  asio::io_context loop{1};
  std::string why;
  return asio::use_service<IoBatcher>(loop).start(why) ? std::string() : why;
}

class ReadyRead : public ::testing::TestWithParam<bool> {
protected:
  void SetUp() override {
    g_batched = GetParam();
    if (g_batched) {
      static const std::string why = batching_unavailable();
      if (!why.empty())
        GTEST_SKIP() << "io_uring batching is unavailable here: " << why;
    }
  }
  void TearDown() override { g_batched = false; }
};
INSTANTIATE_TEST_SUITE_P(Plain, ReadyRead, ::testing::Values(false));
INSTANTIATE_TEST_SUITE_P(Batched, ReadyRead, ::testing::Values(true));

TEST_P(ReadyRead, AShortReadThenDataWithTheFinDeliversBothAndTheEndOfStream) {
  Pair p;
  ASSERT_TRUE(p.watched());
  p.send("first");
  p.wait_for(POLLIN);
  Result r = read_once(p);
  ASSERT_TRUE(r.done);
  EXPECT_FALSE(r.ec);
  EXPECT_EQ(r.bytes, "first");
  EXPECT_TRUE(p.watch.exhausted); // short: the next read waits for epoll

  // The last bytes and the FIN, both queued before the loop runs again: one edge for both.
  p.send_then_fin("last");
  r = read_once(p);
  ASSERT_TRUE(r.done);
  EXPECT_FALSE(r.ec);
  EXPECT_EQ(r.bytes, "last");
  r = read_once(p);
  ASSERT_TRUE(r.done) << "the end of stream behind the last bytes was never delivered";
  EXPECT_EQ(r.ec, asio::error::eof);
}

TEST_P(ReadyRead, AResetAfterTheLastBytesEndsTheNextRead) {
  Pair p;
  ASSERT_TRUE(p.watched());
  p.send("first");
  p.wait_for(POLLIN);
  ASSERT_TRUE(read_once(p).done);
  p.send("last");
  linger hard{1, 0}; // close with a reset
  ::setsockopt(p.peer, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  ::close(p.peer);
  p.peer = -1;
  p.wait_for(POLLHUP);
  // Linux may drop the queued bytes on a reset; either way the reads end, with an error.
  Result r = read_once(p);
  ASSERT_TRUE(r.done);
  if (!r.ec) {
    EXPECT_EQ(r.bytes, "last");
    r = read_once(p);
    ASSERT_TRUE(r.done) << "the reset behind the last bytes was never delivered";
  }
  EXPECT_TRUE(r.ec);
}

TEST_P(ReadyRead, AFinThatArrivedBeforeTheWatchIsStillSeen) {
  Pair p;
  // The bytes and the FIN arrive, and the loop takes their edge, before the socket is watched.
  p.send_then_fin("only");
  poll_loop(p);
  ASSERT_TRUE(p.watched()); // reports the FIN already there
  Result r = read_once(p);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.bytes, "only");
  r = read_once(p);
  ASSERT_TRUE(r.done) << "the end of stream that came before the watch was never delivered";
  EXPECT_EQ(r.ec, asio::error::eof);
}

TEST_P(ReadyRead, AFullBufferLeavesTheNextReadTryingAtOnce) {
  Pair p;
  ASSERT_TRUE(p.watched());
  p.send("abcdefgh");
  p.wait_for(POLLIN);
  Result r = read_once(p, 4);
  EXPECT_EQ(r.bytes, "abcd");
  EXPECT_FALSE(p.watch.exhausted);
  r = read_once(p, 4);
  EXPECT_EQ(r.bytes, "efgh");
}

TEST_P(ReadyRead, AFullReadBeforeTheFinNeedsNoRearmAndStillEndsTheStream) {
  Pair p;
  ASSERT_TRUE(p.watched());
  p.send_then_fin("abcdefgh");
  Result r = read_once(p, 4); // the buffer fills: no short read, nothing to re-arm
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.bytes, "abcd");
  EXPECT_FALSE(p.watch.exhausted);
  r = read_once(p, 64);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.bytes, "efgh");
  r = read_once(p);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.ec, asio::error::eof);
}

// What UpstreamPools reuses a connection on without a peek: nothing came in after its answer.
TEST_P(ReadyRead, QuietSinceAShortReadUntilTheLoopSeesAByteOrTheEnd) {
  Pair p;
  EXPECT_FALSE(quiet_since_short_read(p.watch)); // not watched
  ASSERT_TRUE(p.watched());
  EXPECT_FALSE(quiet_since_short_read(p.watch)); // no read yet
  p.send("answer");
  p.wait_for(POLLIN);
  ASSERT_EQ(read_once(p).bytes, "answer");
  EXPECT_TRUE(quiet_since_short_read(p.watch));
  poll_loop(p);
  EXPECT_TRUE(quiet_since_short_read(p.watch)); // nothing came

  // A stray byte: unseen while epoll holds it (the documented limit), seen once the loop looks.
  p.send("x");
  p.wait_for(POLLIN);
  EXPECT_TRUE(quiet_since_short_read(p.watch));
  poll_loop(p);
  EXPECT_FALSE(quiet_since_short_read(p.watch));
  ASSERT_EQ(read_once(p).bytes, "x");
  EXPECT_TRUE(quiet_since_short_read(p.watch));

  // The server closes the idle connection.
  ::shutdown(p.peer, SHUT_WR);
  p.wait_for(POLLRDHUP);
  poll_loop(p);
  EXPECT_FALSE(quiet_since_short_read(p.watch));
  EXPECT_TRUE(p.watch.peer_closed);
}

TEST_P(ReadyRead, NotQuietAfterAReadThatFilledItsBuffer) {
  Pair p;
  ASSERT_TRUE(p.watched());
  p.send("abcd");
  p.wait_for(POLLIN);
  ASSERT_EQ(read_once(p, 4).bytes, "abcd"); // more may wait: unknown
  EXPECT_FALSE(quiet_since_short_read(p.watch));
}

// looks_alive: the loop's flags vouch for a connection idle under the backend's
// liveness_check_after_ms; past it, or with 0, a peek asks the kernel. A stray byte the loop has
// not seen yet tells the two apart.
TEST(PooledConnection, TheLoopsFlagsVouchForABriefIdleThenAPeekDecides) {
  using std::chrono::milliseconds;
  asio::io_context loop{1};
  tcp::acceptor acceptor(loop, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  UpstreamConn conn(loop.get_executor());
  conn.tcp().socket().connect(acceptor.local_endpoint());
  tcp::socket server(loop);
  acceptor.accept(server);
  conn.watch_peer_close();
  const int fd = conn.tcp().socket().native_handle();

  // The answer, read short: nothing has come in since.
  asio::write(server, asio::buffer(std::string_view("answer")));
  wait_for_events(fd, POLLIN);
  std::array<char, 64> buffer{};
  bool done = false;
  conn.async_read_some(asio::buffer(buffer),
                       [&](const boost::system::error_code&, size_t) { done = true; });
  for (int i = 0; i < 100 && !done; ++i)
    loop.run_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(done);
  conn.idle_since = core::SteadyClock::now();
  const core::TimePoint t = conn.idle_since;
  EXPECT_TRUE(looks_alive(conn, t + milliseconds(100), milliseconds(250)));
  EXPECT_TRUE(looks_alive(conn, t + milliseconds(300), milliseconds(250))); // the peek agrees

  // A byte the loop has not handled: within the window the flags still vouch (their documented
  // blind spot); past it, or with the check always on, the peek finds it.
  asio::write(server, asio::buffer(std::string_view("x")));
  wait_for_events(fd, POLLIN);
  EXPECT_TRUE(looks_alive(conn, t + milliseconds(100), milliseconds(250)));
  EXPECT_FALSE(looks_alive(conn, t + milliseconds(300), milliseconds(250)));
  EXPECT_FALSE(looks_alive(conn, t + milliseconds(100), milliseconds(0)));
}

TEST_P(ReadyRead, AnEmptyBufferOnAWatchedSocketCompletesAtOnceAndConsumesNothing) {
  Pair p;
  ASSERT_TRUE(p.watched());
  p.send_then_fin("x");
  Result r = read_once(p, 0);
  ASSERT_TRUE(r.done);
  EXPECT_FALSE(r.ec); // not taken for the end of stream
  EXPECT_EQ(r.bytes, "");
  r = read_once(p);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.bytes, "x");
}

TEST_P(ReadyRead, WithoutAWatchOrWithAnEmptyBufferItIsAsiosOwnRead) {
  Pair p; // never handed to the poller
  p.send_then_fin("x");
  Result r = read_once(p, 0);
  ASSERT_TRUE(r.done);
  EXPECT_FALSE(r.ec); // an empty read completes at once, not as the end of stream
  EXPECT_EQ(r.bytes, "");
  r = read_once(p);
  EXPECT_EQ(r.bytes, "x");
  r = read_once(p);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.ec, asio::error::eof);
  EXPECT_FALSE(p.watch.exhausted);
}

// The batcher itself: reads and sends of one pass go out together, and a socket cancelled before
// the flush has its queued calls stopped, not run on a descriptor that may be reused.
using IoBatch = ReadyRead;
INSTANTIATE_TEST_SUITE_P(Batched, IoBatch, ::testing::Values(true));

TEST_P(IoBatch, ReadsThatWaitedForEpollGoOutTogether) {
  Pair p;
  ASSERT_TRUE(p.watched());
  p.send("one");
  p.wait_for(POLLIN);
  ASSERT_EQ(read_once(p).bytes, "one"); // the first read runs its recv() at once (flag set)
  EXPECT_EQ(p.batcher.operations(), 0u);
  p.send("two");
  p.wait_for(POLLIN);
  Result r = read_once(p); // this one waited for epoll: its recv() went through the ring
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.bytes, "two");
  EXPECT_EQ(p.batcher.operations(), 1u);
  EXPECT_TRUE(p.watch.exhausted);
}

TEST_P(IoBatch, SendsGoOutAtTheFlushAndACancelledOneNever) {
  Pair p;
  auto send = [&](std::string_view text, bool cancel) {
    iovec iov{const_cast<char*>(text.data()), text.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    bool done = false;
    boost::system::error_code ec;
    size_t n = 0;
    p.batcher.async_sendmsg(p.server.native_handle(), &msg,
                            [&](const boost::system::error_code& e, size_t sent) {
                              done = true;
                              ec = e;
                              n = sent;
                            });
    EXPECT_EQ(p.batcher.queued(), 1u);
    if (cancel)
      cancel_socket(p.server);
    p.loop.restart();
    for (int i = 0; i < 100 && !done; ++i)
      p.loop.run_for(std::chrono::milliseconds(20));
    EXPECT_TRUE(done);
    return std::pair(ec, n);
  };
  auto [ec, n] = send("hello", false);
  EXPECT_FALSE(ec);
  EXPECT_EQ(n, 5u);
  std::tie(ec, n) = send("never", true);
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_EQ(n, 0u);
  char buffer[16] = {};
  wait_for_events(p.peer, POLLIN);
  ASSERT_EQ(::recv(p.peer, buffer, sizeof buffer, MSG_DONTWAIT), 5);
  EXPECT_EQ(std::string_view(buffer, 5), "hello");
  EXPECT_LT(::recv(p.peer, buffer, sizeof buffer, MSG_DONTWAIT), 0); // nothing more came
}

TEST_P(IoBatch, AReadCancelledBeforeTheFlushEndsAbortedAndLeavesItsBytes) {
  Pair p;
  Result r;
  std::vector<char> buffer(64);
  ASSERT_NO_FATAL_FAILURE(queue_read_of_two(p, buffer, r));
  auto work = asio::make_work_guard(p.loop);
  cancel_socket(p.server);
  for (int i = 0; i < 100 && !r.done; ++i)
    p.loop.run_one_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.ec, asio::error::operation_aborted);
  EXPECT_EQ(r.bytes, "");
  work.reset();
  r = read_once(p); // the bytes are still there
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.bytes, "two");
}

// A loop torn down while a batched read waits in the batcher for its flush (the reactor has
// handed it back: Asio completes the first operation of a descriptor's pass inline): the read is
// freed with the loop and its handler never runs. (The sanitizer build checks the freeing: no
// leak, nothing freed twice.) The other order, a read the flush ran before the reactor handed it
// back, cannot be produced on purpose here; ReadOp::do_complete frees it when the scheduler's
// queue is torn down.
TEST_P(IoBatch, ALoopTornDownWithAReadQueuedFreesItUnrun) {
  auto p = std::make_unique<Pair>();
  Result r;
  std::vector<char> buffer(64);
  ASSERT_NO_FATAL_FAILURE(queue_read_of_two(*p, buffer, r));
  EXPECT_FALSE(r.done);
  p.reset();
  EXPECT_FALSE(r.done) << "a torn-down loop runs no handler";
}

// The ring is given up (as after a submit error or a stuck call in an earlier flush) while a send
// and a read wait for the next flush: both run as system calls, and later calls are the plain
// ones. (Entries already handed to a ring that then fails complete with -ECANCELED: untested.)
TEST_P(IoBatch, CallsQueuedWhenTheRingIsGivenUpRunAsSystemCalls) {
  Pair p;
  Result r;
  std::vector<char> buffer(64);
  ASSERT_NO_FATAL_FAILURE(queue_read_of_two(p, buffer, r));
  auto work = asio::make_work_guard(p.loop);
  const std::string_view text = "hello";
  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  bool sent = false;
  size_t n = 0;
  p.batcher.async_sendmsg(p.server.native_handle(), &msg,
                          [&](const boost::system::error_code& e, size_t bytes) {
                            sent = !e;
                            n = bytes;
                          });
  ASSERT_EQ(p.batcher.queued(), 2u);
  p.batcher.give_up_for_tests();
  EXPECT_FALSE(p.batcher.active());
  for (int i = 0; i < 100 && !(r.done && sent); ++i)
    p.loop.run_one_for(std::chrono::milliseconds(20));
  work.reset();
  ASSERT_TRUE(r.done);
  EXPECT_FALSE(r.ec);
  EXPECT_EQ(r.bytes, "two");
  EXPECT_TRUE(sent);
  EXPECT_EQ(n, 5u);
  char got[16] = {};
  wait_for_events(p.peer, POLLIN);
  ASSERT_EQ(::recv(p.peer, got, sizeof got, MSG_DONTWAIT), 5);
  EXPECT_EQ(std::string_view(got, 5), "hello");
  p.send("three");
  p.wait_for(POLLIN);
  const auto before = p.batcher.operations();
  EXPECT_EQ(read_once(p).bytes, "three");
  EXPECT_EQ(p.batcher.operations(), before) << "no flush carries a call any more";
}

} // namespace
} // namespace semrouter::gateway
