// SPDX-License-Identifier: Apache-2.0
#include "na64/trigger/features.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "na64/firmware/channel_map.hpp"
#include "na64/firmware/msadc.hpp"

namespace na64::trigger {
namespace {

namespace eb = na64::eventbuilder;
namespace fw = na64::firmware;
using fw::Detector;
using fw::cell_index;

// Calibrations are powers of two so that every expected energy and sum is
// exact in float.
constexpr float kEcal0Gev = 1.0f / 256;   // per ADC count
constexpr float kEcal1Gev = 1.0f / 16;
constexpr float kHcalGev = 1.0f / 64;
constexpr float kSrdGev = 1.0f / 8192;
constexpr float kVetoGev = 1.0f / 16384;
constexpr float kCounterGev = 1.0f / 1024;

constexpr std::uint32_t kEcalSource = 620;  // slot 0: port 0 = ECAL0, port 1 = ECAL1, chip channel = y x 6 + x
constexpr std::uint32_t kHcalSource = 621;  // slot 1: port m = HCALm, chip channel = y x 3 + x
constexpr std::uint32_t kMiscSource = 622;  // slot 2: port 0 chip 0-2 SRD, 16-21 VETO, 32-34 S0-S2

fw::ChannelMap reference_map() {
  std::vector<fw::ChannelMapEntry> e;
  for (std::uint16_t k = 0; k < 36; ++k) {
    e.push_back({kEcalSource, 0, k, static_cast<std::uint16_t>(cell_index(Detector::Ecal0, 0, 0) + k), kEcal0Gev});
    e.push_back({kEcalSource, 1, k, static_cast<std::uint16_t>(cell_index(Detector::Ecal1, 0, 0) + k), kEcal1Gev});
  }
  const Detector hcal[] = {Detector::Hcal0, Detector::Hcal1, Detector::Hcal2, Detector::Hcal3};
  for (std::uint32_t m = 0; m < 4; ++m) {
    for (std::uint16_t k = 0; k < 9; ++k) {
      e.push_back({kHcalSource, m, k, static_cast<std::uint16_t>(cell_index(hcal[m], 0, 0) + k), kHcalGev});
    }
  }
  for (std::uint32_t m = 0; m < 3; ++m) e.push_back({kMiscSource, 0, m, cell_index(Detector::Srd, m, 0), kSrdGev});
  for (std::uint32_t c = 0; c < 3; ++c) {
    for (std::uint32_t p = 0; p < 2; ++p) {
      e.push_back({kMiscSource, 0, 16 + 2 * c + p, cell_index(Detector::Veto, c, p), kVetoGev});
    }
  }
  e.push_back({kMiscSource, 0, 32, cell_index(Detector::S0, 0, 0), kCounterGev});
  e.push_back({kMiscSource, 0, 33, cell_index(Detector::S1, 0, 0), kCounterGev});
  e.push_back({kMiscSource, 0, 34, cell_index(Detector::S2, 0, 0), kCounterGev});
  return fw::ChannelMap(std::move(e));
}

/// 32 samples at `pedestal`, a pulse of `height` at `peak` (half height on
/// either side).
std::vector<std::uint16_t> waveform(std::uint16_t height, std::size_t peak, std::uint16_t pedestal = 200) {
  std::vector<std::uint16_t> s(32, pedestal);
  s[peak] = static_cast<std::uint16_t>(pedestal + height);
  s[peak - 1] = static_cast<std::uint16_t>(pedestal + height / 2);
  s[peak + 1] = static_cast<std::uint16_t>(pedestal + height / 2);
  return s;
}

struct Channel {
  std::uint32_t port = 0;
  std::uint32_t chip_channel = 0;
  std::vector<std::uint16_t> samples;
};

/// A data_format3 block; channels grouped by (port, ADC) in the order given.
std::vector<std::uint32_t> msadc_block(std::uint32_t event, const std::vector<Channel>& channels) {
  std::vector<std::uint32_t> words(4096);
  fw::MsadcBlockWriter w(words, event);
  std::uint32_t port = ~0u;
  std::uint32_t adc = ~0u;
  for (const Channel& c : channels) {
    const std::uint32_t a = c.chip_channel / fw::kChannelsPerAdc;
    if (c.port != port || a != adc) {
      EXPECT_TRUE(w.begin_adc(c.port, a));
      port = c.port;
      adc = a;
    }
    EXPECT_TRUE(w.add_channel(c.chip_channel % fw::kChannelsPerAdc, c.samples));
  }
  words.resize(w.finish());
  return words;
}

/// A built Data record: per fragment, source slot, word count, words.
struct BuiltEvent {
  eb::BuiltDesc desc;
  std::vector<std::uint32_t> slot;

  explicit BuiltEvent(std::uint32_t event) {
    desc = {eb::RecordKind::Data, eb::IncompleteReason::None, 1, event, 0, 0, 0};
  }
  BuiltEvent& add(std::uint32_t source_slot, const std::vector<std::uint32_t>& block) {
    slot.push_back(source_slot);
    slot.push_back(static_cast<std::uint32_t>(block.size()));
    slot.insert(slot.end(), block.begin(), block.end());
    desc.present_mask |= 1u << source_slot;
    desc.n_words = static_cast<std::uint32_t>(slot.size());
    return *this;
  }
};

class FeatureExtractorTest : public ::testing::Test {
 protected:
  fw::Decoded<fw::Checked> run(const BuiltEvent& ev) { return extractor_.extract(ev.desc, ev.slot, out_, bad_source_); }

  fw::ChannelMap map_ = reference_map();
  FeatureExtractor extractor_{map_, ExtractionConfig{8}};
  EventFeatures out_{};
  std::uint32_t bad_source_ = 99;
};

TEST_F(FeatureExtractorTest, MapsSourcesToSlotsInIdOrder) {
  ASSERT_EQ(map_.sources().size(), 3u);
  EXPECT_EQ(map_.slot_of(kEcalSource), 0u);
  EXPECT_EQ(map_.slot_of(kHcalSource), 1u);
  EXPECT_EQ(map_.slot_of(kMiscSource), 2u);
}

TEST_F(FeatureExtractorTest, ExtractsPedestalAmplitudePeakTimeAndEnergy) {
  const std::uint16_t c = cell_index(Detector::Ecal1, 2, 3);
  BuiltEvent ev(7);
  ev.add(0, msadc_block(7, {{1, 3 * 6 + 2, waveform(400, 10)}}));
  const auto r = run(ev);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(bad_source_, 99u) << "untouched on success";
  EXPECT_EQ(out_.channels, 1u);
  EXPECT_EQ(out_.unmapped, 0u);
  EXPECT_EQ(out_.pedestal_adc[c], 200.0f);
  EXPECT_EQ(out_.amplitude_adc[c], 400.0f);
  EXPECT_EQ(out_.peak_time_ns[c], 125.0f);
  EXPECT_EQ(out_.energy_gev[c], 25.0f);  // 400 x 1/16
  EXPECT_EQ(out_.ecal_gev, 25.0f);
  EXPECT_EQ(out_.preshower_gev, 0.0f);
  EXPECT_EQ(out_.hcal_gev, 0.0f);
  for (std::size_t k = 0; k < fw::kNumCells; ++k) {
    if (k != c) {
      EXPECT_EQ(out_.energy_gev[k], 0.0f) << "cell " << k;
    }
  }
}

TEST_F(FeatureExtractorTest, PedestalIsTheMeanOfTheFirstFourSamples) {
  auto s = waveform(100, 20);
  s[0] = 200;
  s[1] = 201;
  s[2] = 201;
  s[3] = 201;
  BuiltEvent ev(1);
  ev.add(0, msadc_block(1, {{0, 0, s}}));
  ASSERT_TRUE(run(ev).ok());
  EXPECT_EQ(out_.pedestal_adc[0], 200.75f);
  EXPECT_EQ(out_.amplitude_adc[0], 99.25f);
  EXPECT_EQ(out_.peak_time_ns[0], 250.0f);
}

TEST_F(FeatureExtractorTest, PeakTimeIsTheFirstMaximumTimesTheSamplePeriod) {
  std::vector<std::uint16_t> s(32, 200);
  s[31] = 300;
  BuiltEvent ev(1);
  ev.add(0, msadc_block(1, {{0, 5, s}}));
  ASSERT_TRUE(run(ev).ok());
  EXPECT_EQ(out_.peak_time_ns[5], 387.5f);
  s[30] = 300;
  ev = BuiltEvent(1);
  ev.add(0, msadc_block(1, {{0, 5, s}}));
  ASSERT_TRUE(run(ev).ok());
  EXPECT_EQ(out_.peak_time_ns[5], 375.0f);
}

TEST_F(FeatureExtractorTest, SuppressesAmplitudesBelowTheThreshold) {
  const std::uint16_t c = cell_index(Detector::Hcal2, 1, 1);
  BuiltEvent ev(3);
  ev.add(1, msadc_block(3, {{2, 4, waveform(7, 12)}, {2, 5, waveform(8, 12)}}));
  ASSERT_TRUE(run(ev).ok());
  EXPECT_EQ(out_.amplitude_adc[c], 7.0f);
  EXPECT_EQ(out_.energy_gev[c], 0.0f);
  EXPECT_EQ(out_.amplitude_adc[c + 1], 8.0f);
  EXPECT_EQ(out_.energy_gev[c + 1], 0.125f);  // 8 x 1/64: at the threshold, kept
  EXPECT_EQ(out_.hcal_gev, 0.125f);
}

TEST_F(FeatureExtractorTest, SumsPreshowerEcalAndHcal) {
  BuiltEvent ev(11);
  ev.add(0, msadc_block(11, {{0, 0, waveform(256, 8)},     // ECAL0 (0,0): 1 GeV
                             {0, 35, waveform(512, 8)},    // ECAL0 (5,5): 2 GeV
                             {1, 14, waveform(1024, 9)},   // ECAL1 (2,2): 64 GeV
                             {1, 15, waveform(160, 9)}}));  // ECAL1 (3,2): 10 GeV
  ev.add(1, msadc_block(11, {{0, 4, waveform(64, 10)},     // HCAL0: 1 GeV
                             {3, 8, waveform(32, 10)}}));  // HCAL3: 0.5 GeV
  ASSERT_TRUE(run(ev).ok());
  EXPECT_EQ(out_.channels, 6u);
  EXPECT_EQ(out_.preshower_gev, 3.0f);
  EXPECT_EQ(out_.ecal_gev, 77.0f);
  EXPECT_EQ(out_.hcal_gev, 1.5f);
  EXPECT_EQ(out_.energy_gev[cell_index(Detector::Hcal3, 2, 2)], 0.5f);
}

TEST_F(FeatureExtractorTest, GivesSrdPerModuleAndVetoAsTheMeanOfItsTwoPmts) {
  BuiltEvent ev(2);
  ev.add(2, msadc_block(2, {{0, 0, waveform(82, 12)},    // SRD 0: 82/8192
                            {0, 1, waveform(164, 12)},   // SRD 1
                            {0, 2, waveform(328, 12)},   // SRD 2
                            {0, 16, waveform(100, 12)},  // VETO 0 PMT 0
                            {0, 17, waveform(60, 12)},   // VETO 0 PMT 1
                            {0, 21, waveform(200, 12)},  // VETO 2 PMT 1
                            {0, 32, waveform(1000, 12)}}));
  ASSERT_TRUE(run(ev).ok());
  EXPECT_EQ(out_.srd_gev[0], 82.0f / 8192);
  EXPECT_EQ(out_.srd_gev[1], 164.0f / 8192);
  EXPECT_EQ(out_.srd_gev[2], 328.0f / 8192);
  EXPECT_EQ(out_.veto_gev[0], 80.0f / 16384);
  EXPECT_EQ(out_.veto_gev[1], 0.0f);
  EXPECT_EQ(out_.veto_gev[2], 100.0f / 16384);
  EXPECT_EQ(out_.energy_gev[cell_index(Detector::S0, 0, 0)], 1000.0f / 1024);
  EXPECT_EQ(out_.ecal_gev, 0.0f);
  EXPECT_EQ(out_.hcal_gev, 0.0f);
}

TEST_F(FeatureExtractorTest, CountsAndIgnoresUnmappedChannels) {
  BuiltEvent ev(4);
  ev.add(2, msadc_block(4, {{0, 0, waveform(82, 12)}, {0, 50, waveform(3000, 12)}, {5, 1, waveform(3000, 12)}}));
  ASSERT_TRUE(run(ev).ok());
  EXPECT_EQ(out_.channels, 3u);
  EXPECT_EQ(out_.unmapped, 2u);
  EXPECT_EQ(out_.srd_gev[0], 82.0f / 8192);
  float total = 0;
  for (float e : out_.energy_gev) total += e;
  EXPECT_EQ(total, 82.0f / 8192);
}

TEST_F(FeatureExtractorTest, CountsChannelsOfASourceWithoutMapLinesAsUnmapped) {
  // Slot 3 has no line in the map (the map knows 3 sources).
  BuiltEvent ev(4);
  ev.add(3, msadc_block(4, {{0, 0, waveform(500, 12)}, {7, 63, waveform(500, 12)}}));
  ASSERT_TRUE(run(ev).ok());
  EXPECT_EQ(out_.channels, 2u);
  EXPECT_EQ(out_.unmapped, 2u);
  EXPECT_EQ(out_.ecal_gev, 0.0f);
}

TEST_F(FeatureExtractorTest, CountsMappedChannelsTheFragmentsLack) {
  BuiltEvent ev(3);
  ev.add(0, msadc_block(3, {{0, 0, waveform(100, 12)}, {1, 7, waveform(100, 12)}}));  // 2 of 72
  ev.add(2, msadc_block(3, {{0, 0, waveform(100, 12)}}));                             // 1 of 12
  ASSERT_TRUE(run(ev).ok());
  EXPECT_EQ(out_.missing_channels, 70u + 11u);
  EXPECT_EQ(out_.first_missing_source, 0u);

  std::vector<Channel> all;
  for (const auto& e : map_.channels_of(2)) all.push_back({e.port, e.chip_channel, waveform(10, 12)});
  BuiltEvent whole(4);
  whole.add(2, msadc_block(4, all));
  ASSERT_TRUE(run(whole).ok());
  EXPECT_EQ(out_.missing_channels, 0u);
}

TEST_F(FeatureExtractorTest, ReturnsTheErrorAndSourceOfACorruptFragment) {
  BuiltEvent ev(5);
  ev.add(0, msadc_block(5, {{0, 0, waveform(100, 12)}}));
  auto bad = msadc_block(5, {{0, 0, waveform(100, 12)}, {0, 1, waveform(100, 12)}});
  // Word 0 ADC header, 1 channel header, 2-17 data: break the second data word.
  bad[3] &= 0x00FFFFFFu;
  ev.add(2, bad);
  const auto r = run(ev);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, fw::DecodeErrc::BadMarker);
  EXPECT_EQ(r.error().offset_bytes, 12u);
  EXPECT_EQ(r.error().found, 0u);
  EXPECT_EQ(r.error().expected, 0x80u);
  EXPECT_EQ(r.error().message(), "offset 12 (0xc): data word marker: found 0 (0x0), expected 128 (0x80) [bad-marker]");
  EXPECT_EQ(bad_source_, 2u);
}

TEST_F(FeatureExtractorTest, DetectsAnAdcEventNumberThatDiffersFromTheEvent) {
  BuiltEvent ev(6);
  ev.add(0, msadc_block(6, {{0, 0, waveform(100, 12)}}));
  ev.add(1, msadc_block(5, {{0, 0, waveform(100, 12)}}));
  const auto r = run(ev);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, fw::DecodeErrc::EventNumberMismatch);
  EXPECT_EQ(r.error().offset_bytes, 0u);
  EXPECT_EQ(r.error().found, 5u);
  EXPECT_EQ(r.error().expected, 6u);
  EXPECT_EQ(bad_source_, 1u);
}

TEST_F(FeatureExtractorTest, ComparesOnlyTheLowTwelveBitsOfTheEventNumber) {
  BuiltEvent ev(4096 + 6);
  ev.add(0, msadc_block(6, {{0, 0, waveform(100, 12)}}));
  EXPECT_TRUE(run(ev).ok());
}

TEST_F(FeatureExtractorTest, ClearsCellsNotReadInTheNextEvent) {
  const std::uint16_t c = cell_index(Detector::Ecal0, 1, 0);
  BuiltEvent first(1);
  first.add(0, msadc_block(1, {{0, 1, waveform(400, 10)}}));
  ASSERT_TRUE(run(first).ok());
  ASSERT_EQ(out_.pedestal_adc[c], 200.0f);
  BuiltEvent second(2);
  second.add(0, msadc_block(2, {{0, 2, waveform(400, 11)}}));
  ASSERT_TRUE(run(second).ok());
  EXPECT_EQ(out_.energy_gev[c], 0.0f);
  EXPECT_EQ(out_.amplitude_adc[c], 0.0f);
  EXPECT_EQ(out_.pedestal_adc[c], 0.0f);
  EXPECT_EQ(out_.peak_time_ns[c], 0.0f);
  EXPECT_EQ(out_.peak_time_ns[c + 1], 137.5f);
  EXPECT_EQ(out_.channels, 1u);
}

}  // namespace
}  // namespace na64::trigger
