#include "pipeline/pipeline.h"

#include "core/strings.h"
#include "routing/reasoning.h"

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

core::StatusOr<std::shared_ptr<const Snapshot>>
build_snapshot(std::shared_ptr<const config::Config> config, uint64_t generation) {
  auto snap = std::make_shared<Snapshot>();
  snap->config = std::move(config);
  snap->generation = generation;
  auto kw = signals::KeywordSignals::create(keyword_specs(*snap->config));
  if (!kw)
    return tl::unexpected(kw.error());
  snap->keywords = std::move(*kw);
  snap->engine = std::make_unique<routing::DecisionEngine>(*snap->config);
  snap->keywords_referenced = snap->engine->references_type("keyword");
  snap->models_json = build_models_json(*snap->config);
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
  uint64_t generation = get()->generation + 1;
  auto snap = build_snapshot(*config, generation);
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

void set_error(RouteOutcome& out, const openai::ApiError& error) {
  out.action = RouteAction::Reply;
  out.reply_status = error.status;
  out.reply_body = openai::error_body(error);
  out.error_type = error.code.empty() ? error.type : error.code;
}

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
