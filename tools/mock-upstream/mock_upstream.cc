// mock-upstream: an OpenAI-compatible model server for tests, the demo and benchmarks.
//
// It answers /v1/chat/completions and /v1/completions, streaming and not. The answer's text says
// which model was asked for and which reasoning fields arrived, and the whole request body is
// echoed back in a top-level "mock_echo" field (and its headers in "mock_headers") so tests can
// check exactly what the router sent.
//
// Per-request controls travel in the request body under "mock" (an unknown vendor field, which
// the router must pass through untouched):
//   {"mock": {"status": 503}}            answer with this HTTP status and an OpenAI error body
//   {"mock": {"tokens": 20}}             number of content chunks / words in the answer
//   {"mock": {"token_delay_ms": 50}}     delay before each streamed chunk
//   {"mock": {"drop_after": 3}}          streaming: drop the connection after 3 content chunks
//   {"mock": {"reasoning_tokens": 40}} usage reports 40 reasoning tokens
//   (completion_tokens_details)
//   {"mock": {"first_byte_delay_ms": 500}} delay before the response header
// The same controls exist as command-line defaults. GET /stats reports counters.
//
// A scripted answer, for benchmarks with known results (`semrouter bench`'s tests): a message
// whose text holds a marker such as
//   [[mock answer=C thinking_answer=B tokens=4 reasoning_tokens=40 prompt_tokens=30]]
// gets, instead of the usual description, the content "The answer is (C)." (a one-letter answer
// in parentheses, anything else as it is: "The answer is Paris."), followed by `tokens` filler
// chunks. Thinking is on when the request asks for it as the router's reasoning families do
// (chat_template_kwargs.enable_thinking or .thinking true, reasoning_effort medium or high,
// thinking.type "enabled"); then the answer is `thinking_answer` (default: `answer`), a
// reasoning_content part comes first, and usage reports `reasoning_tokens`, counted in the
// completion tokens as OpenAI does (completion_tokens = tokens + reasoning_tokens). With thinking
// off no reasoning tokens are reported. `prompt_tokens` fixes usage.prompt_tokens (default: the
// words of every message). The last marker of the request counts; values contain no spaces.
#include "gateway/beast.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>
#include <simdjson.h>

#include "core/strings.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

namespace core = semrouter::core;

namespace {

struct Options {
  std::string name = "mock";
  int tokens = 5;
  int token_delay_ms = 0;
  int first_byte_delay_ms = 0;
  int fail_status = 0;
  bool echo = true; // mock_headers and mock_echo in non-streamed answers
};

struct Stats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> streams_completed{0};
  std::atomic<uint64_t> streams_aborted{0}; // the client (router) went away mid-stream
};

Options g_options;
Stats g_stats;

struct Controls {
  int status = 0;
  int tokens = 0;
  int token_delay_ms = 0;
  int drop_after = -1;
  int first_byte_delay_ms = 0;
  int reasoning_tokens = 0; // reported as usage.completion_tokens_details.reasoning_tokens
};

// The marker's fields (see the top of the file); -1: not given.
struct Script {
  bool present = false;
  std::string answer;
  std::string thinking_answer;
  int tokens = -1;
  int reasoning_tokens = -1;
  int prompt_tokens = -1;
};

struct Parsed {
  bool ok = false;
  bool thinking = false;                // the request asks for reasoning (see the top of the file)
  bool reasoning_in_completion = false; // scripted: completion_tokens includes reasoning tokens
  Script script;
  std::string model;
  bool stream = false;
  bool include_usage = false;
  std::string reasoning; // a description of the reasoning fields received
  size_t prompt_words = 0;
  Controls controls;
};

// The last "[[mock k=v ...]]" marker in `text`, if any, into `out`.
void read_script(std::string_view text, Script& out) {
  constexpr std::string_view kOpen = "[[mock";
  size_t at = text.rfind(kOpen);
  if (at == std::string_view::npos)
    return;
  size_t end = text.find("]]", at);
  if (end == std::string_view::npos)
    return;
  Script s;
  s.present = true;
  for (std::string_view field :
       core::split(text.substr(at + kOpen.size(), end - at - kOpen.size()), ' ')) {
    size_t eq = field.find('=');
    if (eq == std::string_view::npos)
      continue;
    std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
    auto number = [&] {
      int v = 0;
      for (char c : value)
        v = std::isdigit(static_cast<unsigned char>(c)) ? v * 10 + (c - '0') : v;
      return v;
    };
    if (key == "answer")
      s.answer = std::string(value);
    else if (key == "thinking_answer")
      s.thinking_answer = std::string(value);
    else if (key == "tokens")
      s.tokens = number();
    else if (key == "reasoning_tokens")
      s.reasoning_tokens = number();
    else if (key == "prompt_tokens")
      s.prompt_tokens = number();
  }
  out = std::move(s);
}

int64_t get_int(simdjson::dom::element obj, const char* key, int64_t def) {
  int64_t v = 0;
  if (obj[key].get(v) == simdjson::SUCCESS)
    return v;
  return def;
}

Parsed parse(const std::string& body) {
  thread_local simdjson::dom::parser parser;
  Parsed p;
  p.controls.tokens = g_options.tokens;
  p.controls.token_delay_ms = g_options.token_delay_ms;
  p.controls.first_byte_delay_ms = g_options.first_byte_delay_ms;
  p.controls.status = g_options.fail_status;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS || !doc.is_object())
    return p;
  p.ok = true;
  std::string_view model;
  if (doc["model"].get(model) == simdjson::SUCCESS)
    p.model = std::string(model);
  bool stream = false;
  if (doc["stream"].get(stream) == simdjson::SUCCESS)
    p.stream = stream;
  simdjson::dom::element so;
  if (doc["stream_options"].get(so) == simdjson::SUCCESS && so.is_object()) {
    bool inc = false;
    if (so["include_usage"].get(inc) == simdjson::SUCCESS)
      p.include_usage = inc;
  }
  simdjson::dom::element ctk;
  if (doc["chat_template_kwargs"].get(ctk) == simdjson::SUCCESS) {
    p.reasoning += "chat_template_kwargs=" + simdjson::to_string(ctk);
    bool on = false;
    if ((ctk["enable_thinking"].get(on) == simdjson::SUCCESS && on) ||
        (ctk["thinking"].get(on) == simdjson::SUCCESS && on))
      p.thinking = true;
  }
  std::string_view effort;
  if (doc["reasoning_effort"].get(effort) == simdjson::SUCCESS) {
    if (!p.reasoning.empty())
      p.reasoning += " ";
    p.reasoning += "reasoning_effort=" + std::string(effort);
    if (effort == "medium" || effort == "high")
      p.thinking = true;
  }
  std::string_view thinking_type;
  if (doc["thinking"]["type"].get(thinking_type) == simdjson::SUCCESS && thinking_type == "enabled")
    p.thinking = true;
  simdjson::dom::element messages;
  if (doc["messages"].get(messages) == simdjson::SUCCESS && messages.is_array()) {
    for (simdjson::dom::element m : messages.get_array()) {
      std::string_view content;
      if (m["content"].get(content) == simdjson::SUCCESS) {
        p.prompt_words += core::split(content, ' ').size();
        read_script(content, p.script);
      }
    }
  }
  simdjson::dom::element mock;
  if (doc["mock"].get(mock) == simdjson::SUCCESS && mock.is_object()) {
    p.controls.status = static_cast<int>(get_int(mock, "status", p.controls.status));
    p.controls.tokens = static_cast<int>(get_int(mock, "tokens", p.controls.tokens));
    p.controls.token_delay_ms =
        static_cast<int>(get_int(mock, "token_delay_ms", p.controls.token_delay_ms));
    p.controls.drop_after = static_cast<int>(get_int(mock, "drop_after", -1));
    p.controls.reasoning_tokens =
        static_cast<int>(get_int(mock, "reasoning_tokens", p.controls.reasoning_tokens));
    p.controls.first_byte_delay_ms =
        static_cast<int>(get_int(mock, "first_byte_delay_ms", p.controls.first_byte_delay_ms));
  }
  if (p.script.present) {
    if (p.script.tokens >= 0)
      p.controls.tokens = p.script.tokens;
    p.controls.reasoning_tokens = p.thinking ? std::max(0, p.script.reasoning_tokens) : 0;
    p.reasoning_in_completion = true;
    if (p.script.prompt_tokens >= 0)
      p.prompt_words = static_cast<size_t>(p.script.prompt_tokens);
  }
  return p;
}

std::string answer_text(const Parsed& p) {
  if (p.script.present) {
    const std::string& a = p.thinking && !p.script.thinking_answer.empty()
                               ? p.script.thinking_answer
                               : p.script.answer;
    return a.size() == 1 ? "The answer is (" + a + ")." : "The answer is " + a + ".";
  }
  std::string text = "[" + g_options.name + "] model=" + p.model;
  text += " reasoning=" + (p.reasoning.empty() ? std::string("none") : p.reasoning);
  return text;
}

// Scripted thinking answers start with this reasoning_content; its "(A)" is there so that a
// grader reading it instead of the content would be caught.
constexpr const char* kScriptedReasoning = "Weighing the options, starting with (A).";

bool scripted_reasoning(const Parsed& p) {
  return p.script.present && p.thinking;
}

std::string usage_json(const Parsed& p) {
  const size_t completion =
      static_cast<size_t>(p.controls.tokens) +
      (p.reasoning_in_completion ? static_cast<size_t>(p.controls.reasoning_tokens) : 0);
  return "{\"prompt_tokens\":" + std::to_string(p.prompt_words) +
         ",\"completion_tokens\":" + std::to_string(completion) +
         ",\"total_tokens\":" + std::to_string(p.prompt_words + completion) +
         (p.controls.reasoning_tokens > 0
              ? ",\"completion_tokens_details\":{\"reasoning_tokens\":" +
                    std::to_string(p.controls.reasoning_tokens) + "}"
              : std::string()) +
         "}";
}

awaitable<void> sleep_ms(int ms) {
  if (ms <= 0)
    co_return;
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
}

template <typename Body> awaitable<bool> write(beast::tcp_stream& s, http::response<Body>& res) {
  boost::system::error_code ec;
  co_await http::async_write(s, res, asio::redirect_error(use_awaitable, ec));
  co_return !ec;
}

awaitable<bool> respond_json(beast::tcp_stream& s, unsigned version, bool keep, int status,
                             std::string body) {
  http::response<http::string_body> res{static_cast<http::status>(status), version};
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keep);
  res.body() = std::move(body);
  res.prepare_payload();
  co_return co_await write(s, res);
}

// Returns whether the connection may be kept.
awaitable<bool> completion(beast::tcp_stream& s, const http::request<http::string_body>& req,
                           bool chat) {
  g_stats.requests.fetch_add(1);
  const bool keep = req.keep_alive();
  Parsed p = parse(req.body());
  if (!p.ok)
    co_return co_await respond_json(
        s, req.version(), keep, 400,
        "{\"error\":{\"message\":\"mock: body is not JSON\",\"type\":\"invalid_request_error\","
        "\"param\":null,\"code\":null}}");
  co_await sleep_ms(p.controls.first_byte_delay_ms);
  if (p.controls.status >= 400) {
    co_return co_await respond_json(
        s, req.version(), keep, p.controls.status,
        "{\"error\":{\"message\":\"mock: injected error " + std::to_string(p.controls.status) +
            "\",\"type\":\"mock_error\",\"param\":null,\"code\":\"injected\"}}");
  }
  const std::string id = "chatcmpl-mock-" + std::to_string(g_stats.requests.load());
  const std::string object = chat ? "chat.completion" : "text_completion";
  std::string text = answer_text(p);
  if (!p.stream) {
    std::string full = text;
    for (int i = 0; i < p.controls.tokens; ++i)
      full += " tok" + std::to_string(i);
    std::string body =
        "{\"id\":\"" + id + "\",\"object\":\"" + object + "\",\"created\":1700000000,\"model\":";
    core::append_json_string(body, p.model);
    if (chat) {
      body += ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":";
      core::append_json_string(body, full);
      if (scripted_reasoning(p))
        body += std::string(",\"reasoning_content\":") + core::json_string(kScriptedReasoning);
      body += "},\"finish_reason\":\"stop\"}]";
    } else {
      body += ",\"choices\":[{\"index\":0,\"text\":";
      core::append_json_string(body, full);
      body += ",\"finish_reason\":\"stop\"}]";
    }
    body += ",\"usage\":" + usage_json(p) + ",\"mock_server\":";
    core::append_json_string(body, g_options.name);
    if (!g_options.echo) {
      body += '}';
      co_return co_await respond_json(s, req.version(), keep, 200, std::move(body));
    }
    body += ",\"mock_headers\":{";
    // The request headers as they arrived (names lower-cased), so tests can check what the
    // router added, replaced or dropped.
    bool first_header = true;
    for (const auto& f : req) {
      if (!first_header)
        body += ',';
      first_header = false;
      std::string name(f.name_string());
      for (auto& ch : name)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      core::append_json_string(body, name);
      body += ':';
      core::append_json_string(body, f.value());
    }
    // The echo stays last: tests cut its raw bytes from the end of the body.
    body += "},\"mock_echo\":" + req.body() + "}";
    co_return co_await respond_json(s, req.version(), keep, 200, std::move(body));
  }

  http::response<http::empty_body> res{http::status::ok, req.version()};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.keep_alive(keep);
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  boost::system::error_code ec;
  co_await http::async_write_header(s, sr, asio::redirect_error(use_awaitable, ec));
  if (ec)
    co_return false;
  auto chunk = [&](const std::string& delta_json, const std::string& finish) {
    std::string c = "data: {\"id\":\"" + id + "\",\"object\":\"" + object +
                    ".chunk\",\"created\":1700000000,\"model\":";
    core::append_json_string(c, p.model);
    c += ",\"choices\":[{\"index\":0,";
    c += chat ? "\"delta\":" + delta_json : "\"text\":" + delta_json;
    c += ",\"finish_reason\":" + finish + "}]}\n\n";
    return c;
  };
  auto send = [&](const std::string& data) -> awaitable<bool> {
    boost::system::error_code wec;
    co_await asio::async_write(s, http::make_chunk(asio::buffer(data)),
                               asio::redirect_error(use_awaitable, wec));
    co_return !wec;
  };
  // Scripted thinking: the reasoning comes first, in an event of its own.
  if (chat && scripted_reasoning(p) &&
      !co_await send(chunk("{\"role\":\"assistant\",\"reasoning_content\":" +
                               core::json_string(kScriptedReasoning) + "}",
                           "null"))) {
    g_stats.streams_aborted.fetch_add(1);
    co_return false;
  }
  // First event: the role and the echo of what arrived (as its own field).
  std::string first =
      chat ? chunk("{\"role\":\"assistant\",\"content\":" + core::json_string(text) + "}", "null")
           : chunk(core::json_string(text), "null");
  if (!co_await send(first)) {
    g_stats.streams_aborted.fetch_add(1);
    co_return false;
  }
  for (int i = 0; i < p.controls.tokens; ++i) {
    co_await sleep_ms(p.controls.token_delay_ms);
    if (p.controls.drop_after >= 0 && i >= p.controls.drop_after) {
      boost::system::error_code ignored;
      s.socket().shutdown(tcp::socket::shutdown_both, ignored);
      s.socket().close(ignored);
      co_return false;
    }
    std::string word = " tok" + std::to_string(i);
    std::string data = chat ? chunk("{\"content\":" + core::json_string(word) + "}", "null")
                            : chunk(core::json_string(word), "null");
    if (!co_await send(data)) {
      g_stats.streams_aborted.fetch_add(1);
      co_return false;
    }
  }
  std::string last = chat ? chunk("{}", "\"stop\"") : chunk("\"\"", "\"stop\"");
  if (!co_await send(last)) {
    g_stats.streams_aborted.fetch_add(1);
    co_return false;
  }
  if (p.include_usage) {
    std::string u = "data: {\"id\":\"" + id + "\",\"object\":\"" + object +
                    ".chunk\",\"created\":1700000000,\"model\":" + core::json_string(p.model) +
                    ",\"choices\":[],\"usage\":" + usage_json(p) + "}\n\n";
    if (!co_await send(u)) {
      g_stats.streams_aborted.fetch_add(1);
      co_return false;
    }
  }
  if (!co_await send("data: [DONE]\n\n")) {
    g_stats.streams_aborted.fetch_add(1);
    co_return false;
  }
  co_await asio::async_write(s, http::make_chunk_last(), asio::redirect_error(use_awaitable, ec));
  g_stats.streams_completed.fetch_add(1);
  co_return !ec && keep;
}

awaitable<void> session(tcp::socket socket) {
  beast::tcp_stream s(std::move(socket));
  beast::flat_buffer buf;
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    boost::system::error_code ec;
    co_await http::async_read(s, buf, parser, asio::redirect_error(use_awaitable, ec));
    if (ec)
      break;
    auto req = parser.release();
    std::string target(req.target());
    bool keep = req.keep_alive();
    bool ok = true;
    if (target == "/v1/chat/completions" || target == "/v1/completions") {
      ok = co_await completion(s, req, target == "/v1/chat/completions");
    } else if (target == "/v1/models") {
      ok = co_await respond_json(
          s, req.version(), keep, 200,
          "{\"object\":\"list\",\"data\":[{\"id\":\"mock\",\"object\":\"model\"}]}");
    } else if (target == "/stats") {
      ok = co_await respond_json(
          s, req.version(), keep, 200,
          "{\"requests\":" + std::to_string(g_stats.requests.load()) +
              ",\"streams_completed\":" + std::to_string(g_stats.streams_completed.load()) +
              ",\"streams_aborted\":" + std::to_string(g_stats.streams_aborted.load()) + "}");
    } else if (target == "/health") {
      ok = co_await respond_json(s, req.version(), keep, 200, "{\"status\":\"ok\"}");
    } else {
      ok = co_await respond_json(
          s, req.version(), keep, 404,
          "{\"error\":{\"message\":\"mock: unknown path\",\"type\":\"invalid_request_error\","
          "\"param\":null,\"code\":null}}");
    }
    if (!ok || !keep)
      break;
  }
  boost::system::error_code ignored;
  s.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

awaitable<void> accept_loop(tcp::acceptor& acceptor) {
  while (true) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (!acceptor.is_open())
        co_return;
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket)), asio::detached);
  }
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"mock-upstream: an OpenAI-compatible mock model server for semrouter's tests, demo "
               "and benchmarks."};
  std::string host = "127.0.0.1", ready_file;
  int port = 0;
  app.add_option("--host", host, "Address to listen on");
  app.add_option("--port", port, "Port (0 picks a free port)")->check(CLI::Range(0, 65535));
  app.add_option("--ready-file", ready_file, "Write {\"port\":N} here once listening");
  app.add_option("--name", g_options.name, "Name shown in answers");
  app.add_option("--tokens", g_options.tokens, "Content chunks per answer")
      ->check(CLI::Range(0, 100000));
  app.add_option("--token-delay-ms", g_options.token_delay_ms, "Delay before each streamed chunk");
  app.add_option("--first-byte-delay-ms", g_options.first_byte_delay_ms,
                 "Delay before each response header");
  app.add_option("--fail-status", g_options.fail_status,
                 "Answer every completion with this HTTP status");
  app.add_flag("!--no-echo", g_options.echo,
               "Leave the request's headers and body out of non-streamed answers (a real "
               "server's answer size, for benchmarks with long prompts)");
  CLI11_PARSE(app, argc, argv);

  asio::io_context ioc(1);
  boost::system::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(host, ec), static_cast<uint16_t>(port));
  if (ec) {
    std::fprintf(stderr, "mock-upstream: invalid --host %s\n", host.c_str());
    return 2;
  }
  tcp::acceptor acceptor(ioc);
  acceptor.open(ep.protocol(), ec);
  if (!ec)
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    acceptor.bind(ep, ec);
  if (!ec)
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::fprintf(stderr, "mock-upstream: cannot listen on %s:%d: %s\n", host.c_str(), port,
                 ec.message().c_str());
    return 1;
  }
  uint16_t bound = acceptor.local_endpoint().port();
  std::fprintf(stderr, "mock-upstream %s listening on http://%s:%u\n", g_options.name.c_str(),
               host.c_str(), bound);
  if (!ready_file.empty()) {
    std::ofstream(ready_file + ".tmp") << "{\"port\":" << bound << "}\n";
    std::rename((ready_file + ".tmp").c_str(), ready_file.c_str());
  }
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    acceptor.close();
    ioc.stop();
  });
  asio::co_spawn(ioc, accept_loop(acceptor), asio::detached);
  ioc.run();
  return 0;
}
