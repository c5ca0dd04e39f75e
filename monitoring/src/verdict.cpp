// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/verdict.hpp"

#include <fmt/format.h>
#include <math.h>  // lgamma_r

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <stdexcept>

namespace na64::monitoring {

namespace fw = na64::firmware;

namespace {

// ---- the chi-square distribution -------------------------------------------

constexpr double kEpsilon = 1e-15;
constexpr int kMaxIterations = 100000;

/// log Gamma(a) without std::lgamma, which writes the global signgam and so
/// races when two threads judge spills.
double log_gamma(double a) noexcept {
  int sign = 0;
  return ::lgamma_r(a, &sign);
}

/// Lower regularised P(a, x) by its power series; converges fast for x < a + 1.
double gamma_p_series(double a, double x) noexcept {
  double term = 1.0 / a;
  double sum = term;
  for (int n = 1; n < kMaxIterations; ++n) {
    term *= x / (a + n);
    sum += term;
    if (std::abs(term) < std::abs(sum) * kEpsilon) break;
  }
  return sum * std::exp(-x + a * std::log(x) - log_gamma(a));
}

/// Upper regularised Q(a, x) by its continued fraction (evaluated with the
/// modified Lentz method); converges fast for x >= a + 1.
double gamma_q_fraction(double a, double x) noexcept {
  constexpr double kTiny = 1e-300;
  double b = x + 1.0 - a;
  double c = 1.0 / kTiny;
  double d = 1.0 / b;
  double h = d;
  for (int i = 1; i < kMaxIterations; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::abs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double step = d * c;
    h *= step;
    if (std::abs(step - 1.0) < kEpsilon) break;
  }
  return std::exp(-x + a * std::log(x) - log_gamma(a)) * h;
}

/// The test over two equally long runs of bin contents.
ShapeTest chi2_of(std::span<const double> a, std::span<const double> b) noexcept {
  double na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    na += a[i];
    nb += b[i];
  }
  ShapeTest t;
  if (na <= 0 || nb <= 0) return t;
  std::uint32_t bins = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double sum = a[i] + b[i];
    if (sum <= 0) continue;
    ++bins;
    const double diff = nb * a[i] - na * b[i];
    t.chi2 += diff * diff / sum;
  }
  t.chi2 /= na * nb;
  t.ndf = bins > 0 ? bins - 1 : 0;
  t.p_value = chi2_survival(t.chi2, t.ndf);
  return t;
}

// ---- configuration ------------------------------------------------------------

void check_range(const char* field, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) {
    throw std::invalid_argument(fmt::format("VerdictConfig.{}: {} is out of range [{}, {}]", field, v, lo, hi));
  }
}

constexpr double kBig = 1e300;

// ---- rates ----------------------------------------------------------------------

/// Appends a rate reason when `count` of `total` departs from the
/// reference's `ref_count` of `ref_total` beyond the configured band.
/// Returns the level it found.
VerdictLevel check_rate(const std::string& what, double count, double total, double ref_count, double ref_total,
                        const char* unit, const VerdictConfig& cfg, std::vector<std::string>& reasons) {
  if (total <= 0 || ref_total <= 0 || ref_count < cfg.rate_min_reference) return VerdictLevel::Good;
  const double rate = count / total;
  const double ref_rate = ref_count / ref_total;
  const double ratio = rate / ref_rate;
  const double deviation = std::abs(ratio - 1.0);
  if (deviation < cfg.rate_warning) return VerdictLevel::Good;
  // Both counts fluctuate: the expectation here, and its variance, scale the
  // reference count to this set's total.
  const double scale = total / ref_total;
  const double expected = ref_count * scale;
  const double sigma = std::sqrt(expected + ref_count * scale * scale);
  if (std::abs(count - expected) < cfg.rate_min_sigmas * sigma) return VerdictLevel::Good;
  std::string how;
  if (ratio >= 2.0) {
    how = fmt::format("{:.1f}x reference", ratio);
  } else {
    how = fmt::format("{:.0f} % {}", deviation * 100.0, ratio < 1.0 ? "low" : "high");
  }
  reasons.push_back(fmt::format("{} rate {}: {:.3g} {}, reference {:.3g}", what, how, rate, unit, ref_rate));
  return deviation >= cfg.rate_bad ? VerdictLevel::Bad : VerdictLevel::Warning;
}

bool is_calorimeter(fw::Detector d) noexcept {
  switch (d) {
    case fw::Detector::Ecal0:
    case fw::Detector::Ecal1:
    case fw::Detector::Hcal0:
    case fw::Detector::Hcal1:
    case fw::Detector::Hcal2:
    case fw::Detector::Hcal3: return true;
    default: return false;
  }
}

}  // namespace

const char* to_string(VerdictLevel level) noexcept {
  switch (level) {
    case VerdictLevel::Good: return "good";
    case VerdictLevel::Warning: return "warning";
    case VerdictLevel::Bad: return "bad";
  }
  return "unknown";
}

double regularized_gamma_q(double a, double x) noexcept {
  if (!(a > 0) || !(x >= 0) || std::isinf(a)) return std::numeric_limits<double>::quiet_NaN();
  if (x == 0) return 1.0;
  if (std::isinf(x)) return 0.0;
  if (x < a + 1.0) return 1.0 - gamma_p_series(a, x);
  return gamma_q_fraction(a, x);
}

double chi2_survival(double chi2, double ndf) noexcept {
  if (ndf <= 0) return 1.0;
  if (!(chi2 > 0)) return 1.0;
  return regularized_gamma_q(0.5 * ndf, 0.5 * chi2);
}

ShapeTest chi2_test(const Histogram1D& a, const Histogram1D& b) {
  if (!a.same_binning(b)) {
    throw std::invalid_argument(
        fmt::format("chi-square test of '{}' and '{}': binnings differ ({} bins in [{}, {}) and {} bins in [{}, {}))",
                    a.name(), b.name(), a.x_axis().bins, a.x_axis().min, a.x_axis().max, b.x_axis().bins,
                    b.x_axis().min, b.x_axis().max));
  }
  return chi2_of(a.contents().subspan(1, a.bins()), b.contents().subspan(1, b.bins()));
}

ShapeTest chi2_test(const Histogram2D& a, const Histogram2D& b) {
  if (!a.same_binning(b)) {
    throw std::invalid_argument(
        fmt::format("chi-square test of '{}' and '{}': binnings differ", a.name(), b.name()));
  }
  // In-range cells only, row by row.
  const std::size_t nx = a.x_axis().bins;
  const std::size_t ny = a.y_axis().bins;
  std::vector<double> va, vb;
  va.reserve(nx * ny);
  vb.reserve(nx * ny);
  for (std::size_t iy = 1; iy <= ny; ++iy) {
    for (std::size_t ix = 1; ix <= nx; ++ix) {
      va.push_back(a.content(ix, iy));
      vb.push_back(b.content(ix, iy));
    }
  }
  return chi2_of(va, vb);
}

std::string cell_name(std::uint16_t cell) {
  const fw::Cell c = fw::cell_at(cell);
  const auto& g = fw::geometry(c.detector);
  switch (c.detector) {
    case fw::Detector::Srd: return fmt::format("SRD module {}", c.x);
    case fw::Detector::Veto: return fmt::format("VETO counter {} PMT {}", c.x, c.y);
    case fw::Detector::S0:
    case fw::Detector::S1:
    case fw::Detector::S2: return std::string(g.name);
    default: return fmt::format("{} cell ({},{})", g.name, c.x, c.y);
  }
}

void validate(const VerdictConfig& c) {
  check_range("shape_p_warning", c.shape_p_warning, 0.0, 1.0);
  check_range("shape_p_bad", c.shape_p_bad, 0.0, c.shape_p_warning);
  check_range("shape_min_entries", c.shape_min_entries, 1.0, kBig);
  check_range("cell_min_reference_hits", c.cell_min_reference_hits, 1.0, kBig);
  check_range("cell_min_expected_hits", c.cell_min_expected_hits, 1.0, kBig);
  check_range("dead_fraction", c.dead_fraction, 0.0, 1.0);
  check_range("hot_factor", c.hot_factor, 1.0, kBig);
  check_range("rate_warning", c.rate_warning, 0.0, kBig);
  check_range("rate_bad", c.rate_bad, c.rate_warning, kBig);
  check_range("rate_min_sigmas", c.rate_min_sigmas, 0.0, kBig);
  check_range("rate_min_reference", c.rate_min_reference, 1.0, kBig);
  check_range("noise_factor", c.noise_factor, 1.0, kBig);
  check_range("noise_floor_adc", c.noise_floor_adc, 0.0, kBig);
  check_range("noise_min_events", c.noise_min_events, 2.0, kBig);
  for (std::size_t i = 0; i < c.shape_histograms.size(); ++i) {
    const std::string& n = c.shape_histograms[i];
    const auto names = DqmHistograms::histogram_names();
    if (std::find(names.begin(), names.end(), n) == names.end()) {
      throw std::invalid_argument(
          fmt::format("VerdictConfig.shape_histograms[{}]: no DQM histogram is named '{}'", i, n));
    }
  }
}

Verdict judge_spill(const DqmHistograms& spill, const DqmHistograms& ref, const VerdictConfig& cfg) {
  validate(cfg);
  if (!spill.compatible(ref)) {
    throw std::invalid_argument("spill verdict: the spill's DQM set and the reference have different binnings or maps");
  }
  Verdict v;
  const auto raise = [&v](VerdictLevel l) { v.level = std::max(v.level, l); };
  if (spill.counters().filled == 0) {
    // Every check below needs events; an empty spill must not look good.
    v.level = VerdictLevel::Warning;
    v.reasons.emplace_back("no events filled: nothing to judge");
    return v;
  }

  // Shapes.
  for (const std::string& name : cfg.shape_histograms) {
    ShapeTest t;
    if (const auto h = spill.histogram_1d(name)) {
      const auto r = ref.histogram_1d(name);
      if (h->sum_w() < cfg.shape_min_entries || r->sum_w() < cfg.shape_min_entries) continue;
      t = chi2_test(*h, *r);
    } else if (const auto h2 = spill.histogram_2d(name)) {
      const auto r2 = ref.histogram_2d(name);
      if (h2->sum_w() < cfg.shape_min_entries || r2->sum_w() < cfg.shape_min_entries) continue;
      t = chi2_test(*h2, *r2);
    }
    if (t.p_value < cfg.shape_p_warning) {
      v.reasons.push_back(fmt::format("{} differs from reference: chi2/ndf = {:.1f}/{}, p = {:.2g}", name, t.chi2,
                                      t.ndf, t.p_value));
      raise(t.p_value < cfg.shape_p_bad ? VerdictLevel::Bad : VerdictLevel::Warning);
    }
  }

  // Dead and hot calorimeter cells.
  const double filled = static_cast<double>(spill.counters().filled);
  const double ref_filled = static_cast<double>(ref.counters().filled);
  if (filled > 0 && ref_filled > 0) {
    const auto& occ = spill.cell_sums().hits;
    const auto& ref_occ = ref.cell_sums().hits;
    for (std::uint16_t c = 0; c < fw::kNumCells; ++c) {
      if (!spill.cell_mapped(c) || !is_calorimeter(fw::cell_at(c).detector)) continue;
      const double hits = occ[c];
      const double ref_hits = ref_occ[c];
      const double scale = filled / ref_filled;
      const double expected = ref_hits * scale;
      // A generous upper bound on the expectation (about 3 standard
      // deviations of the reference count, and not 0 for a reference that
      // saw nothing), so that a reference with few events finds nothing hot.
      const double expected_high = (ref_hits + 1.0 + 3.0 * std::sqrt(ref_hits + 1.0)) * scale;
      if (ref_hits >= cfg.cell_min_reference_hits && expected >= cfg.cell_min_expected_hits &&
          hits < cfg.dead_fraction * expected) {
        v.reasons.push_back(fmt::format("{} dead: {:.0f} hits, {:.0f} expected", cell_name(c), hits, expected));
        raise(VerdictLevel::Bad);
      } else if (hits > cfg.hot_factor * std::max(expected_high, cfg.cell_min_expected_hits)) {
        v.reasons.push_back(fmt::format("{} hot: {:.0f} hits, {:.0f} expected", cell_name(c), hits, expected));
        raise(VerdictLevel::Bad);
      }
    }
  }

  // Noisy channels.
  const CellSums& cells = spill.cell_sums();
  const CellSums& ref_cells = ref.cell_sums();
  for (std::uint16_t c = 0; c < fw::kNumCells; ++c) {
    if (!spill.cell_mapped(c) || cells.read[c] < cfg.noise_min_events || ref_cells.read[c] < cfg.noise_min_events) {
      continue;
    }
    const double rms = cells.pedestal_rms(c);
    const double ref_rms = ref_cells.pedestal_rms(c);
    if (rms > cfg.noise_factor * std::max(ref_rms, cfg.noise_floor_adc)) {
      v.reasons.push_back(
          fmt::format("{} noisy: pedestal RMS {:.2f} ADC counts, reference {:.2f}", cell_name(c), rms, ref_rms));
      raise(VerdictLevel::Warning);
    }
  }

  // Rates.
  raise(check_rate("SRD", static_cast<double>(spill.counters().srd_tagged), filled,
                   static_cast<double>(ref.counters().srd_tagged), ref_filled, "of events tagged", cfg, v.reasons));
  const double events = static_cast<double>(spill.counters().events);
  const double ref_events = static_cast<double>(ref.counters().events);
  for (std::size_t l = 0; l < trigger::kNumLines; ++l) {
    raise(check_rate(fmt::format("trigger line {}", trigger::to_string(static_cast<trigger::TriggerLine>(l))),
                     static_cast<double>(spill.counters().accepted[l]), events,
                     static_cast<double>(ref.counters().accepted[l]), ref_events, "per event", cfg, v.reasons));
  }
  return v;
}

}  // namespace na64::monitoring
