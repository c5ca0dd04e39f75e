// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/date_event.hpp"

namespace na64::firmware {

namespace {

using Visit = void (*)(void*, const DateHeader&, const EquipmentView&);

// The event's size was checked against the buffer, so a header or a size that
// does not fit inside the event means its blocks do not fill it exactly: a
// size mismatch, not a short buffer (a reader may wait for more bytes on
// Truncated).
DecodeError inside_event(DecodeError e) noexcept {
  if (e.code == DecodeErrc::Truncated) e.code = DecodeErrc::SizeMismatch;
  return e;
}

// Validates the equipment blocks filling words [begin, end) of an event.
Decoded<Checked> walk_equipment(std::span<const std::uint32_t> w, std::size_t begin, std::size_t end,
                                std::size_t offset_bytes, const DateHeader& h, Visit visit, void* ctx) {
  std::size_t pos = begin;
  while (pos < end) {
    const std::size_t at = offset_bytes + pos * 4;
    auto eq = decode_equipment_header(w.subspan(pos, end - pos), at);
    if (!eq) return inside_event(eq.error());
    const std::size_t eq_words = eq->size_bytes / 4;
    const auto body = w.subspan(pos + kEquipmentHeaderWords, eq_words - kEquipmentHeaderWords);
    auto sl = decode_slink_header(body, at + kEquipmentHeaderBytes);
    if (!sl) return inside_event(sl.error());
    if (eq->size_bytes != kEquipmentHeaderBytes + 4 * sl->size_words) {
      return DecodeError{DecodeErrc::SizeMismatch, at, eq->size_bytes, kEquipmentHeaderBytes + 4 * sl->size_words,
                         "equipment size (28 + 4 x S-Link size)"};
    }
    if (sl->event_in_spill != h.event_in_spill) {
      return DecodeError{DecodeErrc::EventNumberMismatch, at + kEquipmentHeaderBytes + 4, sl->event_in_spill,
                         h.event_in_spill, "S-Link event number"};
    }
    if (sl->spill != (h.spill & kMaxSpill)) {
      return DecodeError{DecodeErrc::SpillMismatch, at + kEquipmentHeaderBytes + 4, sl->spill,
                         h.spill & kMaxSpill, "S-Link spill number"};
    }
    EquipmentView view{*eq, *sl, body.subspan(kSlinkHeaderWords, sl->size_words - kSlinkHeaderWords),
                       at + kEquipmentHeaderBytes + kSlinkHeaderWords * 4};
    visit(ctx, h, view);
    pos += eq_words;
  }
  return Checked{};
}

}  // namespace

Decoded<DateHeader> walk_date_event(std::span<const std::uint32_t> w, std::size_t offset_bytes, Visit visit,
                                    void* ctx) noexcept {
  auto top = decode_date_header(w, offset_bytes);
  if (!top) return top;
  const DateHeader& h = *top;
  const std::size_t end = h.size_bytes / 4;
  if (!carries_equipment(h.type)) return top;
  if (!h.super_event()) {
    auto r = walk_equipment(w, kDateHeaderWords, end, offset_bytes, h, visit, ctx);
    if (!r) return r.error();
    return top;
  }
  std::size_t pos = kDateHeaderWords;
  while (pos < end) {
    const std::size_t at = offset_bytes + pos * 4;
    auto sub = decode_date_header(w.subspan(pos, end - pos), at);
    if (!sub) return inside_event(sub.error());
    const DateHeader& s = *sub;
    if (s.run != h.run) return DecodeError{DecodeErrc::BadSubEvent, at + 20, s.run, h.run, "sub-event run"};
    if (s.spill != h.spill) {
      return DecodeError{DecodeErrc::BadSubEvent, at + 28, s.spill, h.spill, "sub-event burst"};
    }
    if (s.event_in_spill != h.event_in_spill) {
      return DecodeError{DecodeErrc::BadSubEvent, at + 28, s.event_in_spill, h.event_in_spill,
                         "sub-event event number in burst"};
    }
    if (s.event_in_run != h.event_in_run) {
      return DecodeError{DecodeErrc::BadSubEvent, at + 24, s.event_in_run, h.event_in_run,
                         "sub-event event number in run"};
    }
    auto r = walk_equipment(w, pos + kDateHeaderWords, pos + s.size_bytes / 4, offset_bytes, h, visit, ctx);
    if (!r) return r.error();
    pos += s.size_bytes / 4;
  }
  return top;
}

void DateEventWriter::begin(const DateHeader& header) noexcept {
  header_ = header;
  pos_ = kDateHeaderWords;
  in_equipment_ = false;
  failed_ = out_.size() < kDateHeaderWords;
}

bool DateEventWriter::begin_equipment(const EquipmentHeader& equipment, const SlinkHeader& slink) noexcept {
  if (failed_ || in_equipment_ || out_.size() - pos_ < kEquipmentHeaderWords + kSlinkHeaderWords) {
    failed_ = true;
    return false;
  }
  equipment_pos_ = pos_;
  encode(equipment, out_.subspan(pos_).first<kEquipmentHeaderWords>());
  SlinkHeader s = slink;
  s.event_in_spill = header_.event_in_spill;
  s.spill = header_.spill;
  encode(s, out_.subspan(pos_ + kEquipmentHeaderWords).first<kSlinkHeaderWords>());
  pos_ += kEquipmentHeaderWords + kSlinkHeaderWords;
  in_equipment_ = true;
  return true;
}

std::span<std::uint32_t> DateEventWriter::payload_space() noexcept {
  if (failed_ || !in_equipment_) return {};
  return out_.subspan(pos_);
}

bool DateEventWriter::end_equipment(std::size_t payload_words) noexcept {
  const std::size_t slink_words = kSlinkHeaderWords + payload_words;
  if (failed_ || !in_equipment_ || payload_words > out_.size() - pos_ || slink_words > 0xFFFFu) {
    failed_ = true;
    return false;
  }
  pos_ += payload_words;
  out_[equipment_pos_] = static_cast<std::uint32_t>((kEquipmentHeaderWords + slink_words) * 4);
  std::uint32_t& s0 = out_[equipment_pos_ + kEquipmentHeaderWords];
  s0 = (s0 & ~0xFFFFu) | static_cast<std::uint32_t>(slink_words);
  in_equipment_ = false;
  return true;
}

std::size_t DateEventWriter::finish() noexcept {
  if (failed_ || in_equipment_) return 0;
  header_.size_bytes = static_cast<std::uint32_t>(pos_ * 4);
  encode(header_, out_.first<kDateHeaderWords>());
  return pos_;
}

}  // namespace na64::firmware
