// SPDX-License-Identifier: Apache-2.0
#include "na64/eventbuilder/spill_clock.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace na64::eventbuilder {
namespace {

using namespace std::chrono_literals;

TEST(SpillClock, AnnouncesTheNextSpillOnlyWhenEverySourceIsDone) {
  SpillClock clock(2, 10);
  std::stop_source stop;
  ASSERT_EQ(clock.next_spill(stop.get_token()), 1u);
  ASSERT_TRUE(clock.wait_for_spill(1, stop.get_token()));
  clock.spill_done(1, 3ms);
  std::atomic<std::uint32_t> second{0};
  std::jthread driver([&] { second = clock.next_spill(stop.get_token()); });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(second.load(), 0u) << "announced before the second source finished spill 1";
  clock.spill_done(1, 7ms);
  driver.join();
  EXPECT_EQ(second.load(), 2u);
  EXPECT_EQ(clock.busy(1), 7ms);
  EXPECT_GE(clock.readout_time(1), 50ms);
}

TEST(SpillClock, StopEndsTheRunBetweenSpillsAndSourcesSeeTheEnd) {
  SpillClock clock(1, 10);
  std::stop_source stop;
  ASSERT_EQ(clock.next_spill(stop.get_token()), 1u);
  clock.spill_done(1, {});
  stop.request_stop();
  EXPECT_EQ(clock.next_spill(stop.get_token()), 0u);
  std::stop_source none;
  EXPECT_TRUE(clock.wait_for_spill(1, none.get_token()));
  EXPECT_FALSE(clock.wait_for_spill(2, none.get_token()));
}

TEST(SpillClock, EndsAfterMaxSpills) {
  SpillClock clock(1, 2);
  std::stop_source stop;
  for (std::uint32_t s = 1; s <= 2; ++s) {
    ASSERT_EQ(clock.next_spill(stop.get_token()), s);
    clock.spill_done(s, {});
  }
  EXPECT_EQ(clock.next_spill(stop.get_token()), 0u);
}

TEST(SpillClock, PauseHoldsTheNextSpillUntilResumeOrStop) {
  SpillClock clock(1, 10);
  std::stop_source stop;
  ASSERT_EQ(clock.next_spill(stop.get_token()), 1u);
  clock.pause();
  clock.spill_done(1, {});
  std::atomic<std::uint32_t> next{99};
  std::jthread driver([&] { next = clock.next_spill(stop.get_token()); });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(next.load(), 99u) << "a spill was announced while paused";
  clock.resume();
  driver.join();
  EXPECT_EQ(next.load(), 2u);

  clock.pause();
  clock.spill_done(2, {});
  std::jthread stopped([&] { next = clock.next_spill(stop.get_token()); });
  std::this_thread::sleep_for(20ms);
  stop.request_stop();
  stopped.join();
  EXPECT_EQ(next.load(), 0u);
}

TEST(SpillClock, PacesSpillsNoEarlierThanAsked) {
  SpillClock clock(1, 10);
  std::stop_source stop;
  const auto t0 = SpillClock::Clock::now();
  ASSERT_EQ(clock.next_spill(stop.get_token(), t0 + 80ms), 1u);
  EXPECT_GE(SpillClock::Clock::now() - t0, 80ms);
}

TEST(SpillClock, SourcesReadTheSameSpillsWhateverTheStopTime) {
  for (int trial = 0; trial < 50; ++trial) {
    constexpr std::size_t kSources = 4;
    SpillClock clock(kSources, 2047);
    std::stop_source stop;
    std::vector<std::uint32_t> last(kSources, 0);
    {
      std::vector<std::jthread> sources;
      for (std::size_t i = 0; i < kSources; ++i) {
        sources.emplace_back([&, i] {
          std::stop_source never;
          for (std::uint32_t s = 1; clock.wait_for_spill(s, never.get_token()); ++s) {
            last[i] = s;
            clock.spill_done(s, {});
          }
        });
      }
      std::jthread stopper([&] {
        std::this_thread::sleep_for(std::chrono::microseconds(50 * trial));
        stop.request_stop();
      });
      while (clock.next_spill(stop.get_token()) != 0) {
      }
    }
    for (std::size_t i = 1; i < kSources; ++i) EXPECT_EQ(last[i], last[0]) << "trial " << trial;
  }
}

}  // namespace
}  // namespace na64::eventbuilder
