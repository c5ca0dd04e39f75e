// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/date.hpp"

namespace na64::firmware {

namespace {

constexpr std::uint32_t kTypeBit17 = 1u << 17;

bool known_type(std::uint32_t t) noexcept {
  switch (static_cast<EventType>(t)) {
    case EventType::StartOfRun:
    case EventType::EndOfRun:
    case EventType::StartOfBurst:
    case EventType::EndOfBurst:
    case EventType::Physics:
    case EventType::Calibration:
      return true;
  }
  return false;
}

}  // namespace

const char* to_string(EventType type) noexcept {
  switch (type) {
    case EventType::StartOfRun: return "start-of-run";
    case EventType::EndOfRun: return "end-of-run";
    case EventType::StartOfBurst: return "start-of-burst";
    case EventType::EndOfBurst: return "end-of-burst";
    case EventType::Physics: return "physics";
    case EventType::Calibration: return "calibration";
  }
  return "unknown";
}

void encode(const DateHeader& h, std::span<std::uint32_t, kDateHeaderWords> out) noexcept {
  out[0] = h.size_bytes;
  out[1] = kDateMagic;
  out[2] = kDateHeaderBytes;
  out[3] = kDateVersion;
  out[4] = static_cast<std::uint32_t>(h.type);
  out[5] = h.run;
  out[6] = h.event_in_run;
  out[7] = (h.spill << 20) | (h.event_in_spill & kMaxEventInSpill);
  out[8] = (h.trigger_mask << 1) | 1u;
  out[9] = h.trigger_mask >> 31;
  out[10] = h.detector_pattern;
  out[11] = h.attributes[0];
  out[12] = h.attributes[1];
  out[13] = h.attributes[2];
  out[14] = h.ldc_id;
  out[15] = h.gdc_id;
  out[16] = h.time_s;
}

Decoded<DateHeader> decode_date_header(std::span<const std::uint32_t> w,
                                       std::size_t offset_bytes) noexcept {
  auto fail = [&](DecodeErrc code, std::size_t word, std::uint64_t found, std::uint64_t expected,
                  const char* field, const char* rule = nullptr) {
    return DecodeError{code, offset_bytes + word * 4, found, expected, field, rule};
  };
  if (w.size() < kDateHeaderWords) {
    return fail(DecodeErrc::Truncated, 0, w.size() * 4, kDateHeaderBytes, "DATE header bytes available",
                ">= 68");
  }
  if (w[1] != kDateMagic) return fail(DecodeErrc::BadMagic, 1, w[1], kDateMagic, "DATE magic");
  if (w[2] != kDateHeaderBytes) {
    return fail(DecodeErrc::BadHeaderLength, 2, w[2], kDateHeaderBytes, "DATE header length");
  }
  if (w[3] != kDateVersion) return fail(DecodeErrc::BadVersion, 3, w[3], kDateVersion, "DATE version");
  if ((w[4] & kTypeBit17) != 0) {
    return fail(DecodeErrc::BadEventType, 4, w[4], 0, "DATE event type", "bit 17 clear");
  }
  if (!known_type(w[4])) {
    return fail(DecodeErrc::BadEventType, 4, w[4], 0, "DATE event type", "one of 1, 2, 5, 6, 7, 8");
  }
  if (w[5] == 0) return fail(DecodeErrc::BadRunNumber, 5, 0, 0, "DATE run number", "!= 0");
  const std::uint32_t size = w[0];
  if (size < kDateHeaderBytes || size % 4 != 0) {
    return fail(DecodeErrc::BadSize, 0, size, 0, "DATE event size", "a multiple of 4, >= 68");
  }
  if (size / 4 > w.size()) {
    return fail(DecodeErrc::Truncated, 0, size, w.size() * 4, "DATE event size",
                "<= the bytes left in the buffer");
  }
  DateHeader h;
  h.size_bytes = size;
  h.type = static_cast<EventType>(w[4]);
  h.run = w[5];
  h.event_in_run = w[6];
  h.spill = w[7] >> 20;
  h.event_in_spill = w[7] & kMaxEventInSpill;
  h.trigger_mask = (w[8] >> 1) | (w[9] << 31);
  h.detector_pattern = w[10];
  h.attributes = {w[11], w[12], w[13]};
  h.ldc_id = w[14];
  h.gdc_id = w[15];
  h.time_s = w[16];
  return h;
}

void encode(const EquipmentHeader& h, std::span<std::uint32_t, kEquipmentHeaderWords> out) noexcept {
  out[0] = h.size_bytes;
  out[1] = h.type;
  out[2] = h.id;
  out[3] = h.attributes[0];
  out[4] = h.attributes[1];
  out[5] = h.attributes[2];
  out[6] = h.basic_element_size;
}

Decoded<EquipmentHeader> decode_equipment_header(std::span<const std::uint32_t> w,
                                                 std::size_t offset_bytes) noexcept {
  if (w.size() < kEquipmentHeaderWords) {
    return DecodeError{DecodeErrc::Truncated, offset_bytes, w.size() * 4, kEquipmentHeaderBytes,
                       "equipment header bytes available", ">= 28"};
  }
  const std::uint32_t size = w[0];
  if (size < kEquipmentHeaderBytes || size % 4 != 0) {
    return DecodeError{DecodeErrc::BadSize, offset_bytes, size, 0, "equipment size",
                       "a multiple of 4, >= 28"};
  }
  if (size / 4 > w.size()) {
    return DecodeError{DecodeErrc::Truncated, offset_bytes, size, w.size() * 4, "equipment size",
                       "<= the bytes left in the event"};
  }
  EquipmentHeader h;
  h.size_bytes = size;
  h.type = w[1];
  h.id = w[2];
  h.attributes = {w[3], w[4], w[5]};
  h.basic_element_size = w[6];
  return h;
}

}  // namespace na64::firmware
