// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/apv.hpp"

namespace na64::firmware {

namespace {

[[nodiscard]] constexpr bool fits_10_bits(const ApvSamples& s) noexcept {
  return s[0] <= kApvMaxSample && s[1] <= kApvMaxSample && s[2] <= kApvMaxSample;
}

}  // namespace

ApvBlockWriter::ApvBlockWriter(std::span<std::uint32_t> out, std::uint32_t event_number,
                               std::uint32_t time_tag_us, ApvFormat format) noexcept
    : out_(out),
      event12_(event_number & 0xFFFu),
      time_tag_us_(time_tag_us),
      format_(format.byte()),
      failed_(time_tag_us > kApvMaxTimeTag) {}

bool ApvBlockWriter::begin_adc(std::uint32_t adc_id) noexcept {
  close_adc();
  if (failed_ || adc_id > kApvMaxAdcId || out_.size() - pos_ < kApvAdcHeaderWords) return fail();
  adc_header_pos_ = pos_;
  adc_id_ = adc_id;
  pos_ += kApvAdcHeaderWords;
  return true;
}

// Each chip id at most once per ADC bounds an ADC block, so its 16-bit size cannot overflow.
static_assert(kApvAdcHeaderWords + (kApvMaxChipId + 1) * (kApvChipHeaderWords + kApvChannels + 1) <=
              kApvMaxBlockWords);

bool ApvBlockWriter::begin_chip(const ApvChipHeader& chip, std::size_t data_words) noexcept {
  const std::size_t cm_words = (format_ & kApvCommonModeCorrected) != 0 ? 1 : 0;
  const std::size_t words = kApvChipHeaderWords + data_words + cm_words;
  if (failed_ || adc_header_pos_ == kNone || chip.chip_id > kApvMaxChipId ||
      (chips_seen_[adc_id_] & (1u << chip.chip_id)) != 0 || (cm_words != 0 && !fits_10_bits(chip.common_mode)) ||
      words > out_.size() - pos_) {
    return fail();
  }
  chips_seen_[adc_id_] = static_cast<std::uint16_t>(chips_seen_[adc_id_] | (1u << chip.chip_id));
  chip_header_pos_ = pos_;
  out_[pos_++] = apv_chip_header_word0(static_cast<std::uint32_t>(words), event12_, chip.chip_id);
  out_[pos_++] = apv_chip_header_word1(chip.frame_address);
  return true;
}

void ApvBlockWriter::end_chip(const ApvChipHeader& chip) noexcept {
  if ((format_ & kApvCommonModeCorrected) != 0) out_[pos_++] = apv_common_mode_word(chip.common_mode);
}

bool ApvBlockWriter::add_latch_all_chip(const ApvChipHeader& chip,
                                        std::span<const ApvSamples, kApvChannels> by_channel) noexcept {
  if ((format_ & kApvSparse) != 0) return fail();
  for (const ApvSamples& s : by_channel) {
    if (!fits_10_bits(s)) return fail();
  }
  if (!begin_chip(chip, kApvChannels)) return false;
  for (std::uint32_t r = 0; r < kApvChannels; ++r) {
    out_[pos_++] = apv_latch_all_word(by_channel[apv_channel_from_readout(r)]);
  }
  end_chip(chip);
  return true;
}

bool ApvBlockWriter::add_sparse_chip(const ApvChipHeader& chip, std::span<const ApvSparseHit> hits) noexcept {
  if ((format_ & kApvSparse) == 0 || hits.size() > kApvChannels) return fail();
  // slot[channel] = index in `hits` + 1, 0 for none: puts the hits in readout
  // order without sorting and finds a repeated channel.
  std::array<std::uint8_t, kApvChannels> slot{};
  // Largest frame 1 or 2 value whose stored 8 bits keep its high bits.
  const unsigned shift12 = apv_sparse_shift(format_, 0);
  const std::uint32_t max12 = (0xFFu << shift12) | ((1u << shift12) - 1);
  for (std::size_t i = 0; i < hits.size(); ++i) {
    const ApvSparseHit& h = hits[i];
    if (h.channel >= kApvChannels || slot[h.channel] != 0 || !fits_10_bits(h.samples) || h.samples[0] > max12 ||
        h.samples[1] > max12) {
      return fail();
    }
    slot[h.channel] = static_cast<std::uint8_t>(i + 1);
  }
  if (!begin_chip(chip, hits.size())) return false;
  for (std::uint32_t r = 0; r < kApvChannels; ++r) {
    const std::uint8_t s = slot[apv_channel_from_readout(r)];
    if (s != 0) out_[pos_++] = apv_sparse_word(r, hits[s - 1].samples, format_);
  }
  end_chip(chip);
  return true;
}

std::size_t ApvBlockWriter::finish() noexcept {
  close_adc();
  return failed_ ? 0 : pos_;
}

void ApvBlockWriter::close_adc() noexcept {
  if (adc_header_pos_ == kNone || failed_) return;
  const auto size = static_cast<std::uint32_t>(pos_ - adc_header_pos_);
  out_[adc_header_pos_] = apv_adc_header_word0(size, adc_id_, format_);
  out_[adc_header_pos_ + 1] = apv_adc_header_word1(time_tag_us_, format_);
  adc_header_pos_ = kNone;
}

}  // namespace na64::firmware
