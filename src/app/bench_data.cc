#include "app/bench_data.h"

#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/strings.h"
#include "models/dataset.h"

namespace semrouter::app {
namespace {

using core::ErrorCode;
using core::make_error;
using nlohmann::json;

bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool is_alnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}
bool in_range(char c, int options) {
  return is_upper(c) && c - 'A' < options;
}

// A one-character string "A".."Z" (any case) as its upper-case letter, else 0.
char as_letter(std::string_view s) {
  s = core::trim(s);
  if (s.size() != 1 || !std::isalpha(static_cast<unsigned char>(s[0])))
    return 0;
  return static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
}

std::string id_of(const json& r, const std::string& fallback) {
  for (const char* key : {"id", "question_id"}) {
    auto it = r.find(key);
    if (it == r.end())
      continue;
    if (it->is_string())
      return it->get<std::string>();
    if (it->is_number_integer())
      return std::to_string(it->get<int64_t>());
  }
  return fallback;
}

std::string user_messages(std::string_view text) {
  json m = json::array({{{"role", "user"}, {"content", text}}});
  return m.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The answer field of a plain record: a string, or a number written as JSON writes it.
core::StatusOr<std::string> answer_field(const json& r) {
  auto it = r.find("answer");
  if (it == r.end() || it->is_null())
    return std::string();
  if (it->is_string())
    return std::string(core::trim(it->get<std::string>()));
  if (it->is_number())
    return it->dump();
  return make_error(ErrorCode::InvalidArgument, "answer: expected a string or a number");
}

core::StatusOr<BenchRecord> multiple_choice(const json& r, BenchRecord rec) {
  rec.kind = RecordKind::MultipleChoice;
  // find(), not operator[]: on a const json a missing key is undefined behaviour.
  static const json kAbsent;
  auto field = [&r](const char* key) -> const json& {
    auto it = r.find(key);
    return it == r.end() ? kAbsent : *it;
  };
  const json& q = field("question");
  if (!q.is_string() || q.get<std::string>().empty())
    return make_error(ErrorCode::InvalidArgument, "question: expected a non-empty string");
  const json& opts = field("options");
  if (!opts.is_array() || opts.empty())
    return make_error(ErrorCode::InvalidArgument, "options: expected a non-empty array of strings");
  if (opts.size() > static_cast<size_t>(kMaxOptions))
    return make_error(
        ErrorCode::InvalidArgument,
        fmt::format("options: {} options; at most {} can be lettered", opts.size(), kMaxOptions));
  std::vector<std::string> options;
  for (const json& o : opts) {
    if (!o.is_string())
      return make_error(ErrorCode::InvalidArgument,
                        "options: expected a non-empty array of strings");
    options.push_back(o.get<std::string>());
  }
  rec.options = static_cast<int>(options.size());
  rec.messages_json = user_messages(multiple_choice_prompt(q.get<std::string>(), options));
  if (auto it = r.find("answer"); it != r.end() && !it->is_null()) {
    char letter = it->is_string() ? as_letter(it->get<std::string>()) : 0;
    if (!letter || !in_range(letter, rec.options))
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("answer: expected a letter A-{} (one per option), got {}",
                                    static_cast<char>('A' + rec.options - 1), it->dump()));
    rec.answer = std::string(1, letter);
  } else if (auto ai = r.find("answer_index"); ai != r.end() && !ai->is_null()) {
    if (!ai->is_number_integer() || ai->get<int64_t>() < 0 || ai->get<int64_t>() >= rec.options)
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("answer_index: expected an integer from 0 to {}, got {}",
                                    rec.options - 1, ai->dump()));
    rec.answer = std::string(1, static_cast<char>('A' + ai->get<int64_t>()));
  }
  return rec;
}

core::StatusOr<BenchRecord> plain(const json& r, BenchRecord rec) {
  rec.kind = RecordKind::Prompt;
  if (auto m = r.find("messages"); m != r.end()) {
    if (!m->is_array() || m->empty())
      return make_error(ErrorCode::InvalidArgument,
                        "messages: expected a non-empty array of {role, content} objects");
    for (const json& msg : *m)
      if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
        return make_error(ErrorCode::InvalidArgument,
                          "messages: expected a non-empty array of {role, content} objects");
    rec.messages_json = m->dump(-1, ' ', false, json::error_handler_t::replace);
  } else {
    const json* text = nullptr;
    for (const char* key : {"prompt", "text"})
      if (auto it = r.find(key); it != r.end()) {
        text = &*it;
        break;
      }
    if (!text)
      return make_error(ErrorCode::InvalidArgument,
                        "no prompt: expected \"question\" with \"options\" (multiple choice), "
                        "\"prompt\", \"text\" or \"messages\"");
    if (!text->is_string() || text->get<std::string>().empty())
      return make_error(ErrorCode::InvalidArgument, "prompt: expected a non-empty string");
    rec.messages_json = user_messages(text->get<std::string>());
  }
  auto answer = answer_field(r);
  if (!answer)
    return tl::unexpected(answer.error());
  rec.answer = *answer;
  if (char letter = as_letter(rec.answer); letter && rec.answer.size() == 1) {
    rec.answer = std::string(1, letter);
    rec.options = std::max(kDefaultLetterOptions, letter - 'A' + 1);
  }
  return rec;
}

// Words for text matching: lower case, split at anything that is not a letter or a digit, except
// '.', ',' and '-' inside a number ("3.14", "1,000", "-5").
std::vector<std::string> answer_words(std::string_view s) {
  std::vector<std::string> words;
  std::string cur;
  auto digit = [&](size_t i) {
    return i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) != 0;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool keep = is_alnum(c) || static_cast<unsigned char>(c) >= 0x80;
    if (!keep && (c == '.' || c == ',') && !cur.empty() && digit(i - 1) && digit(i + 1))
      keep = true;
    if (!keep && c == '-' && cur.empty() && digit(i + 1))
      keep = true;
    if (keep) {
      cur.push_back(lower(c));
    } else if (!cur.empty()) {
      words.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty())
    words.push_back(std::move(cur));
  return words;
}

bool contains_words(const std::vector<std::string>& hay, const std::vector<std::string>& needle) {
  if (needle.empty() || needle.size() > hay.size())
    return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t k = 0;
    while (k < needle.size() && hay[i + k] == needle[k])
      ++k;
    if (k == needle.size())
      return true;
  }
  return false;
}

// Where the text after the last "answer is" / "answer:" phrase starts (case-insensitive), or
// npos. "answer" must start a word; "is" and ":" may both be there ("answer is: C").
size_t after_answer_phrase(std::string_view text, size_t search_end) {
  constexpr std::string_view kWord = "answer";
  const std::string low = core::ascii_lower(text.substr(0, search_end));
  size_t pos = low.size();
  while (pos > 0) {
    size_t at = low.rfind(kWord, pos - 1);
    if (at == std::string::npos)
      return std::string_view::npos;
    pos = at;
    if (at > 0 && is_alnum(low[at - 1]))
      continue;
    size_t i = at + kWord.size();
    if (i < low.size() && is_alnum(low[i]))
      continue; // "answered", "answers"
    while (i < low.size() && (is_space(low[i]) || low[i] == '*'))
      ++i;
    bool linked = false;
    if (low.compare(i, 2, "is") == 0 && (i + 2 == low.size() || !is_alnum(low[i + 2]))) {
      i += 2;
      linked = true;
      while (i < low.size() && (is_space(low[i]) || low[i] == '*'))
        ++i;
    }
    if (i < low.size() && low[i] == ':') {
      ++i;
      linked = true;
    }
    if (linked)
      return i;
  }
  return std::string_view::npos;
}

// Where the sentence that starts `s` ends: a newline, or '.', '!' or '?' followed by whitespace
// or the end ("3.14" goes on).
size_t sentence_end(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n')
      return i;
    if ((s[i] == '.' || s[i] == '!' || s[i] == '?') && (i + 1 == s.size() || is_space(s[i + 1])))
      return i;
  }
  return s.size();
}

// A letter at `i` (after spaces, '*', '(' or '['), closed by a non-alphanumeric or the end.
std::optional<char> letter_at(std::string_view text, size_t i, int options) {
  while (i < text.size() &&
         (is_space(text[i]) || text[i] == '*' || text[i] == '(' || text[i] == '['))
    ++i;
  if (i >= text.size() || !in_range(text[i], options))
    return std::nullopt;
  if (i + 1 < text.size() && is_alnum(text[i + 1]))
    return std::nullopt;
  return text[i];
}

} // namespace

std::string multiple_choice_prompt(std::string_view question,
                                   const std::vector<std::string>& options) {
  std::string out(core::trim(question));
  out += "\n\n";
  for (size_t i = 0; i < options.size(); ++i) {
    out += static_cast<char>('A' + i);
    out += ". ";
    out += core::trim(options[i]);
    out += '\n';
  }
  out += "\nAnswer with the letter of the correct option, as \"The answer is (X)\".";
  return out;
}

core::StatusOr<BenchRecord> parse_bench_record(std::string_view line,
                                               const std::string& fallback_id) {
  json r = json::parse(line, nullptr, false);
  if (r.is_discarded())
    return make_error(ErrorCode::InvalidArgument, "not JSON");
  if (!r.is_object())
    return make_error(ErrorCode::InvalidArgument, "expected a JSON object");
  BenchRecord rec;
  rec.id = id_of(r, fallback_id);
  if (auto c = r.find("category"); c != r.end() && !c->is_null()) {
    if (!c->is_string())
      return make_error(ErrorCode::InvalidArgument, "category: expected a string");
    rec.category = c->get<std::string>();
  }
  if (r.contains("question") || r.contains("options"))
    return multiple_choice(r, std::move(rec));
  return plain(r, std::move(rec));
}

core::StatusOr<std::vector<BenchRecord>> load_bench_records(const std::string& path, size_t limit) {
  std::vector<BenchRecord> out;
  size_t record_no = 0; // non-blank lines: the id of a record without one
  // The walk stops early at the limit: this sentinel is not an error to report.
  constexpr std::string_view kEnough = "enough records";
  auto st = models::for_each_jsonl(path, [&](std::string_view line) -> core::Status {
    ++record_no;
    if (limit > 0 && out.size() >= limit)
      return make_error(ErrorCode::Internal, std::string(kEnough));
    auto rec = parse_bench_record(line, "record-" + std::to_string(record_no));
    if (!rec)
      return tl::unexpected(rec.error());
    out.push_back(std::move(*rec));
    return {};
  });
  if (!st && st.error().message.find(kEnough) == std::string::npos)
    return tl::unexpected(st.error());
  if (out.empty())
    return make_error(ErrorCode::InvalidArgument, path + ": no records");
  return out;
}

std::optional<char> extract_answer_letter(std::string_view text, int options) {
  options = std::clamp(options, 1, kMaxOptions);
  // 1. The last "answer is (X)" / "answer: X" phrase that names a letter.
  size_t end = text.size();
  while (true) {
    size_t at = after_answer_phrase(text, end);
    if (at == std::string_view::npos)
      break;
    if (auto l = letter_at(text, at, options))
      return l;
    // Step before this phrase's "answer" and look for an earlier one.
    const std::string low = core::ascii_lower(text.substr(0, at));
    size_t word = low.rfind("answer");
    if (word == std::string::npos || word == 0)
      break;
    end = word;
  }
  std::string_view t = core::trim(text);
  // 2. The whole answer is one letter: "C", "(C)", "C.", "C)", "**C**".
  {
    std::string_view s = t;
    while (!s.empty() && (s.front() == '(' || s.front() == '*' || s.front() == '['))
      s.remove_prefix(1);
    while (!s.empty() && (s.back() == ')' || s.back() == '.' || s.back() == '*' || s.back() == ']'))
      s.remove_suffix(1);
    if (s.size() == 1 && in_range(s[0], options))
      return s[0];
  }
  // 3. It starts with an option label: "C. Paris", "C) Paris", "(C) Paris".
  {
    size_t i = t.size() > 0 && t[0] == '(' ? 1 : 0;
    if (i < t.size() && in_range(t[i], options) && i + 2 < t.size()) {
      char close = t[i + 1];
      bool label = i == 1 ? close == ')' : (close == '.' || close == ')');
      if (label && is_space(t[i + 2]))
        return t[i];
    }
  }
  // 4. The last "(X)".
  for (size_t i = t.size(); i >= 3; --i) {
    if (t[i - 1] == ')' && t[i - 3] == '(' && in_range(t[i - 2], options))
      return t[i - 2];
  }
  // 5. The last standalone capital letter (a one-letter word). "A" and "I" followed by a
  // lower-case word are read as the article and the pronoun, not as options.
  for (size_t i = t.size(); i-- > 0;) {
    char c = t[i];
    if (!in_range(c, options))
      continue;
    if (i > 0 && is_alnum(t[i - 1]))
      continue;
    if (i + 1 < t.size() && (is_alnum(t[i + 1]) || t[i + 1] == '\''))
      continue;
    if (c == 'A' || c == 'I') {
      size_t j = i + 1;
      while (j < t.size() && is_space(t[j]))
        ++j;
      if (j > i + 1 && j < t.size() && std::islower(static_cast<unsigned char>(t[j])))
        continue;
    }
    return c;
  }
  return std::nullopt;
}

std::string normalize_text_answer(std::string_view s) {
  return core::join(answer_words(s), " ");
}

Grade grade_answer(const BenchRecord& record, std::string_view content) {
  Grade g;
  if (record.answer.empty())
    return g;
  g.gradable = true;
  const bool letter = record.kind == RecordKind::MultipleChoice ||
                      (record.answer.size() == 1 && is_upper(record.answer[0]));
  if (letter) {
    auto l =
        extract_answer_letter(content, record.options > 0 ? record.options : kDefaultLetterOptions);
    if (l)
      g.extracted = std::string(1, *l);
    g.correct = l && *l == record.answer[0];
    return g;
  }
  // A text answer: within what follows the last "answer is" / "answer:" phrase (up to the end
  // of its sentence) when there is one, else anywhere in the content, as whole words.
  std::string_view scope = content;
  if (size_t at = after_answer_phrase(content, content.size()); at != std::string_view::npos) {
    scope = content.substr(at);
    scope = scope.substr(0, sentence_end(scope));
    g.extracted = normalize_text_answer(scope);
  }
  g.correct = contains_words(answer_words(scope), answer_words(record.answer));
  return g;
}

} // namespace semrouter::app
