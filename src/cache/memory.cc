#include "cache/memory.h"

#include "cache/prefilter.h"
#include "cache/verifier.h"
#include "models/features.h"
#include "nn/kernels.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <span>

// hnswlib 0.6's SSE path prefetches the entry after the last of a full neighbour list (a read
// one element past the allocation, harmless on hardware, an error to AddressSanitizer). The
// sanitizer build takes its portable path instead; release builds keep SSE.
#if defined(__SANITIZE_ADDRESS__)
#define NO_MANUAL_VECTORIZATION
#endif
#include <hnswlib/hnswlib.h>

namespace semrouter::cache {

uint64_t hash_bytes(std::string_view s, uint64_t h) {
  // FNV-1a waits for one multiply per byte: 0.3-0.4 ms for a pasted 300 kB document's exact
  // key. From kLaneHashBytes on, four lanes take 8 bytes each per step (independent
  // multiplies), and a final mix folds them and the tail together. Anything shorter (tenant
  // keys, system prompts, chat turns) keeps plain FNV-1a, and so the key it had before.
  constexpr uint64_t prime = 0x100000001b3ull;
  if (s.size() < kLaneHashBytes)
    return models::fnv1a(s, h);
  uint64_t lane[4] = {h, h ^ 0x9e3779b97f4a7c15ull, h ^ 0xc2b2ae3d27d4eb4full,
                      h ^ 0x165667b19e3779f9ull};
  const char* p = s.data();
  size_t n = s.size();
  for (; n >= 32; p += 32, n -= 32)
    for (int k = 0; k < 4; ++k) {
      uint64_t w;
      std::memcpy(&w, p + 8 * k, 8);
      lane[k] = (lane[k] ^ w) * prime;
      lane[k] ^= lane[k] >> 29;
    }
  uint64_t out = s.size();
  for (uint64_t l : lane)
    out = (out ^ l) * 0x9fb21c651e98df25ull, out ^= out >> 32;
  return models::fnv1a(std::string_view(p, n), out);
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string normalize(std::string_view text) {
  // Lower case (ASCII); runs of spaces and tabs inside a line become one space; a line's
  // indentation and the line breaks stay (code differs by them); blank lines and trailing space
  // go; a trailing ? or . goes ("!" stays: "10!" is not "10"). CRs are dropped.
  //
  // Written into a buffer of the input's size (the output is never longer) a run of word bytes
  // at a time: a pasted document's exact key read it byte by byte through std::string's append,
  // 1.5k-2k instructions per 100 bytes.
  auto blank = [](unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  std::string out(text.size(), '\0');
  char* w = out.data();
  size_t o = 0;
  const size_t n = text.size();
  bool line_start = true, space = false;
  for (size_t i = 0; i < n;) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\r') {
      ++i;
      continue;
    }
    if (c == '\n') {
      while (o > 0 && w[o - 1] == ' ')
        --o;
      if (o > 0 && w[o - 1] != '\n')
        w[o++] = '\n';
      line_start = true;
      space = false;
      ++i;
      continue;
    }
    if (blank(c)) {
      if (line_start && o > 0)
        w[o++] = c == '\t' ? '\t' : ' '; // indentation, as it is
      else if (!line_start)
        space = true;
      ++i;
      continue;
    }
    if (space && o > 0 && w[o - 1] != '\n')
      w[o++] = ' ';
    space = false;
    line_start = false;
    size_t j = i;
#if defined(__SSE2__)
    // Sixteen bytes at a time while the text is words and single spaces: such a stretch is its
    // own normal form, lower-cased, as long as it does not end in a space that a blank follows
    // (the rules for a space before a line break or a second space). The stores may run past
    // the stretch: o + (j - i) <= j (the output is never longer than what it has read), so
    // they stay inside `out`, and what lies past the stretch is written over or cut.
    bool stopped = false;
    for (; j + 16 <= n; j += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text.data() + j));
      const __m128i upper =
          _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('A' - 1)),
                        _mm_cmplt_epi8(v, _mm_set1_epi8('Z' + 1))); // bytes >= 0x80 are < 0
      _mm_storeu_si128(reinterpret_cast<__m128i*>(w + o + (j - i)),
                       _mm_add_epi8(v, _mm_and_si128(upper, _mm_set1_epi8(0x20))));
      const unsigned sp = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(' '))));
      const unsigned ctrl = unsigned(_mm_movemask_epi8(
          _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('\t' - 1)),
                        _mm_cmplt_epi8(v, _mm_set1_epi8('\r' + 1))))); // \t \n \v \f \r
      const unsigned stop = ctrl | (sp & (sp >> 1));
      size_t len = stop ? size_t(__builtin_ctz(stop)) : 16;
      // A space at the stretch's end is its own normal form when a word byte follows it.
      if (len > 0 && ((sp >> (len - 1)) & 1u) &&
          !(len == 16 && j + 16 < n && !blank(static_cast<unsigned char>(text[j + 16]))))
        --len;
      if (len < 16) {
        j += len;
        stopped = true;
        break;
      }
    }
    if (!stopped)
#endif
      for (; j < n && !blank(static_cast<unsigned char>(text[j])); ++j) {
        const unsigned char d = static_cast<unsigned char>(text[j]);
        w[o + (j - i)] = char(unsigned(d - 'A') < 26u ? d + ('a' - 'A') : d);
      }
    o += j - i;
    i = j;
  }
  while (o > 0 && (w[o - 1] == '?' || w[o - 1] == '.' || w[o - 1] == ' ' || w[o - 1] == '\n' ||
                   w[o - 1] == '\t'))
    --o;
  out.resize(o);
  return out;
}

std::string format_id(uint64_t id) {
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, id >>= 4)
    out[size_t(i)] = "0123456789abcdef"[id & 15];
  return out;
}

uint64_t parse_id(std::string_view id) {
  if (id.size() != 16)
    return 0;
  uint64_t v = 0;
  for (char c : id) {
    int d = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
    if (d < 0)
      return 0;
    v = (v << 4) | uint64_t(d);
  }
  return v;
}

namespace {
// hnswlib's inner-product space with nn::kernels::dot as its distance: compiled per ISA level
// and picked when the program loads (AVX-512 or AVX2 with FMA where the CPU has them), where
// hnswlib's own is fixed when semrouter is built (SSE at the portable x86-64-v2). Most of a
// store into a full graph and of a search is this function.
class DotSpace final : public hnswlib::SpaceInterface<float> {
public:
  // `stored` floats per element (the padded dimension), of which the first `dim` are compared.
  DotSpace(size_t stored, size_t dim) : bytes_(stored * sizeof(float)), dim_(dim) {}
  size_t get_data_size() override { return bytes_; }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &distance; }
  void* get_dist_func_param() override { return &dim_; }

private:
  static float distance(const void* a, const void* b, const void* dim) {
    return 1.f - nn::kernels::dot(static_cast<const float*>(a), static_cast<const float*>(b),
                                  int64_t(*static_cast<const size_t*>(dim)));
  }
  size_t bytes_;
  size_t dim_;
};

// The flat index's sign codes: 128 bits per vector, and how many entries whose codes are nearest
// the query's a search compares (kRerank; by int8 copies, then the best in floats, see below).
// `cache-bench --recall` (docs/benchmarks.md) chose them: on 10,915 real questions' embeddings the
// best entry was found for 95.7% of held-out questions with 128 bits and 128 compared, 98.2% with
// 256 compared, 99.1% with 384 (256 bits and 128 compared: 98.8%, with twice the scan); for a
// reworded stored question, the scan's best every time.
constexpr size_t kCodeWords = 2;
constexpr size_t kRerank = 384;
// The rerank compares int8 copies of the kRerank vectors first (a quarter of the bytes, which
// were most of its cost: the rows lie scattered, out of the caches), then the floats of the best
// max(kRescore, 2k) of those, exactly (a search's best k, and as many again for int8's error,
// about 1e-3 on a cosine). `cache-bench --recall` finds the same entries as a rerank of floats
// alone.
constexpr size_t kRescore = 16;

// A 64-bit hash of a vector's bytes, never 0: eight bytes a step in two lanes.
uint64_t vector_hash(const float* v, size_t dim) {
  const char* p = reinterpret_cast<const char*>(v);
  size_t n = dim * sizeof(float);
  uint64_t a = 0x9e3779b97f4a7c15ull ^ n, b = 0xc2b2ae3d27d4eb4full;
  auto mix = [](uint64_t h, uint64_t w) {
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
  };
  for (; n >= 16; p += 16, n -= 16) {
    uint64_t w[2];
    std::memcpy(w, p, 16);
    a = mix(a, w[0]);
    b = mix(b, w[1]);
  }
  uint64_t tail[2] = {0, 0};
  std::memcpy(tail, p, n);
  const uint64_t h = mix(mix(a, tail[0]) ^ (b * 0x9fb21c651e98df25ull), tail[1]);
  return h | 1;
}

// Vectors longer than this get no codes, and their scopes are searched exactly: the projections
// are 512 bytes per dimension, kept for the life of the process (an embedder's 100-1,024 floats
// are far below; this bounds what a foreign or corrupt Redis entry can ask for).
constexpr size_t kMaxCodedDim = 4096;

// The sign-code projections for vectors of `dim` floats: kCodeWords * 64 rows of Gaussian noise
// from a fixed seed, made once per dimension and shared by every scope; null past kMaxCodedDim.
// Never freed, so no search can reach a freed table while the process exits.
const float* code_projections(size_t dim) {
  if (dim == 0 || dim > kMaxCodedDim)
    return nullptr;
  static std::mutex mu;
  static auto* made = new std::map<size_t, std::unique_ptr<float[]>>;
  std::lock_guard lock(mu);
  auto& p = (*made)[dim];
  if (!p) {
    const size_t bits = kCodeWords * 64;
    p = std::make_unique<float[]>(bits * dim);
    std::mt19937 rng(0x5ca1ab1e);
    std::normal_distribution<float> g;
    for (size_t i = 0; i < bits * dim; ++i)
      p[i] = g(rng);
  }
  return p.get();
}
} // namespace

// The vectors of one scope: a flat index while the scope is small; past min_entries an hnswlib
// HNSW graph (inner product on unit vectors). The flat index keeps each vector with a 128-bit
// sign code and an int8 copy; a search compares every vector while the scope has up to kRerank,
// else the kRerank whose codes are nearest the query's, by their int8 copies, and the best of
// those in floats (flat_search). An insert into it is an append, where one
// into the graph is a search of its own (tens of microseconds, hundreds at 50k entries). The flat
// entries move into the graph a few per insert (kMigratePerAdd), so crossing min_entries never
// stalls a request; until they have all moved, a search reads both. hnswlib 0.6 cannot free a slot,
// so a deleted entry's slot (its label) is marked deleted and handed to the next insert, which
// rewrites it in place (rewrite_slot): the graph never grows past the scope's peak and is never
// rebuilt.
//
// The graph's vectors are padded with a zero to an odd dimension (inner products unchanged):
// hnswlib stores each element as [links: 8M+4 bytes][vector][label: 8 bytes], so with an odd
// number of floats every label lands 8-byte aligned (hnswlib reads it in place).
class ScopeIndex {
public:
  explicit ScopeIndex(size_t dim)
      : dim_(dim), graph_dim_(dim | 1), small_stride_((dim + 31) & ~size_t(31)),
        projections_(code_projections(dim)) {}

  size_t size() const { return ids_.size() + by_id_.size(); }
  size_t dim() const { return dim_; }

  void add(uint64_t id, const std::vector<float>& v, const HnswOptions& h) {
    if (!hnsw_ && ids_.size() + 1 > h.min_entries) {
      space_ = std::make_unique<DotSpace>(graph_dim_, dim_);
      hnsw_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(
          space_.get(), std::max<size_t>(size_t(h.min_entries) + h.min_entries / 4, 1024), h.m,
          h.ef_construction, 42); // graph_add doubles it when full
      hnsw_->setEf(h.ef_search);
    }
    if (!hnsw_) {
      flat_add(id, v.data());
      return;
    }
    graph_add(id, v.data());
    // Move a few flat entries into the graph.
    for (int i = 0; i < kMigratePerAdd && !ids_.empty(); ++i) {
      const uint64_t moved = ids_.back();
      std::vector<float> mv(flat_.end() - long(dim_), flat_.end());
      flat_remove(moved);
      graph_add(moved, mv.data());
    }
    if (ids_.empty() && flat_.capacity() != 0) { // all moved: the flat storage goes (MiBs)
      std::vector<uint64_t>().swap(ids_);
      std::vector<float>().swap(flat_);
      std::vector<uint64_t>().swap(codes_);
      std::vector<int8_t>().swap(small_);
      std::vector<float>().swap(small_scale_);
      recent_.reset();
      slot_.clear();
    }
  }

  void remove(uint64_t id) {
    if (slot_.contains(id)) {
      flat_remove(id);
      return;
    }
    auto it = by_id_.find(id);
    if (it == by_id_.end())
      return;
    const size_t label = it->second;
    hnsw_->markDelete(label);
    free_.push_back(label);
    by_label_[label] = 0;
    by_id_.erase(it);
  }

  // Up to k (id, cosine) pairs, best first.
  std::vector<std::pair<uint64_t, float>> search(const float* q, size_t k) const {
    std::vector<std::pair<uint64_t, float>> out;
    out.reserve(k); // one allocation, not one per doubling
    flat_search(q, k, out);
    if (hnsw_ && !by_id_.empty()) {
      auto pq = hnsw_->searchKnn(padded(q), std::min(k, by_id_.size()));
      while (!pq.empty()) {
        keep_best(out, k, by_label_[pq.top().second], 1.0f - pq.top().first);
        pq.pop();
      }
    }
    std::sort_heap(out.begin(), out.end(), worse);
    return out;
  }

  void set_ef(uint32_t ef) {
    if (hnsw_)
      hnsw_->setEf(ef);
  }

private:
  static constexpr int kMigratePerAdd = 8;
  // The share of a reused slot's old neighbours whose links are recomputed. Measured with
  // hnswlib's updatePoint, before rewrite_slot, on 30,000 stores into a full 5,000-entry scope of
  // 100-dimensional vectors: 1.0 (hnswlib's addPoint)
  // cost 1,156-1,570 us per store, 0.3 about 280 us, 0.1 about 130 us. The nearest neighbour of
  // a perturbed query was found 2,486 / 2,437 / 2,375 times in 2,500 for scattered vectors, and
  // 2,500 / - / 2,495 for clustered ones (questions' embeddings cluster); an exact vector always.
  static constexpr float kNeighbourRepair = 0.1f;

  // A min-heap on similarity: the front is the worst of the best k.
  static bool worse(const std::pair<uint64_t, float>& a, const std::pair<uint64_t, float>& b) {
    return a.second > b.second;
  }
  static void keep_best(std::vector<std::pair<uint64_t, float>>& heap, size_t k, uint64_t id,
                        float s) {
    if (heap.size() < k) {
      heap.emplace_back(id, s);
      std::push_heap(heap.begin(), heap.end(), worse);
    } else if (s > heap.front().second) {
      std::pop_heap(heap.begin(), heap.end(), worse);
      heap.back() = {id, s};
      std::push_heap(heap.begin(), heap.end(), worse);
    }
  }

  // The vector in graph_dim_ floats (a thread's scratch buffer, valid until the next call).
  const float* padded(const float* v) const {
    thread_local std::vector<float> buf;
    buf.assign(v, v + dim_);
    buf.resize(graph_dim_, 0.f);
    return buf.data();
  }

  // All or nothing: every allocation comes first (room in each array, then the id's slot), and
  // what follows cannot throw, so a store that runs out of memory leaves the arrays in step.
  void flat_add(uint64_t id, const float* v) {
    room(ids_, 1);
    room(flat_, dim_);
    if (projections_) {
      room(codes_, kCodeWords);
      room(small_, small_stride_);
      room(small_scale_, 1);
    }
    slot_[id] = ids_.size();
    ids_.push_back(id);
    flat_.insert(flat_.end(), v, v + dim_);
    if (projections_) {
      codes_.resize(codes_.size() + kCodeWords);
      uint64_t* c = codes_.data() + codes_.size() - kCodeWords;
      // A miss's answer is usually stored a moment after its lookup searched for the same vector.
      const uint64_t h = recent_ ? vector_hash(v, dim_) : 0;
      const RecentCode* r = recent_ ? &(*recent_)[recent_slot(h)] : nullptr;
      if (r && r->hash == h)
        std::memcpy(c, r->code, sizeof r->code);
      else
        code(v, c);
      const size_t row = ids_.size() - 1;
      small_.resize((row + 1) * small_stride_); // zeros past dim_
      small_scale_.push_back(
          nn::kernels::quantize_row_s8(v, small_.data() + row * small_stride_, int64_t(dim_)));
    }
  }

  // Capacity for n more elements, growing geometrically.
  template <class T> static void room(std::vector<T>& a, size_t n) {
    if (a.capacity() - a.size() < n)
      a.reserve(std::max(a.capacity() * 2, a.size() + n));
  }

  // v's sign code: bit b is set when v lies on the positive side of projection b (SimHash: the
  // share of bits two codes differ in estimates the angle between their vectors over pi).
  void code(const float* v, uint64_t* out) const {
    float s[kCodeWords * 64];
    nn::kernels::dot_rows(v, projections_, int64_t(kCodeWords * 64), int64_t(dim_), s);
    for (size_t w = 0; w < kCodeWords; ++w) {
      uint64_t bits = 0;
      for (size_t b = 0; b < 64; ++b)
        bits |= uint64_t(s[w * 64 + b] > 0.f) << b;
      out[w] = bits;
    }
  }

  // The flat entries' best k. Up to kRerank entries every vector is compared (exact); past that,
  // the kRerank whose sign codes are nearest the query's are, which costs a popcount per entry
  // instead of a dot product of dim_ floats (and reads 16 bytes of each, not dim_ * 4): first
  // their int8 copies, then the floats of the best max(kRescore, 2k). The similarities returned
  // are always the floats'.
  void flat_search(const float* q, size_t k, std::vector<std::pair<uint64_t, float>>& out) const {
    const size_t n = ids_.size(), rerank = std::max(kRerank, k);
    thread_local std::vector<float> scores;
    if (n <= rerank || !projections_) {
      scores.resize(n);
      nn::kernels::dot_rows(q, flat_.data(), int64_t(n), int64_t(dim_), scores.data());
      for (size_t i = 0; i < n; ++i)
        if (out.size() < k || scores[i] > out.front().second)
          keep_best(out, k, ids_[i], scores[i]);
      return;
    }
    uint64_t qc[kCodeWords];
    code(q, qc);
    if (!recent_) // only scopes past kRerank entries search by code
      recent_ = std::make_unique<std::array<RecentCode, kRecentCodes>>();
    const uint64_t h = vector_hash(q, dim_);
    RecentCode& r = (*recent_)[recent_slot(h)];
    r.hash = h;
    std::memcpy(r.code, qc, sizeof qc);
    thread_local std::vector<uint8_t> dist;
    dist.resize(n);
    nn::kernels::hamming_rows(qc, codes_.data(), int64_t(n), int64_t(kCodeWords), dist.data());
    thread_local std::vector<uint32_t> chosen;
    chosen.clear();
    for_each_nearest(dist.data(), n, rerank, [&](size_t e) { chosen.push_back(uint32_t(e)); });
    const size_t rescore = std::max(kRescore, 2 * k); // room past k for int8's error
    if (chosen.size() > rescore) { // the int8 pass: keep the best `rescore` for the floats
      thread_local std::vector<int8_t> q8;
      thread_local std::vector<int16_t> qs;
      q8.resize(dim_);
      nn::kernels::quantize_row_s8(q, q8.data(), int64_t(dim_)); // one scale for all: ranks only
      qs.assign(small_stride_, 0);
      std::copy(q8.begin(), q8.end(), qs.begin());
      thread_local std::vector<int32_t> dots;
      dots.resize(chosen.size());
      nn::kernels::dot_rows_at_s8(qs.data(), small_.data(), chosen.data(), int64_t(chosen.size()),
                                  int64_t(small_stride_), dots.data());
      // The best `rescore` by a min-heap: past its first few, most rows fall below its front
      // and cost one comparison (nth_element's partitions cost 2% of the request).
      thread_local std::vector<std::pair<float, uint32_t>> best;
      best.clear();
      auto lower = [](const std::pair<float, uint32_t>& a, const std::pair<float, uint32_t>& b) {
        return a.first > b.first;
      };
      for (size_t c = 0; c < chosen.size(); ++c) {
        const float approx = float(dots[c]) * small_scale_[chosen[c]];
        if (best.size() < rescore) {
          best.emplace_back(approx, chosen[c]);
          std::push_heap(best.begin(), best.end(), lower);
        } else if (approx > best.front().first) {
          std::pop_heap(best.begin(), best.end(), lower);
          best.back() = {approx, chosen[c]};
          std::push_heap(best.begin(), best.end(), lower);
        }
      }
      chosen.resize(rescore);
      for (size_t c = 0; c < rescore; ++c)
        chosen[c] = best[c].second;
    }
    // The chosen rows lie scattered through the scope's vectors: dot_rows_at fetches each group
    // of four a few groups ahead of its dot products.
    scores.resize(chosen.size());
    nn::kernels::dot_rows_at(q, flat_.data(), chosen.data(), int64_t(chosen.size()), int64_t(dim_),
                             scores.data());
    for (size_t c = 0; c < chosen.size(); ++c)
      if (out.size() < k || scores[c] > out.front().second)
        keep_best(out, k, ids_[chosen[c]], scores[c]);
  }

  void flat_remove(uint64_t id) {
    const size_t* at = slot_.find(id);
    if (!at)
      return;
    const size_t s = *at, last = ids_.size() - 1;
    if (s != last) {
      std::memcpy(&flat_[s * dim_], &flat_[last * dim_], dim_ * sizeof(float));
      if (projections_) {
        std::memcpy(&codes_[s * kCodeWords], &codes_[last * kCodeWords],
                    kCodeWords * sizeof(uint64_t));
        std::memcpy(&small_[s * small_stride_], &small_[last * small_stride_], small_stride_);
        small_scale_[s] = small_scale_[last];
      }
      ids_[s] = ids_[last];
      *slot_.find(ids_[s]) = s; // there already: no allocation, no throw
    }
    ids_.pop_back();
    flat_.resize(ids_.size() * dim_);
    if (projections_) {
      codes_.resize(ids_.size() * kCodeWords);
      small_.resize(ids_.size() * small_stride_);
      small_scale_.resize(ids_.size());
    }
    slot_.erase(id);
  }

  void graph_add(uint64_t id, const float* v) {
    size_t label;
    const bool reused = !free_.empty();
    if (reused) {
      label = free_.back(); // a deleted slot, updated in place and unmarked below
      free_.pop_back();
    } else {
      label = by_label_.size();
      if (hnsw_->cur_element_count >= hnsw_->max_elements_)
        hnsw_->resizeIndex(hnsw_->max_elements_ * 2);
      by_label_.push_back(0);
    }
    if (reused) {
      const auto internal = hnsw_->label_lookup_.at(label);
      hnsw_->unmarkDelete(label);
      rewrite_slot(internal, padded(v));
    } else {
      hnsw_->addPoint(padded(v), label);
    }
    by_label_[label] = id;
    by_id_[id] = label;
  }

  using Graph = hnswlib::HierarchicalNSW<float>;
  using Tid = hnswlib::tableint;
  // hnswlib's candidate queue: the farthest on top.
  using Candidates = std::priority_queue<std::pair<float, Tid>, std::vector<std::pair<float, Tid>>,
                                         Graph::CompareByFirst>;

  float distance(const void* a, Tid b) const {
    return hnsw_->fstdistfunc_(a, hnsw_->getDataByInternalId(b), hnsw_->dist_func_param_);
  }
  std::span<Tid> links(hnswlib::linklistsizeint* list) const {
    return {reinterpret_cast<Tid*>(list + 1), hnsw_->getListCount(list)};
  }

  // A deleted slot takes a new vector. hnswlib's updatePoint (what addPoint does for a known
  // label) recomputes the links of every old neighbour, with the neighbours' neighbours as
  // candidates (3.5M instructions per store in a full cache), and gives each new neighbour its
  // link back by re-running its selection heuristic over all its links (about 1M: 16 neighbours,
  // each ~500 distances). Here a tenth of the old neighbours are repaired the same way, and a
  // new neighbour whose list is full swaps its farthest link for the new point when the new point
  // is nearer (33 distances). The new point's own links are searched and selected as for an
  // insert. Recall under churn: docs/benchmarks.md (`cache-bench --churn`).
  void rewrite_slot(Tid id, const float* v) {
    Graph& g = *hnsw_;
    std::memcpy(g.getDataByInternalId(id), v, g.data_size_);
    const int top = g.element_levels_[id];
    std::uniform_real_distribution<float> coin(0.f, 1.f);
    for (int level = 0; level <= top; ++level) {
      const std::span<Tid> old = links(g.get_linklist_at_level(id, level));
      const std::vector<Tid> around(old.begin(), old.end());
      for (Tid n : around) {
        if (coin(rng_) > kNeighbourRepair)
          continue;
        // n re-selects its links among its own, the slot's and the slot itself.
        const std::span<Tid> own = links(g.get_linklist_at_level(n, level));
        std::vector<Tid> seen(own.begin(), own.end());
        seen.insert(seen.end(), around.begin(), around.end());
        seen.push_back(id);
        std::sort(seen.begin(), seen.end());
        seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
        Candidates c;
        const char* nv = g.getDataByInternalId(n);
        for (Tid x : seen)
          if (x != n)
            c.emplace(distance(nv, x), x);
        g.getNeighborsByHeuristic2(c, level ? g.maxM_ : g.maxM0_);
        set_links(g.get_linklist_at_level(n, level), c);
      }
    }
    // The slot's own links, level by level from the top, as for an insert.
    Tid cur = g.enterpoint_node_;
    float d = distance(v, cur);
    for (int level = g.maxlevel_; level > top; --level) {
      for (bool moved = true; moved;) {
        moved = false;
        for (Tid x : links(g.get_linklist(cur, level)))
          if (const float dx = distance(v, x); dx < d)
            d = dx, cur = x, moved = true;
      }
    }
    for (int level = std::min(top, g.maxlevel_); level >= 0; --level) {
      Candidates found = g.searchBaseLayer(cur, v, level);
      Candidates c;
      for (; !found.empty(); found.pop())
        if (found.top().second != id)
          c.push(found.top());
      if (c.empty())
        continue;
      g.getNeighborsByHeuristic2(c, g.M_);
      set_links(g.get_linklist_at_level(id, level), c);
      // The slot's new links, farthest first; the loop below changes only the neighbours' lists.
      const std::span<Tid> chosen = links(g.get_linklist_at_level(id, level));
      const size_t cap = level ? g.maxM_ : g.maxM0_;
      for (Tid n : chosen) {
        hnswlib::linklistsizeint* list = g.get_linklist_at_level(n, level);
        std::span<Tid> nl = links(list);
        if (std::find(nl.begin(), nl.end(), id) != nl.end())
          continue;
        if (nl.size() < cap) {
          nl.data()[nl.size()] = id;
          g.setListCount(list, static_cast<unsigned short>(nl.size() + 1));
          continue;
        }
        const char* nv = g.getDataByInternalId(n);
        float far = distance(nv, id);
        size_t at = cap;
        for (size_t i = 0; i < nl.size(); ++i)
          if (const float dx = distance(nv, nl[i]); dx > far)
            far = dx, at = i;
        if (at < cap)
          nl[at] = id;
      }
      cur = chosen.back(); // the nearest: where the next level's search starts
    }
  }

  // Writes the queue into a link list, farthest first.
  void set_links(hnswlib::linklistsizeint* list, Candidates c) const {
    Tid* out = reinterpret_cast<Tid*>(list + 1);
    unsigned short k = 0;
    for (; !c.empty(); c.pop())
      out[k++] = c.top().second;
    hnsw_->setListCount(list, k);
  }

  std::mt19937 rng_{42};
  size_t dim_;
  size_t graph_dim_;
  size_t small_stride_;      // dim_ rounded up to 32 bytes: an int8 row of small_
  const float* projections_; // kCodeWords * 64 rows of dim_ (code_projections); null: no codes
  // Flat: ids, their vectors and their sign codes, contiguous.
  std::vector<uint64_t> ids_;
  std::vector<float> flat_;
  std::vector<uint64_t> codes_;
  // With the codes: each vector in int8 (small_stride_ bytes a row, zero past dim_) and its scale.
  std::vector<int8_t> small_;
  std::vector<float> small_scale_;
  // The sign codes of up to 256 recent searches' queries, direct-mapped by the hash of the vector
  // (a later search for another vector may take the slot): the insert of a vector just searched
  // for takes its code from here, instead of 128 dot products over the 51 kB of projections for
  // 100 floats. Made by the first search that uses the codes (6 kB: not for every small scope);
  // written by const searches, under the scope's lock like the rest, which must therefore stay
  // exclusive (see Scope).
  struct RecentCode {
    uint64_t hash = 0; // vector_hash(); 0: empty
    uint64_t code[kCodeWords] = {};
  };
  static constexpr size_t kRecentCodes = 256;
  // A hash's slot: its top byte (the lowest bit is always set, see vector_hash).
  static size_t recent_slot(uint64_t h) { return size_t(h >> 56); }
  mutable std::unique_ptr<std::array<RecentCode, kRecentCodes>> recent_;
  core::U64Map<size_t> slot_;
  // Graph: label (hnswlib's) <-> entry id, and the labels of deleted slots.
  std::unique_ptr<DotSpace> space_;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw_;
  std::vector<uint64_t> by_label_;
  std::unordered_map<uint64_t, size_t> by_id_;
  std::vector<size_t> free_;
};

// One scope's index behind its own lock. A plain mutex: with a reader-writer lock, two threads
// searching one graph at once while a third waited to insert ran 20-30% slower than taking
// turns (cache-bench --threads 2 --scopes 1); different scopes never wait on each other. A search
// also writes (the index's recent sign codes), so a shared lock would need one of its own there.
struct MemoryCache::Scope {
  Scope(size_t dim, const HnswOptions& h) : index(dim), hnsw(h) {}
  std::mutex mu;
  ScopeIndex index;
  // The graph's settings, under mu with the index: set_options changes them while an insert may
  // be about to build the graph, which must then use the new ones.
  HnswOptions hnsw;
  // Entries of this scope with an index key (under mu_). The scope leaves the map when none is
  // left, and not before: an entry whose insert is still pending keeps its scope there.
  size_t entries = 0;
};

// mu_ for the length of a public call. The index removals remove_locked queued run when it ends,
// after mu_ is released, each under its own scope's lock.
class MemoryCache::Locked {
public:
  explicit Locked(MemoryCache& c) : c_(c), lock_(c.mu_) {}
  ~Locked() {
    if (!lock_.owns_lock())
      lock_.lock();
    auto pending = std::move(c_.unindex_);
    c_.unindex_.clear();
    lock_.unlock();
    for (auto& [scope, key] : pending) {
      std::unique_lock scope_lock(scope->mu);
      scope->index.remove(key);
    }
  }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;
  void lock() { lock_.lock(); }
  void unlock() { lock_.unlock(); }

private:
  MemoryCache& c_;
  std::unique_lock<std::mutex> lock_;
};

MemoryCache::MemoryCache(const Options& options) : opt_(options) {
  std::random_device rd;
  next_id_ = (uint64_t(rd()) << 32) ^ rd();
}

MemoryCache::~MemoryCache() = default;

MemoryCache::OrderKey MemoryCache::order_key(uint64_t id, const Node& n) const {
  switch (opt_.eviction) {
  case Eviction::Lfu:
    return {n.entry.hits, n.tick, id};
  case Eviction::Fifo:
  case Eviction::Lru:
    break;
  }
  return {n.tick, 0, id};
}

MemoryCache::Node* MemoryCache::indexed(uint64_t index_key) {
  const uint64_t slot = index_key & 0xffffffffu;
  if (index_key == 0 || slot >= nodes_.size())
    return nullptr;
  Node& n = nodes_[slot];
  return n.id != 0 && n.index_key == index_key ? &n : nullptr;
}

void MemoryCache::remove_locked(uint64_t id, bool capacity) {
  const uint32_t* at = by_id_.find(id);
  if (!at)
    return;
  const uint32_t slot = *at;
  Node& n = nodes_[slot];
  order_.erase(order_key(id, n));
  expiry_.erase({n.entry.expires_ms ? n.entry.expires_ms : INT64_MAX, id});
  if (const uint32_t* x = exact_.find(n.entry.exact); x && *x == slot)
    exact_.erase(n.entry.exact);
  if (n.index_key) {
    // The node is cleared below: from then on, a search that finds its key skips it.
    if (auto s = scopes_.find(n.entry.scope); s != scopes_.end()) {
      unindex_.emplace_back(s->second, n.index_key);
      if (--s->second->entries == 0)
        scopes_.erase(s);
    }
  }
  bytes_ -= n.entry.bytes() + n.reading_bytes;
  if (capacity && on_evict_)
    on_evict_(n.entry.id);
  by_id_.erase(id);
  // A fresh node in the slot: the entry's strings and vector are freed (assigning Node{} would
  // keep the strings' buffers) and the slot reads as free.
  std::destroy_at(&n);
  std::construct_at(&n);
  free_.push_back(slot);
}

void MemoryCache::expire_locked(int64_t now) {
  while (!expiry_.empty() && expiry_.begin()->first <= now) {
    uint64_t id = expiry_.begin()->second;
    remove_locked(id, false);
    ++evicted_ttl_;
  }
}

void MemoryCache::enforce_bounds_locked(uint64_t keep) {
  auto it = order_.begin();
  while (it != order_.end() && (by_id_.size() > opt_.max_entries || bytes_ > opt_.max_bytes)) {
    const uint64_t id = std::get<2>(*it);
    if (id == keep) { // the entry being stored is never its own victim (LFU ranks it last)
      ++it;
      continue;
    }
    remove_locked(id, true); // erases *it
    ++evicted_capacity_;
    it = order_.begin();
    if (it != order_.end() && std::get<2>(*it) == keep)
      ++it;
  }
}

Lookup MemoryCache::lookup(const Query& q) {
  Lookup out;
  Locked lock(*this);
  const int64_t now = q.now_ms ? q.now_ms : now_ms();
  expire_locked(now);
  auto fits = [&](const Entry& e) {
    return q.max_completion_tokens == 0 || e.completion_tokens <= q.max_completion_tokens;
  };
  auto take = [&](Node& n) {
    order_.erase(order_key(n.id, n));
    ++n.entry.hits;
    if (opt_.eviction != Eviction::Fifo)
      n.tick = ++tick_;
    order_.insert(order_key(n.id, n));
    out.hit = n.entry;
  };
  if (const uint32_t* x = exact_.find(q.exact)) {
    Node& n = nodes_[*x];
    if (n.entry.scope == q.scope && fits(n.entry)) {
      out.exact = true;
      out.similarity = 1.0;
      take(n);
      return out;
    }
  }
  if (!q.vector || q.vector->empty())
    return out;
  auto s = scopes_.find(q.scope);
  if (s == scopes_.end() || s->second->index.dim() != q.vector->size())
    return out;
  // The search runs under the scope's lock alone; what it finds is read back under mu_, where an
  // entry removed meanwhile is simply not found.
  const std::shared_ptr<Scope> scope = s->second;
  lock.unlock();
  std::vector<std::pair<uint64_t, float>> found;
  {
    std::unique_lock scope_lock(scope->mu);
    found = scope->index.search(q.vector->data(), 4);
  }
  // The question's reading for the verifier, when a candidate will need checking: made before
  // mu_ is taken again (results come best first).
  std::shared_ptr<const VerifierReading> asked;
  if (q.verifier && !found.empty() && found.front().second >= q.threshold)
    asked = q.verifier->prepare(q.text);
  lock.lock();
  for (const auto& [key, sim] : found) {
    if (!(sim >= q.threshold)) // a NaN is no match either
      break;
    Node* found_node = indexed(key);
    if (!found_node || !fits(found_node->entry))
      continue;
    Node& n = *found_node;
    if (q.verifier) {
      if (!n.reading) {
        n.reading = read_for_verifier(n.entry.text);
        n.reading_bytes = reading_bytes(*n.reading);
        bytes_ += n.reading_bytes;
      }
      std::string why = q.verifier->check(*n.reading, *asked);
      if (!why.empty()) {
        if (out.rejected.empty())
          out.rejected = std::move(why);
        continue;
      }
    }
    out.similarity = sim;
    take(n);
    return out;
  }
  return out;
}

bool MemoryCache::store(Entry e) {
  // A vector with an infinity or a NaN (a foreign or corrupt Redis entry) has no place in an
  // index, where it would rank nothing sensibly: the entry keeps its exact tier only.
  if (!std::all_of(e.vector.begin(), e.vector.end(), [](float x) { return std::isfinite(x); }))
    e.vector = {}; // its buffer too: the entry's bytes count no vector
  Locked lock(*this);
  uint64_t id = parse_id(e.id);
  if (id == 0) {
    id = next_id_ = next_id_ * 6364136223846793005ull + 1442695040888963407ull;
    if (id == 0)
      id = 1;
    e.id = format_id(id);
  }
  remove_locked(id, false); // the same id again (a Redis resync) replaces the entry
  // A newer answer for the same exact key replaces the older one (the Redis store drops it too).
  if (const uint32_t* x = exact_.find(e.exact)) {
    const Node& old = nodes_[*x];
    if (on_evict_)
      on_evict_(old.entry.id);
    remove_locked(old.id, false);
  }
  if (e.created_ms == 0)
    e.created_ms = now_ms();
  if (e.bytes() > opt_.max_bytes)
    return true; // larger than the whole cache: never stored, not an error
  const uint32_t slot = free_.empty() ? uint32_t(nodes_.size()) : free_.back();
  Node n;
  n.id = id;
  n.tick = ++tick_;
  n.entry = std::move(e);
  const Entry& en = n.entry;
  std::shared_ptr<Scope> scope;
  if (!en.vector.empty()) {
    auto found = scopes_.find(en.scope);
    if (found == scopes_.end()) // made before it is inserted: a throw leaves no empty slot
      found = scopes_.emplace(en.scope, std::make_shared<Scope>(en.vector.size(), opt_.hnsw)).first;
    if (found->second->index.dim() == en.vector.size()) {
      do
        ++next_key_;
      while (uint32_t(next_key_) == 0); // the key is never 0, the slot's "not indexed"
      n.index_key = (next_key_ << 32) | slot;
      scope = found->second;
    }
  }
  // What can run out of memory goes first, and a throw there leaves the entries as they were
  // (a new scope may stay, empty); from the slot on, nothing throws.
  std::vector<float> vector;
  if (scope)
    vector = en.vector; // the entry may be gone by the time the insert runs
  by_id_.reserve(by_id_.size() + 1);
  exact_.reserve(exact_.size() + 1);
  if (slot == nodes_.size() && slot == nodes_.capacity())
    nodes_.reserve(std::max<size_t>(64, 2 * nodes_.capacity()));
  const auto expiry = expiry_.insert({en.expires_ms ? en.expires_ms : INT64_MAX, id}).first;
  try {
    order_.insert(order_key(id, n));
  } catch (...) {
    expiry_.erase(expiry);
    throw;
  }
  if (scope)
    ++scope->entries;
  const uint64_t key = n.index_key;
  bytes_ += en.bytes();
  exact_[en.exact] = slot;
  by_id_[id] = slot;
  if (slot == nodes_.size()) {
    nodes_.push_back(std::move(n));
  } else {
    nodes_[slot] = std::move(n);
    free_.pop_back();
  }
  enforce_bounds_locked(id);
  if (!scope)
    return true;
  // The insert into the index, the costly part of a store, holds the scope's lock but not mu_.
  // Until it lands, a lookup does not find the entry semantically (the exact key already works).
  // Removals this store queued in the same scope (its eviction, usually) go first under the same
  // lock: one exclusive section, and the insert takes the slot they free.
  std::vector<std::pair<std::shared_ptr<Scope>, uint64_t>> removals;
  removals.swap(unindex_);
  lock.unlock();
  try {
    {
      std::unique_lock scope_lock(scope->mu);
      for (auto& [other, k] : removals)
        if (other == scope)
          scope->index.remove(k);
      scope->index.add(key, vector, scope->hnsw);
    }
    for (auto& [other, k] : removals) {
      if (other != scope) {
        std::unique_lock scope_lock(other->mu);
        other->index.remove(k);
      }
    }
  } catch (...) {
    // Out of memory growing the graph: the entry leaves rather than stay half stored, and the
    // removals go back in the queue (removing a key twice is a no-op).
    lock.lock();
    unindex_.insert(unindex_.end(), removals.begin(), removals.end());
    if (const Node* gone = indexed(key))
      remove_locked(gone->id, false);
    throw;
  }
  lock.lock();
  if (!indexed(key)) // removed (evicted, erased, flushed, replaced) while it was inserted
    unindex_.emplace_back(std::move(scope), key);
  return true;
}

std::optional<Entry> MemoryCache::get(std::string_view id) {
  Locked lock(*this);
  expire_locked(now_ms());
  const uint32_t* at = by_id_.find(parse_id(id));
  if (!at)
    return std::nullopt;
  return nodes_[*at].entry;
}

Summary MemoryCache::summary(const Entry& e) const {
  return {e.id,         e.tenant,     e.text, e.decision, e.model,
          e.created_ms, e.expires_ms, e.hits, e.bytes()};
}

std::pair<std::vector<Summary>, uint64_t> MemoryCache::list(std::string_view tenant,
                                                            uint64_t offset, uint64_t limit) {
  Locked lock(*this);
  expire_locked(now_ms());
  std::vector<const Entry*> all;
  for (const Node& n : nodes_)
    if (n.id != 0 && (tenant.empty() || n.entry.tenant == tenant))
      all.push_back(&n.entry);
  std::sort(all.begin(), all.end(), [](const Entry* a, const Entry* b) {
    return a->created_ms != b->created_ms ? a->created_ms > b->created_ms : a->id < b->id;
  });
  std::vector<Summary> page;
  for (uint64_t i = offset; i < all.size() && page.size() < limit; ++i)
    page.push_back(summary(*all[i]));
  return {std::move(page), all.size()};
}

std::vector<std::pair<Summary, double>> MemoryCache::nearest(const std::vector<float>& v, size_t k,
                                                             std::string_view tenant) {
  Locked lock(*this);
  std::vector<std::pair<const Node*, float>> best;
  for (const auto& [scope_key, scope] : scopes_) {
    if (scope->index.dim() != v.size())
      continue;
    std::unique_lock scope_lock(scope->mu);
    for (const auto& [key, sim] : scope->index.search(v.data(), k + 8)) {
      const Node* n = indexed(key);
      if (!n) // an insert that lands after its entry left (store undoes it)
        continue;
      if (tenant.empty() || n->entry.tenant == tenant)
        best.emplace_back(n, sim);
    }
  }
  std::sort(best.begin(), best.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::pair<Summary, double>> out;
  for (size_t i = 0; i < best.size() && out.size() < k; ++i)
    out.emplace_back(summary(best[i].first->entry), best[i].second);
  return out;
}

bool MemoryCache::erase(std::string_view id) {
  Locked lock(*this);
  uint64_t n = parse_id(id);
  if (!by_id_.contains(n))
    return false;
  remove_locked(n, false);
  return true;
}

std::vector<std::string> MemoryCache::ids(std::string_view tenant) {
  Locked lock(*this);
  std::vector<std::string> out;
  for (const Node& n : nodes_)
    if (n.id != 0 && (tenant.empty() || n.entry.tenant == tenant))
      out.push_back(n.entry.id);
  return out;
}

uint64_t MemoryCache::erase_tenant(std::string_view tenant) {
  Locked lock(*this);
  std::vector<uint64_t> gone;
  for (const Node& n : nodes_)
    if (n.id != 0 && n.entry.tenant == tenant)
      gone.push_back(n.id);
  for (uint64_t id : gone)
    remove_locked(id, false);
  return gone.size();
}

uint64_t MemoryCache::flush() {
  Locked lock(*this);
  uint64_t n = by_id_.size();
  std::vector<Node>().swap(nodes_);
  std::vector<uint32_t>().swap(free_);
  by_id_.clear();
  exact_.clear();
  scopes_.clear(); // an insert still running holds its scope until it ends, then undoes itself
  order_.clear();
  expiry_.clear();
  bytes_ = 0;
  return n;
}

Stats MemoryCache::stats() {
  Locked lock(*this);
  expire_locked(now_ms());
  Stats s;
  s.entries = by_id_.size();
  s.bytes = bytes_;
  s.evicted_capacity = evicted_capacity_;
  s.evicted_ttl = evicted_ttl_;
  return s;
}

void MemoryCache::set_options(const Options& o) {
  Locked lock(*this);
  const bool reorder = o.eviction != opt_.eviction;
  opt_ = o;
  if (reorder) {
    order_.clear();
    for (const Node& n : nodes_)
      if (n.id != 0)
        order_.insert(order_key(n.id, n));
  }
  for (auto& [scope_key, scope] : scopes_) {
    std::unique_lock scope_lock(scope->mu);
    scope->hnsw = o.hnsw;
    scope->index.set_ef(o.hnsw.ef_search);
  }
  enforce_bounds_locked();
}

std::unique_ptr<Cache> make_memory_cache(const Options& options) {
  return std::make_unique<MemoryCache>(options);
}

} // namespace semrouter::cache
