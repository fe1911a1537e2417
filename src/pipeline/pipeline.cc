#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
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

// Every decision of a config, the default decision's mapping included.
std::vector<const config::DecisionConfig*> all_decisions(const config::Config& c) {
  std::vector<const config::DecisionConfig*> out;
  for (const auto& d : c.decisions)
    out.push_back(&d);
  if (c.default_decision)
    out.push_back(&*c.default_decision);
  return out;
}

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
  const routing::DecisionEngine& e = *snap->engine;
  auto& r = snap->referenced;
  r.keyword = e.references_type("keyword");
  r.embedding = e.references_type("embedding");
  r.pii = e.references_type("pii");
  r.context_length = e.references_type("context_length");
  r.metadata = e.references_type("metadata");
  r.classifiers.domain = e.references_type("domain");
  r.classifiers.complexity = e.references_type("complexity");
  r.classifiers.reasoning = e.references_type("reasoning");
  r.classifiers.jailbreak = e.references_type("jailbreak");
  r.classifiers.language = e.references_type("language");
  const config::SignalsConfig& sc = snap->config->signals;
  auto& all = snap->all_signals;
  all.keyword = !sc.keywords.empty();
  all.embedding = !sc.embeddings.empty();
  all.pii = true; // the classify API always lists the PII it finds
  all.context_length = !sc.context_length.empty();
  all.metadata = !sc.metadata.empty();
  all.classifiers = models::AnalyzeTasks{};
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
    if (snap->referenced.classifiers.reasoning && !snap->models->reasoning)
      return core::make_error(core::ErrorCode::InvalidArgument,
                              "decisions: a rule or a `reasoning: auto` model reads the reasoning "
                              "classifier, but classifiers.reasoning loaded no model");
    // Rules may only name domains the domain classifier knows ("other" is always allowed: the
    // answer below signals.domain.threshold).
    if (snap->models->domain) {
      const auto& labels = snap->models->domain->labels();
      for (const auto& [type, name] : snap->engine->referenced_signals())
        if (type == "domain" && name != "other" &&
            std::find(labels.begin(), labels.end(), name) == labels.end())
          return core::make_error(core::ErrorCode::InvalidArgument,
                                  "decisions: a rule names domain \"" + name +
                                      "\", which the domain classifier does not know (labels: " +
                                      core::join(labels, ", ") + ")");
    }
    // Cost-quality routers: reused from the previous snapshot when the path is the same.
    for (const auto& [name, path] : snap->config->routers) {
      if (previous && previous->config->routers.count(name) &&
          previous->config->routers.at(name) == path && previous->routers.count(name) &&
          previous->config->classifiers.dir == snap->config->classifiers.dir) {
        snap->routers[name] = previous->routers.at(name);
        continue;
      }
      std::filesystem::path p(path);
      std::string dir = p.is_absolute()
                            ? path
                            : (std::filesystem::path(snap->config->classifiers.dir.empty()
                                                         ? models::default_models_dir()
                                                         : snap->config->classifiers.dir) /
                               p)
                                  .string();
      auto r = models::QualityRouter::load(dir);
      if (!r)
        return core::make_error(r.error().code, "routers." + name + ": " + r.error().message);
      snap->routers[name] = *r;
    }
    // Every candidate of a selection must be a model its router predicts.
    for (const auto* d : all_decisions(*snap->config)) {
      if (!d->selection.enabled)
        continue;
      const auto& router = snap->routers.at(d->selection.router);
      for (const auto& ref : d->models) {
        const config::ModelConfig* m = snap->config->find_model(ref.model);
        if (router->model_index(m->router_name) < 0)
          return core::make_error(core::ErrorCode::InvalidArgument,
                                  "decisions (" + d->name + ").selection: router \"" +
                                      d->selection.router + "\" has no predictions for model \"" +
                                      m->name + "\" (router_name \"" + m->router_name +
                                      "\"; it knows: " + core::join(router->models(), ", ") + ")");
      }
    }
    // Embedding signals compare against their phrases' embeddings, computed once here.
    if (!sc.embeddings.empty()) {
      if (!snap->models->embeddings)
        return core::make_error(core::ErrorCode::InvalidArgument,
                                "signals.embeddings: no embeddings model is loaded "
                                "(classifiers.embeddings)");
      for (const auto& es : sc.embeddings) {
        std::vector<std::string_view> texts(es.phrases.begin(), es.phrases.end());
        auto v = snap->models->embeddings->embed(texts);
        if (!v)
          return core::make_error(v.error().code,
                                  "signals.embeddings (" + es.name +
                                      "): embedding the phrases failed: " + v.error().message);
        snap->embedding_phrases.emplace_back(*v);
      }
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
    install(*snap);
    last_error_.clear();
  }
  reloads_ok_.fetch_add(1);
  return {};
}

namespace {

// The facts signals read from a parsed request.
RequestFacts request_facts(const Snapshot& snapshot, const openai::RequestView& view,
                           const RequestMeta& meta, std::string& storage,
                           std::string* pii_storage = nullptr) {
  RequestFacts f;
  f.text = signal_text(view, snapshot.config->routing.history, storage);
  if (pii_storage) {
    // Every message: PII in an earlier turn goes upstream too. One text (a prompt, or a single
    // message) is read where it is: a long prompt is not copied.
    const std::string* only =
        view.kind == openai::RequestKind::Completions ? &view.prompt : nullptr;
    size_t texts = only ? 1 : 0;
    for (const auto& m : view.messages)
      if (!m.text.empty())
        only = &m.text, ++texts;
    pii_storage->clear();
    if (texts > 1) {
      for (const auto& m : view.messages) {
        if (m.text.empty())
          continue;
        if (!pii_storage->empty())
          *pii_storage += "\n\n";
        *pii_storage += m.text;
      }
    }
    f.pii_text = texts == 1 ? std::string_view(*only) : std::string_view(*pii_storage);
  }
  f.tokens = estimate_request_tokens(view);
  f.user = view.user;
  f.has_tools = view.has_tools;
  f.stream = view.stream;
  f.headers = meta.headers;
  return f;
}

nlohmann::json signal_results_json(const signals::SignalResults& results) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, r] : results.all())
    out[key] = {{"matched", r.matched},
                {"confidence", r.confidence},
                {"latency_us", r.latency_us},
                {"evidence", r.evidence}};
  return out;
}

} // namespace

std::pair<int, std::string> classify(const Snapshot& snapshot, std::string_view body,
                                     const RequestMeta& meta) {
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
  RequestFacts facts;
  std::string storage;
  std::optional<openai::RequestView> view;
  std::string pii_storage;
  if (j.is_object() && j.contains("text") && j["text"].is_string()) {
    text = j["text"].get<std::string>();
    facts.text = text;
    facts.tokens = estimate_tokens(text);
    facts.headers = meta.headers;
  } else if (j.is_object() && j.contains("messages")) {
    // Read exactly as routing reads it (routing.history).
    auto v = openai::parse_request(body, openai::RequestKind::ChatCompletions);
    if (!v)
      return bad(v.error().message, "messages");
    view = std::move(*v);
    facts = request_facts(snapshot, *view, meta, storage, &pii_storage);
    text = std::string(facts.text);
    facts.text = text;
  } else {
    return bad("send {\"text\": \"...\"} or {\"messages\": [...]}", "text");
  }
  SignalSelection which = snapshot.all_signals;
  which.classifiers = snapshot.referenced.classifiers;
  which.classifiers.domain = which.classifiers.complexity = which.classifiers.reasoning =
      which.classifiers.jailbreak = which.classifiers.language = which.classifiers.embedding = true;
  which.embedding = true;
  signals::SignalResults results;
  SignalDetails d;
  compute_signals(snapshot, facts, which, meta.pool, results, &d);
  const models::Analysis& a = d.analysis;
  nlohmann::json out = {
      {"text_bytes", text.size()}, {"tokens_estimate", facts.tokens}, {"latency_us", d.total_us}};
  nlohmann::json sig = nlohmann::json::object();
  auto cls = [](const models::Classification& c, double us) {
    return nlohmann::json{{"value", c.label}, {"confidence", c.confidence}, {"latency_us", us}};
  };
  if (a.has_domain) {
    auto dj = cls(a.domain, a.domain_us);
    if (a.domain.confidence < snapshot.config->signals.domain_threshold)
      dj["value"] = "other";
    nlohmann::json top = nlohmann::json::object();
    const auto& labels = snapshot.models->domain->labels();
    for (size_t i = 0; i < labels.size() && i < a.domain.probabilities.size(); ++i)
      top[labels[i]] = a.domain.probabilities[i];
    dj["probabilities"] = top;
    sig["domain"] = dj;
  }
  if (a.has_complexity)
    sig["complexity"] = cls(a.complexity, a.complexity_us);
  if (a.has_reasoning) {
    auto rj = cls(a.reasoning, a.reasoning_us);
    const auto& labels = snapshot.models->reasoning->labels();
    const auto it = std::find(labels.begin(), labels.end(), "reason");
    const size_t k = size_t(it - labels.begin());
    const double p = it != labels.end() && k < a.reasoning.probabilities.size()
                         ? double(a.reasoning.probabilities[k])
                         : 0.0;
    rj["p_reason"] = p;
    rj["effort"] = routing::effort_for_need(snapshot.config->signals.reasoning, p);
    sig["reasoning"] = rj;
  }
  if (a.has_jailbreak)
    sig["jailbreak"] = cls(a.jailbreak, a.jailbreak_us);
  if (a.has_language)
    sig["language"] = {{"value", a.language.code},
                       {"confidence", a.language.confidence},
                       {"latency_us", a.language_us}};
  if (a.has_embedding)
    sig["embedding"] = {{"dim", a.embedding.size()}, {"latency_us", a.embedding_us}};
  nlohmann::json pii = nlohmann::json::array();
  // Spans index the text the PII signals scanned (every message of a messages array).
  const std::string_view scanned = facts.pii_text.empty() ? std::string_view(text) : facts.pii_text;
  for (const auto& e : d.pii)
    pii.push_back({{"type", e.type},
                   {"begin", e.begin},
                   {"end", e.end},
                   {"text", scanned.substr(e.begin, e.end - e.begin)},
                   {"score", e.score},
                   {"source", e.source}});
  sig["pii"] = {{"entities", pii}};
  out["signals"] = sig;
  // Every configured signal as rules read it: "type:name" -> matched, confidence, evidence.
  out["rules"] = signal_results_json(results);
  return {200, out.dump()};
}

namespace {

// A reasoning plan's body edits (sub-keys of one object, chat_template_kwargs, go in as one).
void apply_reasoning(openai::BodyEditor& editor, const routing::ReasoningPlan& reasoning) {
  std::vector<std::pair<std::string, std::string>> nested;
  std::string nested_key;
  for (const auto& e : reasoning.edits) {
    if (e.sub.empty()) {
      editor.set_top_level(e.key, e.raw_json_value);
    } else {
      nested_key = e.key;
      nested.emplace_back(e.sub, e.raw_json_value);
    }
  }
  if (!nested.empty())
    editor.set_nested(nested_key, nested);
}

} // namespace

std::string retarget(const config::Config& config, const RouteOutcome& out,
                     const config::ModelConfig& to) {
  auto view = openai::parse_request(out.body, out.kind);
  if (!view)
    return out.body; // routing produced it: cannot happen; sent as it is
  openai::BodyEditor editor(out.body, *view);
  if (view->model != to.upstream_model)
    editor.set_top_level("model", core::json_string(to.upstream_model));
  if (out.decision == "passthrough" || out.reasoning_mode == config::ReasoningMode::Unset)
    return editor.changed() ? editor.apply() : out.body;
  routing::ReasoningPlan plan = routing::plan_reasoning(config, to, out.reasoning_mode,
                                                        out.reasoning_effort, out.reasoning_budget);
  // Every body key either plan touches, redone: top-level fields of the first plan that the new
  // one does not set are removed; an object both touch (chat_template_kwargs) keeps the client's
  // own sub-keys, loses the first plan's and gets the new plan's.
  std::vector<std::string> keys;
  auto note = [&](const std::string& k) {
    if (k != "model" && std::find(keys.begin(), keys.end(), k) == keys.end())
      keys.push_back(k);
  };
  for (const auto& [k, sub] : out.reasoning_fields)
    note(k);
  for (const auto& e : plan.edits)
    note(e.key);
  nlohmann::json body = nlohmann::json::parse(out.body, nullptr, false);
  for (const std::string& key : keys) {
    bool object = false;
    for (const auto& [k, sub] : out.reasoning_fields)
      object = object || (k == key && !sub.empty());
    for (const auto& e : plan.edits)
      object = object || (e.key == key && !e.sub.empty());
    const routing::BodyFieldEdit* top = nullptr;
    for (const auto& e : plan.edits)
      if (e.key == key && e.sub.empty())
        top = &e;
    if (!object) {
      if (top)
        editor.set_top_level(key, top->raw_json_value);
      else
        editor.remove_top_level(key);
      continue;
    }
    nlohmann::json obj = body.is_object() && body.contains(key) && body[key].is_object()
                             ? body[key]
                             : nlohmann::json::object();
    for (const auto& [k, sub] : out.reasoning_fields)
      if (k == key && !sub.empty())
        obj.erase(sub);
    for (const auto& e : plan.edits)
      if (e.key == key && !e.sub.empty())
        obj[e.sub] = nlohmann::json::parse(e.raw_json_value, nullptr, false);
    if (obj.empty())
      editor.remove_top_level(key);
    else
      editor.set_top_level(key, obj.dump());
  }
  return editor.changed() ? editor.apply() : out.body;
}

void set_error(RouteOutcome& out, const openai::ApiError& error) {
  out.action = RouteAction::Reply;
  out.reply_status = error.status;
  out.reply_body = openai::error_body(error);
  out.error_type = error.code.empty() ? error.type : error.code;
}

namespace {

// Answers the request with an OpenAI-shaped content_filter response (streamed when asked).
void reply_filtered(RouteOutcome& out, const RequestMeta& meta, const openai::RequestView& view,
                    std::string_view message, core::Random& random) {
  out.action = RouteAction::Reply;
  out.blocked = true;
  out.model = nullptr;
  out.reply_status = 200;
  out.reply_content_type = view.stream ? "text/event-stream" : "application/json";
  char id[40]; // "semrouter-blocked-" + 16 hex digits
  std::snprintf(id, sizeof id, "semrouter-blocked-%016llx",
                static_cast<unsigned long long>(random.next()));
  out.reply_body = openai::content_filter_response(meta.kind, view.model, message, view.stream, id,
                                                   static_cast<int64_t>(std::time(nullptr)));
  out.reasoning = "unset";
  out.response_headers.emplace_back("x-semrouter-model", "none");
  out.response_headers.emplace_back("x-semrouter-decision", out.decision);
  out.response_headers.emplace_back("x-semrouter-reasoning", out.reasoning);
  out.response_headers.emplace_back("x-semrouter-blocked", "true");
}

// The PII the policy covers in every message (all of them go upstream), per message.
struct PiiFinding {
  std::vector<std::vector<signals::PiiEntity>> per_message; // index = message (or 0: prompt)
  std::vector<std::string> types;                           // distinct types found
};

// Whether the policy covers an entity: its type is one the policy names (any when it names
// none) and it scores at least min_score.
bool policy_covers(const config::PiiPluginConfig& policy, const signals::PiiEntity& e) {
  return e.score >= policy.min_score &&
         (policy.types.empty() ||
          std::find(policy.types.begin(), policy.types.end(), e.type) != policy.types.end());
}

// `known`: what the PII signals found in one of these texts, read instead of scanning it again.
PiiFinding find_request_pii(const Snapshot& snapshot, const openai::RequestView& view,
                            const config::PiiPluginConfig& policy, const KnownPii& known) {
  PiiFinding f;
  auto keep = [&](std::vector<signals::PiiEntity> all) {
    std::vector<signals::PiiEntity> kept;
    for (auto& e : all) {
      if (!policy_covers(policy, e))
        continue;
      if (std::find(f.types.begin(), f.types.end(), e.type) == f.types.end())
        f.types.push_back(e.type);
      kept.push_back(std::move(e));
    }
    return kept;
  };
  auto detect = [&](const std::string& text) {
    // The same text, not an equal one: the signals scanned this very string.
    if (known.text.data() == text.data() && known.text.size() == text.size())
      return known.entities;
    return detect_pii(snapshot.models.get(), text);
  };
  if (view.kind == openai::RequestKind::Completions) {
    f.per_message.push_back(keep(detect(view.prompt)));
  } else {
    for (const auto& m : view.messages)
      f.per_message.push_back(keep(detect(m.text)));
  }
  return f;
}

bool model_allows(const config::ModelConfig& m, const std::vector<std::string>& types) {
  for (const auto& t : types)
    if (!m.allows_pii(t))
      return false;
  return true;
}

// Redacts the types `model` may not see in every message's text (string content, or each text
// part of array content). Returns the new body.
std::string redact_body(const Snapshot& snapshot, std::string_view body,
                        const openai::RequestView& view, const config::PiiPluginConfig& policy,
                        const config::ModelConfig& model, const PiiFinding& found) {
  // `covered`: entities already filtered by the policy; keeps those the model may not see.
  auto redact = [&](std::string_view text, const std::vector<signals::PiiEntity>& covered) {
    std::vector<signals::PiiEntity> hide;
    for (const auto& e : covered)
      if (!model.allows_pii(e.type))
        hide.push_back(e);
    return hide.empty() ? std::string(text) : signals::redact_pii(text, hide);
  };
  // A text part of array content was not scanned on its own: scan it now.
  auto redact_part = [&](std::string_view text) {
    std::vector<signals::PiiEntity> covered;
    for (auto& e : detect_pii(snapshot.models.get(), text))
      if (policy_covers(policy, e))
        covered.push_back(std::move(e));
    return redact(text, covered);
  };
  openai::BodyEditor editor(body, view);
  if (view.kind == openai::RequestKind::Completions) {
    editor.set_top_level("prompt", core::json_string(redact(view.prompt, found.per_message[0])));
    return editor.apply();
  }
  for (size_t i = 0; i < view.messages.size(); ++i) {
    const auto& m = view.messages[i];
    if (!m.has_content)
      continue;
    if (m.content_is_string) {
      // String content is exactly the text find_request_pii scanned.
      std::string r = redact(m.text, found.per_message[i]);
      if (r != m.text)
        editor.set_message_content(i, core::json_string(r));
      continue;
    }
    // Array content: redact each text part, keep the other parts as they are.
    auto inner = openai::scan_top_level(body.substr(m.span.begin, m.span.end - m.span.begin));
    if (!inner)
      continue;
    for (const auto& fld : *inner) {
      if (fld.key != "content")
        continue;
      auto parts = nlohmann::ordered_json::parse(
          body.substr(m.span.begin + fld.value.begin, fld.value.end - fld.value.begin), nullptr,
          false);
      if (!parts.is_array())
        continue;
      bool changed = false;
      for (auto& part : parts) {
        if (part.is_object() && part.contains("text") && part["text"].is_string()) {
          std::string t = part["text"].get<std::string>();
          std::string r = redact_part(t);
          if (r != t)
            part["text"] = r, changed = true;
        }
      }
      if (changed)
        editor.set_message_content(i, parts.dump());
    }
  }
  return editor.changed() ? editor.apply() : std::string(body);
}

// Applies the params plugin: set, cap, remove top-level keys.
void apply_params(openai::BodyEditor& editor, const openai::RequestView& view,
                  std::string_view body, const config::ParamsPluginConfig& p) {
  for (const auto& [k, v] : p.set)
    editor.set_top_level(k, v);
  for (const auto& [k, cap] : p.max) {
    const openai::TopLevelField* field = nullptr;
    for (const auto& f : view.fields)
      if (f.key == k)
        field = &f;
    if (!field) {
      if (std::find(p.fill_max.begin(), p.fill_max.end(), k) != p.fill_max.end())
        editor.set_top_level(k, core::json_number(cap));
      continue;
    }
    std::string raw(body.substr(field->value.begin, field->value.end - field->value.begin));
    char* end = nullptr;
    double v = std::strtod(raw.c_str(), &end);
    if (end == raw.c_str() || *end != '\0')
      continue; // not a number: the upstream will say so
    if (v > cap)
      editor.set_top_level(k, core::json_number(cap));
  }
  for (const auto& k : p.remove)
    editor.remove_top_level(k);
}

// The x-semrouter-signals value: every signal that is true, with its confidence and evidence,
// e.g. "keyword:math(1.00; derivative), domain:economics(0.57; economics)".
std::string debug_signals(const signals::SignalResults& results) {
  std::string out;
  for (const auto& [key, r] : results.all()) {
    if (!r.matched)
      continue;
    if (!out.empty())
      out += ", ";
    out += key;
    out += '(';
    core::append_fixed(out, r.confidence, 2);
    if (!r.evidence.empty()) {
      out += "; ";
      out += core::join(r.evidence, " ");
    }
    out += ')';
  }
  for (char& c : out)
    if (c == '\r' || c == '\n')
      c = ' '; // evidence quotes the request; a header value must stay one line
  return out.empty() ? "none" : out;
}

// The latest user text for the dashboard: PII replaced by the recognisers' [TYPE] markers, then
// cut to `max` bytes (UTF-8 safe). A little more than `max` is scanned, so a number the cut would
// split is still found.
std::string dashboard_prompt(const Snapshot& snapshot, const openai::RequestView& view,
                             uint32_t max) {
  std::string storage;
  const std::string_view text =
      core::utf8_prefix(signal_text(view, snapshot.config->routing.history, storage), max + 64);
  std::string redacted = signals::redact_pii(text, detect_pii(snapshot.models.get(), text));
  return std::string(core::utf8_prefix(redacted, max));
}

} // namespace

// Cost-quality selection: the router predicts each candidate's chance of a good answer for
// `text`, and the decision's selection picks a model from that, its prices and the load.
// Returns the chosen candidate (nullptr: leave the weighted choice).
const config::ModelRefConfig* select_by_quality(const Snapshot& snapshot,
                                                const config::DecisionConfig& d,
                                                std::string_view text, const RequestMeta& meta,
                                                SelectionReport& report) {
  const config::SelectionConfig& sel = d.selection;
  auto it = snapshot.routers.find(sel.router);
  if (it == snapshot.routers.end())
    return nullptr; // routers not loaded (a snapshot built without models)
  const models::QualityRouter& router = *it->second;
  const config::Config& config = *snapshot.config;
  thread_local std::vector<float> p;
  router.predict(text, p);
  auto predicted = [&](const config::ModelRefConfig& ref) {
    const config::ModelConfig* m = config.find_model(ref.model);
    int i = router.model_index(m->router_name);
    return i < 0 ? 0.0 : double(p[size_t(i)]);
  };
  auto ref_of = [&](const std::string& name) -> const config::ModelRefConfig* {
    for (const auto& r : d.models)
      if (r.model == name)
        return &r;
    return nullptr;
  };
  // The model whose load matters: the strong one, or the dearest candidate.
  std::string watched = sel.strong;
  if (sel.mode != config::SelectionMode::Threshold) {
    double dearest = -1;
    for (const auto& r : d.models)
      if (double c = config.find_model(r.model)->cost(); c > dearest)
        dearest = c, watched = r.model;
  }
  CostQualityRuntime* rt = meta.cost_quality;
  report.active = true;
  report.pressure = rt && rt->selection.pressure(d.name, sel, rt->load, watched);
  const double shift = report.pressure ? sel.load.shift : 0.0;

  if (sel.mode == config::SelectionMode::Threshold) {
    const config::ModelRefConfig* strong = ref_of(sel.strong);
    const config::ModelRefConfig* weak = ref_of(sel.weak);
    report.score = predicted(*strong) - predicted(*weak);
    double threshold = rt ? rt->selection.threshold(d.name, sel, report.score) : sel.threshold;
    report.threshold = threshold + shift;
    const bool go_strong = report.score >= report.threshold;
    report.choice = go_strong ? "strong" : "weak";
    if (rt)
      report.strong_share = rt->selection.record_choice(d.name, sel, go_strong);
    return go_strong ? strong : weak;
  }
  double max_cost = 0;
  for (const auto& r : d.models)
    max_cost = std::max(max_cost, config.find_model(r.model)->cost());
  const config::ModelRefConfig* best = nullptr;
  if (sel.mode == config::SelectionMode::Cheapest) {
    // The cheapest candidate predicted to succeed often enough; else the most likely one.
    report.threshold = sel.target_quality - shift;
    double best_cost = 1e300, best_p = -1;
    const config::ModelRefConfig* likeliest = nullptr;
    for (const auto& r : d.models) {
      if (r.weight == 0)
        continue; // a reroute target only (docs: never picked)
      double q = predicted(r), c = config.find_model(r.model)->cost();
      if (q >= report.threshold && c < best_cost)
        best_cost = c, best = &r;
      if (q > best_p)
        best_p = q, likeliest = &r;
    }
    if (!best)
      best = likeliest;
  } else {
    report.threshold = sel.lambda + shift; // λ
    double best_u = -1e300;
    for (const auto& r : d.models) {
      if (r.weight == 0)
        continue;
      double c = max_cost > 0 ? config.find_model(r.model)->cost() / max_cost : 0.0;
      double u = predicted(r) - report.threshold * c;
      if (u > best_u)
        best_u = u, best = &r;
    }
  }
  report.score = predicted(*best);
  report.choice = best->model;
  return best;
}

RouteOutcome route(const Snapshot& snapshot, const RequestMeta& meta, std::string_view body,
                   core::Random& random) {
  const auto t0 = std::chrono::steady_clock::now();
  RouteOutcome out;
  const config::Config& config = *snapshot.config;
  // Every exit is `finish(); return out;`, so the outcome is built in place (returning the
  // lambda's reference copied it: about 2% of a proxied request's instructions).
  auto finish = [&] {
    out.route_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  };

  auto parsed = openai::parse_request(body, meta.kind);
  if (!parsed) {
    std::string param;
    const std::string& msg = parsed.error().message;
    if (auto colon = msg.find(':'); colon != std::string::npos && msg.find(' ') > colon)
      param = msg.substr(0, colon);
    set_error(out, openai::invalid_request(msg, param));
    finish();
    return out;
  }
  const openai::RequestView* view = &*parsed;
  out.stream = view->stream;
  if (meta.prompt_chars > 0)
    out.prompt = dashboard_prompt(snapshot, *view, meta.prompt_chars);
  if (!view->has_model || view->model.empty()) {
    set_error(out, openai::invalid_request("model: is required (use \"" +
                                               config.auto_model_names.front() +
                                               "\" to let the router choose)",
                                           "model"));
    finish();
    return out;
  }
  out.requested_model = view->model;

  const config::ModelConfig* model = nullptr;
  const config::ModelRefConfig* ref = nullptr; // the decision's entry for `model`, if any
  const config::DecisionConfig* decision = nullptr;
  std::string debug;
  std::string pending_session; // a new or moved session, saved when the request is forwarded
  int pending_priority = 0;
  double p_reason = -1;              // the reasoning classifier's P(reason), when computed
  uint32_t reasoning_max_tokens = 0; // signals.reasoning.max_tokens for the effort, when on

  TextEmbedding signal_embedding; // what the embedding signals computed, for the cache
  KnownPii signal_pii;            // what the PII signals found, for the PII policy
  if (config.is_auto_name(view->model)) {
    // One per thread, cleared for each request: its entries' storage is reused (route() runs to
    // its end on the thread that called it; nothing keeps a reference past it).
    thread_local signals::SignalResults thread_results;
    signals::SignalResults& results = thread_results;
    results.clear();
    std::string storage;
    std::string pii_storage;
    RequestFacts facts = request_facts(snapshot, *view, meta, storage,
                                       snapshot.referenced.pii ? &pii_storage : nullptr);
    if (meta.cache) // only the cache reads it
      facts.embedding_out = &signal_embedding;
    facts.pii_out = &signal_pii;
    if (snapshot.referenced.any())
      compute_signals(snapshot, facts, snapshot.referenced, meta.pool, results);
    if (const auto* r = results.get("reasoning", "reason"))
      p_reason = r->score;
    routing::DecisionResult d = snapshot.engine->decide(results);
    if (config.routing.debug_headers)
      debug = debug_signals(results);
    if (meta.observe)
      time_signals(results, out.signal_us);
    if (meta.trace_signals)
      out.traced_signals = std::make_shared<const signals::SignalResults>(results);
    if (meta.explain) {
      auto explain = std::make_shared<RouteExplain>();
      explain->decisions = snapshot.engine->explain(results);
      explain->strategy = config.routing.strategy == config::DecisionStrategy::Confidence
                              ? "confidence"
                              : "priority";
      explain->winner = d.name;
      explain->is_default = d.is_default;
      explain->signals = results;
      out.explain = std::move(explain);
    }

    // Session stickiness: the session's model stays unless a higher-priority decision fires.
    std::string session_id;
    const config::SessionsConfig& sc = config.routing.sessions;
    if (sc.enabled && meta.sessions && meta.headers && *meta.headers)
      if (auto h = (*meta.headers)(sc.header); h && !core::trim(*h).empty())
        session_id = meta.tenant.empty()
                         ? std::string(core::trim(*h))
                         : meta.tenant + '\x1f' + std::string(core::trim(*h)); // per tenant
    std::optional<SessionEntry> sticky;
    if (!session_id.empty())
      sticky = meta.sessions->get(session_id, std::chrono::seconds(sc.ttl_s));
    const config::DecisionConfig* sticky_decision = nullptr;
    const config::ModelConfig* sticky_model = nullptr;
    if (sticky) {
      sticky_model = config.find_model(sticky->model);
      for (const auto& dc : config.decisions)
        if (dc.name == sticky->decision)
          sticky_decision = &dc;
      if (!sticky_decision && config.default_decision &&
          sticky->decision == config.default_decision_name)
        sticky_decision = &*config.default_decision;
    }
    if (sticky && sticky_model && d.priority <= sticky->priority) {
      // Stay: the session's model, with its decision's plugins and reasoning.
      out.session = "sticky";
      out.decision = sticky->decision;
      out.confidence = d.confidence;
      decision = sticky_decision;
      model = sticky_model;
      if (decision)
        for (const auto& r : decision->models)
          if (r.model == model->name)
            ref = &r;
    } else {
      out.session = session_id.empty() ? "" : sticky ? "escalated" : "new";
      out.decision = d.name;
      out.confidence = d.confidence;
      decision = d.decision;
      if (decision) {
        ref = nullptr;
        if (decision->selection.enabled)
          ref = select_by_quality(snapshot, *decision, facts.text, meta, out.selection);
        if (!ref)
          ref = &routing::choose_model(decision->models, random);
        // A key whose budget runs down: with probability `pressure`, the cheapest candidate.
        if (meta.budget_pressure > 0 && decision->models.size() > 1 &&
            random.uniform() < meta.budget_pressure) {
          const config::ModelRefConfig* cheapest = nullptr;
          double cheapest_cost = 1e300;
          for (const auto& r : decision->models) {
            const config::ModelConfig* m = config.find_model(r.model);
            if (r.weight > 0 && m && m->cost() < cheapest_cost)
              cheapest_cost = m->cost(), cheapest = &r;
          }
          if (cheapest && cheapest != ref) {
            ref = cheapest;
            out.budget_degraded = true;
          }
        }
        model = config.find_model(ref->model);
      } else {
        model = config.find_model(config.default_model);
      }
    }
    out.matched_signals = std::move(d.matched);
    // Saved once the request is on its way upstream: a blocked request starts no session.
    if (!session_id.empty() && out.session != "sticky") {
      pending_session = std::move(session_id);
      pending_priority = d.priority;
    }
  } else {
    model = config.find_model(view->model);
    if (!model) {
      set_error(out, openai::model_not_found(view->model, model_names(config)));
      finish();
      return out;
    }
    out.decision = "passthrough";
  }
  const config::PluginsConfig* plugins = decision ? &decision->plugins : nullptr;
  auto add_common_headers = [&] {
    if (!debug.empty())
      out.response_headers.emplace_back("x-semrouter-signals", debug);
    if (!out.session.empty())
      out.response_headers.emplace_back("x-semrouter-session", out.session);
    if (meta.budget_spent >= 0)
      out.response_headers.emplace_back("x-semrouter-budget",
                                        fmt::format("spent={:.3f};pressure={:.2f}{}",
                                                    meta.budget_spent, meta.budget_pressure,
                                                    out.budget_degraded ? ";degraded" : ""));
    if (plugins)
      for (const auto& h : plugins->headers.response_set)
        out.response_headers.push_back(h);
  };

  if (plugins && plugins->block.enabled) {
    // The guard answers itself; nothing goes upstream.
    reply_filtered(out, meta, *view, plugins->block.message, random);
    add_common_headers();
    finish();
    return out;
  }

  // PII policy: what the chosen model may not see is redacted, blocked, or sent elsewhere.
  std::string redacted_body;
  std::optional<openai::RequestView> redacted_view;
  if (plugins && plugins->pii.enabled) {
    const config::PiiPluginConfig& policy = plugins->pii;
    PiiFinding found = find_request_pii(snapshot, *view, policy, signal_pii);
    if (!found.types.empty() && !model_allows(*model, found.types)) {
      std::string types = core::join(found.types, ",");
      const config::ModelConfig* target = nullptr;
      if (policy.action == config::PiiAction::Reroute) {
        // The decision's own candidates first, in order, then any model of the config.
        for (const auto& r : decision->models) {
          const config::ModelConfig* m = config.find_model(r.model);
          if (m && model_allows(*m, found.types)) {
            target = m, ref = &r;
            break;
          }
        }
        // Outside the candidates, the decision's reasoning intent (`ref`) still applies.
        if (!target)
          for (const auto& m : config.models)
            if (model_allows(m, found.types)) {
              target = &m;
              break;
            }
      }
      if (policy.action == config::PiiAction::Block ||
          (policy.action == config::PiiAction::Reroute && !target)) {
        out.pii = "blocked";
        reply_filtered(out, meta, *view, policy.message, random);
        out.response_headers.emplace_back("x-semrouter-pii", "blocked;types=" + types);
        add_common_headers();
        finish();
        return out;
      }
      if (target) {
        out.pii = "rerouted";
        model = target;
        out.response_headers.emplace_back("x-semrouter-pii", "rerouted;types=" + types);
      } else {
        out.pii = "redacted";
        std::vector<std::string> hidden; // what the model may not see: what gets redacted
        for (const auto& t : found.types)
          if (!model->allows_pii(t))
            hidden.push_back(t);
        types = core::join(hidden, ",");
        redacted_body = redact_body(snapshot, body, *view, policy, *model, found);
        auto rv = openai::parse_request(redacted_body, meta.kind);
        if (!rv) {
          // Never forward what could not be redacted: fail closed.
          out.pii = "blocked";
          reply_filtered(out, meta, *view, policy.message, random);
          out.response_headers.emplace_back("x-semrouter-pii", "blocked;types=" + types);
          add_common_headers();
          finish();
          return out;
        }
        redacted_view = std::move(*rv);
        body = redacted_body;
        view = &*redacted_view;
        out.response_headers.emplace_back("x-semrouter-pii", "redacted;types=" + types);
      }
    }
  }

  routing::ReasoningPlan reasoning;
  if (out.decision == "passthrough") {
    reasoning.header = "unset";
  } else {
    config::ReasoningMode mode = ref ? ref->reasoning : config::ReasoningMode::Unset;
    std::string effort = ref ? ref->effort : std::string();
    uint32_t budget = 0;
    if (mode == config::ReasoningMode::ByNeed) {
      const config::ReasoningSignalConfig& rc = config.signals.reasoning;
      // No reasoning classifier answer (none loaded): the fast path.
      auto need = routing::plan_by_need(rc, *ref, std::max(0.0, p_reason));
      mode = need.mode;
      effort = need.effort;
      if (p_reason >= 0)
        out.response_headers.emplace_back("x-semrouter-reasoning-need",
                                          fmt::format("{:.3f}", p_reason));
      // Under load the effort gives way first, one level (high -> medium -> low -> off), with
      // the hysteresis of the cost-quality shift.
      if (mode == config::ReasoningMode::On && decision && decision->reasoning_load.enabled() &&
          meta.cost_quality &&
          meta.cost_quality->selection.pressure("reasoning:" + decision->name,
                                                decision->reasoning_load, meta.cost_quality->load,
                                                model->name)) {
        effort = routing::step_down(effort);
        if (effort.empty())
          mode = config::ReasoningMode::Off;
        out.reasoning_stepped_down = true;
        out.response_headers.emplace_back("x-semrouter-reasoning-load", "pressure");
      }
      if (mode == config::ReasoningMode::On) {
        const int level = routing::effort_index(effort);
        budget = rc.budget_tokens[level];
        reasoning_max_tokens = rc.max_tokens[level];
      }
    }
    reasoning = routing::plan_reasoning(config, *model, mode, effort, budget);
    out.reasoning_mode = mode;
    out.reasoning_effort = effort;
    out.reasoning_budget = budget;
    for (const auto& e : reasoning.edits)
      out.reasoning_fields.emplace_back(e.key, e.sub);
  }
  out.kind = meta.kind;
  if (decision) {
    out.fallback = decision->fallback;
    out.priority = decision->priority;
  }
  out.model = model;
  out.reasoning = reasoning.header;
  auto add_route_headers = [&] {
    out.response_headers.reserve(out.response_headers.size() + 8); // one allocation, no regrowth
    out.response_headers.emplace_back("x-semrouter-model", model->name);
    out.response_headers.emplace_back("x-semrouter-decision", out.decision);
    out.response_headers.emplace_back("x-semrouter-reasoning", out.reasoning);
    if (out.selection.active) {
      std::string value = out.selection.choice + ";score=";
      core::append_fixed(value, out.selection.score, 4);
      value += ";threshold=";
      core::append_general(value, out.selection.threshold, 4);
      out.response_headers.emplace_back("x-semrouter-selection", std::move(value));
      out.response_headers.emplace_back("x-semrouter-load",
                                        out.selection.pressure ? "pressure" : "normal");
    }
    if (out.decision != "passthrough") {
      std::string conf;
      core::append_fixed(conf, out.confidence, 3);
      out.response_headers.emplace_back("x-semrouter-confidence", std::move(conf));
    }
    add_common_headers();
  };

  // Cache lookup: a stored answer to the same question (in this scope) answers now.
  if (cache_lookup(snapshot, meta, *view, body, decision, *model, &signal_embedding, out) ==
      StageResult::Reply) {
    add_route_headers();
    if (!pending_session.empty()) // the cached answer is this model's: the session starts here
      meta.sessions->put(pending_session, {out.decision, model->name, pending_priority},
                         config.routing.sessions.max_sessions);
    finish();
    return out;
  }

  openai::BodyEditor editor(body, *view);
  // Tool pre-filtering: only the tools this request needs go upstream.
  {
    const config::ToolsPluginConfig& tp =
        plugins && plugins->tools.set ? plugins->tools : config.tools;
    if (tp.enabled && view->has_tools) {
      ToolFilter tf = filter_tools(*view, body, tp,
                                   snapshot.models ? snapshot.models->embeddings.get() : nullptr,
                                   meta.tool_vectors);
      out.tools_total = tf.total;
      out.tools_kept = tf.kept;
      if (tf.applied) {
        // An empty list is invalid for OpenAI-compatible servers: the key goes instead.
        if (tf.kept == 0)
          editor.remove_top_level("tools");
        else
          editor.set_top_level("tools", std::move(tf.tools_json));
      }
      if (tf.drop_tool_choice || (tf.applied && tf.kept == 0))
        editor.remove_top_level("tool_choice");
      out.response_headers.emplace_back("x-semrouter-tools",
                                        fmt::format("kept={};total={}", tf.kept, tf.total));
    }
  }
  if (view->model != model->upstream_model)
    editor.set_top_level("model", core::json_string(model->upstream_model));
  apply_reasoning(editor, reasoning);
  if (plugins && plugins->system_prompt.enabled) {
    editor.set_system_prompt(plugins->system_prompt.content,
                             plugins->system_prompt.mode == config::SystemPromptMode::Replace);
  }
  if (reasoning_max_tokens > 0) {
    // signals.reasoning.max_tokens: thinking answers get a completion cap, unless the decision's
    // params plugin already decides max_tokens.
    bool params_own_it = false;
    if (plugins)
      for (const auto& [k, v] : plugins->params.max)
        params_own_it = params_own_it || k == "max_tokens";
    if (plugins)
      for (const auto& [k, v] : plugins->params.set)
        params_own_it = params_own_it || k == "max_tokens";
    if (!params_own_it) {
      config::ParamsPluginConfig cap;
      cap.max.emplace_back("max_tokens", double(reasoning_max_tokens));
      cap.fill_max.push_back("max_tokens");
      apply_params(editor, *view, body, cap);
    }
  }
  if (plugins && plugins->params.enabled())
    apply_params(editor, *view, body, plugins->params);
  out.body = editor.changed() ? editor.apply() : std::string(body);
  out.action = RouteAction::Forward;
  add_route_headers();
  if (plugins) {
    out.upstream_set_headers = plugins->headers.set;
    out.upstream_remove_headers = plugins->headers.remove;
  }
  if (!pending_session.empty())
    meta.sessions->put(pending_session, {out.decision, model->name, pending_priority},
                       config.routing.sessions.max_sessions);
  finish();
  return out;
}

} // namespace semrouter::pipeline
