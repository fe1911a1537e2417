// openai::SseParser (the tap on every streamed answer), parse_usage and the cache's AnswerCapture
// over what it yields. Input: an upstream's SSE bytes (or a whole answer body). Checks: the
// events do not depend on how the bytes are cut; a captured answer survives the cache's stored
// form; the usage filter's output does not depend on the cuts either, and the events it hands
// the accounting tap are the ones SseParser reads.
#include "fuzz_util.h"
#include "openai/answer.h"
#include "openai/sse.h"

using namespace semrouter;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = fuzz::as_text(data, size);

  openai::SseParser whole;
  const auto all = whole.feed(bytes);
  const std::vector<std::string> expected(all.begin(), all.end());

  openai::SseParser cut;
  std::vector<std::string> events;
  for (std::string_view piece : fuzz::split_pieces(bytes, static_cast<uint32_t>(size))) {
    const auto got = cut.feed(piece);
    events.insert(events.end(), got.begin(), got.end());
  }
  FUZZ_CHECK(events == expected);

  // The usage filter gives a client the same bytes however the stream was cut, and hands its
  // sink (the accounting tap) exactly the events SseParser reads from them.
  struct Sink final : openai::SseEventSink {
    std::vector<std::string> data;
    void sse_event(std::string_view d, bool mentions_usage) override {
      FUZZ_CHECK(mentions_usage || d.find("\"usage\"") == std::string_view::npos);
      data.emplace_back(d);
    }
  } sink_whole, sink_cut;
  std::string filtered_whole, filtered_cut, filtered_plain;
  openai::StreamUsageFilter fw, fc, fp;
  fw.feed(bytes, filtered_whole, &sink_whole);
  fw.finish(filtered_whole, &sink_whole);
  for (std::string_view piece : fuzz::split_pieces(bytes, static_cast<uint32_t>(size) ^ 0x5bd1u))
    fc.feed(piece, filtered_cut, &sink_cut);
  fc.finish(filtered_cut, &sink_cut);
  fp.feed(bytes, filtered_plain);
  fp.finish(filtered_plain);
  FUZZ_CHECK(filtered_whole == filtered_cut);
  FUZZ_CHECK(filtered_whole == filtered_plain);
  FUZZ_CHECK(sink_whole.data == expected);
  FUZZ_CHECK(sink_cut.data == expected);
  // With a tiny hold limit most events outgrow it and pass unfiltered: the sink must still get
  // every event (through the filter's own SseParser), however the bytes are cut.
  const size_t limit = 1 + (size ? data[0] % 48 : 0);
  openai::StreamUsageFilter small_whole(limit), small_cut(limit);
  Sink sink_small_whole, sink_small_cut;
  std::string small_out_whole, small_out_cut;
  small_whole.feed(bytes, small_out_whole, &sink_small_whole);
  small_whole.finish(small_out_whole, &sink_small_whole);
  for (std::string_view piece : fuzz::split_pieces(bytes, static_cast<uint32_t>(size) ^ 0x77u))
    small_cut.feed(piece, small_out_cut, &sink_small_cut);
  small_cut.finish(small_out_cut, &sink_small_cut);
  FUZZ_CHECK(sink_small_whole.data == expected);
  FUZZ_CHECK(sink_small_cut.data == expected);

  for (const auto& e : expected) {
    openai::Usage u = openai::parse_usage(e);
    FUZZ_CHECK(u.present || (u.prompt_tokens == 0 && u.completion_tokens == 0));
  }
  openai::parse_usage(bytes); // a whole non-streamed answer

  openai::AnswerCapture streamed, whole_body;
  for (const auto& e : expected)
    streamed.event(e);
  whole_body.body(bytes);
  for (const openai::AnswerCapture* c : {&streamed, &whole_body}) {
    if (!c->complete())
      continue;
    auto back = openai::answer_from_json(openai::answer_to_json(c->answer()));
    FUZZ_CHECK(back.has_value());
    FUZZ_CHECK(back->content == c->answer().content);
    FUZZ_CHECK(back->model == c->answer().model);
    FUZZ_CHECK(back->completion_tokens == c->answer().completion_tokens);
    FUZZ_CHECK(back->tool_calls_json.empty() == c->answer().tool_calls_json.empty());
  }
  return 0;
}
