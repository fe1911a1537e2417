// What the fuzz targets share: a check that holds in release builds (the replay tests run in
// one, where assert is compiled out), a JSON validity oracle, and input splitting.
// Header-only: each target is one translation unit, built both for libFuzzer and for the replay
// test (replay_main.cc).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

// Aborts with the condition and its place when an invariant fails: libFuzzer saves the input as a
// crash, the replay test fails.
#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);           \
      std::abort();                                                                                \
    }                                                                                              \
  } while (0)

namespace semrouter::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// RFC 8259 JSON, UTF-8 included (an independent parser from the simdjson the code under test
// uses).
inline bool valid_json(std::string_view s) {
  return nlohmann::json::accept(s);
}

// Checks every `data:` payload of a translated SSE stream (events separated by a blank line) is
// JSON or the [DONE] marker.
inline void check_sse_json(std::string_view stream) {
  size_t pos = 0;
  while (pos < stream.size()) {
    size_t eol = stream.find('\n', pos);
    FUZZ_CHECK(eol != std::string_view::npos); // a translated stream ends its lines
    std::string_view line = stream.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.starts_with("data: ")) {
      std::string_view payload = line.substr(6);
      if (payload != "[DONE]" && !valid_json(payload)) {
        std::fprintf(stderr, "invalid JSON in a translated event: %.*s\n",
                     static_cast<int>(payload.size()), payload.data());
        FUZZ_CHECK(false);
      }
    }
  }
}

// Cuts `bytes` into pieces of 1 to 16 bytes, their sizes drawn from `seed` (deterministic), so a
// streaming parser sees boundaries everywhere: inside a line, a "\r\n", a UTF-8 character.
inline std::vector<std::string_view> split_pieces(std::string_view bytes, uint32_t seed) {
  std::vector<std::string_view> pieces;
  uint32_t x = seed * 2654435761u + 1;
  size_t pos = 0;
  while (pos < bytes.size()) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    size_t n = 1 + x % 16;
    pieces.push_back(bytes.substr(pos, n));
    pos += pieces.back().size();
  }
  return pieces;
}

} // namespace semrouter::fuzz
