// SPDX-License-Identifier: Apache-2.0
// What run control changes in a running pipeline: pause and resume, and the
// trigger-threshold sets, which the trigger takes only at a spill boundary.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

#include "na64/trigger/menu.hpp"

namespace na64::daq {

/// A threshold set and its immutable version id (0: the configuration's
/// own set in a run without run control).
struct VersionedThresholds {
  std::uint32_t id = 0;
  trigger::ThresholdSet set;
};

/// The sets one spill is triggered with, fixed at its start.
struct SpillThresholds {
  VersionedThresholds active;
  std::optional<VersionedThresholds> shadow;  ///< flag-only candidate
};

/// The ids as run control reports them.
struct ThresholdIds {
  std::uint32_t active = 0;         ///< taken by the last spill begun (or the initial set)
  std::uint32_t pending = 0;        ///< requested, taken at the next spill start; 0 none
  std::uint32_t shadow = 0;         ///< 0 none
  std::uint32_t pending_shadow = 0; ///< requested; 0 none
  bool shadow_change_pending = false;  ///< a shadow change (maybe to none) waits for the next spill
};

/// Threshold sets requested by run control and taken by the trigger stage
/// at each spill start, so that no spill mixes two sets.
///
/// Thread safety: every member from any thread; one lock per call, and the
/// trigger calls take_for_spill() once per spill, never per event.
class ThresholdBoard {
 public:
  explicit ThresholdBoard(VersionedThresholds initial) : current_{initial, std::nullopt} {}

  /// Requests a new active set from the next spill start.
  void request_active(const VersionedThresholds& t) {
    std::lock_guard lock(m_);
    pending_ = t;
  }
  /// Requests a shadow set (or none) from the next spill start.
  void request_shadow(const std::optional<VersionedThresholds>& t) {
    std::lock_guard lock(m_);
    pending_shadow_ = t;
  }
  /// Applies what is pending and returns the sets for the spill beginning now.
  [[nodiscard]] SpillThresholds take_for_spill() {
    std::lock_guard lock(m_);
    if (pending_) current_.active = *std::exchange(pending_, std::nullopt);
    if (pending_shadow_) current_.shadow = *std::exchange(pending_shadow_, std::nullopt);
    return current_;
  }
  [[nodiscard]] ThresholdIds ids() const {
    std::lock_guard lock(m_);
    ThresholdIds ids;
    ids.active = current_.active.id;
    ids.shadow = current_.shadow ? current_.shadow->id : 0;
    if (pending_) ids.pending = pending_->id;
    if (pending_shadow_) {
      ids.shadow_change_pending = true;
      ids.pending_shadow = *pending_shadow_ ? (*pending_shadow_)->id : 0;
    }
    return ids;
  }
  /// The set a spill would take now (pending applied), without taking it.
  [[nodiscard]] SpillThresholds next() const {
    std::lock_guard lock(m_);
    SpillThresholds next = current_;
    if (pending_) next.active = *pending_;
    if (pending_shadow_) next.shadow = *pending_shadow_;
    return next;
  }

 private:
  mutable std::mutex m_;
  SpillThresholds current_;
  std::optional<VersionedThresholds> pending_;
  std::optional<std::optional<VersionedThresholds>> pending_shadow_;
};

}  // namespace na64::daq
