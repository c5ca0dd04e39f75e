// SPDX-License-Identifier: Apache-2.0
// An emulated MSADC board: turns the beam's true deposits into the 12-bit
// waveforms the board would send, as a data_format3 block.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "na64/drivers/beam.hpp"
#include "na64/firmware/channel_map.hpp"

namespace na64::drivers {

struct EmulatorParameters {
  std::uint32_t n_samples = 32;      ///< per channel, 12.5 ns apart
  double noise_adc = 1.5;            ///< Gaussian sigma, ADC counts
  std::uint32_t pedestal_base = 180; ///< pedestals are base + 0..99, fixed per channel
  double fragment_loss = 0.0;        ///< probability that the board loses a particle's fragment
  /// A stall, as of a board that stops answering for a while: before sending
  /// particle `stall_particle` of spill `stall_spill`, board `stall_source`
  /// goes silent for `stall_ms`. 0 ms: never.
  std::uint32_t stall_source = 0;
  std::uint32_t stall_spill = 0;
  std::uint32_t stall_particle = 0;
  std::uint32_t stall_ms = 0;
  /// A dead cell, as of a channel whose PMT or cable failed: from spill
  /// `dead_from_spill` on, the channel of cell `dead_cell` (firmware cell
  /// index) reads only its pedestal and noise. 0: no dead cell.
  std::uint32_t dead_from_spill = 0;
  std::uint16_t dead_cell = 0;
};

/// Thread safety: const after construction; one board may serve several threads.
class EmulatedMsadcBoard {
 public:
  static constexpr double kSamplePeriodNs = 12.5;
  static constexpr double kPulseRiseNs = 25.0;

  /// Throws std::invalid_argument if the source is not in the map or the
  /// sample count is not 1-511.
  EmulatedMsadcBoard(std::uint32_t source_id, const firmware::ChannelMap& map, const NA64Beam& beam,
                     EmulatorParameters params);

  [[nodiscard]] std::uint32_t source_id() const noexcept { return source_id_; }
  [[nodiscard]] std::size_t channel_count() const noexcept { return channels_.size(); }
  /// The largest block read_event() can produce.
  [[nodiscard]] std::size_t max_fragment_words() const noexcept { return max_words_; }
  /// Pedestal of one of this board's channels (index in map order).
  [[nodiscard]] std::uint32_t pedestal(std::size_t channel) const noexcept { return channels_[channel].pedestal; }

  /// True when this board loses the fragment of (spill, particle), as drawn
  /// from EmulatorParameters::fragment_loss; reproducible.
  [[nodiscard]] bool loses(std::uint32_t spill, std::uint32_t particle) const noexcept;
  /// How long the board stays silent before (spill, particle), in ms.
  [[nodiscard]] std::uint32_t stall_ms(std::uint32_t spill, std::uint32_t particle) const noexcept {
    return source_id_ == params_.stall_source && spill == params_.stall_spill && particle == params_.stall_particle
               ? params_.stall_ms
               : 0;
  }

  /// True when `cell` reads no signal in `spill` (EmulatorParameters::dead_cell).
  [[nodiscard]] bool dead(std::uint16_t cell, std::uint32_t spill) const noexcept {
    return params_.dead_from_spill != 0 && spill >= params_.dead_from_spill && cell == params_.dead_cell;
  }

  /// Writes the data_format3 block of (spill, particle) into `out` (ADC event
  /// number = particle & 0xFFF) and returns its length in words, 0 if `out` is
  /// too small. Reproducible; no allocation.
  std::size_t read_event(std::uint32_t spill, std::uint32_t particle, std::span<std::uint32_t> out,
                         ParticleTruth* truth = nullptr) const noexcept;

 private:
  struct Channel {
    std::uint32_t port = 0;
    std::uint32_t adc_id = 0;
    std::uint32_t channel = 0;
    std::uint16_t cell = 0;
    float counts_per_gev = 0;
    std::uint32_t pedestal = 0;
  };
  static constexpr std::size_t kNoiseTableSize = 4096;
  static constexpr std::size_t kShapeStepsPerSample = 64;

  std::uint32_t source_id_;
  const NA64Beam* beam_;
  EmulatorParameters params_;
  std::vector<Channel> channels_;  ///< ordered by (port, adc, channel)
  std::vector<float> noise_;       ///< Gaussian table, sigma = noise_adc
  std::vector<float> shape_;       ///< unit-peak pulse, kShapeStepsPerSample points per sample
  std::size_t max_words_ = 0;
};

}  // namespace na64::drivers
