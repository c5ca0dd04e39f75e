// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace na64::firmware {

// Every format here is little-endian 32-bit words, read in place.
static_assert(std::endian::native == std::endian::little,
              "the DATE and MSADC decoders read little-endian words in place");

/// What a decoder found wrong. Each value names one rule of DOMAIN.md section 4.
enum class DecodeErrc : std::uint8_t {
  Truncated,          ///< fewer bytes than a header or a declared size needs; walk_date_event
                      ///< reports a block overrunning its event as SizeMismatch instead
  BadMagic,           ///< DATE magic is not 0xDA1E5AFE
  BadHeaderLength,    ///< DATE header length is not 68
  BadVersion,         ///< DATE version is not 0x00030006
  BadEventType,       ///< DATE type unknown, or bit 17 set
  BadRunNumber,       ///< run number 0
  BadSize,            ///< a size field is not a multiple of 4, too small, or too large
  SizeMismatch,       ///< equipment size != 28 + 4 x S-Link size, or body not filled exactly
                      ///< (words left over, or a block or sub-event running past the event's end)
  BadSourceId,        ///< S-Link source id >= 896
  SlinkErrorFlag,     ///< S-Link error bit set
  BadFormatByte,      ///< S-Link format byte bit 7 set
  BadTcsError,        ///< S-Link TCS error byte is not 0x08
  ErrorWords,         ///< S-Link error-word count is not 0
  EventNumberMismatch,///< S-Link or ADC event number differs from the DATE header's
  SpillMismatch,      ///< S-Link spill differs from the DATE header's
  BadAdcKey,          ///< ADC header bits 30-31 are not 0b11
  ZeroAdcSize,        ///< ADC block size 0
  AdcErrorFlag,       ///< ADC header error bit set
  BadChannelKey,      ///< channel header bits 30-31 not 0b01, or bit 25 set
  BadSampleCount,     ///< channel sample count 0 (the field allows 1-511)
  BadMarker,          ///< data word marker not 0x40 (first) / 0x80 (others)
  DuplicateChannel,   ///< the same (port, ADC, channel) twice in one block
  BadSubEvent,        ///< a super-event's sub-event disagrees with its top header
  MissingChannels,    ///< a source's block lacks channels its map names
  BadApvFormat,       ///< APV ADC format byte: bit 0 (triple frame) clear, or bit 4, 5 or 7 set
  ApvTimeTagMismatch, ///< an APV ADC header's time tag differs from the block's first one
  ApvFrameNotGood,    ///< an APV chip header's frame good bit is 0
  BadApvChannelCount, ///< a latch-all APV chip block without exactly 128 data words
  ApvChannelOrder,    ///< sparse APV channels not in strictly increasing readout order
  BadApvCommonMode,   ///< APV common-mode word bits 30-31 are not 0b10
  DuplicateApvChip,   ///< the same (ADC id, chip id) twice in one APV block
  BadStrawKey,        ///< a straw TDC word's key bits do not match its place in the block
  BadStrawVersion,    ///< straw TDC block header version is not 1
  StrawReservedBits,  ///< a reserved bit of a straw TDC word is set
  StrawHitCountMismatch, ///< straw TDC trailer hit count differs from the hit words
  DuplicateStrawTdc,  ///< the same straw TDC id twice in one block
  ReadoutBadKey,      ///< MSADC readout message key is not 0x4D52
  ReadoutBadVersion,  ///< MSADC readout protocol version is not 1 (message header or FIRMWARE_VERSION)
  ReadoutBadType,     ///< MSADC readout message type unknown, or not the one the decoder reads
  ReadoutReservedBits,///< a reserved bit of an MSADC readout word is set
  ReadoutEmptyBatch,  ///< a summary packet with no particle, or a request message with no request
  ReadoutBadSummaryCount, ///< more than 512 channel summaries for one particle
  ReadoutParticleGap, ///< a summary packet's particle number is not the previous one + 1
  ReadoutSummaryOrder,///< a particle's summaries not in strictly increasing (port, ADC, channel) order
  ReadoutBadReason,   ///< a bad-request answer's reason is not one of 1-4
  LinkBadKey,         ///< front-end link message key is not 0x4C46
  LinkBadVersion,     ///< front-end link protocol version is not 1
  LinkBadType,        ///< front-end link message type unknown, or not the one the decoder reads
  LinkReservedBits,   ///< a reserved bit of a front-end link word is set
  LinkEmptyBatch,     ///< a front-end link request message with no request
  LinkBadBlockKind,   ///< a front-end link event-data block kind is not 1 (APV) or 2 (straw TDC)
};

/// Short stable name of an error code, e.g. "bad-magic"; used as a counter key.
[[nodiscard]] const char* to_string(DecodeErrc code) noexcept;

/// One decoding error: what rule, where (byte offset from the start of the
/// buffer or file the caller named), what was found and what was expected.
/// Trivially copyable; building one allocates nothing.
struct DecodeError {
  DecodeErrc code{};
  std::size_t offset_bytes = 0;
  std::uint64_t found = 0;
  std::uint64_t expected = 0;
  const char* field = "";  ///< static string naming the field, e.g. "S-Link source id"
  /// Static text for the expectation when it is not one value ("< 896"); else null.
  const char* expected_rule = nullptr;

  /// "offset 136 (0x88): S-Link source id: found 900 (0x384), expected < 896 [bad-source-id]"
  [[nodiscard]] std::string message() const;
};

/// A decoded value or the error that stopped decoding. Never throws.
template <class T>
class [[nodiscard]] Decoded {
 public:
  Decoded(T value) : v_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Decoded(DecodeError error) : v_(error) {}          // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  /// Precondition: ok().
  [[nodiscard]] const T& value() const& noexcept { return *std::get_if<0>(&v_); }
  [[nodiscard]] T& value() & noexcept { return *std::get_if<0>(&v_); }
  const T& operator*() const& noexcept { return value(); }
  const T* operator->() const noexcept { return &value(); }
  /// Precondition: !ok().
  [[nodiscard]] const DecodeError& error() const noexcept { return *std::get_if<1>(&v_); }

 private:
  std::variant<T, DecodeError> v_;
};

/// Result of a check that yields no value.
struct Checked {};

}  // namespace na64::firmware
