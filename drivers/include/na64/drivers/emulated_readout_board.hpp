// SPDX-License-Identifier: Apache-2.0
// An emulated MSADC board speaking the readout protocol v1
// (firmware-interfaces/README.md, msadc_readout.hpp): summaries streamed for
// every particle, full events served on request from a latency buffer.
// Transport-independent: messages go into and come from caller buffers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "na64/drivers/beam.hpp"
#include "na64/drivers/emulated_msadc.hpp"
#include "na64/firmware/channel_map.hpp"
#include "na64/firmware/msadc_readout.hpp"

namespace na64::drivers {

struct ReadoutBoardParameters {
  /// LATENCY_CAPACITY: events the buffer memory holds, 1 to 0xFFFFFF.
  std::uint32_t latency_capacity = 0x1000;
  /// FIRMWARE_VERSION; bits 0-7 must be the protocol version.
  std::uint32_t firmware_version = 0x0001'0001;
  /// Particles in one summary packet at most, 1-65535.
  std::uint32_t particles_per_packet = 64;
  /// Requests the board takes from one message; the rest get bad-request
  /// (request queue full).
  std::uint32_t request_queue_depth = 1024;
};

/// How a register write went.
enum class RegisterWrite : std::uint8_t {
  Done,
  ReadOnly,         ///< a status or counter register: refused, nothing changed
  UnknownAddress,   ///< no register there (or the address is not a multiple of 4)
};
[[nodiscard]] const char* to_string(RegisterWrite r) noexcept;

/// What a call to stream() did.
struct StreamResult {
  std::size_t words = 0;         ///< written to the caller's buffer
  std::uint32_t particles = 0;   ///< particles the board went through (recorded in the buffer or not)
};

/// What a call to handle_requests() did.
struct RequestsResult {
  std::size_t words = 0;     ///< answer words written
  std::uint32_t answers = 0; ///< answer messages written
  /// False when `out` could not hold the answers the message may need
  /// (see answer_words_bound()): nothing was read, answered or counted.
  bool taken = true;
};

/// Particle numbers are the protocol's, counted from 1 in each spill as
/// the beam numbers them; the board's particle p is the beam's particle p
/// (NA64Beam::generate and EmulatedMsadcBoard::read_event with the same
/// number, so the ADC event field is p & 0xFFF). A spill of the gate holds
/// the beam's particles_per_spill particles, 1 to N. The board time stamp is
/// the particle's arrival time in 12.5 ns ticks.
///
/// Emulation choices:
/// - The latency buffer remembers which events it holds, not their words:
///   the emulation is deterministic, so an answer regenerates the block with
///   read_event(), byte-identical to what was recorded.
/// - A particle whose fragment the MSADC emulator loses
///   (EmulatorParameters::fragment_loss) is the buffer overflowing: its
///   summary says "not buffered", BUFFER_OVERFLOWS counts it, a request for
///   it gets too-late.
/// - SAMPLE_COUNT and PORT_ENABLE read back at once and take effect at the
///   next begin_spill(), which then empties the buffer (its events were
///   recorded with the old settings). Writing LATENCY_DEPTH empties it at once.
///   EmulatorParameters::n_samples is ignored: SAMPLE_COUNT (reset 32) rules.
/// - A disabled port's channels are in no summary, and its ADC blocks are
///   removed from the event answers.
/// - SOURCE_ID resets to 0x3FF, so a new board sends nothing (no message,
///   no answer, no counting of requests) until it is written.
/// - SPILL_GATE enable 0: every begin_spill() continues one endless spill 0,
///   particle numbers going on, and no spill message is sent. The polarity
///   bit is stored only.
/// - Peak time: index of the first maximum sample x 4 (sample resolution,
///   in the protocol's quarter-sample unit), saturated at 127.
///   Pedestal: sum of the first min(4, n) samples / min(4, n), rounded down.
///
/// No allocation and no exception after construction, except begin_spill()
/// rebuilding the MSADC emulator after a SAMPLE_COUNT change.
///
/// Thread safety: none; one thread drives a board (as one link would).
class EmulatedReadoutBoard {
 public:
  /// `map` and `beam` must outlive the board. Throws std::invalid_argument
  /// if the source is not in the map, or a parameter is out of range.
  EmulatedReadoutBoard(std::uint32_t source_id, const firmware::ChannelMap& map, const NA64Beam& beam,
                       EmulatorParameters emulator, ReadoutBoardParameters params = {});

  /// The MSADC emulator producing the waveforms (its current sample count).
  [[nodiscard]] const EmulatedMsadcBoard& msadc() const noexcept { return *msadc_; }

  // Registers.
  /// The register's value, its undefined bits 0; nullopt for no register.
  [[nodiscard]] std::optional<std::uint32_t> read_register(std::uint32_t address) const noexcept;
  /// Writes the register's defined bits; read-only and unknown registers refuse.
  [[nodiscard]] RegisterWrite write_register(std::uint32_t address, std::uint32_t value) noexcept;

  // Bounds a caller sizes its buffers with.
  /// Words the largest single message stream() writes needs; stream() makes
  /// progress whenever `out` holds that many.
  [[nodiscard]] std::size_t min_stream_words() const noexcept;
  /// Words the answers to `requests` requests can take at most.
  [[nodiscard]] std::size_t answer_words_bound(std::size_t requests) const noexcept;

  // The spill.
  /// Opens the gate of `spill` (0-2047) and writes the spill-begin message.
  /// Returns its words (0 when the gate is disabled or SOURCE_ID is >= 896);
  /// nullopt, changing nothing, if the gate is already open, the spill is
  /// out of range or `out` holds fewer than 3 words.
  [[nodiscard]] std::optional<std::size_t> begin_spill(std::uint32_t spill, std::span<std::uint32_t> out);
  /// Writes the next messages of the open spill: summary packets of
  /// consecutive particles (modes summary and both), full events (full and
  /// both), as many whole messages as fit in `out`. In mode off (or with
  /// SOURCE_ID >= 896) it goes through up to particles_per_packet particles
  /// and writes nothing. {0, 0} when the gate is closed, all the spill's
  /// particles are done, or `out` is smaller than min_stream_words() needs.
  [[nodiscard]] StreamResult stream(std::span<std::uint32_t> out) noexcept;
  /// Particles of the open spill not yet streamed.
  [[nodiscard]] std::uint32_t particles_left() const noexcept { return gate_open_ ? spill_end_ - next_particle_ : 0; }
  /// Closes the gate and writes the spill-end message with the spill's
  /// counters. Returns its words (0 when the gate is disabled or SOURCE_ID is
  /// >= 896); nullopt, changing nothing, if the gate is not open or `out`
  /// holds fewer than 9 words. Particles not streamed are not part of the spill.
  [[nodiscard]] std::optional<std::size_t> end_spill(std::span<std::uint32_t> out) noexcept;
  [[nodiscard]] bool gate_open() const noexcept { return gate_open_; }
  /// The spill counters as the spill-end message carries them (so far, while open).
  [[nodiscard]] const firmware::msadc_readout::SpillCounters& spill_counters() const noexcept { return spill_; }

  // Requests and status.
  /// Decodes one event-requests message at the start of `words` and writes
  /// one answer per request, in order, into `out`: the event answer if the
  /// buffer holds the event, too-late if it has left it (or was never
  /// stored), not-found if the board never recorded it, bad-request with the
  /// reason otherwise (buffer off, queue full, wrong source). A message that
  /// does not decode gets one bad-request (malformed) carrying its first
  /// request as read, or zeros. Counters as the status registers define.
  [[nodiscard]] RequestsResult handle_requests(std::span<const std::uint32_t> words,
                                               std::span<std::uint32_t> out) noexcept;
  /// Writes the status message (13 words); 0 if `out` is too small or
  /// SOURCE_ID is >= 896.
  [[nodiscard]] std::size_t status(std::span<std::uint32_t> out) const noexcept;
  [[nodiscard]] firmware::msadc_readout::BoardStatus board_status() const noexcept;

 private:
  /// One event the latency buffer holds. Recording order is (ordinal, particle).
  struct Held {
    std::uint64_t key = 0;  ///< spill ordinal << 24 | particle
    std::uint32_t spill = 0;
    std::uint32_t particle = 0;
  };
  enum class Lookup : std::uint8_t { Held, Left, NeverRecorded };

  void rebuild_msadc();
  void empty_buffer() noexcept;
  [[nodiscard]] bool sending() const noexcept;
  [[nodiscard]] std::uint32_t depth() const noexcept;
  [[nodiscard]] firmware::msadc_readout::ReadoutMode mode() const noexcept;
  /// Writes the particle's block into `out` (disabled ports' ADC blocks
  /// removed); returns its words.
  std::size_t read_block(std::uint32_t spill, std::uint32_t particle, std::span<std::uint32_t> out,
                         ParticleTruth* truth) const noexcept;
  /// Summary words of one particle from its block, into summaries_; returns how many.
  std::uint32_t summarise(std::span<const std::uint32_t> block, std::uint32_t particle) noexcept;
  void record(std::uint32_t particle, bool lost) noexcept;
  [[nodiscard]] Lookup lookup(const firmware::msadc_readout::EventRef& ref) const noexcept;
  std::size_t answer(const firmware::msadc_readout::EventRef& ref, std::span<std::uint32_t> out) noexcept;
  std::size_t bad_request(const firmware::msadc_readout::EventRef& ref,
                          firmware::msadc_readout::BadRequestReason reason, std::span<std::uint32_t> out) noexcept;

  std::uint32_t msadc_source_;
  const firmware::ChannelMap* map_;
  const NA64Beam* beam_;
  EmulatorParameters emulator_;
  ReadoutBoardParameters params_;
  std::optional<EmulatedMsadcBoard> msadc_;
  std::uint32_t active_samples_ = 0;  ///< SAMPLE_COUNT msadc_ was built with
  std::uint32_t active_ports_ = 0;    ///< PORT_ENABLE in effect

  // Registers, by index in kRegisterMap order for the R/W ones.
  std::array<std::uint32_t, 7> config_{};
  std::uint32_t particles_total_ = 0;
  std::uint32_t summaries_total_ = 0;
  std::uint32_t requests_received_ = 0;
  std::uint32_t requests_served_ = 0;
  std::uint32_t requests_too_late_ = 0;
  std::uint32_t requests_not_found_ = 0;
  std::uint32_t requests_bad_ = 0;
  std::uint32_t buffer_overflows_ = 0;

  // The spill.
  bool gate_open_ = false;
  std::uint32_t spill_number_ = 0;
  std::uint32_t next_particle_ = 0;
  std::uint32_t spill_end_ = 0;  ///< one past the last particle of this gate
  firmware::msadc_readout::SpillCounters spill_;
  std::uint32_t ordinal_ = 0;  ///< gates opened since power-up; 0: none
  bool last_gated_ = true;     ///< SPILL_GATE enable at the last begin_spill()

  // The latency buffer: a ring of the last depth() stored events, and per
  // spill number the latest gate (ordinal, 0: not seen since the buffer was
  // emptied) and the particles recorded in it.
  std::vector<Held> ring_;
  std::size_t ring_head_ = 0;  ///< oldest
  std::size_t ring_size_ = 0;
  std::array<std::uint32_t, firmware::msadc_readout::kMaxSpill + 1> spill_ordinal_{};
  std::array<std::uint32_t, firmware::msadc_readout::kMaxSpill + 1> spill_recorded_{};

  // Scratch, sized at construction for the largest sample count.
  std::vector<std::uint32_t> block_;
  std::array<std::uint32_t, firmware::msadc_readout::kMaxSummariesPerParticle> summaries_{};
};

}  // namespace na64::drivers
