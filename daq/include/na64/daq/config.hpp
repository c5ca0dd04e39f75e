// SPDX-License-Identifier: Apache-2.0
// The configuration as the rest of the system uses it, loaded from Protobuf
// text format and checked field by field.
#pragma once

#include <array>
#include <chrono>
#include <optional>
#include <vector>
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

enum class ReadoutMode : std::uint8_t { Direct, TwoLevel };

struct UsbBoardSettings {
  std::uint32_t source = 0;
  std::optional<std::uint8_t> bus;
  std::optional<std::uint8_t> address;
  std::uint16_t vendor_id = 0x1209;
  std::uint16_t product_id = 0x0001;
};

enum class TrackerKind : std::uint8_t { Micromegas, Gem, Straw };
[[nodiscard]] const char* to_string(TrackerKind k) noexcept;

struct TrackerSettings {
  TrackerKind kind = TrackerKind::Micromegas;
  std::uint32_t source = 0;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: an emulated front-end started by the run
};

struct ReadoutSettings {
  ReadoutMode mode = ReadoutMode::Direct;
  std::uint32_t latency_depth = 65536;
  std::chrono::milliseconds completion_timeout{1000};
  std::vector<UsbBoardSettings> usb;
  std::vector<TrackerSettings> trackers;
  std::string record_dir;  ///< empty: no recording
  std::string replay_dir;  ///< empty: read the boards
  bool replay_paced = false;
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
  ReadoutSettings readout;
  std::string text;  ///< the configuration exactly as read
  std::array<std::uint8_t, 32> hash{};  ///< SHA-256 of `text`
};

/// A register value the run writes into a board.
struct RegisterValue {
  std::uint32_t address = 0;
  std::uint32_t value = 0;
};
/// The registers the two-level readout writes into every MSADC board at the
/// start of a run (and a board taken back after a loss gets again): source
/// id, readout mode (summaries of amplitudes), zero-suppression threshold
/// (trigger.zero_suppression_adc), latency depth, sample count.
[[nodiscard]] std::array<RegisterValue, 5> board_registers(const DaqConfig& config, std::uint32_t source);

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
