#include "cache/verifier.h"

#include <algorithm>
#include <unordered_set>

#include "models/word_vectors.h"

namespace semrouter::cache {
namespace {

constexpr std::string_view kAnchorWords[] = {
#include "cache/anchor_words.inc"
};

const std::unordered_set<std::string_view>& anchor_set() {
  static const std::unordered_set<std::string_view> set(std::begin(kAnchorWords),
                                                        std::end(kAnchorWords));
  return set;
}

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

template <size_t N> bool in(const std::string_view (&list)[N], std::string_view w) {
  for (std::string_view x : list)
    if (x == w)
      return true;
  return false;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_number(const std::string& w) {
  if (in(kNumberWords, w))
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
  std::vector<std::string> numbers;
  bool negated = false;
  std::unordered_set<std::string> stems;
};

Read read(std::string_view text) {
  Read r;
  // Capitalised words inside a sentence and acronyms are anchors (names), seen before lower-
  // casing; a capital after . ! ? or at the start is only a sentence start.
  bool sentence_start = true;
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    const bool word_char = std::isalnum(c) || c >= 0x80;
    if (!word_char) {
      if (c == '.' || c == '!' || c == '?' || c == ':' || c == '\n')
        sentence_start = true;
      ++i;
      continue;
    }
    size_t j = i;
    bool upper_first = std::isupper(c), all_upper = true, letters = 0;
    size_t nletters = 0;
    while (j < text.size()) {
      unsigned char d = static_cast<unsigned char>(text[j]);
      if (std::isalnum(d) || d >= 0x80 || d == '\'') {
        if (std::isalpha(d)) {
          ++nletters;
          all_upper = all_upper && std::isupper(d);
        }
        ++j;
      } else if ((d == '.' || d == ',') && j + 1 < text.size() && is_digit(text[j - 1]) &&
                 is_digit(text[j + 1])) {
        ++j; // 3.5, 1,000
      } else {
        break;
      }
    }
    (void)letters;
    std::string raw(text.substr(i, j - i));
    std::string w;
    for (char ch : raw)
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    while (!w.empty() && w.back() == '\'')
      w.pop_back();
    if (w.ends_with("'s"))
      w.resize(w.size() - 2);
    if (!w.empty()) {
      r.words.push_back(w);
      if (in(kNegations, w) || w.ends_with("n't"))
        r.negated = true;
      if (is_number(w)) {
        r.numbers.push_back(has_digit(w) ? canonical_number(w) : w);
      } else {
        const bool acronym = all_upper && nletters >= 2 && nletters <= 6;
        const bool name = upper_first && !sentence_start && w != "i" && !in(kStopwords, w);
        if (anchor_set().count(w) || acronym || name || has_digit(w))
          r.anchors.push_back(w);
      }
      r.stems.insert(stem(w));
    }
    sentence_start = false;
    i = j;
  }
  return r;
}

bool is_content(const std::string& w) {
  return !in(kStopwords, w) && !in(kNegations, w) && !is_number(w) && w.size() > 1;
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
      if (!in(kStopwords, r.words[j]))
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

std::shared_ptr<const VerifierReading> Verifier::prepare(std::string_view text) const {
  return std::make_shared<const VerifierReading>(VerifierReading{read(text)});
}

std::string Verifier::check(std::string_view cached, std::string_view asked) const {
  return check(cached, *prepare(asked));
}

std::string Verifier::check(std::string_view cached, const VerifierReading& asked) const {
  const Read a = read(cached);
  const Read& b = asked.read;
  if (opt_.numbers) {
    auto x = a.numbers, y = b.numbers;
    std::sort(x.begin(), x.end());
    std::sort(y.begin(), y.end());
    if (x != y)
      return "numbers";
  }
  if (opt_.negation && a.negated != b.negated)
    return "negation";
  if (opt_.anchors) {
    // Exactly (by stem): names one letter apart are other names (Iceland / Ireland).
    auto present = [](const std::string& w, const Read& other) {
      return other.stems.count(stem(w)) > 0;
    };
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
      if (!ta.empty() && !tb.empty() && ta != tb && b.stems.count(ta) && a.stems.count(tb))
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
