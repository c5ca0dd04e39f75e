// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/straw_tdc.hpp"

namespace na64::firmware {

bool StrawTdcBlockWriter::begin_tdc(std::uint32_t tdc_id) noexcept {
  close_tdc();
  if (failed_ || tdc_id > kStrawMaxTdcId || out_.size() - pos_ < kStrawFramingWords) return fail();
  const std::uint64_t bit = std::uint64_t{1} << (tdc_id % 64);
  if ((tdcs_seen_[tdc_id / 64] & bit) != 0) return fail();
  tdcs_seen_[tdc_id / 64] |= bit;
  header_pos_ = pos_;
  tdc_id_ = tdc_id;
  pos_ += 1;  // the header is written by close_tdc(), once the word count is known
  out_[pos_++] = trigger_word_;
  return true;
}

bool StrawTdcBlockWriter::add_hit(std::uint32_t channel, StrawEdge edge, std::uint32_t time_ticks) noexcept {
  // One word for the hit and one kept free for the trailer.
  if (failed_ || header_pos_ == kNone || channel >= kStrawChannels || time_ticks > kStrawMaxTimeTicks ||
      out_.size() - pos_ < 2 || pos_ - header_pos_ + 2 > kStrawMaxBlockWords) {
    return fail();
  }
  out_[pos_++] = straw_hit_word(channel, edge, time_ticks);
  return true;
}

std::size_t StrawTdcBlockWriter::finish() noexcept {
  close_tdc();
  return failed_ ? 0 : pos_;
}

void StrawTdcBlockWriter::close_tdc() noexcept {
  if (header_pos_ == kNone || failed_) return;
  const auto hits = static_cast<std::uint32_t>(pos_ - header_pos_ - 2);
  out_[pos_++] = straw_trailer_word(hits);
  out_[header_pos_] = straw_header_word(static_cast<std::uint32_t>(pos_ - header_pos_), tdc_id_);
  header_pos_ = kNone;
}

}  // namespace na64::firmware
