// IoBatcher: the socket calls a loop makes in one pass over its ready handlers, handed to the
// kernel in one io_uring_enter instead of one system call each.
//
// On the 2-core VM of docs/benchmarks.md a system call's entry and exit cost about 1.2 us, and a
// 230-byte send over loopback TCP about 4.9 us of CPU with sendmsg against 3.5 us as one of a
// batch of 16-32 io_uring sends (bench/uring_send_probe.c). A proxied request makes two sends (the
// request upstream, the answer to the client) and two reads.
//
// What goes through it: plain-TCP sends of a whole request or answer (send_soon in gateway.cc),
// and reads that waited for epoll (async_read_ready's ReadOp, ready_read.h). Streamed chunks,
// 100-continue, dashboard streams and TLS keep their own calls.
//
// How a call goes out: the coroutine's operation is queued (nothing reaches the ring yet) and
// the coroutine stays suspended; the first operation of a pass posts a flush, which runs after the
// handlers queued before it (the loop's epoll_wait(0) among them). The flush prepares an entry per
// operation (SENDMSG or RECV, with MSG_DONTWAIT), submits them with one io_uring_enter, and only
// when every result is in resumes the coroutines; what they queue meanwhile goes out in further
// rounds of the same flush. With MSG_DONTWAIT io_uring runs each call during io_uring_enter and
// answers as the system call would (a full socket answers EAGAIN, never an armed poll); a
// start-up probe checks that this kernel does so for sends and reads. Without it, or where
// io_uring is missing or refused (seccomp, kernel.io_uring_disabled), the loop makes the calls.
//
// Rules for the code around it:
// - Only the coroutine that owns a socket, suspended on the operation, queues calls on it.
// - A socket that another coroutine may be using is cancelled or closed only after
//   cancel_socket() (ready_read.h), which calls cancel(fd) here: its queued calls never run and
//   complete with operation_aborted, so none can reach a descriptor number a new connection
//   reuses. A socket and its PeerWatch are never destroyed while a read on it is pending.
#pragma once

#include "gateway/beast.h"

#include <sys/socket.h>

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace semrouter::gateway {

class IoBatcher : public boost::asio::execution_context::service {
public:
  static boost::asio::execution_context::id id;
  explicit IoBatcher(boost::asio::io_context& ioc);
  ~IoBatcher() override;
  IoBatcher(const IoBatcher&) = delete;
  IoBatcher& operator=(const IoBatcher&) = delete;

  // Opens the ring (once): false, with `why`, where io_uring cannot batch calls here; they then
  // stay system calls. Called by the loop's own thread before it serves.
  bool start(std::string& why);
  bool active() const { return ring_ != nullptr; }

  // A queued call. What it points at (the message, the buffer) lives in the suspended
  // coroutine's frame or operation until it completes.
  struct Op {
    virtual void complete(int result) = 0; // result: bytes, or -errno (-ECANCELED: cancelled)
    virtual void destroy() = 0;            // the loop is torn down: dropped, never run
    int fd = -1;
    const msghdr* msg = nullptr; // a send
    void* data = nullptr;        // a recv: its buffer
    std::size_t size = 0;
    int result = 0;
    bool cancelled = false; // cancel(fd) came while it was queued or held
    bool ran = false;       // its entry completed in this round
    bool held = false;      // see hold()

  protected:
    ~Op() = default;
  };

  // sendmsg(fd, msg, MSG_NOSIGNAL | MSG_DONTWAIT) in the loop's next flush. Completes with the
  // bytes sent, or with the error (would_block for a full socket). Only while active().
  template <class Token> auto async_sendmsg(int fd, const msghdr* msg, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this, fd, msg](auto handler) {
          using Handler = std::decay_t<decltype(handler)>;
          auto* op = new HandlerOp<Handler>(std::move(handler));
          op->msg = msg;
          queue(fd, op);
        },
        token);
  }

  // recv(fd, data, size, MSG_DONTWAIT) in the loop's next flush, completing `op` (which outlives
  // it). Only while active().
  void queue_recv(int fd, void* data, std::size_t size, Op* op);

  // The socket `fd` is being cancelled or closed: its queued calls will not run and complete with
  // -ECANCELED, and held ones learn of it (`cancelled`). A call that already ran keeps its result,
  // as an Asio operation that completed before a cancel does.
  void cancel(int fd);

  // An operation whose call ran but which cannot complete yet (a read the reactor has not handed
  // back): cancel() still marks it until release().
  void hold(Op* op);
  void release(Op* op);

  // `op` is being destroyed with the loop while still queued or held: dropped.
  void forget(Op* op);

  // For tests: the calls flushes have carried, and what waits for the next flush.
  std::size_t operations() const { return operations_; }
  std::size_t queued() const { return queued_.size(); }
  // For tests: the ring fails now, as after a submit error (logged; calls become system calls).
  void give_up_for_tests() {
    if (ring_)
      give_up_ring("a test gave it up");
  }

private:
  template <class Handler> struct HandlerOp final : Op {
    explicit HandlerOp(Handler&& h) : handler(std::move(h)) {}
    void complete(int result) override {
      Handler h = std::move(handler);
      delete this;
      boost::system::error_code ec;
      if (result < 0)
        ec.assign(-result, boost::system::system_category());
      std::move(h)(ec, result < 0 ? 0 : static_cast<std::size_t>(result));
    }
    void destroy() override { delete this; }
    Handler handler;
  };

  void queue(int fd, Op* op);
  void flush();
  void run_round(); // runs what is queued, then completes it
  // Runs `ops` through the ring in chunks of the submission queue's size; on a ring failure the
  // rest run as system calls. Every result is in before any operation completes.
  void run_calls(std::vector<Op*>& ops);
  void give_up_ring(const std::string& why);
  static int perform(const Op& op); // the call itself: bytes, or -errno
  void shutdown() override;

  boost::asio::io_context& ioc_;
  struct Ring;
  std::unique_ptr<Ring> ring_;
  std::vector<Op*> queued_, completing_, held_;
  std::vector<Op*> chunk_; // run_calls' scratch: one submit's entries
  bool flush_posted_ = false;
  std::size_t operations_ = 0;
};

} // namespace semrouter::gateway
