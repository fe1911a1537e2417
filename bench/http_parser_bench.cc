// src/http's parsers against Boost.Beast's, side by side on the same bytes (src/http/README.md):
//  - Request: a typical POST /v1/chat/completions, a 228-byte head with 8 headers and a 60-byte
//    JSON body, all in one buffer, collected into a string (what the gateway does with a client's
//    request). Beast gets a fresh request_parser<string_body> per request, as the gateway uses it.
//  - Response: a typical upstream head (9 headers) and a small JSON body, relayed through a
//    buffer: Beast's response_parser<buffer_body> copies the body into it, ours hands out views.
//  - Stream: a chunked SSE answer of kStreamEvents events, piece by piece.
// Each does the lookups the gateway does on every message (two headers), so neither side can
// skip building its header list.
//
// Only this benchmark includes Beast (through the precompiled header of semrouter_asio).
#include <benchmark/benchmark.h>

#include <string>

#include "gateway/beast.h"
#include "http/request_parser.h"
#include "http/response_parser.h"
#include "http/writer.h"

namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace asio = boost::asio;
using namespace semrouter;

constexpr size_t kRelayBufferBytes = 16 * 1024; // the gateway's relay buffer
constexpr size_t kMaxHeaderBytes = 16 * 1024;
constexpr uint64_t kMaxBodyBytes = 8u << 20;
constexpr int kStreamEvents = 16;

const std::string kBody = R"({"model":"auto","messages":[{"role":"user","content":"Hi"}]})";

const std::string kRequest = "POST /v1/chat/completions HTTP/1.1\r\n"
                             "Host: 127.0.0.1:8801\r\n"
                             "User-Agent: curl/8.5.0\r\n"
                             "Accept: */*\r\n"
                             "Content-Type: application/json\r\n"
                             "Authorization: Bearer sk-test\r\n"
                             "X-Request-Id: 7d1c0e4a\r\n"
                             "Connection: keep-alive\r\n"
                             "Content-Length: " +
                             std::to_string(kBody.size()) + "\r\n\r\n" + kBody;

const std::string kAnswer =
    R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m",)"
    R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help?"},)"
    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}})";

const std::string kResponse = "HTTP/1.1 200 OK\r\n"
                              "date: Mon, 03 Mar 2025 10:00:00 GMT\r\n"
                              "server: uvicorn\r\n"
                              "content-type: application/json\r\n"
                              "x-request-id: 7d1c0e4a\r\n"
                              "openai-processing-ms: 412\r\n"
                              "x-ratelimit-remaining-requests: 9999\r\n"
                              "x-ratelimit-remaining-tokens: 199000\r\n"
                              "connection: keep-alive\r\n"
                              "content-length: " +
                              std::to_string(kAnswer.size()) + "\r\n\r\n" + kAnswer;

std::string make_stream() {
  std::string s = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                  "cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
  for (int i = 0; i < kStreamEvents; ++i)
    http::append_chunk(s, R"(data: {"id":"c","object":"chat.completion.chunk","choices":)"
                          R"([{"index":0,"delta":{"content":" word"}}]})"
                          "\n\n");
  s += http::kLastChunk;
  return s;
}
const std::string kStream = make_stream();

// ---- ours ----

void BM_Request_Ours(benchmark::State& state) {
  http::Options options;
  options.max_header_bytes = kMaxHeaderBytes;
  options.max_body_bytes = kMaxBodyBytes;
  http::RequestParser parser(options);
  std::string body;
  for (auto _ : state) {
    parser.reset();
    body.clear();
    std::string_view in = kRequest;
    while (true) {
      const http::ParseResult r = parser.parse(in);
      in.remove_prefix(r.consumed);
      if (r.event == http::Event::Body)
        body.append(r.body);
      else if (r.event != http::Event::Head)
        break;
    }
    benchmark::DoNotOptimize(parser.header("content-type").size());
    benchmark::DoNotOptimize(parser.header("authorization").size());
    benchmark::DoNotOptimize(body.data());
  }
  if (body != kBody)
    state.SkipWithError("wrong body");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRequest.size()));
}

template <const std::string& Wire> void BM_Response_Ours(benchmark::State& state) {
  http::ResponseParser parser;
  std::string body;
  for (auto _ : state) {
    parser.reset();
    body.clear();
    std::string_view in = Wire;
    while (true) {
      const http::ParseResult r = parser.parse(in);
      in.remove_prefix(r.consumed);
      if (r.event == http::Event::Body)
        body.append(r.body);
      else if (r.event != http::Event::Head)
        break;
    }
    benchmark::DoNotOptimize(parser.header("content-type").size());
    benchmark::DoNotOptimize(parser.header("x-request-id").size());
    benchmark::DoNotOptimize(body.data());
  }
  if (!parser.keep_alive())
    state.SkipWithError("not complete");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * Wire.size()));
}

// ---- Beast ----

void BM_Request_Beast(benchmark::State& state) {
  std::string body;
  for (auto _ : state) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(kMaxBodyBytes);
    parser.eager(true);
    beast::error_code ec;
    asio::const_buffer in(kRequest.data(), kRequest.size());
    while (!parser.is_done() && in.size() > 0) {
      const size_t used = parser.put(in, ec);
      in += used;
      if (ec || used == 0)
        break;
    }
    const auto& req = parser.get();
    benchmark::DoNotOptimize(req[bhttp::field::content_type].size());
    benchmark::DoNotOptimize(req["authorization"].size());
    body = parser.release().body();
    benchmark::DoNotOptimize(body.data());
  }
  if (body != kBody)
    state.SkipWithError("wrong body");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRequest.size()));
}

// As the gateway's read_piece(): the body goes through the relay buffer.
template <const std::string& Wire> void BM_Response_Beast(benchmark::State& state) {
  std::string relay(kRelayBufferBytes, '\0');
  std::string body;
  bool ok = true;
  for (auto _ : state) {
    body.clear();
    bhttp::response_parser<bhttp::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    beast::error_code ec;
    asio::const_buffer in(Wire.data(), Wire.size());
    in += parser.put(in, ec); // the head
    const auto& res = parser.get();
    benchmark::DoNotOptimize(res[bhttp::field::content_type].size());
    benchmark::DoNotOptimize(res["x-request-id"].size());
    while (!ec && !parser.is_done()) {
      parser.get().body().data = relay.data();
      parser.get().body().size = relay.size();
      in += parser.put(in, ec);
      if (ec == bhttp::error::need_buffer)
        ec = {};
      body.append(relay.data(), relay.size() - parser.get().body().size);
    }
    ok = ok && !ec && parser.keep_alive();
    benchmark::DoNotOptimize(body.data());
  }
  if (!ok)
    state.SkipWithError("not complete");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * Wire.size()));
}

BENCHMARK(BM_Request_Ours);
BENCHMARK(BM_Request_Beast);
BENCHMARK(BM_Response_Ours<kResponse>)->Name("BM_Response_Ours");
BENCHMARK(BM_Response_Beast<kResponse>)->Name("BM_Response_Beast");
BENCHMARK(BM_Response_Ours<kStream>)->Name("BM_Stream_Ours");
BENCHMARK(BM_Response_Beast<kStream>)->Name("BM_Stream_Beast");

} // namespace

BENCHMARK_MAIN();
