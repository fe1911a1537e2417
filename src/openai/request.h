// A read-only view of an OpenAI chat/completions request body, and the edits routing makes to it.
// The body is read once (JsonReader, json_reader.h); edits are byte splices, so every field
// routing does not touch — tools, response_format, n, logprobs, unknown vendor fields — reaches
// the upstream byte for byte as the client sent it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace semrouter::openai {

struct Span {
  size_t begin = 0; // byte offset of the first byte of the JSON value
  size_t end = 0;   // one past its last byte
};

struct MessageView {
  std::string role;
  std::string text; // string content, or the text parts of an array content joined by "\n"
  bool content_is_string = false;
  Span span; // the whole message object (content_span() finds its content value)
  bool has_content = false;
};

enum class RequestKind { ChatCompletions, Completions };

// Byte ranges of the values of the top-level keys of a JSON object (the body is already known
// to be valid JSON). Used to splice edits without re-serialising the rest.
struct TopLevelField {
  std::string key; // decoded: "m\\u0065ssages" is "messages"
  Span key_span;   // the key including quotes
  Span value;
};
struct RequestView {
  RequestKind kind = RequestKind::ChatCompletions;
  std::string model;
  bool stream = false;
  bool has_tools = false;
  std::string user;
  std::vector<MessageView> messages; // chat only
  std::string prompt;                // completions only (string prompts)
  Span model_span;                   // the "model" value (when present)
  bool has_model = false;
  Span messages_span;                // the messages array
  std::vector<TopLevelField> fields; // byte ranges of every top-level key and value

  // The text signals read by default: the latest user message.
  std::string_view latest_user_text() const;
};

// Parses and validates a body. Errors are InvalidArgument with a message fit for the client
// (e.g. "messages: must be a non-empty array").
core::StatusOr<RequestView> parse_request(std::string_view body, RequestKind kind);

core::StatusOr<std::vector<TopLevelField>> scan_top_level(std::string_view json);
// The value of one top-level key, found by walking the top level only: no allocation, and the
// rest of the text is not validated. Unsure when the text is not an object, a key holds an
// escape, or the walk meets malformed JSON before the key: the caller then parses it fully.
enum class TopLevelFind { Found, Absent, Unsure };
struct TopLevelHit {
  TopLevelFind result = TopLevelFind::Unsure;
  Span value; // Found only
};
TopLevelHit find_top_level(std::string_view json, std::string_view key);
// The content value of a message, found when an edit needs it (not on every request); `body` is
// the one the message was parsed from. Empty when the message has no "content".
Span content_span(std::string_view body, const MessageView& message);
// Byte ranges of the elements of a JSON array value; none when `array` is not one.
std::vector<Span> scan_array_elements(std::string_view json, Span array);

// Edits a body by splicing. Each setter records the change; apply() produces the new body.
class BodyEditor {
public:
  // `view` must come from parse_request(body).
  BodyEditor(std::string_view body, const RequestView& view);

  // Sets a top-level key to a raw JSON value (replacing it if present, appending it if not).
  void set_top_level(std::string_view key, std::string raw_json_value);
  // Sets key.sub = raw_json_value inside a top-level object (creating the object if absent).
  // If the key holds something other than an object it is replaced by a fresh object.
  void set_nested(std::string_view key, std::string_view sub, std::string raw_json_value);
  // Several sub-keys of one top-level object at once (one edit of that key).
  void set_nested(std::string_view key,
                  const std::vector<std::pair<std::string, std::string>>& subs);
  // Insert: our prompt goes before an existing system message's text (or a new system message
  // is added first). Replace: the first system message's content becomes ours (or a new one is
  // added first).
  void set_system_prompt(std::string_view content, bool replace);
  // Replaces messages[index].content with a raw JSON value (no-op if the message has none).
  void set_message_content(size_t index, std::string raw_json_value);
  // Drops a top-level key (and its comma) if present.
  void remove_top_level(std::string_view key);

  bool changed() const { return !edits_.empty() || !removed_.empty(); }
  std::string apply() const;

private:
  struct Edit {
    size_t begin, end;
    std::string text;
    bool new_key = false; // a key appended before the closing brace; apply() adds its comma
  };
  const TopLevelField* find(std::string_view key) const;

  std::string_view body_;
  const RequestView& view_;
  const std::vector<TopLevelField>& fields_;
  size_t closing_brace_ = 0;
  std::vector<Edit> edits_;
  // Indexes into fields_ of the keys to drop. Which commas go with them depends on which keys
  // remain, so apply() works out the spans.
  std::vector<size_t> removed_;
};

} // namespace semrouter::openai
