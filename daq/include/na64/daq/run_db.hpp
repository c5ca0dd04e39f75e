// SPDX-License-Identifier: Apache-2.0
// The run database: one SQLite file in WAL mode holding runs, spills,
// comments and the history of trigger-threshold sets.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "na64/daq/error.hpp"
#include "na64/trigger/menu.hpp"

namespace na64::daq {

/// A database that cannot be opened, read or written; the message names the
/// file and what SQLite said.
struct DatabaseError : Error {
  using Error::Error;
};

struct RunRecord {
  std::uint32_t number = 0;
  std::int64_t start_unix_ms = 0;
  std::int64_t stop_unix_ms = 0;  ///< 0 while the run is going on
  std::string comment;            ///< given at start
  std::string config_hash;        ///< SHA-256, 64 hex digits
  std::string config_text;        ///< the configuration exactly as used
  std::string ended;              ///< "" running, "stopped", "spill limit", "error: ...", "interrupted"
  std::vector<std::string> comments;  ///< added during the run, oldest first
};

/// One spill as the database keeps it.
struct SpillRecord {
  std::uint32_t run = 0;
  std::uint32_t spill = 0;
  std::uint32_t threshold_set = 0;  ///< the set active for the whole spill
  std::uint64_t particles = 0;
  std::uint64_t built = 0;          ///< complete events
  std::uint64_t incomplete = 0;
  std::array<std::uint64_t, trigger::kNumLines> accepted{};  ///< per line
  std::uint64_t accepted_events = 0;
  std::uint64_t written = 0;
  std::uint64_t bytes = 0;
  std::uint64_t decode_errors = 0;
  double seconds = 0;     ///< from start to end of burst
  double dead_time = 0;   ///< fraction of the spill the readout was busy, 0-1
  std::uint32_t shadow_set = 0;  ///< 0: no shadow set evaluated
  std::array<std::uint64_t, trigger::kNumLines> shadow_accepted{};  ///< per line, by the shadow set
  std::array<std::uint64_t, trigger::kNumLines> shadow_overlap{};   ///< fired by both sets
  std::string verdict;                       ///< data quality: "good", "warning", "bad"; "" not judged
  std::vector<std::string> verdict_reasons;  ///< one line each, no line breaks
};

/// An alarm of the data-quality monitor, from its raise to its acknowledgement.
struct AlarmRecord {
  std::uint64_t id = 0;          ///< from 1, never reused
  std::uint32_t run = 0;         ///< 0: raised outside a run
  std::string condition;         ///< what raised it and where, e.g. "verdict", "source 621", "disk"
  std::string level;             ///< "warning", "error"
  std::string text;
  std::uint32_t first_spill = 0;
  std::uint32_t last_spill = 0;  ///< the last spill in which the condition held
  std::int64_t raised_unix_ms = 0;
  std::int64_t last_unix_ms = 0;
  std::string acknowledged_by;   ///< the role; "" until acknowledged
  std::int64_t acknowledged_unix_ms = 0;  ///< 0 until acknowledged
};

struct ThresholdSetRecord {
  std::uint32_t id = 0;  ///< from 1, never reused
  std::int64_t created_unix_ms = 0;
  std::string author;    ///< the role that made it: "config", "expert"
  std::string comment;
  trigger::ThresholdSet set;
};

/// When a threshold set became active (or shadow) in a run.
struct ThresholdActivation {
  std::uint32_t run = 0;
  std::uint32_t first_spill = 0;
  std::uint32_t set_id = 0;
  bool shadow = false;
};

/// The schema is versioned (PRAGMA user_version); a file of an older version
/// is upgraded when opened, one of a newer or unknown version is refused.
///
/// Thread safety: every member may be called from any thread; calls are
/// serialised inside. Every write is one transaction, committed with
/// synchronous=FULL before the call returns, so a kill -9 loses nothing
/// that a call has returned from.
class RunDatabase {
 public:
  /// Opens or creates the file (and its schema), sets WAL mode, and marks
  /// runs left without an end by a crashed process as ended "interrupted".
  explicit RunDatabase(const std::filesystem::path& file);
  ~RunDatabase();
  RunDatabase(const RunDatabase&) = delete;
  RunDatabase& operator=(const RunDatabase&) = delete;

  [[nodiscard]] const std::filesystem::path& file() const noexcept;

  /// Allocates the next run number and records the run's start, in one
  /// transaction: the number is above every number the database has ever
  /// given and at least `at_least` (for example the next free number of the
  /// output directory). Never returns a number twice.
  std::uint32_t begin_run(std::uint32_t at_least, std::int64_t start_unix_ms, const std::string& comment,
                          const std::string& config_hash, const std::string& config_text);
  /// Records how the run ended. DatabaseError if the run is unknown or already ended.
  void end_run(std::uint32_t run, std::int64_t stop_unix_ms, const std::string& how);
  void add_comment(std::uint32_t run, std::int64_t unix_ms, const std::string& text);
  void add_spill(const SpillRecord& spill);

  /// Stores a new immutable set and returns its id.
  std::uint32_t add_threshold_set(const trigger::ThresholdSet& set, std::int64_t created_unix_ms,
                                  const std::string& author, const std::string& comment);
  void add_threshold_activation(const ThresholdActivation& a);

  /// Stores a new alarm (its id is ignored) and returns its id.
  std::uint64_t add_alarm(const AlarmRecord& alarm);
  /// The condition of an unacknowledged alarm held again. DatabaseError if
  /// the alarm is unknown.
  void update_alarm(std::uint64_t id, std::uint32_t last_spill, std::int64_t last_unix_ms);
  /// Records who acknowledged an alarm and when. DatabaseError if it is
  /// unknown or already acknowledged.
  void acknowledge_alarm(std::uint64_t id, const std::string& by, std::int64_t unix_ms);
  /// Oldest first: the unacknowledged alarms, or the newest `limit` of all.
  [[nodiscard]] std::vector<AlarmRecord> alarms(bool unacknowledged_only, std::size_t limit) const;

  [[nodiscard]] std::optional<RunRecord> run(std::uint32_t number) const;
  /// Newest first, at most `limit`.
  [[nodiscard]] std::vector<RunRecord> runs(std::size_t limit) const;
  [[nodiscard]] std::vector<SpillRecord> spills(std::uint32_t run) const;
  [[nodiscard]] std::optional<ThresholdSetRecord> threshold_set(std::uint32_t id) const;
  /// Oldest first.
  [[nodiscard]] std::vector<ThresholdSetRecord> threshold_sets() const;
  [[nodiscard]] std::vector<ThresholdActivation> threshold_history(std::uint32_t run) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace na64::daq
