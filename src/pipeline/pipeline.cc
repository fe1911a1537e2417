#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

#include "core/strings.h"
#include "openai/responses.h"

#include "routing/reasoning.h"
#include <cstdio>
#include <ctime>

namespace semrouter::pipeline {
namespace {

std::string build_models_json(const config::Config& c) {
  // Created timestamps are fixed: the list describes configuration, not upstream state.
  std::string out = "{\"object\":\"list\",\"data\":[";
  bool first = true;
  auto add = [&](const std::string& id, const char* owner) {
    if (!first)
      out += ',';
    first = false;
    out += "{\"id\":";
    core::append_json_string(out, id);
    out += ",\"object\":\"model\",\"created\":0,\"owned_by\":";
    core::append_json_string(out, owner);
    out += '}';
  };
  for (const auto& n : c.auto_model_names)
    add(n, "semrouter");
  for (const auto& m : c.models)
    add(m.name, "semrouter-upstream");
  out += "]}";
  return out;
}

std::vector<signals::KeywordSpec> keyword_specs(const config::Config& c) {
  std::vector<signals::KeywordSpec> specs;
  for (const auto& k : c.signals.keywords) {
    signals::KeywordSpec s;
    s.name = k.name;
    s.keywords = k.keywords;
    s.op = k.op == config::KeywordOperator::All ? signals::KeywordOperator::All
                                                : signals::KeywordOperator::Any;
    s.case_sensitive = k.case_sensitive;
    s.word_boundary = k.word_boundary;
    s.regex = k.regex;
    specs.push_back(std::move(s));
  }
  return specs;
}

std::string model_names(const config::Config& c) {
  std::vector<std::string> names = c.auto_model_names;
  for (const auto& m : c.models)
    names.push_back(m.name);
  return core::join(names, ", ");
}

} // namespace

core::StatusOr<std::shared_ptr<const models::Registry>>
load_classifiers(const config::ClassifiersConfig& c) {
  std::vector<models::ModelSpec> specs = models::default_model_specs();
  for (const auto& [task, cc] : c.tasks) {
    models::ModelSpec s{cc.task, cc.type, cc.path, cc.precision};
    auto it =
        std::find_if(specs.begin(), specs.end(), [&](const auto& d) { return d.task == task; });
    if (it != specs.end())
      *it = s;
    else
      specs.push_back(s);
  }
  return models::Registry::load(specs, c.dir.empty() ? models::default_models_dir() : c.dir);
}

namespace {

bool same_classifiers(const config::ClassifiersConfig& a, const config::ClassifiersConfig& b) {
  if (a.dir != b.dir || a.tasks.size() != b.tasks.size())
    return false;
  for (const auto& [task, x] : a.tasks) {
    auto it = b.tasks.find(task);
    if (it == b.tasks.end() || it->second.type != x.type || it->second.path != x.path ||
        it->second.precision != x.precision)
      return false;
  }
  return true;
}

} // namespace

core::StatusOr<std::shared_ptr<const Snapshot>>
build_snapshot(std::shared_ptr<const config::Config> config, uint64_t generation, bool load_models,
               const Snapshot* previous) {
  auto snap = std::make_shared<Snapshot>();
  snap->config = std::move(config);
  snap->generation = generation;
  auto kw = signals::KeywordSignals::create(keyword_specs(*snap->config));
  if (!kw)
    return tl::unexpected(kw.error());
  snap->keywords = std::move(*kw);
  snap->engine = std::make_unique<routing::DecisionEngine>(*snap->config);
  snap->keywords_referenced = snap->engine->references_type("keyword");
  auto& t = snap->classifier_tasks;
  t.domain = snap->engine->references_type("domain");
  t.complexity = snap->engine->references_type("complexity");
  t.jailbreak = snap->engine->references_type("jailbreak");
  t.language = snap->engine->references_type("language");
  t.embedding = false;
  snap->classifiers_referenced = t.domain || t.complexity || t.jailbreak || t.language;
  snap->models_json = build_models_json(*snap->config);
  if (load_models) {
    if (previous && previous->models &&
        same_classifiers(previous->config->classifiers, snap->config->classifiers)) {
      snap->models = previous->models;
    } else {
      auto m = load_classifiers(snap->config->classifiers);
      if (!m)
        return tl::unexpected(m.error());
      snap->models = std::move(*m);
    }
    // Rules may only name domains the domain classifier knows.
    if (snap->models->domain) {
      const auto& labels = snap->models->domain->labels();
      for (const auto& [type, name] : snap->engine->referenced_signals())
        if (type == "domain" && std::find(labels.begin(), labels.end(), name) == labels.end())
          return core::make_error(core::ErrorCode::InvalidArgument,
                                  "decisions: a rule names domain \"" + name +
                                      "\", which the domain classifier does not know (labels: " +
                                      core::join(labels, ", ") + ")");
    }
  }
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

core::Status SnapshotStore::reload_from_file(const std::string& path) {
  auto fail = [&](const core::Error& e) -> core::Status {
    std::lock_guard<std::mutex> lock(mu_);
    last_error_ = e.message;
    reloads_failed_.fetch_add(1);
    return tl::unexpected(e);
  };
  auto config = config::load_config_file(path);
  if (!config)
    return fail(config.error());
  auto current = get();
  uint64_t generation = current->generation + 1;
  auto snap = build_snapshot(*config, generation, current->models != nullptr, current.get());
  if (!snap)
    return fail(snap.error());
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = *snap;
    last_error_.clear();
  }
  reloads_ok_.fetch_add(1);
  return {};
}

std::pair<int, std::string> classify(const Snapshot& snapshot, std::string_view body) {
  auto bad = [](const std::string& msg, const std::string& param) {
    return std::make_pair(400, openai::error_body(openai::invalid_request(msg, param)));
  };
  if (!snapshot.models)
    return {503, openai::error_body(openai::ApiError{503, "service_unavailable", "",
                                                     "no classifiers are loaded", ""})};
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const std::exception& e) {
    return bad(std::string("body is not valid JSON: ") + e.what(), "");
  }
  std::string text;
  if (j.is_object() && j.contains("text") && j["text"].is_string()) {
    text = j["text"].get<std::string>();
  } else if (j.is_object() && j.contains("messages")) {
    // The latest user message, exactly as routing reads it.
    auto view = openai::parse_request(body, openai::RequestKind::ChatCompletions);
    if (!view)
      return bad(view.error().message, "messages");
    text = std::string(view->latest_user_text());
  } else {
    return bad("send {\"text\": \"...\"} or {\"messages\": [...]}", "text");
  }
  auto t0 = std::chrono::steady_clock::now();
  models::Analysis a = models::analyze(*snapshot.models, text);
  double total_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json out = {{"text_bytes", text.size()}, {"latency_us", total_us}};
  nlohmann::json sig = nlohmann::json::object();
  auto cls = [](const models::Classification& c, double us) {
    return nlohmann::json{{"value", c.label}, {"confidence", c.confidence}, {"latency_us", us}};
  };
  if (a.has_domain) {
    auto d = cls(a.domain, a.domain_us);
    nlohmann::json top = nlohmann::json::object();
    const auto& labels = snapshot.models->domain->labels();
    for (size_t i = 0; i < labels.size() && i < a.domain.probabilities.size(); ++i)
      top[labels[i]] = a.domain.probabilities[i];
    d["probabilities"] = top;
    sig["domain"] = d;
  }
  if (a.has_complexity)
    sig["complexity"] = cls(a.complexity, a.complexity_us);
  if (a.has_jailbreak)
    sig["jailbreak"] = cls(a.jailbreak, a.jailbreak_us);
  if (a.has_language)
    sig["language"] = {{"value", a.language.code},
                       {"confidence", a.language.confidence},
                       {"latency_us", a.language_us}};
  if (a.has_embedding)
    sig["embedding"] = {{"dim", a.embedding.size()}, {"latency_us", a.embedding_us}};
  out["signals"] = sig;
  return {200, out.dump()};
}

void set_error(RouteOutcome& out, const openai::ApiError& error) {
  out.action = RouteAction::Reply;
  out.reply_status = error.status;
  out.reply_body = openai::error_body(error);
  out.error_type = error.code.empty() ? error.type : error.code;
}

namespace {

// The classifier signals the rules reference: each (type, name) is true when the classifier's
// answer is that name, with the classifier's confidence.
void add_classifier_signals(const Snapshot& snapshot, std::string_view text,
                            signals::SignalResults& results) {
  auto t0 = std::chrono::steady_clock::now();
  models::Analysis a = models::analyze(*snapshot.models, text, snapshot.classifier_tasks);
  double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& [type, name] : snapshot.engine->referenced_signals()) {
    std::string value;
    double confidence = 0;
    bool have = false;
    // The probability of `name` itself where the classifier gives one per label.
    auto prob_of = [&](const models::Classification& c, const models::TextClassifier& m) {
      const auto& labels = m.labels();
      auto it = std::find(labels.begin(), labels.end(), name);
      size_t k = size_t(it - labels.begin());
      return it != labels.end() && k < c.probabilities.size() ? double(c.probabilities[k]) : 0.0;
    };
    if (type == "domain" && a.has_domain)
      value = a.domain.label, confidence = prob_of(a.domain, *snapshot.models->domain), have = true;
    else if (type == "complexity" && a.has_complexity)
      value = a.complexity.label, confidence = prob_of(a.complexity, *snapshot.models->complexity),
      have = true;
    else if (type == "jailbreak" && a.has_jailbreak)
      value = a.jailbreak.label, confidence = prob_of(a.jailbreak, *snapshot.models->jailbreak),
      have = true;
    else if (type == "language" && a.has_language)
      value = a.language.code,
      confidence = a.language.code == name ? a.language.confidence : 1 - a.language.confidence,
      have = true;
    if (!have)
      continue;
    signals::SignalResult r;
    r.matched = value == name;
    // How sure the classifier is of what the signal says: P(name) when true, 1 - P(name) when
    // false (what a `not` over it reads).
    r.confidence = r.matched ? confidence : 1 - confidence;
    r.latency_us = us;
    r.evidence.push_back(value);
    results.set(type, name, std::move(r));
  }
}

} // namespace

RouteOutcome route(const Snapshot& snapshot, const RequestMeta& meta, std::string_view body,
                   core::Random& random) {
  RouteOutcome out;
  const config::Config& config = *snapshot.config;

  auto view = openai::parse_request(body, meta.kind);
  if (!view) {
    std::string param;
    const std::string& msg = view.error().message;
    if (auto colon = msg.find(':'); colon != std::string::npos && msg.find(' ') > colon)
      param = msg.substr(0, colon);
    set_error(out, openai::invalid_request(msg, param));
    return out;
  }
  out.stream = view->stream;
  if (!view->has_model || view->model.empty()) {
    set_error(out, openai::invalid_request("model: is required (use \"" +
                                               config.auto_model_names.front() +
                                               "\" to let the router choose)",
                                           "model"));
    return out;
  }
  out.requested_model = view->model;

  openai::BodyEditor editor(body, *view);
  const config::ModelConfig* model = nullptr;
  routing::ReasoningPlan reasoning;
  const config::PluginsConfig* plugins = nullptr;

  if (config.is_auto_name(view->model)) {
    signals::SignalResults results;
    signals::SignalInput input{view->latest_user_text()};
    if (snapshot.keywords_referenced)
      snapshot.keywords->evaluate(input, results);
    if (snapshot.classifiers_referenced && snapshot.models)
      add_classifier_signals(snapshot, input.text, results);
    routing::DecisionResult decision = snapshot.engine->decide(results);
    out.decision = decision.name;
    out.confidence = decision.confidence;
    out.matched_signals = std::move(decision.matched);
    if (decision.decision) {
      const config::ModelRefConfig& ref = routing::choose_model(decision.decision->models, random);
      model = config.find_model(ref.model);
      reasoning = routing::plan_reasoning(config, *model, ref.reasoning, ref.effort);
      plugins = &decision.decision->plugins;
    } else {
      model = config.find_model(config.default_model);
      reasoning = routing::plan_reasoning(config, *model, config::ReasoningMode::Unset, "");
    }
  } else {
    model = config.find_model(view->model);
    if (!model) {
      set_error(out, openai::model_not_found(view->model, model_names(config)));
      return out;
    }
    out.decision = "passthrough";
    reasoning.header = "unset";
  }

  if (plugins && plugins->block.enabled) {
    // The guard answers itself; nothing goes upstream.
    out.action = RouteAction::Reply;
    out.blocked = true;
    out.reply_status = 200;
    out.reply_content_type = view->stream ? "text/event-stream" : "application/json";
    char id[40]; // "semrouter-blocked-" + 16 hex digits
    std::snprintf(id, sizeof id, "semrouter-blocked-%016llx",
                  static_cast<unsigned long long>(random.next()));
    out.reply_body =
        openai::content_filter_response(meta.kind, view->model, plugins->block.message,
                                        view->stream, id, static_cast<int64_t>(std::time(nullptr)));
    out.reasoning = "unset";
    out.response_headers.emplace_back("x-semrouter-model", "none");
    out.response_headers.emplace_back("x-semrouter-decision", out.decision);
    out.response_headers.emplace_back("x-semrouter-reasoning", out.reasoning);
    out.response_headers.emplace_back("x-semrouter-blocked", "true");
    return out;
  }
  out.model = model;
  out.reasoning = reasoning.header;
  if (view->model != model->upstream_model)
    editor.set_top_level("model", core::json_string(model->upstream_model));
  if (reasoning.edit) {
    if (reasoning.edit->sub.empty()) {
      editor.set_top_level(reasoning.edit->key, reasoning.edit->raw_json_value);
    } else {
      editor.set_nested(reasoning.edit->key, reasoning.edit->sub, reasoning.edit->raw_json_value);
    }
  }
  if (plugins && plugins->system_prompt.enabled) {
    editor.set_system_prompt(plugins->system_prompt.content,
                             plugins->system_prompt.mode == config::SystemPromptMode::Replace);
  }
  out.body = editor.changed() ? editor.apply() : std::string(body);
  out.action = RouteAction::Forward;
  out.response_headers.emplace_back("x-semrouter-model", model->name);
  out.response_headers.emplace_back("x-semrouter-decision", out.decision);
  out.response_headers.emplace_back("x-semrouter-reasoning", out.reasoning);
  return out;
}

} // namespace semrouter::pipeline
