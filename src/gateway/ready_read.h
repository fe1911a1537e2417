// async_read_ready: a socket read that, like nginx, calls recv() only when the socket may hold
// bytes.
//
// Asio 1.74 starts every read of a stream socket with a recv() and queues it on epoll only when
// that recv finds nothing (its "speculative" read). For a proxy that first recv fails on nearly
// every request: a keep-alive client's next request, and an upstream's answer, arrive some
// microseconds after the read is started. On the 2-core VM of docs/benchmarks.md each failed recv
// costs about 1.2 µs, two per proxied request, and one per chunk of a paced stream.
//
// Asio's reactor has the switch for this already: an operation that reports "done and exhausted"
// turns the speculative read off for its socket until epoll next reports the socket readable.
// Asio's own receive reports that only at end of stream. ReadOp also reports it after a short read
// (fewer bytes than asked for): the receive queue was empty then, and a byte that arrives later
// raises a new edge on the socket's edge-triggered registration, which performs the queued read
// or turns speculation back on. That is nginx's rule too, with one hole it also has to close: a
// FIN (or a reset) that arrived together with the last bytes raises no edge of its own, and the
// short read that took the bytes leaves the end of stream unread. nginx watches EPOLLRDHUP for
// it; Asio does not register that event, so PeerClosePoller does, in an epoll set of its own
// (one per loop, itself watched by the loop). When it reports a socket, the socket's PeerWatch
// marks it closing (from then on its reads stay speculative) and, if the socket's last read
// ended short, re-arms the socket's Asio registration, which reports it readable again and so
// performs a read that was already queued.
//
// Where the loop's IoBatcher is active (io_batch.h), a read that waited for epoll has its recv()
// made by the batcher's next flush instead, together with the pass's other calls.
//
// Everything else is Asio's: the registration, cancel() and close() (they complete the read with
// operation_aborted; a read whose recv() is queued or held in the batcher learns of them only
// through cancel_socket()), the handler's allocator and executor. Plain TCP sockets only; TLS
// streams read through Asio as before, and so does any socket the poller does not watch (yet): the
// gateway watches a client from its second request on and the upstream connections it opens.
//
// Rules for callers:
// - No async_read_ready while a write is queued on the same socket: the re-arm is a wait to
//   write, which Asio only queues behind a pending write. (The gateway reads a client socket
//   only between answers, and an upstream socket once its request is written.)
// - Watch a socket once it is connected, and never reopen it afterwards: the watch is tied to
//   the descriptor (closing it ends the watch).
// - Cancel or close a socket that another coroutine may be reading only through cancel_socket()
//   first, and never destroy the socket or its PeerWatch while a read on it is pending.
// - At most one operation on a socket's read queue (a read, or a wait to read) at a time.
// - TCP urgent data is not expected: recv() stops short of the urgent mark, which this rule would
//   take for an empty queue (no client or model server sends it).
#pragma once

#include <type_traits>

#include <boost/version.hpp>

#include "gateway/beast.h"
#include "gateway/io_batch.h"

// This leans on Asio 1.74's epoll reactor (its speculative-read flag, the epoll_ctl a wait does
// on an idle queue, basic_socket's members): another Boost must be checked before it builds.
static_assert(BOOST_VERSION == 107400, "ready_read.h was written against Boost 1.74's Asio");
static_assert(std::is_same_v<boost::asio::detail::reactor, boost::asio::detail::epoll_reactor>,
              "ready_read.h needs Asio's epoll reactor");

namespace semrouter::gateway {

class PeerClosePoller;

// Per socket: whether PeerClosePoller watches it, and whether the peer has closed or reset it.
// It must outlive the socket's descriptor (declare it before the socket), since the poller's
// epoll set refers to it until the descriptor is closed.
// Neither copied nor moved: the poller's epoll set holds its address.
struct PeerWatch {
  PeerWatch() = default;
  PeerWatch(const PeerWatch&) = delete;
  PeerWatch& operator=(const PeerWatch&) = delete;

  boost::asio::ip::tcp::socket* socket = nullptr; // set by the owner; what async_read_ready reads
  PeerClosePoller* poller = nullptr; // the poller that watches it (set by its watch()), else null
  int fd = -1; // the descriptor the poller watches; -1: none (reads as Asio's); -2: watch failed
  bool peer_closed = false; // a FIN or a reset arrived: reads try recv() first again
  bool exhausted = false;   // the last read ended short: the socket's next read waits for epoll
  // Called by the poller: marks the socket and, if a short read turned its speculation off,
  // re-arms its Asio registration.
  void on_peer_closed();
};

// The per-loop epoll set of sockets whose FIN or reset matters (an io_context service).
class PeerClosePoller : public boost::asio::execution_context::service {
public:
  static boost::asio::execution_context::id id;
  explicit PeerClosePoller(boost::asio::execution_context& context);
  ~PeerClosePoller() override;
  PeerClosePoller(const PeerClosePoller&) = delete;
  PeerClosePoller& operator=(const PeerClosePoller&) = delete;

  // Starts watching `watch.socket` (connected, and not watched yet); false when it cannot, and
  // the socket's reads then stay Asio's. One epoll_ctl per connection.
  bool watch(PeerWatch& watch);
  boost::asio::detail::reactor& reactor() { return reactor_; }
  // The loop's batcher: reads that epoll reported ready take their recv() from it when active.
  IoBatcher& batcher() { return batcher_; }

private:
  void shutdown() override;
  struct DrainOp;
  boost::asio::detail::reactor& reactor_;
  IoBatcher& batcher_;
  int epoll_fd_ = -1;
  boost::asio::detail::reactor::per_descriptor_data registration_ = nullptr;
};

namespace ready_read_detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// The socket's implementation (its descriptor, state flags and reactor registration), which
// basic_socket keeps protected. A pointer to the protected member, formed in a derived class,
// may be applied to any socket.
struct SocketAccess : tcp::socket {
  static auto& implementation(tcp::socket& s) {
    return (s.*(&SocketAccess::impl_)).get_implementation();
  }
};

// The socket's read readiness flag (see quiet_since_short_read): set, a read started now runs its
// recv() at once; Asio clears it after a read that emptied the socket.
bool read_speculation(asio::ip::tcp::socket& socket);
void set_read_speculation(asio::ip::tcp::socket& socket, bool on);

template <class Handler, class IoExecutor>
class ReadOp : public asio::detail::reactor_op, public IoBatcher::Op {
public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(ReadOp);

  // `batcher`: where a recv() goes when epoll has reported the socket ready (null: at once).
  ReadOp(int fd, PeerWatch& watch, asio::mutable_buffer buffer, Handler& handler,
         const IoExecutor& io_ex, IoBatcher* batcher)
      : asio::detail::reactor_op(boost::system::error_code(), &ReadOp::do_perform,
                                 &ReadOp::do_complete),
        fd_(fd), watch_(watch), buffer_(buffer), handler_(std::move(handler)),
        work_(handler_, io_ex), batcher_(batcher) {}

  static status do_perform(asio::detail::reactor_op* base) {
    auto* o = static_cast<ReadOp*>(base);
    if (o->batcher_ != nullptr && o->batcher_->active()) {
      // The recv() joins the pass's batch: the reactor takes the operation as done, and it
      // completes once the batcher's flush has its result (settle() below). Taken as a read that
      // emptied the socket, so that a second operation queued on the socket's read queue is not
      // run past this one; nothing wakes that one until the next edge, so the gateway keeps at
      // most one read-queue operation per socket at a time.
      o->batch_ = Batch::Queued;
      o->reactor_done_ = false;
      o->batcher_->queue_recv(o->fd_, o->buffer_.data(), o->buffer_.size(), o);
      return done_and_exhausted;
    }
    if (!asio::detail::socket_ops::non_blocking_recv1(o->fd_, o->buffer_.data(), o->buffer_.size(),
                                                      0, true, o->ec_, o->bytes_transferred_))
      return not_done; // nothing there: wait for epoll
    o->watch_.exhausted = false;
    if (o->ec_)
      return done_and_exhausted; // end of stream (ec = eof) or an error
    if (o->bytes_transferred_ < o->buffer_.size() && !o->watch_.peer_closed) {
      o->watch_.exhausted = true;
      return done_and_exhausted; // a short read emptied the queue: the next read waits for epoll
    }
    return done; // a full buffer (more may wait), or a closing peer: the next read tries at once
  }

  static void do_complete(void* owner, asio::detail::operation* base,
                          const boost::system::error_code& /*ec*/, std::size_t /*bytes*/) {
    auto* o = static_cast<ReadOp*>(base);
    if (o->batch_ != Batch::None) {
      if (!owner) { // the loop is torn down with the operation in the scheduler's queue
        o->batcher_->forget(o);
        o->finish(false);
        return;
      }
      // Handed back by the reactor. The batcher's flush may come before or after this (the flush
      // is posted when the recv is queued, this when perform_io is done): whichever comes second
      // settles the read.
      o->reactor_done_ = true;
      if (o->batch_ == Batch::Ran)
        o->settle();
      return;
    }
    o->finish(owner != nullptr);
  }

  // The batched recv()'s result, at the batcher's flush.
  void complete(int result) override {
    result_ = result;
    batch_ = Batch::Ran;
    if (reactor_done_)
      settle();
    else
      batcher_->hold(this); // a cancel before the reactor hands it back must still count
  }
  // The loop is torn down with the recv() still queued in the batcher: if the reactor still holds
  // the operation too, the loop's own teardown frees it (do_complete without an owner).
  void destroy() override {
    batch_ = Batch::Ran;
    if (reactor_done_)
      finish(false);
  }

private:
  // Both the reactor and the batcher are done with the read: completes it with the recv()'s
  // result, as do_perform would have.
  void settle() {
    batch_ = Batch::None;
    batcher_->release(this);
    const int result = result_;
    // Cancelled before it ran, or while it waited for the reactor having found nothing (an Asio
    // read still waiting would have been cancelled too).
    if (result == -ECANCELED || (cancelled && (result == -EAGAIN || result == -EWOULDBLOCK))) {
      // The edge that woke this read is spent and its bytes are unread: the next read tries
      // recv() at once (on a closed socket this changes nothing).
      set_read_speculation(*watch_.socket, true);
      ec_ = asio::error::operation_aborted;
      finish(true);
      return;
    }
    if (result == -EAGAIN || result == -EWOULDBLOCK) {
      // Nothing there after all (a stale wake-up): wait for epoll again, as a recv() that finds
      // nothing does, this time with the recv() run by the reactor. start_op re-arms the socket,
      // so data that came in meanwhile is reported.
      ec_ = {};
      bytes_transferred_ = 0;
      batcher_ = nullptr;
      auto& impl = SocketAccess::implementation(*watch_.socket);
      watch_.poller->reactor().start_op(asio::detail::reactor::read_op, fd_, impl.reactor_data_,
                                        this, true, false);
      return;
    }
    watch_.exhausted = false;
    if (result < 0) {
      ec_.assign(-result, boost::system::system_category());
    } else if (result == 0) {
      ec_ = asio::error::eof; // the buffer is never empty here (see async_read_ready)
    } else {
      bytes_transferred_ = static_cast<std::size_t>(result);
      if (bytes_transferred_ < buffer_.size() && !watch_.peer_closed)
        watch_.exhausted = true; // the socket's flag stays off: the next read waits for epoll
      else
        set_read_speculation(*watch_.socket, true); // more may wait: the next read tries at once
    }
    finish(true);
  }

  void finish(bool invoke) {
    ReadOp* o = this;
    ptr p = {asio::detail::addressof(o->handler_), o, o};
    asio::detail::handler_work<Handler, IoExecutor> w(std::move(o->work_));
    // The handler is moved out before the operation's memory is freed: it may own that memory.
    asio::detail::binder2<Handler, boost::system::error_code, std::size_t> handler(
        o->handler_, o->ec_, o->bytes_transferred_);
    p.h = asio::detail::addressof(handler.handler_);
    p.reset();
    if (invoke) { // false when the loop is destroyed with the read still queued
      asio::detail::fenced_block b(asio::detail::fenced_block::half);
      w.complete(handler, handler.handler_);
    }
  }

  int fd_;
  PeerWatch& watch_;
  asio::mutable_buffer buffer_;
  Handler handler_;
  asio::detail::handler_work<Handler, IoExecutor> work_;
  IoBatcher* batcher_;
  // Where a batched recv() is: none, queued in the batcher, or run (its result in result_).
  enum class Batch : unsigned char { None, Queued, Ran };
  Batch batch_ = Batch::None;
  bool reactor_done_ = false; // the reactor has handed the operation back (do_complete ran)
  int result_ = 0;
};

} // namespace ready_read_detail

// True when nothing has come in on `*watch.socket` since its last read ended short (no byte, no
// end of stream, no error), as far as the loop has handled events: that read turned the socket's
// read readiness off, no event has turned it back on (Asio's reactor sets it again when it
// performs a readable, error or hang-up event for the socket), and the poller has reported no
// close. False whenever that is not known: an unwatched socket, or a last read that filled its
// buffer. Unlike a recv(), it does not see an event epoll has not reported yet, nor one it has
// that waits in the loop's queue behind other handlers.
bool quiet_since_short_read(PeerWatch& watch);

// socket.cancel(), for its operations waiting in the loop's IoBatcher too: they end with
// operation_aborted unless they already ran. Code that cancels or closes a socket another coroutine
// may be reading or writing calls this first.
void cancel_socket(boost::asio::ip::tcp::socket& socket);

// Reads some bytes from `*watch.socket` into `buffer`, like its async_read_some, with the rule
// above when the poller watches that socket (else it is the socket's async_read_some).
template <class Token>
auto async_read_ready(PeerWatch& watch, boost::asio::mutable_buffer buffer, Token&& token) {
  namespace asio = boost::asio;
  return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
      [&watch](auto handler, asio::mutable_buffer buf) {
        asio::ip::tcp::socket& socket = *watch.socket;
        auto& impl = ready_read_detail::SocketAccess::implementation(socket);
        if (watch.poller == nullptr || watch.fd != impl.socket_ ||
            buf.size() == 0) { // Asio completes an empty read at once, with no recv
          socket.async_read_some(buf, std::move(handler));
          return;
        }
        PeerClosePoller& poller = *watch.poller;
        using Handler = std::decay_t<decltype(handler)>;
        using IoExecutor = asio::ip::tcp::socket::executor_type;
        using Op = ready_read_detail::ReadOp<Handler, IoExecutor>;
        const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
        typename Op::ptr p = {asio::detail::addressof(handler), Op::ptr::allocate(handler), 0};
        // A read the reactor runs at once (the flag set) keeps its recv() here, as before: only a
        // read that waits for epoll has its recv() batched.
        IoBatcher* batcher =
            ready_read_detail::read_speculation(socket) ? nullptr : &poller.batcher();
        p.p = new (p.v) Op(impl.socket_, watch, buf, handler, socket.get_executor(), batcher);
        // Asio makes a socket non-blocking on its first asynchronous operation; so do we.
        if ((impl.state_ & asio::detail::socket_ops::non_blocking) ||
            asio::detail::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true,
                                                                p.p->ec_))
          poller.reactor().start_op(asio::detail::reactor::read_op, impl.socket_,
                                    impl.reactor_data_, p.p, is_continuation, true);
        else
          poller.reactor().post_immediate_completion(p.p, is_continuation);
        p.v = p.p = 0;
      },
      token, buffer);
}

} // namespace semrouter::gateway
