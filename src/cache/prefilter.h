// The flat index's prefilter step, on its own so tests can drive it with made-up distances: of n
// entries' code distances to a query, which `keep` entries to compare exactly.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace semrouter::cache {

namespace prefilter_detail {

// The cut from a histogram of distances: the least distance at which the count up to and
// including it reaches `keep` (255 if none does); `below` is the count under the cut.
inline unsigned cut_of(const uint32_t* hist, size_t keep, size_t& below) {
  below = 0;
  unsigned cut = 0;
  for (; cut < 255; ++cut) {
    if (below + hist[cut] >= keep)
      break;
    below += hist[cut];
  }
  return cut;
}

// Visits the entries below the cut and the first (keep - below) at it, in the order offered, and
// says when all keep have gone.
struct Taker {
  unsigned cut;
  size_t at_cut; // how many entries at the cut still go in
  size_t left;   // how many entries still go in: none once this reaches 0
  template <class Visit> void offer(const uint8_t* dist, size_t e, Visit& visit) {
    if (dist[e] > cut)
      return;
    if (dist[e] == cut) {
      if (at_cut == 0)
        return;
      --at_cut;
    }
    visit(e);
    --left;
  }
};

// From this many entries on, and while at most an eighth are kept, the cut lies in the low tail
// of the distances, and a sample finds it without a histogram of every entry.
constexpr size_t kSampledMin = 4096;
constexpr size_t kSampleStep = 16;

// A histogram of every 16th distance gives a bound above the cut (the sample's count up to it is
// twice keep's share of the samples, and 8 more); one pass collects the entries at or below the
// bound, in index order, and the exact cut comes from their histogram alone. Returns false, having
// visited nothing, when the bound turned out below the cut (fewer than keep at or under it) or let
// more than 4 * keep + 64 through; the caller then takes every entry's histogram.
template <class Visit>
bool nearest_below_sampled_bound(const uint8_t* dist, size_t n, size_t keep, Visit& visit) {
  uint32_t sample[256] = {};
  size_t samples = 0;
  for (size_t i = 0; i < n; i += kSampleStep, ++samples)
    ++sample[dist[i]];
  const size_t want = std::min(samples, 2 * keep * samples / n + 8);
  unsigned bound = 0;
  for (size_t seen = 0; bound < 255; ++bound) {
    seen += sample[bound];
    if (seen >= want)
      break;
  }
  const size_t cap = 4 * keep + 64;
  static thread_local std::vector<uint32_t> low;
  if (low.size() < cap)
    low.resize(cap);
  uint32_t* out = low.data();
  size_t c = 0, i = 0;
#if defined(__SSE2__)
  const __m128i b16 = _mm_set1_epi8(static_cast<char>(bound));
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(dist + i));
    // d <= bound, unsigned: min(d, bound) == d
    unsigned m = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, b16), v)));
    if (!m)
      continue;
    if (c + size_t(__builtin_popcount(m)) > cap)
      return false;
    for (; m; m &= m - 1)
      out[c++] = uint32_t(i + size_t(__builtin_ctz(m)));
  }
#endif
  for (; i < n; ++i)
    if (dist[i] <= bound) {
      if (c == cap)
        return false;
      out[c++] = uint32_t(i);
    }
  if (c < keep)
    return false;
  uint32_t hist[256] = {};
  for (size_t k = 0; k < c; ++k)
    ++hist[dist[out[k]]];
  size_t below;
  const unsigned cut = cut_of(hist, keep, below);
  Taker t{cut, keep - below, keep};
  for (size_t k = 0; k < c && t.left; ++k)
    t.offer(dist, out[k], visit);
  return true;
}

} // namespace prefilter_detail

// Calls visit(i) for the min(keep, n) entries of smallest dist[i], in one pass in index order:
// those below the cut distance and the first ones (by index) at the cut. The cut comes from a
// histogram of the distances: of every entry (four histograms take turns, so runs of one
// distance do not wait on each other's increments), or, for many entries of which few are kept,
// of those under a bound a sample of the distances gives (prefilter_detail). The pass stops at
// the last entry it keeps.
template <class Visit>
void for_each_nearest(const uint8_t* dist, size_t n, size_t keep, Visit&& visit) {
  using namespace prefilter_detail;
  if (keep >= n) {
    for (size_t i = 0; i < n; ++i)
      visit(i);
    return;
  }
  if (keep == 0)
    return;
  if (n >= kSampledMin && keep <= n / 8 && nearest_below_sampled_bound(dist, n, keep, visit))
    return;
  uint32_t hist[4][256] = {};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    ++hist[0][dist[i]], ++hist[1][dist[i + 1]], ++hist[2][dist[i + 2]], ++hist[3][dist[i + 3]];
  for (; i < n; ++i)
    ++hist[0][dist[i]];
  for (size_t d = 0; d < 256; ++d)
    hist[0][d] += hist[1][d] + hist[2][d] + hist[3][d];
  size_t below;
  const unsigned cut = cut_of(hist[0], keep, below);
  Taker t{cut, keep - below, keep};
  i = 0;
#if defined(__SSE2__)
  const __m128i c16 = _mm_set1_epi8(static_cast<char>(cut));
  for (; i + 16 <= n && t.left; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(dist + i));
    for (unsigned m = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, c16), v)));
         m && t.left; m &= m - 1)
      t.offer(dist, i + size_t(__builtin_ctz(m)), visit);
  }
#endif
  for (; i < n && t.left; ++i)
    t.offer(dist, i, visit);
}

} // namespace semrouter::cache
