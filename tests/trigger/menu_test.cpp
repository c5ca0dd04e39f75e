// SPDX-License-Identifier: Apache-2.0
#include "na64/trigger/menu.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace na64::trigger {
namespace {

/// A clean invisible-mode candidate under the default thresholds.
EventFeatures signal_like() {
  EventFeatures f{};
  f.srd_gev = {0.010f, 0.020f, 0.030f};
  f.veto_gev = {0.0f, 0.001f, 0.0f};
  f.preshower_gev = 1.5f;
  f.ecal_gev = 30.0f;
  f.hcal_gev = 0.2f;
  return f;
}

ThresholdSet no_prescaled_lines() {
  ThresholdSet t;
  t.beam_prescale = 0;
  t.random_period = 0;
  return t;
}

TEST(TriggerMenu, DefaultThresholdsAreTheReferenceOnes) {
  const ThresholdSet t;
  EXPECT_EQ(t.ecal_max_gev, 50.0f);
  EXPECT_EQ(t.preshower_min_gev, 0.3f);
  EXPECT_EQ(t.hcal_max_gev, 1.0f);
  EXPECT_EQ(t.srd_min_gev, 0.001f);
  EXPECT_EQ(t.srd_max_gev, 0.080f);
  EXPECT_EQ(t.veto_max_gev, 0.005f);
  EXPECT_EQ(t.beam_prescale, 1000u);
  EXPECT_EQ(t.random_period, 5000u);
}

TEST(TriggerMenu, NamesEveryLine) {
  EXPECT_STREQ(to_string(TriggerLine::Invisible), "invisible");
  EXPECT_STREQ(to_string(TriggerLine::Beam), "beam");
  EXPECT_STREQ(to_string(TriggerLine::Random), "random");
  EXPECT_EQ(bit(TriggerLine::Invisible), 1u);
  EXPECT_EQ(bit(TriggerLine::Beam), 2u);
  EXPECT_EQ(bit(TriggerLine::Random), 4u);
}

TEST(TriggerMenu, AcceptsASignalLikeEvent) {
  const TriggerMenu menu{ThresholdSet{}};
  EXPECT_TRUE(menu.missing_energy(signal_like()));
}

TEST(TriggerMenu, RejectsEachSrdModuleBelowTheWindow) {
  const TriggerMenu menu{ThresholdSet{}};
  for (std::size_t m = 0; m < 3; ++m) {
    auto f = signal_like();
    f.srd_gev[m] = 0.0009f;
    EXPECT_FALSE(menu.missing_energy(f)) << "module " << m;
  }
}

TEST(TriggerMenu, RejectsEachSrdModuleAboveTheWindow) {
  const TriggerMenu menu{ThresholdSet{}};
  for (std::size_t m = 0; m < 3; ++m) {
    auto f = signal_like();
    f.srd_gev[m] = 0.081f;
    EXPECT_FALSE(menu.missing_energy(f)) << "module " << m;
  }
}

TEST(TriggerMenu, AcceptsSrdExactlyAtEitherEdgeOfTheWindow) {
  const TriggerMenu menu{ThresholdSet{}};
  auto f = signal_like();
  f.srd_gev = {0.001f, 0.080f, 0.001f};
  EXPECT_TRUE(menu.missing_energy(f));
}

TEST(TriggerMenu, RejectsEcalAtOrAboveTheMaximum) {
  const TriggerMenu menu{ThresholdSet{}};
  auto f = signal_like();
  f.ecal_gev = 50.0f;
  EXPECT_FALSE(menu.missing_energy(f));
  f.ecal_gev = 100.0f;
  EXPECT_FALSE(menu.missing_energy(f));
  f.ecal_gev = 49.999f;
  EXPECT_TRUE(menu.missing_energy(f));
}

TEST(TriggerMenu, RejectsPreshowerAtOrBelowTheMinimum) {
  const TriggerMenu menu{ThresholdSet{}};
  auto f = signal_like();
  f.preshower_gev = 0.3f;
  EXPECT_FALSE(menu.missing_energy(f));
  f.preshower_gev = 0.0f;
  EXPECT_FALSE(menu.missing_energy(f));
  f.preshower_gev = 0.301f;
  EXPECT_TRUE(menu.missing_energy(f));
}

TEST(TriggerMenu, RejectsAnyVetoCounterAtOrAboveTheThreshold) {
  const TriggerMenu menu{ThresholdSet{}};
  for (std::size_t c = 0; c < 3; ++c) {
    auto f = signal_like();
    f.veto_gev[c] = 0.005f;
    EXPECT_FALSE(menu.missing_energy(f)) << "counter " << c;
    f.veto_gev[c] = 0.0049f;
    EXPECT_TRUE(menu.missing_energy(f)) << "counter " << c;
  }
}

TEST(TriggerMenu, RejectsHcalAtOrAboveTheMaximum) {
  const TriggerMenu menu{ThresholdSet{}};
  auto f = signal_like();
  f.hcal_gev = 1.0f;
  EXPECT_FALSE(menu.missing_energy(f));
  f.hcal_gev = 0.999f;
  EXPECT_TRUE(menu.missing_energy(f));
}

TEST(TriggerMenu, RejectsAnOrdinaryBeamElectron) {
  const TriggerMenu menu{ThresholdSet{}};
  auto f = signal_like();
  f.ecal_gev = 100.0f;
  f.preshower_gev = 5.0f;
  EXPECT_FALSE(menu.missing_energy(f));
}

TEST(TriggerMenu, DecideSetsTheInvisibleBit) {
  TriggerMenu menu{no_prescaled_lines()};
  EXPECT_EQ(menu.decide(signal_like(), 1), bit(TriggerLine::Invisible));
  auto f = signal_like();
  f.hcal_gev = 5.0f;
  EXPECT_EQ(menu.decide(f, 2), 0u);
}

TEST(TriggerMenu, BeamFiresOnEveryNthDecision) {
  ThresholdSet t = no_prescaled_lines();
  t.beam_prescale = 3;
  TriggerMenu menu{t};
  EventFeatures beam{};
  std::vector<int> fired;
  for (int k = 1; k <= 10; ++k) {
    if (menu.decide(beam, static_cast<std::uint32_t>(k)) == bit(TriggerLine::Beam)) fired.push_back(k);
  }
  EXPECT_EQ(fired, (std::vector<int>{3, 6, 9}));
}

TEST(TriggerMenu, BeginSpillRestartsThePrescale) {
  ThresholdSet t = no_prescaled_lines();
  t.beam_prescale = 3;
  TriggerMenu menu{t};
  EventFeatures beam{};
  EXPECT_EQ(menu.decide(beam, 1), 0u);
  EXPECT_EQ(menu.decide(beam, 2), 0u);
  menu.begin_spill();
  EXPECT_EQ(menu.decide(beam, 1), 0u);
  EXPECT_EQ(menu.decide(beam, 2), 0u);
  EXPECT_EQ(menu.decide(beam, 3), bit(TriggerLine::Beam));
}

TEST(TriggerMenu, PrescaleOfOneFiresEveryEvent) {
  ThresholdSet t = no_prescaled_lines();
  t.beam_prescale = 1;
  TriggerMenu menu{t};
  for (std::uint32_t k = 1; k <= 5; ++k) EXPECT_EQ(menu.decide(EventFeatures{}, k), bit(TriggerLine::Beam));
}

TEST(TriggerMenu, RandomFiresOnMultiplesOfThePeriod) {
  ThresholdSet t = no_prescaled_lines();
  t.random_period = 5;
  TriggerMenu menu{t};
  std::vector<std::uint32_t> fired;
  for (std::uint32_t p = 0; p <= 16; ++p) {
    if (menu.decide(EventFeatures{}, p) == bit(TriggerLine::Random)) fired.push_back(p);
  }
  EXPECT_EQ(fired, (std::vector<std::uint32_t>{0, 5, 10, 15}));
}

TEST(TriggerMenu, ZeroDisablesBeamAndRandom) {
  TriggerMenu menu{no_prescaled_lines()};
  for (std::uint32_t p = 0; p < 100; ++p) EXPECT_EQ(menu.decide(EventFeatures{}, p), 0u) << "particle " << p;
}

TEST(TriggerMenu, LinesFireTogether) {
  ThresholdSet t;
  t.beam_prescale = 2;
  t.random_period = 10;
  TriggerMenu menu{t};
  EXPECT_EQ(menu.decide(signal_like(), 9), bit(TriggerLine::Invisible));
  EXPECT_EQ(menu.decide(signal_like(), 10),
            bit(TriggerLine::Invisible) | bit(TriggerLine::Beam) | bit(TriggerLine::Random));
}

TEST(TriggerMenu, SetThresholdsChangesTheOutcome) {
  TriggerMenu menu{no_prescaled_lines()};
  const auto f = signal_like();
  EXPECT_TRUE(menu.missing_energy(f));
  ThresholdSet tight = no_prescaled_lines();
  tight.ecal_max_gev = 20.0f;
  menu.set_thresholds(tight);
  EXPECT_EQ(menu.thresholds().ecal_max_gev, 20.0f);
  EXPECT_FALSE(menu.missing_energy(f));
  EXPECT_EQ(menu.decide(f, 1), 0u);
  ThresholdSet prescaled = no_prescaled_lines();
  prescaled.beam_prescale = 1;
  menu.set_thresholds(prescaled);
  EXPECT_EQ(menu.decide(f, 2), bit(TriggerLine::Invisible) | bit(TriggerLine::Beam));
}

}  // namespace
}  // namespace na64::trigger
