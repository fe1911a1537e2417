#include "models/features.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

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

namespace {

// `begins`, when given, gets each word's first byte offset.
void split_words(std::string_view text, std::vector<std::string>& out,
                 std::vector<uint32_t>* begins) {
  out.clear();
  if (begins)
    begins->clear();
  std::string cur;
  size_t cur_begin = 0;
  auto flush = [&] {
    if (cur.empty())
      return;
    out.push_back(std::move(cur)), cur.clear();
    if (begins)
      begins->push_back(uint32_t(cur_begin));
  };
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) { // ASCII fast path
      if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        if (cur.empty())
          cur_begin = i;
        cur.push_back(char(c));
      } else if (c >= 'A' && c <= 'Z') {
        if (cur.empty())
          cur_begin = i;
        cur.push_back(char(c + 32));
      } else if (c == '\'' && !cur.empty()) {
        ; // "don't" -> "dont"
      } else {
        flush();
      }
      ++i;
      continue;
    }
    auto chars = text::decode_utf8(text.substr(i, std::min<size_t>(4, text.size() - i)));
    const auto& ch = chars.front();
    size_t len = ch.end - ch.begin;
    const size_t at = i;
    i += len;
    if (invisible(ch.cp))
      continue; // zero-width characters inside a word do not split it
    if (text::is_letter(ch.cp) || text::is_number(ch.cp) || text::is_mark_nonspacing(ch.cp)) {
      if (cur.empty())
        cur_begin = at;
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

} // namespace

void words_of(std::string_view text, std::vector<std::string>& out) {
  split_words(text, out, nullptr);
}

void words_of(std::string_view text, std::vector<std::string>& out, std::vector<uint32_t>& begins) {
  split_words(text, out, &begins);
}

void FeatureHasher::word_ids(const std::string& word, std::vector<uint32_t>& ids) const {
  const uint32_t mask = dim() - 1;
  ids.push_back(uint32_t(fnv1a(word)) & mask);
  if (o_.char_ngram_min > 0 && word.size() > 2) {
    thread_local std::string buf;
    buf.assign("<");
    buf += word;
    buf += '>';
    // n-grams over bytes of the bracketed word (fastText also works on bytes). The n-grams that
    // start at one byte extend each other, so each longer one continues the shorter one's hash
    // (FNV-1a is a running hash). The ids come out by start rather than by length: the same
    // multiset, which is all that from_ids() and the spans read.
    const size_t lo = size_t(o_.char_ngram_min), hi = size_t(o_.char_ngram_max);
    for (size_t k = 0; k + lo <= buf.size(); ++k) {
      if ((static_cast<unsigned char>(buf[k]) & 0xC0) == 0x80)
        continue; // do not start inside a UTF-8 sequence
      uint64_t h = 0x1234567ull;
      for (size_t len = 1; len <= hi && k + len <= buf.size(); ++len) {
        h ^= static_cast<unsigned char>(buf[k + len - 1]);
        h *= 0x100000001b3ull;
        if (len >= lo)
          ids.push_back(uint32_t(h) & mask);
      }
    }
  }
}

uint32_t FeatureHasher::bigram_id(const std::string& a, const std::string& b) const {
  uint64_t h = fnv1a(a, 0x84222325cbf29ce4ull);
  h = fnv1a(" ", h);
  return uint32_t(fnv1a(b, h)) & (dim() - 1);
}

void sort_ids(std::vector<uint32_t>& ids) {
  // Below this, std::sort (insertion sort on small ranges) is as fast.
  constexpr size_t kRadixMin = 64;
  constexpr int kMaxDigitBits = 11;
  const size_t n = ids.size();
  if (n < kRadixMin) {
    std::sort(ids.begin(), ids.end());
    return;
  }
  uint32_t all = 0;
  for (uint32_t v : ids)
    all |= v;
  if (all == 0)
    return;
  // LSD radix sort. Each pass reads and writes every id and clears and sums 2^digit counts:
  // the number of passes that costs least for this many ids (three of 6 bits for a window's few
  // hundred, two of 9 bits for a long text's thousands of 2^17 buckets).
  const int bits = 32 - __builtin_clz(all);
  int passes = 0, digit = 0;
  size_t best = SIZE_MAX;
  for (int p = (bits + kMaxDigitBits - 1) / kMaxDigitBits; p <= 4; ++p) {
    const int d = (bits + p - 1) / p;
    const size_t cost = size_t(p) * (2 * n + 2 * (size_t(1) << d));
    if (cost < best)
      best = cost, passes = p, digit = d;
  }
  const uint32_t mask = (1u << digit) - 1;
  thread_local std::vector<uint32_t> buffer;
  buffer.resize(n);
  uint32_t* src = ids.data();
  uint32_t* dst = buffer.data();
  std::array<uint32_t, size_t(1) << kMaxDigitBits> count;
  for (int p = 0; p < passes; ++p) {
    const int shift = p * digit;
    std::fill(count.begin(), count.begin() + mask + 1, 0u);
    for (size_t k = 0; k < n; ++k)
      ++count[(src[k] >> shift) & mask];
    uint32_t sum = 0;
    for (uint32_t d = 0; d <= mask; ++d) {
      const uint32_t c = count[d];
      count[d] = sum;
      sum += c;
    }
    for (size_t k = 0; k < n; ++k)
      dst[count[(src[k] >> shift) & mask]++] = src[k];
    std::swap(src, dst);
  }
  if (src != ids.data())
    std::copy(src, src + n, ids.data());
}

namespace {

// 1 + log(count) for the small counts nearly every feature has, computed once by the same
// std::log, so the values are the same.
constexpr size_t kTfTable = 64;
const std::array<float, kTfTable>& tf_table() {
  static const std::array<float, kTfTable> table = [] {
    std::array<float, kTfTable> t{};
    for (size_t c = 1; c < kTfTable; ++c)
      t[c] = 1.f + std::log(float(c));
    return t;
  }();
  return table;
}

} // namespace

void FeatureHasher::from_ids(std::vector<uint32_t>& ids, SparseVec& out) {
  sort_ids(ids);
  const auto& tf = tf_table();
  const size_t n = ids.size();
  // Where each run of equal ids starts, without a branch per id: every position is written to
  // the next free slot, which only the first id of a run keeps.
  thread_local std::vector<uint32_t> starts;
  starts.resize(n + 1);
  size_t unique = 0;
  for (size_t k = 0; k < n; ++k) {
    starts[unique] = uint32_t(k);
    unique += k == 0 || ids[k] != ids[k - 1];
  }
  starts[unique] = uint32_t(n);
  out.idx.resize(unique);
  out.val.resize(unique);
  for (size_t u = 0; u < unique; ++u) {
    const size_t count = starts[u + 1] - starts[u];
    out.idx[u] = ids[starts[u]];
    out.val[u] = count < kTfTable ? tf[count] : 1.f + std::log(float(count));
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
