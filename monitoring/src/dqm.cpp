// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/dqm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace na64::monitoring {

namespace fw = na64::firmware;

namespace {

constexpr std::array<fw::Detector, kEcalSections> kEcal{fw::Detector::Ecal0, fw::Detector::Ecal1};
constexpr std::array<fw::Detector, kHcalModules> kHcal{fw::Detector::Hcal0, fw::Detector::Hcal1, fw::Detector::Hcal2,
                                                       fw::Detector::Hcal3};

void check_positive(const char* field, double v) {
  if (!std::isfinite(v) || !(v > 0)) {
    throw std::invalid_argument(fmt::format("DqmConfig.{}: {} is not a positive finite number", field, v));
  }
}

void check_not_negative(const char* field, double v) {
  if (!std::isfinite(v) || v < 0) {
    throw std::invalid_argument(fmt::format("DqmConfig.{}: {} is not a finite number >= 0", field, v));
  }
}

const DqmConfig& checked(const DqmConfig& c) {
  check_positive("beam_energy_gev", c.beam_energy_gev);
  check_not_negative("ecal_occupancy_gev", c.ecal_occupancy_gev);
  check_not_negative("hcal_occupancy_gev", c.hcal_occupancy_gev);
  check_not_negative("srd_min_gev", c.srd_min_gev);
  check_not_negative("srd_max_gev", c.srd_max_gev);
  if (!(c.srd_min_gev <= c.srd_max_gev)) {
    throw std::invalid_argument(
        fmt::format("DqmConfig.srd_min_gev: {} is above srd_max_gev {}", c.srd_min_gev, c.srd_max_gev));
  }
  check_positive("srd_axis_max_mev", c.srd_axis_max_mev);
  check_positive("veto_axis_max_adc", c.veto_axis_max_adc);
  if (c.sample_period == 0) throw std::invalid_argument("DqmConfig.sample_period: 0; it must be at least 1");
  return c;
}

/// Bins of 1 % of the beam energy up to 1.2 x the beam energy.
Axis energy_axis(const DqmConfig& c, const char* title) { return Axis{120, 0.0, 1.2 * c.beam_energy_gev, title}; }

/// Bins of whole units up to `max` (at least one bin).
std::uint32_t unit_bins(double max, double per_bin) {
  const double n = std::ceil(max / per_bin);
  return n < 1 ? 1u : n > kMaxAxisBins ? kMaxAxisBins : static_cast<std::uint32_t>(n);
}

Histogram2D cell_map(const char* kind, fw::Detector d, const char* z_title) {
  const auto& g = fw::geometry(d);
  std::string lower(g.name);
  for (char& ch : lower) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  const char* what = std::string_view(kind) == "energy_map" ? "energy per cell" : "hits per cell";
  return Histogram2D(fmt::format("{}_{}", lower, kind), fmt::format("{}: {}", g.name, what),
                     Axis{g.nx, 0.0, static_cast<double>(g.nx), "x (cell)"},
                     Axis{g.ny, 0.0, static_cast<double>(g.ny), "y (cell)"}, z_title);
}

Histogram1D hcal_module(const DqmConfig& c, std::size_t m) {
  return Histogram1D(fmt::format("hcal{}_energy", m), fmt::format("HCAL{}: module energy", m),
                     energy_axis(c, "E (GeV)"), "events");
}

Histogram1D srd_module(const DqmConfig& c, std::size_t m) {
  return Histogram1D(fmt::format("srd{}_energy", m), fmt::format("SRD module {}: energy", m),
                     Axis{unit_bins(c.srd_axis_max_mev, 1.0), 0.0, c.srd_axis_max_mev, "E (MeV)"}, "events");
}

Histogram1D veto_counter(const DqmConfig& c, std::size_t k) {
  return Histogram1D(fmt::format("veto{}_amplitude", k), fmt::format("VETO counter {}: amplitude, mean of 2 PMTs", k),
                     Axis{unit_bins(c.veto_axis_max_adc, 2.0), 0.0, c.veto_axis_max_adc, "amplitude (ADC counts)"},
                     "events");
}

Axis cell_axis() {
  return Axis{static_cast<std::uint32_t>(fw::kNumCells), 0.0, static_cast<double>(fw::kNumCells), "cell index"};
}

}  // namespace

// ---------------------------------------------------------------------------

void DqmCounters::add(const DqmCounters& o) noexcept {
  events += o.events;
  filled += o.filled;
  for (std::size_t i = 0; i < accepted.size(); ++i) accepted[i] += o.accepted[i];
  for (std::size_t i = 0; i < incomplete.size(); ++i) incomplete[i] += o.incomplete[i];
  srd_tagged += o.srd_tagged;
  bytes_written += o.bytes_written;
  seconds += o.seconds;
  dead_seconds += o.dead_seconds;
  spills += o.spills;
}

void CellSums::add(const CellSums& o) noexcept {
  for (std::size_t c = 0; c < fw::kNumCells; ++c) {
    signal[c] += o.signal[c];
    energy[c] += o.energy[c];
    energy2[c] += o.energy2[c];
    hits[c] += o.hits[c];
    read[c] += o.read[c];
    pedestal[c] += o.pedestal[c];
    pedestal2[c] += o.pedestal2[c];
    peak_time[c] += o.peak_time[c];
    peak_time2[c] += o.peak_time2[c];
  }
}

namespace {
double mean_of(const CellSums::PerCell& n, const CellSums::PerCell& sum, std::size_t c) noexcept {
  return c < fw::kNumCells && n[c] > 0 ? sum[c] / n[c] : 0.0;
}
double rms_of(const CellSums::PerCell& n, const CellSums::PerCell& sum, const CellSums::PerCell& sum2,
              std::size_t c) noexcept {
  if (c >= fw::kNumCells || n[c] <= 0) return 0.0;
  const double m = sum[c] / n[c];
  return std::sqrt(std::max(0.0, sum2[c] / n[c] - m * m));
}
}  // namespace

double CellSums::pedestal_mean(std::size_t c) const noexcept { return mean_of(read, pedestal, c); }
double CellSums::pedestal_rms(std::size_t c) const noexcept { return rms_of(read, pedestal, pedestal2, c); }
double CellSums::peak_time_mean(std::size_t c) const noexcept { return mean_of(signal, peak_time, c); }
double CellSums::peak_time_rms(std::size_t c) const noexcept { return rms_of(signal, peak_time, peak_time2, c); }

// ---------------------------------------------------------------------------

DqmHistograms::DqmHistograms(const fw::ChannelMap& map, DqmConfig config)
    : config_(checked(config)),
      ecal_vs_hcal_("ecal_vs_hcal", "ECAL vs HCAL energy", energy_axis(config_, "E_{ECAL} (GeV)"),
                    energy_axis(config_, "E_{HCAL} (GeV)"), "events"),
      ecal_energy_("ecal_energy", "ECAL energy (ECAL0 + ECAL1)", energy_axis(config_, "E (GeV)"), "events"),
      hcal_energy_("hcal_energy", "HCAL energy (HCAL0-3)", energy_axis(config_, "E (GeV)"), "events"),
      preshower_energy_("preshower_energy", "Preshower (ECAL0) energy",
                        Axis{120, 0.0, 0.3 * config_.beam_energy_gev, "E (GeV)"}, "events"),
      hcal_module_{hcal_module(config_, 0), hcal_module(config_, 1), hcal_module(config_, 2), hcal_module(config_, 3)},
      srd_{srd_module(config_, 0), srd_module(config_, 1), srd_module(config_, 2)},
      veto_{veto_counter(config_, 0), veto_counter(config_, 1), veto_counter(config_, 2)},
      trigger_lines_("trigger_lines", "Trigger lines fired (0 invisible, 1 beam, 2 random)",
                     Axis{static_cast<std::uint32_t>(trigger::kNumLines), 0.0, static_cast<double>(trigger::kNumLines),
                          "line"},
                     "events") {
  for (std::uint16_t c = 0; c < fw::kNumCells; ++c) {
    const bool m = map.cell_mapped(c);
    mapped_[c] = m ? 1 : 0;
    mapped_weight_[c] = m ? 1.0 : 0.0;
    float threshold = 0.0f;
    switch (fw::cell_at(c).detector) {
      case fw::Detector::Ecal0:
      case fw::Detector::Ecal1: threshold = config_.ecal_occupancy_gev; break;
      case fw::Detector::Hcal0:
      case fw::Detector::Hcal1:
      case fw::Detector::Hcal2:
      case fw::Detector::Hcal3: threshold = config_.hcal_occupancy_gev; break;
      default: break;
    }
    occupancy_threshold_[c] = m ? threshold : std::numeric_limits<float>::infinity();
  }
}

void DqmHistograms::accumulate_cells(const float* __restrict energy, const float* __restrict pedestal,
                                     const float* __restrict peak_time, const float* __restrict threshold,
                                     const double* __restrict mapped, CellSums* __restrict cells) noexcept {
  // The arrays cannot overlap (restrict), and the flags are 0/1 products
  // rather than selects, which are control flow to the vectoriser: so the
  // compiler vectorises this loop, also at -O2.
  for (std::size_t c = 0; c < fw::kNumCells; ++c) {
    const double e = energy[c];
    const double sig = static_cast<double>(energy[c] > 0);
    cells->signal[c] += sig;
    cells->energy[c] += e;
    cells->energy2[c] += e * e;
    cells->hits[c] += static_cast<double>(energy[c] > threshold[c]);
    const double ped = pedestal[c];
    const double read = static_cast<double>(pedestal[c] > 0) * mapped[c];
    cells->read[c] += read;
    cells->pedestal[c] += read * ped;
    cells->pedestal2[c] += read * ped * ped;
    const double t = sig * peak_time[c];
    cells->peak_time[c] += t;
    cells->peak_time2[c] += t * t;
  }
}

bool DqmHistograms::offer(const trigger::EventFeatures& f, std::uint32_t trigger_mask) noexcept {
  ++counters_.events;
  for (std::size_t l = 0; l < trigger::kNumLines; ++l) counters_.accepted[l] += (trigger_mask >> l) & 1u;
  if (++since_fill_ < config_.sample_period) return false;
  since_fill_ = 0;
  fill(f, trigger_mask);
  return true;
}

void DqmHistograms::fill(const trigger::EventFeatures& f, std::uint32_t trigger_mask) noexcept {
  ++counters_.filled;
  ecal_vs_hcal_.fill(f.ecal_gev, f.hcal_gev);
  ecal_energy_.fill(f.ecal_gev);
  hcal_energy_.fill(f.hcal_gev);
  preshower_energy_.fill(f.preshower_gev);
  accumulate_cells(f.energy_gev.data(), f.pedestal_adc.data(), f.peak_time_ns.data(), occupancy_threshold_.data(),
                   mapped_weight_.data(), &cells_);
  for (std::size_t m = 0; m < kHcalModules; ++m) {
    const auto& g = fw::geometry(kHcal[m]);
    float sum = 0;
    for (std::size_t k = 0; k < std::size_t{g.nx} * g.ny; ++k) sum += f.energy_gev[g.first_cell + k];
    hcal_module_[m].fill(sum);
  }
  std::uint32_t tagged = 1;
  for (std::size_t m = 0; m < kSrdModules; ++m) {
    const float e = f.srd_gev[m];
    srd_[m].fill(1000.0 * e);
    tagged &= static_cast<std::uint32_t>(e >= config_.srd_min_gev) & static_cast<std::uint32_t>(e <= config_.srd_max_gev);
  }
  counters_.srd_tagged += tagged;
  for (std::size_t k = 0; k < kVetoCounters; ++k) {
    const auto c0 = fw::cell_index(fw::Detector::Veto, static_cast<std::uint32_t>(k), 0);
    const auto c1 = fw::cell_index(fw::Detector::Veto, static_cast<std::uint32_t>(k), 1);
    veto_[k].fill(0.5 * (static_cast<double>(f.amplitude_adc[c0]) + f.amplitude_adc[c1]));
  }
  for (std::size_t l = 0; l < trigger::kNumLines; ++l) {
    if ((trigger_mask >> l) & 1u) trigger_lines_.fill(static_cast<double>(l));
  }
}

void DqmHistograms::count_incomplete(eventbuilder::IncompleteReason reason) noexcept {
  const auto i = static_cast<std::size_t>(reason);
  if (i < counters_.incomplete.size()) ++counters_.incomplete[i];
}

bool DqmHistograms::compatible(const DqmHistograms& o) const noexcept {
  bool same = ecal_vs_hcal_.same_binning(o.ecal_vs_hcal_) && ecal_energy_.same_binning(o.ecal_energy_) &&
              hcal_energy_.same_binning(o.hcal_energy_) && preshower_energy_.same_binning(o.preshower_energy_) &&
              trigger_lines_.same_binning(o.trigger_lines_) && mapped_ == o.mapped_ &&
              occupancy_threshold_ == o.occupancy_threshold_;
  for (std::size_t m = 0; m < kHcalModules; ++m) same = same && hcal_module_[m].same_binning(o.hcal_module_[m]);
  for (std::size_t m = 0; m < kSrdModules; ++m) same = same && srd_[m].same_binning(o.srd_[m]);
  for (std::size_t k = 0; k < kVetoCounters; ++k) same = same && veto_[k].same_binning(o.veto_[k]);
  return same;
}

void DqmHistograms::merge_into(DqmHistograms& t) const {
  if (!compatible(t)) {
    throw std::invalid_argument(fmt::format(
        "cannot merge DQM histograms (beam energy {} GeV, SRD axis {} MeV, veto axis {} ADC, {} cells mapped) into a "
        "set of another binning, occupancy threshold or map (beam energy {} GeV, SRD axis {} MeV, veto axis {} ADC, "
        "{} cells mapped)",
        config_.beam_energy_gev, config_.srd_axis_max_mev, config_.veto_axis_max_adc,
        std::count(mapped_.begin(), mapped_.end(), 1), t.config_.beam_energy_gev, t.config_.srd_axis_max_mev,
        t.config_.veto_axis_max_adc, std::count(t.mapped_.begin(), t.mapped_.end(), 1)));
  }
  t.ecal_vs_hcal_.add(ecal_vs_hcal_);
  t.ecal_energy_.add(ecal_energy_);
  t.hcal_energy_.add(hcal_energy_);
  t.preshower_energy_.add(preshower_energy_);
  for (std::size_t m = 0; m < kHcalModules; ++m) t.hcal_module_[m].add(hcal_module_[m]);
  for (std::size_t m = 0; m < kSrdModules; ++m) t.srd_[m].add(srd_[m]);
  for (std::size_t k = 0; k < kVetoCounters; ++k) t.veto_[k].add(veto_[k]);
  t.trigger_lines_.add(trigger_lines_);
  t.cells_.add(cells_);
  t.counters_.add(counters_);
}

void DqmHistograms::reset() noexcept {
  ecal_vs_hcal_.reset();
  ecal_energy_.reset();
  hcal_energy_.reset();
  preshower_energy_.reset();
  for (auto& h : hcal_module_) h.reset();
  for (auto& h : srd_) h.reset();
  for (auto& h : veto_) h.reset();
  trigger_lines_.reset();
  cells_ = CellSums{};
  counters_ = DqmCounters{};
  since_fill_ = 0;
}

Histogram1D DqmHistograms::cell_occupancy() const {
  Histogram1D h("cell_occupancy", "Hits per cell", cell_axis(), "hits");
  double n = 0;
  for (std::size_t c = 0; c < fw::kNumCells; ++c) {
    if (cells_.hits[c] <= 0) continue;
    h.set_bin(c + 1, cells_.hits[c], std::sqrt(cells_.hits[c]));
    n += cells_.hits[c];
  }
  h.set_entries(n);
  return h;
}

Histogram1D DqmHistograms::pedestal() const {
  Histogram1D h("pedestal", "Pedestal per cell (mean of the first samples)", cell_axis(), "pedestal (ADC counts)");
  for (std::size_t c = 0; c < fw::kNumCells; ++c) {
    const double n = cells_.read[c];
    if (n <= 0) continue;
    h.set_bin(c + 1, cells_.pedestal_mean(c), cells_.pedestal_rms(c) / std::sqrt(n));
  }
  h.set_entries(static_cast<double>(counters_.filled));
  return h;
}

Histogram1D DqmHistograms::noise() const {
  Histogram1D h("noise", "Pedestal RMS per cell", cell_axis(), "pedestal RMS (ADC counts)");
  for (std::size_t c = 0; c < fw::kNumCells; ++c) {
    const double n = cells_.read[c];
    if (n <= 0) continue;
    // Error of an RMS from n values of a Gaussian: rms / sqrt(2 (n - 1)).
    const double rms = cells_.pedestal_rms(c);
    h.set_bin(c + 1, rms, n > 1 ? rms / std::sqrt(2.0 * (n - 1)) : rms);
  }
  h.set_entries(static_cast<double>(counters_.filled));
  return h;
}

Histogram1D DqmHistograms::pulse_time() const {
  Histogram1D h("pulse_time", "Pulse peak time per cell (cells with energy)", cell_axis(), "peak time (ns)");
  for (std::size_t c = 0; c < fw::kNumCells; ++c) {
    if (cells_.signal[c] <= 0) continue;
    h.set_bin(c + 1, cells_.peak_time_mean(c), cells_.peak_time_rms(c));
  }
  h.set_entries(static_cast<double>(counters_.filled));
  return h;
}

namespace {
fw::Detector ecal_section(std::size_t section) {
  if (section >= kEcalSections) {
    throw std::out_of_range(fmt::format("ECAL section {} does not exist; sections are 0 (ECAL0) and 1 (ECAL1)", section));
  }
  return kEcal[section];
}
}  // namespace

Histogram2D DqmHistograms::ecal_energy_map(std::size_t section) const {
  const fw::Detector d = ecal_section(section);
  Histogram2D h = cell_map("energy_map", d, "E (GeV)");
  const auto& g = fw::geometry(d);
  double n = 0;
  for (std::uint32_t y = 0; y < g.ny; ++y) {
    for (std::uint32_t x = 0; x < g.nx; ++x) {
      const std::size_t c = fw::cell_index(d, x, y);
      if (cells_.signal[c] <= 0) continue;
      h.set_bin(x + 1, y + 1, cells_.energy[c], std::sqrt(cells_.energy2[c]));
      n += cells_.signal[c];
    }
  }
  h.set_entries(n);
  return h;
}

Histogram2D DqmHistograms::ecal_occupancy(std::size_t section) const {
  const fw::Detector d = ecal_section(section);
  Histogram2D h = cell_map("occupancy", d, "hits");
  const auto& g = fw::geometry(d);
  double n = 0;
  for (std::uint32_t y = 0; y < g.ny; ++y) {
    for (std::uint32_t x = 0; x < g.nx; ++x) {
      const std::size_t c = fw::cell_index(d, x, y);
      if (cells_.hits[c] <= 0) continue;
      h.set_bin(x + 1, y + 1, cells_.hits[c], std::sqrt(cells_.hits[c]));
      n += cells_.hits[c];
    }
  }
  h.set_entries(n);
  return h;
}

std::span<const std::string_view> DqmHistograms::histogram_names() noexcept {
  static constexpr std::array<std::string_view, 23> kNames{
      "ecal_energy",     "hcal_energy",     "preshower_energy", "cell_occupancy",   "hcal0_energy",
      "hcal1_energy",    "hcal2_energy",    "hcal3_energy",     "srd0_energy",      "srd1_energy",
      "srd2_energy",     "veto0_amplitude", "veto1_amplitude",  "veto2_amplitude",  "trigger_lines",
      "pedestal",        "noise",           "pulse_time",       "ecal_vs_hcal",     "ecal0_energy_map",
      "ecal1_energy_map", "ecal0_occupancy", "ecal1_occupancy"};
  return kNames;
}

std::vector<Histogram1D> DqmHistograms::all_1d() const {
  std::vector<Histogram1D> v{ecal_energy_, hcal_energy_, preshower_energy_, cell_occupancy()};
  for (const auto& h : hcal_module_) v.push_back(h);
  for (const auto& h : srd_) v.push_back(h);
  for (const auto& h : veto_) v.push_back(h);
  v.push_back(trigger_lines_);
  v.push_back(pedestal());
  v.push_back(noise());
  v.push_back(pulse_time());
  return v;
}

std::vector<Histogram2D> DqmHistograms::all_2d() const {
  return {ecal_vs_hcal_, ecal_energy_map(0), ecal_energy_map(1), ecal_occupancy(0), ecal_occupancy(1)};
}

std::optional<Histogram1D> DqmHistograms::histogram_1d(std::string_view name) const {
  for (const Histogram1D* h : {&ecal_energy_, &hcal_energy_, &preshower_energy_, &trigger_lines_}) {
    if (h->name() == name) return *h;
  }
  for (const auto& h : hcal_module_) {
    if (h.name() == name) return h;
  }
  for (const auto& h : srd_) {
    if (h.name() == name) return h;
  }
  for (const auto& h : veto_) {
    if (h.name() == name) return h;
  }
  if (name == "cell_occupancy") return cell_occupancy();
  if (name == "pedestal") return pedestal();
  if (name == "noise") return noise();
  if (name == "pulse_time") return pulse_time();
  return std::nullopt;
}

std::optional<Histogram2D> DqmHistograms::histogram_2d(std::string_view name) const {
  if (name == ecal_vs_hcal_.name()) return ecal_vs_hcal_;
  if (name == "ecal0_energy_map") return ecal_energy_map(0);
  if (name == "ecal1_energy_map") return ecal_energy_map(1);
  if (name == "ecal0_occupancy") return ecal_occupancy(0);
  if (name == "ecal1_occupancy") return ecal_occupancy(1);
  return std::nullopt;
}

// ---------------------------------------------------------------------------

namespace {
std::size_t checked_capacity(std::size_t capacity) {
  if (capacity == 0) throw std::invalid_argument("SpillHistory: capacity 0; it must hold at least one spill");
  return capacity;
}
}  // namespace

SpillHistory::SpillHistory(const fw::ChannelMap& map, const DqmConfig& config, std::size_t capacity)
    : slots_(checked_capacity(capacity), DqmHistograms(map, config)),
      numbers_(capacity, 0),
      total_(map, config) {}

void SpillHistory::record(std::uint32_t spill, const DqmHistograms& set) {
  if (!total_.compatible(set)) {
    throw std::invalid_argument(fmt::format(
        "SpillHistory: spill {}: its DQM set has another binning or channel map than the history's", spill));
  }
  DqmHistograms& slot = slots_[next_];
  slot.reset();
  set.merge_into(slot);
  set.merge_into(total_);
  numbers_[next_] = spill;
  next_ = (next_ + 1) % slots_.size();
  if (size_ < slots_.size()) ++size_;
}

void SpillHistory::clear() noexcept {
  for (auto& s : slots_) s.reset();
  numbers_.assign(numbers_.size(), 0);
  total_.reset();
  next_ = 0;
  size_ = 0;
}

}  // namespace na64::monitoring
