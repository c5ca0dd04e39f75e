// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/slink.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

namespace na64::firmware {
namespace {

constexpr std::size_t kBase = 40;

std::array<std::uint32_t, kSlinkHeaderWords> encoded(const SlinkHeader& h) {
  std::array<std::uint32_t, kSlinkHeaderWords> w{};
  encode(h, w);
  return w;
}

/// A valid 3-word header, source 620, event 33 of spill 17.
std::vector<std::uint32_t> valid_words() {
  SlinkHeader h;
  h.source_id = 620;
  h.event_in_spill = 33;
  h.spill = 17;
  h.format = 3;
  const auto w = encoded(h);
  return {w.begin(), w.end()};
}

void expect_error(const Decoded<SlinkHeader>& r, DecodeErrc code, std::size_t offset, std::uint64_t found,
                  std::uint64_t expected) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, code) << r.error().message();
  EXPECT_EQ(r.error().offset_bytes, offset);
  EXPECT_EQ(r.error().found, found);
  EXPECT_EQ(r.error().expected, expected);
}

TEST(SlinkHeader, EncodesEveryFieldAtItsMaximum) {
  SlinkHeader h;
  h.size_words = 0xFFFF;
  h.source_id = 0x3FF;
  h.event_type = 0x1F;
  h.error = true;
  h.event_in_spill = 0xFFFFF;
  h.spill = 0x7FF;
  h.status = 0xFF;
  h.tcs_error = 0xFF;
  h.error_words = 0xFF;
  h.format = 0xFF;
  EXPECT_EQ(encoded(h), (std::array<std::uint32_t, 3>{0xFFFFFFFFu, 0x7FFFFFFFu, 0xFFFFFFFFu}));
}

TEST(SlinkHeader, EncodesFieldsInTheirOwnBits) {
  SlinkHeader h;
  h.size_words = 0x1234;
  h.source_id = 620;
  h.event_type = 5;
  h.event_in_spill = 0xABCDE;
  h.spill = 0x321;
  h.status = 0x5A;
  h.tcs_error = kTcsErrorOk;
  h.error_words = 0;
  h.format = 0x03;
  EXPECT_EQ(encoded(h), (std::array<std::uint32_t, 3>{0x1234u | (620u << 16) | (5u << 26),
                                                      0xABCDEu | (0x321u << 20), 0x0300085Au}));
}

TEST(SlinkHeader, MasksOutOfRangeFields) {
  SlinkHeader h;
  h.size_words = 0x10003;
  h.source_id = 0x400 | 7;
  h.event_type = 0x20;
  h.event_in_spill = 0x100001;
  h.spill = 0x801;
  const auto w = encoded(h);
  EXPECT_EQ(w[0], 3u | (7u << 16));
  EXPECT_EQ(w[1], 1u | (1u << 20));
}

TEST(SlinkHeader, RoundTripsLargestValidHeader) {
  SlinkHeader h;
  h.size_words = 0xFFFF;
  h.source_id = kMaxSourceId;
  h.event_type = 0x1F;
  h.error = false;
  h.event_in_spill = 0xFFFFF;
  h.spill = 0x7FF;
  h.status = 0xFF;
  h.tcs_error = kTcsErrorOk;
  h.error_words = 0;
  h.format = 0x7F;
  std::vector<std::uint32_t> w(0xFFFF, 0);
  encode(h, std::span<std::uint32_t, kSlinkHeaderWords>(w.data(), kSlinkHeaderWords));
  const auto r = decode_slink_header(w, kBase);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->size_words, 0xFFFFu);
  EXPECT_EQ(r->source_id, 895u);
  EXPECT_EQ(r->event_type, 0x1Fu);
  EXPECT_FALSE(r->error);
  EXPECT_EQ(r->event_in_spill, 0xFFFFFu);
  EXPECT_EQ(r->spill, 0x7FFu);
  EXPECT_EQ(r->status, 0xFF);
  EXPECT_EQ(r->tcs_error, 0x08);
  EXPECT_EQ(r->error_words, 0);
  EXPECT_EQ(r->format, 0x7F);
}

TEST(SlinkHeader, RoundTripsSmallestValidHeader) {
  SlinkHeader h;
  const auto w = encoded(h);
  const auto r = decode_slink_header(w, kBase);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->size_words, 3u);
  EXPECT_EQ(r->source_id, 0u);
  EXPECT_EQ(r->event_in_spill, 0u);
  EXPECT_EQ(r->spill, 0u);
  EXPECT_EQ(r->tcs_error, kTcsErrorOk);
}

TEST(SlinkHeader, RejectsEmptySpan) {
  const auto r = decode_slink_header({}, kBase);
  expect_error(r, DecodeErrc::Truncated, kBase, 0, 12);
  EXPECT_EQ(r.error().message(),
            "offset 40 (0x28): S-Link header bytes available: found 0 (0x0), expected >= 12 [truncated]");
}

TEST(SlinkHeader, RejectsOneWordSpan) {
  const std::array<std::uint32_t, 1> one{3};
  expect_error(decode_slink_header(one, kBase), DecodeErrc::Truncated, kBase, 4, 12);
}

TEST(SlinkHeader, RejectsSizeBelowHeader) {
  auto w = valid_words();
  w[0] = (w[0] & ~0xFFFFu) | 2u;
  const auto r = decode_slink_header(w, kBase);
  expect_error(r, DecodeErrc::BadSize, kBase, 2, 0);
  EXPECT_STREQ(r.error().expected_rule, ">= 3");
}

TEST(SlinkHeader, RejectsSizeBeyondEquipment) {
  auto w = valid_words();
  w[0] = (w[0] & ~0xFFFFu) | 4u;
  const auto r = decode_slink_header(w, kBase);
  expect_error(r, DecodeErrc::SizeMismatch, kBase, 4, 3);
  EXPECT_EQ(r.error().message(),
            "offset 40 (0x28): S-Link size in words: found 4 (0x4), expected <= the words of its equipment "
            "[size-mismatch]");
}

TEST(SlinkHeader, RejectsMultiplexerSourceId) {
  auto w = valid_words();
  w[0] = (w[0] & ~(0x3FFu << 16)) | (896u << 16);
  const auto r = decode_slink_header(w, kBase);
  expect_error(r, DecodeErrc::BadSourceId, kBase, 896, 0);
  EXPECT_EQ(r.error().message(),
            "offset 40 (0x28): S-Link source id: found 896 (0x380), expected < 896 [bad-source-id]");
}

TEST(SlinkHeader, RejectsLargestSourceId) {
  auto w = valid_words();
  w[0] |= 0x3FFu << 16;
  expect_error(decode_slink_header(w, kBase), DecodeErrc::BadSourceId, kBase, 1023, 0);
}

TEST(SlinkHeader, RejectsErrorFlag) {
  auto w = valid_words();
  w[0] |= 1u << 31;
  const auto r = decode_slink_header(w, kBase);
  expect_error(r, DecodeErrc::SlinkErrorFlag, kBase, 1, 0);
  EXPECT_EQ(r.error().message(),
            "offset 40 (0x28): S-Link error flag: found 1 (0x1), expected 0 (0x0) [slink-error-flag]");
}

TEST(SlinkHeader, RejectsTcsByteWithoutEccOk) {
  auto w = valid_words();
  w[2] &= ~0x0000FF00u;
  const auto r = decode_slink_header(w, kBase);
  expect_error(r, DecodeErrc::BadTcsError, kBase + 8, 0, 8);
  EXPECT_EQ(r.error().message(),
            "offset 48 (0x30): S-Link TCS error byte: found 0 (0x0), expected 8 (0x8) [bad-tcs-error]");
}

TEST(SlinkHeader, RejectsTcsByteWithErrorBits) {
  auto w = valid_words();
  w[2] |= 0x0100u;
  expect_error(decode_slink_header(w, kBase), DecodeErrc::BadTcsError, kBase + 8, 0x09, 8);
}

TEST(SlinkHeader, RejectsErrorWords) {
  auto w = valid_words();
  w[2] |= 2u << 16;
  expect_error(decode_slink_header(w, kBase), DecodeErrc::ErrorWords, kBase + 8, 2, 0);
}

TEST(SlinkHeader, RejectsFormatBit7) {
  auto w = valid_words();
  w[2] |= 0x80u << 24;
  const auto r = decode_slink_header(w, kBase);
  expect_error(r, DecodeErrc::BadFormatByte, kBase + 8, 0x83, 0);
  EXPECT_STREQ(r.error().expected_rule, "bit 7 clear");
}

}  // namespace
}  // namespace na64::firmware
