// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/date_event.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "event_fixtures.hpp"
#include "na64/firmware/msadc.hpp"

namespace na64::firmware {
namespace {

// Layout of test::make_event(physics_header(), three_msadc_equipments()):
// payloads of 37, 5 and 7 words.
constexpr std::size_t kEq1Word = 17;  // byte 68, 188 bytes
constexpr std::size_t kEq2Word = 64;  // byte 256, 60 bytes
constexpr std::size_t kEq3Word = 79;  // byte 316, 68 bytes
constexpr std::size_t kEventWords = 96;

struct Visit {
  DateHeader header;
  EquipmentView view;
};

Decoded<DateHeader> walk(std::span<const std::uint32_t> w, std::size_t offset, std::vector<Visit>& visits) {
  return walk_date_event(w, offset, [&](const DateHeader& h, const EquipmentView& e) { visits.push_back({h, e}); });
}

std::vector<std::uint32_t> three_equipment_event() {
  const DateHeader h = test::physics_header();
  return test::make_event(h, test::three_msadc_equipments(h));
}

void expect_error(std::span<const std::uint32_t> w, DecodeErrc code, std::size_t offset, std::uint64_t found,
                  std::uint64_t expected) {
  std::vector<Visit> visits;
  const auto r = walk(w, 0, visits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, code) << r.error().message();
  EXPECT_EQ(r.error().offset_bytes, offset);
  EXPECT_EQ(r.error().found, found);
  EXPECT_EQ(r.error().expected, expected);
}

std::string error_message(std::span<const std::uint32_t> w) {
  std::vector<Visit> visits;
  const auto r = walk(w, 0, visits);
  return r.ok() ? std::string("ok") : r.error().message();
}

TEST(DateEventWriter, WritesHeaderEquipmentAndSlinkWords) {
  DateHeader h = test::physics_header();
  std::array<std::uint32_t, 32> out{};
  DateEventWriter w(out);
  w.begin(h);
  EquipmentHeader eq;
  eq.type = 20;
  eq.id = 7;
  SlinkHeader sl;
  sl.source_id = 620;
  sl.event_in_spill = 999;  // replaced by the header's
  sl.spill = 999;
  sl.format = 3;
  ASSERT_TRUE(w.begin_equipment(eq, sl));
  auto space = w.payload_space();
  ASSERT_EQ(space.size(), 32u - 27u);
  space[0] = 0xAAAAAAAAu;
  space[1] = 0xBBBBBBBBu;
  ASSERT_TRUE(w.end_equipment(2));
  ASSERT_EQ(w.finish(), 29u);
  EXPECT_EQ(out[0], 116u);
  EXPECT_EQ(out[1], kDateMagic);
  EXPECT_EQ(out[7], (17u << 20) | 33u);
  EXPECT_EQ(out[17], 48u);  // 28 + 4 x (3 + 2)
  EXPECT_EQ(out[18], 20u);
  EXPECT_EQ(out[19], 7u);
  EXPECT_EQ(out[23], 4u);
  EXPECT_EQ(out[24], 5u | (620u << 16));
  EXPECT_EQ(out[25], 33u | (17u << 20));
  EXPECT_EQ(out[26], 0x03000800u);
  EXPECT_EQ(out[27], 0xAAAAAAAAu);
  EXPECT_EQ(out[28], 0xBBBBBBBBu);
}

TEST(DateEventWriter, WritesHeaderOnlyEvent) {
  std::array<std::uint32_t, kDateHeaderWords> out{};
  DateEventWriter w(out);
  DateHeader h = test::physics_header();
  h.type = EventType::StartOfRun;
  w.begin(h);
  ASSERT_EQ(w.finish(), kDateHeaderWords);
  std::vector<Visit> visits;
  const auto r = walk(out, 0, visits);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->size_bytes, 68u);
  EXPECT_EQ(r->type, EventType::StartOfRun);
  EXPECT_TRUE(visits.empty());
}

TEST(DateEventWriter, FailsWhenHeaderDoesNotFit) {
  std::array<std::uint32_t, 16> out{};
  DateEventWriter w(out);
  w.begin(test::physics_header());
  EXPECT_FALSE(w.begin_equipment({}, {}));
  EXPECT_TRUE(w.payload_space().empty());
  EXPECT_EQ(w.finish(), 0u);
}

TEST(DateEventWriter, FailsWhenEquipmentHeadersDoNotFit) {
  std::array<std::uint32_t, 26> out{};
  DateEventWriter w(out);
  w.begin(test::physics_header());
  EXPECT_FALSE(w.begin_equipment({}, {}));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(DateEventWriter, FailsWhenPayloadExceedsSpace) {
  std::array<std::uint32_t, 30> out{};
  DateEventWriter w(out);
  w.begin(test::physics_header());
  ASSERT_TRUE(w.begin_equipment({}, {}));
  EXPECT_EQ(w.payload_space().size(), 3u);
  EXPECT_FALSE(w.end_equipment(4));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(DateEventWriter, FailsOnEquipmentLeftOpen) {
  std::array<std::uint32_t, 64> out{};
  DateEventWriter w(out);
  w.begin(test::physics_header());
  ASSERT_TRUE(w.begin_equipment({}, {}));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(DateEventWriter, FailsOnNestedEquipment) {
  std::array<std::uint32_t, 64> out{};
  DateEventWriter w(out);
  w.begin(test::physics_header());
  ASSERT_TRUE(w.begin_equipment({}, {}));
  EXPECT_FALSE(w.begin_equipment({}, {}));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(DateEventWriter, FailsOnEndWithoutBegin) {
  std::array<std::uint32_t, 64> out{};
  DateEventWriter w(out);
  w.begin(test::physics_header());
  EXPECT_TRUE(w.payload_space().empty());
  EXPECT_FALSE(w.end_equipment(0));
  EXPECT_EQ(w.finish(), 0u);
}

TEST(DateEventWriter, BeginResetsAFailedWriter) {
  std::array<std::uint32_t, 64> out{};
  DateEventWriter w(out);
  w.begin(test::physics_header());
  EXPECT_FALSE(w.end_equipment(0));
  w.begin(test::physics_header());
  EXPECT_EQ(w.finish(), kDateHeaderWords);
}

TEST(WalkDateEvent, RoundTripsThreeEquipments) {
  const DateHeader h = test::physics_header();
  const auto eqs = test::three_msadc_equipments(h);
  const auto ev = test::make_event(h, eqs);
  ASSERT_EQ(ev.size(), kEventWords);

  constexpr std::size_t kBase = 4096;
  std::vector<Visit> visits;
  const auto r = walk(ev, kBase, visits);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->size_bytes, kEventWords * 4);
  EXPECT_EQ(r->run, h.run);
  EXPECT_EQ(r->event_in_run, h.event_in_run);
  EXPECT_EQ(r->spill, h.spill);
  EXPECT_EQ(r->event_in_spill, h.event_in_spill);
  EXPECT_EQ(r->trigger_mask, 0x80000001u);

  const std::array<std::size_t, 3> eq_words{kEq1Word, kEq2Word, kEq3Word};
  ASSERT_EQ(visits.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& v = visits[i].view;
    SCOPED_TRACE(i);
    EXPECT_EQ(visits[i].header.run, h.run);
    EXPECT_EQ(v.equipment.id, eqs[i].equipment_id);
    EXPECT_EQ(v.equipment.type, 20u);
    EXPECT_EQ(v.equipment.basic_element_size, 4u);
    EXPECT_EQ(v.equipment.size_bytes, 40u + 4 * eqs[i].payload.size());
    EXPECT_EQ(v.slink.source_id, eqs[i].source_id);
    EXPECT_EQ(v.slink.size_words, 3u + eqs[i].payload.size());
    EXPECT_EQ(v.slink.event_in_spill, 33u);
    EXPECT_EQ(v.slink.spill, 17u);
    EXPECT_EQ(v.slink.tcs_error, kTcsErrorOk);
    EXPECT_EQ(v.slink.format, 3u);
    EXPECT_EQ(std::vector<std::uint32_t>(v.payload.begin(), v.payload.end()), eqs[i].payload);
    EXPECT_EQ(v.payload_offset_bytes, kBase + eq_words[i] * 4 + 40);
    EXPECT_EQ(v.payload.data(), ev.data() + eq_words[i] + 10);
    const auto m = decode_msadc(v.payload, visits[i].header.event_in_spill, v.payload_offset_bytes,
                                [](const MsadcChannel&) {});
    EXPECT_TRUE(m.ok()) << m.error().message();
  }
}

TEST(WalkDateEvent, AcceptsPhysicsEventWithoutEquipment) {
  const auto ev = test::make_event(test::physics_header(), {});
  ASSERT_EQ(ev.size(), kDateHeaderWords);
  std::vector<Visit> visits;
  EXPECT_TRUE(walk(ev, 0, visits).ok());
  EXPECT_TRUE(visits.empty());
}

TEST(WalkDateEvent, AcceptsEquipmentWithEmptyPayload) {
  const auto ev = test::make_event(test::physics_header(), {{1, 620, {}}});
  std::vector<Visit> visits;
  ASSERT_TRUE(walk(ev, 0, visits).ok());
  ASSERT_EQ(visits.size(), 1u);
  EXPECT_TRUE(visits[0].view.payload.empty());
  EXPECT_EQ(visits[0].view.slink.size_words, 3u);
}

TEST(WalkDateEvent, SkipsBodyOfTypesWithoutEquipment) {
  for (EventType t : {EventType::StartOfRun, EventType::EndOfRun, EventType::StartOfBurst}) {
    auto ev = three_equipment_event();
    ev[4] = static_cast<std::uint32_t>(t);
    ev[20] = 0xFFFFFFFFu;  // garbage the decoder does not read
    std::vector<Visit> visits;
    const auto r = walk(ev, 0, visits);
    ASSERT_TRUE(r.ok()) << to_string(t);
    EXPECT_EQ(r->type, t);
    EXPECT_TRUE(visits.empty());
  }
}

TEST(WalkDateEvent, VisitsEquipmentOfEndOfBurstAndCalibration) {
  for (EventType t : {EventType::EndOfBurst, EventType::Calibration}) {
    auto ev = three_equipment_event();
    ev[4] = static_cast<std::uint32_t>(t);
    std::vector<Visit> visits;
    ASSERT_TRUE(walk(ev, 0, visits).ok()) << to_string(t);
    EXPECT_EQ(visits.size(), 3u);
  }
}

TEST(WalkDateEvent, WalksSuperEventWithTwoSubEvents) {
  const DateHeader h = test::physics_header();
  const auto eqs = test::three_msadc_equipments(h);
  DateHeader sub1 = h;
  sub1.ldc_id = 11;
  DateHeader sub2 = h;
  sub2.ldc_id = 12;
  const auto ev = test::make_super_event(
      h, {test::make_event(sub1, {eqs[0], eqs[1]}), test::make_event(sub2, {eqs[2]})});
  ASSERT_EQ(ev.size(), 17u + 79u + 34u);

  std::vector<Visit> visits;
  const auto r = walk(ev, 0, visits);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->super_event());
  EXPECT_EQ(r->size_bytes, 520u);
  ASSERT_EQ(visits.size(), 3u);
  const std::array<std::size_t, 3> payload_bytes{68 + 68 + 40, 68 + 256 + 40, 384 + 68 + 40};
  for (std::size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_TRUE(visits[i].header.super_event());  // the top header is passed
    EXPECT_EQ(visits[i].view.equipment.id, eqs[i].equipment_id);
    EXPECT_EQ(visits[i].view.slink.source_id, eqs[i].source_id);
    EXPECT_EQ(visits[i].view.payload_offset_bytes, payload_bytes[i]);
    EXPECT_EQ(std::vector<std::uint32_t>(visits[i].view.payload.begin(), visits[i].view.payload.end()),
              eqs[i].payload);
  }
}

TEST(WalkDateEvent, RejectsEmptySpan) {
  std::vector<Visit> visits;
  const auto r = walk({}, 8, visits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, DecodeErrc::Truncated);
  EXPECT_EQ(r.error().offset_bytes, 8u);
  EXPECT_EQ(r.error().found, 0u);
}

TEST(WalkDateEvent, RejectsOneWordSpan) {
  const std::array<std::uint32_t, 1> one{68};
  expect_error(one, DecodeErrc::Truncated, 0, 4, 68);
}

TEST(WalkDateEvent, RejectsEventCutShort) {
  auto ev = three_equipment_event();
  ev.pop_back();
  expect_error(ev, DecodeErrc::Truncated, 0, kEventWords * 4, (kEventWords - 1) * 4);
}

TEST(WalkDateEvent, RejectsEquipmentSizeMismatchWithSlinkSize) {
  auto ev = three_equipment_event();
  ev[kEq2Word + 7] -= 1;  // S-Link says 7 words, its equipment holds 8
  expect_error(ev, DecodeErrc::SizeMismatch, kEq2Word * 4, 60, 56);
  EXPECT_EQ(error_message(ev),
            "offset 256 (0x100): equipment size (28 + 4 x S-Link size): found 60 (0x3c), expected 56 (0x38) "
            "[size-mismatch]");
}

TEST(WalkDateEvent, RejectsSlinkSizeBeyondItsEquipment) {
  auto ev = three_equipment_event();
  ev[kEq2Word + 7] += 1;
  expect_error(ev, DecodeErrc::SizeMismatch, kEq2Word * 4 + 28, 9, 8);
}

TEST(WalkDateEvent, RejectsSlinkSizeBelowHeader) {
  auto ev = three_equipment_event();
  ev[kEq2Word + 7] = (ev[kEq2Word + 7] & ~0xFFFFu) | 2u;
  expect_error(ev, DecodeErrc::BadSize, kEq2Word * 4 + 28, 2, 0);
}

TEST(WalkDateEvent, RejectsEquipmentTooShortForSlinkHeader) {
  // An equipment of 32 bytes: header and one word, no room for an S-Link header.
  auto ev = test::make_event(test::physics_header(), {});
  ev.insert(ev.end(), {32, 20, 1, 0, 0, 0, 4, 0});
  ev[0] = static_cast<std::uint32_t>(ev.size() * 4);
  expect_error(ev, DecodeErrc::SizeMismatch, 68 + 28, 4, 12);
}

TEST(WalkDateEvent, RejectsEquipmentSizeNotMultipleOfFour) {
  auto ev = three_equipment_event();
  ev[kEq2Word] = 61;
  expect_error(ev, DecodeErrc::BadSize, kEq2Word * 4, 61, 0);
}

TEST(WalkDateEvent, RejectsEquipmentSizeZero) {
  auto ev = three_equipment_event();
  ev[kEq3Word] = 0;
  expect_error(ev, DecodeErrc::BadSize, kEq3Word * 4, 0, 0);
}

TEST(WalkDateEvent, RejectsWordsLeftAfterLastEquipment) {
  auto ev = three_equipment_event();
  ev.push_back(0);
  ev[0] += 4;
  expect_error(ev, DecodeErrc::SizeMismatch, kEventWords * 4, 4, 28);
  EXPECT_EQ(error_message(ev),
            "offset 384 (0x180): equipment header bytes available: found 4 (0x4), expected >= 28 [size-mismatch]");
}

TEST(WalkDateEvent, RejectsSixWordsLeftAfterLastEquipment) {
  auto ev = three_equipment_event();
  ev.insert(ev.end(), 6, 0u);
  ev[0] += 24;
  expect_error(ev, DecodeErrc::SizeMismatch, kEventWords * 4, 24, 28);
}

TEST(WalkDateEvent, RejectsLastEquipmentBeyondEventEnd) {
  auto ev = three_equipment_event();
  ev.push_back(0);  // in the buffer, but not in the event
  ev[kEq3Word] += 4;
  ev[kEq3Word + 7] += 1;
  expect_error(ev, DecodeErrc::SizeMismatch, kEq3Word * 4, 72, 68);
}

TEST(WalkDateEvent, RejectsSlinkEventNumberMismatch) {
  auto ev = three_equipment_event();
  ev[kEq2Word + 8] = (ev[kEq2Word + 8] & ~0xFFFFFu) | 34u;
  expect_error(ev, DecodeErrc::EventNumberMismatch, kEq2Word * 4 + 32, 34, 33);
  EXPECT_EQ(error_message(ev),
            "offset 288 (0x120): S-Link event number: found 34 (0x22), expected 33 (0x21) [event-number-mismatch]");
}

TEST(WalkDateEvent, RejectsSlinkSpillMismatch) {
  auto ev = three_equipment_event();
  ev[kEq1Word + 8] = (ev[kEq1Word + 8] & 0xFFFFFu) | (18u << 20);
  expect_error(ev, DecodeErrc::SpillMismatch, kEq1Word * 4 + 32, 18, 17);
  EXPECT_EQ(error_message(ev),
            "offset 100 (0x64): S-Link spill number: found 18 (0x12), expected 17 (0x11) [spill-mismatch]");
}

TEST(WalkDateEvent, ComparesSpillInTheSlinkWidth) {
  // DATE holds 12 bits of burst number, S-Link 11: burst 2048 + 17 is written as 17.
  DateHeader h = test::physics_header();
  h.spill = 2048 + 17;
  auto ev = test::make_event(h, test::three_msadc_equipments(h));
  std::vector<Visit> visits;
  ASSERT_TRUE(walk(ev, 0, visits).ok());
  EXPECT_EQ(visits.size(), 3u);
  ev[kEq1Word + 8] = (ev[kEq1Word + 8] & 0xFFFFFu) | (18u << 20);
  expect_error(ev, DecodeErrc::SpillMismatch, kEq1Word * 4 + 32, 18, 17);
}

TEST(WalkDateEvent, ReportsSlinkErrorsAtTheirOffset) {
  auto ev = three_equipment_event();
  ev[kEq3Word + 7] = (ev[kEq3Word + 7] & ~(0x3FFu << 16)) | (896u << 16);
  expect_error(ev, DecodeErrc::BadSourceId, kEq3Word * 4 + 28, 896, 0);
  EXPECT_EQ(error_message(ev),
            "offset 344 (0x158): S-Link source id: found 896 (0x380), expected < 896 [bad-source-id]");
}

TEST(WalkDateEvent, ReportsSlinkTcsErrorAtItsWord) {
  auto ev = three_equipment_event();
  ev[kEq1Word + 9] &= ~0xFF00u;
  expect_error(ev, DecodeErrc::BadTcsError, kEq1Word * 4 + 36, 0, 8);
}

TEST(WalkDateEvent, AddsOffsetOfTheBuffer) {
  auto ev = three_equipment_event();
  ev[kEq1Word + 9] |= 0x80u << 24;
  std::vector<Visit> visits;
  const auto r = walk(ev, 1000, visits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, DecodeErrc::BadFormatByte);
  EXPECT_EQ(r.error().offset_bytes, 1000u + kEq1Word * 4 + 36);
}

TEST(WalkDateEvent, VisitsEquipmentBeforeTheFirstError) {
  auto ev = three_equipment_event();
  ev[kEq3Word + 7] |= 1u << 31;
  std::vector<Visit> visits;
  const auto r = walk(ev, 0, visits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, DecodeErrc::SlinkErrorFlag);
  EXPECT_EQ(visits.size(), 2u);
}

class SuperEventTest : public ::testing::Test {
 protected:
  // Sub-event 1 at word 17 (byte 68), sub-event 2 at word 96 (byte 384).
  static constexpr std::size_t kSub2 = 96;

  void SetUp() override {
    const DateHeader h = test::physics_header();
    const auto eqs = test::three_msadc_equipments(h);
    ev_ = test::make_super_event(h, {test::make_event(h, {eqs[0], eqs[1]}), test::make_event(h, {eqs[2]})});
  }

  std::vector<std::uint32_t> ev_;
};

TEST_F(SuperEventTest, RejectsSubEventRunMismatch) {
  ev_[kSub2 + 5] = 4243;
  expect_error(ev_, DecodeErrc::BadSubEvent, kSub2 * 4 + 20, 4243, 4242);
  EXPECT_EQ(error_message(ev_),
            "offset 404 (0x194): sub-event run: found 4243 (0x1093), expected 4242 (0x1092) [bad-sub-event]");
}

TEST_F(SuperEventTest, RejectsSubEventBurstMismatch) {
  ev_[kSub2 + 7] = (18u << 20) | 33u;
  expect_error(ev_, DecodeErrc::BadSubEvent, kSub2 * 4 + 28, 18, 17);
}

TEST_F(SuperEventTest, RejectsSubEventEventInBurstMismatch) {
  ev_[17 + 7] = (17u << 20) | 34u;
  expect_error(ev_, DecodeErrc::BadSubEvent, 68 + 28, 34, 33);
}

TEST_F(SuperEventTest, RejectsSubEventEventInRunMismatch) {
  ev_[17 + 6] = 1;
  expect_error(ev_, DecodeErrc::BadSubEvent, 68 + 24, 1, 1033);
}

TEST_F(SuperEventTest, RejectsSubEventBadMagic) {
  ev_[kSub2 + 1] = 0;
  expect_error(ev_, DecodeErrc::BadMagic, kSub2 * 4 + 4, 0, kDateMagic);
}

TEST_F(SuperEventTest, RejectsSubEventBadVersion) {
  ev_[kSub2 + 3] = 0x00030007u;
  expect_error(ev_, DecodeErrc::BadVersion, kSub2 * 4 + 12, 0x00030007u, kDateVersion);
}

TEST_F(SuperEventTest, RejectsSubEventBeyondTopEvent) {
  ev_[kSub2] += 4;
  ev_.push_back(0);  // in the buffer, not in the top event
  expect_error(ev_, DecodeErrc::SizeMismatch, kSub2 * 4, 140, 136);
}

TEST_F(SuperEventTest, RejectsWordsLeftAfterLastSubEvent) {
  ev_.push_back(0);
  ev_[0] += 4;
  expect_error(ev_, DecodeErrc::SizeMismatch, ev_.size() * 4 - 4, 4, 68);
}

TEST_F(SuperEventTest, RejectsEquipmentErrorInsideSubEvent) {
  ev_[kSub2 + 17 + 8] = (ev_[kSub2 + 17 + 8] & ~0xFFFFFu) | 32u;
  expect_error(ev_, DecodeErrc::EventNumberMismatch, (kSub2 + 17) * 4 + 32, 32, 33);
}

}  // namespace
}  // namespace na64::firmware
