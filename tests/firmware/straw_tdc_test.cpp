// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/straw_tdc.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

namespace na64::firmware {
namespace {

constexpr std::size_t kBase = 28;
constexpr std::uint32_t kEvent = 0x1ABC;  // low 12 bits 0xABC travel
constexpr std::uint32_t kSpill = 0x805;   // low 11 bits 0x005 travel

// Words spelled out bit by bit, independently of the helpers in straw_tdc.hpp.
constexpr std::uint32_t header(std::uint32_t size, std::uint32_t tdc, std::uint32_t version = 1) {
  return size | (tdc << 16) | (version << 24) | (0xAu << 28);
}
constexpr std::uint32_t trigger(std::uint32_t event12, std::uint32_t spill11) {
  return event12 | (spill11 << 12) | (0xCu << 28);
}
constexpr std::uint32_t hit(std::uint32_t channel, std::uint32_t trailing, std::uint32_t ticks) {
  return ticks | (trailing << 24) | (channel << 25);
}
constexpr std::uint32_t trailer(std::uint32_t hits) { return hits | (0xEu << 28); }

/// TDC 7 with two hits.
std::vector<std::uint32_t> valid_block() {
  return {header(5, 7), trigger(0xABC, 0x005), hit(3, 0, 1234), hit(3, 1, 2345), trailer(2)};
}

struct Seen {
  std::uint32_t tdc_id, channel;
  StrawEdge edge;
  std::uint32_t time_ticks;
  bool operator==(const Seen&) const = default;
};

Decoded<Checked> decode_all(std::span<const std::uint32_t> block, std::vector<Seen>& seen,
                            std::uint32_t event = kEvent, std::uint32_t spill = kSpill) {
  return decode_straw_tdc(block, event, spill, kBase, [&](const StrawHit& h) {
    seen.push_back({h.tdc_id, h.channel, h.edge, h.time_ticks});
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

// ---------------------------------------------------------------- writer

TEST(StrawTdcBlockWriter, WritesExactWords) {
  std::array<std::uint32_t, 8> out{};
  StrawTdcBlockWriter w(out, kEvent, kSpill);
  ASSERT_TRUE(w.begin_tdc(7));
  ASSERT_TRUE(w.add_hit(3, StrawEdge::Leading, 1234));
  ASSERT_TRUE(w.add_hit(3, StrawEdge::Trailing, 2345));
  ASSERT_EQ(w.finish(), 5u);
  EXPECT_EQ(std::vector<std::uint32_t>(out.begin(), out.begin() + 5), valid_block());
  EXPECT_EQ(out[0], 0xA1070005u);
  EXPECT_EQ(out[1], 0xC0005ABCu);
  EXPECT_EQ(out[2], 0x060004D2u);
  EXPECT_EQ(out[3], 0x07000929u);
  EXPECT_EQ(out[4], 0xE0000002u);
}

TEST(StrawTdcBlockWriter, WritesFieldMaxima) {
  std::array<std::uint32_t, 8> out{};
  StrawTdcBlockWriter w(out, 0xFFF, 0x7FF);
  ASSERT_TRUE(w.begin_tdc(255));
  ASSERT_TRUE(w.add_hit(63, StrawEdge::Trailing, kStrawMaxTimeTicks));
  ASSERT_TRUE(w.add_hit(0, StrawEdge::Leading, 0));
  ASSERT_EQ(w.finish(), 5u);
  EXPECT_EQ(out[0], 0xA1FF0005u);
  EXPECT_EQ(out[1], 0xC07FFFFFu);
  EXPECT_EQ(out[2], 0x7FFFFFFFu);
  EXPECT_EQ(out[3], 0x00000000u);
  EXPECT_EQ(out[4], 0xE0000002u);
}

TEST(StrawTdcBlockWriter, WritesTdcWithoutHits) {
  std::array<std::uint32_t, 4> out{};
  StrawTdcBlockWriter w(out, kEvent, kSpill);
  ASSERT_TRUE(w.begin_tdc(0));
  ASSERT_EQ(w.finish(), 3u);
  EXPECT_EQ(out[0], header(3, 0));
  EXPECT_EQ(out[1], trigger(0xABC, 0x005));
  EXPECT_EQ(out[2], trailer(0));
}

TEST(StrawTdcBlockWriter, WritesEmptyBlock) {
  std::array<std::uint32_t, 4> out{};
  StrawTdcBlockWriter w(out, 0, 0);
  EXPECT_EQ(w.finish(), 0u);
}

TEST(StrawTdcBlockWriter, RejectsTdcId256) {
  std::array<std::uint32_t, 8> out{};
  StrawTdcBlockWriter w(out, 0, 0);
  EXPECT_FALSE(w.begin_tdc(256));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(StrawTdcBlockWriter, RejectsTdcTwice) {
  std::array<std::uint32_t, 8> out{};
  StrawTdcBlockWriter w(out, 0, 0);
  ASSERT_TRUE(w.begin_tdc(200));
  EXPECT_FALSE(w.begin_tdc(200));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(StrawTdcBlockWriter, RejectsChannel64) {
  std::array<std::uint32_t, 8> out{};
  StrawTdcBlockWriter w(out, 0, 0);
  ASSERT_TRUE(w.begin_tdc(0));
  EXPECT_FALSE(w.add_hit(64, StrawEdge::Leading, 0));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(StrawTdcBlockWriter, RejectsTimeBeyond24Bits) {
  std::array<std::uint32_t, 8> out{};
  StrawTdcBlockWriter w(out, 0, 0);
  ASSERT_TRUE(w.begin_tdc(0));
  EXPECT_FALSE(w.add_hit(0, StrawEdge::Leading, kStrawMaxTimeTicks + 1));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(StrawTdcBlockWriter, RejectsHitBeforeTdc) {
  std::array<std::uint32_t, 8> out{};
  StrawTdcBlockWriter w(out, 0, 0);
  EXPECT_FALSE(w.add_hit(0, StrawEdge::Leading, 0));
  EXPECT_FALSE(w.begin_tdc(0));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(StrawTdcBlockWriter, RejectsTdcWithoutRoomForItsFraming) {
  std::array<std::uint32_t, 2> out{};
  StrawTdcBlockWriter w(out, 0, 0);
  EXPECT_FALSE(w.begin_tdc(0));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(StrawTdcBlockWriter, RejectsHitWithoutRoomForTheTrailer) {
  std::array<std::uint32_t, 4> out{};
  StrawTdcBlockWriter w(out, 0, 0);
  ASSERT_TRUE(w.begin_tdc(0));
  ASSERT_TRUE(w.add_hit(0, StrawEdge::Leading, 0));   // fills word 2, the trailer takes word 3
  EXPECT_FALSE(w.add_hit(1, StrawEdge::Leading, 0));  // would leave no word for the trailer
  EXPECT_EQ(w.finish(), 0u);
}

TEST(StrawTdcBlockWriter, RejectsBlockBeyond65535Words) {
  std::vector<std::uint32_t> out(70000);
  StrawTdcBlockWriter w(out, 0, 0);
  ASSERT_TRUE(w.begin_tdc(0));
  for (std::uint32_t k = 0; k < kStrawMaxBlockWords - 3; ++k) {
    ASSERT_TRUE(w.add_hit(k % 64, StrawEdge::Leading, k)) << k;
  }
  EXPECT_FALSE(w.add_hit(0, StrawEdge::Leading, 0));  // would make 65536 words
  EXPECT_EQ(w.finish(), 0u);
}

TEST(StrawTdcBlockWriter, Writes65535WordBlockThatDecodes) {
  std::vector<std::uint32_t> out(70000);
  StrawTdcBlockWriter w(out, 0, 0);
  ASSERT_TRUE(w.begin_tdc(0));
  for (std::uint32_t k = 0; k < kStrawMaxBlockWords - 3; ++k) ASSERT_TRUE(w.add_hit(k % 64, StrawEdge::Leading, k));
  ASSERT_EQ(w.finish(), kStrawMaxBlockWords);
  EXPECT_EQ(out[0], header(0xFFFF, 0));
  EXPECT_EQ(out[0xFFFE], trailer(0xFFFC));
  std::size_t n = 0;
  const auto r = decode_straw_tdc(std::span(out).first(kStrawMaxBlockWords), 0, 0, 0, [&](const StrawHit&) { ++n; });
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(n, kStrawMaxBlockWords - 3);
}

// ---------------------------------------------------------------- round trips

TEST(StrawTdcDecoder, RoundTripsSeveralTdcsAtFieldLimits) {
  std::vector<std::uint32_t> out(64);
  StrawTdcBlockWriter w(out, kEvent, kSpill);
  const std::vector<Seen> want{
      {0, 0, StrawEdge::Leading, 0},
      {0, 63, StrawEdge::Trailing, kStrawMaxTimeTicks},
      {0, 31, StrawEdge::Leading, 0x800000},
      {255, 1, StrawEdge::Trailing, 1},
      {128, 62, StrawEdge::Leading, kStrawMaxTimeTicks - 1},
  };
  std::uint32_t tdc = ~0u;
  for (const Seen& s : want) {
    if (s.tdc_id != tdc) {
      ASSERT_TRUE(w.begin_tdc(s.tdc_id));
    }
    tdc = s.tdc_id;
    ASSERT_TRUE(w.add_hit(s.channel, s.edge, s.time_ticks));
  }
  ASSERT_TRUE(w.begin_tdc(17));  // no hits
  const std::size_t words = w.finish();
  ASSERT_EQ(words, 3u * 4 + want.size());
  std::vector<Seen> seen;
  const auto r = decode_all(std::span(out).first(words), seen);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(seen, want);
}

TEST(StrawTdcDecoder, ComparesLow12BitsOfEventAndLow11BitsOfSpill) {
  const auto b = valid_block();
  std::vector<Seen> seen;
  EXPECT_TRUE(decode_all(b, seen, 0xABC, 0x005).ok());
  EXPECT_TRUE(decode_all(b, seen, 0xFABC, 0x1805).ok());
  EXPECT_EQ(seen.size(), 4u);
}

TEST(StrawTdcDecoder, AcceptsEmptyBlock) {
  std::vector<Seen> seen;
  EXPECT_TRUE(decode_all({}, seen).ok());
  EXPECT_TRUE(seen.empty());
}

TEST(StrawHit, ConvertsTicksToPicoseconds) {
  EXPECT_EQ(kStrawTickPs, 100u);
  EXPECT_EQ((StrawHit{0, 0, StrawEdge::Leading, 1}.time_ps()), 100u);
  EXPECT_EQ((StrawHit{0, 0, StrawEdge::Leading, kStrawMaxTimeTicks}.time_ps()), 1'677'721'500u);
}

// ---------------------------------------------------------------- one test per broken rule

TEST(StrawTdcDecoder, ReportsHeaderKey) {
  auto b = valid_block();
  b[0] = (b[0] & 0x0FFFFFFFu) | (0xBu << 28);
  expect_error(b, DecodeErrc::BadStrawKey, 0, 0xB, 0xA);
}

TEST(StrawTdcDecoder, ReportsVersion) {
  auto b = valid_block();
  b[0] = header(5, 7, 2);
  expect_error(b, DecodeErrc::BadStrawVersion, 0, 2, 1);
  b[0] = header(5, 7, 0);
  expect_error(b, DecodeErrc::BadStrawVersion, 0, 0, 1);
}

TEST(StrawTdcDecoder, ReportsWordCountBelow3) {
  auto b = valid_block();
  b[0] = header(2, 7);
  expect_error(b, DecodeErrc::BadSize, 0, 2, 0);
  b[0] = header(0, 7);
  expect_error(b, DecodeErrc::BadSize, 0, 0, 0);
}

TEST(StrawTdcDecoder, ReportsBlockRunningPastTheEnd) {
  auto b = valid_block();
  b[0] = header(6, 7);
  expect_error(b, DecodeErrc::Truncated, 0, 6, 5);
}

TEST(StrawTdcDecoder, ReportsTdcTwice) {
  auto b = valid_block();
  const auto again = valid_block();
  b.insert(b.end(), again.begin(), again.end());
  expect_error(b, DecodeErrc::DuplicateStrawTdc, 5, 7, 0);
}

TEST(StrawTdcDecoder, ReportsTriggerWordKey) {
  auto b = valid_block();
  b[1] = (b[1] & 0x0FFFFFFFu) | (0x8u << 28);
  expect_error(b, DecodeErrc::BadStrawKey, 1, 0x8, 0xC);
}

TEST(StrawTdcDecoder, ReportsTriggerWordReservedBits) {
  auto b = valid_block();
  b[1] |= 1u << 23;
  expect_error(b, DecodeErrc::StrawReservedBits, 1, 1, 0);
  b = valid_block();
  b[1] |= 1u << 27;
  expect_error(b, DecodeErrc::StrawReservedBits, 1, 0x10, 0);
}

TEST(StrawTdcDecoder, ReportsEventNumber) {
  auto b = valid_block();
  b[1] = trigger(0xABD, 0x005);
  expect_error(b, DecodeErrc::EventNumberMismatch, 1, 0xABD, 0xABC);
}

TEST(StrawTdcDecoder, ReportsSpill) {
  auto b = valid_block();
  b[1] = trigger(0xABC, 0x7FF);
  expect_error(b, DecodeErrc::SpillMismatch, 1, 0x7FF, 0x005);
}

TEST(StrawTdcDecoder, ReportsTrailerKey) {
  auto b = valid_block();
  b[4] = (b[4] & 0x0FFFFFFFu) | (0xAu << 28);
  expect_error(b, DecodeErrc::BadStrawKey, 4, 0xA, 0xE);
}

TEST(StrawTdcDecoder, ReportsMissingTrailerAsTrailerKey) {
  // A word count one short makes the last hit the trailer.
  auto b = valid_block();
  b[0] = header(4, 7);
  b.pop_back();
  expect_error(b, DecodeErrc::BadStrawKey, 3, 0x0, 0xE);
}

TEST(StrawTdcDecoder, ReportsTrailerReservedBits) {
  auto b = valid_block();
  b[4] |= 1u << 16;
  expect_error(b, DecodeErrc::StrawReservedBits, 4, 1, 0);
  b = valid_block();
  b[4] |= 1u << 27;
  expect_error(b, DecodeErrc::StrawReservedBits, 4, 0x800, 0);
}

TEST(StrawTdcDecoder, ReportsHitCount) {
  auto b = valid_block();
  b[4] = trailer(3);
  expect_error(b, DecodeErrc::StrawHitCountMismatch, 4, 3, 2);
  b[4] = trailer(0xFFFF);
  expect_error(b, DecodeErrc::StrawHitCountMismatch, 4, 0xFFFF, 2);
}

TEST(StrawTdcDecoder, ReportsHitWordWithBit31AndKeepsEarlierHits) {
  auto b = valid_block();
  b[3] |= 1u << 31;
  expect_error(b, DecodeErrc::BadStrawKey, 3, 0x8, 0);
  std::vector<Seen> seen;
  EXPECT_FALSE(decode_all(b, seen).ok());
  EXPECT_EQ(seen, (std::vector<Seen>{{7, 3, StrawEdge::Leading, 1234}}));
}

TEST(StrawTdcDecoder, ChecksFramingBeforeVisitingHits) {
  auto b = valid_block();
  b[4] = trailer(1);
  std::vector<Seen> seen;
  EXPECT_FALSE(decode_all(b, seen).ok());
  EXPECT_TRUE(seen.empty());
}

TEST(StrawTdcDecoder, ReportsErrorsWithMessageAndName) {
  auto b = valid_block();
  b[4] = trailer(3);
  std::vector<Seen> seen;
  const auto r = decode_all(b, seen);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "offset 44 (0x2c): straw TDC trailer hit count: found 3 (0x3), expected 2 (0x2) "
            "[straw-hit-count-mismatch]");
  EXPECT_STREQ(to_string(DecodeErrc::BadStrawKey), "bad-straw-key");
  EXPECT_STREQ(to_string(DecodeErrc::BadStrawVersion), "bad-straw-version");
  EXPECT_STREQ(to_string(DecodeErrc::StrawReservedBits), "straw-reserved-bits");
  EXPECT_STREQ(to_string(DecodeErrc::StrawHitCountMismatch), "straw-hit-count-mismatch");
  EXPECT_STREQ(to_string(DecodeErrc::DuplicateStrawTdc), "duplicate-straw-tdc");
}

}  // namespace
}  // namespace na64::firmware
