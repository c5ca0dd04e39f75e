// SPDX-License-Identifier: Apache-2.0
// A parametrised NA64 electron beam on the invisible-mode setup: per particle,
// the true energy deposited in every calorimeter, SRD, veto and counter cell.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "na64/firmware/channel_map.hpp"

namespace na64::drivers {

/// Beam and detector-response parameters. Energies in GeV.
struct BeamParameters {
  double energy_gev = 100.0;
  std::uint32_t particles_per_spill = 20000;  ///< up to 1e7
  double spill_duration_s = 4.8;
  double hadron_fraction = 0.005;   ///< pi/e, <= 1 %
  double muon_fraction = 0.002;
  double signal_fraction = 0.002;   ///< signal-like electrons: part of the energy escapes
  double signal_min_missing = 0.55; ///< fraction of the beam energy that escapes, lower bound
  double signal_max_missing = 0.90; ///< ... upper bound
  double ecal_stochastic = 0.10;    ///< dE/E = a/sqrt(E) (+) b
  double ecal_constant = 0.01;
  double preshower_min_fraction = 0.06;  ///< of the ECAL deposit, uniform up to max
  double preshower_max_fraction = 0.20;
  double hcal_stochastic = 0.60;
  double electron_hcal_leak_gev = 0.05;  ///< mean of an exponential
  double srd_efficiency = 0.95;
  double srd_mean_gev = 0.015;           ///< per module, exponential, clipped to [srd_min, srd_max]
  double srd_min_gev = 0.002;
  double srd_max_gev = 0.070;
  double mip_gev = 0.010;                ///< veto and beam counters
  double beam_spot_mm = 5.0;             ///< Gaussian sigma of the impact point
  std::uint64_t seed = 1;
};

enum class ParticleKind : std::uint8_t { Electron, Hadron, Muon };
[[nodiscard]] const char* to_string(ParticleKind k) noexcept;

/// What really happened for one beam particle.
struct ParticleTruth {
  std::uint32_t spill = 0;
  std::uint32_t particle = 0;  ///< 1-based number in the spill
  ParticleKind kind = ParticleKind::Electron;
  bool signal = false;         ///< part of the energy escaped (A' -> invisible)
  bool srd_tagged = false;     ///< every SRD module saw synchrotron light
  float e_beam_gev = 0;
  float e_missing_gev = 0;
  float e_ecal_gev = 0;        ///< both sections
  float e_preshower_gev = 0;
  float e_hcal_gev = 0;
  double time_ns = 0;          ///< arrival time in the spill
  float peak_sample = 0;       ///< pulse peak position in MSADC samples
};

using CellDeposits = std::array<float, firmware::kNumCells>;

/// Deterministic per (seed, spill, particle): any thread may ask for any
/// particle in any order and gets the same answer, so each emulated board
/// computes its own channels without sharing state.
///
/// Thread safety: const; share freely.
class NA64Beam {
 public:
  explicit NA64Beam(BeamParameters p) noexcept : p_(p) {}

  [[nodiscard]] const BeamParameters& parameters() const noexcept { return p_; }
  /// Fills `deposits` (GeV per cell) and returns the truth. No allocation.
  ParticleTruth generate(std::uint32_t spill, std::uint32_t particle, CellDeposits& deposits) const noexcept;

 private:
  BeamParameters p_;
};

/// Small counter-based generator: SplitMix64-seeded xoshiro256**.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept;
  Rng(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) noexcept;
  std::uint64_t next() noexcept;
  /// Uniform in [0, 1).
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double gauss() noexcept;
  double exponential(double mean) noexcept;

 private:
  std::array<std::uint64_t, 4> s_{};
};

}  // namespace na64::drivers
