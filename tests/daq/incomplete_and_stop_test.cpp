// SPDX-License-Identifier: Apache-2.0
// The chain when boards lose fragments, and when a run is stopped early.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <stop_token>

#include "config_text.hpp"
#include "na64/daq/config.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/daq/raw_file.hpp"
#include "na64/drivers/emulated_msadc.hpp"
#include "na64/testing/temp_dir.hpp"

namespace na64::daq {
namespace {

namespace fw = na64::firmware;
namespace eb = na64::eventbuilder;
using Key = std::pair<std::uint32_t, std::uint32_t>;  // (spill, particle)

std::map<Key, std::uint32_t> written_events(const std::filesystem::path& file, FileCheck& check) {
  std::map<Key, std::uint32_t> written;
  check = check_date_file(file, [&](const fw::DateHeader& h, std::uint32_t, const fw::MsadcChannel&) {
    if (h.type == fw::EventType::Physics) written[{h.spill, h.detector_pattern}] = h.trigger_mask;
  });
  return written;
}

TEST(Pipeline, LostFragmentsMakeIncompleteEventsCountedByReasonAndNeverWritten) {
  constexpr std::uint32_t kSpills = 2;
  constexpr std::uint32_t kParticles = 3000;
  testing::TempDir dir;
  DaqConfig config = load_config(testing_config::direct_default(), "embedded default, direct readout");
  config.beam.particles_per_spill = kParticles;
  config.beam.signal_fraction = 0.02;
  config.emulator.fragment_loss = 0.003;
  const auto summary = run_simulated(config, RunOptions{dir.path(), 7, kSpills}, {});

  // What the emulated boards lost, and the reason the builder must give.
  const drivers::NA64Beam beam(config.beam);
  std::vector<std::unique_ptr<drivers::EmulatedMsadcBoard>> boards;
  for (std::uint32_t s : config.channel_map.sources()) {
    boards.push_back(std::make_unique<drivers::EmulatedMsadcBoard>(s, config.channel_map, beam, config.emulator));
  }
  std::uint64_t skipped = 0;
  std::uint64_t end_of_spill = 0;
  std::set<Key> incomplete;
  std::set<Key> want_invisible;
  drivers::CellDeposits dep;
  for (std::uint32_t spill = 1; spill <= kSpills; ++spill) {
    for (std::uint32_t p = 1; p <= kParticles; ++p) {
      bool missing = false;
      bool closed = false;  // a missing board sent nothing more in this spill
      for (const auto& b : boards) {
        if (!b->loses(spill, p)) continue;
        missing = true;
        bool later = false;
        for (std::uint32_t q = p + 1; q <= kParticles && !later; ++q) later = !b->loses(spill, q);
        closed = closed || !later;
      }
      if (missing) {
        incomplete.insert({spill, p});
        ++(closed ? end_of_spill : skipped);
        continue;
      }
      const auto t = beam.generate(spill, p, dep);
      if (t.signal && t.srd_tagged) want_invisible.insert({spill, p});
    }
  }
  ASSERT_GT(incomplete.size(), 30u);

  const auto& b = summary.total.builder;
  EXPECT_EQ(b.particles, kSpills * kParticles);
  EXPECT_EQ(b.incomplete, incomplete.size());
  EXPECT_EQ(b.complete, kSpills * kParticles - incomplete.size());
  EXPECT_EQ(b.by_reason[static_cast<std::size_t>(eb::IncompleteReason::Skipped)], skipped);
  EXPECT_EQ(b.by_reason[static_cast<std::size_t>(eb::IncompleteReason::EndOfSpill)], end_of_spill);
  EXPECT_EQ(b.by_reason[static_cast<std::size_t>(eb::IncompleteReason::Timeout)], 0u);
  EXPECT_EQ(b.late_fragments, 0u);

  FileCheck check;
  const auto written = written_events(dir.path() / "cdr01001-000007.dat", check);
  EXPECT_EQ(check.errors, std::vector<std::string>{});
  EXPECT_EQ(written.size(), summary.total.written);
  EXPECT_EQ(summary.total.written, summary.total.accepted_events);
  std::set<Key> got_invisible;
  for (const auto& [key, mask] : written) {
    EXPECT_EQ(incomplete.count(key), 0u) << "incomplete event written: spill " << key.first << " particle " << key.second;
    if (mask & 1u) got_invisible.insert(key);
  }
  EXPECT_EQ(got_invisible, want_invisible);
}

TEST(Pipeline, BoardThatStallsIsLostThenRejoinsTheNextSpill) {
  constexpr std::uint32_t kParticles = 1000;
  constexpr std::uint32_t kStallAt = 200;
  testing::TempDir dir;
  DaqConfig config = load_config(testing_config::direct_default(), "embedded default, direct readout");
  config.beam.particles_per_spill = kParticles;
  // Given up on after 2 s of silence; back after 3 s. Spill 2 then waits up
  // to 2 s more for it, which leaves about a second for it to catch up even
  // in a sanitizer build sharing the cores with other tests.
  config.builder.timeout = std::chrono::milliseconds(2000);
  config.emulator.stall_source = 620;
  config.emulator.stall_spill = 1;
  config.emulator.stall_particle = kStallAt;
  config.emulator.stall_ms = 3000;
  const auto summary = run_simulated(config, RunOptions{dir.path(), 9, 3}, {});

  ASSERT_EQ(summary.spills.size(), 3u);
  const auto& s1 = summary.spills[0].builder;
  EXPECT_EQ(s1.particles, kParticles);
  EXPECT_EQ(s1.complete, kStallAt - 1);
  EXPECT_EQ(s1.incomplete, kParticles - kStallAt + 1);
  EXPECT_EQ(s1.by_reason[static_cast<std::size_t>(eb::IncompleteReason::Timeout)], 1u);
  EXPECT_EQ(s1.by_reason[static_cast<std::size_t>(eb::IncompleteReason::SourceLost)], kParticles - kStallAt);
  EXPECT_EQ(s1.lost_sources, 0b001u);  // slot 0 = source 620
  // Back from the next spill on: every event complete.
  for (std::size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(summary.spills[i].builder.complete, kParticles) << "spill " << i + 1;
    EXPECT_EQ(summary.spills[i].builder.lost_sources, 0u) << "spill " << i + 1;
  }
  // What the board sent of spill 1 after it was given up on arrived late:
  // its particles from kStallAt on, and its end of spill.
  EXPECT_EQ(summary.total.builder.late_fragments, kParticles - kStallAt + 1 + 1);
}

TEST(Pipeline, StopFinishesTheCurrentSpillAndLeavesCleanFiles) {
  constexpr std::uint32_t kSpills = 200;
  constexpr std::uint32_t kParticles = 2000;
  testing::TempDir dir;
  DaqConfig config = load_config(testing_config::direct_default(), "embedded default, direct readout");
  config.beam.particles_per_spill = kParticles;
  std::stop_source stop;
  const auto summary = run_simulated(
      config, RunOptions{dir.path(), 8, kSpills}, [&](const SpillSummary&) { stop.request_stop(); },
      stop.get_token());

  ASSERT_GE(summary.spills.size(), 1u);
  EXPECT_LT(summary.spills.size(), kSpills);
  for (const auto& s : summary.spills) {
    // The spill in progress is read out whole: nothing incomplete.
    EXPECT_EQ(s.builder.particles, kParticles) << "spill " << s.spill;
    EXPECT_EQ(s.builder.complete, kParticles) << "spill " << s.spill;
    EXPECT_EQ(s.written, s.accepted_events) << "spill " << s.spill;
  }
  FileCheck check;
  const auto written = written_events(dir.path() / "cdr01001-000008.dat", check);
  EXPECT_EQ(check.errors, std::vector<std::string>{});
  EXPECT_EQ(check.by_type[1], 1u);
  EXPECT_EQ(check.by_type[5], summary.spills.size());
  EXPECT_EQ(check.by_type[6], summary.spills.size());
  EXPECT_EQ(check.by_type[2], 1u);
  EXPECT_EQ(written.size(), summary.total.written);
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "run-000008.summary.json"));
}

}  // namespace
}  // namespace na64::daq
