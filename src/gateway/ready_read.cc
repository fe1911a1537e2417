#include "gateway/ready_read.h"

#include <cassert>
#include <cerrno>
#include <sys/epoll.h>
#include <type_traits>
#include <unistd.h>

namespace semrouter::gateway {

namespace asio = boost::asio;

asio::execution_context::id PeerClosePoller::id;

namespace {

// Asio's reactor keeps a socket's readiness flags private. An explicit instantiation may name a
// private member, and the friend function it defines hands the member out.
using DescriptorState = std::remove_pointer_t<asio::detail::reactor::per_descriptor_data>;
using ReadinessFlags = bool[asio::detail::reactor::max_ops];
template <ReadinessFlags DescriptorState::*Member> struct ReadinessAccess {
  friend ReadinessFlags& readiness(DescriptorState& d) { return d.*Member; }
};
ReadinessFlags& readiness(DescriptorState& d);
template struct ReadinessAccess<&DescriptorState::try_speculative_>;

} // namespace

bool quiet_since_short_read(PeerWatch& watch) {
  if (watch.poller == nullptr || watch.socket == nullptr || !watch.exhausted || watch.peer_closed)
    return false;
  auto& impl = ready_read_detail::SocketAccess::implementation(*watch.socket);
  if (impl.socket_ != watch.fd || impl.reactor_data_ == nullptr)
    return false;
  return !readiness(*impl.reactor_data_)[asio::detail::reactor::read_op];
}

namespace ready_read_detail {

bool read_speculation(tcp::socket& socket) {
  auto& impl = SocketAccess::implementation(socket);
  return impl.reactor_data_ != nullptr &&
         readiness(*impl.reactor_data_)[asio::detail::reactor::read_op];
}

void set_read_speculation(tcp::socket& socket, bool on) {
  auto& impl = SocketAccess::implementation(socket);
  if (impl.reactor_data_ != nullptr)
    readiness(*impl.reactor_data_)[asio::detail::reactor::read_op] = on;
}

} // namespace ready_read_detail

void cancel_socket(asio::ip::tcp::socket& socket) {
  if (socket.is_open()) {
    auto& context = asio::query(socket.get_executor(), asio::execution::context);
    // A socket of a worker's loop (an io_context): its batcher, made with the loop.
    // Active or not: reads held from before a give-up still count.
    if (asio::has_service<IoBatcher>(context))
      asio::use_service<IoBatcher>(static_cast<asio::io_context&>(context))
          .cancel(socket.native_handle());
  }
  boost::system::error_code ignored;
  socket.cancel(ignored);
}

void PeerWatch::on_peer_closed() {
  peer_closed = true;
  // Only a read that ended short turned the socket's speculation off; otherwise the next read
  // tries recv() first anyway and finds the end of stream.
  if (!exhausted || socket == nullptr || !socket->is_open())
    return;
  exhausted = false;
  // A wait to write re-arms the socket's edge-triggered registration (Asio runs epoll_ctl MOD for
  // a wait when none is queued), and epoll then reports it readable again: a read queued on it
  // runs and finds the end of stream. The socket is writable, so the wait itself ends at once.
  socket->async_wait(asio::ip::tcp::socket::wait_write, [](const boost::system::error_code&) {});
}

// Queued on the poller's epoll descriptor for as long as the loop lives, without counting as
// work (like Asio's own signal pipe): each time the loop's epoll reports the poller's set ready,
// it takes every event from it and tells the sockets.
struct PeerClosePoller::DrainOp : asio::detail::reactor_op {
  explicit DrainOp(int fd)
      : asio::detail::reactor_op(boost::system::error_code(), &DrainOp::do_perform,
                                 &DrainOp::do_complete),
        epoll_fd(fd) {}
  static status do_perform(asio::detail::reactor_op* base) {
    auto* op = static_cast<DrainOp*>(base);
    epoll_event events[64];
    int n = 0;
    do {
      n = ::epoll_wait(op->epoll_fd, events, 64, 0);
      for (int i = 0; i < n; ++i)
        static_cast<PeerWatch*>(events[i].data.ptr)->on_peer_closed();
    } while (n == 64 || (n < 0 && errno == EINTR));
    return not_done; // stays queued
  }
  // Runs only when the loop is torn down with the operation queued (owner null): free it.
  static void do_complete(void*, asio::detail::operation* base, const boost::system::error_code&,
                          std::size_t) {
    delete static_cast<DrainOp*>(base);
  }
  int epoll_fd;
};

PeerClosePoller::PeerClosePoller(asio::execution_context& context)
    : asio::execution_context::service(context),
      reactor_(asio::use_service<asio::detail::reactor>(context)),
      batcher_(asio::use_service<IoBatcher>(static_cast<asio::io_context&>(context))) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0)
    return;
  // Asio queues the operation before it adds the descriptor to its epoll set: on failure the
  // deregistration takes it back out and frees it.
  if (reactor_.register_internal_descriptor(asio::detail::reactor::read_op, epoll_fd_,
                                            registration_, new DrainOp(epoll_fd_)) != 0)
    shutdown(); // reads then stay Asio's: watch() answers false
}

PeerClosePoller::~PeerClosePoller() {
  shutdown();
}

void PeerClosePoller::shutdown() {
  if (epoll_fd_ < 0)
    return;
  // Destroys the queued DrainOp (through do_complete without an owner) and drops the descriptor
  // from the loop's epoll set.
  reactor_.deregister_internal_descriptor(epoll_fd_, registration_);
  reactor_.cleanup_descriptor_data(registration_);
  ::close(epoll_fd_);
  epoll_fd_ = -1;
}

bool PeerClosePoller::watch(PeerWatch& watch) {
  // The reads use this loop's reactor on the socket's registration: they must be the same loop's.
  assert(watch.socket == nullptr ||
         &asio::query(watch.socket->get_executor(), asio::execution::context) == &context());
  if (epoll_fd_ < 0 || watch.socket == nullptr || !watch.socket->is_open()) {
    watch.fd = -2;
    return false;
  }
  const int fd = watch.socket->native_handle();
  epoll_event ev{};
  ev.events = EPOLLRDHUP | EPOLLET; // errors and hang-ups are always reported
  ev.data.ptr = &watch;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    watch.fd = -2; // not tried again (epoll_ctl fails so when fs.epoll.max_user_watches is hit)
    return false;
  }
  watch.fd = fd;
  watch.poller = this;
  return true;
}

} // namespace semrouter::gateway
