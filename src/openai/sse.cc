#include "openai/sse.h"

#include <charconv>
#include <cstring>
#include <optional>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/strings.h"
#include "openai/json_reader.h"
#include "openai/request.h"

namespace semrouter::openai {

namespace {

// The first CR or LF at or after i, or s.size(): sixteen bytes at a time.
size_t find_line_break(std::string_view s, size_t i) {
  const char* p = s.data();
  const size_t n = s.size();
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    if (const unsigned mask =
            unsigned(_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)))))
      return i + static_cast<size_t>(__builtin_ctz(mask));
  }
#endif
  for (; i < n; ++i)
    if (p[i] == '\r' || p[i] == '\n')
      return i;
  return n;
}

// Whether `text` holds the key "usage" (with its quotes). Asked of every event of a stream.
bool mentions_usage(std::string_view text) {
  return core::find_short(text, "\"usage\"") != std::string_view::npos;
}

// A field line (not blank): its value when it is a data line ("data", "data:" or "data: x"; a
// comment starts with ':' and is no field).
bool data_value(std::string_view l, std::string_view& value) {
  if (!l.starts_with("data"))
    return false;
  if (l.size() == 4) {
    value = {};
    return true;
  }
  if (l[4] != ':')
    return false;
  value = l.substr(5);
  if (!value.empty() && value.front() == ' ')
    value.remove_prefix(1);
  return true;
}

} // namespace

std::span<const std::string> SseParser::feed(std::string_view bytes) {
  ready_ = 0;
  size_t start = 0;
  if (after_cr_ && !bytes.empty()) {
    after_cr_ = false;
    if (bytes.front() == '\n')
      start = 1; // the LF of a CRLF cut between pieces
  }
  while (start < bytes.size()) {
    size_t i = find_line_break(bytes, start);
    if (i == bytes.size())
      break;
    const std::string_view piece = bytes.substr(start, i - start);
    if (!partial_line_.empty()) {
      partial_line_.append(piece);
      line(partial_line_);
      partial_line_.clear();
    } else {
      line(piece);
    }
    if (bytes[i] == '\r') {
      if (i + 1 == bytes.size())
        after_cr_ = true;
      else if (bytes[i + 1] == '\n')
        ++i;
    }
    start = i + 1;
  }
  partial_line_.append(bytes.substr(start));
  return {events_.data(), ready_};
}

void SseParser::line(std::string_view l) {
  if (l.empty()) { // dispatch
    if (has_data_) {
      if (ready_ == events_.size())
        events_.emplace_back();
      events_[ready_++].swap(data_); // data_ takes the old event's buffer
    }
    data_.clear();
    has_data_ = false;
    return;
  }
  std::string_view value;
  if (!data_value(l, value))
    return; // a comment, or a field the tap does not read (event, id, retry)
  if (has_data_)
    data_.push_back('\n');
  data_.append(value);
  has_data_ = true;
}

void StreamUsageFilter::feed(std::string_view piece, std::string& out, SseEventSink* events) {
  size_t begin = 0; // where the current event's bytes in `piece` start
  // The current event ends before piece[end]: the client gets what is left of it.
  auto dispatch = [&](size_t end) {
    const std::string_view tail = piece.substr(begin, end - begin);
    if (oversized_) {
      out.append(tail);
      pass_oversized(tail, events);
      oversized_ = false;
      reader_ = SseParser{};
    } else if (held_.empty()) {
      event(tail, out, events);
    } else {
      held_.append(tail);
      event(held_, out, events);
      held_.clear();
    }
    begin = end;
  };
  for (size_t i = 0; i < piece.size(); ++i) {
    if (!ends_after_cr_ && !after_cr_) {
      // Up to the next line break every byte is an ordinary one: jump there.
      const size_t j = find_line_break(piece, i);
      if (j > i)
        line_start_ = false;
      if (j == piece.size())
        break;
      i = j;
    }
    const char c = piece[i];
    if (ends_after_cr_) {
      ends_after_cr_ = false;
      if (c == '\n') { // the LF of the blank line's CRLF belongs to the event
        dispatch(i + 1);
        continue;
      }
      dispatch(i); // a lone CR ended it; c starts the next event
    }
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n')
        continue; // CRLF: one line end
    }
    if (c != '\n' && c != '\r') {
      line_start_ = false;
      continue;
    }
    if (!line_start_) { // the end of a field line
      line_start_ = true;
      after_cr_ = c == '\r';
    } else if (c == '\r') { // a blank line: the event is complete once we know whether LF follows
      ends_after_cr_ = true;
    } else {
      dispatch(i + 1);
    }
  }
  const std::string_view rest = piece.substr(begin);
  if (oversized_) {
    out.append(rest);
    pass_oversized(rest, events);
    return;
  }
  held_.append(rest);
  if (held_.size() > max_held_) { // no usage event is this large: stop holding it back
    out.append(held_);
    pass_oversized(held_, events);
    held_.clear();
    oversized_ = true;
  }
}

void StreamUsageFilter::pass_oversized(std::string_view bytes, SseEventSink* events) {
  if (events)
    for (const std::string& data : reader_.feed(bytes))
      events->sse_event(data, mentions_usage(data));
}

void StreamUsageFilter::finish(std::string& out, SseEventSink* events) {
  if (ends_after_cr_ && !oversized_)
    event(held_, out, events); // complete: its blank line ended with the stream
  else
    out.append(held_); // unfinished: as it is
  held_.clear();
  line_start_ = true;
  after_cr_ = ends_after_cr_ = oversized_ = false;
  reader_ = SseParser{};
}

void StreamUsageFilter::tap(std::string_view e, bool usage, SseEventSink& events) {
  // Nearly every event is one data line and its blank line: its value, in place.
  std::string_view value;
  if (const size_t j = find_line_break(e, 0); j < e.size() && data_value(e.substr(0, j), value)) {
    const size_t k = j + (e[j] == '\r' && j + 1 < e.size() && e[j + 1] == '\n' ? 2 : 1);
    const size_t rest = e.size() - k;
    if (rest == 1 || (rest == 2 && e[k] == '\r' && e[k + 1] == '\n')) {
      events.sse_event(value, usage);
      return;
    }
  }
  // Otherwise (several lines, comments, other fields) SseParser reads the event.
  for (const std::string& data : reader_.feed(e))
    events.sse_event(data, usage);
  reader_ = SseParser{}; // a CR-ended event leaves it waiting for an LF
}

void StreamUsageFilter::event(std::string_view e, std::string& out, SseEventSink* events) {
  const bool mentioned = mentions_usage(e);
  if (events)
    tap(e, mentioned, *events);
  if (!mentioned) {
    out.append(e);
    return;
  }
  // The payload of its data line (an event of several data lines is not a chunk: as it is).
  size_t payload_begin = 0, payload_end = 0;
  int data_lines = 0;
  for (size_t i = 0; i < e.size();) {
    size_t end = e.find_first_of("\r\n", i);
    if (end == std::string_view::npos)
      end = e.size();
    if (e.substr(i, end - i).starts_with("data:")) {
      ++data_lines;
      payload_begin = i + 5;
      if (payload_begin < end && e[payload_begin] == ' ')
        ++payload_begin;
      payload_end = end;
    }
    i = end;
    if (i < e.size() && e[i] == '\r')
      ++i;
    if (i < e.size() && e[i] == '\n')
      ++i;
  }
  if (data_lines != 1) {
    out.append(e);
    return;
  }
  const std::string_view payload = e.substr(payload_begin, payload_end - payload_begin);
  auto fields = scan_top_level(payload);
  if (!fields) {
    out.append(e);
    return;
  }
  size_t usage = fields->size();
  const TopLevelField* choices = nullptr;
  for (size_t i = 0; i < fields->size(); ++i) {
    if ((*fields)[i].key == "usage")
      usage = i;
    else if ((*fields)[i].key == "choices")
      choices = &(*fields)[i];
  }
  if (usage == fields->size()) {
    out.append(e);
    return;
  }
  auto value_of = [&](const TopLevelField& f) {
    return payload.substr(f.value.begin, f.value.end - f.value.begin);
  };
  const TopLevelField& u = (*fields)[usage];
  const std::string_view value = value_of(u);
  if (value == "null") {
    // Cut the member with one of its commas: the one before it, or (first) the one after it.
    size_t cut_begin = u.key_span.begin, cut_end = u.value.end;
    if (usage > 0)
      cut_begin = (*fields)[usage - 1].value.end;
    else if (fields->size() > 1)
      cut_end = (*fields)[1].key_span.begin;
    out.append(e.substr(0, payload_begin + cut_begin));
    out.append(e.substr(payload_begin + cut_end));
    return;
  }
  bool no_choices = choices == nullptr;
  if (choices) {
    const std::string_view c = value_of(*choices);
    no_choices =
        c.size() >= 2 && c.front() == '[' && c.find_first_not_of(" \t\r\n", 1) == c.size() - 1;
  }
  // The usage-only event is dropped. Usage on a chunk with choices stays: the content must reach
  // the client, and a server that sends it so sends it unasked too.
  if (!value.starts_with('{') || !no_choices)
    out.append(e);
}

namespace {

// A count: a whole number within 64 bits (JsonReader checked the value's grammar). Anything else
// (a string, 1.5, 1e3, -1, 2^64) leaves `out` as it was.
void read_count(std::string_view value, uint64_t& out) {
  uint64_t v = 0;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, v);
  if (ec == std::errc() && ptr == end)
    out = v;
}

// The value of the first member whose key, as written, is `key` (an escaped spelling is not
// looked for, as simdjson's find_field did not), in the JSON object `text` holds: whitespace
// around it, nothing else. Empty when no member has the key; nullopt when `text` is no such
// object.
std::optional<std::string_view> first_member(std::string_view text, std::string_view key) {
  JsonReader r(text);
  r.skip_ws();
  if (r.peek() != '{')
    return std::nullopt;
  std::string_view found;
  const bool ok = r.object(1, [&](Span k, bool, int depth) {
    const size_t begin = r.pos();
    if (!r.value(depth))
      return false;
    if (found.empty() && key_text(text, k) == key)
      found = text.substr(begin, r.pos() - begin);
    return true;
  });
  r.skip_ws();
  if (!ok || r.pos() != text.size())
    return std::nullopt;
  return found;
}

// Reads a "usage" object (its text, braces included). The object is validated whole before any
// count is kept: a malformed member after a good one ({"prompt_tokens":5,1}) gives nothing, not
// half a reading (the fuzzer found this). Stricter than simdjson's on-demand reading was: a
// member this reads past (1e400, a lone surrogate escape) spoils the object too. A repeated
// count keeps its last valid reading; of completion_tokens_details, the first
// "reasoning_tokens" counts.
Usage read_usage(std::string_view usage) {
  Usage read;
  std::string scratch;
  JsonReader r(usage);
  if (r.peek() != '{')
    return {};
  const bool ok = r.object(1, [&](Span key, bool escaped, int depth) {
    const size_t begin = r.pos();
    if (!r.value(depth))
      return false;
    const std::string_view value = usage.substr(begin, r.pos() - begin);
    const std::string_view name = key_name(usage, key, escaped, scratch);
    if (name == "prompt_tokens") {
      read_count(value, read.prompt_tokens);
    } else if (name == "completion_tokens") {
      read_count(value, read.completion_tokens);
    } else if (name == "completion_tokens_details") {
      if (const auto reasoning = first_member(value, "reasoning_tokens"))
        read_count(*reasoning, read.reasoning_tokens);
    }
    return true;
  });
  if (!ok || r.pos() != usage.size())
    return {};
  read.present = true;
  return read;
}

} // namespace

Usage parse_usage(std::string_view json) {
  if (!mentions_usage(json))
    return {};
  // Only "usage" is read. find_top_level walks the top level (no tree, no copy of the answer)
  // and JsonReader reads the usage object alone: running simdjson over the whole answer was
  // about 7% of a proxied request's instructions, and over the usage object alone 2%. A key
  // with an escape, or JSON the walk cannot follow, has the whole answer read strictly.
  const TopLevelHit hit = find_top_level(json, "usage");
  if (hit.result == TopLevelFind::Absent)
    return {};
  std::string_view usage;
  if (hit.result == TopLevelFind::Found) {
    usage = json.substr(hit.value.begin, hit.value.end - hit.value.begin);
  } else {
    // The first member whose key is "usage" as written, in an answer that is JSON throughout.
    const auto found = first_member(json, "usage");
    if (!found)
      return {};
    usage = *found;
  }
  // "usage": null, in every chunk of an OpenAI stream asked to include usage.
  if (usage == "null")
    return {};
  return read_usage(usage);
}

} // namespace semrouter::openai
