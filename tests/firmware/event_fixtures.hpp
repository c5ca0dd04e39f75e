// SPDX-License-Identifier: Apache-2.0
// Valid encoded DATE events and MSADC blocks for the firmware-interfaces tests
// and the fuzz seed generator. Built with the library's own writers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "na64/firmware/date.hpp"
#include "na64/firmware/date_event.hpp"
#include "na64/firmware/msadc.hpp"
#include "na64/firmware/slink.hpp"

namespace na64::firmware::test {

struct ChannelSpec {
  std::uint32_t channel = 0;
  std::vector<std::uint16_t> samples;
};

struct AdcSpec {
  std::uint32_t port = 0;
  std::uint32_t adc_id = 0;
  std::vector<ChannelSpec> channels;
};

/// Samples 0..n-1 mapped into 12 bits, distinct per (seed, k).
inline std::vector<std::uint16_t> ramp(std::size_t n, std::uint32_t seed) {
  std::vector<std::uint16_t> s(n);
  for (std::size_t k = 0; k < n; ++k) s[k] = static_cast<std::uint16_t>((seed * 131 + k * 7) & 0xFFFu);
  return s;
}

/// A data_format3 block; an empty vector if the writer refused the layout.
inline std::vector<std::uint32_t> make_msadc_block(std::uint32_t event_number, const std::vector<AdcSpec>& adcs) {
  std::vector<std::uint32_t> out(8192);
  MsadcBlockWriter w(out, event_number);
  for (const auto& a : adcs) {
    if (!w.begin_adc(a.port, a.adc_id)) return {};
    for (const auto& c : a.channels) {
      if (!w.add_channel(c.channel, c.samples)) return {};
    }
  }
  out.resize(w.finish());
  return out;
}

/// Three ADCs on two ports, odd and even sample counts.
inline std::vector<AdcSpec> three_adcs() {
  return {
      {0, 0, {{0, ramp(1, 1)}, {5, ramp(2, 2)}, {15, ramp(7, 3)}}},
      {3, 2, {{1, ramp(8, 4)}}},
      {7, 3, {{9, ramp(32, 5)}, {10, ramp(3, 6)}}},
  };
}

inline DateHeader physics_header() {
  DateHeader h;
  h.type = EventType::Physics;
  h.run = 4242;
  h.event_in_run = 1033;
  h.spill = 17;
  h.event_in_spill = 33;
  h.trigger_mask = 0x80000001u;
  h.detector_pattern = 0x5;
  h.ldc_id = 2;
  h.gdc_id = 3;
  h.time_s = 1700000000;
  return h;
}

struct EquipmentSpec {
  std::uint32_t equipment_id = 0;
  std::uint32_t source_id = 0;
  std::vector<std::uint32_t> payload;
};

/// One plain DATE event laid out by DateEventWriter; empty if it refused.
inline std::vector<std::uint32_t> make_event(const DateHeader& header, const std::vector<EquipmentSpec>& equipment) {
  std::size_t words = kDateHeaderWords;
  for (const auto& e : equipment) words += kEquipmentHeaderWords + kSlinkHeaderWords + e.payload.size();
  std::vector<std::uint32_t> out(words);
  DateEventWriter w(out);
  w.begin(header);
  for (const auto& e : equipment) {
    EquipmentHeader eq;
    eq.type = 20;
    eq.id = e.equipment_id;
    SlinkHeader sl;
    sl.source_id = e.source_id;
    sl.format = 0x03;
    if (!w.begin_equipment(eq, sl)) return {};
    auto space = w.payload_space();
    if (space.size() < e.payload.size()) return {};
    std::copy(e.payload.begin(), e.payload.end(), space.begin());
    if (!w.end_equipment(e.payload.size())) return {};
  }
  out.resize(w.finish());
  return out;
}

/// Three MSADC equipments (sources 620, 621, 622) for `header`'s event.
inline std::vector<EquipmentSpec> three_msadc_equipments(const DateHeader& header) {
  return {
      {1, 620, make_msadc_block(header.event_in_spill, three_adcs())},
      {2, 621, make_msadc_block(header.event_in_spill, {{1, 1, {{4, ramp(5, 9)}}}})},
      {3, 622, make_msadc_block(header.event_in_spill, {{2, 0, {{0, ramp(4, 10)}, {1, ramp(4, 11)}}}})},
  };
}

/// A super-event: a top header (attributes[2] bit 4) whose body is `subs`.
inline std::vector<std::uint32_t> make_super_event(DateHeader top, const std::vector<std::vector<std::uint32_t>>& subs) {
  std::vector<std::uint32_t> out(kDateHeaderWords);
  for (const auto& s : subs) out.insert(out.end(), s.begin(), s.end());
  top.attributes[2] |= kSuperEventAttribute;
  top.size_bytes = static_cast<std::uint32_t>(out.size() * 4);
  encode(top, std::span<std::uint32_t, kDateHeaderWords>(out.data(), kDateHeaderWords));
  return out;
}

}  // namespace na64::firmware::test
