// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/msadc_readout.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "na64/firmware/msadc.hpp"

namespace na64::firmware::msadc_readout {
namespace {

constexpr std::size_t kBase = 40;
constexpr std::uint32_t kSource = 895;
constexpr std::uint32_t kSpillMax = 2047;
constexpr std::uint32_t kParticle1e7 = 10'000'000;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

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

/// Two consecutive particles of spill 2047 ending at 1e7: the first with the
/// extreme summaries, the second with none and flagged not buffered.
std::vector<std::uint32_t> summary_packet() {
  std::vector<std::uint32_t> out(32, 0xEEEEEEEEu);
  SummaryPacketWriter w(out, kSource, kSpillMax);
  EXPECT_TRUE(w.begin_particle(kParticle1e7 - 1, 0xFFFF'FFFFu, false));
  EXPECT_TRUE(w.add_summary({0, 0, 0, 0, 0}));
  EXPECT_TRUE(w.add_summary({7, 3, 15, 0xFFFF, 127}));
  EXPECT_TRUE(w.begin_particle(kParticle1e7, 0, true));
  const std::size_t n = w.finish();
  EXPECT_EQ(n, 3u + 3 + 2 + 3);
  out.resize(n);
  return out;
}

struct SeenParticle {
  std::uint32_t source_id, spill, particle, time_ticks;
  bool not_buffered;
  std::vector<ChannelSummary> summaries;
  bool operator==(const SeenParticle&) const = default;
};

Decoded<SummaryPacketHead> decode_all(std::span<const std::uint32_t> words, std::vector<SeenParticle>& seen) {
  return decode_summary_packet(words, kBase, [&](const ParticleSummary& p) {
    SeenParticle s{p.source_id, p.spill, p.particle, p.time_ticks, p.not_buffered, {}};
    for (std::size_t k = 0; k < p.summaries.size(); ++k) s.summaries.push_back(p.summary(k));
    seen.push_back(s);
  });
}

Decoded<SummaryPacketHead> decode_all(std::span<const std::uint32_t> words) {
  std::vector<SeenParticle> seen;
  return decode_all(words, seen);
}

std::vector<std::uint32_t> requests_message(std::span<const EventRef> requests) {
  std::vector<std::uint32_t> out(event_requests_words(requests.size()));
  EXPECT_EQ(encode_event_requests(kSource, requests, out), out.size());
  return out;
}

Decoded<MessageHeader> decode_requests(std::span<const std::uint32_t> words, std::vector<EventRef>& seen) {
  return decode_event_requests(words, kBase, [&](const EventRef& r) { seen.push_back(r); });
}

template <class M>
std::vector<std::uint32_t> encoded(const M& m) {
  std::vector<std::uint32_t> out(64, 0xEEEEEEEEu);
  const std::size_t n = encode(m, out);
  EXPECT_NE(n, 0u);
  out.resize(n);
  return out;
}

/// An event answer for particle 1e7 of spill 2047: port 7, ADC 3, channels
/// 0 and 15, the block written in place behind the head words.
std::vector<std::uint32_t> event_answer(std::uint32_t request_id) {
  std::vector<std::uint32_t> out(64);
  MsadcBlockWriter bw(std::span<std::uint32_t>(out).subspan(kEventAnswerHeadWords), kParticle1e7);
  EXPECT_TRUE(bw.begin_adc(7, 3));
  const std::array<std::uint16_t, 3> a{100, 4095, 7};
  const std::array<std::uint16_t, 2> b{0, 1};
  EXPECT_TRUE(bw.add_channel(0, a));
  EXPECT_TRUE(bw.add_channel(15, b));
  const std::size_t block_words = bw.finish();
  EXPECT_EQ(block_words, 1u + 3 + 2);
  EventAnswer m{kSource, {kSpillMax, kParticle1e7, request_id},
                std::span<const std::uint32_t>(out).subspan(kEventAnswerHeadWords, block_words)};
  const std::size_t n = encode(m, out);
  EXPECT_EQ(n, kEventAnswerHeadWords + block_words);
  out.resize(n);
  return out;
}


TEST(MsadcReadoutBitField, GetsPutsAndChecksRange) {
  constexpr BitField f{4, 3};
  EXPECT_EQ(f.max(), 7u);
  EXPECT_EQ(f.mask(), 0x70u);
  EXPECT_EQ(f.put(5), 0x50u);
  EXPECT_EQ(f.put(8 | 5), 0x50u);
  EXPECT_EQ(f.get(0xFFFF'FF5Fu), 5u);
  EXPECT_TRUE(f.fits(7));
  EXPECT_FALSE(f.fits(8));
  EXPECT_EQ((BitField{0, 32}.max()), 0xFFFF'FFFFu);
}

TEST(MsadcReadoutBitField, MessageFieldsTileTheirWords) {
  EXPECT_EQ(field::kKey.mask() | field::kVersion.mask() | field::kType.mask(), 0xFFFF'FFFFu);
  EXPECT_EQ(field::kKey.mask() & field::kVersion.mask(), 0u);
  EXPECT_EQ(field::kLength.mask() | field::kSourceId.mask(), 0xFFFF'FFFFu);
  EXPECT_EQ(field::kLength.mask() & field::kSourceId.mask(), 0u);
  EXPECT_EQ(field::kSpill.mask() | field::kRequestId.mask(), 0xFFFF'FFFFu);
  EXPECT_EQ(field::kSpill.mask() & field::kRequestId.mask(), 0u);
  EXPECT_EQ(field::kValue.mask() | field::kTime.mask() | field::kChannel.mask() | field::kAdcId.mask() |
                field::kPort.mask(),
            0xFFFF'FFFFu);
  EXPECT_EQ(field::kChannelKey.mask(), field::kChannel.mask() | field::kAdcId.mask() | field::kPort.mask());
  EXPECT_TRUE(field::kParticle.fits(kParticle1e7));
  EXPECT_TRUE(field::kSpill.fits(kSpillMax));
  EXPECT_FALSE(field::kSpill.fits(kSpillMax + 1));
}

TEST(MsadcReadoutRegisters, AddressesAscendAlignedAndResetValuesFitTheirBits) {
  EXPECT_TRUE(register_map_is_consistent());
  for (std::size_t i = 1; i < kRegisterMap.size(); ++i) {
    EXPECT_GT(kRegisterMap[i].address, kRegisterMap[i - 1].address) << kRegisterMap[i].name;
  }
}

TEST(MsadcReadoutRegisters, ConfigurationIsReadWriteBelow0x40AndStatusReadOnlyFrom0x40) {
  for (const Register& r : kRegisterMap) {
    EXPECT_EQ(r.access, r.address < kStatusFirstAddress ? Access::ReadWrite : Access::ReadOnly) << r.name;
  }
  std::size_t status = 0;
  for (const Register& r : kRegisterMap) status += r.address >= kStatusFirstAddress ? 1 : 0;
  EXPECT_EQ(status, kStatusRegisterCount);
}

TEST(MsadcReadoutRegisters, ResetValuesGiveTheTwoLevelReadoutOfDomainFigures) {
  EXPECT_EQ(static_cast<ReadoutMode>(reg::kMode.get(reg::kReadoutMode.reset)), ReadoutMode::Summary);
  EXPECT_EQ(static_cast<SummaryValue>(reg::kSummaryValue.get(reg::kReadoutMode.reset)), SummaryValue::Amplitude);
  EXPECT_EQ(reg::kSamples.get(reg::kSampleCount.reset), 32u);
  EXPECT_EQ(reg::kPorts.get(reg::kPortEnable.reset), 0xFFu);
  EXPECT_GT(reg::kSource.get(reg::kSourceId.reset), kMaxSourceId) << "a board is silent until given an id";
  EXPECT_EQ(reg::kGateEnable.get(reg::kSpillGate.reset), 1u);
  EXPECT_EQ(reg::kGateActiveLow.get(reg::kSpillGate.reset), 0u);
  EXPECT_EQ(reg::kFwProtocol.get(reg::kFirmwareVersion.reset), kProtocolVersion);
  EXPECT_EQ(readout_mode_register(ReadoutMode::Both, SummaryValue::Integral), 0x13u);
  EXPECT_EQ(readout_mode_register(ReadoutMode::Both, SummaryValue::Integral), reg::kReadoutMode.defined_bits);
}


TEST(MsadcReadoutHeader, EncodesExactWordsAtFieldLimits) {
  EXPECT_EQ(header_words(MessageType::EventRequests, kMaxMessageWords, kSource),
            (std::vector<std::uint32_t>{0x8101'4D52u, (895u << 22) | 0x3F'FFFFu}));
}

TEST(MsadcReadoutHeader, RoundTripsEveryType) {
  for (const auto t : {MessageType::SummaryPacket, MessageType::SpillBegin, MessageType::SpillEnd,
                       MessageType::EventAnswer, MessageType::FullEvent, MessageType::TooLate, MessageType::NotFound,
                       MessageType::BadRequest, MessageType::Status, MessageType::EventRequests}) {
    auto w = header_words(t, 2, 17);
    const auto h = decode_message_header(w, kBase);
    ASSERT_TRUE(h) << h.error().message();
    EXPECT_EQ(h->type, t);
    EXPECT_EQ(h->length_words, 2u);
    EXPECT_EQ(h->source_id, 17u);
    EXPECT_STRNE(to_string(t), "unknown");
  }
}

TEST(MsadcReadoutHeader, AcceptsMoreWordsThanTheMessage) {
  auto w = header_words(MessageType::NotFound, 2, 1);
  w.push_back(0xFFFF'FFFFu);
  const auto h = decode_message_header(w, kBase);
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->length_words, 2u);
}

TEST(MsadcReadoutHeader, RejectsOneWordAsTruncated) {
  const std::vector<std::uint32_t> w{0x0101'4D52u};
  expect_error(decode_message_header(w, kBase), DecodeErrc::Truncated, kBase, 4, 8);
}

TEST(MsadcReadoutHeader, RejectsLengthBeyondTheWordsAsTruncated) {
  const auto w = header_words(MessageType::SpillBegin, 3, 1);
  expect_error(decode_message_header(w, kBase), DecodeErrc::Truncated, kBase + 4, 3, 2);
}

TEST(MsadcReadoutHeader, RejectsBadKey) {
  auto w = header_words(MessageType::SpillBegin, 2, 1);
  w[0] ^= 0x1u;
  expect_error(decode_message_header(w, kBase), DecodeErrc::ReadoutBadKey, kBase, 0x4D53, kMessageKey);
}

TEST(MsadcReadoutHeader, RejectsProtocolVersion2) {
  auto w = header_words(MessageType::SpillBegin, 2, 1);
  w[0] = (w[0] & ~field::kVersion.mask()) | field::kVersion.put(2);
  expect_error(decode_message_header(w, kBase), DecodeErrc::ReadoutBadVersion, kBase, 2, 1);
}

TEST(MsadcReadoutHeader, RejectsUnknownType) {
  for (const std::uint32_t t : {0x00u, 0x0Au, 0x80u, 0x82u}) {
    auto w = header_words(MessageType::SpillBegin, 2, 1);
    w[0] = (w[0] & ~field::kType.mask()) | field::kType.put(t);
    expect_error(decode_message_header(w, kBase), DecodeErrc::ReadoutBadType, kBase, t, 0);
  }
}

TEST(MsadcReadoutHeader, RejectsLengthBelow2AsBadSize) {
  const auto w = header_words(MessageType::SpillBegin, 1, 1);
  expect_error(decode_message_header(w, kBase), DecodeErrc::BadSize, kBase + 4, 1, 0);
}

TEST(MsadcReadoutHeader, RejectsSourceId896) {
  const auto w = header_words(MessageType::NotFound, 2, 896);
  expect_error(decode_message_header(w, kBase), DecodeErrc::BadSourceId, kBase + 4, 896, 0);
}


TEST(MsadcReadoutSummary, WritesExactWords) {
  const auto w = summary_packet();
  ASSERT_EQ(w.size(), 11u);
  EXPECT_EQ(w[0], 0x0101'4D52u);
  EXPECT_EQ(w[1], (895u << 22) | 11u);
  EXPECT_EQ(w[2], (2u << 16) | 2047u);
  EXPECT_EQ(w[3], kParticle1e7 - 1);
  EXPECT_EQ(w[4], 0xFFFF'FFFFu);
  EXPECT_EQ(w[5], 2u);
  EXPECT_EQ(w[6], 0u);
  EXPECT_EQ(w[7], 0xFFFF'FFFFu) << "port 7, ADC 3, channel 15, value 0xFFFF, time 127";
  EXPECT_EQ(w[8], kParticle1e7);
  EXPECT_EQ(w[9], 0u);
  EXPECT_EQ(w[10], 0x8000'0000u) << "no summary, not buffered";
}

TEST(MsadcReadoutSummary, RoundTripsAtFieldLimits) {
  const auto w = summary_packet();
  std::vector<SeenParticle> seen;
  const auto head = decode_all(w, seen);
  ASSERT_TRUE(head) << head.error().message();
  EXPECT_EQ(head->length_words, 11u);
  EXPECT_EQ(head->source_id, kSource);
  EXPECT_EQ(head->spill, kSpillMax);
  EXPECT_EQ(head->particle_count, 2u);
  const std::vector<SeenParticle> want{
      {kSource, kSpillMax, kParticle1e7 - 1, 0xFFFF'FFFFu, false, {{0, 0, 0, 0, 0}, {7, 3, 15, 0xFFFF, 127}}},
      {kSource, kSpillMax, kParticle1e7, 0, true, {}}};
  EXPECT_EQ(seen, want);
  EXPECT_DOUBLE_EQ(want[0].summaries[1].time_samples(), 31.75);
  EXPECT_EQ(want[0].summaries[1].key(), 511u);
}

TEST(MsadcReadoutSummary, RoundTripsEveryChannelOfASourceForTheLastParticleNumber) {
  std::vector<std::uint32_t> out(kSummaryPacketHeadWords + kParticleHeaderWords + kMaxSummariesPerParticle);
  SummaryPacketWriter w(out, 0, 0);
  ASSERT_TRUE(w.begin_particle(kMaxParticle, 1, false));
  for (std::uint32_t key = 0; key < kMaxSummariesPerParticle; ++key) {
    ASSERT_TRUE(w.add_summary({key / 64, key / 16 % 4, key % 16, key * 100, key % 128})) << key;
  }
  ASSERT_EQ(w.finish(), out.size());
  std::vector<SeenParticle> seen;
  const auto head = decode_all(out, seen);
  ASSERT_TRUE(head) << head.error().message();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].particle, kMaxParticle);
  ASSERT_EQ(seen[0].summaries.size(), kMaxSummariesPerParticle);
  for (std::uint32_t key = 0; key < kMaxSummariesPerParticle; ++key) {
    EXPECT_EQ(seen[0].summaries[key], (ChannelSummary{key / 64, key / 16 % 4, key % 16, key * 100, key % 128}));
  }
}

TEST(MsadcReadoutSummary, WriterRefusesEveryBrokenRule) {
  std::vector<std::uint32_t> out(64);
  auto fresh = [&](std::uint32_t source = 1, std::uint32_t spill = 1) {
    return SummaryPacketWriter(out, source, spill);
  };
  {
    auto w = fresh(896);
    EXPECT_FALSE(w.begin_particle(0, 0, false));
    EXPECT_EQ(w.finish(), 0u);
  }
  {
    auto w = fresh(1, 2048);
    EXPECT_FALSE(w.begin_particle(0, 0, false));
  }
  {
    auto w = fresh();
    EXPECT_FALSE(w.begin_particle(kMaxParticle + 1, 0, false));
  }
  {
    auto w = fresh();
    ASSERT_TRUE(w.begin_particle(5, 0, false));
    EXPECT_FALSE(w.begin_particle(7, 0, false)) << "not consecutive";
    EXPECT_EQ(w.finish(), 0u);
  }
  {
    auto w = fresh();
    EXPECT_FALSE(w.add_summary({0, 0, 0, 1, 1})) << "summary before a particle";
  }
  {
    auto w = fresh();
    ASSERT_TRUE(w.begin_particle(0, 0, false));
    ASSERT_TRUE(w.add_summary({1, 0, 0, 1, 1}));
    EXPECT_FALSE(w.add_summary({0, 3, 15, 1, 1})) << "key below the previous one";
  }
  {
    auto w = fresh();
    ASSERT_TRUE(w.begin_particle(0, 0, false));
    ASSERT_TRUE(w.add_summary({1, 0, 0, 1, 1}));
    EXPECT_FALSE(w.add_summary({1, 0, 0, 2, 1})) << "same channel twice";
  }
  for (const ChannelSummary bad : {ChannelSummary{8, 0, 0, 0, 0}, ChannelSummary{0, 4, 0, 0, 0},
                                   ChannelSummary{0, 0, 16, 0, 0}, ChannelSummary{0, 0, 0, 0x10000, 0},
                                   ChannelSummary{0, 0, 0, 0, 128}}) {
    auto w = fresh();
    ASSERT_TRUE(w.begin_particle(0, 0, false));
    EXPECT_FALSE(w.add_summary(bad));
  }
  {
    auto w = fresh();
    EXPECT_EQ(w.finish(), 0u) << "a packet has at least one particle";
  }
  {
    std::array<std::uint32_t, 7> small{};
    SummaryPacketWriter w(small, 1, 1);
    ASSERT_TRUE(w.begin_particle(0, 0, false));
    ASSERT_TRUE(w.add_summary({0, 0, 0, 1, 1}));
    EXPECT_FALSE(w.add_summary({0, 0, 1, 1, 1})) << "out of room";
    EXPECT_EQ(w.finish(), 0u);
  }
}

TEST(MsadcReadoutSummary, WriterRefuses513thSummary) {
  std::vector<std::uint32_t> out(1024);
  SummaryPacketWriter w(out, 1, 1);
  ASSERT_TRUE(w.begin_particle(0, 0, false));
  for (std::uint32_t key = 0; key < kMaxSummariesPerParticle; ++key) {
    ASSERT_TRUE(w.add_summary({key / 64, key / 16 % 4, key % 16, 1, 1}));
  }
  EXPECT_FALSE(w.add_summary({7, 3, 15, 1, 1}));
}

TEST(MsadcReadoutSummary, RejectsWrongTypeForTheDecoder) {
  const auto w = encoded(SpillBegin{1, 2});
  expect_error(decode_all(w), DecodeErrc::ReadoutBadType, kBase, 2, 1);
}

TEST(MsadcReadoutSummary, RejectsLength2AsBadSize) {
  const auto w = header_words(MessageType::SummaryPacket, 2, 1);
  expect_error(decode_all(w), DecodeErrc::BadSize, kBase + 4, 2, 3);
}

TEST(MsadcReadoutSummary, RejectsReservedBitsOfWord2) {
  auto w = summary_packet();
  w[2] |= 1u << 11;
  expect_error(decode_all(w), DecodeErrc::ReadoutReservedBits, kBase + 8, 1u << 11, 0);
}

TEST(MsadcReadoutSummary, RejectsEmptyPacket) {
  auto w = header_words(MessageType::SummaryPacket, 3, 1);
  w.push_back(5);  // spill 5, no particle
  expect_error(decode_all(w), DecodeErrc::ReadoutEmptyBatch, kBase + 8, 0, 0);
}

TEST(MsadcReadoutSummary, RejectsParticleHeaderCutByTheLength) {
  auto w = summary_packet();
  w[2] += 1u << 16;  // claims a third particle
  w.push_back(kParticle1e7 + 1);
  w.push_back(0);
  w[1] += 2;
  expect_error(decode_all(w), DecodeErrc::Truncated, kBase + 4 * 11, 2, 3);
}

TEST(MsadcReadoutSummary, RejectsSummariesBeyondTheLength) {
  auto w = summary_packet();
  w[10] |= 1;  // the last particle claims a summary that is not there
  expect_error(decode_all(w), DecodeErrc::Truncated, kBase + 4 * 10, 1, 0);
}

TEST(MsadcReadoutSummary, RejectsReservedBitsOfParticleWord0) {
  auto w = summary_packet();
  w[8] |= 1u << 24;
  expect_error(decode_all(w), DecodeErrc::ReadoutReservedBits, kBase + 4 * 8, 1u << 24, 0);
}

TEST(MsadcReadoutSummary, RejectsReservedBitsOfParticleWord2) {
  auto w = summary_packet();
  w[5] |= 1u << 30;
  expect_error(decode_all(w), DecodeErrc::ReadoutReservedBits, kBase + 4 * 5, 1u << 30, 0);
}

TEST(MsadcReadoutSummary, Rejects513Summaries) {
  auto w = summary_packet();
  w[10] = 513;
  expect_error(decode_all(w), DecodeErrc::ReadoutBadSummaryCount, kBase + 4 * 10, 513, 512);
}

TEST(MsadcReadoutSummary, RejectsParticleGap) {
  auto w = summary_packet();
  w[8] = kParticle1e7 + 1;
  expect_error(decode_all(w), DecodeErrc::ReadoutParticleGap, kBase + 4 * 8, kParticle1e7 + 1, kParticle1e7);
}

TEST(MsadcReadoutSummary, RejectsRepeatedParticle) {
  auto w = summary_packet();
  w[8] = kParticle1e7 - 1;
  expect_error(decode_all(w), DecodeErrc::ReadoutParticleGap, kBase + 4 * 8, kParticle1e7 - 1, kParticle1e7);
}

TEST(MsadcReadoutSummary, RejectsSummariesOutOfOrder) {
  auto w = summary_packet();
  std::swap(w[6], w[7]);
  expect_error(decode_all(w), DecodeErrc::ReadoutSummaryOrder, kBase + 4 * 7, 0, 511);
}

TEST(MsadcReadoutSummary, RejectsTheSameChannelTwice) {
  auto w = summary_packet();
  w[6] = summary_word({7, 3, 15, 1, 1});
  expect_error(decode_all(w), DecodeErrc::ReadoutSummaryOrder, kBase + 4 * 7, 511, 511);
}

TEST(MsadcReadoutSummary, RejectsWordsLeftAfterTheParticles) {
  auto w = summary_packet();
  w.push_back(0);
  w[1] += 1;
  expect_error(decode_all(w), DecodeErrc::SizeMismatch, kBase + 4, 12, 11);
}

TEST(MsadcReadoutSummary, DeliversParticlesBeforeAnErrorAndNoneAfter) {
  auto w = summary_packet();
  w[8] = kParticle1e7 + 1;
  std::vector<SeenParticle> seen;
  EXPECT_FALSE(decode_all(w, seen).ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].particle, kParticle1e7 - 1);
}


TEST(MsadcReadoutRequests, RoundTripsABatchAtFieldLimits) {
  const std::vector<EventRef> sent{{kSpillMax, kParticle1e7, kMaxRequestId}, {0, 0, 0}, {kSpillMax, kMaxParticle, 1}};
  const auto w = requests_message(sent);
  ASSERT_EQ(w.size(), 8u);
  EXPECT_EQ(w[0], 0x8101'4D52u);
  EXPECT_EQ(w[2], kParticle1e7);
  EXPECT_EQ(w[3], 0xFFFF'FFFFu) << "spill 2047, request id 2^21 - 1";
  std::vector<EventRef> seen;
  const auto h = decode_requests(w, seen);
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->source_id, kSource);
  EXPECT_EQ(seen, sent);
}

TEST(MsadcReadoutRequests, RoundTripsASingleRequest) {
  const std::array<EventRef, 1> sent{EventRef{3, 4, 5}};
  const auto w = requests_message(sent);
  ASSERT_EQ(w.size(), 4u);
  std::vector<EventRef> seen;
  ASSERT_TRUE(decode_requests(w, seen));
  EXPECT_EQ(seen, (std::vector<EventRef>{{3, 4, 5}}));
}

TEST(MsadcReadoutRequests, EncoderRefusesEmptyOutOfRangeAndTooSmall) {
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

TEST(MsadcReadoutRequests, RejectsEmptyBatch) {
  const auto w = header_words(MessageType::EventRequests, 2, 1);
  std::vector<EventRef> seen;
  expect_error(decode_requests(w, seen), DecodeErrc::ReadoutEmptyBatch, kBase + 4, 0, 0);
}

TEST(MsadcReadoutRequests, RejectsHalfARequest) {
  const std::array<EventRef, 1> one{EventRef{1, 1, 1}};
  auto w = requests_message(one);
  w.push_back(0);
  w[1] += 1;
  std::vector<EventRef> seen;
  expect_error(decode_requests(w, seen), DecodeErrc::SizeMismatch, kBase + 4, 5, 0);
}

TEST(MsadcReadoutRequests, RejectsReservedBitsAndVisitsNothing) {
  const std::array<EventRef, 2> two{EventRef{1, 1, 1}, EventRef{1, 2, 2}};
  auto w = requests_message(two);
  w[4] |= 0x8000'0000u;
  std::vector<EventRef> seen;
  expect_error(decode_requests(w, seen), DecodeErrc::ReadoutReservedBits, kBase + 16, 0x8000'0000u, 0);
  EXPECT_TRUE(seen.empty()) << "all or nothing, so that each request gets exactly one answer";
}

TEST(MsadcReadoutRequests, RejectsABoardMessage) {
  const auto w = encoded(NotFound{1, {1, 1, 1}});
  std::vector<EventRef> seen;
  expect_error(decode_requests(w, seen), DecodeErrc::ReadoutBadType, kBase, 7, 0x81);
}


TEST(MsadcReadoutAnswer, EventAnswerRoundTripsAndItsPayloadDecodesWithDecodeMsadc) {
  const auto w = event_answer(kMaxRequestId);
  ASSERT_EQ(w.size(), 10u);
  EXPECT_EQ(w[0], 0x0401'4D52u);
  EXPECT_EQ(w[1], (895u << 22) | 10u);
  const auto a = decode_event_answer(w, kBase);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->source_id, kSource);
  EXPECT_EQ(a->ref, (EventRef{kSpillMax, kParticle1e7, kMaxRequestId}));
  EXPECT_EQ(a->block_offset_bytes, kBase + 16);
  ASSERT_EQ(a->block.size(), 6u);
  EXPECT_EQ(a->block.data(), w.data() + 4);
  EXPECT_EQ(a->block[0] & 0xFFFu, kParticle1e7 & 0xFFFu) << "ADC event field = particle & 0xFFF";

  std::vector<std::vector<std::uint16_t>> samples;
  std::vector<std::uint32_t> chip_channels;
  const auto r = decode_msadc(a->block, a->ref.particle, a->block_offset_bytes, [&](const MsadcChannel& ch) {
    EXPECT_EQ(ch.port, 7u);
    chip_channels.push_back(ch.chip_channel());
    std::vector<std::uint16_t> s;
    for (std::size_t k = 0; k < ch.n_samples; ++k) s.push_back(ch.sample(k));
    samples.push_back(s);
  });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(chip_channels, (std::vector<std::uint32_t>{48, 63}));
  EXPECT_EQ(samples, (std::vector<std::vector<std::uint16_t>>{{100, 4095, 7}, {0, 1}}));
}

TEST(MsadcReadoutAnswer, EventAnswerCopiesABlockFromElsewhere) {
  const auto in_place = event_answer(9);
  const std::vector<std::uint32_t> block(in_place.begin() + 4, in_place.end());
  std::vector<std::uint32_t> out(in_place.size(), 0xEEEEEEEEu);
  EXPECT_EQ(encode(EventAnswer{kSource, {kSpillMax, kParticle1e7, 9}, block}, out), in_place.size());
  EXPECT_EQ(out, in_place);
  EXPECT_EQ(encode(EventAnswer{kSource, {kSpillMax, kParticle1e7, 9}, block},
                   std::span<std::uint32_t>(out).first(in_place.size() - 1)),
            0u);
}

TEST(MsadcReadoutAnswer, EventAnswerWithAnEmptyBlockRoundTrips) {
  const auto w = encoded(EventAnswer{3, {1, 2, 3}, {}});
  ASSERT_EQ(w.size(), 4u);
  const auto a = decode_event_answer(w, kBase);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_TRUE(a->block.empty());
}

TEST(MsadcReadoutAnswer, EventAnswerReportsABrokenBlockAtItsOffset) {
  auto w = event_answer(1);
  w[6] = (w[6] & 0x00FF'FFFFu) | (0x80u << 24);  // first data word of channel 0 marked "next"
  expect_error(decode_event_answer(w, kBase), DecodeErrc::BadMarker, kBase + 4 * 6, 0x80, 0x40);
}

TEST(MsadcReadoutAnswer, EventAnswerRefusesABlockOfAnotherEvent) {
  auto w = event_answer(1);
  w[2] = kParticle1e7 + 1;
  expect_error(decode_event_answer(w, kBase), DecodeErrc::EventNumberMismatch, kBase + 16, kParticle1e7 & 0xFFFu,
               (kParticle1e7 + 1) & 0xFFFu);
}

TEST(MsadcReadoutAnswer, EventAnswerRejectsLength3) {
  auto w = header_words(MessageType::EventAnswer, 3, 1);
  w.push_back(0);
  expect_error(decode_event_answer(w, kBase), DecodeErrc::BadSize, kBase + 4, 3, 4);
}

TEST(MsadcReadoutAnswer, EventAnswerRejectsReservedBitsOfItsReference) {
  auto w = event_answer(1);
  w[2] |= 0x0100'0000u;
  expect_error(decode_event_answer(w, kBase), DecodeErrc::ReadoutReservedBits, kBase + 8, 0x0100'0000u, 0);
}

TEST(MsadcReadoutAnswer, FullEventRoundTrips) {
  const auto answer = event_answer(0);
  const std::vector<std::uint32_t> block(answer.begin() + 4, answer.end());
  const auto w = encoded(FullEvent{kSource, kSpillMax, kParticle1e7, block});
  EXPECT_EQ(w[0], 0x0501'4D52u);
  const auto e = decode_full_event(w, kBase);
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_EQ(e->source_id, kSource);
  EXPECT_EQ(e->spill, kSpillMax);
  EXPECT_EQ(e->particle, kParticle1e7);
  EXPECT_EQ(std::vector<std::uint32_t>(e->block.begin(), e->block.end()), block);
  EXPECT_EQ(e->block_offset_bytes, kBase + 16);
}

TEST(MsadcReadoutAnswer, FullEventRejectsARequestId) {
  auto w = encoded(FullEvent{1, 2, 3, {}});
  w[3] |= field::kRequestId.put(1);
  expect_error(decode_full_event(w, kBase), DecodeErrc::ReadoutReservedBits, kBase + 12, 1u << 11, 0);
}

TEST(MsadcReadoutAnswer, TooLateRoundTripsAtFieldLimits) {
  const TooLate m{kSource, {kSpillMax, kParticle1e7, kMaxRequestId}, kSpillMax, kMaxParticle};
  const auto w = encoded(m);
  EXPECT_EQ(w, (std::vector<std::uint32_t>{0x0601'4D52u, (895u << 22) | 6u, kParticle1e7, 0xFFFF'FFFFu,
                                           kMaxParticle, kSpillMax}));
  const auto r = decode_too_late(w, kBase);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->source_id, kSource);
  EXPECT_EQ(r->ref, m.ref);
  EXPECT_EQ(r->oldest_spill, kSpillMax);
  EXPECT_EQ(r->oldest_particle, kMaxParticle);
}

TEST(MsadcReadoutAnswer, TooLateRejectsReservedBitsOfTheOldestEvent) {
  auto w = encoded(TooLate{1, {1, 1, 1}, 1, 1});
  w[4] |= 0xFF00'0000u;
  expect_error(decode_too_late(w, kBase), DecodeErrc::ReadoutReservedBits, kBase + 16, 0xFF00'0000u, 0);
  w = encoded(TooLate{1, {1, 1, 1}, 1, 1});
  w[5] |= 1u << 11;
  expect_error(decode_too_late(w, kBase), DecodeErrc::ReadoutReservedBits, kBase + 20, 1u << 11, 0);
}

TEST(MsadcReadoutAnswer, NotFoundRoundTripsAtFieldLimits) {
  const NotFound m{kSource, {kSpillMax, kParticle1e7, kMaxRequestId}};
  const auto w = encoded(m);
  ASSERT_EQ(w.size(), 4u);
  const auto r = decode_not_found(w, kBase);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->source_id, kSource);
  EXPECT_EQ(r->ref, m.ref);
}

TEST(MsadcReadoutAnswer, NotFoundRejectsLength5) {
  auto w = encoded(NotFound{1, {1, 1, 1}});
  w.push_back(0);
  w[1] += 1;
  expect_error(decode_not_found(w, kBase), DecodeErrc::BadSize, kBase + 4, 5, 4);
}

TEST(MsadcReadoutAnswer, BadRequestRoundTripsEveryReason) {
  for (const auto reason : {BadRequestReason::MalformedMessage, BadRequestReason::LatencyBufferOff,
                            BadRequestReason::QueueFull, BadRequestReason::WrongSource}) {
    const BadRequest m{kSource, {kSpillMax, kParticle1e7, kMaxRequestId}, reason};
    const auto w = encoded(m);
    ASSERT_EQ(w.size(), 5u);
    EXPECT_EQ(w[4], static_cast<std::uint32_t>(reason));
    const auto r = decode_bad_request(w, kBase);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->ref, m.ref);
    EXPECT_EQ(r->reason, reason);
    EXPECT_STRNE(to_string(reason), "unknown");
  }
  std::vector<std::uint32_t> out(8);
  EXPECT_EQ(encode(BadRequest{1, {1, 1, 1}, static_cast<BadRequestReason>(5)}, out), 0u);
}

TEST(MsadcReadoutAnswer, BadRequestRejectsUnknownReason) {
  for (const std::uint32_t reason : {0u, 5u, 255u}) {
    auto w = encoded(BadRequest{1, {1, 1, 1}, BadRequestReason::QueueFull});
    w[4] = reason;
    expect_error(decode_bad_request(w, kBase), DecodeErrc::ReadoutBadReason, kBase + 16, reason, 0);
  }
}

TEST(MsadcReadoutAnswer, BadRequestRejectsReservedBits) {
  auto w = encoded(BadRequest{1, {1, 1, 1}, BadRequestReason::QueueFull});
  w[4] |= 0x100u;
  expect_error(decode_bad_request(w, kBase), DecodeErrc::ReadoutReservedBits, kBase + 16, 0x100u, 0);
}

TEST(MsadcReadoutAnswer, EncodersRefuseOutOfRangeFields) {
  std::vector<std::uint32_t> out(16);
  EXPECT_EQ(encode(NotFound{896, {1, 1, 1}}, out), 0u);
  EXPECT_EQ(encode(NotFound{1, {2048, 1, 1}}, out), 0u);
  EXPECT_EQ(encode(TooLate{1, {1, 1, 1}, 1, kMaxParticle + 1}, out), 0u);
  EXPECT_EQ(encode(EventAnswer{1, {1, 1, kMaxRequestId + 1}, {}}, out), 0u);
  EXPECT_EQ(encode(SpillBegin{1, 2048}, out), 0u);
  EXPECT_EQ(encode(SpillEnd{896, 1, {}}, out), 0u);
  EXPECT_EQ(encode(NotFound{1, {1, 1, 1}}, std::span<std::uint32_t>(out).first(3)), 0u);
}


TEST(MsadcReadoutSpill, SpillBeginRoundTrips) {
  const auto w = encoded(SpillBegin{kSource, kSpillMax});
  EXPECT_EQ(w, (std::vector<std::uint32_t>{0x0201'4D52u, (895u << 22) | 3u, 2047u}));
  const auto r = decode_spill_begin(w, kBase);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->source_id, kSource);
  EXPECT_EQ(r->spill, kSpillMax);
}

TEST(MsadcReadoutSpill, SpillBeginRejectsReservedSpillBits) {
  auto w = encoded(SpillBegin{1, 1});
  w[2] |= 0x800u;
  expect_error(decode_spill_begin(w, kBase), DecodeErrc::ReadoutReservedBits, kBase + 8, 0x800u, 0);
}

TEST(MsadcReadoutSpill, SpillEndRoundTripsItsCounters) {
  const SpillCounters c{kParticle1e7, 1'200'000'000u, 5000, 7, 0xFFFF'FFFFu, 384'000'000u};
  const auto w = encoded(SpillEnd{kSource, kSpillMax, c});
  ASSERT_EQ(w.size(), 9u);
  EXPECT_EQ(w[3], kParticle1e7);
  EXPECT_EQ(w[8], 384'000'000u);
  const auto r = decode_spill_end(w, kBase);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->spill, kSpillMax);
  EXPECT_EQ(r->counters, c);
}

TEST(MsadcReadoutSpill, SpillEndRejectsLength8) {
  auto w = encoded(SpillEnd{1, 1, {}});
  w[1] -= 1;
  expect_error(decode_spill_end(w, kBase), DecodeErrc::BadSize, kBase + 4, 8, 9);
}

BoardStatus full_status() {
  BoardStatus s;
  s.source_id = kSource;
  s.firmware_version = reg::kFwMajor.put(0xFFFF) | reg::kFwMinor.put(0xFF) | reg::kFwProtocol.put(kProtocolVersion);
  s.status = reg::kStatus.defined_bits;
  s.particles = 1;
  s.summaries_sent = 2;
  s.requests_received = 3;
  s.requests_served = 4;
  s.requests_too_late = 5;
  s.requests_not_found = 6;
  s.requests_bad = 7;
  s.buffer_overflows = 8;
  s.latency_capacity = reg::kLatencyCapacity.defined_bits;
  return s;
}

TEST(MsadcReadoutStatus, CarriesTheStatusRegistersInAddressOrder) {
  const auto w = encoded(full_status());
  ASSERT_EQ(w.size(), 13u);
  EXPECT_EQ(w[2], 0xFFFF'FF01u);
  EXPECT_EQ(reg::kCurrentSpill.get(w[3]), kSpillMax);
  for (std::uint32_t k = 1; k <= 8; ++k) EXPECT_EQ(w[3 + k], k);
  EXPECT_EQ(w[12], 0x00FF'FFFFu);
  const auto r = decode_status(w, kBase);
  ASSERT_TRUE(r) << r.error().message();
  const BoardStatus want = full_status();
  EXPECT_EQ(r->source_id, want.source_id);
  EXPECT_EQ(r->firmware_version, want.firmware_version);
  EXPECT_EQ(r->status, want.status);
  EXPECT_EQ(r->particles, 1u);
  EXPECT_EQ(r->summaries_sent, 2u);
  EXPECT_EQ(r->requests_received, 3u);
  EXPECT_EQ(r->requests_served, 4u);
  EXPECT_EQ(r->requests_too_late, 5u);
  EXPECT_EQ(r->requests_not_found, 6u);
  EXPECT_EQ(r->requests_bad, 7u);
  EXPECT_EQ(r->buffer_overflows, 8u);
  EXPECT_EQ(r->latency_capacity, want.latency_capacity);
}

TEST(MsadcReadoutStatus, RejectsAnotherProtocolInFirmwareVersion) {
  auto w = encoded(full_status());
  w[2] = (w[2] & ~0xFFu) | 2u;
  expect_error(decode_status(w, kBase), DecodeErrc::ReadoutBadVersion, kBase + 8, 2, 1);
  BoardStatus s = full_status();
  s.firmware_version = 2;
  std::vector<std::uint32_t> out(16);
  EXPECT_EQ(encode(s, out), 0u);
}

TEST(MsadcReadoutStatus, RejectsReservedStatusBits) {
  auto w = encoded(full_status());
  w[3] |= 0x8u;
  expect_error(decode_status(w, kBase), DecodeErrc::ReadoutReservedBits, kBase + 12, 0x8u, 0);
  w = encoded(full_status());
  w[12] |= 0x0100'0000u;
  expect_error(decode_status(w, kBase), DecodeErrc::ReadoutReservedBits, kBase + 48, 0x0100'0000u, 0);
}


TEST(MsadcReadoutStream, WalksEveryBoardMessageWithOneVisitor) {
  std::vector<std::uint32_t> stream;
  auto append = [&](const std::vector<std::uint32_t>& m) { stream.insert(stream.end(), m.begin(), m.end()); };
  append(encoded(SpillBegin{kSource, kSpillMax}));
  append(summary_packet());
  append(event_answer(11));
  append(encoded(FullEvent{kSource, kSpillMax, 4, {}}));
  append(encoded(TooLate{kSource, {kSpillMax, 1, 12}, kSpillMax, 2}));
  append(encoded(NotFound{kSource, {kSpillMax, kMaxParticle, 13}}));
  append(encoded(BadRequest{kSource, {kSpillMax, 3, 14}, BadRequestReason::QueueFull}));
  append(encoded(SpillEnd{kSource, kSpillMax, {}}));
  append(encoded(full_status()));

  std::vector<std::string> seen;
  auto name = [&](const char* what, std::uint32_t n) { seen.push_back(std::string(what) + " " + std::to_string(n)); };
  const Overloaded visitor{
      [&](const ParticleSummary& p) { name("particle", p.particle); },
      [&](const SpillBegin& m) { name("begin", m.spill); },
      [&](const SpillEnd& m) { name("end", m.spill); },
      [&](const EventAnswer& m) { name("answer", m.ref.request_id); },
      [&](const FullEvent& m) { name("full", m.particle); },
      [&](const TooLate& m) { name("too-late", m.ref.request_id); },
      [&](const NotFound& m) { name("not-found", m.ref.request_id); },
      [&](const BadRequest& m) { name("bad-request", m.ref.request_id); },
      [&](const BoardStatus& m) { name("status", m.requests_bad); },
  };
  std::size_t pos = 0;
  while (pos < stream.size()) {
    const auto n =
        decode_board_message(std::span<const std::uint32_t>(stream).subspan(pos), kBase + pos * 4, visitor);
    ASSERT_TRUE(n) << n.error().message();
    pos += *n;
  }
  EXPECT_EQ(pos, stream.size());
  EXPECT_EQ(seen, (std::vector<std::string>{"begin 2047", "particle 9999999", "particle 10000000", "answer 11",
                                            "full 4", "too-late 12", "not-found 13", "bad-request 14", "end 2047",
                                            "status 7"}));
}

TEST(MsadcReadoutStream, RefusesAHostMessageAmongBoardMessages) {
  const std::array<EventRef, 1> one{EventRef{1, 1, 1}};
  const auto w = requests_message(one);
  const auto n = decode_board_message(w, kBase, [](const auto&) {});
  expect_error(n, DecodeErrc::ReadoutBadType, kBase, 0x81, 0);
}

TEST(MsadcReadoutStream, ReportsAnErrorInsideTheSecondMessageAtItsStreamOffset) {
  std::vector<std::uint32_t> stream = encoded(SpillBegin{1, 1});
  const auto packet = summary_packet();
  stream.insert(stream.end(), packet.begin(), packet.end());
  stream[3 + 8] = kParticle1e7 + 1;
  auto n = decode_board_message(stream, kBase, [](const auto&) {});
  ASSERT_TRUE(n);
  ASSERT_EQ(*n, 3u);
  n = decode_board_message(std::span<const std::uint32_t>(stream).subspan(3), kBase + 12, [](const auto&) {});
  expect_error(n, DecodeErrc::ReadoutParticleGap, kBase + 12 + 4 * 8, kParticle1e7 + 1, kParticle1e7);
}

TEST(MsadcReadoutErrors, NewCodesHaveStableNames) {
  EXPECT_STREQ(to_string(DecodeErrc::ReadoutBadKey), "readout-bad-key");
  EXPECT_STREQ(to_string(DecodeErrc::ReadoutBadVersion), "readout-bad-version");
  EXPECT_STREQ(to_string(DecodeErrc::ReadoutBadType), "readout-bad-type");
  EXPECT_STREQ(to_string(DecodeErrc::ReadoutReservedBits), "readout-reserved-bits");
  EXPECT_STREQ(to_string(DecodeErrc::ReadoutEmptyBatch), "readout-empty-batch");
  EXPECT_STREQ(to_string(DecodeErrc::ReadoutBadSummaryCount), "readout-bad-summary-count");
  EXPECT_STREQ(to_string(DecodeErrc::ReadoutParticleGap), "readout-particle-gap");
  EXPECT_STREQ(to_string(DecodeErrc::ReadoutSummaryOrder), "readout-summary-order");
  EXPECT_STREQ(to_string(DecodeErrc::ReadoutBadReason), "readout-bad-reason");
}

TEST(MsadcReadoutErrors, MessageNamesOffsetFieldAndRule) {
  const auto w = header_words(MessageType::NotFound, 2, 900);
  const auto h = decode_message_header(w, 136);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().message(),
            "offset 140 (0x8c): source id: found 900 (0x384), expected < 896 [bad-source-id]");
}

}  // namespace
}  // namespace na64::firmware::msadc_readout
