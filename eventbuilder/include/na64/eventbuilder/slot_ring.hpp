// SPDX-License-Identifier: Apache-2.0
// An SPSC ring of records, each a small descriptor plus a fixed-size block of
// words in a pre-allocated arena: the hand-off between pipeline stages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "na64/eventbuilder/spsc_ring.hpp"

namespace na64::eventbuilder {

/// Record kinds travelling through every ring, in stream order per source:
/// SpillBegin(s), Data..., SpillEnd(s), ..., RunEnd.
enum class RecordKind : std::uint8_t { Data, SpillBegin, SpillEnd, RunEnd };

/// SpscRing<Desc> whose slot i owns words [i x slot_words, (i+1) x slot_words)
/// of an arena allocated and pre-faulted at construction.
///
/// Thread safety: as SpscRing (one producer thread, one consumer thread).
template <class Desc>
class SlotRing {
 public:
  SlotRing(std::size_t slots, std::size_t slot_words)
      : ring_(slots), slot_words_(slot_words), arena_(std::make_unique<std::uint32_t[]>(ring_.capacity() * slot_words)) {
    // Touch every page now so that no page fault lands on the data path.
    std::memset(arena_.get(), 0, ring_.capacity() * slot_words * sizeof(std::uint32_t));
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return ring_.capacity(); }
  [[nodiscard]] std::size_t slot_words() const noexcept { return slot_words_; }

  [[nodiscard]] std::size_t writable(std::size_t want = 1) noexcept { return ring_.writable(want); }
  [[nodiscard]] Desc& write_desc(std::size_t k) noexcept { return ring_.write_slot(k); }
  [[nodiscard]] std::span<std::uint32_t> write_words(std::size_t k) noexcept {
    return {arena_.get() + ring_.write_position(k) * slot_words_, slot_words_};
  }
  void commit(std::size_t n) noexcept { ring_.commit(n); }

  [[nodiscard]] std::size_t readable(std::size_t want = 1) noexcept { return ring_.readable(want); }
  [[nodiscard]] const Desc& read_desc(std::size_t k) const noexcept { return ring_.read_slot(k); }
  /// The slot's whole word block; the descriptor says how much of it is used.
  [[nodiscard]] std::span<const std::uint32_t> read_words(std::size_t k) const noexcept {
    return {arena_.get() + ring_.read_position(k) * slot_words_, slot_words_};
  }
  void consume(std::size_t n) noexcept { ring_.consume(n); }

 private:
  SpscRing<Desc> ring_;
  std::size_t slot_words_;
  std::unique_ptr<std::uint32_t[]> arena_;
};

/// A front-end fragment: one source's data for one particle, or a marker.
struct FragmentDesc {
  RecordKind kind = RecordKind::Data;
  std::uint32_t spill = 0;
  std::uint32_t event = 0;    ///< particle number in spill (Data); particles sent (SpillEnd)
  std::uint32_t n_words = 0;  ///< payload words used in the slot (Data)
};
using FragmentRing = SlotRing<FragmentDesc>;

}  // namespace na64::eventbuilder
