// SPDX-License-Identifier: Apache-2.0
// The one place where control requests are checked and carried out; the
// ZeroMQ and HTTP interfaces only translate to and from it.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "control.pb.h"

namespace na64::daq {

class Monitor;
class RunControl;
class RunDatabase;

/// Who sends a request. Anonymous may only read. Shift runs the run (start,
/// stop, pause, resume, reset, comment) and acknowledges alarms; Expert
/// changes the configuration and the trigger thresholds. Neither role
/// includes the other.
enum class Role { Anonymous, Shift, Expert };

[[nodiscard]] const char* to_string(Role role) noexcept;
/// "shift" or "expert"; nullopt for anything else.
[[nodiscard]] std::optional<Role> role_from_string(std::string_view name) noexcept;

/// The role a command needs: Anonymous for reads.
[[nodiscard]] Role required_role(const control::Request& request) noexcept;

/// Thread safety: handle() and subscribe() from any thread.
class ControlService {
 public:
  /// Becomes `control`'s listener, and `monitor`'s when given (and stops
  /// being them when destroyed). Without a monitor, alarm requests are
  /// answered NOT_FOUND.
  ControlService(RunControl& control, RunDatabase& database, Monitor* monitor = nullptr);
  ~ControlService();
  ControlService(const ControlService&) = delete;
  ControlService& operator=(const ControlService&) = delete;

  /// Checks the role (UNAUTHORIZED without one, FORBIDDEN for the other
  /// role), then does the command whole or refuses it. Never throws; every
  /// reply carries the status after the request.
  [[nodiscard]] control::Reply handle(const control::Request& request, Role role);

  /// Called for every state change, every spill that reaches disk and every
  /// alarm raised or acknowledged, from the thread where it happens; a
  /// listener must return quickly and must not call RunControl or Monitor.
  void subscribe(std::function<void(const control::Event&)> listener);

 private:
  void publish(const control::Event& e);

  RunControl& control_;
  RunDatabase& database_;
  Monitor* monitor_;
  std::mutex listeners_m_;
  std::vector<std::function<void(const control::Event&)>> listeners_;
};

}  // namespace na64::daq
