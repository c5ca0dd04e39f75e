// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/dqm.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "dqm_fixtures.hpp"

// Counts every allocation of the test program, so that a test can assert
// that a call allocates nothing. Not inlined: GCC would otherwise see a
// `new` paired with free() and warn.
namespace {
std::atomic<std::size_t> g_allocations{0};
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace na64::monitoring {
namespace {

namespace fw = na64::firmware;
using testing::pattern_event;
using testing::pattern_mask;
using testing::quiet_event;
using testing::reference_map;

template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

DqmConfig every_event() {
  DqmConfig c;
  c.sample_period = 1;
  return c;
}

class DqmHistogramsTest : public ::testing::Test {
 protected:
  fw::ChannelMap map_ = reference_map();
};

TEST_F(DqmHistogramsTest, FillPutsEachQuantityInItsHistogram) {
  DqmHistograms d(map_, every_event());
  trigger::EventFeatures f = quiet_event();
  f.ecal_gev = 80.5f;
  f.hcal_gev = 2.5f;
  f.preshower_gev = 10.0f;
  f.energy_gev[fw::cell_index(fw::Detector::Ecal1, 3, 4)] = 5.0f;
  f.energy_gev[fw::cell_index(fw::Detector::Ecal0, 2, 2)] = 0.25f;  // below the 0.5 GeV occupancy threshold
  f.energy_gev[fw::cell_index(fw::Detector::Hcal2, 1, 1)] = 1.5f;
  f.energy_gev[fw::cell_index(fw::Detector::Hcal2, 0, 0)] = 0.5f;  // at the threshold: not a hit
  f.srd_gev = {0.0105f, 0.0205f, 0.090f};                          // module 2 beyond 80 MeV: not tagged
  f.amplitude_adc[fw::cell_index(fw::Detector::Veto, 1, 0)] = 100.0f;
  f.amplitude_adc[fw::cell_index(fw::Detector::Veto, 1, 1)] = 60.0f;
  d.fill(f, trigger::bit(trigger::TriggerLine::Invisible) | trigger::bit(trigger::TriggerLine::Random));

  EXPECT_EQ(d.counters().filled, 1u);
  EXPECT_EQ(d.counters().events, 0u);  // counted by offer() only
  EXPECT_EQ(d.counters().srd_tagged, 0u);
  EXPECT_EQ(d.ecal_energy().content(81), 1);  // 1 GeV bins from 0
  EXPECT_EQ(d.hcal_energy().content(3), 1);
  EXPECT_EQ(d.preshower_energy().content(41), 1);  // 0.25 GeV bins up to 30 GeV
  EXPECT_EQ(d.ecal_vs_hcal().content(81, 3), 1);
  EXPECT_EQ(d.ecal_vs_hcal().entries(), 1);

  const Histogram2D ecal1 = d.ecal_energy_map(1);
  EXPECT_EQ(ecal1.name(), "ecal1_energy_map");
  EXPECT_EQ(ecal1.content(4, 5), 5);
  EXPECT_EQ(ecal1.sum_w(), 5);
  EXPECT_EQ(ecal1.entries(), 1);
  EXPECT_EQ(d.ecal_energy_map(0).content(3, 3), 0.25);
  EXPECT_EQ(d.ecal_occupancy(1).content(4, 5), 1);
  EXPECT_EQ(d.ecal_occupancy(0).content(3, 3), 0);
  EXPECT_EQ(d.ecal_occupancy(0).entries(), 0);

  EXPECT_THROW((void)d.ecal_energy_map(2), std::out_of_range);
  EXPECT_EQ(message_of<std::out_of_range>([&] { (void)d.ecal_occupancy(2); }),
            "ECAL section 2 does not exist; sections are 0 (ECAL0) and 1 (ECAL1)");

  const Histogram1D occ = d.cell_occupancy();
  EXPECT_EQ(occ.content(fw::cell_index(fw::Detector::Ecal1, 3, 4) + 1u), 1);
  EXPECT_EQ(occ.content(fw::cell_index(fw::Detector::Hcal2, 1, 1) + 1u), 1);
  EXPECT_EQ(occ.content(fw::cell_index(fw::Detector::Hcal2, 0, 0) + 1u), 0);
  EXPECT_EQ(occ.entries(), 2);

  EXPECT_EQ(d.hcal_module_energy(2).content(3), 1);  // 2.0 GeV
  EXPECT_EQ(d.hcal_module_energy(0).content(1), 1);  // 0 GeV
  EXPECT_EQ(d.srd_energy(0).content(11), 1);          // 10.5 MeV, 1 MeV bins
  EXPECT_EQ(d.srd_energy(1).content(21), 1);
  EXPECT_EQ(d.srd_energy(2).content(91), 1);
  EXPECT_EQ(d.veto_amplitude(1).content(41), 1);      // (100 + 60) / 2 = 80 counts, 2-count bins
  EXPECT_EQ(d.veto_amplitude(0).content(1), 1);
  EXPECT_EQ(d.trigger_lines().content(1), 1);
  EXPECT_EQ(d.trigger_lines().content(2), 0);
  EXPECT_EQ(d.trigger_lines().content(3), 1);
}

TEST_F(DqmHistogramsTest, SrdTaggedNeedsEveryModuleInTheWindow) {
  DqmHistograms d(map_, every_event());
  trigger::EventFeatures f = quiet_event();
  f.srd_gev = {0.001f, 0.080f, 0.040f};  // both edges inside
  d.fill(f, 0);
  f.srd_gev = {0.0009f, 0.040f, 0.040f};
  d.fill(f, 0);
  EXPECT_EQ(d.counters().srd_tagged, 1u);
  EXPECT_EQ(d.counters().srd_tagged_fraction(), 0.5);
}

TEST_F(DqmHistogramsTest, PedestalAndNoisePerCellSkipCellsNotRead) {
  DqmHistograms d(map_, every_event());
  const auto cell = fw::cell_index(fw::Detector::Ecal0, 1, 2);
  for (float ped : {199.0f, 201.0f, 199.0f, 201.0f, 0.0f}) {  // the last event did not read the cell
    trigger::EventFeatures f = quiet_event();
    f.pedestal_adc[cell] = ped;
    d.fill(f, 0);
  }
  EXPECT_EQ(d.cell_sums().read[cell], 4);
  EXPECT_EQ(d.cell_sums().pedestal_mean(cell), 200);
  EXPECT_EQ(d.cell_sums().pedestal_rms(cell), 1);
  const Histogram1D ped = d.pedestal();
  const Histogram1D noise = d.noise();
  EXPECT_EQ(ped.name(), "pedestal");
  EXPECT_EQ(ped.content(cell + 1u), 200);
  EXPECT_EQ(ped.error(cell + 1u), 0.5);  // RMS / sqrt(4)
  EXPECT_EQ(ped.content(1), 200);        // another cell: 200 in every event
  EXPECT_EQ(noise.content(cell + 1u), 1);
  EXPECT_EQ(noise.content(1), 0);
  EXPECT_EQ(ped.entries(), 5);
}

TEST_F(DqmHistogramsTest, PedestalSumsLeaveOutCellsNotMapped) {
  const fw::ChannelMap ecal = testing::ecal_only_map();
  DqmHistograms d(ecal, every_event());
  d.fill(quiet_event(), 0);  // pedestal 200 in every cell, mapped or not
  EXPECT_EQ(d.cell_sums().read[0], 1);
  EXPECT_EQ(d.cell_sums().read[fw::cell_index(fw::Detector::Hcal0, 0, 0)], 0);
  EXPECT_EQ(d.pedestal().content(fw::cell_index(fw::Detector::Hcal0, 0, 0) + 1u), 0);
  EXPECT_TRUE(d.cell_mapped(71));
  EXPECT_FALSE(d.cell_mapped(72));
  EXPECT_FALSE(d.cell_mapped(fw::kNumCells));
}

TEST_F(DqmHistogramsTest, PulseTimeOnlyFromCellsWithEnergy) {
  DqmHistograms d(map_, every_event());
  const auto cell = fw::cell_index(fw::Detector::Ecal1, 2, 2);
  trigger::EventFeatures f = quiet_event();
  f.peak_time_ns[cell] = 137.5f;
  d.fill(f, 0);  // no energy: not counted
  f.energy_gev[cell] = 3.0f;
  f.peak_time_ns[cell] = 125.0f;
  d.fill(f, 0);
  f.peak_time_ns[cell] = 150.0f;
  d.fill(f, 0);
  const Histogram1D t = d.pulse_time();
  EXPECT_EQ(t.name(), "pulse_time");
  EXPECT_EQ(t.content(cell + 1u), 137.5);
  EXPECT_EQ(t.error(cell + 1u), 12.5);
  EXPECT_EQ(d.cell_sums().signal[cell], 2);
  EXPECT_EQ(t.content(1), 0);
}

TEST_F(DqmHistogramsTest, OfferCountsEveryEventAndFillsOneInThePeriod) {
  DqmConfig c;
  c.sample_period = 4;
  DqmHistograms d(map_, c);
  std::vector<bool> filled;
  for (std::uint32_t i = 1; i <= 10; ++i) {
    filled.push_back(d.offer(pattern_event(i), i == 3 ? trigger::bit(trigger::TriggerLine::Beam) : 0u));
  }
  EXPECT_EQ(filled, (std::vector<bool>{false, false, false, true, false, false, false, true, false, false}));
  EXPECT_EQ(d.counters().events, 10u);
  EXPECT_EQ(d.counters().filled, 2u);
  EXPECT_EQ(d.counters().accepted, (std::array<std::uint64_t, 3>{0, 1, 0}));
  EXPECT_EQ(d.ecal_energy().entries(), 2);
  EXPECT_EQ(d.trigger_lines().entries(), 0);  // the beam event was not sampled
}

TEST_F(DqmHistogramsTest, CountsIncompleteEventsByReason) {
  DqmHistograms d(map_, every_event());
  d.count_incomplete(eventbuilder::IncompleteReason::Timeout);
  d.count_incomplete(eventbuilder::IncompleteReason::Timeout);
  d.count_incomplete(eventbuilder::IncompleteReason::EndOfSpill);
  d.count_incomplete(static_cast<eventbuilder::IncompleteReason>(200));  // ignored
  EXPECT_EQ(d.counters().incomplete, (std::array<std::uint64_t, 5>{0, 2, 0, 0, 1}));
}

TEST_F(DqmHistogramsTest, MergeIntoEqualsFillingOneSet) {
  DqmHistograms a(map_, every_event());
  DqmHistograms b(map_, every_event());
  DqmHistograms both(map_, every_event());
  for (std::uint32_t i = 0; i < 50; ++i) {
    (i % 3 == 0 ? a : b).offer(pattern_event(i), pattern_mask(i));
    both.offer(pattern_event(i), pattern_mask(i));
  }
  a.counters().bytes_written = 1000;
  a.counters().seconds = 4.8;
  a.counters().dead_seconds = 0.48;
  a.counters().spills = 1;
  b.counters().bytes_written = 500;
  b.counters().seconds = 4.8;
  b.counters().spills = 1;
  DqmHistograms total(map_, every_event());
  a.merge_into(total);
  b.merge_into(total);
  const auto t1 = total.all_1d();
  const auto b1 = both.all_1d();
  ASSERT_EQ(t1.size(), b1.size());
  for (std::size_t i = 0; i < t1.size(); ++i) {
    EXPECT_EQ(std::vector<double>(t1[i].contents().begin(), t1[i].contents().end()),
              std::vector<double>(b1[i].contents().begin(), b1[i].contents().end()))
        << t1[i].name();
    EXPECT_EQ(t1[i].entries(), b1[i].entries()) << t1[i].name();
  }
  const auto t2 = total.all_2d();
  const auto b2 = both.all_2d();
  for (std::size_t i = 0; i < t2.size(); ++i) {
    EXPECT_EQ(std::vector<double>(t2[i].contents().begin(), t2[i].contents().end()),
              std::vector<double>(b2[i].contents().begin(), b2[i].contents().end()))
        << t2[i].name();
  }
  EXPECT_EQ(total.counters().events, 50u);
  EXPECT_EQ(total.counters().filled, 50u);
  EXPECT_EQ(total.counters().accepted, both.counters().accepted);
  EXPECT_EQ(total.counters().srd_tagged, both.counters().srd_tagged);
  EXPECT_EQ(total.counters().bytes_written, 1500u);
  EXPECT_EQ(total.counters().spills, 2u);
  EXPECT_DOUBLE_EQ(total.counters().dead_time_fraction(), 0.05);
}

TEST_F(DqmHistogramsTest, MergeIntoRefusesAnotherBinningAndChangesNothing) {
  DqmConfig visible = every_event();
  visible.beam_energy_gev = 150;
  DqmHistograms a(map_, every_event());
  DqmHistograms b(map_, visible);
  b.fill(pattern_event(0), 0);
  EXPECT_EQ(message_of<std::invalid_argument>([&] { a.merge_into(b); }),
            "cannot merge DQM histograms (beam energy 100 GeV, SRD axis 100 MeV, veto axis 400 ADC, 120 cells mapped) "
            "into a set of another binning, occupancy threshold or map (beam energy 150 GeV, SRD axis 100 MeV, veto "
            "axis 400 ADC, 120 cells mapped)");
  EXPECT_EQ(b.counters().filled, 1u);
  const fw::ChannelMap ecal = testing::ecal_only_map();
  DqmHistograms c(ecal, every_event());
  EXPECT_FALSE(a.compatible(c));
  EXPECT_THROW(a.merge_into(c), std::invalid_argument);
}

TEST_F(DqmHistogramsTest, ResetEmptiesTheSetAndRestartsSampling) {
  DqmConfig c;
  c.sample_period = 2;
  DqmHistograms d(map_, c);
  EXPECT_FALSE(d.offer(pattern_event(0), 1));
  d.reset();
  EXPECT_FALSE(d.offer(pattern_event(1), 0));
  EXPECT_TRUE(d.offer(pattern_event(2), 0));
  EXPECT_EQ(d.counters().events, 2u);
  EXPECT_EQ(d.counters().accepted[0], 0u);
  d.reset();
  EXPECT_EQ(d.counters().filled, 0u);
  EXPECT_EQ(d.ecal_energy().entries(), 0);
  EXPECT_EQ(d.cell_sums().read[0], 0);
  EXPECT_EQ(d.cell_occupancy().entries(), 0);
}

TEST_F(DqmHistogramsTest, BadConfigurationIsRefusedByField) {
  const auto refused = [this](auto change) {
    DqmConfig c;
    change(c);
    return message_of<std::invalid_argument>([&] { DqmHistograms d(map_, c); });
  };
  EXPECT_EQ(refused([](DqmConfig& c) { c.beam_energy_gev = -100; }),
            "DqmConfig.beam_energy_gev: -100 is not a positive finite number");
  EXPECT_EQ(refused([](DqmConfig& c) { c.ecal_occupancy_gev = -0.5f; }),
            "DqmConfig.ecal_occupancy_gev: -0.5 is not a finite number >= 0");
  EXPECT_EQ(refused([](DqmConfig& c) { c.srd_min_gev = 0.1f; }),
            "DqmConfig.srd_min_gev: 0.1 is above srd_max_gev 0.08");
  EXPECT_EQ(refused([](DqmConfig& c) { c.veto_axis_max_adc = 0; }),
            "DqmConfig.veto_axis_max_adc: 0 is not a positive finite number");
  EXPECT_EQ(refused([](DqmConfig& c) { c.sample_period = 0; }),
            "DqmConfig.sample_period: 0; it must be at least 1");
}

TEST_F(DqmHistogramsTest, NamesListEveryHistogramAndFindEach) {
  DqmHistograms d(map_, every_event());
  std::vector<std::string> names;
  for (const auto& h : d.all_1d()) names.push_back(h.name());
  for (const auto& h : d.all_2d()) names.push_back(h.name());
  const auto listed = DqmHistograms::histogram_names();
  EXPECT_EQ(names, std::vector<std::string>(listed.begin(), listed.end()));
  for (const auto& h : d.all_1d()) EXPECT_EQ(d.histogram_1d(h.name())->name(), h.name());
  for (const auto& h : d.all_2d()) EXPECT_EQ(d.histogram_2d(h.name())->name(), h.name());
  EXPECT_FALSE(d.histogram_1d("ecal_vs_hcal").has_value());
  EXPECT_FALSE(d.histogram_2d("ecal_energy").has_value());
  EXPECT_FALSE(d.histogram_1d("nothing").has_value());
}

TEST_F(DqmHistogramsTest, TheDataPathAllocatesNothing) {
  DqmHistograms d(map_, every_event());
  DqmHistograms total(map_, every_event());
  const trigger::EventFeatures f = pattern_event(0);
  const std::size_t before = g_allocations.load();
  for (std::uint32_t i = 0; i < 1000; ++i) {
    (void)d.offer(f, pattern_mask(i));
    d.fill(f, 1);
    d.count_incomplete(eventbuilder::IncompleteReason::Skipped);
  }
  d.merge_into(total);
  d.reset();
  EXPECT_EQ(g_allocations.load() - before, 0u);
}

TEST(SpillHistory, KeepsTheLastSpillsAndTheRunTotal) {
  const fw::ChannelMap map = reference_map();
  SpillHistory history(map, every_event(), 3);
  DqmHistograms spill(map, every_event());
  EXPECT_EQ(history.capacity(), 3u);
  EXPECT_EQ(history.size(), 0u);
  for (std::uint32_t s = 1; s <= 5; ++s) {
    spill.reset();
    for (std::uint32_t i = 0; i < s; ++i) (void)spill.offer(pattern_event(i), 0);
    spill.counters().spills = 1;
    history.record(s, spill);
  }
  EXPECT_EQ(history.size(), 3u);
  EXPECT_EQ(history.spill_number(0), 5u);
  EXPECT_EQ(history.spill_number(1), 4u);
  EXPECT_EQ(history.spill_number(2), 3u);
  EXPECT_EQ(history.spill(0).counters().events, 5u);
  EXPECT_EQ(history.spill(2).counters().events, 3u);
  EXPECT_EQ(history.spill(0).ecal_energy().entries(), 5);
  EXPECT_EQ(history.total().counters().events, 15u);
  EXPECT_EQ(history.total().counters().spills, 5u);
  EXPECT_EQ(history.total().ecal_energy().entries(), 15);
  history.clear();
  EXPECT_EQ(history.size(), 0u);
  EXPECT_EQ(history.total().counters().events, 0u);
}

TEST(SpillHistory, RecordingAllocatesNothing) {
  const fw::ChannelMap map = reference_map();
  SpillHistory history(map, every_event(), 2);
  DqmHistograms spill(map, every_event());
  spill.fill(pattern_event(1), 1);
  const std::size_t before = g_allocations.load();
  for (std::uint32_t s = 1; s <= 5; ++s) history.record(s, spill);
  EXPECT_EQ(g_allocations.load() - before, 0u);
}

TEST(SpillHistory, RefusesBadCapacityAndOtherBinnings) {
  const fw::ChannelMap map = reference_map();
  EXPECT_EQ(message_of<std::invalid_argument>([&] { SpillHistory h(map, every_event(), 0); }),
            "SpillHistory: capacity 0; it must hold at least one spill");
  SpillHistory history(map, every_event(), 2);
  DqmConfig visible = every_event();
  visible.beam_energy_gev = 150;
  DqmHistograms other(map, visible);
  EXPECT_EQ(message_of<std::invalid_argument>([&] { history.record(7, other); }),
            "SpillHistory: spill 7: its DQM set has another binning or channel map than the history's");
  EXPECT_EQ(history.size(), 0u);
}

}  // namespace
}  // namespace na64::monitoring
