#include "trace/context.h"

#include <random>

namespace semrouter::trace {

namespace {

constexpr size_t kVersion00Size = 55; // 2 + 1 + 32 + 1 + 16 + 1 + 2

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1; // upper case is invalid too (the spec's HEXDIGLC)
}

// Reads 2n lower-case hex digits into n bytes; false on any other character.
bool read_hex(std::string_view s, uint8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N> bool all_zero(const std::array<uint8_t, N>& a) {
  for (uint8_t b : a)
    if (b)
      return false;
  return true;
}

// xoshiro256** (Blackman and Vigna): fast, 256 bits of state, good enough for ids that only
// need to be unique and unpredictable to casual observers (not a cryptographic generator).
class IdGenerator {
public:
  IdGenerator() {
    std::random_device rd;
    uint64_t seed = (uint64_t(rd()) << 32) ^ rd();
    for (auto& s : s_) { // splitmix64 expands the seed into the state
      uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      s = z ^ (z >> 31);
    }
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

IdGenerator& generator() {
  thread_local IdGenerator g;
  return g;
}

void store(uint8_t* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

} // namespace

std::optional<TraceParent> parse_traceparent(std::string_view v) {
  // Surrounding optional whitespace is allowed in a header value.
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
    v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
    v.remove_suffix(1);
  if (v.size() < kVersion00Size)
    return std::nullopt;
  uint8_t version = 0;
  if (!read_hex(v.substr(0, 2), &version, 1) || version == 0xff)
    return std::nullopt;
  if (version == 0 && v.size() != kVersion00Size)
    return std::nullopt;
  if (version > 0 && v.size() > kVersion00Size && v[kVersion00Size] != '-')
    return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-')
    return std::nullopt;
  TraceParent p;
  if (!read_hex(v.substr(3, 32), p.trace_id.data(), 16) ||
      !read_hex(v.substr(36, 16), p.parent_id.data(), 8) || !read_hex(v.substr(53, 2), &p.flags, 1))
    return std::nullopt;
  if (all_zero(p.trace_id) || all_zero(p.parent_id))
    return std::nullopt;
  return p;
}

void append_hex(std::string& out, const uint8_t* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 0xf];
  }
}

std::string to_hex(const TraceId& id) {
  std::string s;
  s.reserve(32);
  append_hex(s, id.data(), id.size());
  return s;
}

std::string to_hex(const SpanId& id) {
  std::string s;
  s.reserve(16);
  append_hex(s, id.data(), id.size());
  return s;
}

std::string format_traceparent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags) {
  std::string s;
  s.reserve(kVersion00Size);
  s += "00-";
  append_hex(s, trace_id.data(), trace_id.size());
  s += '-';
  append_hex(s, span_id.data(), span_id.size());
  s += '-';
  append_hex(s, &flags, 1);
  return s;
}

TraceId new_trace_id() {
  TraceId id;
  do {
    store(id.data(), generator().next());
    store(id.data() + 8, generator().next());
  } while (all_zero(id));
  return id;
}

SpanId new_span_id() {
  SpanId id;
  do
    store(id.data(), generator().next());
  while (all_zero(id));
  return id;
}

bool sample_by_ratio(const TraceId& id, double ratio) {
  if (ratio >= 1.0)
    return true;
  if (ratio <= 0.0)
    return false;
  uint64_t low = 0;
  for (size_t i = 8; i < 16; ++i)
    low = low << 8 | id[i];
  return static_cast<double>(low) < ratio * 18446744073709551616.0;
}

} // namespace semrouter::trace
