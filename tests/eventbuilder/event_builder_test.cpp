// SPDX-License-Identifier: Apache-2.0
#include "na64/eventbuilder/event_builder.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace na64::eventbuilder {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const Clock::time_point kT0 = Clock::time_point{} + 1h;
constexpr std::size_t kSlotWords = 6;
constexpr std::uint32_t kCounterWords = (sizeof(BuilderSpillCounters) + 3) / 4;

constexpr std::size_t reason_index(IncompleteReason r) { return static_cast<std::size_t>(r); }

/// Payload of one fragment: 1-4 words that name source, spill, event and word.
std::vector<std::uint32_t> payload(std::size_t source, std::uint32_t spill, std::uint32_t event) {
  const std::size_t n = 1 + (source + event) % 4;
  std::vector<std::uint32_t> w(n);
  for (std::size_t k = 0; k < n; ++k) {
    w[k] = static_cast<std::uint32_t>((source << 28) | (std::size_t{spill} << 20) | (std::size_t{event} << 4) | k);
  }
  return w;
}

struct Record {
  BuiltDesc desc;
  std::vector<std::uint32_t> slot;  ///< the whole slot
};

BuilderSpillCounters counters_of(const Record& r) {
  BuilderSpillCounters c;
  std::memcpy(static_cast<void*>(&c), r.slot.data(), sizeof(c));
  return c;
}

class EventBuilderTest : public ::testing::Test {
 protected:
  void make(std::size_t sources = 3, std::size_t out_slots = 64, std::chrono::nanoseconds timeout = 2s,
            std::size_t in_slots = 64) {
    for (std::size_t s = 0; s < sources; ++s) rings_.push_back(std::make_unique<FragmentRing>(in_slots, kSlotWords));
    std::vector<FragmentRing*> ptrs;
    for (auto& r : rings_) ptrs.push_back(r.get());
    out_ = std::make_unique<BuiltRing>(out_slots, built_slot_words(ptrs));
    builder_ = std::make_unique<EventBuilder>(ptrs, *out_, BuilderConfig{timeout, 64});
  }

  void push(std::size_t s, const FragmentDesc& d, const std::vector<std::uint32_t>& words = {}) {
    FragmentRing& r = *rings_[s];
    ASSERT_GT(r.writable(), 0u) << "input ring " << s << " full";
    r.write_desc(0) = d;
    auto slot = r.write_words(0);
    std::copy(words.begin(), words.end(), slot.begin());
    r.commit(1);
  }
  void begin(std::size_t s, std::uint32_t spill) { push(s, {RecordKind::SpillBegin, spill, 0, 0}); }
  void data(std::size_t s, std::uint32_t spill, std::uint32_t event) {
    const auto w = payload(s, spill, event);
    push(s, {RecordKind::Data, spill, event, static_cast<std::uint32_t>(w.size())}, w);
  }
  void end(std::size_t s, std::uint32_t spill, std::uint32_t particles) {
    push(s, {RecordKind::SpillEnd, spill, particles, 0});
  }
  void run_end(std::size_t s) { push(s, {RecordKind::RunEnd, 0, 0, 0}); }
  void all_begin(std::uint32_t spill) {
    for (std::size_t s = 0; s < rings_.size(); ++s) begin(s, spill);
  }
  void all_data(std::uint32_t spill, std::uint32_t first, std::uint32_t last) {
    for (std::size_t s = 0; s < rings_.size(); ++s) {
      for (std::uint32_t e = first; e < last; ++e) data(s, spill, e);
    }
  }
  void all_end(std::uint32_t spill, std::uint32_t particles) {
    for (std::size_t s = 0; s < rings_.size(); ++s) end(s, spill, particles);
  }
  void all_run_end() {
    for (std::size_t s = 0; s < rings_.size(); ++s) run_end(s);
  }

  std::vector<Record> drain() {
    std::vector<Record> out;
    const std::size_t n = out_->readable();
    for (std::size_t k = 0; k < n; ++k) {
      const auto w = out_->read_words(k);
      out.push_back(Record{out_->read_desc(k), std::vector<std::uint32_t>(w.begin(), w.end())});
    }
    out_->consume(n);
    return out;
  }

  /// Checks a Data record and that its fragments are exactly the payloads
  /// of the present sources, in slot order.
  static void expect_data(const Record& r, std::uint32_t spill, std::uint32_t event, std::uint32_t present,
                          std::uint32_t missing, IncompleteReason reason) {
    SCOPED_TRACE("spill " + std::to_string(spill) + " event " + std::to_string(event));
    EXPECT_EQ(r.desc.kind, RecordKind::Data);
    EXPECT_EQ(to_string(r.desc.reason), std::string(to_string(reason)));
    EXPECT_EQ(r.desc.spill, spill);
    EXPECT_EQ(r.desc.event, event);
    EXPECT_EQ(r.desc.present_mask, present);
    EXPECT_EQ(r.desc.missing_mask, missing);
    std::vector<std::uint32_t> sources;
    std::uint32_t expected_words = 0;
    for_each_fragment(r.desc, r.slot, [&](const BuiltFragment& f) {
      sources.push_back(f.source_slot);
      const auto want = payload(f.source_slot, spill, event);
      EXPECT_EQ(std::vector<std::uint32_t>(f.words.begin(), f.words.end()), want) << "source " << f.source_slot;
    });
    std::vector<std::uint32_t> want_sources;
    for (std::uint32_t s = 0; s < 32; ++s) {
      if ((present >> s) & 1u) {
        want_sources.push_back(s);
        expected_words += static_cast<std::uint32_t>(2 + payload(s, spill, event).size());
      }
    }
    EXPECT_EQ(sources, want_sources);
    EXPECT_EQ(r.desc.n_words, expected_words);
  }

  static void expect_marker(const Record& r, RecordKind kind, std::uint32_t spill, std::uint32_t present,
                            std::uint32_t missing) {
    EXPECT_EQ(r.desc.kind, kind);
    EXPECT_EQ(r.desc.reason, IncompleteReason::None);
    EXPECT_EQ(r.desc.spill, spill);
    EXPECT_EQ(r.desc.present_mask, present);
    EXPECT_EQ(r.desc.missing_mask, missing);
  }

  std::vector<std::unique_ptr<FragmentRing>> rings_;
  std::unique_ptr<BuiltRing> out_;
  std::unique_ptr<EventBuilder> builder_;
};

TEST_F(EventBuilderTest, BuildsCompleteEventsInOrder) {
  make();
  all_begin(1);
  all_data(1, 0, 5);
  all_end(1, 5);
  all_run_end();

  EXPECT_FALSE(builder_->finished());
  EXPECT_EQ(builder_->poll(kT0), 8u);
  EXPECT_TRUE(builder_->finished());
  const auto recs = drain();
  ASSERT_EQ(recs.size(), 8u);
  expect_marker(recs[0], RecordKind::SpillBegin, 1, 0b111, 0);
  EXPECT_EQ(recs[0].desc.n_words, 0u);
  for (std::uint32_t e = 0; e < 5; ++e) expect_data(recs[1 + e], 1, e, 0b111, 0, IncompleteReason::None);
  expect_marker(recs[6], RecordKind::SpillEnd, 1, 0b111, 0);
  EXPECT_EQ(recs[6].desc.event, 5u);
  EXPECT_EQ(recs[6].desc.n_words, kCounterWords);
  expect_marker(recs[7], RecordKind::RunEnd, 0, 0b111, 0);
  for (const auto& r : rings_) EXPECT_EQ(r->readable(), 0u);
}

TEST_F(EventBuilderTest, ForwardsEachMarkerOnceWithSpillCounters) {
  make();
  all_begin(1);
  // Source 0: 0-4. Source 1: 0-6. Source 2: 0-5 without 2.
  for (std::uint32_t e = 0; e < 5; ++e) data(0, 1, e);
  for (std::uint32_t e = 0; e < 7; ++e) data(1, 1, e);
  for (std::uint32_t e : {0u, 1u, 3u, 4u, 5u}) data(2, 1, e);
  end(0, 1, 5);
  end(1, 1, 7);
  end(2, 1, 6);
  all_run_end();

  EXPECT_EQ(builder_->poll(kT0), 10u);
  const auto recs = drain();
  ASSERT_EQ(recs.size(), 10u);
  expect_marker(recs[0], RecordKind::SpillBegin, 1, 0b111, 0);
  expect_data(recs[1], 1, 0, 0b111, 0, IncompleteReason::None);
  expect_data(recs[2], 1, 1, 0b111, 0, IncompleteReason::None);
  expect_data(recs[3], 1, 2, 0b011, 0b100, IncompleteReason::Skipped);
  expect_data(recs[4], 1, 3, 0b111, 0, IncompleteReason::None);
  expect_data(recs[5], 1, 4, 0b111, 0, IncompleteReason::None);
  expect_data(recs[6], 1, 5, 0b110, 0b001, IncompleteReason::EndOfSpill);
  expect_data(recs[7], 1, 6, 0b010, 0b101, IncompleteReason::EndOfSpill);
  expect_marker(recs[8], RecordKind::SpillEnd, 1, 0b111, 0);
  expect_marker(recs[9], RecordKind::RunEnd, 0, 0b111, 0);

  EXPECT_EQ(recs[8].desc.event, 7u);
  const BuilderSpillCounters c = counters_of(recs[8]);
  EXPECT_EQ(c.particles, 7u);
  EXPECT_EQ(c.complete, 4u);
  EXPECT_EQ(c.incomplete, 3u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::None)], 4u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::Timeout)], 0u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::SourceLost)], 0u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::Skipped)], 1u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::EndOfSpill)], 2u);
  EXPECT_EQ(c.late_fragments, 0u);
  EXPECT_EQ(c.lost_sources, 0u);

  const BuilderSpillCounters& t = builder_->totals();
  EXPECT_EQ(t.particles, 7u);
  EXPECT_EQ(t.complete, 4u);
  EXPECT_EQ(t.incomplete, 3u);
  EXPECT_EQ(t.by_reason, c.by_reason);
}

TEST_F(EventBuilderTest, SourceThatSkipsAnEventIsMissingWithSkipped) {
  make();
  all_begin(1);
  data(0, 1, 0);
  data(1, 1, 0);
  data(2, 1, 0);
  data(0, 1, 1);
  data(2, 1, 1);
  all_data(1, 2, 3);
  EXPECT_EQ(builder_->poll(kT0), 4u);
  const auto recs = drain();
  ASSERT_EQ(recs.size(), 4u);
  expect_data(recs[1], 1, 0, 0b111, 0, IncompleteReason::None);
  expect_data(recs[2], 1, 1, 0b101, 0b010, IncompleteReason::Skipped);
  expect_data(recs[3], 1, 2, 0b111, 0, IncompleteReason::None);
}

TEST_F(EventBuilderTest, SourceThatEndsTheSpillEarlyGivesEndOfSpill) {
  make();
  all_begin(1);
  all_data(1, 0, 2);
  data(0, 1, 2);
  data(1, 1, 2);
  end(0, 1, 3);
  end(1, 1, 3);
  end(2, 1, 2);
  EXPECT_EQ(builder_->poll(kT0), 5u);
  const auto recs = drain();
  ASSERT_EQ(recs.size(), 5u);
  expect_data(recs[3], 1, 2, 0b011, 0b100, IncompleteReason::EndOfSpill);
  expect_marker(recs[4], RecordKind::SpillEnd, 1, 0b111, 0);
  const auto c = counters_of(recs[4]);
  EXPECT_EQ(c.particles, 3u);
  EXPECT_EQ(c.complete, 2u);
  EXPECT_EQ(c.incomplete, 1u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::EndOfSpill)], 1u);
}

TEST_F(EventBuilderTest, DoesNotReleaseBeforeTheTimeout) {
  make(3, 64, 2s);
  all_begin(1);
  data(0, 1, 0);
  data(1, 1, 0);
  EXPECT_EQ(builder_->poll(kT0), 1u);  // SpillBegin; event 0 starts waiting
  EXPECT_EQ(builder_->poll(kT0 + 1s), 0u);
  EXPECT_EQ(builder_->poll(kT0 + 2s - 1ns), 0u);
  data(2, 1, 0);
  EXPECT_EQ(builder_->poll(kT0 + 2s - 1ns), 1u);
  const auto recs = drain();
  ASSERT_EQ(recs.size(), 2u);
  expect_data(recs[1], 1, 0, 0b111, 0, IncompleteReason::None);
}

TEST_F(EventBuilderTest, IdleTimeWithNothingToBuildDoesNotCountAsSilence) {
  make(3, 64, 2s);
  EXPECT_EQ(builder_->poll(kT0), 0u);
  EXPECT_EQ(builder_->poll(kT0 + 10s), 0u);
  begin(0, 1);
  begin(1, 1);
  // Source 2 has had nothing to send until now: it is not late yet.
  EXPECT_EQ(builder_->poll(kT0 + 20s), 0u);
  EXPECT_EQ(builder_->poll(kT0 + 21s), 0u);
  begin(2, 1);
  EXPECT_EQ(builder_->poll(kT0 + 21s), 1u);
  const auto recs = drain();
  ASSERT_EQ(recs.size(), 1u);
  expect_marker(recs[0], RecordKind::SpillBegin, 1, 0b111, 0);
}

TEST_F(EventBuilderTest, GapBetweenSpillsLosesNoSource) {
  make(3, 64, 2s);
  all_begin(1);
  all_data(1, 0, 2);
  all_end(1, 2);
  EXPECT_EQ(builder_->poll(kT0), 4u);
  // 20 s without beam, polled every 100 ms.
  for (int k = 1; k <= 200; ++k) ASSERT_EQ(builder_->poll(kT0 + k * 100ms), 0u);
  begin(0, 2);
  data(0, 2, 0);
  EXPECT_EQ(builder_->poll(kT0 + 20s + 1ms), 0u);
  begin(1, 2);
  begin(2, 2);
  data(1, 2, 0);
  data(2, 2, 0);
  EXPECT_EQ(builder_->poll(kT0 + 20s + 2ms), 2u);
  const auto recs = drain();
  ASSERT_EQ(recs.size(), 6u);
  expect_marker(recs[4], RecordKind::SpillBegin, 2, 0b111, 0);
  expect_data(recs[5], 2, 0, 0b111, 0, IncompleteReason::None);
}

TEST_F(EventBuilderTest, SilentSourceTimesOutThenIsLostThenComesBack) {
  make(3, 64, 2s);
  all_begin(1);
  data(0, 1, 0);
  data(1, 1, 0);
  data(2, 1, 0);
  for (std::uint32_t e = 1; e < 4; ++e) {
    data(0, 1, e);
    data(1, 1, e);
  }
  EXPECT_EQ(builder_->poll(kT0), 2u);  // SpillBegin, event 0; event 1 waits for source 2
  EXPECT_EQ(builder_->poll(kT0 + 2s - 1ns), 0u);
  EXPECT_EQ(builder_->poll(kT0 + 2s), 3u);  // 1 timed out; 2 and 3 do not wait for a lost source
  auto recs = drain();
  ASSERT_EQ(recs.size(), 5u);
  expect_data(recs[1], 1, 0, 0b111, 0, IncompleteReason::None);
  expect_data(recs[2], 1, 1, 0b011, 0b100, IncompleteReason::Timeout);
  expect_data(recs[3], 1, 2, 0b011, 0b100, IncompleteReason::SourceLost);
  expect_data(recs[4], 1, 3, 0b011, 0b100, IncompleteReason::SourceLost);

  // Source 2 comes back: its fragments of released events are late.
  for (std::uint32_t e = 1; e < 5; ++e) data(2, 1, e);
  data(0, 1, 4);
  data(1, 1, 4);
  data(0, 1, 5);
  data(1, 1, 5);
  EXPECT_EQ(builder_->poll(kT0 + 3s), 1u);  // 4 is complete again; 5 waits for source 2
  EXPECT_EQ(builder_->poll(kT0 + 5s - 1ns), 0u);
  data(2, 1, 5);
  EXPECT_EQ(builder_->poll(kT0 + 5s - 1ns), 1u);
  all_end(1, 6);
  EXPECT_EQ(builder_->poll(kT0 + 5s), 1u);
  recs = drain();
  ASSERT_EQ(recs.size(), 3u);
  expect_data(recs[0], 1, 4, 0b111, 0, IncompleteReason::None);
  expect_data(recs[1], 1, 5, 0b111, 0, IncompleteReason::None);
  expect_marker(recs[2], RecordKind::SpillEnd, 1, 0b111, 0);
  const auto c = counters_of(recs[2]);
  EXPECT_EQ(c.particles, 6u);
  EXPECT_EQ(c.complete, 3u);
  EXPECT_EQ(c.incomplete, 3u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::None)], 3u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::Timeout)], 1u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::SourceLost)], 2u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::Skipped)], 0u);
  EXPECT_EQ(c.by_reason[reason_index(IncompleteReason::EndOfSpill)], 0u);
  EXPECT_EQ(c.late_fragments, 3u);
  EXPECT_EQ(c.lost_sources, 0b100u);
  EXPECT_EQ(builder_->totals().late_fragments, 3u);
  EXPECT_EQ(builder_->totals().lost_sources, 0b100u);
}

TEST_F(EventBuilderTest, LostSourceRejoinsAtTheNextSpillBoundary) {
  make(3, 64, 2s);
  all_begin(1);
  all_data(1, 0, 1);
  for (std::uint32_t e = 1; e < 4; ++e) {
    data(0, 1, e);
    data(1, 1, e);
  }
  EXPECT_EQ(builder_->poll(kT0), 2u);
  EXPECT_EQ(builder_->poll(kT0 + 2s), 3u);  // 1 Timeout, 2 and 3 SourceLost
  drain();
  end(0, 1, 4);
  end(1, 1, 4);
  begin(0, 2);
  begin(1, 2);
  data(0, 2, 0);
  data(1, 2, 0);
  EXPECT_EQ(builder_->poll(kT0 + 3s), 1u);  // SpillEnd 1; spill 2 waits for the lost source
  EXPECT_EQ(builder_->poll(kT0 + 5s - 1ns), 0u);

  // The stalled board catches up: its stale spill-1 records are dropped as late.
  for (std::uint32_t e = 1; e < 4; ++e) data(2, 1, e);
  end(2, 1, 4);
  begin(2, 2);
  data(2, 2, 0);
  EXPECT_EQ(builder_->poll(kT0 + 5s - 1ns), 2u);
  auto recs = drain();
  ASSERT_EQ(recs.size(), 3u);
  expect_marker(recs[0], RecordKind::SpillEnd, 1, 0b011, 0b100);
  expect_marker(recs[1], RecordKind::SpillBegin, 2, 0b111, 0);
  expect_data(recs[2], 2, 0, 0b111, 0, IncompleteReason::None);
}

TEST_F(EventBuilderTest, LostSourceThatDoesNotCatchUpIsLeftAfterTheTimeout) {
  make(3, 64, 2s);
  all_begin(1);
  data(0, 1, 0);
  data(1, 1, 0);
  EXPECT_EQ(builder_->poll(kT0), 1u);
  EXPECT_EQ(builder_->poll(kT0 + 2s), 1u);  // event 0 Timeout
  end(0, 1, 1);
  end(1, 1, 1);
  begin(0, 2);
  begin(1, 2);
  data(0, 2, 0);
  data(1, 2, 0);
  EXPECT_EQ(builder_->poll(kT0 + 3s), 1u);  // SpillEnd 1, then waiting at spill 2
  EXPECT_EQ(builder_->poll(kT0 + 5s - 1ns), 0u);
  EXPECT_EQ(builder_->poll(kT0 + 5s), 2u);
  auto recs = drain();
  ASSERT_EQ(recs.size(), 5u);
  expect_marker(recs[3], RecordKind::SpillBegin, 2, 0b011, 0b100);
  expect_data(recs[4], 2, 0, 0b011, 0b100, IncompleteReason::SourceLost);
}

TEST_F(EventBuilderTest, LateFragmentsAfterSpillEndAreCounted) {
  make(3, 64, 2s);
  all_begin(1);
  all_data(1, 0, 1);
  data(0, 1, 1);
  data(1, 1, 1);
  end(0, 1, 2);
  end(1, 1, 2);
  EXPECT_EQ(builder_->poll(kT0), 2u);
  EXPECT_EQ(builder_->poll(kT0 + 2s), 2u);  // event 1 Timeout, SpillEnd without source 2
  auto recs = drain();
  ASSERT_EQ(recs.size(), 4u);
  expect_data(recs[2], 1, 1, 0b011, 0b100, IncompleteReason::Timeout);
  expect_marker(recs[3], RecordKind::SpillEnd, 1, 0b011, 0b100);
  EXPECT_EQ(counters_of(recs[3]).late_fragments, 0u);
  EXPECT_EQ(counters_of(recs[3]).lost_sources, 0b100u);

  // Source 2's end of spill 1 arrives after the builder closed it.
  data(2, 1, 1);
  end(2, 1, 2);
  all_begin(2);
  all_data(2, 0, 1);
  all_end(2, 1);
  EXPECT_EQ(builder_->poll(kT0 + 3s), 3u);
  recs = drain();
  ASSERT_EQ(recs.size(), 3u);
  expect_marker(recs[0], RecordKind::SpillBegin, 2, 0b111, 0);
  expect_data(recs[1], 2, 0, 0b111, 0, IncompleteReason::None);
  expect_marker(recs[2], RecordKind::SpillEnd, 2, 0b111, 0);
  const auto c = counters_of(recs[2]);
  EXPECT_EQ(c.complete, 1u);
  EXPECT_EQ(c.lost_sources, 0u);
  // Dropped between the spills: counted once, in the next spill.
  EXPECT_EQ(c.late_fragments, 2u);
  EXPECT_EQ(builder_->totals().late_fragments, 2u);
  EXPECT_EQ(builder_->totals().complete, 2u);
  EXPECT_EQ(builder_->totals().incomplete, 1u);
}

TEST_F(EventBuilderTest, StopsWhenOutputIsFullAndResumesWithoutLoss) {
  make(3, 4);
  all_begin(1);
  all_data(1, 0, 10);
  all_end(1, 10);
  all_run_end();
  std::vector<Record> recs;
  EXPECT_EQ(builder_->poll(kT0), 4u);
  EXPECT_EQ(builder_->poll(kT0 + 10s), 0u) << "output full";
  EXPECT_EQ(rings_[0]->readable(), 9u) << "nothing consumed while the output is full";
  for (int round = 0; round < 10 && !builder_->finished(); ++round) {
    for (auto& r : drain()) recs.push_back(r);
    builder_->poll(kT0 + 10s);
  }
  for (auto& r : drain()) recs.push_back(r);
  EXPECT_TRUE(builder_->finished());
  ASSERT_EQ(recs.size(), 13u);
  expect_marker(recs[0], RecordKind::SpillBegin, 1, 0b111, 0);
  for (std::uint32_t e = 0; e < 10; ++e) expect_data(recs[1 + e], 1, e, 0b111, 0, IncompleteReason::None);
  expect_marker(recs[11], RecordKind::SpillEnd, 1, 0b111, 0);
  EXPECT_EQ(counters_of(recs[11]).complete, 10u);
  expect_marker(recs[12], RecordKind::RunEnd, 0, 0b111, 0);
}

TEST_F(EventBuilderTest, SourceFarAheadStillBuildsCompleteEvents) {
  make(3, 64, 2s);
  all_begin(1);
  for (std::uint32_t e = 0; e < 50; ++e) data(0, 1, e);
  std::vector<Record> recs;
  // Sources 1 and 2 trickle in, one event each 300 ms: 15 s in all.
  for (std::uint32_t e = 0; e < 50; ++e) {
    const auto now = kT0 + e * 300ms;
    data(1, 1, e);
    ASSERT_EQ(builder_->poll(now), e == 0 ? 1u : 0u);
    data(2, 1, e);
    ASSERT_EQ(builder_->poll(now + 100ms), 1u);
    for (auto& r : drain()) recs.push_back(r);
  }
  ASSERT_EQ(recs.size(), 51u);
  for (std::uint32_t e = 0; e < 50; ++e) expect_data(recs[1 + e], 1, e, 0b111, 0, IncompleteReason::None);
}

TEST_F(EventBuilderTest, SourcesBehindTheFirstStillBuildCompleteEvents) {
  make(3, 64, 2s);
  all_begin(1);
  for (std::uint32_t e = 0; e < 40; ++e) {
    data(1, 1, e);
    data(2, 1, e);
  }
  std::vector<Record> recs;
  for (std::uint32_t e = 0; e < 40; ++e) {
    data(0, 1, e);
    ASSERT_EQ(builder_->poll(kT0 + e * 1s), e == 0 ? 2u : 1u);
    for (auto& r : drain()) recs.push_back(r);
  }
  ASSERT_EQ(recs.size(), 41u);
  for (std::uint32_t e = 0; e < 40; ++e) expect_data(recs[1 + e], 1, e, 0b111, 0, IncompleteReason::None);
}

TEST_F(EventBuilderTest, PublishesRunEndOnlyWhenEverySourceEnded) {
  make();
  run_end(0);
  run_end(1);
  EXPECT_EQ(builder_->poll(kT0), 0u);
  EXPECT_EQ(builder_->poll(kT0 + 1s), 0u);
  EXPECT_FALSE(builder_->finished());
  run_end(2);
  EXPECT_EQ(builder_->poll(kT0 + 1s), 1u);
  EXPECT_TRUE(builder_->finished());
  const auto recs = drain();
  ASSERT_EQ(recs.size(), 1u);
  expect_marker(recs[0], RecordKind::RunEnd, 0, 0b111, 0);
}

TEST_F(EventBuilderTest, PublishesRunEndWithoutALostSource) {
  make(3, 64, 2s);
  run_end(0);
  run_end(1);
  EXPECT_EQ(builder_->poll(kT0), 0u);
  EXPECT_EQ(builder_->poll(kT0 + 2s - 1ns), 0u);
  EXPECT_FALSE(builder_->finished());
  EXPECT_EQ(builder_->poll(kT0 + 2s), 1u);
  EXPECT_TRUE(builder_->finished());
  const auto recs = drain();
  ASSERT_EQ(recs.size(), 1u);
  expect_marker(recs[0], RecordKind::RunEnd, 0, 0b011, 0b100);
}

TEST_F(EventBuilderTest, DoesNothingAfterRunEnd) {
  make();
  all_run_end();
  EXPECT_EQ(builder_->poll(kT0), 1u);
  EXPECT_TRUE(builder_->finished());
  all_begin(2);
  EXPECT_EQ(builder_->poll(kT0 + 1s), 0u);
  EXPECT_EQ(rings_[0]->readable(), 1u);
  EXPECT_TRUE(builder_->finished());
}

TEST(EventBuilder, RejectsNoSources) {
  BuiltRing out(4, 64);
  try {
    EventBuilder b({}, out, BuilderConfig{});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "event builder: between 1 and 32 sources");
  }
}

TEST(EventBuilder, RejectsMoreThan32Sources) {
  std::vector<std::unique_ptr<FragmentRing>> rings;
  std::vector<FragmentRing*> ptrs;
  for (int s = 0; s < 33; ++s) {
    rings.push_back(std::make_unique<FragmentRing>(2, 1));
    ptrs.push_back(rings.back().get());
  }
  BuiltRing out(2, built_slot_words(ptrs));
  try {
    EventBuilder b(ptrs, out, BuilderConfig{});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "event builder: between 1 and 32 sources");
  }
}

TEST(EventBuilder, RejectsOutputSlotSmallerThanAllFragments) {
  FragmentRing a(4, 16);
  FragmentRing b(4, 16);
  std::vector<FragmentRing*> ptrs{&a, &b};
  EXPECT_EQ(built_slot_words(ptrs), 36u);
  BuiltRing out(4, 35);
  try {
    EventBuilder builder(ptrs, out, BuilderConfig{});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "event builder: output slot smaller than all fragments together");
  }
}

TEST(EventBuilder, SlotWordsCoverTheSpillCounters) {
  FragmentRing a(4, 1);
  std::vector<FragmentRing*> ptrs{&a};
  EXPECT_EQ(built_slot_words(ptrs), std::size_t{kCounterWords});
}

TEST(EventBuilder, NamesEveryIncompleteReason) {
  EXPECT_STREQ(to_string(IncompleteReason::None), "none");
  EXPECT_STREQ(to_string(IncompleteReason::Timeout), "timeout");
  EXPECT_STREQ(to_string(IncompleteReason::SourceLost), "source_lost");
  EXPECT_STREQ(to_string(IncompleteReason::Skipped), "skipped");
  EXPECT_STREQ(to_string(IncompleteReason::EndOfSpill), "end_of_spill");
}

TEST(EventBuilder, ThreeProducerThreadsAndABuilderKeepEveryEventInOrder) {
  constexpr std::size_t kSources = 3;
  constexpr std::uint32_t kEvents = 100'000;
  std::vector<std::unique_ptr<FragmentRing>> rings;
  std::vector<FragmentRing*> ptrs;
  for (std::size_t s = 0; s < kSources; ++s) {
    rings.push_back(std::make_unique<FragmentRing>(1024, 4));
    ptrs.push_back(rings.back().get());
  }
  BuiltRing out(1024, built_slot_words(ptrs));
  // A long timeout: threads on a loaded machine may stall, and this test is
  // about order and completeness, not about timeouts.
  EventBuilder builder(ptrs, out, BuilderConfig{60s, 64});

  {
    std::vector<std::jthread> producers;
    for (std::size_t s = 0; s < kSources; ++s) {
      producers.emplace_back([&ring = *rings[s], s](std::stop_token stop) {
        std::mt19937 rng(static_cast<std::uint32_t>(s + 1));
        std::uniform_int_distribution<std::size_t> batch(1, 64);
        // Records: SpillBegin, kEvents data, SpillEnd, RunEnd.
        const std::uint64_t total = std::uint64_t{kEvents} + 3;
        std::uint64_t next = 0;
        while (next < total && !stop.stop_requested()) {
          std::size_t n = std::min<std::size_t>(batch(rng), ring.writable());
          if (n > total - next) n = static_cast<std::size_t>(total - next);
          if (n == 0) {
            std::this_thread::yield();
            continue;
          }
          for (std::size_t k = 0; k < n; ++k, ++next) {
            FragmentDesc& d = ring.write_desc(k);
            if (next == 0) {
              d = {RecordKind::SpillBegin, 1, 0, 0};
            } else if (next <= kEvents) {
              const auto e = static_cast<std::uint32_t>(next - 1);
              const std::size_t words = 1 + (s + e) % 4;
              auto w = ring.write_words(k);
              for (std::size_t i = 0; i < words; ++i) w[i] = static_cast<std::uint32_t>((s << 28) | (e << 2) | i);
              d = {RecordKind::Data, 1, e, static_cast<std::uint32_t>(words)};
            } else if (next == std::uint64_t{kEvents} + 1) {
              d = {RecordKind::SpillEnd, 1, kEvents, 0};
            } else {
              d = {RecordKind::RunEnd, 0, 0, 0};
            }
          }
          ring.commit(n);
        }
      });
    }
    std::jthread builder_thread([&builder](std::stop_token stop) {
      while (!builder.finished() && !stop.stop_requested()) {
        if (builder.poll(Clock::now()) == 0) std::this_thread::yield();
      }
    });

    std::uint64_t data = 0;
    std::uint64_t bad = 0;
    std::string first_bad;
    auto note = [&](const std::string& what) {
      if (bad++ == 0) first_bad = what;
    };
    std::vector<RecordKind> markers;
    bool done = false;
    const auto deadline = Clock::now() + 60s;
    while (!done && Clock::now() < deadline) {
      const std::size_t n = out.readable();
      if (n == 0) {
        std::this_thread::yield();
        continue;
      }
      for (std::size_t k = 0; k < n; ++k) {
        const BuiltDesc& d = out.read_desc(k);
        if (d.kind != RecordKind::Data) {
          markers.push_back(d.kind);
          if (d.kind == RecordKind::SpillEnd) {
            BuilderSpillCounters c;
            std::memcpy(static_cast<void*>(&c), out.read_words(k).data(), sizeof(c));
            if (c.complete != kEvents || c.incomplete != 0 || c.particles != kEvents) note("spill counters");
          }
          done = d.kind == RecordKind::RunEnd;
          continue;
        }
        const auto e = static_cast<std::uint32_t>(data);
        if (d.event != e || d.spill != 1 || d.reason != IncompleteReason::None || d.present_mask != 0b111 ||
            d.missing_mask != 0) {
          note("event " + std::to_string(e) + ": got event " + std::to_string(d.event));
        }
        std::uint32_t s = 0;
        for_each_fragment(d, out.read_words(k), [&](const BuiltFragment& f) {
          bool ok = f.source_slot == s && f.words.size() == 1 + (s + e) % 4;
          for (std::size_t i = 0; ok && i < f.words.size(); ++i) {
            ok = f.words[i] == static_cast<std::uint32_t>((std::size_t{s} << 28) | (e << 2) | i);
          }
          if (!ok) note("event " + std::to_string(e) + " source " + std::to_string(s) + ": wrong payload");
          ++s;
        });
        if (s != kSources) note("event " + std::to_string(e) + ": " + std::to_string(s) + " fragments");
        ++data;
      }
      out.consume(n);
    }
    builder_thread.request_stop();
    EXPECT_TRUE(done) << "no RunEnd within 60 s";
    EXPECT_EQ(data, kEvents);
    EXPECT_EQ(bad, 0u) << first_bad;
    EXPECT_EQ(markers, (std::vector<RecordKind>{RecordKind::SpillBegin, RecordKind::SpillEnd, RecordKind::RunEnd}));
  }
  EXPECT_TRUE(builder.finished());
  EXPECT_EQ(builder.totals().complete, kEvents);
  EXPECT_EQ(builder.totals().incomplete, 0u);
}

}  // namespace
}  // namespace na64::eventbuilder
