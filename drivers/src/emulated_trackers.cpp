// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/emulated_trackers.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "na64/firmware/apv.hpp"
#include "na64/firmware/straw_tdc.hpp"

namespace na64::drivers {

namespace fw = na64::firmware;

namespace {

// Station z positions (mm, kick at 0) of the reference layout.
constexpr std::array<double, 6> kMicromegasZ{-14000, -11000, 9000, 10000, 16000, 17000};
constexpr std::array<double, 4> kGemZ{10500, 11000, 17500, 18000};
constexpr std::array<double, 4> kStrawZ{11500, 12000, 18500, 19000};

constexpr std::array<const char*, kTrackerPlanes> kNames{
    "MM1X", "MM1Y", "MM2X", "MM2Y", "MM3X", "MM3Y", "MM4X", "MM4Y", "MM5X", "MM5Y",
    "MM6X", "MM6Y", "GM1X", "GM1Y", "GM2X", "GM2Y", "GM3X", "GM3Y", "GM4X", "GM4Y",
    "ST1X", "ST1Y", "ST2X", "ST2Y", "ST3X", "ST3Y", "ST4X", "ST4Y"};

constexpr std::uint32_t chips_of(const TrackerPlane& p) noexcept {
  return (p.n_strips + fw::kApvChannels - 1) / fw::kApvChannels;
}

// Standard normal cumulative distribution.
double phi(double x) noexcept { return 0.5 * std::erfc(-x / std::numbers::sqrt2); }

struct Strip {
  std::uint32_t strip = 0;
  double charge_adc = 0;  // frame 3
};

// Tracker-specific stream of the beam's counter-based generator, so the
// calorimeters' numbers are not disturbed.
constexpr std::uint64_t kTrackerStream = 0x74726B73ull;

}  // namespace

EmulatedTrackers::EmulatedTrackers(const NA64Beam& beam, TrackerParameters params) noexcept
    : beam_(&beam), params_(params) {
  // Downstream X planes sit on the bent trajectory of a nominal-energy particle.
  const double nominal_bend = kGevPerTeslaMetre * params_.field_integral_tm / beam.parameters().energy_gev;
  std::size_t i = 0;
  auto add_station = [&](TrackerKind kind, std::uint32_t station, double z, double pitch, std::uint32_t n) {
    for (auto axis : {StripAxis::X, StripAxis::Y}) {
      TrackerPlane& p = planes_[i];
      p.name = kNames[i];
      p.kind = kind;
      p.axis = axis;
      p.station = station;
      p.z_mm = z;
      p.centre_mm = axis == StripAxis::X && z > 0 ? nominal_bend * z : 0.0;
      p.pitch_mm = pitch;
      p.n_strips = n;
      const std::size_t first = kind == TrackerKind::Micromegas ? 0 : kind == TrackerKind::Gem ? kFirstGemPlane
                                                                                                : kFirstStrawPlane;
      p.readout_id = static_cast<std::uint32_t>(i - first);
      ++i;
    }
  };
  for (std::uint32_t s = 0; s < kMicromegasZ.size(); ++s) {
    add_station(TrackerKind::Micromegas, s + 1, kMicromegasZ[s], 0.25, 320);
  }
  for (std::uint32_t s = 0; s < kGemZ.size(); ++s) add_station(TrackerKind::Gem, s + 1, kGemZ[s], 0.4, 256);
  for (std::uint32_t s = 0; s < kStrawZ.size(); ++s) add_station(TrackerKind::Straw, s + 1, kStrawZ[s], 6.0, 64);
}

std::span<const TrackerPlane> EmulatedTrackers::apv_planes(ApvSource source) const noexcept {
  return source == ApvSource::Micromegas ? std::span<const TrackerPlane>(planes_).subspan(0, kMicromegasPlanes)
                                         : std::span<const TrackerPlane>(planes_).subspan(kFirstGemPlane, kGemPlanes);
}

std::span<const TrackerPlane> EmulatedTrackers::straw_planes() const noexcept {
  return std::span<const TrackerPlane>(planes_).subspan(kFirstStrawPlane, kStrawPlanes);
}

TrackerTruth EmulatedTrackers::truth(std::uint32_t spill, std::uint32_t particle) const noexcept {
  CellDeposits deposits;
  TrackerTruth t;
  t.particle = beam_->generate(spill, particle, deposits);
  const auto& bp = beam_->parameters();
  Rng rng(bp.seed ^ kTrackerStream, spill, particle, kTrackerStream);
  t.momentum_gev = t.particle.e_beam_gev * (1.0 + params_.momentum_spread * rng.gauss());
  t.x_mm = rng.gauss() * bp.beam_spot_mm;
  t.y_mm = rng.gauss() * bp.beam_spot_mm;
  t.slope_x = rng.gauss() * params_.divergence_mrad * 1e-3;
  t.slope_y = rng.gauss() * params_.divergence_mrad * 1e-3;
  t.bend_rad = kGevPerTeslaMetre * params_.field_integral_tm / t.momentum_gev;
  for (std::size_t i = 0; i < kTrackerPlanes; ++i) {
    const TrackerPlane& p = planes_[i];
    double pos = 0;
    if (p.axis == StripAxis::X) {
      pos = t.x_mm + (t.slope_x + (p.z_mm > 0 ? t.bend_rad : 0.0)) * p.z_mm;
    } else {
      pos = t.y_mm + t.slope_y * p.z_mm;
    }
    const double half = 0.5 * p.pitch_mm * p.n_strips;
    t.crossings[i] = {pos, std::abs(pos - p.centre_mm) < half};
  }
  return t;
}

namespace {

// The strips of one plane's cluster above the sparse threshold: the crossing
// strip and its neighbours, each with the Gaussian share of `charge_adc`.
std::size_t cluster(const TrackerPlane& p, double position_mm, double charge_adc, const TrackerParameters& params,
                    std::array<Strip, kMaxClusterStrips>& out) noexcept {
  const double u = (position_mm - p.centre_mm) / p.pitch_mm + 0.5 * p.n_strips;  // in strips from the plane edge
  const auto k = static_cast<std::int64_t>(std::floor(u));
  std::size_t n = 0;
  for (std::int64_t s = k - 1; s <= k + 1; ++s) {
    if (s < 0 || s >= static_cast<std::int64_t>(p.n_strips)) continue;
    const double lo = (static_cast<double>(s) - u) / params.cluster_sigma_pitch;
    const double share = phi(lo + 1.0 / params.cluster_sigma_pitch) - phi(lo);
    const double q = charge_adc * share;
    if (q < params.sparse_threshold_adc) continue;
    out[n++] = {static_cast<std::uint32_t>(s), q};
  }
  return n;
}

std::uint16_t frame_value(double v, std::uint16_t max) noexcept {
  return static_cast<std::uint16_t>(std::clamp(std::lround(v), 0L, static_cast<long>(max)));
}

std::uint8_t gray(std::uint32_t c) noexcept { return static_cast<std::uint8_t>((c ^ (c >> 1)) & 0xFFu); }

}  // namespace

std::size_t EmulatedTrackers::write_apv(std::uint32_t spill, std::uint32_t particle, ApvSource source,
                                        std::span<std::uint32_t> out) const noexcept {
  const TrackerTruth t = truth(spill, particle);
  const auto time_us = static_cast<std::uint32_t>(std::min<double>(t.particle.time_ns / 1000.0, fw::kApvMaxTimeTag));
  fw::ApvFormat format;
  format.sparse = true;
  format.pedestal_subtracted = true;
  fw::ApvBlockWriter writer(out, particle, time_us, format);
  // Frame 3 may use the 10-bit range; with ADC version 2, frames 1 and 2 stop at 511 (stored as 8 bits << 1).
  const auto max12 = static_cast<std::uint16_t>(format.adc_v2 ? 510 : 1020);

  // A second stream for the charges, so the track does not depend on the readout.
  Rng rng(beam_->parameters().seed ^ kTrackerStream, spill, particle, 0x63686172ull + static_cast<unsigned>(source));
  const std::size_t first = source == ApvSource::Micromegas ? 0 : kFirstGemPlane;
  const auto col = static_cast<std::uint32_t>(t.particle.time_ns / 25.0) % 190;
  const std::array<std::uint8_t, 3> address{gray(col), gray(col + 1), gray(col + 2)};
  bool ok = true;
  const auto planes = apv_planes(source);
  for (std::size_t i = 0; i < planes.size() && ok; ++i) {
    const TrackerPlane& p = planes[i];
    const PlaneCrossing& c = t.crossings[first + i];
    const double charge = params_.charge_min_adc + (params_.charge_max_adc - params_.charge_min_adc) * rng.uniform();
    std::array<Strip, kMaxClusterStrips> strips{};
    const std::size_t n = c.inside ? cluster(p, c.position_mm, charge, params_, strips) : 0;
    ok = writer.begin_adc(p.readout_id);
    for (std::uint32_t chip = 0; chip < chips_of(p) && ok; ++chip) {
      std::array<fw::ApvSparseHit, kMaxClusterStrips> hits{};
      std::size_t h = 0;
      for (std::size_t s = 0; s < n; ++s) {
        if (strips[s].strip / fw::kApvChannels != chip) continue;
        const double q = strips[s].charge_adc;
        hits[h++] = {strips[s].strip % fw::kApvChannels,
                     {frame_value(q * params_.frame_shape[0], max12), frame_value(q * params_.frame_shape[1], max12),
                      frame_value(q * params_.frame_shape[2], fw::kApvMaxSample)}};
      }
      fw::ApvChipHeader header;
      header.chip_id = chip;
      header.frame_address = address;
      ok = writer.add_sparse_chip(header, std::span<const fw::ApvSparseHit>(hits.data(), h));
    }
  }
  return writer.finish();
}

std::size_t EmulatedTrackers::write_straw(std::uint32_t spill, std::uint32_t particle,
                                          std::span<std::uint32_t> out) const noexcept {
  const TrackerTruth t = truth(spill, particle);
  fw::StrawTdcBlockWriter writer(out, particle, spill);
  bool ok = true;
  const auto planes = straw_planes();
  for (std::size_t i = 0; i < planes.size() && ok; ++i) {
    const TrackerPlane& p = planes[i];
    const PlaneCrossing& c = t.crossings[kFirstStrawPlane + i];
    ok = writer.begin_tdc(p.readout_id);
    if (!ok || !c.inside) continue;
    const double u = (c.position_mm - p.centre_mm) / p.pitch_mm + 0.5 * p.n_strips;
    const auto tube = std::min(static_cast<std::uint32_t>(std::max(0.0, u)), p.n_strips - 1);
    const double distance_mm = std::abs(c.position_mm - p.strip_centre_mm(tube));
    const double leading_ns = params_.straw_t0_ns + distance_mm / params_.straw_velocity_mm_per_ns;
    const double ticks_per_ns = 1000.0 / fw::kStrawTickPs;
    const auto leading = static_cast<std::uint32_t>(std::lround(leading_ns * ticks_per_ns));
    const auto trailing = static_cast<std::uint32_t>(std::lround((leading_ns + params_.straw_tot_ns) * ticks_per_ns));
    ok = writer.add_hit(tube, fw::StrawEdge::Leading, leading) &&
         writer.add_hit(tube, fw::StrawEdge::Trailing, trailing);
  }
  return writer.finish();
}

std::size_t EmulatedTrackers::max_apv_words(ApvSource source) const noexcept {
  std::size_t words = 0;
  for (const auto& p : apv_planes(source)) {
    words += fw::kApvAdcHeaderWords + chips_of(p) * fw::kApvChipHeaderWords + kMaxClusterStrips;
  }
  return words;
}

std::size_t EmulatedTrackers::max_straw_words() const noexcept {
  return kStrawPlanes * (fw::kStrawFramingWords + 2);  // one tube, leading and trailing edge
}

}  // namespace na64::drivers
