// The flat index's prefilter step, on its own so tests can drive it with made-up distances: of n
// entries' code distances to a query, which `keep` entries to compare exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace semrouter::cache {

// Calls visit(i) for the min(keep, n) entries of smallest dist[i], in one pass in index order:
// those below the cut distance and the first ones (by index) at the cut. The cut comes from a
// histogram of the distances; four histograms take turns, so runs of one distance do not wait on
// each other's increments. The pass stops at the last entry it keeps.
template <class Visit>
void for_each_nearest(const uint8_t* dist, size_t n, size_t keep, Visit&& visit) {
  if (keep >= n) {
    for (size_t i = 0; i < n; ++i)
      visit(i);
    return;
  }
  if (keep == 0)
    return;
  uint32_t hist[4][256] = {};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    ++hist[0][dist[i]], ++hist[1][dist[i + 1]], ++hist[2][dist[i + 2]], ++hist[3][dist[i + 3]];
  for (; i < n; ++i)
    ++hist[0][dist[i]];
  size_t below = 0;
  unsigned cut = 0;
  for (; cut < 255; ++cut) {
    const size_t at = size_t(hist[0][cut]) + hist[1][cut] + hist[2][cut] + hist[3][cut];
    if (below + at >= keep)
      break;
    below += at;
  }
  size_t at_cut = keep - below; // how many entries at the cut still go in
  size_t left = keep;           // how many entries still go in: none once this reaches 0
  auto take = [&](size_t e) {
    if (dist[e] == cut) {
      if (at_cut == 0)
        return;
      --at_cut;
    }
    visit(e);
    --left;
  };
  i = 0;
#if defined(__SSE2__)
  const __m128i c16 = _mm_set1_epi8(static_cast<char>(cut));
  for (; i + 16 <= n && left; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(dist + i));
    // d <= cut, unsigned: min(d, cut) == d
    for (unsigned m = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, c16), v))); m;
         m &= m - 1)
      take(i + size_t(__builtin_ctz(m)));
  }
#endif
  for (; i < n && left; ++i)
    if (dist[i] <= cut)
      take(i);
}

} // namespace semrouter::cache
