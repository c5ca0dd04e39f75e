// SPDX-License-Identifier: Apache-2.0
// The whole chain of one run on the simulated beam: emulated boards (one
// thread per source) -> event builder -> trigger -> writer, joined by SPSC
// rings that move batches; spill and run markers travel in-band.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "na64/daq/config.hpp"
#include "na64/daq/steering.hpp"
#include "na64/eventbuilder/event_builder.hpp"
#include "na64/eventbuilder/spill_clock.hpp"
#include "na64/firmware/run_record.hpp"
#include "na64/trigger/menu.hpp"

namespace na64::daq {

class DqmTap;
class EventSampler;

/// The two-level readout's completion of accepted events, per spill.
struct CompletionCounters {
  std::uint64_t requested = 0;   ///< accepted events sent for completion
  std::uint64_t completed = 0;   ///< written with every source's data
  std::uint64_t incomplete = 0;  ///< written with at least one source flagged missing
  /// Incomplete events by the reason of their first missing source (slot order).
  std::array<std::uint64_t, firmware::kNumMissingReasons> by_reason{};
  std::uint64_t late_answers = 0;  ///< answers that came after their event was written
  /// Masks over the completion's sources (the MSADC boards in channel-map
  /// order, then the trackers in configuration order): flagged lost_source
  /// in an event of the spill; asked for events of the spill and answered
  /// none (silent), without being lost.
  std::uint32_t lost_sources = 0;
  std::uint32_t silent_sources = 0;

  void add(const CompletionCounters& o) noexcept {
    requested += o.requested;
    completed += o.completed;
    incomplete += o.incomplete;
    for (std::size_t r = 0; r < by_reason.size(); ++r) by_reason[r] += o.by_reason[r];
    late_answers += o.late_answers;
    lost_sources |= o.lost_sources;
    silent_sources |= o.silent_sources;
  }
};

/// Counts of one spill (or a whole run), as the summary file holds them.
struct SpillSummary {
  std::uint32_t spill = 0;  ///< 0 for run totals
  eventbuilder::BuilderSpillCounters builder;
  std::array<std::uint64_t, trigger::kNumLines> accepted{};  ///< per line; an event may fire several
  std::uint64_t accepted_events = 0;
  std::uint64_t decode_errors = 0;  ///< complete events whose data did not decode; not triggered
  std::uint64_t written = 0;        ///< physics events written
  std::uint64_t not_written = 0;    ///< accepted but over 2^20 - 1 in the spill (DATE event number)
  std::uint64_t bytes = 0;          ///< bytes of DATE events written for the spill
  double seconds = 0;
  double dead_time = 0;             ///< busiest source's time blocked on a full buffer / spill readout time
  std::uint32_t threshold_set = 0;  ///< the set in force for the whole spill
  std::uint32_t shadow_set = 0;     ///< 0: none evaluated
  std::array<std::uint64_t, trigger::kNumLines> shadow_accepted{};  ///< per line, by the shadow set
  std::array<std::uint64_t, trigger::kNumLines> shadow_overlap{};   ///< per line, fired by both sets
  CompletionCounters completion;    ///< two-level readout only
};

struct RunSummary {
  std::uint32_t run = 0;
  std::vector<SpillSummary> spills;
  SpillSummary total;
  std::vector<std::string> files;
  std::string map_file;
  std::string summary_file;
  double seconds = 0;
};

struct RunOptions {
  std::filesystem::path output;
  std::uint32_t run = 0;    ///< never 0
  std::uint32_t spills = 3; ///< 1 to 2047; 0: until stopped (at most 2047)
  /// Run control's hold on a run, both optional: the threshold sets the
  /// trigger takes at each spill start (else the configuration's, id 0),
  /// and the spill clock it pauses (else the run makes its own). A clock
  /// given here must be made for the configuration's sources and the run's spills.
  ThresholdBoard* thresholds = nullptr;
  eventbuilder::SpillClock* clock = nullptr;
  /// DATE time of the start of run, Unix seconds; 0: now. Spill events take
  /// the time their spill began (as the readout saw it, or as recorded).
  std::uint32_t start_time_s = 0;
  /// Data-quality histograms: filled by the trigger (one event in the tap's
  /// sample period) and published at each spill end. Optional.
  DqmTap* dqm = nullptr;
  /// Written physics events offered for the event display. Optional.
  EventSampler* sampler = nullptr;
};

/// The spill clock run_simulated() would make for this configuration.
[[nodiscard]] std::unique_ptr<eventbuilder::SpillClock> make_spill_clock(const DaqConfig& config,
                                                                         const RunOptions& options);

/// Runs start of run, `spills` spills and end of run, writing the DATE
/// chunks, the map and the summary into `options.output`. Calls
/// `on_spill` from the calling thread after each spill reaches disk.
/// `stop` ends the run early but cleanly: the spill in progress is read out
/// whole, everything in flight is written, and no new spill starts. Spills
/// start no closer than the configuration's spill cycle. Throws RunError
/// (files, disk) or ConfigError before anything is written.
RunSummary run_simulated(const DaqConfig& config, const RunOptions& options,
                         const std::function<void(const SpillSummary&)>& on_spill, std::stop_token stop = {});

/// The summary as JSON text (see README, "Output files").
[[nodiscard]] std::string summary_json(const RunSummary& summary);

}  // namespace na64::daq
