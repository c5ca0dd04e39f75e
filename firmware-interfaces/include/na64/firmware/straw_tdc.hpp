// SPDX-License-Identifier: Apache-2.0
// NA64 straw TDC format, version 1, for the straw-tube planes ST1-ST4 (the
// collaboration's own format is not public; this one is defined here and in
// the README section "Straw TDC blocks"). A run of TDC blocks, each
//   header, trigger word, hit words..., trailer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "na64/firmware/decode_error.hpp"

namespace na64::firmware {

inline constexpr std::uint32_t kStrawTdcVersion = 1;
// Key in bits 28-31 of the framing words; hit words have bit 31 clear.
inline constexpr std::uint32_t kStrawHeaderKey = 0xA;
inline constexpr std::uint32_t kStrawTriggerKey = 0xC;
inline constexpr std::uint32_t kStrawTrailerKey = 0xE;
/// Header, trigger word and trailer.
inline constexpr std::size_t kStrawFramingWords = 3;
inline constexpr std::uint32_t kStrawChannels = 64;          ///< per TDC, hit word bits 25-30
inline constexpr std::uint32_t kStrawMaxTdcId = 0xFF;        ///< header bits 16-23
inline constexpr std::uint32_t kStrawMaxTimeTicks = 0xFFFFFF;  ///< hit word bits 0-23
/// LSB of the hit time: 100 ps, so the 24-bit field spans 1.68 ms.
inline constexpr std::uint32_t kStrawTickPs = 100;
/// Header word count: 16 bits, all words of the block included.
inline constexpr std::uint32_t kStrawMaxBlockWords = 0xFFFF;

enum class StrawEdge : std::uint8_t {
  Leading = 0,   ///< the discriminator output rose (drift time)
  Trailing = 1,  ///< it fell (with the leading edge, time over threshold)
};

/// Header: bits 0-15 word count (whole block), 16-23 TDC id, 24-27 version, 28-31 key 0xA.
[[nodiscard]] constexpr std::uint32_t straw_header_word(std::uint32_t size_words, std::uint32_t tdc_id) noexcept {
  return (size_words & 0xFFFFu) | ((tdc_id & 0xFFu) << 16) | (kStrawTdcVersion << 24) | (kStrawHeaderKey << 28);
}

/// Trigger word: bits 0-11 event number & 0xFFF, 12-22 spill & 0x7FF, 23-27 reserved 0, 28-31 key 0xC.
[[nodiscard]] constexpr std::uint32_t straw_trigger_word(std::uint32_t event_number, std::uint32_t spill) noexcept {
  return (event_number & 0xFFFu) | ((spill & 0x7FFu) << 12) | (kStrawTriggerKey << 28);
}

/// Hit word: bits 0-23 time in 100 ps ticks from the start of the trigger
/// window, 24 edge (1 trailing), 25-30 channel, 31 = 0.
[[nodiscard]] constexpr std::uint32_t straw_hit_word(std::uint32_t channel, StrawEdge edge,
                                                     std::uint32_t time_ticks) noexcept {
  return (time_ticks & kStrawMaxTimeTicks) | (static_cast<std::uint32_t>(edge) << 24) | ((channel & 0x3Fu) << 25);
}

/// Trailer: bits 0-15 hit count, 16-27 reserved 0, 28-31 key 0xE.
[[nodiscard]] constexpr std::uint32_t straw_trailer_word(std::uint32_t hit_count) noexcept {
  return (hit_count & 0xFFFFu) | (kStrawTrailerKey << 28);
}

/// Builds a straw TDC block in caller-owned memory. No allocation.
///
/// Usage: begin_tdc(id) then add_hit() per hit, repeat, then finish(). Any
/// call that would overflow `out` or breaks a field range returns false and
/// the writer stays failed; finish() then returns 0.
class StrawTdcBlockWriter {
 public:
  /// `event_number`'s low 12 bits and `spill`'s low 11 bits go into every trigger word.
  StrawTdcBlockWriter(std::span<std::uint32_t> out, std::uint32_t event_number, std::uint32_t spill) noexcept
      : out_(out), trigger_word_(straw_trigger_word(event_number, spill)) {}

  /// Starts a TDC block (header and trigger word); tdc_id 0-255, each once per block.
  [[nodiscard]] bool begin_tdc(std::uint32_t tdc_id) noexcept;

  /// channel 0-63, time_ticks 0-0xFFFFFF (100 ps each).
  [[nodiscard]] bool add_hit(std::uint32_t channel, StrawEdge edge, std::uint32_t time_ticks) noexcept;

  /// Closes the last TDC block. Returns the words written, 0 if any call failed.
  [[nodiscard]] std::size_t finish() noexcept;

 private:
  static constexpr std::size_t kNone = ~std::size_t{0};

  /// Writes the trailer and the header's word count.
  void close_tdc() noexcept;
  bool fail() noexcept {
    failed_ = true;
    return false;
  }

  std::span<std::uint32_t> out_;
  std::uint32_t trigger_word_;
  std::size_t pos_ = 0;
  std::size_t header_pos_ = kNone;
  std::uint32_t tdc_id_ = 0;
  std::array<std::uint64_t, (kStrawMaxTdcId + 1) / 64> tdcs_seen_{};
  bool failed_ = false;
};

/// One decoded hit.
struct StrawHit {
  std::uint32_t tdc_id = 0;
  std::uint32_t channel = 0;  ///< 0-63 within the TDC
  StrawEdge edge = StrawEdge::Leading;
  std::uint32_t time_ticks = 0;  ///< 100 ps each, from the start of the trigger window

  [[nodiscard]] std::uint64_t time_ps() const noexcept { return std::uint64_t{time_ticks} * kStrawTickPs; }
};

/// Walks a straw TDC block and calls `on_hit(const StrawHit&)` for each hit,
/// in order. Validates every header (key, version, word count >= 3 and within
/// the block, TDC id once per block), trigger word (key, reserved bits, event
/// number = `event_number` & 0xFFF, spill = `spill` & 0x7FF), trailer (key,
/// reserved bits, hit count = word count - 3) and hit word key (bit 31 clear).
/// A TDC's framing is checked before its hits are visited. Stops at the first
/// error and returns it, with the byte offset `offset_bytes` + position. Hits
/// visited before an error have been delivered; a caller that must be
/// all-or-nothing validates first with a no-op visitor.
template <class OnHit>
[[nodiscard]] Decoded<Checked> decode_straw_tdc(std::span<const std::uint32_t> block, std::uint32_t event_number,
                                                std::uint32_t spill, std::size_t offset_bytes,
                                                OnHit&& on_hit) noexcept {
  auto fail = [&](DecodeErrc code, std::size_t word, std::uint64_t found, std::uint64_t expected,
                  const char* field, const char* rule = nullptr) {
    return DecodeError{code, offset_bytes + word * 4, found, expected, field, rule};
  };
  std::array<std::uint64_t, (kStrawMaxTdcId + 1) / 64> seen{};
  const std::uint32_t event12 = event_number & 0xFFFu;
  const std::uint32_t spill11 = spill & 0x7FFu;
  std::size_t pos = 0;
  while (pos < block.size()) {
    const std::uint32_t h = block[pos];
    if ((h >> 28) != kStrawHeaderKey) {
      return fail(DecodeErrc::BadStrawKey, pos, h >> 28, kStrawHeaderKey, "straw TDC header key");
    }
    if (((h >> 24) & 0xFu) != kStrawTdcVersion) {
      return fail(DecodeErrc::BadStrawVersion, pos, (h >> 24) & 0xFu, kStrawTdcVersion, "straw TDC format version");
    }
    const std::uint32_t size = h & 0xFFFFu;
    if (size < kStrawFramingWords) return fail(DecodeErrc::BadSize, pos, size, 0, "straw TDC word count", ">= 3");
    if (size > block.size() - pos) {
      return fail(DecodeErrc::Truncated, pos, size, block.size() - pos, "straw TDC word count",
                  "<= the words left in the S-Link block");
    }
    StrawHit hit;
    hit.tdc_id = (h >> 16) & 0xFFu;
    const std::uint64_t bit = std::uint64_t{1} << (hit.tdc_id % 64);
    if ((seen[hit.tdc_id / 64] & bit) != 0) {
      return fail(DecodeErrc::DuplicateStrawTdc, pos, hit.tdc_id, 0, "straw TDC id", "each once per block");
    }
    seen[hit.tdc_id / 64] |= bit;

    const std::uint32_t t = block[pos + 1];
    if ((t >> 28) != kStrawTriggerKey) {
      return fail(DecodeErrc::BadStrawKey, pos + 1, t >> 28, kStrawTriggerKey, "straw TDC trigger word key");
    }
    if (((t >> 23) & 0x1Fu) != 0) {
      return fail(DecodeErrc::StrawReservedBits, pos + 1, (t >> 23) & 0x1Fu, 0, "straw TDC trigger word bits 23-27");
    }
    if ((t & 0xFFFu) != event12) {
      return fail(DecodeErrc::EventNumberMismatch, pos + 1, t & 0xFFFu, event12, "straw TDC event number");
    }
    if (((t >> 12) & 0x7FFu) != spill11) {
      return fail(DecodeErrc::SpillMismatch, pos + 1, (t >> 12) & 0x7FFu, spill11, "straw TDC spill");
    }

    const std::size_t last = pos + size - 1;
    const std::uint32_t tr = block[last];
    if ((tr >> 28) != kStrawTrailerKey) {
      return fail(DecodeErrc::BadStrawKey, last, tr >> 28, kStrawTrailerKey, "straw TDC trailer key");
    }
    if (((tr >> 16) & 0xFFFu) != 0) {
      return fail(DecodeErrc::StrawReservedBits, last, (tr >> 16) & 0xFFFu, 0, "straw TDC trailer bits 16-27");
    }
    if ((tr & 0xFFFFu) != size - kStrawFramingWords) {
      return fail(DecodeErrc::StrawHitCountMismatch, last, tr & 0xFFFFu, size - kStrawFramingWords,
                  "straw TDC trailer hit count");
    }

    for (std::size_t q = pos + 2; q < last; ++q) {
      const std::uint32_t w = block[q];
      if ((w >> 31) != 0) return fail(DecodeErrc::BadStrawKey, q, w >> 28, 0, "straw TDC hit word key", "bit 31 = 0");
      hit.time_ticks = w & kStrawMaxTimeTicks;
      hit.edge = static_cast<StrawEdge>((w >> 24) & 1u);
      hit.channel = (w >> 25) & 0x3Fu;
      on_hit(static_cast<const StrawHit&>(hit));
    }
    pos += size;
  }
  return Checked{};
}

}  // namespace na64::firmware
