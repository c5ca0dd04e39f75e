// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/frontend_link.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "na64/firmware/apv.hpp"
#include "na64/firmware/straw_tdc.hpp"

namespace na64::firmware::frontend_link {
namespace {

constexpr std::size_t kBase = 40;
constexpr std::uint32_t kSource = 895;
constexpr std::uint32_t kSpillMax = 2047;
constexpr std::uint32_t kParticle1e7 = 10'000'000;

void expect_error(const DecodeError& e, DecodeErrc code, std::size_t offset, std::uint64_t found,
                  std::uint64_t expected) {
  EXPECT_EQ(e.code, code) << e.message();
  EXPECT_EQ(e.offset_bytes, offset) << e.message();
  EXPECT_EQ(e.found, found) << e.message();
  EXPECT_EQ(e.expected, expected) << e.message();
}

template <class T>
void expect_error(const Decoded<T>& r, DecodeErrc code, std::size_t offset, std::uint64_t found,
                  std::uint64_t expected) {
  ASSERT_FALSE(r.ok());
  expect_error(r.error(), code, offset, found, expected);
}

std::vector<std::uint32_t> header_words(MessageType type, std::uint32_t length, std::uint32_t source) {
  std::array<std::uint32_t, kMessageHeaderWords> w{};
  encode(MessageHeader{type, length, source}, w);
  return {w.begin(), w.end()};
}

template <class M>
std::vector<std::uint32_t> encoded(const M& m) {
  std::vector<std::uint32_t> out(64, 0xEEEEEEEEu);
  const std::size_t n = encode(m, out);
  EXPECT_NE(n, 0u);
  out.resize(n);
  return out;
}

std::vector<std::uint32_t> requests_message(std::span<const EventRef> requests) {
  std::vector<std::uint32_t> out(event_requests_words(requests.size()));
  EXPECT_EQ(encode_event_requests(kSource, requests, out), out.size());
  return out;
}

Decoded<MessageHeader> decode_requests(std::span<const std::uint32_t> words, std::vector<EventRef>& seen) {
  return decode_event_requests(words, kBase, [&](const EventRef& r) { seen.push_back(r); });
}

constexpr EventRef kLimitRef{kSpillMax, kParticle1e7, kMaxRequestId};

/// Event data for `ref` with a sparse APV block written in place: ADC 2,
/// chip 1, one hit on channel 5. Words 5-6 ADC header, 7-8 chip header, 9 the hit.
std::vector<std::uint32_t> apv_event(const EventRef& ref) {
  std::vector<std::uint32_t> out(64);
  ApvFormat format;
  format.sparse = true;
  ApvBlockWriter w(std::span<std::uint32_t>(out).subspan(kEventDataHeadWords), ref.particle, 1234, format);
  EXPECT_TRUE(w.begin_adc(2));
  ApvChipHeader chip;
  chip.chip_id = 1;
  const std::array<ApvSparseHit, 1> hits{ApvSparseHit{5, {100, 200, 300}}};
  EXPECT_TRUE(w.add_sparse_chip(chip, hits));
  const std::size_t block = w.finish();
  EXPECT_EQ(block, 5u);
  const std::size_t n =
      encode(EventData{kSource, ref, BlockKind::Apv, std::span<const std::uint32_t>(out).subspan(5, block)}, out);
  EXPECT_EQ(n, kEventDataHeadWords + block);
  out.resize(n);
  return out;
}

/// Event data for `ref` with a straw TDC block written in place: TDC 3, a
/// leading and a trailing edge on channel 10. Words 5 header, 6 trigger word,
/// 7-8 hits, 9 trailer.
std::vector<std::uint32_t> straw_event(const EventRef& ref) {
  std::vector<std::uint32_t> out(64);
  StrawTdcBlockWriter w(std::span<std::uint32_t>(out).subspan(kEventDataHeadWords), ref.particle, ref.spill);
  EXPECT_TRUE(w.begin_tdc(3));
  EXPECT_TRUE(w.add_hit(10, StrawEdge::Leading, 1000));
  EXPECT_TRUE(w.add_hit(10, StrawEdge::Trailing, 1400));
  const std::size_t block = w.finish();
  EXPECT_EQ(block, 5u);
  const std::size_t n = encode(
      EventData{kSource, ref, BlockKind::StrawTdc, std::span<const std::uint32_t>(out).subspan(5, block)}, out);
  EXPECT_EQ(n, kEventDataHeadWords + block);
  out.resize(n);
  return out;
}


TEST(FrontendLinkBitField, FieldsTileTheirWords) {
  EXPECT_EQ(field::kKey.mask() | field::kVersion.mask() | field::kType.mask(), 0xFFFF'FFFFu);
  EXPECT_EQ(field::kKey.mask() & field::kVersion.mask(), 0u);
  EXPECT_EQ(field::kLength.mask() | field::kSourceId.mask(), 0xFFFF'FFFFu);
  EXPECT_EQ(field::kLength.mask() & field::kSourceId.mask(), 0u);
  EXPECT_EQ(field::kSpill.mask() | field::kRequestId.mask(), 0xFFFF'FFFFu);
  EXPECT_EQ(field::kSpill.mask() & field::kGateOpen.mask(), 0u);
  EXPECT_EQ(field::kSourceId.max(), 1023u) << "10 bits, the S-Link source id";
  EXPECT_TRUE(field::kParticle.fits(kParticle1e7));
  EXPECT_TRUE(field::kSpill.fits(kSpillMax));
  EXPECT_FALSE(field::kSpill.fits(kSpillMax + 1));
}

TEST(FrontendLinkHeader, EncodesExactWordsAtFieldLimits) {
  EXPECT_EQ(header_words(MessageType::SpillGate, kMaxMessageWords, kSource),
            (std::vector<std::uint32_t>{0x8201'4C46u, (895u << 22) | 0x3F'FFFFu}));
  EXPECT_EQ(header_words(MessageType::SpillBegin, 3, 0), (std::vector<std::uint32_t>{0x0101'4C46u, 3u}));
}

TEST(FrontendLinkHeader, KeyIsTheBytesFL) {
  const auto w = header_words(MessageType::NotFound, 4, 1);
  const auto* bytes = reinterpret_cast<const unsigned char*>(w.data());
  EXPECT_EQ(bytes[0], 'F');
  EXPECT_EQ(bytes[1], 'L');
}

TEST(FrontendLinkHeader, RoundTripsEveryType) {
  for (const auto t : {MessageType::SpillBegin, MessageType::SpillEnd, MessageType::EventData, MessageType::TooLate,
                       MessageType::NotFound, MessageType::EventRequests, MessageType::SpillGate}) {
    auto w = header_words(t, 2, 17);
    const auto h = decode_message_header(w, kBase);
    ASSERT_TRUE(h) << h.error().message();
    EXPECT_EQ(h->type, t);
    EXPECT_EQ(h->length_words, 2u);
    EXPECT_EQ(h->source_id, 17u);
    EXPECT_STRNE(to_string(t), "unknown");
    EXPECT_EQ(is_host_type(t), static_cast<std::uint32_t>(t) >= 0x81);
  }
}

TEST(FrontendLinkHeader, FrameHeaderDecodesBeforeTheBodyHasArrived) {
  const auto w = header_words(MessageType::EventData, 1000, 620);
  const auto h = decode_frame_header(std::span<const std::uint32_t, 2>(w.data(), 2), kBase);
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->length_words, 1000u);
  EXPECT_EQ(h->source_id, 620u);
  expect_error(decode_message_header(w, kBase), DecodeErrc::Truncated, kBase + 4, 1000, 2);
}

TEST(FrontendLinkHeader, RejectsOneWordAsTruncated) {
  const std::vector<std::uint32_t> w{0x0101'4C46u};
  expect_error(decode_message_header(w, kBase), DecodeErrc::Truncated, kBase, 4, 8);
}

TEST(FrontendLinkHeader, RejectsBadKey) {
  auto w = header_words(MessageType::SpillBegin, 2, 1);
  w[0] ^= 0x1u;
  expect_error(decode_message_header(w, kBase), DecodeErrc::LinkBadKey, kBase, 0x4C47, kMessageKey);
}

TEST(FrontendLinkHeader, RejectsAnMsadcReadoutMessage) {
  std::array<std::uint32_t, 2> w{};
  msadc_readout::encode(msadc_readout::MessageHeader{msadc_readout::MessageType::NotFound, 2, 1}, w);
  expect_error(decode_message_header(w, kBase), DecodeErrc::LinkBadKey, kBase, 0x4D52, kMessageKey);
}

TEST(FrontendLinkHeader, RejectsProtocolVersion2) {
  auto w = header_words(MessageType::SpillBegin, 2, 1);
  w[0] = (w[0] & ~field::kVersion.mask()) | field::kVersion.put(2);
  expect_error(decode_message_header(w, kBase), DecodeErrc::LinkBadVersion, kBase, 2, 1);
}

TEST(FrontendLinkHeader, RejectsUnknownType) {
  for (const std::uint32_t t : {0x00u, 0x06u, 0x80u, 0x83u, 0xFFu}) {
    auto w = header_words(MessageType::SpillBegin, 2, 1);
    w[0] = (w[0] & ~field::kType.mask()) | field::kType.put(t);
    expect_error(decode_message_header(w, kBase), DecodeErrc::LinkBadType, kBase, t, 0);
  }
}

TEST(FrontendLinkHeader, RejectsLengthBelow2AsBadSize) {
  for (const std::uint32_t length : {0u, 1u}) {
    const auto w = header_words(MessageType::SpillBegin, length, 1);
    expect_error(decode_message_header(w, kBase), DecodeErrc::BadSize, kBase + 4, length, 0);
  }
}

TEST(FrontendLinkHeader, RejectsSourceId896) {
  const auto w = header_words(MessageType::NotFound, 2, 896);
  expect_error(decode_message_header(w, kBase), DecodeErrc::BadSourceId, kBase + 4, 896, 0);
}


TEST(FrontendLinkSpillGate, OpenWritesExactWords) {
  const auto w = encoded(SpillGate{kSource, kSpillMax, true, 0});
  EXPECT_EQ(w, (std::vector<std::uint32_t>{0x8201'4C46u, (895u << 22) | 4u, 0x8000'07FFu, 0u}));
  const auto g = decode_spill_gate(w, kBase);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->source_id, kSource);
  EXPECT_EQ(g->spill, kSpillMax);
  EXPECT_TRUE(g->open);
  EXPECT_EQ(g->particles, 0u);
}

TEST(FrontendLinkSpillGate, CloseRoundTripsAtFieldLimits) {
  const auto w = encoded(SpillGate{0, 5, false, kMaxParticleCount});
  EXPECT_EQ(w[2], 5u);
  EXPECT_EQ(w[3], 0x00FF'FFFFu);
  const auto g = decode_spill_gate(w, kBase);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->spill, 5u);
  EXPECT_FALSE(g->open);
  EXPECT_EQ(g->particles, kMaxParticleCount);
}

TEST(FrontendLinkSpillGate, EncoderRefusesOutOfRange) {
  std::vector<std::uint32_t> out(4);
  EXPECT_EQ(encode(SpillGate{1, 1, true, 1}, out), 0u) << "particles are counted at close";
  EXPECT_EQ(encode(SpillGate{1, 2048, true, 0}, out), 0u);
  EXPECT_EQ(encode(SpillGate{1, 1, false, kMaxParticleCount + 1}, out), 0u);
  EXPECT_EQ(encode(SpillGate{896, 1, true, 0}, out), 0u);
  EXPECT_EQ(encode(SpillGate{1, 1, true, 0}, std::span<std::uint32_t>(out).first(3)), 0u);
}

TEST(FrontendLinkSpillGate, RejectsReservedBitsOfWord2) {
  for (const std::uint32_t bit : {1u << 11, 1u << 30}) {
    auto w = encoded(SpillGate{1, 7, false, 3});
    w[2] |= bit;
    expect_error(decode_spill_gate(w, kBase), DecodeErrc::LinkReservedBits, kBase + 8, bit, 0);
  }
}

TEST(FrontendLinkSpillGate, RejectsAParticleCountAtOpen) {
  auto w = encoded(SpillGate{1, 7, true, 0});
  w[3] = 200;
  expect_error(decode_spill_gate(w, kBase), DecodeErrc::LinkReservedBits, kBase + 12, 200, 0);
}

TEST(FrontendLinkSpillGate, RejectsReservedBitsOfTheCountAtClose) {
  auto w = encoded(SpillGate{1, 7, false, 3});
  w[3] |= 1u << 24;
  expect_error(decode_spill_gate(w, kBase), DecodeErrc::LinkReservedBits, kBase + 12, 1u << 24, 0);
}

TEST(FrontendLinkSpillGate, RejectsLength5AndAnotherType) {
  auto w = encoded(SpillGate{1, 7, false, 3});
  w.push_back(0);
  w[1] += 1;
  expect_error(decode_spill_gate(w, kBase), DecodeErrc::BadSize, kBase + 4, 5, 4);
  const auto begin = encoded(SpillBegin{1, 7});
  expect_error(decode_spill_gate(begin, kBase), DecodeErrc::LinkBadType, kBase, 0x01, 0x82);
}


TEST(FrontendLinkSpill, BeginAndEndRoundTripWithExactWords) {
  const auto b = encoded(SpillBegin{kSource, kSpillMax});
  EXPECT_EQ(b, (std::vector<std::uint32_t>{0x0101'4C46u, (895u << 22) | 3u, 2047u}));
  const auto db = decode_spill_begin(b, kBase);
  ASSERT_TRUE(db) << db.error().message();
  EXPECT_EQ(db->source_id, kSource);
  EXPECT_EQ(db->spill, kSpillMax);

  const auto e = encoded(SpillEnd{kSource, kSpillMax, kMaxParticleCount});
  EXPECT_EQ(e, (std::vector<std::uint32_t>{0x0201'4C46u, (895u << 22) | 4u, 2047u, 0x00FF'FFFFu}));
  const auto de = decode_spill_end(e, kBase);
  ASSERT_TRUE(de) << de.error().message();
  EXPECT_EQ(de->spill, kSpillMax);
  EXPECT_EQ(de->events_held, kMaxParticleCount);
}

TEST(FrontendLinkSpill, EncodersRefuseOutOfRange) {
  std::vector<std::uint32_t> out(8);
  EXPECT_EQ(encode(SpillBegin{1, 2048}, out), 0u);
  EXPECT_EQ(encode(SpillBegin{896, 1}, out), 0u);
  EXPECT_EQ(encode(SpillEnd{1, 1, kMaxParticleCount + 1}, out), 0u);
  EXPECT_EQ(encode(SpillEnd{1, 1, 1}, std::span<std::uint32_t>(out).first(3)), 0u);
}

TEST(FrontendLinkSpill, RejectsReservedBits) {
  auto b = encoded(SpillBegin{1, 7});
  b[2] |= 1u << 11;
  expect_error(decode_spill_begin(b, kBase), DecodeErrc::LinkReservedBits, kBase + 8, 1u << 11, 0);
  auto e = encoded(SpillEnd{1, 7, 9});
  e[2] |= 1u << 31;
  expect_error(decode_spill_end(e, kBase), DecodeErrc::LinkReservedBits, kBase + 8, 1u << 31, 0);
  e = encoded(SpillEnd{1, 7, 9});
  e[3] |= 0xFF00'0000u;
  expect_error(decode_spill_end(e, kBase), DecodeErrc::LinkReservedBits, kBase + 12, 0xFF00'0000u, 0);
}

TEST(FrontendLinkSpill, RejectsWrongLengths) {
  auto b = header_words(MessageType::SpillBegin, 2, 1);
  expect_error(decode_spill_begin(b, kBase), DecodeErrc::BadSize, kBase + 4, 2, 3);
  auto e = encoded(SpillEnd{1, 7, 9});
  e[1] -= 1;
  expect_error(decode_spill_end(e, kBase), DecodeErrc::BadSize, kBase + 4, 3, 4);
}


TEST(FrontendLinkRequests, RoundTripsABatchAtFieldLimits) {
  const std::vector<EventRef> sent{kLimitRef, {0, 0, 0}, {kSpillMax, kMaxParticle, 1}};
  const auto w = requests_message(sent);
  ASSERT_EQ(w.size(), 8u);
  EXPECT_EQ(w[0], 0x8101'4C46u);
  EXPECT_EQ(w[1], (895u << 22) | 8u);
  EXPECT_EQ(w[2], kParticle1e7);
  EXPECT_EQ(w[3], 0xFFFF'FFFFu) << "spill 2047, request id 2^21 - 1";
  std::vector<EventRef> seen;
  const auto h = decode_requests(w, seen);
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->source_id, kSource);
  EXPECT_EQ(seen, sent);
}

TEST(FrontendLinkRequests, EventReferenceWordsAreTheMsadcReadoutOnes) {
  const std::vector<EventRef> refs{kLimitRef, {0, 0, 0}, {17, 12345, 678}};
  const std::vector<msadc_readout::EventRef> same{
      {kSpillMax, kParticle1e7, kMaxRequestId}, {0, 0, 0}, {17, 12345, 678}};
  const auto w = requests_message(refs);
  std::vector<std::uint32_t> m(msadc_readout::event_requests_words(same.size()));
  ASSERT_EQ(msadc_readout::encode_event_requests(kSource, same, m), m.size());
  EXPECT_EQ(std::vector<std::uint32_t>(w.begin() + 2, w.end()), std::vector<std::uint32_t>(m.begin() + 2, m.end()));
}

TEST(FrontendLinkRequests, EncoderRefusesEmptyOutOfRangeAndTooSmall) {
  std::vector<std::uint32_t> out(16);
  EXPECT_EQ(encode_event_requests(1, {}, out), 0u);
  for (const EventRef bad :
       {EventRef{2048, 0, 0}, EventRef{0, kMaxParticle + 1, 0}, EventRef{0, 0, kMaxRequestId + 1}}) {
    const std::array<EventRef, 1> one{bad};
    EXPECT_EQ(encode_event_requests(1, one, out), 0u);
  }
  const std::array<EventRef, 1> one{EventRef{1, 1, 1}};
  EXPECT_EQ(encode_event_requests(896, one, out), 0u);
  EXPECT_EQ(encode_event_requests(1, one, std::span<std::uint32_t>(out).first(3)), 0u);
}

TEST(FrontendLinkRequests, RejectsEmptyBatch) {
  const auto w = header_words(MessageType::EventRequests, 2, 1);
  std::vector<EventRef> seen;
  expect_error(decode_requests(w, seen), DecodeErrc::LinkEmptyBatch, kBase + 4, 0, 0);
}

TEST(FrontendLinkRequests, RejectsHalfARequest) {
  const std::array<EventRef, 1> one{EventRef{1, 1, 1}};
  auto w = requests_message(one);
  w.push_back(0);
  w[1] += 1;
  std::vector<EventRef> seen;
  expect_error(decode_requests(w, seen), DecodeErrc::SizeMismatch, kBase + 4, 5, 0);
}

TEST(FrontendLinkRequests, RejectsReservedBitsAndVisitsNothing) {
  const std::array<EventRef, 2> two{EventRef{1, 1, 1}, EventRef{1, 2, 2}};
  auto w = requests_message(two);
  w[4] |= 0x0100'0000u;
  std::vector<EventRef> seen;
  expect_error(decode_requests(w, seen), DecodeErrc::LinkReservedBits, kBase + 16, 0x0100'0000u, 0);
  EXPECT_TRUE(seen.empty()) << "all or nothing";
}

TEST(FrontendLinkRequests, RejectsAFrontEndMessage) {
  const auto w = encoded(NotFound{1, {1, 1, 1}});
  std::vector<EventRef> seen;
  expect_error(decode_requests(w, seen), DecodeErrc::LinkBadType, kBase, 0x05, 0x81);
}


TEST(FrontendLinkEventData, ApvRoundTripsAndTheBlockStaysInPlace) {
  const auto w = apv_event(kLimitRef);
  ASSERT_EQ(w.size(), 10u);
  EXPECT_EQ(w[0], 0x0301'4C46u);
  EXPECT_EQ(w[1], (895u << 22) | 10u);
  EXPECT_EQ(w[2], kParticle1e7);
  EXPECT_EQ(w[3], 0xFFFF'FFFFu);
  EXPECT_EQ(w[4], 1u) << "block kind APV";
  const auto e = decode_event_data(w, kBase);
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_EQ(e->source_id, kSource);
  EXPECT_EQ(e->ref, kLimitRef);
  EXPECT_EQ(e->kind, BlockKind::Apv);
  EXPECT_EQ(e->block.data(), w.data() + 5);
  EXPECT_EQ(e->block.size(), 5u);
  EXPECT_EQ(e->block_offset_bytes, kBase + 20);
  std::vector<std::uint32_t> channels;
  const auto r = decode_apv(e->block, e->ref.particle, e->block_offset_bytes,
                            [&](const ApvHit& h) { channels.push_back(h.chip_id * 1000 + h.channel); });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(channels, (std::vector<std::uint32_t>{1005}));
}

TEST(FrontendLinkEventData, StrawRoundTrips) {
  const EventRef ref{17, 4097, 12};
  const auto w = straw_event(ref);
  ASSERT_EQ(w.size(), 10u);
  EXPECT_EQ(w[4], 2u) << "block kind straw TDC";
  EXPECT_EQ(w[6], straw_trigger_word(4097, 17));
  const auto e = decode_event_data(w, kBase);
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_EQ(e->ref, ref);
  EXPECT_EQ(e->kind, BlockKind::StrawTdc);
  EXPECT_EQ(e->block.size(), 5u);
}

TEST(FrontendLinkEventData, CopiesABlockFromElsewhere) {
  const auto in_place = straw_event({3, 4, 5});
  const std::vector<std::uint32_t> block(in_place.begin() + 5, in_place.end());
  std::vector<std::uint32_t> out(in_place.size(), 0xEEEEEEEEu);
  const EventData m{kSource, {3, 4, 5}, BlockKind::StrawTdc, block};
  EXPECT_EQ(encode(m, out), in_place.size());
  EXPECT_EQ(out, in_place);
  EXPECT_EQ(encode(m, std::span<std::uint32_t>(out).first(in_place.size() - 1)), 0u);
}

TEST(FrontendLinkEventData, EmptyBlockRoundTrips) {
  const auto w = encoded(EventData{3, {1, 2, 3}, BlockKind::Apv, {}});
  ASSERT_EQ(w.size(), 5u);
  const auto e = decode_event_data(w, kBase);
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_TRUE(e->block.empty());
}

TEST(FrontendLinkEventData, EncoderRefusesAnUnknownKindAndOutOfRange) {
  std::vector<std::uint32_t> out(8);
  EXPECT_EQ(encode(EventData{1, {1, 1, 1}, static_cast<BlockKind>(3), {}}, out), 0u);
  EXPECT_EQ(encode(EventData{896, {1, 1, 1}, BlockKind::Apv, {}}, out), 0u);
  EXPECT_EQ(encode(EventData{1, {2048, 1, 1}, BlockKind::Apv, {}}, out), 0u);
  EXPECT_EQ(encode(EventData{1, {1, 1, 1}, BlockKind::Apv, {}}, std::span<std::uint32_t>(out).first(4)), 0u);
}

TEST(FrontendLinkEventData, RejectsUnknownBlockKinds) {
  for (const std::uint32_t kind : {0u, 3u, 0xFFu}) {
    auto w = apv_event({1, 2, 3});
    w[4] = kind;
    expect_error(decode_event_data(w, kBase), DecodeErrc::LinkBadBlockKind, kBase + 16, kind, 0);
  }
}

TEST(FrontendLinkEventData, RejectsReservedBitsOfWord4AndOfTheReference) {
  auto w = apv_event({1, 2, 3});
  w[4] |= 1u << 8;
  expect_error(decode_event_data(w, kBase), DecodeErrc::LinkReservedBits, kBase + 16, 1u << 8, 0);
  w = apv_event({1, 2, 3});
  w[2] |= 1u << 31;
  expect_error(decode_event_data(w, kBase), DecodeErrc::LinkReservedBits, kBase + 8, 1u << 31, 0);
}

TEST(FrontendLinkEventData, RejectsLength4) {
  auto w = header_words(MessageType::EventData, 4, 1);
  w.push_back(1);
  w.push_back(1);
  expect_error(decode_event_data(w, kBase), DecodeErrc::BadSize, kBase + 4, 4, 5);
}

TEST(FrontendLinkEventData, ReportsAnApvBlockOfAnotherParticleAtTheChipHeader) {
  auto w = apv_event({1, 0x123, 3});
  w[2] = 0x124;
  expect_error(decode_event_data(w, kBase), DecodeErrc::EventNumberMismatch, kBase + 4 * 7, 0x123, 0x124);
}

TEST(FrontendLinkEventData, ReportsAStrawBlockOfAnotherSpillAtTheTriggerWord) {
  auto w = straw_event({17, 9, 3});
  w[3] = field::kSpill.put(18) | field::kRequestId.put(3);
  expect_error(decode_event_data(w, kBase), DecodeErrc::SpillMismatch, kBase + 4 * 6, 17, 18);
}

TEST(FrontendLinkEventData, ReportsAStrawBlockSentAsApv) {
  auto w = straw_event({17, 9, 3});
  w[4] = static_cast<std::uint32_t>(BlockKind::Apv);
  // The trigger word read as the ADC header's word 1: format byte 0xC0, no triple frame.
  expect_error(decode_event_data(w, kBase), DecodeErrc::BadApvFormat, kBase + 4 * 6, 0xC0, 0);
}

TEST(FrontendLinkEventData, ReportsABrokenStrawTrailer) {
  auto w = straw_event({17, 9, 3});
  w[9] += 1;  // hit count 3 for 2 hit words
  expect_error(decode_event_data(w, kBase), DecodeErrc::StrawHitCountMismatch, kBase + 4 * 9, 3, 2);
}


TEST(FrontendLinkAnswers, TooLateRoundTripsAtFieldLimits) {
  const auto w = encoded(TooLate{kSource, kLimitRef, kSpillMax, kMaxParticle});
  EXPECT_EQ(w, (std::vector<std::uint32_t>{0x0401'4C46u, (895u << 22) | 6u, kParticle1e7, 0xFFFF'FFFFu,
                                           0x00FF'FFFFu, 2047u}));
  const auto t = decode_too_late(w, kBase);
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->ref, kLimitRef);
  EXPECT_EQ(t->oldest_spill, kSpillMax);
  EXPECT_EQ(t->oldest_particle, kMaxParticle);
}

TEST(FrontendLinkAnswers, TooLateRejectsReservedBitsOfTheOldestEvent) {
  auto w = encoded(TooLate{1, {1, 2, 3}, 4, 5});
  w[4] |= 1u << 24;
  expect_error(decode_too_late(w, kBase), DecodeErrc::LinkReservedBits, kBase + 16, 1u << 24, 0);
  w = encoded(TooLate{1, {1, 2, 3}, 4, 5});
  w[5] |= 1u << 11;
  expect_error(decode_too_late(w, kBase), DecodeErrc::LinkReservedBits, kBase + 20, 1u << 11, 0);
}

TEST(FrontendLinkAnswers, TooLateEncoderRefusesAnOldestEventOutOfRange) {
  std::vector<std::uint32_t> out(8);
  EXPECT_EQ(encode(TooLate{1, {1, 2, 3}, 2048, 0}, out), 0u);
  EXPECT_EQ(encode(TooLate{1, {1, 2, 3}, 0, kMaxParticle + 1}, out), 0u);
}

TEST(FrontendLinkAnswers, NotFoundRoundTripsAndRejectsLength5) {
  const auto w = encoded(NotFound{kSource, kLimitRef});
  EXPECT_EQ(w, (std::vector<std::uint32_t>{0x0501'4C46u, (895u << 22) | 4u, kParticle1e7, 0xFFFF'FFFFu}));
  const auto n = decode_not_found(w, kBase);
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(n->ref, kLimitRef);
  auto longer = w;
  longer.push_back(0);
  longer[1] += 1;
  expect_error(decode_not_found(longer, kBase), DecodeErrc::BadSize, kBase + 4, 5, 4);
}


using Seen = std::variant<SpillBegin, SpillEnd, EventData, TooLate, NotFound>;

TEST(FrontendLinkWalker, WalksAStreamOfEveryFrontEndMessage) {
  std::vector<std::uint32_t> stream;
  auto append = [&](const std::vector<std::uint32_t>& m) { stream.insert(stream.end(), m.begin(), m.end()); };
  append(encoded(SpillBegin{620, 17}));
  append(apv_event({17, 5, 1}));
  append(encoded(TooLate{620, {15, 9, 2}, 16, 0}));
  append(encoded(NotFound{620, {17, 300, 3}}));
  append(straw_event({17, 6, 4}));
  append(encoded(SpillEnd{620, 17, 200}));

  std::vector<Seen> seen;
  std::vector<std::size_t> lengths;
  std::span<const std::uint32_t> rest(stream);
  std::size_t offset = kBase;
  while (!rest.empty()) {
    const auto n = decode_frontend_message(rest, offset, [&](const auto& m) { seen.emplace_back(m); });
    ASSERT_TRUE(n) << n.error().message();
    lengths.push_back(*n);
    rest = rest.subspan(*n);
    offset += *n * 4;
  }
  EXPECT_EQ(lengths, (std::vector<std::size_t>{3, 10, 6, 4, 10, 4}));
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(std::get<SpillBegin>(seen[0]).spill, 17u);
  EXPECT_EQ(std::get<EventData>(seen[1]).ref, (EventRef{17, 5, 1}));
  EXPECT_EQ(std::get<EventData>(seen[1]).block_offset_bytes, kBase + 4 * (3 + 5));
  EXPECT_EQ(std::get<TooLate>(seen[2]).oldest_spill, 16u);
  EXPECT_EQ(std::get<NotFound>(seen[3]).ref, (EventRef{17, 300, 3}));
  EXPECT_EQ(std::get<EventData>(seen[4]).kind, BlockKind::StrawTdc);
  EXPECT_EQ(std::get<SpillEnd>(seen[5]).events_held, 200u);
}

TEST(FrontendLinkWalker, RefusesHostMessagesAndVisitsNothingOnError) {
  int visits = 0;
  const auto gate = encoded(SpillGate{1, 2, true, 0});
  expect_error(decode_frontend_message(gate, kBase, [&](const auto&) { ++visits; }), DecodeErrc::LinkBadType, kBase,
               0x82, 0);
  auto broken = apv_event({1, 2, 3});
  broken[8] &= ~1u;  // frame 1 not good
  expect_error(decode_frontend_message(broken, kBase, [&](const auto&) { ++visits; }), DecodeErrc::ApvFrameNotGood,
               kBase + 4 * 8, 6, 7);
  EXPECT_EQ(visits, 0);
}

TEST(FrontendLinkWalker, HostWalkerVisitsGatesAndRequests) {
  std::vector<std::uint32_t> stream = encoded(SpillGate{620, 9, false, 200});
  const std::array<EventRef, 2> two{EventRef{9, 1, 1}, EventRef{9, 199, 2}};
  const auto req = requests_message(two);
  stream.insert(stream.end(), req.begin(), req.end());
  std::vector<std::variant<SpillGate, EventRef>> seen;
  auto visit = [&](const auto& m) { seen.emplace_back(m); };
  const auto n1 = decode_host_message(stream, kBase, visit);
  ASSERT_TRUE(n1) << n1.error().message();
  EXPECT_EQ(*n1, 4u);
  const auto n2 = decode_host_message(std::span<const std::uint32_t>(stream).subspan(4), kBase + 16, visit);
  ASSERT_TRUE(n2) << n2.error().message();
  EXPECT_EQ(*n2, 6u);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(std::get<SpillGate>(seen[0]).particles, 200u);
  EXPECT_EQ(std::get<EventRef>(seen[1]), two[0]);
  EXPECT_EQ(std::get<EventRef>(seen[2]), two[1]);

  const auto answer = encoded(NotFound{1, {1, 1, 1}});
  expect_error(decode_host_message(answer, kBase, visit), DecodeErrc::LinkBadType, kBase, 0x05, 0);
  EXPECT_EQ(seen.size(), 3u);
}

TEST(FrontendLinkNames, ErrorCodesAndKindsHaveStableNames) {
  EXPECT_STREQ(to_string(DecodeErrc::LinkBadKey), "link-bad-key");
  EXPECT_STREQ(to_string(DecodeErrc::LinkBadVersion), "link-bad-version");
  EXPECT_STREQ(to_string(DecodeErrc::LinkBadType), "link-bad-type");
  EXPECT_STREQ(to_string(DecodeErrc::LinkReservedBits), "link-reserved-bits");
  EXPECT_STREQ(to_string(DecodeErrc::LinkEmptyBatch), "link-empty-batch");
  EXPECT_STREQ(to_string(DecodeErrc::LinkBadBlockKind), "link-bad-block-kind");
  EXPECT_STREQ(to_string(BlockKind::Apv), "apv");
  EXPECT_STREQ(to_string(BlockKind::StrawTdc), "straw-tdc");
}

TEST(FrontendLinkNames, ErrorMessageSaysWhatAndWhere) {
  auto w = apv_event({1, 2, 3});
  w[4] = 7;
  const auto e = decode_event_data(w, 0x100);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message(),
            "offset 272 (0x110): event data block kind: found 7 (0x7), expected 1 (APV) or 2 (straw TDC) "
            "[link-bad-block-kind]");
}

}  // namespace
}  // namespace na64::firmware::frontend_link
