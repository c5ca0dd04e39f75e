// SPDX-License-Identifier: Apache-2.0
// DATE 3.6 event header and equipment header, COMPASS flavour (DOMAIN.md 4.2, 4.3).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "na64/firmware/decode_error.hpp"

namespace na64::firmware {

inline constexpr std::uint32_t kDateMagic = 0xDA1E5AFEu;
inline constexpr std::uint32_t kDateVersion = 0x00030006u;
inline constexpr std::size_t kDateHeaderWords = 17;
inline constexpr std::uint32_t kDateHeaderBytes = kDateHeaderWords * 4;
inline constexpr std::size_t kEquipmentHeaderWords = 7;
inline constexpr std::uint32_t kEquipmentHeaderBytes = kEquipmentHeaderWords * 4;
/// Event number in burst: 20 bits of DATE word 7 and of S-Link word 1.
inline constexpr std::uint32_t kMaxEventInSpill = (1u << 20) - 1;
/// Spill number: 11 bits in the S-Link header (12 in DATE); the smaller rules.
inline constexpr std::uint32_t kMaxSpill = (1u << 11) - 1;
/// DATE word 13 (third type-attribute word), bit 4: the body holds sub-events.
inline constexpr std::uint32_t kSuperEventAttribute = 1u << 4;

enum class EventType : std::uint32_t {
  StartOfRun = 1,
  EndOfRun = 2,
  StartOfBurst = 5,
  EndOfBurst = 6,
  Physics = 7,
  Calibration = 8,
};

[[nodiscard]] const char* to_string(EventType type) noexcept;

/// The decoder reads equipment blocks only in these types.
[[nodiscard]] constexpr bool carries_equipment(EventType t) noexcept {
  return t == EventType::EndOfBurst || t == EventType::Physics || t == EventType::Calibration;
}

/// DATE event header, version 3.6 (17 words).
struct DateHeader {
  std::uint32_t size_bytes = kDateHeaderBytes;  ///< header included
  EventType type = EventType::Physics;
  std::uint32_t run = 0;                ///< never 0
  std::uint32_t event_in_run = 0;       ///< word 6
  std::uint32_t spill = 0;              ///< word 7 bits 20-31
  std::uint32_t event_in_spill = 0;     ///< word 7 bits 0-19
  std::uint32_t trigger_mask = 0;       ///< words 8-9 as the decoder reads them
  std::uint32_t detector_pattern = 0;   ///< word 10
  std::array<std::uint32_t, 3> attributes{};  ///< words 11-13
  std::uint32_t ldc_id = 0;
  std::uint32_t gdc_id = 0;
  std::uint32_t time_s = 0;             ///< Unix seconds

  [[nodiscard]] bool super_event() const noexcept {
    return (attributes[2] & kSuperEventAttribute) != 0;
  }
};

/// Writes the 17 header words. Word 8 = (mask << 1) | 1, word 9 = mask >> 31,
/// so that the decoder's (w8 >> 1) | (w9 << 31) gives back the mask.
void encode(const DateHeader& h, std::span<std::uint32_t, kDateHeaderWords> out) noexcept;

/// Reads and validates a DATE header at the start of `words` (which may hold
/// the whole rest of the buffer). `offset_bytes` is where `words` begins in
/// the caller's buffer or file, used in errors. Checks magic, header length,
/// version, type (known, bit 17 clear), run != 0, size (>= 68, multiple of 4,
/// not beyond `words`).
[[nodiscard]] Decoded<DateHeader> decode_date_header(std::span<const std::uint32_t> words,
                                                     std::size_t offset_bytes) noexcept;

/// DATE equipment header (7 words); its payload is one S-Link block.
struct EquipmentHeader {
  std::uint32_t size_bytes = kEquipmentHeaderBytes;  ///< header included
  std::uint32_t type = 0;
  std::uint32_t id = 0;
  std::array<std::uint32_t, 3> attributes{};
  std::uint32_t basic_element_size = 4;
};

void encode(const EquipmentHeader& h, std::span<std::uint32_t, kEquipmentHeaderWords> out) noexcept;

/// Reads an equipment header; checks size (>= 28, multiple of 4, within `words`).
[[nodiscard]] Decoded<EquipmentHeader> decode_equipment_header(std::span<const std::uint32_t> words,
                                                               std::size_t offset_bytes) noexcept;

}  // namespace na64::firmware
