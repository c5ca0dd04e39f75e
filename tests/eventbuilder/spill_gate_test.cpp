// SPDX-License-Identifier: Apache-2.0
#include "na64/eventbuilder/spill_gate.hpp"

#include <gtest/gtest.h>

#include <array>
#include <thread>
#include <vector>

namespace na64::eventbuilder {
namespace {

TEST(SpillGate, OpenUntilAStopIsSeen) {
  SpillGate gate;
  std::stop_source stop;
  for (std::uint32_t s = 1; s <= 5; ++s) EXPECT_TRUE(gate.may_begin(s, stop.get_token()));
}

TEST(SpillGate, SourcesBehindCatchUpToTheHighestAnnouncedSpill) {
  SpillGate gate;
  std::stop_source stop;
  ASSERT_TRUE(gate.may_begin(1, stop.get_token()));  // source A
  ASSERT_TRUE(gate.may_begin(2, stop.get_token()));  // source A
  ASSERT_TRUE(gate.may_begin(3, stop.get_token()));  // source A began spill 3
  stop.request_stop();
  EXPECT_TRUE(gate.may_begin(2, stop.get_token()));   // source B, behind: decides last = 3
  EXPECT_TRUE(gate.may_begin(3, stop.get_token()));   // B reads spill 3 too
  EXPECT_FALSE(gate.may_begin(4, stop.get_token()));  // nobody begins spill 4
  EXPECT_FALSE(gate.may_begin(4, stop.get_token()));
}

TEST(SpillGate, StopBeforeTheFirstSpillStillReadsSpillOne) {
  SpillGate gate;
  std::stop_source stop;
  stop.request_stop();
  EXPECT_TRUE(gate.may_begin(1, stop.get_token()));
  EXPECT_FALSE(gate.may_begin(2, stop.get_token()));
}

TEST(SpillGate, ThreadsStoppedAtRandomAgreeOnTheLastSpill) {
  for (int round = 0; round < 50; ++round) {
    SpillGate gate;
    std::stop_source stop;
    std::array<std::uint32_t, 3> last{};
    std::vector<std::jthread> threads;
    for (std::size_t t = 0; t < last.size(); ++t) {
      threads.emplace_back([&, t] {
        for (std::uint32_t s = 1; s <= 100000 && gate.may_begin(s, stop.get_token()); ++s) last[t] = s;
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50 * round));
    stop.request_stop();
    threads.clear();
    EXPECT_EQ(last[0], last[1]) << "round " << round;
    EXPECT_EQ(last[1], last[2]) << "round " << round;
  }
}

}  // namespace
}  // namespace na64::eventbuilder
