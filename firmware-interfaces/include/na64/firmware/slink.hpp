// SPDX-License-Identifier: Apache-2.0
// S-Link header, 3 words (DOMAIN.md 4.4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "na64/firmware/decode_error.hpp"

namespace na64::firmware {

inline constexpr std::size_t kSlinkHeaderWords = 3;
/// Source ids from 896 to 1023 name multiplexers; a data source is below.
inline constexpr std::uint32_t kMaxSourceId = 895;
/// TCS error byte with bit 3 (ECC OK) set and no error.
inline constexpr std::uint8_t kTcsErrorOk = 0x08;

struct SlinkHeader {
  std::uint32_t size_words = kSlinkHeaderWords;  ///< 16 bits; the 3 header words included
  std::uint32_t source_id = 0;                   ///< 10 bits, < 896
  std::uint32_t event_type = 0;                  ///< 5 bits
  bool error = false;
  std::uint32_t event_in_spill = 0;  ///< 20 bits, equals the DATE event number in burst
  std::uint32_t spill = 0;           ///< 11 bits
  std::uint8_t status = 0;
  std::uint8_t tcs_error = kTcsErrorOk;
  std::uint8_t error_words = 0;
  std::uint8_t format = 0;  ///< bit 7 must be 0
};

void encode(const SlinkHeader& h, std::span<std::uint32_t, kSlinkHeaderWords> out) noexcept;

/// Reads an S-Link header and checks it on its own: size >= 3 and within
/// `words`, source id < 896, error flag 0, TCS byte 0x08, no error words,
/// format bit 7 clear. Agreement with the DATE header is checked by the event
/// walker (date_event.hpp).
[[nodiscard]] Decoded<SlinkHeader> decode_slink_header(std::span<const std::uint32_t> words,
                                                       std::size_t offset_bytes) noexcept;

}  // namespace na64::firmware
