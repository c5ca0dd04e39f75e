// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/decode_error.hpp"

#include <fmt/format.h>

namespace na64::firmware {

const char* to_string(DecodeErrc code) noexcept {
  switch (code) {
    case DecodeErrc::Truncated: return "truncated";
    case DecodeErrc::BadMagic: return "bad-magic";
    case DecodeErrc::BadHeaderLength: return "bad-header-length";
    case DecodeErrc::BadVersion: return "bad-version";
    case DecodeErrc::BadEventType: return "bad-event-type";
    case DecodeErrc::BadRunNumber: return "bad-run-number";
    case DecodeErrc::BadSize: return "bad-size";
    case DecodeErrc::SizeMismatch: return "size-mismatch";
    case DecodeErrc::BadSourceId: return "bad-source-id";
    case DecodeErrc::SlinkErrorFlag: return "slink-error-flag";
    case DecodeErrc::BadFormatByte: return "bad-format-byte";
    case DecodeErrc::BadTcsError: return "bad-tcs-error";
    case DecodeErrc::ErrorWords: return "error-words";
    case DecodeErrc::EventNumberMismatch: return "event-number-mismatch";
    case DecodeErrc::SpillMismatch: return "spill-mismatch";
    case DecodeErrc::BadAdcKey: return "bad-adc-key";
    case DecodeErrc::ZeroAdcSize: return "zero-adc-size";
    case DecodeErrc::AdcErrorFlag: return "adc-error-flag";
    case DecodeErrc::BadChannelKey: return "bad-channel-key";
    case DecodeErrc::BadSampleCount: return "bad-sample-count";
    case DecodeErrc::BadMarker: return "bad-marker";
    case DecodeErrc::DuplicateChannel: return "duplicate-channel";
    case DecodeErrc::BadSubEvent: return "bad-sub-event";
    case DecodeErrc::MissingChannels: return "missing-channels";
    case DecodeErrc::BadApvFormat: return "bad-apv-format";
    case DecodeErrc::ApvTimeTagMismatch: return "apv-time-tag-mismatch";
    case DecodeErrc::ApvFrameNotGood: return "apv-frame-not-good";
    case DecodeErrc::BadApvChannelCount: return "bad-apv-channel-count";
    case DecodeErrc::ApvChannelOrder: return "apv-channel-order";
    case DecodeErrc::BadApvCommonMode: return "bad-apv-common-mode";
    case DecodeErrc::DuplicateApvChip: return "duplicate-apv-chip";
    case DecodeErrc::BadStrawKey: return "bad-straw-key";
    case DecodeErrc::BadStrawVersion: return "bad-straw-version";
    case DecodeErrc::StrawReservedBits: return "straw-reserved-bits";
    case DecodeErrc::StrawHitCountMismatch: return "straw-hit-count-mismatch";
    case DecodeErrc::DuplicateStrawTdc: return "duplicate-straw-tdc";
    case DecodeErrc::ReadoutBadKey: return "readout-bad-key";
    case DecodeErrc::ReadoutBadVersion: return "readout-bad-version";
    case DecodeErrc::ReadoutBadType: return "readout-bad-type";
    case DecodeErrc::ReadoutReservedBits: return "readout-reserved-bits";
    case DecodeErrc::ReadoutEmptyBatch: return "readout-empty-batch";
    case DecodeErrc::ReadoutBadSummaryCount: return "readout-bad-summary-count";
    case DecodeErrc::ReadoutParticleGap: return "readout-particle-gap";
    case DecodeErrc::ReadoutSummaryOrder: return "readout-summary-order";
    case DecodeErrc::ReadoutBadReason: return "readout-bad-reason";
    case DecodeErrc::LinkBadKey: return "link-bad-key";
    case DecodeErrc::LinkBadVersion: return "link-bad-version";
    case DecodeErrc::LinkBadType: return "link-bad-type";
    case DecodeErrc::LinkReservedBits: return "link-reserved-bits";
    case DecodeErrc::LinkEmptyBatch: return "link-empty-batch";
    case DecodeErrc::LinkBadBlockKind: return "link-bad-block-kind";
  }
  return "unknown";
}

std::string DecodeError::message() const {
  const std::string want =
      expected_rule != nullptr ? std::string(expected_rule) : fmt::format("{} (0x{:x})", expected, expected);
  return fmt::format("offset {} (0x{:x}): {}: found {} (0x{:x}), expected {} [{}]", offset_bytes,
                     offset_bytes, field, found, found, want, to_string(code));
}

}  // namespace na64::firmware
