// SPDX-License-Identifier: Apache-2.0
// Emulated tracker front-ends: the Micromegas (MM1-MM6) and GEM (GEM1-GEM4)
// strip planes on APV25 chips, and the straw-tube planes (ST1-ST4) on TDCs.
// One straight track per beam particle, bent once by the magnets, turned into
// the APV and straw TDC blocks the front-ends would send.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "na64/drivers/beam.hpp"

namespace na64::drivers {

/// Bend angle (rad) = kGevPerTeslaMetre x field integral (T.m) / momentum (GeV).
inline constexpr double kGevPerTeslaMetre = 0.299792458;

enum class TrackerKind : std::uint8_t { Micromegas, Gem, Straw };
/// X is the bending plane; Y is not bent.
enum class StripAxis : std::uint8_t { X, Y };

/// One of the APV S-Link sources: all Micromegas planes, or all GEM planes.
enum class ApvSource : std::uint8_t { Micromegas, Gem };

/// One readout plane. Strip (or tube) i has its centre at
/// `centre_mm + (i + 0.5 - n_strips / 2) x pitch_mm` along `axis`.
struct TrackerPlane {
  const char* name = "";  ///< "MM1X", "GM3Y", "ST2X"
  TrackerKind kind = TrackerKind::Micromegas;
  StripAxis axis = StripAxis::X;
  std::uint32_t station = 0;  ///< 1-based: MM1..MM6, GM1..GM4, ST1..ST4
  double z_mm = 0;            ///< along the beam; the magnets' kick is at z = 0
  double centre_mm = 0;       ///< plane centre on its axis: downstream X planes sit on the nominal bent beam
  double pitch_mm = 0;
  std::uint32_t n_strips = 0;
  /// APV planes: ADC id within their source; strip = chip id x 128 + APV channel.
  /// Straw planes: TDC id; tube = TDC channel.
  std::uint32_t readout_id = 0;

  /// Strip (tube) centre in mm on the plane's axis.
  [[nodiscard]] double strip_centre_mm(std::uint32_t strip) const noexcept {
    return centre_mm + (static_cast<double>(strip) + 0.5 - 0.5 * static_cast<double>(n_strips)) * pitch_mm;
  }
};

/// The reference tracker layout (a working assumption of this project, not
/// a survey): 6 Micromegas stations (MM1-MM2 upstream of the magnets, MM3-MM6
/// downstream), 4 GEM and 4 straw stations downstream, each an X and a Y
/// plane at the same z. Micromegas 320 strips x 0.25 mm, GEM 256 x 0.4 mm,
/// straws 64 tubes x 6 mm.
inline constexpr std::size_t kMicromegasPlanes = 12;
inline constexpr std::size_t kGemPlanes = 8;
inline constexpr std::size_t kStrawPlanes = 8;
inline constexpr std::size_t kTrackerPlanes = kMicromegasPlanes + kGemPlanes + kStrawPlanes;
/// Plane index ranges in EmulatedTrackers::planes(): MM1X, MM1Y, ..., MM6Y, GM1X, ..., GM4Y, ST1X, ..., ST4Y.
inline constexpr std::size_t kFirstGemPlane = kMicromegasPlanes;
inline constexpr std::size_t kFirstStrawPlane = kMicromegasPlanes + kGemPlanes;
/// A cluster has at most this many strips (the crossing strip and its two neighbours).
inline constexpr std::size_t kMaxClusterStrips = 3;

struct TrackerParameters {
  double field_integral_tm = 7.0;       ///< both magnets, bending in X
  double momentum_spread = 0.01;        ///< Gaussian sigma of p / E_beam
  double divergence_mrad = 0.05;        ///< Gaussian sigma of each track slope
  double cluster_sigma_pitch = 0.5;     ///< charge spread, Gaussian sigma in strip pitches
  double charge_min_adc = 400;          ///< total cluster charge (frame 3), uniform in [min, max]
  double charge_max_adc = 600;
  double sparse_threshold_adc = 30;     ///< strips below this (frame 3) are suppressed
  std::array<double, 3> frame_shape{0.45, 0.85, 1.0};  ///< APV frames 1-3 relative to frame 3
  double straw_velocity_mm_per_ns = 0.05;  ///< drift velocity
  double straw_t0_ns = 200;             ///< leading edge of a zero-distance hit, from the window start
  double straw_tot_ns = 40;             ///< time over threshold: trailing edge after the leading one
};

/// Where the track crossed one plane.
struct PlaneCrossing {
  double position_mm = 0;  ///< on the plane's axis, in the global frame
  bool inside = false;     ///< within the plane's strips; a plane outside has no hits
};

/// What really happened in the trackers for one beam particle.
struct TrackerTruth {
  ParticleTruth particle;
  double momentum_gev = 0;  ///< E_beam smeared by momentum_spread
  double x_mm = 0;          ///< track at z = 0 (the beam spot, the beam's spot sigma)
  double y_mm = 0;
  double slope_x = 0;       ///< upstream dx/dz
  double slope_y = 0;
  double bend_rad = 0;      ///< kick in X at z = 0
  std::array<PlaneCrossing, kTrackerPlanes> crossings{};
};

/// Deterministic per (beam seed, spill, particle), as NA64Beam: every charged
/// beam particle (electron, hadron or muon; all are charged) leaves one
/// straight track from the beam spot, with one thin kick of
/// kGevPerTeslaMetre x field_integral / p in X at z = 0. No multiple
/// scattering, noise or inefficiency: each plane the track crosses gets one
/// cluster (2-3 strips, Gaussian charge sharing above the sparse threshold)
/// or one straw hit (leading and trailing edge; drift time = distance to
/// the wire / drift velocity).
///
/// Thread safety: const after construction; share freely. Keeps a pointer
/// to `beam`, which must outlive it.
class EmulatedTrackers {
 public:
  EmulatedTrackers(const NA64Beam& beam, TrackerParameters params) noexcept;

  [[nodiscard]] const TrackerParameters& parameters() const noexcept { return params_; }
  [[nodiscard]] std::span<const TrackerPlane, kTrackerPlanes> planes() const noexcept { return planes_; }
  /// Planes of one APV source, in ADC id order.
  [[nodiscard]] std::span<const TrackerPlane> apv_planes(ApvSource source) const noexcept;
  [[nodiscard]] std::span<const TrackerPlane> straw_planes() const noexcept;

  /// The track of (spill, particle). No allocation.
  [[nodiscard]] TrackerTruth truth(std::uint32_t spill, std::uint32_t particle) const noexcept;

  /// Writes the sparse, pedestal-subtracted APV block of `source`'s planes
  /// (every chip of every plane, empty chips included; chip event number =
  /// particle & 0xFFF, time tag = arrival time in us). Returns its words, 0
  /// if `out` is too small. No allocation.
  [[nodiscard]] std::size_t write_apv(std::uint32_t spill, std::uint32_t particle, ApvSource source,
                                      std::span<std::uint32_t> out) const noexcept;
  /// Writes the straw TDC block (one TDC per plane; event number = particle
  /// & 0xFFF, spill & 0x7FF). Returns its words, 0 if `out` is too small.
  [[nodiscard]] std::size_t write_straw(std::uint32_t spill, std::uint32_t particle,
                                        std::span<std::uint32_t> out) const noexcept;

  /// Upper bounds of one event's block, for buffer sizing.
  [[nodiscard]] std::size_t max_apv_words(ApvSource source) const noexcept;
  [[nodiscard]] std::size_t max_straw_words() const noexcept;

 private:
  const NA64Beam* beam_;
  TrackerParameters params_;
  std::array<TrackerPlane, kTrackerPlanes> planes_{};
};

}  // namespace na64::drivers
