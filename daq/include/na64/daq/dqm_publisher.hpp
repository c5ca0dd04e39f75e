// SPDX-License-Identifier: Apache-2.0
// The data-quality stream of na64daq serve for remote DQM consumers: a plain
// ZeroMQ PUB socket (no CURVE) sending daq/proto/dqm.proto messages, two
// frames each: the topic, then the message.
//
//   "spill"  na64.dqm.Spill   every spill that reached disk, with its verdict
//   "event"  na64.dqm.Event   the last sampled written event, when a new one is sampled
//   "alarm"  na64.dqm.Alarm   every alarm raised, raised again or acknowledged
//
// It is separate from the control interface's CURVE publisher on purpose:
// it carries no control and reveals only data-quality figures, so that a
// consumer (a script in the counting room, an offline farm node) needs no
// key from the allow-list, and the control interface need not be on for it.
// Bind it to an address of the experiment's network only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace na64::daq {

class ControlService;
class Monitor;

/// Publishes from a thread of its own, which alone uses the socket.
///
/// Thread safety: the constructor, stop() and the destructor from the owning
/// thread; the accessors from any thread.
class DqmPublisher {
 public:
  /// Binds `endpoint` (tcp://HOST:* binds a free port, see endpoint()) and
  /// starts publishing. Throws ConfigError if it cannot be bound. `service`
  /// and `monitor` must outlive this publisher's stop().
  DqmPublisher(ControlService& service, Monitor& monitor, const std::string& endpoint);
  /// Stops as stop().
  ~DqmPublisher();
  DqmPublisher(const DqmPublisher&) = delete;
  DqmPublisher& operator=(const DqmPublisher&) = delete;

  /// The endpoint as bound.
  [[nodiscard]] std::string endpoint() const;
  [[nodiscard]] std::uint64_t published() const noexcept;
  /// Messages not sent: the queue was full, or the event did not decode.
  [[nodiscard]] std::uint64_t dropped() const noexcept;

  /// Stops publishing and closes the socket, dropping unsent messages. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace na64::daq
