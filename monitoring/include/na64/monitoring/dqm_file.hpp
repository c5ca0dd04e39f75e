// SPDX-License-Identifier: Apache-2.0
// A DQM set as bytes, to keep a run's reference and judge a later run
// against it: every histogram, the per-cell sums and the counters, exactly.
//
// Layout (little-endian; version 1):
//   "NA64DQMR"  u32 version
//   f64 beam_energy_gev, ecal_occupancy_gev, hcal_occupancy_gev, srd_min_gev,
//       srd_max_gev, srd_axis_max_mev, veto_axis_max_adc
//   u8 x kNumCells: 1 for a mapped cell
//   u32 length + text: the provenance ("run 12 spills 1, 2")
//   u32 histogram count; per histogram: u32 length + name, u32 cells,
//       f64 x cells contents, f64 x cells squared weights, f64 x 8 sums
//   f64 x kNumCells for each of the 9 per-cell sums
//   u64 events, filled, accepted[lines], incomplete[reasons], srd_tagged,
//       bytes_written; f64 seconds, dead_seconds; u32 spills
//   u64 FNV-1a of everything before
#pragma once

#include <string>
#include <string_view>

#include "na64/monitoring/dqm.hpp"

namespace na64::monitoring {

/// The bytes of `set`, with `provenance` (where it comes from) kept beside.
[[nodiscard]] std::string encode_dqm_set(const DqmHistograms& set, std::string_view provenance);

/// Reads bytes of encode_dqm_set() into `out`, which must be built for the
/// same configuration (binning, occupancy thresholds) and channel map, and
/// returns the provenance. Throws std::invalid_argument saying what does not
/// match or is malformed, and where (byte offset); `out` is then unchanged.
std::string decode_dqm_set(std::string_view bytes, DqmHistograms& out);

}  // namespace na64::monitoring
