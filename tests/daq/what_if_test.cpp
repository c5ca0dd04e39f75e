// SPDX-License-Identifier: Apache-2.0
// The what-if tool on files written by the real chain.
#include "na64/daq/what_if.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "na64/daq/config.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/testing/temp_dir.hpp"

namespace na64::daq {
namespace {

struct RecordedRun {
  testing::TempDir dir;
  RunSummary summary;
  std::vector<std::filesystem::path> files;

  RecordedRun() {
    DaqConfig config = load_config(default_config_text(), "embedded default");
    // Every answer waited for, however slow the machine (sanitizers): the
    // recorded decisions are then those of complete events.
    config.readout.completion_timeout = std::chrono::seconds(10);
    config.beam.particles_per_spill = 5000;
    config.beam.signal_fraction = 0.05;
    config.thresholds.beam_prescale = 20;
    summary = run_simulated(config, RunOptions{dir.path(), 5, 3}, {});
    for (const auto& f : summary.files) files.push_back(dir.path() / f);
  }
};

// One recorded run for every test here: the tools only read it.
const RecordedRun& recorded() {
  static const RecordedRun run;
  return run;
}

TEST(WhatIf, TheRecordedSetReproducesEveryRecordedDecision) {
  const RecordedRun& run = recorded();
  const auto r = what_if(run.files, "");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.total.events, run.summary.total.written);
  EXPECT_EQ(r.total.unbiased, run.summary.total.accepted[1]);
  EXPECT_EQ(r.total.recorded_invisible, run.summary.total.accepted[0]);
  EXPECT_GT(r.total.recorded_invisible, 100u);
  EXPECT_EQ(r.total.candidate_invisible, r.total.recorded_invisible);
  EXPECT_EQ(r.total.both_invisible, r.total.recorded_invisible);
  EXPECT_EQ(r.total.unbiased_candidate_invisible, r.total.unbiased_recorded_invisible);
  EXPECT_EQ(r.efficiency_vs_recorded(), 1.0);
  EXPECT_EQ(r.total.undecodable, 0u);
  ASSERT_EQ(r.spills.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.spills[i].first, i + 1);
    EXPECT_EQ(r.spills[i].second.events, run.summary.spills[i].written);
  }
}

TEST(WhatIf, TighterThresholdsKeepASubsetAndZeroKeepsNothing) {
  const RecordedRun& run = recorded();
  const auto tight = what_if(run.files, "ecal_max_gev: 30");
  ASSERT_TRUE(tight.errors.empty());
  EXPECT_EQ(tight.candidate.ecal_max_gev, 30.0f);
  EXPECT_EQ(tight.candidate.hcal_max_gev, tight.recorded.hcal_max_gev);
  EXPECT_LT(tight.total.candidate_invisible, tight.total.recorded_invisible);
  EXPECT_EQ(tight.total.both_invisible, tight.total.candidate_invisible) << "a tighter cut only removes events";
  const auto none = what_if(run.files, "ecal_max_gev: 0");
  EXPECT_EQ(none.total.candidate_invisible, 0u);
  EXPECT_EQ(none.efficiency_vs_recorded(), 0.0);
}

TEST(WhatIf, BadThresholdsAndFilesWithoutTheirStartOfRunAreReportedWithWhere) {
  const RecordedRun& run = recorded();
  const auto bad = what_if(run.files, "ecal_max_gev: -3");
  ASSERT_EQ(bad.errors.size(), 1u);
  EXPECT_NE(bad.errors[0].find("thresholds.ecal_max_gev: -3 is out of range"), std::string::npos) << bad.errors[0];
  const auto unknown = what_if(run.files, "ecal_colour: 3");
  ASSERT_EQ(unknown.errors.size(), 1u);
  EXPECT_NE(unknown.errors[0].find("ecal_colour"), std::string::npos) << unknown.errors[0];
  const auto missing = what_if({run.dir.path() / "no-such.dat"}, "");
  ASSERT_FALSE(missing.errors.empty());
  EXPECT_NE(missing.errors[0].find("no-such.dat: cannot open"), std::string::npos) << missing.errors[0];
}

TEST(WhatIf, AConfigurationThatDoesNotMatchItsRecordedHashIsRefused) {
  const RecordedRun& run = recorded();
  const auto copy = run.dir.path() / "altered.dat";
  std::filesystem::copy_file(run.files.front(), copy);
  {
    // The text starts after the DATE header (68 bytes), the equipment header
    // (28), the version, the hash (32) and the length: inside the leading
    // "# SPDX..." comment, so the altered text still parses.
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(68 + 28 + 4 + 32 + 4 + 2);
    f.put('x');
  }
  const auto r = what_if({copy}, "");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find("does not match its recorded SHA-256"), std::string::npos) << r.errors[0];
  std::filesystem::remove(copy);
}

}  // namespace
}  // namespace na64::daq
