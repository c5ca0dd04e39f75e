// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/msadc_readout.hpp"

#include <algorithm>
#include <cstring>

namespace na64::firmware::msadc_readout {

namespace {

constexpr std::uint32_t kReasonCount = 4;

[[nodiscard]] bool valid_ref(const EventRef& r) noexcept {
  return field::kSpill.fits(r.spill) && field::kParticle.fits(r.particle) && field::kRequestId.fits(r.request_id);
}

void put_header(std::span<std::uint32_t> out, MessageType type, std::size_t length, std::uint32_t source_id) noexcept {
  encode(MessageHeader{type, static_cast<std::uint32_t>(length), source_id}, out.first<kMessageHeaderWords>());
}

void put_ref(std::span<std::uint32_t> out, const EventRef& r) noexcept {
  out[0] = field::kParticle.put(r.particle);
  out[1] = field::kSpill.put(r.spill) | field::kRequestId.put(r.request_id);
}

/// Header check shared by the typed decoders: the type they read and, for a
/// fixed-length type, its exact length; else at least `min_words`.
Decoded<MessageHeader> expect_header(std::span<const std::uint32_t> words, std::size_t offset_bytes,
                                     MessageType type, std::size_t min_words = 0,
                                     const char* min_rule = nullptr) noexcept {
  auto h = decode_message_header(words, offset_bytes);
  if (!h) return h.error();
  if (h->type != type) {
    return DecodeError{DecodeErrc::ReadoutBadType, offset_bytes, static_cast<std::uint32_t>(h->type),
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

/// Bits of `word` outside `defined` must be 0.
[[nodiscard]] bool reserved_clear(std::uint32_t word, std::uint32_t defined) noexcept { return (word & ~defined) == 0; }

DecodeError reserved_error(std::size_t offset_bytes, std::uint32_t word, std::uint32_t defined, const char* what) {
  return DecodeError{DecodeErrc::ReadoutReservedBits, offset_bytes, word & ~defined, 0, what};
}

Decoded<std::uint32_t> decode_spill_word(std::uint32_t w, std::size_t offset_bytes) noexcept {
  if (!reserved_clear(w, field::kSpill.mask())) {
    return reserved_error(offset_bytes, w, field::kSpill.mask(), "spill word bits 11-31");
  }
  return field::kSpill.get(w);
}

/// Validates the block of an event answer or full event.
Decoded<Checked> check_block(std::span<const std::uint32_t> block, std::uint32_t particle,
                             std::size_t offset_bytes) noexcept {
  return decode_msadc(block, particle, offset_bytes, [](const MsadcChannel&) {});
}

std::size_t encode_with_block(MessageType type, std::uint32_t source_id, const EventRef& ref,
                              std::span<const std::uint32_t> block, std::span<std::uint32_t> out) noexcept {
  const std::size_t words = kEventAnswerHeadWords + block.size();
  if (source_id > kMaxSourceId || !valid_ref(ref) || words > kMaxMessageWords || out.size() < words) return 0;
  // The block may already sit in place (no copy) or overlap its place.
  if (block.data() != out.data() + kEventAnswerHeadWords && !block.empty()) {
    std::memmove(out.data() + kEventAnswerHeadWords, block.data(), block.size_bytes());
  }
  put_header(out, type, words, source_id);
  put_ref(out.subspan(kMessageHeaderWords), ref);
  return words;
}

}  // namespace

const char* to_string(MessageType type) noexcept {
  switch (type) {
    case MessageType::SummaryPacket: return "summary-packet";
    case MessageType::SpillBegin: return "spill-begin";
    case MessageType::SpillEnd: return "spill-end";
    case MessageType::EventAnswer: return "event-answer";
    case MessageType::FullEvent: return "full-event";
    case MessageType::TooLate: return "too-late";
    case MessageType::NotFound: return "not-found";
    case MessageType::BadRequest: return "bad-request";
    case MessageType::Status: return "status";
    case MessageType::EventRequests: return "event-requests";
  }
  return "unknown";
}

const char* to_string(BadRequestReason reason) noexcept {
  switch (reason) {
    case BadRequestReason::MalformedMessage: return "malformed-message";
    case BadRequestReason::LatencyBufferOff: return "latency-buffer-off";
    case BadRequestReason::QueueFull: return "queue-full";
    case BadRequestReason::WrongSource: return "wrong-source";
  }
  return "unknown";
}

void encode(const MessageHeader& h, std::span<std::uint32_t, kMessageHeaderWords> out) noexcept {
  out[0] = field::kKey.put(kMessageKey) | field::kVersion.put(kProtocolVersion) |
           field::kType.put(static_cast<std::uint32_t>(h.type));
  out[1] = field::kLength.put(h.length_words) | field::kSourceId.put(h.source_id);
}

Decoded<MessageHeader> decode_message_header(std::span<const std::uint32_t> words,
                                             std::size_t offset_bytes) noexcept {
  auto fail = [&](DecodeErrc code, std::size_t word, std::uint64_t found, std::uint64_t expected,
                  const char* what, const char* rule = nullptr) {
    return DecodeError{code, offset_bytes + word * 4, found, expected, what, rule};
  };
  if (words.size() < kMessageHeaderWords) {
    return fail(DecodeErrc::Truncated, 0, words.size() * 4, kMessageHeaderWords * 4, "message header bytes available",
                ">= 8");
  }
  const std::uint32_t w0 = words[0];
  const std::uint32_t w1 = words[1];
  if (field::kKey.get(w0) != kMessageKey) {
    return fail(DecodeErrc::ReadoutBadKey, 0, field::kKey.get(w0), kMessageKey, "message key");
  }
  if (field::kVersion.get(w0) != kProtocolVersion) {
    return fail(DecodeErrc::ReadoutBadVersion, 0, field::kVersion.get(w0), kProtocolVersion, "protocol version");
  }
  const std::uint32_t type = field::kType.get(w0);
  if (!is_known(type)) {
    return fail(DecodeErrc::ReadoutBadType, 0, type, 0, "message type", "0x01-0x09 or 0x81");
  }
  MessageHeader h;
  h.type = static_cast<MessageType>(type);
  h.length_words = field::kLength.get(w1);
  h.source_id = field::kSourceId.get(w1);
  if (h.length_words < kMessageHeaderWords) {
    return fail(DecodeErrc::BadSize, 1, h.length_words, 0, "message length in words", ">= 2");
  }
  if (h.length_words > words.size()) {
    return fail(DecodeErrc::Truncated, 1, h.length_words, words.size(), "message length in words",
                "<= the words available");
  }
  if (h.source_id > kMaxSourceId) return fail(DecodeErrc::BadSourceId, 1, h.source_id, 0, "source id", "< 896");
  return h;
}

namespace detail {

Decoded<SummaryPacketHead> decode_summary_packet_head(std::span<const std::uint32_t> words,
                                                      std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::SummaryPacket, kSummaryPacketHeadWords, ">= 3");
  if (!h) return h.error();
  const std::uint32_t w2 = words[2];
  const std::uint32_t defined = field::kSpill.mask() | field::kParticleCount.mask();
  if (!reserved_clear(w2, defined)) {
    return reserved_error(offset_bytes + 8, w2, defined, "summary packet word 2 bits 11-15");
  }
  SummaryPacketHead head{h->length_words, h->source_id, field::kSpill.get(w2), field::kParticleCount.get(w2)};
  if (head.particle_count == 0) {
    return DecodeError{DecodeErrc::ReadoutEmptyBatch, offset_bytes + 8, 0, 0, "particles in the summary packet",
                       ">= 1"};
  }
  return head;
}

Decoded<EventRef> decode_event_ref(std::span<const std::uint32_t, kEventRefWords> words,
                                   std::size_t offset_bytes) noexcept {
  if (!reserved_clear(words[0], field::kParticle.mask())) {
    return reserved_error(offset_bytes, words[0], field::kParticle.mask(), "event reference word 0 bits 24-31");
  }
  return EventRef{field::kSpill.get(words[1]), field::kParticle.get(words[0]), field::kRequestId.get(words[1])};
}

}  // namespace detail

SummaryPacketWriter::SummaryPacketWriter(std::span<std::uint32_t> out, std::uint32_t source_id,
                                         std::uint32_t spill) noexcept
    : out_(out), source_id_(source_id), spill_(spill) {
  failed_ = source_id > kMaxSourceId || !field::kSpill.fits(spill) || out.size() < kSummaryPacketHeadWords;
}

void SummaryPacketWriter::close_particle() noexcept {
  if (particle_pos_ == 0 || failed_) return;
  out_[particle_pos_ + 2] |= field::kSummaryCount.put(summaries_);
  particle_pos_ = 0;
}

bool SummaryPacketWriter::begin_particle(std::uint32_t particle, std::uint32_t time_ticks,
                                         bool not_buffered) noexcept {
  close_particle();
  if (failed_ || !field::kParticle.fits(particle) || particles_ == kMaxParticlesPerPacket ||
      (particles_ > 0 && particle != last_particle_ + 1) || out_.size() - pos_ < kParticleHeaderWords ||
      pos_ + kParticleHeaderWords > kMaxMessageWords) {
    failed_ = true;
    return false;
  }
  particle_pos_ = pos_;
  out_[pos_] = field::kParticle.put(particle);
  out_[pos_ + 1] = time_ticks;
  out_[pos_ + 2] = field::kNotBuffered.put(not_buffered ? 1u : 0u);
  pos_ += kParticleHeaderWords;
  ++particles_;
  last_particle_ = particle;
  summaries_ = 0;
  return true;
}

bool SummaryPacketWriter::add_summary(const ChannelSummary& s) noexcept {
  if (failed_ || particle_pos_ == 0 || !fits(s) || summaries_ == kMaxSummariesPerParticle ||
      (summaries_ > 0 && s.key() <= last_key_) || pos_ == out_.size() || pos_ + 1 > kMaxMessageWords) {
    failed_ = true;
    return false;
  }
  out_[pos_++] = summary_word(s);
  last_key_ = s.key();
  ++summaries_;
  return true;
}

std::size_t SummaryPacketWriter::finish() noexcept {
  close_particle();
  if (failed_ || particles_ == 0) return 0;
  put_header(out_, MessageType::SummaryPacket, pos_, source_id_);
  out_[2] = field::kSpill.put(spill_) | field::kParticleCount.put(particles_);
  return pos_;
}

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

std::size_t encode(const EventAnswer& m, std::span<std::uint32_t> out) noexcept {
  return encode_with_block(MessageType::EventAnswer, m.source_id, m.ref, m.block, out);
}

std::size_t encode(const FullEvent& m, std::span<std::uint32_t> out) noexcept {
  return encode_with_block(MessageType::FullEvent, m.source_id, EventRef{m.spill, m.particle, 0}, m.block, out);
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

std::size_t encode(const BadRequest& m, std::span<std::uint32_t> out) noexcept {
  const std::size_t words = fixed_length_words(MessageType::BadRequest);
  const auto reason = static_cast<std::uint32_t>(m.reason);
  if (m.source_id > kMaxSourceId || !valid_ref(m.ref) || reason == 0 || reason > kReasonCount ||
      out.size() < words) {
    return 0;
  }
  put_header(out, MessageType::BadRequest, words, m.source_id);
  put_ref(out.subspan(2), m.ref);
  out[4] = field::kReason.put(reason);
  return words;
}

std::size_t encode(const SpillBegin& m, std::span<std::uint32_t> out) noexcept {
  const std::size_t words = fixed_length_words(MessageType::SpillBegin);
  if (m.source_id > kMaxSourceId || !field::kSpill.fits(m.spill) || out.size() < words) return 0;
  put_header(out, MessageType::SpillBegin, words, m.source_id);
  out[2] = field::kSpill.put(m.spill);
  return words;
}

std::size_t encode(const SpillEnd& m, std::span<std::uint32_t> out) noexcept {
  const std::size_t words = fixed_length_words(MessageType::SpillEnd);
  if (m.source_id > kMaxSourceId || !field::kSpill.fits(m.spill) || out.size() < words) return 0;
  put_header(out, MessageType::SpillEnd, words, m.source_id);
  const SpillCounters& c = m.counters;
  out[2] = field::kSpill.put(m.spill);
  out[3] = c.particles;
  out[4] = c.summaries_sent;
  out[5] = c.requests_served;
  out[6] = c.requests_too_late;
  out[7] = c.buffer_overflows;
  out[8] = c.gate_ticks;
  return words;
}

std::size_t encode(const BoardStatus& m, std::span<std::uint32_t> out) noexcept {
  const std::size_t words = fixed_length_words(MessageType::Status);
  if (m.source_id > kMaxSourceId || reg::kFwProtocol.get(m.firmware_version) != kProtocolVersion ||
      !reserved_clear(m.status, reg::kStatus.defined_bits) ||
      !reserved_clear(m.latency_capacity, reg::kLatencyCapacity.defined_bits) || out.size() < words) {
    return 0;
  }
  put_header(out, MessageType::Status, words, m.source_id);
  const std::array<std::uint32_t, kStatusRegisterCount> regs{
      m.firmware_version,   m.status,          m.particles,         m.summaries_sent,
      m.requests_received,  m.requests_served, m.requests_too_late, m.requests_not_found,
      m.requests_bad,       m.buffer_overflows, m.latency_capacity};
  std::copy(regs.begin(), regs.end(), out.begin() + kMessageHeaderWords);
  return words;
}

Decoded<EventAnswer> decode_event_answer(std::span<const std::uint32_t> words, std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::EventAnswer, kEventAnswerHeadWords, ">= 4");
  if (!h) return h.error();
  auto ref = detail::decode_event_ref(words.subspan(2).first<kEventRefWords>(), offset_bytes + 8);
  if (!ref) return ref.error();
  EventAnswer a{h->source_id, *ref, words.subspan(kEventAnswerHeadWords, h->length_words - kEventAnswerHeadWords),
                offset_bytes + kEventAnswerHeadWords * 4};
  auto checked = check_block(a.block, a.ref.particle, a.block_offset_bytes);
  if (!checked) return checked.error();
  return a;
}

Decoded<FullEvent> decode_full_event(std::span<const std::uint32_t> words, std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::FullEvent, kEventAnswerHeadWords, ">= 4");
  if (!h) return h.error();
  auto ref = detail::decode_event_ref(words.subspan(2).first<kEventRefWords>(), offset_bytes + 8);
  if (!ref) return ref.error();
  if (ref->request_id != 0) {
    return reserved_error(offset_bytes + 12, words[3], field::kSpill.mask(), "full event word 3 bits 11-31");
  }
  FullEvent e{h->source_id, ref->spill, ref->particle,
              words.subspan(kEventAnswerHeadWords, h->length_words - kEventAnswerHeadWords),
              offset_bytes + kEventAnswerHeadWords * 4};
  auto checked = check_block(e.block, e.particle, e.block_offset_bytes);
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

Decoded<BadRequest> decode_bad_request(std::span<const std::uint32_t> words, std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::BadRequest);
  if (!h) return h.error();
  auto ref = detail::decode_event_ref(words.subspan(2).first<kEventRefWords>(), offset_bytes + 8);
  if (!ref) return ref.error();
  const std::uint32_t w4 = words[4];
  if (!reserved_clear(w4, field::kReason.mask())) {
    return reserved_error(offset_bytes + 16, w4, field::kReason.mask(), "bad-request word 4 bits 8-31");
  }
  const std::uint32_t reason = field::kReason.get(w4);
  if (reason == 0 || reason > kReasonCount) {
    return DecodeError{DecodeErrc::ReadoutBadReason, offset_bytes + 16, reason, 0, "bad-request reason", "1-4"};
  }
  return BadRequest{h->source_id, *ref, static_cast<BadRequestReason>(reason)};
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
  return SpillEnd{h->source_id, *spill, SpillCounters{words[3], words[4], words[5], words[6], words[7], words[8]}};
}

Decoded<BoardStatus> decode_status(std::span<const std::uint32_t> words, std::size_t offset_bytes) noexcept {
  auto h = expect_header(words, offset_bytes, MessageType::Status);
  if (!h) return h.error();
  const auto r = words.subspan(kMessageHeaderWords, kStatusRegisterCount);
  if (reg::kFwProtocol.get(r[0]) != kProtocolVersion) {
    return DecodeError{DecodeErrc::ReadoutBadVersion, offset_bytes + 8, reg::kFwProtocol.get(r[0]), kProtocolVersion,
                       "FIRMWARE_VERSION protocol byte"};
  }
  if (!reserved_clear(r[1], reg::kStatus.defined_bits)) {
    return reserved_error(offset_bytes + 12, r[1], reg::kStatus.defined_bits, "STATUS reserved bits");
  }
  if (!reserved_clear(r[10], reg::kLatencyCapacity.defined_bits)) {
    return reserved_error(offset_bytes + 48, r[10], reg::kLatencyCapacity.defined_bits,
                          "LATENCY_CAPACITY bits 24-31");
  }
  return BoardStatus{h->source_id, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10]};
}

Decoded<std::size_t> summarise_block(std::span<const std::uint32_t> block, std::uint32_t event_number,
                                     std::uint32_t threshold, SummaryValue value,
                                     std::span<std::uint32_t> out) noexcept {
  const bool integral = value == SummaryValue::Integral;
  std::size_t count = 0;
  auto r = decode_msadc(block, event_number, 0, [&](const MsadcChannel& ch) {
    const std::size_t n_ped = std::min<std::size_t>(ch.n_samples, 4);
    std::uint32_t sum_ped = 0;
    for (std::size_t k = 0; k < n_ped; ++k) sum_ped += ch.sample(k);
    const std::uint32_t pedestal = sum_ped / static_cast<std::uint32_t>(n_ped);
    std::uint32_t max = 0;
    std::size_t peak = 0;
    std::int64_t area = 0;
    for (std::size_t k = 0; k < ch.n_samples; ++k) {
      const std::uint32_t s = ch.sample(k);
      if (s > max) {
        max = s;
        peak = k;
      }
      area += static_cast<std::int64_t>(s) - pedestal;
    }
    const std::uint32_t amplitude = max > pedestal ? max - pedestal : 0;
    if (amplitude < threshold || count == out.size()) return;
    ChannelSummary s;
    s.port = ch.port;
    s.adc_id = ch.adc_id;
    s.channel = ch.channel;
    s.value = integral ? static_cast<std::uint32_t>(std::clamp<std::int64_t>(area, 0, kMaxSummaryValue))
                       : std::min(amplitude, kMaxSummaryValue);
    s.time = static_cast<std::uint32_t>(std::min<std::size_t>(peak * kTimeUnitsPerSample, kMaxSummaryTime));
    out[count++] = summary_word(s);
  });
  if (!r) return r.error();
  return count;
}

}  // namespace na64::firmware::msadc_readout
