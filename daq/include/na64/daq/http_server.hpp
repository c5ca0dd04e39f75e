// SPDX-License-Identifier: Apache-2.0
// The HTTP/JSON control interface of na64daq serve: the control.proto
// requests and replies in Protobuf's JSON mapping, over HTTP/1.1 with bearer
// tokens. Routes:
//
//   GET  /api/status                    GET  /api/thresholds[?all=true]
//   POST /api/configure  /api/start      POST /api/thresholds
//   POST /api/stop  /api/pause           POST /api/thresholds/use
//   POST /api/resume  /api/reset         POST /api/thresholds/clear-shadow
//   POST /api/comment                    GET  /api/runs[?limit=N]  /api/runs/{N}
//
//   POST /api/alarms/{N}/ack            (shift)
//
// The HTTP status follows Reply.code (OK 200, BAD_REQUEST 400, UNAUTHORIZED
// 401, FORBIDDEN 403, NOT_FOUND 404, CONFLICT 409, INTERNAL 500).
//
// Beside the API the server carries the dashboard's side (HttpExtensions):
// reads answered before the routes, files for paths no route takes, and a
// WebSocket at GET /ws on which it pushes text messages (read-only; no token).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace na64::daq {

class ControlService;

/// A reply sent as it is, for a path outside the API (the dashboard's files).
struct HttpContent {
  unsigned status = 200;
  std::string content_type;
  std::string body;
};

struct HttpOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;  ///< 0: any free port; HttpServer::port() tells which
  /// Lines "ROLE TOKEN" (role shift or expert), '#' comments and blank lines;
  /// mode 0600 or stricter. Empty: no tokens, so the server only reads.
  std::filesystem::path tokens_file;
};

/// Asked for a GET to a path outside the route table, with the request
/// target (path and query); nullopt gives 404. Called from the server's
/// worker threads, possibly several at once.
using UnroutedGet = std::function<std::optional<HttpContent>(std::string_view target)>;

/// What the server serves beside the control API; every member is optional.
struct HttpExtensions {
  /// Asked first for every GET, with the request target (path and query);
  /// nullopt lets the request go on to the API's routes. On /api/ paths a
  /// request whose Authorization header is not valid is refused (401), as on
  /// the API's own routes.
  UnroutedGet read;
  /// Asked for a GET that neither `read` nor a route takes; nullopt gives 404.
  UnroutedGet unrouted;
  /// The message sent to a WebSocket client (GET /ws) as soon as it
  /// connects, and to every client at least once a second. Empty: no /ws.
  std::function<std::string()> live_status;
};

/// Replies sent and WebSocket clients, since the server started.
struct HttpCounts {
  std::vector<std::pair<unsigned, std::uint64_t>> replies_by_status;  ///< HTTP status, count; ascending
  std::uint64_t websocket_clients = 0;   ///< connected now
  std::uint64_t websocket_dropped = 0;   ///< messages not sent to a client that fell behind
};

/// Serves the control API on its own I/O thread (asynchronous accept and
/// sessions, keep-alive, any number of clients; a connection idle for 30 s
/// is closed); ControlService calls run on a small pool of worker threads so
/// that a slow command does not hold up reads. Request bodies up to 1 MiB.
///
/// Tokens are compared in constant time and never logged; a request that
/// ends in a non-2xx status is logged to stderr as one line: method, path,
/// role, status.
///
/// A WebSocket client is sent every message, in order; one that falls more
/// than 64 messages behind loses its oldest unsent ones (counted). A client
/// silent for 5 minutes, pings included, is closed.
///
/// Thread safety: port() and stop() from any thread but the server's own
/// (so not from an UnroutedGet); broadcast() and counts() from any thread.
class HttpServer {
 public:
  /// Reads the tokens file and starts listening. ConfigError for a tokens
  /// file that cannot be used or a bad address (the message names the file
  /// and line, never a token); Error if the port cannot be bound.
  HttpServer(ControlService& service, HttpOptions options, UnroutedGet unrouted_get = {});
  HttpServer(ControlService& service, HttpOptions options, HttpExtensions extensions);
  /// stop().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// The port listened on (the one chosen when HttpOptions::port was 0).
  [[nodiscard]] std::uint16_t port() const noexcept;

  /// Sends `text` to every WebSocket client as one text message. Does
  /// nothing after stop().
  void broadcast(std::string text);

  [[nodiscard]] HttpCounts counts() const;

  /// Stops accepting, closes every connection and waits for requests in
  /// progress to finish. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace na64::daq
