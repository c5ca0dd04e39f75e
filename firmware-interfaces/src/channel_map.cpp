// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/channel_map.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>
#include <stdexcept>

#include "na64/firmware/slink.hpp"

namespace na64::firmware {

std::optional<Detector> detector_by_name(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kDetectors.size(); ++i) {
    if (kDetectors[i].name == name) return static_cast<Detector>(i);
  }
  return std::nullopt;
}

Cell cell_at(std::uint16_t index) noexcept {
  for (std::size_t i = kDetectors.size(); i-- > 0;) {
    const auto& g = kDetectors[i];
    if (index >= g.first_cell) {
      const auto local = static_cast<std::uint32_t>(index - g.first_cell);
      return Cell{static_cast<Detector>(i), static_cast<std::uint8_t>(local % g.nx),
                  static_cast<std::uint8_t>(local / g.nx)};
    }
  }
  return Cell{};
}

ChannelMap::ChannelMap(std::vector<ChannelMapEntry> entries) : entries_(std::move(entries)) {
  std::sort(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
    return std::tie(a.source_id, a.port, a.chip_channel) < std::tie(b.source_id, b.port, b.chip_channel);
  });
  for (const auto& e : entries_) {
    const auto where = fmt::format("channel (source {}, port {}, chip channel {})", e.source_id, e.port,
                                   e.chip_channel);
    if (e.source_id > kMaxSourceId) throw std::invalid_argument(where + ": source id must be < 896");
    if (e.port >= kPortsPerSource) throw std::invalid_argument(where + ": port must be < 8");
    if (e.chip_channel >= kChipChannelsPerPort) {
      throw std::invalid_argument(where + ": chip channel must be < 64");
    }
    if (e.cell >= kNumCells) throw std::invalid_argument(where + ": cell index out of range");
    if (!(e.gev_per_count > 0)) throw std::invalid_argument(where + ": calibration must be > 0 GeV per count");
    if (sources_.empty() || sources_.back() != e.source_id) sources_.push_back(e.source_id);
  }
  lookup_.assign(sources_.size() * kPortsPerSource * kChipChannelsPerPort, kUnmapped);
  channel_counts_.assign(sources_.size(), 0);
  for (const auto& e : entries_) {
    const std::size_t slot = *slot_of(e.source_id);
    ++channel_counts_[slot];
    auto& l = lookup_[(slot * kPortsPerSource + e.port) * kChipChannelsPerPort + e.chip_channel];
    const Cell c = cell_at(e.cell);
    const auto cell_name = fmt::format("{} ({}, {})", geometry(c.detector).name, c.x, c.y);
    if (l != kUnmapped) {
      throw std::invalid_argument(fmt::format("channel (source {}, port {}, chip channel {}) is mapped twice",
                                              e.source_id, e.port, e.chip_channel));
    }
    if (gev_per_count_[e.cell] > 0) throw std::invalid_argument("cell " + cell_name + " is mapped twice");
    l = static_cast<std::int16_t>(e.cell);
    gev_per_count_[e.cell] = e.gev_per_count;
  }
}

std::optional<std::size_t> ChannelMap::slot_of(std::uint32_t source_id) const noexcept {
  auto it = std::lower_bound(sources_.begin(), sources_.end(), source_id);
  if (it == sources_.end() || *it != source_id) return std::nullopt;
  return static_cast<std::size_t>(it - sources_.begin());
}

std::vector<ChannelMapEntry> ChannelMap::channels_of(std::size_t slot) const {
  std::vector<ChannelMapEntry> out;
  for (const auto& e : entries_) {
    if (e.source_id == sources_.at(slot)) out.push_back(e);
  }
  return out;
}

}  // namespace na64::firmware
