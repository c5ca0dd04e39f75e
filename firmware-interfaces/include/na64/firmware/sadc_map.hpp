// SPDX-License-Identifier: Apache-2.0
// The decoder's XML map for MSADC channels (DOMAIN.md 4.6).
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace na64::firmware {

/// One map line: `DETECTOR srcID port chip_channel x y`.
struct SadcMapLine {
  std::string detector;        ///< e.g. "ECAL1"
  std::uint32_t source_id = 0;
  std::uint32_t port = 0;
  std::uint32_t chip_channel = 0;  ///< ADC id x 16 + channel
  std::uint32_t x = 0;
  std::uint32_t y = 0;
};

/// The whole map file: one root element, a ChipsCreation line per source
/// (so the decoder does not guess the chip from the format byte), and a
/// ChipSADC version 2 / "xy data_format3" section with one line per channel.
/// `comment` goes into an XML comment at the top (never a '#' line).
/// Another source's ChipsCreation line: its chip decoder, e.g. "ChipAPV".
struct ChipLine {
  std::uint32_t source_id = 0;
  std::string chip;
};
/// `other_chips` adds ChipsCreation lines for sources read by other chip
/// decoders (the trackers), so that the decoder does not report them.
[[nodiscard]] std::string write_sadc_map(std::span<const SadcMapLine> lines, const std::string& comment,
                                         std::span<const ChipLine> other_chips = {});

}  // namespace na64::firmware
