#include "extproc/server.h"

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "envoy/service/ext_proc/v3/external_processor.grpc.pb.h"
#include "extproc/processor.h"

namespace semrouter::extproc {

namespace {

constexpr const char* kServiceName = "envoy.service.ext_proc.v3.ExternalProcessor";
// Room for the largest body plus the message's own framing.
constexpr uint64_t kMessageOverheadBytes = 1u << 20;

// One stream: reads a message, lets the processor answer, writes the answer, reads the next.
class Reactor final
    : public grpc::ServerBidiReactor<pb::ProcessingRequest, pb::ProcessingResponse> {
public:
  Reactor(grpc::CallbackServerContext* ctx, pipeline::Runtime& rt, ExtProcMetrics& m, uint64_t seed)
      : ctx_(ctx), random_(seed), proc_(rt, m, random_) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) { // Envoy half-closed the stream, or it broke off (accounted for in OnDone)
      Finish(grpc::Status::OK);
      return;
    }
    out_.Clear();
    switch (proc_.on_message(in_, out_)) {
    case Step::Respond:
      StartWrite(&out_);
      return;
    case Step::Read:
      StartRead(&in_);
      return;
    case Step::Fail:
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, proc_.error()));
      return;
    }
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      write_failed_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the stream closed during a write"));
      return;
    }
    StartRead(&in_);
  }

  void OnCancel() override { cancelled_ = true; }
  // Every operation has completed; a cancellation has been reported by now (OnCancel runs before
  // OnDone), so this is where the request's accounting ends.
  void OnDone() override {
    proc_.on_close(cancelled_.load() || write_failed_ || ctx_->IsCancelled());
    delete this;
  }

private:
  grpc::CallbackServerContext* ctx_;
  std::atomic<bool> cancelled_{false};
  bool write_failed_ = false;
  core::Random random_;
  StreamProcessor proc_;
  pb::ProcessingRequest in_;
  pb::ProcessingResponse out_;
};

class Service final : public pb::ExternalProcessor::CallbackService {
public:
  Service(pipeline::Runtime& rt, ExtProcMetrics& m) : rt_(rt), m_(m) {}
  void set_seed(uint64_t seed) { seed_ = seed; }

  grpc::ServerBidiReactor<pb::ProcessingRequest, pb::ProcessingResponse>*
  Process(grpc::CallbackServerContext* ctx) override {
    const uint64_t n = streams_.fetch_add(1, std::memory_order_relaxed);
    return new Reactor(ctx, rt_, m_, seed_ + n * 0x9e3779b97f4a7c15ULL);
  }

private:
  pipeline::Runtime& rt_;
  ExtProcMetrics& m_;
  uint64_t seed_ = 0;
  std::atomic<uint64_t> streams_{0};
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

struct ExtProcServer::Impl {
  explicit Impl(pipeline::Runtime& rt) : metrics(rt.registry), service(rt, metrics) {}
  ExtProcMetrics metrics;
  Service service;
  std::unique_ptr<grpc::Server> server;
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
  impl_->service.set_seed(seed);
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

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, creds, &impl_->port);
  builder.RegisterService(&impl_->service);
  const uint64_t max_message = config.max_body_bytes + kMessageOverheadBytes;
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<uint64_t>(max_message, std::numeric_limits<int>::max())));
  builder.SetMaxSendMessageSize(-1);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) {
    impl_->server.reset();
    return core::make_error(core::ErrorCode::Unavailable,
                            fmt::format("extproc listener: cannot listen on {} (in use, or not an "
                                        "address of this machine)",
                                        address));
  }
  if (auto* health = impl_->server->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(kServiceName, true);
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
  if (auto* health = impl_->server->GetHealthCheckService())
    health->SetServingStatus(false);
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
  impl_->server->Wait();
}

} // namespace semrouter::extproc
