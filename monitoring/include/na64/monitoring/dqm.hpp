// SPDX-License-Identifier: Apache-2.0
// The data-quality histograms the shift looks at, filled per event from the
// trigger's features, merged per spill and kept for the last spills and the
// run.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "na64/eventbuilder/event_builder.hpp"
#include "na64/firmware/channel_map.hpp"
#include "na64/monitoring/histogram.hpp"
#include "na64/trigger/features.hpp"
#include "na64/trigger/menu.hpp"

namespace na64::monitoring {

struct DqmSetCodec;

inline constexpr std::size_t kEcalSections = 2;  ///< ECAL0 (preshower), ECAL1
inline constexpr std::size_t kHcalModules = 4;
inline constexpr std::size_t kSrdModules = 3;
inline constexpr std::size_t kVetoCounters = 3;

/// Binning and thresholds of a DqmHistograms set. Energies in GeV.
struct DqmConfig {
  double beam_energy_gev = 100.0;  ///< ECAL and HCAL axes run to 1.2 x this, in 1 % bins
  /// A cell counts as hit (occupancy) above these energies; SRD, veto and
  /// beam counters above 0, i.e. above the zero suppression.
  float ecal_occupancy_gev = 0.5f;
  float hcal_occupancy_gev = 0.5f;
  /// An event is SRD-tagged when every SRD module is inside [min, max]: the
  /// invisible line's window.
  float srd_min_gev = 0.001f;
  float srd_max_gev = 0.080f;
  double srd_axis_max_mev = 100.0;   ///< SRD spectra over [0, this) MeV, bins of about 1 MeV
  double veto_axis_max_adc = 400.0;  ///< veto amplitudes over [0, this) ADC counts, bins of about 2 counts
  /// offer() fills one event in this many; 1 fills every event. A fill costs
  /// about 5 % of the trigger thread's work per event (na64-dqm-bench); the
  /// default keeps the monitoring near 1.5 %.
  std::uint32_t sample_period = 4;
};

/// Counts of one spill (or a run), beside the histograms.
struct DqmCounters {
  std::uint64_t events = 0;  ///< complete events offered
  std::uint64_t filled = 0;  ///< events filled into the histograms
  std::array<std::uint64_t, trigger::kNumLines> accepted{};  ///< per line, over every offered event
  /// Incomplete events by reason (index = IncompleteReason; None stays 0).
  std::array<std::uint64_t, eventbuilder::kNumIncompleteReasons> incomplete{};
  std::uint64_t srd_tagged = 0;  ///< filled events with every SRD module in the window
  std::uint64_t bytes_written = 0;
  double seconds = 0;       ///< spill readout time
  double dead_seconds = 0;  ///< dead-time fraction x seconds, so that spills add up
  std::uint32_t spills = 0; ///< spills summed here

  void add(const DqmCounters& o) noexcept;
  /// dead_seconds / seconds; 0 without time.
  [[nodiscard]] double dead_time_fraction() const noexcept { return seconds > 0 ? dead_seconds / seconds : 0.0; }
  /// srd_tagged / filled; 0 without events.
  [[nodiscard]] double srd_tagged_fraction() const noexcept {
    return filled > 0 ? static_cast<double>(srd_tagged) / static_cast<double>(filled) : 0.0;
  }
};

/// Per-cell sums over the filled events, indexed by cell.
struct CellSums {
  using PerCell = std::array<double, firmware::kNumCells>;
  PerCell signal{};     ///< events with energy in the cell (above the zero suppression)
  PerCell energy{};     ///< GeV
  PerCell energy2{};    ///< GeV^2
  PerCell hits{};       ///< events with energy above the occupancy threshold
  PerCell read{};       ///< events that read the cell (pedestal > 0)
  PerCell pedestal{};   ///< ADC counts, over the events that read the cell
  PerCell pedestal2{};
  PerCell peak_time{};  ///< ns, over the events with energy in the cell
  PerCell peak_time2{};

  void add(const CellSums& o) noexcept;
  /// Mean and RMS of the pedestal; 0 for a cell never read or out of range.
  [[nodiscard]] double pedestal_mean(std::size_t cell) const noexcept;
  [[nodiscard]] double pedestal_rms(std::size_t cell) const noexcept;
  /// Mean and RMS of the peak time; 0 for a cell never with energy or out of range.
  [[nodiscard]] double peak_time_mean(std::size_t cell) const noexcept;
  [[nodiscard]] double peak_time_rms(std::size_t cell) const noexcept;
};

/// The histograms and counters of one spill (or a run), built for a channel
/// map. Histogram names, the keys a server publishes them under:
///
/// | name | content |
/// |---|---|
/// | `ecal_energy`, `hcal_energy`, `preshower_energy` | totals, GeV |
/// | `cell_occupancy` * | hits per cell index, every mapped cell |
/// | `hcal0_energy` ... `hcal3_energy` | module sums, GeV |
/// | `srd0_energy` ... `srd2_energy` | per module, MeV |
/// | `veto0_amplitude` ... `veto2_amplitude` | per counter, mean of its 2 PMTs, ADC counts |
/// | `trigger_lines` | filled events per line fired (bin = line) |
/// | `pedestal` * | mean pedestal per cell index, ADC counts |
/// | `noise` * | pedestal RMS per cell index, ADC counts |
/// | `pulse_time` * | mean pulse peak time per cell index, ns |
/// | `ecal_vs_hcal` | 2D, ECAL0 + ECAL1 vs HCAL total, GeV |
/// | `ecal0_energy_map`, `ecal1_energy_map` * | 6x6, summed energy per cell, GeV |
/// | `ecal0_occupancy`, `ecal1_occupancy` * | 6x6, hits above ecal_occupancy_gev |
///
/// Those marked * are derived on request from per-cell sums, which one
/// vectorised pass over the cells keeps per event: a fill touches each cell
/// once instead of once per histogram showing it.
///
/// Thread safety: none. One thread fills an instance (the trigger thread);
/// at spill end that thread merges it into another set and resets it, or
/// hands it over whole. Nothing is allocated or locked by offer(), fill(),
/// count_incomplete(), merge_into() or reset().
class DqmHistograms {
 public:
  /// Throws std::invalid_argument naming the field for a configuration out of
  /// range (beam energy, axis limits not positive and finite, thresholds
  /// negative, SRD window empty, sample period 0).
  DqmHistograms(const firmware::ChannelMap& map, DqmConfig config);

  /// The data-path call, for every complete event: counts it and the lines it
  /// fired, and fills it into the histograms if it is the sampled one (one in
  /// config.sample_period). Returns true when it filled.
  bool offer(const trigger::EventFeatures& f, std::uint32_t trigger_mask) noexcept;
  /// Fills the histograms with one event, whether sampled or not, and counts
  /// it in `filled`. Cells the event did not read (pedestal 0) are left out
  /// of the pedestal sums, cells without energy out of the pulse times.
  void fill(const trigger::EventFeatures& f, std::uint32_t trigger_mask) noexcept;
  /// Counts an incomplete event; a reason out of range is ignored.
  void count_incomplete(eventbuilder::IncompleteReason reason) noexcept;
  /// The counters; the owner adds what is known only at spill end (bytes
  /// written, seconds, dead time) and sets spills = 1.
  [[nodiscard]] DqmCounters& counters() noexcept { return counters_; }
  [[nodiscard]] const DqmCounters& counters() const noexcept { return counters_; }

  /// Adds this set into `target` (histograms, sums, counters). Throws
  /// std::invalid_argument, changing nothing, unless `target` was built with
  /// the same binning and map.
  void merge_into(DqmHistograms& target) const;
  /// Empties everything, for the next spill; the sampling restarts.
  void reset() noexcept;
  /// True when `other` has the same binning and map.
  [[nodiscard]] bool compatible(const DqmHistograms& other) const noexcept;

  [[nodiscard]] const DqmConfig& config() const noexcept { return config_; }
  /// True for cells the channel map maps.
  [[nodiscard]] bool cell_mapped(std::size_t cell) const noexcept {
    return cell < firmware::kNumCells && mapped_[cell] != 0;
  }

  // Filled histograms. Preconditions: module < kHcalModules (HCAL) or
  // kSrdModules (SRD), counter < kVetoCounters.
  [[nodiscard]] const Histogram2D& ecal_vs_hcal() const noexcept { return ecal_vs_hcal_; }
  [[nodiscard]] const Histogram1D& ecal_energy() const noexcept { return ecal_energy_; }
  [[nodiscard]] const Histogram1D& hcal_energy() const noexcept { return hcal_energy_; }
  [[nodiscard]] const Histogram1D& preshower_energy() const noexcept { return preshower_energy_; }
  [[nodiscard]] const Histogram1D& hcal_module_energy(std::size_t module) const noexcept {
    return hcal_module_[module];
  }
  [[nodiscard]] const Histogram1D& srd_energy(std::size_t module) const noexcept { return srd_[module]; }
  [[nodiscard]] const Histogram1D& veto_amplitude(std::size_t counter) const noexcept { return veto_[counter]; }
  [[nodiscard]] const Histogram1D& trigger_lines() const noexcept { return trigger_lines_; }

  /// The per-cell sums behind the derived histograms.
  [[nodiscard]] const CellSums& cell_sums() const noexcept { return cells_; }

  // Derived histograms, built on request from the per-cell sums.
  /// Hits per cell index (bin = cell + 1).
  [[nodiscard]] Histogram1D cell_occupancy() const;
  /// Mean pedestal per cell index, error = error of the mean.
  [[nodiscard]] Histogram1D pedestal() const;
  /// Pedestal RMS per cell index: the noise of the mean of the pedestal
  /// samples (the single-sample noise / 2 for 4 samples).
  [[nodiscard]] Histogram1D noise() const;
  /// Mean pulse peak time per cell index, over events where the cell has
  /// energy; error = the RMS of the peak time.
  [[nodiscard]] Histogram1D pulse_time() const;
  /// Summed energy per cell of ECAL0 (section 0) or ECAL1, entries = hits
  /// with energy; errors from the sums of squared energies. Throws
  /// std::out_of_range for a section other than 0 or 1.
  [[nodiscard]] Histogram2D ecal_energy_map(std::size_t section) const;
  /// Hits per cell of ECAL0 (section 0) or ECAL1; throws as ecal_energy_map().
  [[nodiscard]] Histogram2D ecal_occupancy(std::size_t section) const;

  /// The names of the table, in its order, whatever the map.
  [[nodiscard]] static std::span<const std::string_view> histogram_names() noexcept;
  /// Copies of every 1D (2D) histogram of the table, derived ones included,
  /// in the table's order: what a server publishes at spill end.
  [[nodiscard]] std::vector<Histogram1D> all_1d() const;
  [[nodiscard]] std::vector<Histogram2D> all_2d() const;
  /// A histogram of the table by name, or nothing.
  [[nodiscard]] std::optional<Histogram1D> histogram_1d(std::string_view name) const;
  [[nodiscard]] std::optional<Histogram2D> histogram_2d(std::string_view name) const;

 private:
  friend struct DqmSetCodec;  // dqm_file.hpp: saves and restores a whole set

  static void accumulate_cells(const float* __restrict energy, const float* __restrict pedestal,
                               const float* __restrict peak_time, const float* __restrict threshold,
                               const double* __restrict mapped, CellSums* __restrict cells) noexcept;

  DqmConfig config_;
  std::array<std::uint8_t, firmware::kNumCells> mapped_{};
  std::array<float, firmware::kNumCells> occupancy_threshold_{};  ///< +inf for cells not mapped
  std::array<double, firmware::kNumCells> mapped_weight_{};        ///< 1 mapped, 0 not
  std::uint32_t since_fill_ = 0;

  Histogram2D ecal_vs_hcal_;
  Histogram1D ecal_energy_;
  Histogram1D hcal_energy_;
  Histogram1D preshower_energy_;
  std::array<Histogram1D, kHcalModules> hcal_module_;
  std::array<Histogram1D, kSrdModules> srd_;
  std::array<Histogram1D, kVetoCounters> veto_;
  Histogram1D trigger_lines_;
  CellSums cells_;
  DqmCounters counters_;
};

/// The sets of the last `capacity` spills and the run total, preallocated:
/// recording a spill copies into the oldest slot and adds to the total,
/// without allocating.
///
/// Thread safety: none; one thread records and reads (e.g. the thread that
/// publishes at spill end).
class SpillHistory {
 public:
  /// Throws std::invalid_argument for capacity 0, or as DqmHistograms.
  SpillHistory(const firmware::ChannelMap& map, const DqmConfig& config, std::size_t capacity);

  /// Keeps `set` as spill `spill` and adds it to the run total. Throws
  /// std::invalid_argument, changing nothing, for a set of another binning.
  void record(std::uint32_t spill, const DqmHistograms& set);
  /// Forgets every spill and empties the total, for a new run.
  void clear() noexcept;

  [[nodiscard]] std::size_t capacity() const noexcept { return slots_.size(); }
  /// Spills held, at most capacity().
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// The set `age` spills ago: 0 the latest. Precondition: age < size().
  [[nodiscard]] const DqmHistograms& spill(std::size_t age) const noexcept { return slots_[index_of(age)]; }
  [[nodiscard]] std::uint32_t spill_number(std::size_t age) const noexcept { return numbers_[index_of(age)]; }
  /// Every spill recorded since the last clear(), not only those held.
  [[nodiscard]] const DqmHistograms& total() const noexcept { return total_; }

 private:
  [[nodiscard]] std::size_t index_of(std::size_t age) const noexcept {
    return (next_ + slots_.size() - 1 - age) % slots_.size();
  }

  std::vector<DqmHistograms> slots_;
  std::vector<std::uint32_t> numbers_;
  DqmHistograms total_;
  std::size_t next_ = 0;
  std::size_t size_ = 0;
};

}  // namespace na64::monitoring
