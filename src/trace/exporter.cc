#include "trace/exporter.h"

#include <cerrno>
#include <cstring>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http/response_parser.h"

namespace semrouter::trace {

using core::ErrorCode;
using core::make_error;
using Clock = std::chrono::steady_clock;

namespace {

// Closes a socket on every path.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0)
      ::close(fd);
  }
};

// Waits until `fd` is ready for `events` or the deadline passes.
bool wait_ready(int fd, short events, Clock::time_point deadline) {
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0)
      return false;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0)
      return true;
    if (r == 0)
      return false;
    if (errno != EINTR)
      return false;
  }
}

} // namespace

core::StatusOr<std::unique_ptr<HttpSink>> HttpSink::create(Options options) {
  std::string_view e = options.endpoint;
  if (!e.starts_with("http://"))
    return make_error(ErrorCode::InvalidArgument,
                      "the endpoint must start with http:// (https is not supported: use a local "
                      "collector or agent)");
  e.remove_prefix(7);
  const size_t slash = e.find('/');
  std::string_view authority = e.substr(0, slash);
  std::string path(slash == std::string_view::npos ? std::string_view() : e.substr(slash));
  while (!path.empty() && path.back() == '/')
    path.pop_back();
  std::string host, port = "80";
  if (authority.starts_with('[')) { // [v6]:port
    const size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return make_error(ErrorCode::InvalidArgument, "unterminated IPv6 address");
    host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (authority.starts_with(':'))
      port = std::string(authority.substr(1));
  } else {
    const size_t colon = authority.rfind(':');
    host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos)
      port = std::string(authority.substr(colon + 1));
  }
  if (host.empty())
    return make_error(ErrorCode::InvalidArgument, "the endpoint has no host");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return make_error(ErrorCode::InvalidArgument, "the endpoint's port is not a number");
  std::unique_ptr<HttpSink> sink(new HttpSink(std::move(options)));
  sink->path_ = path + "/v1/traces";
  const std::string host_header =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  sink->host_ = std::move(host);
  sink->port_ = std::move(port);
  sink->head_ = "POST " + sink->path_ + " HTTP/1.1\r\nHost: " + host_header +
                "\r\nUser-Agent: semrouter\r\nContent-Type: application/json\r\n"
                "Connection: close\r\n";
  for (const auto& [k, v] : sink->options_.headers)
    sink->head_ += k + ": " + v + "\r\n";
  return sink;
}

core::Status HttpSink::send(const std::string& body) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  // Resolution blocks (no timeout of its own); a numeric host or /etc/hosts name is instant.
  if (int rc = ::getaddrinfo(host_.c_str(), port_.c_str(), &hints, &found); rc != 0)
    return make_error(ErrorCode::Unavailable,
                      fmt::format("cannot resolve {}: {}", host_, gai_strerror(rc)));
  Fd sock;
  std::string why = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    Fd s;
    s.fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (s.fd < 0)
      continue;
    if (::connect(s.fd, a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        why = std::strerror(errno);
        continue;
      }
      if (!wait_ready(s.fd, POLLOUT, deadline)) {
        why = "connect timed out";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        why = std::strerror(err);
        continue;
      }
    }
    std::swap(sock.fd, s.fd);
    break;
  }
  ::freeaddrinfo(found);
  if (sock.fd < 0)
    return make_error(ErrorCode::Unavailable, fmt::format("connect to {}: {}", host_, why));

  const std::string head = head_ + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  for (std::string_view part : {std::string_view(head), std::string_view(body)}) {
    while (!part.empty()) {
      const ssize_t n = ::send(sock.fd, part.data(), part.size(), MSG_NOSIGNAL);
      if (n > 0) {
        part.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait_ready(sock.fd, POLLOUT, deadline))
          return make_error(ErrorCode::DeadlineExceeded, "sending timed out");
        continue;
      }
      return make_error(ErrorCode::Unavailable, fmt::format("send: {}", std::strerror(errno)));
    }
  }
  // Only the status line matters; the rest of the answer is not read.
  http::ResponseParser parser;
  std::string buf;
  char chunk[4096];
  while (true) {
    const http::ParseResult r = parser.parse(buf);
    if (r.event == http::Event::Head || r.event == http::Event::Error)
      break;
    if (!wait_ready(sock.fd, POLLIN, deadline))
      return make_error(ErrorCode::DeadlineExceeded, "no answer in time");
    const ssize_t n = ::recv(sock.fd, chunk, sizeof chunk, 0);
    if (n == 0)
      return make_error(ErrorCode::Unavailable, "the collector closed without an answer");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR)
        continue;
      return make_error(ErrorCode::Unavailable, fmt::format("recv: {}", std::strerror(errno)));
    }
    buf.append(chunk, static_cast<size_t>(n));
  }
  if (parser.error() != http::ParseError::None)
    return make_error(ErrorCode::Unavailable, "malformed answer from the collector");
  if (parser.status() < 200 || parser.status() > 299)
    return make_error(ErrorCode::Unavailable,
                      fmt::format("the collector answered {}", parser.status()));
  return {};
}

ExporterMetrics::ExporterMetrics(metrics::Registry& r)
    : exported(r.counter("semrouter_trace_spans_exported_total",
                         "Spans the OTLP collector accepted.", {})
                   .with({})),
      dropped(r.counter("semrouter_trace_spans_dropped_total",
                        "Spans dropped, by reason: queue_full (the export queue was full: the "
                        "collector is down or slow), export_failed (the batch failed).",
                        {"reason"})),
      batches(r.counter("semrouter_trace_export_batches_total",
                        "Batches sent to the OTLP collector, by result (ok, error).", {"result"})) {
}

BatchExporter::BatchExporter(ExporterOptions options, std::unique_ptr<SpanSink> sink,
                             metrics::Registry* registry)
    : options_(std::move(options)), sink_(std::move(sink)) {
  if (registry)
    metrics_ = std::make_unique<ExporterMetrics>(*registry);
  thread_ = std::thread([this] { run(); });
}

BatchExporter::~BatchExporter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void BatchExporter::count_dropped(const char* reason, uint64_t n) {
  if (n == 0)
    return;
  dropped_ += n;
  if (metrics_)
    metrics_->dropped.with({reason}).inc(n);
}

void BatchExporter::submit(std::vector<Span>&& spans) {
  size_t dropped = 0;
  bool full_batch = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Span& s : spans) {
      if (queue_.size() >= options_.queue_size) {
        ++dropped;
        continue;
      }
      queue_.push_back(std::move(s));
    }
    full_batch = queue_.size() >= options_.batch_size;
  }
  if (full_batch)
    wake_.notify_one();
  count_dropped("queue_full", dropped);
}

bool BatchExporter::drain(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.notify_one();
  return drained_.wait_for(lock, timeout, [&] { return queue_.empty() && !sending_; });
}

void BatchExporter::run() {
  const auto interval = std::chrono::milliseconds(options_.flush_interval_ms);
  std::vector<Span> batch;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    // A partial batch waits up to the interval; a full one, or stop, goes at once.
    wake_.wait_for(lock, interval, [&] { return stop_ || queue_.size() >= options_.batch_size; });
    if (queue_.empty()) {
      drained_.notify_all();
      if (stop_)
        return;
      continue;
    }
    const bool last = stop_;
    // Send what is queued, batch by batch (at stop: one attempt each, no retry).
    while (!queue_.empty()) {
      const size_t n = std::min(queue_.size(), options_.batch_size);
      batch.clear();
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      sending_ = true;
      lock.unlock();
      const std::string body = encode_otlp_json(options_.resource, batch);
      core::Status sent = sink_->send(body);
      if (sent) {
        exported_ += n;
        if (metrics_) {
          metrics_->exported.inc(n);
          metrics_->batches.with({"ok"}).inc();
        }
      } else {
        count_dropped("export_failed", n);
        if (metrics_)
          metrics_->batches.with({"error"}).inc();
        spdlog::debug("tracing: dropped {} spans: {}", n, sent.error().message);
      }
      lock.lock();
      sending_ = false;
      if (last && !sent) { // stopping and the collector fails: the rest is not tried
        count_dropped("export_failed", queue_.size());
        queue_.clear();
      }
      // A partial remainder waits for the next interval unless stopping.
      if (!last && queue_.size() < options_.batch_size)
        break;
    }
    if (queue_.empty())
      drained_.notify_all();
    if (last && queue_.empty())
      return;
  }
}

} // namespace semrouter::trace
