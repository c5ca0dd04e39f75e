// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/emulated_trackers.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <vector>

#include "na64/firmware/apv.hpp"
#include "na64/firmware/straw_tdc.hpp"

namespace na64::drivers {
namespace {

namespace fw = na64::firmware;

BeamParameters electrons_only() {
  BeamParameters p;
  p.hadron_fraction = 0;
  p.muon_fraction = 0;
  p.signal_fraction = 0;
  return p;
}

struct Centroid {
  double sum_q = 0;
  double sum_qx = 0;
  int strips = 0;
  [[nodiscard]] double position() const { return sum_qx / sum_q; }
};

// Decodes one APV block into a charge-weighted centre per plane of `source`.
std::vector<Centroid> apv_centroids(const EmulatedTrackers& trk, ApvSource source,
                                    std::span<const std::uint32_t> block, std::uint32_t particle) {
  const auto planes = trk.apv_planes(source);
  std::vector<Centroid> c(planes.size());
  const auto r = fw::decode_apv(block, particle, 0, [&](const fw::ApvHit& h) {
    ASSERT_LT(h.adc_id, planes.size());
    const TrackerPlane& p = planes[h.adc_id];
    const std::uint32_t strip = h.chip_id * fw::kApvChannels + h.channel;
    ASSERT_LT(strip, p.n_strips);
    const double q = h.samples[2];
    EXPECT_GT(q, 0.0);
    EXPECT_LE(h.samples[0], h.samples[1]);
    EXPECT_LE(h.samples[1], h.samples[2]);
    c[h.adc_id].sum_q += q;
    c[h.adc_id].sum_qx += q * p.strip_centre_mm(strip);
    ++c[h.adc_id].strips;
  });
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return c;
}

std::vector<std::uint32_t> write_apv(const EmulatedTrackers& trk, std::uint32_t spill, std::uint32_t particle,
                                     ApvSource source) {
  std::vector<std::uint32_t> buf(trk.max_apv_words(source));
  const std::size_t n = trk.write_apv(spill, particle, source, buf);
  EXPECT_GT(n, 0u);
  buf.resize(n);
  return buf;
}

std::vector<std::uint32_t> write_straw(const EmulatedTrackers& trk, std::uint32_t spill, std::uint32_t particle) {
  std::vector<std::uint32_t> buf(trk.max_straw_words());
  const std::size_t n = trk.write_straw(spill, particle, buf);
  EXPECT_GT(n, 0u);
  buf.resize(n);
  return buf;
}

TEST(EmulatedTrackers, SameInputsSameWords) {
  const NA64Beam beam(BeamParameters{});
  const EmulatedTrackers a(beam, TrackerParameters{});
  const EmulatedTrackers b(beam, TrackerParameters{});
  for (auto source : {ApvSource::Micromegas, ApvSource::Gem}) {
    EXPECT_EQ(write_apv(a, 3, 1234, source), write_apv(b, 3, 1234, source));
    EXPECT_NE(write_apv(a, 3, 1234, source), write_apv(a, 3, 1235, source));
  }
  EXPECT_EQ(write_straw(a, 3, 1234), write_straw(b, 3, 1234));
  EXPECT_EQ(a.truth(3, 1234).x_mm, b.truth(3, 1234).x_mm);

  BeamParameters other;
  other.seed = 2;
  const NA64Beam beam2(other);
  const EmulatedTrackers c(beam2, TrackerParameters{});
  EXPECT_NE(write_apv(a, 3, 1234, ApvSource::Micromegas), write_apv(c, 3, 1234, ApvSource::Micromegas));
}

TEST(EmulatedTrackers, ReferenceGeometry) {
  const NA64Beam beam(BeamParameters{});
  const EmulatedTrackers trk(beam, TrackerParameters{});
  const auto planes = trk.planes();
  EXPECT_STREQ(planes[0].name, "MM1X");
  EXPECT_STREQ(planes[kFirstGemPlane].name, "GM1X");
  EXPECT_STREQ(planes[kFirstStrawPlane + 7].name, "ST4Y");
  EXPECT_EQ(planes[0].n_strips, 320u);
  EXPECT_EQ(planes[0].pitch_mm, 0.25);
  EXPECT_EQ(planes[kFirstGemPlane].n_strips, 256u);
  EXPECT_EQ(planes[kFirstGemPlane].pitch_mm, 0.4);
  EXPECT_EQ(planes[kFirstStrawPlane].n_strips, 64u);
  EXPECT_EQ(planes[kFirstStrawPlane].pitch_mm, 6.0);
  int upstream = 0;
  for (const auto& p : trk.apv_planes(ApvSource::Micromegas)) upstream += p.z_mm < 0 ? 1 : 0;
  EXPECT_EQ(upstream, 4);  // MM1 and MM2, X and Y
  for (const auto& p : trk.apv_planes(ApvSource::Gem)) EXPECT_GT(p.z_mm, 0);
  for (const auto& p : trk.straw_planes()) EXPECT_GT(p.z_mm, 0);
}

TEST(EmulatedTrackers, ApvClustersSitOnTheTruthCrossing) {
  const NA64Beam beam(electrons_only());
  const EmulatedTrackers trk(beam, TrackerParameters{});
  for (std::uint32_t particle = 1; particle <= 200; ++particle) {
    const TrackerTruth t = trk.truth(1, particle);
    for (auto source : {ApvSource::Micromegas, ApvSource::Gem}) {
      const auto block = write_apv(trk, 1, particle, source);
      const auto c = apv_centroids(trk, source, block, particle);
      const std::size_t first = source == ApvSource::Micromegas ? 0 : kFirstGemPlane;
      const auto planes = trk.apv_planes(source);
      for (std::size_t i = 0; i < planes.size(); ++i) {
        const PlaneCrossing& x = t.crossings[first + i];
        ASSERT_TRUE(x.inside) << planes[i].name << " particle " << particle;
        ASSERT_GE(c[i].strips, 2) << planes[i].name << " particle " << particle;
        ASSERT_LE(c[i].strips, 3) << planes[i].name << " particle " << particle;
        EXPECT_NEAR(c[i].position(), x.position_mm, planes[i].pitch_mm) << planes[i].name << " particle " << particle;
      }
    }
  }
}

TEST(EmulatedTrackers, StrawHitsGiveTheTubeAndDriftDistance) {
  const NA64Beam beam(electrons_only());
  const TrackerParameters params;
  const EmulatedTrackers trk(beam, params);
  for (std::uint32_t particle = 1; particle <= 200; ++particle) {
    const TrackerTruth t = trk.truth(2, particle);
    const auto block = write_straw(trk, 2, particle);
    std::array<int, kStrawPlanes> leading{};
    const auto planes = trk.straw_planes();
    const auto r = fw::decode_straw_tdc(block, particle, 2, 0, [&](const fw::StrawHit& h) {
      ASSERT_LT(h.tdc_id, kStrawPlanes);
      if (h.edge != fw::StrawEdge::Leading) return;
      ++leading[h.tdc_id];
      const TrackerPlane& p = planes[h.tdc_id];
      const double truth_mm = t.crossings[kFirstStrawPlane + h.tdc_id].position_mm;
      const double wire_mm = p.strip_centre_mm(h.channel);
      EXPECT_NEAR(wire_mm, truth_mm, p.pitch_mm) << p.name;
      const double drift_ns = static_cast<double>(h.time_ps()) / 1000.0 - params.straw_t0_ns;
      EXPECT_NEAR(drift_ns * params.straw_velocity_mm_per_ns, std::abs(truth_mm - wire_mm), 0.01) << p.name;
    });
    ASSERT_TRUE(r.ok()) << r.error().message();
    for (std::size_t i = 0; i < kStrawPlanes; ++i) EXPECT_EQ(leading[i], 1) << planes[i].name;
  }
}

TEST(EmulatedTrackers, BendGivesBackTheMomentumOfA100GevElectron) {
  const NA64Beam beam(electrons_only());
  const TrackerParameters params;
  const EmulatedTrackers trk(beam, params);
  const auto planes = trk.apv_planes(ApvSource::Micromegas);
  for (std::uint32_t particle = 1; particle <= 50; ++particle) {
    const TrackerTruth t = trk.truth(4, particle);
    ASSERT_EQ(t.particle.kind, ParticleKind::Electron);
    const auto block = write_apv(trk, 4, particle, ApvSource::Micromegas);
    const auto c = apv_centroids(trk, ApvSource::Micromegas, block, particle);
    // X planes are the even ones: MM1X, MM2X upstream; MM3X-MM6X downstream.
    const double up = (c[2].position() - c[0].position()) / (planes[2].z_mm - planes[0].z_mm);
    double sz = 0, sx = 0, szz = 0, szx = 0;
    for (std::size_t i = 4; i < planes.size(); i += 2) {
      const double z = planes[i].z_mm;
      const double x = c[i].position();
      sz += z;
      sx += x;
      szz += z * z;
      szx += z * x;
    }
    const double n = 4;
    const double down = (n * szx - sz * sx) / (n * szz - sz * sz);
    const double p_gev = kGevPerTeslaMetre * params.field_integral_tm / (down - up);
    EXPECT_NEAR(p_gev / t.momentum_gev, 1.0, 0.02) << "particle " << particle;
    EXPECT_NEAR(p_gev, 100.0, 5.0) << "particle " << particle;
  }
}

TEST(EmulatedTrackers, MomentumSpreadIsAboutOnePercent) {
  const NA64Beam beam(electrons_only());
  const EmulatedTrackers trk(beam, TrackerParameters{});
  double sum = 0;
  double sum2 = 0;
  constexpr int kN = 2000;
  for (std::uint32_t i = 1; i <= kN; ++i) {
    const double p = trk.truth(1, i).momentum_gev;
    sum += p;
    sum2 += p * p;
  }
  const double mean = sum / kN;
  EXPECT_NEAR(mean, 100.0, 0.1);
  EXPECT_NEAR(std::sqrt(sum2 / kN - mean * mean), 1.0, 0.1);
}

TEST(EmulatedTrackers, TooSmallBufferGivesZero) {
  const NA64Beam beam(BeamParameters{});
  const EmulatedTrackers trk(beam, TrackerParameters{});
  for (auto source : {ApvSource::Micromegas, ApvSource::Gem}) {
    const std::size_t n = write_apv(trk, 1, 7, source).size();
    std::vector<std::uint32_t> small(n - 1);
    EXPECT_EQ(trk.write_apv(1, 7, source, small), 0u);
  }
  const std::size_t n = write_straw(trk, 1, 7).size();
  std::vector<std::uint32_t> small(n - 1);
  EXPECT_EQ(trk.write_straw(1, 7, small), 0u);
  EXPECT_EQ(trk.write_straw(1, 7, {}), 0u);
}

}  // namespace
}  // namespace na64::drivers
