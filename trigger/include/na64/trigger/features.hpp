// SPDX-License-Identifier: Apache-2.0
// Per-channel feature extraction from MSADC waveforms and the detector sums
// the trigger lines use.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "na64/eventbuilder/event_builder.hpp"
#include "na64/firmware/channel_map.hpp"
#include "na64/firmware/decode_error.hpp"

namespace na64::trigger {

inline constexpr double kSamplePeriodNs = 12.5;
inline constexpr std::size_t kPedestalSamples = 4;

/// Features of one event. Energies in GeV after calibration and zero
/// suppression; cells not read are 0.
struct EventFeatures {
  std::array<float, firmware::kNumCells> energy_gev{};
  std::array<float, firmware::kNumCells> amplitude_adc{};  ///< maximum - pedestal, before suppression
  std::array<float, firmware::kNumCells> pedestal_adc{};   ///< mean of the first 4 samples
  std::array<float, firmware::kNumCells> peak_time_ns{};   ///< time of the maximum sample
  float preshower_gev = 0;  ///< ECAL0
  float ecal_gev = 0;       ///< ECAL0 + ECAL1
  float hcal_gev = 0;       ///< HCAL0-3
  std::array<float, 3> srd_gev{};   ///< per module
  std::array<float, 3> veto_gev{};  ///< per counter, mean of its two PMTs
  std::uint32_t channels = 0;       ///< channels seen
  std::uint32_t unmapped = 0;       ///< channels with no map line (ignored, as the decoder does)
  /// Mapped channels of the fragments' sources that the fragments lack. A
  /// cell not read counts as 0 GeV, so an event with any missing channel
  /// must not be triggered on: an ECAL port missing looks like missing energy.
  std::uint32_t missing_channels = 0;
  std::uint32_t first_missing_source = 0;  ///< source slot of the first fragment lacking channels
};

struct ExtractionConfig {
  std::uint32_t zero_suppression_adc = 8;  ///< amplitude below this gives 0 GeV
};

/// Turns a built event's MSADC fragments into EventFeatures.
///
/// Thread safety: const after construction; extract() writes only its output.
class FeatureExtractor {
 public:
  FeatureExtractor(const firmware::ChannelMap& map, ExtractionConfig config) noexcept
      : map_(&map), config_(config) {}

  /// Decodes and validates every fragment (data_format3, ADC event number =
  /// particle & 0xFFF) and fills `out`, counting mapped channels absent in
  /// `out.missing_channels`. On the first bad fragment returns its
  /// error, `offset_bytes` counting from the start of that fragment, and the
  /// fragment's source slot in `bad_source`. No allocation.
  [[nodiscard]] firmware::Decoded<firmware::Checked> extract(const eventbuilder::BuiltDesc& desc,
                                                             std::span<const std::uint32_t> slot, EventFeatures& out,
                                                             std::uint32_t& bad_source) const noexcept;

 private:
  const firmware::ChannelMap* map_;
  ExtractionConfig config_;
};

/// A summary fragment of the two-level readout, as the chain puts it in the
/// builder: word 0 the board's time stamp of the particle (12.5 ns ticks),
/// word 1 flags, then the board's summary words (msadc_readout.hpp), one per
/// channel above the board's zero-suppression threshold.
inline constexpr std::size_t kSummaryHeadWords = 2;
inline constexpr std::uint32_t kSummaryNotBuffered = 1u;  ///< flags bit 0: the board's latency buffer was full

/// Turns a built event's summary fragments into EventFeatures: energy =
/// summary value (amplitude above pedestal, ADC counts) x calibration, 0
/// below the zero-suppression threshold; peak time from the summary's time.
/// Pedestals are not in summaries (0). A channel absent from a summary was
/// below the board's threshold: 0 GeV, not missing.
///
/// Thread safety: const after construction; extract() writes only its output.
class SummaryExtractor {
 public:
  SummaryExtractor(const firmware::ChannelMap& map, ExtractionConfig config) noexcept : map_(&map), config_(config) {}

  /// Fills `out`; returns the mask of source slots whose summary said the
  /// event was not buffered. Summary words with a field out of range for
  /// the map (chip channel >= 64) count as unmapped. No allocation.
  std::uint32_t extract(const eventbuilder::BuiltDesc& desc, std::span<const std::uint32_t> slot,
                        EventFeatures& out) const noexcept;

 private:
  const firmware::ChannelMap* map_;
  ExtractionConfig config_;
};

}  // namespace na64::trigger
