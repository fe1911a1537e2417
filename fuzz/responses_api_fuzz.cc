// The OpenAI Responses API translation (openai/responses_api.h).
// Input: a mode byte, then the bytes. The mode (its value modulo 8; seeds write it as a digit)
// picks the entry point:
//   0 request_to_chat, then passthrough_request of the request with a routed chat body made
//     from its translation (model, reasoning_effort, system prompt changed as routing does)
//   1 passthrough_request(original, routed): the two bodies are cut at the first NUL byte
//   2 response_from_chat     (a chat backend's answer for a Responses client)
//   3 response_to_chat       (a native Responses backend's answer)
//   4 StreamFromChat         (a chat backend's SSE for a Responses client)
//   5 StreamToChat           (a native Responses backend's SSE)
//   6, 7 all of 0, 2 and 3 on the same bytes
// Checks: every output is valid JSON; a translated request is a chat request parse_request
// reads; a stream's output is the same whether the bytes come whole or in pieces, and each
// event's data is JSON.
#include "fuzz_util.h"
#include "openai/request.h"
#include "openai/responses_api.h"

using namespace semrouter;
namespace rapi = semrouter::openai::responses_api;

namespace {

constexpr std::string_view kResponseId = "resp_0123456789abcdef0123456789abcdef";

void check_json(std::string_view what, const std::string& out) {
  if (!fuzz::valid_json(out)) {
    std::fprintf(stderr, "%.*s: not JSON: %s\n", static_cast<int>(what.size()), what.data(),
                 out.c_str());
    FUZZ_CHECK(false);
  }
}

void request(std::string_view in) {
  rapi::ChatRequest chat;
  openai::ApiError error;
  if (!rapi::request_to_chat(in, chat, error)) {
    FUZZ_CHECK(error.status == 400 && !error.message.empty());
    return;
  }
  check_json("request_to_chat", chat.body);
  auto view = openai::parse_request(chat.body, openai::RequestKind::ChatCompletions);
  if (!view) {
    check_json("passthrough_request", rapi::passthrough_request(in, chat.body));
    return;
  }
  openai::BodyEditor editor(chat.body, *view);
  editor.set_top_level("model", "\"org/routed\"");
  editor.set_top_level("reasoning_effort", "\"high\"");
  editor.set_system_prompt("Routed \"prompt\".", false);
  editor.remove_top_level("tools");
  const std::string routed = editor.apply();
  check_json("passthrough_request", rapi::passthrough_request(in, routed));
}

void responses(std::string_view in) {
  check_json("response_from_chat", rapi::response_from_chat(in, kResponseId));
  check_json("response_to_chat", rapi::response_to_chat(in));
}

// Feeds the stream whole, then in pieces, then (short ones) byte by byte; the outputs must agree.
template <typename Stream, typename... Args> void stream(std::string_view in, Args... args) {
  std::string whole;
  Stream a(args...);
  a.feed(in, whole);
  a.finish(whole);
  a.finish(whole); // idempotent
  fuzz::check_sse_json(whole);

  std::string cut;
  Stream b(args...);
  for (std::string_view piece : fuzz::split_pieces(in, static_cast<uint32_t>(in.size())))
    b.feed(piece, cut);
  b.finish(cut);
  FUZZ_CHECK(cut == whole);

  if (in.size() > 1024) // a feed call per byte is slow under the sanitizers
    return;
  std::string bytewise;
  Stream c(args...);
  for (size_t i = 0; i < in.size(); ++i)
    c.feed(in.substr(i, 1), bytewise);
  c.finish(bytewise);
  FUZZ_CHECK(bytewise == whole);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  const std::string_view in = fuzz::as_text(data + 1, size - 1);
  switch (data[0] % 8) {
  case 0:
    request(in);
    break;
  case 1: {
    const size_t nul = in.find('\0');
    const std::string_view original = in.substr(0, nul);
    const std::string_view routed = nul == std::string_view::npos ? "" : in.substr(nul + 1);
    // An original that is not JSON comes back as it is.
    const std::string out = rapi::passthrough_request(original, routed);
    if (fuzz::valid_json(original))
      check_json("passthrough_request", out);
    break;
  }
  case 2:
    check_json("response_from_chat", rapi::response_from_chat(in, kResponseId));
    break;
  case 3:
    check_json("response_to_chat", rapi::response_to_chat(in));
    break;
  case 4:
    stream<rapi::StreamFromChat>(in, std::string(kResponseId));
    break;
  case 5:
    stream<rapi::StreamToChat>(in);
    break;
  default:
    request(in);
    responses(in);
    break;
  }
  return 0;
}
