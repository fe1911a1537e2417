// openai::parse_request (every client body) and openai::BodyEditor (the rewrite routing makes).
// Input: one flags byte, then the body. The flags pick the request kind and which of the edits
// the pipeline makes are applied (tools and tool_choice removed, model set, reasoning kwargs
// nested, a system prompt inserted or replaced, a message's content replaced, max_tokens set).
// Checks, for a body that is valid JSON: the spans lie inside the body; the rewritten body is
// valid JSON, parses again, carries the edits, and every top-level field the edits do not own
// is unchanged byte for byte.
#include <set>

#include "fuzz_util.h"
#include "openai/request.h"

using namespace semrouter;

namespace {

std::string_view slice(std::string_view s, openai::Span span) {
  return s.substr(span.begin, span.end - span.begin);
}

void check_span(openai::Span span, size_t size) {
  FUZZ_CHECK(span.begin <= span.end);
  FUZZ_CHECK(span.end <= size);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  const uint8_t flags = data[0];
  const std::string_view body = fuzz::as_text(data + 1, size - 1);
  const auto kind =
      flags & 1 ? openai::RequestKind::Completions : openai::RequestKind::ChatCompletions;

  auto view = openai::parse_request(body, kind);
  // The one-pass reader refuses exactly what the oracle refuses, nesting past its limit, a
  // byte-order mark (nlohmann skips one) and a NUL byte (nlohmann stops at one) aside.
  const bool refused_as_json =
      !view && view.error().message.starts_with("the request body is not valid JSON");
  if (!body.starts_with("\xEF\xBB\xBF") && body.find('\0') == std::string_view::npos &&
      !(!view && view.error().message.find("nested too deep") != std::string::npos) &&
      refused_as_json == fuzz::valid_json(body)) {
    std::fprintf(stderr, "parse_request and the oracle disagree (%s)\n",
                 view ? "accepted" : view.error().message.c_str());
    FUZZ_CHECK(false);
  }
  if (!view)
    return 0;
  bool escaped_key_before = false;
  for (const auto& f : view->fields) {
    check_span(f.key_span, body.size());
    check_span(f.value, body.size());
    FUZZ_CHECK(f.key_span.end <= f.value.begin);
    // The allocation-free walk finds each plain key where the full scan did (keys are unique);
    // only a key with an escape, this one or one before it, may leave it unsure.
    const std::string_view raw =
        body.substr(f.key_span.begin + 1, f.key_span.end - f.key_span.begin - 2);
    escaped_key_before = escaped_key_before || raw.find('\\') != std::string_view::npos;
    const openai::TopLevelHit hit = openai::find_top_level(body, f.key);
    if (!escaped_key_before) {
      FUZZ_CHECK(hit.result == openai::TopLevelFind::Found);
      FUZZ_CHECK(hit.value.begin == f.value.begin && hit.value.end == f.value.end);
    }
  }
  for (const auto& m : view->messages) {
    check_span(m.span, body.size());
    check_span(openai::content_span(body, m), body.size());
  }
  openai::scan_array_elements(body, view->messages_span);
  view->latest_user_text();

  openai::BodyEditor editor(body, *view);
  std::set<std::string> owned = {"messages"};
  if (flags & 2) {
    editor.remove_top_level("tools");
    owned.insert("tools");
  }
  if (flags & 4) {
    editor.remove_top_level("tool_choice");
    editor.remove_top_level("temperature");
    owned.insert({"tool_choice", "temperature"});
  }
  if (flags & 8) {
    editor.set_top_level("model", "\"org/model-\\\"x\\\"\"");
    owned.insert("model");
  }
  if (flags & 16) {
    editor.set_nested("chat_template_kwargs", {{"enable_thinking", "true"}, {"thinking", "{}"}});
    owned.insert("chat_template_kwargs");
  }
  if (flags & 32)
    editor.set_system_prompt("Think \"carefully\".\n\u00e9", (flags & 64) != 0);
  if (flags & 128) {
    editor.set_top_level("max_tokens", "512");
    editor.set_message_content(view->messages.size() / 2, "\"[REDACTED] \\u00e9\"");
    owned.insert("max_tokens");
  }
  const std::string out = editor.apply();

  // simdjson and nlohmann may disagree on a body at the edges of the grammar (a lone surrogate
  // escape); the properties below are about bodies both accept.
  if (!fuzz::valid_json(body))
    return 0;
  if (!fuzz::valid_json(out)) {
    std::fprintf(stderr, "rewritten body is not JSON: %s\n", out.c_str());
    FUZZ_CHECK(false);
  }
  auto again = openai::parse_request(out, kind);
  if (!again) {
    std::fprintf(stderr, "rewritten body rejected (%s): %s\n", again.error().message.c_str(),
                 out.c_str());
    FUZZ_CHECK(false);
  }
  if (flags & 8)
    FUZZ_CHECK(again->model == "org/model-\"x\"");
  for (const auto& f : again->fields) {
    if (flags & 2)
      FUZZ_CHECK(f.key != "tools");
    if (flags & 4)
      FUZZ_CHECK(f.key != "tool_choice" && f.key != "temperature");
  }
  if (kind == openai::RequestKind::ChatCompletions)
    FUZZ_CHECK(again->messages.size() >= view->messages.size());
  for (const auto& f : view->fields) {
    if (owned.count(f.key))
      continue;
    bool found = false;
    for (const auto& g : again->fields) {
      if (g.key == f.key) {
        found = true;
        FUZZ_CHECK(slice(out, g.value) == slice(body, f.value));
      }
    }
    FUZZ_CHECK(found);
  }
  return 0;
}
