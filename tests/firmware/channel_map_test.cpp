// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/channel_map.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace na64::firmware {
namespace {

/// Entries over sources 621 and 620, given out of order.
std::vector<ChannelMapEntry> two_source_entries() {
  return {
      {621, 2, 17, cell_index(Detector::Hcal0, 1, 2), 0.5f},
      {620, 0, 0, cell_index(Detector::Ecal1, 0, 0), 0.01f},
      {620, 7, 63, cell_index(Detector::S2, 0, 0), 2.0f},
      {620, 0, 1, cell_index(Detector::Ecal1, 1, 0), 0.02f},
  };
}

std::string construction_error(std::vector<ChannelMapEntry> entries) {
  try {
    ChannelMap m(std::move(entries));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

TEST(ChannelMap, NumbersCellsOfTheReferenceLayout) {
  EXPECT_EQ(cell_index(Detector::Ecal0, 0, 0), 0);
  EXPECT_EQ(cell_index(Detector::Ecal0, 5, 5), 35);
  EXPECT_EQ(cell_index(Detector::Ecal1, 2, 3), 36 + 3 * 6 + 2);
  EXPECT_EQ(cell_index(Detector::Hcal3, 2, 2), 107);
  EXPECT_EQ(cell_index(Detector::Veto, 2, 1), 111 + 1 * 3 + 2);
  EXPECT_EQ(cell_index(Detector::S2, 0, 0), 119);
}

TEST(ChannelMap, CoversEveryCellOnceWithoutGaps) {
  std::size_t next = 0;
  for (const auto& g : kDetectors) {
    EXPECT_EQ(g.first_cell, next) << g.name;
    next += std::size_t{g.nx} * g.ny;
  }
  EXPECT_EQ(next, kNumCells);
}

TEST(ChannelMap, InvertsCellIndex) {
  for (std::size_t d = 0; d < kNumDetectors; ++d) {
    const auto det = static_cast<Detector>(d);
    for (std::uint32_t y = 0; y < geometry(det).ny; ++y) {
      for (std::uint32_t x = 0; x < geometry(det).nx; ++x) {
        const Cell c = cell_at(cell_index(det, x, y));
        EXPECT_EQ(c.detector, det);
        EXPECT_EQ(c.x, x);
        EXPECT_EQ(c.y, y);
      }
    }
  }
}

TEST(ChannelMap, FindsDetectorsByName) {
  EXPECT_EQ(detector_by_name("ECAL0"), Detector::Ecal0);
  EXPECT_EQ(detector_by_name("ECAL1"), Detector::Ecal1);
  EXPECT_EQ(detector_by_name("HCAL2"), Detector::Hcal2);
  EXPECT_EQ(detector_by_name("SRD"), Detector::Srd);
  EXPECT_EQ(detector_by_name("VETO"), Detector::Veto);
  EXPECT_EQ(detector_by_name("S2"), Detector::S2);
  EXPECT_EQ(detector_by_name("ecal1"), std::nullopt);
  EXPECT_EQ(detector_by_name("ECAL"), std::nullopt);
  EXPECT_EQ(detector_by_name(""), std::nullopt);
}

TEST(ChannelMap, OrdersSourcesIntoSlots) {
  const ChannelMap m(two_source_entries());
  ASSERT_EQ(m.sources().size(), 2u);
  EXPECT_EQ(m.sources()[0], 620u);
  EXPECT_EQ(m.sources()[1], 621u);
  EXPECT_EQ(m.slot_of(620), 0u);
  EXPECT_EQ(m.slot_of(621), 1u);
  EXPECT_EQ(m.slot_of(619), std::nullopt);
  EXPECT_EQ(m.slot_of(622), std::nullopt);
}

TEST(ChannelMap, LooksUpCells) {
  const ChannelMap m(two_source_entries());
  EXPECT_EQ(m.cell_of(0, 0, 0), cell_index(Detector::Ecal1, 0, 0));
  EXPECT_EQ(m.cell_of(0, 0, 1), cell_index(Detector::Ecal1, 1, 0));
  EXPECT_EQ(m.cell_of(0, 7, 63), 119);
  EXPECT_EQ(m.cell_of(1, 2, 17), cell_index(Detector::Hcal0, 1, 2));
}

TEST(ChannelMap, ReturnsUnmappedForOtherChannels) {
  const ChannelMap m(two_source_entries());
  EXPECT_EQ(ChannelMap::kUnmapped, -1);
  EXPECT_EQ(m.cell_of(0, 0, 2), -1);
  EXPECT_EQ(m.cell_of(0, 2, 17), -1);  // mapped on the other source only
  EXPECT_EQ(m.cell_of(1, 0, 0), -1);
  EXPECT_EQ(m.cell_of(1, 7, 63), -1);
}

TEST(ChannelMap, KeepsCalibrationPerCell) {
  const ChannelMap m(two_source_entries());
  EXPECT_FLOAT_EQ(m.gev_per_count(cell_index(Detector::Ecal1, 1, 0)), 0.02f);
  EXPECT_FLOAT_EQ(m.gev_per_count(119), 2.0f);
  EXPECT_FLOAT_EQ(m.gev_per_count(0), 0.0f);
  EXPECT_TRUE(m.cell_mapped(119));
  EXPECT_FALSE(m.cell_mapped(0));
}

TEST(ChannelMap, ListsChannelsOfASlotInOrder) {
  const ChannelMap m(two_source_entries());
  const auto ch = m.channels_of(0);
  ASSERT_EQ(ch.size(), 3u);
  EXPECT_EQ(ch[0].chip_channel, 0u);
  EXPECT_EQ(ch[1].chip_channel, 1u);
  EXPECT_EQ(ch[2].port, 7u);
  EXPECT_EQ(m.channels_of(1).size(), 1u);
  EXPECT_EQ(m.entries().size(), 4u);
  EXPECT_THROW((void)m.channels_of(2), std::out_of_range);
}

TEST(ChannelMap, AcceptsEmptyMap) {
  const ChannelMap m({});
  EXPECT_TRUE(m.sources().empty());
  EXPECT_EQ(m.slot_of(620), std::nullopt);
}

TEST(ChannelMap, AcceptsLargestSourcePortAndChipChannel) {
  const ChannelMap m({{895, 7, 63, 0, 1.0f}});
  EXPECT_EQ(m.cell_of(0, 7, 63), 0);
}

TEST(ChannelMap, RejectsMultiplexerSourceId) {
  EXPECT_EQ(construction_error({{896, 0, 0, 0, 1.0f}}),
            "channel (source 896, port 0, chip channel 0): source id must be < 896");
}

TEST(ChannelMap, RejectsPort8) {
  EXPECT_EQ(construction_error({{620, 8, 0, 0, 1.0f}}), "channel (source 620, port 8, chip channel 0): port must be < 8");
}

TEST(ChannelMap, RejectsChipChannel64) {
  EXPECT_EQ(construction_error({{620, 0, 64, 0, 1.0f}}),
            "channel (source 620, port 0, chip channel 64): chip channel must be < 64");
}

TEST(ChannelMap, RejectsCellOutOfRange) {
  EXPECT_EQ(construction_error({{620, 0, 1, kNumCells, 1.0f}}),
            "channel (source 620, port 0, chip channel 1): cell index out of range");
}

TEST(ChannelMap, RejectsDuplicateChannel) {
  EXPECT_EQ(construction_error({{620, 1, 5, 3, 1.0f}, {620, 1, 5, 4, 1.0f}}),
            "channel (source 620, port 1, chip channel 5) is mapped twice");
}

TEST(ChannelMap, RejectsDuplicateCell) {
  const auto cell = cell_index(Detector::Ecal1, 2, 3);
  EXPECT_EQ(construction_error({{620, 1, 5, cell, 1.0f}, {621, 1, 5, cell, 1.0f}}), "cell ECAL1 (2, 3) is mapped twice");
}

TEST(ChannelMap, RejectsZeroCalibration) {
  EXPECT_EQ(construction_error({{620, 0, 2, 0, 0.0f}}),
            "channel (source 620, port 0, chip channel 2): calibration must be > 0 GeV per count");
}

TEST(ChannelMap, RejectsNegativeCalibration) {
  EXPECT_EQ(construction_error({{620, 0, 2, 0, -0.5f}}),
            "channel (source 620, port 0, chip channel 2): calibration must be > 0 GeV per count");
}

TEST(ChannelMap, RejectsNanCalibration) {
  EXPECT_EQ(construction_error({{620, 0, 2, 0, std::numeric_limits<float>::quiet_NaN()}}),
            "channel (source 620, port 0, chip channel 2): calibration must be > 0 GeV per count");
}

}  // namespace
}  // namespace na64::firmware
