// The cache's second opinion: nearest-neighbour similarity alone takes "capital of France" for
// "capital of Germany" and "convert 5 miles to km" for "convert 8 miles to km". Before a
// semantic hit is served, the cached question and the new one must agree on:
//  - numbers (digits and number words, as a multiset);
//  - negation (both negated or neither: not, no, never, without, n't, ...);
//  - anchor words: named entities and closed-class values whose swap changes the answer
//    (countries, cities, languages, units, currencies, months, ... from a built-in list, plus
//    acronyms, words with digits and capitalised words inside a sentence): each must appear in
//    the other text too;
//  - direction: the word after to / from / into / than ("km to miles" / "miles to km");
//  - the kind of question when both say it plainly (when / where / who / why / how many / how
//    long / ...: "when was it built" / "how long is it");
//  - wording: every meaningful (rare enough) content word of each text must find a close match
//    in the other (the same stem, or a near word vector), else it is "population of Tokyo" /
//    "area of Tokyo" or "set up a React project" / "test a React project".
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace semrouter::models {
class WordVectors;
}

namespace semrouter::cache {

struct VerifierReading; // a text as the verifier reads it (words, numbers, anchors, ...)

struct VerifierOptions {
  bool numbers = true;
  bool negation = true;
  bool anchors = true;
  bool direction = true;
  bool question = true;
  // Least word-vector cosine between a meaningful word of one text and its best match in the
  // other; 0: not checked (also when no word vectors are loaded).
  double word_similarity = 0.6;
  // Words with a SIF weight below this (the commonest: "make", "get", "way") need no match.
  double rare_weight = 0.9;
};

class Verifier {
public:
  Verifier(VerifierOptions options, const models::WordVectors* words)
      : opt_(options), words_(words) {}
  // "" when `asked` may be answered with `cached`'s answer; otherwise the reason (numbers,
  // negation, anchors, direction, question, wording).
  std::string check(std::string_view cached, std::string_view asked) const;
  // The same with `asked` read once (prepare) for all of a lookup's candidates.
  std::shared_ptr<const VerifierReading> prepare(std::string_view text) const;
  std::string check(std::string_view cached, const VerifierReading& asked) const;
  // The same with both texts read (the cache keeps each entry's reading, read_for_verifier).
  std::string check(const VerifierReading& cached, const VerifierReading& asked) const;
  // The weakest match of a meaningful word of either text in the other (1 without word
  // vectors, or when every such word has the same stem in the other).
  double alignment(std::string_view a, std::string_view b) const;

private:
  VerifierOptions opt_;
  const models::WordVectors* words_;
};

// A text as the verifier reads it, independent of the verifier's options: the memory cache reads
// an entry once, the first time it is a candidate, instead of at every lookup.
std::shared_ptr<const VerifierReading> read_for_verifier(std::string_view text);
// The heap bytes a reading holds, about (the cache counts them in its size).
size_t reading_bytes(const VerifierReading& reading);

// Lower-case word tokens of a text as the verifier reads it (letters, digits, '.' inside a
// number, and apostrophes); exposed for tests.
std::vector<std::string> verifier_words(std::string_view text);

} // namespace semrouter::cache
