// SPDX-License-Identifier: Apache-2.0
#include "na64/eventbuilder/spsc_ring.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <thread>

namespace na64::eventbuilder {
namespace {

TEST(SpscRing, RoundsCapacityUpToAPowerOfTwo) {
  EXPECT_EQ(SpscRing<int>(0).capacity(), 2u);
  EXPECT_EQ(SpscRing<int>(1).capacity(), 2u);
  EXPECT_EQ(SpscRing<int>(2).capacity(), 2u);
  EXPECT_EQ(SpscRing<int>(3).capacity(), 4u);
  EXPECT_EQ(SpscRing<int>(8).capacity(), 8u);
  EXPECT_EQ(SpscRing<int>(9).capacity(), 16u);
  EXPECT_EQ(SpscRing<int>(1000).capacity(), 1024u);
}

TEST(SpscRing, RejectsCapacityAboveTwoToTheForty) {
  try {
    SpscRing<std::uint8_t> r((std::size_t{1} << 40) + 1);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "SpscRing: capacity too large");
  }
}

TEST(SpscRing, EmptyRingIsAllWritableNothingReadable) {
  SpscRing<int> r(8);
  EXPECT_EQ(r.writable(), 8u);
  EXPECT_EQ(r.readable(), 0u);
}

TEST(SpscRing, CountsFollowCommitAndConsume) {
  SpscRing<int> r(8);
  for (int k = 0; k < 3; ++k) r.write_slot(static_cast<std::size_t>(k)) = 10 + k;
  r.commit(3);
  EXPECT_EQ(r.writable(), 5u);
  EXPECT_EQ(r.readable(), 3u);
  EXPECT_EQ(r.read_slot(0), 10);
  EXPECT_EQ(r.read_slot(2), 12);
  r.consume(3);
  EXPECT_EQ(r.readable(), 0u);
  r.write_slot(0) = 13;
  r.write_slot(1) = 14;
  r.commit(2);
  EXPECT_EQ(r.readable(), 2u);
  EXPECT_EQ(r.read_slot(0), 13);
  EXPECT_EQ(r.read_slot(1), 14);
}

TEST(SpscRing, RejectsWriteWhenFull) {
  SpscRing<int> r(4);
  for (std::size_t k = 0; k < 4; ++k) r.write_slot(k) = static_cast<int>(k);
  r.commit(4);
  EXPECT_EQ(r.writable(), 0u);
  EXPECT_EQ(r.readable(), 4u);
  r.consume(1);
  // The producer sees the freed slot once its cached view says full.
  EXPECT_EQ(r.writable(), 1u);
  r.write_slot(0) = 99;
  r.commit(1);
  EXPECT_EQ(r.writable(), 0u);
  r.consume(3);
  EXPECT_EQ(r.readable(), 1u);
  EXPECT_EQ(r.read_slot(0), 99);
  EXPECT_EQ(r.writable(), 3u);
}

TEST(SpscRing, PositionsWrapWithTheMask) {
  SpscRing<int> r(4);
  r.commit(3);
  r.consume(3);
  EXPECT_EQ(r.write_position(0), 3u);
  EXPECT_EQ(r.write_position(1), 0u);
  EXPECT_EQ(r.read_position(0), 3u);
  EXPECT_EQ(r.read_position(2), 1u);
}

TEST(SpscRing, KeepsOrderOverManyWrapArounds) {
  SpscRing<std::uint64_t> r(8);
  std::uint64_t next_write = 0;
  std::uint64_t next_read = 0;
  // Write batches of 1-7 and read batches of 1-5, so that batches straddle
  // the end of the array and the ring runs from empty to full.
  for (int cycle = 0; cycle < 10000; ++cycle) {
    const std::size_t free = r.writable();
    const std::size_t n = std::min<std::size_t>(1 + static_cast<std::size_t>(cycle % 7), free);
    for (std::size_t k = 0; k < n; ++k) r.write_slot(k) = next_write++;
    r.commit(n);
    const std::size_t avail = r.readable();
    ASSERT_GT(avail, 0u);
    const std::size_t m = std::min<std::size_t>(1 + static_cast<std::size_t>(cycle % 5), avail);
    for (std::size_t k = 0; k < m; ++k) ASSERT_EQ(r.read_slot(k), next_read++);
    r.consume(m);
  }
  while (const std::size_t avail = r.readable()) {
    for (std::size_t k = 0; k < avail; ++k) ASSERT_EQ(r.read_slot(k), next_read++);
    r.consume(avail);
  }
  EXPECT_GT(next_write, 20000u);
  EXPECT_EQ(next_read, next_write);
}

TEST(SpscRing, BatchCommitPublishesAllAtOnce) {
  SpscRing<int> r(16);
  for (std::size_t k = 0; k < 5; ++k) r.write_slot(k) = static_cast<int>(k) * 7;
  EXPECT_EQ(r.readable(), 0u) << "nothing visible before commit";
  r.commit(5);
  ASSERT_EQ(r.readable(), 5u);
  for (std::size_t k = 0; k < 5; ++k) EXPECT_EQ(r.read_slot(k), static_cast<int>(k) * 7);
}

TEST(SpscRing, ConsumePartialBatchLeavesTheRest) {
  SpscRing<int> r(8);
  for (std::size_t k = 0; k < 6; ++k) r.write_slot(k) = static_cast<int>(k);
  r.commit(6);
  ASSERT_EQ(r.readable(), 6u);
  r.consume(4);
  ASSERT_EQ(r.readable(), 2u);
  EXPECT_EQ(r.read_slot(0), 4);
  EXPECT_EQ(r.read_slot(1), 5);
}

TEST(SpscRing, TwoThreadsMoveEveryValueOnceInOrder) {
  constexpr std::uint64_t total = 5'000'000;
  SpscRing<std::uint64_t> r(1024);
  std::uint64_t received = 0;
  std::uint64_t errors = 0;
  std::uint64_t first_bad = 0;
  {
    std::jthread producer([&r](std::stop_token stop) {
      std::mt19937 rng(12345);
      std::uniform_int_distribution<std::size_t> batch(1, 64);
      std::uint64_t next = 0;
      while (next < total && !stop.stop_requested()) {
        std::size_t n = batch(rng);
        if (n > total - next) n = static_cast<std::size_t>(total - next);
        const std::size_t free = r.writable();
        if (free == 0) {
          std::this_thread::yield();
          continue;
        }
        if (n > free) n = free;
        for (std::size_t k = 0; k < n; ++k) r.write_slot(k) = next++;
        r.commit(n);
      }
    });
    std::mt19937 rng(54321);
    std::uniform_int_distribution<std::size_t> batch(1, 64);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (received < total) {
      const std::size_t avail = r.readable();
      if (avail == 0) {
        if (std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::yield();
        continue;
      }
      std::size_t n = batch(rng);
      if (n > avail) n = avail;
      for (std::size_t k = 0; k < n; ++k) {
        if (r.read_slot(k) != received + k && errors++ == 0) first_bad = received + k;
      }
      r.consume(n);
      received += n;
    }
  }
  EXPECT_EQ(received, total);
  EXPECT_EQ(errors, 0u) << "first wrong value at position " << first_bad;
  EXPECT_EQ(r.readable(), 0u);
}

TEST(SpscRing, WantRefreshesTheCachedIndexOfTheOtherSide) {
  SpscRing<int> r(8);
  // Fill and drain 6 slots: the producer's cached copy of the read index is now stale.
  ASSERT_EQ(r.writable(6), 8u);
  r.commit(6);
  ASSERT_EQ(r.readable(6), 6u);
  r.consume(6);
  EXPECT_EQ(r.writable(), 2u) << "one free slot is enough for want = 1: no refresh";
  EXPECT_EQ(r.writable(3), 8u) << "want = 3 is more than the cached 2: refreshed";
  r.commit(3);
  r.commit(2);
  EXPECT_EQ(r.readable(), 5u) << "the cached count covered want = 1 only after a refresh on empty";
  r.consume(1);
  EXPECT_EQ(r.readable(), 4u);
  r.commit(1);
  EXPECT_EQ(r.readable(), 4u) << "want = 1 does not look again while 4 are known";
  EXPECT_EQ(r.readable(5), 5u);
}

}  // namespace
}  // namespace na64::eventbuilder
