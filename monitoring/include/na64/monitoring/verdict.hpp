// SPDX-License-Identifier: Apache-2.0
// Automatic spill verdicts: a spill's DQM set against a reference set (an
// earlier run's, or the sum of this run's first good spills), with a
// statistical shape test and checks that name the problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "na64/monitoring/dqm.hpp"
#include "na64/monitoring/histogram.hpp"

namespace na64::monitoring {

enum class VerdictLevel : std::uint8_t { Good, Warning, Bad };
/// "good", "warning", "bad".
[[nodiscard]] const char* to_string(VerdictLevel level) noexcept;

/// The outcome for one spill: the worst level found and one line per problem.
struct Verdict {
  VerdictLevel level = VerdictLevel::Good;
  std::vector<std::string> reasons;
};

/// Thresholds of the checks. Counts are events or hits of the sets compared.
struct VerdictConfig {
  /// Histograms compared in shape by a chi-square test (1D or 2D, by name).
  std::vector<std::string> shape_histograms{"ecal_energy", "preshower_energy", "hcal_energy"};
  double shape_p_warning = 1e-3;  ///< p-value below: warning
  double shape_p_bad = 1e-9;      ///< p-value below: bad
  double shape_min_entries = 500; ///< in-range sum each histogram needs to be tested

  /// Dead and hot ECAL and HCAL cells, from their occupancy per filled event.
  /// A cell is judged only when the reference holds at least
  /// cell_min_reference_hits and the spill is expected to hold at least
  /// cell_min_expected_hits at the reference's occupancy.
  double cell_min_reference_hits = 100;
  double cell_min_expected_hits = 25;
  double dead_fraction = 0.1;  ///< hits below this fraction of the expectation: dead (bad)
  /// Hits above this multiple of max(expectation's upper bound,
  /// cell_min_expected_hits): hot (bad). The upper bound is the reference
  /// count + 1 + 3 sqrt(count + 1), scaled to the spill's events.
  double hot_factor = 5.0;

  /// Rates: the SRD-tagged fraction of filled events and each trigger line's
  /// accepted fraction of events, against the reference's. A deviation beyond
  /// rate_warning (bad: rate_bad) as a fraction of the reference counts only
  /// if it is also beyond rate_min_sigmas standard deviations of the two
  /// counts, and the reference holds at least rate_min_reference counts.
  double rate_warning = 0.10;
  double rate_bad = 0.25;
  double rate_min_sigmas = 5.0;
  double rate_min_reference = 25;

  /// Noisy channels: pedestal RMS above noise_factor x the reference's
  /// (floored at noise_floor_adc), with noise_min_events pedestals in each set.
  double noise_factor = 2.0;
  double noise_floor_adc = 0.5;
  double noise_min_events = 100;
};

/// Result of a chi-square comparison of two histograms' shapes.
struct ShapeTest {
  double chi2 = 0;
  std::uint32_t ndf = 0;  ///< bins with entries in either histogram, minus 1
  double p_value = 1;     ///< 1 when there is nothing to compare
};

/// Chi-square test that two unweighted histograms (counts) come from the same
/// distribution, whatever their normalisations: over the in-range bins with
/// n1 + n2 > 0, chi2 = sum (N2 n1 - N1 n2)^2 / (N1 N2 (n1 + n2)), ndf = bins - 1,
/// p = chi2_survival(chi2, ndf). Throws std::invalid_argument naming both
/// histograms unless the binnings are the same.
[[nodiscard]] ShapeTest chi2_test(const Histogram1D& a, const Histogram1D& b);
[[nodiscard]] ShapeTest chi2_test(const Histogram2D& a, const Histogram2D& b);

/// Upper regularised incomplete gamma function Q(a, x) = Gamma(a, x) / Gamma(a),
/// for a > 0, x >= 0; NaN outside.
[[nodiscard]] double regularized_gamma_q(double a, double x) noexcept;
/// P(X >= chi2) for X chi-square distributed with `ndf` degrees of freedom:
/// Q(ndf / 2, chi2 / 2). 1 for ndf = 0.
[[nodiscard]] double chi2_survival(double chi2, double ndf) noexcept;

/// Throws std::invalid_argument naming the field when a threshold is out of
/// range or a shape histogram is not one of a DqmHistograms set's.
void validate(const VerdictConfig& config);

/// Judges `spill` against `reference`. Reads its arguments only: threads may
/// judge at the same time. A spill without filled events is a warning, "no
/// events filled: nothing to judge". Otherwise reasons come in this order: shapes
/// (in the configuration's order), cells (by cell index), noise, SRD rate,
/// trigger lines. Examples: "ECAL1 cell (3,4) dead: 0 hits, 2500 expected",
/// "SRD rate 30 % low: 0.56 of events tagged, reference 0.8",
/// "trigger line invisible rate 2.1x reference: 0.0021 per event, reference 0.001".
/// Throws
/// std::invalid_argument for a bad configuration (see validate()) or sets of
/// different binning.
[[nodiscard]] Verdict judge_spill(const DqmHistograms& spill, const DqmHistograms& reference,
                                  const VerdictConfig& config);

/// How a cell is named in verdicts: "ECAL1 cell (3,4)", "HCAL2 cell (1,1)",
/// "SRD module 2", "VETO counter 1 PMT 0", "S0". Precondition: cell < kNumCells.
[[nodiscard]] std::string cell_name(std::uint16_t cell);

}  // namespace na64::monitoring
