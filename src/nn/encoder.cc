#include "nn/encoder.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nn/kernels.h"

namespace semrouter::nn {

using core::ErrorCode;
using core::make_error;
using json = nlohmann::json;

core::StatusOr<EncoderConfig> EncoderConfig::from_json(const json& j) {
  EncoderConfig c;
  try {
    std::string model_type = j.value("model_type", "");
    if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
      c.architecture = j["architectures"][0].get<std::string>();
    const std::string& a = c.architecture;
    if (model_type == "bert" || a.rfind("Bert", 0) == 0) {
      c.arch = Arch::Bert;
    } else if (model_type == "modernbert" || a.rfind("ModernBert", 0) == 0) {
      c.arch = Arch::ModernBert;
    } else {
      return make_error(
          ErrorCode::InvalidArgument,
          fmt::format("config.json: model_type \"{}\" / architecture \"{}\" is not supported "
                      "(supported: bert, modernbert)",
                      model_type, a));
    }
    if (a.find("ForSequenceClassification") != std::string::npos)
      c.head = HeadKind::SequenceClassification;
    else if (a.find("ForTokenClassification") != std::string::npos)
      c.head = HeadKind::TokenClassification;
    else if (a.empty() || a == "BertModel" || a == "ModernBertModel")
      c.head = HeadKind::None;
    else
      return make_error(
          ErrorCode::InvalidArgument,
          fmt::format("config.json: architecture \"{}\" is not supported (supported: *Model, "
                      "*ForSequenceClassification, *ForTokenClassification)",
                      a));
    c.vocab_size = j.at("vocab_size").get<int64_t>();
    c.hidden = j.at("hidden_size").get<int64_t>();
    c.layers = j.at("num_hidden_layers").get<int64_t>();
    c.heads = j.at("num_attention_heads").get<int64_t>();
    c.intermediate = j.at("intermediate_size").get<int64_t>();
    c.max_positions = j.value("max_position_embeddings", int64_t(512));
    if (c.hidden <= 0 || c.heads <= 0 || c.hidden % c.heads != 0)
      return make_error(
          ErrorCode::InvalidArgument,
          fmt::format(
              "config.json: hidden_size {} must be a positive multiple of num_attention_heads {}",
              c.hidden, c.heads));
    std::string act;
    if (c.arch == Arch::Bert) {
      c.type_vocab_size = j.value("type_vocab_size", int64_t(2));
      c.norm_eps = j.value("layer_norm_eps", 1e-12f);
      act = j.value("hidden_act", "gelu");
      std::string pos = j.value("position_embedding_type", "absolute");
      if (pos != "absolute")
        return make_error(
            ErrorCode::InvalidArgument,
            fmt::format("config.json: position_embedding_type \"{}\" is not supported (absolute)",
                        pos));
    } else {
      c.norm_eps = j.value("norm_eps", 1e-5f);
      act = j.value("hidden_activation", "gelu");
      c.local_attention = j.value("local_attention", int64_t(128));
      c.global_every = j.value("global_attn_every_n_layers", int64_t(3));
      c.global_rope_theta = j.value("global_rope_theta", 160000.f);
      c.local_rope_theta = j.value("local_rope_theta", 10000.f);
      c.attention_bias = j.value("attention_bias", false);
      c.mlp_bias = j.value("mlp_bias", false);
      c.norm_bias = j.value("norm_bias", false);
      c.classifier_bias = j.value("classifier_bias", false);
      std::string pooling = j.value("classifier_pooling", "cls");
      if (pooling != "cls" && pooling != "mean")
        return make_error(
            ErrorCode::InvalidArgument,
            fmt::format("config.json: classifier_pooling \"{}\" is not supported (cls, mean)",
                        pooling));
      c.classifier_pooling = pooling == "mean" ? Pooling::Mean : Pooling::Cls;
      std::string cact = j.value("classifier_activation", "gelu");
      if (cact != "gelu")
        return make_error(
            ErrorCode::InvalidArgument,
            fmt::format("config.json: classifier_activation \"{}\" is not supported (gelu)", cact));
      if (c.global_every <= 0)
        return make_error(ErrorCode::InvalidArgument,
                          "config.json: global_attn_every_n_layers must be positive");
    }
    if (act != "gelu")
      return make_error(
          ErrorCode::InvalidArgument,
          fmt::format("config.json: activation \"{}\" is not supported (gelu, the erf form)", act));
    if (j.contains("id2label") && j["id2label"].is_object()) {
      const auto& m = j["id2label"];
      c.labels.resize(m.size());
      for (auto it = m.begin(); it != m.end(); ++it) {
        size_t id = std::stoul(it.key());
        if (id >= c.labels.size())
          return make_error(
              ErrorCode::InvalidArgument,
              fmt::format("config.json: id2label has id {} but only {} labels", id, m.size()));
        c.labels[id] = it.value().get<std::string>();
      }
    } else if (c.head != HeadKind::None) {
      int64_t n = j.value("num_labels", int64_t(2));
      for (int64_t i = 0; i < n; ++i)
        c.labels.push_back(fmt::format("LABEL_{}", i));
    }
  } catch (const std::exception& e) {
    return make_error(ErrorCode::InvalidArgument, fmt::format("config.json: {}", e.what()));
  }
  return c;
}

namespace {

// Runs f(first_row, row_count) over `rows` split across the compute threads (one call when the
// batch is small or there is one thread).
template <typename F> void for_row_chunks(int64_t rows, F&& f) {
  const int nt = omp_get_max_threads();
  if (nt <= 1 || rows < 32) {
    f(int64_t(0), rows);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t b = rows * t / n, e = rows * (t + 1) / n;
    if (b < e)
      f(b, e - b);
  }
}

} // namespace

struct Encoder::Layer {
  Linear qkv, out, up, down;
  std::vector<float> norm1_w, norm1_b, norm2_w, norm2_b;
};

Encoder::~Encoder() = default;

core::StatusOr<std::unique_ptr<Encoder>> Encoder::load(const EncoderConfig& cfg,
                                                       std::shared_ptr<const SafeTensors> w,
                                                       const EncoderOptions& opts) {
  std::unique_ptr<Encoder> e(new Encoder());
  e->cfg_ = cfg;
  e->opts_ = opts;
  e->weights_ = w;
  e->precision_ = resolve_precision(opts.precision, opts.backend);
  const int64_t H = cfg.hidden, I = cfg.intermediate, L = cfg.num_labels();
  const bool bert = cfg.arch == Arch::Bert;
  std::string p;
  if (bert)
    p = w->contains("bert.embeddings.word_embeddings.weight") ? "bert." : "";
  else
    p = w->contains("model.embeddings.tok_embeddings.weight") ? "model." : "";

  core::Error err;
  bool failed = false;
  auto f32 = [&](const std::string& name, std::vector<int64_t> shape) -> std::vector<float> {
    if (failed)
      return {};
    auto v = w->to_f32(name, shape);
    if (!v) {
      failed = true;
      err = v.error();
      return {};
    }
    return std::move(*v);
  };
  auto linear = [&](const std::string& name, int64_t out, int64_t in, bool with_bias,
                    Precision prec) -> Linear {
    auto wt = f32(name + ".weight", {out, in});
    auto b = with_bias ? f32(name + ".bias", {out}) : std::vector<float>();
    if (failed)
      return {};
    auto l = Linear::make(std::move(wt), std::move(b), out, in, opts.backend, prec);
    if (!l) {
      failed = true;
      err = l.error();
      return {};
    }
    return std::move(*l);
  };
  auto view = [&](const std::string& name, std::vector<int64_t> shape) -> TensorView {
    if (failed)
      return {};
    auto v = w->get(name, shape);
    if (!v) {
      failed = true;
      err = v.error();
      return {};
    }
    return *v;
  };
  // Reduced precision (bf16 / int8) applies to the attention output and MLP GEMMs. The Q/K/V
  // projection stays f32: attention logits amplify its rounding most (on the reference fixtures
  // it alone moved logits as much as the other three together; see docs/benchmarks.md).
  const Precision prec = e->precision_;
  // In int8 mode the Q/K/V projection runs in bf16 where the CPU has native bf16.
  const Precision qkv_prec =
      prec == Precision::INT8 && CpuFeatures::get().fast_bf16() ? Precision::BF16 : Precision::F32;
  auto rp = [&](const char* role) { return std::string_view(role) == "qkv" ? qkv_prec : prec; };

  if (bert) {
    e->word_emb_ = view(p + "embeddings.word_embeddings.weight", {cfg.vocab_size, H});
    e->pos_emb_ = view(p + "embeddings.position_embeddings.weight", {cfg.max_positions, H});
    e->type_emb_ = view(p + "embeddings.token_type_embeddings.weight", {cfg.type_vocab_size, H});
    e->emb_norm_w_ = f32(p + "embeddings.LayerNorm.weight", {H});
    e->emb_norm_b_ = f32(p + "embeddings.LayerNorm.bias", {H});
    for (int64_t l = 0; l < cfg.layers && !failed; ++l) {
      std::string q = fmt::format("{}encoder.layer.{}.", p, l);
      Layer layer;
      // Q, K and V become one [3H, H] GEMM.
      std::vector<float> wqkv, bqkv;
      for (const char* part : {"query", "key", "value"}) {
        auto wt = f32(q + "attention.self." + part + ".weight", {H, H});
        auto b = f32(q + "attention.self." + part + ".bias", {H});
        wqkv.insert(wqkv.end(), wt.begin(), wt.end());
        bqkv.insert(bqkv.end(), b.begin(), b.end());
      }
      if (failed)
        break;
      auto lq = Linear::make(std::move(wqkv), std::move(bqkv), 3 * H, H, opts.backend, rp("qkv"));
      if (!lq)
        return tl::unexpected(lq.error());
      layer.qkv = std::move(*lq);
      layer.out = linear(q + "attention.output.dense", H, H, true, rp("out"));
      layer.norm1_w = f32(q + "attention.output.LayerNorm.weight", {H});
      layer.norm1_b = f32(q + "attention.output.LayerNorm.bias", {H});
      layer.up = linear(q + "intermediate.dense", I, H, true, rp("up"));
      layer.down = linear(q + "output.dense", H, I, true, rp("down"));
      layer.norm2_w = f32(q + "output.LayerNorm.weight", {H});
      layer.norm2_b = f32(q + "output.LayerNorm.bias", {H});
      e->layers_.push_back(std::move(layer));
    }
    if (w->contains(p + "pooler.dense.weight")) {
      e->has_pooler_ = true;
      e->pooler_ = linear(p + "pooler.dense", H, H, true, Precision::F32);
    } else if (cfg.head == HeadKind::SequenceClassification) {
      return make_error(ErrorCode::NotFound,
                        fmt::format("{}: missing tensor \"{}pooler.dense.weight\" (expected "
                                    "shape [{}, {}]), needed by sequence classification",
                                    w->path(), p, H, H));
    }
    if (cfg.head != HeadKind::None)
      e->classifier_ = linear("classifier", L, H, true, Precision::F32);
  } else {
    e->word_emb_ = view(p + "embeddings.tok_embeddings.weight", {cfg.vocab_size, H});
    e->emb_norm_w_ = f32(p + "embeddings.norm.weight", {H});
    if (cfg.norm_bias)
      e->emb_norm_b_ = f32(p + "embeddings.norm.bias", {H});
    for (int64_t l = 0; l < cfg.layers && !failed; ++l) {
      std::string q = fmt::format("{}layers.{}.", p, l);
      Layer layer;
      if (l > 0) { // layer 0 has no attention norm (the embedding norm precedes it)
        layer.norm1_w = f32(q + "attn_norm.weight", {H});
        if (cfg.norm_bias)
          layer.norm1_b = f32(q + "attn_norm.bias", {H});
      }
      layer.qkv = linear(q + "attn.Wqkv", 3 * H, H, cfg.attention_bias, rp("qkv"));
      layer.out = linear(q + "attn.Wo", H, H, cfg.attention_bias, rp("out"));
      layer.norm2_w = f32(q + "mlp_norm.weight", {H});
      if (cfg.norm_bias)
        layer.norm2_b = f32(q + "mlp_norm.bias", {H});
      layer.up = linear(q + "mlp.Wi", 2 * I, H, cfg.mlp_bias, rp("up"));
      layer.down = linear(q + "mlp.Wo", H, I, cfg.mlp_bias, rp("down"));
      e->layers_.push_back(std::move(layer));
    }
    e->final_norm_w_ = f32(p + "final_norm.weight", {H});
    if (cfg.norm_bias)
      e->final_norm_b_ = f32(p + "final_norm.bias", {H});
    if (cfg.head != HeadKind::None) {
      e->head_dense_ = linear("head.dense", H, H, cfg.classifier_bias, Precision::F32);
      e->head_norm_w_ = f32("head.norm.weight", {H});
      if (cfg.norm_bias)
        e->head_norm_b_ = f32("head.norm.bias", {H});
      e->classifier_ = linear("classifier", L, H, true, Precision::F32);
    }
  }
  if (failed)
    return tl::unexpected(err);
  return e;
}

void Encoder::embed(const Batch& b, Workspace& ws) const {
  const int64_t H = cfg_.hidden, T = b.B * b.S;
  ws.x.resize(size_t(T * H));
  ws.tmp.resize(size_t(T * H));
  for (int64_t bi = 0; bi < b.B; ++bi)
    for (int64_t s = 0; s < b.S; ++s) {
      int64_t t = bi * b.S + s;
      float* row = ws.x.data() + t * H;
      int64_t id = std::clamp<int64_t>(b.ids[size_t(t)], 0, cfg_.vocab_size - 1);
      word_emb_.row_to_f32(id, H, row);
      if (cfg_.arch == Arch::Bert) {
        float* tmp = ws.tmp.data();
        pos_emb_.row_to_f32(std::min<int64_t>(s, cfg_.max_positions - 1), H, tmp);
        kernels::add_inplace(row, tmp, H);
        int64_t tt = b.type_ids.empty()
                         ? 0
                         : std::clamp<int64_t>(b.type_ids[size_t(t)], 0, cfg_.type_vocab_size - 1);
        type_emb_.row_to_f32(tt, H, tmp);
        kernels::add_inplace(row, tmp, H);
      }
    }
  kernels::layer_norm(ws.x.data(), T, H, emb_norm_w_.data(),
                      emb_norm_b_.empty() ? nullptr : emb_norm_b_.data(), cfg_.norm_eps);
}

namespace {

void rope_table(int64_t S, int64_t half, float theta, std::vector<float>& cos,
                std::vector<float>& sin) {
  cos.resize(size_t(S * half));
  sin.resize(size_t(S * half));
  for (int64_t i = 0; i < half; ++i) {
    // As transformers: inv_freq = 1 / theta^(2i / d) in float32, angle = position · inv_freq.
    float inv = 1.f / powf(theta, float(2 * i) / float(2 * half));
    for (int64_t s = 0; s < S; ++s) {
      float a = float(s) * inv;
      cos[size_t(s * half + i)] = cosf(a);
      sin[size_t(s * half + i)] = sinf(a);
    }
  }
}

} // namespace

void Encoder::attention(const Batch& b, int64_t l, Workspace& ws) const {
  const int64_t H = cfg_.hidden, nh = cfg_.heads, d = cfg_.head_dim(), S = b.S, ld = 3 * H;
  const bool global = cfg_.is_global_layer(l);
  const int64_t w = global ? S : cfg_.local_attention / 2;
  const int64_t blk = global ? S : std::min<int64_t>(S, 64);
  const int64_t max_keys = global ? S : std::min<int64_t>(S, blk + 2 * w);
  const float scale = 1.f / std::sqrt(float(d));
  float* qkv = ws.qkv.data();

  if (cfg_.arch == Arch::ModernBert) {
    const int64_t half = d / 2;
    // Tables are rebuilt only when the theta or the length changes (two thetas alternate, so keep
    // both: the local one lives in the second half of the buffers).
    size_t slot = global ? 0 : 1;
    if (ws.rope_len < S || ws.rope_owner != this) {
      std::vector<float> gc, gs, lc, ls;
      int64_t len = std::max<int64_t>(S, 128);
      rope_table(len, half, cfg_.global_rope_theta, gc, gs);
      rope_table(len, half, cfg_.local_rope_theta, lc, ls);
      ws.rope_cos = gc;
      ws.rope_cos.insert(ws.rope_cos.end(), lc.begin(), lc.end());
      ws.rope_sin = gs;
      ws.rope_sin.insert(ws.rope_sin.end(), ls.begin(), ls.end());
      ws.rope_len = len;
      ws.rope_owner = this;
    }
    const float* cos = ws.rope_cos.data() + slot * size_t(ws.rope_len * half);
    const float* sin = ws.rope_sin.data() + slot * size_t(ws.rope_len * half);
    const int64_t T = b.B * S;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      int64_t s = t % S;
      float* row = qkv + t * ld;
      for (int64_t h = 0; h < nh; ++h) {
        kernels::rope_row(row + h * d, cos + s * half, sin + s * half, half);     // q
        kernels::rope_row(row + H + h * d, cos + s * half, sin + s * half, half); // k
      }
    }
  }

  const int threads = omp_get_max_threads();
  const size_t per_thread = size_t(blk * max_keys);
  if (ws.scores.size() < per_thread * size_t(threads))
    ws.scores.resize(per_thread * size_t(threads));
  ws.ctx.resize(size_t(b.B * S * H));
  float* ctx = ws.ctx.data();
  const Backend backend = opts_.backend;
  float* scores = ws.scores.data();
  const uint8_t* mask = b.mask.data();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b.B; ++bi)
    for (int64_t h = 0; h < nh; ++h) {
      float* sc = scores + size_t(omp_get_thread_num()) * per_thread;
      const float* Q = qkv + bi * S * ld + h * d;
      const float* K = Q + H;
      const float* V = Q + 2 * H;
      const uint8_t* m = mask + bi * S;
      for (int64_t q0 = 0; q0 < S; q0 += blk) {
        const int64_t q1 = std::min(S, q0 + blk);
        const int64_t k0 = global ? 0 : std::max<int64_t>(0, q0 - w);
        const int64_t k1 = global ? S : std::min(S, q1 + w);
        const int64_t nq = q1 - q0, nk = k1 - k0;
        sgemm(backend, true, nq, nk, d, scale, Q + q0 * ld, ld, K + k0 * ld, ld, 0.f, sc, nk);
        for (int64_t i = 0; i < nq; ++i) {
          float* row = sc + i * nk;
          const int64_t qi = q0 + i;
          for (int64_t j = 0; j < nk; ++j) {
            const int64_t kj = k0 + j;
            if (!m[kj] || (!global && (qi - kj > w || kj - qi > w)))
              row[j] = -1e30f;
          }
          kernels::softmax_row(row, nk);
        }
        sgemm(backend, false, nq, d, nk, 1.f, sc, nk, V + k0 * ld, ld, 0.f,
              ctx + (bi * S + q0) * H + h * d, H);
      }
    }
}

void Encoder::forward(const Batch& b, Workspace& ws,
                      std::vector<std::vector<float>>* all_hidden) const {
  const int64_t H = cfg_.hidden, I = cfg_.intermediate, T = b.B * b.S;
  embed(b, ws);
  if (all_hidden) {
    all_hidden->clear();
    all_hidden->push_back(ws.x);
  }
  ws.qkv.resize(size_t(T * 3 * H));
  ws.tmp.resize(size_t(T * H));
  const bool bert = cfg_.arch == Arch::Bert;
  ws.ff.resize(size_t(T * (bert ? I : 2 * I)));
  if (!bert)
    ws.ff2.resize(size_t(T * I));
  for (int64_t l = 0; l < int64_t(layers_.size()); ++l) {
    const Layer& L = layers_[size_t(l)];
    float* x = ws.x.data();
    float* tmp = ws.tmp.data();
    float* ff = ws.ff.data();
    const float eps = cfg_.norm_eps;
    if (bert) {
      L.qkv.forward(x, T, ws.qkv.data(), 3 * H, ws.scratch);
      attention(b, l, ws);
      L.out.forward(ws.ctx.data(), T, tmp, H, ws.scratch);
      for_row_chunks(T, [&](int64_t r, int64_t n) {
        kernels::add_inplace(tmp + r * H, x + r * H, n * H);
        kernels::layer_norm_to(tmp + r * H, x + r * H, n, H, L.norm1_w.data(), L.norm1_b.data(),
                               eps);
      });
      L.up.forward(x, T, ff, I, ws.scratch);
      for_row_chunks(T, [&](int64_t r, int64_t n) { kernels::gelu_inplace(ff + r * I, n * I); });
      L.down.forward(ff, T, tmp, H, ws.scratch);
      for_row_chunks(T, [&](int64_t r, int64_t n) {
        kernels::add_inplace(tmp + r * H, x + r * H, n * H);
        kernels::layer_norm_to(tmp + r * H, x + r * H, n, H, L.norm2_w.data(), L.norm2_b.data(),
                               eps);
      });
    } else {
      const float* n1b = L.norm1_b.empty() ? nullptr : L.norm1_b.data();
      const float* n2b = L.norm2_b.empty() ? nullptr : L.norm2_b.data();
      const float* attn_in = x;
      if (!L.norm1_w.empty()) {
        for_row_chunks(T, [&](int64_t r, int64_t n) {
          kernels::layer_norm_to(x + r * H, tmp + r * H, n, H, L.norm1_w.data(), n1b, eps);
        });
        attn_in = tmp;
      }
      L.qkv.forward(attn_in, T, ws.qkv.data(), 3 * H, ws.scratch);
      attention(b, l, ws);
      L.out.forward(ws.ctx.data(), T, tmp, H, ws.scratch);
      for_row_chunks(T, [&](int64_t r, int64_t n) {
        kernels::add_inplace(x + r * H, tmp + r * H, n * H);
        kernels::layer_norm_to(x + r * H, tmp + r * H, n, H, L.norm2_w.data(), n2b, eps);
      });
      L.up.forward(tmp, T, ff, 2 * I, ws.scratch);
      float* ff2 = ws.ff2.data();
      for_row_chunks(T, [&](int64_t r, int64_t n) {
        for (int64_t t = r; t < r + n; ++t)
          kernels::geglu_row(ff + t * 2 * I, ff2 + t * I, I);
      });
      L.down.forward(ff2, T, tmp, H, ws.scratch);
      for_row_chunks(
          T, [&](int64_t r, int64_t n) { kernels::add_inplace(x + r * H, tmp + r * H, n * H); });
    }
    if (all_hidden)
      all_hidden->push_back(ws.x);
  }
  if (!bert)
    kernels::layer_norm(ws.x.data(), T, H, final_norm_w_.data(),
                        final_norm_b_.empty() ? nullptr : final_norm_b_.data(), cfg_.norm_eps);
}

void Encoder::pool(const Batch& b, const Workspace& ws, Pooling pooling, bool normalize,
                   std::vector<float>& out) const {
  const int64_t H = cfg_.hidden;
  out.assign(size_t(b.B * H), 0.f);
  for (int64_t bi = 0; bi < b.B; ++bi) {
    float* o = out.data() + bi * H;
    if (pooling == Pooling::Cls) {
      std::memcpy(o, ws.x.data() + bi * b.S * H, size_t(H) * 4);
    } else {
      float n = 0;
      for (int64_t s = 0; s < b.S; ++s)
        if (b.mask[size_t(bi * b.S + s)]) {
          kernels::add_inplace(o, ws.x.data() + (bi * b.S + s) * H, H);
          n += 1;
        }
      kernels::scale_inplace(o, 1.f / std::max(n, 1e-9f), H);
    }
    if (normalize) {
      double ss = 0;
      for (int64_t i = 0; i < H; ++i)
        ss += double(o[i]) * o[i];
      float inv = float(1.0 / std::max(std::sqrt(ss), 1e-12));
      kernels::scale_inplace(o, inv, H);
    }
  }
}

void Encoder::pooler_output(const Batch& b, Workspace& ws, std::vector<float>& out) const {
  out.clear();
  if (!has_pooler_)
    return;
  const int64_t H = cfg_.hidden;
  std::vector<float> cls;
  pool(b, ws, Pooling::Cls, false, cls);
  out.resize(size_t(b.B * H));
  pooler_.forward(cls.data(), b.B, out.data(), H, ws.scratch);
  kernels::tanh_inplace(out.data(), b.B * H);
}

void Encoder::sequence_logits(const Batch& b, Workspace& ws, std::vector<float>& logits) const {
  const int64_t H = cfg_.hidden, L = cfg_.num_labels();
  logits.resize(size_t(b.B * L));
  if (cfg_.arch == Arch::Bert) {
    pooler_output(b, ws, ws.head);
    classifier_.forward(ws.head.data(), b.B, logits.data(), L, ws.scratch);
    return;
  }
  std::vector<float> pooled;
  pool(b, ws, cfg_.classifier_pooling, false, pooled);
  ws.head.resize(size_t(b.B * H));
  head_dense_.forward(pooled.data(), b.B, ws.head.data(), H, ws.scratch);
  kernels::gelu_inplace(ws.head.data(), b.B * H);
  kernels::layer_norm(ws.head.data(), b.B, H, head_norm_w_.data(),
                      head_norm_b_.empty() ? nullptr : head_norm_b_.data(), cfg_.norm_eps);
  classifier_.forward(ws.head.data(), b.B, logits.data(), L, ws.scratch);
}

void Encoder::token_logits(const Batch& b, Workspace& ws, std::vector<float>& logits) const {
  const int64_t H = cfg_.hidden, L = cfg_.num_labels(), T = b.B * b.S;
  logits.resize(size_t(T * L));
  if (cfg_.arch == Arch::Bert) {
    classifier_.forward(ws.x.data(), T, logits.data(), L, ws.scratch);
    return;
  }
  ws.head.resize(size_t(T * H));
  head_dense_.forward(ws.x.data(), T, ws.head.data(), H, ws.scratch);
  kernels::gelu_inplace(ws.head.data(), T * H);
  kernels::layer_norm(ws.head.data(), T, H, head_norm_w_.data(),
                      head_norm_b_.empty() ? nullptr : head_norm_b_.data(), cfg_.norm_eps);
  classifier_.forward(ws.head.data(), T, logits.data(), L, ws.scratch);
}

} // namespace semrouter::nn
