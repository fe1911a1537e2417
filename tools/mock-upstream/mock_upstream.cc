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
#include "gateway/beast.h"

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

struct Parsed {
  bool ok = false;
  std::string model;
  bool stream = false;
  bool include_usage = false;
  std::string reasoning; // a description of the reasoning fields received
  size_t prompt_words = 0;
  Controls controls;
};

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
  if (doc["chat_template_kwargs"].get(ctk) == simdjson::SUCCESS)
    p.reasoning += "chat_template_kwargs=" + simdjson::to_string(ctk);
  std::string_view effort;
  if (doc["reasoning_effort"].get(effort) == simdjson::SUCCESS) {
    if (!p.reasoning.empty())
      p.reasoning += " ";
    p.reasoning += "reasoning_effort=" + std::string(effort);
  }
  simdjson::dom::element messages;
  if (doc["messages"].get(messages) == simdjson::SUCCESS && messages.is_array()) {
    for (simdjson::dom::element m : messages.get_array()) {
      std::string_view content;
      if (m["content"].get(content) == simdjson::SUCCESS) {
        p.prompt_words += core::split(content, ' ').size();
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
  return p;
}

std::string answer_text(const Parsed& p) {
  std::string text = "[" + g_options.name + "] model=" + p.model;
  text += " reasoning=" + (p.reasoning.empty() ? std::string("none") : p.reasoning);
  return text;
}

std::string usage_json(const Parsed& p) {
  return "{\"prompt_tokens\":" + std::to_string(p.prompt_words) +
         ",\"completion_tokens\":" + std::to_string(p.controls.tokens) + ",\"total_tokens\":" +
         std::to_string(p.prompt_words + static_cast<size_t>(p.controls.tokens)) +
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
      body += "},\"finish_reason\":\"stop\"}]";
    } else {
      body += ",\"choices\":[{\"index\":0,\"text\":";
      core::append_json_string(body, full);
      body += ",\"finish_reason\":\"stop\"}]";
    }
    body += ",\"usage\":" + usage_json(p) + ",\"mock_server\":";
    core::append_json_string(body, g_options.name);
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
