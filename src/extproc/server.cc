#include "extproc/server.h"

#include <atomic>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "envoy/service/ext_proc/v3/external_processor.grpc.pb.h"
#include "extproc/processor.h"
#include "health.grpc.pb.h"

namespace semrouter::extproc {

namespace {

constexpr const char* kServiceName = "envoy.service.ext_proc.v3.ExternalProcessor";
// Room for the largest body plus the message's own framing.
constexpr uint64_t kMessageOverheadBytes = 1u << 20;

using Stream = grpc::ServerAsyncReaderWriter<pb::ProcessingResponse, pb::ProcessingRequest>;
namespace health = grpc::health::v1;

// Something waiting on a completion queue. A tag names the handler and which of its operations
// completed; the queue's thread calls on_event, which may delete the handler.
// Handlers alive on the queues are counted, so shutdown can wait for the last one before it
// shuts the queues down (no operation may start on a queue after that).
class Handler {
public:
  struct Tag {
    Handler* handler;
    int op;
  };
  explicit Handler(std::atomic<int>& live) : live_(live) { live_.fetch_add(1); }
  virtual ~Handler() { live_.fetch_sub(1); }
  Handler(const Handler&) = delete;
  Handler& operator=(const Handler&) = delete;
  virtual void on_event(int op, bool ok) = 0;

protected:
  std::atomic<int>& live_;
};

// grpc.health.v1.Health/Check: SERVING for "" and the ext_proc service until draining starts.
class HealthCall final : public Handler {
public:
  HealthCall(health::Health::AsyncService& service, grpc::ServerCompletionQueue* cq,
             const std::atomic<bool>& serving, std::atomic<int>& live)
      : Handler(live), service_(service), cq_(cq), serving_(serving), responder_(&ctx_) {
    service_.RequestCheck(&ctx_, &request_, &responder_, cq_, cq_, &accept_tag_);
  }
  void on_event(int op, bool ok) override {
    if (op == kAccept && ok) {
      new HealthCall(service_, cq_, serving_, live_);
      health::HealthCheckResponse response;
      if (!request_.service().empty() && request_.service() != kServiceName) {
        responder_.FinishWithError(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                                "unknown service \"" + request_.service() + "\""),
                                   &finish_tag_);
        return;
      }
      response.set_status(serving_.load() ? health::HealthCheckResponse::SERVING
                                          : health::HealthCheckResponse::NOT_SERVING);
      responder_.Finish(response, grpc::Status::OK, &finish_tag_);
      return;
    }
    delete this; // finished, or the server is shutting down
  }

private:
  static constexpr int kAccept = 0;
  static constexpr int kFinish = 1;
  health::Health::AsyncService& service_;
  grpc::ServerCompletionQueue* cq_;
  const std::atomic<bool>& serving_;
  grpc::ServerContext ctx_;
  health::HealthCheckRequest request_;
  grpc::ServerAsyncResponseWriter<health::HealthCheckResponse> responder_;
  Tag accept_tag_{this, kAccept};
  Tag finish_tag_{this, kFinish};
};

// One stream on a completion queue: waits for a new call, then reads a message, lets the
// processor answer, writes the answer, reads the next. Everything runs inline on the queue's
// polling thread: no hand-off between threads per message (gRPC's callback API measured about
// twice the round-trip latency here).
class Call final : public Handler {
public:
  enum Op { Accept, Read, Write, Finish, Done };

  Call(pb::ExternalProcessor::AsyncService& service, grpc::ServerCompletionQueue* cq,
       pipeline::Runtime& rt, ExtProcMetrics& m, std::atomic<uint64_t>& streams, uint64_t seed,
       std::atomic<int>& live)
      : Handler(live), service_(service), cq_(cq), rt_(rt), m_(m), streams_(streams), seed_(seed),
        stream_(&ctx_) {
    ctx_.AsyncNotifyWhenDone(&done_tag_);
    service_.RequestProcess(&ctx_, &stream_, cq_, cq_, &accept_tag_);
  }

  // Handles one completed operation. Deletes the call once it is over.
  void on_event(int op, bool ok) override {
    switch (static_cast<Op>(op)) {
    case Accept:
      if (!ok) { // the server is shutting down: no call came, and no done tag will
        delete this;
        return;
      }
      // Keep one call waiting for the next stream.
      new Call(service_, cq_, rt_, m_, streams_,
               seed_ + streams_.fetch_add(1, std::memory_order_relaxed) * kSeedStep, live_);
      proc_.emplace(rt_, m_, random_);
      stream_.Read(&in_, &read_tag_);
      return;
    case Read:
      if (!ok) { // Envoy half-closed the stream, or it broke off
        finish(grpc::Status::OK);
        return;
      }
      out_.Clear();
      switch (proc_->on_message(in_, out_)) {
      case Step::Respond:
        stream_.Write(out_, &write_tag_);
        return;
      case Step::Read:
        stream_.Read(&in_, &read_tag_);
        return;
      case Step::Fail:
        finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, proc_->error()));
        return;
      }
      return;
    case Write:
      if (!ok) {
        write_failed_ = true;
        finish(grpc::Status(grpc::StatusCode::CANCELLED, "the stream closed during a write"));
        return;
      }
      stream_.Read(&in_, &read_tag_);
      return;
    case Finish:
      finished_ = true;
      break;
    case Done:
      done_ = true;
      break;
    }
    // Over once Finish completed and the done notification arrived (both always come for an
    // accepted call).
    if (finished_ && done_) {
      if (proc_)
        proc_->on_close(write_failed_ || ctx_.IsCancelled());
      delete this;
    }
  }

private:
  static constexpr uint64_t kSeedStep = 0x9e3779b97f4a7c15ULL;
  void finish(const grpc::Status& status) { stream_.Finish(status, &finish_tag_); }

  pb::ExternalProcessor::AsyncService& service_;
  grpc::ServerCompletionQueue* cq_;
  pipeline::Runtime& rt_;
  ExtProcMetrics& m_;
  std::atomic<uint64_t>& streams_;
  uint64_t seed_;
  grpc::ServerContext ctx_;
  Stream stream_;
  core::Random random_{seed_};
  std::optional<StreamProcessor> proc_;
  pb::ProcessingRequest in_;
  pb::ProcessingResponse out_;
  Tag accept_tag_{this, Accept};
  Tag read_tag_{this, Read};
  Tag write_tag_{this, Write};
  Tag finish_tag_{this, Finish};
  Tag done_tag_{this, Done};
  bool finished_ = false;
  bool done_ = false;
  bool write_failed_ = false;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

struct ExtProcServer::Impl {
  explicit Impl(pipeline::Runtime& r) : rt(r), metrics(r.registry) {}
  pipeline::Runtime& rt;
  ExtProcMetrics metrics;
  pb::ExternalProcessor::AsyncService service;
  health::Health::AsyncService health;
  std::atomic<bool> serving{true};
  std::unique_ptr<grpc::Server> server;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  std::vector<std::thread> threads;
  std::atomic<uint64_t> streams{0};
  std::atomic<int> live{0}; // handlers on the queues
  int port = 0;
  std::atomic<bool> stopped{false};
};

ExtProcServer::ExtProcServer(pipeline::Runtime& runtime) : impl_(std::make_unique<Impl>(runtime)) {}

ExtProcServer::~ExtProcServer() {
  shutdown(0);
}

core::Status ExtProcServer::start(const config::ExtProcConfig& config, uint64_t seed) {
  if (seed == 0)
    seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  const auto& l = config.listener;
  const bool v6 = l.address.find(':') != std::string::npos;
  const std::string address =
      (v6 ? "[" + l.address + "]" : l.address) + ":" + std::to_string(l.port);

  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!config.tls_cert_file.empty()) {
    grpc::SslServerCredentialsOptions tls(
        config.tls_ca_file.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                   : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    if (!config.tls_ca_file.empty())
      tls.pem_root_certs = read_file(config.tls_ca_file);
    tls.pem_key_cert_pairs.push_back(
        {read_file(config.tls_key_file), read_file(config.tls_cert_file)});
    creds = grpc::SslServerCredentials(tls);
  } else {
    creds = grpc::InsecureServerCredentials();
  }

  // Debian's Abseil runs mutex deadlock detection on every lock that gRPC takes (measured: ~4%
  // of the server's CPU under load); gRPC's own builds have it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, creds, &impl_->port);
  builder.RegisterService(&impl_->service);
  builder.RegisterService(&impl_->health);
  const uint32_t threads = std::max<uint32_t>(config.threads, 1);
  for (uint32_t i = 0; i < threads; ++i)
    impl_->queues.push_back(builder.AddCompletionQueue());
  const uint64_t max_message = config.max_body_bytes + kMessageOverheadBytes;
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<uint64_t>(max_message, std::numeric_limits<int>::max())));
  builder.SetMaxSendMessageSize(-1);
  // Bandwidth-delay probing sends HTTP/2 PINGs that cost round trips on small, chatty streams.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_MINIMAL_STACK, 1);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) {
    impl_->server.reset();
    return core::make_error(core::ErrorCode::Unavailable,
                            fmt::format("extproc listener: cannot listen on {} (in use, or not an "
                                        "address of this machine)",
                                        address));
  }
  // One polling thread per queue; each keeps a call waiting for the next stream.
  for (auto& q : impl_->queues) {
    grpc::ServerCompletionQueue* cq = q.get();
    new Call(impl_->service, cq, impl_->rt, impl_->metrics, impl_->streams,
             seed + impl_->streams.fetch_add(1) * 0x9e3779b97f4a7c15ULL, impl_->live);
    new HealthCall(impl_->health, cq, impl_->serving, impl_->live);
    impl_->threads.emplace_back([cq] {
      void* tag = nullptr;
      bool ok = false;
      while (cq->Next(&tag, &ok)) {
        auto* t = static_cast<Handler::Tag*>(tag);
        t->handler->on_event(t->op, ok);
      }
    });
  }
  spdlog::info("ext_proc: serving {} on {}:{}{}", kServiceName, l.address, impl_->port,
               config.tls_cert_file.empty()
                   ? ""
                   : (config.tls_ca_file.empty() ? " (TLS)" : " (TLS, client certificates)"));
  return {};
}

uint16_t ExtProcServer::port() const {
  return static_cast<uint16_t>(impl_->port);
}

void ExtProcServer::shutdown(uint32_t grace_ms) {
  if (!impl_->server || impl_->stopped.exchange(true))
    return;
  impl_->serving = false;
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
  // Every call is finished or cancelled now; their last tags (and the waiting calls' refused
  // accepts) are on the queues, which the threads still poll. Wait for the last handler, bounded,
  // before shutting the queues down: no operation may start on a queue after that.
  constexpr auto kDrainWait = std::chrono::seconds(2);
  const auto until = std::chrono::steady_clock::now() + kDrainWait;
  while (impl_->live.load() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (impl_->live.load() > 0)
    spdlog::warn("ext_proc: {} stream handlers still open at shutdown", impl_->live.load());
  for (auto& q : impl_->queues)
    q->Shutdown();
  for (auto& t : impl_->threads)
    t.join();
  impl_->server->Wait();
}

} // namespace semrouter::extproc
