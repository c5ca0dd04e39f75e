// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/dqm_file.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "dqm_fixtures.hpp"
#include "na64/monitoring/jsroot_json.hpp"
#include "na64/monitoring/verdict.hpp"

namespace na64::monitoring {
namespace {

namespace fw = na64::firmware;
using testing::ecal_only_map;
using testing::pattern_event;
using testing::pattern_mask;
using testing::reference_map;

std::string error_of(std::string_view bytes, DqmHistograms& out) {
  try {
    (void)decode_dqm_set(bytes, out);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

/// Every histogram of the table as JSROOT JSON: equal text means equal
/// cells, entries and sums.
std::string everything(const DqmHistograms& s) {
  std::string out;
  for (const auto& h : s.all_1d()) out += to_jsroot_json(h) + "\n";
  for (const auto& h : s.all_2d()) out += to_jsroot_json(h) + "\n";
  return out;
}

class DqmFileTest : public ::testing::Test {
 protected:
  DqmFileTest() : filled_(map_, DqmConfig{}) {
    for (std::uint32_t i = 0; i < 4000; ++i) (void)filled_.offer(pattern_event(i), pattern_mask(i));
    filled_.count_incomplete(eventbuilder::IncompleteReason::Timeout);
    filled_.counters().bytes_written = 123456;
    filled_.counters().seconds = 4.8;
    filled_.counters().dead_seconds = 0.25;
    filled_.counters().spills = 2;
  }
  fw::ChannelMap map_ = reference_map();
  DqmHistograms filled_;
};

TEST_F(DqmFileTest, ASetReadsBackExactly) {
  const std::string bytes = encode_dqm_set(filled_, "run 12 spills 1, 2");
  DqmHistograms back(map_, DqmConfig{});
  EXPECT_EQ(decode_dqm_set(bytes, back), "run 12 spills 1, 2");
  EXPECT_EQ(everything(back), everything(filled_));
  EXPECT_EQ(back.counters().events, 4000u);
  EXPECT_EQ(back.counters().filled, 1000u);
  EXPECT_EQ(back.counters().accepted, filled_.counters().accepted);
  EXPECT_EQ(back.counters().incomplete[1], 1u);
  EXPECT_EQ(back.counters().bytes_written, 123456u);
  EXPECT_EQ(back.counters().dead_seconds, 0.25);
  EXPECT_EQ(back.counters().spills, 2u);
  // Judged against itself, read back, a set is good.
  const Verdict v = judge_spill(filled_, back, VerdictConfig{});
  EXPECT_EQ(v.level, VerdictLevel::Good);
  EXPECT_TRUE(v.reasons.empty());
}

TEST_F(DqmFileTest, RefusesAnotherMapOrBinningAndLeavesTheSetAsItWas) {
  const std::string bytes = encode_dqm_set(filled_, "run 12 spills 1, 2");
  const fw::ChannelMap ecal = ecal_only_map();
  DqmHistograms other_map(ecal, DqmConfig{});
  EXPECT_EQ(error_of(bytes, other_map), "DQM file, byte 188: made for another channel map (48 cells mapped differently)");
  DqmConfig visible;
  visible.beam_energy_gev = 150;
  DqmHistograms other_energy(map_, visible);
  EXPECT_EQ(error_of(bytes, other_energy), "DQM file, byte 20: made with beam_energy_gev = 100, this set has 150");

  DqmHistograms kept(map_, DqmConfig{});
  (void)kept.offer(pattern_event(0), pattern_mask(0));
  const std::string before = everything(kept);
  EXPECT_EQ(error_of("hello, not a reference", kept), "DQM file, byte 0: not a DQM file (no NA64DQMR at its start)");
  EXPECT_EQ(error_of(bytes.substr(0, bytes.size() - 100), kept),
            "DQM file, byte " + std::to_string(bytes.size() - 108) +
                ": the checksum does not match the content (a truncated or damaged file)");
  std::string damaged = bytes;
  damaged[300] = static_cast<char>(damaged[300] ^ 1);
  EXPECT_EQ(error_of(damaged, kept), "DQM file, byte " + std::to_string(bytes.size() - 8) +
                                         ": the checksum does not match the content (a truncated or damaged file)");
  EXPECT_EQ(everything(kept), before);
  EXPECT_EQ(kept.counters().events, 1u);
}

}  // namespace
}  // namespace na64::monitoring
