// The flat index's prefilter step, on its own so tests can drive it with made-up distances: of n
// entries' code distances to a query, which `keep` entries to compare exactly.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "nn/kernels.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace semrouter::cache {

namespace prefilter_detail {

// The cut from a histogram of distances (`count(d)`: how many entries lie at distance d): the
// least distance at which the count up to and including it reaches `keep` (255 if none does);
// `below` is the count under the cut. Counts are read only as far as the cut.
template <class Count> unsigned cut_of(Count count, size_t keep, size_t& below) {
  below = 0;
  unsigned cut = 0;
  for (; cut < 255; ++cut) {
    const size_t at = count(cut);
    if (below + at >= keep)
      break;
    below += at;
  }
  return cut;
}

#if defined(__SSE2__)
// Bit k set when p[k] <= x, for the 16 bytes at p (unsigned: min(d, x) == d).
inline unsigned at_most_mask(const uint8_t* p, __m128i x16) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, x16), v)));
}
#endif

// Visits the entries below the cut and the first (keep - below) at it, in the order offered, and
// says when all keep have gone. Kept by value in the loops that use it, so its counts stay in
// registers.
struct Taker {
  unsigned cut;
  size_t at_cut; // how many entries at the cut still go in
  size_t left;   // how many entries still go in: none once this reaches 0
  // An entry at or below the cut.
  template <class Visit> void offer_within(uint8_t d, size_t e, Visit& visit) {
    if (d == cut) {
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

// Visits, among the first n entries, those the taker keeps, in index order, 16 at a time where
// SSE2 is there, stopping once all have gone.
// (Once t.left is 0 every entry below the cut has gone and none at it may: the inner loops need
// not check it.)
template <class Visit> void take_in_order(const uint8_t* dist, size_t n, Taker t, Visit& visit) {
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i c16 = _mm_set1_epi8(static_cast<char>(t.cut));
  for (; i + 16 <= n && t.left; i += 16) {
    for (unsigned m = at_most_mask(dist + i, c16); m; m &= m - 1) {
      const size_t e = i + size_t(__builtin_ctz(m));
      t.offer_within(dist[e], e, visit);
    }
  }
#endif
  for (; i < n && t.left; ++i)
    if (dist[i] <= t.cut)
      t.offer_within(dist[i], i, visit);
}

// A histogram of every 16th distance gives a bound, most often above the cut (the sample's count
// up to it is twice keep's share of the samples, and 8 more). One pass takes the histogram of the
// entries at or below the bound only, and notes where they are while they number at most
// 4 * keep + 64 (past that, as when most entries are near-ties of the query, the choice reads
// every entry again). The exact cut comes from that histogram. Returns false, having visited
// nothing, when the bound turned out below the cut (fewer than keep at or under it), or when the
// sample says it would let more than twice that many through. A sample unlike the rest (not so
// with codes of real vectors) costs up to three passes: correct, and a few times slower than the
// bisection.
template <class Visit>
bool nearest_below_sampled_bound(const uint8_t* dist, size_t n, size_t keep, Visit& visit) {
  uint32_t sample[256] = {};
  size_t samples = 0;
  for (size_t i = 0; i < n; i += kSampleStep, ++samples)
    ++sample[dist[i]];
  const size_t want = std::min(samples, 2 * keep * samples / n + 8);
  unsigned bound = 0;
  size_t seen = 0;
  for (; bound < 255; ++bound) {
    seen += sample[bound];
    if (seen >= want)
      break;
  }
  const size_t cap = 4 * keep + 64;
  // Ties at the bound (most entries near-ties of the query, say): the bound would let about
  // seen * kSampleStep through, which the full pass counts as cheaply.
  if (seen * kSampleStep > 2 * cap)
    return false;
  static thread_local std::vector<uint32_t> low;
  if (low.size() < cap)
    low.resize(cap);
  uint32_t* out = low.data();
  uint32_t hist[256] = {};
  size_t c = 0; // entries at or under the bound; the first min(c, cap) are in out
  auto note = [&](size_t e) {
    ++hist[dist[e]];
    if (c < cap)
      out[c] = uint32_t(e);
    ++c;
  };
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i b16 = _mm_set1_epi8(static_cast<char>(bound));
  for (; i + 16 <= n; i += 16)
    for (unsigned m = at_most_mask(dist + i, b16); m; m &= m - 1)
      note(i + size_t(__builtin_ctz(m)));
#endif
  for (; i < n; ++i)
    if (dist[i] <= bound)
      note(i);
  if (c < keep)
    return false;
  size_t below;
  const unsigned cut = cut_of([&](unsigned d) { return size_t(hist[d]); }, keep, below);
  Taker t{cut, keep - below, keep};
  if (c > cap) {
    take_in_order(dist, n, t, visit);
    return true;
  }
  for (size_t k = 0; k < c && t.left; ++k)
    if (dist[out[k]] <= cut)
      t.offer_within(dist[out[k]], out[k], visit);
  return true;
}

// The cut by bisection on counts: nn::kernels::count_at_most is a compare per distance (64 a
// step with AVX-512BW), so eight passes over the distances cost less than filling and clearing
// a histogram of them, one increment per entry. Then the choice. For 0 < keep < n.
template <class Visit>
void nearest_by_counts(const uint8_t* dist, size_t n, size_t keep, Visit& visit) {
  unsigned lo = 0, hi = 255; // the cut lies in [lo, hi]: at most hi, n entries reach keep
  size_t below = 0;          // entries under lo
  while (lo < hi) {
    const unsigned mid = (lo + hi) / 2;
    const size_t c = nn::kernels::count_at_most(dist, int64_t(n), uint8_t(mid));
    if (c >= keep)
      hi = mid;
    else
      lo = mid + 1, below = c;
  }
  Taker t{lo, keep - below, keep};
  take_in_order(dist, n, t, visit);
}

} // namespace prefilter_detail

// Calls visit(i) for the min(keep, n) entries of smallest dist[i], in one pass in index order:
// those below the cut distance and the first ones (by index) at the cut. For many entries of
// which few are kept, the cut comes from a histogram of those under a bound a sample of the
// distances gives (nearest_below_sampled_bound); else from counts of every entry, by bisection
// (nearest_by_counts). The pass stops at the last entry it keeps. `visit` must not call
// for_each_nearest itself: the sampled path keeps its list of entries in a buffer per thread.
// n must be below 2^32 (entries are noted as 32-bit indices).
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
  nearest_by_counts(dist, n, keep, visit);
}

} // namespace semrouter::cache
