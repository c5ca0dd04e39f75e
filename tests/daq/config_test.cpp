// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/config.hpp"

#include <gtest/gtest.h>

#include <string>

#include "na64/daq/error.hpp"

namespace na64::daq {
namespace {

constexpr const char* kOneSource = R"(
source { id: 620 block { detector: "ECAL1" port: 1 gev_per_count: 0.025 } }
)";

std::string error_of(const std::string& text) {
  try {
    (void)load_config(text, "test.textproto");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Config, EmbeddedDefaultLoads) {
  const DaqConfig c = load_config(default_config_text(), "embedded default");
  EXPECT_EQ(c.channel_map.sources().size(), 3u);
  EXPECT_EQ(c.channel_map.entries().size(), 120u);
  EXPECT_EQ(c.beam.particles_per_spill, 20000u);
  EXPECT_FLOAT_EQ(c.thresholds.ecal_max_gev, 50.0f);
  EXPECT_FLOAT_EQ(c.thresholds.hcal_max_gev, 1.0f);
  EXPECT_EQ(c.run.gdc_id, 1u);
  EXPECT_EQ(c.builder.timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(c.text, std::string(default_config_text()));
}

TEST(Config, MinimalConfigTakesSchemaDefaults) {
  const DaqConfig c = load_config(kOneSource, "t");
  EXPECT_EQ(c.channel_map.entries().size(), 36u);
  EXPECT_DOUBLE_EQ(c.beam.energy_gev, 100.0);
  EXPECT_EQ(c.thresholds.beam_prescale, 1000u);
  EXPECT_EQ(c.extraction.zero_suppression_adc, 8u);
  // ECAL1 (3, 2) sits on chip channel 2 * 6 + 3 = 15.
  EXPECT_EQ(c.channel_map.cell_of(0, 1, 15), firmware::cell_index(firmware::Detector::Ecal1, 3, 2));
}

TEST(Config, RejectsUnknownFieldWithLineAndColumn) {
  EXPECT_EQ(error_of("beam { energy: 100 }\n"),
            "test.textproto:1:14: Message type \"na64.config.Beam\" has no field named \"energy\".");
}

TEST(Config, RejectsOutOfRangeWithFieldPath) {
  EXPECT_EQ(error_of(std::string(kOneSource) + "trigger { ecal_max_gev: 900 }"),
            "test.textproto: trigger.ecal_max_gev: 900 is out of range [0, 400]");
  EXPECT_EQ(error_of(std::string(kOneSource) + "beam { particles_per_spill: 0 }"),
            "test.textproto: beam.particles_per_spill: 0 is out of range [1, 10000000]");
}

TEST(Config, RejectsConfigWithoutSources) {
  EXPECT_EQ(error_of("beam { seed: 3 }"), "test.textproto: source: at least one source is required");
}

TEST(Config, RejectsUnknownDetector) {
  EXPECT_EQ(error_of(R"(source { id: 1 block { detector: "ECAL9" port: 0 gev_per_count: 1 } })"),
            "test.textproto: source[0].block[0].detector: unknown detector \"ECAL9\" (known: ECAL0 ECAL1 HCAL0 "
            "HCAL1 HCAL2 HCAL3 SRD VETO S0 S1 S2)");
}

TEST(Config, RejectsMissingPortAndSourceId) {
  EXPECT_EQ(error_of(R"(source { id: 1 block { detector: "SRD" gev_per_count: 1 } })"),
            "test.textproto: source[0].block[0].port: missing");
  EXPECT_EQ(error_of(R"(source { block { detector: "SRD" port: 0 gev_per_count: 1 } })"),
            "test.textproto: source[0].id: missing");
}

TEST(Config, RejectsBlockPastTheLastChipChannel) {
  EXPECT_EQ(error_of(R"(source { id: 1 block { detector: "ECAL0" port: 0 first_chip_channel: 40 gev_per_count: 1 } })"),
            "test.textproto: source[0].block[0].first_chip_channel: 40 is out of range [0, 28]");
}

TEST(Config, RejectsDuplicateSourceAndDoubleMappedChannel) {
  EXPECT_EQ(error_of(R"(source { id: 5 block { detector: "SRD" port: 0 gev_per_count: 1 } }
                        source { id: 5 block { detector: "VETO" port: 0 gev_per_count: 1 } })"),
            "test.textproto: source[1].id: source 5 is listed twice");
  EXPECT_EQ(error_of(R"(source { id: 5 block { detector: "SRD" port: 0 gev_per_count: 1 }
                                   block { detector: "VETO" port: 0 first_chip_channel: 2 gev_per_count: 1 } })"),
            "test.textproto: source: channel (source 5, port 0, chip channel 2) is mapped twice");
}

TEST(Config, RejectsSourceIdOfMultiplexer) {
  EXPECT_EQ(error_of(R"(source { id: 900 block { detector: "SRD" port: 0 gev_per_count: 1 } })"),
            "test.textproto: source[0].id: 900 is out of range [0, 895]");
}

TEST(Config, DeadCellNamesAMappedCellAndItsFirstSpill) {
  const DaqConfig c = load_config(
      std::string(kOneSource) + R"(emulator { dead_cell { detector: "ECAL1" x: 3 y: 4 from_spill: 2 } })", "t");
  EXPECT_EQ(c.emulator.dead_cell, firmware::cell_index(firmware::Detector::Ecal1, 3, 4));
  EXPECT_EQ(c.emulator.dead_from_spill, 2u);
  const DaqConfig from_start =
      load_config(std::string(kOneSource) + R"(emulator { dead_cell { detector: "ECAL1" x: 0 y: 0 } })", "t");
  EXPECT_EQ(from_start.emulator.dead_from_spill, 1u);
  EXPECT_EQ(load_config(kOneSource, "t").emulator.dead_from_spill, 0u) << "no dead cell unless asked";
}

TEST(Config, RejectsADeadCellOutsideItsDetectorOrNotMapped) {
  const auto with = [](const std::string& dead) {
    return error_of(std::string(kOneSource) + "emulator { dead_cell { " + dead + " } }");
  };
  EXPECT_EQ(with(R"(detector: "ECAL1" x: 6 y: 0)"), "test.textproto: emulator.dead_cell.x: 6 is out of range [0, 5]");
  EXPECT_EQ(with(R"(detector: "SRD" x: 1 y: 1)"), "test.textproto: emulator.dead_cell.y: 1 is out of range [0, 0]");
  EXPECT_EQ(with(R"(detector: "ECAL1" y: 1)"), "test.textproto: emulator.dead_cell.x: missing");
  EXPECT_EQ(with(R"(detector: "ECAL7" x: 1 y: 1)"),
            "test.textproto: emulator.dead_cell.detector: unknown detector \"ECAL7\" (known: ECAL0 ECAL1 HCAL0 HCAL1 "
            "HCAL2 HCAL3 SRD VETO S0 S1 S2)");
  EXPECT_EQ(with(R"(detector: "HCAL0" x: 1 y: 1)"),
            "test.textproto: emulator.dead_cell: HCAL0 cell (1,1) is not mapped by any source");
  EXPECT_EQ(with(R"(detector: "ECAL1" x: 1 y: 1 from_spill: 0)"),
            "test.textproto: emulator.dead_cell.from_spill: 0 is out of range [1, 2047]");
}

TEST(Config, RejectsSyntaxError) {
  EXPECT_EQ(error_of("source { id: 620 "), "test.textproto:1:18: Expected identifier, got: ");
}

}  // namespace
}  // namespace na64::daq
