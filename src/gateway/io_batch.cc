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

// Entries a pass may hand over before a submit must make room (the sends stay queued for the
// flush), and completions the ring holds: every send of one pass.
constexpr unsigned kSqEntries = 256;
constexpr unsigned kCqEntries = 4096;
// Rounds of submit-and-complete one flush runs before it lets the loop's other handlers go.
constexpr int kRoundsPerFlush = 4;

std::string errno_text(int e) {
  return std::strerror(e);
}

// Whether io_uring sends here complete during io_uring_enter as sendmsg would: a send that fits
// goes out, and one that would block answers EAGAIN at once (MSG_DONTWAIT) instead of waiting in
// the kernel. Run once per process on a socket pair; "" when it holds, else why not.
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
  // One send through the ring; its completion must be there when the submit returns.
  auto send_once = [&](int& result) -> bool {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_sendmsg(sqe, sv[0], &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
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
      why = "a send did not complete within io_uring_enter";
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
  if (send_once(result)) {
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
      if (send_once(result) && result != -EAGAIN)
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
  std::size_t in_ring = 0; // entries handed to this pass's ring (submitted or not)
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
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = kCqEntries;
  if (const int rc = io_uring_queue_init_params(kSqEntries, &ring->ring, &params); rc < 0) {
    why = "io_uring_queue_init: " + errno_text(-rc);
    return false;
  }
  queued_.reserve(64);
  completing_.reserve(64);
  ring_ = std::move(ring);
  return true;
}

io_uring_sqe* IoBatcher::next_entry() {
  if (ring_->in_ring >= kCqEntries)
    return nullptr;
  io_uring* r = &ring_->ring;
  io_uring_sqe* sqe = io_uring_get_sqe(r);
  if (sqe == nullptr) {
    // The submission queue is full: hand its entries over now (they complete into the
    // completion queue, which holds a whole pass) and take a free one.
    int rc;
    do
      rc = io_uring_submit(r);
    while (rc == -EINTR);
    for (Op* op : queued_)
      op->entry = nullptr; // in the kernel's hands: cancel() can no longer stop it
    sqe = io_uring_get_sqe(r);
  }
  return sqe;
}

void IoBatcher::enqueue(io_uring_sqe* sqe, Op* op) {
  io_uring_sqe_set_data(sqe, op);
  op->entry = sqe;
  op->completed = false;
  op->cancelled = false;
  ++ring_->in_ring;
  queued_.push_back(op);
  if (!flush_posted_) {
    flush_posted_ = true;
    asio::post(ioc_, [this] { flush(); });
  }
}

void IoBatcher::queue(int fd, const msghdr* msg, Op* op) {
  op->fd = fd;
  op->msg = msg;
  io_uring_sqe* sqe = next_entry();
  if (sqe == nullptr) {
    // More in one pass than the ring holds: this one runs now, its completion posted.
    op->entry = nullptr;
    op->cancelled = false;
    asio::post(ioc_, [op, result = perform(*op)] { op->complete(result); });
    return;
  }
  io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  enqueue(sqe, op);
}

void IoBatcher::queue_recv(int fd, void* data, std::size_t size, Op* op) {
  op->fd = fd;
  op->msg = nullptr;
  op->data = data;
  op->size = size;
  io_uring_sqe* sqe = next_entry();
  if (sqe == nullptr) {
    op->entry = nullptr;
    op->cancelled = false;
    asio::post(ioc_, [op, result = perform(*op)] { op->complete(result); });
    return;
  }
  io_uring_prep_recv(sqe, fd, data, size, MSG_DONTWAIT);
  enqueue(sqe, op);
}

void IoBatcher::cancel(int fd) {
  for (Op* op : queued_) {
    if (op->fd != fd || op->cancelled)
      continue;
    op->cancelled = true;
    if (op->entry != nullptr) {
      io_uring_prep_nop(op->entry);
      io_uring_sqe_set_data(op->entry, op);
    }
  }
}

void IoBatcher::forget(Op* op) {
  const auto it = std::find(queued_.begin(), queued_.end(), op);
  if (it == queued_.end())
    return;
  queued_.erase(it);
  if (op->entry != nullptr) {
    io_uring_prep_nop(op->entry);
    io_uring_sqe_set_data(op->entry, nullptr); // its completion is skipped
  }
}

int IoBatcher::perform(const Op& op) {
  ssize_t n;
  do
    n = op.msg != nullptr ? ::sendmsg(op.fd, op.msg, MSG_NOSIGNAL | MSG_DONTWAIT)
                          : ::recv(op.fd, op.data, op.size, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : static_cast<int>(n);
}

// Runs on the loop after the handlers that were ready when the first send of the pass was queued.
void IoBatcher::flush() {
  // What the completions of one round queue (the answers to the reads just completed, the next
  // reads and sends of the coroutines they resumed) goes out in another round at once, not after
  // a trip through the loop's queue and the epoll_wait(0) the loop makes first. flush_posted_
  // stays set meanwhile, so those do not post another flush.
  for (int round = 0; round < kRoundsPerFlush && ring_ && !queued_.empty(); ++round)
    run_round();
  flush_posted_ = false;
  if (ring_ && !queued_.empty()) {
    flush_posted_ = true; // the rest waits behind the handlers ready now
    asio::post(ioc_, [this] { flush(); });
  }
}

void IoBatcher::run_round() {
  io_uring* r = &ring_->ring;
  completing_.swap(queued_); // what is queued while these complete goes to the next flush
  const std::size_t want = completing_.size();
  ring_->in_ring = 0;
  ++rounds_;
  operations_ += want;
  std::size_t got = 0;
  while (got < want) {
    if (io_uring_sq_ready(r) > 0) {
      int rc;
      do
        rc = io_uring_submit(r);
      while (rc == -EINTR);
      if (rc < 0) {
        give_up_ring(-rc);
        break;
      }
    }
    io_uring_cqe* cqe = nullptr;
    unsigned head = 0, seen = 0;
    io_uring_for_each_cqe(r, head, cqe) {
      ++seen;
      Op* op = static_cast<Op*>(io_uring_cqe_get_data(cqe));
      if (op == nullptr)
        continue; // forgotten (forget())
      op->result = cqe->res;
      op->completed = true;
      ++got;
    }
    io_uring_cq_advance(r, seen);
    if (got < want && io_uring_sq_ready(r) == 0) {
      // Not expected (the start-up probe saw sends complete within the submit): wait for them.
      const int rc = io_uring_wait_cqe(r, &cqe);
      if (rc < 0 && rc != -EINTR) {
        give_up_ring(-rc);
        break;
      }
    }
  }
  std::vector<Op*> batch;
  batch.swap(completing_); // completing_ is free for the next flush, which a resumed send posts
  for (Op* op : batch) {
    if (op->cancelled && (op->entry != nullptr || op->result == -EAGAIN))
      op->result = -ECANCELED; // stopped before it ran, or it found nothing
    else if (!op->completed)   // the ring was given up before this reached the kernel: a plain call
      op->result = perform(*op);
    op->complete(op->result); // resumes its coroutine, which may queue the next flush's sends
  }
  batch.clear();
  completing_.swap(batch); // keeps the capacity
}

// io_uring failed in a way a retry would not mend: sends are sendmsg from now on. Entries not yet
// handed to the kernel die with the ring.
void IoBatcher::give_up_ring(int error) {
  spdlog::error("io_uring send batching stopped ({}): sends use sendmsg from now on",
                errno_text(error));
  io_uring_queue_exit(&ring_->ring);
  ring_.reset();
}

void IoBatcher::shutdown() {
  // The loop is torn down: queued sends are dropped unsent, with the coroutines that wait on them.
  for (Op* op : queued_)
    op->destroy();
  queued_.clear();
  if (ring_) {
    io_uring_queue_exit(&ring_->ring);
    ring_.reset();
  }
}

} // namespace semrouter::gateway
