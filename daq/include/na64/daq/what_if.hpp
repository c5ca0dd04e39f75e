// SPDX-License-Identifier: Apache-2.0
// The what-if tool: replays recorded DATE files through a candidate
// threshold set and reports what it would have done.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "na64/trigger/menu.hpp"

namespace na64::daq {

/// Counts of the candidate set on recorded events. Only the invisible
/// (missing-energy) line is re-evaluated: the beam and random lines depend
/// on every particle of the spill, not only the recorded ones, and they are
/// what makes the unbiased sample.
struct WhatIfCounts {
  std::uint64_t events = 0;              ///< physics events read
  std::uint64_t unbiased = 0;            ///< taken by the beam (prescaled minimum-bias) line
  std::uint64_t recorded_invisible = 0;  ///< the invisible line fired when recorded
  std::uint64_t candidate_invisible = 0; ///< the candidate's invisible line fires
  std::uint64_t both_invisible = 0;      ///< both
  std::uint64_t unbiased_recorded_invisible = 0;
  std::uint64_t unbiased_candidate_invisible = 0;
  std::uint64_t undecodable = 0;         ///< events whose data did not decode; not counted above
};

struct WhatIfReport {
  std::string config_hash;        ///< of the recorded run, from its start-of-run record
  trigger::ThresholdSet recorded; ///< the configuration's set
  trigger::ThresholdSet candidate;
  std::vector<std::pair<std::uint32_t, WhatIfCounts>> spills;  ///< by spill
  WhatIfCounts total;
  std::vector<std::string> errors;  ///< files or events that could not be read, with where

  /// Candidate acceptance on the unbiased sample: its invisible-line rate
  /// per beam particle; and the recorded set's.
  [[nodiscard]] double candidate_rate() const;
  [[nodiscard]] double recorded_rate() const;
  /// Of the events the recorded invisible line took, the fraction the candidate keeps.
  [[nodiscard]] double efficiency_vs_recorded() const;
};

/// The recorded run's threshold set with the fields named in `overrides`
/// (Protobuf text format of na64.control.Thresholds, e.g. "ecal_max_gev: 40")
/// replaced. ConfigError naming the field when out of range or unknown.
[[nodiscard]] trigger::ThresholdSet thresholds_with(const trigger::ThresholdSet& base, const std::string& overrides);

/// Reads the files of one run (their start-of-run record gives the
/// configuration, hence the channel map) and evaluates `candidate` on every
/// physics event. The candidate is the recorded configuration's set with
/// `overrides` applied (see thresholds_with()). Bad files, events or
/// overrides are reported in errors, not thrown.
[[nodiscard]] WhatIfReport what_if(const std::vector<std::filesystem::path>& files, const std::string& overrides);

/// The report as a table for people.
[[nodiscard]] std::string format_report(const WhatIfReport& r);

}  // namespace na64::daq
