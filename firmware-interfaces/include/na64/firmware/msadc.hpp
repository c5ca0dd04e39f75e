// SPDX-License-Identifier: Apache-2.0
// MSADC "data_format3" blocks (DOMAIN.md 4.5): a run of ADC blocks, each an
// ADC header followed by channels (channel header + packed 12-bit samples).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "na64/firmware/decode_error.hpp"

namespace na64::firmware {

inline constexpr std::uint32_t kChannelsPerAdc = 16;
inline constexpr std::uint32_t kAdcsPerPort = 4;
inline constexpr std::uint32_t kPortsPerSource = 8;
inline constexpr std::uint32_t kChipChannelsPerPort = kChannelsPerAdc * kAdcsPerPort;  // 64
inline constexpr std::uint32_t kMaxSamples = 511;
inline constexpr std::uint16_t kMaxSampleValue = 4095;
inline constexpr std::uint32_t kFirstDataMarker = 0x40;
inline constexpr std::uint32_t kNextDataMarker = 0x80;
/// ADC block size field: 12 bits, header included.
inline constexpr std::uint32_t kMaxAdcBlockWords = 0xFFF;

/// Words one channel takes: its header and (n+1)/2 data words.
[[nodiscard]] constexpr std::size_t msadc_channel_words(std::uint32_t n_samples) noexcept {
  return 1 + (std::size_t{n_samples} + 1) / 2;
}

/// Channel sum field: the plain sum of the 12-bit samples as stored, saturated at 0xFFFF.
[[nodiscard]] constexpr std::uint16_t msadc_sum(std::span<const std::uint16_t> samples) noexcept {
  std::uint32_t s = 0;
  for (std::uint16_t v : samples) s += v & 0xFFFu;
  return s > 0xFFFFu ? std::uint16_t{0xFFFF} : static_cast<std::uint16_t>(s);
}

/// Builds a data_format3 block in caller-owned memory. No allocation.
///
/// Usage: begin_adc(port, adc) then add_channel() per channel, repeat, then
/// finish(). Any call that would overflow `out` or breaks a field range
/// returns false and the writer stays failed; finish() then returns 0.
class MsadcBlockWriter {
 public:
  /// `event_number`'s low 12 bits go into every ADC header.
  MsadcBlockWriter(std::span<std::uint32_t> out, std::uint32_t event_number) noexcept
      : out_(out), event12_(event_number & 0xFFFu) {}

  [[nodiscard]] bool begin_adc(std::uint32_t port, std::uint32_t adc_id) noexcept {
    close_adc();
    if (failed_ || port >= kPortsPerSource || adc_id >= kAdcsPerPort || pos_ >= out_.size()) {
      failed_ = true;
      return false;
    }
    adc_header_pos_ = pos_;
    adc_header_ = (0x3u << 30) | (port << 27) | (adc_id << 25) | event12_;
    ++pos_;
    return true;
  }

  /// Samples must be 12-bit; n in 1..511.
  [[nodiscard]] bool add_channel(std::uint32_t channel, std::span<const std::uint16_t> samples) noexcept {
    const std::size_t n = samples.size();
    if (failed_ || adc_header_pos_ == kNone || channel >= kChannelsPerAdc || n == 0 || n > kMaxSamples ||
        pos_ + msadc_channel_words(static_cast<std::uint32_t>(n)) > out_.size() ||
        pos_ - adc_header_pos_ + msadc_channel_words(static_cast<std::uint32_t>(n)) > kMaxAdcBlockWords) {
      failed_ = true;
      return false;
    }
    out_[pos_++] = (0x1u << 30) | (channel << 26) | (static_cast<std::uint32_t>(n) << 16) | msadc_sum(samples);
    for (std::size_t k = 0; k < n; k += 2) {
      const std::uint32_t lo = samples[k] & 0xFFFu;
      const std::uint32_t hi = k + 1 < n ? samples[k + 1] & 0xFFFu : 0u;
      const std::uint32_t marker = k == 0 ? kFirstDataMarker : kNextDataMarker;
      out_[pos_++] = lo | (hi << 12) | (marker << 24);
    }
    return true;
  }

  /// Closes the last ADC block. Returns the words written, 0 if any call failed.
  [[nodiscard]] std::size_t finish() noexcept {
    close_adc();
    return failed_ ? 0 : pos_;
  }

 private:
  static constexpr std::size_t kNone = ~std::size_t{0};

  void close_adc() noexcept {
    if (adc_header_pos_ == kNone || failed_) return;
    const auto size = static_cast<std::uint32_t>(pos_ - adc_header_pos_);
    out_[adc_header_pos_] = adc_header_ | (size << 12);
    adc_header_pos_ = kNone;
  }

  std::span<std::uint32_t> out_;
  std::uint32_t event12_;
  std::size_t pos_ = 0;
  std::size_t adc_header_pos_ = kNone;
  std::uint32_t adc_header_ = 0;
  bool failed_ = false;
};

/// One decoded channel, pointing into the block (no copy).
struct MsadcChannel {
  std::uint32_t port = 0;
  std::uint32_t adc_id = 0;
  std::uint32_t channel = 0;  ///< 0-15 within the ADC
  std::uint32_t sum = 0;
  std::uint32_t n_samples = 0;
  const std::uint32_t* data = nullptr;  ///< (n+1)/2 packed words

  /// The decoder's chip channel: ADC id x 16 + channel.
  [[nodiscard]] std::uint32_t chip_channel() const noexcept { return adc_id * kChannelsPerAdc + channel; }
  /// Precondition: k < n_samples.
  [[nodiscard]] std::uint16_t sample(std::size_t k) const noexcept {
    const std::uint32_t w = data[k / 2];
    return static_cast<std::uint16_t>((k & 1u) != 0 ? (w >> 12) & 0xFFFu : w & 0xFFFu);
  }
};

/// Walks a data_format3 block and calls `on_channel(const MsadcChannel&)` for
/// each channel, in order. Validates every ADC key, size (never 0, within the
/// block), error bit, event number (low 12 bits of `event_number`), channel
/// key, sample count, data marker and duplicate channels. Stops at the first
/// error and returns it, with the byte offset `offset_bytes` + position.
/// Channels visited before an error have been delivered; a caller that must
/// be all-or-nothing validates first with a no-op visitor.
template <class OnChannel>
[[nodiscard]] Decoded<Checked> decode_msadc(std::span<const std::uint32_t> block, std::uint32_t event_number,
                                            std::size_t offset_bytes, OnChannel&& on_channel) noexcept {
  auto fail = [&](DecodeErrc code, std::size_t word, std::uint64_t found, std::uint64_t expected,
                  const char* field, const char* rule = nullptr) {
    return DecodeError{code, offset_bytes + word * 4, found, expected, field, rule};
  };
  // One bit per (port, ADC, channel): 8 x 4 x 16 = 512.
  std::array<std::uint64_t, kPortsPerSource * kAdcsPerPort * kChannelsPerAdc / 64> seen{};
  const std::uint32_t event12 = event_number & 0xFFFu;
  std::size_t pos = 0;
  while (pos < block.size()) {
    const std::uint32_t h = block[pos];
    if ((h >> 30) != 0x3u) return fail(DecodeErrc::BadAdcKey, pos, h >> 30, 3, "ADC header key");
    const std::uint32_t size = (h >> 12) & 0xFFFu;
    if (size == 0) return fail(DecodeErrc::ZeroAdcSize, pos, 0, 0, "ADC block size", ">= 1");
    if (size > block.size() - pos) {
      return fail(DecodeErrc::Truncated, pos, size, block.size() - pos, "ADC block size",
                  "<= the words left in the S-Link block");
    }
    if (((h >> 24) & 1u) != 0) return fail(DecodeErrc::AdcErrorFlag, pos, 1, 0, "ADC header error bit");
    if ((h & 0xFFFu) != event12) {
      return fail(DecodeErrc::EventNumberMismatch, pos, h & 0xFFFu, event12, "ADC header event number");
    }
    MsadcChannel ch;
    ch.adc_id = (h >> 25) & 0x3u;
    ch.port = (h >> 27) & 0x7u;
    const std::size_t end = pos + size;
    std::size_t p = pos + 1;
    while (p < end) {
      const std::uint32_t c = block[p];
      if ((c >> 30) != 0x1u || ((c >> 25) & 1u) != 0) {
        return fail(DecodeErrc::BadChannelKey, p, c, 0, "channel header", "bits 30-31 = 01, bit 25 = 0");
      }
      ch.sum = c & 0xFFFFu;
      ch.n_samples = (c >> 16) & 0x1FFu;
      ch.channel = (c >> 26) & 0xFu;
      if (ch.n_samples == 0) return fail(DecodeErrc::BadSampleCount, p, 0, 0, "channel sample count", "1-511");
      const std::size_t data_words = (std::size_t{ch.n_samples} + 1) / 2;
      if (data_words > end - p - 1) {
        return fail(DecodeErrc::Truncated, p, data_words, end - p - 1, "channel data words",
                    "<= the words left in the ADC block");
      }
      // Markers: the first word alone, the others OR-reduced without a branch
      // so the loop vectorises; the offending word is searched only on error.
      const std::uint32_t* data = block.data() + p + 1;
      if ((data[0] >> 24) != kFirstDataMarker) {
        return fail(DecodeErrc::BadMarker, p + 1, data[0] >> 24, kFirstDataMarker, "data word marker");
      }
      std::uint32_t bad = 0;
      for (std::size_t k = 1; k < data_words; ++k) bad |= (data[k] >> 24) ^ kNextDataMarker;
      if (bad != 0) {
        std::size_t k = 1;
        while ((data[k] >> 24) == kNextDataMarker) ++k;
        return fail(DecodeErrc::BadMarker, p + 1 + k, data[k] >> 24, kNextDataMarker, "data word marker");
      }
      const std::uint32_t key = (ch.port * kAdcsPerPort + ch.adc_id) * kChannelsPerAdc + ch.channel;
      const std::uint64_t bit = std::uint64_t{1} << (key % 64);
      if ((seen[key / 64] & bit) != 0) {
        return fail(DecodeErrc::DuplicateChannel, p, key, 0, "channel (port, ADC, channel) key",
                    "each once per block");
      }
      seen[key / 64] |= bit;
      ch.data = block.data() + p + 1;
      on_channel(static_cast<const MsadcChannel&>(ch));
      p += 1 + data_words;
    }
    pos = end;
  }
  return Checked{};
}

}  // namespace na64::firmware

namespace na64::firmware {

/// Sets the event-number field of every ADC header of an already validated
/// data_format3 block to `event_number & 0xFFF`. Walks ADC headers by their
/// size fields; stops at the first size 0 or out-of-range size and returns
/// false (the block was not valid). Used when the DAQ numbers written events
/// by trigger: the decoder requires ADC event == S-Link event & 0xFFF.
[[nodiscard]] inline bool restamp_msadc_event(std::span<std::uint32_t> block, std::uint32_t event_number) noexcept {
  const std::uint32_t event12 = event_number & 0xFFFu;
  std::size_t pos = 0;
  while (pos < block.size()) {
    const std::uint32_t size = (block[pos] >> 12) & 0xFFFu;
    if (size == 0 || size > block.size() - pos) return false;
    block[pos] = (block[pos] & ~0xFFFu) | event12;
    pos += size;
  }
  return true;
}

}  // namespace na64::firmware
