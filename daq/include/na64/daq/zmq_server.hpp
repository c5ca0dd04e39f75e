// SPDX-License-Identifier: Apache-2.0
// The ZeroMQ control interface of na64daq serve, secured with CURVE.
//
//   control endpoint  ROUTER. A client (REQ, or DEALER sending an empty frame
//                     first) sends one frame, a binary control.Request, and
//                     gets one frame back, a binary control.Reply.
//   publish endpoint  PUB. Two frames per event: the topic, "state",
//                     "spill" or "alarm", then a binary control.Event.
//
// Both sockets are CURVE servers with the server's secret key. A client must
// connect with CURVE, knowing the server's public key, and with a key listed
// in the clients file (see curve_keys.hpp); anything else fails in the
// handshake and never reaches ControlService. The role of the listed key is
// the role of every request on that connection: shift and expert as in
// ControlService, viewer as Role::Anonymous (reads only). Any listed key may
// subscribe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace na64::daq {

class ControlService;

struct ZmqOptions {
  /// ZeroMQ endpoints; tcp://HOST:* binds a free port (see control_endpoint()).
  std::string control_endpoint = "tcp://127.0.0.1:5555";
  std::string publish_endpoint = "tcp://127.0.0.1:5556";
  /// The server's NAME.key file (mode 0600).
  std::filesystem::path server_key_file;
  /// The allow-list: ROLE PUBLIC_Z85 [name] per line.
  std::filesystem::path clients_file;
};

/// Serves ControlService over ZeroMQ from a thread of its own, and
/// authenticates connections (ZAP) from a second one.
///
/// Thread safety: the constructor, stop() and the destructor from the owning
/// thread; the accessors from any thread. Requests are handled one at a time,
/// in the order they arrive; one request waits for others no longer than
/// their ControlService::handle() calls.
class ZmqServer {
 public:
  /// Reads the keys, binds both endpoints and starts serving. Throws
  /// ConfigError for bad key files and endpoints that cannot be bound.
  /// `service` must outlive this server.
  ZmqServer(ControlService& service, ZmqOptions options);
  /// Stops as stop().
  ~ZmqServer();
  ZmqServer(const ZmqServer&) = delete;
  ZmqServer& operator=(const ZmqServer&) = delete;

  /// The endpoints as bound, with the port chosen for tcp://HOST:*.
  [[nodiscard]] std::string control_endpoint() const;
  [[nodiscard]] std::string publish_endpoint() const;
  /// Connections refused by the allow-list (ZAP status 400) so far.
  [[nodiscard]] std::uint64_t denied() const noexcept;
  /// Events not published because the queue was full (the oldest go first).
  [[nodiscard]] std::uint64_t events_dropped() const noexcept;

  /// Stops serving and closes both sockets, dropping unsent messages. A
  /// request being handled is finished first. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace na64::daq
