// SPDX-License-Identifier: Apache-2.0
// The run-control state machine of na64daq serve.
//
//   Idle --configure--> Configured --start--> Running <--pause/resume--> Paused
//   Running/Paused --stop--> Stopping --(spill finished, drained, files closed)--> Configured
//   a failed run --> Error --reset--> Idle;   Configured --reset--> Idle
//   Idle/Configured --configure--> Configured (a new configuration)
//
// Every command is done whole or refused with the state and the reason,
// changing nothing. Transitions are spill-aware: pause and stop take effect
// at the end of the spill in progress, which is read out whole.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "control.pb.h"
#include "na64/trigger/menu.hpp"

namespace na64::daq {

class Monitor;
class RunDatabase;
struct RunRecord;
struct SpillRecord;
struct ThresholdSetRecord;

/// Conversions between the run database's records and the control messages.
[[nodiscard]] control::RunRecord to_proto(const RunRecord& r, bool with_config);
[[nodiscard]] control::SpillRecord to_proto(const SpillRecord& s);
[[nodiscard]] control::ThresholdSet to_proto(const ThresholdSetRecord& t);
[[nodiscard]] control::Thresholds to_proto(const trigger::ThresholdSet& t);
[[nodiscard]] trigger::ThresholdSet from_proto(const control::Thresholds& t);
[[nodiscard]] const char* to_string(control::RunState state) noexcept;

struct RunControlOptions {
  /// Configuration used when configure is given no text: a file, or the
  /// embedded default when empty.
  std::string config_file;
  /// Overrides run.output_dir of every configuration when not empty.
  std::filesystem::path output_override;
  /// Watches every run (data quality, verdicts, alarms); optional. Must
  /// outlive the RunControl.
  Monitor* monitor = nullptr;
};

/// Thread safety: every member from any thread; commands are serialised, so
/// of two clients racing to start exactly one wins.
class RunControl {
 public:
  RunControl(RunDatabase& database, RunControlOptions options);
  /// Stops a run in progress cleanly (as stop) and waits for it.
  ~RunControl();
  RunControl(const RunControl&) = delete;
  RunControl& operator=(const RunControl&) = delete;

  /// Each returns the reply to send: OK, or CONFLICT (wrong state),
  /// BAD_REQUEST (bad configuration, bad thresholds), NOT_FOUND, INTERNAL.
  control::Reply configure(const std::string& config_text);
  control::Reply start(const std::string& comment);
  control::Reply stop();
  control::Reply pause();
  control::Reply resume();
  control::Reply reset();
  control::Reply comment(const std::string& text);
  /// A new immutable set: active (or shadow) from the next spill boundary,
  /// at once when no run is going on.
  control::Reply set_thresholds(const control::Thresholds& thresholds, const std::string& comment, bool shadow,
                                const std::string& author);
  control::Reply use_threshold_set(std::uint32_t id, bool shadow);
  control::Reply clear_shadow();

  [[nodiscard]] control::Status status() const;
  [[nodiscard]] control::ThresholdState thresholds(bool all) const;

  /// Called for every state change and every spill that reaches disk.
  void set_listener(std::function<void(const control::Event&)> listener);

  /// For tests and the daemon: waits until the state is `state`; false on timeout.
  bool wait_for(control::RunState state, std::chrono::milliseconds timeout) const;

 private:
  /// Checks that `command` is valid now, then under the lock runs `act`
  /// (which returns the reply's message) and enters `to`.
  control::Reply transition(std::string_view command, control::RunState to, const std::function<std::string()>& act);
  control::Reply use_locked(std::uint32_t id, const trigger::ThresholdSet& set, bool shadow);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace na64::daq
