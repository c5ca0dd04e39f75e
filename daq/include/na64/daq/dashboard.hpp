// SPDX-License-Identifier: Apache-2.0
// The dashboard's side of na64daq serve's HTTP server: the read-only JSON
// API, /metrics, the WebSocket messages and the dashboard's files. The
// contract with the pages is written in README, "Monitoring".
//
//   GET /api/status                the control Reply (as before) plus the
//                                  dashboard's fields, flat
//   GET /api/spills[?last=N]       the current (or last) run's spills, oldest first
//   GET /api/dqm/list              the histogram names
//   GET /api/dqm/hist/{name}[?spill=S|run]   JSROOT JSON; default the last spill
//   GET /api/dqm/reference/{name}  JSROOT JSON of the reference
//   GET /api/alarms                open and recently acknowledged alarms
//   GET /api/event                 the last sampled written event, decoded
//   GET /metrics                   Prometheus text format 0.0.4
//   GET /ws                        WebSocket: {"type": "status" | "spill" | "alarm", ...}
//   GET anything else              a file of the web directory (/ is index.html)
//
// Bad requests (an unknown histogram, a malformed query, a spill not held)
// are answered with the HTTP status and {"code": "...", "message": "..."},
// and counted with every reply in na64_http_replies_total{status}.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "na64/daq/http_server.hpp"

namespace na64::daq {

class ControlService;
class Monitor;

struct DashboardOptions {
  /// The dashboard's files; empty or missing: only the API is served.
  std::filesystem::path web_dir;
};

/// Thread safety: the HttpExtensions it hands out are called from the HTTP
/// server's worker threads, several at once; publish_to() from any thread.
class Dashboard {
 public:
  /// Subscribes to `service`'s events (state, spill, alarm), which it turns
  /// into WebSocket messages. `service` and `monitor` must outlive it.
  Dashboard(ControlService& service, Monitor& monitor, DashboardOptions options);
  /// Stops sending to the server given to publish_to().
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  /// What the HTTP server serves for the dashboard.
  [[nodiscard]] HttpExtensions http_extensions();
  /// Where WebSocket messages go from now on (nullptr: nowhere), and whose
  /// reply counts /metrics shows. The server must stay alive until this is
  /// called with nullptr or the dashboard is destroyed.
  void publish_to(HttpServer* server);

  /// The bodies of GET /api/status and GET /metrics, for the server and tests.
  [[nodiscard]] std::string status_json() const;
  [[nodiscard]] std::string metrics_text() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace na64::daq
