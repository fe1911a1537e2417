// http::RequestParser (every byte a client sends the gateway) and the writers it pairs with.
// Input: one flags byte, then the bytes of a connection. Flags: bit 0 small limits (so the limit
// paths are reached), bit 1 Host not required.
// Checks: the requests (or the error) do not depend on how the bytes are cut (whole, pieces of
// 1-16 bytes, byte by byte); consumed never exceeds the input and the parser always progresses;
// what a request exposes is valid field syntax (token names, values without CR/LF/controls or
// surrounding whitespace); every error maps to one of the documented statuses; and each request,
// written again with the writers, parses back to the same request.
#include <string>
#include <utility>
#include <vector>

#include "fuzz_util.h"
#include "http/request_parser.h"
#include "http/writer.h"

using namespace semrouter;

namespace {

constexpr uint8_t kSmallLimits = 1;
constexpr uint8_t kNoHost = 2;
constexpr size_t kByteByByteMax = 4096; // byte-at-a-time feeding is quadratic in the harness

struct Request {
  std::string method, target;
  http::Version version = http::Version::Http11;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = false;
  bool expects_continue = false;
  http::Framing framing = http::Framing::None;
  bool operator==(const Request&) const = default;
};

struct Outcome {
  std::vector<Request> requests;
  http::ParseError error = http::ParseError::None;
  bool operator==(const Outcome&) const = default;
};

bool is_token(std::string_view s) {
  if (s.empty())
    return false;
  for (char c : s) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos)
      return false;
  }
  return true;
}

// Named independently of the parser's own comparison.
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

void check_status(http::ParseError e) {
  const int s = http::error_status(e);
  FUZZ_CHECK(s == 400 || s == 413 || s == 414 || s == 431 || s == 501 || s == 505 || s == 502);
  FUZZ_CHECK(!http::error_name(e).empty());
}

// Feeds `pieces` in order, as a socket loop would, and collects what comes out.
Outcome run(const std::vector<std::string_view>& pieces, const http::Options& options) {
  Outcome out;
  http::RequestParser p(options);
  std::string buf;
  size_t next = 0;
  Request cur;
  size_t calls = 0;
  size_t total = 0;
  for (auto piece : pieces)
    total += piece.size();
  while (true) {
    // Every call either consumes, reports an event that changes state, or asks for more.
    FUZZ_CHECK(++calls <= 4 * total + 4 * pieces.size() + 16);
    const http::ParseResult r = p.parse(buf);
    FUZZ_CHECK(r.consumed <= buf.size());
    switch (r.event) {
    case http::Event::NeedMore:
      if (next == pieces.size()) {
        const http::ParseResult e = p.on_eof();
        FUZZ_CHECK(e.event == http::Event::Closed || e.event == http::Event::Error);
        if (e.event == http::Event::Error) {
          out.error = p.error();
          FUZZ_CHECK(out.error == http::ParseError::Truncated);
        }
        return out;
      }
      buf.append(pieces[next++]);
      break;
    case http::Event::Head:
      cur.method = p.method();
      cur.target = p.target();
      cur.version = p.version();
      FUZZ_CHECK(is_token(cur.method));
      FUZZ_CHECK(!cur.target.empty());
      for (const http::Header& h : p.headers()) {
        FUZZ_CHECK(is_token(h.name));
        check_value(h.value);
        FUZZ_CHECK(h.name.data() >= buf.data() && h.name.data() < buf.data() + buf.size());
        cur.headers.emplace_back(h.name, h.value);
      }
      cur.keep_alive = p.keep_alive();
      cur.expects_continue = p.expects_continue();
      cur.framing = p.framing();
      FUZZ_CHECK(cur.framing != http::Framing::UntilClose);
      if (cur.framing == http::Framing::Chunked)
        FUZZ_CHECK(!p.has_header("content-length"));
      if (cur.framing == http::Framing::ContentLength)
        FUZZ_CHECK(p.content_length() <= options.max_body_bytes);
      break;
    case http::Event::Body:
      FUZZ_CHECK(r.body.data() >= buf.data() &&
                 r.body.data() + r.body.size() <= buf.data() + buf.size());
      FUZZ_CHECK(!r.body.empty());
      cur.body.append(r.body);
      FUZZ_CHECK(cur.body.size() <= options.max_body_bytes);
      break;
    case http::Event::Done:
      if (cur.framing == http::Framing::ContentLength)
        FUZZ_CHECK(cur.body.size() == p.content_length());
      out.requests.push_back(std::move(cur));
      cur = Request{};
      buf.erase(0, r.consumed);
      p.reset();
      continue;
    case http::Event::Error:
      out.error = p.error();
      FUZZ_CHECK(out.error != http::ParseError::None);
      FUZZ_CHECK(!p.keep_alive());
      check_status(out.error);
      return out;
    case http::Event::Closed:
      FUZZ_CHECK(false); // parse() never says Closed
    }
    buf.erase(0, r.consumed);
  }
}

bool is_framing_or_connection(std::string_view name) {
  return is_named(name, "content-length") || is_named(name, "transfer-encoding") ||
         is_named(name, "connection");
}

// Writes `r` again (HTTP/1.1, Content-Length framing) and parses it back.
void check_round_trip(const Request& r) {
  std::string wire;
  http::append_request_line(wire, r.method, r.target);
  std::vector<std::pair<std::string, std::string>> kept;
  for (const auto& [name, value] : r.headers) {
    if (is_framing_or_connection(name))
      continue;
    http::append_header(wire, name, value);
    kept.emplace_back(name, value);
  }
  http::append_head_end(wire, http::Version::Http11, r.keep_alive, http::Framing::ContentLength,
                        r.body.size());
  wire += r.body;
  http::Options lax;
  lax.require_host = false;
  lax.max_body_bytes = http::kUnlimitedBody;
  lax.max_header_bytes = wire.size() + 1;
  lax.max_start_line = wire.size() + 1;
  lax.max_headers = r.headers.size() + 2;
  const Outcome back = run({wire}, lax);
  FUZZ_CHECK(back.error == http::ParseError::None);
  FUZZ_CHECK(back.requests.size() == 1);
  const Request& b = back.requests[0];
  FUZZ_CHECK(b.method == r.method && b.target == r.target && b.body == r.body);
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
  http::Options options;
  if (flags & kSmallLimits) {
    options.max_start_line = 64;
    options.max_header_bytes = 256;
    options.max_headers = 8;
    options.max_body_bytes = 512;
  }
  options.require_host = (flags & kNoHost) == 0;

  const Outcome whole = run({bytes}, options);
  FUZZ_CHECK(run(fuzz::split_pieces(bytes, static_cast<uint32_t>(size)), options) == whole);
  if (bytes.size() <= kByteByByteMax) {
    std::vector<std::string_view> single;
    for (size_t i = 0; i < bytes.size(); ++i)
      single.push_back(bytes.substr(i, 1));
    FUZZ_CHECK(run(single, options) == whole);
  }
  for (const Request& r : whole.requests)
    check_round_trip(r);
  return 0;
}
