// Tracing and access logs: W3C traceparent parsing and formatting, id generation, the OTLP/JSON
// encoding, the batch exporter against fake sinks (batching, a slow collector, a failing one),
// the HTTP sink against a local socket, the access-log line formats and the config sections.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "metrics/metrics.h"
#include "trace/access_log.h"
#include "trace/context.h"
#include "trace/exporter.h"
#include "trace/span.h"

namespace semrouter::trace {
namespace {

using namespace std::chrono_literals;

constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceParent, ParsesTheSpecExample) {
  auto p = parse_traceparent(kValid);
  ASSERT_TRUE(p);
  EXPECT_EQ(to_hex(p->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(to_hex(p->parent_id), "00f067aa0ba902b7");
  EXPECT_EQ(p->flags, 1);
  EXPECT_TRUE(p->sampled());
  EXPECT_FALSE(
      parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")->sampled());
  EXPECT_TRUE(parse_traceparent(std::string(" ") + kValid + " ")); // optional whitespace
}

TEST(TraceParent, RejectsWhatTheSpecRejects) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",     // no flags
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", // version 00 is 55 chars
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent id
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  // not hex
           "0-4bf92f3577b34da6a3ce929d0e0e47360-00f067aa0ba902b7-01",
       })
    EXPECT_FALSE(parse_traceparent(bad)) << bad;
}

TEST(TraceParent, ReadsAFutureVersionByItsFirstFields) {
  EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_TRUE(
      parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever"));
  EXPECT_FALSE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

TEST(TraceParent, FormatsAndRoundTrips) {
  auto p = parse_traceparent(kValid);
  ASSERT_TRUE(p);
  EXPECT_EQ(format_traceparent(p->trace_id, p->parent_id, p->flags), kValid);
  const TraceId t = new_trace_id();
  const SpanId s = new_span_id();
  auto q = parse_traceparent(format_traceparent(t, s, 0));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->trace_id, t);
  EXPECT_EQ(q->parent_id, s);
  EXPECT_FALSE(q->sampled());
}

TEST(TraceIds, AreDistinctAcrossCallsAndThreads) {
  std::set<std::string> seen;
  std::mutex mu;
  auto draw = [&] {
    for (int i = 0; i < 2000; ++i) {
      const std::string a = to_hex(new_trace_id()), b = to_hex(new_span_id());
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_TRUE(seen.insert(a).second);
      EXPECT_TRUE(seen.insert(b).second);
      EXPECT_NE(a, std::string(32, '0'));
    }
  };
  std::thread t1(draw), t2(draw);
  t1.join();
  t2.join();
  EXPECT_EQ(seen.size(), 8000u);
}

TEST(TraceIds, RatioSamplingIsDeterministicAndProportional) {
  int sampled = 0;
  for (int i = 0; i < 20000; ++i) {
    const TraceId id = new_trace_id();
    const bool s = sample_by_ratio(id, 0.25);
    EXPECT_EQ(s, sample_by_ratio(id, 0.25));
    sampled += s;
    EXPECT_TRUE(sample_by_ratio(id, 1.0));
    EXPECT_FALSE(sample_by_ratio(id, 0.0));
  }
  EXPECT_NEAR(sampled / 20000.0, 0.25, 0.02);
}

Span sample_span() {
  Span s;
  s.trace_id = parse_traceparent(kValid)->trace_id;
  s.span_id = new_span_id();
  s.parent_id = parse_traceparent(kValid)->parent_id;
  s.has_parent = true;
  s.trace_state = "vendor=x";
  s.name = "POST /v1/chat/completions";
  s.kind = SpanKind::Server;
  s.start_unix_ns = 1700000000000000000ULL;
  s.end_unix_ns = 1700000000123456789ULL;
  s.status = SpanStatus::Error;
  s.status_message = "upstream \"down\"";
  s.set("http.request.method", "POST");
  s.set("http.response.status_code", int64_t(502));
  s.set("semrouter.confidence", 0.75);
  s.set("semrouter.stream", true);
  return s;
}

TEST(Otlp, EncodesTheJsonMapping) {
  Resource r;
  r.service_name = "router-a";
  r.service_version = "0.1.0";
  const Span s = sample_span();
  const auto j = nlohmann::json::parse(encode_otlp_json(r, {s, s}));
  const auto& rs = j["resourceSpans"][0];
  EXPECT_EQ(rs["resource"]["attributes"][0]["key"], "service.name");
  EXPECT_EQ(rs["resource"]["attributes"][0]["value"]["stringValue"], "router-a");
  const auto& spans = rs["scopeSpans"][0]["spans"];
  ASSERT_EQ(spans.size(), 2u);
  const auto& o = spans[0];
  EXPECT_EQ(o["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(o["parentSpanId"], "00f067aa0ba902b7");
  EXPECT_EQ(o["spanId"].get<std::string>().size(), 16u);
  EXPECT_EQ(o["traceState"], "vendor=x");
  EXPECT_EQ(o["kind"], 2);
  EXPECT_EQ(o["startTimeUnixNano"], "1700000000000000000");
  EXPECT_EQ(o["endTimeUnixNano"], "1700000000123456789");
  EXPECT_EQ(o["status"]["code"], 2);
  EXPECT_EQ(o["status"]["message"], "upstream \"down\"");
  const auto& a = o["attributes"];
  EXPECT_EQ(a[0]["value"]["stringValue"], "POST");
  EXPECT_EQ(a[1]["value"]["intValue"], "502"); // int64 as a string
  EXPECT_EQ(a[2]["value"]["doubleValue"], 0.75);
  EXPECT_EQ(a[3]["value"]["boolValue"], true);
}

TEST(Otlp, LeavesOutTheParentOfARootSpan) {
  Span s = sample_span();
  s.has_parent = false;
  s.trace_state.clear();
  const auto j = nlohmann::json::parse(encode_otlp_json({}, {s}));
  const auto& o = j["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  EXPECT_FALSE(o.contains("parentSpanId"));
  EXPECT_FALSE(o.contains("traceState"));
}

// A sink that records what it got; it can be held (a slow collector) or fail (one that is down).
class FakeSink : public SpanSink {
public:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<size_t> batches; // spans per batch
    bool hold = false;
    bool fail = false;
  };
  explicit FakeSink(std::shared_ptr<State> state) : s_(std::move(state)) {}
  core::Status send(const std::string& body) override {
    const auto j = nlohmann::json::parse(body);
    std::unique_lock<std::mutex> lock(s_->mu);
    s_->cv.wait(lock, [&] { return !s_->hold; });
    s_->batches.push_back(j["resourceSpans"][0]["scopeSpans"][0]["spans"].size());
    s_->cv.notify_all();
    if (s_->fail)
      return core::make_error(core::ErrorCode::Unavailable, "down");
    return {};
  }

private:
  std::shared_ptr<State> s_;
};

std::vector<Span> spans(size_t n) {
  return std::vector<Span>(n, sample_span());
}

TEST(BatchExporter, SendsFullBatchesAtOnceAndTheRestAtTheInterval) {
  auto state = std::make_shared<FakeSink::State>();
  metrics::Registry registry;
  ExporterOptions o;
  o.batch_size = 4;
  o.flush_interval_ms = 50;
  o.queue_size = 100;
  BatchExporter e(o, std::make_unique<FakeSink>(state), &registry);
  e.submit(spans(10));
  ASSERT_TRUE(e.drain(5s));
  EXPECT_EQ(e.exported(), 10u);
  EXPECT_EQ(e.dropped(), 0u);
  std::lock_guard<std::mutex> lock(state->mu);
  ASSERT_EQ(state->batches.size(), 3u);
  EXPECT_EQ(state->batches[0], 4u);
  EXPECT_EQ(state->batches[1], 4u);
  EXPECT_EQ(state->batches[2], 2u);
  EXPECT_NE(registry.expose().find("semrouter_trace_spans_exported_total 10"), std::string::npos);
}

TEST(BatchExporter, DropsAndCountsWhenTheCollectorIsSlow) {
  auto state = std::make_shared<FakeSink::State>();
  state->hold = true; // the collector takes the first batch and does not answer
  metrics::Registry registry;
  ExporterOptions o;
  o.batch_size = 2;
  o.flush_interval_ms = 10;
  o.queue_size = 5;
  BatchExporter e(o, std::make_unique<FakeSink>(state), &registry);
  e.submit(spans(2)); // goes out, and the sink holds it
  {
    // wait until the exporter is stuck in send (the queue is empty again)
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (!e.drain(1ms) && std::chrono::steady_clock::now() < until) {
      std::unique_lock<std::mutex> lock(state->mu);
      if (state->hold)
        break;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i)
    e.submit(spans(1)); // never blocks: 5 fit in the queue (perhaps minus what is taken)
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  EXPECT_GE(e.dropped(), 5u);
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->hold = false;
  }
  state->cv.notify_all();
  ASSERT_TRUE(e.drain(5s));
  EXPECT_EQ(e.exported() + e.dropped(), 12u);
  EXPECT_NE(registry.expose().find("semrouter_trace_spans_dropped_total{reason=\"queue_full\"}"),
            std::string::npos);
}

TEST(BatchExporter, DropsAFailedBatchWithoutRetrying) {
  auto state = std::make_shared<FakeSink::State>();
  state->fail = true;
  ExporterOptions o;
  o.batch_size = 3;
  o.flush_interval_ms = 10;
  BatchExporter e(o, std::make_unique<FakeSink>(state), nullptr);
  e.submit(spans(3));
  ASSERT_TRUE(e.drain(5s));
  EXPECT_EQ(e.exported(), 0u);
  EXPECT_EQ(e.dropped(), 3u);
  std::lock_guard<std::mutex> lock(state->mu);
  EXPECT_EQ(state->batches.size(), 1u); // one attempt
}

// A one-shot HTTP server on a loopback port: reads one request, answers `status`.
class OneShotServer {
public:
  explicit OneShotServer(int status) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 4);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, status] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0)
        return;
      char buf[8192];
      while (true) {
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0)
          break;
        request_.append(buf, static_cast<size_t>(n));
        const size_t end = request_.find("\r\n\r\n");
        if (end != std::string::npos) {
          const size_t cl = request_.find("Content-Length: ");
          const size_t len = std::stoul(request_.substr(cl + 16));
          if (request_.size() >= end + 4 + len)
            break;
        }
      }
      const std::string answer =
          "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 2\r\n\r\n{}";
      ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~OneShotServer() {
    ::shutdown(fd_, SHUT_RDWR);
    join();
    ::close(fd_);
  }
  void join() {
    if (thread_.joinable())
      thread_.join();
  }
  uint16_t port() const { return port_; }
  const std::string& request() const { return request_; }

private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::string request_;
  std::thread thread_;
};

TEST(HttpSink, PostsToV1TracesWithTheConfiguredHeaders) {
  OneShotServer server(200);
  auto sink = HttpSink::create({"http://127.0.0.1:" + std::to_string(server.port()) + "/otel/",
                                2000,
                                {{"authorization", "Bearer t"}}});
  ASSERT_TRUE(sink) << sink.error().message;
  EXPECT_TRUE((*sink)->send("{\"resourceSpans\":[]}"));
  server.join();
  const std::string& r = server.request();
  EXPECT_EQ(r.substr(0, 30), "POST /otel/v1/traces HTTP/1.1\r");
  EXPECT_NE(r.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nauthorization: Bearer t\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\n\r\n{\"resourceSpans\":[]}"), std::string::npos);
}

TEST(HttpSink, ReportsTheCollectorsStatusAndARefusedConnection) {
  {
    OneShotServer server(503);
    auto sink = HttpSink::create({"http://127.0.0.1:" + std::to_string(server.port()), 2000, {}});
    ASSERT_TRUE(sink);
    auto r = (*sink)->send("{}");
    EXPECT_FALSE(r);
    EXPECT_NE(r.error().message.find("503"), std::string::npos);
    server.join();
    EXPECT_EQ(server.request().substr(0, 22), "POST /v1/traces HTTP/1");
  }
  // A port nobody listens on: refused at once.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const uint16_t port = ntohs(a.sin_port);
  ::close(fd);
  auto sink = HttpSink::create({"http://127.0.0.1:" + std::to_string(port), 500, {}});
  ASSERT_TRUE(sink);
  EXPECT_FALSE((*sink)->send("{}"));
}

TEST(HttpSink, RefusesEndpointsItCannotUse) {
  EXPECT_FALSE(HttpSink::create({"https://collector:4318", 1000, {}}));
  EXPECT_FALSE(HttpSink::create({"http://:4318", 1000, {}}));
  EXPECT_FALSE(HttpSink::create({"http://collector:port", 1000, {}}));
  EXPECT_TRUE(HttpSink::create({"http://[::1]:4318/base", 1000, {}}));
}

AccessLogEntry sample_entry() {
  AccessLogEntry e;
  e.unix_ms = 1700000000123;
  e.request_id = "req-1";
  e.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  e.span_id = "00f067aa0ba902b7";
  e.client = "127.0.0.1";
  e.method = "POST";
  e.path = "/v1/chat/completions";
  e.api = "chat";
  e.tenant = "acme";
  e.key = "team a";
  e.decision = "math";
  e.model = "qwen3-8b";
  e.reasoning = "on;effort=high";
  e.backend = "local-a";
  e.cache = "miss";
  e.status = 200;
  e.stream = true;
  e.latency_ms = 12.3456;
  e.routing_ms = 0.042;
  e.upstream_ms = 12.0;
  e.ttft_ms = 3.5;
  e.prompt_tokens = 10;
  e.completion_tokens = 20;
  e.reasoning_tokens = 5;
  return e;
}

TEST(AccessLogLine, JsonHasEveryField) {
  std::string line;
  format_access_log(sample_entry(), AccessLogFormat::Json, line);
  ASSERT_EQ(line.back(), '\n');
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["time"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["request_id"], "req-1");
  EXPECT_EQ(j["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(j["tenant"], "acme");
  EXPECT_EQ(j["key"], "team a");
  EXPECT_EQ(j["decision"], "math");
  EXPECT_EQ(j["model"], "qwen3-8b");
  EXPECT_EQ(j["reasoning"], "on;effort=high");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["cache"], "miss");
  EXPECT_EQ(j["stream"], true);
  EXPECT_DOUBLE_EQ(j["latency_ms"].get<double>(), 12.346);
  EXPECT_DOUBLE_EQ(j["ttft_ms"].get<double>(), 3.5);
  EXPECT_EQ(j["prompt_tokens"], 10);
  EXPECT_EQ(j["completion_tokens"], 20);
  EXPECT_EQ(j["reasoning_tokens"], 5);
  EXPECT_EQ(j["client"], "127.0.0.1");
  EXPECT_FALSE(j.contains("fallback")); // empty fields are left out
}

TEST(AccessLogLine, JsonLeavesOutWhatIsUnknown) {
  AccessLogEntry e;
  e.status = 401;
  e.error = "invalid_api_key";
  std::string line;
  format_access_log(e, AccessLogFormat::Json, line);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["status"], 401);
  EXPECT_EQ(j["error"], "invalid_api_key");
  EXPECT_FALSE(j.contains("ttft_ms"));
  EXPECT_FALSE(j.contains("prompt_tokens"));
  EXPECT_FALSE(j.contains("routing_ms"));
}

TEST(AccessLogLine, TextIsOneReadableLine) {
  std::string line;
  format_access_log(sample_entry(), AccessLogFormat::Text, line);
  EXPECT_EQ(line,
            "2023-11-14T22:13:20.123Z 127.0.0.1 POST /v1/chat/completions 200 12.3ms "
            "decision=math model=qwen3-8b reasoning=\"on;effort=high\" cache=miss tenant=acme "
            "key=\"team a\" backend=local-a routing=0.04ms ttft=3.5ms tokens=10/20 "
            "reasoning_tokens=5 trace=4bf92f3577b34da6a3ce929d0e0e4736 id=req-1\n");
}

TEST(AccessLogWriter, WritesLinesToAFileAndReopensIt) {
  const std::string path = ::testing::TempDir() + "/semrouter_access_test.log";
  const std::string rotated = path + ".1";
  std::remove(path.c_str());
  std::remove(rotated.c_str());
  auto log = AccessLog::open({AccessLogFormat::Json, path, 1 << 20, 10}, nullptr);
  ASSERT_TRUE(log);
  (*log)->write(sample_entry());
  ASSERT_TRUE((*log)->flush(5s));
  std::rename(path.c_str(), rotated.c_str());
  (*log)->reopen();
  (*log)->write(sample_entry());
  ASSERT_TRUE((*log)->flush(5s));
  log->reset();
  auto lines = [](const std::string& p) {
    FILE* f = std::fopen(p.c_str(), "r");
    int n = 0;
    if (!f)
      return -1;
    for (int c; (c = std::fgetc(f)) != EOF;)
      n += c == '\n';
    std::fclose(f);
    return n;
  };
  EXPECT_EQ(lines(rotated), 1);
  EXPECT_EQ(lines(path), 1);
}

TEST(ObservabilityConfig, ParsesAndValidates) {
  auto ok = config::parse_config(R"(
backends: [{name: a, url: "http://127.0.0.1:9"}]
models: [{name: m, backends: [a]}]
default_model: m
tracing:
  endpoint: http://collector:4318
  service_name: edge-router
  sample_ratio: 0.5
  batch_size: 100
  flush_interval_ms: 200
  queue_size: 1000
  timeout_ms: 500
  headers: {authorization: "Bearer x"}
access_log: {format: text, path: stderr}
)");
  ASSERT_TRUE(ok) << ok.error().message;
  const config::Config& c = **ok;
  EXPECT_TRUE(c.tracing.enabled);
  EXPECT_EQ(c.tracing.endpoint, "http://collector:4318");
  EXPECT_EQ(c.tracing.service_name, "edge-router");
  EXPECT_DOUBLE_EQ(c.tracing.sample_ratio, 0.5);
  EXPECT_EQ(c.tracing.batch_size, 100u);
  EXPECT_EQ(c.tracing.queue_size, 1000u);
  ASSERT_EQ(c.tracing.headers.size(), 1u);
  EXPECT_EQ(c.tracing.headers[0].second, "Bearer x");
  EXPECT_TRUE(c.access_log.enabled);
  EXPECT_EQ(c.access_log.format, config::AccessLogFormat::Text);
  EXPECT_EQ(c.access_log.path, "stderr");

  const std::string base = R"(
backends: [{name: a, url: "http://127.0.0.1:9"}]
models: [{name: m, backends: [a]}]
default_model: m
)";
  struct Bad {
    const char* yaml;
    const char* says;
  };
  for (const Bad& b : {
           Bad{"tracing: {endpoint: \"https://c:4318\"}", "tracing.endpoint"},
           Bad{"tracing: {sample_ratio: 2}", "tracing.sample_ratio"},
           Bad{"tracing: {batch_size: 100, queue_size: 10}", "tracing.queue_size"},
           Bad{"tracing: {colour: red}", "unknown key \"colour\""},
           Bad{"tracing: {headers: {\"bad header\": x}}", "tracing.headers"},
           Bad{"access_log: {format: xml}", "access_log.format"},
       }) {
    auto r = config::parse_config(base + b.yaml);
    ASSERT_FALSE(r) << b.yaml;
    EXPECT_NE(r.error().message.find(b.says), std::string::npos) << r.error().message;
  }
  auto off = config::parse_config(base);
  ASSERT_TRUE(off);
  EXPECT_FALSE((*off)->tracing.enabled);
  EXPECT_FALSE((*off)->access_log.enabled);
}

} // namespace
} // namespace semrouter::trace
