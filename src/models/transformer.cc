#include "models/transformer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace semrouter::models {

using core::ErrorCode;
using core::make_error;
using json = nlohmann::json;
namespace fs = std::filesystem;

const char* task_name(Task t) {
  switch (t) {
  case Task::Sequence:
    return "seq";
  case Task::Token:
    return "token";
  case Task::Embed:
    return "embed";
  }
  return "?";
}

core::StatusOr<Task> parse_task(const std::string& s) {
  if (s == "seq")
    return Task::Sequence;
  if (s == "token")
    return Task::Token;
  if (s == "embed")
    return Task::Embed;
  return make_error(ErrorCode::InvalidArgument,
                    fmt::format("unknown task \"{}\" (seq, token, embed)", s));
}

namespace {

core::StatusOr<json> read_json(const fs::path& p) {
  std::ifstream f(p);
  if (!f)
    return make_error(ErrorCode::NotFound, fmt::format("cannot open {}", p.string()));
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    return make_error(ErrorCode::InvalidArgument, fmt::format("{}: {}", p.string(), e.what()));
  }
}

} // namespace

core::StatusOr<std::shared_ptr<TransformerModel>>
TransformerModel::load(const std::string& dir, const TransformerOptions& opts) {
  fs::path d(dir);
  if (!fs::is_directory(d))
    return make_error(ErrorCode::NotFound, fmt::format("{}: not a directory", dir));
  std::shared_ptr<TransformerModel> m(new TransformerModel());
  auto cj = read_json(d / "config.json");
  if (!cj)
    return tl::unexpected(cj.error());
  auto cfg = nn::EncoderConfig::from_json(*cj);
  if (!cfg)
    return make_error(cfg.error().code, fmt::format("{}/{}", dir, cfg.error().message));
  m->cfg_ = std::move(*cfg);
  if (!fs::exists(d / "tokenizer.json"))
    return make_error(
        ErrorCode::NotFound,
        fmt::format("{}: no tokenizer.json (only the tokenizers-library format is supported; "
                    "save the tokenizer with a fast tokenizer to produce it)",
                    dir));
  auto tok = text::Tokenizer::from_file((d / "tokenizer.json").string());
  if (!tok)
    return tl::unexpected(tok.error());
  m->tokenizer_ = *tok;
  if (!fs::exists(d / "model.safetensors"))
    return make_error(
        ErrorCode::NotFound,
        fmt::format("{}: no model.safetensors (PyTorch .bin checkpoints are not supported)", dir));
  auto st = nn::SafeTensors::open((d / "model.safetensors").string());
  if (!st)
    return tl::unexpected(st.error());
  auto enc = nn::Encoder::load(m->cfg_, *st, opts.encoder);
  if (!enc)
    return tl::unexpected(enc.error());
  m->encoder_ = std::move(*enc);

  size_t max_len = size_t(m->cfg_.max_positions);
  if (m->tokenizer_->model_max_length())
    max_len = std::min(max_len, m->tokenizer_->model_max_length());
  // sentence-transformers folders: max_seq_length, pooling and normalisation.
  m->embed_pooling_ =
      m->cfg_.arch == nn::Arch::ModernBert ? m->cfg_.classifier_pooling : nn::Pooling::Mean;
  m->embed_normalize_ = true;
  if (fs::exists(d / "sentence_bert_config.json")) {
    auto sb = read_json(d / "sentence_bert_config.json");
    if (!sb)
      return tl::unexpected(sb.error());
    if (sb->contains("max_seq_length") && (*sb)["max_seq_length"].is_number())
      max_len = std::min(max_len, (*sb)["max_seq_length"].get<size_t>());
  }
  if (fs::exists(d / "modules.json")) {
    auto mods = read_json(d / "modules.json");
    if (!mods)
      return tl::unexpected(mods.error());
    m->embed_normalize_ = false;
    for (const auto& mod : *mods) {
      std::string type = mod.value("type", "");
      if (type.find("Normalize") != std::string::npos) {
        m->embed_normalize_ = true;
      } else if (type.find("Pooling") != std::string::npos) {
        auto pc = read_json(d / mod.value("path", "1_Pooling") / "config.json");
        if (!pc)
          return tl::unexpected(pc.error());
        if (pc->value("pooling_mode_cls_token", false))
          m->embed_pooling_ = nn::Pooling::Cls;
        else if (pc->value("pooling_mode_mean_tokens", false))
          m->embed_pooling_ = nn::Pooling::Mean;
        else
          return make_error(
              ErrorCode::InvalidArgument,
              fmt::format("{}: pooling mode is not supported (cls_token or mean_tokens)",
                          (d / mod.value("path", "1_Pooling") / "config.json").string()));
      } else if (type.find("Transformer") == std::string::npos) {
        return make_error(
            ErrorCode::InvalidArgument,
            fmt::format(
                "{}/modules.json: module type \"{}\" is not supported (Transformer, Pooling, "
                "Normalize)",
                dir, type));
      }
    }
  }
  if (opts.max_length)
    max_len = std::min(max_len, opts.max_length);
  m->max_length_ = max_len;
  return m;
}

Task TransformerModel::default_task() const {
  switch (cfg_.head) {
  case nn::HeadKind::SequenceClassification:
    return Task::Sequence;
  case nn::HeadKind::TokenClassification:
    return Task::Token;
  case nn::HeadKind::None:
    return Task::Embed;
  }
  return Task::Embed;
}

bool TransformerModel::supports(Task t) const {
  if (t == Task::Embed)
    return true;
  return t == default_task();
}

core::StatusOr<TransformerModel::Run> TransformerModel::run(std::span<const std::string_view> texts,
                                                            Task task, bool debug_hidden) const {
  if (!supports(task))
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("this {} model cannot do task \"{}\" (it can do: {}{})",
                                  cfg_.architecture, task_name(task), task_name(default_task()),
                                  default_task() == Task::Embed ? "" : ", embed"));
  Run r;
  if (texts.empty())
    return r;
  text::EncodeOptions eo;
  eo.max_length = max_length_;
  r.encodings.reserve(texts.size());
  for (auto t : texts)
    r.encodings.push_back(tokenizer_->encode(t, eo));
  tokenizer_->pad_batch(r.encodings);
  nn::Batch& b = r.batch;
  b.B = int64_t(texts.size());
  b.S = int64_t(r.encodings[0].size());
  b.ids.reserve(size_t(b.B * b.S));
  for (const auto& e : r.encodings) {
    b.ids.insert(b.ids.end(), e.ids.begin(), e.ids.end());
    b.type_ids.insert(b.type_ids.end(), e.type_ids.begin(), e.type_ids.end());
    b.mask.insert(b.mask.end(), e.attention_mask.begin(), e.attention_mask.end());
  }
  thread_local nn::Workspace ws;
  encoder_->forward(b, ws, debug_hidden ? &r.all_hidden : nullptr);
  switch (task) {
  case Task::Sequence:
    encoder_->sequence_logits(b, ws, r.logits);
    break;
  case Task::Token:
    encoder_->token_logits(b, ws, r.logits);
    break;
  case Task::Embed:
    encoder_->pool(b, ws, embed_pooling_, embed_normalize_, r.pooled);
    break;
  }
  r.hidden.assign(ws.x.begin(), ws.x.begin() + b.B * b.S * cfg_.hidden);
  return r;
}

core::StatusOr<std::vector<Classification>>
TransformerModel::classify(std::span<const std::string_view> texts) const {
  auto r = run(texts, Task::Sequence);
  if (!r)
    return tl::unexpected(r.error());
  const size_t L = size_t(cfg_.num_labels());
  std::vector<Classification> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    auto& c = out[i];
    const float* lg = r->logits.data() + i * L;
    c.logits.assign(lg, lg + L);
    c.probabilities = softmax(lg, L);
    c.label_id = int32_t(std::max_element(c.probabilities.begin(), c.probabilities.end()) -
                         c.probabilities.begin());
    c.confidence = c.probabilities[size_t(c.label_id)];
    c.label = cfg_.labels[size_t(c.label_id)];
  }
  return out;
}

std::vector<Entity> TransformerModel::entities_of(const Run& r, size_t i) const {
  const size_t L = size_t(cfg_.num_labels()), S = size_t(r.batch.S);
  const auto& e = r.encodings[i];
  std::vector<std::string> tags(S);
  std::vector<float> scores(S);
  std::vector<std::pair<uint32_t, uint32_t>> offsets(e.offsets);
  for (size_t s = 0; s < S; ++s) {
    auto p = softmax(r.logits.data() + (i * S + s) * L, L);
    size_t k = size_t(std::max_element(p.begin(), p.end()) - p.begin());
    tags[s] = cfg_.labels[k];
    scores[s] = p[k];
    if (e.attention_mask[s] == 0 || e.sequence_ids[s] < 0)
      offsets[s] = {0, 0}; // padding and special tokens belong to no entity
  }
  return merge_bio(tags, scores, offsets);
}

core::StatusOr<std::vector<std::vector<Entity>>>
TransformerModel::entities(std::span<const std::string_view> texts) const {
  auto r = run(texts, Task::Token);
  if (!r)
    return tl::unexpected(r.error());
  std::vector<std::vector<Entity>> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    out[i] = entities_of(*r, i);
  return out;
}

core::StatusOr<std::vector<std::vector<float>>>
TransformerModel::embed(std::span<const std::string_view> texts) const {
  auto r = run(texts, Task::Embed);
  if (!r)
    return tl::unexpected(r.error());
  const size_t H = size_t(cfg_.hidden);
  std::vector<std::vector<float>> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    out[i].assign(r->pooled.begin() + long(i * H), r->pooled.begin() + long((i + 1) * H));
  return out;
}

} // namespace semrouter::models
