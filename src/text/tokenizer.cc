#include "text/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <queue>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace semrouter::text {

using core::ErrorCode;
using core::make_error;
using json = nlohmann::json;

namespace {

// ---------- normalizers ----------

struct NormStep {
  enum Kind { BertClean, BertChinese, StripAccents, Lowercase, Nfc, Nfd, Nfkc, Nfkd, Strip } kind;
  bool strip_left = true, strip_right = true;
};

void apply_step(const NormStep& step, OffsetString& s) {
  OffsetString out;
  switch (step.kind) {
  case NormStep::BertClean:
    out.reserve(s.size());
    for (const auto& c : s) {
      if (c.cp == 0 || c.cp == 0xFFFD)
        continue;
      bool tnr = c.cp == '\t' || c.cp == '\n' || c.cp == '\r';
      bool control = c.cp < 0x80 ? (c.cp < 0x20 || c.cp == 0x7F) : is_other(c.cp);
      if (control && !tnr)
        continue;
      out.push_back({is_whitespace(c.cp) ? char32_t(' ') : c.cp, c.begin, c.end});
    }
    break;
  case NormStep::BertChinese:
    out.reserve(s.size());
    for (const auto& c : s) {
      if (is_cjk(c.cp)) {
        out.push_back({' ', c.begin, c.end});
        out.push_back(c);
        out.push_back({' ', c.begin, c.end});
      } else {
        out.push_back(c);
      }
    }
    break;
  case NormStep::StripAccents: {
    OffsetString d = nfd(s);
    out.reserve(d.size());
    for (const auto& c : d)
      if (c.cp < 0x300 || !is_mark_nonspacing(c.cp))
        out.push_back(c);
    break;
  }
  case NormStep::Lowercase:
    lowercase_into(s, out);
    break;
  case NormStep::Nfc:
    out = nfc(s);
    break;
  case NormStep::Nfd:
    out = nfd(s);
    break;
  case NormStep::Nfkc:
    out = nfkc(s);
    break;
  case NormStep::Nfkd:
    out = nfkd(s);
    break;
  case NormStep::Strip: {
    size_t a = 0, b = s.size();
    if (step.strip_left)
      while (a < b && is_whitespace(s[a].cp))
        ++a;
    if (step.strip_right)
      while (b > a && is_whitespace(s[b - 1].cp))
        --b;
    out.assign(s.begin() + long(a), s.begin() + long(b));
    break;
  }
  }
  s.swap(out);
}

// ---------- pre-tokenizers ----------

struct PreStep {
  enum Kind { Bert, ByteLevel, Whitespace, WhitespaceSplit } kind;
  bool add_prefix_space = false;
  bool use_regex = true;
};

using Pieces = std::vector<OffsetString>;

void split_bert(const OffsetString& s, Pieces& out) {
  OffsetString cur;
  for (const auto& c : s) {
    if (is_whitespace(c.cp)) {
      if (!cur.empty())
        out.push_back(std::move(cur)), cur.clear();
    } else if (is_bert_punctuation(c.cp)) {
      if (!cur.empty())
        out.push_back(std::move(cur)), cur.clear();
      out.push_back(OffsetString{c});
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty())
    out.push_back(std::move(cur));
}

// \w in the `regex` sense: letters, marks, numbers, connector punctuation.
bool is_word_char(char32_t c) {
  if (c < 0x80)
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_';
  return is_letter(c) || is_number(c) || is_mark_nonspacing(c);
}

void split_whitespace(const OffsetString& s, bool keep_punct_groups, Pieces& out) {
  size_t i = 0;
  while (i < s.size()) {
    if (is_whitespace(s[i].cp)) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    if (!keep_punct_groups) {
      while (j < s.size() && !is_whitespace(s[j].cp))
        ++j;
    } else {
      bool w = is_word_char(s[i].cp);
      while (j < s.size() && !is_whitespace(s[j].cp) && is_word_char(s[j].cp) == w)
        ++j;
    }
    out.emplace_back(s.begin() + long(i), s.begin() + long(j));
    i = j;
  }
}

// The GPT-2 split pattern, by hand (it needs a look-ahead that RE2 lacks):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const OffsetString& s, Pieces& out) {
  const size_t n = s.size();
  auto cls = [&](size_t k) -> int { // 0 space-ish, 1 letter, 2 number, 3 other
    char32_t c = s[k].cp;
    if (is_whitespace(c))
      return 0;
    if (is_letter(c))
      return 1;
    if (is_number(c))
      return 2;
    return 3;
  };
  size_t i = 0;
  while (i < n) {
    size_t start = i;
    char32_t c = s[i].cp;
    if (c == '\'' && i + 1 < n) {
      char32_t d = s[i + 1].cp;
      size_t len = 0;
      if (d == 's' || d == 't' || d == 'm' || d == 'd')
        len = 2;
      else if (i + 2 < n && ((d == 'r' && s[i + 2].cp == 'e') || (d == 'v' && s[i + 2].cp == 'e') ||
                             (d == 'l' && s[i + 2].cp == 'l')))
        len = 3;
      if (len) {
        out.emplace_back(s.begin() + long(i), s.begin() + long(i + len));
        i += len;
        continue;
      }
    }
    size_t j = i;
    if (c == ' ' && i + 1 < n && cls(i + 1) != 0)
      j = i + 1; // the optional leading space of the next three alternatives
    int k = cls(j);
    if (k != 0) {
      size_t e = j + 1;
      while (e < n && cls(e) == k)
        ++e;
      out.emplace_back(s.begin() + long(start), s.begin() + long(e));
      i = e;
      continue;
    }
    // Whitespace run [i, e). \s+(?!\S): if something non-space follows, leave the last
    // whitespace character for the next token, unless the run is a single character.
    size_t e = i + 1;
    while (e < n && cls(e) == 0)
      ++e;
    if (e < n && e - i > 1)
      e -= 1;
    out.emplace_back(s.begin() + long(i), s.begin() + long(e));
    i = e;
  }
}

// GPT-2's reversible byte -> printable character table.
struct ByteTable {
  char32_t to_char[256];
  ByteTable() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = printable ? char32_t(b) : char32_t(256 + n++);
    }
  }
};
const ByteTable& byte_table() {
  static const ByteTable t;
  return t;
}

// ---------- post-processing templates ----------

struct TemplatePiece {
  bool is_sequence = false;
  int seq = 0; // 0 = A, 1 = B
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;
  int32_t type_id = 0;
};

struct AddedToken {
  std::string content;
  int32_t id;
  bool lstrip, rstrip, single_word, special;
};

struct Piece {
  int32_t id;
  std::string token;
  uint32_t begin, end;
};

} // namespace

struct Tokenizer::Impl {
  std::vector<NormStep> normalizer;
  std::vector<PreStep> pre;
  bool byte_level = false; // the BPE input is byte-level mapped
  enum { WordPiece, Bpe } model = WordPiece;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;
  // WordPiece
  std::string unk_token = "[UNK]";
  int32_t unk_id = -1;
  std::string prefix = "##";
  size_t max_chars = 100;
  // BPE: merge ranks keyed by the pair of ids, giving (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  std::string bpe_prefix, bpe_suffix;
  // added tokens, longest first
  std::vector<AddedToken> added;
  // post-processor
  std::vector<TemplatePiece> single, pair;

  void normalize(OffsetString& s) const {
    for (const auto& st : normalizer)
      apply_step(st, s);
  }

  Pieces pre_tokenize(const OffsetString& s) const {
    Pieces cur{s};
    for (const auto& st : pre) {
      Pieces next;
      for (auto& p : cur) {
        switch (st.kind) {
        case PreStep::Bert:
          split_bert(p, next);
          break;
        case PreStep::Whitespace:
          split_whitespace(p, true, next);
          break;
        case PreStep::WhitespaceSplit:
          split_whitespace(p, false, next);
          break;
        case PreStep::ByteLevel: {
          if (st.add_prefix_space && !p.empty() && !is_whitespace(p.front().cp))
            p.insert(p.begin(), OffsetChar{' ', p.front().begin, p.front().begin});
          if (st.use_regex)
            split_gpt2(p, next);
          else if (!p.empty())
            next.push_back(p);
          break;
        }
        }
      }
      cur.swap(next);
    }
    return cur;
  }

  void wordpiece(const OffsetString& word, std::vector<Piece>& out) const {
    if (word.empty())
      return;
    if (word.size() > max_chars) {
      out.push_back({unk_id, unk_token, word.front().begin, word.back().end});
      return;
    }
    size_t mark = out.size();
    size_t start = 0;
    std::string sub;
    while (start < word.size()) {
      size_t end = word.size();
      int32_t found = -1;
      while (start < end) {
        sub.clear();
        if (start > 0)
          sub = prefix;
        for (size_t k = start; k < end; ++k)
          append_utf8(sub, word[k].cp);
        auto it = vocab.find(sub);
        if (it != vocab.end()) {
          found = it->second;
          break;
        }
        --end;
      }
      if (found < 0) {
        out.resize(mark);
        out.push_back({unk_id, unk_token, word.front().begin, word.back().end});
        return;
      }
      out.push_back({found, sub, word[start].begin, word[end - 1].end});
      start = end;
    }
  }

  void bpe(const OffsetString& word, std::vector<Piece>& out) const {
    struct Sym {
      int32_t id;
      uint32_t begin, end;
      uint32_t first; // index in `word` of the first character the symbol covers
    };
    std::vector<Sym> syms;
    std::string ch;
    auto push_char = [&](char32_t cp, uint32_t b, uint32_t e, uint32_t first) {
      ch.clear();
      append_utf8(ch, cp);
      auto it = vocab.find(ch);
      syms.push_back({it == vocab.end() ? unk_id : it->second, b, e, first});
    };
    if (byte_level) {
      const auto& t = byte_table();
      std::string bytes;
      for (uint32_t k = 0; k < word.size(); ++k) {
        bytes.clear();
        append_utf8(bytes, word[k].cp);
        for (unsigned char b : bytes)
          push_char(t.to_char[b], word[k].begin, word[k].end, k);
      }
    } else {
      for (uint32_t k = 0; k < word.size(); ++k)
        push_char(word[k].cp, word[k].begin, word[k].end, k);
    }
    // Merge the lowest-ranked adjacent pair, leftmost first, until none applies. The symbols form
    // a linked list and candidate pairs wait in a heap ordered by (rank, position), so a word of n
    // symbols costs O(n log n): rescanning every pair after each merge was quadratic, and a long
    // word without spaces (hostile or pasted data) took seconds. Entries whose symbols changed
    // since they were pushed are skipped when popped.
    const size_t n = syms.size();
    std::vector<uint32_t> next(n), prev(n);
    std::vector<bool> gone(n, false);
    for (size_t k = 0; k < n; ++k) {
      next[k] = uint32_t(k + 1);
      prev[k] = uint32_t(k == 0 ? n : k - 1); // n: none
    }
    struct Cand {
      int32_t rank;
      uint32_t left;
      int32_t left_id, right_id, merged;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto consider = [&](uint32_t l) {
      if (l >= n || next[l] >= n)
        return;
      const int32_t a = syms[l].id, b = syms[next[l]].id;
      if (a < 0 || b < 0)
        return;
      auto it = merges.find((uint64_t(uint32_t(a)) << 32) | uint32_t(b));
      if (it != merges.end())
        heap.push({it->second.first, l, a, b, it->second.second});
    };
    for (size_t k = 0; k + 1 < n; ++k)
      consider(uint32_t(k));
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      const uint32_t r = next[c.left];
      if (gone[c.left] || r >= n || syms[c.left].id != c.left_id || syms[r].id != c.right_id)
        continue; // stale
      syms[c.left].id = c.merged;
      syms[c.left].end = syms[r].end;
      gone[r] = true;
      next[c.left] = next[r];
      if (next[r] < n)
        prev[next[r]] = c.left;
      if (prev[c.left] < n)
        consider(prev[c.left]);
      consider(c.left);
    }
    {
      size_t w = 0;
      for (size_t k = 0; k < n; ++k)
        if (!gone[k])
          syms[w++] = syms[k];
      syms.resize(w);
    }
    for (size_t k = 0; k < syms.size(); ++k) {
      const auto& s = syms[k];
      if (s.id < 0)
        continue; // no unk token configured: the character is dropped, as in `tokenizers`
      // trim_offsets: a token's span leaves out the whitespace it carries ("Ġname" -> "name").
      uint32_t begin = s.begin,
               last = k + 1 < syms.size() ? syms[k + 1].first : uint32_t(word.size());
      for (uint32_t c = s.first; c + 1 < last && is_whitespace(word[c].cp); ++c)
        begin = word[c + 1].begin;
      out.push_back({s.id, id_to_token[size_t(s.id)], begin, s.end});
    }
  }

  // Splits raw text on added tokens; calls `plain` for text between them and `added_fn` for each.
  template <typename Plain, typename AddedFn>
  void split_added(std::string_view text, Plain&& plain, AddedFn&& added_fn) const {
    size_t seg = 0, i = 0;
    while (i < text.size()) {
      const AddedToken* hit = nullptr;
      for (const auto& a : added) {
        if (text.compare(i, a.content.size(), a.content) == 0) {
          if (a.single_word) {
            auto word_at = [&](size_t k) {
              return k < text.size() && is_word_char(char32_t(uint8_t(text[k])));
            };
            if ((i > 0 && word_at(i - 1)) || word_at(i + a.content.size()))
              continue;
          }
          hit = &a;
          break;
        }
      }
      if (!hit) {
        ++i;
        continue;
      }
      size_t b = i, e = i + hit->content.size();
      if (hit->lstrip)
        while (b > seg && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\n' ||
                           text[b - 1] == '\r'))
          --b;
      if (hit->rstrip)
        while (e < text.size() &&
               (text[e] == ' ' || text[e] == '\t' || text[e] == '\n' || text[e] == '\r'))
          ++e;
      if (b > seg)
        plain(seg, b);
      added_fn(*hit, i, i + hit->content.size());
      seg = i = e;
    }
    if (seg < text.size())
      plain(seg, text.size());
  }

  std::vector<Piece> tokenize(std::string_view text) const {
    std::vector<Piece> out;
    split_added(
        text,
        [&](size_t b, size_t e) {
          OffsetString s = decode_utf8(text.substr(b, e - b), uint32_t(b));
          normalize(s);
          for (const auto& word : pre_tokenize(s)) {
            if (model == WordPiece)
              wordpiece(word, out);
            else
              bpe(word, out);
          }
        },
        [&](const AddedToken& a, size_t b, size_t e) {
          out.push_back({a.id, a.content, uint32_t(b), uint32_t(e)});
        });
    return out;
  }

  size_t added_count(const std::vector<TemplatePiece>& tpl) const {
    size_t n = 0;
    for (const auto& p : tpl)
      if (!p.is_sequence)
        n += p.ids.size();
    return n;
  }
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

size_t Tokenizer::vocab_size() const {
  return impl_->id_to_token.size();
}
std::string_view Tokenizer::model_type() const {
  return impl_->model == Impl::WordPiece ? "WordPiece" : "BPE";
}
int32_t Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->vocab.find(std::string(token));
  return it == impl_->vocab.end() ? -1 : it->second;
}

namespace {

core::Status parse_normalizer(const json& j, std::vector<NormStep>& out) {
  if (j.is_null())
    return {};
  std::string type = j.value("type", "");
  if (type == "Sequence") {
    for (const auto& n : j.at("normalizers"))
      if (auto st = parse_normalizer(n, out); !st)
        return st;
  } else if (type == "BertNormalizer") {
    bool lower = j.value("lowercase", true);
    bool strip = j.contains("strip_accents") && !j["strip_accents"].is_null()
                     ? j["strip_accents"].get<bool>()
                     : lower;
    if (j.value("clean_text", true))
      out.push_back({NormStep::BertClean});
    if (j.value("handle_chinese_chars", true))
      out.push_back({NormStep::BertChinese});
    if (strip)
      out.push_back({NormStep::StripAccents});
    if (lower)
      out.push_back({NormStep::Lowercase});
  } else if (type == "NFC") {
    out.push_back({NormStep::Nfc});
  } else if (type == "NFD") {
    out.push_back({NormStep::Nfd});
  } else if (type == "NFKC") {
    out.push_back({NormStep::Nfkc});
  } else if (type == "NFKD") {
    out.push_back({NormStep::Nfkd});
  } else if (type == "Lowercase") {
    out.push_back({NormStep::Lowercase});
  } else if (type == "StripAccents") {
    out.push_back({NormStep::StripAccents});
  } else if (type == "Strip") {
    NormStep s{NormStep::Strip};
    s.strip_left = j.value("strip_left", true);
    s.strip_right = j.value("strip_right", true);
    out.push_back(s);
  } else {
    return make_error(
        ErrorCode::InvalidArgument,
        fmt::format(
            "normalizer: unsupported type \"{}\" (supported: BertNormalizer, NFC, NFD, NFKC, "
            "NFKD, Lowercase, StripAccents, Strip, Sequence)",
            type));
  }
  return {};
}

core::Status parse_pre(const json& j, std::vector<PreStep>& out, bool& byte_level) {
  if (j.is_null())
    return {};
  std::string type = j.value("type", "");
  if (type == "Sequence") {
    for (const auto& n : j.at("pretokenizers"))
      if (auto st = parse_pre(n, out, byte_level); !st)
        return st;
  } else if (type == "BertPreTokenizer") {
    out.push_back({PreStep::Bert});
  } else if (type == "ByteLevel") {
    PreStep s{PreStep::ByteLevel};
    s.add_prefix_space = j.value("add_prefix_space", false);
    s.use_regex = j.value("use_regex", true);
    out.push_back(s);
    byte_level = true;
  } else if (type == "Whitespace") {
    out.push_back({PreStep::Whitespace});
  } else if (type == "WhitespaceSplit") {
    out.push_back({PreStep::WhitespaceSplit});
  } else {
    return make_error(
        ErrorCode::InvalidArgument,
        fmt::format(
            "pre_tokenizer: unsupported type \"{}\" (supported: BertPreTokenizer, ByteLevel, "
            "Whitespace, WhitespaceSplit, Sequence)",
            type));
  }
  return {};
}

core::Status parse_template(const json& tpl, const json& specials, std::vector<TemplatePiece>& out,
                            const std::string& where) {
  for (const auto& item : tpl) {
    TemplatePiece p;
    if (item.contains("Sequence")) {
      p.is_sequence = true;
      p.seq = item["Sequence"].value("id", "A") == "B" ? 1 : 0;
      p.type_id = item["Sequence"].value("type_id", 0);
    } else if (item.contains("SpecialToken")) {
      std::string id = item["SpecialToken"].value("id", "");
      p.type_id = item["SpecialToken"].value("type_id", 0);
      if (!specials.contains(id))
        return make_error(
            ErrorCode::InvalidArgument,
            fmt::format("post_processor.{}: special token \"{}\" is not in special_tokens", where,
                        id));
      p.ids = specials[id].at("ids").get<std::vector<int32_t>>();
      p.tokens = specials[id].at("tokens").get<std::vector<std::string>>();
    } else {
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("post_processor.{}: unknown template item", where));
    }
    out.push_back(std::move(p));
  }
  return {};
}

TemplatePiece special_piece(const json& pair, int32_t type_id) {
  TemplatePiece p;
  p.tokens = {pair.at(0).get<std::string>()};
  p.ids = {pair.at(1).get<int32_t>()};
  p.type_id = type_id;
  return p;
}

TemplatePiece seq_piece(int seq, int32_t type_id) {
  TemplatePiece p;
  p.is_sequence = true;
  p.seq = seq;
  p.type_id = type_id;
  return p;
}

core::Status parse_post(const json& j, Tokenizer::Impl& t) {
  if (j.is_null())
    return {};
  std::string type = j.value("type", "");
  if (type == "Sequence") {
    for (const auto& n : j.at("processors"))
      if (auto st = parse_post(n, t); !st)
        return st;
  } else if (type == "TemplateProcessing") {
    t.single.clear();
    t.pair.clear();
    const json& sp = j.contains("special_tokens") ? j["special_tokens"] : json::object();
    if (auto st = parse_template(j.at("single"), sp, t.single, "single"); !st)
      return st;
    if (auto st = parse_template(j.at("pair"), sp, t.pair, "pair"); !st)
      return st;
  } else if (type == "BertProcessing") {
    t.single = {special_piece(j.at("cls"), 0), seq_piece(0, 0), special_piece(j.at("sep"), 0)};
    t.pair = {special_piece(j.at("cls"), 0), seq_piece(0, 0), special_piece(j.at("sep"), 0),
              seq_piece(1, 1), special_piece(j.at("sep"), 1)};
  } else if (type == "RobertaProcessing") {
    t.single = {special_piece(j.at("cls"), 0), seq_piece(0, 0), special_piece(j.at("sep"), 0)};
    t.pair = {special_piece(j.at("cls"), 0), seq_piece(0, 0), special_piece(j.at("sep"), 0),
              special_piece(j.at("sep"), 0), seq_piece(1, 0), special_piece(j.at("sep"), 0)};
  } else if (type == "ByteLevel") {
    // Adds no tokens; only trims offsets.
  } else {
    return make_error(
        ErrorCode::InvalidArgument,
        fmt::format("post_processor: unsupported type \"{}\" (supported: TemplateProcessing, "
                    "BertProcessing, RobertaProcessing, ByteLevel, Sequence)",
                    type));
  }
  return {};
}

} // namespace

core::StatusOr<std::shared_ptr<const Tokenizer>> Tokenizer::from_json(std::string_view text,
                                                                      size_t model_max_length) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("tokenizer.json is not valid JSON: {}", e.what()));
  }
  std::shared_ptr<Tokenizer> tok(new Tokenizer());
  Impl& t = *tok->impl_;
  try {
    if (!j.contains("model") || !j["model"].is_object())
      return make_error(ErrorCode::InvalidArgument, "tokenizer.json: no \"model\" object");
    const json& m = j["model"];
    std::string type = m.value("type", "");
    if (type.empty()) // old files leave the type out; BPE is recognised by its merges
      type = m.contains("merges") ? "BPE"
                                  : (m.contains("continuing_subword_prefix") ? "WordPiece" : "");
    if (type != "WordPiece" && type != "BPE")
      return make_error(
          ErrorCode::InvalidArgument,
          fmt::format(
              "tokenizer.json: model type \"{}\" is not supported (supported: WordPiece, BPE)",
              type));
    t.model = type == "WordPiece" ? Impl::WordPiece : Impl::Bpe;
    const json& vocab = m.at("vocab");
    if (!vocab.is_object())
      return make_error(ErrorCode::InvalidArgument,
                        "tokenizer.json: model.vocab must be an object of token -> id");
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      int32_t id = it.value().get<int32_t>();
      if (id < 0)
        return make_error(ErrorCode::InvalidArgument,
                          fmt::format("tokenizer.json: negative id for \"{}\"", it.key()));
      t.vocab.emplace(it.key(), id);
      if (size_t(id) >= t.id_to_token.size())
        t.id_to_token.resize(size_t(id) + 1);
      t.id_to_token[size_t(id)] = it.key();
    }
    if (t.model == Impl::WordPiece) {
      t.unk_token = m.value("unk_token", "[UNK]");
      t.prefix = m.value("continuing_subword_prefix", "##");
      t.max_chars = m.value("max_input_chars_per_word", size_t(100));
      auto it = t.vocab.find(t.unk_token);
      if (it == t.vocab.end())
        return make_error(
            ErrorCode::InvalidArgument,
            fmt::format("tokenizer.json: WordPiece unk_token \"{}\" is not in the vocabulary",
                        t.unk_token));
      t.unk_id = it->second;
    } else {
      if (m.contains("unk_token") && m["unk_token"].is_string()) {
        auto it = t.vocab.find(m["unk_token"].get<std::string>());
        if (it != t.vocab.end())
          t.unk_id = it->second;
      }
      if (m.value("byte_fallback", false))
        return make_error(ErrorCode::InvalidArgument,
                          "tokenizer.json: BPE byte_fallback is not supported");
      if (m.contains("continuing_subword_prefix") && m["continuing_subword_prefix"].is_string() &&
          !m["continuing_subword_prefix"].get<std::string>().empty())
        return make_error(ErrorCode::InvalidArgument,
                          "tokenizer.json: BPE continuing_subword_prefix is not supported");
      int32_t rank = 0;
      for (const auto& mg : m.at("merges")) {
        std::string a, b;
        if (mg.is_string()) {
          const std::string& s = mg.get_ref<const std::string&>();
          size_t sp = s.find(' ', 1);
          if (sp == std::string::npos)
            return make_error(ErrorCode::InvalidArgument,
                              fmt::format("tokenizer.json: bad merge \"{}\"", s));
          a = s.substr(0, sp);
          b = s.substr(sp + 1);
        } else {
          a = mg.at(0).get<std::string>();
          b = mg.at(1).get<std::string>();
        }
        auto ia = t.vocab.find(a), ib = t.vocab.find(b), im = t.vocab.find(a + b);
        if (ia == t.vocab.end() || ib == t.vocab.end() || im == t.vocab.end())
          return make_error(
              ErrorCode::InvalidArgument,
              fmt::format(
                  "tokenizer.json: merge \"{} {}\" uses a token missing from the vocabulary", a,
                  b));
        t.merges.emplace((uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second),
                         std::make_pair(rank++, im->second));
      }
    }
    if (j.contains("added_tokens"))
      for (const auto& a : j["added_tokens"]) {
        AddedToken at{a.at("content").get<std::string>(), a.at("id").get<int32_t>(),
                      a.value("lstrip", false),           a.value("rstrip", false),
                      a.value("single_word", false),      a.value("special", false)};
        if (at.content.empty())
          continue;
        if (size_t(at.id) >= t.id_to_token.size())
          t.id_to_token.resize(size_t(at.id) + 1);
        t.id_to_token[size_t(at.id)] = at.content;
        t.vocab.emplace(at.content, at.id);
        t.added.push_back(std::move(at));
      }
    std::stable_sort(t.added.begin(), t.added.end(), [](const AddedToken& x, const AddedToken& y) {
      return x.content.size() > y.content.size();
    });
    if (auto st = parse_normalizer(j.value("normalizer", json()), t.normalizer); !st)
      return tl::unexpected(st.error());
    if (auto st = parse_pre(j.value("pre_tokenizer", json()), t.pre, t.byte_level); !st)
      return tl::unexpected(st.error());
    t.single = {seq_piece(0, 0)};
    t.pair = {seq_piece(0, 0), seq_piece(1, 1)};
    if (auto st = parse_post(j.value("post_processor", json()), t); !st)
      return tl::unexpected(st.error());
    if (j.contains("truncation") && j["truncation"].is_object() && model_max_length == 0)
      model_max_length = j["truncation"].value("max_length", size_t(0));
    tok->model_max_length_ = model_max_length;
    // Padding token: the padding section, else a [PAD] / <pad> token, else 0.
    tok->pad_id_ = 0;
    if (j.contains("padding") && j["padding"].is_object())
      tok->pad_id_ = j["padding"].value("pad_id", 0);
    else
      for (const char* p : {"[PAD]", "<pad>", "<|padding|>"})
        if (auto it = t.vocab.find(p); it != t.vocab.end()) {
          tok->pad_id_ = it->second;
          break;
        }
  } catch (const json::exception& e) {
    return make_error(ErrorCode::InvalidArgument, fmt::format("tokenizer.json: {}", e.what()));
  }
  return std::shared_ptr<const Tokenizer>(std::move(tok));
}

core::StatusOr<std::shared_ptr<const Tokenizer>> Tokenizer::from_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return make_error(ErrorCode::NotFound, fmt::format("cannot open {}", path));
  std::stringstream ss;
  ss << f.rdbuf();
  size_t max_len = 0;
  std::string dir =
      path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  std::ifstream cfg(dir + "tokenizer_config.json");
  if (cfg) {
    try {
      json c = json::parse(cfg);
      if (c.contains("model_max_length") && c["model_max_length"].is_number()) {
        double v = c["model_max_length"].get<double>();
        if (v > 0 && v < 1e7) // transformers writes a huge sentinel when there is no limit
          max_len = size_t(v);
      }
    } catch (const json::exception& e) {
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("{}tokenizer_config.json: {}", dir, e.what()));
    }
  }
  auto t = from_json(ss.str(), max_len);
  if (!t)
    return make_error(t.error().code, fmt::format("{}: {}", path, t.error().message));
  return t;
}

namespace {

void emit(const std::vector<TemplatePiece>& tpl, const std::vector<Piece>* seqs[2], Encoding& enc) {
  for (const auto& p : tpl) {
    if (p.is_sequence) {
      for (const auto& t : *seqs[p.seq]) {
        enc.ids.push_back(t.id);
        enc.tokens.push_back(t.token);
        enc.offsets.emplace_back(t.begin, t.end);
        enc.type_ids.push_back(p.type_id);
        enc.sequence_ids.push_back(int8_t(p.seq));
      }
    } else {
      for (size_t k = 0; k < p.ids.size(); ++k) {
        enc.ids.push_back(p.ids[k]);
        enc.tokens.push_back(p.tokens[k]);
        enc.offsets.emplace_back(0, 0);
        enc.type_ids.push_back(p.type_id);
        enc.sequence_ids.push_back(-1);
      }
    }
  }
  enc.attention_mask.assign(enc.ids.size(), 1);
}

} // namespace

Encoding Tokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  std::vector<Piece> a = impl_->tokenize(text);
  std::vector<Piece> none;
  Encoding enc;
  const auto& tpl =
      opts.add_special_tokens ? impl_->single : std::vector<TemplatePiece>{seq_piece(0, 0)};
  size_t specials = impl_->added_count(tpl);
  enc.untruncated_length = a.size() + specials;
  if (opts.max_length && enc.untruncated_length > opts.max_length) {
    a.resize(opts.max_length > specials ? opts.max_length - specials : 0);
    enc.truncated = true;
  }
  const std::vector<Piece>* seqs[2] = {&a, &none};
  emit(tpl, seqs, enc);
  return enc;
}

Encoding Tokenizer::encode_pair(std::string_view ta, std::string_view tb,
                                const EncodeOptions& opts) const {
  std::vector<Piece> a = impl_->tokenize(ta), b = impl_->tokenize(tb);
  Encoding enc;
  const auto& tpl = opts.add_special_tokens
                        ? impl_->pair
                        : std::vector<TemplatePiece>{seq_piece(0, 0), seq_piece(1, 1)};
  size_t specials = impl_->added_count(tpl);
  enc.untruncated_length = a.size() + b.size() + specials;
  if (opts.max_length && enc.untruncated_length > opts.max_length) {
    // longest_first: drop one token at a time from the longer sequence
    size_t budget = opts.max_length > specials ? opts.max_length - specials : 0;
    while (a.size() + b.size() > budget) {
      if (a.size() > b.size())
        a.pop_back();
      else
        b.pop_back();
    }
    enc.truncated = true;
  }
  const std::vector<Piece>* seqs[2] = {&a, &b};
  emit(tpl, seqs, enc);
  return enc;
}

void Tokenizer::pad_batch(std::vector<Encoding>& batch) const {
  size_t longest = 0;
  for (const auto& e : batch)
    longest = std::max(longest, e.size());
  const std::string& pad_tok = size_t(pad_id_) < impl_->id_to_token.size()
                                   ? impl_->id_to_token[size_t(pad_id_)]
                                   : impl_->unk_token;
  for (auto& e : batch) {
    size_t n = longest - e.size();
    e.ids.insert(e.ids.end(), n, pad_id_);
    e.type_ids.insert(e.type_ids.end(), n, 0);
    e.tokens.insert(e.tokens.end(), n, pad_tok);
    e.offsets.insert(e.offsets.end(), n, {0, 0});
    e.sequence_ids.insert(e.sequence_ids.end(), n, -1);
    e.attention_mask.insert(e.attention_mask.end(), n, 0);
  }
}

} // namespace semrouter::text
