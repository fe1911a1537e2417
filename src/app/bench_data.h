// `semrouter bench`'s data side: dataset records (MMLU-Pro multiple choice as they are, plain
// prompts or message arrays), the prompt sent for each, and grading an answer against the key.
// Pure functions over strings: no I/O except load_bench_records, no sockets.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace semrouter::app {

enum class RecordKind {
  MultipleChoice, // "question" + "options": graded by the answer letter
  Prompt, // "prompt"/"text" or "messages": graded (when it has an "answer") by letter or text
};

struct BenchRecord {
  std::string id; // the record's "id" / "question_id", else "record-N" (N from 1)
  RecordKind kind = RecordKind::Prompt;
  std::string category; // "" when the record has none (reported as "(none)")
  // The chat messages to send, as a JSON array.
  std::string messages_json;
  // The expected answer: an upper-case letter for multiple choice (and for prompts whose answer
  // is one letter), else the answer text. Empty: the record cannot be graded.
  std::string answer;
  // Letters a multiple-choice answer may take: A .. A + options - 1 (10, A-J, for prompts).
  int options = 0;
};

// The letters a prompt's one-letter answer may take when the record lists no options.
inline constexpr int kDefaultLetterOptions = 10;
// MMLU-Pro has at most 10 options; 26 letters are the most a lettered list can have.
inline constexpr int kMaxOptions = 26;

// The user message for a multiple-choice question: the question, the lettered options, and the
// instruction to answer with the letter.
std::string multiple_choice_prompt(std::string_view question,
                                   const std::vector<std::string>& options);

// Parses one JSONL line. `fallback_id` is used when the record has no id. Errors name the field
// and the reason ("options: expected a non-empty array of strings").
core::StatusOr<BenchRecord> parse_bench_record(std::string_view line,
                                               const std::string& fallback_id);

// Every record of a JSONL file (gzip or plain), at most `limit` (0: all). Errors name the file
// and line ("data.jsonl:3: options: ...").
core::StatusOr<std::vector<BenchRecord>> load_bench_records(const std::string& path, size_t limit);

// The answer letter in a model's answer text, by the rules in docs/bench-cli.md (in order: an
// "answer is (X)" / "answer: X" phrase, the last one; the whole answer a lone letter; an answer
// that starts with an option label "X." "X)" "(X)"; the last "(X)"; the last standalone capital
// letter). Only letters within the first `options` count. nullopt: no letter found.
std::optional<char> extract_answer_letter(std::string_view text, int options);

struct Grade {
  bool gradable = false; // the record has an answer
  bool correct = false;
  std::string extracted; // the letter found ("" when none), or the normalised text answer
};

// Grades `content` (the answer's content, never its reasoning) against the record.
Grade grade_answer(const BenchRecord& record, std::string_view content);

// Lower case, punctuation at either end dropped, runs of whitespace made one space.
std::string normalize_text_answer(std::string_view s);

} // namespace semrouter::app
