// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/emulated_msadc.hpp"

#include <gtest/gtest.h>

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
