// SPDX-License-Identifier: Apache-2.0
// COMPASS APV ADC blocks (DOMAIN.md 4.7), read by the Micromegas (MM1-MM6)
// and GEM (GEM1-GEM4) planes: a run of ADC blocks, each an ADC header
// followed by one block per APV25 chip (chip header, data words, and a
// common-mode word when the format says so). Bit layout as the
// collaboration's decoder (DDD, ChipAPV) reads it; see the README section
// "APV ADC blocks" for the word tables and the choices made here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "na64/firmware/decode_error.hpp"

namespace na64::firmware {

inline constexpr std::size_t kApvAdcHeaderWords = 2;
inline constexpr std::size_t kApvChipHeaderWords = 2;
/// Channels of one APV25 chip; a latch-all chip block has exactly this many data words.
inline constexpr std::uint32_t kApvChannels = 128;
inline constexpr std::uint32_t kApvMaxAdcId = 0xFF;        ///< ADC header word 0 bits 16-23
inline constexpr std::uint32_t kApvMaxChipId = 0xF;        ///< chip header word 0 bits 28-31
inline constexpr std::uint32_t kApvMaxTimeTag = 0xFFFFFF;  ///< ADC header word 1 bits 0-23, microseconds
inline constexpr std::uint16_t kApvMaxSample = 0x3FF;      ///< samples and common mode are 10 bits
/// ADC block size and chip block length fields: 16 bits, headers included.
inline constexpr std::uint32_t kApvMaxBlockWords = 0xFFFF;

// Format byte (ADC header word 1 bits 24-31; DDD reads this copy).
inline constexpr std::uint8_t kApvTripleFrame = 1u << 0;  ///< always set: DDD decodes triple frame only
inline constexpr std::uint8_t kApvSparse = 1u << 1;
inline constexpr std::uint8_t kApvPedestalSubtracted = 1u << 2;
inline constexpr std::uint8_t kApvCommonModeCorrected = 1u << 3;  ///< a common-mode word ends each chip block
inline constexpr std::uint8_t kApvAdcV2 = 1u << 6;  ///< selects the sparse scale of frames 1 and 2
/// Bits 4 (reordering), 5 (data skipped, headers only) and 7 (unassigned):
/// never written by this DAQ, and reported by the decoder rather than guessed at.
inline constexpr std::uint8_t kApvFormatRejected = 0xB0;

/// The three frames of one channel (or the chip's three common-mode values), 10 bits each.
using ApvSamples = std::array<std::uint16_t, 3>;

/// What the format byte says; byte() always sets bit 0 (triple frame).
struct ApvFormat {
  bool sparse = false;
  bool pedestal_subtracted = false;
  bool common_mode_corrected = false;
  /// ADC version 2 (bit 6): sparse frames 1 and 2 drop 1 low bit instead of 2.
  bool adc_v2 = true;

  [[nodiscard]] constexpr std::uint8_t byte() const noexcept {
    return static_cast<std::uint8_t>(kApvTripleFrame | (sparse ? kApvSparse : 0u) |
                                     (pedestal_subtracted ? kApvPedestalSubtracted : 0u) |
                                     (common_mode_corrected ? kApvCommonModeCorrected : 0u) |
                                     (adc_v2 ? kApvAdcV2 : 0u));
  }
};

/// APV25 channel (0-127) of the `readout_index`-th value of the chip's
/// multiplexed output. This is DDD's `32*(r%4) + 8*(r/4) - 31*(r/16)`,
/// written so that each term is one bit field of r.
[[nodiscard]] constexpr std::uint32_t apv_channel_from_readout(std::uint32_t readout_index) noexcept {
  return 32 * (readout_index % 4) + 8 * ((readout_index / 4) % 4) + readout_index / 16;
}

/// Inverse of apv_channel_from_readout: where channel `channel` sits in the output.
[[nodiscard]] constexpr std::uint32_t apv_readout_from_channel(std::uint32_t channel) noexcept {
  return 16 * (channel % 8) + 4 * ((channel / 8) % 4) + channel / 32;
}

/// Left shift that restores sparse frame `frame` (0-2) to the 10-bit scale:
/// frame 3 always 1; frames 1 and 2: 1 with ADC version 2, else 2 (DDD's sparse_ver).
[[nodiscard]] constexpr unsigned apv_sparse_shift(std::uint8_t format, unsigned frame) noexcept {
  return frame == 2 || (format & kApvAdcV2) != 0 ? 1u : 2u;
}

/// ADC header word 0: bits 0-15 size in words (header included), 16-23 ADC id, 24-31 format.
[[nodiscard]] constexpr std::uint32_t apv_adc_header_word0(std::uint32_t size_words, std::uint32_t adc_id,
                                                           std::uint8_t format) noexcept {
  return (size_words & 0xFFFFu) | ((adc_id & 0xFFu) << 16) | (std::uint32_t{format} << 24);
}

/// ADC header word 1: bits 0-23 time tag (microseconds since the spill's TCS reset), 24-31 format.
[[nodiscard]] constexpr std::uint32_t apv_adc_header_word1(std::uint32_t time_tag_us, std::uint8_t format) noexcept {
  return (time_tag_us & kApvMaxTimeTag) | (std::uint32_t{format} << 24);
}

/// Chip header word 0: bits 0-15 block length in words (both header words,
/// data and common-mode word included), 16-27 event number & 0xFFF, 28-31 chip id.
[[nodiscard]] constexpr std::uint32_t apv_chip_header_word0(std::uint32_t length_words, std::uint32_t event_number,
                                                            std::uint32_t chip_id) noexcept {
  return (length_words & 0xFFFFu) | ((event_number & 0xFFFu) << 16) | ((chip_id & 0xFu) << 28);
}

/// Chip header word 1 with every frame good: frame f (0-2) has its good bit at
/// 9f and its 8-bit pipeline column address at 9f+1 .. 9f+8; bits 27-31 are 0.
[[nodiscard]] constexpr std::uint32_t apv_chip_header_word1(const std::array<std::uint8_t, 3>& frame_address) noexcept {
  std::uint32_t w = 0;
  for (unsigned f = 0; f < 3; ++f) w |= (1u | (std::uint32_t{frame_address[f]} << 1)) << (9 * f);
  return w;
}

/// Latch-all data word: frames at bits 0-9, 10-19, 20-29; bits 30-31 written 0.
[[nodiscard]] constexpr std::uint32_t apv_latch_all_word(const ApvSamples& s) noexcept {
  return (s[0] & 0x3FFu) | (std::uint32_t{s[1] & 0x3FFu} << 10) | (std::uint32_t{s[2] & 0x3FFu} << 20);
}

/// Sparse data word: frame 1 bits 0-7, frame 2 bits 8-15, frame 3 bits 16-24
/// (each shifted right by apv_sparse_shift), readout index bits 25-31.
[[nodiscard]] constexpr std::uint32_t apv_sparse_word(std::uint32_t readout_index, const ApvSamples& s,
                                                      std::uint8_t format) noexcept {
  return ((std::uint32_t{s[0]} >> apv_sparse_shift(format, 0)) & 0xFFu) |
         (((std::uint32_t{s[1]} >> apv_sparse_shift(format, 1)) & 0xFFu) << 8) |
         (((std::uint32_t{s[2]} >> apv_sparse_shift(format, 2)) & 0x1FFu) << 16) | ((readout_index & 0x7Fu) << 25);
}

/// Common-mode word: frames at bits 0-9, 10-19, 20-29, bit 30 = 0, bit 31 = 1.
[[nodiscard]] constexpr std::uint32_t apv_common_mode_word(const ApvSamples& cm) noexcept {
  return apv_latch_all_word(cm) | (1u << 31);
}

/// What a chip block carries besides its data.
struct ApvChipHeader {
  std::uint32_t chip_id = 0;  ///< 0-15
  /// Pipeline column address of each frame as the chip sends it (8 bits, Gray coded).
  std::array<std::uint8_t, 3> frame_address{};
  ApvSamples common_mode{};  ///< written only when the format has bit 3; 10 bits each
};

/// One channel of a sparse chip.
struct ApvSparseHit {
  std::uint32_t channel = 0;  ///< APV25 channel 0-127 (not the readout index)
  ApvSamples samples{};
};

/// Builds an APV block in caller-owned memory. No allocation.
///
/// Usage: begin_adc(id) then add_latch_all_chip() or add_sparse_chip() (as
/// the format says) per chip, repeat, then finish(). Every chip header gets
/// the low 12 bits of `event_number` and all three frame good bits; every ADC
/// header gets `time_tag_us` and the format byte (in both header words). Any
/// call that would overflow `out` or breaks a field range returns false and
/// the writer stays failed; finish() then returns 0.
///
/// Sparse samples are stored with their low bits dropped (apv_sparse_shift),
/// so a round trip yields `s >> shift << shift`; with ADC version 2, frames
/// 1 and 2 above 511 do not fit and are rejected.
class ApvBlockWriter {
 public:
  /// A `time_tag_us` above 24 bits fails the writer.
  ApvBlockWriter(std::span<std::uint32_t> out, std::uint32_t event_number, std::uint32_t time_tag_us,
                 ApvFormat format) noexcept;

  /// Starts an ADC block; adc_id 0-255.
  [[nodiscard]] bool begin_adc(std::uint32_t adc_id) noexcept;

  /// Latch-all format only. `by_channel[c]` holds the frames of APV25
  /// channel c; they are written in the chip's readout order. Each (ADC,
  /// chip) once per block.
  [[nodiscard]] bool add_latch_all_chip(const ApvChipHeader& chip,
                                        std::span<const ApvSamples, kApvChannels> by_channel) noexcept;

  /// Sparse format only. `hits` in any order, each channel at most once;
  /// written in readout order. An empty span writes a chip with no data.
  [[nodiscard]] bool add_sparse_chip(const ApvChipHeader& chip, std::span<const ApvSparseHit> hits) noexcept;

  /// Closes the last ADC block. Returns the words written, 0 if any call failed.
  [[nodiscard]] std::size_t finish() noexcept;

 private:
  static constexpr std::size_t kNone = ~std::size_t{0};

  /// Checks and writes the chip header; returns false (and fails) on a bad
  /// field, a repeated chip, or `data_words` that do not fit.
  bool begin_chip(const ApvChipHeader& chip, std::size_t data_words) noexcept;
  void end_chip(const ApvChipHeader& chip) noexcept;
  void close_adc() noexcept;
  bool fail() noexcept {
    failed_ = true;
    return false;
  }

  std::span<std::uint32_t> out_;
  std::uint32_t event12_;
  std::uint32_t time_tag_us_;
  std::uint8_t format_;
  std::size_t pos_ = 0;
  std::size_t adc_header_pos_ = kNone;
  std::uint32_t adc_id_ = 0;
  std::size_t chip_header_pos_ = 0;
  std::array<std::uint16_t, kApvMaxAdcId + 1> chips_seen_{};  ///< one bit per chip id, per ADC id
  bool failed_ = false;
};

/// One decoded channel.
struct ApvHit {
  std::uint32_t adc_id = 0;
  std::uint32_t chip_id = 0;
  std::uint32_t channel = 0;        ///< APV25 channel 0-127: apv_channel_from_readout(readout_index)
  std::uint32_t readout_index = 0;  ///< latch-all: data word index in the chip; sparse: the 7-bit field
  ApvSamples samples{};             ///< on the 10-bit scale (sparse frames shifted back)
  ApvSamples common_mode{};         ///< the chip's common-mode word; zeros without format bit 3
  std::array<std::uint8_t, 3> frame_address{};  ///< as sent (Gray coded)
  std::uint32_t time_tag_us = 0;
  std::uint8_t format = 0;  ///< the ADC's format byte
};

/// Walks an APV block and calls `on_hit(const ApvHit&)` for each data word,
/// in order. Validates every ADC block size (>= 2, within the block), format
/// byte, time tag (equal in all ADC headers), chip block length (>= 2, or 3
/// with common mode; within its ADC block), chip event number (low 12 bits
/// of `event_number`), frame good bits, repeated (ADC, chip), common-mode
/// word, latch-all word count (128) and sparse readout order (strictly
/// increasing). Stops at the first error and returns it, with the byte offset
/// `offset_bytes` + position. A chip's header and common-mode word are checked
/// before its hits are visited; hits visited before an error have been
/// delivered, so a caller that must be all-or-nothing validates first with a
/// no-op visitor.
template <class OnHit>
[[nodiscard]] Decoded<Checked> decode_apv(std::span<const std::uint32_t> block, std::uint32_t event_number,
                                          std::size_t offset_bytes, OnHit&& on_hit) noexcept {
  auto fail = [&](DecodeErrc code, std::size_t word, std::uint64_t found, std::uint64_t expected,
                  const char* field, const char* rule = nullptr) {
    return DecodeError{code, offset_bytes + word * 4, found, expected, field, rule};
  };
  // One bit per (ADC id, chip id): 256 x 16 = 4096.
  std::array<std::uint64_t, (kApvMaxAdcId + 1) * (kApvMaxChipId + 1) / 64> seen{};
  const std::uint32_t event12 = event_number & 0xFFFu;
  std::uint32_t first_time_tag = 0;
  bool have_time_tag = false;
  std::size_t pos = 0;
  while (pos < block.size()) {
    if (block.size() - pos < kApvAdcHeaderWords) {
      return fail(DecodeErrc::Truncated, pos, block.size() - pos, kApvAdcHeaderWords, "APV ADC header words",
                  ">= 2 left in the S-Link block");
    }
    const std::uint32_t h0 = block[pos];
    const std::uint32_t h1 = block[pos + 1];
    const std::uint32_t size = h0 & 0xFFFFu;
    if (size < kApvAdcHeaderWords) return fail(DecodeErrc::BadSize, pos, size, 0, "APV ADC block size", ">= 2");
    if (size > block.size() - pos) {
      return fail(DecodeErrc::Truncated, pos, size, block.size() - pos, "APV ADC block size",
                  "<= the words left in the S-Link block");
    }
    ApvHit hit;
    hit.format = static_cast<std::uint8_t>(h1 >> 24);
    if ((hit.format & kApvTripleFrame) == 0 || (hit.format & kApvFormatRejected) != 0) {
      return fail(DecodeErrc::BadApvFormat, pos + 1, hit.format, 0, "APV ADC format byte",
                  "bit 0 set, bits 4, 5 and 7 clear");
    }
    hit.time_tag_us = h1 & kApvMaxTimeTag;
    if (!have_time_tag) {
      first_time_tag = hit.time_tag_us;
      have_time_tag = true;
    } else if (hit.time_tag_us != first_time_tag) {
      return fail(DecodeErrc::ApvTimeTagMismatch, pos + 1, hit.time_tag_us, first_time_tag, "APV ADC time tag");
    }
    hit.adc_id = (h0 >> 16) & 0xFFu;
    const bool sparse = (hit.format & kApvSparse) != 0;
    const std::size_t cm_words = (hit.format & kApvCommonModeCorrected) != 0 ? 1 : 0;
    const unsigned shift0 = apv_sparse_shift(hit.format, 0);
    const unsigned shift1 = apv_sparse_shift(hit.format, 1);
    const unsigned shift2 = apv_sparse_shift(hit.format, 2);
    const std::size_t adc_end = pos + size;
    std::size_t p = pos + kApvAdcHeaderWords;
    while (p < adc_end) {
      if (adc_end - p < kApvChipHeaderWords) {
        return fail(DecodeErrc::Truncated, p, adc_end - p, kApvChipHeaderWords, "APV chip header words",
                    ">= 2 left in the ADC block");
      }
      const std::uint32_t c0 = block[p];
      const std::uint32_t c1 = block[p + 1];
      const std::uint32_t length = c0 & 0xFFFFu;
      if (length < kApvChipHeaderWords + cm_words) {
        return fail(DecodeErrc::BadSize, p, length, 0, "APV chip block length",
                    cm_words != 0 ? ">= 3 (header and common-mode word)" : ">= 2");
      }
      if (length > adc_end - p) {
        return fail(DecodeErrc::Truncated, p, length, adc_end - p, "APV chip block length",
                    "<= the words left in the ADC block");
      }
      if (((c0 >> 16) & 0xFFFu) != event12) {
        return fail(DecodeErrc::EventNumberMismatch, p, (c0 >> 16) & 0xFFFu, event12, "APV chip event number");
      }
      const std::uint32_t good = (c1 & 1u) | ((c1 >> 8) & 2u) | ((c1 >> 16) & 4u);  // bits 0, 9, 18
      if (good != 0x7u) {
        return fail(DecodeErrc::ApvFrameNotGood, p + 1, good, 0x7u, "APV frame good bits (frame k at bit k-1)");
      }
      hit.chip_id = c0 >> 28;
      const std::uint32_t key = hit.adc_id * (kApvMaxChipId + 1) + hit.chip_id;
      const std::uint64_t bit = std::uint64_t{1} << (key % 64);
      if ((seen[key / 64] & bit) != 0) {
        return fail(DecodeErrc::DuplicateApvChip, p, key, 0, "APV (ADC id x 16 + chip id) key",
                    "each once per block");
      }
      seen[key / 64] |= bit;
      for (unsigned f = 0; f < 3; ++f) hit.frame_address[f] = static_cast<std::uint8_t>(c1 >> (9 * f + 1));
      const std::size_t data_begin = p + kApvChipHeaderWords;
      const std::size_t data_end = p + length - cm_words;
      hit.common_mode = {};
      if (cm_words != 0) {
        const std::uint32_t cm = block[data_end];
        if ((cm >> 30) != 0x2u) {
          return fail(DecodeErrc::BadApvCommonMode, data_end, cm >> 30, 0x2u, "APV common-mode word bits 30-31");
        }
        hit.common_mode = {static_cast<std::uint16_t>(cm & 0x3FFu), static_cast<std::uint16_t>((cm >> 10) & 0x3FFu),
                           static_cast<std::uint16_t>((cm >> 20) & 0x3FFu)};
      }
      if (!sparse) {
        if (data_end - data_begin != kApvChannels) {
          return fail(DecodeErrc::BadApvChannelCount, p, data_end - data_begin, kApvChannels,
                      "APV latch-all data words");
        }
        for (std::uint32_t k = 0; k < kApvChannels; ++k) {
          const std::uint32_t w = block[data_begin + k];
          hit.readout_index = k;
          hit.channel = apv_channel_from_readout(k);
          hit.samples = {static_cast<std::uint16_t>(w & 0x3FFu), static_cast<std::uint16_t>((w >> 10) & 0x3FFu),
                         static_cast<std::uint16_t>((w >> 20) & 0x3FFu)};
          on_hit(static_cast<const ApvHit&>(hit));
        }
      } else {
        std::uint32_t next_min = 0;  // the smallest readout index the next word may carry
        for (std::size_t q = data_begin; q < data_end; ++q) {
          const std::uint32_t w = block[q];
          const std::uint32_t r = w >> 25;
          if (r < next_min) {
            return fail(DecodeErrc::ApvChannelOrder, q, r, next_min, "APV sparse readout index",
                        "> the chip's previous readout index");
          }
          next_min = r + 1;
          hit.readout_index = r;
          hit.channel = apv_channel_from_readout(r);
          hit.samples = {static_cast<std::uint16_t>((w & 0xFFu) << shift0),
                         static_cast<std::uint16_t>(((w >> 8) & 0xFFu) << shift1),
                         static_cast<std::uint16_t>(((w >> 16) & 0x1FFu) << shift2)};
          on_hit(static_cast<const ApvHit&>(hit));
        }
      }
      p += length;
    }
    pos = adc_end;
  }
  return Checked{};
}

}  // namespace na64::firmware
