// Encoder latency at BERT-base and ModernBERT-base shapes with random weights, and the GEMM peak
// of this machine. Driven by bench/encoder_bench.sh, which runs PyTorch on the same weights beside
// it; prints one JSON object per measurement.
//
//   encoder-bench make   --arch bert|modernbert --dir DIR     write config.json + model.safetensors
//   encoder-bench run    --dir DIR --seq N --batch N --threads N --precision f32|bf16|int8
//   encoder-bench peak   --threads N                           GEMM GFLOP/s at 1024x768x3072
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "models/transformer.h"
#include "nn/encoder.h"
#include "nn/gemm.h"

using namespace semrouter;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Shape {
  int64_t vocab, hidden, layers, heads, inter, max_pos;
};

int make_model(const std::string& arch, const std::string& dir) {
  const bool bert = arch == "bert";
  // BERT-base: 12 x 768, 12 heads, FFN 3072. ModernBERT-base: 22 x 768, 12 heads, GeGLU 1152,
  // global attention every 3rd layer, local window 128.
  Shape s = bert ? Shape{30522, 768, 12, 12, 3072, 512} : Shape{50368, 768, 22, 12, 1152, 8192};
  fs::create_directories(dir);
  std::mt19937 rng(42);
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> t;
  auto rand = [&](const std::string& name, std::vector<int64_t> shape, float stddev,
                  float mean = 0.f) {
    int64_t n = 1;
    for (auto d : shape)
      n *= d;
    std::normal_distribution<float> nd(mean, stddev);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v)
      x = nd(rng);
    t[name] = {shape, std::move(v)};
  };
  const int64_t H = s.hidden, I = s.inter;
  json cfg;
  if (bert) {
    rand("embeddings.word_embeddings.weight", {s.vocab, H}, 0.02f);
    rand("embeddings.position_embeddings.weight", {s.max_pos, H}, 0.02f);
    rand("embeddings.token_type_embeddings.weight", {2, H}, 0.02f);
    rand("embeddings.LayerNorm.weight", {H}, 0.02f, 1.f);
    rand("embeddings.LayerNorm.bias", {H}, 0.02f);
    for (int64_t l = 0; l < s.layers; ++l) {
      std::string p = "encoder.layer." + std::to_string(l) + ".";
      for (const char* q : {"query", "key", "value"}) {
        rand(p + "attention.self." + q + ".weight", {H, H}, 0.02f);
        rand(p + "attention.self." + q + ".bias", {H}, 0.02f);
      }
      rand(p + "attention.output.dense.weight", {H, H}, 0.02f);
      rand(p + "attention.output.dense.bias", {H}, 0.02f);
      rand(p + "attention.output.LayerNorm.weight", {H}, 0.02f, 1.f);
      rand(p + "attention.output.LayerNorm.bias", {H}, 0.02f);
      rand(p + "intermediate.dense.weight", {I, H}, 0.02f);
      rand(p + "intermediate.dense.bias", {I}, 0.02f);
      rand(p + "output.dense.weight", {H, I}, 0.02f);
      rand(p + "output.dense.bias", {H}, 0.02f);
      rand(p + "output.LayerNorm.weight", {H}, 0.02f, 1.f);
      rand(p + "output.LayerNorm.bias", {H}, 0.02f);
    }
    cfg = {{"architectures", {"BertModel"}},
           {"model_type", "bert"},
           {"type_vocab_size", 2},
           {"layer_norm_eps", 1e-12},
           {"hidden_act", "gelu"}};
  } else {
    rand("embeddings.tok_embeddings.weight", {s.vocab, H}, 0.02f);
    rand("embeddings.norm.weight", {H}, 0.02f, 1.f);
    for (int64_t l = 0; l < s.layers; ++l) {
      std::string p = "layers." + std::to_string(l) + ".";
      if (l > 0)
        rand(p + "attn_norm.weight", {H}, 0.02f, 1.f);
      rand(p + "attn.Wqkv.weight", {3 * H, H}, 0.02f);
      rand(p + "attn.Wo.weight", {H, H}, 0.02f);
      rand(p + "mlp_norm.weight", {H}, 0.02f, 1.f);
      rand(p + "mlp.Wi.weight", {2 * I, H}, 0.02f);
      rand(p + "mlp.Wo.weight", {H, I}, 0.02f);
    }
    rand("final_norm.weight", {H}, 0.02f, 1.f);
    cfg = {{"architectures", {"ModernBertModel"}},
           {"model_type", "modernbert"},
           {"norm_eps", 1e-5},
           {"hidden_activation", "gelu"},
           {"global_attn_every_n_layers", 3},
           {"local_attention", 128},
           {"global_rope_theta", 160000.0},
           {"local_rope_theta", 10000.0}};
  }
  // The dimensions both architectures name the same way.
  cfg["vocab_size"] = s.vocab;
  cfg["hidden_size"] = H;
  cfg["num_hidden_layers"] = s.layers;
  cfg["num_attention_heads"] = s.heads;
  cfg["intermediate_size"] = I;
  cfg["max_position_embeddings"] = s.max_pos;
  if (auto st = nn::write_safetensors_f32(dir + "/model.safetensors", t); !st) {
    std::fprintf(stderr, "%s\n", st.error().message.c_str());
    return 1;
  }
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  return 0;
}

// Matmul FLOPs of one forward (2 per multiply-add), attention included, local windows counted
// by the keys actually visited.
double model_flops(const nn::EncoderConfig& c, int64_t B, int64_t S) {
  const double T = double(B * S), H = double(c.hidden), I = double(c.intermediate);
  double f = 0;
  for (int64_t l = 0; l < c.layers; ++l) {
    double proj =
        c.arch == nn::Arch::Bert ? 3 * H * H + H * H + 2 * H * I : 3 * H * H + H * H + 3 * H * I;
    double keys =
        c.is_global_layer(l) ? double(S) : double(std::min<int64_t>(S, c.local_attention + 1));
    f += 2 * T * proj + 4 * T * keys * H;
  }
  return f;
}

int run(const std::string& dir, int64_t S, int64_t B, int threads, const std::string& prec,
        double min_time) {
  nn::set_compute_threads(threads);
  auto p = nn::parse_precision(prec);
  if (!p) {
    std::fprintf(stderr, "%s\n", p.error().message.c_str());
    return 2;
  }
  std::ifstream f(dir + "/config.json");
  auto cfg = nn::EncoderConfig::from_json(json::parse(f));
  auto st = nn::SafeTensors::open(dir + "/model.safetensors");
  if (!cfg || !st) {
    std::fprintf(stderr, "cannot load %s\n", dir.c_str());
    return 1;
  }
  nn::EncoderOptions o;
  o.precision = *p;
  auto enc = nn::Encoder::load(*cfg, *st, o);
  if (!enc) {
    std::fprintf(stderr, "%s\n", enc.error().message.c_str());
    return 1;
  }
  nn::Batch b;
  b.B = B;
  b.S = S;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> ids(1000, int32_t(cfg->vocab_size) - 1);
  for (int64_t i = 0; i < B * S; ++i) {
    b.ids.push_back(ids(rng));
    b.type_ids.push_back(0);
    b.mask.push_back(1);
  }
  nn::Workspace ws;
  (*enc)->forward(b, ws); // warm-up: JIT kernels, primitives, buffers
  std::vector<double> ms;
  auto start = std::chrono::steady_clock::now();
  while (
      ms.size() < 3 ||
      (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < min_time &&
       ms.size() < 200)) {
    auto t0 = std::chrono::steady_clock::now();
    (*enc)->forward(b, ws);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (ms.size() >= 2 && ms[0] > 2000)
      break; // very long shapes: two runs are enough
  }
  std::sort(ms.begin(), ms.end());
  double med = ms[ms.size() / 2];
  double flops = model_flops(*cfg, B, S);
  json out = {{"impl", "semrouter"},
              {"arch", cfg->arch == nn::Arch::Bert ? "bert" : "modernbert"},
              {"seq", S},
              {"batch", B},
              {"threads", threads},
              {"precision", nn::precision_name((*enc)->precision())},
              {"median_ms", med},
              {"min_ms", ms.front()},
              {"runs", ms.size()},
              {"seq_per_s", 1000.0 * double(B) / med},
              {"gflops", flops / med / 1e6}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

int peak(int threads) {
  nn::set_compute_threads(threads);
  const int64_t M = 1024, K = 768, N = 3072;
  std::vector<float> x(size_t(M * K)), w(size_t(N * K)), y(size_t(M * N));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  for (auto& v : x)
    v = nd(rng);
  for (auto& v : w)
    v = nd(rng) * 0.02f;
  for (auto prec : {nn::Precision::F32, nn::Precision::BF16, nn::Precision::INT8}) {
    auto l = nn::Linear::make(w, {}, N, K, nn::Backend::OneDNN, prec);
    if (!l) {
      std::printf("%s\n", json({{"impl", "gemm"},
                                {"precision", nn::precision_name(prec)},
                                {"error", l.error().message}})
                              .dump()
                              .c_str());
      continue;
    }
    std::vector<uint8_t> scratch;
    l->forward(x.data(), M, y.data(), N, scratch);
    double best = 1e18;
    auto start = std::chrono::steady_clock::now();
    int runs = 0;
    while (runs < 5 ||
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 1.0) {
      auto t0 = std::chrono::steady_clock::now();
      l->forward(x.data(), M, y.data(), N, scratch);
      best = std::min(best,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      ++runs;
    }
    double gf = 2.0 * double(M * N * K) / best / 1e9;
    std::printf("%s\n", json({{"impl", "gemm"},
                              {"backend", "onednn"},
                              {"precision", nn::precision_name(prec)},
                              {"threads", threads},
                              {"m", M},
                              {"k", K},
                              {"n", N},
                              {"gflops", gf}})
                            .dump()
                            .c_str());
  }
  // OpenBLAS f32 for reference.
  std::vector<float> yy(size_t(M * N));
  double best = 1e18;
  for (int r = 0; r < 8; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    nn::sgemm(nn::Backend::OpenBLAS, true, M, N, K, 1.f, x.data(), K, w.data(), K, 0.f, yy.data(),
              N);
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("%s\n", json({{"impl", "gemm"},
                            {"backend", "openblas"},
                            {"precision", "f32"},
                            {"threads", threads},
                            {"m", M},
                            {"k", K},
                            {"n", N},
                            {"gflops", 2.0 * double(M * N * K) / best / 1e9}})
                          .dump()
                          .c_str());
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Encoder benchmark at BERT-base / ModernBERT-base shapes (see bench/encoder_bench.sh)"};
  app.require_subcommand(1);
  std::string arch = "bert", dir, prec = "f32";
  int64_t seq = 128, batch = 1;
  int threads = 1;
  double min_time = 1.0;
  auto* mk = app.add_subcommand("make", "Write a random-weight model folder");
  mk->add_option("--arch", arch)->check(CLI::IsMember({"bert", "modernbert"}));
  mk->add_option("--dir", dir)->required();
  auto* rn = app.add_subcommand("run", "Time one shape");
  rn->add_option("--dir", dir)->required();
  rn->add_option("--seq", seq);
  rn->add_option("--batch", batch);
  rn->add_option("--threads", threads);
  rn->add_option("--precision", prec);
  rn->add_option("--min-time", min_time, "Seconds to keep repeating (at least 3 runs)");
  auto* pk = app.add_subcommand("peak", "GEMM GFLOP/s at 1024x768x3072 in f32, bf16, int8");
  pk->add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  if (mk->parsed())
    return make_model(arch, dir);
  if (rn->parsed())
    return run(dir, seq, batch, threads, prec, min_time);
  return peak(threads);
}
