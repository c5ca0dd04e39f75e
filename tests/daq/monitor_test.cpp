// SPDX-License-Identifier: Apache-2.0
// The data-quality monitor on a real run database file: spills are handed
// to it as run control does (a DqmTap filled as the trigger fills it, then
// on_spill), with deterministic events from the monitoring tests' pattern.
#include "config_text.hpp"
#include "na64/daq/monitor.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "../monitoring/dqm_fixtures.hpp"
#include "na64/daq/dqm_tap.hpp"
#include "na64/daq/run_db.hpp"
#include "na64/firmware/channel_map.hpp"
#include "na64/testing/temp_dir.hpp"

namespace na64::daq {
namespace {

namespace fw = na64::firmware;
using monitoring::testing::pattern_event;
using monitoring::testing::pattern_mask;

constexpr std::uint32_t kEvents = 4000;  ///< per spill

/// Every event filled: the pattern repeats with periods that a sample
/// period would alias.
MonitorOptions every_event() {
  MonitorOptions o;
  o.sample_period = 1;
  return o;
}

class MonitorTest : public ::testing::Test {
 protected:
  MonitorTest() { config_.run.output_dir = (dir_.path() / "data").string(); }

  void start(Monitor& m, std::uint32_t run) {
    m.configured(config_);
    std::filesystem::create_directories(config_.run.output_dir);
    options_ = RunOptions{};
    options_.run = run;
    options_.output = config_.run.output_dir;
    m.begin_run(config_, options_);
    ASSERT_NE(options_.dqm, nullptr);
    ASSERT_NE(options_.sampler, nullptr);
  }

  /// One spill through the tap as the trigger fills it; returns its record
  /// as the monitor leaves it. `dead` zeroes one cell's energy.
  SpillRecord spill(Monitor& m, std::uint32_t number, SpillSummary s = {}, std::uint16_t dead = fw::kNumCells,
                    std::uint32_t (*mask)(std::uint32_t) = pattern_mask) {
    for (std::uint32_t i = 0; i < kEvents; ++i) {
      auto f = pattern_event(i);
      if (dead < fw::kNumCells) f.energy_gev[dead] = 0;
      (void)options_.dqm->filling().offer(f, mask(i));
    }
    options_.dqm->publish(number);
    s.spill = number;
    s.builder.particles = kEvents;
    s.builder.complete = kEvents;
    SpillRecord r;
    r.run = options_.run;
    r.spill = number;
    m.on_spill(s, r);
    return r;
  }

  testing::TempDir dir_;
  RunDatabase db_{dir_.path() / "runs.sqlite"};
  DaqConfig config_ = load_config(default_config_text(), "embedded default");
  RunOptions options_;
  const std::uint16_t dead_cell_ = fw::cell_index(fw::Detector::Ecal1, 3, 4);
};

TEST_F(MonitorTest, TheFirstGoodSpillsMakeTheReferenceAndADeadCellIsBad) {
  Monitor m(db_, every_event());
  start(m, 1);
  const SpillRecord first = spill(m, 1);
  EXPECT_EQ(first.verdict, "good");
  EXPECT_EQ(first.verdict_reasons,
            std::vector<std::string>{"no reference yet: the spill starts the run's reference (1 of 2)"});
  const SpillRecord second = spill(m, 2);
  EXPECT_EQ(second.verdict, "good");
  EXPECT_TRUE(second.verdict_reasons.empty());
  EXPECT_EQ(m.status().reference, "run 1 spills 1, 2");
  EXPECT_TRUE(m.status().reference_complete);
  EXPECT_TRUE(std::filesystem::is_regular_file(dir_.path() / "data" / "run-000001.dqm-reference"));

  // Cell (3,4) has 2 GeV in every 4th event: 1000 of the 4000.
  const SpillRecord third = spill(m, 3, {}, dead_cell_);
  EXPECT_EQ(third.verdict, "bad");
  EXPECT_EQ(third.verdict_reasons, std::vector<std::string>{"ECAL1 cell (3,4) dead: 0 hits, 1000 expected"});
  ASSERT_EQ(m.alarms().size(), 1u);
  const AlarmRecord a = m.alarms()[0];
  EXPECT_EQ(a.id, 1u);
  EXPECT_EQ(a.level, "error");
  EXPECT_EQ(a.condition, "verdict");
  EXPECT_EQ(a.text, "run 1 spill 3: verdict bad: ECAL1 cell (3,4) dead: 0 hits, 1000 expected");
  EXPECT_EQ(a.first_spill, 3u);
  EXPECT_EQ(m.status().alarms_unacknowledged, 1u);

  // The reference keeps the good spills only; the histograms of every spill are held.
  EXPECT_EQ(m.status().spills_held, (std::vector<std::uint32_t>{1, 2, 3}));
  const auto ref = m.histogram("ecal1_occupancy", {HistogramChoice::From::Reference, 0});
  ASSERT_TRUE(ref.histogram) << ref.error;
  const auto& occupancy = std::get<monitoring::Histogram2D>(*ref.histogram);
  EXPECT_EQ(occupancy.content(4, 5), 2000.0) << "2 spills x 1000 hits in cell (3,4)";
  const auto now = m.histogram("ecal1_occupancy", {});
  ASSERT_TRUE(now.histogram);
  EXPECT_EQ(std::get<monitoring::Histogram2D>(*now.histogram).content(4, 5), 0.0);
  const auto held = m.histogram("ecal1_occupancy", {HistogramChoice::From::Spill, 9});
  EXPECT_FALSE(held.histogram);
  EXPECT_EQ(held.error, "spill 9 of run 1 is not held; the last 3 spills are (1 to 3)");
  EXPECT_EQ(m.histogram("ecal9_occupancy", {}).error, "no histogram named \"ecal9_occupancy\" (see /api/dqm/list)");
}

TEST_F(MonitorTest, AnAlarmStaysUntilAcknowledgedAndIsKeptInTheDatabase) {
  {
    Monitor m(db_, every_event());
    const std::uint32_t run = db_.begin_run(1, 1'000, "", std::string(64, 'a'), "");
    start(m, run);
    for (std::uint32_t n = 1; n <= 5; ++n) db_.add_spill(spill(m, n, {}, n == 3 || n == 4 ? dead_cell_ : fw::kNumCells));
    // One alarm for the condition, however many spills it holds in.
    ASSERT_EQ(m.alarms().size(), 1u);
    EXPECT_EQ(m.alarms()[0].first_spill, 3u);
    EXPECT_EQ(m.alarms()[0].last_spill, 4u);
    EXPECT_EQ(m.alarms()[0].acknowledged_unix_ms, 0) << "a good spill does not clear it";
    m.end_run(1);
  }
  // A new daemon on the same database still shows it.
  Monitor again(db_, every_event());
  ASSERT_EQ(again.alarms().size(), 1u);
  EXPECT_EQ(again.status().alarms_unacknowledged, 1u);
  ASSERT_EQ(again.spills(0).size(), 5u) << "the last run's spills, with their verdicts";
  EXPECT_EQ(again.spills(0)[2].verdict, "bad");
  EXPECT_EQ(again.spills(2).at(0).spill, 4u);

  std::vector<control::Event> events;
  again.set_listener([&](const control::Event& e) { events.push_back(e); });
  const AckOutcome ack = again.acknowledge(1, "shift");
  EXPECT_EQ(ack.result, AckOutcome::Result::Acknowledged);
  EXPECT_EQ(ack.message, "alarm 1 acknowledged");
  EXPECT_EQ(ack.alarm.acknowledged_by, "shift");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].alarm().acknowledged());
  EXPECT_EQ(events[0].alarm().acknowledged_by(), "shift");
  EXPECT_EQ(again.status().alarms_unacknowledged, 0u);
  EXPECT_EQ(again.acknowledge(1, "shift").result, AckOutcome::Result::AlreadyAcknowledged);
  EXPECT_EQ(again.acknowledge(1, "shift").message, "alarm 1 was already acknowledged by shift");
  EXPECT_EQ(again.acknowledge(2, "shift").result, AckOutcome::Result::NotFound);
  EXPECT_EQ(again.acknowledge(2, "shift").message, "there is no unacknowledged alarm 2");

  const auto stored = db_.alarms(false, 10);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].acknowledged_by, "shift");
  EXPECT_GT(stored[0].acknowledged_unix_ms, 0);
  EXPECT_EQ(stored[0].last_spill, 4u);
  again.set_listener({});
}

TEST_F(MonitorTest, ASourceLostForTwoSpillsRaisesItsAlarm) {
  Monitor m(db_, every_event());
  start(m, 7);
  (void)spill(m, 1);
  SpillSummary lost;
  lost.builder.lost_sources = 0b010;  // slot 1: source 621
  const SpillRecord once = spill(m, 2, lost);
  EXPECT_EQ(once.verdict, "bad");
  EXPECT_EQ(once.verdict_reasons.at(0), "source 621 (MSADC) lost");
  EXPECT_TRUE(m.alarms().size() == 1u && m.alarms()[0].condition == "verdict");
  EXPECT_EQ(m.status().sources.at(1).state, "lost");
  (void)spill(m, 3, lost);
  ASSERT_EQ(m.alarms().size(), 2u);
  EXPECT_EQ(m.alarms()[1].condition, "source 621");
  EXPECT_EQ(m.alarms()[1].level, "error");
  EXPECT_EQ(m.alarms()[1].text, "run 7: source 621 (MSADC) lost for 2 spills in a row (spills 2-3)");
  (void)spill(m, 4);
  EXPECT_EQ(m.status().sources.at(1).state, "ok");
  // Counted per source for /metrics.
  const auto totals = m.totals();
  ASSERT_EQ(totals.lost_spills.size(), 1u);
  EXPECT_EQ(totals.lost_spills[0], (std::pair<std::uint32_t, std::uint64_t>{621, 2}));
  EXPECT_EQ(totals.spills, 4u);
  EXPECT_EQ(totals.sum.builder.particles, 4u * kEvents);
}

TEST_F(MonitorTest, ASilentTrackerOfTheTwoLevelReadoutIsNamed) {
  config_ = load_config(testing_config::default_with_readout("readout { mode: TWO_LEVEL tracker { kind: \"MM\" source: 400 } }"),
                        "two-level");
  config_.run.output_dir = (dir_.path() / "data").string();
  Monitor m(db_, every_event());
  start(m, 5);
  const auto sources = m.status().sources;
  ASSERT_EQ(sources.size(), 4u);
  EXPECT_EQ(sources[3].id, 400u);
  EXPECT_TRUE(sources[3].tracker);
  SpillSummary silent;
  silent.completion.silent_sources = 1u << 3;  // the completion's slots: 3 boards, then the tracker
  EXPECT_EQ(spill(m, 1, silent).verdict_reasons.at(0), "source 400 (tracker) silent");
  EXPECT_EQ(m.status().sources[3].state, "silent");
  (void)spill(m, 2, silent);
  ASSERT_EQ(m.alarms().size(), 2u);
  EXPECT_EQ(m.alarms()[0].condition, "verdict") << "a spill without one of its sources is bad";
  EXPECT_EQ(m.alarms()[1].condition, "source 400");
  EXPECT_EQ(m.alarms()[1].text, "run 5: source 400 (tracker) silent for 2 spills in a row (spills 1-2)");
  SpillSummary lost;
  lost.completion.lost_sources = 1u << 3;
  lost.completion.silent_sources = 1u << 3;  // lost wins
  (void)spill(m, 3, lost);
  EXPECT_EQ(m.status().sources[3].state, "lost");
  EXPECT_EQ(m.alarms()[1].last_spill, 3u) << "the same source's alarm, held again";
}

TEST_F(MonitorTest, RisingDecodeErrorsRaiseAWarning) {
  Monitor m(db_, every_event());
  start(m, 2);
  (void)spill(m, 1);
  (void)spill(m, 2);
  SpillSummary errors;
  errors.decode_errors = 3;
  const SpillRecord r = spill(m, 3, errors);
  EXPECT_EQ(r.verdict, "warning");
  EXPECT_EQ(r.verdict_reasons, std::vector<std::string>{"3 events did not decode"});
  ASSERT_EQ(m.alarms().size(), 1u);
  EXPECT_EQ(m.alarms()[0].level, "warning");
  EXPECT_EQ(m.alarms()[0].condition, "decode errors");
  EXPECT_EQ(m.alarms()[0].text, "run 2 spill 3: 3 events did not decode, 0 in the spill before");
  (void)spill(m, 4, errors);  // as many again: not rising
  EXPECT_EQ(m.alarms()[0].last_spill, 3u);
  errors.decode_errors = 4;
  (void)spill(m, 5, errors);
  EXPECT_EQ(m.alarms()[0].last_spill, 5u);
  EXPECT_EQ(m.alarms().size(), 1u);
}

/// The pattern's lines, and the beam line on every 50th event besides: twice its rate.
std::uint32_t double_beam(std::uint32_t i) {
  return pattern_mask(i) | (i % 50 == 25 ? trigger::bit(trigger::TriggerLine::Beam) : 0u);
}

TEST_F(MonitorTest, ATriggerRateOutOfItsBandRaisesAWarning) {
  Monitor m(db_, every_event());
  start(m, 2);
  (void)spill(m, 1);
  (void)spill(m, 2);
  const SpillRecord r = spill(m, 3, {}, fw::kNumCells, double_beam);
  EXPECT_EQ(r.verdict, "bad");
  std::vector<std::string> texts;
  for (const auto& a : m.alarms()) texts.push_back(a.condition + ": " + a.text);
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[0], "rate beam: run 2 spill 3: trigger line beam rate 100 % high: 0.04 per event, reference 0.02");
  EXPECT_EQ(texts[1].rfind("verdict: run 2 spill 3: verdict bad: trigger line beam rate", 0), 0u) << texts[1];
  EXPECT_EQ(m.alarms()[0].level, "warning");
}

TEST_F(MonitorTest, DiskBelowTheLimitRaisesAnAlarmAtTheStart) {
  MonitorOptions o = every_event();
  o.disk_limit_bytes = std::numeric_limits<std::uint64_t>::max();
  Monitor m(db_, o);
  start(m, 3);
  ASSERT_EQ(m.alarms().size(), 1u);
  EXPECT_EQ(m.alarms()[0].condition, "disk");
  EXPECT_EQ(m.alarms()[0].level, "error");
  EXPECT_EQ(m.alarms()[0].text.rfind(fmt::format("output directory {}: ", config_.run.output_dir), 0), 0u)
      << m.alarms()[0].text;
  EXPECT_NE(m.alarms()[0].text.find(" free, below the limit of 17179869184.00 GiB"), std::string::npos)
      << m.alarms()[0].text;
  ASSERT_TRUE(m.status().disk_free_bytes.has_value());
  EXPECT_GT(*m.status().disk_free_bytes, 0u);
}

TEST_F(MonitorTest, AnEarlierRunsReferenceJudgesTheFirstSpill) {
  {
    Monitor first(db_, every_event());
    start(first, 1);
    (void)spill(first, 1);
    (void)spill(first, 2);
  }
  MonitorOptions o = every_event();
  o.reference_file = dir_.path() / "data" / "run-000001.dqm-reference";
  Monitor m(db_, o);
  start(m, 2);
  EXPECT_EQ(m.status().reference, fmt::format("file {} (run 1 spills 1, 2)", o.reference_file.string()));
  const SpillRecord r = spill(m, 1, {}, dead_cell_);
  EXPECT_EQ(r.verdict, "bad");
  EXPECT_EQ(r.verdict_reasons, std::vector<std::string>{"ECAL1 cell (3,4) dead: 0 hits, 1000 expected"});
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "data" / "run-000002.dqm-reference"));

  // A file that is not a reference: said by an alarm, and the run makes its own.
  std::ofstream(dir_.path() / "bad.dqm-reference") << "not a reference";
  o.reference_file = dir_.path() / "bad.dqm-reference";
  Monitor bad(db_, o);
  start(bad, 3);
  const auto alarms = bad.alarms();
  ASSERT_FALSE(alarms.empty());
  EXPECT_EQ(alarms.back().condition, "reference");
  EXPECT_EQ(alarms.back().text,
            fmt::format("run 3: the reference file {} cannot be used: DQM file, byte 0: not a DQM file (no NA64DQMR "
                        "at its start); the run's first good spills are taken instead",
                        o.reference_file.string()));
  EXPECT_EQ(spill(bad, 1).verdict_reasons,
            std::vector<std::string>{"no reference yet: the spill starts the run's reference (1 of 2)"});
}

TEST(DqmTap, AWatcherBehindTakesEachSpillInOrderAndDropsWhatIsTooOld) {
  const fw::ChannelMap map = monitoring::testing::reference_map();
  monitoring::DqmConfig c;
  c.sample_period = 1;
  DqmTap tap(map, c);
  for (std::uint32_t spill = 1; spill <= 3; ++spill) {
    for (std::uint32_t i = 0; i < spill; ++i) (void)tap.filling().offer(pattern_event(i), 0);
    tap.publish(spill);
  }
  monitoring::DqmHistograms out(map, c);
  ASSERT_TRUE(tap.take(2, out)) << "spill 1 is dropped on the way";
  EXPECT_EQ(out.counters().events, 2u);
  EXPECT_FALSE(tap.take(2, out));
  ASSERT_TRUE(tap.take(3, out));
  EXPECT_EQ(out.counters().events, 3u);
  EXPECT_FALSE(tap.take(4, out)) << "not published yet";
  for (std::uint32_t spill = 4; spill < 4 + DqmTap::kDepth + 2; ++spill) tap.publish(spill);
  EXPECT_FALSE(tap.take(4, out)) << "the oldest go when the watcher is too far behind";
  EXPECT_EQ(tap.dropped(), 1u + 2u);
  EXPECT_TRUE(tap.take(6, out));
}

}  // namespace
}  // namespace na64::daq
