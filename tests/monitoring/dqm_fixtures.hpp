// SPDX-License-Identifier: Apache-2.0
// The reference channel map and deterministic event features for the
// monitoring tests.
#pragma once

#include <cstdint>
#include <vector>

#include "na64/firmware/channel_map.hpp"
#include "na64/trigger/features.hpp"
#include "na64/trigger/menu.hpp"

namespace na64::monitoring::testing {

namespace fw = na64::firmware;

/// Every cell of the reference layout, as the default configuration maps it:
/// a detector's cells in order on consecutive chip channels of one port.
inline fw::ChannelMap reference_map() {
  std::vector<fw::ChannelMapEntry> e;
  const auto block = [&e](std::uint32_t source, fw::Detector d, std::uint32_t port, std::uint32_t first) {
    const auto& g = fw::geometry(d);
    for (std::uint32_t k = 0; k < std::uint32_t{g.nx} * g.ny; ++k) {
      e.push_back({source, port, first + k, static_cast<std::uint16_t>(g.first_cell + k), 0.01f});
    }
  };
  block(620, fw::Detector::Ecal0, 0, 0);
  block(620, fw::Detector::Ecal1, 1, 0);
  block(621, fw::Detector::Hcal0, 0, 0);
  block(621, fw::Detector::Hcal1, 0, 16);
  block(621, fw::Detector::Hcal2, 1, 0);
  block(621, fw::Detector::Hcal3, 1, 16);
  block(622, fw::Detector::Srd, 0, 0);
  block(622, fw::Detector::Veto, 0, 16);
  block(622, fw::Detector::S0, 0, 32);
  block(622, fw::Detector::S1, 0, 33);
  block(622, fw::Detector::S2, 0, 34);
  return fw::ChannelMap(std::move(e));
}

/// A map of the ECAL sections only.
inline fw::ChannelMap ecal_only_map() {
  std::vector<fw::ChannelMapEntry> e;
  for (std::uint16_t k = 0; k < 72; ++k) e.push_back({620, k < 36 ? 0u : 1u, k % 36u, k, 0.01f});
  return fw::ChannelMap(std::move(e));
}

/// An event that read every cell at pedestal 200 and found nothing.
inline trigger::EventFeatures quiet_event() {
  trigger::EventFeatures f;
  f.pedestal_adc.fill(200.0f);
  f.channels = fw::kNumCells;
  return f;
}

/// Event `i` of a deterministic run pattern, exact in float:
/// - ECAL cell (x, y) has 2 GeV when i is a multiple of 1 + (x + y) % 4,
///   HCAL cell (x, y) 1 GeV when i is a multiple of 1 + (x + y) % 3;
/// - ECAL total 60 + (37 i mod 80) GeV, preshower 5 + (i mod 10) GeV,
///   HCAL total (i mod 7) / 8 GeV;
/// - SRD-tagged (10 MeV per module) when i mod 10 < 8: 80 %;
/// - pedestals 199 and 201 on alternate events: mean 200, RMS 1;
/// - peak time 150 ns.
inline trigger::EventFeatures pattern_event(std::uint32_t i) {
  trigger::EventFeatures f;
  for (std::uint16_t c = 0; c < fw::kNumCells; ++c) {
    const fw::Cell cell = fw::cell_at(c);
    float e = 0;
    switch (cell.detector) {
      case fw::Detector::Ecal0:
      case fw::Detector::Ecal1: e = i % (1u + (cell.x + cell.y) % 4u) == 0 ? 2.0f : 0.0f; break;
      case fw::Detector::Hcal0:
      case fw::Detector::Hcal1:
      case fw::Detector::Hcal2:
      case fw::Detector::Hcal3: e = i % (1u + (cell.x + cell.y) % 3u) == 0 ? 1.0f : 0.0f; break;
      default: break;
    }
    f.energy_gev[c] = e;
    f.amplitude_adc[c] = e * 100.0f;
    f.pedestal_adc[c] = i % 2 == 0 ? 199.0f : 201.0f;
    f.peak_time_ns[c] = 150.0f;
  }
  f.ecal_gev = 60.0f + static_cast<float>((37u * i) % 80u);
  f.preshower_gev = 5.0f + static_cast<float>(i % 10u);
  f.hcal_gev = static_cast<float>(i % 7u) / 8.0f;
  const float srd = i % 10u < 8u ? 0.010f : 0.0f;
  f.srd_gev = {srd, srd, srd};
  f.channels = fw::kNumCells;
  return f;
}

/// Trigger lines of pattern event `i`: invisible every 100th, beam every
/// 50th, random every 250th.
inline std::uint32_t pattern_mask(std::uint32_t i) {
  std::uint32_t m = 0;
  if (i % 100 == 0) m |= trigger::bit(trigger::TriggerLine::Invisible);
  if (i % 50 == 0) m |= trigger::bit(trigger::TriggerLine::Beam);
  if (i % 250 == 0) m |= trigger::bit(trigger::TriggerLine::Random);
  return m;
}

}  // namespace na64::monitoring::testing
