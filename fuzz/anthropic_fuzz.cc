// The Anthropic Messages translation (openai/anthropic.h), both directions.
// Input: a mode byte, then the bytes. The mode (its value modulo 8; seeds write it as a digit)
// picks the entry point:
//   0 request_to_chat        (an Anthropic client's request)
//   1 request_from_chat      (a routed chat request to an Anthropic backend)
//   2 response_to_chat       (an Anthropic backend's answer)
//   3 response_from_chat     (a chat backend's answer for an Anthropic client)
//   4 error_to_openai, error_from_openai (an error body, the status from the next byte)
//   5 StreamToChat           (an Anthropic backend's SSE)
//   6 StreamFromChat         (a chat backend's SSE for an Anthropic client)
//   7 all of 0-3 on the same bytes
// Checks: every output is valid JSON (the header promises it for hostile input too); a
// translated request is a chat request parse_request reads; a stream's output is the same
// whether the bytes come whole or in pieces, and each event's data is JSON.
#include "fuzz_util.h"
#include "openai/anthropic.h"
#include "openai/request.h"

using namespace semrouter;
namespace anthropic = semrouter::openai::anthropic;

namespace {

void check_json(std::string_view what, const std::string& out) {
  if (!fuzz::valid_json(out)) {
    std::fprintf(stderr, "%.*s: not JSON: %s\n", static_cast<int>(what.size()), what.data(),
                 out.c_str());
    FUZZ_CHECK(false);
  }
}

void requests(std::string_view in) {
  std::string chat;
  openai::ApiError error;
  if (anthropic::request_to_chat(in, chat, error)) {
    check_json("request_to_chat", chat);
    openai::parse_request(chat, openai::RequestKind::ChatCompletions);
    check_json("request_from_chat(request_to_chat)", anthropic::request_from_chat(chat));
  } else {
    FUZZ_CHECK(error.status == 400 && !error.message.empty());
    check_json("error_body", anthropic::error_body(error));
  }
  check_json("request_from_chat", anthropic::request_from_chat(in));
}

void responses(std::string_view in) {
  check_json("response_to_chat", anthropic::response_to_chat(in, 1700000000));
  check_json("response_from_chat", anthropic::response_from_chat(in));
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
    requests(in);
    break;
  case 1:
    check_json("request_from_chat", anthropic::request_from_chat(in));
    break;
  case 2:
    check_json("response_to_chat", anthropic::response_to_chat(in, 1700000000));
    break;
  case 3:
    check_json("response_from_chat", anthropic::response_from_chat(in));
    break;
  case 4: {
    const int status = in.empty() ? 0 : 100 + static_cast<unsigned char>(in[0]) * 2;
    check_json("error_to_openai", anthropic::error_to_openai(in, status));
    check_json("error_from_openai", anthropic::error_from_openai(in, status));
    break;
  }
  case 5:
    stream<anthropic::StreamToChat>(in, int64_t{1700000000}, (data[0] & 8) != 0);
    break;
  case 6:
    stream<anthropic::StreamFromChat>(in);
    break;
  case 7:
    requests(in);
    responses(in);
    break;
  }
  return 0;
}
