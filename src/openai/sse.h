// Incremental Server-Sent Events parser. Bytes arrive in arbitrary pieces; complete events come
// out. Used to tap a streamed response (usage, first token) while the raw bytes pass through
// to the client untouched.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace semrouter::openai {

class SseParser {
public:
  // Feeds bytes; returns the `data` payloads of events completed by them (multi-line data
  // joined with '\n'). A line ends at CR, LF or CRLF, as the SSE format has it. The returned
  // strings are valid until the next call (and keep their memory for the events after it: no
  // allocation per event once a stream is going).
  std::span<const std::string> feed(std::string_view bytes);

private:
  void line(std::string_view l);
  std::string partial_line_;
  std::string data_;
  bool has_data_ = false;
  bool after_cr_ = false; // the last piece ended with a CR: an LF first in the next is its CRLF
  std::vector<std::string> events_; // the first ready_ are this feed's
  size_t ready_ = 0;
};

// Receives the events a StreamUsageFilter passes on (or drops): each event's data as SseParser
// yields it, and whether the event's bytes hold the key "usage" (when not, its data cannot carry
// usage). The data is valid during the call only.
class SseEventSink {
public:
  virtual void sse_event(std::string_view data, bool mentions_usage) = 0;

protected:
  ~SseEventSink() = default;
};

// Hides from a chat client the usage the router asked its upstream for on its behalf
// (pipeline::request_stream_usage). A stream requested with stream_options.include_usage carries
// one more event before [DONE], `"choices": []` with the usage, and at OpenAI `"usage": null` in
// every other chunk; the client did not ask for either. The filter drops that usage-only event
// (also one with no "choices" at all) and cuts a top-level `"usage": null` member from the
// others; every other byte passes unchanged, so the client reads the stream it asked for while
// the accounting reads the upstream's bytes. Events may be split anywhere across pieces: the
// unfinished end of a piece is held until its event's blank line arrives (one event at most, up
// to kMaxHeldBytes, beyond which it goes on unfiltered). Only events that mention "usage" are
// parsed. Not thread-safe: one per stream.
class StreamUsageFilter {
public:
  static constexpr size_t kMaxHeldBytes = 1u << 20;
  // `max_held`: where an event stops being held back (tests and the fuzzer use small ones).
  explicit StreamUsageFilter(size_t max_held = kMaxHeldBytes) : max_held_(max_held) {}

  // Appends to `out` what the client gets of the events that `piece` completes. With `events`,
  // also hands it every complete event that has data, dropped or not, in the same pass over the
  // bytes: the accounting tap then needs no SseParser of its own (the events are the ones an
  // SseParser fed the same bytes yields, however the bytes are cut).
  void feed(std::string_view piece, std::string& out, SseEventSink* events = nullptr);
  // The stream ended: the rest of an unfinished event goes out as it is.
  void finish(std::string& out, SseEventSink* events = nullptr);

private:
  void event(std::string_view e, std::string& out, SseEventSink* events);
  void tap(std::string_view e, bool usage, SseEventSink& events);
  void pass_oversized(std::string_view bytes, SseEventSink* events);
  std::string held_; // the current event's bytes from earlier pieces
  // Reads for `events` what the one-data-line fast path does not: an event of several lines, or
  // an oversized one (it is not held); fresh at each event's start.
  SseParser reader_;
  size_t max_held_;
  bool line_start_ = true;     // the next byte starts a line
  bool after_cr_ = false;      // the last byte was a CR ending a line (an LF may follow)
  bool ends_after_cr_ = false; // a CR ended the event's blank line (its LF may follow)
  bool oversized_ = false;     // the current event outgrew kMaxHeldBytes: it passes as is
};

struct Usage {
  bool present = false;
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  uint64_t reasoning_tokens = 0; // completion_tokens_details.reasoning_tokens, when reported
};

// Reads "usage" from a chat completion (or a streamed chunk) JSON; present=false if absent/null.
Usage parse_usage(std::string_view json);

} // namespace semrouter::openai
