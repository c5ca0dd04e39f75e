// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/run_record.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace na64::firmware {
namespace {

std::array<std::uint8_t, 32> some_hash() {
  std::array<std::uint8_t, 32> h{};
  std::iota(h.begin(), h.end(), std::uint8_t{7});
  return h;
}

TEST(ConfigRecord, RoundTripsTextAndHashForEveryPadding) {
  for (const std::string text : {"", "a", "ab", "abc", "abcd", "run { gdc_id: 1 }\n# comment\n"}) {
    std::vector<std::uint32_t> out(config_record_words(text.size()) + 3, 0xFFFFFFFFu);
    const std::size_t words = write_config_record(out, some_hash(), text);
    ASSERT_EQ(words, config_record_words(text.size())) << text;
    EXPECT_EQ(out[0], words * 4) << "equipment size in bytes";
    EXPECT_EQ(out[1], kConfigRecordType);
    EXPECT_EQ(out[words], 0xFFFFFFFFu) << "wrote past the record";
    const auto rec = read_config_record(std::span<const std::uint32_t>(out).first(words), 68);
    ASSERT_TRUE(rec) << rec.error().message();
    EXPECT_EQ(rec->text, text);
    EXPECT_EQ(rec->sha256, some_hash());
  }
}

TEST(ConfigRecord, TooSmallOutputWritesNothing) {
  std::vector<std::uint32_t> out(config_record_words(10) - 1);
  EXPECT_EQ(write_config_record(out, some_hash(), "0123456789"), 0u);
}

TEST(ConfigRecord, CorruptRecordsAreRefusedWithWhere) {
  const std::string text = "beam { seed: 5 }";
  std::vector<std::uint32_t> good(config_record_words(text.size()));
  ASSERT_NE(write_config_record(good, some_hash(), text), 0u);

  auto wrong_type = good;
  wrong_type[1] = 7;
  auto r = read_config_record(wrong_type, 68);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, DecodeErrc::BadEventType);
  EXPECT_EQ(r.error().offset_bytes, 72u);

  auto wrong_version = good;
  wrong_version[kEquipmentHeaderWords] = 2;
  r = read_config_record(wrong_version, 68);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, DecodeErrc::BadVersion);
  EXPECT_EQ(r.error().offset_bytes, 68u + 28u);

  auto wrong_length = good;
  wrong_length[kConfigRecordFixedWords - 1] = 1000;
  r = read_config_record(wrong_length, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, DecodeErrc::SizeMismatch);
  EXPECT_EQ(r.error().found, 1000u);

  auto extra = good;
  extra.push_back(0);
  r = read_config_record(extra, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, DecodeErrc::SizeMismatch);

  r = read_config_record(std::span<const std::uint32_t>(good).first(3), 0);
  ASSERT_FALSE(r);
}

TEST(TriggerRecord, RoundTripsInTheUserAttributes) {
  DateHeader h;
  put_trigger_record(h, {123456, kMaxShadowSetId, 0b101});
  EXPECT_EQ(h.attributes[0], 123456u);
  EXPECT_EQ(h.attributes[1], (kMaxShadowSetId << 8) | 0b101u);
  EXPECT_EQ(h.attributes[2], 0u) << "the system attributes stay 0";
  const TriggerRecord r = trigger_record(h);
  EXPECT_EQ(r.threshold_set, 123456u);
  EXPECT_EQ(r.shadow_set, kMaxShadowSetId);
  EXPECT_EQ(r.shadow_mask, 0b101u);
}

}  // namespace
}  // namespace na64::firmware
