#include "openai/request.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <nlohmann/json.hpp>

#include "core/strings.h"
#include "openai/json_reader.h"

namespace semrouter::openai {
namespace {

using core::ErrorCode;

size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
    ++i;
  return i;
}

// The index of the first byte at or after i that is a quote or a backslash (in a string), or,
// with `brackets`, a quote or one of {}[] (between values); s.size() when none is. Sixteen bytes
// at a time: the walks below jump from one such byte to the next, and most bytes of a request are
// inside strings.
template <bool brackets>
[[gnu::always_inline]] inline size_t find_special(std::string_view s, size_t i) {
  const char* p = s.data();
  const size_t n = s.size();
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  // With 0x20 set, '[' and '{' both read 0x7B, ']' and '}' both 0x7D; no other byte does.
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    __m128i hit;
    if constexpr (brackets) {
      const __m128i f = _mm_or_si128(v, _mm_set1_epi8(0x20));
      hit = _mm_or_si128(_mm_cmpeq_epi8(f, _mm_set1_epi8(0x7B)),
                         _mm_cmpeq_epi8(f, _mm_set1_epi8(0x7D)));
    } else {
      hit = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    }
    hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, quote));
    if (const unsigned mask = unsigned(_mm_movemask_epi8(hit)))
      return i + static_cast<size_t>(__builtin_ctz(mask));
  }
#endif
  for (; i < n; ++i) {
    const char c = p[i];
    if (c == '"' || (brackets ? (c == '{' || c == '}' || c == '[' || c == ']') : c == '\\'))
      return i;
  }
  return n;
}

// i points at an opening quote; returns the index one past the closing quote (s.size() when the
// string does not end). A backslash escapes the byte after it, whatever that is.
inline size_t skip_string(std::string_view s, size_t i) {
  ++i;
  while (true) {
    i = find_special<false>(s, i);
    if (i >= s.size())
      return s.size();
    if (s[i] == '"')
      return i + 1;
    i += 2; // the backslash and the byte it escapes
  }
}

#if defined(__SSE2__)
// Bit k set where p[k] (k < 64) is one of the bytes `match` picks out of 16 loaded at a time.
template <typename Match> inline uint64_t mask64(const char* p, Match&& match) {
  uint64_t m = 0;
  for (int j = 0; j < 4; ++j) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * j));
    m |= uint64_t(uint32_t(_mm_movemask_epi8(match(v)))) << (16 * j);
  }
  return m;
}

// Bit k of the result is the parity of bits 0..k of x: set from an opening quote up to (not
// including) its closing one.
inline uint64_t prefix_xor(uint64_t x) {
  x ^= x << 1;
  x ^= x << 2;
  x ^= x << 4;
  x ^= x << 8;
  x ^= x << 16;
  x ^= x << 32;
  return x;
}

// i points at '{' or '['; returns one past the bracket that closes it (s.size() when none does).
// Sixty-four bytes at a time, as bit masks: quotes that no backslash escapes delimit strings
// (a running parity), and only the brackets outside strings are walked. A container's strings
// cost nothing each, where a walk from one special byte to the next stops at every quote.
size_t skip_container(std::string_view s, size_t i) {
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t in_string = 0;    // all ones when the last block ended inside a string
  bool escape_first = false; // the last block ended on a backslash that escapes this block's byte 0
  int64_t depth = 0;
  alignas(16) char tail[64];
  for (size_t base = i; base < n; base += 64) {
    const char* b = p + base;
    if (n - base < 64) { // the last bytes, padded with NULs (neither a quote nor a bracket)
      std::memset(tail, 0, sizeof tail);
      std::memcpy(tail, b, n - base);
      b = tail;
    }
    uint64_t quotes = mask64(b, [](__m128i v) { return _mm_cmpeq_epi8(v, _mm_set1_epi8('"')); });
    const uint64_t backslashes =
        mask64(b, [](__m128i v) { return _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')); });
    // With 0x20 set, '[' and '{' both read 0x7B, ']' and '}' both 0x7D; no other byte does.
    const uint64_t opens = mask64(b, [](__m128i v) {
      return _mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8(0x7B));
    });
    const uint64_t closes = mask64(b, [](__m128i v) {
      return _mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8(0x7D));
    });
    if (backslashes || escape_first) {
      // Each backslash not itself escaped escapes the byte after it, in order.
      uint64_t escaped = escape_first ? 1 : 0;
      uint64_t pending = backslashes & ~escaped;
      escape_first = false;
      while (pending) {
        const int k = __builtin_ctzll(pending);
        if (k == 63) {
          escape_first = true;
          break;
        }
        escaped |= uint64_t{1} << (k + 1);
        pending &= k + 2 < 64 ? ~((uint64_t{1} << (k + 2)) - 1) : 0; // bits k+1 and below done
      }
      quotes &= ~escaped;
    }
    const uint64_t strings = prefix_xor(quotes) ^ in_string;
    in_string = uint64_t(int64_t(strings) >> 63);
    const uint64_t open = opens & ~strings;
    uint64_t brackets = (opens | closes) & ~strings;
    while (brackets) {
      const int k = __builtin_ctzll(brackets);
      if ((open >> k) & 1) {
        ++depth;
      } else if (--depth == 0) {
        return base + static_cast<size_t>(k) + 1;
      }
      brackets &= brackets - 1;
    }
  }
  return n;
}
#endif

// i points at the first byte of a value; returns one past its end.
size_t skip_value(std::string_view s, size_t i) {
  if (i >= s.size())
    return i;
  char c = s[i];
  if (c == '"')
    return skip_string(s, i);
  if (c == '{' || c == '[') {
#if defined(__SSE2__)
    return skip_container(s, i);
#else
    int depth = 0;
    while (true) {
      i = find_special<true>(s, i);
      if (i >= s.size())
        return s.size();
      const char d = s[i];
      if (d == '"') {
        i = skip_string(s, i);
        continue;
      }
      if (d == '{' || d == '[') {
        ++depth;
      } else if (--depth == 0) {
        return i + 1;
      }
      ++i;
    }
#endif
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' &&
         s[i] != '\r' && s[i] != '\t')
    ++i;
  return i;
}

std::string decoded(std::string_view body, Span span) {
  return json_text(body.substr(span.begin, span.end - span.begin));
}

bool is_string_at(std::string_view body, Span span) {
  return span.end > span.begin && body[span.begin] == '"';
}

// Walks the members of the JSON object `s` holds, calling field(key, value) with the byte spans
// of each (the key with its quotes) until it returns false. Returns nullptr when the object ends
// or `field` stops the walk, else what was malformed. Values are skipped, not validated.
template <typename Field> const char* walk_top_level(std::string_view s, Field&& field) {
  size_t i = skip_ws(s, 0);
  if (i >= s.size() || s[i] != '{')
    return "expected a JSON object";
  i = skip_ws(s, i + 1);
  if (i < s.size() && s[i] == '}')
    return nullptr;
  while (i < s.size()) {
    if (s[i] != '"')
      return "expected a key";
    const Span key{i, skip_string(s, i)};
    i = skip_ws(s, key.end);
    if (i >= s.size() || s[i] != ':')
      return "expected ':'";
    i = skip_ws(s, i + 1);
    const Span value{i, skip_value(s, i)};
    if (!field(key, value))
      return nullptr;
    i = skip_ws(s, value.end);
    if (i < s.size() && s[i] == ',') {
      i = skip_ws(s, i + 1);
      continue;
    }
    if (i < s.size() && s[i] == '}')
      return nullptr;
    return "expected ',' or '}'";
  }
  return "unterminated object";
}

// What the one pass records of a message: its span, its "role" and "content" values, and the
// first of those two keys it holds twice. Parsers disagree on which duplicate wins (simdjson's
// DOM kept the first, Python keeps the last): classifying one content while the upstream reads
// another is a bypass, so a repeated key is refused, as at the top level.
struct MessageSpans {
  Span span, role, content;
  bool is_object = false, has_role = false, has_content = false;
  const char* duplicate = nullptr;
};

// The text of a message's content value: a string's text, or the text parts of an array
// ({"type":"text","text":...}) joined by "\n". The body is already validated. A part that
// holds "type" or "text" twice sets `duplicate` to that key and `part` to its index (the request
// is refused, for the reason MessageSpans gives).
std::string content_text(std::string_view body, Span content, bool& is_string,
                         const char*& duplicate, size_t& part) {
  is_string = is_string_at(body, content);
  if (is_string)
    return decoded(body, content);
  std::string out;
  if (body[content.begin] != '[')
    return out;
  const std::vector<Span> parts = scan_array_elements(body, content);
  for (part = 0; part < parts.size(); ++part) {
    if (body[parts[part].begin] != '{')
      continue;
    const std::string_view obj =
        body.substr(parts[part].begin, parts[part].end - parts[part].begin);
    Span type, text;
    bool has_type = false, has_text = false;
    std::string scratch;
    walk_top_level(obj, [&](Span key, Span value) {
      const std::string_view k =
          key_name(obj, key, key_text(obj, key).find('\\') != std::string_view::npos, scratch);
      if (k == "type" || k == "text") {
        bool& seen = k == "type" ? has_type : has_text;
        if (seen) {
          duplicate = k == "type" ? "type" : "text";
          return false;
        }
        seen = true;
        (k == "type" ? type : text) = value;
      }
      return true;
    });
    if (duplicate)
      return {};
    if (has_type && has_text && is_string_at(obj, type) && is_string_at(obj, text) &&
        decoded(obj, type) == "text") {
      if (!out.empty())
        out.push_back('\n');
      append_json_text(out, obj.substr(text.begin, text.end - text.begin));
    }
  }
  return out;
}

} // namespace

std::string_view RequestView::latest_user_text() const {
  if (kind == RequestKind::Completions)
    return prompt;
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (it->role == "user")
      return it->text;
  }
  return {};
}

core::StatusOr<std::vector<TopLevelField>> scan_top_level(std::string_view s) {
  std::vector<TopLevelField> out;
  out.reserve(8); // a request's usual fields in one allocation
  const char* bad_key = nullptr;
  const char* bad = walk_top_level(s, [&](Span key, Span value) {
    TopLevelField f;
    f.key_span = key;
    f.value = value;
    const std::string_view raw = key_text(s, key);
    if (raw.find('\\') == std::string_view::npos) {
      f.key = std::string(raw);
    } else {
      // "m\u0065ssages" is "messages" to every JSON parser; it must be to us too.
      auto decoded = nlohmann::json::parse(s.substr(key.begin, key.end - key.begin), nullptr,
                                           /*allow_exceptions=*/false);
      if (!decoded.is_string()) {
        bad_key = "invalid escape in a key";
        return false;
      }
      f.key = decoded.get<std::string>();
    }
    out.push_back(std::move(f));
    return true;
  });
  if (bad || bad_key)
    return core::make_error(ErrorCode::InvalidArgument, bad ? bad : bad_key);
  return out;
}

TopLevelHit find_top_level(std::string_view s, std::string_view key) {
  TopLevelHit hit;
  bool unsure = false;
  const char* bad = walk_top_level(s, [&](Span k, Span value) {
    const std::string_view raw = key_text(s, k);
    if (raw.find('\\') != std::string_view::npos || value.end == value.begin) {
      unsure = true; // an escaped key might spell `key`: only a real parser can tell
      return false;
    }
    if (raw != key)
      return true;
    hit.result = TopLevelFind::Found;
    hit.value = value;
    return false;
  });
  if (!bad && !unsure && hit.result != TopLevelFind::Found)
    hit.result = TopLevelFind::Absent;
  return hit;
}

Span content_span(std::string_view body, const MessageView& message) {
  if (message.span.end > body.size() || message.span.begin >= message.span.end)
    return {};
  const std::string_view text =
      body.substr(message.span.begin, message.span.end - message.span.begin);
  // The last "content", as a parser that keeps the last of a duplicated key reads it.
  Span found;
  bool escaped = false;
  const char* bad = walk_top_level(text, [&](Span key, Span value) {
    const std::string_view raw = key_text(text, key);
    escaped = raw.find('\\') != std::string_view::npos;
    if (!escaped && raw == "content")
      found = value;
    return !escaped;
  });
  if (escaped) { // a key with an escape ("c\u006fntent"): the full scan decodes the keys
    found = {};
    auto fields = scan_top_level(text);
    if (!fields)
      return {};
    for (const auto& f : *fields)
      if (std::string_view(f.key) == "content")
        found = f.value;
  } else if (bad) {
    return {};
  }
  if (found.end <= found.begin)
    return {};
  return {found.begin + message.span.begin, found.end + message.span.begin};
}

std::vector<Span> scan_array_elements(std::string_view s, Span array) {
  std::vector<Span> out;
  if (array.begin >= array.end || array.end > s.size() || s[array.begin] != '[')
    return out; // not an array: no elements (and no endless loop over a string's bytes)
  size_t i = skip_ws(s, array.begin + 1);
  while (i < array.end && s[i] != ']') {
    Span e;
    e.begin = i;
    e.end = skip_value(s, i);
    if (e.end == i)
      break; // a byte no value starts with (malformed JSON): stop rather than spin
    out.push_back(e);
    i = skip_ws(s, e.end);
    if (i < array.end && s[i] == ',')
      i = skip_ws(s, i + 1);
  }
  return out;
}

core::StatusOr<RequestView> parse_request(std::string_view body, RequestKind kind) {
  RequestView view;
  view.kind = kind;
  JsonReader r(body);
  auto invalid = [&] {
    return core::make_error(ErrorCode::InvalidArgument,
                            std::string("the request body is not valid JSON: ") + r.error() +
                                " at byte " + std::to_string(r.pos()));
  };
  r.skip_ws();
  if (r.peek() != '{') {
    // JSON that is not an object is told apart from what is not JSON at all.
    if (!r.value(0))
      return invalid();
    r.skip_ws();
    if (r.pos() != body.size()) {
      r.fail("text after the JSON value");
      return invalid();
    }
    return core::make_error(ErrorCode::InvalidArgument, "the request body must be a JSON object");
  }

  // One pass: every top-level member's span, and the messages array's elements with their "role"
  // and "content" values. What they must hold is checked after the whole body proved to be JSON,
  // so a syntax error anywhere is reported as one.
  std::vector<MessageSpans> messages;
  std::string scratch; // an escaped key's decoded text
  bool messages_read = false;
  view.fields.reserve(8); // a request's usual fields in one allocation
  auto message_member = [&](MessageSpans& m, Span key, bool escaped, int depth) {
    Span value{r.pos(), 0};
    if (!r.value(depth))
      return false;
    value.end = r.pos();
    const std::string_view name = key_name(body, key, escaped, scratch);
    if (name == "role" || name == "content") {
      bool& seen = name == "role" ? m.has_role : m.has_content;
      if (seen && !m.duplicate)
        m.duplicate = name == "role" ? "role" : "content";
      seen = true;
      (name == "role" ? m.role : m.content) = value;
    }
    return true;
  };
  auto message = [&](int depth) {
    MessageSpans m;
    m.span.begin = r.pos();
    if (r.peek() == '{') {
      m.is_object = true;
      if (!r.object(depth + 1, [&](Span key, bool escaped, int d) {
            return message_member(m, key, escaped, d);
          }))
        return false;
    } else if (!r.value(depth)) {
      return false;
    }
    m.span.end = r.pos();
    messages.push_back(m);
    return true;
  };
  const bool parsed = r.object(1, [&](Span key, bool escaped, int depth) {
    TopLevelField f;
    f.key_span = key;
    f.key = std::string(key_name(body, key, escaped, scratch));
    f.value.begin = r.pos();
    bool read;
    if (kind == RequestKind::ChatCompletions && !messages_read &&
        std::string_view(f.key) == "messages" && r.peek() == '[') {
      messages_read = true;
      read = r.array(depth + 1, message);
    } else {
      read = r.value(depth);
    }
    f.value.end = r.pos();
    view.fields.push_back(std::move(f));
    return read;
  });
  if (!parsed)
    return invalid();
  r.skip_ws();
  if (r.pos() != body.size()) {
    r.fail("text after the JSON value");
    return invalid();
  }

  // Parsers disagree on duplicate keys (first wins here, last wins elsewhere): routing one
  // "messages" while the upstream reads another is a bypass. Refuse the ambiguity.
  const auto& fields = view.fields;
  for (size_t i = 0; i < fields.size(); ++i) {
    for (size_t j = i + 1; j < fields.size(); ++j) {
      if (fields[i].key == fields[j].key)
        return core::make_error(ErrorCode::InvalidArgument,
                                fields[i].key + ": duplicate key in the request body");
    }
  }

  Span stream, tools, user, prompt;
  bool has_stream = false, has_tools = false, has_user = false, has_prompt = false,
       has_messages = false;
  for (const auto& f : fields) {
    const std::string_view key = f.key;
    if (key == "model")
      view.model_span = f.value, view.has_model = true;
    else if (key == "messages")
      view.messages_span = f.value, has_messages = true;
    else if (key == "stream")
      stream = f.value, has_stream = true;
    else if (key == "tools")
      tools = f.value, has_tools = true;
    else if (key == "user")
      user = f.value, has_user = true;
    else if (key == "prompt")
      prompt = f.value, has_prompt = true;
  }
  auto text_of = [&](Span s) { return body.substr(s.begin, s.end - s.begin); };
  if (view.has_model) {
    if (!is_string_at(body, view.model_span))
      return core::make_error(ErrorCode::InvalidArgument, "model: must be a string");
    view.model = decoded(body, view.model_span);
  }
  if (has_stream && text_of(stream) != "null") {
    if (text_of(stream) != "true" && text_of(stream) != "false")
      return core::make_error(ErrorCode::InvalidArgument, "stream: must be a boolean");
    view.stream = text_of(stream) == "true";
  }
  if (has_tools && body[tools.begin] == '[')
    view.has_tools = body[body.find_first_not_of(" \t\r\n", tools.begin + 1)] != ']';
  if (has_user && is_string_at(body, user))
    view.user = decoded(body, user);

  if (kind == RequestKind::Completions) {
    if (has_prompt && is_string_at(body, prompt))
      view.prompt = decoded(body, prompt);
    return view;
  }

  if (!has_messages)
    return core::make_error(ErrorCode::InvalidArgument, "messages: is required");
  if (body[view.messages_span.begin] != '[')
    return core::make_error(ErrorCode::InvalidArgument, "messages: must be an array");
  if (messages.empty())
    return core::make_error(ErrorCode::InvalidArgument, "messages: must not be empty");
  view.messages.reserve(messages.size());
  for (size_t index = 0; index < messages.size(); ++index) {
    const MessageSpans& m = messages[index];
    if (!m.is_object)
      return core::make_error(ErrorCode::InvalidArgument,
                              "messages[" + std::to_string(index) + "]: must be an object");
    if (m.duplicate)
      return core::make_error(ErrorCode::InvalidArgument, "messages[" + std::to_string(index) +
                                                              "]." + m.duplicate +
                                                              ": duplicate key in a message");
    if (!m.has_role || !is_string_at(body, m.role))
      return core::make_error(ErrorCode::InvalidArgument,
                              "messages[" + std::to_string(index) +
                                  "].role: is required and must be a string");
    MessageView mv;
    mv.role = decoded(body, m.role);
    if (m.has_content && text_of(m.content) != "null") {
      const char* duplicate = nullptr;
      size_t part = 0;
      mv.text = content_text(body, m.content, mv.content_is_string, duplicate, part);
      if (duplicate)
        return core::make_error(ErrorCode::InvalidArgument,
                                "messages[" + std::to_string(index) + "].content[" +
                                    std::to_string(part) + "]." + duplicate +
                                    ": duplicate key in a content part");
      mv.has_content = true;
    }
    mv.span = m.span;
    view.messages.push_back(std::move(mv));
  }
  return view;
}

BodyEditor::BodyEditor(std::string_view body, const RequestView& view)
    : body_(body), view_(view), fields_(view.fields), closing_brace_(body.rfind('}')) {}

const TopLevelField* BodyEditor::find(std::string_view key) const {
  const TopLevelField* found = nullptr;
  for (const auto& f : fields_) {
    if (f.key == key)
      found = &f; // JSON parsers keep the last duplicate; so do we
  }
  return found;
}

void BodyEditor::set_top_level(std::string_view key, std::string raw_json_value) {
  if (const TopLevelField* f = find(key)) {
    edits_.push_back({f->value.begin, f->value.end, std::move(raw_json_value)});
    return;
  }
  std::string text;
  core::append_json_string(text, key);
  text += ':';
  text += raw_json_value;
  edits_.push_back({closing_brace_, closing_brace_, std::move(text), /*new_key=*/true});
}

void BodyEditor::set_nested(std::string_view key, std::string_view sub,
                            std::string raw_json_value) {
  set_nested(key, {{std::string(sub), std::move(raw_json_value)}});
}

void BodyEditor::set_nested(std::string_view key,
                            const std::vector<std::pair<std::string, std::string>>& subs) {
  nlohmann::ordered_json obj = nlohmann::ordered_json::object();
  if (const TopLevelField* f = find(key)) {
    auto parsed =
        nlohmann::ordered_json::parse(body_.substr(f->value.begin, f->value.end - f->value.begin),
                                      nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object())
      obj = std::move(parsed);
  }
  for (const auto& [sub, raw] : subs)
    obj[sub] = nlohmann::ordered_json::parse(raw, nullptr, false);
  set_top_level(key, obj.dump());
}

void BodyEditor::set_system_prompt(std::string_view content, bool replace) {
  if (view_.kind != RequestKind::ChatCompletions || view_.messages.empty())
    return;
  const MessageView* system = nullptr;
  for (const auto& m : view_.messages) {
    if (m.role == "system" || m.role == "developer") {
      system = &m;
      break;
    }
  }
  const Span found = system ? content_span(body_, *system) : Span{};
  if (found.end > found.begin) {
    std::string text;
    if (replace) {
      text = core::json_string(content);
    } else if (system->content_is_string && !system->text.empty()) {
      std::string joined(content);
      joined += "\n\n";
      joined += system->text;
      text = core::json_string(joined);
    } else if (body_[found.begin] != '[') {
      // Empty string, object, number or boolean: nothing of the client's to keep as text.
      text = core::json_string(content);
    } else {
      // Array content: keep the client's parts and put ours first.
      std::string_view parts = body_.substr(found.begin + 1, found.end - found.begin - 2);
      text = "[{\"type\":\"text\",\"text\":" + core::json_string(content) + "}";
      if (!core::trim(parts).empty()) {
        text += ",";
        text += parts;
      }
      text += "]";
    }
    edits_.push_back({found.begin, found.end, std::move(text)});
    return;
  }
  std::string message = "{\"role\":\"system\",\"content\":" + core::json_string(content) + "},";
  size_t at = view_.messages.front().span.begin;
  edits_.push_back({at, at, std::move(message)});
}

void BodyEditor::set_message_content(size_t index, std::string raw_json_value) {
  if (index >= view_.messages.size())
    return;
  const Span content = content_span(body_, view_.messages[index]);
  if (content.end > content.begin)
    edits_.push_back({content.begin, content.end, std::move(raw_json_value)});
}

void BodyEditor::remove_top_level(std::string_view key) {
  if (const TopLevelField* f = find(key))
    removed_.push_back(static_cast<size_t>(f - fields_.data()));
}

std::string BodyEditor::apply() const {
  // Removed keys: a key followed by a kept one goes up to that key's start (its comma with it);
  // the keys after the last kept one go from the end of its value (taking the comma before
  // them). Deciding per key at remove_top_level() time left a comma behind when two adjacent
  // keys went, e.g. {"messages":[],"tools":[],"tool_choice":"auto"} without the last two.
  const size_t n = fields_.size();
  size_t last_kept = n; // n: none is kept
  std::vector<Edit> removals;
  if (removed_.empty()) {
    last_kept = n == 0 ? n : n - 1;
  } else {
    std::vector<bool> gone(n, false);
    for (size_t i : removed_)
      gone[i] = true;
    for (size_t i = 0; i < n; ++i)
      if (!gone[i])
        last_kept = i;
    for (size_t i = 0; i < n; ++i) {
      if (!gone[i])
        continue;
      if (last_kept != n && i < last_kept) {
        removals.push_back({fields_[i].key_span.begin, fields_[i + 1].key_span.begin, {}});
        continue;
      }
      size_t begin = last_kept == n ? fields_[i].key_span.begin : fields_[last_kept].value.end;
      removals.push_back({begin, fields_.back().value.end, {}});
      break;
    }
  }

  // Applied in order of position; edits at one position in the order they were made, the
  // removals last. An insertion sort of pointers: a request has a handful of edits, and this
  // sorts them without a heap allocation when there are at most kInline.
  constexpr size_t kInline = 16;
  const size_t total = edits_.size() + removals.size();
  std::array<const Edit*, kInline> inline_order;
  std::vector<const Edit*> heap_order;
  const Edit** order = inline_order.data();
  if (total > kInline) {
    heap_order.resize(total);
    order = heap_order.data();
  }
  size_t count = 0;
  auto insert = [&](const Edit* e) {
    size_t j = count++;
    for (; j > 0 && order[j - 1]->begin > e->begin; --j)
      order[j] = order[j - 1];
    order[j] = e;
  };
  for (const Edit& e : edits_)
    insert(&e);
  for (const Edit& e : removals)
    insert(&e);

  std::string out;
  out.reserve(body_.size() + 256);
  size_t pos = 0;
  bool has_key = last_kept != n; // whether an appended key needs a comma before it
  for (size_t k = 0; k < count; ++k) {
    const Edit* e = order[k];
    if (e->begin < pos)
      continue; // overlapping edit: the earlier one wins
    out.append(body_.substr(pos, e->begin - pos));
    if (e->new_key && std::exchange(has_key, true))
      out.push_back(',');
    out.append(e->text);
    pos = e->end;
  }
  out.append(body_.substr(pos));
  return out;
}

} // namespace semrouter::openai
