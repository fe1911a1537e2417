#include "app/bench_request.h"

#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/strings.h"

namespace semrouter::app {
namespace {

using core::ErrorCode;
using core::make_error;
using nlohmann::json;

constexpr uint16_t kHttpPort = 80;
constexpr uint16_t kHttpsPort = 443;
constexpr size_t kErrorExcerpt = 200;

std::string chat_path(std::string_view path) {
  while (!path.empty() && path.back() == '/')
    path.remove_suffix(1);
  std::string p(path);
  constexpr std::string_view kChat = "/chat/completions";
  if (p.size() >= kChat.size() && p.compare(p.size() - kChat.size(), kChat.size(), kChat) == 0)
    return p;
  if (p.size() >= 3 && p.compare(p.size() - 3, 3, "/v1") == 0)
    return p + std::string(kChat);
  return p + "/v1" + std::string(kChat);
}

} // namespace

core::StatusOr<Endpoint> parse_endpoint(std::string_view url) {
  Endpoint e;
  std::string_view rest;
  if (core::starts_with(url, "http://")) {
    rest = url.substr(7);
  } else if (core::starts_with(url, "https://")) {
    e.tls = true;
    rest = url.substr(8);
  } else {
    return make_error(
        ErrorCode::InvalidArgument,
        fmt::format("--target: expected an http:// or https:// URL, got \"{}\"", url));
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (path.find_first_of("?#") != std::string_view::npos)
    return make_error(
        ErrorCode::InvalidArgument,
        fmt::format("--target: a query or fragment is not supported, got \"{}\"", url));
  std::string_view port_text;
  if (core::starts_with(authority, "[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("--target: unclosed [ in \"{}\"", url));
    e.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':')
        return make_error(ErrorCode::InvalidArgument,
                          fmt::format("--target: unexpected text after ] in \"{}\"", url));
      port_text = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    e.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos)
      port_text = authority.substr(colon + 1);
  }
  if (e.host.empty() || e.host.find('@') != std::string::npos)
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("--target: no host in \"{}\" (user info is not supported)", url));
  e.port = e.tls ? kHttpsPort : kHttpPort;
  if (!port_text.empty()) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), v);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || v == 0 || v > 65535)
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("--target: bad port \"{}\" in \"{}\"", port_text, url));
    e.port = static_cast<uint16_t>(v);
  }
  e.path = chat_path(path);
  return e;
}

std::string_view reasoning_choice_name(ReasoningChoice r) {
  switch (r) {
  case ReasoningChoice::Unset:
    return "unset";
  case ReasoningChoice::On:
    return "on";
  case ReasoningChoice::Off:
    return "off";
  case ReasoningChoice::Router:
    return "router";
  }
  return "unset";
}

core::StatusOr<std::vector<BenchConfiguration>>
plan_configurations(const std::vector<std::string>& models,
                    const std::vector<ReasoningChoice>& reasoning, const config::Config* config,
                    const std::string& default_family, std::vector<std::string>& warnings) {
  // The families a model outside the config may use: the built-ins (and the config's own).
  config::Config families;
  families.reasoning_families =
      config ? config->reasoning_families : config::builtin_reasoning_families();
  if (!default_family.empty() && default_family != "none" &&
      !families.reasoning_families.count(default_family)) {
    std::vector<std::string> known;
    for (const auto& [name, f] : families.reasoning_families)
      known.push_back(name);
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("--reasoning-family: unknown family \"{}\" (known: {}, none)",
                                  default_family, core::join(known, ", ")));
  }
  const config::Config defaults;
  const config::Config& names = config ? *config : defaults;
  std::vector<BenchConfiguration> out;
  auto add = [&](BenchConfiguration c) {
    for (const auto& existing : out)
      if (existing.label == c.label)
        return; // a model named twice
    out.push_back(std::move(c));
  };
  for (const auto& model : models) {
    if (names.is_auto_name(model)) {
      add({model, model, ReasoningChoice::Router, "", {}});
      continue;
    }
    const config::ModelConfig* known = config ? config->find_model(model) : nullptr;
    config::ModelConfig m;
    m.name = model;
    m.reasoning_family = known ? known->reasoning_family
                               : (default_family == "none" ? std::string() : default_family);
    for (ReasoningChoice r : reasoning) {
      if (r == ReasoningChoice::Unset || r == ReasoningChoice::Router) {
        add({model, model, ReasoningChoice::Unset, m.reasoning_family, {}});
        continue;
      }
      if (m.reasoning_family.empty()) {
        warnings.push_back(fmt::format(
            "{}: no reasoning family{}, so reasoning {} cannot be set: skipped", model,
            known ? " in the config" : " (--reasoning-family none)", reasoning_choice_name(r)));
        continue;
      }
      routing::ReasoningPlan plan = routing::plan_reasoning(
          families, m,
          r == ReasoningChoice::On ? config::ReasoningMode::On : config::ReasoningMode::Off, "", 0);
      add({model + "/" + std::string(reasoning_choice_name(r)), model, r, m.reasoning_family,
           plan.edits});
    }
  }
  if (out.empty())
    return make_error(ErrorCode::InvalidArgument,
                      "--models/--reasoning: no configuration left to run (see the warnings)");
  return out;
}

std::string build_request_body(const BenchRecord& record, const BenchConfiguration& cfg,
                               const RequestOptions& options) {
  json body = json::object();
  body["model"] = cfg.model;
  body["messages"] = json::parse(record.messages_json, nullptr, false);
  if (options.stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  if (options.max_tokens > 0)
    body["max_tokens"] = options.max_tokens;
  if (options.temperature)
    body["temperature"] = *options.temperature;
  for (const auto& e : cfg.edits) {
    json value = json::parse(e.raw_json_value, nullptr, false);
    if (e.sub.empty())
      body[e.key] = value;
    else
      body[e.key][e.sub] = value;
  }
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_message(int status, std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    auto e = j.find("error");
    if (e != j.end() && e->is_object() && e->contains("message") && (*e)["message"].is_string())
      return fmt::format("HTTP {}: {}", status, (*e)["message"].get<std::string>());
    if (e != j.end() && e->is_string())
      return fmt::format("HTTP {}: {}", status, e->get<std::string>());
  }
  return fmt::format("HTTP {}: {}", status, core::utf8_prefix(core::trim(body), kErrorExcerpt));
}

ResponseCollector::State ResponseCollector::feed(std::string_view buffer, double elapsed_ms,
                                                 size_t& consumed) {
  consumed = 0;
  if (!buffer.empty())
    started_ = true;
  while (true) {
    http::ParseResult r = parser_.parse(buffer.substr(consumed));
    consumed += r.consumed;
    switch (r.event) {
    case http::Event::NeedMore:
      return State::More;
    case http::Event::Head: {
      out_.status = parser_.status();
      auto copy = [&](std::string_view name) { return std::string(parser_.header(name)); };
      out_.routed_model = copy("x-semrouter-model");
      out_.decision = copy("x-semrouter-decision");
      out_.reasoning = copy("x-semrouter-reasoning");
      out_.fallback = copy("x-semrouter-fallback");
      out_.cache = copy("x-semrouter-cache");
      std::string type = core::ascii_lower(parser_.header("content-type"));
      sse_ = type.find("text/event-stream") != std::string::npos;
      out_.streamed = sse_;
      break;
    }
    case http::Event::Body:
      on_body(r.body, elapsed_ms);
      break;
    case http::Event::Done:
      out_.keep_alive = parser_.keep_alive();
      return finish();
    case http::Event::Error:
    case http::Event::Closed:
      out_.error = fmt::format("malformed HTTP response: {}", http::error_name(parser_.error()));
      return State::Failed;
    }
  }
}

ResponseCollector::State ResponseCollector::eof(double elapsed_ms) {
  http::ParseResult r = parser_.on_eof();
  if (r.event == http::Event::Done) {
    out_.keep_alive = false;
    return finish();
  }
  out_.error = started_ ? "the connection closed in the middle of the response"
                        : "the connection closed before a response";
  return State::Failed;
}

void ResponseCollector::on_body(std::string_view piece, double elapsed_ms) {
  if (!sse_ || out_.status != 200) {
    body_.append(piece);
    return;
  }
  for (const std::string& data : events_.feed(piece)) {
    capture_.event(data);
    const openai::Answer& a = capture_.answer();
    size_t text = a.content.size() + a.reasoning_content.size();
    if (text > seen_text_ && out_.ttft_ms < 0)
      out_.ttft_ms = elapsed_ms;
    seen_text_ = text;
  }
}

ResponseCollector::State ResponseCollector::finish() {
  if (out_.status != 200) {
    out_.error = error_message(out_.status, body_);
    return State::Done;
  }
  if (!sse_)
    capture_.body(body_);
  out_.answer = capture_.answer();
  if (capture_.why_not() == "error")
    out_.error = sse_ ? "the stream carried an error or a chunk that is not JSON"
                      : "the body is not a chat completion: " +
                            std::string(core::utf8_prefix(body_, kErrorExcerpt));
  return State::Done;
}

} // namespace semrouter::app
