// SPDX-License-Identifier: Apache-2.0
// The data-quality monitor of na64daq serve. Per run it hands the chain a
// DqmTap (histograms filled by the trigger) and an EventSampler (written
// events for the event display); after each spill has reached disk it takes
// the spill's histograms, keeps the last spills and the run total, judges
// the spill against a reference, and raises alarms. It acts only at spill
// boundaries and on requests: nothing of it runs per event.
//
// The reference is an earlier run's (a file this monitor saved, chosen with
// MonitorOptions::reference_file) or, without one, the run's first good
// spills merged: the first spill with events and every source, then each
// spill judged good against the spills taken so far, until
// MonitorOptions::reference_spills are in. A run's own reference is saved as
// run-RRRRRR.dqm-reference next to its data.
//
// Alarms (each raised once per condition, and held until the shift
// acknowledges it; a condition that holds again updates the same alarm):
//   "verdict"            error    a spill judged bad
//   "source N"           error    source N lost or silent in
//                                 MonitorOptions::source_spills spills in a row
//   "rate LINE"          warning  a trigger line's rate per event out of its
//                                 band around the reference's
//   "decode errors"      warning  more events that did not decode than in the
//                                 spill before
//   "disk"               error    free space on the output directory's file
//                                 system below MonitorOptions::disk_limit_bytes
//   "reference"          warning  the reference file cannot be used
// Every raise, repeat and acknowledgement is written to stderr and to the
// run database (table alarms).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "control.pb.h"
#include "na64/daq/config.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/daq/run_db.hpp"
#include "na64/monitoring/histogram.hpp"
#include "na64/monitoring/verdict.hpp"

namespace na64::daq {

struct MonitorOptions {
  /// Spills whose histograms are kept, besides the run total.
  std::size_t history_spills = 20;
  /// Good spills of a run merged into its reference when no file is given.
  std::uint32_t reference_spills = 2;
  /// A reference saved by an earlier run; empty: the run's own first spills.
  std::filesystem::path reference_file;
  /// Free space on the output directory's file system below which the
  /// "disk" alarm is raised.
  std::uint64_t disk_limit_bytes = std::uint64_t{1} << 30;
  /// The trigger fills one complete event in this many (DqmConfig::sample_period).
  std::uint32_t sample_period = 4;
  /// A cell counts as hit above these energies (occupancy, dead and hot cells).
  float ecal_occupancy_gev = 0.2f;
  float hcal_occupancy_gev = 0.5f;
  /// The event display's sampling: at most one written event per period.
  std::chrono::milliseconds event_period{1000};
  monitoring::VerdictConfig verdict;
  /// A trigger line's rate per event is out of band when it differs from
  /// the reference's by more than rate_band (a fraction) and by more than
  /// rate_min_sigmas standard deviations, the reference holding at least
  /// rate_min_reference events of the line.
  double rate_band = 0.25;
  double rate_min_sigmas = 5.0;
  double rate_min_reference = 25;
  /// Spills in a row a source must be lost or silent to raise its alarm.
  std::uint32_t source_spills = 2;
};

/// What the monitor knows of a source: "ok", "lost" (flagged lost in the
/// last spill) or "silent" (asked for events and answered none).
struct SourceState {
  std::uint32_t id = 0;
  bool tracker = false;  ///< else an MSADC board
  std::string state = "ok";
  std::uint32_t spills_in_row = 0;  ///< consecutive spills lost or silent
};

struct MonitorStatus {
  std::uint32_t run = 0;  ///< the run monitored now or last; 0 none
  bool running = false;   ///< between the run's start and its end
  /// Time since the last spill reached disk; nullopt before the first.
  std::optional<std::chrono::steady_clock::duration> since_spill;
  std::filesystem::path output_dir;
  std::optional<std::uint64_t> disk_free_bytes;  ///< nullopt: the file system cannot be asked
  std::uint64_t disk_limit_bytes = 0;
  std::vector<SourceState> sources;
  std::size_t alarms_unacknowledged = 0;
  std::string reference;  ///< where it comes from; "" none yet
  bool reference_complete = false;
  std::vector<std::uint32_t> spills_held;  ///< with histograms, oldest first
};

/// Counts since the daemon started, over every run, for /metrics.
struct MonitorTotals {
  std::uint64_t spills = 0;
  SpillSummary sum;  ///< builder, accepted, written, bytes, decode errors, completion
  std::vector<std::pair<std::uint32_t, std::uint64_t>> lost_spills;  ///< per source id: spills lost or silent
  double last_dead_time = 0;  ///< of the last spill
};

/// The last sampled written event and what decodes it.
struct SampledEvent {
  std::uint64_t serial = 0;
  std::uint32_t run = 0;
  std::vector<std::uint32_t> words;  ///< one whole DATE event
  std::shared_ptr<const DaqConfig> config;
};

/// Which set a histogram is taken from.
struct HistogramChoice {
  enum class From : std::uint8_t { LastSpill, Spill, Run, Reference };
  From from = From::LastSpill;
  std::uint32_t spill = 0;  ///< for From::Spill
};

using AnyHistogram = std::variant<monitoring::Histogram1D, monitoring::Histogram2D>;

/// A histogram, or why not.
struct HistogramLookup {
  std::optional<AnyHistogram> histogram;
  std::string error;         ///< no such name or spill, or nothing yet
  bool nothing_yet = false;  ///< a known name, but no spill monitored or no reference yet
};

struct AckOutcome {
  enum class Result : std::uint8_t { Acknowledged, AlreadyAcknowledged, NotFound, Failed };
  Result result = Result::NotFound;
  AlarmRecord alarm;   ///< for Acknowledged and AlreadyAcknowledged
  std::string message;
};

/// The alarm as the control messages carry it.
[[nodiscard]] control::Alarm to_proto(const AlarmRecord& a);

/// Thread safety: every member from any thread. Run control calls
/// configured(), begin_run(), on_spill() and end_run() in that order from
/// its own threads; readers take copies under an internal lock, held for
/// the length of one call (a spill's judgement, a histogram's copy).
class Monitor {
 public:
  /// Loads the unacknowledged (and the last acknowledged) alarms and the last
  /// run's spills from the database. Throws DatabaseError.
  Monitor(RunDatabase& database, MonitorOptions options);
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // --- run control's side ---

  /// A configuration was loaded: its sources and output directory.
  void configured(const DaqConfig& config);
  /// Run `options.run` is about to start with `config`: makes its DQM tap
  /// and event sampler, sets options.dqm and options.sampler (valid until
  /// the next begin_run()), loads the reference file if one is given, and
  /// checks the disk. Problems become alarms; it does not throw for them.
  void begin_run(const DaqConfig& config, RunOptions& options);
  /// After `summary`'s spill reached disk, before `record` is stored: judges
  /// the spill (record.verdict, record.verdict_reasons) and raises alarms.
  void on_spill(const SpillSummary& summary, SpillRecord& record);
  /// The run ended.
  void end_run(std::uint32_t run);

  // --- readers ---

  [[nodiscard]] MonitorStatus status() const;
  /// The last `last` spills of the current (or last) run, oldest first; 0: all.
  [[nodiscard]] std::vector<SpillRecord> spills(std::size_t last) const;
  [[nodiscard]] HistogramLookup histogram(std::string_view name, HistogramChoice choice) const;
  /// The unacknowledged alarms and the most recently acknowledged ones
  /// (up to 50), oldest first.
  [[nodiscard]] std::vector<AlarmRecord> alarms() const;
  /// Acknowledges an alarm for `by` (a role). Failed: the database refused.
  AckOutcome acknowledge(std::uint64_t id, const std::string& by);
  /// The last sampled event; nullopt before the first of any run.
  [[nodiscard]] std::optional<SampledEvent> sampled_event() const;
  [[nodiscard]] MonitorTotals totals() const;

  /// Called with an Event (alarm) for every raise, repeat and
  /// acknowledgement, in order, from the thread where it happens; must return
  /// quickly and must not call back into this monitor.
  void set_listener(std::function<void(const control::Event&)> listener);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// "run-003661.dqm-reference": a run's own reference, next to its data.
[[nodiscard]] std::string reference_file_name(std::uint32_t run);

}  // namespace na64::daq
