// IoBatcher: the writes a loop makes in one pass over its ready handlers, handed to the kernel
// in one io_uring_enter instead of one sendmsg each.
//
// On the 2-core VM of docs/benchmarks.md a system call's entry and exit cost about 1.2 us, and a
// 230-byte send over loopback TCP about 5.0 us of CPU with sendmsg against 3.5 us as one of a
// batch of 16-32 io_uring sends (bench/uring_send_probe.c). A proxied request makes two sends (the
// request upstream, the answer to the client).
//
// How a send goes out: the coroutine queues a SENDMSG entry (MSG_DONTWAIT | MSG_NOSIGNAL) and
// suspends; the first send of a pass posts a flush to the loop, which runs after the handlers
// already queued and submits every entry with one io_uring_enter. With MSG_DONTWAIT io_uring
// completes each send during that call, as sendmsg would (a full socket answers EAGAIN, never an
// armed poll), so the flush collects every completion at once and resumes each coroutine with what
// its sendmsg would have returned. A start-up probe checks that the kernel behaves so; without it,
// or where io_uring is missing or refused (seccomp, kernel.io_uring_disabled), sends stay sendmsg.
//
// Safety of a descriptor between queueing and the flush: the coroutine that queued a send is
// suspended on it and owns its socket, so the descriptor cannot be closed (and its number reused)
// before the flush; deadlines only cancel sockets. Tearing a loop down destroys the queued entries
// unsent (shutdown()).
#pragma once

#include "gateway/beast.h"

#include <sys/socket.h>

struct io_uring_sqe;

#include <cstddef>
#include <memory>
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

  // Opens the ring (once): false, with `why`, where io_uring cannot batch sends here; sends then
  // stay sendmsg. Called by the loop's own thread before it serves.
  bool start(std::string& why);
  bool active() const { return ring_ != nullptr; }

  // A queued send: the message lives in the suspended coroutine's frame until it completes.
  struct Op {
    virtual void complete(int result) = 0; // result: bytes sent, or -errno
    virtual void destroy() = 0;            // the loop is torn down: dropped unsent
    int fd = -1;
    const msghdr* msg = nullptr; // a send
    void* data = nullptr;        // a recv: its buffer
    std::size_t size = 0;
    int result = 0;
    bool completed = false;        // its completion arrived
    bool cancelled = false;        // cancel(fd) came first
    io_uring_sqe* entry = nullptr; // its entry while not yet handed to the kernel

  protected:
    ~Op() = default;
  };

  // sendmsg(fd, msg, MSG_NOSIGNAL | MSG_DONTWAIT) in the loop's next flush. Completes with the
  // bytes sent, or with the error (would_block for a full socket). Only while active().
  template <class Token> auto async_sendmsg(int fd, const msghdr* msg, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this, fd, msg](auto handler) {
          using Handler = std::decay_t<decltype(handler)>;
          queue(fd, msg, new HandlerOp<Handler>(std::move(handler)));
        },
        token);
  }

  // recv(fd, data, size, MSG_DONTWAIT) in the loop's next flush, completing `op` (which outlives
  // it). Only while active().
  void queue_recv(int fd, void* data, std::size_t size, Op* op);

  // The socket `fd` is being cancelled or closed: its queued operations that have not reached the
  // kernel become no-ops and complete with operation_aborted (ECANCELED), as Asio's own queued
  // operations do; one that already ran keeps its result. Call it before closing `fd`, so that
  // a queued call cannot reach a descriptor that reuses its number.
  void cancel(int fd);

  // `op` is being destroyed with the loop, still queued: it is dropped, and its entry, if not yet
  // handed to the kernel, becomes a no-op.
  void forget(Op* op);

  // For tests: submit rounds run, the operations they carried, and what waits for the next flush.
  std::size_t rounds() const { return rounds_; }
  std::size_t operations() const { return operations_; }
  std::size_t queued() const { return queued_.size(); }

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

  void queue(int fd, const msghdr* msg, Op* op);
  io_uring_sqe* next_entry(); // null: the ring is full for this pass
  void enqueue(io_uring_sqe* sqe, Op* op);
  static int perform(const Op& op); // the call itself: bytes, or -errno
  void flush();
  void run_round(); // submits what is queued and completes it
  void give_up_ring(int error);
  void shutdown() override;

  boost::asio::io_context& ioc_;
  struct Ring;
  std::unique_ptr<Ring> ring_;
  std::vector<Op*> queued_, completing_;
  bool flush_posted_ = false;
  std::size_t rounds_ = 0, operations_ = 0;
};

} // namespace semrouter::gateway
