// SPDX-License-Identifier: Apache-2.0
// What na64daq adds to the DATE stream so that a file alone tells how it was
// taken (raw-data format v2, README.md):
//   - the start-of-run event's body is one configuration record: the
//     configuration text exactly as used and its SHA-256;
//   - every physics event's user type attributes (DATE words 11 and 12) are
//     its trigger record: the threshold-set id in force, and the shadow
//     set's id and the lines it fired.
// The decoder reads equipment only in types 6, 7 and 8 and does not look at
// words 11-12, so neither changes what it reads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "na64/firmware/date.hpp"
#include "na64/firmware/decode_error.hpp"

namespace na64::firmware {

/// Equipment type of the configuration record in a start-of-run event.
inline constexpr std::uint32_t kConfigRecordType = 100;
inline constexpr std::uint32_t kConfigRecordVersion = 1;
/// Equipment header, version, 8 hash words, text length.
inline constexpr std::size_t kConfigRecordFixedWords = kEquipmentHeaderWords + 1 + 8 + 1;
/// Shadow-set ids fit in 24 bits of word 12.
inline constexpr std::uint32_t kMaxShadowSetId = (1u << 24) - 1;

struct ConfigRecordView {
  std::array<std::uint8_t, 32> sha256{};
  std::string_view text;  ///< points into the decoded words
};

[[nodiscard]] constexpr std::size_t config_record_words(std::size_t text_bytes) noexcept {
  return kConfigRecordFixedWords + (text_bytes + 3) / 4;
}

/// Writes the record (an equipment block) into `out`; returns its words,
/// 0 if `out` is too small.
[[nodiscard]] std::size_t write_config_record(std::span<std::uint32_t> out, std::span<const std::uint8_t, 32> sha256,
                                              std::string_view text) noexcept;

/// Reads the record that fills the body of a start-of-run event.
[[nodiscard]] Decoded<ConfigRecordView> read_config_record(std::span<const std::uint32_t> body,
                                                           std::size_t offset_bytes) noexcept;

/// The trigger record of a physics event.
struct TriggerRecord {
  std::uint32_t threshold_set = 0;  ///< word 11
  std::uint32_t shadow_set = 0;     ///< word 12 bits 8-31; 0: none
  std::uint32_t shadow_mask = 0;    ///< word 12 bits 0-7: lines the shadow set fired
};

inline void put_trigger_record(DateHeader& h, const TriggerRecord& r) noexcept {
  h.attributes[0] = r.threshold_set;
  h.attributes[1] = (r.shadow_set << 8) | (r.shadow_mask & 0xFFu);
}
[[nodiscard]] inline TriggerRecord trigger_record(const DateHeader& h) noexcept {
  return {h.attributes[0], h.attributes[1] >> 8, h.attributes[1] & 0xFFu};
}

/// Why a physics event of the two-level readout lacks a source's data. The
/// source is still written, as an equipment with an empty S-Link block (so
/// that the decoder finds every mapped source), and this reason in the
/// equipment header's attribute word 0; 0 for a source with its data.
enum class MissingReason : std::uint8_t {
  None = 0,
  Late = 1,            ///< no answer in time (the completion timeout), or the board answered too late
  LostSource = 2,      ///< the source was lost (unplugged, disconnected, silent past the builder timeout)
  BufferOverflow = 3,  ///< the board's latency buffer was full when the particle came
  NotFound = 4,        ///< the front-end never recorded the event
  Refused = 5,         ///< the front-end refused the request (bad request)
  NoSummary = 6,       ///< the board sent no summary of the particle, so it was not requested
};
inline constexpr std::size_t kNumMissingReasons = 7;
[[nodiscard]] const char* to_string(MissingReason r) noexcept;

}  // namespace na64::firmware
