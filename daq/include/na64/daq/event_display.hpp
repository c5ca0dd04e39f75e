// SPDX-License-Identifier: Apache-2.0
// A written event decoded for the event display: every MSADC cell it read,
// with its energy as the trigger computes it and its waveform.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "na64/daq/config.hpp"

namespace na64::daq {

struct DisplayCell {
  std::uint16_t cell = 0;  ///< firmware cell index
  float energy_gev = 0;    ///< trigger::FeatureExtractor's energy: calibrated, zero-suppressed
  std::vector<std::uint16_t> samples;
};

struct DisplayEvent {
  std::uint32_t run = 0;
  std::uint32_t spill = 0;
  std::uint32_t event = 0;         ///< number in spill, as written
  std::uint32_t particle = 0;      ///< the beam particle (DATE word 10)
  std::uint32_t trigger_mask = 0;  ///< bits: 0 invisible, 1 beam, 2 random
  std::vector<DisplayCell> cells;  ///< in cell order; the cells of MSADC sources the event carries
};

/// Decodes one physics event as the writer wrote it (DATE 3.6, one equipment
/// per source) with the configuration's channel map and feature extraction.
/// Equipment of other sources (trackers) and empty ones (a source flagged
/// missing) are left out. nullopt, with `error` saying what and where, for an
/// event that does not decode. No exceptions.
[[nodiscard]] std::optional<DisplayEvent> decode_display_event(std::span<const std::uint32_t> words,
                                                               const DaqConfig& config, std::string& error);

}  // namespace na64::daq
