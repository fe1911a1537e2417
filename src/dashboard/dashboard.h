// The admin port's dashboard: the pages (assets embedded at build time), their JSON APIs and
// their server-sent event streams. Transport-neutral and Beast-free: the gateway hands it the
// admin requests it does not serve itself and writes what it answers; for a stream, the gateway
// writes stream_open()'s text and then polls stream_next() until the client leaves or the
// router drains.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace semrouter::pipeline {
class Runtime;
struct Snapshot;
} // namespace semrouter::pipeline

namespace semrouter::dashboard {

struct Request {
  std::string_view method; // "GET", "POST", ...
  std::string_view path;   // without the query
  std::string_view query;  // after '?', without it; "" when none
  std::string_view body;
};

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class Dashboard {
public:
  explicit Dashboard(pipeline::Runtime& runtime);
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // The answer for a dashboard path, or nullopt when the path is not the dashboard's (the gateway
  // then answers it, or 404s).
  std::optional<Reply> handle(const Request& req);

  // Server-sent event streams (text/event-stream).
  bool is_stream(std::string_view path) const;
  // The first bytes of a stream (e.g. the recent backlog); sets `cursor` for stream_next.
  std::string stream_open(const Request& req, uint64_t& cursor);
  // What happened since `cursor` (advanced), or "" when nothing did. Thread-safe.
  std::string stream_next(uint64_t& cursor);

  // The static page and its files (/, /ui, /index.html, /ui/...): they hold no data (every
  // figure comes from the JSON APIs), so they may be served without the admin token, which a
  // browser cannot add to a page load. The page asks for the token itself.
  static bool is_public(std::string_view path);

private:
  bool enabled() const; // dashboard.enabled in the current snapshot
  Reply index_page(const pipeline::Snapshot& snap) const;
  Reply asset_file(std::string_view rest) const; // rest: after /ui/
  Reply info(const pipeline::Snapshot& snap) const;
  Reply decisions(const pipeline::Snapshot& snap, std::string_view query) const;
  Reply traffic(std::string_view query) const;
  Reply config_view(const pipeline::Snapshot& snap) const;

  pipeline::Runtime& rt_;
  std::string index_html_; // index.html with the assets' versioned base path filled in
};

} // namespace semrouter::dashboard
