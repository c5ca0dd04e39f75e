// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/beam.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>

namespace na64::drivers {

namespace fw = na64::firmware;

namespace {

std::uint64_t splitmix(std::uint64_t& x) noexcept {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr double kEcalPitchMm = 38.2;

// Fraction of a 2D Gaussian (centre cx, cy; sigma) inside the cell [x0, x1) x [y0, y1).
double gauss_cell_fraction(double cx, double cy, double sigma, double x0, double x1, double y0,
                           double y1) noexcept {
  const double k = 1.0 / (sigma * std::numbers::sqrt2);
  const double fx = 0.5 * (std::erf((x1 - cx) * k) - std::erf((x0 - cx) * k));
  const double fy = 0.5 * (std::erf((y1 - cy) * k) - std::erf((y0 - cy) * k));
  return fx * fy;
}

// Spreads `energy` over an n x n section of cell pitch `pitch` centred on
// (0, 0), with a narrow core and a wide tail, as an electromagnetic shower.
void spread_shower(CellDeposits& dep, fw::Detector det, double energy, double x_mm, double y_mm,
                   double pitch) noexcept {
  const auto& g = fw::geometry(det);
  const double half = 0.5 * g.nx * pitch;
  double total = 0;
  std::array<double, 36> frac{};
  for (std::uint32_t iy = 0; iy < g.ny; ++iy) {
    for (std::uint32_t ix = 0; ix < g.nx; ++ix) {
      const double x0 = ix * pitch - half;
      const double y0 = iy * pitch - half;
      const double f = 0.9 * gauss_cell_fraction(x_mm, y_mm, 9.0, x0, x0 + pitch, y0, y0 + pitch) +
                       0.1 * gauss_cell_fraction(x_mm, y_mm, 30.0, x0, x0 + pitch, y0, y0 + pitch);
      frac[iy * g.nx + ix] = f;
      total += f;
    }
  }
  for (std::uint32_t i = 0; i < std::uint32_t{g.nx} * g.ny; ++i) {
    dep[g.first_cell + i] += static_cast<float>(energy * frac[i] / total);
  }
}

// Hadronic shower over the HCAL modules: longitudinal share per module, 70 % in the central cell.
void spread_hadron(CellDeposits& dep, double energy) noexcept {
  constexpr std::array<double, 4> kModuleShare{0.60, 0.28, 0.09, 0.03};
  constexpr std::array<fw::Detector, 4> kModules{fw::Detector::Hcal0, fw::Detector::Hcal1,
                                                 fw::Detector::Hcal2, fw::Detector::Hcal3};
  for (std::size_t m = 0; m < 4; ++m) {
    const double e = energy * kModuleShare[m];
    for (std::uint32_t y = 0; y < 3; ++y) {
      for (std::uint32_t x = 0; x < 3; ++x) {
        const double share = (x == 1 && y == 1) ? 0.70 : 0.30 / 8.0;
        dep[fw::cell_index(kModules[m], x, y)] += static_cast<float>(e * share);
      }
    }
  }
}

}  // namespace

const char* to_string(ParticleKind k) noexcept {
  switch (k) {
    case ParticleKind::Electron: return "electron";
    case ParticleKind::Hadron: return "hadron";
    case ParticleKind::Muon: return "muon";
  }
  return "unknown";
}

Rng::Rng(std::uint64_t seed) noexcept {
  for (auto& s : s_) s = splitmix(seed);
}

Rng::Rng(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) noexcept {
  std::uint64_t x = a;
  x = splitmix(x) ^ b;
  x = splitmix(x) ^ c;
  x = splitmix(x) ^ d;
  for (auto& s : s_) s = splitmix(x);
}

std::uint64_t Rng::next() noexcept {
  const std::uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = std::rotl(s_[3], 45);
  return result;
}

double Rng::gauss() noexcept {
  // Box-Muller, one value per call: simple and the same on every platform.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double Rng::exponential(double mean) noexcept { return -mean * std::log(1.0 - uniform()); }

ParticleTruth NA64Beam::generate(std::uint32_t spill, std::uint32_t particle, CellDeposits& dep) const noexcept {
  dep.fill(0.0f);
  Rng rng(p_.seed, spill, particle, 0x6E61363462ull);
  ParticleTruth t;
  t.spill = spill;
  t.particle = particle;
  t.e_beam_gev = static_cast<float>(p_.energy_gev);
  const double n = std::max<double>(1.0, p_.particles_per_spill);
  t.time_ns = (particle - 1 + rng.uniform()) * p_.spill_duration_s * 1e9 / n;
  t.peak_sample = static_cast<float>(10.0 + rng.uniform());

  const double u = rng.uniform();
  if (u < p_.hadron_fraction) {
    t.kind = ParticleKind::Hadron;
  } else if (u < p_.hadron_fraction + p_.muon_fraction) {
    t.kind = ParticleKind::Muon;
  } else {
    t.kind = ParticleKind::Electron;
    t.signal = rng.uniform() < p_.signal_fraction;
  }
  const double x = rng.gauss() * p_.beam_spot_mm;
  const double y = rng.gauss() * p_.beam_spot_mm;

  // Beam counters see every particle.
  for (auto d : {fw::Detector::S0, fw::Detector::S1, fw::Detector::S2}) {
    dep[fw::cell_index(d, 0, 0)] = static_cast<float>(p_.mip_gev * (0.8 + 0.4 * rng.uniform()));
  }

  double e_ecal = 0;
  double e_hcal = 0;
  switch (t.kind) {
    case ParticleKind::Electron: {
      if (t.signal) {
        const double f = p_.signal_min_missing + (p_.signal_max_missing - p_.signal_min_missing) * rng.uniform();
        t.e_missing_gev = static_cast<float>(p_.energy_gev * f);
      }
      const double visible = p_.energy_gev - t.e_missing_gev;
      const double rel = std::hypot(p_.ecal_stochastic / std::sqrt(visible), p_.ecal_constant);
      e_ecal = std::max(0.0, visible * (1.0 + rel * rng.gauss()));
      if (!t.signal) {
        e_hcal = rng.exponential(p_.electron_hcal_leak_gev);
        dep[fw::cell_index(fw::Detector::Hcal0, 1, 1)] += static_cast<float>(e_hcal);
      }
      t.srd_tagged = rng.uniform() < p_.srd_efficiency;
      if (t.srd_tagged) {
        for (std::uint32_t m = 0; m < 3; ++m) {
          const double e = std::clamp(rng.exponential(p_.srd_mean_gev), p_.srd_min_gev, p_.srd_max_gev);
          dep[fw::cell_index(fw::Detector::Srd, m, 0)] = static_cast<float>(e);
        }
      }
      break;
    }
    case ParticleKind::Hadron: {
      // Interacts in the ECAL (about 1.5 lambda) two times in three; the rest goes to the HCAL.
      const double f_ecal = rng.uniform() < 0.67 ? 0.4 * rng.uniform() : 0.003;
      e_ecal = p_.energy_gev * f_ecal;
      const double rest = p_.energy_gev - e_ecal;
      e_hcal = std::max(0.0, rest * (1.0 + p_.hcal_stochastic / std::sqrt(rest) * rng.gauss()));
      spread_hadron(dep, e_hcal);
      break;
    }
    case ParticleKind::Muon: {
      e_ecal = 0.25 * (0.8 + 0.4 * rng.uniform());
      for (auto m : {fw::Detector::Hcal0, fw::Detector::Hcal1, fw::Detector::Hcal2, fw::Detector::Hcal3}) {
        const double e = 1.6 * (0.8 + 0.4 * rng.uniform());
        dep[fw::cell_index(m, 1, 1)] += static_cast<float>(e);
        e_hcal += e;
      }
      break;
    }
  }
  if (t.kind != ParticleKind::Electron) {
    // A charged particle leaving the ECAL crosses every veto counter (both PMTs).
    for (std::uint32_t c = 0; c < 3; ++c) {
      for (std::uint32_t pmt = 0; pmt < 2; ++pmt) {
        dep[fw::cell_index(fw::Detector::Veto, c, pmt)] = static_cast<float>(p_.mip_gev * (0.8 + 0.4 * rng.uniform()));
      }
    }
  }
  const double f_ps = t.kind == ParticleKind::Electron
                          ? p_.preshower_min_fraction + (p_.preshower_max_fraction - p_.preshower_min_fraction) * rng.uniform()
                          : 0.12;
  t.e_preshower_gev = static_cast<float>(e_ecal * f_ps);
  spread_shower(dep, fw::Detector::Ecal0, e_ecal * f_ps, x, y, kEcalPitchMm);
  spread_shower(dep, fw::Detector::Ecal1, e_ecal * (1.0 - f_ps), x, y, kEcalPitchMm);
  t.e_ecal_gev = static_cast<float>(e_ecal);
  t.e_hcal_gev = static_cast<float>(e_hcal);
  return t;
}

}  // namespace na64::drivers
