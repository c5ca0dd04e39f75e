// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/slink.hpp"

namespace na64::firmware {

void encode(const SlinkHeader& h, std::span<std::uint32_t, kSlinkHeaderWords> out) noexcept {
  out[0] = (h.size_words & 0xFFFFu) | ((h.source_id & 0x3FFu) << 16) | ((h.event_type & 0x1Fu) << 26) |
           (static_cast<std::uint32_t>(h.error) << 31);
  out[1] = (h.event_in_spill & 0xFFFFFu) | ((h.spill & 0x7FFu) << 20);
  out[2] = std::uint32_t{h.status} | (std::uint32_t{h.tcs_error} << 8) |
           (std::uint32_t{h.error_words} << 16) | (std::uint32_t{h.format} << 24);
}

Decoded<SlinkHeader> decode_slink_header(std::span<const std::uint32_t> w,
                                         std::size_t offset_bytes) noexcept {
  auto fail = [&](DecodeErrc code, std::size_t word, std::uint64_t found, std::uint64_t expected,
                  const char* field, const char* rule = nullptr) {
    return DecodeError{code, offset_bytes + word * 4, found, expected, field, rule};
  };
  if (w.size() < kSlinkHeaderWords) {
    return fail(DecodeErrc::Truncated, 0, w.size() * 4, kSlinkHeaderWords * 4,
                "S-Link header bytes available", ">= 12");
  }
  SlinkHeader h;
  h.size_words = w[0] & 0xFFFFu;
  h.source_id = (w[0] >> 16) & 0x3FFu;
  h.event_type = (w[0] >> 26) & 0x1Fu;
  h.error = (w[0] >> 31) != 0;
  h.event_in_spill = w[1] & 0xFFFFFu;
  h.spill = (w[1] >> 20) & 0x7FFu;
  h.status = static_cast<std::uint8_t>(w[2]);
  h.tcs_error = static_cast<std::uint8_t>(w[2] >> 8);
  h.error_words = static_cast<std::uint8_t>(w[2] >> 16);
  h.format = static_cast<std::uint8_t>(w[2] >> 24);

  if (h.size_words < kSlinkHeaderWords) {
    return fail(DecodeErrc::BadSize, 0, h.size_words, 0, "S-Link size in words", ">= 3");
  }
  if (h.size_words > w.size()) {
    return fail(DecodeErrc::SizeMismatch, 0, h.size_words, w.size(), "S-Link size in words",
                "<= the words of its equipment");
  }
  if (h.source_id > kMaxSourceId) {
    return fail(DecodeErrc::BadSourceId, 0, h.source_id, 0, "S-Link source id", "< 896");
  }
  if (h.error) return fail(DecodeErrc::SlinkErrorFlag, 0, 1, 0, "S-Link error flag");
  if (h.tcs_error != kTcsErrorOk) {
    return fail(DecodeErrc::BadTcsError, 2, h.tcs_error, kTcsErrorOk, "S-Link TCS error byte");
  }
  if (h.error_words != 0) {
    return fail(DecodeErrc::ErrorWords, 2, h.error_words, 0, "S-Link error-word count");
  }
  if ((h.format & 0x80u) != 0) {
    return fail(DecodeErrc::BadFormatByte, 2, h.format, 0, "S-Link format byte", "bit 7 clear");
  }
  return h;
}

}  // namespace na64::firmware
