// SPDX-License-Identifier: Apache-2.0
// The host side of the MSADC two-level readout (protocol v1,
// msadc_readout.hpp), transport-independent: walks a board's message stream,
// hands each particle's summaries to the trigger, builds the requests for
// the events it accepts, matches every answer to its request and counts.
// A USB or Ethernet driver moves the words; this class does the bookkeeping.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "na64/firmware/decode_error.hpp"
#include "na64/firmware/msadc_readout.hpp"

namespace na64::drivers {

/// How a request ended.
enum class RequestOutcome : std::uint8_t {
  Completed,   ///< event answer received
  TooLate,     ///< the event had left the board's buffer
  NotFound,    ///< the board never recorded it
  BadRequest,  ///< the board refused the request (reason in the answer)
  Unanswered,  ///< no answer within the timeout
};
[[nodiscard]] const char* to_string(RequestOutcome o) noexcept;

/// What the host does with what it reads. Called on the thread that calls
/// ReadoutHost::consume() or expire().
class ReadoutSink {
 public:
  virtual ~ReadoutSink() = default;
  /// One particle's summaries. Returns true to request its full event.
  virtual bool on_particle(const firmware::msadc_readout::ParticleSummary& p) = 0;
  /// The board opened and closed its spill gate.
  virtual void on_spill_begin(const firmware::msadc_readout::SpillBegin& m) { (void)m; }
  virtual void on_spill_end(const firmware::msadc_readout::SpillEnd& m) { (void)m; }
  /// The full event of a request. `answer.block` points into the consumed buffer.
  virtual void on_event(const firmware::msadc_readout::EventAnswer& answer) { (void)answer; }
  /// A request that ended without its event.
  virtual void on_lost(const firmware::msadc_readout::EventRef& ref, RequestOutcome outcome) {
    (void)ref;
    (void)outcome;
  }
};

/// Counts of one spill, keyed by the spill the particle or request belongs to.
struct HostSpillCounts {
  std::uint32_t spill = 0;
  bool begun = false;               ///< spill-begin seen
  bool ended = false;               ///< spill-end seen
  std::uint64_t particles = 0;      ///< particles seen in summary packets
  std::uint64_t summaries = 0;      ///< summary words seen
  std::uint64_t missing_particles = 0;  ///< gaps in particle numbers between packets
  std::uint64_t requested = 0;      ///< particles accepted and queued for a request
  std::uint64_t completed = 0;
  std::uint64_t too_late = 0;
  std::uint64_t not_found = 0;
  std::uint64_t bad_request = 0;
  std::uint64_t unanswered = 0;     ///< timed out
  std::uint64_t not_requested = 0;  ///< accepted but the request table was full
  std::uint64_t decode_errors = 0;  ///< errors while this spill was the current one
  /// The board's counters from its spill-end message.
  std::optional<firmware::msadc_readout::SpillCounters> board;

  /// Requests queued or sent and not yet ended.
  [[nodiscard]] std::uint64_t in_flight() const noexcept {
    return requested - completed - too_late - not_found - bad_request - unanswered;
  }
};

/// Host-wide counts of what did not fit a request or a spill.
struct HostCounts {
  std::uint64_t messages = 0;            ///< well-framed messages walked
  std::uint64_t decode_errors = 0;       ///< corrupt messages (skipped by their length)
  std::uint64_t framing_errors = 0;      ///< undecodable headers: the rest of that buffer was dropped
  std::uint64_t unexpected_answers = 0;  ///< answers matching no request in flight (late, duplicate, foreign)
  std::uint64_t wrong_source = 0;        ///< messages from another source id
  std::uint64_t full_events = 0;         ///< events pushed without request (not matched)
  std::uint64_t status_messages = 0;
};

struct ReadoutHostParameters {
  std::uint32_t source_id = 0;                ///< the board read, < 896
  std::uint32_t requests_per_message = 64;    ///< 1 to 65535
  std::uint32_t max_in_flight = 4096;         ///< requests pending or sent and not ended; table size
  std::uint64_t timeout_ns = 100'000'000;     ///< a sent request unanswered this long is given up
  std::size_t errors_kept = 16;               ///< first decode errors kept with their place
};

/// One decode error and where: the caller's buffer offset plus the byte offset
/// in it, and the spill that was current.
struct HostDecodeError {
  firmware::DecodeError error;
  std::uint64_t buffer = 0;  ///< index of the consume() call, from 0
  std::uint32_t spill = 0;
  [[nodiscard]] std::string message() const;
};

/// Thread safety: none; one thread per board link.
///
/// No allocation after construction, except message() strings on demand.
class ReadoutHost {
 public:
  /// Throws std::invalid_argument for a parameter out of range.
  explicit ReadoutHost(ReadoutHostParameters p);

  /// Walks the board messages in `words` (whole messages; a message cut
  /// across two buffers is a framing error) and hands them on to `sink`.
  /// A corrupt but well-framed message is counted and skipped by its length;
  /// a header that does not decode ends this buffer. Returns the words walked.
  std::size_t consume(std::span<const std::uint32_t> words, ReadoutSink& sink) noexcept;

  /// Queues a request for (spill, particle), decided later than its
  /// summaries arrived (by a trigger that sees every board). False, counted
  /// not_requested in the spill, when the request table is full.
  [[nodiscard]] bool request(std::uint32_t spill, std::uint32_t particle) noexcept;

  /// Requests accepted and not yet taken.
  [[nodiscard]] std::size_t pending() const noexcept { return static_cast<std::size_t>(next_seq_ - next_pending_seq_); }
  /// Writes one event-requests message of up to requests_per_message pending
  /// requests into `out` and marks them sent at `now_ns`. Returns its words;
  /// 0 if nothing is pending or `out` is too small for one request.
  [[nodiscard]] std::size_t take_requests(std::span<std::uint32_t> out, std::uint64_t now_ns) noexcept;
  /// Gives up the requests sent at or before `now_ns - timeout_ns`: counted
  /// unanswered and reported to `sink`. Returns how many.
  std::size_t expire(std::uint64_t now_ns, ReadoutSink& sink) noexcept;
  /// Requests sent and not ended (not counting pending ones).
  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_count_; }

  /// Counts of a spill; a spill number's counts are reset by its spill-begin.
  [[nodiscard]] const HostSpillCounts& spill(std::uint32_t spill) const noexcept { return spills_[spill & 0x7FFu]; }
  [[nodiscard]] const HostCounts& counts() const noexcept { return counts_; }
  /// The first errors_kept decode and framing errors.
  [[nodiscard]] std::span<const HostDecodeError> errors() const noexcept {
    return std::span<const HostDecodeError>(errors_.data(), errors_count_);
  }
  /// The last board status message seen.
  [[nodiscard]] const std::optional<firmware::msadc_readout::BoardStatus>& board_status() const noexcept {
    return status_;
  }

 private:
  enum class SlotState : std::uint8_t { Free, Pending, Sent };
  struct Slot {
    firmware::msadc_readout::EventRef ref;
    std::uint64_t sent_ns = 0;
    std::uint64_t message = 0;  ///< the request message it went in
    SlotState state = SlotState::Free;
  };

  void on_particle(const firmware::msadc_readout::ParticleSummary& p, ReadoutSink& sink) noexcept;
  /// The slot of a sent request with `ref`'s id and reference, or null.
  [[nodiscard]] Slot* match(const firmware::msadc_readout::EventRef& ref) noexcept;
  void end(Slot& s, RequestOutcome outcome, ReadoutSink& sink) noexcept;
  void error(const firmware::DecodeError& e) noexcept;
  [[nodiscard]] Slot& slot(std::uint64_t seq) noexcept { return slots_[seq % slots_.size()]; }
  /// Request ids 1 to 2^21 - 1, from the sequence number of the request.
  [[nodiscard]] static std::uint32_t id_of(std::uint64_t seq) noexcept {
    return static_cast<std::uint32_t>(seq % firmware::msadc_readout::kMaxRequestId) + 1;
  }

  ReadoutHostParameters p_;
  // Requests are numbered in order by a sequence number; slots
  // [oldest_seq_, next_seq_) hold those not ended, the sent ones first
  // (some of them already ended: Free), then the pending ones from
  // next_pending_seq_. The table never holds more than it has slots, so
  // that a sequence number is found back from its 21-bit request id.
  std::vector<Slot> slots_;
  std::vector<firmware::msadc_readout::EventRef> batch_;
  std::uint64_t oldest_seq_ = 0;
  std::uint64_t next_pending_seq_ = 0;
  std::uint64_t next_seq_ = 0;
  std::size_t in_flight_count_ = 0;
  std::uint64_t messages_sent_ = 0;

  std::array<HostSpillCounts, firmware::msadc_readout::kMaxSpill + 1> spills_{};
  std::uint32_t current_spill_ = 0;
  std::uint32_t expected_particle_ = 0;  ///< next particle of current_spill_, to spot gaps
  HostCounts counts_;
  std::vector<HostDecodeError> errors_;
  std::size_t errors_count_ = 0;
  std::uint64_t buffers_ = 0;
  std::optional<firmware::msadc_readout::BoardStatus> status_;
};

}  // namespace na64::drivers
