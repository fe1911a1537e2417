// http::ResponseParser (every byte an upstream sends the gateway) and the writers it pairs with.
// Input: one flags byte, then the bytes of an upstream connection, which the peer closes at the
// end. Flags: bit 0 the first response answers a HEAD, bit 1 small limits.
// Checks: the responses (or the error) do not depend on how the bytes are cut (whole, pieces of
// 1-16 bytes, byte by byte); consumed never exceeds the input and the parser always progresses;
// body pieces are views into the input; heads hold valid field syntax; framing agrees with the
// status; and each response, written again with the writers, parses back to the same response.
#include <string>
#include <utility>
#include <vector>

#include "fuzz_util.h"
#include "http/response_parser.h"
#include "http/writer.h"

using namespace semrouter;

namespace {

constexpr uint8_t kFirstIsHead = 1;
constexpr uint8_t kSmallLimits = 2;
constexpr size_t kByteByByteMax = 4096; // byte-at-a-time feeding is quadratic in the harness

struct Response {
  int status = 0;
  std::string reason;
  http::Version version = http::Version::Http11;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = false;
  http::Framing framing = http::Framing::None;
  bool head_request = false;
  bool operator==(const Response&) const = default;
};

struct Outcome {
  std::vector<Response> responses;
  http::ParseError error = http::ParseError::None;
  bool closed = false;
  bool operator==(const Outcome&) const = default;
};

bool is_named(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size())
    return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i] >= 'A' && name[i] <= 'Z' ? static_cast<char>(name[i] + 32) : name[i];
    if (c != lower[i])
      return false;
  }
  return true;
}

void check_value(std::string_view v) {
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    FUZZ_CHECK(c == '\t' || (u >= 0x20 && u != 0x7f));
  }
  FUZZ_CHECK(v.empty() || (v.front() != ' ' && v.front() != '\t'));
  FUZZ_CHECK(v.empty() || (v.back() != ' ' && v.back() != '\t'));
}

Outcome run(const std::vector<std::string_view>& pieces, const http::Options& options,
            bool first_is_head) {
  Outcome out;
  http::ResponseParser p(options);
  p.reset(first_is_head);
  std::string buf;
  size_t next = 0;
  Response cur;
  cur.head_request = first_is_head;
  size_t calls = 0;
  size_t total = 0;
  for (auto piece : pieces)
    total += piece.size();
  auto finish = [&] {
    out.responses.push_back(std::move(cur));
    cur = Response{};
  };
  while (true) {
    FUZZ_CHECK(++calls <= 4 * total + 4 * pieces.size() + 16);
    const http::ParseResult r = p.parse(buf);
    FUZZ_CHECK(r.consumed <= buf.size());
    switch (r.event) {
    case http::Event::NeedMore:
      if (next == pieces.size()) {
        const http::ParseResult e = p.on_eof();
        if (e.event == http::Event::Done) {
          FUZZ_CHECK(cur.framing == http::Framing::UntilClose);
          cur.keep_alive = p.keep_alive();
          FUZZ_CHECK(!cur.keep_alive);
          finish();
        } else if (e.event == http::Event::Closed) {
          out.closed = true;
        } else {
          FUZZ_CHECK(e.event == http::Event::Error);
          out.error = p.error();
          FUZZ_CHECK(out.error == http::ParseError::Truncated);
        }
        return out;
      }
      buf.append(pieces[next++]);
      break;
    case http::Event::Head:
      cur.status = p.status();
      cur.reason = p.reason();
      cur.version = p.version();
      cur.framing = p.framing();
      FUZZ_CHECK(cur.status >= 200 && cur.status <= 999);
      for (char c : cur.reason)
        FUZZ_CHECK(c != '\r' && c != '\n');
      for (const http::Header& h : p.headers()) {
        FUZZ_CHECK(!h.name.empty());
        check_value(h.value);
        cur.headers.emplace_back(h.name, h.value);
      }
      if (cur.head_request || cur.status == 204 || cur.status == 304)
        FUZZ_CHECK(cur.framing == http::Framing::None);
      if (cur.framing == http::Framing::UntilClose)
        FUZZ_CHECK(!p.keep_alive());
      break;
    case http::Event::Body:
      FUZZ_CHECK(r.body.data() >= buf.data() &&
                 r.body.data() + r.body.size() <= buf.data() + buf.size());
      FUZZ_CHECK(!r.body.empty());
      FUZZ_CHECK(cur.framing != http::Framing::None);
      cur.body.append(r.body);
      FUZZ_CHECK(cur.body.size() <= options.max_body_bytes);
      break;
    case http::Event::Done:
      if (cur.framing == http::Framing::ContentLength)
        FUZZ_CHECK(cur.body.size() == p.content_length());
      cur.keep_alive = p.keep_alive();
      finish();
      buf.erase(0, r.consumed);
      p.reset(false);
      continue;
    case http::Event::Error:
      out.error = p.error();
      FUZZ_CHECK(out.error != http::ParseError::None);
      FUZZ_CHECK(!p.keep_alive());
      return out;
    case http::Event::Closed:
      FUZZ_CHECK(false); // parse() never says Closed
    }
    buf.erase(0, r.consumed);
  }
}

// Writes `r` again (Content-Length framing when it had a body) and parses it back.
void check_round_trip(const Response& r) {
  std::string wire;
  http::append_status_line(wire, r.version, r.status, r.reason);
  std::vector<std::pair<std::string, std::string>> kept;
  for (const auto& [name, value] : r.headers) {
    if (is_named(name, "content-length") || is_named(name, "transfer-encoding") ||
        is_named(name, "connection"))
      continue;
    http::append_header(wire, name, value);
    kept.emplace_back(name, value);
  }
  const bool bodiless = r.framing == http::Framing::None;
  // A body that ended at close comes back with a length, and so may keep the connection.
  const bool keep = r.framing == http::Framing::UntilClose ? true : r.keep_alive;
  http::append_head_end(wire, r.version, keep,
                        bodiless ? http::Framing::None : http::Framing::ContentLength,
                        r.body.size());
  wire += r.body;
  http::Options lax = http::default_response_options();
  lax.max_header_bytes = wire.size() + 1;
  lax.max_start_line = wire.size() + 1;
  lax.max_headers = r.headers.size() + 2;
  const Outcome back = run({wire}, lax, r.head_request);
  FUZZ_CHECK(back.error == http::ParseError::None);
  FUZZ_CHECK(back.responses.size() == 1);
  const Response& b = back.responses[0];
  FUZZ_CHECK(b.status == r.status && b.version == r.version && b.body == r.body);
  // An empty reason is written as the standard phrase.
  FUZZ_CHECK(r.reason.empty() || b.reason == r.reason);
  if (r.framing != http::Framing::UntilClose)
    FUZZ_CHECK(b.keep_alive == r.keep_alive);
  FUZZ_CHECK(b.headers.size() >= kept.size());
  for (size_t i = 0; i < kept.size(); ++i)
    FUZZ_CHECK(b.headers[i] == kept[i]);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  const uint8_t flags = data[0];
  const std::string_view bytes = fuzz::as_text(data + 1, size - 1);
  http::Options options = http::default_response_options();
  if (flags & kSmallLimits) {
    options.max_start_line = 64;
    options.max_header_bytes = 256;
    options.max_headers = 8;
    options.max_body_bytes = 512;
  }
  const bool first_is_head = (flags & kFirstIsHead) != 0;

  const Outcome whole = run({bytes}, options, first_is_head);
  FUZZ_CHECK(run(fuzz::split_pieces(bytes, static_cast<uint32_t>(size)), options, first_is_head) ==
             whole);
  if (bytes.size() <= kByteByByteMax) {
    std::vector<std::string_view> single;
    for (size_t i = 0; i < bytes.size(); ++i)
      single.push_back(bytes.substr(i, 1));
    FUZZ_CHECK(run(single, options, first_is_head) == whole);
  }
  for (const Response& r : whole.responses)
    check_round_trip(r);
  return 0;
}
