// SPDX-License-Identifier: Apache-2.0
// Fixed-binning histograms for online data quality: bin contents and squared
// weights with under- and overflow, and the running sums ROOT keeps, so that
// a histogram can be published as a ROOT TH1D / TH2D.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace na64::monitoring {

/// One axis: `bins` equal bins over [min, max).
struct Axis {
  std::uint32_t bins = 1;
  double min = 0;
  double max = 1;
  std::string title;  ///< with units, e.g. "E_{ECAL} (GeV)"
};

/// The running sums a histogram keeps beside its cells, to restore one
/// exactly (e.g. read back from a file). The y sums are the 2D ones.
struct HistogramSums {
  double entries = 0;
  double sum_w = 0;
  double sum_w2 = 0;
  double sum_wx = 0;
  double sum_wx2 = 0;
  double sum_wy = 0;
  double sum_wy2 = 0;
  double sum_wxy = 0;
};

/// Most bins an axis may have; a histogram holds at most kMaxCells cells,
/// under- and overflow included.
inline constexpr std::uint32_t kMaxAxisBins = 1u << 20;
inline constexpr std::size_t kMaxCells = std::size_t{1} << 22;

/// A one-dimensional histogram with fixed binning.
///
/// Bin 0 is the underflow, bins 1..bins() the axis, bins() + 1 the overflow:
/// ROOT's cell order. x < min goes to the underflow, x >= max and NaN to the
/// overflow. As in ROOT, every fill counts in entries() and in the bin
/// contents, and only fills inside the axis count in the sums behind mean()
/// and rms(). Nothing is allocated after construction.
///
/// Thread safety: none; one thread fills an instance, and readers wait until
/// it hands the instance on (e.g. at spill end).
class Histogram1D {
 public:
  /// Throws std::invalid_argument naming the histogram when the name is
  /// empty, the axis has 0 or more than kMaxAxisBins bins, or its limits are
  /// not finite with min < max.
  Histogram1D(std::string name, std::string title, Axis x, std::string y_title = {});

  /// Adds weight `w` at `x`. Branch-light; no allocation.
  void fill(double x, double w = 1.0) noexcept;
  /// Sets bin `bin` (0 to bins() + 1) to `content` with error `error`; the
  /// sums behind mean() and rms() are kept as if the content had been filled
  /// at the bin centre. For histograms derived from other sums. Throws
  /// std::out_of_range naming the histogram for a bin out of range.
  void set_bin(std::size_t bin, double content, double error);
  /// Sets the entry count, e.g. of a derived histogram to the events behind it.
  void set_entries(double entries) noexcept { entries_ = entries; }

  /// Adds another histogram bin by bin, with its entries and sums. Throws
  /// std::invalid_argument naming both histograms and their axes unless the
  /// binnings are the same; nothing is changed then.
  void add(const Histogram1D& other);
  /// Empties every bin, the entries and the sums.
  void reset() noexcept;
  /// Replaces every cell (sums of weights and of squared weights, in ROOT's
  /// cell order) and the sums (the y sums are ignored). Throws
  /// std::invalid_argument naming the histogram, changing nothing, unless
  /// both spans hold cells() values.
  void restore(std::span<const double> contents, std::span<const double> sumw2, const HistogramSums& sums);
  /// The sums, as restore() takes them.
  [[nodiscard]] HistogramSums sums() const noexcept;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& title() const noexcept { return title_; }
  [[nodiscard]] const Axis& x_axis() const noexcept { return x_; }
  [[nodiscard]] const std::string& y_title() const noexcept { return y_title_; }
  [[nodiscard]] std::uint32_t bins() const noexcept { return x_.bins; }
  /// bins() + 2.
  [[nodiscard]] std::size_t cells() const noexcept { return sumw_.size(); }

  /// The bin of x: 0 underflow, bins() + 1 overflow (also NaN).
  [[nodiscard]] std::size_t find_bin(double x) const noexcept;
  /// Centre of axis bin `bin` (1 to bins()).
  [[nodiscard]] double bin_centre(std::size_t bin) const noexcept;
  /// Sum of weights in `bin` (0 to bins() + 1); 0 for a bin out of range.
  [[nodiscard]] double content(std::size_t bin) const noexcept { return bin < sumw_.size() ? sumw_[bin] : 0.0; }
  /// sqrt(sum of squared weights) in `bin`; 0 for a bin out of range.
  [[nodiscard]] double error(std::size_t bin) const noexcept;
  /// Sums of weights and squared weights per cell, in ROOT's cell order.
  [[nodiscard]] std::span<const double> contents() const noexcept { return sumw_; }
  [[nodiscard]] std::span<const double> sumw2() const noexcept { return sumw2_; }

  /// Fills counted, including under- and overflow.
  [[nodiscard]] double entries() const noexcept { return entries_; }
  /// Sums over the fills inside the axis: w, w^2, w x, w x^2.
  [[nodiscard]] double sum_w() const noexcept { return tsumw_; }
  [[nodiscard]] double sum_w2() const noexcept { return tsumw2_; }
  [[nodiscard]] double sum_wx() const noexcept { return tsumwx_; }
  [[nodiscard]] double sum_wx2() const noexcept { return tsumwx2_; }
  /// Weighted mean of x over the fills inside the axis; 0 when there are none.
  [[nodiscard]] double mean() const noexcept;
  /// Weighted standard deviation of x over the fills inside the axis (ROOT's RMS).
  [[nodiscard]] double rms() const noexcept;

  /// True when `other` has the same number of bins and the same limits.
  [[nodiscard]] bool same_binning(const Histogram1D& other) const noexcept;

 private:
  std::string name_;
  std::string title_;
  Axis x_;
  std::string y_title_;
  double scale_ = 1;  ///< bins per unit of x
  std::vector<double> sumw_;
  std::vector<double> sumw2_;
  double entries_ = 0;
  double tsumw_ = 0;
  double tsumw2_ = 0;
  double tsumwx_ = 0;
  double tsumwx2_ = 0;
};

/// A two-dimensional histogram with fixed binning.
///
/// Cell (ix, iy), each from 0 (underflow) to bins + 1 (overflow), is at
/// ix + (x bins + 2) * iy: ROOT's cell order. The rules of Histogram1D apply
/// per axis; a fill counts in the sums behind the means only when both
/// coordinates are inside their axes. Nothing is allocated after construction.
///
/// Thread safety: as Histogram1D.
class Histogram2D {
 public:
  /// Throws std::invalid_argument naming the histogram and the axis for the
  /// cases of Histogram1D, or when the cells would exceed kMaxCells.
  Histogram2D(std::string name, std::string title, Axis x, Axis y, std::string z_title = {});

  /// Adds weight `w` at (x, y). Branch-light; no allocation.
  void fill(double x, double y, double w = 1.0) noexcept;
  /// Sets cell (bin x, bin y), each from 0 to bins + 1, to `content` with
  /// error `error`, as Histogram1D::set_bin(). Throws std::out_of_range
  /// naming the histogram for a bin out of range.
  void set_bin(std::size_t bin_x, std::size_t bin_y, double content, double error);
  void set_entries(double entries) noexcept { entries_ = entries; }

  /// As Histogram1D::add(), comparing both axes.
  void add(const Histogram2D& other);
  void reset() noexcept;
  /// As Histogram1D::restore(), with the y sums.
  void restore(std::span<const double> contents, std::span<const double> sumw2, const HistogramSums& sums);
  [[nodiscard]] HistogramSums sums() const noexcept;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& title() const noexcept { return title_; }
  [[nodiscard]] const Axis& x_axis() const noexcept { return x_; }
  [[nodiscard]] const Axis& y_axis() const noexcept { return y_; }
  [[nodiscard]] const std::string& z_title() const noexcept { return z_title_; }
  /// (x bins + 2) * (y bins + 2).
  [[nodiscard]] std::size_t cells() const noexcept { return sumw_.size(); }

  /// Cell index of (bin x, bin y); precondition: each within 0 to bins + 1.
  [[nodiscard]] std::size_t cell(std::size_t bin_x, std::size_t bin_y) const noexcept {
    return bin_x + (std::size_t{x_.bins} + 2) * bin_y;
  }
  /// The cell of (x, y).
  [[nodiscard]] std::size_t find_cell(double x, double y) const noexcept;
  /// Sum of weights in (bin x, bin y); 0 out of range.
  [[nodiscard]] double content(std::size_t bin_x, std::size_t bin_y) const noexcept;
  /// sqrt(sum of squared weights) in (bin x, bin y); 0 out of range.
  [[nodiscard]] double error(std::size_t bin_x, std::size_t bin_y) const noexcept;
  [[nodiscard]] std::span<const double> contents() const noexcept { return sumw_; }
  [[nodiscard]] std::span<const double> sumw2() const noexcept { return sumw2_; }

  [[nodiscard]] double entries() const noexcept { return entries_; }
  [[nodiscard]] double sum_w() const noexcept { return tsumw_; }
  [[nodiscard]] double sum_w2() const noexcept { return tsumw2_; }
  [[nodiscard]] double sum_wx() const noexcept { return tsumwx_; }
  [[nodiscard]] double sum_wx2() const noexcept { return tsumwx2_; }
  [[nodiscard]] double sum_wy() const noexcept { return tsumwy_; }
  [[nodiscard]] double sum_wy2() const noexcept { return tsumwy2_; }
  [[nodiscard]] double sum_wxy() const noexcept { return tsumwxy_; }
  [[nodiscard]] double mean_x() const noexcept;
  [[nodiscard]] double mean_y() const noexcept;
  [[nodiscard]] double rms_x() const noexcept;
  [[nodiscard]] double rms_y() const noexcept;

  [[nodiscard]] bool same_binning(const Histogram2D& other) const noexcept;

 private:
  std::string name_;
  std::string title_;
  Axis x_;
  Axis y_;
  std::string z_title_;
  double scale_x_ = 1;
  double scale_y_ = 1;
  std::vector<double> sumw_;
  std::vector<double> sumw2_;
  double entries_ = 0;
  double tsumw_ = 0;
  double tsumw2_ = 0;
  double tsumwx_ = 0;
  double tsumwx2_ = 0;
  double tsumwy_ = 0;
  double tsumwy2_ = 0;
  double tsumwxy_ = 0;
};

}  // namespace na64::monitoring
