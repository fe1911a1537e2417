// ext_proc load generator: does what Envoy's ext_proc filter does for one HTTP request (request
// headers, the BUFFERED body, response headers, a buffered response body with usage; four round
// trips on one stream) against a semrouter ext_proc port, `--concurrency` streams at a time, and
// prints exchange latency percentiles and exchanges per second as JSON.
//
// gRPC's callback API: no thread per stream, so the client stays cheap beside the server.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "envoy/service/ext_proc/v3/external_processor.grpc.pb.h"

namespace {

namespace pb = envoy::service::ext_proc::v3;
using Clock = std::chrono::steady_clock;

struct Shared {
  pb::ExternalProcessor::Stub* stub = nullptr;
  std::vector<std::string> bodies;
  std::atomic<uint64_t> next{0};
  uint64_t total = 0;
  Clock::time_point stop_at;
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;
  std::vector<double> latencies_us; // guarded by mu
  uint64_t errors = 0;              // guarded by mu
  uint64_t immediate = 0;           // guarded by mu
};

void add_header(pb::HttpHeaders* h, const std::string& k, const std::string& v) {
  auto* hv = h->mutable_headers()->add_headers();
  hv->set_key(k);
  hv->set_raw_value(v);
}

// Message `stage` (0-3) of the exchange Envoy makes for one HTTP request: request headers, the
// whole request body, response headers, a response body with usage.
void exchange_message(int stage, const std::string& body, pb::ProcessingRequest& out) {
  out.Clear();
  switch (stage) {
  case 0: {
    auto* h = out.mutable_request_headers();
    add_header(h, ":method", "POST");
    add_header(h, ":path", "/v1/chat/completions");
    add_header(h, ":authority", "bench");
    add_header(h, "content-type", "application/json");
    add_header(h, "content-length", std::to_string(body.size()));
    break;
  }
  case 1:
    out.mutable_request_body()->set_body(body);
    out.mutable_request_body()->set_end_of_stream(true);
    break;
  case 2: {
    auto* h = out.mutable_response_headers();
    add_header(h, ":status", "200");
    add_header(h, "content-type", "application/json");
    break;
  }
  default:
    out.mutable_response_body()->set_body(
        R"({"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":12,"completion_tokens":3}})");
    out.mutable_response_body()->set_end_of_stream(true);
    break;
  }
}

class Exchange final
    : public grpc::ClientBidiReactor<pb::ProcessingRequest, pb::ProcessingResponse> {
public:
  Exchange(Shared& s, const std::string& body) : s_(s), body_(body) {
    start_ = Clock::now();
    s_.stub->async()->Process(&ctx_, this);
    step();
    StartCall();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      failed_ = true;
      return; // OnDone follows
    }
    StartRead(&in_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      failed_ = true;
      return;
    }
    if (in_.has_immediate_response()) {
      immediate_ = true;
      StartWritesDone();
      return;
    }
    if (stage_ == 4) {
      StartWritesDone();
      return;
    }
    step();
  }
  void OnDone(const grpc::Status& status) override {
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - start_).count();
    {
      std::lock_guard<std::mutex> lock(s_.mu);
      if (!status.ok() || failed_)
        ++s_.errors;
      else
        s_.latencies_us.push_back(us);
      if (immediate_)
        ++s_.immediate;
      --s_.running;
    }
    s_.cv.notify_all();
    delete this;
  }

private:
  // Writes the next message of the exchange.
  void step() {
    exchange_message(stage_++, body_, out_);
    StartWrite(&out_);
  }

  Shared& s_;
  const std::string& body_;
  grpc::ClientContext ctx_;
  pb::ProcessingRequest out_;
  pb::ProcessingResponse in_;
  int stage_ = 0;
  bool failed_ = false;
  bool immediate_ = false;
  Clock::time_point start_;
};

// One exchange on the blocking API from the calling thread (--sync): no callback thread hops on
// the client side, which shows how much of the latency is the server's.
bool sync_exchange(pb::ExternalProcessor::Stub& stub, const std::string& body) {
  grpc::ClientContext ctx;
  auto stream = stub.Process(&ctx);
  pb::ProcessingRequest out;
  pb::ProcessingResponse in;
  for (int stage = 0; stage < 4; ++stage) {
    exchange_message(stage, body, out);
    if (!stream->Write(out) || !stream->Read(&in))
      return false;
    if (in.has_immediate_response())
      break;
  }
  stream->WritesDone();
  return stream->Finish().ok();
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty())
    return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"extproc-bench: drive a semrouter ext_proc port the way Envoy does; prints JSON"};
  std::string target = "127.0.0.1:8803";
  std::string prompts;
  int concurrency = 1;
  uint64_t requests = 2000;
  double seconds = 0;
  uint64_t warmup = 200;
  app.add_option("--target", target, "host:port of the ext_proc listener");
  app.add_option("--prompts", prompts,
                 "File with one chat prompt per line (default: a few built-in prompts)");
  app.add_option("-c,--concurrency", concurrency, "Streams in flight at once")
      ->check(CLI::Range(1, 4096));
  app.add_option("-n,--requests", requests, "Exchanges to time (after the warm-up)");
  app.add_option("-d,--duration", seconds, "Or: run for this many seconds (overrides -n)");
  app.add_option("--warmup", warmup, "Exchanges before timing starts");
  bool sync = false;
  app.add_flag("--sync", sync, "One stream at a time on the blocking API (concurrency 1 only)");
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> texts;
  if (!prompts.empty()) {
    std::ifstream in(prompts);
    for (std::string line; std::getline(in, line);)
      if (!line.empty())
        texts.push_back(line);
  }
  if (texts.empty())
    texts = {"What is the derivative of x^3?", "Write a python function that reverses a list.",
             "What were the main causes of World War I?", "Why is the sky blue?",
             "My landlord kept my security deposit. Can I sue him?"};
  Shared s;
  for (const auto& t : texts) {
    std::string escaped;
    for (char c : t) {
      if (c == '"' || c == '\\')
        escaped.push_back('\\');
      if (static_cast<unsigned char>(c) >= 0x20)
        escaped.push_back(c);
    }
    s.bodies.push_back(R"({"model":"auto","messages":[{"role":"user","content":")" + escaped +
                       R"("}]})");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
    std::fprintf(stderr, "extproc-bench: cannot connect to %s\n", target.c_str());
    return 1;
  }
  auto stub = pb::ExternalProcessor::NewStub(channel);
  s.stub = stub.get();

  auto run_sync = [&](uint64_t n) {
    s.latencies_us.clear();
    s.errors = 0;
    const auto t0 = Clock::now();
    for (uint64_t i = 0; i < n; ++i) {
      const auto a = Clock::now();
      if (sync_exchange(*stub, s.bodies[i % s.bodies.size()]))
        s.latencies_us.push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - a).count());
      else
        ++s.errors;
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  auto run = [&](uint64_t n, double secs) {
    if (sync)
      return run_sync(n);
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.latencies_us.clear();
      s.errors = 0;
      s.immediate = 0;
    }
    const auto t0 = Clock::now();
    const auto stop_at =
        secs > 0
            ? t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs))
            : Clock::time_point::max();
    uint64_t started = 0;
    std::unique_lock<std::mutex> lock(s.mu);
    while (true) {
      const bool more = secs > 0 ? Clock::now() < stop_at : started < n;
      if (!more && s.running == 0)
        break;
      if (more && s.running < concurrency) {
        ++s.running;
        const std::string& body = s.bodies[started++ % s.bodies.size()];
        lock.unlock();
        new Exchange(s, body);
        lock.lock();
        continue;
      }
      s.cv.wait(lock);
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  run(warmup, 0);
  const double elapsed = run(requests, seconds);
  std::vector<double> lat = s.latencies_us;
  const double done = static_cast<double>(lat.size());
  double mean = 0;
  for (double v : lat)
    mean += v;
  mean = lat.empty() ? 0 : mean / done;
  std::printf("{\"concurrency\":%d,\"exchanges\":%.0f,\"errors\":%llu,\"immediate\":%llu,"
              "\"seconds\":%.3f,\"per_second\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
              "\"p99_us\":%.1f,\"mean_us\":%.1f}\n",
              concurrency, done, static_cast<unsigned long long>(s.errors),
              static_cast<unsigned long long>(s.immediate), elapsed, done / elapsed,
              percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99), mean);
  return s.errors ? 1 : 0;
}
