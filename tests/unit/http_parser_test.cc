// src/http: the request and response parsers (every feature, every error, byte-at-a-time
// feeding against whole-buffer feeding, pipelining, request smuggling) and the writers.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gateway/client_request.h"
#include "http/request_parser.h"
#include "http/response_parser.h"
#include "http/writer.h"

namespace semrouter::http {
namespace {

// ---- harness ----

// A message as the tests compare it: copies of everything the parser handed out.
struct Message {
  std::string method;
  std::string target;
  int status = 0;
  std::string reason;
  Version version = Version::Http11;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = false;
  bool expects_continue = false;
  Framing framing = Framing::None;
  size_t body_pieces = 0;
  bool operator==(const Message& o) const {
    // Pieces depend on how the bytes arrived; everything else must not.
    return method == o.method && target == o.target && status == o.status && reason == o.reason &&
           version == o.version && headers == o.headers && body == o.body &&
           keep_alive == o.keep_alive && expects_continue == o.expects_continue &&
           framing == o.framing;
  }
};

struct Outcome {
  std::vector<Message> messages;
  ParseError error = ParseError::None;
  bool closed = false; // on_eof() said Closed
  bool operator==(const Outcome& o) const {
    return messages == o.messages && error == o.error && closed == o.closed;
  }
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << "{" << o.messages.size() << " messages, error " << error_name(o.error)
     << (o.closed ? ", closed" : "");
  for (const auto& m : o.messages)
    os << " [" << m.method << m.status << " " << m.target << " body=" << m.body.size() << "]";
  return os << "}";
}

template <typename Parser> void copy_head(const Parser& p, Message& m);

template <> void copy_head(const RequestParser& p, Message& m) {
  m.method = p.method();
  m.target = p.target();
  m.version = p.version();
  for (const Header& h : p.headers())
    m.headers.emplace_back(h.name, h.value);
  m.keep_alive = p.keep_alive();
  m.expects_continue = p.expects_continue();
  m.framing = p.framing();
}

template <> void copy_head(const ResponseParser& p, Message& m) {
  m.status = p.status();
  m.reason = p.reason();
  m.version = p.version();
  for (const Header& h : p.headers())
    m.headers.emplace_back(h.name, h.value);
  m.framing = p.framing();
}

// Feeds `wire` `step` bytes at a time (0: all at once) the way a socket loop does: bytes are
// appended at the back of a buffer, consumed ones dropped from the front. In steps, the buffer is
// also moved to a fresh allocation before every call, which the parser must tolerate while a
// head is incomplete. At the end of the bytes, `eof` reports the peer's close.
template <typename Parser>
Outcome run(Parser& p, std::string_view wire, size_t step, bool eof,
            const std::vector<bool>& head_requests = {}) {
  Outcome out;
  std::string buf;
  size_t fed = 0;
  size_t responses = 0;
  auto restart = [&] {
    if constexpr (std::is_same_v<Parser, ResponseParser>)
      p.reset(responses < head_requests.size() && head_requests[responses]);
    else
      p.reset();
  };
  restart();
  Message cur;
  while (true) {
    if (step != 0) {
      std::string moved(buf);
      buf.swap(moved);
    }
    const ParseResult r = p.parse(buf);
    EXPECT_LE(r.consumed, buf.size());
    switch (r.event) {
    case Event::NeedMore:
      if (fed == wire.size()) {
        if (!eof)
          return out;
        const ParseResult e = p.on_eof();
        if (e.event == Event::Done) {
          cur.keep_alive = false;
          out.messages.push_back(cur);
        } else if (e.event == Event::Closed) {
          out.closed = true;
        } else {
          out.error = p.error();
        }
        return out;
      }
      {
        const size_t n = step == 0 ? wire.size() - fed : std::min(step, wire.size() - fed);
        buf.append(wire.substr(fed, n));
        fed += n;
      }
      break;
    case Event::Head:
      copy_head(p, cur);
      break;
    case Event::Body:
      EXPECT_GE(r.body.data(), buf.data()); // a view into the input, not a copy
      EXPECT_LE(r.body.data() + r.body.size(), buf.data() + buf.size());
      cur.body.append(r.body);
      ++cur.body_pieces;
      break;
    case Event::Done:
      if constexpr (std::is_same_v<Parser, ResponseParser>)
        cur.keep_alive = p.keep_alive();
      out.messages.push_back(cur);
      cur = Message{};
      ++responses;
      buf.erase(0, r.consumed);
      restart();
      continue;
    case Event::Error:
      out.error = p.error();
      EXPECT_FALSE(p.keep_alive());
      return out;
    case Event::Closed:
      ADD_FAILURE() << "parse() never reports Closed";
      return out;
    }
    buf.erase(0, r.consumed);
  }
}

Outcome requests(std::string_view wire, size_t step = 0, const Options& o = {}, bool eof = false) {
  RequestParser p(o);
  return run(p, wire, step, eof);
}

Outcome responses(std::string_view wire, size_t step = 0, bool eof = true,
                  const std::vector<bool>& head_requests = {},
                  const Options& o = default_response_options()) {
  ResponseParser p(o);
  return run(p, wire, step, eof, head_requests);
}

ParseError request_error(std::string_view wire, const Options& o = {}) {
  return requests(wire, 0, o).error;
}

// The same outcome whatever the read sizes.
void expect_split_invariant(std::string_view wire, bool response, bool eof) {
  const Outcome whole = response ? responses(wire, 0, eof) : requests(wire, 0, {}, eof);
  for (size_t step : {1, 2, 3, 5, 7, 13, 64}) {
    const Outcome split = response ? responses(wire, step, eof) : requests(wire, step, {}, eof);
    EXPECT_EQ(split, whole) << "step " << step << " on " << testing::PrintToString(wire);
  }
}

constexpr std::string_view kChatBody =
    R"({"model":"auto","messages":[{"role":"user","content":"hi"}]})";

std::string post(std::string_view body, std::string_view extra = "") {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: router\r\nContent-Type: "
         "application/json\r\n" +
         std::string(extra) + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         std::string(body);
}

std::string get(std::string_view target = "/health", std::string_view extra = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: router\r\n" + std::string(extra) +
         "\r\n";
}

std::string with_headers(std::string_view headers, std::string_view rest = "") {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: router\r\n" + std::string(headers) + "\r\n" +
         std::string(rest);
}

// ---- requests: the basics ----

TEST(HttpRequestParser, ParsesAGetWithoutBody) {
  const Outcome o = requests(get("/v1/models?x=1", "Accept: */*\r\n"));
  ASSERT_EQ(o.error, ParseError::None);
  ASSERT_EQ(o.messages.size(), 1u);
  const Message& m = o.messages[0];
  EXPECT_EQ(m.method, "GET");
  EXPECT_EQ(m.target, "/v1/models?x=1");
  EXPECT_EQ(m.version, Version::Http11);
  EXPECT_EQ(m.framing, Framing::None);
  EXPECT_TRUE(m.keep_alive);
  EXPECT_EQ(m.body, "");
  const std::vector<std::pair<std::string, std::string>> want{{"Host", "router"},
                                                              {"Accept", "*/*"}};
  EXPECT_EQ(m.headers, want);
}

TEST(HttpRequestParser, ParsesAPostWithContentLength) {
  const std::string wire = post(kChatBody);
  RequestParser p;
  ParseResult r = p.parse(wire);
  ASSERT_EQ(r.event, Event::Head);
  EXPECT_EQ(p.method(), "POST");
  EXPECT_EQ(p.method_kind(), Method::Post);
  EXPECT_EQ(p.framing(), Framing::ContentLength);
  EXPECT_EQ(p.content_length(), kChatBody.size());
  EXPECT_EQ(r.consumed, wire.size() - kChatBody.size());
  // Zero-copy: the views point into the caller's buffer.
  const std::string_view ct = p.header("content-type");
  EXPECT_EQ(ct, "application/json");
  EXPECT_GE(ct.data(), wire.data());
  EXPECT_LT(ct.data(), wire.data() + wire.size());
  EXPECT_EQ(p.target().data(), wire.data() + 5);

  r = p.parse(std::string_view(wire).substr(r.consumed));
  ASSERT_EQ(r.event, Event::Body);
  EXPECT_EQ(r.body, kChatBody);
  EXPECT_EQ(r.body.data(), wire.data() + wire.size() - kChatBody.size());
  r = p.parse({});
  EXPECT_EQ(r.event, Event::Done);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(p.parse({}).event, Event::Done); // until reset()
}

TEST(HttpRequestParser, HeaderLookupIsCaseInsensitiveAndValuesAreTrimmed) {
  RequestParser p;
  const std::string wire =
      get("/", "X-Thing: \t padded value \t\r\nx-thing: second\r\nEmpty:\r\nOdd: caf\xc3\xa9\r\n");
  ASSERT_EQ(p.parse(wire).event, Event::Head);
  EXPECT_EQ(p.header("X-THING"), "padded value");
  EXPECT_TRUE(p.has_header("empty"));
  EXPECT_EQ(p.header("Empty"), "");
  EXPECT_FALSE(p.has_header("missing"));
  EXPECT_EQ(p.header("missing"), "");
  EXPECT_EQ(p.header("odd"), "caf\xc3\xa9"); // obs-text is allowed in values
  EXPECT_EQ(p.headers().size(), 5u);
  EXPECT_EQ(find_header(p.headers(), "HOST")->value, "router");
}

TEST(HttpRequestParser, MethodsAndTargets) {
  EXPECT_EQ(method_from_string("GET"), Method::Get);
  EXPECT_EQ(method_from_string("HEAD"), Method::Head);
  EXPECT_EQ(method_from_string("PUT"), Method::Put);
  EXPECT_EQ(method_from_string("DELETE"), Method::Delete);
  EXPECT_EQ(method_from_string("OPTIONS"), Method::Options);
  EXPECT_EQ(method_from_string("PATCH"), Method::Patch);
  EXPECT_EQ(method_from_string("get"), Method::Other); // methods are case-sensitive
  EXPECT_EQ(method_from_string("BREW"), Method::Other);

  for (std::string_view ok :
       {"/", "/a/b?c=d&e=%20", "*", "http://host:8080/v1/models", "https://h/x", "/caf\xc3\xa9"}) {
    const Outcome o = requests("OPTIONS " + std::string(ok) + " HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT_EQ(o.error, ParseError::None) << ok;
    EXPECT_EQ(o.messages.at(0).target, ok);
  }
  const Outcome brew = requests("BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(brew.error, ParseError::None);
  EXPECT_EQ(brew.messages.at(0).method, "BREW");
}

TEST(HttpRequestParser, VersionsAndKeepAlive) {
  struct Case {
    std::string wire;
    Version version;
    bool keep_alive;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", Version::Http11, true},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", Version::Http11, false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n", Version::Http11, false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n", Version::Http11,
       false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nConnection: close\r\n\r\n",
       Version::Http11, false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", Version::Http11, true},
      {"GET / HTTP/1.0\r\n\r\n", Version::Http10, false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", Version::Http10, true},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", Version::Http10, false},
      // RFC 9110 §2.5: a higher minor version is handled as the highest we implement.
      {"GET / HTTP/1.2\r\nHost: h\r\n\r\n", Version::Http11, true},
  };
  for (const Case& c : cases) {
    const Outcome o = requests(c.wire);
    ASSERT_EQ(o.error, ParseError::None) << c.wire;
    EXPECT_EQ(o.messages.at(0).version, c.version) << c.wire;
    EXPECT_EQ(o.messages.at(0).keep_alive, c.keep_alive) << c.wire;
  }
  EXPECT_EQ(version_number(Version::Http10), 10u);
  EXPECT_EQ(version_number(Version::Http11), 11u);
}

TEST(HttpRequestParser, ExpectContinue) {
  RequestParser p;
  const std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nExpect: "
                           "100-Continue\r\nContent-Length: 5\r\n\r\n";
  // The client sends the head alone and waits.
  ParseResult r = p.parse(head);
  ASSERT_EQ(r.event, Event::Head);
  EXPECT_TRUE(p.expects_continue());
  EXPECT_EQ(p.parse({}).event, Event::NeedMore);
  r = p.parse("hello");
  EXPECT_EQ(r.event, Event::Body);
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(p.parse({}).event, Event::Done);

  // HTTP/1.0 clients cannot ask for it (RFC 9110 §10.1.1), and other expectations are not it.
  EXPECT_FALSE(
      requests("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").messages.at(0).expects_continue);
  EXPECT_FALSE(requests(get("/", "Expect: 200-ok\r\n")).messages.at(0).expects_continue);
  EXPECT_FALSE(requests(get("/")).messages.at(0).expects_continue);
}

// ---- requests: chunked bodies ----

TEST(HttpRequestParser, DecodesChunkedBodiesWithExtensionsAndTrailers) {
  const std::string wire =
      with_headers("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n"
                                                     "6;name=value;quoted=\"a b;c\"\r\n world\r\n"
                                                     "A ; spaced\r\n0123456789\r\n"
                                                     "0000000000000001\r\n!\r\n"
                                                     "0;last\r\n"
                                                     "X-Trailer: yes\r\nChecksum:  abc \r\n"
                                                     "\r\n");
  const Outcome o = requests(wire);
  ASSERT_EQ(o.error, ParseError::None);
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_EQ(o.messages[0].framing, Framing::Chunked);
  EXPECT_EQ(o.messages[0].body, "hello world0123456789!");
  EXPECT_EQ(o.messages[0].body_pieces, 4u);
  expect_split_invariant(wire, false, false);
}

TEST(HttpRequestParser, ChunkedBodyPiecesAreViewsAndComeAsTheyArrive) {
  RequestParser p;
  std::string wire = with_headers("Transfer-Encoding: chunked\r\n");
  ParseResult r = p.parse(wire);
  ASSERT_EQ(r.event, Event::Head);
  // Half a chunk: its bytes come out before the rest arrives.
  std::string buf = "a\r\n01234";
  r = p.parse(buf);
  ASSERT_EQ(r.event, Event::Body);
  EXPECT_EQ(r.body, "01234");
  EXPECT_EQ(r.body.data(), buf.data() + 3);
  EXPECT_EQ(r.consumed, buf.size());
  r = p.parse("56789\r\n0\r\n\r\n");
  ASSERT_EQ(r.event, Event::Body);
  EXPECT_EQ(r.body, "56789");
  r = p.parse("\r\n0\r\n\r\n");
  EXPECT_EQ(r.event, Event::Done);
  EXPECT_EQ(r.consumed, 7u);
}

TEST(HttpRequestParser, EmptyChunkedBody) {
  const Outcome o = requests(with_headers("Transfer-Encoding: chunked\r\n", "0\r\n\r\n"));
  ASSERT_EQ(o.error, ParseError::None);
  EXPECT_EQ(o.messages.at(0).body, "");
  EXPECT_EQ(o.messages.at(0).body_pieces, 0u);
}

TEST(HttpRequestParser, TransferCodingsAreCaseInsensitiveListsAcrossFields) {
  for (std::string_view te : {"Transfer-Encoding: CHUNKED\r\n", "Transfer-Encoding: ,chunked,\r\n",
                              "Transfer-Encoding:\tchunked \r\n"}) {
    const Outcome o = requests(with_headers(te, "1\r\nx\r\n0\r\n\r\n"));
    ASSERT_EQ(o.error, ParseError::None) << te;
    EXPECT_EQ(o.messages.at(0).body, "x");
  }
}

// ---- requests: pipelining and the connection's life ----

TEST(HttpRequestParser, PipelinedRequestsComeOutInOrder) {
  const std::string chunked =
      with_headers("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n");
  const std::string wire = post(kChatBody) + get("/health") + chunked + "\r\n" +
                           get("/v1/models", "Connection: close\r\n");
  for (size_t step : {0, 1, 4, 100}) {
    const Outcome o = requests(wire, step);
    ASSERT_EQ(o.error, ParseError::None) << step;
    ASSERT_EQ(o.messages.size(), 4u) << step;
    EXPECT_EQ(o.messages[0].body, kChatBody);
    EXPECT_EQ(o.messages[1].target, "/health");
    EXPECT_EQ(o.messages[2].body, "abc");
    EXPECT_EQ(o.messages[3].target, "/v1/models");
    EXPECT_TRUE(o.messages[2].keep_alive);
    EXPECT_FALSE(o.messages[3].keep_alive);
  }
}

TEST(HttpRequestParser, DoneLeavesTheNextRequestsBytesUnconsumed) {
  const std::string first = post("{}");
  const std::string wire = first + "GET /next";
  RequestParser p;
  ParseResult r = p.parse(wire);
  ASSERT_EQ(r.event, Event::Head);
  size_t used = r.consumed;
  r = p.parse(std::string_view(wire).substr(used));
  ASSERT_EQ(r.event, Event::Body);
  EXPECT_EQ(r.body, "{}");
  used += r.consumed;
  EXPECT_EQ(used, first.size());
  r = p.parse(std::string_view(wire).substr(used));
  EXPECT_EQ(r.event, Event::Done);
  EXPECT_EQ(r.consumed, 0u);
  p.reset();
  EXPECT_FALSE(p.in_progress());
  r = p.parse(std::string_view(wire).substr(used));
  EXPECT_EQ(r.event, Event::NeedMore);
  EXPECT_EQ(r.consumed, 0u); // an incomplete head stays in the buffer
  EXPECT_TRUE(p.in_progress());
}

TEST(HttpRequestParser, LeadingEmptyLinesAreSkippedUpToALimit) {
  const Outcome o = requests("\r\n\r\n" + get("/"));
  ASSERT_EQ(o.error, ParseError::None);
  EXPECT_EQ(o.messages.at(0).target, "/");
  expect_split_invariant("\r\n\r\n\r\n\r\n" + get("/"), false, false);
  // Past the limit the empty line is taken for a request line.
  EXPECT_EQ(request_error("\r\n\r\n\r\n\r\n\r\n" + get("/")), ParseError::BadMethod);
  // A bare LF is not an empty line.
  EXPECT_EQ(request_error("\n" + get("/")), ParseError::BareLf);
}

TEST(HttpRequestParser, EndOfStream) {
  EXPECT_TRUE(requests("", 0, {}, true).closed);
  EXPECT_TRUE(requests("\r\n\r\n", 0, {}, true).closed); // only empty lines: nothing lost
  const Outcome after = requests(get("/"), 1, {}, true);
  EXPECT_TRUE(after.closed);
  EXPECT_EQ(after.messages.size(), 1u);
  for (std::string wire : {std::string("G"), std::string("GET / HTTP/1.1\r\nHost: h\r\n"),
                           post(kChatBody).substr(0, post(kChatBody).size() - 3),
                           with_headers("Transfer-Encoding: chunked\r\n", "5\r\nab"),
                           with_headers("Transfer-Encoding: chunked\r\n", "0\r\nX: y\r\n")}) {
    for (size_t step : {0, 1}) {
      const Outcome o = requests(wire, step, {}, true);
      EXPECT_EQ(o.error, ParseError::Truncated) << wire;
      EXPECT_FALSE(o.closed);
    }
  }
  RequestParser p;
  p.parse("GET");
  EXPECT_EQ(p.on_eof().event, Event::Error);
  EXPECT_EQ(p.error(), ParseError::Truncated);
  EXPECT_EQ(p.on_eof().event, Event::Error); // errors are sticky
  EXPECT_EQ(p.parse(get("/")).event, Event::Error);
  p.reset();
  EXPECT_EQ(p.parse(get("/")).event, Event::Head);
}

// ---- requests: limits ----

TEST(HttpRequestParser, StartLineLimit) {
  Options o;
  o.max_start_line = 64;
  // The limit counts the whole line, CRLF included.
  const std::string at_limit = "GET /" + std::string(64 - 16, 'a') + " HTTP/1.1\r\n";
  ASSERT_EQ(at_limit.size(), 64u);
  EXPECT_EQ(requests(at_limit + "Host: h\r\n\r\n", 0, o).error, ParseError::None);
  const std::string over = "GET /" + std::string(64 - 15, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  for (size_t step : {0, 1, 10}) {
    EXPECT_EQ(requests(over, step, o).error, ParseError::StartLineTooLong);
    // Without an LF in sight: refused as soon as the line cannot fit.
    EXPECT_EQ(requests("GET /" + std::string(200, 'a'), step, o).error,
              ParseError::StartLineTooLong);
  }
  EXPECT_EQ(error_status(ParseError::StartLineTooLong), 414);
  EXPECT_EQ(request_error("GET /" + std::string(kDefaultMaxStartLine, 'a') + " HTTP/1.1\r\n"),
            ParseError::StartLineTooLong);
}

TEST(HttpRequestParser, HeaderBytesLimit) {
  Options o;
  o.max_header_bytes = 128;
  const std::string prefix = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  const std::string at_limit = prefix + std::string(128 - prefix.size() - 4, 'v') + "\r\n\r\n";
  ASSERT_EQ(at_limit.size(), 128u);
  EXPECT_EQ(requests(at_limit, 0, o).error, ParseError::None);
  const std::string over = prefix + std::string(128 - prefix.size() - 3, 'v') + "\r\n\r\n";
  for (size_t step : {0, 1, 7}) {
    EXPECT_EQ(requests(over, step, o).error, ParseError::HeaderTooLarge) << step;
    EXPECT_EQ(requests(prefix + std::string(500, 'v'), step, o).error, ParseError::HeaderTooLarge);
  }
  EXPECT_EQ(error_status(ParseError::HeaderTooLarge), 431);
  // The default: 16 KiB.
  EXPECT_EQ(request_error(get("/", "X: " + std::string(kDefaultMaxHeaderBytes, 'v') + "\r\n")),
            ParseError::HeaderTooLarge);
}

TEST(HttpRequestParser, HeaderCountLimit) {
  Options o;
  o.max_headers = 3;
  EXPECT_EQ(requests(get("/", "A: 1\r\nB: 2\r\n"), 0, o).error, ParseError::None); // 3 with Host
  for (size_t step : {0, 1})
    EXPECT_EQ(requests(get("/", "A: 1\r\nB: 2\r\nC: 3\r\n"), step, o).error,
              ParseError::TooManyHeaders);
  EXPECT_EQ(error_status(ParseError::TooManyHeaders), 431);
  std::string many;
  for (size_t i = 0; i < kDefaultMaxHeaders; ++i)
    many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(request_error(get("/", many)), ParseError::TooManyHeaders);
}

TEST(HttpRequestParser, BodyLimit) {
  Options o;
  o.max_body_bytes = 10;
  EXPECT_EQ(requests(post("0123456789"), 0, o).error, ParseError::None);
  // A Content-Length over the limit is refused at the head, before any body byte.
  RequestParser p(o);
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
  EXPECT_EQ(p.parse(head).event, Event::Error);
  EXPECT_EQ(p.error(), ParseError::BodyTooLarge);
  EXPECT_EQ(error_status(p.error()), 413);
  // Chunked: refused at the size line of the chunk that crosses the limit.
  const std::string chunked =
      with_headers("Transfer-Encoding: chunked\r\n", "5\r\n01234\r\n6\r\n012345\r\n0\r\n\r\n");
  for (size_t step : {0, 1}) {
    const Outcome c = requests(chunked, step, o);
    EXPECT_EQ(c.error, ParseError::BodyTooLarge);
  }
  EXPECT_EQ(requests(with_headers("Transfer-Encoding: chunked\r\n",
                                  "5\r\n01234\r\n5\r\n01234\r\n0\r\n\r\n"),
                     0, o)
                .error,
            ParseError::None);
  // The largest chunk size there is: over any limit, not an overflow.
  EXPECT_EQ(
      requests(with_headers("Transfer-Encoding: chunked\r\n", "ffffffffffffffff\r\n"), 0).error,
      ParseError::BodyTooLarge);
}

TEST(HttpRequestParser, HostRules) {
  EXPECT_EQ(request_error("GET / HTTP/1.1\r\n\r\n"), ParseError::MissingHost);
  EXPECT_EQ(request_error("GET / HTTP/1.0\r\n\r\n"), ParseError::None);
  EXPECT_EQ(request_error("GET / HTTP/1.1\r\nHost:\r\n\r\n"), ParseError::None); // may be empty
  EXPECT_EQ(request_error("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
            ParseError::MultipleHost);
  Options lax;
  lax.require_host = false;
  EXPECT_EQ(request_error("GET / HTTP/1.1\r\n\r\n", lax), ParseError::None);
}

// ---- requests: every error, with its status ----

struct ErrorCase {
  const char* name;
  std::string wire;
  ParseError error;
  int status;
};

TEST(HttpRequestParser, Errors) {
  const std::string h = "POST / HTTP/1.1\r\nHost: h\r\n";
  const ErrorCase cases[] = {
      {"empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::BadMethod, 400},
      {"non-token method", "G@T / HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::BadMethod, 400},
      {"no target", "GET\r\nHost: h\r\n\r\n", ParseError::BadMethod, 400},
      {"two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::BadTarget, 400},
      {"relative target", "GET health HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::BadTarget, 400},
      {"authority form", "CONNECT example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n",
       ParseError::BadTarget, 400},
      {"control in target", "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::BadTarget, 400},
      {"DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::BadTarget, 400},
      {"HTTP/0.9", "GET /\r\n\r\n", ParseError::BadTarget, 400},
      {"space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::BadVersion, 400},
      {"lower-case version", "GET / http/1.1\r\nHost: h\r\n\r\n", ParseError::BadVersion, 400},
      {"long version", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", ParseError::BadVersion, 400},
      {"trailing space", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", ParseError::BadVersion, 400},
      {"HTTP/2.0", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ParseError::UnsupportedVersion, 505},
      {"HTTP/9.9", "GET / HTTP/9.9\r\nHost: h\r\n\r\n", ParseError::UnsupportedVersion, 505},
      {"HTTP/0.9 spelled", "GET / HTTP/0.9\r\n\r\n", ParseError::UnsupportedVersion, 505},
      {"bare LF request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", ParseError::BareLf, 400},
      {"bare LF header", "GET / HTTP/1.1\r\nHost: h\n\r\n", ParseError::BareLf, 400},
      {"bare LF blank line", "GET / HTTP/1.1\r\nHost: h\r\n\n", ParseError::BareLf, 400},
      {"bare CR in value", h + "X: a\rb\r\n\r\n", ParseError::BareCr, 400},
      {"bare CR in target", "GET /a\r HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::BareCr, 400},
      {"CR in name", h + "X\r: a\r\n\r\n", ParseError::BadHeaderName, 400},
      {"obs-fold", h + "X: a\r\n b\r\n\r\n", ParseError::ObsFold, 400},
      {"obs-fold tab", h + "X: a\r\n\tb\r\n\r\n", ParseError::ObsFold, 400},
      {"space before first header", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", ParseError::ObsFold, 400},
      {"space before colon", h + "X : a\r\n\r\n", ParseError::SpaceBeforeColon, 400},
      {"tab before colon", h + "X\t: a\r\n\r\n", ParseError::SpaceBeforeColon, 400},
      {"space in name", h + "X Y: a\r\n\r\n", ParseError::SpaceBeforeColon, 400},
      {"non-token name", h + "X(Y): a\r\n\r\n", ParseError::BadHeaderName, 400},
      {"NUL in name", h + std::string("X\0Y: a\r\n\r\n", 10), ParseError::BadHeaderName, 400},
      {"empty name", h + ": a\r\n\r\n", ParseError::BadHeaderName, 400},
      {"no colon", h + "NoColon\r\n\r\n", ParseError::BadHeaderName, 400},
      {"control in value", h + "X: a\x01z\r\n\r\n", ParseError::BadHeaderValue, 400},
      {"NUL in value", h + std::string("X: a\0z\r\n\r\n", 10), ParseError::BadHeaderValue, 400},
      {"DEL in value", h + "X: a\x7fz\r\n\r\n", ParseError::BadHeaderValue, 400},
      {"CL not a number", h + "Content-Length: abc\r\n\r\n", ParseError::BadContentLength, 400},
      {"CL empty", h + "Content-Length:\r\n\r\n", ParseError::BadContentLength, 400},
      {"CL negative", h + "Content-Length: -1\r\n\r\n", ParseError::BadContentLength, 400},
      {"CL plus", h + "Content-Length: +1\r\n\r\n", ParseError::BadContentLength, 400},
      {"CL hex", h + "Content-Length: 0x10\r\n\r\n", ParseError::BadContentLength, 400},
      {"CL list", h + "Content-Length: 5, 5\r\n\r\n", ParseError::BadContentLength, 400},
      {"CL inner space", h + "Content-Length: 1 2\r\n\r\n", ParseError::BadContentLength, 400},
      {"CL overflow", h + "Content-Length: 99999999999999999999\r\n\r\n",
       ParseError::BadContentLength, 400},
      {"CL differing", h + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
       ParseError::ConflictingContentLength, 400},
      {"CL and TE", h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ParseError::ContentLengthWithTransferEncoding, 400},
      {"TE and CL", h + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
       ParseError::ContentLengthWithTransferEncoding, 400},
      {"TE empty", h + "Transfer-Encoding:\r\n\r\n", ParseError::BadTransferEncoding, 400},
      {"TE twice", h + "Transfer-Encoding: chunked, chunked\r\n\r\n",
       ParseError::BadTransferEncoding, 400},
      {"TE chunked not last", h + "Transfer-Encoding: chunked, gzip\r\n\r\n",
       ParseError::BadTransferEncoding, 400},
      {"TE not a token", h + "Transfer-Encoding: chunked;x=1\r\n\r\n",
       ParseError::BadTransferEncoding, 400},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ParseError::TransferEncodingInHttp10, 400},
      {"TE gzip", h + "Transfer-Encoding: gzip\r\n\r\n", ParseError::UnknownTransferCoding, 501},
      {"TE gzip, chunked", h + "Transfer-Encoding: gzip, chunked\r\n\r\n",
       ParseError::UnknownTransferCoding, 501},
      {"TE identity", h + "Transfer-Encoding: identity\r\n\r\n", ParseError::UnknownTransferCoding,
       501},
      {"missing Host", "GET / HTTP/1.1\r\n\r\n", ParseError::MissingHost, 400},
      {"two Hosts", h + "Host: i\r\n\r\n", ParseError::MultipleHost, 400},
      {"chunk size not hex", with_headers("Transfer-Encoding: chunked\r\n", "ZZZ\r\n"),
       ParseError::BadChunkSize, 400},
      {"chunk size empty", with_headers("Transfer-Encoding: chunked\r\n", "\r\n"),
       ParseError::BadChunkSize, 400},
      {"chunk size signed", with_headers("Transfer-Encoding: chunked\r\n", "-1\r\n"),
       ParseError::BadChunkSize, 400},
      {"chunk size 0x", with_headers("Transfer-Encoding: chunked\r\n", "0x1\r\nx\r\n"),
       ParseError::BadChunkSize, 400},
      {"chunk size 17 digits",
       with_headers("Transfer-Encoding: chunked\r\n", "00000000000000001\r\nx\r\n"),
       ParseError::BadChunkSize, 400},
      {"chunk size trailing space", with_headers("Transfer-Encoding: chunked\r\n", "1 \r\nx\r\n"),
       ParseError::BadChunkSize, 400},
      {"chunk extension control", with_headers("Transfer-Encoding: chunked\r\n", "1;a\x01\r\n"),
       ParseError::BadChunkExtension, 400},
      {"chunk extension too long",
       with_headers("Transfer-Encoding: chunked\r\n", "1;" + std::string(2000, 'e') + "\r\n"),
       ParseError::BadChunkExtension, 400},
      {"chunk size bare LF", with_headers("Transfer-Encoding: chunked\r\n", "1\nx\r\n"),
       ParseError::BareLf, 400},
      {"chunk extension bare LF", with_headers("Transfer-Encoding: chunked\r\n", "1;a\nx\r\n"),
       ParseError::BareLf, 400},
      {"chunk size bare CR", with_headers("Transfer-Encoding: chunked\r\n", "1\rx\r\n"),
       ParseError::BareCr, 400},
      {"chunk data too long", with_headers("Transfer-Encoding: chunked\r\n", "1\r\nxy\r\n"),
       ParseError::BadChunkEnd, 400},
      {"chunk data LF only", with_headers("Transfer-Encoding: chunked\r\n", "1\r\nx\n0\r\n\r\n"),
       ParseError::BadChunkEnd, 400},
      {"trailer obs-fold", with_headers("Transfer-Encoding: chunked\r\n", "0\r\nA: b\r\n c\r\n"),
       ParseError::ObsFold, 400},
      {"trailer no colon", with_headers("Transfer-Encoding: chunked\r\n", "0\r\nAb\r\n\r\n"),
       ParseError::BadHeaderName, 400},
      {"trailer space before colon",
       with_headers("Transfer-Encoding: chunked\r\n", "0\r\nA : b\r\n\r\n"),
       ParseError::SpaceBeforeColon, 400},
      {"trailer control", with_headers("Transfer-Encoding: chunked\r\n", "0\r\nA: \x01\r\n\r\n"),
       ParseError::BadHeaderValue, 400},
      {"trailer bare LF", with_headers("Transfer-Encoding: chunked\r\n", "0\r\nA: b\n\r\n"),
       ParseError::BareLf, 400},
      {"final bare CR", with_headers("Transfer-Encoding: chunked\r\n", "0\r\n\rX"),
       ParseError::BareCr, 400},
      {"trailers too large",
       with_headers("Transfer-Encoding: chunked\r\n",
                    "0\r\nA: " + std::string(kDefaultMaxHeaderBytes, 'v') + "\r\n\r\n"),
       ParseError::HeaderTooLarge, 431},
      {"body too large", h + "Content-Length: 8388609\r\n\r\n", ParseError::BodyTooLarge, 413},
      {"start line too long", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n",
       ParseError::StartLineTooLong, 414},
  };
  for (const ErrorCase& c : cases) {
    for (size_t step : {0, 1}) {
      const Outcome o = requests(c.wire, step);
      EXPECT_EQ(o.error, c.error) << c.name << " (step " << step << "): got "
                                  << error_name(o.error);
      EXPECT_TRUE(o.messages.empty()) << c.name;
    }
    EXPECT_EQ(error_status(c.error), c.status) << c.name;
  }
  std::string trailers;
  for (size_t i = 0; i <= kDefaultMaxHeaders; ++i)
    trailers += "T: v\r\n";
  EXPECT_EQ(
      requests(with_headers("Transfer-Encoding: chunked\r\n", "0\r\n" + trailers + "\r\n")).error,
      ParseError::TooManyHeaders);
}

// Long values are checked 16 bytes at a time: a bad byte is found wherever it sits, and the
// bytes a value may hold (HTAB, SP, obs-text) pass.
TEST(HttpRequestParser, EveryByteOfALongValueIsChecked) {
  const std::string good = "abc\tdef ghi\x80\xff" + std::string(30, 'x') + "~";
  EXPECT_EQ(request_error(get("/", "X: " + good + "\r\n")), ParseError::None);
  for (size_t i = 0; i < good.size(); ++i) {
    for (char bad : {'\x01', '\x1f', '\x7f', '\0'}) {
      std::string v = good;
      v[i] = bad;
      EXPECT_EQ(request_error(get("/", "X: " + v + "\r\n")), ParseError::BadHeaderValue)
          << "byte " << i << " = " << static_cast<int>(bad);
    }
    std::string v = good;
    v[i] = '\r';
    EXPECT_EQ(request_error(get("/", "X: " + v + "\r\n")), ParseError::BareCr) << i;
    v[i] = '\n';
    EXPECT_EQ(request_error(get("/", "X: " + v + "\r\n")), ParseError::BareLf) << i;
  }
}

TEST(HttpRequestParser, AcceptedEdgeCases) {
  const std::string h = "POST / HTTP/1.1\r\nHost: h\r\n";
  for (const std::string& wire : {
           h + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", // identical repeats
           h + "Content-Length: 005\r\n\r\nhello",                    // leading zeros
           h + "Content-Length:\t5 \r\n\r\nhello",                    // OWS around
           h + "Content-Length: 0\r\n\r\n",
           with_headers("Transfer-Encoding: chunked\r\n", "5 ;a=b\r\nhello\r\n0\r\n\r\n"),
           with_headers("Transfer-Encoding: chunked\r\n", "5\t;a\r\nhello\r\n0\r\n\r\n"),
           with_headers("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\nA:\r\n\r\n"),
           with_headers("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\nA:b\r\n\r\n"),
       }) {
    const Outcome o = requests(wire);
    EXPECT_EQ(o.error, ParseError::None) << wire;
    ASSERT_EQ(o.messages.size(), 1u) << wire;
    EXPECT_TRUE(o.messages[0].body == "hello" || o.messages[0].body.empty()) << wire;
    expect_split_invariant(wire, false, false);
  }
}

// Request smuggling: each request below is read differently by some pair of real-world
// parsers (CL.TE, TE.CL, TE.TE obfuscations, line-ending tricks). Every one must be refused,
// never served, however its bytes arrive.
TEST(HttpRequestParser, SmugglingAttemptsAreRefused) {
  const std::string h = "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n";
  const std::string smuggled = "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n";
  const ErrorCase cases[] = {
      {"CL.TE", h + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled,
       ParseError::ContentLengthWithTransferEncoding, 400},
      {"TE.CL", h + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + smuggled,
       ParseError::ContentLengthWithTransferEncoding, 400},
      {"TE.TE second coding", h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
       ParseError::BadTransferEncoding, 400},
      {"TE.TE xchunked", h + "Transfer-Encoding: xchunked\r\n\r\n" + smuggled,
       ParseError::UnknownTransferCoding, 501},
      {"TE.TE quoted", h + "Transfer-Encoding: \"chunked\"\r\n\r\n" + smuggled,
       ParseError::BadTransferEncoding, 400},
      {"TE space before colon",
       h + "Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n" + smuggled,
       ParseError::SpaceBeforeColon, 400},
      {"TE tab before colon", h + "Transfer-Encoding\t: chunked\r\n\r\n" + smuggled,
       ParseError::SpaceBeforeColon, 400},
      {"TE folded", h + "X: y\r\n Transfer-Encoding: chunked\r\n\r\n" + smuggled,
       ParseError::ObsFold, 400},
      {"TE value folded", h + "Transfer-Encoding:\r\n chunked\r\n\r\n" + smuggled,
       ParseError::ObsFold, 400},
      {"TE vertical tab",
       h +
           "Transfer-Encoding: \x0b"
           "chunked\r\n\r\n" +
           smuggled,
       ParseError::BadHeaderValue, 400},
      {"TE bare CR", h + "Transfer-Encoding:\rchunked\r\n\r\n" + smuggled, ParseError::BareCr, 400},
      {"TE bare LF", h + "Foo: bar\nTransfer-Encoding: chunked\r\n\r\n" + smuggled,
       ParseError::BareLf, 400},
      {"TE in HTTP/1.0 with CL",
       "POST / HTTP/1.0\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled,
       ParseError::ContentLengthWithTransferEncoding, 400},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled,
       ParseError::TransferEncodingInHttp10, 400},
      {"CL.CL", h + "Content-Length: 0\r\nContent-Length: 44\r\n\r\n" + smuggled,
       ParseError::ConflictingContentLength, 400},
      {"CL list", h + "Content-Length: 0, 44\r\n\r\n" + smuggled, ParseError::BadContentLength,
       400},
      {"CL exponent", h + "Content-Length: 1e3\r\n\r\n", ParseError::BadContentLength, 400},
      {"CL NUL in name", h + std::string("Content-Length\0: 44\r\n\r\n", 23),
       ParseError::BadHeaderName, 400},
      {"chunk size overflow",
       with_headers("Transfer-Encoding: chunked\r\n", "10000000000000001\r\nx\r\n"),
       ParseError::BadChunkSize, 400},
      {"chunk size with space",
       with_headers("Transfer-Encoding: chunked\r\n", "1 2\r\nx\r\n0\r\n\r\n"),
       ParseError::BadChunkSize, 400},
      {"chunk LF-only line end",
       with_headers("Transfer-Encoding: chunked\r\n", "1\nx\n0\n\n" + std::string(smuggled)),
       ParseError::BareLf, 400},
      {"chunk extension with LF", with_headers("Transfer-Encoding: chunked\r\n", "1;\nx\r\n"),
       ParseError::BareLf, 400},
      {"chunk extension with bare CR",
       with_headers("Transfer-Encoding: chunked\r\n", "1;a\rb\r\nx\r\n"), ParseError::BareCr, 400},
      {"chunk data overrun",
       with_headers("Transfer-Encoding: chunked\r\n", "2\r\nabcGET / HTTP/1.1\r\n\r\n"),
       ParseError::BadChunkEnd, 400},
      {"request line bare LF", "GET / HTTP/1.1\nHost: h\nContent-Length: 44\n\n" + smuggled,
       ParseError::BareLf, 400},
  };
  for (const ErrorCase& c : cases) {
    for (size_t step : {0, 1, 3}) {
      const Outcome o = requests(c.wire, step);
      EXPECT_EQ(o.error, c.error) << c.name << " (step " << step << "): got "
                                  << error_name(o.error);
      EXPECT_TRUE(o.messages.empty()) << c.name << ": a request was served";
    }
    EXPECT_EQ(error_status(c.error), c.status) << c.name;
  }
}

// Whatever the read sizes, the same requests (or the same error) come out: a corpus of good and
// bad inputs fed whole and in pieces.
TEST(HttpRequestParser, ByteAtATimeEqualsWholeBuffer) {
  const std::string corpus[] = {
      post(kChatBody),
      get("/", "Connection: close\r\n"),
      post(kChatBody) + post("{}") + get("/x"),
      with_headers("Transfer-Encoding: chunked\r\n",
                   "4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\n"),
      "\r\n" + post(kChatBody),
      "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
      "GET /" + std::string(300, 'p') + " HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      with_headers("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\nX\r\n"),
      "GARBAGE\r\n\r\n",
      std::string("\x16\x03\x01\x00\x2e\x01\x00\x00", 8),
  };
  for (const std::string& wire : corpus) {
    expect_split_invariant(wire, false, false);
    expect_split_invariant(wire, false, true);
  }
}

// ---- responses ----

TEST(HttpResponseParser, ParsesAContentLengthResponse) {
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           "x-ratelimit-remaining: 99\r\nContent-Length: 2\r\n\r\n{}";
  ResponseParser p;
  ParseResult r = p.parse(wire);
  ASSERT_EQ(r.event, Event::Head);
  EXPECT_EQ(p.status(), 200);
  EXPECT_EQ(p.reason(), "OK");
  EXPECT_EQ(p.version(), Version::Http11);
  EXPECT_EQ(p.framing(), Framing::ContentLength);
  EXPECT_EQ(p.content_length(), 2u);
  EXPECT_EQ(p.header("X-RateLimit-Remaining"), "99");
  EXPECT_TRUE(p.has_header("content-type"));
  EXPECT_EQ(p.headers().size(), 3u);
  EXPECT_TRUE(p.keep_alive());
  EXPECT_EQ(p.interim_responses(), 0u);
  r = p.parse(std::string_view(wire).substr(r.consumed));
  ASSERT_EQ(r.event, Event::Body);
  EXPECT_EQ(r.body, "{}");
  EXPECT_EQ(p.parse({}).event, Event::Done);
  EXPECT_EQ(p.on_eof().event, Event::Closed);
}

TEST(HttpResponseParser, RelaysAChunkedEventStreamPieceByPiece) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n";
  const std::string e1 = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n";
  const std::string e2 = "data: [DONE]\n\n";
  ResponseParser p;
  ASSERT_EQ(p.parse(head).event, Event::Head);
  EXPECT_EQ(p.framing(), Framing::Chunked);
  std::string buf;
  append_chunk(buf, e1);
  ParseResult r = p.parse(buf);
  ASSERT_EQ(r.event, Event::Body);
  EXPECT_EQ(r.body, e1);
  EXPECT_EQ(r.body.data(), buf.data() + buf.find("data"));
  buf.erase(0, r.consumed);
  append_chunk(buf, e2);
  r = p.parse(buf); // the first chunk's CRLF, then the second chunk
  ASSERT_EQ(r.event, Event::Body);
  EXPECT_EQ(r.body, e2);
  buf.erase(0, r.consumed);
  buf += kLastChunk;
  r = p.parse(buf);
  EXPECT_EQ(r.event, Event::Done);
  EXPECT_EQ(r.consumed, buf.size());
  EXPECT_TRUE(p.keep_alive());

  std::string wire = head;
  append_chunk(wire, e1);
  append_chunk(wire, e2);
  wire += kLastChunk;
  const Outcome o = responses(wire);
  ASSERT_EQ(o.error, ParseError::None);
  EXPECT_EQ(o.messages.at(0).body, e1 + e2);
  expect_split_invariant(wire, true, true);
  expect_split_invariant(wire, true, false);
}

TEST(HttpResponseParser, BodyUntilClose) {
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this";
  ResponseParser p;
  ParseResult r = p.parse(wire);
  ASSERT_EQ(r.event, Event::Head);
  EXPECT_EQ(p.framing(), Framing::UntilClose);
  EXPECT_FALSE(p.keep_alive());
  r = p.parse(std::string_view(wire).substr(r.consumed));
  ASSERT_EQ(r.event, Event::Body);
  EXPECT_EQ(r.body, "all of this");
  EXPECT_EQ(p.parse({}).event, Event::NeedMore);
  EXPECT_EQ(p.on_eof().event, Event::Done);
  EXPECT_EQ(p.parse({}).event, Event::Done);

  const Outcome o = responses("HTTP/1.0 200 OK\r\n\r\nold", 1);
  ASSERT_EQ(o.error, ParseError::None);
  EXPECT_EQ(o.messages.at(0).body, "old");
  EXPECT_EQ(o.messages.at(0).framing, Framing::UntilClose);
  expect_split_invariant(wire, true, true);
}

TEST(HttpResponseParser, SkipsInterimResponses) {
  const std::string wire = "HTTP/1.1 100 Continue\r\n\r\n"
                           "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                           "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew";
  ResponseParser p;
  ParseResult r = p.parse(wire);
  ASSERT_EQ(r.event, Event::Head);
  EXPECT_EQ(p.status(), 201);
  EXPECT_EQ(p.interim_responses(), 2u);
  EXPECT_FALSE(p.has_header("link")); // the interim head's fields are gone
  EXPECT_EQ(r.consumed, wire.size() - 3);
  // An interim head alone is consumed; the final one is awaited.
  ResponseParser q;
  r = q.parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2");
  EXPECT_EQ(r.event, Event::NeedMore);
  EXPECT_EQ(r.consumed, 25u);
  EXPECT_TRUE(q.in_progress());
  EXPECT_EQ(q.on_eof().event, Event::Error); // a 100 then nothing: truncated, not idle
  EXPECT_EQ(q.error(), ParseError::Truncated);
  expect_split_invariant(wire, true, true);

  std::string many;
  for (size_t i = 0; i <= kMaxInterimResponses; ++i)
    many += "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_EQ(responses(many + "HTTP/1.1 200 OK\r\n\r\n").error, ParseError::TooManyInterimResponses);
  EXPECT_EQ(responses("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").error,
            ParseError::SwitchingProtocols);
}

TEST(HttpResponseParser, ResponsesWithoutBody) {
  // HEAD: the Content-Length describes the GET's body, which does not come.
  const std::string head_then_get = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  const Outcome o = responses(head_then_get, 0, false, {true, false});
  ASSERT_EQ(o.error, ParseError::None);
  ASSERT_EQ(o.messages.size(), 2u);
  EXPECT_EQ(o.messages[0].framing, Framing::None);
  EXPECT_EQ(o.messages[0].body, "");
  EXPECT_EQ(o.messages[1].body, "hello");
  for (std::string_view wire : {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                                "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
                                "HTTP/1.1 204 No Content\r\n\r\n"}) {
    ResponseParser p;
    ParseResult r = p.parse(wire);
    ASSERT_EQ(r.event, Event::Head) << wire;
    EXPECT_EQ(r.consumed, wire.size());
    EXPECT_EQ(p.framing(), Framing::None);
    EXPECT_TRUE(p.keep_alive());
    EXPECT_EQ(p.parse({}).event, Event::Done);
  }
}

TEST(HttpResponseParser, KeepAliveAndVersions) {
  struct Case {
    std::string wire;
    bool keep_alive;
  };
  const Case cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\n\r\n", false}, // until close
  };
  for (const Case& c : cases) {
    const Outcome o = responses(c.wire);
    ASSERT_EQ(o.error, ParseError::None) << c.wire;
    EXPECT_EQ(o.messages.at(0).keep_alive, c.keep_alive) << c.wire;
  }
}

TEST(HttpResponseParser, StatusLines) {
  for (std::string_view ok : {"HTTP/1.1 200\r\n", "HTTP/1.1 200 \r\n", "HTTP/1.1 599 Custom\r\n",
                              "HTTP/1.1 429 Too  Many\tRequests\r\n"}) {
    const Outcome o = responses(std::string(ok) + "Content-Length: 0\r\n\r\n");
    EXPECT_EQ(o.error, ParseError::None) << ok;
  }
  EXPECT_EQ(responses("HTTP/1.1 429 Too  Many\tRequests\r\n\r\n").messages.at(0).reason,
            "Too  Many\tRequests");
  const std::pair<std::string_view, ParseError> bad[] = {
      {"HTTP/1.1 20 OK\r\n\r\n", ParseError::BadStatusLine},
      {"HTTP/1.1 2000 OK\r\n\r\n", ParseError::BadStatusLine},
      {"HTTP/1.1 abc OK\r\n\r\n", ParseError::BadStatusLine},
      {"HTTP/1.1 099 Low\r\n\r\n", ParseError::BadStatusLine},
      {"HTTP/1.1  200 OK\r\n\r\n", ParseError::BadStatusLine},
      {"HTTP/1.1 200 O\x01K\r\n\r\n", ParseError::BadStatusLine},
      {"HTTP/1.1 200 O\rK\r\n\r\n", ParseError::BareCr},
      {"HTTP/1.1\r\n\r\n", ParseError::BadStatusLine},
      {"HTTP/2 200\r\n\r\n", ParseError::BadVersion},
      {"HTTP/2.0 200 OK\r\n\r\n", ParseError::UnsupportedVersion},
      {"ICY 200 OK\r\n\r\n", ParseError::BadVersion},
      {"HTTP/1.1 200 OK\n\r\n", ParseError::BareLf},
  };
  for (const auto& [wire, error] : bad) {
    EXPECT_EQ(responses(wire).error, error) << wire;
  }
  EXPECT_EQ(error_status(ParseError::BadStatusLine), 502);
  EXPECT_EQ(error_status(ParseError::SwitchingProtocols), 502);
}

TEST(HttpResponseParser, FramingErrors) {
  const std::pair<std::string, ParseError> bad[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
       ParseError::ContentLengthWithTransferEncoding},
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
       ParseError::ConflictingContentLength},
      {"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", ParseError::BadContentLength},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       ParseError::UnknownTransferCoding},
      {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       ParseError::TransferEncodingInHttp10},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ParseError::BadChunkSize},
      {"HTTP/1.1 200 OK\r\nX : y\r\n\r\n", ParseError::SpaceBeforeColon},
      {"HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", ParseError::ObsFold},
  };
  for (const auto& [wire, error] : bad) {
    for (size_t step : {0, 1})
      EXPECT_EQ(responses(wire, step).error, error) << wire;
  }
}

TEST(HttpResponseParser, EndOfStream) {
  // Nothing at all: a pooled connection the server had closed; the request may be retried.
  ResponseParser idle;
  EXPECT_EQ(idle.parse({}).event, Event::NeedMore);
  EXPECT_FALSE(idle.in_progress());
  EXPECT_EQ(idle.on_eof().event, Event::Closed);
  for (std::string_view wire :
       {"H", "HTTP/1.1 200 OK\r\nContent-Le", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"}) {
    for (size_t step : {0, 1}) {
      const Outcome o = responses(wire, step, true);
      EXPECT_EQ(o.error, ParseError::Truncated) << wire;
    }
  }
}

TEST(HttpResponseParser, LimitsAndPipelining) {
  Options o = default_response_options();
  o.max_body_bytes = 4;
  EXPECT_EQ(responses("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, true, {}, o).error,
            ParseError::BodyTooLarge);
  EXPECT_EQ(responses("HTTP/1.1 200 OK\r\n\r\nhello", 0, true, {}, o).error,
            ParseError::BodyTooLarge);
  EXPECT_EQ(responses("HTTP/1.1 200 OK\r\n\r\nhell", 0, true, {}, o).error, ParseError::None);
  o.max_header_bytes = 40;
  EXPECT_EQ(
      responses("HTTP/1.1 200 OK\r\nX: " + std::string(40, 'v') + "\r\n\r\n", 0, true, {}, o).error,
      ParseError::HeaderTooLarge);
  EXPECT_EQ(default_response_options().max_body_bytes, kUnlimitedBody);

  const std::string two = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                          "HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nb";
  const Outcome out = responses(two, 0, false);
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(out.messages[1].status, 404);
  EXPECT_EQ(out.messages[1].body, "b");
  expect_split_invariant(two, true, false);
}

TEST(HttpResponseParser, ByteAtATimeEqualsWholeBuffer) {
  const std::string corpus[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n",
      "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\ndata: 2\n\n",
      "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
      "garbage\r\n\r\n",
  };
  for (const std::string& wire : corpus) {
    expect_split_invariant(wire, true, true);
    expect_split_invariant(wire, true, false);
  }
}

// ---- errors ----

TEST(HttpParseErrors, EveryErrorHasANameAndAStatus) {
  std::vector<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(ParseError::Truncated); ++i) {
    const auto e = static_cast<ParseError>(i);
    const std::string_view name = error_name(e);
    EXPECT_NE(name, "unknown") << i;
    for (std::string_view seen : names)
      EXPECT_NE(name, seen);
    names.push_back(name);
    const int status = error_status(e);
    EXPECT_TRUE(status == 400 || status == 413 || status == 414 || status == 431 || status == 501 ||
                status == 502 || status == 505)
        << name;
  }
}

// ---- writers ----

// Builds a head field by field: partial designated initializers trip -Wmissing-field-initializers.
ResponseHead response_head(int status, Framing framing, uint64_t length = 0) {
  ResponseHead h;
  h.status = status;
  h.framing = framing;
  h.content_length = length;
  return h;
}

TEST(HttpWriter, ResponseHeads) {
  const Header headers[] = {{"Content-Type", "application/json"}, {"X-Semrouter-Model", "m"}};
  std::string out;
  ResponseHead ok = response_head(200, Framing::ContentLength, 2);
  ok.headers = headers;
  append_response_head(out, ok);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Semrouter-Model: m\r\n"
                 "Content-Length: 2\r\n\r\n");

  out.clear();
  ResponseHead closing = response_head(404, Framing::ContentLength);
  closing.keep_alive = false;
  append_response_head(out, closing);
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");

  out.clear();
  append_response_head(out, response_head(200, Framing::Chunked));
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");

  out.clear();
  ResponseHead old = response_head(200, Framing::ContentLength, 7);
  old.version = Version::Http10;
  append_response_head(out, old);
  EXPECT_EQ(out, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 7\r\n\r\n");

  out.clear(); // a stream to an HTTP/1.0 client: never kept alive
  old.framing = Framing::UntilClose;
  append_response_head(out, old);
  EXPECT_EQ(out, "HTTP/1.0 200 OK\r\n\r\n");
  out.clear();
  append_response_head(out, response_head(200, Framing::UntilClose));
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");

  out.clear();
  ResponseHead custom = response_head(299, Framing::None);
  custom.reason = "Fine";
  append_response_head(out, custom);
  EXPECT_EQ(out, "HTTP/1.1 299 Fine\r\n\r\n");
  out.clear();
  append_status_line(out, Version::Http11, 299);
  EXPECT_EQ(out, "HTTP/1.1 299 Unknown\r\n");
}

TEST(HttpWriter, HeadersCannotBeSplit) {
  std::string out;
  append_header(out, "X-Bad\r\nInjected", "a\r\nSet-Cookie: x\r\n\r\n<html>");
  EXPECT_EQ(out, "X-BadInjected: aSet-Cookie: x<html>\r\n");
  out.clear();
  append_header(out, "X", std::string_view("a\0b", 3));
  EXPECT_EQ(out, "X: ab\r\n");
  out.clear();
  append_header(out, "Content-Length", uint64_t{18446744073709551615u});
  EXPECT_EQ(out, "Content-Length: 18446744073709551615\r\n");
}

TEST(HttpWriter, RequestHeads) {
  const Header headers[] = {{"Content-Type", "application/json"}, {"Authorization", "Bearer k"}};
  RequestHead chat;
  chat.target = "/v1/chat/completions";
  chat.host = "api.example.com";
  chat.headers = headers;
  chat.content_length = 12;
  std::string out;
  append_request_head(out, chat);
  EXPECT_EQ(out, "POST /v1/chat/completions HTTP/1.1\r\nHost: api.example.com\r\n"
                 "Content-Type: application/json\r\nAuthorization: Bearer k\r\n"
                 "Content-Length: 12\r\n\r\n");
  RequestHead models;
  models.method = "GET";
  models.target = "/v1/models";
  models.host = "h";
  models.keep_alive = false;
  models.framing = Framing::None;
  out.clear();
  append_request_head(out, models);
  EXPECT_EQ(out, "GET /v1/models HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  RequestHead chunked;
  chunked.host = "h";
  chunked.framing = Framing::Chunked;
  out.clear();
  append_request_head(out, chunked);
  EXPECT_EQ(out, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");

  auto host = [](std::string_view h, uint16_t port, bool tls) {
    std::string s;
    append_host_header(s, h, port, tls);
    return s;
  };
  EXPECT_EQ(host("a.b", 80, false), "Host: a.b\r\n");
  EXPECT_EQ(host("a.b", 443, true), "Host: a.b\r\n");
  EXPECT_EQ(host("a.b", 443, false), "Host: a.b:443\r\n");
  EXPECT_EQ(host("127.0.0.1", 8000, false), "Host: 127.0.0.1:8000\r\n");
  EXPECT_EQ(host("::1", 8000, false), "Host: [::1]:8000\r\n");
  EXPECT_EQ(host("::1", 80, false), "Host: [::1]\r\n");
}

TEST(HttpWriter, ChunkFraming) {
  EXPECT_EQ(ChunkHead(0).view(), "0\r\n");
  EXPECT_EQ(ChunkHead(255).view(), "ff\r\n");
  EXPECT_EQ(ChunkHead(0xffffffffffffffffu).view(), "ffffffffffffffff\r\n");
  std::string out;
  append_chunk(out, "hello");
  append_chunk(out, ""); // nothing: an empty chunk would end the body
  append_chunk(out, std::string(26, 'z'));
  out += kLastChunk;
  EXPECT_EQ(out, "5\r\nhello\r\n1a\r\n" + std::string(26, 'z') + "\r\n0\r\n\r\n");
  EXPECT_EQ(kContinueResponse, "HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(499), "Client Closed Request");
}

// What the writers produce, the parsers read back.
TEST(HttpWriter, RoundTripsThroughTheParsers) {
  const Header headers[] = {{"Content-Type", "text/event-stream"}, {"X-Request-Id", "r1"}};
  std::string wire;
  ResponseHead head = response_head(200, Framing::Chunked);
  head.headers = headers;
  append_response_head(wire, head);
  append_chunk(wire, "data: 1\n\n");
  append_chunk(wire, "data: [DONE]\n\n");
  wire += kLastChunk;
  const Outcome o = responses(wire, 1, false);
  ASSERT_EQ(o.error, ParseError::None);
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_EQ(o.messages[0].body, "data: 1\n\ndata: [DONE]\n\n");
  EXPECT_EQ(o.messages[0].headers.at(1).second, "r1");

  std::string req;
  RequestHead up;
  up.target = "/v1/chat/completions";
  up.host = "up:8000";
  up.headers = headers;
  up.content_length = kChatBody.size();
  append_request_head(req, up);
  req += kChatBody;
  const Outcome r = requests(req, 3);
  ASSERT_EQ(r.error, ParseError::None);
  EXPECT_EQ(r.messages.at(0).body, kChatBody);
  EXPECT_EQ(r.messages.at(0).headers.at(0).second, "up:8000");
}

// The gateway's copy of a request head: lookups ignore case, find names of every length (the
// size filter in front of the scan has one bit for all names of 63 bytes or more), and miss
// what was not sent.
TEST(ClientRequest, LooksUpHeadersByName) {
  const std::string long_name(70, 'x'), other_long(64, 'y');
  const std::string wire = "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nX-Tenant-ID: t1\r\n" +
                           long_name + ": long\r\nContent-Length: 0\r\n\r\n";
  RequestParser p;
  ParseResult r = p.parse(wire);
  ASSERT_EQ(r.event, Event::Head);
  gateway::ClientRequest req;
  req.set_head(p, std::string_view(wire).substr(0, r.consumed));
  EXPECT_EQ(req["x-tenant-id"], "t1");
  EXPECT_EQ(req["HOST"], "a");
  EXPECT_EQ(req[long_name], "long");
  EXPECT_EQ(req[other_long], "");
  EXPECT_EQ(req["x-tenant-ix"], "");
  EXPECT_EQ(req["authorization"], "");
  EXPECT_FALSE(req.find("x-semrouter-decision"));
  ASSERT_TRUE(req.find("content-length"));
  EXPECT_EQ(*req.find("content-length"), "0");
  req.clear();
  EXPECT_EQ(req["host"], "");
}

} // namespace
} // namespace semrouter::http
