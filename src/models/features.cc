#include "models/features.h"

#include <algorithm>
#include <cmath>

#include "text/unicode.h"

namespace semrouter::models {

uint64_t fnv1a(std::string_view s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace {

bool invisible(char32_t c) {
  return c == 0x200B || c == 0x200C || c == 0x200D || c == 0x2060 || c == 0xFEFF || c == 0x00AD ||
         c == 0x180E;
}

} // namespace

void words_of(std::string_view text, std::vector<std::string>& out) {
  out.clear();
  std::string cur;
  auto flush = [&] {
    if (!cur.empty())
      out.push_back(std::move(cur)), cur.clear();
  };
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) { // ASCII fast path
      if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        cur.push_back(char(c));
      else if (c >= 'A' && c <= 'Z')
        cur.push_back(char(c + 32));
      else if (c == '\'' && !cur.empty())
        ; // "don't" -> "dont"
      else
        flush();
      ++i;
      continue;
    }
    auto chars = text::decode_utf8(text.substr(i, std::min<size_t>(4, text.size() - i)));
    const auto& ch = chars.front();
    size_t len = ch.end - ch.begin;
    i += len;
    if (invisible(ch.cp))
      continue; // zero-width characters inside a word do not split it
    if (text::is_letter(ch.cp) || text::is_number(ch.cp) || text::is_mark_nonspacing(ch.cp)) {
      text::OffsetString one{ch}, low;
      text::lowercase_into(one, low);
      for (const auto& l : low)
        text::append_utf8(cur, l.cp);
      if (text::is_cjk(ch.cp)) // CJK has no spaces: each ideograph is a word
        flush();
    } else {
      flush();
    }
  }
  flush();
}

void FeatureHasher::word_ids(const std::string& word, std::vector<uint32_t>& ids) const {
  const uint32_t mask = dim() - 1;
  ids.push_back(uint32_t(fnv1a(word)) & mask);
  if (o_.char_ngram_min > 0 && word.size() > 2) {
    thread_local std::string buf;
    buf.assign("<");
    buf += word;
    buf += '>';
    // n-grams over bytes of the bracketed word (fastText also works on bytes).
    for (int n = o_.char_ngram_min; n <= o_.char_ngram_max; ++n)
      for (size_t k = 0; k + size_t(n) <= buf.size(); ++k) {
        if ((static_cast<unsigned char>(buf[k]) & 0xC0) == 0x80)
          continue; // do not start inside a UTF-8 sequence
        ids.push_back(uint32_t(fnv1a(std::string_view(buf).substr(k, size_t(n)), 0x1234567ull)) &
                      mask);
      }
  }
}

uint32_t FeatureHasher::bigram_id(const std::string& a, const std::string& b) const {
  uint64_t h = fnv1a(a, 0x84222325cbf29ce4ull);
  h = fnv1a(" ", h);
  return uint32_t(fnv1a(b, h)) & (dim() - 1);
}

void FeatureHasher::from_ids(std::vector<uint32_t>& ids, SparseVec& out) {
  std::sort(ids.begin(), ids.end());
  out.idx.clear();
  out.val.clear();
  for (size_t k = 0; k < ids.size();) {
    size_t e = k + 1;
    while (e < ids.size() && ids[e] == ids[k])
      ++e;
    out.idx.push_back(ids[k]);
    out.val.push_back(1.f + std::log(float(e - k)));
    k = e;
  }
  double ss = 0;
  for (float v : out.val)
    ss += double(v) * v;
  if (ss > 0) {
    float inv = float(1.0 / std::sqrt(ss));
    for (float& v : out.val)
      v *= inv;
  }
}

void FeatureHasher::features(const std::vector<std::string>& words, SparseVec& out) const {
  thread_local std::vector<uint32_t> ids;
  ids.clear();
  for (size_t w = 0; w < words.size(); ++w) {
    word_ids(words[w], ids);
    if (o_.word_bigrams && w + 1 < words.size())
      ids.push_back(bigram_id(words[w], words[w + 1]));
  }
  from_ids(ids, out);
}

void FeatureHasher::features(std::string_view text, SparseVec& out) const {
  std::vector<std::string> words;
  words_of(text, words);
  features(words, out);
}

} // namespace semrouter::models
