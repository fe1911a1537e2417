// openai::SseParser (the tap on every streamed answer) and parse_usage over what it yields.
// Input: an upstream's SSE bytes. Checks: the events do not depend on how the bytes are cut.
#include "fuzz_util.h"
#include "openai/sse.h"

using namespace semrouter;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = fuzz::as_text(data, size);

  openai::SseParser whole;
  const std::vector<std::string> expected = whole.feed(bytes);

  openai::SseParser cut;
  std::vector<std::string> events;
  for (std::string_view piece : fuzz::split_pieces(bytes, static_cast<uint32_t>(size))) {
    const auto& got = cut.feed(piece);
    events.insert(events.end(), got.begin(), got.end());
  }
  FUZZ_CHECK(events == expected);

  for (const auto& e : expected) {
    openai::Usage u = openai::parse_usage(e);
    FUZZ_CHECK(u.present || (u.prompt_tokens == 0 && u.completion_tokens == 0));
  }
  openai::parse_usage(bytes); // a whole non-streamed answer
  return 0;
}
