// semrouter: the binary. Subcommands: serve, config check, config default, classify, train, eval,
// calibrate, bench, hash-key.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "auth/auth.h"
#include "cache/redis_spend.h"
#include "config/config.h"
#include "core/log.h"
#include "extproc/server.h"
#include "gateway/gateway.h"
#include "metrics/metrics.h"
#include "models/inference_pool.h"
#include "pipeline/pipeline.h"
#include "trace/access_log.h"
#include "trace/exporter.h"

namespace {

using namespace semrouter;

constexpr const char* kVersion = "0.1.0";

// Loudly, at start and on every reload that keeps it: a backend whose TLS certificates are not
// checked can be impersonated by anyone on the path.
void warn_insecure_backends(const config::Config& c) {
  for (const auto& b : c.backends)
    if (b.tls && b.tls_config.insecure_skip_verify)
      spdlog::warn("backend {}: tls.insecure_skip_verify is set: its certificate and host name "
                   "are NOT verified; use tls.ca_file instead outside tests",
                   b.name);
}

// Reloads the config on its own thread: when the file changes (polled every poll_ms; stat()
// follows symlinks, so Kubernetes ConfigMap swaps are seen) and when trigger() is called (SIGHUP).
// Owning the thread here, joined in the destructor, means no reload outlives the server.
class ConfigWatcher {
public:
  ConfigWatcher(std::string path, uint32_t poll_ms, std::function<void()> on_change)
      : path_(std::move(path)), poll_ms_(poll_ms), on_change_(std::move(on_change)) {
    stamp_ = read_stamp();
    thread_ = std::thread([this] { loop(); });
  }
  ~ConfigWatcher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void trigger() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      triggered_ = true;
    }
    cv_.notify_all();
  }

private:
  // mtime, size and a hash of the content. The content is read on every poll on purpose: an edit
  // that keeps the size within the file system's mtime granularity changes nothing else.
  std::string read_stamp() const {
    std::error_code ec;
    auto t = std::filesystem::last_write_time(path_, ec);
    auto size = std::filesystem::file_size(path_, ec);
    if (ec)
      return "";
    std::ifstream in(path_, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return std::to_string(t.time_since_epoch().count()) + ":" + std::to_string(size) + ":" +
           std::to_string(std::hash<std::string>{}(content));
  }
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    auto wake = [this] { return stop_ || triggered_; };
    while (true) {
      if (poll_ms_ > 0) {
        cv_.wait_for(lock, std::chrono::milliseconds(poll_ms_), wake);
      } else {
        cv_.wait(lock, wake);
      }
      if (stop_)
        return;
      bool forced = triggered_;
      triggered_ = false;
      std::string now = read_stamp();
      if (!forced && (now.empty() || now == stamp_))
        continue;
      stamp_ = now;
      lock.unlock();
      on_change_();
      lock.lock();
    }
  }
  std::string path_;
  uint32_t poll_ms_;
  std::function<void()> on_change_;
  std::string stamp_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool triggered_ = false;
  std::thread thread_;
};

struct ServeArgs {
  std::string config_path, ready_file, log_level, mode;
  int port = -1, admin_port = -1, extproc_port = -1;
};

int cmd_serve(const ServeArgs& args) {
  const std::string& config_path = args.config_path;
  const std::string& ready_file = args.ready_file;
  const std::string& log_level = args.log_level;
  auto config = config_path.empty() ? config::parse_config(config::embedded_default_config())
                                    : config::load_config_file(config_path);
  if (!config) {
    std::fprintf(stderr, "semrouter: %s\n", config.error().message.c_str());
    if (config_path.empty())
      std::fprintf(stderr, "semrouter: (in the embedded default config)\n");
    return 2;
  }
  if (!log_level.empty()) {
    if (!core::set_log_level(log_level)) {
      std::fprintf(stderr, "semrouter: --log-level: unknown level \"%s\"\n", log_level.c_str());
      return 2;
    }
  } else {
    core::set_log_level((*config)->server.log_level);
  }
  auto snapshot = pipeline::build_snapshot(*config, 1, /*load_models=*/true);
  if (!snapshot) {
    std::fprintf(stderr, "semrouter: %s\n", snapshot.error().message.c_str());
    return 2;
  }
  for (const auto& line : (*snapshot)->models->loaded)
    spdlog::info("model {}", line);
  pipeline::SnapshotStore store(*snapshot);
  metrics::Registry registry;
  auto& reloads =
      registry.counter("semrouter_config_reloads_total", "Config reloads by result.", {"result"});
  auto& generation =
      registry.gauge("semrouter_config_generation", "Generation of the config in use.").with({});
  generation.set(1);

  config::ListenerConfig gw = (*config)->gateway, admin = (*config)->admin;
  config::ExtProcConfig xp = (*config)->extproc;
  if (args.port >= 0)
    gw.port = static_cast<uint16_t>(args.port);
  if (args.admin_port >= 0)
    admin.port = static_cast<uint16_t>(args.admin_port);
  if (args.extproc_port >= 0)
    xp.listener.port = static_cast<uint16_t>(args.extproc_port);
  config::ServeMode mode = (*config)->mode;
  if (!args.mode.empty()) {
    mode = args.mode == "gateway"   ? config::ServeMode::Gateway
           : args.mode == "extproc" ? config::ServeMode::ExtProc
                                    : config::ServeMode::Both;
    if (mode != config::ServeMode::Gateway && !xp.enabled) {
      std::fprintf(stderr,
                   "semrouter: --mode %s needs an ext_proc listener: add listeners.extproc "
                   "{address, port} to the config\n",
                   args.mode.c_str());
      return 2;
    }
  }
  const bool serve_gateway = mode != config::ServeMode::ExtProc;
  const bool serve_extproc = mode != config::ServeMode::Gateway;
  // Transformer-backed signals run here, concurrently, one job per task (restart to resize).
  models::InferencePool pool({static_cast<int>((*config)->server.inference_workers), 1, 1024});
  // Sessions, load state and metrics: one set, whichever front doors serve.
  pipeline::Runtime runtime(store, registry);
  runtime.pool = &pool;
  // auth.state_redis: the spend store lives in the cache module (hiredis). Configured now rather
  // than on the first request, so the shared spend is read before traffic arrives.
  runtime.auth.set_spend_store_factory(cache::make_redis_spend_store);
  runtime.auth_for(*store.get());
  // Tracing and the access log: built once, at start (declared before the servers, so they
  // outlive them; their threads flush what is queued when they stop).
  std::unique_ptr<trace::BatchExporter> tracer;
  if (const config::TracingConfig& tc = (*config)->tracing; tc.enabled) {
    auto sink = trace::HttpSink::create({tc.endpoint, tc.timeout_ms, tc.headers});
    if (!sink) {
      std::fprintf(stderr, "semrouter: tracing.endpoint: %s\n", sink.error().message.c_str());
      return 1;
    }
    trace::ExporterOptions eo;
    eo.batch_size = tc.batch_size;
    eo.flush_interval_ms = tc.flush_interval_ms;
    eo.queue_size = tc.queue_size;
    eo.resource.service_name = tc.service_name;
    eo.resource.service_version = kVersion;
    tracer = std::make_unique<trace::BatchExporter>(std::move(eo), std::move(*sink), &registry);
    runtime.tracer = tracer.get();
    runtime.trace_sample_ratio = tc.sample_ratio;
  }
  std::unique_ptr<trace::AccessLog> access_log;
  if (const config::AccessLogConfig& ac = (*config)->access_log; ac.enabled) {
    trace::AccessLog::Options lo;
    lo.format = ac.format == config::AccessLogFormat::Text ? trace::AccessLogFormat::Text
                                                           : trace::AccessLogFormat::Json;
    lo.path = ac.path;
    auto log = trace::AccessLog::open(std::move(lo), &registry);
    if (!log) {
      std::fprintf(stderr, "semrouter: %s\n", log.error().message.c_str());
      return 1;
    }
    access_log = std::move(*log);
    runtime.access_log = access_log.get();
  }
  warn_insecure_backends(**config);
  gateway::Gateway server(runtime);
  if (auto ok = server.listen(serve_gateway ? &gw : nullptr, admin, (*config)->server.workers);
      !ok) {
    std::fprintf(stderr, "semrouter: %s\n", ok.error().message.c_str());
    return 1;
  }
  std::unique_ptr<extproc::ExtProcServer> ext;
  if (serve_extproc) {
    ext = std::make_unique<extproc::ExtProcServer>(runtime);
    if (auto ok = ext->start(xp, (*config)->server.random_seed); !ok) {
      std::fprintf(stderr, "semrouter: %s\n", ok.error().message.c_str());
      return 1;
    }
    // SIGTERM: the gateway starts draining; ext_proc streams get the same grace.
    server.on_drain(
        [&ext, &store] { ext->shutdown(store.get()->config->server.drain_timeout_ms); });
  }

  auto reload = [&] {
    auto before = store.get();
    auto result = store.reload_from_file(config_path);
    if (!result) {
      reloads.with({"error"}).inc();
      spdlog::error("config reload rejected, still serving generation {}: {}", before->generation,
                    result.error().message);
      return;
    }
    reloads.with({"ok"}).inc();
    auto after = store.get();
    generation.set(static_cast<int64_t>(after->generation));
    const auto& a = *before->config;
    const auto& b = *after->config;
    if (a.gateway.address != b.gateway.address || a.gateway.port != b.gateway.port ||
        a.admin.address != b.admin.address || a.admin.port != b.admin.port ||
        a.server.workers != b.server.workers || a.mode != b.mode ||
        a.extproc.enabled != b.extproc.enabled ||
        a.extproc.listener.address != b.extproc.listener.address ||
        a.extproc.listener.port != b.extproc.listener.port ||
        a.extproc.tls_cert_file != b.extproc.tls_cert_file)
      spdlog::warn("listeners, server.mode and server.workers changed: those take effect on "
                   "restart only");
    if (a.tracing.enabled != b.tracing.enabled || a.tracing.endpoint != b.tracing.endpoint ||
        a.tracing.sample_ratio != b.tracing.sample_ratio ||
        a.access_log.enabled != b.access_log.enabled || a.access_log.path != b.access_log.path ||
        a.access_log.format != b.access_log.format)
      spdlog::warn("tracing and access_log changed: those take effect on restart only");
    if (log_level.empty())
      core::set_log_level(b.server.log_level); // --log-level wins while it is set
    spdlog::info("config reloaded: generation {}", after->generation);
    warn_insecure_backends(b);
  };
  std::unique_ptr<ConfigWatcher> watcher;
  if (!config_path.empty())
    watcher =
        std::make_unique<ConfigWatcher>(config_path, (*config)->server.reload_poll_ms, reload);
  server.on_reload_signal([&] {
    if (access_log)
      access_log->reopen(); // a rotated log file: write on to a new one
    if (watcher) {
      watcher->trigger();
    } else {
      spdlog::warn("SIGHUP: the router runs on its embedded config; nothing to reload");
    }
  });

  spdlog::info("semrouter {} listening:{}{}  admin http://{}:{}", kVersion,
               serve_gateway ? fmt::format(" gateway http://{}:{}", gw.address, server.port())
                             : std::string(),
               serve_extproc
                   ? fmt::format(" ext_proc grpc://{}:{}", xp.listener.address, ext->port())
                   : std::string(),
               admin.address, server.admin_port());
  if (!ready_file.empty()) {
    std::string tmp = ready_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << "{\"port\":" << (serve_gateway ? server.port() : 0)
          << ",\"admin_port\":" << server.admin_port()
          << ",\"extproc_port\":" << (ext ? ext->port() : 0) << ",\"pid\":" << getpid() << "}\n";
    }
    std::filesystem::rename(tmp, ready_file);
  }
  server.run();
  if (ext)
    ext->shutdown(0);
  watcher.reset();
  spdlog::info("stopped");
  return 0;
}

int cmd_config_check(const std::string& path) {
  auto config = config::load_config_file(path);
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return 1;
  }
  // With the classifiers, as serve builds it: rules naming unknown domains and embedding
  // phrases are checked too.
  auto snap = pipeline::build_snapshot(*config, 1, /*load_models=*/true);
  if (!snap) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), snap.error().message.c_str());
    return 1;
  }
  const auto& c = **config;
  const auto& sg = c.signals;
  std::printf("%s: OK (%zu backends, %zu models, %zu signals: %zu keyword, %zu embedding, %zu pii, "
              "%zu context_length, %zu metadata; %zu decisions)\n",
              path.c_str(), c.backends.size(), c.models.size(),
              sg.keywords.size() + sg.embeddings.size() + sg.pii.size() + sg.context_length.size() +
                  sg.metadata.size(),
              sg.keywords.size(), sg.embeddings.size(), sg.pii.size(), sg.context_length.size(),
              sg.metadata.size(), c.decisions.size());
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"semrouter: a semantic router for LLM inference. Routes OpenAI-compatible requests "
               "to the model\n"
               "and reasoning mode that answer them best."};
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(1);

  ServeArgs sa;
  auto* serve = app.add_subcommand(
      "serve", "Run the router: the OpenAI-compatible gateway and/or the Envoy ext_proc gRPC "
               "service,\nand the admin/metrics port.");
  serve->add_option("-c,--config", sa.config_path,
                    "YAML config file (default: the embedded demo config)");
  // (No CLI11 existence check: a missing file is refused like any bad config, in one line with
  // exit status 2, as docs/config.md says.)
  serve
      ->add_option("--port", sa.port,
                   "Gateway port (overrides listeners.gateway.port; 0 picks a free port)")
      ->check(CLI::Range(0, 65535));
  serve
      ->add_option("--admin-port", sa.admin_port,
                   "Admin port (overrides listeners.admin.port; 0 picks a free port)")
      ->check(CLI::Range(0, 65535));
  serve
      ->add_option("--extproc-port", sa.extproc_port,
                   "ext_proc gRPC port (overrides listeners.extproc.port; 0 picks a free port)")
      ->check(CLI::Range(0, 65535));
  serve
      ->add_option("--mode", sa.mode,
                   "gateway, extproc or both (default: server.mode; both when the config has "
                   "listeners.extproc)")
      ->check(CLI::IsMember({"gateway", "extproc", "both"}));
  serve->add_option("--ready-file", sa.ready_file,
                    "Once listening, write {\"port\":..,\"admin_port\":..,\"extproc_port\":..} "
                    "to this file (for scripts and tests)");
  serve->add_option("--log-level", sa.log_level,
                    "trace, debug, info, warn, error or off (overrides server.log_level)");

  auto* config_cmd = app.add_subcommand("config", "Work with config files.");
  config_cmd->require_subcommand(1);
  std::string check_path;
  auto* check = config_cmd->add_subcommand(
      "check", "Validate a config file without serving; exit 1 on errors.");
  check->add_option("file", check_path, "YAML config file")->required();
  auto* print_default = config_cmd->add_subcommand("default", "Print the embedded default config.");

  app::ClassifyArgs ca;
  auto* classify = app.add_subcommand(
      "classify", "Run a Hugging Face BERT / ModernBERT folder on texts and print JSON: labels and "
                  "probabilities,\nentities with character spans, or embeddings.");
  classify
      ->add_option("-m,--model", ca.model_dir,
                   "Model folder (config.json, model.safetensors, tokenizer.json)")
      ->required()
      ->check(CLI::ExistingDirectory);
  classify
      ->add_option("--task", ca.task,
                   "seq (sequence classification), token (token classification) or embed; "
                   "default: what the model's head does")
      ->check(CLI::IsMember({"seq", "token", "embed"}));
  classify
      ->add_option(
          "--precision", ca.precision,
          "GEMM precision: auto (bf16 where the CPU has native bf16, else f32), f32, bf16, int8")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "int8"}))
      ->capture_default_str();
  classify->add_option("--backend", ca.backend, "GEMM backend: onednn or openblas (f32 only)")
      ->check(CLI::IsMember({"onednn", "openblas"}))
      ->capture_default_str();
  classify->add_option("--threads", ca.threads, "Threads for one inference")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  classify->add_option("--max-length", ca.max_length,
                       "Truncate to this many tokens (default: the model's max length)");
  classify->add_flag("--pretty", ca.pretty, "Indent the JSON");
  classify->add_option("text", ca.texts, "Texts to classify (default: one per line from stdin)");

  app::TrainArgs ta;
  auto* train = app.add_subcommand(
      "train",
      "Train an embedded default classifier from labeled JSONL (progress on stderr, held-out "
      "report on stdout).");
  app::TrainRouterArgs tra;
  train
      ->add_option(
          "task", ta.task,
          "domain, complexity, reasoning, jailbreak or language (a classifier), or router (a "
          "cost-quality router from per-prompt model outcomes)")
      ->required()
      ->check(
          CLI::IsMember({"domain", "complexity", "reasoning", "jailbreak", "language", "router"}));
  train
      ->add_option(
          "--data", ta.data,
          "JSONL (or .jsonl.gz) records with \"text\" and \"label\"; the data pack's MMLU-Pro and "
          "jailbreak records are accepted as they are. Repeat to combine files.")
      ->required()
      ->check(CLI::ExistingFile);
  train
      ->add_option("--out", ta.out, "Folder to write the model to (config.json, model.safetensors)")
      ->required();
  train->add_option("--holdout", ta.holdout, "Fraction held out by id hash, never trained on")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  train->add_option("--seed", ta.seed, "Shuffling seed (training is deterministic for a seed)")
      ->capture_default_str();
  train->add_option("--epochs", ta.epochs, "Passes over the data (default: the task's)")
      ->check(CLI::Range(1, 1000));
  train
      ->add_option("--buckets-log2", ta.buckets_log2,
                   "Hashed feature space 2^N (default: the task's)")
      ->check(CLI::Range(10, 24));
  train
      ->add_option(
          "--window-words", ta.window_words,
          "jailbreak: also score every window of this many words and keep the maximum (default 16)")
      ->check(CLI::Range(4, 1000));
  train
      ->add_option("--ensemble", ta.ensemble,
                   "Train this many seeds and average their weights (stabler)")
      ->check(CLI::Range(1, 50))
      ->capture_default_str();
  train
      ->add_option("--max-fpr", ta.max_fpr,
                   "jailbreak: decision threshold for at most this false-positive rate")
      ->check(CLI::Range(0.0, 0.5))
      ->capture_default_str();
  train
      ->add_option("--vectors", ta.vectors,
                   "Word-vector folder (e.g. models/glove-100d-sif): add the SIF sentence vector "
                   "as dense features")
      ->check(CLI::ExistingDirectory);
  train
      ->add_option("--vector-scale", ta.vector_scale,
                   "Weight of the dense features against the hashed ones")
      ->capture_default_str();
  train->add_flag("--include-options", ta.include_options,
                  "MMLU-Pro records: append the answer options to the text");
  train
      ->add_option("--type", tra.type,
                   "router: knn (similarity-weighted neighbours), mf (matrix factorisation), "
                   "linear (classifier) or random")
      ->check(CLI::IsMember({"knn", "mf", "linear", "random"}))
      ->capture_default_str();
  train
      ->add_option("--models", tra.models,
                   "router: predict only these models (default: every model in the data)")
      ->delimiter(',');
  train
      ->add_option("--embeddings", tra.embeddings,
                   "router: a transformer embedding folder (default: the embedded GloVe SIF "
                   "vectors)")
      ->check(CLI::ExistingDirectory);
  train->add_option("--k", tra.k, "router knn: neighbours (default: chosen on a validation slice)")
      ->check(CLI::Range(1, 100000));
  train->add_option("--rank", tra.rank, "router mf: latent dimension")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();

  app::EvalArgs ea;
  auto* eval = app.add_subcommand(
      "eval",
      "Evaluate a trained classifier: accuracy, per-class precision/recall/F1, confusion matrix, "
      "ROC-AUC (binary tasks), latency percentiles.");
  app::EvalRouterArgs era;
  std::string era_strong, era_weak;
  std::vector<std::string> era_pairs, era_costs;
  eval->add_option("task", ea.task,
                   "domain, complexity, reasoning, jailbreak, language, embeddings (pairs {a, b, "
                   "label} with "
                   "paraphrase / related / unrelated), or router (PGR, APGR, CPT on outcome data)")
      ->required()
      ->check(CLI::IsMember(
          {"domain", "complexity", "reasoning", "jailbreak", "language", "embeddings", "router"}));
  eval->add_option(
          "--model", ea.model_dir,
          "Model folder written by `semrouter train` (language: or a fastText .ftz/.bin file)")
      ->required()
      ->check(CLI::ExistingPath);
  eval->add_option("--data", ea.data, "JSONL (or .jsonl.gz) labeled records")
      ->required()
      ->check(CLI::ExistingFile);
  eval->add_option("--split", ea.split,
                   "all records, or only the ones `train` held out (router: holdout by default; "
                   "train is the rest)")
      ->check(CLI::IsMember({"all", "holdout", "train"}))
      ->capture_default_str();
  eval->add_option("--holdout", ea.holdout, "The held-out fraction used at training")
      ->capture_default_str();
  eval->add_flag("--json", ea.json, "Print the report as JSON");
  eval->add_flag("--adversarial", ea.adversarial,
                 "jailbreak: also score variants (benign text appended/prepended, case, "
                 "whitespace, zero-width "
                 "characters, base64-looking padding)");
  eval->add_flag("--include-options", ea.include_options,
                 "MMLU-Pro records: append the answer options to the text");
  eval->add_option("--strong", era_strong, "router: the strong model of the pair");
  eval->add_option("--weak", era_weak, "router: the weak model of the pair");
  eval->add_option("--pair", era_pairs, "router: another STRONG:WEAK pair (repeatable)");
  eval->add_option("--frontier", era.frontier_models,
                   "router: models of the N-model cost-quality frontier (comma-separated)")
      ->delimiter(',');
  eval->add_option("--cost", era_costs,
                   "router: MODEL=COST per call, for the frontier (repeatable)");
  eval->add_option("--out", era.out_json, "router: also write the JSON report to this file");
  eval->add_option("--svg", era.svg,
                   "router: write the PGR-vs-share plot of the first pair here (and the frontier "
                   "to NAME-frontier.svg)");

  app::CalibrateArgs cal;
  auto* calibrate = app.add_subcommand(
      "calibrate", "Find the router threshold that sends a target share of prompts to the strong "
                   "model.");
  calibrate->add_option("--router", cal.router_dir, "Router folder (`semrouter train router`)")
      ->required()
      ->check(CLI::ExistingDirectory);
  calibrate
      ->add_option("--data", cal.data,
                   "JSONL prompts (\"prompt\", \"text\" or MMLU-Pro \"question\"), e.g. "
                   "a sample of your traffic")
      ->required()
      ->check(CLI::ExistingFile);
  calibrate->add_option("--strong", cal.strong, "The strong model (router name)")->required();
  calibrate->add_option("--weak", cal.weak, "The weak model (router name)")->required();
  calibrate
      ->add_option("--target-strong-share", cal.target_strong_share,
                   "Share of prompts to send to the strong model")
      ->check(CLI::Range(0.0, 1.0))
      ->required();
  calibrate->add_flag("--json", cal.json, "Print JSON");

  app::BenchArgs ba;
  auto* bench = app.add_subcommand(
      "bench", "Replay a JSONL dataset (MMLU-Pro records as they are, or prompts) against a router "
               "or any OpenAI-compatible\nendpoint per model and reasoning mode; report accuracy, "
               "latency, time to first token, tokens and cost.");
  bench
      ->add_option("--data", ba.data,
                   "JSONL (or .jsonl.gz): {\"question\", \"options\", \"answer\"} multiple "
                   "choice, or {\"prompt\"|\"messages\", \"answer\"?}; \"category\" optional")
      ->required()
      ->check(CLI::ExistingFile);
  bench
      ->add_option("--target", ba.target,
                   "Base URL of the router or endpoint (http://127.0.0.1:8801, "
                   "https://host/v1, or a full .../chat/completions URL)")
      ->required();
  bench
      ->add_option("--models", ba.models,
                   "Models to compare (comma-separated); an auto name lets the router decide")
      ->delimiter(',')
      ->capture_default_str();
  bench
      ->add_option("--reasoning", ba.reasoning,
                   "Reasoning modes for fixed models: on, off, unset (comma-separated; default: "
                   "unset, no field sent)")
      ->delimiter(',')
      ->check(CLI::IsMember({"on", "off", "unset"}));
  bench
      ->add_option("--reasoning-family", ba.reasoning_family,
                   "How to turn reasoning on/off for models --config does not name: qwen3, "
                   "deepseek, gpt-oss, anthropic, or none")
      ->capture_default_str();
  bench->add_option("--concurrency", ba.concurrency, "Requests in flight at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  bench->add_option("--limit", ba.limit, "Use only the first N records (default: all)");
  bench->add_option("--out-json", ba.out_json, "Write the report as JSON to this file");
  bench->add_option("--out-svg", ba.out_svg,
                    "Write the charts to this folder (accuracy-vs-tokens.svg, "
                    "category-accuracy.svg)");
  bench->add_option("--api-key-env", ba.api_key_env,
                    "Environment variable holding an API key, sent as Authorization: Bearer");
  bench
      ->add_option("--pricing", ba.pricing,
                   "JSON prices {\"model\": {\"input_per_1m\": X, \"output_per_1m\": Y}} "
                   "(default: the models' pricing in --config)")
      ->check(CLI::ExistingFile);
  bench
      ->add_option("-c,--config", ba.config_path,
                   "The router's config: model pricing, reasoning families and auto names")
      ->check(CLI::ExistingFile);
  bench->add_option("--header", ba.headers, "Extra request header \"Name: value\" (repeatable)");
  bench->add_option("--ca-file", ba.ca_file, "https: trust this CA bundle instead of the system's")
      ->check(CLI::ExistingFile);
  bench->add_option("--max-tokens", ba.max_tokens, "Send max_tokens (default: not sent)")
      ->check(CLI::Range(1, 10000000));
  bench->add_option("--temperature", ba.temperature, "Send this temperature (default: not sent)")
      ->check(CLI::Range(0.0, 2.0));
  bench->add_option("--timeout-s", ba.timeout_s, "Per-request timeout, connecting included")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  bench->add_flag("--no-stream", ba.no_stream,
                  "Ask for whole answers (no time to first token) instead of streams");
  bench->add_flag("--use-cache", ba.use_cache,
                  "Let the router's semantic cache answer (default: Cache-Control: no-store)");
  bench->add_flag("-q,--quiet", ba.quiet, "No progress on stderr");

  auto* hash_key = app.add_subcommand(
      "hash-key", "Print the SHA-256 of an API key read from standard input (one line), for "
                  "auth.keys[].sha256.\nExample: printf %s \"$KEY\" | semrouter hash-key");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (serve->parsed())
    return cmd_serve(sa);
  if (hash_key->parsed()) {
    std::string key;
    std::getline(std::cin, key);
    while (!key.empty() && (key.back() == '\r' || key.back() == ' '))
      key.pop_back();
    if (key.empty()) {
      std::cerr << "hash-key: no key on standard input (printf %s \"$KEY\" | semrouter "
                   "hash-key)\n";
      return 2;
    }
    std::cout << auth::sha256_hex(key) << "\n";
    return 0;
  }
  if (check->parsed())
    return cmd_config_check(check_path);
  if (classify->parsed())
    return app::cmd_classify(ca);
  if (train->parsed() && ta.task == "router") {
    tra.data = ta.data;
    tra.out = ta.out;
    tra.epochs = ta.epochs;
    tra.buckets_log2 = ta.buckets_log2;
    if (train->count("--seed"))
      tra.seed = ta.seed;
    return app::cmd_train_router(tra);
  }
  if (train->parsed())
    return app::cmd_train(ta);
  if (eval->parsed() && ea.task == "router") {
    era.router_dir = ea.model_dir;
    era.data = ea.data;
    era.split = eval->count("--split") ? ea.split : "holdout";
    era.json = ea.json;
    if (!era_strong.empty() || !era_weak.empty()) {
      if (era_strong.empty() || era_weak.empty()) {
        std::fprintf(stderr, "eval router: give both --strong and --weak\n");
        return 2;
      }
      era.pairs.emplace_back(era_strong, era_weak);
    }
    for (const auto& p : era_pairs) {
      auto colon = p.find(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == p.size()) {
        std::fprintf(stderr, "eval router: --pair wants STRONG:WEAK, got \"%s\"\n", p.c_str());
        return 2;
      }
      era.pairs.emplace_back(p.substr(0, colon), p.substr(colon + 1));
    }
    for (const auto& c : era_costs) {
      auto eq = c.find('=');
      char* end = nullptr;
      double v = eq == std::string::npos ? 0 : std::strtod(c.c_str() + eq + 1, &end);
      if (eq == std::string::npos || eq == 0 || !end || *end || v < 0) {
        std::fprintf(stderr, "eval router: --cost wants MODEL=COST (a number ≥ 0), got \"%s\"\n",
                     c.c_str());
        return 2;
      }
      era.costs.emplace_back(c.substr(0, eq), v);
    }
    return app::cmd_eval_router(era);
  }
  if (eval->parsed())
    return app::cmd_eval(ea);
  if (calibrate->parsed())
    return app::cmd_calibrate(cal);
  if (bench->parsed())
    return app::cmd_bench(ba);
  if (print_default->parsed()) {
    std::fwrite(config::embedded_default_config().data(), 1,
                config::embedded_default_config().size(), stdout);
    return 0;
  }
  return 0;
}
