#include "pipeline/dialects.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/strings.h"
#include "openai/anthropic.h"
#include "openai/responses_api.h"
#include "pipeline/exchange.h"

namespace semrouter::pipeline {

using json = nlohmann::json;

std::string_view api_name(Api api) {
  switch (api) {
  case Api::Chat:
    return "chat";
  case Api::Completions:
    return "completions";
  case Api::Messages:
    return "messages";
  case Api::Responses:
    return "responses";
  case Api::Embeddings:
    return "embeddings";
  }
  return "chat";
}

bool read_client_request(Api api, std::string_view body, ClientRequest& out,
                         openai::ApiError& error) {
  out.api = api;
  out.original = body;
  if (api == Api::Messages)
    return openai::anthropic::request_to_chat(body, out.pivot, error);
  if (api == Api::Responses) {
    openai::responses_api::ChatRequest chat;
    if (!openai::responses_api::request_to_chat(body, chat, error))
      return false;
    out.pivot = std::move(chat.body);
    out.unsupported = std::move(chat.unsupported);
    out.echo = std::move(chat.echo);
  }
  return true;
}

RouteOutcome route_embeddings(const Snapshot& snapshot, std::string_view body) {
  RouteOutcome out;
  const config::Config& config = *snapshot.config;
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    set_error(out, openai::invalid_request("the body is not a JSON object"));
    return out;
  }
  auto m = j.find("model");
  if (m == j.end() || !m->is_string() || m->get_ref<const std::string&>().empty()) {
    set_error(
        out, openai::invalid_request("model: is required (a configured embedding model)", "model"));
    return out;
  }
  const std::string name = m->get_ref<const std::string&>(); // a copy: *m is replaced below
  if (config.is_auto_name(name)) {
    set_error(out, openai::invalid_request("model: embeddings are not routed; name a configured "
                                           "model instead of \"" +
                                               name + "\"",
                                           "model"));
    return out;
  }
  const config::ModelConfig* model = config.find_model(name);
  if (!model) {
    std::string known;
    for (const auto& mc : config.models)
      known += (known.empty() ? "" : ", ") + mc.name;
    set_error(out, openai::model_not_found(name, known));
    return out;
  }
  *m = model->upstream_model;
  out.action = RouteAction::Forward;
  out.model = model;
  out.requested_model = name;
  out.decision = "passthrough";
  out.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return out;
}

namespace {

// OpenAI's own request fields: an explicit openai/azure backend gets nothing else (its API
// rejects unknown fields such as vLLM's chat_template_kwargs).
bool openai_chat_field(std::string_view k) {
  static constexpr std::string_view kFields[] = {"model",
                                                 "messages",
                                                 "audio",
                                                 "frequency_penalty",
                                                 "function_call",
                                                 "functions",
                                                 "logit_bias",
                                                 "logprobs",
                                                 "max_tokens",
                                                 "max_completion_tokens",
                                                 "metadata",
                                                 "modalities",
                                                 "n",
                                                 "parallel_tool_calls",
                                                 "prediction",
                                                 "presence_penalty",
                                                 "prompt_cache_key",
                                                 "reasoning_effort",
                                                 "response_format",
                                                 "safety_identifier",
                                                 "seed",
                                                 "service_tier",
                                                 "stop",
                                                 "store",
                                                 "stream",
                                                 "stream_options",
                                                 "temperature",
                                                 "tool_choice",
                                                 "tools",
                                                 "top_logprobs",
                                                 "top_p",
                                                 "user",
                                                 "verbosity",
                                                 "web_search_options"};
  for (auto f : kFields)
    if (f == k)
      return true;
  return false;
}
bool openai_completions_field(std::string_view k) {
  static constexpr std::string_view kFields[] = {"model",
                                                 "prompt",
                                                 "best_of",
                                                 "echo",
                                                 "frequency_penalty",
                                                 "logit_bias",
                                                 "logprobs",
                                                 "max_tokens",
                                                 "n",
                                                 "presence_penalty",
                                                 "seed",
                                                 "stop",
                                                 "stream",
                                                 "stream_options",
                                                 "suffix",
                                                 "temperature",
                                                 "top_p",
                                                 "user"};
  for (auto f : kFields)
    if (f == k)
      return true;
  return false;
}

std::string strip_fields(const std::string& body, bool completions) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return body;
  bool changed = false;
  for (auto it = j.begin(); it != j.end();) {
    if (completions ? openai_completions_field(it.key()) : openai_chat_field(it.key())) {
      ++it;
    } else {
      it = j.erase(it);
      changed = true;
    }
  }
  return changed ? j.dump(-1, ' ', false, json::error_handler_t::replace) : body;
}

std::string azure_path(const config::BackendConfig& b, const config::ModelConfig& m,
                       std::string_view op) {
  std::string base = b.base_path == "/" ? "" : b.base_path;
  return base + "/openai/deployments/" + m.upstream_model + std::string(op) +
         "?api-version=" + b.api_version;
}

// A Messages request to an Anthropic backend keeps everything the chat form cannot carry
// (cache_control, earlier thinking blocks with their signatures, documents, citations): the
// client's body goes as it came, with what routing decided applied from the routed chat request —
// the model, the reasoning plan's thinking (max_tokens raised above its budget), the tools the
// filter kept, a system prompt a decision replaced, and the sampling caps of the params plugin.
std::string messages_passthrough(std::string_view original, std::string_view routed_chat,
                                 const std::string& upstream_model) {
  using ordered = nlohmann::ordered_json;
  ordered body = ordered::parse(original, nullptr, false);
  json routed = json::parse(routed_chat, nullptr, false);
  if (body.is_discarded() || !body.is_object() || routed.is_discarded() || !routed.is_object())
    return openai::anthropic::request_from_chat(routed_chat);
  body["model"] = upstream_model;
  // The routed request translated back, for the fields routing may have changed.
  json routed_msg = json::parse(openai::anthropic::request_from_chat(routed_chat), nullptr, false);
  if (!routed_msg.is_object())
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
  if (routed_msg.contains("thinking"))
    body["thinking"] = routed_msg["thinking"];
  for (const char* k : {"max_tokens", "temperature", "top_p", "top_k"}) {
    if (routed_msg.contains(k))
      body[k] = routed_msg[k];
    else if (k != std::string_view("max_tokens"))
      body.erase(k); // dropped for thinking
  }
  // Tools the filter removed.
  if (body.contains("tools") && body["tools"].is_array()) {
    std::vector<std::string> kept;
    if (routed_msg.contains("tools") && routed_msg["tools"].is_array())
      for (const auto& t : routed_msg["tools"])
        if (t.is_object() && t.contains("name") && t["name"].is_string())
          kept.push_back(t["name"].get<std::string>());
    ordered tools = ordered::array();
    for (const auto& t : body["tools"]) {
      const bool custom = !t.is_object() || !t.contains("type") || t["type"] == "custom";
      if (!custom ||
          (t.contains("name") && t["name"].is_string() &&
           std::find(kept.begin(), kept.end(), t["name"].get<std::string>()) != kept.end()))
        tools.push_back(t);
    }
    if (tools.empty()) {
      body.erase("tools");
      body.erase("tool_choice");
    } else {
      body["tools"] = std::move(tools);
    }
  }
  // A system prompt the decision set or changed.
  json client_chat;
  {
    std::string pivot;
    openai::ApiError ignored;
    if (openai::anthropic::request_to_chat(original, pivot, ignored))
      client_chat = json::parse(pivot, nullptr, false);
  }
  auto first_system = [](const json& chat) -> std::string {
    if (chat.is_object() && chat.contains("messages") && chat["messages"].is_array() &&
        !chat["messages"].empty()) {
      const json& m0 = chat["messages"][0];
      if (m0.is_object() && m0.value("role", "") == "system")
        return m0.contains("content") ? m0["content"].dump() : "";
    }
    return "";
  };
  if (first_system(client_chat) != first_system(routed) && routed_msg.contains("system"))
    body["system"] = routed_msg["system"];
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace

bool build_upstream_call(const config::BackendConfig& backend, const config::ModelConfig& model,
                         const ClientRequest& request, const RouteOutcome& out,
                         std::string_view query, const ClientCredentials& credentials,
                         UpstreamCall& call, openai::ApiError& error) {
  using config::Provider;
  const Provider p = backend.provider;
  const std::string base = upstream_base_path(backend);
  call.headers.clear();
  // The wire and the body.
  if (request.api == Api::Embeddings) {
    call.wire = Api::Embeddings;
    if (p == Provider::Anthropic) {
      error = openai::invalid_request("model " + model.name + ": backend " + backend.name +
                                      " (anthropic) has no embeddings API");
      return false;
    }
    call.body = out.body;
    call.path = p == Provider::Azure ? azure_path(backend, model, "/embeddings")
                                     : base + "/embeddings" + std::string(query);
  } else if (request.api == Api::Completions) {
    call.wire = Api::Completions;
    if (p == Provider::Anthropic) {
      error = openai::invalid_request("model " + model.name + ": backend " + backend.name +
                                      " (anthropic) does not take legacy completions; use "
                                      "/v1/chat/completions or /v1/messages");
      return false;
    }
    call.body = backend.provider_explicit && (p == Provider::OpenAI || p == Provider::Azure)
                    ? strip_fields(out.body, true)
                    : out.body;
    call.path = p == Provider::Azure ? azure_path(backend, model, "/completions")
                                     : base + "/completions" + std::string(query);
  } else if (request.api == Api::Responses && backend.native_responses) {
    call.wire = Api::Responses;
    call.body = openai::responses_api::passthrough_request(request.original, out.body);
    call.path = p == Provider::Azure ? (backend.base_path == "/" ? "" : backend.base_path) +
                                           "/openai/responses?api-version=" + backend.api_version
                                     : base + "/responses" + std::string(query);
  } else {
    if (request.api == Api::Responses && !request.unsupported.empty()) {
      error = openai::invalid_request(
          request.unsupported + " (model " + model.name + " is served by backend " + backend.name +
          ", which does not speak the Responses API; set responses_api: native "
          "on a backend that does)");
      return false;
    }
    if (p == Provider::Anthropic) {
      call.wire = Api::Messages;
      call.body = request.api == Api::Messages
                      ? messages_passthrough(request.original, out.body, model.upstream_model)
                      : openai::anthropic::request_from_chat(out.body);
      call.path = base + "/messages";
    } else {
      call.wire = Api::Chat;
      call.body = backend.provider_explicit && (p == Provider::OpenAI || p == Provider::Azure)
                      ? strip_fields(out.body, false)
                      : out.body;
      call.path = p == Provider::Azure ? azure_path(backend, model, "/chat/completions")
                                       : base + "/chat/completions" + std::string(query);
    }
    call.wire.echo = request.echo; // the answer is translated back: the Response echoes these
  }
  // Credentials: the backend's own key, in the provider's header; else (when the router checks
  // no keys) the client's.
  const bool own = !backend.api_key.empty();
  const bool pass_client = !own && !credentials.router_checks_keys;
  switch (p) {
  case Provider::Azure:
    if (own)
      call.headers.emplace_back("api-key", backend.api_key);
    else if (pass_client && !credentials.authorization.empty())
      call.headers.emplace_back("Authorization", std::string(credentials.authorization));
    break;
  case Provider::Anthropic:
    if (own)
      call.headers.emplace_back("x-api-key", backend.api_key);
    else if (pass_client && !credentials.x_api_key.empty())
      call.headers.emplace_back("x-api-key", std::string(credentials.x_api_key));
    call.headers.emplace_back("anthropic-version", backend.anthropic_version);
    break;
  default:
    if (own)
      call.headers.emplace_back("Authorization", "Bearer " + backend.api_key);
    else if (pass_client && !credentials.authorization.empty())
      call.headers.emplace_back("Authorization", std::string(credentials.authorization));
    break;
  }
  return true;
}

std::string error_body_for(Api client, const openai::ApiError& e) {
  return client == Api::Messages ? openai::anthropic::error_body(e) : openai::error_body(e);
}

std::string stream_error_event(Api client, const openai::ApiError& e) {
  if (client == Api::Messages)
    return "event: error\ndata: " + openai::anthropic::error_body(e) + "\n\n";
  if (client == Api::Responses) {
    json j = {{"type", "error"},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)},
              {"message", e.message},
              {"param", nullptr}};
    return "event: error\ndata: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
  }
  return "data: " + openai::error_body(e) + "\n\n";
}

std::string reply_for(Api client, int status, std::string_view body, bool event_stream,
                      const openai::responses_api::RequestEcho& echo) {
  if (client != Api::Messages && client != Api::Responses)
    return std::string(body);
  if (status >= 400)
    return client == Api::Messages ? openai::anthropic::error_from_openai(body, status)
                                   : std::string(body);
  AnswerCodec codec(client, Wire(Api::Chat, echo));
  std::string pivot;
  if (!event_stream)
    return codec.body(status, body, pivot);
  std::string out;
  codec.stream(body, out, pivot);
  codec.finish(out, pivot);
  return out;
}

bool wants_stream_usage(std::string_view chat_body) {
  json j = json::parse(chat_body, nullptr, false);
  if (!j.is_object())
    return false;
  auto so = j.find("stream_options");
  if (so == j.end() || !so->is_object())
    return false;
  auto inc = so->find("include_usage");
  return inc != so->end() && inc->is_boolean() && inc->get<bool>();
}

AnswerCodec::AnswerCodec(Api client, const Wire& wire, bool client_wants_usage)
    : client_(client), wire_(wire), echo_(wire.echo) {
  if (wire_ == Api::Messages)
    from_anthropic_ = std::make_unique<openai::anthropic::StreamToChat>();
  if (wire_ == Api::Messages && client_ == Api::Chat && !client_wants_usage)
    client_chat_ = std::make_unique<openai::anthropic::StreamToChat>(0, false);
  else if (wire_ == Api::Responses)
    from_responses_ = std::make_unique<openai::responses_api::StreamToChat>();
  if (!passthrough()) {
    if (client_ == Api::Messages)
      to_anthropic_ = std::make_unique<openai::anthropic::StreamFromChat>();
    else if (client_ == Api::Responses)
      to_responses_ = std::make_unique<openai::responses_api::StreamFromChat>("", echo_);
  }
}

AnswerCodec::~AnswerCodec() = default;

bool AnswerCodec::pivot_is_upstream() const {
  return wire_ == Api::Chat || wire_ == Api::Completions || wire_ == Api::Embeddings;
}

std::string AnswerCodec::body(int status, std::string_view upstream, std::string& pivot) {
  if (status >= 400) {
    if (passthrough())
      return std::string(upstream);
    // The wire's error shape to OpenAI's, then to the client's.
    std::string as_openai = wire_ == Api::Messages
                                ? openai::anthropic::error_to_openai(upstream, status)
                                : std::string(upstream);
    return client_ == Api::Messages ? openai::anthropic::error_from_openai(as_openai, status)
                                    : as_openai;
  }
  std::string_view chat = upstream;
  if (!pivot_is_upstream()) {
    pivot = wire_ == Api::Messages ? openai::anthropic::response_to_chat(upstream)
                                   : openai::responses_api::response_to_chat(upstream);
    chat = pivot;
  }
  if (passthrough())
    return std::string(upstream);
  if (client_ == Api::Messages)
    return openai::anthropic::response_from_chat(chat);
  if (client_ == Api::Responses)
    return openai::responses_api::response_from_chat(chat, {}, echo_);
  return std::string(chat);
}

void AnswerCodec::stream(std::string_view piece, std::string& to_client, std::string& pivot) {
  std::string_view chat = piece;
  if (!pivot_is_upstream()) {
    const size_t at = pivot.size();
    if (from_anthropic_)
      from_anthropic_->feed(piece, pivot);
    else
      from_responses_->feed(piece, pivot);
    chat = std::string_view(pivot).substr(at);
  }
  if (passthrough()) {
    to_client.append(piece);
  } else if (client_chat_) {
    client_chat_->feed(piece, to_client);
  } else if (to_anthropic_) {
    to_anthropic_->feed(chat, to_client);
  } else if (to_responses_) {
    to_responses_->feed(chat, to_client);
  } else {
    to_client.append(chat);
  }
}

void AnswerCodec::finish(std::string& to_client, std::string& pivot) {
  std::string_view chat;
  const size_t at = pivot.size();
  if (from_anthropic_)
    from_anthropic_->finish(pivot);
  else if (from_responses_)
    from_responses_->finish(pivot);
  chat = std::string_view(pivot).substr(at);
  if (passthrough())
    return;
  if (client_chat_) {
    client_chat_->finish(to_client);
  } else if (to_anthropic_) {
    to_anthropic_->feed(chat, to_client);
    to_anthropic_->finish(to_client);
  } else if (to_responses_) {
    to_responses_->feed(chat, to_client);
    to_responses_->finish(to_client);
  } else {
    to_client.append(chat);
  }
}

} // namespace semrouter::pipeline
