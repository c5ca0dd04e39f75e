// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/frontend_link.hpp"

#include <algorithm>
#include <cstring>

#include "na64/firmware/apv.hpp"
#include "na64/firmware/straw_tdc.hpp"

namespace na64::firmware::frontend_link {

namespace {

[[nodiscard]] bool valid_ref(const EventRef& r) noexcept {
  return field::kSpill.fits(r.spill) && field::kParticle.fits(r.particle) && field::kRequestId.fits(r.request_id);
}

[[nodiscard]] bool valid_kind(std::uint32_t kind) noexcept {
  return kind == static_cast<std::uint32_t>(BlockKind::Apv) || kind == static_cast<std::uint32_t>(BlockKind::StrawTdc);
}

void put_header(std::span<std::uint32_t> out, MessageType type, std::size_t length, std::uint32_t source_id) noexcept {
  encode(MessageHeader{type, static_cast<std::uint32_t>(length), source_id}, out.first<kMessageHeaderWords>());
}

void put_ref(std::span<std::uint32_t> out, const EventRef& r) noexcept {
  out[0] = field::kParticle.put(r.particle);
  out[1] = field::kSpill.put(r.spill) | field::kRequestId.put(r.request_id);
}

/// Bits of `word` outside `defined` must be 0.
[[nodiscard]] bool reserved_clear(std::uint32_t word, std::uint32_t defined) noexcept { return (word & ~defined) == 0; }

DecodeError reserved_error(std::size_t offset_bytes, std::uint32_t word, std::uint32_t defined, const char* what) {
  return DecodeError{DecodeErrc::LinkReservedBits, offset_bytes, word & ~defined, 0, what};
}

/// Header check shared by the typed decoders: the type they read and, for a
/// fixed-length type, its exact length; else at least `min_words`.
Decoded<MessageHeader> expect_header(std::span<const std::uint32_t> words, std::size_t offset_bytes,
                                     MessageType type, std::size_t min_words = 0,
                                     const char* min_rule = nullptr) noexcept {
  auto h = decode_message_header(words, offset_bytes);
  if (!h) return h.error();
  if (h->type != type) {
    return DecodeError{DecodeErrc::LinkBadType, offset_bytes, static_cast<std::uint32_t>(h->type),
                       static_cast<std::uint32_t>(type), "message type"};
  }
  const std::size_t fixed = fixed_length_words(type);
  if (fixed != 0 && h->length_words != fixed) {
    return DecodeError{DecodeErrc::BadSize, offset_bytes + 4, h->length_words, fixed, "message length in words"};
  }
  if (fixed == 0 && h->length_words < min_words) {
    return DecodeError{DecodeErrc::BadSize, offset_bytes + 4, h->length_words, min_words, "message length in words",
                       min_rule};
  }
  return h;
}

Decoded<std::uint32_t> decode_spill_word(std::uint32_t w, std::size_t offset_bytes) noexcept {
  if (!reserved_clear(w, field::kSpill.mask())) {
    return reserved_error(offset_bytes, w, field::kSpill.mask(), "spill word bits 11-31");
  }
  return field::kSpill.get(w);
}

Decoded<std::uint32_t> decode_count_word(std::uint32_t w, std::size_t offset_bytes, const char* what) noexcept {
  if (!reserved_clear(w, field::kCount.mask())) return reserved_error(offset_bytes, w, field::kCount.mask(), what);
  return field::kCount.get(w);
}

/// Writes a message of the header and the spill word, and `count` as word 3
/// for a length of 4.
std::size_t encode_spill_message(MessageType type, std::uint32_t source_id, std::uint32_t spill_word,
                                 std::uint32_t count, std::span<std::uint32_t> out) noexcept {
  const std::size_t words = fixed_length_words(type);
  if (source_id > kMaxSourceId || out.size() < words) return 0;
  put_header(out, type, words, source_id);
  out[2] = spill_word;
  if (words > 3) out[3] = field::kCount.put(count);
  return words;
}

}  // namespace

const char* to_string(MessageType type) noexcept {
  switch (type) {
    case MessageType::SpillBegin: return "spill-begin";
    case MessageType::SpillEnd: return "spill-end";
    case MessageType::EventData: return "event-data";
    case MessageType::TooLate: return "too-late";
    case MessageType::NotFound: return "not-found";
    case MessageType::EventRequests: return "event-requests";
    case MessageType::SpillGate: return "spill-gate";
  }
  return "unknown";
}

const char* to_string(BlockKind kind) noexcept {
  switch (kind) {
    case BlockKind::Apv: return "apv";
    case BlockKind::StrawTdc: return "straw-tdc";
  }
  return "unknown";
}

void encode(const MessageHeader& h, std::span<std::uint32_t, kMessageHeaderWords> out) noexcept {
  out[0] = field::kKey.put(kMessageKey) | field::kVersion.put(kProtocolVersion) |
           field::kType.put(static_cast<std::uint32_t>(h.type));
  out[1] = field::kLength.put(h.length_words) | field::kSourceId.put(h.source_id);
}

Decoded<MessageHeader> decode_frame_header(std::span<const std::uint32_t, kMessageHeaderWords> words,
                                           std::size_t offset_bytes) noexcept {
  auto fail = [&](DecodeErrc code, std::size_t word, std::uint64_t found, std::uint64_t expected,
                  const char* what, const char* rule = nullptr) {
    return DecodeError{code, offset_bytes + word * 4, found, expected, what, rule};
  };
  const std::uint32_t w0 = words[0];
  const std::uint32_t w1 = words[1];
  if (field::kKey.get(w0) != kMessageKey) {
    return fail(DecodeErrc::LinkBadKey, 0, field::kKey.get(w0), kMessageKey, "message key");
  }
  if (field::kVersion.get(w0) != kProtocolVersion) {
    return fail(DecodeErrc::LinkBadVersion, 0, field::kVersion.get(w0), kProtocolVersion, "protocol version");
  }
  const std::uint32_t type = field::kType.get(w0);
  if (!is_known(type)) return fail(DecodeErrc::LinkBadType, 0, type, 0, "message type", "0x01-0x05, 0x81 or 0x82");
  MessageHeader h;
  h.type = static_cast<MessageType>(type);
  h.length_words = field::kLength.get(w1);
  h.source_id = field::kSourceId.get(w1);
  if (h.length_words < kMessageHeaderWords) {
    return fail(DecodeErrc::BadSize, 1, h.length_words, 0, "message length in words", ">= 2");
  }
  if (h.source_id > kMaxSourceId) return fail(DecodeErrc::BadSourceId, 1, h.source_id, 0, "source id", "< 896");
  return h;
}

Decoded<MessageHeader> decode_message_header(std::span<const std::uint32_t> words,
                                             std::size_t offset_bytes) noexcept {
  if (words.size() < kMessageHeaderWords) {
    return DecodeError{DecodeErrc::Truncated, offset_bytes, words.size() * 4, kMessageHeaderWords * 4,
                       "message header bytes available", ">= 8"};
  }
  auto h = decode_frame_header(words.first<kMessageHeaderWords>(), offset_bytes);
  if (!h) return h.error();
  if (h->length_words > words.size()) {
    return DecodeError{DecodeErrc::Truncated, offset_bytes + 4, h->length_words, words.size(),
                       "message length in words", "<= the words available"};
  }
  return h;
}

namespace detail {

Decoded<EventRef> decode_event_ref(std::span<const std::uint32_t, kEventRefWords> words,
                                   std::size_t offset_bytes) noexcept {
  if (!reserved_clear(words[0], field::kParticle.mask())) {
    return reserved_error(offset_bytes, words[0], field::kParticle.mask(), "event reference word 0 bits 24-31");
  }
  return EventRef{field::kSpill.get(words[1]), field::kParticle.get(words[0]), field::kRequestId.get(words[1])};
}

Decoded<MessageHeader> decode_event_requests_head(std::span<const std::uint32_t> words,
                                                  std::size_t offset_bytes) noexcept {
  auto h = decode_message_header(words, offset_bytes);
  if (!h) return h.error();
  if (h->type != MessageType::EventRequests) {
    return DecodeError{DecodeErrc::LinkBadType, offset_bytes, static_cast<std::uint32_t>(h->type),
                       static_cast<std::uint32_t>(MessageType::EventRequests), "message type"};
  }
  const std::size_t body = h->length_words - kMessageHeaderWords;
  if (body == 0) {
    return DecodeError{DecodeErrc::LinkEmptyBatch, offset_bytes + 4, 0, 0, "requests in the message", ">= 1"};
  }
  if (body % kEventRefWords != 0) {
    return DecodeError{DecodeErrc::SizeMismatch, offset_bytes + 4, h->length_words, 0, "event requests length",
                       "2 + 2 x requests"};
  }
  return h;
}

}  // namespace detail

std::size_t encode_event_requests(std::uint32_t source_id, std::span<const EventRef> requests,
                                  std::span<std::uint32_t> out) noexcept {
  if (requests.empty() || source_id > kMaxSourceId) return 0;
  if (requests.size() > (kMaxMessageWords - kMessageHeaderWords) / kEventRefWords) return 0;
  const std::size_t words = event_requests_words(requests.size());
  if (out.size() < words) return 0;
  if (!std::all_of(requests.begin(), requests.end(), valid_ref)) return 0;
  put_header(out, MessageType::EventRequests, words, source_id);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    put_ref(out.subspan(kMessageHeaderWords + i * kEventRefWords), requests[i]);
  }
  return words;
}

std::size_t encode(const SpillGate& m, std::span<std::uint32_t> out) noexcept {
  if (!field::kSpill.fits(m.spill) || !field::kCount.fits(m.particles) || (m.open && m.particles != 0)) return 0;
  return encode_spill_message(MessageType::SpillGate, m.source_id,
                              field::kSpill.put(m.spill) | field::kGateOpen.put(m.open ? 1u : 0u), m.particles, out);
}

std::size_t encode(const SpillBegin& m, std::span<std::uint32_t> out) noexcept {
  if (!field::kSpill.fits(m.spill)) return 0;
  return encode_spill_message(MessageType::SpillBegin, m.source_id, field::kSpill.put(m.spill), 0, out);
}

std::size_t encode(const SpillEnd& m, std::span<std::uint32_t> out) noexcept {
  if (!field::kSpill.fits(m.spill) || !field::kCount.fits(m.events_held)) return 0;
  return encode_spill_message(MessageType::SpillEnd, m.source_id, field::kSpill.put(m.spill), m.events_held, out);
}

std::size_t encode(const EventData& m, std::span<std::uint32_t> out) noexcept {
  const std::size_t words = kEventDataHeadWords + m.block.size();
  if (m.source_id > kMaxSourceId || !valid_ref(m.ref) || !valid_kind(static_cast<std::uint32_t>(m.kind)) ||
      words > kMaxMessageWords || out.size() < words) {
    return 0;
  }
  // The block may already sit in place (no copy) or overlap its place.
  if (m.block.data() != out.data() + kEventDataHeadWords && !m.block.empty()) {
    std::memmove(out.data() + kEventDataHeadWords, m.block.data(), m.block.size_bytes());
  }
  put_header(out, MessageType::EventData, words, m.source_id);
  put_ref(out.subspan(kMessageHeaderWords), m.ref);
  out[kMessageHeaderWords + kEventRefWords] = field::kBlockKind.put(static_cast<std::uint32_t>(m.kind));
  return words;
}

std::size_t encode(const TooLate& m, std::span<std::uint32_t> out) noexcept {
  const std::size_t words = fixed_length_words(MessageType::TooLate);
  if (m.source_id > kMaxSourceId || !valid_ref(m.ref) || !valid_ref(EventRef{m.oldest_spill, m.oldest_particle, 0}) ||
      out.size() < words) {
    return 0;
  }
  put_header(out, MessageType::TooLate, words, m.source_id);
  put_ref(out.subspan(2), m.ref);
  put_ref(out.subspan(4), EventRef{m.oldest_spill, m.oldest_particle, 0});
  return words;
}

std::size_t encode(const NotFound& m, std::span<std::uint32_t> out) noexcept {
  const std::size_t words = fixed_length_words(MessageType::NotFound);
  if (m.source_id > kMaxSourceId || !valid_ref(m.ref) || out.size() < words) return 0;
  put_header(out, MessageType::NotFound, words, m.source_id);
  put_ref(out.subspan(2), m.ref);
  return words;
}

Decoded<SpillGate> decode_spill_gate(std::span<const std::uint32_t> words, std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::SpillGate);
  if (!h) return h.error();
  const std::uint32_t w2 = words[2];
  const std::uint32_t defined = field::kSpill.mask() | field::kGateOpen.mask();
  if (!reserved_clear(w2, defined)) {
    return reserved_error(offset_bytes + 8, w2, defined, "spill gate word 2 bits 11-30");
  }
  const bool open = field::kGateOpen.get(w2) != 0;
  if (open && words[3] != 0) {
    return reserved_error(offset_bytes + 12, words[3], 0, "spill gate word 3 at open");
  }
  auto particles = decode_count_word(words[3], offset_bytes + 12, "spill gate word 3 bits 24-31");
  if (!particles) return particles.error();
  return SpillGate{h->source_id, field::kSpill.get(w2), open, *particles};
}

Decoded<SpillBegin> decode_spill_begin(std::span<const std::uint32_t> words, std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::SpillBegin);
  if (!h) return h.error();
  auto spill = decode_spill_word(words[2], offset_bytes + 8);
  if (!spill) return spill.error();
  return SpillBegin{h->source_id, *spill};
}

Decoded<SpillEnd> decode_spill_end(std::span<const std::uint32_t> words, std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::SpillEnd);
  if (!h) return h.error();
  auto spill = decode_spill_word(words[2], offset_bytes + 8);
  if (!spill) return spill.error();
  auto held = decode_count_word(words[3], offset_bytes + 12, "spill end word 3 bits 24-31");
  if (!held) return held.error();
  return SpillEnd{h->source_id, *spill, *held};
}

Decoded<EventData> decode_event_data(std::span<const std::uint32_t> words, std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::EventData, kEventDataHeadWords, ">= 5");
  if (!h) return h.error();
  auto ref = detail::decode_event_ref(words.subspan(2).first<kEventRefWords>(), offset_bytes + 8);
  if (!ref) return ref.error();
  const std::uint32_t w4 = words[4];
  if (!reserved_clear(w4, field::kBlockKind.mask())) {
    return reserved_error(offset_bytes + 16, w4, field::kBlockKind.mask(), "event data word 4 bits 8-31");
  }
  const std::uint32_t kind = field::kBlockKind.get(w4);
  if (!valid_kind(kind)) {
    return DecodeError{DecodeErrc::LinkBadBlockKind, offset_bytes + 16, kind, 0, "event data block kind",
                       "1 (APV) or 2 (straw TDC)"};
  }
  EventData e{h->source_id, *ref, static_cast<BlockKind>(kind),
              words.subspan(kEventDataHeadWords, h->length_words - kEventDataHeadWords),
              offset_bytes + kEventDataHeadWords * 4};
  const auto checked =
      e.kind == BlockKind::Apv
          ? decode_apv(e.block, e.ref.particle, e.block_offset_bytes, [](const ApvHit&) {})
          : decode_straw_tdc(e.block, e.ref.particle, e.ref.spill, e.block_offset_bytes, [](const StrawHit&) {});
  if (!checked) return checked.error();
  return e;
}

Decoded<TooLate> decode_too_late(std::span<const std::uint32_t> words, std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::TooLate);
  if (!h) return h.error();
  auto ref = detail::decode_event_ref(words.subspan(2).first<kEventRefWords>(), offset_bytes + 8);
  if (!ref) return ref.error();
  if (!reserved_clear(words[4], field::kParticle.mask())) {
    return reserved_error(offset_bytes + 16, words[4], field::kParticle.mask(), "oldest held particle bits 24-31");
  }
  auto oldest_spill = decode_spill_word(words[5], offset_bytes + 20);
  if (!oldest_spill) return oldest_spill.error();
  return TooLate{h->source_id, *ref, *oldest_spill, field::kParticle.get(words[4])};
}

Decoded<NotFound> decode_not_found(std::span<const std::uint32_t> words, std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::NotFound);
  if (!h) return h.error();
  auto ref = detail::decode_event_ref(words.subspan(2).first<kEventRefWords>(), offset_bytes + 8);
  if (!ref) return ref.error();
  return NotFound{h->source_id, *ref};
}

}  // namespace na64::firmware::frontend_link
