#include "gateway/io_batch.h"

#include <liburing.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>

namespace semrouter::gateway {

namespace asio = boost::asio;

asio::execution_context::id IoBatcher::id;

namespace {

// Entries one submit hands over (a larger round goes in chunks of this many), and the rounds of
// submit-and-complete one flush runs before it lets the loop's other handlers go.
constexpr unsigned kSqEntries = 256;
constexpr int kRoundsPerFlush = 4;
// How long a flush waits for a call that did not complete within io_uring_enter (the probe says
// none does) before it gives the ring up.
constexpr unsigned kStuckCallMs = 1000;

std::string errno_text(int e) {
  return std::strerror(e);
}

// Whether io_uring calls here complete during io_uring_enter as the system calls would: a send
// that fits goes out, and a send to a full socket or a recv from an empty one answers EAGAIN at
// once (MSG_DONTWAIT) instead of waiting in the kernel. Run once per process on a socket pair;
// "" when it holds, else why not.
std::string probe_kernel() {
  io_uring ring;
  if (const int rc = io_uring_queue_init(4, &ring, 0); rc < 0)
    return "io_uring_queue_init: " + errno_text(-rc);
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    const int e = errno;
    io_uring_queue_exit(&ring);
    return "socketpair: " + errno_text(e);
  }
  std::string why;
  char byte = 'x';
  iovec iov{&byte, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // One call through the ring; its completion must be there when the submit returns.
  auto run_once = [&](bool send, int& result) -> bool {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (send)
      io_uring_prep_sendmsg(sqe, sv[0], &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    else
      io_uring_prep_recv(sqe, sv[1], &byte, 1, MSG_DONTWAIT); // sv[1] is empty: nothing sent yet
    int rc;
    do
      rc = io_uring_submit(&ring);
    while (rc == -EINTR);
    if (rc != 1) {
      why = "io_uring_submit: " + errno_text(rc < 0 ? -rc : EIO);
      return false;
    }
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&ring, &cqe) != 0 || cqe == nullptr) {
      why =
          std::string("a ") + (send ? "send" : "recv") + " did not complete within io_uring_enter";
      // Let it finish before the ring and the message go: the peer's close ends it.
      ::close(sv[1]);
      sv[1] = -1;
      if (io_uring_wait_cqe(&ring, &cqe) == 0)
        io_uring_cqe_seen(&ring, cqe);
      return false;
    }
    result = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    return true;
  };
  int result = 0;
  if (run_once(false, result) && result != -EAGAIN)
    why = "a recv from an empty socket answered " +
          (result < 0 ? errno_text(-result) : std::to_string(result)) + " instead of EAGAIN";
  else if (why.empty() && run_once(true, result)) {
    if (result == -EINVAL || result == -EOPNOTSUPP)
      why = "IORING_OP_SENDMSG is not supported: " + errno_text(-result);
    else if (result != 1)
      why = "a send through io_uring answered " +
            (result < 0 ? errno_text(-result) : std::to_string(result));
    else {
      // Fill the socket, then a send must answer EAGAIN without waiting.
      char block[4096] = {};
      while (::send(sv[0], block, sizeof block, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
      }
      if (run_once(true, result) && result != -EAGAIN)
        why = "a send to a full socket answered " +
              (result < 0 ? errno_text(-result) : std::to_string(result)) + " instead of EAGAIN";
    }
  }
  ::close(sv[0]);
  if (sv[1] >= 0)
    ::close(sv[1]);
  io_uring_queue_exit(&ring);
  return why;
}

} // namespace

struct IoBatcher::Ring {
  io_uring ring{};
};

IoBatcher::IoBatcher(asio::io_context& ioc) : asio::execution_context::service(ioc), ioc_(ioc) {}

IoBatcher::~IoBatcher() {
  shutdown();
}

bool IoBatcher::start(std::string& why) {
  if (ring_)
    return true;
  static std::once_flag once;
  static std::string kernel_why;
  std::call_once(once, [] { kernel_why = probe_kernel(); });
  if (!kernel_why.empty()) {
    why = kernel_why;
    return false;
  }
  auto ring = std::make_unique<Ring>();
  if (const int rc = io_uring_queue_init(kSqEntries, &ring->ring, 0); rc < 0) {
    why = "io_uring_queue_init: " + errno_text(-rc);
    return false;
  }
  queued_.reserve(64);
  completing_.reserve(64);
  ring_ = std::move(ring);
  return true;
}

void IoBatcher::queue(int fd, Op* op) {
  op->fd = fd;
  op->cancelled = false;
  op->ran = false;
  queued_.push_back(op);
  if (!flush_posted_) {
    flush_posted_ = true;
    asio::post(ioc_, [this] { flush(); });
  }
}

void IoBatcher::queue_recv(int fd, void* data, std::size_t size, Op* op) {
  op->msg = nullptr;
  op->data = data;
  op->size = size;
  queue(fd, op);
}

void IoBatcher::cancel(int fd) {
  for (Op* op : queued_)
    if (op->fd == fd)
      op->cancelled = true;
  for (Op* op : held_)
    if (op->fd == fd)
      op->cancelled = true;
}

void IoBatcher::hold(Op* op) {
  op->held = true;
  held_.push_back(op);
}

void IoBatcher::release(Op* op) {
  if (!op->held)
    return;
  op->held = false;
  if (const auto it = std::find(held_.begin(), held_.end(), op); it != held_.end())
    held_.erase(it);
}

void IoBatcher::forget(Op* op) {
  if (const auto it = std::find(queued_.begin(), queued_.end(), op); it != queued_.end())
    queued_.erase(it);
  release(op);
}

int IoBatcher::perform(const Op& op) {
  ssize_t n;
  do
    n = op.msg != nullptr ? ::sendmsg(op.fd, op.msg, MSG_NOSIGNAL | MSG_DONTWAIT)
                          : ::recv(op.fd, op.data, op.size, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : static_cast<int>(n);
}

void IoBatcher::flush() {
  // What the completions of one round queue (the answers to the reads just completed, the next
  // calls of the coroutines they resumed) goes out in another round at once, not after a trip
  // through the loop's queue and the epoll_wait(0) the loop makes first. flush_posted_ stays set
  // meanwhile, so those do not post another flush.
  struct Reset {
    IoBatcher& b;
    ~Reset() {
      b.flush_posted_ = false;
      if (!b.queued_.empty()) { // the rest waits behind the handlers ready now
        b.flush_posted_ = true;
        asio::post(b.ioc_, [&b = b] { b.flush(); });
      }
    }
  } reset{*this};
  for (int round = 0; round < kRoundsPerFlush && !queued_.empty(); ++round)
    run_round();
}

void IoBatcher::run_round() {
  std::vector<Op*> batch;
  batch.swap(completing_); // an empty vector with capacity
  batch.swap(queued_);     // what is queued while these complete goes to the next round
  operations_ += batch.size();
  run_calls(batch);
  for (Op* op : batch)
    op->complete(op->result); // resumes its coroutine, which may queue the next round's calls
  batch.clear();
  completing_.swap(batch); // keeps the capacity
}

void IoBatcher::run_calls(std::vector<Op*>& ops) {
  std::size_t next = 0;
  std::vector<Op*>& chunk = chunk_; // what one submit carries, in order (its capacity kept)
  while (next < ops.size()) {
    chunk.clear();
    for (; next < ops.size() && chunk.size() < kSqEntries; ++next) {
      Op* op = ops[next];
      op->ran = false;
      if (op->cancelled) {
        op->result = -ECANCELED; // never runs: its descriptor may be closed or reused
        continue;
      }
      if (!ring_) { // the ring was given up: a system call
        op->result = perform(*op);
        continue;
      }
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring); // the queue is empty between chunks
      if (op->msg != nullptr)
        io_uring_prep_sendmsg(sqe, op->fd, op->msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      else
        io_uring_prep_recv(sqe, op->fd, op->data, op->size, MSG_DONTWAIT);
      io_uring_sqe_set_data(sqe, op);
      chunk.push_back(op);
    }
    if (chunk.empty())
      continue;
    io_uring* r = &ring_->ring;
    int submitted;
    do
      submitted = io_uring_submit(r);
    while (submitted == -EINTR);
    const std::size_t taken = submitted < 0 ? 0 : static_cast<std::size_t>(submitted);
    std::size_t got = 0;
    std::string why;
    while (got < taken) {
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0, seen = 0;
      io_uring_for_each_cqe(r, head, cqe) {
        ++seen;
        Op* op = static_cast<Op*>(io_uring_cqe_get_data(cqe));
        op->result = cqe->res;
        op->ran = true;
        ++got;
      }
      io_uring_cq_advance(r, seen);
      if (got < taken) {
        // Not expected (the start-up probe saw calls complete within the submit).
        __kernel_timespec ts{kStuckCallMs / 1000, (kStuckCallMs % 1000) * 1000000L};
        const int rc = io_uring_wait_cqe_timeout(r, &cqe, &ts);
        if (rc < 0 && rc != -EINTR) {
          why = rc == -ETIME ? "a call did not complete within io_uring_enter"
                             : "io_uring_wait_cqe: " + errno_text(-rc);
          break;
        }
      }
    }
    if (submitted < 0)
      why = "io_uring_submit: " + errno_text(-submitted);
    else if (taken < chunk.size() && why.empty())
      why = "io_uring_submit took " + std::to_string(taken) + " of " +
            std::to_string(chunk.size()) + " entries";
    // Entries never handed over die with the ring; in-flight ones are cancelled.
    if (!why.empty())
      give_up_ring(why);
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      Op* op = chunk[i];
      if (op->ran)
        continue;
      // Handed over (and cancelled with the ring), or never handed over: only the latter may
      // still run, as a system call.
      op->result = i < taken ? -ECANCELED : perform(*op);
    }
  }
}

// io_uring failed in a way a retry would not mend: the loop makes its calls itself from now on.
void IoBatcher::give_up_ring(const std::string& why) {
  spdlog::error("io_uring batching stopped ({}): sends and reads are system calls from now on",
                why);
  io_uring_queue_exit(&ring_->ring);
  ring_.reset();
}

void IoBatcher::shutdown() {
  // The loop is torn down: nothing queued runs. The ring goes first, so that an operation's
  // destruction cannot reach it. Held operations wait in the scheduler's queue, whose shutdown
  // frees them.
  if (ring_) {
    io_uring_queue_exit(&ring_->ring);
    ring_.reset();
  }
  held_.clear();
  std::vector<Op*> dropped;
  dropped.swap(queued_);
  for (Op* op : dropped)
    op->destroy();
}

} // namespace semrouter::gateway
