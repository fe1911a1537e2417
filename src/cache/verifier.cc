#include "cache/verifier.h"

#include <algorithm>
#include <iterator>
#include <unordered_set>

#include "models/features.h"
#include "models/word_vectors.h"

namespace semrouter::cache {
namespace {

constexpr std::string_view kAnchorWords[] = {
#include "cache/anchor_words.inc"
};

constexpr std::string_view kNumberWords[] = {
    "zero",     "one",       "two",      "three",    "four",    "five",     "six",      "seven",
    "eight",    "nine",      "ten",      "eleven",   "twelve",  "thirteen", "fourteen", "fifteen",
    "sixteen",  "seventeen", "eighteen", "nineteen", "twenty",  "thirty",   "forty",    "fifty",
    "sixty",    "seventy",   "eighty",   "ninety",   "hundred", "thousand", "million",  "billion",
    "trillion", "half",      "quarter",  "dozen",    "twice",   "triple",   "double",   "thrice",
    "first",    "second",    "third",    "fourth",   "fifth",   "sixth",    "seventh",  "eighth",
    "ninth",    "tenth"};

constexpr std::string_view kNegations[] = {
    "not",    "no",      "never", "without",  "none",      "nothing",  "nobody", "neither",
    "nor",    "cannot",  "can't", "don't",    "doesn't",   "didn't",   "isn't",  "aren't",
    "wasn't", "weren't", "won't", "wouldn't", "shouldn't", "couldn't", "hasn't", "haven't",
    "hadn't", "mustn't", "avoid", "except",   "excluding", "non",      "unsafe", "illegal"};

constexpr std::string_view kStopwords[] = {
    "a",         "an",      "the",       "is",        "are",      "was",      "were",    "be",
    "been",      "am",      "do",        "does",      "did",      "i",        "me",      "my",
    "you",       "your",    "we",        "our",       "it",       "its",      "this",    "that",
    "these",     "those",   "of",        "in",        "on",       "at",       "to",      "for",
    "from",      "by",      "with",      "about",     "as",       "and",      "or",      "but",
    "if",        "so",      "what",      "what's",    "how",      "why",      "when",    "where",
    "which",     "who",     "whom",      "can",       "could",    "would",    "should",  "will",
    "shall",     "may",     "might",     "must",      "please",   "tell",     "explain", "know",
    "want",      "need",    "like",      "get",       "give",     "show",     "there",   "their",
    "they",      "them",    "he",        "she",       "his",      "her",      "some",    "any",
    "just",      "really",  "kindly",    "hi",        "hello",    "hey",      "thanks",  "thank",
    "way",       "best",    "good",      "ok",        "okay",     "someone",  "anyone",  "help",
    "quick",     "quickly", "question",  "i'm",       "i've",     "i'd",      "let",     "let's",
    "into",      "up",      "out",       "much",      "many",     "also",     "too",     "very",
    "here",      "have",    "has",       "had",       "make",     "go",       "use",     "using",
    "used",      "doing",   "done",      "hey",       "thanks",   "thx",      "advance", "um",
    "uh",        "exactly", "whats",     "basically", "actually", "pls",      "plz",     "anyway",
    "wondering", "curious", "ask",       "asking",    "anybody",  "somebody", "guys",    "folks",
    "quickly",   "simply",  "briefly",   "vs",        "versus",   "exactly",  "tips",    "steps",
    "step",      "ways",    "someone's", "is",        "there's",  "it's",     "that's",  "you're",
    "we're",     "they're", "i'll",      "you'll",    "would've", "btw"};

// What the lists above say of a word, from one probe of an open-addressed table keyed by FNV-1a
// (a linear search of each list cost most of the verifier's time; std::unordered_map's string hash
// and node chase still cost a percent of a routed request, called for every word of both texts).
enum WordFlag : uint8_t { kStop = 1, kNegation = 2, kNumberWord = 4, kAnchor = 8 };

class WordFlagTable {
public:
  WordFlagTable() {
    const size_t n = std::size(kStopwords) + std::size(kNegations) + std::size(kNumberWords) +
                     std::size(kAnchorWords);
    size_t cap = 16;
    while (cap < 2 * n) // at most half full: short probe runs
      cap *= 2;
    slots_.resize(cap);
    mask_ = cap - 1;
    auto add = [&](std::string_view w, uint8_t f) {
      longest_ = std::max(longest_, w.size());
      for (size_t i = hash(w) & mask_;; i = (i + 1) & mask_) {
        if (slots_[i].flags == 0 || slots_[i].word == w) {
          slots_[i].word = w;
          slots_[i].flags |= f;
          return;
        }
      }
    };
    for (std::string_view x : kStopwords)
      add(x, kStop);
    for (std::string_view x : kNegations)
      add(x, kNegation);
    for (std::string_view x : kNumberWords)
      add(x, kNumberWord);
    for (std::string_view x : kAnchorWords)
      add(x, kAnchor);
  }
  uint8_t operator()(std::string_view w) const {
    if (w.size() > longest_)
      return 0;
    for (size_t i = hash(w) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.flags == 0)
        return 0;
      if (s.word == w)
        return s.flags;
    }
  }

private:
  struct Slot {
    std::string_view word;
    uint8_t flags = 0; // 0: an empty slot (every listed word has a flag)
  };
  static size_t hash(std::string_view w) {
    const uint64_t h = models::fnv1a(w);
    return size_t(h ^ (h >> 29));
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t longest_ = 0;
};

uint8_t word_flags(std::string_view w) {
  static const WordFlagTable flags;
  return flags(w);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_number(std::string_view w, uint8_t flags) {
  if (flags & kNumberWord)
    return true;
  bool digit = false;
  for (char c : w) {
    if (is_digit(c))
      digit = true;
    else if (c != '.' && c != ',')
      return false;
  }
  return digit;
}

// The number in a canonical form: "1,000" -> "1000", "3.50" -> "3.5".
std::string canonical_number(std::string w) {
  w.erase(std::remove(w.begin(), w.end(), ','), w.end());
  if (w.find('.') != std::string::npos) {
    while (!w.empty() && w.back() == '0')
      w.pop_back();
    if (!w.empty() && w.back() == '.')
      w.pop_back();
  }
  return w;
}

bool has_digit(std::string_view w) {
  return std::any_of(w.begin(), w.end(), is_digit);
}

// A light stem for matching words across the two texts: plural and verb endings, then a final
// e, y or ie ("calories"/"calorie", "companies"/"company", "tomatoes"/"tomato" meet).
std::string stem(std::string w) {
  auto ends = [&](std::string_view s) { return w.size() > s.size() + 2 && w.ends_with(s); };
  if (ends("ies"))
    w.resize(w.size() - 3);
  else if (ends("ing"))
    w.resize(w.size() - 3);
  else if (ends("ed"))
    w.resize(w.size() - 2);
  else if (w.size() >= 8 && (w.ends_with("ence") || w.ends_with("ance")))
    w.resize(w.size() - 4);
  else if (w.size() >= 8 && (w.ends_with("ent") || w.ends_with("ant")))
    w.resize(w.size() - 3);
  else if (ends("es"))
    w.resize(w.size() - 2);
  else if (w.size() > 3 && w.back() == 's' && w[w.size() - 2] != 's')
    w.pop_back();
  if (w.size() > 3 && (w.back() == 'e' || w.back() == 'y'))
    w.pop_back();
  if (w.size() > 3 && w.back() == 'i')
    w.pop_back();
  return w;
}

struct Read {
  std::vector<std::string> words;
  std::vector<std::string> anchors; // in order of appearance
  std::vector<std::string> numbers; // sorted: compared as a multiset
  bool negated = false;
  // The words' stems: one arena and (offset, length) pairs sorted by text, for binary search
  // (sorting short pairs is cheap; sorting the strings themselves cost more than the reading).
  std::string stem_text;
  std::vector<std::pair<uint32_t, uint32_t>> stems;

  std::string_view stem_at(const std::pair<uint32_t, uint32_t>& s) const {
    return std::string_view(stem_text).substr(s.first, s.second);
  }
  bool has_stem(std::string_view s) const {
    auto it = std::lower_bound(stems.begin(), stems.end(), s,
                               [&](const auto& a, std::string_view b) { return stem_at(a) < b; });
    return it != stems.end() && stem_at(*it) == s;
  }
  void add_stem(std::string_view s) {
    stems.emplace_back(uint32_t(stem_text.size()), uint32_t(s.size()));
    stem_text += s;
  }
  void sort_stems() {
    std::sort(stems.begin(), stems.end(),
              [&](const auto& a, const auto& b) { return stem_at(a) < stem_at(b); });
    stems.erase(std::unique(stems.begin(), stems.end(),
                            [&](const auto& a, const auto& b) { return stem_at(a) == stem_at(b); }),
                stems.end());
  }
};

// ASCII classes (the C locale's, without a libc call per byte; bytes >= 0x80 are word bytes).
bool ascii_upper(unsigned char c) {
  return c >= 'A' && c <= 'Z';
}
bool ascii_alpha(unsigned char c) {
  return ascii_upper(c) || (c >= 'a' && c <= 'z');
}
bool ascii_alnum(unsigned char c) {
  return ascii_alpha(c) || is_digit(static_cast<char>(c));
}

Read read(std::string_view text) {
  Read r;
  // Room for every word at once: a word starts at each letter or digit after another byte (the
  // bytes that join two runs into one word only lower the count), and the stems are no longer
  // than the text.
  size_t starts = 0;
  bool in_word = false;
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    const bool word_char = ascii_alnum(c) || c >= 0x80;
    starts += word_char && !in_word;
    in_word = word_char;
  }
  r.words.reserve(starts);
  r.stems.reserve(starts);
  r.stem_text.reserve(text.size());
  // Capitalised words inside a sentence and acronyms are anchors (names), seen before lower-
  // casing; a capital after . ! ? or at the start is only a sentence start.
  bool sentence_start = true;
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    const bool word_char = ascii_alnum(c) || c >= 0x80;
    if (!word_char) {
      if (c == '.' || c == '!' || c == '?' || c == ':' || c == '\n')
        sentence_start = true;
      ++i;
      continue;
    }
    size_t j = i;
    bool upper_first = ascii_upper(c), all_upper = true;
    size_t nletters = 0;
    while (j < text.size()) {
      unsigned char d = static_cast<unsigned char>(text[j]);
      if (ascii_alnum(d) || d >= 0x80 || d == '\'') {
        if (ascii_alpha(d)) {
          ++nletters;
          all_upper = all_upper && ascii_upper(d);
        }
        ++j;
      } else if ((d == '.' || d == ',') && j + 1 < text.size() && is_digit(text[j - 1]) &&
                 is_digit(text[j + 1])) {
        ++j; // 3.5, 1,000
      } else {
        break;
      }
    }
    std::string w(text.substr(i, j - i));
    for (char& ch : w)
      if (ascii_upper(static_cast<unsigned char>(ch)))
        ch = static_cast<char>(ch - 'A' + 'a');
    while (!w.empty() && w.back() == '\'')
      w.pop_back();
    if (w.ends_with("'s"))
      w.resize(w.size() - 2);
    if (!w.empty()) {
      const uint8_t flags = word_flags(w);
      if ((flags & kNegation) || w.ends_with("n't"))
        r.negated = true;
      if (is_number(w, flags)) {
        r.numbers.push_back(has_digit(w) ? canonical_number(w) : w);
      } else {
        const bool acronym = all_upper && nletters >= 2 && nletters <= 6;
        const bool name = upper_first && !sentence_start && w != "i" && !(flags & kStop);
        if ((flags & kAnchor) || acronym || name || has_digit(w))
          r.anchors.push_back(w);
      }
      r.add_stem(stem(w));
      r.words.push_back(std::move(w));
    }
    sentence_start = false;
    i = j;
  }
  r.sort_stems();
  std::sort(r.numbers.begin(), r.numbers.end());
  return r;
}

bool is_content(std::string_view w) {
  const uint8_t flags = word_flags(w);
  return !(flags & (kStop | kNegation)) && !is_number(w, flags) && w.size() > 1;
}

} // namespace

std::vector<std::string> verifier_words(std::string_view text) {
  return read(text).words;
}

namespace {

// The first word after `marker` that is not a stopword ("to a Set" -> "set"), or "".
std::string target_after(const Read& r, std::string_view marker) {
  for (size_t i = 0; i + 1 < r.words.size(); ++i) {
    if (r.words[i] != marker)
      continue;
    for (size_t j = i + 1; j < r.words.size() && j <= i + 4; ++j)
      if (!(word_flags(r.words[j]) & kStop))
        return stem(r.words[j]);
    return "";
  }
  return "";
}

// What kind of answer the question wants, when its wording says so plainly: when, where, who,
// why, how many / much / long / old / far / often / big / tall; "" otherwise.
std::string question_type(const Read& r) {
  for (size_t i = 0; i < r.words.size(); ++i) {
    const std::string& w = r.words[i];
    if (w == "when" || w == "where" || w == "who" || w == "why")
      return w;
    if (w == "whom" || w == "whose")
      return "who";
    if (w == "how" && i + 1 < r.words.size()) {
      const std::string& n = r.words[i + 1];
      for (std::string_view k : {"many", "much", "long", "old", "far", "often", "big", "tall"})
        if (n == k)
          return "how " + n;
      return "";
    }
  }
  return "";
}

// One edit apart (insert, delete, substitute or swap two neighbours), for words of five or more
// letters: "proccess" / "process", "relativty" / "relativity".
bool typo(const std::string& a, const std::string& b) {
  if (a.size() < 5 || b.size() < 5 || a == b)
    return false;
  // Versions and model numbers are never typos of each other (java8 / java9).
  if (std::any_of(a.begin(), a.end(), is_digit) || std::any_of(b.begin(), b.end(), is_digit))
    return false;
  const size_t n = a.size(), m = b.size();
  if (n > m + 1 || m > n + 1)
    return false;
  size_t i = 0;
  while (i < n && i < m && a[i] == b[i])
    ++i;
  if (n == m) {
    if (a.compare(i + 1, std::string::npos, b, i + 1, std::string::npos) == 0)
      return true; // substitution
    return i + 1 < n && a[i] == b[i + 1] && a[i + 1] == b[i] &&
           a.compare(i + 2, std::string::npos, b, i + 2, std::string::npos) == 0; // swap
  }
  // insertion / deletion
  return n > m ? a.compare(i + 1, std::string::npos, b, i, std::string::npos) == 0
               : b.compare(i + 1, std::string::npos, a, i, std::string::npos) == 0;
}

struct Aligned {
  std::string stem;
  int32_t row = -1;
  float weight = 1;
};

std::vector<Aligned> aligned_words(const Read& r, const models::WordVectors& wv) {
  std::vector<Aligned> out;
  std::unordered_set<std::string> seen;
  for (const auto& w : r.words) {
    if (!is_content(w) || !seen.insert(w).second)
      continue;
    Aligned a;
    a.stem = stem(w);
    a.row = wv.lookup(w);
    a.weight = a.row >= 0 ? wv.sif_weight(a.row) : 1.0f;
    out.push_back(std::move(a));
  }
  return out;
}

// The weakest match of a meaningful word of `x` in `y`: for every content word of x without the
// same stem in y, and rare enough to carry meaning (SIF weight >= rare_weight), its best
// word-vector cosine with y's content words; 1 when every such word is matched.
double weakest(const std::vector<Aligned>& x, const std::vector<Aligned>& y,
               const models::WordVectors& wv, double rare_weight, std::string* which = nullptr) {
  double worst = 1;
  for (const Aligned& a : x) {
    double best = 0;
    bool same = false;
    for (const Aligned& b : y) {
      if (a.stem == b.stem || typo(a.stem, b.stem)) {
        same = true;
        break;
      }
      if (a.row >= 0 && b.row >= 0)
        best = std::max(best, double(wv.row_cosine(a.row, b.row)));
    }
    if (!same && a.weight >= rare_weight && best < worst) {
      worst = best;
      if (which)
        *which = a.stem;
    }
  }
  return worst;
}

} // namespace

double Verifier::alignment(std::string_view x, std::string_view y) const {
  if (!words_)
    return 1.0;
  const Read a = read(x), b = read(y);
  const auto wa = aligned_words(a, *words_), wb = aligned_words(b, *words_);
  return std::min(weakest(wa, wb, *words_, opt_.rare_weight),
                  weakest(wb, wa, *words_, opt_.rare_weight));
}

struct VerifierReading {
  Read read;
};

std::shared_ptr<const VerifierReading> read_for_verifier(std::string_view text) {
  return std::make_shared<const VerifierReading>(VerifierReading{read(text)});
}

size_t reading_bytes(const VerifierReading& reading) {
  const Read& r = reading.read;
  size_t n =
      sizeof(VerifierReading) + r.stem_text.capacity() + r.stems.capacity() * sizeof(r.stems[0]);
  for (const auto* list : {&r.words, &r.anchors, &r.numbers}) {
    n += list->capacity() * sizeof(std::string);
    for (const std::string& w : *list)
      if (w.capacity() > 15) // beyond the short-string buffer
        n += w.capacity() + 1;
  }
  return n;
}

std::shared_ptr<const VerifierReading> Verifier::prepare(std::string_view text) const {
  return read_for_verifier(text);
}

std::string Verifier::check(std::string_view cached, std::string_view asked) const {
  return check(cached, *prepare(asked));
}

std::string Verifier::check(std::string_view cached, const VerifierReading& asked) const {
  return check(VerifierReading{read(cached)}, asked);
}

std::string Verifier::check(const VerifierReading& cached, const VerifierReading& asked) const {
  const Read& a = cached.read;
  const Read& b = asked.read;
  if (opt_.numbers && a.numbers != b.numbers)
    return "numbers";
  if (opt_.negation && a.negated != b.negated)
    return "negation";
  if (opt_.anchors) {
    // Exactly (by stem): names one letter apart are other names (Iceland / Ireland).
    auto present = [](const std::string& w, const Read& other) { return other.has_stem(stem(w)); };
    for (const auto& w : a.anchors)
      if (!present(w, b))
        return "anchors:" + w;
    for (const auto& w : b.anchors)
      if (!present(w, a))
        return "anchors:" + w;
  }
  if (opt_.direction) {
    // "convert km to miles" / "miles to km", "from PayPal to my bank" / "from my bank to PayPal":
    // the same words, the other way round.
    for (std::string_view marker : {"to", "from", "into", "than", "in"}) {
      const std::string ta = target_after(a, marker), tb = target_after(b, marker);
      if (!ta.empty() && !tb.empty() && ta != tb && b.has_stem(ta) && a.has_stem(tb))
        return "direction";
    }
  }
  if (opt_.question) {
    const std::string qa = question_type(a), qb = question_type(b);
    if (!qa.empty() && !qb.empty() && qa != qb)
      return "question";
  }
  if (opt_.word_similarity > 0 && words_) {
    const auto wa = aligned_words(a, *words_), wb = aligned_words(b, *words_);
    std::string wx, wy;
    const double x = weakest(wa, wb, *words_, opt_.rare_weight, &wx);
    const double y = weakest(wb, wa, *words_, opt_.rare_weight, &wy);
    if (std::min(x, y) < opt_.word_similarity)
      return "wording:" + (x <= y ? wx : wy);
  }
  return "";
}

} // namespace semrouter::cache
