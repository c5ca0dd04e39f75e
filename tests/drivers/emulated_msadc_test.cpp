// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/emulated_msadc.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "na64/firmware/msadc.hpp"

namespace na64::drivers {
namespace {

namespace fw = na64::firmware;

fw::ChannelMap ecal_map() {
  std::vector<fw::ChannelMapEntry> e;
  for (std::uint16_t c = 0; c < 36; ++c) {
    e.push_back({620, 0, c, fw::cell_index(fw::Detector::Ecal0, c % 6, c / 6), 0.005f});
    e.push_back({620, 1, c, fw::cell_index(fw::Detector::Ecal1, c % 6, c / 6), 0.025f});
  }
  return fw::ChannelMap(std::move(e));
}

TEST(EmulatedMsadcBoard, BlockDecodesWithEveryChannelOnce) {
  const auto map = ecal_map();
  const NA64Beam beam(BeamParameters{});
  const EmulatedMsadcBoard board(620, map, beam, EmulatorParameters{});
  // 72 channels x 17 words + 6 ADC headers (3 per port).
  EXPECT_EQ(board.max_fragment_words(), 72u * 17u + 6u);
  std::vector<std::uint32_t> out(board.max_fragment_words());
  ParticleTruth truth;
  const std::size_t n = board.read_event(1, 4097, out, &truth);
  EXPECT_EQ(n, board.max_fragment_words());
  EXPECT_EQ(truth.particle, 4097u);
  int channels = 0;
  auto r = fw::decode_msadc(std::span<const std::uint32_t>(out.data(), n), 4097, 0, [&](const fw::MsadcChannel& ch) {
    ++channels;
    EXPECT_EQ(ch.n_samples, 32u);
  });
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(channels, 72);
}

TEST(EmulatedMsadcBoard, PulseHeightFollowsTheDepositAndPedestalIsFlat) {
  const auto map = ecal_map();
  BeamParameters p;
  p.hadron_fraction = 0;
  p.muon_fraction = 0;
  p.signal_fraction = 0;
  const NA64Beam beam(p);
  EmulatorParameters ep;
  ep.noise_adc = 0;  // exact samples
  const EmulatedMsadcBoard board(620, map, beam, ep);
  std::vector<std::uint32_t> out(board.max_fragment_words());
  CellDeposits dep;
  const auto truth = beam.generate(1, 10, dep);
  const std::size_t n = board.read_event(1, 10, out, nullptr);
  ASSERT_GT(n, 0u);
  double ecal = 0;
  auto r = fw::decode_msadc(std::span<const std::uint32_t>(out.data(), n), 10, 0, [&](const fw::MsadcChannel& ch) {
    const auto cell = map.cell_of(0, ch.port, ch.chip_channel());
    const double ped = ch.sample(0);
    EXPECT_EQ(ch.sample(1), ch.sample(0));
    EXPECT_EQ(ch.sample(3), ch.sample(0));
    std::uint16_t max = 0;
    for (std::size_t k = 0; k < ch.n_samples; ++k) max = std::max(max, ch.sample(k));
    ecal += (max - ped) * map.gev_per_count(static_cast<std::uint16_t>(cell));
  });
  ASSERT_TRUE(r.ok());
  // Sampling misses the true peak by at most half a sample; rounding adds 0.5 count per cell.
  EXPECT_NEAR(ecal, truth.e_ecal_gev, 0.05 * truth.e_ecal_gev);
}

TEST(EmulatedMsadcBoard, ADeadCellReadsOnlyItsPedestalFromItsSpillOn) {
  const auto map = ecal_map();
  BeamParameters p;
  p.hadron_fraction = 0;
  p.muon_fraction = 0;
  p.signal_fraction = 0;
  const NA64Beam beam(p);
  EmulatorParameters ep;
  ep.noise_adc = 0;  // exact samples
  const EmulatedMsadcBoard live(620, map, beam, ep);
  const std::uint16_t dead_cell = fw::cell_index(fw::Detector::Ecal1, 3, 4);
  ep.dead_cell = dead_cell;
  ep.dead_from_spill = 2;
  const EmulatedMsadcBoard board(620, map, beam, ep);
  EXPECT_FALSE(board.dead(dead_cell, 1));
  EXPECT_TRUE(board.dead(dead_cell, 2));
  EXPECT_TRUE(board.dead(dead_cell, 3));
  EXPECT_FALSE(board.dead(dead_cell - 1, 3));

  // Per spill and cell: the largest sample above the pedestal over 50 particles.
  const auto heights = [&](const EmulatedMsadcBoard& b, std::uint32_t spill) {
    std::vector<int> max_above(fw::kNumCells, 0);
    std::vector<std::uint32_t> out(b.max_fragment_words());
    for (std::uint32_t particle = 1; particle <= 50; ++particle) {
      const std::size_t n = b.read_event(spill, particle, out);
      EXPECT_GT(n, 0u);
      auto r = fw::decode_msadc(std::span<const std::uint32_t>(out.data(), n), particle, 0,
                                [&](const fw::MsadcChannel& ch) {
                                  const auto cell = static_cast<std::size_t>(map.cell_of(0, ch.port, ch.chip_channel()));
                                  for (std::size_t k = 0; k < ch.n_samples; ++k) {
                                    max_above[cell] = std::max(max_above[cell], ch.sample(k) - ch.sample(0));
                                  }
                                });
      EXPECT_TRUE(r.ok());
    }
    return max_above;
  };
  const auto spill1 = heights(board, 1);
  const auto spill2 = heights(board, 2);
  EXPECT_GT(spill1[dead_cell], 8) << "before its spill the cell sees the showers";
  EXPECT_EQ(spill2[dead_cell], 0) << "from its spill on the cell reads its pedestal only";
  const auto live2 = heights(live, 2);
  for (std::size_t c = 0; c < fw::kNumCells; ++c) {
    if (c == dead_cell) continue;
    EXPECT_EQ(spill2[c], live2[c]) << "cell " << c;
  }
}

TEST(EmulatedMsadcBoard, RejectsSourceMissingFromTheMap) {
  const auto map = ecal_map();
  const NA64Beam beam(BeamParameters{});
  EXPECT_THROW(EmulatedMsadcBoard(999, map, beam, EmulatorParameters{}), std::invalid_argument);
}

TEST(EmulatedMsadcBoard, TooSmallBufferGivesZeroWords) {
  const auto map = ecal_map();
  const NA64Beam beam(BeamParameters{});
  const EmulatedMsadcBoard board(620, map, beam, EmulatorParameters{});
  std::vector<std::uint32_t> out(100);
  EXPECT_EQ(board.read_event(1, 1, out), 0u);
}

}  // namespace
}  // namespace na64::drivers
