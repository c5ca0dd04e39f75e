// SPDX-License-Identifier: Apache-2.0
// An emulated tracker front-end on TCP: one S-Link source of the trackers
// (all Micromegas planes on APV, all GEM planes on APV, or all straw planes
// on TDCs) served over the front-end link protocol v1
// (firmware-interfaces/README.md, frontend_link.hpp) from EmulatedTrackers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>

#include "na64/drivers/emulated_trackers.hpp"

namespace na64::drivers {

/// Faults a test injects into an emulated front-end. Answers (event data,
/// too late, not found) are counted from the start or from the last
/// set_faults(), over every connection.
struct FrontEndFaults {
  static constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
  /// Answers after the first `silent_after` are not sent (counted dropped):
  /// a front-end that has gone silent and still holds the connection.
  std::uint64_t silent_after = kNever;
  /// Once `close_after` answers have been sent, the connection is closed
  /// (once). The requests read and not answered are counted dropped.
  std::uint64_t close_after = kNever;
  /// Once `garbage_after` answers have been sent, 8 bytes that are no
  /// message header (key 0xBEEF) are written before the next answer (once).
  std::uint64_t garbage_after = kNever;
  /// Each request message is answered this long after it was read.
  std::chrono::milliseconds answer_delay{0};
};

struct TrackerFrontEndParameters {
  std::uint32_t source_id = 0;  ///< the front-end's S-Link source id, < 896
  /// The source served: Micromegas or Gem (APV blocks), or Straw (TDC blocks).
  TrackerKind kind = TrackerKind::Micromegas;
  /// Spills whose events the latency buffer holds, 1-64: the spill of the
  /// gate and those before it. A request for an older one is answered too late.
  std::uint32_t hold_spills = 2;
  /// TCP port on 127.0.0.1; 0: an ephemeral port (port() tells).
  std::uint16_t port = 0;
  /// Answers one output buffer holds, 1-4096; two buffers are allocated at
  /// construction (one written to the socket while the other fills).
  std::size_t answers_per_buffer = 64;
  FrontEndFaults faults;
};

/// Counts since construction; a snapshot.
struct FrontEndCounters {
  std::uint64_t requests = 0;   ///< requests read from well-formed request messages
  std::uint64_t served = 0;     ///< event-data answers sent
  std::uint64_t too_late = 0;   ///< too-late answers sent
  std::uint64_t not_found = 0;  ///< not-found answers sent
  std::uint64_t dropped = 0;    ///< requests read and never answered (faults, or the connection closed first)
  std::uint64_t connections = 0;   ///< connections accepted
  std::uint64_t replaced = 0;      ///< connections closed because a newer one was accepted
  std::uint64_t host_errors = 0;   ///< host messages that did not decode (framing lost: the connection is closed)
  std::uint64_t wrong_source = 0;  ///< host messages addressed to another source id (ignored)
  std::uint64_t gate_errors = 0;   ///< spill gates out of turn (see EmulatedTrackerFrontEnd)
  std::uint64_t spills = 0;        ///< gates opened
  std::uint64_t notices_dropped = 0;  ///< spill begin/end messages not sent (no connection, or no room)

  /// Requests read and not yet ended (0 once the front-end is idle).
  [[nodiscard]] std::uint64_t in_progress() const noexcept {
    return requests - served - too_late - not_found - dropped;
  }
};

/// An emulated front-end of one tracker source: a TCP server on 127.0.0.1
/// with its own I/O thread.
///
/// The latency buffer holds every particle of the last hold_spills spills
/// gated (the emulation is deterministic, so it keeps which events it holds,
/// not their words, and writes a block when it is asked for, byte-identical
/// to EmulatedTrackers::write_apv / write_straw). Each request is answered,
/// in order:
/// - event data, if its spill is held and its particle is one of the
///   spill's, 1 to its particle count (while a gate opened by the host is
///   open, any particle from 1: the count comes with the close);
/// - too late, naming the oldest event held (particle 1 of the oldest held
///   spill), if the spill was gated and has left the buffer;
/// - not found, for particle 0 or one beyond the spill's count, or a spill
///   never gated.
///
/// The gate comes from the host (spill-gate messages) or from begin_spill()
/// / end_spill() called in-process; either way the front-end sends spill
/// begin and spill end to the connected host. A host gate out of turn is
/// counted (gate_errors): an open while a gate is open closes that gate
/// first, with no spill end and its particle count open-ended (the close of
/// a host that lost its connection may never come); a close while closed,
/// or of another spill, is ignored.
///
/// One client at a time: a new connection replaces the current one, which
/// is closed with its answers not yet sent (counted dropped). A host that
/// reconnects after losing the link must get through even if the front-end
/// has not yet noticed that the old connection is dead.
///
/// A host message whose header does not decode (or is longer than 2 +
/// 2 x 65535 words) closes the connection: the framing of the stream is
/// lost. A well-framed message that does not decode is counted and skipped.
///
/// No allocation per request: the output buffers are allocated at
/// construction, blocks are written in place into them.
///
/// Thread safety: all public functions may be called from any thread.
/// `trackers` must outlive the front-end.
class EmulatedTrackerFrontEnd {
 public:
  /// Binds the port and starts the I/O thread. Throws std::invalid_argument
  /// for a parameter out of range, std::system_error if the port cannot be bound.
  EmulatedTrackerFrontEnd(const EmulatedTrackers& trackers, TrackerFrontEndParameters p);
  /// Closes the connection and stops the I/O thread.
  ~EmulatedTrackerFrontEnd();
  EmulatedTrackerFrontEnd(const EmulatedTrackerFrontEnd&) = delete;
  EmulatedTrackerFrontEnd& operator=(const EmulatedTrackerFrontEnd&) = delete;

  /// The TCP port listened on.
  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] std::uint32_t source_id() const noexcept;

  /// Opens the gate of `spill` (0-2047) with its particle count known
  /// (0-0xFFFFFF) and sends spill begin. False, changing nothing, if a gate
  /// is open or a value is out of range.
  [[nodiscard]] bool begin_spill(std::uint32_t spill, std::uint32_t particles);
  /// Closes the gate and sends spill end, with the count of begin_spill()
  /// (0 for a gate the host opened: its count is not known). False if no
  /// gate is open.
  [[nodiscard]] bool end_spill();

  /// Replaces the faults; answers are counted from now.
  void set_faults(const FrontEndFaults& faults);
  [[nodiscard]] FrontEndCounters counters() const;
  /// True while a client is connected.
  [[nodiscard]] bool connected() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace na64::drivers
