// SPDX-License-Identifier: Apache-2.0
// The sources of the two-level readout as the chain's source threads drive
// them: an MSADC board's link (in-process emulation, USB, replay) and a
// tracker front-end (Ethernet, replay). Internal to na64_daq.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

namespace na64::daq::links {

/// Takes the buffers a link hands on.
class BufferSink {
 public:
  virtual ~BufferSink() = default;
  /// One buffer of whole board messages and the time it arrived (Unix ns).
  virtual void on_buffer(std::span<const std::uint32_t> words, std::uint64_t time_ns) = 0;
};

/// The host's end of one MSADC board's link.
///
/// Thread safety: one thread (the source's thread) calls everything.
class BoardLink {
 public:
  virtual ~BoardLink() = default;
  /// Hands the buffers that have arrived to `sink`, waiting up to `wait`
  /// for the first. Returns how many it handed on.
  virtual std::size_t poll(std::chrono::microseconds wait, BufferSink& sink) = 0;
  /// Sends one event-requests message; false when the link cannot take it
  /// now (try again later).
  virtual bool send(std::span<const std::uint32_t> message) = 0;
  /// True while the board is gone (unplugged, link down).
  [[nodiscard]] virtual bool lost() const { return false; }
  /// A lost board: try to take it back (called at each new spill while lost).
  virtual void retry() {}
  /// The source's thread was blocked on a full buffer for `busy` during the
  /// spill in progress (dead time); links that pace the board take note.
  virtual void add_busy(std::chrono::steady_clock::duration busy) { (void)busy; }
};

/// A tracker front-end's data for one event, or why there is none.
enum class TrackerOutcome : std::uint8_t { Data, TooLate, NotFound, Unanswered, Lost };

/// Takes what a tracker front-end answers.
class TrackerSink {
 public:
  virtual ~TrackerSink() = default;
  /// `block` is valid during the call.
  virtual void on_answer(std::uint32_t spill, std::uint32_t particle, TrackerOutcome outcome,
                         std::span<const std::uint32_t> block) = 0;
};

/// The host's end of one tracker front-end.
///
/// Thread safety: one thread (the tracker's source thread) calls everything.
class TrackerPort {
 public:
  virtual ~TrackerPort() = default;
  /// The beam gate of `spill` opened (`particles` in it) or closed.
  virtual void gate(std::uint32_t spill, bool open, std::uint32_t particles) = 0;
  /// Queues a request; false when it cannot be taken (then the caller reports it lost).
  virtual bool request(std::uint32_t spill, std::uint32_t particle) = 0;
  /// Hands what has arrived to `sink`, waiting up to `wait` for it.
  virtual void poll(std::chrono::microseconds wait, TrackerSink& sink) = 0;
};

}  // namespace na64::daq::links
