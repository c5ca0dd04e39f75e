// SPDX-License-Identifier: Apache-2.0
// The sources of a two-level run, as the configuration chooses them:
// MSADC boards emulated in-process or read over USB, tracker front-ends read
// over Ethernet (emulated ones started on loopback), or every source
// replayed from a recording; and what each source thread exchanges with the
// completion stage. Internal to na64_daq.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stop_token>
#include <vector>

#include "chain.hpp"
#include "na64/eventbuilder/spsc_ring.hpp"
#include "readout_links.hpp"

namespace na64::daq::chain {

/// An accepted event the completion asks a source for.
struct RequestRef {
  std::uint32_t spill = 0;
  std::uint32_t particle = 0;
};
using RequestRing = eb::SpscRing<RequestRef>;

/// A source's answer: its block in the slot, or why there is none.
struct AnswerDesc {
  std::uint32_t spill = 0;
  std::uint32_t particle = 0;
  fw::MissingReason missing = fw::MissingReason::None;
  std::uint32_t n_words = 0;
};
using AnswerRing = eb::SlotRing<AnswerDesc>;

/// Completion -> source thread (requests) and back (answers).
struct SourceChannels {
  SourceChannels(std::size_t request_slots, std::size_t answer_slots, std::size_t block_words)
      : requests(request_slots), answers(answer_slots, block_words) {}
  RequestRing requests;
  AnswerRing answers;
};

/// One equipment of the run, in slot order: the MSADC sources (the map's
/// order, which is the builder's) then the trackers.
struct SourceInfo {
  std::uint32_t source = 0;
  bool msadc = true;
  std::size_t max_words = 0;          ///< the largest full block
  std::size_t max_summary_words = 0;  ///< MSADC: the largest summary fragment
};

/// Owns the links and ports of a run. Throws RunError when a board or a
/// front-end cannot be opened, naming it.
class Sources {
 public:
  Sources(const DaqConfig& config, const RunOptions& options, eb::SpillClock& clock, std::stop_token abort);
  ~Sources();
  Sources(const Sources&) = delete;
  Sources& operator=(const Sources&) = delete;

  [[nodiscard]] std::span<const SourceInfo> info() const noexcept { return info_; }
  /// Precondition: info()[slot].msadc.
  [[nodiscard]] links::BoardLink& board(std::size_t slot) noexcept { return *boards_[slot]; }
  /// Precondition: !info()[slot].msadc.
  [[nodiscard]] links::TrackerPort& tracker(std::size_t slot) noexcept { return *trackers_[slot - boards_.size()]; }

  /// Starts streaming (the run's threads are about to read).
  void start(std::stop_token abort);
  /// Stops streaming and closes the links.
  void stop() noexcept;
  /// Closes the recordings (fsync, rename); throws RunError if one fails.
  void finish_recordings();

 private:
  struct Emulation;
  std::unique_ptr<Emulation> emulation_;
  std::vector<SourceInfo> info_;
  std::vector<std::unique_ptr<links::BoardLink>> boards_;
  std::vector<std::unique_ptr<links::TrackerPort>> trackers_;
  std::vector<std::function<void()>> close_recordings_;
};

/// The configuration a replay runs with: the recorded run's own (its text
/// goes into the start of run, as it did then), reading from `given`'s
/// readout.replay_dir. Sets `options.start_time_s` to the recorded run's and
/// `options.spills` to the spills recorded (at most the ones asked for).
/// Throws RunError when the recording cannot be read.
[[nodiscard]] DaqConfig replay_config(const DaqConfig& given, RunOptions& options);

}  // namespace na64::daq::chain
