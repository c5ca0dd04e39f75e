// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/date.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "na64/firmware/decode_error.hpp"

namespace na64::firmware {
namespace {

constexpr std::size_t kBase = 100;  // where the words sit in the caller's buffer

DateHeader full_header() {
  DateHeader h;
  h.size_bytes = kDateHeaderBytes;
  h.type = EventType::Calibration;
  h.run = 0xFFFFFFFFu;
  h.event_in_run = 0x12345678u;
  h.spill = 0xFFF;
  h.event_in_spill = kMaxEventInSpill;
  h.trigger_mask = 0x80000001u;
  h.detector_pattern = 0xCAFEF00Du;
  h.attributes = {0x11u, 0x22u, 0xFFFFFFEFu};  // all but the super-event bit
  h.ldc_id = 7;
  h.gdc_id = 9;
  h.time_s = 1700000000u;
  return h;
}

std::vector<std::uint32_t> encoded(const DateHeader& h) {
  std::vector<std::uint32_t> w(kDateHeaderWords);
  encode(h, std::span<std::uint32_t, kDateHeaderWords>(w.data(), kDateHeaderWords));
  return w;
}

/// The words of a valid header-only physics event.
std::vector<std::uint32_t> valid_words() {
  DateHeader h;
  h.type = EventType::Physics;
  h.run = 5;
  return encoded(h);
}

void expect_error(const Decoded<DateHeader>& r, DecodeErrc code, std::size_t offset, std::uint64_t found,
                  std::uint64_t expected) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, code) << r.error().message();
  EXPECT_EQ(r.error().offset_bytes, offset);
  EXPECT_EQ(r.error().found, found);
  EXPECT_EQ(r.error().expected, expected);
}

TEST(DateHeader, EncodesFixedWords) {
  const auto w = encoded(full_header());
  EXPECT_EQ(w[0], 68u);
  EXPECT_EQ(w[1], 0xDA1E5AFEu);
  EXPECT_EQ(w[2], 68u);
  EXPECT_EQ(w[3], 0x00030006u);
  EXPECT_EQ(w[4], 8u);
  EXPECT_EQ(w[7], 0xFFFFFFFFu);
}

TEST(DateHeader, EncodesTriggerMaskAsTheDecoderReadsIt) {
  const std::uint32_t mask = 0x80000001u;
  const auto w = encoded(full_header());
  EXPECT_EQ(w[8], (mask << 1) | 1u);
  EXPECT_EQ(w[8], 0x00000003u);
  EXPECT_EQ(w[9], mask >> 31);
  EXPECT_EQ(w[9], 1u);
  EXPECT_EQ((w[8] >> 1) | (w[9] << 31), mask);
}

TEST(DateHeader, RoundTripsEveryField) {
  const DateHeader h = full_header();
  const auto w = encoded(h);
  const auto r = decode_date_header(w, kBase);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->size_bytes, h.size_bytes);
  EXPECT_EQ(r->type, h.type);
  EXPECT_EQ(r->run, h.run);
  EXPECT_EQ(r->event_in_run, h.event_in_run);
  EXPECT_EQ(r->spill, 0xFFFu);
  EXPECT_EQ(r->event_in_spill, kMaxEventInSpill);
  EXPECT_EQ(r->trigger_mask, 0x80000001u);
  EXPECT_EQ(r->detector_pattern, h.detector_pattern);
  EXPECT_EQ(r->attributes, h.attributes);
  EXPECT_EQ(r->ldc_id, h.ldc_id);
  EXPECT_EQ(r->gdc_id, h.gdc_id);
  EXPECT_EQ(r->time_s, h.time_s);
  EXPECT_FALSE(r->super_event());
}

TEST(DateHeader, RoundTripsEveryEventType) {
  for (EventType t : {EventType::StartOfRun, EventType::EndOfRun, EventType::StartOfBurst, EventType::EndOfBurst,
                      EventType::Physics, EventType::Calibration}) {
    DateHeader h = full_header();
    h.type = t;
    const auto r = decode_date_header(encoded(h), 0);
    ASSERT_TRUE(r.ok()) << to_string(t);
    EXPECT_EQ(r->type, t);
  }
}

TEST(DateHeader, ReadsSuperEventAttribute) {
  DateHeader h = full_header();
  h.attributes[2] = kSuperEventAttribute;
  const auto r = decode_date_header(encoded(h), 0);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->super_event());
}

TEST(DateHeader, AcceptsSizeWithinLongerBuffer) {
  DateHeader h = full_header();
  h.size_bytes = 76;
  auto w = encoded(h);
  w.resize(30, 0xEEEEEEEEu);
  const auto r = decode_date_header(w, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size_bytes, 76u);
}

TEST(DateHeader, NamesEventTypes) {
  EXPECT_STREQ(to_string(EventType::StartOfRun), "start-of-run");
  EXPECT_STREQ(to_string(EventType::EndOfRun), "end-of-run");
  EXPECT_STREQ(to_string(EventType::StartOfBurst), "start-of-burst");
  EXPECT_STREQ(to_string(EventType::EndOfBurst), "end-of-burst");
  EXPECT_STREQ(to_string(EventType::Physics), "physics");
  EXPECT_STREQ(to_string(EventType::Calibration), "calibration");
  EXPECT_STREQ(to_string(static_cast<EventType>(3)), "unknown");
}

TEST(DateHeader, CarriesEquipmentOnlyInEndOfBurstPhysicsCalibration) {
  EXPECT_FALSE(carries_equipment(EventType::StartOfRun));
  EXPECT_FALSE(carries_equipment(EventType::EndOfRun));
  EXPECT_FALSE(carries_equipment(EventType::StartOfBurst));
  EXPECT_TRUE(carries_equipment(EventType::EndOfBurst));
  EXPECT_TRUE(carries_equipment(EventType::Physics));
  EXPECT_TRUE(carries_equipment(EventType::Calibration));
}

TEST(DateHeader, RejectsEmptySpan) {
  const auto r = decode_date_header({}, kBase);
  expect_error(r, DecodeErrc::Truncated, kBase, 0, 68);
  EXPECT_EQ(r.error().message(),
            "offset 100 (0x64): DATE header bytes available: found 0 (0x0), expected >= 68 [truncated]");
}

TEST(DateHeader, RejectsOneWordSpan) {
  const std::array<std::uint32_t, 1> one{68};
  expect_error(decode_date_header(one, kBase), DecodeErrc::Truncated, kBase, 4, 68);
}

TEST(DateHeader, RejectsSixteenWords) {
  auto w = valid_words();
  w.pop_back();
  expect_error(decode_date_header(w, kBase), DecodeErrc::Truncated, kBase, 64, 68);
}

TEST(DateHeader, RejectsBadMagic) {
  auto w = valid_words();
  w[1] = 0xDEADBEEFu;
  const auto r = decode_date_header(w, kBase);
  expect_error(r, DecodeErrc::BadMagic, kBase + 4, 0xDEADBEEFu, kDateMagic);
  EXPECT_STREQ(r.error().field, "DATE magic");
  EXPECT_EQ(r.error().expected_rule, nullptr);
  EXPECT_EQ(r.error().message(),
            "offset 104 (0x68): DATE magic: found 3735928559 (0xdeadbeef), expected 3659422462 (0xda1e5afe) "
            "[bad-magic]");
}

TEST(DateHeader, RejectsByteSwappedMagic) {
  auto w = valid_words();
  w[1] = 0xFE5A1EDAu;
  expect_error(decode_date_header(w, kBase), DecodeErrc::BadMagic, kBase + 4, 0xFE5A1EDAu, kDateMagic);
}

TEST(DateHeader, RejectsBadHeaderLength) {
  auto w = valid_words();
  w[2] = 80;
  const auto r = decode_date_header(w, kBase);
  expect_error(r, DecodeErrc::BadHeaderLength, kBase + 8, 80, 68);
  EXPECT_EQ(r.error().message(),
            "offset 108 (0x6c): DATE header length: found 80 (0x50), expected 68 (0x44) [bad-header-length]");
}

TEST(DateHeader, RejectsBadVersion) {
  auto w = valid_words();
  w[3] = 0x00030005u;
  expect_error(decode_date_header(w, kBase), DecodeErrc::BadVersion, kBase + 12, 0x00030005u, kDateVersion);
}

TEST(DateHeader, RejectsOldLayoutVersion) {
  auto w = valid_words();
  w[3] = 0x0000FFFEu;
  expect_error(decode_date_header(w, kBase), DecodeErrc::BadVersion, kBase + 12, 0xFFFEu, kDateVersion);
}

TEST(DateHeader, RejectsUnknownType) {
  auto w = valid_words();
  w[4] = 3;
  const auto r = decode_date_header(w, kBase);
  expect_error(r, DecodeErrc::BadEventType, kBase + 16, 3, 0);
  EXPECT_EQ(r.error().message(),
            "offset 116 (0x74): DATE event type: found 3 (0x3), expected one of 1, 2, 5, 6, 7, 8 [bad-event-type]");
}

TEST(DateHeader, RejectsTypeZero) {
  auto w = valid_words();
  w[4] = 0;
  expect_error(decode_date_header(w, kBase), DecodeErrc::BadEventType, kBase + 16, 0, 0);
}

TEST(DateHeader, RejectsTypeBit17) {
  auto w = valid_words();
  w[4] = 7u | (1u << 17);
  const auto r = decode_date_header(w, kBase);
  expect_error(r, DecodeErrc::BadEventType, kBase + 16, 0x20007u, 0);
  EXPECT_STREQ(r.error().expected_rule, "bit 17 clear");
}

TEST(DateHeader, RejectsRunZero) {
  auto w = valid_words();
  w[5] = 0;
  const auto r = decode_date_header(w, kBase);
  expect_error(r, DecodeErrc::BadRunNumber, kBase + 20, 0, 0);
  EXPECT_EQ(r.error().message(), "offset 120 (0x78): DATE run number: found 0 (0x0), expected != 0 [bad-run-number]");
}

TEST(DateHeader, RejectsSizeNotMultipleOfFour) {
  auto w = valid_words();
  w[0] = 70;
  w.resize(20);
  const auto r = decode_date_header(w, kBase);
  expect_error(r, DecodeErrc::BadSize, kBase, 70, 0);
  EXPECT_STREQ(r.error().expected_rule, "a multiple of 4, >= 68");
}

TEST(DateHeader, RejectsSizeBelowHeader) {
  auto w = valid_words();
  w[0] = 64;
  expect_error(decode_date_header(w, kBase), DecodeErrc::BadSize, kBase, 64, 0);
}

TEST(DateHeader, RejectsSizeZero) {
  auto w = valid_words();
  w[0] = 0;
  expect_error(decode_date_header(w, kBase), DecodeErrc::BadSize, kBase, 0, 0);
}

TEST(DateHeader, RejectsSizeBeyondBuffer) {
  auto w = valid_words();
  w[0] = 72;
  const auto r = decode_date_header(w, kBase);
  expect_error(r, DecodeErrc::Truncated, kBase, 72, 68);
  EXPECT_EQ(r.error().message(),
            "offset 100 (0x64): DATE event size: found 72 (0x48), expected <= the bytes left in the buffer "
            "[truncated]");
}

TEST(EquipmentHeader, RoundTripsEveryField) {
  EquipmentHeader h;
  h.size_bytes = 40;
  h.type = 0xFFFFFFFFu;
  h.id = 0x1234u;
  h.attributes = {1u, 2u, 0xFFFFFFFFu};
  h.basic_element_size = 4;
  std::vector<std::uint32_t> w(10, 0);
  encode(h, std::span<std::uint32_t, kEquipmentHeaderWords>(w.data(), kEquipmentHeaderWords));
  EXPECT_EQ(w[0], 40u);
  EXPECT_EQ(w[6], 4u);
  const auto r = decode_equipment_header(w, kBase);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->size_bytes, 40u);
  EXPECT_EQ(r->type, h.type);
  EXPECT_EQ(r->id, h.id);
  EXPECT_EQ(r->attributes, h.attributes);
  EXPECT_EQ(r->basic_element_size, 4u);
}

TEST(EquipmentHeader, RejectsEmptySpan) {
  const auto r = decode_equipment_header({}, kBase);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, DecodeErrc::Truncated);
  EXPECT_EQ(r.error().offset_bytes, kBase);
  EXPECT_EQ(r.error().found, 0u);
  EXPECT_EQ(r.error().expected, 28u);
  EXPECT_EQ(r.error().message(),
            "offset 100 (0x64): equipment header bytes available: found 0 (0x0), expected >= 28 [truncated]");
}

TEST(EquipmentHeader, RejectsOneWordSpan) {
  const std::array<std::uint32_t, 1> one{28};
  const auto r = decode_equipment_header(one, kBase);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, DecodeErrc::Truncated);
  EXPECT_EQ(r.error().found, 4u);
}

TEST(EquipmentHeader, RejectsSizeBelowHeader) {
  std::vector<std::uint32_t> w{24, 0, 0, 0, 0, 0, 4};
  const auto r = decode_equipment_header(w, kBase);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, DecodeErrc::BadSize);
  EXPECT_EQ(r.error().offset_bytes, kBase);
  EXPECT_EQ(r.error().found, 24u);
  EXPECT_EQ(r.error().message(),
            "offset 100 (0x64): equipment size: found 24 (0x18), expected a multiple of 4, >= 28 [bad-size]");
}

TEST(EquipmentHeader, RejectsSizeNotMultipleOfFour) {
  std::vector<std::uint32_t> w{30, 0, 0, 0, 0, 0, 4, 0};
  const auto r = decode_equipment_header(w, kBase);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, DecodeErrc::BadSize);
  EXPECT_EQ(r.error().found, 30u);
}

TEST(EquipmentHeader, RejectsSizeBeyondWords) {
  std::vector<std::uint32_t> w{32, 0, 0, 0, 0, 0, 4};
  const auto r = decode_equipment_header(w, kBase);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, DecodeErrc::Truncated);
  EXPECT_EQ(r.error().offset_bytes, kBase);
  EXPECT_EQ(r.error().found, 32u);
  EXPECT_EQ(r.error().expected, 28u);
}

TEST(DecodeError, NamesEveryCode) {
  const std::vector<std::pair<DecodeErrc, std::string>> names{
      {DecodeErrc::Truncated, "truncated"},
      {DecodeErrc::BadMagic, "bad-magic"},
      {DecodeErrc::BadHeaderLength, "bad-header-length"},
      {DecodeErrc::BadVersion, "bad-version"},
      {DecodeErrc::BadEventType, "bad-event-type"},
      {DecodeErrc::BadRunNumber, "bad-run-number"},
      {DecodeErrc::BadSize, "bad-size"},
      {DecodeErrc::SizeMismatch, "size-mismatch"},
      {DecodeErrc::BadSourceId, "bad-source-id"},
      {DecodeErrc::SlinkErrorFlag, "slink-error-flag"},
      {DecodeErrc::BadFormatByte, "bad-format-byte"},
      {DecodeErrc::BadTcsError, "bad-tcs-error"},
      {DecodeErrc::ErrorWords, "error-words"},
      {DecodeErrc::EventNumberMismatch, "event-number-mismatch"},
      {DecodeErrc::SpillMismatch, "spill-mismatch"},
      {DecodeErrc::BadAdcKey, "bad-adc-key"},
      {DecodeErrc::ZeroAdcSize, "zero-adc-size"},
      {DecodeErrc::AdcErrorFlag, "adc-error-flag"},
      {DecodeErrc::BadChannelKey, "bad-channel-key"},
      {DecodeErrc::BadSampleCount, "bad-sample-count"},
      {DecodeErrc::BadMarker, "bad-marker"},
      {DecodeErrc::DuplicateChannel, "duplicate-channel"},
      {DecodeErrc::BadSubEvent, "bad-sub-event"},
      {DecodeErrc::MissingChannels, "missing-channels"},
  };
  for (const auto& [code, name] : names) EXPECT_EQ(to_string(code), name);
  EXPECT_STREQ(to_string(static_cast<DecodeErrc>(200)), "unknown");
}

TEST(DecodeError, MessageUsesRuleInsteadOfExpectedValue) {
  const DecodeError e{DecodeErrc::BadSourceId, 136, 900, 0, "S-Link source id", "< 896"};
  EXPECT_EQ(e.message(), "offset 136 (0x88): S-Link source id: found 900 (0x384), expected < 896 [bad-source-id]");
}

TEST(DecodeError, MessageShowsExpectedValueWithoutRule) {
  const DecodeError e{DecodeErrc::BadTcsError, 0, 0, 8, "S-Link TCS error byte"};
  EXPECT_EQ(e.message(), "offset 0 (0x0): S-Link TCS error byte: found 0 (0x0), expected 8 (0x8) [bad-tcs-error]");
}

}  // namespace
}  // namespace na64::firmware
