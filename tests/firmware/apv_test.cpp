// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/apv.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace na64::firmware {
namespace {

constexpr std::size_t kBase = 64;
constexpr std::uint32_t kEvent = 0x2345;  // only the low 12 bits (0x345) travel
constexpr std::uint32_t kEvent12 = 0x345;

// Words spelled out bit by bit, independently of the helpers in apv.hpp.
constexpr std::uint32_t adc_word0(std::uint32_t size, std::uint32_t adc, std::uint32_t format) {
  return size | (adc << 16) | (format << 24);
}
constexpr std::uint32_t adc_word1(std::uint32_t time_tag, std::uint32_t format) { return time_tag | (format << 24); }
constexpr std::uint32_t chip_word0(std::uint32_t length, std::uint32_t event12, std::uint32_t chip) {
  return length | (event12 << 16) | (chip << 28);
}
constexpr std::uint32_t chip_word1(std::uint32_t a1, std::uint32_t a2, std::uint32_t a3, std::uint32_t good = 7) {
  return (good & 1u) | (a1 << 1) | (((good >> 1) & 1u) << 9) | (a2 << 10) | (((good >> 2) & 1u) << 18) | (a3 << 19);
}
constexpr std::uint32_t latch_word(std::uint32_t f1, std::uint32_t f2, std::uint32_t f3) {
  return f1 | (f2 << 10) | (f3 << 20);
}
constexpr std::uint32_t sparse_word(std::uint32_t readout, std::uint32_t raw1, std::uint32_t raw2,
                                    std::uint32_t raw3) {
  return raw1 | (raw2 << 8) | (raw3 << 16) | (readout << 25);
}
constexpr std::uint32_t cm_word(std::uint32_t a, std::uint32_t b, std::uint32_t c) {
  return latch_word(a, b, c) | (1u << 31);
}

constexpr std::uint32_t kSparseCm = 0x4B;  // triple frame, sparse, common mode, ADC version 2
constexpr std::uint32_t kLatch = 0x41;     // triple frame, ADC version 2

/// ADC 3, time tag 1000, chip 2: readout indices 1 and 5, then its common-mode word.
std::vector<std::uint32_t> valid_sparse_block() {
  return {adc_word0(7, 3, kSparseCm), adc_word1(1000, kSparseCm),   chip_word0(5, kEvent12, 2),
          chip_word1(10, 11, 12),     sparse_word(1, 10, 20, 30),    sparse_word(5, 40, 50, 60),
          cm_word(100, 200, 300)};
}

/// One latch-all ADC (id 1) with chip 0 holding `data_words` words, frames (k, 2k, 3k) mod 1024.
std::vector<std::uint32_t> latch_block(std::uint32_t data_words, std::uint32_t format = kLatch) {
  const std::uint32_t cm = (format & 0x08u) != 0 ? 1 : 0;
  std::vector<std::uint32_t> b{adc_word0(2 + 2 + data_words + cm, 1, format), adc_word1(7, format),
                               chip_word0(2 + data_words + cm, kEvent12, 0), chip_word1(0, 0, 0)};
  for (std::uint32_t k = 0; k < data_words; ++k) b.push_back(latch_word(k, (2 * k) % 1024, (3 * k) % 1024));
  if (cm != 0) b.push_back(cm_word(0, 0, 0));
  return b;
}

struct Seen {
  std::uint32_t adc_id, chip_id, channel, readout_index;
  ApvSamples samples, common_mode;
  std::array<std::uint8_t, 3> frame_address;
  std::uint32_t time_tag_us;
  bool operator==(const Seen&) const = default;
};

Decoded<Checked> decode_all(std::span<const std::uint32_t> block, std::vector<Seen>& seen,
                            std::uint32_t event = kEvent) {
  return decode_apv(block, event, kBase, [&](const ApvHit& h) {
    seen.push_back({h.adc_id, h.chip_id, h.channel, h.readout_index, h.samples, h.common_mode, h.frame_address,
                    h.time_tag_us});
  });
}

void expect_error(std::span<const std::uint32_t> block, DecodeErrc code, std::size_t word, std::uint64_t found,
                  std::uint64_t expected) {
  std::vector<Seen> seen;
  const auto r = decode_all(block, seen);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, code) << r.error().message();
  EXPECT_EQ(r.error().offset_bytes, kBase + 4 * word) << r.error().message();
  EXPECT_EQ(r.error().found, found) << r.error().message();
  EXPECT_EQ(r.error().expected, expected) << r.error().message();
}

/// Frames per channel for a latch-all chip: (c, 1023 - c, (c * 8) % 1024) + `salt`, 10 bits.
std::array<ApvSamples, kApvChannels> latch_samples(std::uint16_t salt) {
  std::array<ApvSamples, kApvChannels> s{};
  for (std::uint16_t c = 0; c < kApvChannels; ++c) {
    s[c] = {static_cast<std::uint16_t>((c + salt) % 1024), static_cast<std::uint16_t>((1023 - c + salt) % 1024),
            static_cast<std::uint16_t>((c * 8 + salt) % 1024)};
  }
  return s;
}

// ---------------------------------------------------------------- helpers

TEST(ApvFormat, ByteSetsTripleFrameAndEachFlag) {
  EXPECT_EQ(ApvFormat{}.byte(), 0x41);
  EXPECT_EQ((ApvFormat{.sparse = true}.byte()), 0x43);
  EXPECT_EQ((ApvFormat{.pedestal_subtracted = true}.byte()), 0x45);
  EXPECT_EQ((ApvFormat{.common_mode_corrected = true}.byte()), 0x49);
  EXPECT_EQ((ApvFormat{.adc_v2 = false}.byte()), 0x01);
  EXPECT_EQ((ApvFormat{true, true, true, false}.byte()), 0x0F);
}

TEST(ApvChannelOrder, MatchesDddFormulaAndIsAPermutation) {
  std::array<bool, kApvChannels> hit{};
  for (std::uint32_t r = 0; r < kApvChannels; ++r) {
    const std::uint32_t ddd = 32 * (r % 4) + 8 * (r / 4) - 31 * (r / 16);
    const std::uint32_t c = apv_channel_from_readout(r);
    EXPECT_EQ(c, ddd) << r;
    ASSERT_LT(c, kApvChannels);
    EXPECT_FALSE(hit[c]) << r;
    hit[c] = true;
    EXPECT_EQ(apv_readout_from_channel(c), r);
  }
  EXPECT_EQ(apv_channel_from_readout(0), 0u);
  EXPECT_EQ(apv_channel_from_readout(1), 32u);
  EXPECT_EQ(apv_channel_from_readout(4), 8u);
  EXPECT_EQ(apv_channel_from_readout(16), 1u);
  EXPECT_EQ(apv_channel_from_readout(127), 127u);
}

TEST(ApvSparseShift, FollowsAdcVersionForFramesOneAndTwo) {
  EXPECT_EQ(apv_sparse_shift(0x43, 0), 1u);
  EXPECT_EQ(apv_sparse_shift(0x43, 1), 1u);
  EXPECT_EQ(apv_sparse_shift(0x43, 2), 1u);
  EXPECT_EQ(apv_sparse_shift(0x03, 0), 2u);
  EXPECT_EQ(apv_sparse_shift(0x03, 1), 2u);
  EXPECT_EQ(apv_sparse_shift(0x03, 2), 1u);
}

// ---------------------------------------------------------------- writer

TEST(ApvBlockWriter, WritesExactLatchAllWords) {
  std::vector<std::uint32_t> out(200);
  ApvBlockWriter w(out, 0x1005, 0xABCDEF, ApvFormat{.common_mode_corrected = true});
  ASSERT_TRUE(w.begin_adc(0x12));
  const auto samples = latch_samples(0);
  ASSERT_TRUE(w.add_latch_all_chip({.chip_id = 15, .frame_address = {0x01, 0x80, 0xFF}, .common_mode = {1, 2, 1023}},
                                   samples));
  ASSERT_EQ(w.finish(), 133u);
  EXPECT_EQ(out[0], 0x49120085u);  // size 133, ADC 0x12, format 0x49
  EXPECT_EQ(out[1], 0x49ABCDEFu);  // time tag, format 0x49
  EXPECT_EQ(out[2], 0xF0050083u);  // length 131, event 5, chip 15
  EXPECT_EQ(out[3], 0x07FE0203u);  // good bits and addresses 0x01, 0x80, 0xFF
  EXPECT_EQ(out[3], chip_word1(0x01, 0x80, 0xFF));
  // Readout order: word k holds channel apv_channel_from_readout(k).
  EXPECT_EQ(out[4], latch_word(0, 1023, 0));
  EXPECT_EQ(out[5], latch_word(32, 1023 - 32, 256));
  EXPECT_EQ(out[4 + 16], latch_word(1, 1022, 8));
  EXPECT_EQ(out[4 + 127], latch_word(127, 896, 1016));
  EXPECT_EQ(out[132], 0xBFF00801u);  // common mode 1, 2, 1023
}

TEST(ApvBlockWriter, WritesExactSparseWords) {
  std::vector<std::uint32_t> out(16);
  ApvBlockWriter w(out, kEvent, 1000, ApvFormat{.sparse = true, .common_mode_corrected = true});
  ASSERT_TRUE(w.begin_adc(3));
  // Given in channel order; written in readout order (readout 1 = channel 32, 5 = channel 40).
  const std::array<ApvSparseHit, 2> hits{{{40, {80, 100, 120}}, {32, {20, 40, 60}}}};
  ASSERT_TRUE(w.add_sparse_chip({.chip_id = 2, .frame_address = {10, 11, 12}, .common_mode = {100, 200, 300}}, hits));
  ASSERT_EQ(w.finish(), 7u);
  EXPECT_EQ(std::vector<std::uint32_t>(out.begin(), out.begin() + 7), valid_sparse_block());
}

TEST(ApvBlockWriter, WritesNoCommonModeWordWithoutFormatBit3) {
  std::vector<std::uint32_t> out(16);
  ApvBlockWriter w(out, kEvent, 0, ApvFormat{.sparse = true});
  ASSERT_TRUE(w.begin_adc(0));
  const std::array<ApvSparseHit, 1> hits{{{0, {2, 4, 6}}}};
  ASSERT_TRUE(w.add_sparse_chip({.chip_id = 1, .common_mode = {5, 5, 5}}, hits));
  ASSERT_EQ(w.finish(), 5u);
  EXPECT_EQ(out[0], adc_word0(5, 0, 0x43));
  EXPECT_EQ(out[2], chip_word0(3, kEvent12, 1));
  EXPECT_EQ(out[4], sparse_word(0, 1, 2, 3));
}

TEST(ApvBlockWriter, WritesEmptyBlock) {
  std::array<std::uint32_t, 4> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{});
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, WritesAdcWithoutChips) {
  std::array<std::uint32_t, 4> out{};
  ApvBlockWriter w(out, 0, 5, ApvFormat{});
  ASSERT_TRUE(w.begin_adc(9));
  ASSERT_EQ(w.finish(), 2u);
  EXPECT_EQ(out[0], adc_word0(2, 9, 0x41));
  EXPECT_EQ(out[1], adc_word1(5, 0x41));
}

TEST(ApvBlockWriter, AcceptsFieldMaxima) {
  std::vector<std::uint32_t> out(200);
  ApvBlockWriter w(out, 0xFFF, kApvMaxTimeTag, ApvFormat{});
  ASSERT_TRUE(w.begin_adc(255));
  std::array<ApvSamples, kApvChannels> s{};
  s.fill({1023, 1023, 1023});
  ASSERT_TRUE(w.add_latch_all_chip({.chip_id = 15, .frame_address = {0xFF, 0xFF, 0xFF}}, s));
  ASSERT_EQ(w.finish(), 132u);
  EXPECT_EQ(out[0], adc_word0(132, 255, 0x41));
  EXPECT_EQ(out[1], 0x41FFFFFFu);
  EXPECT_EQ(out[2], chip_word0(130, 0xFFF, 15));
  EXPECT_EQ(out[3], 0x07FFFFFFu);
  EXPECT_EQ(out[4], 0x3FFFFFFFu);
}

TEST(ApvBlockWriter, RejectsAdcId256) {
  std::array<std::uint32_t, 8> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{});
  EXPECT_FALSE(w.begin_adc(256));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsTimeTagBeyond24Bits) {
  std::array<std::uint32_t, 8> out{};
  ApvBlockWriter w(out, 0, kApvMaxTimeTag + 1, ApvFormat{});
  EXPECT_FALSE(w.begin_adc(0));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsChipId16) {
  std::array<std::uint32_t, 8> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{.sparse = true});
  ASSERT_TRUE(w.begin_adc(0));
  EXPECT_FALSE(w.add_sparse_chip({.chip_id = 16}, {}));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsChipTwiceInOneAdc) {
  std::array<std::uint32_t, 16> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{.sparse = true});
  ASSERT_TRUE(w.begin_adc(0));
  ASSERT_TRUE(w.add_sparse_chip({.chip_id = 4}, {}));
  EXPECT_FALSE(w.add_sparse_chip({.chip_id = 4}, {}));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsChipBeforeAdc) {
  std::array<std::uint32_t, 16> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{.sparse = true});
  EXPECT_FALSE(w.add_sparse_chip({.chip_id = 0}, {}));
  EXPECT_FALSE(w.begin_adc(0));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsModeOtherThanTheFormats) {
  std::vector<std::uint32_t> out(300);
  const auto samples = latch_samples(0);
  ApvBlockWriter latch(out, 0, 0, ApvFormat{});
  ASSERT_TRUE(latch.begin_adc(0));
  EXPECT_FALSE(latch.add_sparse_chip({.chip_id = 0}, {}));
  EXPECT_EQ(latch.finish(), 0u);

  ApvBlockWriter sparse(out, 0, 0, ApvFormat{.sparse = true});
  ASSERT_TRUE(sparse.begin_adc(0));
  EXPECT_FALSE(sparse.add_latch_all_chip({.chip_id = 0}, samples));
  EXPECT_EQ(sparse.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsLatchAllSample1024) {
  std::vector<std::uint32_t> out(200);
  ApvBlockWriter w(out, 0, 0, ApvFormat{});
  ASSERT_TRUE(w.begin_adc(0));
  auto s = latch_samples(0);
  s[77][2] = 1024;
  EXPECT_FALSE(w.add_latch_all_chip({.chip_id = 0}, s));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsCommonMode1024) {
  std::vector<std::uint32_t> out(200);
  ApvBlockWriter w(out, 0, 0, ApvFormat{.common_mode_corrected = true});
  ASSERT_TRUE(w.begin_adc(0));
  EXPECT_FALSE(w.add_latch_all_chip({.chip_id = 0, .common_mode = {0, 1024, 0}}, latch_samples(0)));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsSparseFrameOneAbove511WithAdcV2) {
  std::array<std::uint32_t, 16> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{.sparse = true});
  ASSERT_TRUE(w.begin_adc(0));
  const std::array<ApvSparseHit, 1> ok{{{0, {511, 511, 1023}}}};
  ASSERT_TRUE(w.add_sparse_chip({.chip_id = 0}, ok));
  const std::array<ApvSparseHit, 1> bad{{{0, {512, 0, 0}}}};
  EXPECT_FALSE(w.add_sparse_chip({.chip_id = 1}, bad));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsSparseFrameTwoAbove511WithAdcV2) {
  std::array<std::uint32_t, 16> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{.sparse = true});
  ASSERT_TRUE(w.begin_adc(0));
  const std::array<ApvSparseHit, 1> bad{{{0, {0, 512, 0}}}};
  EXPECT_FALSE(w.add_sparse_chip({.chip_id = 0}, bad));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsSparseSample1024WithoutAdcV2) {
  std::array<std::uint32_t, 16> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{.sparse = true, .adc_v2 = false});
  ASSERT_TRUE(w.begin_adc(0));
  const std::array<ApvSparseHit, 1> ok{{{0, {1023, 1023, 1023}}}};
  ASSERT_TRUE(w.add_sparse_chip({.chip_id = 0}, ok));
  const std::array<ApvSparseHit, 1> bad{{{0, {0, 0, 1024}}}};
  EXPECT_FALSE(w.add_sparse_chip({.chip_id = 1}, bad));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsSparseChannel128) {
  std::array<std::uint32_t, 16> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{.sparse = true});
  ASSERT_TRUE(w.begin_adc(0));
  const std::array<ApvSparseHit, 1> bad{{{128, {0, 0, 0}}}};
  EXPECT_FALSE(w.add_sparse_chip({.chip_id = 0}, bad));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsSparseChannelTwice) {
  std::array<std::uint32_t, 16> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{.sparse = true});
  ASSERT_TRUE(w.begin_adc(0));
  const std::array<ApvSparseHit, 3> bad{{{5, {0, 0, 0}}, {6, {0, 0, 0}}, {5, {2, 2, 2}}}};
  EXPECT_FALSE(w.add_sparse_chip({.chip_id = 0}, bad));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsMoreThan128SparseHits) {
  std::vector<std::uint32_t> out(300);
  ApvBlockWriter w(out, 0, 0, ApvFormat{.sparse = true});
  ASSERT_TRUE(w.begin_adc(0));
  std::vector<ApvSparseHit> hits(129);
  for (std::uint32_t c = 0; c < 129; ++c) hits[c].channel = c % 128;
  EXPECT_FALSE(w.add_sparse_chip({.chip_id = 0}, hits));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsOverflowOfOutput) {
  std::vector<std::uint32_t> out(2 + 2 + 128);  // one word short of a latch-all chip with its ADC header
  ApvBlockWriter w(out, 0, 0, ApvFormat{.common_mode_corrected = true});
  ASSERT_TRUE(w.begin_adc(0));
  EXPECT_FALSE(w.add_latch_all_chip({.chip_id = 0}, latch_samples(0)));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(ApvBlockWriter, RejectsAdcHeaderWithNoRoomLeft) {
  std::array<std::uint32_t, 3> out{};
  ApvBlockWriter w(out, 0, 0, ApvFormat{});
  ASSERT_TRUE(w.begin_adc(0));
  EXPECT_FALSE(w.begin_adc(1));
  EXPECT_EQ(w.finish(), 0u);
}

// ---------------------------------------------------------------- round trips

TEST(ApvDecoder, DecodesHandWrittenSparseBlock) {
  const auto b = valid_sparse_block();
  std::vector<Seen> seen;
  ASSERT_TRUE(decode_all(b, seen).ok());
  const std::vector<Seen> want{
      {3, 2, 32, 1, {20, 40, 60}, {100, 200, 300}, {10, 11, 12}, 1000},
      {3, 2, 40, 5, {80, 100, 120}, {100, 200, 300}, {10, 11, 12}, 1000},
  };
  EXPECT_EQ(seen, want);
}

/// Writes two ADCs of two latch-all chips each (chip ids shared across ADCs)
/// and checks that every channel comes back in readout order.
void round_trip_latch_all(ApvFormat format) {
  std::vector<std::uint32_t> out(1000);
  ApvBlockWriter w(out, kEvent, 0x123456, format);
  struct Chip {
    std::uint32_t adc;
    ApvChipHeader header;
    std::uint16_t salt;
  };
  const std::array<Chip, 4> chips{{{0, {0, {1, 2, 3}, {10, 20, 30}}, 0},
                                   {0, {15, {4, 5, 6}, {0, 0, 1023}}, 100},
                                   {255, {0, {7, 8, 9}, {1023, 0, 0}}, 200},
                                   {255, {7, {0xFF, 0, 0x80}, {1, 1, 1}}, 923}}};
  std::vector<Seen> want;
  std::uint32_t current_adc = ~0u;
  for (const Chip& c : chips) {
    if (c.adc != current_adc) {
      ASSERT_TRUE(w.begin_adc(c.adc));
    }
    current_adc = c.adc;
    const auto samples = latch_samples(c.salt);
    ASSERT_TRUE(w.add_latch_all_chip(c.header, samples));
    for (std::uint32_t r = 0; r < kApvChannels; ++r) {
      const std::uint32_t ch = apv_channel_from_readout(r);
      want.push_back({c.adc, c.header.chip_id, ch, r, samples[ch],
                      format.common_mode_corrected ? c.header.common_mode : ApvSamples{}, c.header.frame_address,
                      0x123456});
    }
  }
  const std::size_t words = w.finish();
  const std::size_t chip_words = 2 + 128 + (format.common_mode_corrected ? 1 : 0);
  ASSERT_EQ(words, 2 * (2 + 2 * chip_words));
  std::vector<Seen> seen;
  const auto r = decode_all(std::span(out).first(words), seen);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(seen, want);
}

TEST(ApvDecoder, RoundTripsLatchAll) { round_trip_latch_all(ApvFormat{}); }

TEST(ApvDecoder, RoundTripsLatchAllWithCommonMode) {
  round_trip_latch_all(ApvFormat{.pedestal_subtracted = true, .common_mode_corrected = true});
}

TEST(ApvDecoder, RoundTripsLatchAllWithoutAdcV2) { round_trip_latch_all(ApvFormat{.adc_v2 = false}); }

/// Writes sparse chips and checks channels, readout order and the quantised frames.
void round_trip_sparse(ApvFormat format) {
  const unsigned s12 = format.adc_v2 ? 1 : 2;  // frames 1 and 2 lose s12 low bits, frame 3 one
  const std::uint16_t max12 = format.adc_v2 ? 511 : 1023;
  std::vector<std::uint32_t> out(600);
  ApvBlockWriter w(out, kEvent, 77, format);
  ASSERT_TRUE(w.begin_adc(200));
  std::vector<ApvSparseHit> hits;
  for (std::uint32_t c = 0; c < kApvChannels; c += 3) {
    hits.push_back({c, {static_cast<std::uint16_t>((c * 7) % (max12 + 1)), static_cast<std::uint16_t>(max12 - c),
                        static_cast<std::uint16_t>(1023 - c)}});
  }
  hits.push_back({127, {max12, max12, 1023}});  // channel 127 = readout 127: the last word
  hits.push_back({1, {0, 0, 0}});               // channel 1 = readout 16
  const ApvChipHeader chip{9, {0xFF, 0x00, 0x55}, {512, 0, 1023}};
  ASSERT_TRUE(w.add_sparse_chip(chip, hits));
  ASSERT_TRUE(w.add_sparse_chip({.chip_id = 10}, {}));  // a chip without hits
  const std::size_t words = w.finish();
  const std::size_t cm = format.common_mode_corrected ? 1 : 0;
  ASSERT_EQ(words, 2 + (2 + hits.size() + cm) + (2 + cm));

  std::vector<Seen> want;
  for (std::uint32_t r = 0; r < kApvChannels; ++r) {
    const std::uint32_t ch = apv_channel_from_readout(r);
    for (const ApvSparseHit& h : hits) {
      if (h.channel != ch) continue;
      const ApvSamples q{static_cast<std::uint16_t>(h.samples[0] >> s12 << s12),
                         static_cast<std::uint16_t>(h.samples[1] >> s12 << s12),
                         static_cast<std::uint16_t>(h.samples[2] >> 1 << 1)};
      want.push_back({200, 9, ch, r, q, cm != 0 ? chip.common_mode : ApvSamples{}, chip.frame_address, 77});
    }
  }
  std::vector<Seen> seen;
  const auto r = decode_all(std::span(out).first(words), seen);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(seen, want);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().readout_index, 0u);
  EXPECT_EQ(seen.back().readout_index, 127u);
}

TEST(ApvDecoder, RoundTripsSparseAdcV2) { round_trip_sparse(ApvFormat{.sparse = true}); }

TEST(ApvDecoder, RoundTripsSparseWithoutAdcV2) { round_trip_sparse(ApvFormat{.sparse = true, .adc_v2 = false}); }

TEST(ApvDecoder, RoundTripsSparsePedestalSubtractedWithCommonMode) {
  round_trip_sparse(ApvFormat{.sparse = true, .pedestal_subtracted = true, .common_mode_corrected = true});
}

TEST(ApvDecoder, RestoresSparseScaleAsDdd) {
  // Raw fields at their maxima: 255, 255, 511.
  const std::uint32_t v2 = 0x43;
  const std::vector<std::uint32_t> b2{adc_word0(5, 0, v2), adc_word1(0, v2), chip_word0(3, kEvent12, 0),
                                      chip_word1(0, 0, 0), sparse_word(127, 255, 255, 511)};
  std::vector<Seen> seen;
  ASSERT_TRUE(decode_all(b2, seen).ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].samples, (ApvSamples{510, 510, 1022}));

  const std::uint32_t v1 = 0x03;
  const std::vector<std::uint32_t> b1{adc_word0(5, 0, v1), adc_word1(0, v1), chip_word0(3, kEvent12, 0),
                                      chip_word1(0, 0, 0), sparse_word(127, 255, 255, 511)};
  seen.clear();
  ASSERT_TRUE(decode_all(b1, seen).ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].samples, (ApvSamples{1020, 1020, 1022}));
}

TEST(ApvDecoder, ComparesOnlyLow12BitsOfEventNumber) {
  const auto b = valid_sparse_block();
  std::vector<Seen> seen;
  EXPECT_TRUE(decode_all(b, seen, kEvent12 + 0x7000).ok());
  EXPECT_EQ(seen.size(), 2u);
}

TEST(ApvDecoder, AcceptsEmptyBlockAndAdcWithoutChips) {
  std::vector<Seen> seen;
  EXPECT_TRUE(decode_all({}, seen).ok());
  const std::vector<std::uint32_t> b{adc_word0(2, 0, kLatch), adc_word1(0, kLatch)};
  EXPECT_TRUE(decode_all(b, seen).ok());
  EXPECT_TRUE(seen.empty());
}

TEST(ApvDecoder, AcceptsSameChipIdOnTwoAdcs) {
  auto b = valid_sparse_block();
  auto second = valid_sparse_block();
  second[0] = adc_word0(7, 4, kSparseCm);
  b.insert(b.end(), second.begin(), second.end());
  std::vector<Seen> seen;
  EXPECT_TRUE(decode_all(b, seen).ok());
  EXPECT_EQ(seen.size(), 4u);
}

TEST(ApvDecoder, IgnoresWord0FormatByteAndLatchAllBits30To31) {
  // DDD reads the format from header word 1 and the channel from the word's position.
  auto b = latch_block(128);
  b[0] = adc_word0(b[0] & 0xFFFFu, 1, 0xFF);
  b[4] |= 0xC0000000u;
  std::vector<Seen> seen;
  ASSERT_TRUE(decode_all(b, seen).ok());
  ASSERT_EQ(seen.size(), 128u);
  EXPECT_EQ(seen[0].samples, (ApvSamples{0, 0, 0}));
}

// ---------------------------------------------------------------- one test per broken rule

TEST(ApvDecoder, ReportsAdcHeaderCutShort) {
  const std::vector<std::uint32_t> b{adc_word0(2, 0, kLatch)};
  expect_error(b, DecodeErrc::Truncated, 0, 1, 2);
}

TEST(ApvDecoder, ReportsAdcBlockRunningPastTheEnd) {
  auto b = valid_sparse_block();
  b[0] = adc_word0(8, 3, kSparseCm);
  expect_error(b, DecodeErrc::Truncated, 0, 8, 7);
}

TEST(ApvDecoder, ReportsAdcSizeBelow2) {
  auto b = valid_sparse_block();
  b[0] = adc_word0(1, 3, kSparseCm);
  expect_error(b, DecodeErrc::BadSize, 0, 1, 0);
  b[0] = adc_word0(0, 3, kSparseCm);
  expect_error(b, DecodeErrc::BadSize, 0, 0, 0);
}

TEST(ApvDecoder, ReportsFormatWithoutTripleFrame) {
  auto b = valid_sparse_block();
  b[1] = adc_word1(1000, kSparseCm & ~1u);
  expect_error(b, DecodeErrc::BadApvFormat, 1, kSparseCm & ~1u, 0);
}

TEST(ApvDecoder, ReportsFormatBits4To5And7) {
  for (std::uint32_t bit : {4u, 5u, 7u}) {
    auto b = valid_sparse_block();
    b[1] = adc_word1(1000, kSparseCm | (1u << bit));
    expect_error(b, DecodeErrc::BadApvFormat, 1, kSparseCm | (1u << bit), 0);
  }
}

TEST(ApvDecoder, ReportsTimeTagDifferingBetweenAdcs) {
  auto b = valid_sparse_block();
  auto second = valid_sparse_block();
  second[0] = adc_word0(7, 4, kSparseCm);
  second[1] = adc_word1(1001, kSparseCm);
  b.insert(b.end(), second.begin(), second.end());
  expect_error(b, DecodeErrc::ApvTimeTagMismatch, 8, 1001, 1000);
}

TEST(ApvDecoder, ReportsChipHeaderCutShort) {
  auto b = valid_sparse_block();
  b[0] = adc_word0(8, 3, kSparseCm);
  b.push_back(chip_word0(2, kEvent12, 3));  // one word of a second chip header
  expect_error(b, DecodeErrc::Truncated, 7, 1, 2);
}

TEST(ApvDecoder, ReportsChipBlockRunningPastItsAdc) {
  auto b = valid_sparse_block();
  b[2] = chip_word0(6, kEvent12, 2);
  expect_error(b, DecodeErrc::Truncated, 2, 6, 5);
}

TEST(ApvDecoder, ReportsChipLengthBelow2) {
  auto b = latch_block(128);
  b[2] = chip_word0(1, kEvent12, 0);
  expect_error(b, DecodeErrc::BadSize, 2, 1, 0);
}

TEST(ApvDecoder, ReportsChipLengthWithoutRoomForCommonMode) {
  auto b = valid_sparse_block();
  b[2] = chip_word0(2, kEvent12, 2);
  expect_error(b, DecodeErrc::BadSize, 2, 2, 0);
}

TEST(ApvDecoder, ReportsChipEventNumber) {
  auto b = valid_sparse_block();
  b[2] = chip_word0(5, kEvent12 + 1, 2);
  expect_error(b, DecodeErrc::EventNumberMismatch, 2, kEvent12 + 1, kEvent12);
}

TEST(ApvDecoder, ReportsEachFrameNotGood) {
  for (std::uint32_t frame = 0; frame < 3; ++frame) {
    auto b = valid_sparse_block();
    const std::uint32_t good = 7u & ~(1u << frame);
    b[3] = chip_word1(10, 11, 12, good);
    expect_error(b, DecodeErrc::ApvFrameNotGood, 3, good, 7);
  }
}

TEST(ApvDecoder, ReportsChipTwiceInOneAdc) {
  const std::vector<std::uint32_t> b{adc_word0(8, 6, 0x43),        adc_word1(0, 0x43),
                                     chip_word0(3, kEvent12, 5),  chip_word1(0, 0, 0), sparse_word(0, 1, 1, 1),
                                     chip_word0(3, kEvent12, 5),  chip_word1(0, 0, 0), sparse_word(1, 1, 1, 1)};
  expect_error(b, DecodeErrc::DuplicateApvChip, 5, 6 * 16 + 5, 0);
}

TEST(ApvDecoder, ReportsChipTwiceAcrossAdcsWithTheSameId) {
  auto b = valid_sparse_block();
  const auto again = valid_sparse_block();
  b.insert(b.end(), again.begin(), again.end());
  expect_error(b, DecodeErrc::DuplicateApvChip, 9, 3 * 16 + 2, 0);
}

TEST(ApvDecoder, ReportsCommonModeMarker) {
  auto b = valid_sparse_block();
  b[6] = latch_word(100, 200, 300);  // bits 30-31 = 00
  expect_error(b, DecodeErrc::BadApvCommonMode, 6, 0, 2);
  b[6] = latch_word(100, 200, 300) | 0xC0000000u;
  expect_error(b, DecodeErrc::BadApvCommonMode, 6, 3, 2);
  b[6] = latch_word(100, 200, 300) | 0x40000000u;
  expect_error(b, DecodeErrc::BadApvCommonMode, 6, 1, 2);
}

TEST(ApvDecoder, ReportsLatchAllWithoutExactly128Words) {
  expect_error(latch_block(127), DecodeErrc::BadApvChannelCount, 2, 127, 128);
  expect_error(latch_block(129), DecodeErrc::BadApvChannelCount, 2, 129, 128);
  expect_error(latch_block(127, kLatch | 0x08u), DecodeErrc::BadApvChannelCount, 2, 127, 128);
  std::vector<Seen> seen;
  EXPECT_TRUE(decode_all(latch_block(128, kLatch | 0x08u), seen).ok());
}

TEST(ApvDecoder, ReportsSparseReadoutIndexRepeated) {
  auto b = valid_sparse_block();
  b[5] = sparse_word(1, 40, 50, 60);
  expect_error(b, DecodeErrc::ApvChannelOrder, 5, 1, 2);
}

TEST(ApvDecoder, ReportsSparseReadoutIndexGoingBackAndKeepsEarlierHits) {
  auto b = valid_sparse_block();
  b[4] = sparse_word(5, 10, 20, 30);
  b[5] = sparse_word(0, 40, 50, 60);
  std::vector<Seen> seen;
  const auto r = decode_all(b, seen);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, DecodeErrc::ApvChannelOrder);
  EXPECT_EQ(r.error().offset_bytes, kBase + 4 * 5);
  EXPECT_EQ(r.error().found, 0u);
  EXPECT_EQ(r.error().expected, 6u);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].readout_index, 5u);
}

TEST(ApvDecoder, ChecksChipHeaderBeforeVisitingItsHits) {
  auto b = valid_sparse_block();
  b[6] = 0;  // bad common-mode word after the two hits
  std::vector<Seen> seen;
  EXPECT_FALSE(decode_all(b, seen).ok());
  EXPECT_TRUE(seen.empty());
}

TEST(ApvDecoder, ReportsErrorsWithMessageAndName) {
  auto b = valid_sparse_block();
  b[1] = adc_word1(1000, 0x20 | kSparseCm);
  std::vector<Seen> seen;
  const auto r = decode_all(b, seen);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "offset 68 (0x44): APV ADC format byte: found 107 (0x6b), expected bit 0 set, bits 4, 5 and 7 clear "
            "[bad-apv-format]");
  EXPECT_STREQ(to_string(DecodeErrc::BadApvFormat), "bad-apv-format");
  EXPECT_STREQ(to_string(DecodeErrc::ApvTimeTagMismatch), "apv-time-tag-mismatch");
  EXPECT_STREQ(to_string(DecodeErrc::ApvFrameNotGood), "apv-frame-not-good");
  EXPECT_STREQ(to_string(DecodeErrc::BadApvChannelCount), "bad-apv-channel-count");
  EXPECT_STREQ(to_string(DecodeErrc::ApvChannelOrder), "apv-channel-order");
  EXPECT_STREQ(to_string(DecodeErrc::BadApvCommonMode), "bad-apv-common-mode");
  EXPECT_STREQ(to_string(DecodeErrc::DuplicateApvChip), "duplicate-apv-chip");
}

}  // namespace
}  // namespace na64::firmware
