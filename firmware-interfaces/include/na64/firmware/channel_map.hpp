// SPDX-License-Identifier: Apache-2.0
// Calorimeter cells of the reference layout and the map from a board channel
// (source id, port, chip channel) to a cell, as the configuration gives it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "na64/firmware/msadc.hpp"

namespace na64::firmware {

/// Detectors read by MSADC boards, reference invisible-mode layout (DOMAIN.md 2).
enum class Detector : std::uint8_t {
  Ecal0,  ///< ECAL preshower, 6x6
  Ecal1,  ///< ECAL main section, 6x6
  Hcal0,  ///< HCAL modules, 3x3 each
  Hcal1,
  Hcal2,
  Hcal3,
  Srd,   ///< 3 modules, x = module
  Veto,  ///< 3 counters x 2 PMTs, x = counter, y = PMT
  S0,    ///< beam counters
  S1,
  S2,
};
inline constexpr std::size_t kNumDetectors = 11;

struct DetectorGeometry {
  std::string_view name;  ///< name in the decoder's map, e.g. "ECAL1"
  std::uint8_t nx = 0;
  std::uint8_t ny = 0;
  std::uint16_t first_cell = 0;  ///< flat index of (0, 0)
};

inline constexpr std::array<DetectorGeometry, kNumDetectors> kDetectors{{
    {"ECAL0", 6, 6, 0},
    {"ECAL1", 6, 6, 36},
    {"HCAL0", 3, 3, 72},
    {"HCAL1", 3, 3, 81},
    {"HCAL2", 3, 3, 90},
    {"HCAL3", 3, 3, 99},
    {"SRD", 3, 1, 108},
    {"VETO", 3, 2, 111},
    {"S0", 1, 1, 117},
    {"S1", 1, 1, 118},
    {"S2", 1, 1, 119},
}};
/// Cells in the reference layout.
inline constexpr std::size_t kNumCells = 120;

[[nodiscard]] constexpr const DetectorGeometry& geometry(Detector d) noexcept {
  return kDetectors[static_cast<std::size_t>(d)];
}
/// Flat cell index; precondition x < nx, y < ny.
[[nodiscard]] constexpr std::uint16_t cell_index(Detector d, std::uint32_t x, std::uint32_t y) noexcept {
  const auto& g = geometry(d);
  return static_cast<std::uint16_t>(g.first_cell + y * g.nx + x);
}
[[nodiscard]] std::optional<Detector> detector_by_name(std::string_view name) noexcept;

struct Cell {
  Detector detector{};
  std::uint8_t x = 0;
  std::uint8_t y = 0;
};
/// Precondition: index < kNumCells.
[[nodiscard]] Cell cell_at(std::uint16_t index) noexcept;

struct ChannelMapEntry {
  std::uint32_t source_id = 0;
  std::uint32_t port = 0;
  std::uint32_t chip_channel = 0;  ///< ADC id x 16 + channel
  std::uint16_t cell = 0;
  float gev_per_count = 0;         ///< calibration
};

/// An immutable map, checked at construction. Lookups are array reads.
///
/// Thread safety: const after construction; share freely.
class ChannelMap {
 public:
  static constexpr std::int16_t kUnmapped = -1;

  /// Throws std::invalid_argument naming the offending entry when a source id
  /// is >= 896, a port >= 8, a chip channel >= 64, a channel or a cell is
  /// mapped twice, or a calibration is not positive.
  explicit ChannelMap(std::vector<ChannelMapEntry> entries);

  [[nodiscard]] std::span<const ChannelMapEntry> entries() const noexcept { return entries_; }
  /// Source ids in ascending order; a source's position here is its slot.
  [[nodiscard]] std::span<const std::uint32_t> sources() const noexcept { return sources_; }
  [[nodiscard]] std::optional<std::size_t> slot_of(std::uint32_t source_id) const noexcept;
  /// Entries of one source, ordered by (port, chip channel).
  [[nodiscard]] std::vector<ChannelMapEntry> channels_of(std::size_t slot) const;
  /// Number of mapped channels of a source. Precondition: slot < sources().size().
  [[nodiscard]] std::size_t channel_count(std::size_t slot) const noexcept { return channel_counts_[slot]; }
  /// Cell index for a channel, or kUnmapped. Preconditions: slot < sources().size(),
  /// port < 8, chip_channel < 64.
  [[nodiscard]] std::int16_t cell_of(std::size_t slot, std::uint32_t port, std::uint32_t chip_channel) const noexcept {
    return lookup_[(slot * kPortsPerSource + port) * kChipChannelsPerPort + chip_channel];
  }
  /// Calibration of a cell in GeV per ADC count; 0 for a cell not mapped.
  [[nodiscard]] float gev_per_count(std::uint16_t cell) const noexcept { return gev_per_count_[cell]; }
  [[nodiscard]] bool cell_mapped(std::uint16_t cell) const noexcept { return gev_per_count_[cell] > 0; }

 private:
  std::vector<ChannelMapEntry> entries_;
  std::vector<std::uint32_t> sources_;
  std::vector<std::size_t> channel_counts_;
  std::vector<std::int16_t> lookup_;
  std::array<float, kNumCells> gev_per_count_{};
};

}  // namespace na64::firmware
