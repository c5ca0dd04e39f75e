// SPDX-License-Identifier: Apache-2.0
// Whole DATE events: a walker that validates an event and visits its
// equipment blocks, and a writer that lays one out in caller memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "na64/firmware/date.hpp"
#include "na64/firmware/decode_error.hpp"
#include "na64/firmware/slink.hpp"

namespace na64::firmware {

/// One equipment of a decoded event; `payload` is the S-Link block after its
/// 3-word header (for an MSADC source, a data_format3 block).
struct EquipmentView {
  EquipmentHeader equipment;
  SlinkHeader slink;
  std::span<const std::uint32_t> payload;
  std::size_t payload_offset_bytes = 0;
};

/// Validates one DATE event at the start of `words` and calls
/// `on_equipment(const DateHeader&, const EquipmentView&)` for each equipment
/// of a type that carries equipment (6, 7, 8), walking sub-events of a
/// super-event. Rules (DOMAIN.md 4.2-4.4): the body is filled exactly by
/// equipment blocks (or sub-events); equipment size == 28 + 4 x S-Link size;
/// S-Link event number == DATE event number in burst and S-Link spill ==
/// DATE burst; each sub-event's magic, version, run, burst and event numbers
/// equal the top header's. Returns the header, or the first error with its
/// byte offset (`offset_bytes` + position in `words`).
[[nodiscard]] Decoded<DateHeader> walk_date_event(std::span<const std::uint32_t> words, std::size_t offset_bytes,
                                                  void (*on_equipment)(void*, const DateHeader&,
                                                                       const EquipmentView&),
                                                  void* context) noexcept;

/// Convenience overload for any callable.
template <class F>
[[nodiscard]] Decoded<DateHeader> walk_date_event(std::span<const std::uint32_t> words, std::size_t offset_bytes,
                                                  F&& on_equipment) noexcept {
  return walk_date_event(
      words, offset_bytes,
      [](void* ctx, const DateHeader& h, const EquipmentView& e) { (*static_cast<F*>(ctx))(h, e); },
      const_cast<void*>(static_cast<const void*>(&on_equipment)));
}

/// Lays out one plain DATE event (header + equipment blocks, each with one
/// S-Link block) in caller-owned memory. No allocation.
///
/// Usage: begin(header) - then per equipment begin_equipment(), write the
/// payload into payload_space() and end_equipment(words) - then finish(),
/// which patches the sizes and returns the event's words (0 on overflow).
class DateEventWriter {
 public:
  explicit DateEventWriter(std::span<std::uint32_t> out) noexcept : out_(out) {}

  void begin(const DateHeader& header) noexcept;
  /// `slink` sizes are set by end_equipment(); its event and spill numbers
  /// are taken from the DATE header.
  [[nodiscard]] bool begin_equipment(const EquipmentHeader& equipment, const SlinkHeader& slink) noexcept;
  /// Free space for the payload of the open equipment.
  [[nodiscard]] std::span<std::uint32_t> payload_space() noexcept;
  [[nodiscard]] bool end_equipment(std::size_t payload_words) noexcept;
  /// Returns the event's length in words, 0 if anything overflowed.
  [[nodiscard]] std::size_t finish() noexcept;

 private:
  std::span<std::uint32_t> out_;
  DateHeader header_;
  std::size_t pos_ = 0;
  std::size_t equipment_pos_ = 0;
  bool in_equipment_ = false;
  bool failed_ = false;
};

}  // namespace na64::firmware
