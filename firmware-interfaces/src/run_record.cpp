// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/run_record.hpp"

#include <cstring>

namespace na64::firmware {

std::size_t write_config_record(std::span<std::uint32_t> out, std::span<const std::uint8_t, 32> sha256,
                                std::string_view text) noexcept {
  const std::size_t words = config_record_words(text.size());
  if (out.size() < words || words > 0xFFFF'FFFFu / 4) return 0;  // the size field counts bytes in 32 bits
  EquipmentHeader eq;
  eq.size_bytes = static_cast<std::uint32_t>(words * 4);
  eq.type = kConfigRecordType;
  encode(eq, out.first<kEquipmentHeaderWords>());
  std::size_t pos = kEquipmentHeaderWords;
  out[pos++] = kConfigRecordVersion;
  std::memcpy(out.data() + pos, sha256.data(), sha256.size());
  pos += 8;
  out[pos++] = static_cast<std::uint32_t>(text.size());
  out[words - 1] = 0;  // padding after the text
  std::memcpy(out.data() + pos, text.data(), text.size());
  return words;
}

Decoded<ConfigRecordView> read_config_record(std::span<const std::uint32_t> body, std::size_t offset_bytes) noexcept {
  auto eq = decode_equipment_header(body, offset_bytes);
  if (!eq) return eq.error();
  if (eq->type != kConfigRecordType) {
    return DecodeError{DecodeErrc::BadEventType, offset_bytes + 4, eq->type, kConfigRecordType,
                       "configuration record equipment type"};
  }
  const std::size_t words = eq->size_bytes / 4;
  if (words != body.size()) {
    return DecodeError{DecodeErrc::SizeMismatch, offset_bytes, body.size() * 4, eq->size_bytes,
                       "start-of-run body filled by the configuration record"};
  }
  if (words < kConfigRecordFixedWords) {
    return DecodeError{DecodeErrc::Truncated, offset_bytes, eq->size_bytes, kConfigRecordFixedWords * 4,
                       "configuration record size"};
  }
  std::size_t pos = kEquipmentHeaderWords;
  if (body[pos] != kConfigRecordVersion) {
    return DecodeError{DecodeErrc::BadVersion, offset_bytes + pos * 4, body[pos], kConfigRecordVersion,
                       "configuration record version"};
  }
  ++pos;
  ConfigRecordView view;
  std::memcpy(view.sha256.data(), body.data() + pos, view.sha256.size());
  pos += 8;
  const std::uint32_t text_bytes = body[pos++];
  if (config_record_words(text_bytes) != words) {
    return DecodeError{DecodeErrc::SizeMismatch, offset_bytes + (pos - 1) * 4, text_bytes, (words - pos) * 4,
                       "configuration text length", "fills the record, padded to 4 bytes"};
  }
  view.text = std::string_view(reinterpret_cast<const char*>(body.data() + pos), text_bytes);
  return view;
}

const char* to_string(MissingReason r) noexcept {
  switch (r) {
    case MissingReason::None: return "none";
    case MissingReason::Late: return "late";
    case MissingReason::LostSource: return "lost_source";
    case MissingReason::BufferOverflow: return "buffer_overflow";
    case MissingReason::NotFound: return "not_found";
    case MissingReason::Refused: return "refused";
    case MissingReason::NoSummary: return "no_summary";
  }
  return "unknown";
}

}  // namespace na64::firmware
