#include "trace/access_log.h"

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/strings.h"

namespace semrouter::trace {

namespace {

// RFC 3339 UTC with milliseconds.
void append_time(std::string& out, int64_t unix_ms) {
  const time_t secs = static_cast<time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 int(unix_ms % 1000));
}

struct JsonLine {
  std::string& out;
  void str(std::string_view key, std::string_view v) {
    if (v.empty())
      return;
    out += ",\"";
    out += key;
    out += "\":";
    core::append_json_string(out, v);
  }
  void num(std::string_view key, int64_t v) {
    if (v < 0)
      return;
    fmt::format_to(std::back_inserter(out), ",\"{}\":{}", key, v);
  }
  void ms(std::string_view key, double v) {
    if (v < 0)
      return;
    fmt::format_to(std::back_inserter(out), ",\"{}\":{:.3f}", key, v);
  }
};

void text_field(std::string& out, std::string_view key, std::string_view v) {
  if (v.empty())
    return;
  out += ' ';
  out += key;
  out += '=';
  // A value with a space or a quote is quoted, so the line still splits into key=value pairs.
  if (v.find_first_of(" \"=") == std::string_view::npos)
    out += v;
  else
    core::append_json_string(out, v);
}

} // namespace

void format_access_log(const AccessLogEntry& e, AccessLogFormat format, std::string& out) {
  if (format == AccessLogFormat::Json) {
    out += "{\"time\":\"";
    append_time(out, e.unix_ms);
    out += '"';
    JsonLine j{out};
    j.str("request_id", e.request_id);
    j.str("trace_id", e.trace_id);
    j.str("span_id", e.span_id);
    j.str("client", e.client);
    j.str("method", e.method);
    j.str("path", e.path);
    j.str("api", e.api);
    j.str("tenant", e.tenant);
    j.str("key", e.key);
    fmt::format_to(std::back_inserter(out), ",\"status\":{}", e.status);
    j.str("decision", e.decision);
    j.str("model", e.model);
    j.str("fallback", e.fallback);
    j.str("reasoning", e.reasoning);
    j.str("backend", e.backend);
    j.str("cache", e.cache);
    j.str("error", e.error);
    out += e.stream ? ",\"stream\":true" : ",\"stream\":false";
    fmt::format_to(std::back_inserter(out), ",\"retries\":{}", e.retries);
    j.ms("latency_ms", e.latency_ms);
    j.ms("routing_ms", e.routing_ms);
    j.ms("upstream_ms", e.upstream_ms);
    j.ms("ttft_ms", e.ttft_ms);
    j.num("prompt_tokens", e.prompt_tokens);
    j.num("completion_tokens", e.completion_tokens);
    j.num("reasoning_tokens", e.reasoning_tokens);
    out += "}\n";
    return;
  }
  // text: time, client, request line and status first, then key=value pairs
  append_time(out, e.unix_ms);
  out += ' ';
  out += e.client.empty() ? "-" : e.client;
  out += ' ';
  out += e.method.empty() ? "-" : e.method;
  out += ' ';
  out += e.path.empty() ? "-" : e.path;
  fmt::format_to(std::back_inserter(out), " {} {:.1f}ms", e.status, e.latency_ms);
  text_field(out, "decision", e.decision);
  text_field(out, "model", e.model);
  text_field(out, "fallback", e.fallback);
  text_field(out, "reasoning", e.reasoning);
  text_field(out, "cache", e.cache);
  text_field(out, "error", e.error);
  text_field(out, "tenant", e.tenant);
  text_field(out, "key", e.key);
  text_field(out, "backend", e.backend);
  if (e.retries)
    fmt::format_to(std::back_inserter(out), " retries={}", e.retries);
  if (e.routing_ms >= 0)
    fmt::format_to(std::back_inserter(out), " routing={:.2f}ms", e.routing_ms);
  if (e.ttft_ms >= 0)
    fmt::format_to(std::back_inserter(out), " ttft={:.1f}ms", e.ttft_ms);
  if (e.prompt_tokens >= 0 || e.completion_tokens >= 0)
    fmt::format_to(std::back_inserter(out), " tokens={}/{}", std::max<int64_t>(e.prompt_tokens, 0),
                   std::max<int64_t>(e.completion_tokens, 0));
  if (e.reasoning_tokens > 0)
    fmt::format_to(std::back_inserter(out), " reasoning_tokens={}", e.reasoning_tokens);
  text_field(out, "trace", e.trace_id);
  text_field(out, "id", e.request_id);
  out += '\n';
}

AccessLog::AccessLog(Options options, metrics::Registry* registry) : options_(std::move(options)) {
  if (registry) {
    lines_ = &registry->counter("semrouter_access_log_lines_total", "Access log lines written.", {})
                  .with({});
    dropped_counter_ =
        &registry
             ->counter("semrouter_access_log_dropped_total",
                       "Access log lines dropped because the writer fell behind.", {})
             .with({});
  }
}

core::StatusOr<std::unique_ptr<AccessLog>> AccessLog::open(Options options,
                                                           metrics::Registry* registry) {
  std::unique_ptr<AccessLog> log(new AccessLog(std::move(options), registry));
  if (!log->open_file())
    return core::make_error(core::ErrorCode::InvalidArgument,
                            fmt::format("access_log.path: cannot open {}: {}", log->options_.path,
                                        std::strerror(errno)));
  log->thread_ = std::thread([p = log.get()] { p->run(); });
  return log;
}

bool AccessLog::open_file() {
  if (options_.path == "stdout" || options_.path == "-") {
    file_ = stdout;
    return true;
  }
  if (options_.path == "stderr") {
    file_ = stderr;
    return true;
  }
  FILE* f = std::fopen(options_.path.c_str(), "ae");
  if (!f)
    return false;
  if (own_file_ && file_)
    std::fclose(file_);
  file_ = f;
  own_file_ = true;
  return true;
}

AccessLog::~AccessLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
  if (own_file_ && file_)
    std::fclose(file_);
}

void AccessLog::write(const AccessLogEntry& e) {
  // Formatted before the lock: the critical section is one append.
  thread_local std::string line;
  line.clear();
  format_access_log(e, options_.format, line);
  bool dropped = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.size() + line.size() > options_.max_buffer_bytes)
      dropped = true;
    else
      pending_ += line;
  }
  if (dropped) {
    ++dropped_;
    if (dropped_counter_)
      dropped_counter_->inc();
  }
}

void AccessLog::reopen() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    reopen_ = true;
  }
  wake_.notify_one();
}

bool AccessLog::flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.notify_one();
  return written_.wait_for(lock, timeout, [&] { return pending_.empty() && !writing_; });
}

void AccessLog::run() {
  std::string out;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait_for(lock, std::chrono::milliseconds(options_.flush_interval_ms),
                   [&] { return stop_ || reopen_; });
    const bool reopen = reopen_;
    reopen_ = false;
    out.swap(pending_);
    writing_ = true;
    const bool last = stop_;
    lock.unlock();
    if (reopen && own_file_ && !open_file())
      spdlog::warn("access log: cannot reopen {}: {} (writing on to the old file)", options_.path,
                   std::strerror(errno));
    if (!out.empty()) {
      const size_t lines = static_cast<size_t>(std::count(out.begin(), out.end(), '\n'));
      std::fwrite(out.data(), 1, out.size(), file_);
      std::fflush(file_);
      if (lines_)
        lines_->inc(lines);
      out.clear();
    }
    lock.lock();
    writing_ = false;
    if (pending_.empty())
      written_.notify_all();
    if (last && pending_.empty())
      return;
  }
}

} // namespace semrouter::trace
