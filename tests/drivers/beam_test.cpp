// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/beam.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace na64::drivers {
namespace {

namespace fw = na64::firmware;

TEST(NA64Beam, SameSeedSameParticle) {
  const NA64Beam a(BeamParameters{});
  const NA64Beam b(BeamParameters{});
  CellDeposits da;
  CellDeposits db;
  const auto ta = a.generate(2, 777, da);
  const auto tb = b.generate(2, 777, db);
  EXPECT_EQ(da, db);
  EXPECT_EQ(ta.e_ecal_gev, tb.e_ecal_gev);
  BeamParameters other;
  other.seed = 2;
  const auto tc = NA64Beam(other).generate(2, 777, db);
  EXPECT_NE(ta.e_ecal_gev, tc.e_ecal_gev);
}

TEST(NA64Beam, ElectronsDepositTheBeamEnergyWithTheEcalResolution) {
  BeamParameters p;
  p.hadron_fraction = 0;
  p.muon_fraction = 0;
  p.signal_fraction = 0;
  const NA64Beam beam(p);
  CellDeposits dep;
  double sum = 0;
  double sum2 = 0;
  int tagged = 0;
  constexpr int kN = 4000;
  for (std::uint32_t i = 1; i <= kN; ++i) {
    const auto t = beam.generate(1, i, dep);
    ASSERT_EQ(t.kind, ParticleKind::Electron);
    float cells = 0;
    for (std::size_t c = 0; c < 72; ++c) cells += dep[c];
    ASSERT_NEAR(cells, t.e_ecal_gev, 1e-3);
    sum += t.e_ecal_gev;
    sum2 += double{t.e_ecal_gev} * t.e_ecal_gev;
    tagged += t.srd_tagged ? 1 : 0;
  }
  const double mean = sum / kN;
  const double sigma = std::sqrt(sum2 / kN - mean * mean);
  const double want_sigma = 100.0 * std::hypot(0.1 / std::sqrt(100.0), 0.01);  // 1.41 GeV
  EXPECT_NEAR(mean, 100.0, 0.1);
  EXPECT_NEAR(sigma, want_sigma, 0.1);
  EXPECT_NEAR(static_cast<double>(tagged) / kN, 0.95, 0.015);
}

TEST(NA64Beam, SignalEventsLoseTheConfiguredFraction) {
  BeamParameters p;
  p.signal_fraction = 1.0;
  p.hadron_fraction = 0;
  p.muon_fraction = 0;
  const NA64Beam beam(p);
  CellDeposits dep;
  for (std::uint32_t i = 1; i <= 500; ++i) {
    const auto t = beam.generate(1, i, dep);
    ASSERT_TRUE(t.signal);
    EXPECT_GE(t.e_missing_gev, 55.0f);
    EXPECT_LE(t.e_missing_gev, 90.0f);
    EXPECT_LT(t.e_ecal_gev, 50.0f);
    EXPECT_GT(t.e_preshower_gev, 0.5f);
    EXPECT_EQ(t.e_hcal_gev, 0.0f);
  }
}

TEST(NA64Beam, HadronsLeaveTheirEnergyInTheHcalAndNoSrdSignal) {
  BeamParameters p;
  p.hadron_fraction = 1.0;
  const NA64Beam beam(p);
  CellDeposits dep;
  for (std::uint32_t i = 1; i <= 300; ++i) {
    const auto t = beam.generate(1, i, dep);
    ASSERT_EQ(t.kind, ParticleKind::Hadron);
    EXPECT_GT(t.e_hcal_gev, 40.0f);
    EXPECT_FALSE(t.srd_tagged);
    EXPECT_EQ(dep[fw::cell_index(fw::Detector::Srd, 0, 0)], 0.0f);
    EXPECT_GT(dep[fw::cell_index(fw::Detector::Veto, 0, 0)], 0.005f);
  }
}

TEST(Rng, UniformStaysInTheUnitInterval) {
  Rng r(42);
  for (int i = 0; i < 100000; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

}  // namespace
}  // namespace na64::drivers
