// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/msadc.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "event_fixtures.hpp"

namespace na64::firmware {
namespace {

constexpr std::size_t kBase = 40;
constexpr std::uint32_t kEvent = 33;

constexpr std::uint32_t adc_header(std::uint32_t port, std::uint32_t adc, std::uint32_t size_words,
                                   std::uint32_t event) {
  return (0x3u << 30) | (port << 27) | (adc << 25) | (size_words << 12) | (event & 0xFFFu);
}
constexpr std::uint32_t channel_header(std::uint32_t channel, std::uint32_t n, std::uint32_t sum) {
  return (0x1u << 30) | (channel << 26) | (n << 16) | sum;
}
constexpr std::uint32_t data_word(std::uint32_t lo, std::uint32_t hi, std::uint32_t marker) {
  return lo | (hi << 12) | (marker << 24);
}

/// One ADC (port 1, ADC 2) with channel 3 holding samples {1, 2, 3}.
std::vector<std::uint32_t> valid_block() {
  return {adc_header(1, 2, 4, kEvent), channel_header(3, 3, 6), data_word(1, 2, 0x40), data_word(3, 0, 0x80)};
}

struct Seen {
  std::uint32_t port, adc_id, channel, sum;
  std::vector<std::uint16_t> samples;
  bool operator==(const Seen&) const = default;
};

/// Decodes and records every channel visited.
Decoded<Checked> decode_all(std::span<const std::uint32_t> block, std::uint32_t event, std::vector<Seen>& seen) {
  return decode_msadc(block, event, kBase, [&](const MsadcChannel& ch) {
    Seen s{ch.port, ch.adc_id, ch.channel, ch.sum, {}};
    for (std::size_t k = 0; k < ch.n_samples; ++k) s.samples.push_back(ch.sample(k));
    seen.push_back(s);
  });
}

void expect_error(std::span<const std::uint32_t> block, DecodeErrc code, std::size_t word, std::uint64_t found,
                  std::uint64_t expected) {
  std::vector<Seen> seen;
  const auto r = decode_all(block, kEvent, seen);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, code) << r.error().message();
  EXPECT_EQ(r.error().offset_bytes, kBase + 4 * word);
  EXPECT_EQ(r.error().found, found);
  EXPECT_EQ(r.error().expected, expected);
}

TEST(MsadcBlockWriter, WritesExactWords) {
  std::array<std::uint32_t, 16> out{};
  MsadcBlockWriter w(out, 0x1000u + kEvent);
  ASSERT_TRUE(w.begin_adc(1, 2));
  const std::array<std::uint16_t, 3> samples{1, 2, 3};
  ASSERT_TRUE(w.add_channel(3, samples));
  ASSERT_EQ(w.finish(), 4u);
  EXPECT_EQ(std::vector<std::uint32_t>(out.begin(), out.begin() + 4), valid_block());
  EXPECT_EQ(out[0], 0xCC004021u);
  EXPECT_EQ(out[1], 0x4C030006u);
  EXPECT_EQ(out[2], 0x40002001u);
  EXPECT_EQ(out[3], 0x80000003u);
}

TEST(MsadcBlockWriter, PadsOddSampleCountWithZeroHighSample) {
  std::array<std::uint32_t, 8> out{};
  MsadcBlockWriter w(out, 0);
  ASSERT_TRUE(w.begin_adc(0, 0));
  const std::array<std::uint16_t, 1> one{0xFFF};
  ASSERT_TRUE(w.add_channel(0, one));
  ASSERT_EQ(w.finish(), 3u);
  EXPECT_EQ(out[2], data_word(0xFFF, 0, 0x40));
}

TEST(MsadcBlockWriter, MarksFirstDataWord40AndOthers80) {
  std::array<std::uint32_t, 8> out{};
  MsadcBlockWriter w(out, 0);
  ASSERT_TRUE(w.begin_adc(0, 0));
  const std::array<std::uint16_t, 6> s{1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(w.add_channel(0, s));
  ASSERT_EQ(w.finish(), 5u);
  EXPECT_EQ(out[2], data_word(1, 2, 0x40));
  EXPECT_EQ(out[3], data_word(3, 4, 0x80));
  EXPECT_EQ(out[4], data_word(5, 6, 0x80));
}

TEST(MsadcBlockWriter, SaturatesSum) {
  const std::vector<std::uint16_t> s(20, 4095);
  EXPECT_EQ(msadc_sum(s), 0xFFFF);
  const std::array<std::uint16_t, 3> small{1, 2, 3};
  EXPECT_EQ(msadc_sum(small), 6);
}

TEST(MsadcBlockWriter, CountsChannelWords) {
  EXPECT_EQ(msadc_channel_words(1), 2u);
  EXPECT_EQ(msadc_channel_words(2), 2u);
  EXPECT_EQ(msadc_channel_words(3), 3u);
  EXPECT_EQ(msadc_channel_words(511), 257u);
}

TEST(MsadcBlockWriter, WritesEmptyBlock) {
  std::array<std::uint32_t, 4> out{};
  MsadcBlockWriter w(out, 0);
  EXPECT_EQ(w.finish(), 0u);
}

TEST(MsadcBlockWriter, RejectsPort8) {
  std::array<std::uint32_t, 8> out{};
  MsadcBlockWriter w(out, 0);
  EXPECT_FALSE(w.begin_adc(8, 0));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(MsadcBlockWriter, RejectsAdc4) {
  std::array<std::uint32_t, 8> out{};
  MsadcBlockWriter w(out, 0);
  EXPECT_FALSE(w.begin_adc(0, 4));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(MsadcBlockWriter, RejectsChannel16) {
  std::array<std::uint32_t, 8> out{};
  MsadcBlockWriter w(out, 0);
  ASSERT_TRUE(w.begin_adc(0, 0));
  const std::array<std::uint16_t, 1> s{1};
  EXPECT_FALSE(w.add_channel(16, s));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(MsadcBlockWriter, RejectsZeroSamples) {
  std::array<std::uint32_t, 8> out{};
  MsadcBlockWriter w(out, 0);
  ASSERT_TRUE(w.begin_adc(0, 0));
  EXPECT_FALSE(w.add_channel(0, {}));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(MsadcBlockWriter, Rejects512Samples) {
  std::vector<std::uint32_t> out(1024);
  MsadcBlockWriter w(out, 0);
  ASSERT_TRUE(w.begin_adc(0, 0));
  const std::vector<std::uint16_t> s(512, 1);
  EXPECT_FALSE(w.add_channel(0, s));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(MsadcBlockWriter, RejectsChannelBeforeAdc) {
  std::array<std::uint32_t, 8> out{};
  MsadcBlockWriter w(out, 0);
  const std::array<std::uint16_t, 1> s{1};
  EXPECT_FALSE(w.add_channel(0, s));
  EXPECT_FALSE(w.begin_adc(0, 0));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(MsadcBlockWriter, RejectsOverflowOfOutput) {
  std::array<std::uint32_t, 3> out{};
  MsadcBlockWriter w(out, 0);
  ASSERT_TRUE(w.begin_adc(0, 0));
  const std::array<std::uint16_t, 3> s{1, 2, 3};
  EXPECT_FALSE(w.add_channel(0, s));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(MsadcBlockWriter, RejectsAdcHeaderWithNoRoomLeft) {
  std::array<std::uint32_t, 1> out{};
  MsadcBlockWriter w(out, 0);
  ASSERT_TRUE(w.begin_adc(0, 0));
  EXPECT_FALSE(w.begin_adc(0, 1));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(MsadcBlockWriter, RejectsAdcBlockBeyond4095Words) {
  std::vector<std::uint32_t> out(8192);
  MsadcBlockWriter w(out, 0);
  ASSERT_TRUE(w.begin_adc(0, 0));
  const std::vector<std::uint16_t> s(511, 7);  // 257 words a channel
  for (std::uint32_t c = 0; c < 15; ++c) ASSERT_TRUE(w.add_channel(c, s)) << c;  // 1 + 15 x 257 = 3856
  EXPECT_FALSE(w.add_channel(15, s));                                          // 4113 > 4095
  EXPECT_EQ(w.finish(), 0u);
}

TEST(MsadcDecoder, RoundTripsSeveralPortsAdcsAndChannels) {
  const std::uint32_t event = 0x5234;  // only the low 12 bits are written
  const auto adcs = test::three_adcs();
  const auto block = test::make_msadc_block(event, adcs);
  ASSERT_FALSE(block.empty());
  std::size_t want_words = 0;
  std::vector<Seen> want;
  for (const auto& a : adcs) {
    ++want_words;
    for (const auto& c : a.channels) {
      want_words += msadc_channel_words(static_cast<std::uint32_t>(c.samples.size()));
      want.push_back({a.port, a.adc_id, c.channel, msadc_sum(c.samples), c.samples});
    }
  }
  ASSERT_EQ(block.size(), want_words);
  EXPECT_EQ(block[0] & 0xFFFu, 0x234u);

  std::vector<Seen> seen;
  const auto r = decode_all(block, event, seen);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(seen, want);
}

TEST(MsadcDecoder, GivesChipChannel) {
  MsadcChannel ch;
  ch.adc_id = 3;
  ch.channel = 15;
  EXPECT_EQ(ch.chip_channel(), 63u);
}

TEST(MsadcDecoder, AcceptsEmptySpan) {
  std::vector<Seen> seen;
  const auto r = decode_all({}, kEvent, seen);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(seen.empty());
}

TEST(MsadcDecoder, AcceptsOneWordHeaderOnlyAdc) {
  const std::array<std::uint32_t, 1> one{adc_header(0, 0, 1, kEvent)};
  std::vector<Seen> seen;
  EXPECT_TRUE(decode_all(one, kEvent, seen).ok());
  EXPECT_TRUE(seen.empty());
}

TEST(MsadcDecoder, RejectsOneWordSpanDeclaringTwo) {
  const std::array<std::uint32_t, 1> one{adc_header(0, 0, 2, kEvent)};
  expect_error(one, DecodeErrc::Truncated, 0, 2, 1);
}

TEST(MsadcDecoder, RejectsOneZeroWord) {
  const std::array<std::uint32_t, 1> one{0};
  expect_error(one, DecodeErrc::BadAdcKey, 0, 0, 3);
}

TEST(MsadcDecoder, RejectsBadAdcKey) {
  auto b = valid_block();
  b[0] &= ~(1u << 31);
  expect_error(b, DecodeErrc::BadAdcKey, 0, 1, 3);
  std::vector<Seen> seen;
  EXPECT_EQ(decode_all(b, kEvent, seen).error().message(),
            "offset 40 (0x28): ADC header key: found 1 (0x1), expected 3 (0x3) [bad-adc-key]");
}

TEST(MsadcDecoder, RejectsZeroAdcSizeAndTerminates) {
  auto b = valid_block();
  b[0] &= ~(0xFFFu << 12);
  expect_error(b, DecodeErrc::ZeroAdcSize, 0, 0, 0);
}

TEST(MsadcDecoder, RejectsZeroAdcSizeAfterValidAdc) {
  auto b = valid_block();
  b.push_back(adc_header(2, 0, 0, kEvent));
  std::vector<Seen> seen;
  const auto r = decode_all(b, kEvent, seen);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, DecodeErrc::ZeroAdcSize);
  EXPECT_EQ(r.error().offset_bytes, kBase + 16);
  EXPECT_EQ(r.error().message(), "offset 56 (0x38): ADC block size: found 0 (0x0), expected >= 1 [zero-adc-size]");
  // Channels before the error have been delivered.
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].samples, (std::vector<std::uint16_t>{1, 2, 3}));
}

TEST(MsadcDecoder, RejectsAdcSizeBeyondBlock) {
  auto b = valid_block();
  b[0] = adc_header(1, 2, 5, kEvent);
  expect_error(b, DecodeErrc::Truncated, 0, 5, 4);
  std::vector<Seen> seen;
  EXPECT_EQ(decode_all(b, kEvent, seen).error().message(),
            "offset 40 (0x28): ADC block size: found 5 (0x5), expected <= the words left in the S-Link block "
            "[truncated]");
}

TEST(MsadcDecoder, RejectsAdcErrorBit) {
  auto b = valid_block();
  b[0] |= 1u << 24;
  expect_error(b, DecodeErrc::AdcErrorFlag, 0, 1, 0);
}

TEST(MsadcDecoder, RejectsAdcEventNumberMismatch) {
  auto b = valid_block();
  b[0] = adc_header(1, 2, 4, kEvent + 1);
  expect_error(b, DecodeErrc::EventNumberMismatch, 0, kEvent + 1, kEvent);
  std::vector<Seen> seen;
  EXPECT_EQ(decode_all(b, kEvent, seen).error().message(),
            "offset 40 (0x28): ADC header event number: found 34 (0x22), expected 33 (0x21) "
            "[event-number-mismatch]");
}

TEST(MsadcDecoder, ComparesOnlyLow12BitsOfEventNumber) {
  const auto b = valid_block();
  std::vector<Seen> seen;
  EXPECT_TRUE(decode_all(b, 0x7000u + kEvent, seen).ok());
}

TEST(MsadcDecoder, RejectsChannelKey00) {
  auto b = valid_block();
  b[1] &= ~(0x3u << 30);
  expect_error(b, DecodeErrc::BadChannelKey, 1, b[1], 0);
}

TEST(MsadcDecoder, RejectsChannelKey11) {
  auto b = valid_block();
  b[1] |= 0x3u << 30;
  expect_error(b, DecodeErrc::BadChannelKey, 1, b[1], 0);
  std::vector<Seen> seen;
  EXPECT_STREQ(decode_all(b, kEvent, seen).error().expected_rule, "bits 30-31 = 01, bit 25 = 0");
}

TEST(MsadcDecoder, RejectsChannelBit25) {
  auto b = valid_block();
  b[1] |= 1u << 25;
  expect_error(b, DecodeErrc::BadChannelKey, 1, b[1], 0);
}

TEST(MsadcDecoder, RejectsZeroSampleCount) {
  auto b = valid_block();
  b[1] = channel_header(3, 0, 0);
  expect_error(b, DecodeErrc::BadSampleCount, 1, 0, 0);
  std::vector<Seen> seen;
  EXPECT_EQ(decode_all(b, kEvent, seen).error().message(),
            "offset 44 (0x2c): channel sample count: found 0 (0x0), expected 1-511 [bad-sample-count]");
}

TEST(MsadcDecoder, RejectsDataWordsBeyondAdcBlock) {
  auto b = valid_block();
  b[1] = channel_header(3, 5, 6);  // needs 3 data words, 2 left
  expect_error(b, DecodeErrc::Truncated, 1, 3, 2);
}

TEST(MsadcDecoder, RejectsChannelHeaderAsLastWordOfAdc) {
  std::vector<std::uint32_t> b{adc_header(0, 0, 2, kEvent), channel_header(0, 1, 0)};
  expect_error(b, DecodeErrc::Truncated, 1, 1, 0);
}

TEST(MsadcDecoder, RejectsBadMarkerOnFirstWord) {
  auto b = valid_block();
  b[2] = data_word(1, 2, 0x80);
  expect_error(b, DecodeErrc::BadMarker, 2, 0x80, 0x40);
  std::vector<Seen> seen;
  EXPECT_EQ(decode_all(b, kEvent, seen).error().message(),
            "offset 48 (0x30): data word marker: found 128 (0x80), expected 64 (0x40) [bad-marker]");
}

TEST(MsadcDecoder, RejectsBadMarkerOnLaterWord) {
  auto b = valid_block();
  b[3] = data_word(3, 0, 0x40);
  expect_error(b, DecodeErrc::BadMarker, 3, 0x40, 0x80);
}

TEST(MsadcDecoder, RejectsDuplicateChannelInOneAdc) {
  auto b = valid_block();
  b[0] = adc_header(1, 2, 6, kEvent);
  b.push_back(channel_header(3, 1, 9));
  b.push_back(data_word(9, 0, 0x40));
  const std::uint64_t key = (1 * 4 + 2) * 16 + 3;
  expect_error(b, DecodeErrc::DuplicateChannel, 4, key, 0);
}

TEST(MsadcDecoder, RejectsDuplicateChannelAcrossAdcBlocks) {
  auto b = valid_block();
  const auto again = valid_block();
  b.insert(b.end(), again.begin(), again.end());
  expect_error(b, DecodeErrc::DuplicateChannel, 5, (1 * 4 + 2) * 16 + 3, 0);
}

TEST(MsadcDecoder, AcceptsSameChannelOnOtherPortOrAdc) {
  auto b = valid_block();
  b.push_back(adc_header(1, 3, 3, kEvent));
  b.push_back(channel_header(3, 1, 1));
  b.push_back(data_word(1, 0, 0x40));
  b.push_back(adc_header(2, 2, 3, kEvent));
  b.push_back(channel_header(3, 1, 1));
  b.push_back(data_word(1, 0, 0x40));
  std::vector<Seen> seen;
  ASSERT_TRUE(decode_all(b, kEvent, seen).ok());
  EXPECT_EQ(seen.size(), 3u);
}

TEST(RestampMsadcEvent, ChangesOnlyLow12BitsOfEveryAdcHeader) {
  auto block = test::make_msadc_block(0x005, test::three_adcs());
  ASSERT_FALSE(block.empty());
  const auto before = block;
  ASSERT_TRUE(restamp_msadc_event(block, 0x1ABC));
  ASSERT_EQ(block.size(), before.size());
  std::size_t pos = 0;
  std::size_t headers = 0;
  for (std::size_t i = 0; i < block.size(); ++i) {
    if (i == pos) {
      EXPECT_EQ(block[i] & ~0xFFFu, before[i] & ~0xFFFu) << i;
      EXPECT_EQ(block[i] & 0xFFFu, 0xABCu) << i;
      pos += (before[i] >> 12) & 0xFFFu;
      ++headers;
    } else {
      EXPECT_EQ(block[i], before[i]) << i;
    }
  }
  EXPECT_EQ(headers, 3u);
  std::vector<Seen> seen;
  EXPECT_TRUE(decode_all(block, 0xABC, seen).ok());
  EXPECT_EQ(seen.size(), 6u);
}

TEST(RestampMsadcEvent, AcceptsEmptyBlock) {
  std::vector<std::uint32_t> empty;
  EXPECT_TRUE(restamp_msadc_event(empty, 1));
}

TEST(RestampMsadcEvent, RejectsZeroSizeHeader) {
  auto b = valid_block();
  b.push_back(adc_header(2, 0, 0, kEvent));
  EXPECT_FALSE(restamp_msadc_event(b, 7));
}

TEST(RestampMsadcEvent, RejectsSizeBeyondBlock) {
  auto b = valid_block();
  b[0] = adc_header(1, 2, 5, kEvent);
  EXPECT_FALSE(restamp_msadc_event(b, 7));
}

}  // namespace
}  // namespace na64::firmware
