// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/verdict.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dqm_fixtures.hpp"

namespace na64::monitoring {
namespace {

namespace fw = na64::firmware;
using testing::pattern_event;
using testing::pattern_mask;

using Change = std::function<void(std::uint32_t, trigger::EventFeatures&, std::uint32_t&)>;

/// A set of `n` pattern events, each changed by `change` first.
DqmHistograms pattern_set(const fw::ChannelMap& map, std::uint32_t n, const Change& change = {}) {
  DqmConfig c;
  c.sample_period = 1;
  DqmHistograms d(map, c);
  for (std::uint32_t i = 0; i < n; ++i) {
    trigger::EventFeatures f = pattern_event(i);
    std::uint32_t mask = pattern_mask(i);
    if (change) change(i, f, mask);
    (void)d.offer(f, mask);
  }
  return d;
}

void expect_verdict(const Verdict& v, VerdictLevel level, const std::vector<std::string>& reasons) {
  EXPECT_EQ(to_string(v.level), std::string(to_string(level)));
  EXPECT_EQ(v.reasons, reasons);
}

class VerdictTest : public ::testing::Test {
 protected:
  fw::ChannelMap map_ = testing::reference_map();
  VerdictConfig config_;
  DqmHistograms reference_ = pattern_set(map_, 10000);
};

TEST_F(VerdictTest, IdenticalStatisticsAreGood) {
  expect_verdict(judge_spill(pattern_set(map_, 10000), reference_, config_), VerdictLevel::Good, {});
  // The same pattern over fewer events: other counts, the same rates and shapes.
  expect_verdict(judge_spill(pattern_set(map_, 5000), reference_, config_), VerdictLevel::Good, {});
}

TEST_F(VerdictTest, AZeroedEcalCellIsNamedDeadBySectionAndPosition) {
  const auto cell = fw::cell_index(fw::Detector::Ecal1, 3, 4);
  const DqmHistograms spill =
      pattern_set(map_, 10000, [cell](std::uint32_t, trigger::EventFeatures& f, std::uint32_t&) { f.energy_gev[cell] = 0; });
  expect_verdict(judge_spill(spill, reference_, config_), VerdictLevel::Bad,
                 {"ECAL1 cell (3,4) dead: 0 hits, 2500 expected"});
}

TEST_F(VerdictTest, AZeroedHcalCellIsNamedDead) {
  const auto cell = fw::cell_index(fw::Detector::Hcal2, 1, 1);
  const DqmHistograms spill =
      pattern_set(map_, 10000, [cell](std::uint32_t, trigger::EventFeatures& f, std::uint32_t&) { f.energy_gev[cell] = 0; });
  expect_verdict(judge_spill(spill, reference_, config_), VerdictLevel::Bad,
                 {"HCAL2 cell (1,1) dead: 0 hits, 3334 expected"});
}

TEST_F(VerdictTest, ACellFiringInEveryEventIsHot) {
  const auto cell = fw::cell_index(fw::Detector::Ecal0, 0, 0);
  // ECAL0 (0,0) fires in every pattern event; make it quiet in the reference
  // and fire in every spill event.
  const DqmHistograms quiet_ref =
      pattern_set(map_, 10000, [cell](std::uint32_t, trigger::EventFeatures& f, std::uint32_t&) { f.energy_gev[cell] = 0; });
  expect_verdict(judge_spill(pattern_set(map_, 10000), quiet_ref, config_), VerdictLevel::Bad,
                 {"ECAL0 cell (0,0) hot: 10000 hits, 0 expected"});
}

TEST_F(VerdictTest, TooLittleStatisticsGiveNoFalseDeadCell) {
  const auto cell = fw::cell_index(fw::Detector::Ecal1, 3, 4);
  const Change zeroed = [cell](std::uint32_t, trigger::EventFeatures& f, std::uint32_t&) { f.energy_gev[cell] = 0; };
  // 40 events: 10 hits expected at the reference's occupancy, fewer than the 25 needed.
  expect_verdict(judge_spill(pattern_set(map_, 40, zeroed), reference_, config_), VerdictLevel::Good, {});
  // 96 events would expect 24.
  expect_verdict(judge_spill(pattern_set(map_, 96, zeroed), reference_, config_), VerdictLevel::Good, {});
  // 100 events expect 25: enough to call the cell dead.
  expect_verdict(judge_spill(pattern_set(map_, 100, zeroed), reference_, config_), VerdictLevel::Bad,
                 {"ECAL1 cell (3,4) dead: 0 hits, 25 expected"});
  // A reference of 200 events holds 50 hits of the cell, fewer than the 100 it needs.
  const DqmHistograms small_ref = pattern_set(map_, 200);
  expect_verdict(judge_spill(pattern_set(map_, 10000, zeroed), small_ref, config_), VerdictLevel::Good, {});
}

TEST_F(VerdictTest, ASpillWithoutEventsIsAWarning) {
  expect_verdict(judge_spill(pattern_set(map_, 0), reference_, config_), VerdictLevel::Warning,
                 {"no events filled: nothing to judge"});
}

TEST_F(VerdictTest, ThirtyPercentFewerSrdTagsGiveTheRateReason) {
  // Tagged when i mod 100 < 56: 56 % of events instead of 80 %.
  const DqmHistograms spill = pattern_set(map_, 10000, [](std::uint32_t i, trigger::EventFeatures& f, std::uint32_t&) {
    const float srd = i % 100u < 56u ? 0.010f : 0.0f;
    f.srd_gev = {srd, srd, srd};
  });
  expect_verdict(judge_spill(spill, reference_, config_), VerdictLevel::Bad,
                 {"SRD rate 30 % low: 0.56 of events tagged, reference 0.8"});
}

TEST_F(VerdictTest, SrdRateJustBeyondTheWarningBandIsAWarning) {
  // 68 % tagged: 15 % low, beyond 10 %, within 25 %.
  const DqmHistograms spill = pattern_set(map_, 10000, [](std::uint32_t i, trigger::EventFeatures& f, std::uint32_t&) {
    const float srd = i % 100u < 68u ? 0.010f : 0.0f;
    f.srd_gev = {srd, srd, srd};
  });
  expect_verdict(judge_spill(spill, reference_, config_), VerdictLevel::Warning,
                 {"SRD rate 15 % low: 0.68 of events tagged, reference 0.8"});
}

TEST_F(VerdictTest, ATriggerLineFiringTwiceAsOftenIsNamed) {
  // Invisible on 21 events in 1000 instead of 10.
  const DqmHistograms spill = pattern_set(map_, 10000, [](std::uint32_t i, trigger::EventFeatures&, std::uint32_t& m) {
    m &= ~trigger::bit(trigger::TriggerLine::Invisible);
    if (i % 1000u < 21u) m |= trigger::bit(trigger::TriggerLine::Invisible);
  });
  expect_verdict(judge_spill(spill, reference_, config_), VerdictLevel::Bad,
                 {"trigger line invisible rate 2.1x reference: 0.021 per event, reference 0.01"});
}

TEST_F(VerdictTest, ANoisyChannelIsAWarning) {
  const auto cell = fw::cell_index(fw::Detector::Ecal0, 2, 3);
  const DqmHistograms spill = pattern_set(map_, 10000, [cell](std::uint32_t i, trigger::EventFeatures& f, std::uint32_t&) {
    f.pedestal_adc[cell] = i % 2 == 0 ? 196.0f : 204.0f;
  });
  expect_verdict(judge_spill(spill, reference_, config_), VerdictLevel::Warning,
                 {"ECAL0 cell (2,3) noisy: pedestal RMS 4.00 ADC counts, reference 1.00"});
}

TEST_F(VerdictTest, AShiftedEcalSpectrumFailsTheShapeTest) {
  const DqmHistograms spill = pattern_set(map_, 10000, [](std::uint32_t, trigger::EventFeatures& f, std::uint32_t&) {
    f.ecal_gev += 5.0f;
  });
  // 60 bins of 125 events each against 55 of them; checked by hand: chi2 =
  // 598.96 for 59 degrees of freedom, p = Q(29.5, 299.48) = 2.208e-90.
  expect_verdict(judge_spill(spill, reference_, config_), VerdictLevel::Bad,
                 {"ecal_energy differs from reference: chi2/ndf = 599.0/59, p = 2.2e-90"});
}

TEST_F(VerdictTest, SeveralProblemsComeInOrder) {
  const auto ecal = fw::cell_index(fw::Detector::Ecal1, 3, 4);
  const auto hcal = fw::cell_index(fw::Detector::Hcal0, 0, 0);
  const DqmHistograms spill =
      pattern_set(map_, 10000, [&](std::uint32_t i, trigger::EventFeatures& f, std::uint32_t&) {
        f.energy_gev[hcal] = 0;
        f.energy_gev[ecal] = 0;
        const float srd = i % 100u < 56u ? 0.010f : 0.0f;
        f.srd_gev = {srd, srd, srd};
      });
  expect_verdict(judge_spill(spill, reference_, config_), VerdictLevel::Bad,
                 {"ECAL1 cell (3,4) dead: 0 hits, 2500 expected", "HCAL0 cell (0,0) dead: 0 hits, 10000 expected",
                  "SRD rate 30 % low: 0.56 of events tagged, reference 0.8"});
}

TEST_F(VerdictTest, ShapeHistogramsMayBeTwoDimensional) {
  config_.shape_histograms = {"ecal1_occupancy"};
  const auto cell = fw::cell_index(fw::Detector::Ecal1, 3, 4);
  const DqmHistograms spill =
      pattern_set(map_, 10000, [cell](std::uint32_t, trigger::EventFeatures& f, std::uint32_t&) { f.energy_gev[cell] = 0; });
  expect_verdict(judge_spill(spill, reference_, config_), VerdictLevel::Bad,
                 {"ecal1_occupancy differs from reference: chi2/ndf = 2483.6/35, p = 0",
                  "ECAL1 cell (3,4) dead: 0 hits, 2500 expected"});
}

TEST_F(VerdictTest, BadConfigurationIsRefusedByField) {
  const auto refused = [this](auto change) {
    VerdictConfig c;
    change(c);
    try {
      (void)judge_spill(reference_, reference_, c);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(nothing thrown)");
  };
  EXPECT_EQ(refused([](VerdictConfig& c) { c.shape_histograms = {"ecal_energy", "ecal_energyy"}; }),
            "VerdictConfig.shape_histograms[1]: no DQM histogram is named 'ecal_energyy'");
  EXPECT_EQ(refused([](VerdictConfig& c) { c.shape_p_bad = 0.01; }),
            "VerdictConfig.shape_p_bad: 0.01 is out of range [0, 0.001]");
  EXPECT_EQ(refused([](VerdictConfig& c) { c.dead_fraction = 2; }), "VerdictConfig.dead_fraction: 2 is out of range [0, 1]");
  EXPECT_EQ(refused([](VerdictConfig& c) { c.rate_bad = 0.05; }),
            "VerdictConfig.rate_bad: 0.05 is out of range [0.1, 1e+300]");
  DqmConfig visible;
  visible.beam_energy_gev = 150;
  const DqmHistograms other(map_, visible);
  EXPECT_THROW((void)judge_spill(other, reference_, config_), std::invalid_argument);
}

TEST(Chi2, SurvivalMatchesClosedForms) {
  for (double x : {0.01, 0.5, 1.0, 2.0, 5.0, 30.0, 200.0}) {
    // ndf 2: exp(-x / 2).
    EXPECT_NEAR(chi2_survival(x, 2) / std::exp(-x / 2), 1.0, 1e-10) << x;
    // ndf 1: erfc(sqrt(x / 2)).
    EXPECT_NEAR(chi2_survival(x, 1) / std::erfc(std::sqrt(x / 2)), 1.0, 1e-10) << x;
    // ndf 6: exp(-x / 2) (1 + x / 2 + (x / 2)^2 / 2).
    const double h = x / 2;
    EXPECT_NEAR(chi2_survival(x, 6) / (std::exp(-h) * (1 + h + h * h / 2)), 1.0, 1e-10) << x;
  }
  EXPECT_EQ(chi2_survival(0, 5), 1.0);
  EXPECT_EQ(chi2_survival(3, 0), 1.0);
  EXPECT_TRUE(std::isnan(regularized_gamma_q(-1, 1)));
  EXPECT_TRUE(std::isnan(regularized_gamma_q(1, -1)));
  EXPECT_EQ(regularized_gamma_q(2, 0), 1.0);
}

TEST(Chi2, TestOfTwoHistograms) {
  Histogram1D a("a", "", Axis{3, 0.0, 3.0, ""});
  Histogram1D b("b", "", Axis{3, 0.0, 3.0, ""});
  a.fill(0.5, 10);
  a.fill(1.5, 20);
  b.fill(0.5, 20);
  b.fill(1.5, 10);
  b.fill(7.0, 99);  // overflow: left out
  // (30 x 10 - 30 x 20)^2 / (30 x 30 x 30) twice; the empty bin does not count.
  const ShapeTest t = chi2_test(a, b);
  EXPECT_NEAR(t.chi2, 20.0 / 3, 1e-12);
  EXPECT_EQ(t.ndf, 1u);
  EXPECT_NEAR(t.p_value / std::erfc(std::sqrt(10.0 / 3)), 1.0, 1e-12);
  // The same shape at another normalisation is a perfect match.
  Histogram1D c("c", "", Axis{3, 0.0, 3.0, ""});
  c.fill(0.5, 30);
  c.fill(1.5, 60);
  const ShapeTest same = chi2_test(a, c);
  EXPECT_EQ(same.chi2, 0);
  EXPECT_EQ(same.p_value, 1);
  // Nothing to compare.
  const Histogram1D empty("e", "", Axis{3, 0.0, 3.0, ""});
  const ShapeTest none = chi2_test(a, empty);
  EXPECT_EQ(none.ndf, 0u);
  EXPECT_EQ(none.p_value, 1);
  const Histogram1D other("o", "", Axis{4, 0.0, 3.0, ""});
  EXPECT_THROW((void)chi2_test(a, other), std::invalid_argument);
}

TEST(CellName, NamesEveryKindOfCell) {
  EXPECT_EQ(cell_name(fw::cell_index(fw::Detector::Ecal1, 3, 4)), "ECAL1 cell (3,4)");
  EXPECT_EQ(cell_name(fw::cell_index(fw::Detector::Hcal3, 2, 0)), "HCAL3 cell (2,0)");
  EXPECT_EQ(cell_name(fw::cell_index(fw::Detector::Srd, 2, 0)), "SRD module 2");
  EXPECT_EQ(cell_name(fw::cell_index(fw::Detector::Veto, 1, 1)), "VETO counter 1 PMT 1");
  EXPECT_EQ(cell_name(fw::cell_index(fw::Detector::S1, 0, 0)), "S1");
}

}  // namespace
}  // namespace na64::monitoring
