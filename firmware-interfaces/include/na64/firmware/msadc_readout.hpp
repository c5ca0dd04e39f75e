// SPDX-License-Identifier: Apache-2.0
// MSADC readout protocol, version 1 (README.md): the two-level readout of an
// MSADC board or its concentrator. For every beam particle the board streams
// one summary word per fired channel; it keeps the full waveforms in an
// on-board latency buffer, from which the host requests events by (spill,
// particle number). The answer to a request is the event's data_format3
// block (msadc.hpp), or an explicit too-late, not-found or bad-request
// answer: every request gets exactly one answer.
//
// Formats and register map only, no I/O. All words 32-bit little-endian.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "na64/firmware/decode_error.hpp"
#include "na64/firmware/msadc.hpp"
#include "na64/firmware/slink.hpp"

namespace na64::firmware::msadc_readout {

/// A bit field of a 32-bit word: `width` bits from bit `shift`.
struct BitField {
  std::uint32_t shift = 0;
  std::uint32_t width = 0;

  [[nodiscard]] constexpr std::uint32_t max() const noexcept {
    return width >= 32 ? 0xFFFF'FFFFu : (std::uint32_t{1} << width) - 1;
  }
  [[nodiscard]] constexpr std::uint32_t mask() const noexcept { return max() << shift; }
  [[nodiscard]] constexpr std::uint32_t get(std::uint32_t word) const noexcept { return (word >> shift) & max(); }
  /// `value` placed in the field; bits above the width are dropped.
  [[nodiscard]] constexpr std::uint32_t put(std::uint32_t value) const noexcept { return (value & max()) << shift; }
  [[nodiscard]] constexpr bool fits(std::uint32_t value) const noexcept { return value <= max(); }
};

inline constexpr std::uint32_t kProtocolVersion = 1;
/// Message key, word 0 bits 0-15: the bytes "RM" on the wire.
inline constexpr std::uint32_t kMessageKey = 0x4D52;
inline constexpr std::size_t kMessageHeaderWords = 2;
/// Length field: 22 bits, in words, the 2 header words included.
inline constexpr std::uint32_t kMaxMessageWords = (1u << 22) - 1;
/// Particle number in spill: 24 bits, 1.67 x the design's 1e7 particles per spill.
inline constexpr std::uint32_t kMaxParticle = (1u << 24) - 1;
inline constexpr std::uint32_t kMaxSpill = (1u << 11) - 1;
/// Request id: 21 bits, chosen by the host, echoed in the answer.
inline constexpr std::uint32_t kMaxRequestId = (1u << 21) - 1;
/// Every channel of a source: 8 ports x 4 ADCs x 16 channels.
inline constexpr std::uint32_t kMaxSummariesPerParticle = kPortsPerSource * kChipChannelsPerPort;
inline constexpr std::uint32_t kMaxParticlesPerPacket = 0xFFFF;
/// Summary value field (amplitude or integral, ADC counts), saturated.
inline constexpr std::uint32_t kMaxSummaryValue = 0xFFFF;
/// Summary peak time: quarter samples from the first sample, saturated at 127 (31.75 samples).
inline constexpr std::uint32_t kMaxSummaryTime = 127;
inline constexpr std::uint32_t kTimeUnitsPerSample = 4;
/// Board time stamp unit: one 80 MHz sampling clock period.
inline constexpr std::uint32_t kTickPs = 12'500;

enum class MessageType : std::uint8_t {
  // Board to host.
  SummaryPacket = 0x01,
  SpillBegin = 0x02,
  SpillEnd = 0x03,
  EventAnswer = 0x04,
  FullEvent = 0x05,  ///< pushed without request in readout mode full or both
  TooLate = 0x06,
  NotFound = 0x07,
  BadRequest = 0x08,
  Status = 0x09,
  // Host to board.
  EventRequests = 0x81,
};

[[nodiscard]] const char* to_string(MessageType type) noexcept;

[[nodiscard]] constexpr bool is_known(std::uint32_t type) noexcept {
  return (type >= 0x01 && type <= 0x09) || type == 0x81;
}

/// Length in words of a message of fixed length; 0 for the variable ones
/// (summary packet, event answer, full event, event requests).
[[nodiscard]] constexpr std::size_t fixed_length_words(MessageType type) noexcept {
  switch (type) {
    case MessageType::SpillBegin: return 3;
    case MessageType::SpillEnd: return 9;
    case MessageType::TooLate: return 6;
    case MessageType::NotFound: return 4;
    case MessageType::BadRequest: return 5;
    case MessageType::Status: return 13;
    default: return 0;
  }
}

/// Bit fields of every word, named after the word they live in.
namespace field {
// Message header.
inline constexpr BitField kKey{0, 16};
inline constexpr BitField kVersion{16, 8};
inline constexpr BitField kType{24, 8};
inline constexpr BitField kLength{0, 22};
inline constexpr BitField kSourceId{22, 10};
// Spill word (spill begin, spill end, summary packet word 2, event reference word 1).
inline constexpr BitField kSpill{0, 11};
inline constexpr BitField kParticleCount{16, 16};  ///< summary packet word 2; bits 11-15 reserved
inline constexpr BitField kRequestId{11, 21};      ///< event reference word 1
// Particle word (particle header word 0, event reference word 0); bits 24-31 reserved.
inline constexpr BitField kParticle{0, 24};
// Particle header word 2; bits 10-30 reserved.
inline constexpr BitField kSummaryCount{0, 10};
inline constexpr BitField kNotBuffered{31, 1};
// Summary word.
inline constexpr BitField kValue{0, 16};
inline constexpr BitField kTime{16, 7};
inline constexpr BitField kChannel{23, 4};
inline constexpr BitField kAdcId{27, 2};
inline constexpr BitField kPort{29, 3};
/// Port, ADC id and channel together: the order key of summaries.
inline constexpr BitField kChannelKey{23, 9};
// Bad-request answer word 4; bits 8-31 reserved.
inline constexpr BitField kReason{0, 8};
}  // namespace field

// Register map. 32-bit registers at byte addresses; R/W configuration from
// 0x00, read-only status and counters from 0x40 (the status message carries
// 0x40-0x68 in address order). Bits outside a register's defined bits read 0
// and are ignored on write.

enum class Access : std::uint8_t { ReadWrite, ReadOnly };

struct Register {
  std::uint32_t address = 0;
  const char* name = "";
  Access access = Access::ReadWrite;
  std::uint32_t reset = 0;
  std::uint32_t defined_bits = 0;
};

enum class ReadoutMode : std::uint32_t {
  Off = 0,      ///< no summaries, no pushed events; requests still served from the buffer
  Summary = 1,  ///< summaries streamed, full events on request (the two-level readout)
  Full = 2,     ///< every particle's event pushed in full, no summaries (low rate, calibration)
  Both = 3,     ///< summaries and every event in full (commissioning)
};
enum class SummaryValue : std::uint32_t {
  Amplitude = 0,  ///< maximum sample - pedestal (mean of the first 4 samples)
  Integral = 1,   ///< sum over the samples of (sample - pedestal), saturated at 0xFFFF
};

namespace reg {
// Configuration, R/W.
inline constexpr Register kReadoutMode{0x00, "READOUT_MODE", Access::ReadWrite, 0x0000'0001, 0x0000'0013};
inline constexpr BitField kMode{0, 2};          ///< ReadoutMode
inline constexpr BitField kSummaryValue{4, 1};  ///< SummaryValue
inline constexpr Register kZsThreshold{0x04, "ZS_THRESHOLD", Access::ReadWrite, 0x0000'0010, 0x0000'0FFF};
inline constexpr BitField kThreshold{0, 12};  ///< ADC counts of amplitude; a channel below is omitted
inline constexpr Register kLatencyDepth{0x08, "LATENCY_DEPTH", Access::ReadWrite, 0x0000'1000, 0x00FF'FFFF};
inline constexpr BitField kDepthEvents{0, 24};  ///< 0: buffer off; above LATENCY_CAPACITY reads back as it
inline constexpr Register kSampleCount{0x0C, "SAMPLE_COUNT", Access::ReadWrite, 0x0000'0020, 0x0000'01FF};
inline constexpr BitField kSamples{0, 9};  ///< 1-511; 0 reads back as 1
inline constexpr Register kSourceId{0x10, "SOURCE_ID", Access::ReadWrite, 0x0000'03FF, 0x0000'03FF};
inline constexpr BitField kSource{0, 10};  ///< < 896; the board sends nothing while it is >= 896
inline constexpr Register kPortEnable{0x14, "PORT_ENABLE", Access::ReadWrite, 0x0000'00FF, 0x0000'00FF};
inline constexpr BitField kPorts{0, 8};  ///< bit p: HotLink port p is read
inline constexpr Register kSpillGate{0x18, "SPILL_GATE", Access::ReadWrite, 0x0000'0001, 0x0000'0003};
inline constexpr BitField kGateEnable{0, 1};    ///< 0: one endless spill 0, no spill messages
inline constexpr BitField kGateActiveLow{1, 1};  ///< 0: gate active high
// Status and counters, read-only. Counters count since power-up, wrap at 2^32.
inline constexpr Register kFirmwareVersion{0x40, "FIRMWARE_VERSION", Access::ReadOnly, 0x0000'0001,
                                           0xFFFF'FFFF};
inline constexpr BitField kFwProtocol{0, 8};  ///< kProtocolVersion
inline constexpr BitField kFwMinor{8, 8};
inline constexpr BitField kFwMajor{16, 16};
inline constexpr Register kStatus{0x44, "STATUS", Access::ReadOnly, 0x0000'0000, 0x07FF'0007};
inline constexpr BitField kGateOpen{0, 1};
inline constexpr BitField kBufferFull{1, 1};
inline constexpr BitField kRequestQueueFull{2, 1};
inline constexpr BitField kCurrentSpill{16, 11};
inline constexpr Register kParticles{0x48, "PARTICLES", Access::ReadOnly, 0, 0xFFFF'FFFF};
inline constexpr Register kSummariesSent{0x4C, "SUMMARIES_SENT", Access::ReadOnly, 0, 0xFFFF'FFFF};
inline constexpr Register kRequestsReceived{0x50, "REQUESTS_RECEIVED", Access::ReadOnly, 0, 0xFFFF'FFFF};
inline constexpr Register kRequestsServed{0x54, "REQUESTS_SERVED", Access::ReadOnly, 0, 0xFFFF'FFFF};
inline constexpr Register kRequestsTooLate{0x58, "REQUESTS_TOO_LATE", Access::ReadOnly, 0, 0xFFFF'FFFF};
inline constexpr Register kRequestsNotFound{0x5C, "REQUESTS_NOT_FOUND", Access::ReadOnly, 0, 0xFFFF'FFFF};
inline constexpr Register kRequestsBad{0x60, "REQUESTS_BAD", Access::ReadOnly, 0, 0xFFFF'FFFF};
inline constexpr Register kBufferOverflows{0x64, "BUFFER_OVERFLOWS", Access::ReadOnly, 0, 0xFFFF'FFFF};
/// Events the latency buffer can hold; fixed by the board's memory (reset value per board).
inline constexpr Register kLatencyCapacity{0x68, "LATENCY_CAPACITY", Access::ReadOnly, 0, 0x00FF'FFFF};
}  // namespace reg

/// Every register, in address order.
inline constexpr std::array<Register, 18> kRegisterMap{
    reg::kReadoutMode,      reg::kZsThreshold,      reg::kLatencyDepth,    reg::kSampleCount,
    reg::kSourceId,         reg::kPortEnable,       reg::kSpillGate,       reg::kFirmwareVersion,
    reg::kStatus,           reg::kParticles,        reg::kSummariesSent,   reg::kRequestsReceived,
    reg::kRequestsServed,   reg::kRequestsTooLate,  reg::kRequestsNotFound, reg::kRequestsBad,
    reg::kBufferOverflows,  reg::kLatencyCapacity};

/// First and count of the status registers the status message carries.
inline constexpr std::uint32_t kStatusFirstAddress = reg::kFirmwareVersion.address;
inline constexpr std::size_t kStatusRegisterCount = 11;

[[nodiscard]] constexpr bool register_map_is_consistent() noexcept {
  for (std::size_t i = 0; i < kRegisterMap.size(); ++i) {
    const Register& r = kRegisterMap[i];
    if (r.address % 4 != 0 || (r.reset & ~r.defined_bits) != 0) return false;
    if (i > 0 && r.address <= kRegisterMap[i - 1].address) return false;
  }
  return true;
}
static_assert(register_map_is_consistent());
static_assert(reg::kRequestsBad.address == kStatusFirstAddress + 4 * 8 &&
              reg::kLatencyCapacity.address == kStatusFirstAddress + 4 * (kStatusRegisterCount - 1));

[[nodiscard]] constexpr std::uint32_t readout_mode_register(ReadoutMode mode, SummaryValue value) noexcept {
  return reg::kMode.put(static_cast<std::uint32_t>(mode)) |
         reg::kSummaryValue.put(static_cast<std::uint32_t>(value));
}

struct MessageHeader {
  MessageType type = MessageType::SummaryPacket;
  std::uint32_t length_words = kMessageHeaderWords;  ///< 22 bits, header included
  std::uint32_t source_id = 0;                       ///< < 896; for host messages, the board addressed
};

/// Writes the 2 header words; fields are masked to their widths.
void encode(const MessageHeader& h, std::span<std::uint32_t, kMessageHeaderWords> out) noexcept;

/// Reads and checks a message header at the start of `words`, which may hold
/// more messages after it. Checks: 2 words present, key 0x4D52, version 1,
/// known type, length >= 2 and within `words`, source id < 896.
/// `offset_bytes` is where `words` begins in the caller's buffer.
[[nodiscard]] Decoded<MessageHeader> decode_message_header(std::span<const std::uint32_t> words,
                                                           std::size_t offset_bytes) noexcept;

/// The particle and spill of an event, and the host's request id (0 where
/// there was no request). Two words:
///   word 0: bits 0-23 particle number in spill, bits 24-31 reserved (0);
///   word 1: bits 0-10 spill, bits 11-31 request id.
struct EventRef {
  std::uint32_t spill = 0;
  std::uint32_t particle = 0;
  std::uint32_t request_id = 0;
  bool operator==(const EventRef&) const = default;
};
inline constexpr std::size_t kEventRefWords = 2;

/// One channel of one particle: one summary word.
struct ChannelSummary {
  std::uint32_t port = 0;
  std::uint32_t adc_id = 0;
  std::uint32_t channel = 0;  ///< 0-15 within the ADC
  std::uint32_t value = 0;    ///< amplitude or integral (READOUT_MODE), ADC counts, saturated at 0xFFFF
  std::uint32_t time = 0;     ///< peak time, quarter samples from the first sample, saturated at 127
  bool operator==(const ChannelSummary&) const = default;

  /// (port, ADC id, channel) as one number, the order of summaries in a particle.
  [[nodiscard]] constexpr std::uint32_t key() const noexcept {
    return (port * kAdcsPerPort + adc_id) * kChannelsPerAdc + channel;
  }
  [[nodiscard]] constexpr double time_samples() const noexcept {
    return static_cast<double>(time) / kTimeUnitsPerSample;
  }
};

/// True when every field fits its bits.
[[nodiscard]] constexpr bool fits(const ChannelSummary& s) noexcept {
  return field::kPort.fits(s.port) && field::kAdcId.fits(s.adc_id) && field::kChannel.fits(s.channel) &&
         field::kValue.fits(s.value) && field::kTime.fits(s.time);
}
/// Precondition: fits(s).
[[nodiscard]] constexpr std::uint32_t summary_word(const ChannelSummary& s) noexcept {
  return field::kValue.put(s.value) | field::kTime.put(s.time) | field::kChannel.put(s.channel) |
         field::kAdcId.put(s.adc_id) | field::kPort.put(s.port);
}
[[nodiscard]] constexpr ChannelSummary channel_summary(std::uint32_t w) noexcept {
  return {field::kPort.get(w), field::kAdcId.get(w), field::kChannel.get(w), field::kValue.get(w),
          field::kTime.get(w)};
}

/// One particle of a summary packet, pointing into the packet (no copy).
struct ParticleSummary {
  std::uint32_t source_id = 0;
  std::uint32_t spill = 0;
  std::uint32_t particle = 0;
  std::uint32_t time_ticks = 0;  ///< board clock (12.5 ns) since the spill gate opened
  bool not_buffered = false;     ///< the latency buffer was full: a request for it is answered too-late
  std::span<const std::uint32_t> summaries;  ///< summary words, in increasing key order

  [[nodiscard]] ChannelSummary summary(std::size_t k) const noexcept { return channel_summary(summaries[k]); }
};

inline constexpr std::size_t kSummaryPacketHeadWords = kMessageHeaderWords + 1;
inline constexpr std::size_t kParticleHeaderWords = 3;

/// What a summary packet's first three words say.
struct SummaryPacketHead {
  std::uint32_t length_words = 0;
  std::uint32_t source_id = 0;
  std::uint32_t spill = 0;
  std::uint32_t particle_count = 0;
};

/// Builds a summary packet in caller-owned memory. No allocation.
///
/// Usage: begin_particle() then add_summary() per fired channel in increasing
/// key order, repeat for consecutive particles, then finish(). A call that
/// breaks a rule of the format (field range, particle not previous + 1,
/// summary order, more than 512 summaries, more than 65535 particles, `out`
/// or the 22-bit length overflowing) returns false and the writer stays
/// failed; finish() then returns 0.
class SummaryPacketWriter {
 public:
  SummaryPacketWriter(std::span<std::uint32_t> out, std::uint32_t source_id, std::uint32_t spill) noexcept;

  [[nodiscard]] bool begin_particle(std::uint32_t particle, std::uint32_t time_ticks, bool not_buffered) noexcept;
  [[nodiscard]] bool add_summary(const ChannelSummary& s) noexcept;
  /// Returns the packet's words, 0 if any call failed or no particle was begun.
  [[nodiscard]] std::size_t finish() noexcept;

 private:
  void close_particle() noexcept;

  std::span<std::uint32_t> out_;
  std::uint32_t source_id_;
  std::uint32_t spill_;
  std::size_t pos_ = kSummaryPacketHeadWords;
  std::size_t particle_pos_ = 0;  ///< header of the open particle; 0: none
  std::uint32_t particles_ = 0;
  std::uint32_t last_particle_ = 0;
  std::uint32_t summaries_ = 0;
  std::uint32_t last_key_ = 0;
  bool failed_ = false;
};

namespace detail {
[[nodiscard]] Decoded<SummaryPacketHead> decode_summary_packet_head(std::span<const std::uint32_t> words,
                                                                    std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<EventRef> decode_event_ref(std::span<const std::uint32_t, kEventRefWords> words,
                                                 std::size_t offset_bytes) noexcept;
}  // namespace detail

/// Validates a summary packet at the start of `words` and calls
/// `on_particle(const ParticleSummary&)` for each particle, in order, each
/// only after it has been checked whole. Rules: header as
/// decode_message_header, type summary packet, spill word bits 11-15 zero,
/// at least one particle, particle header reserved bits zero, particle
/// numbers consecutive, at most 512 summaries a particle, summaries in
/// strictly increasing (port, ADC, channel) order, the particles filling the
/// length exactly. Stops at the first error and returns it with its byte
/// offset; particles visited before it have been delivered.
template <class OnParticle>
[[nodiscard]] Decoded<SummaryPacketHead> decode_summary_packet(std::span<const std::uint32_t> words,
                                                               std::size_t offset_bytes,
                                                               OnParticle&& on_particle) noexcept {
  auto fail = [&](DecodeErrc code, std::size_t word, std::uint64_t found, std::uint64_t expected,
                  const char* what, const char* rule = nullptr) {
    return DecodeError{code, offset_bytes + word * 4, found, expected, what, rule};
  };
  auto head = detail::decode_summary_packet_head(words, offset_bytes);
  if (!head) return head.error();
  const auto msg = words.first(head->length_words);
  ParticleSummary p;
  p.source_id = head->source_id;
  p.spill = head->spill;
  std::size_t pos = kSummaryPacketHeadWords;
  for (std::uint32_t i = 0; i < head->particle_count; ++i) {
    if (msg.size() - pos < kParticleHeaderWords) {
      return fail(DecodeErrc::Truncated, pos, msg.size() - pos, kParticleHeaderWords, "particle header words",
                  ">= 3 words left in the summary packet");
    }
    const std::uint32_t w0 = msg[pos];
    const std::uint32_t w2 = msg[pos + 2];
    if ((w0 & ~field::kParticle.mask()) != 0) {
      return fail(DecodeErrc::ReadoutReservedBits, pos, w0 & ~field::kParticle.mask(), 0,
                  "particle header word 0 bits 24-31");
    }
    const std::uint32_t particle = field::kParticle.get(w0);
    if (i > 0 && std::uint64_t{particle} != std::uint64_t{p.particle} + 1) {
      return fail(DecodeErrc::ReadoutParticleGap, pos, particle, std::uint64_t{p.particle} + 1,
                  "particle number");
    }
    const std::uint32_t reserved2 = w2 & ~(field::kSummaryCount.mask() | field::kNotBuffered.mask());
    if (reserved2 != 0) {
      return fail(DecodeErrc::ReadoutReservedBits, pos + 2, reserved2, 0, "particle header word 2 bits 10-30");
    }
    const std::uint32_t n = field::kSummaryCount.get(w2);
    if (n > kMaxSummariesPerParticle) {
      return fail(DecodeErrc::ReadoutBadSummaryCount, pos + 2, n, kMaxSummariesPerParticle,
                  "summaries of a particle", "<= 512");
    }
    if (n > msg.size() - pos - kParticleHeaderWords) {
      return fail(DecodeErrc::Truncated, pos + 2, n, msg.size() - pos - kParticleHeaderWords,
                  "summaries of a particle", "<= the words left in the summary packet");
    }
    const std::uint32_t* s = msg.data() + pos + kParticleHeaderWords;
    for (std::uint32_t k = 1; k < n; ++k) {
      if (field::kChannelKey.get(s[k]) <= field::kChannelKey.get(s[k - 1])) {
        return fail(DecodeErrc::ReadoutSummaryOrder, pos + kParticleHeaderWords + k, field::kChannelKey.get(s[k]),
                    field::kChannelKey.get(s[k - 1]), "summary (port, ADC, channel) key",
                    "> the previous summary's key");
      }
    }
    p.particle = particle;
    p.time_ticks = msg[pos + 1];
    p.not_buffered = field::kNotBuffered.get(w2) != 0;
    p.summaries = std::span<const std::uint32_t>(s, n);
    on_particle(static_cast<const ParticleSummary&>(p));
    pos += kParticleHeaderWords + n;
  }
  if (pos != msg.size()) {
    return fail(DecodeErrc::SizeMismatch, 1, msg.size(), pos, "summary packet length in words",
                "filled exactly by its particles");
  }
  return *head;
}

/// Host to board: requests for events, one or more in one message. Layout:
/// header, then per request the two event-reference words.
/// Returns the words written, 0 if `requests` is empty or too long, a field
/// is out of range, or `out` is too small.
[[nodiscard]] std::size_t encode_event_requests(std::uint32_t source_id, std::span<const EventRef> requests,
                                                std::span<std::uint32_t> out) noexcept;

[[nodiscard]] constexpr std::size_t event_requests_words(std::size_t requests) noexcept {
  return kMessageHeaderWords + kEventRefWords * requests;
}

/// Validates an event-request message and then calls
/// `on_request(const EventRef&)` for each request. All or nothing: nothing
/// is visited unless the whole message is valid, so a board answers either
/// each request or, for a broken message, one bad-request answer
/// (BadRequestReason::MalformedMessage). Rules: header as
/// decode_message_header, type event requests, at least one request, the
/// requests filling the length exactly, reserved bits zero.
template <class OnRequest>
[[nodiscard]] Decoded<MessageHeader> decode_event_requests(std::span<const std::uint32_t> words,
                                                           std::size_t offset_bytes, OnRequest&& on_request) noexcept {
  auto h = decode_message_header(words, offset_bytes);
  if (!h) return h.error();
  if (h->type != MessageType::EventRequests) {
    return DecodeError{DecodeErrc::ReadoutBadType, offset_bytes, static_cast<std::uint32_t>(h->type),
                       static_cast<std::uint32_t>(MessageType::EventRequests), "message type"};
  }
  const std::size_t body = h->length_words - kMessageHeaderWords;
  if (body == 0) {
    return DecodeError{DecodeErrc::ReadoutEmptyBatch, offset_bytes + 4, 0, 0, "requests in the message", ">= 1"};
  }
  if (body % kEventRefWords != 0) {
    return DecodeError{DecodeErrc::SizeMismatch, offset_bytes + 4, h->length_words, 0, "event requests length",
                       "2 + 2 x requests"};
  }
  for (std::size_t pos = kMessageHeaderWords; pos < h->length_words; pos += kEventRefWords) {
    auto r = detail::decode_event_ref(words.subspan(pos).first<kEventRefWords>(), offset_bytes + pos * 4);
    if (!r) return r.error();
  }
  for (std::size_t pos = kMessageHeaderWords; pos < h->length_words; pos += kEventRefWords) {
    const EventRef r{field::kSpill.get(words[pos + 1]), field::kParticle.get(words[pos]),
                     field::kRequestId.get(words[pos + 1])};
    on_request(r);
  }
  return *h;
}

/// The answer to a request that the latency buffer still held: the event's
/// data_format3 block exactly as msadc.hpp writes it, its ADC headers' event
/// field being `ref.particle & 0xFFF`. Layout: header, event reference, block.
struct EventAnswer {
  std::uint32_t source_id = 0;
  EventRef ref;
  std::span<const std::uint32_t> block;
  std::size_t block_offset_bytes = 0;  ///< decoder: where `block` starts in the caller's buffer
};
inline constexpr std::size_t kEventAnswerHeadWords = kMessageHeaderWords + kEventRefWords;

/// An event pushed without request (READOUT_MODE full or both). Same layout
/// as an event answer, with the request id bits reserved (0).
struct FullEvent {
  std::uint32_t source_id = 0;
  std::uint32_t spill = 0;
  std::uint32_t particle = 0;
  std::span<const std::uint32_t> block;
  std::size_t block_offset_bytes = 0;
};

/// The event has left the latency buffer (overwritten by newer events, or
/// never stored because the buffer was full). Carries the oldest event the
/// buffer held when answering, so the host can see how far behind it is.
struct TooLate {
  std::uint32_t source_id = 0;
  EventRef ref;
  std::uint32_t oldest_spill = 0;
  std::uint32_t oldest_particle = 0;
};

/// The board never recorded the event: its particle number is beyond the
/// particles the board has seen in that spill, or the spill is not one the
/// board has seen since its buffer was last emptied.
struct NotFound {
  std::uint32_t source_id = 0;
  EventRef ref;
};

enum class BadRequestReason : std::uint8_t {
  MalformedMessage = 1,  ///< the request message did not decode; ref = its first request as read, or 0
  LatencyBufferOff = 2,  ///< LATENCY_DEPTH is 0
  QueueFull = 3,         ///< the board's request queue was full
  WrongSource = 4,       ///< the message named another source id
};
[[nodiscard]] const char* to_string(BadRequestReason reason) noexcept;

struct BadRequest {
  std::uint32_t source_id = 0;
  EventRef ref;
  BadRequestReason reason = BadRequestReason::MalformedMessage;
};

struct SpillBegin {
  std::uint32_t source_id = 0;
  std::uint32_t spill = 0;
};

/// The board's counters for one spill, taken when its gate closed.
struct SpillCounters {
  std::uint32_t particles = 0;         ///< particles seen during the gate
  std::uint32_t summaries_sent = 0;    ///< summary words sent
  std::uint32_t requests_served = 0;   ///< event answers sent for this spill until the gate closed
  std::uint32_t requests_too_late = 0; ///< too-late answers for this spill until the gate closed
  std::uint32_t buffer_overflows = 0;  ///< particles not buffered because the buffer was full
  std::uint32_t gate_ticks = 0;        ///< gate length, 12.5 ns ticks
  bool operator==(const SpillCounters&) const = default;
};

struct SpillEnd {
  std::uint32_t source_id = 0;
  std::uint32_t spill = 0;
  SpillCounters counters;
};

/// The status registers 0x40-0x68 in address order.
struct BoardStatus {
  std::uint32_t source_id = 0;
  std::uint32_t firmware_version = kProtocolVersion;
  std::uint32_t status = 0;
  std::uint32_t particles = 0;
  std::uint32_t summaries_sent = 0;
  std::uint32_t requests_received = 0;
  std::uint32_t requests_served = 0;
  std::uint32_t requests_too_late = 0;
  std::uint32_t requests_not_found = 0;
  std::uint32_t requests_bad = 0;
  std::uint32_t buffer_overflows = 0;
  std::uint32_t latency_capacity = 0;
};

/// Encoders: write one message into `out` and return its words, or 0 if
/// `out` is too small or a field is out of range (source id >= 896, spill
/// > 2047, particle > 0xFFFFFF, request id > 2^21 - 1, unknown reason,
/// firmware version whose low byte is not kProtocolVersion).
///
/// The event answer and full event copy `block` after their 4 head words;
/// a caller that wrote the block in place at out.subspan(4) (MsadcBlockWriter
/// with event number = the particle) pays no copy.
[[nodiscard]] std::size_t encode(const EventAnswer& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const FullEvent& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const TooLate& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const NotFound& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const BadRequest& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const SpillBegin& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const SpillEnd& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const BoardStatus& m, std::span<std::uint32_t> out) noexcept;

/// Decoders: read one message at the start of `words` (which may hold more
/// after it) and check the header (decode_message_header), the type, the
/// length (fixed-length messages: exactly fixed_length_words) and every
/// reserved bit. The event answer and full event also validate their block
/// with decode_msadc (event number = the particle); errors inside the block
/// carry the block's own byte offsets.
[[nodiscard]] Decoded<EventAnswer> decode_event_answer(std::span<const std::uint32_t> words,
                                                       std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<FullEvent> decode_full_event(std::span<const std::uint32_t> words,
                                                   std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<TooLate> decode_too_late(std::span<const std::uint32_t> words,
                                               std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<NotFound> decode_not_found(std::span<const std::uint32_t> words,
                                                 std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<BadRequest> decode_bad_request(std::span<const std::uint32_t> words,
                                                     std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<SpillBegin> decode_spill_begin(std::span<const std::uint32_t> words,
                                                     std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<SpillEnd> decode_spill_end(std::span<const std::uint32_t> words,
                                                 std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<BoardStatus> decode_status(std::span<const std::uint32_t> words,
                                                 std::size_t offset_bytes) noexcept;

/// Decodes one board-to-host message at the start of `words` and hands it to
/// `visitor`, which must be callable with each of: const ParticleSummary&
/// (once per particle of a summary packet), const SpillBegin&, const
/// SpillEnd&, const EventAnswer&, const FullEvent&, const TooLate&, const
/// NotFound&, const BadRequest&, const BoardStatus&. Returns the message's
/// length in words, so that a caller walks a stream of messages; a host
/// message (event requests) is refused with ReadoutBadType.
template <class Visitor>
[[nodiscard]] Decoded<std::size_t> decode_board_message(std::span<const std::uint32_t> words,
                                                        std::size_t offset_bytes, Visitor&& visitor) noexcept {
  auto h = decode_message_header(words, offset_bytes);
  if (!h) return h.error();
  const std::size_t length = h->length_words;
  auto deliver = [&](const auto& decoded) -> Decoded<std::size_t> {
    if (!decoded) return decoded.error();
    visitor(*decoded);
    return length;
  };
  switch (h->type) {
    case MessageType::SummaryPacket: {
      auto r = decode_summary_packet(words, offset_bytes, [&](const ParticleSummary& p) { visitor(p); });
      if (!r) return r.error();
      return length;
    }
    case MessageType::SpillBegin: return deliver(decode_spill_begin(words, offset_bytes));
    case MessageType::SpillEnd: return deliver(decode_spill_end(words, offset_bytes));
    case MessageType::EventAnswer: return deliver(decode_event_answer(words, offset_bytes));
    case MessageType::FullEvent: return deliver(decode_full_event(words, offset_bytes));
    case MessageType::TooLate: return deliver(decode_too_late(words, offset_bytes));
    case MessageType::NotFound: return deliver(decode_not_found(words, offset_bytes));
    case MessageType::BadRequest: return deliver(decode_bad_request(words, offset_bytes));
    case MessageType::Status: return deliver(decode_status(words, offset_bytes));
    case MessageType::EventRequests: break;
  }
  return DecodeError{DecodeErrc::ReadoutBadType, offset_bytes, static_cast<std::uint32_t>(h->type), 0,
                     "message type", "a board-to-host type (0x01-0x09)"};
}

/// What the board computes for a particle's summaries (the firmware's
/// rule, here so that the host can compute the same from a written event):
/// per channel of the data_format3 block, pedestal = sum of the first
/// min(4, n) samples / min(4, n) rounded down; amplitude = maximum sample -
/// pedestal (0 if below); the channel is summarised when its amplitude
/// reaches `threshold` (ZS_THRESHOLD), with value = amplitude, or with
/// `integral` the sum of (sample - pedestal) clamped to [0, 0xFFFF], and
/// time = index of the first maximum x 4, saturated at 127. Writes the
/// summary words in block order into `out` and returns how many; the
/// block's decode error (event number = `event_number`) otherwise. Channels
/// beyond `out` are dropped (size it for the block's channels).
[[nodiscard]] Decoded<std::size_t> summarise_block(std::span<const std::uint32_t> block, std::uint32_t event_number,
                                                   std::uint32_t threshold, SummaryValue value,
                                                   std::span<std::uint32_t> out) noexcept;

}  // namespace na64::firmware::msadc_readout
