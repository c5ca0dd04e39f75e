// SPDX-License-Identifier: Apache-2.0
// NA64 front-end link protocol, version 1 (README.md): how the host reads
// the tracker front-ends (Micromegas and GEM planes on APV25, straw planes on
// TDCs) over a byte stream such as TCP. Each front-end keeps every beam
// particle's block in a latency buffer; the host asks for the events it has
// accepted by (spill, particle number) and gets the block, or an explicit
// too-late or not-found answer.
//
// Formats only, no I/O. All words 32-bit little-endian. Every message starts
// with a 2-word header carrying its length, so that a stream reader frames
// the stream by reading 2 words, then the rest (decode_frame_header).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "na64/firmware/decode_error.hpp"
#include "na64/firmware/msadc_readout.hpp"
#include "na64/firmware/slink.hpp"

namespace na64::firmware::frontend_link {

using msadc_readout::BitField;

inline constexpr std::uint32_t kProtocolVersion = 1;
/// Message key, word 0 bits 0-15: the bytes "FL" on the wire.
inline constexpr std::uint32_t kMessageKey = 0x4C46;
inline constexpr std::size_t kMessageHeaderWords = 2;
inline constexpr std::size_t kEventRefWords = 2;
/// Length field: 22 bits, in words, the 2 header words included.
inline constexpr std::uint32_t kMaxMessageWords = (1u << 22) - 1;
/// Particle number in spill: 24 bits, 1.67 x the design's 1e7 particles per spill.
inline constexpr std::uint32_t kMaxParticle = (1u << 24) - 1;
inline constexpr std::uint32_t kMaxSpill = (1u << 11) - 1;
/// Request id: 21 bits, chosen by the host, echoed in the answer.
inline constexpr std::uint32_t kMaxRequestId = (1u << 21) - 1;
/// Particles of one spill gate: the 24-bit count of a spill-gate close.
inline constexpr std::uint32_t kMaxParticleCount = (1u << 24) - 1;

enum class MessageType : std::uint8_t {
  // Front-end to host.
  SpillBegin = 0x01,
  SpillEnd = 0x02,
  EventData = 0x03,
  TooLate = 0x04,
  NotFound = 0x05,
  // Host to front-end.
  EventRequests = 0x81,
  SpillGate = 0x82,
};

[[nodiscard]] const char* to_string(MessageType type) noexcept;

[[nodiscard]] constexpr bool is_known(std::uint32_t type) noexcept {
  return (type >= 0x01 && type <= 0x05) || type == 0x81 || type == 0x82;
}
/// True for the types a host sends (bit 7 set).
[[nodiscard]] constexpr bool is_host_type(MessageType type) noexcept {
  return (static_cast<std::uint32_t>(type) & 0x80u) != 0;
}

/// Length in words of a message of fixed length; 0 for the variable ones
/// (event data, event requests).
[[nodiscard]] constexpr std::size_t fixed_length_words(MessageType type) noexcept {
  switch (type) {
    case MessageType::SpillBegin: return 3;
    case MessageType::SpillEnd: return 4;
    case MessageType::TooLate: return 6;
    case MessageType::NotFound: return 4;
    case MessageType::SpillGate: return 4;
    default: return 0;
  }
}

/// What an event-data message carries: the front-end's S-Link payload for
/// the event, in one of the tracker formats.
enum class BlockKind : std::uint8_t {
  Apv = 1,       ///< COMPASS APV ADC blocks (apv.hpp): Micromegas or GEM planes
  StrawTdc = 2,  ///< NA64 straw TDC blocks, version 1 (straw_tdc.hpp)
};
[[nodiscard]] const char* to_string(BlockKind kind) noexcept;

/// Bit fields of every word, named after the word they live in.
namespace field {
// Message header.
inline constexpr BitField kKey{0, 16};
inline constexpr BitField kVersion{16, 8};
inline constexpr BitField kType{24, 8};
inline constexpr BitField kLength{0, 22};
inline constexpr BitField kSourceId{22, 10};
// Spill word (spill begin, spill end, spill gate word 2, event reference word 1).
inline constexpr BitField kSpill{0, 11};
inline constexpr BitField kRequestId{11, 21};  ///< event reference word 1
inline constexpr BitField kGateOpen{31, 1};   ///< spill gate word 2; bits 11-30 reserved
// Particle word (event reference word 0, too-late word 4); bits 24-31 reserved.
inline constexpr BitField kParticle{0, 24};
// Count word (spill gate word 3, spill end word 3); bits 24-31 reserved.
inline constexpr BitField kCount{0, 24};
// Event data word 4; bits 8-31 reserved.
inline constexpr BitField kBlockKind{0, 8};
}  // namespace field

/// The particle and spill of an event, and the host's request id (echoed
/// in the answer). Two words, laid out as the MSADC readout protocol's event
/// reference, so that the same words name an event on every link:
///   word 0: bits 0-23 particle number in spill, bits 24-31 reserved (0);
///   word 1: bits 0-10 spill, bits 11-31 request id.
struct EventRef {
  std::uint32_t spill = 0;
  std::uint32_t particle = 0;
  std::uint32_t request_id = 0;
  bool operator==(const EventRef&) const = default;
};

struct MessageHeader {
  MessageType type = MessageType::SpillBegin;
  std::uint32_t length_words = kMessageHeaderWords;  ///< 22 bits, header included
  std::uint32_t source_id = 0;  ///< < 896: the front-end's S-Link source id; in a host message, the one addressed
};

/// Writes the 2 header words; fields are masked to their widths.
void encode(const MessageHeader& h, std::span<std::uint32_t, kMessageHeaderWords> out) noexcept;

/// Reads and checks the 2 header words alone, as a stream reader does before
/// the rest of the message has arrived. Checks: key 0x4C46, version 1, known
/// type, length >= 2, source id < 896. The reader then reads length - 2 more
/// words; a header that does not decode means the stream's framing is lost.
[[nodiscard]] Decoded<MessageHeader> decode_frame_header(std::span<const std::uint32_t, kMessageHeaderWords> words,
                                                         std::size_t offset_bytes) noexcept;

/// Reads and checks a message header at the start of `words`, which may hold
/// more messages after it: 2 words present, decode_frame_header, and the
/// length within `words`. `offset_bytes` is where `words` begins in the
/// caller's buffer or stream.
[[nodiscard]] Decoded<MessageHeader> decode_message_header(std::span<const std::uint32_t> words,
                                                           std::size_t offset_bytes) noexcept;

// Host to front-end.

/// The beam gate of one spill, opened before its first particle and closed
/// after its last. A real front-end takes the gate as a signal on a cable
/// (with the spill number from the trigger control system); on this link it
/// serves the emulated front-ends. Layout: header, then
///   word 2: bits 0-10 spill, bits 11-30 reserved, bit 31 1 = open, 0 = close;
///   word 3: bits 0-23 particles in the spill (close; reserved, 0, at open), bits 24-31 reserved.
/// Particles of the spill are numbered 0 to particles - 1.
struct SpillGate {
  std::uint32_t source_id = 0;
  std::uint32_t spill = 0;
  bool open = true;
  std::uint32_t particles = 0;  ///< at close; 0 at open
};

/// Host to front-end: requests for events, one or more in one message.
/// Layout: header, then per request the two event-reference words. Returns
/// the words written, 0 if `requests` is empty or too long, a field is out of
/// range, or `out` is too small.
[[nodiscard]] std::size_t encode_event_requests(std::uint32_t source_id, std::span<const EventRef> requests,
                                                std::span<std::uint32_t> out) noexcept;

[[nodiscard]] constexpr std::size_t event_requests_words(std::size_t requests) noexcept {
  return kMessageHeaderWords + kEventRefWords * requests;
}

// Front-end to host.

struct SpillBegin {
  std::uint32_t source_id = 0;
  std::uint32_t spill = 0;
};

/// Layout: header, spill word, then word 3 bits 0-23 the events of the spill
/// the front-end holds when its gate closes (its particles, unless the buffer
/// could not keep them all), bits 24-31 reserved.
struct SpillEnd {
  std::uint32_t source_id = 0;
  std::uint32_t spill = 0;
  std::uint32_t events_held = 0;
};

/// The answer to a request the latency buffer still held. Layout: header,
/// event reference, word 4 (bits 0-7 block kind, 8-31 reserved), then the
/// block filling the rest of the message: the event's S-Link payload exactly
/// as the front-end writes it, its event number fields holding
/// `ref.particle & 0xFFF` (and a straw TDC's spill field `ref.spill`).
struct EventData {
  std::uint32_t source_id = 0;
  EventRef ref;
  BlockKind kind = BlockKind::Apv;
  std::span<const std::uint32_t> block;
  std::size_t block_offset_bytes = 0;  ///< decoder: where `block` starts in the caller's buffer
};
inline constexpr std::size_t kEventDataHeadWords = kMessageHeaderWords + kEventRefWords + 1;

/// The event has left the latency buffer. Carries the oldest event the
/// buffer held when answering, so that the host sees how far behind it is.
/// Layout: header, event reference, word 4 oldest particle (bits 0-23;
/// 24-31 reserved), word 5 oldest spill (bits 0-10; 11-31 reserved).
struct TooLate {
  std::uint32_t source_id = 0;
  EventRef ref;
  std::uint32_t oldest_spill = 0;
  std::uint32_t oldest_particle = 0;
};

/// The front-end never recorded the event: its particle number is at or
/// beyond the spill's particle count, or the spill is not one it was gated
/// for. Layout: header, event reference.
struct NotFound {
  std::uint32_t source_id = 0;
  EventRef ref;
};

/// Encoders: write one message into `out` and return its words, or 0 if
/// `out` is too small or a field is out of range (source id >= 896, spill >
/// 2047, particle or count > 0xFFFFFF, request id > 2^21 - 1, a gate opening
/// with particles, an unknown block kind, a message longer than 2^22 - 1).
///
/// Event data copies `block` after its 5 head words; a caller that wrote the
/// block in place at out.subspan(kEventDataHeadWords) pays no copy.
[[nodiscard]] std::size_t encode(const SpillGate& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const SpillBegin& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const SpillEnd& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const EventData& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const TooLate& m, std::span<std::uint32_t> out) noexcept;
[[nodiscard]] std::size_t encode(const NotFound& m, std::span<std::uint32_t> out) noexcept;

/// Decoders: read one message at the start of `words` (which may hold more
/// after it) and check the header (decode_message_header), the type, the
/// length (fixed-length messages: exactly fixed_length_words) and every
/// reserved bit. Event data also validates its block with decode_apv or
/// decode_straw_tdc (event number = the particle, spill = the reference's);
/// errors inside the block carry the block's own byte offsets.
[[nodiscard]] Decoded<SpillGate> decode_spill_gate(std::span<const std::uint32_t> words,
                                                   std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<SpillBegin> decode_spill_begin(std::span<const std::uint32_t> words,
                                                     std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<SpillEnd> decode_spill_end(std::span<const std::uint32_t> words,
                                                 std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<EventData> decode_event_data(std::span<const std::uint32_t> words,
                                                   std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<TooLate> decode_too_late(std::span<const std::uint32_t> words,
                                               std::size_t offset_bytes) noexcept;
[[nodiscard]] Decoded<NotFound> decode_not_found(std::span<const std::uint32_t> words,
                                                 std::size_t offset_bytes) noexcept;

namespace detail {
/// One event reference at `offset_bytes`: word 0 bits 24-31 must be 0.
[[nodiscard]] Decoded<EventRef> decode_event_ref(std::span<const std::uint32_t, kEventRefWords> words,
                                                 std::size_t offset_bytes) noexcept;
/// The head of an event-requests message: its header and a body of >= 1
/// whole request.
[[nodiscard]] Decoded<MessageHeader> decode_event_requests_head(std::span<const std::uint32_t> words,
                                                                std::size_t offset_bytes) noexcept;
}  // namespace detail

/// Validates an event-requests message and then calls
/// `on_request(const EventRef&)` for each request, in order. All or
/// nothing: nothing is visited unless the whole message is valid. Rules:
/// header as decode_message_header, type event requests, at least one
/// request, the requests filling the length exactly, reserved bits zero.
template <class OnRequest>
[[nodiscard]] Decoded<MessageHeader> decode_event_requests(std::span<const std::uint32_t> words,
                                                           std::size_t offset_bytes, OnRequest&& on_request) noexcept {
  auto h = detail::decode_event_requests_head(words, offset_bytes);
  if (!h) return h.error();
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

/// Decodes one front-end-to-host message at the start of `words` and hands
/// it to `visitor`, which must be callable with each of: const SpillBegin&,
/// const SpillEnd&, const EventData&, const TooLate&, const NotFound&.
/// Returns the message's length in words, so that a caller walks a stream
/// of messages; a host message is refused with LinkBadType. Nothing is
/// visited for a message that does not decode.
template <class Visitor>
[[nodiscard]] Decoded<std::size_t> decode_frontend_message(std::span<const std::uint32_t> words,
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
    case MessageType::SpillBegin: return deliver(decode_spill_begin(words, offset_bytes));
    case MessageType::SpillEnd: return deliver(decode_spill_end(words, offset_bytes));
    case MessageType::EventData: return deliver(decode_event_data(words, offset_bytes));
    case MessageType::TooLate: return deliver(decode_too_late(words, offset_bytes));
    case MessageType::NotFound: return deliver(decode_not_found(words, offset_bytes));
    case MessageType::EventRequests:
    case MessageType::SpillGate: break;
  }
  return DecodeError{DecodeErrc::LinkBadType, offset_bytes, static_cast<std::uint32_t>(h->type), 0, "message type",
                     "a front-end-to-host type (0x01-0x05)"};
}

/// Decodes one host-to-front-end message at the start of `words` and hands
/// it to `visitor`, which must be callable with const SpillGate& and with
/// const EventRef& (once per request of an event-requests message, all or
/// nothing). Returns the message's length in words; a front-end message is
/// refused with LinkBadType.
template <class Visitor>
[[nodiscard]] Decoded<std::size_t> decode_host_message(std::span<const std::uint32_t> words,
                                                       std::size_t offset_bytes, Visitor&& visitor) noexcept {
  auto h = decode_message_header(words, offset_bytes);
  if (!h) return h.error();
  const std::size_t length = h->length_words;
  switch (h->type) {
    case MessageType::SpillGate: {
      auto g = decode_spill_gate(words, offset_bytes);
      if (!g) return g.error();
      visitor(*g);
      return length;
    }
    case MessageType::EventRequests: {
      auto r = decode_event_requests(words, offset_bytes, [&](const EventRef& ref) { visitor(ref); });
      if (!r) return r.error();
      return length;
    }
    case MessageType::SpillBegin:
    case MessageType::SpillEnd:
    case MessageType::EventData:
    case MessageType::TooLate:
    case MessageType::NotFound: break;
  }
  return DecodeError{DecodeErrc::LinkBadType, offset_bytes, static_cast<std::uint32_t>(h->type), 0, "message type",
                     "a host-to-front-end type (0x81, 0x82)"};
}

}  // namespace na64::firmware::frontend_link
