// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/histogram.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace na64::monitoring {

namespace {

std::string describe(const Axis& a) { return fmt::format("{} bins in [{}, {})", a.bins, a.min, a.max); }

void check_axis(const std::string& histogram, const char* which, const Axis& a) {
  if (a.bins == 0 || a.bins > kMaxAxisBins) {
    throw std::invalid_argument(fmt::format("histogram '{}': {} axis has {} bins; it needs 1 to {}", histogram, which,
                                            a.bins, kMaxAxisBins));
  }
  if (!std::isfinite(a.min) || !std::isfinite(a.max) || !(a.min < a.max)) {
    throw std::invalid_argument(
        fmt::format("histogram '{}': {} axis limits [{}, {}) must be finite with min < max", histogram, which, a.min,
                    a.max));
  }
}

void check_name(const std::string& name) {
  if (name.empty()) throw std::invalid_argument("histogram with an empty name");
}

bool same_axis(const Axis& a, const Axis& b) noexcept { return a.bins == b.bins && a.min == b.min && a.max == b.max; }

/// Bin of v on `a`: 0 below, bins + 1 at or above max and for NaN. Selects
/// rather than branches, so that the fill path has no data-dependent jumps.
std::size_t bin_of(double v, const Axis& a, double scale) noexcept {
  const bool inside = (v >= a.min) & (v < a.max);  // false for NaN
  // The product can round up to `bins` just below max; the clamp keeps it
  // in the last bin. Converting is only defined in range, hence the select.
  const double t = inside ? (v - a.min) * scale : 0.0;
  const std::size_t in_bin = std::min(static_cast<std::size_t>(t), std::size_t{a.bins} - 1) + 1;
  const std::size_t out_bin = v < a.min ? 0 : std::size_t{a.bins} + 1;
  return inside ? in_bin : out_bin;
}

double centre_of(const Axis& a, std::size_t bin) noexcept {
  return a.min + (static_cast<double>(bin) - 0.5) * (a.max - a.min) / a.bins;
}

double mean_of(double sum_w, double sum_wx) noexcept { return sum_w == 0 ? 0.0 : sum_wx / sum_w; }

double rms_of(double sum_w, double sum_wx, double sum_wx2) noexcept {
  if (sum_w == 0) return 0.0;
  const double m = sum_wx / sum_w;
  return std::sqrt(std::max(0.0, sum_wx2 / sum_w - m * m));
}

}  // namespace

// ---------------------------------------------------------------------------

Histogram1D::Histogram1D(std::string name, std::string title, Axis x, std::string y_title)
    : name_(std::move(name)), title_(std::move(title)), x_(std::move(x)), y_title_(std::move(y_title)) {
  check_name(name_);
  check_axis(name_, "x", x_);
  scale_ = x_.bins / (x_.max - x_.min);
  sumw_.assign(std::size_t{x_.bins} + 2, 0.0);
  sumw2_.assign(std::size_t{x_.bins} + 2, 0.0);
}

std::size_t Histogram1D::find_bin(double x) const noexcept { return bin_of(x, x_, scale_); }

double Histogram1D::bin_centre(std::size_t bin) const noexcept { return centre_of(x_, bin); }

void Histogram1D::fill(double x, double w) noexcept {
  const std::size_t b = find_bin(x);
  sumw_[b] += w;
  sumw2_[b] += w * w;
  entries_ += 1;
  const bool inside = b - 1 < x_.bins;  // b in [1, bins]; wraps for b = 0
  const double wi = inside ? w : 0.0;
  const double xi = inside ? x : 0.0;  // an infinite x must not meet a zero weight
  tsumw_ += wi;
  tsumw2_ += wi * wi;
  tsumwx_ += wi * xi;
  tsumwx2_ += wi * xi * xi;
}

void Histogram1D::set_bin(std::size_t bin, double content, double error) {
  if (bin >= sumw_.size()) {
    throw std::out_of_range(
        fmt::format("histogram '{}': bin {} is out of range [0, {}]", name_, bin, sumw_.size() - 1));
  }
  if (bin >= 1 && bin <= x_.bins) {
    const double c = bin_centre(bin);
    tsumw_ += content - sumw_[bin];
    tsumw2_ += error * error - sumw2_[bin];
    tsumwx_ += (content - sumw_[bin]) * c;
    tsumwx2_ += (content - sumw_[bin]) * c * c;
  }
  sumw_[bin] = content;
  sumw2_[bin] = error * error;
}

double Histogram1D::error(std::size_t bin) const noexcept {
  return bin < sumw2_.size() ? std::sqrt(sumw2_[bin]) : 0.0;
}

bool Histogram1D::same_binning(const Histogram1D& other) const noexcept { return same_axis(x_, other.x_); }

void Histogram1D::add(const Histogram1D& other) {
  if (!same_binning(other)) {
    throw std::invalid_argument(fmt::format("cannot add histogram '{}' (x: {}) to '{}' (x: {}): binnings differ",
                                            other.name_, describe(other.x_), name_, describe(x_)));
  }
  for (std::size_t i = 0; i < sumw_.size(); ++i) {
    sumw_[i] += other.sumw_[i];
    sumw2_[i] += other.sumw2_[i];
  }
  entries_ += other.entries_;
  tsumw_ += other.tsumw_;
  tsumw2_ += other.tsumw2_;
  tsumwx_ += other.tsumwx_;
  tsumwx2_ += other.tsumwx2_;
}

void Histogram1D::reset() noexcept {
  std::fill(sumw_.begin(), sumw_.end(), 0.0);
  std::fill(sumw2_.begin(), sumw2_.end(), 0.0);
  entries_ = tsumw_ = tsumw2_ = tsumwx_ = tsumwx2_ = 0;
}

void Histogram1D::restore(std::span<const double> contents, std::span<const double> sumw2, const HistogramSums& s) {
  if (contents.size() != sumw_.size() || sumw2.size() != sumw2_.size()) {
    throw std::invalid_argument(fmt::format("histogram '{}': cannot restore {} and {} cells into {} cells", name_,
                                            contents.size(), sumw2.size(), sumw_.size()));
  }
  std::copy(contents.begin(), contents.end(), sumw_.begin());
  std::copy(sumw2.begin(), sumw2.end(), sumw2_.begin());
  entries_ = s.entries;
  tsumw_ = s.sum_w;
  tsumw2_ = s.sum_w2;
  tsumwx_ = s.sum_wx;
  tsumwx2_ = s.sum_wx2;
}

HistogramSums Histogram1D::sums() const noexcept {
  HistogramSums s;
  s.entries = entries_;
  s.sum_w = tsumw_;
  s.sum_w2 = tsumw2_;
  s.sum_wx = tsumwx_;
  s.sum_wx2 = tsumwx2_;
  return s;
}

double Histogram1D::mean() const noexcept { return mean_of(tsumw_, tsumwx_); }

double Histogram1D::rms() const noexcept { return rms_of(tsumw_, tsumwx_, tsumwx2_); }

// ---------------------------------------------------------------------------

Histogram2D::Histogram2D(std::string name, std::string title, Axis x, Axis y, std::string z_title)
    : name_(std::move(name)),
      title_(std::move(title)),
      x_(std::move(x)),
      y_(std::move(y)),
      z_title_(std::move(z_title)) {
  check_name(name_);
  check_axis(name_, "x", x_);
  check_axis(name_, "y", y_);
  const std::size_t cells = (std::size_t{x_.bins} + 2) * (std::size_t{y_.bins} + 2);
  if (cells > kMaxCells) {
    throw std::invalid_argument(fmt::format("histogram '{}': {} x {} bins make {} cells, more than {}", name_, x_.bins,
                                            y_.bins, cells, kMaxCells));
  }
  scale_x_ = x_.bins / (x_.max - x_.min);
  scale_y_ = y_.bins / (y_.max - y_.min);
  sumw_.assign(cells, 0.0);
  sumw2_.assign(cells, 0.0);
}

std::size_t Histogram2D::find_cell(double x, double y) const noexcept {
  return cell(bin_of(x, x_, scale_x_), bin_of(y, y_, scale_y_));
}

void Histogram2D::fill(double x, double y, double w) noexcept {
  const std::size_t bx = bin_of(x, x_, scale_x_);
  const std::size_t by = bin_of(y, y_, scale_y_);
  const std::size_t c = cell(bx, by);
  sumw_[c] += w;
  sumw2_[c] += w * w;
  entries_ += 1;
  const bool inside = (bx - 1 < x_.bins) & (by - 1 < y_.bins);
  const double wi = inside ? w : 0.0;
  const double xi = inside ? x : 0.0;
  const double yi = inside ? y : 0.0;
  tsumw_ += wi;
  tsumw2_ += wi * wi;
  tsumwx_ += wi * xi;
  tsumwx2_ += wi * xi * xi;
  tsumwy_ += wi * yi;
  tsumwy2_ += wi * yi * yi;
  tsumwxy_ += wi * xi * yi;
}

void Histogram2D::set_bin(std::size_t bin_x, std::size_t bin_y, double content, double error) {
  if (bin_x > std::size_t{x_.bins} + 1 || bin_y > std::size_t{y_.bins} + 1) {
    throw std::out_of_range(fmt::format("histogram '{}': bin ({}, {}) is out of range [0, {}] x [0, {}]", name_, bin_x,
                                        bin_y, x_.bins + 1, y_.bins + 1));
  }
  const std::size_t c = cell(bin_x, bin_y);
  if (bin_x - 1 < x_.bins && bin_y - 1 < y_.bins) {
    const double cx = centre_of(x_, bin_x);
    const double cy = centre_of(y_, bin_y);
    const double dw = content - sumw_[c];
    tsumw_ += dw;
    tsumw2_ += error * error - sumw2_[c];
    tsumwx_ += dw * cx;
    tsumwx2_ += dw * cx * cx;
    tsumwy_ += dw * cy;
    tsumwy2_ += dw * cy * cy;
    tsumwxy_ += dw * cx * cy;
  }
  sumw_[c] = content;
  sumw2_[c] = error * error;
}

double Histogram2D::content(std::size_t bin_x, std::size_t bin_y) const noexcept {
  if (bin_x > std::size_t{x_.bins} + 1 || bin_y > std::size_t{y_.bins} + 1) return 0.0;
  return sumw_[cell(bin_x, bin_y)];
}

double Histogram2D::error(std::size_t bin_x, std::size_t bin_y) const noexcept {
  if (bin_x > std::size_t{x_.bins} + 1 || bin_y > std::size_t{y_.bins} + 1) return 0.0;
  return std::sqrt(sumw2_[cell(bin_x, bin_y)]);
}

bool Histogram2D::same_binning(const Histogram2D& other) const noexcept {
  return same_axis(x_, other.x_) && same_axis(y_, other.y_);
}

void Histogram2D::add(const Histogram2D& other) {
  if (!same_binning(other)) {
    throw std::invalid_argument(
        fmt::format("cannot add histogram '{}' (x: {}; y: {}) to '{}' (x: {}; y: {}): binnings differ", other.name_,
                    describe(other.x_), describe(other.y_), name_, describe(x_), describe(y_)));
  }
  for (std::size_t i = 0; i < sumw_.size(); ++i) {
    sumw_[i] += other.sumw_[i];
    sumw2_[i] += other.sumw2_[i];
  }
  entries_ += other.entries_;
  tsumw_ += other.tsumw_;
  tsumw2_ += other.tsumw2_;
  tsumwx_ += other.tsumwx_;
  tsumwx2_ += other.tsumwx2_;
  tsumwy_ += other.tsumwy_;
  tsumwy2_ += other.tsumwy2_;
  tsumwxy_ += other.tsumwxy_;
}

void Histogram2D::reset() noexcept {
  std::fill(sumw_.begin(), sumw_.end(), 0.0);
  std::fill(sumw2_.begin(), sumw2_.end(), 0.0);
  entries_ = tsumw_ = tsumw2_ = tsumwx_ = tsumwx2_ = tsumwy_ = tsumwy2_ = tsumwxy_ = 0;
}

void Histogram2D::restore(std::span<const double> contents, std::span<const double> sumw2, const HistogramSums& s) {
  if (contents.size() != sumw_.size() || sumw2.size() != sumw2_.size()) {
    throw std::invalid_argument(fmt::format("histogram '{}': cannot restore {} and {} cells into {} cells", name_,
                                            contents.size(), sumw2.size(), sumw_.size()));
  }
  std::copy(contents.begin(), contents.end(), sumw_.begin());
  std::copy(sumw2.begin(), sumw2.end(), sumw2_.begin());
  entries_ = s.entries;
  tsumw_ = s.sum_w;
  tsumw2_ = s.sum_w2;
  tsumwx_ = s.sum_wx;
  tsumwx2_ = s.sum_wx2;
  tsumwy_ = s.sum_wy;
  tsumwy2_ = s.sum_wy2;
  tsumwxy_ = s.sum_wxy;
}

HistogramSums Histogram2D::sums() const noexcept {
  HistogramSums s;
  s.entries = entries_;
  s.sum_w = tsumw_;
  s.sum_w2 = tsumw2_;
  s.sum_wx = tsumwx_;
  s.sum_wx2 = tsumwx2_;
  s.sum_wy = tsumwy_;
  s.sum_wy2 = tsumwy2_;
  s.sum_wxy = tsumwxy_;
  return s;
}

double Histogram2D::mean_x() const noexcept { return mean_of(tsumw_, tsumwx_); }
double Histogram2D::mean_y() const noexcept { return mean_of(tsumw_, tsumwy_); }
double Histogram2D::rms_x() const noexcept { return rms_of(tsumw_, tsumwx_, tsumwx2_); }
double Histogram2D::rms_y() const noexcept { return rms_of(tsumw_, tsumwy_, tsumwy2_); }

}  // namespace na64::monitoring
