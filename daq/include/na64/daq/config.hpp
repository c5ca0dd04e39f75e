// SPDX-License-Identifier: Apache-2.0
// The configuration as the rest of the system uses it, loaded from Protobuf
// text format and checked field by field.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "na64/drivers/beam.hpp"
#include "na64/drivers/emulated_msadc.hpp"
#include "na64/eventbuilder/event_builder.hpp"
#include "na64/firmware/channel_map.hpp"
#include "na64/trigger/features.hpp"
#include "na64/trigger/menu.hpp"

namespace na64::daq {

inline constexpr std::uint32_t kMaxParticlesPerSpill = 10'000'000;

struct RunSettings {
  std::string output_dir = "data";
  double spill_cycle_s = 0;  ///< 0: back to back
  std::uint32_t gdc_id = 1;
  std::uint32_t ldc_id = 1;
  std::uint64_t max_chunk_bytes = 1ull << 30;
};

struct DaqConfig {
  RunSettings run;
  drivers::BeamParameters beam;
  drivers::EmulatorParameters emulator;
  firmware::ChannelMap channel_map{{}};
  trigger::ThresholdSet thresholds;
  trigger::ExtractionConfig extraction;
  eventbuilder::BuilderConfig builder;
  std::uint32_t ring_slots = 4096;
  std::string text;  ///< the configuration exactly as read
  std::array<std::uint8_t, 32> hash{};  ///< SHA-256 of `text`
};

/// 64 lower-case hex digits.
[[nodiscard]] std::string to_hex(std::span<const std::uint8_t> bytes);

/// Checks a threshold set; ConfigError "origin: prefix.field: ..." naming
/// the first field out of range.
void check_thresholds(const trigger::ThresholdSet& t, std::string_view origin, std::string_view prefix);

/// Creates run.output_dir if needed and checks that files can be created in
/// it; ConfigError "origin: run.output_dir: ..." otherwise.
void check_output_dir(const DaqConfig& config, std::string_view origin);

/// The embedded default (daq/config/default.textproto).
[[nodiscard]] std::string_view default_config_text() noexcept;

/// Parses and checks a configuration. `origin` names it in messages (a file
/// path). Throws ConfigError: "origin: field.path: what is wrong", or
/// "origin:line:column: ..." for syntax errors and unknown fields.
[[nodiscard]] DaqConfig load_config(std::string_view text, std::string_view origin);

/// Reads a file and loads it; ConfigError if it cannot be read.
[[nodiscard]] DaqConfig load_config_file(const std::string& path);

}  // namespace na64::daq
