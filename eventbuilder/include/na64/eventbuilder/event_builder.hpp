// SPDX-License-Identifier: Apache-2.0
// Assembles per-source fragments into events by (spill, particle number).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stop_token>
#include <vector>

#include "na64/eventbuilder/slot_ring.hpp"

namespace na64::eventbuilder {

inline constexpr std::size_t kMaxSources = 32;

/// Why an event was released without every source. One reason per event.
enum class IncompleteReason : std::uint8_t {
  None,        ///< complete
  Timeout,     ///< a source sent nothing for the builder timeout while this event waited
  SourceLost,  ///< a source already given up on (it timed out earlier and has not come back)
  Skipped,     ///< a source sent later events but not this one
  EndOfSpill,  ///< a source closed the spill without this event
};
inline constexpr std::size_t kNumIncompleteReasons = 5;
[[nodiscard]] const char* to_string(IncompleteReason r) noexcept;

/// A built record. For Data, the slot holds, per present source in slot
/// order, two words (source slot, payload words) and the payload.
struct BuiltDesc {
  RecordKind kind = RecordKind::Data;
  IncompleteReason reason = IncompleteReason::None;
  std::uint32_t spill = 0;
  std::uint32_t event = 0;         ///< particle number in spill
  std::uint32_t present_mask = 0;  ///< bit = source slot
  std::uint32_t missing_mask = 0;
  std::uint32_t n_words = 0;
};
using BuiltRing = SlotRing<BuiltDesc>;

/// Per-spill builder counts, carried in the SpillEnd record's slot.
struct BuilderSpillCounters {
  std::uint64_t particles = 0;  ///< the largest count any source reported at spill end
  std::uint64_t complete = 0;
  std::uint64_t incomplete = 0;
  std::array<std::uint64_t, kNumIncompleteReasons> by_reason{};
  /// Arrived after their event was released; dropped. Those dropped between
  /// spills count in the next spill.
  std::uint64_t late_fragments = 0;
  std::uint32_t lost_sources = 0;    ///< mask of sources given up on during the spill

  /// Adds another spill's counts (run totals).
  void add(const BuilderSpillCounters& o) noexcept {
    particles += o.particles;
    complete += o.complete;
    incomplete += o.incomplete;
    for (std::size_t r = 0; r < by_reason.size(); ++r) by_reason[r] += o.by_reason[r];
    late_fragments += o.late_fragments;
    lost_sources |= o.lost_sources;
  }
};

/// One fragment of a built event, read in place from the slot.
struct BuiltFragment {
  std::uint32_t source_slot = 0;
  std::span<const std::uint32_t> words;
};

/// Calls f(BuiltFragment) for each fragment of a Data record's slot.
template <class F>
void for_each_fragment(const BuiltDesc& d, std::span<const std::uint32_t> slot, F&& f) {
  std::size_t pos = 0;
  while (pos + 2 <= d.n_words) {
    const std::uint32_t n = slot[pos + 1];
    f(BuiltFragment{slot[pos], slot.subspan(pos + 2, n)});
    pos += 2 + n;
  }
}

/// Words a BuiltRing slot needs for these input rings.
[[nodiscard]] std::size_t built_slot_words(std::span<FragmentRing* const> inputs) noexcept;

struct BuilderConfig {
  std::chrono::nanoseconds timeout = std::chrono::seconds(2);
  std::size_t batch = 64;  ///< records per poll, published together
};

/// Merges the per-source fragment rings (each in stream order) into one
/// ring of built events and spill/run markers.
///
/// Events are released in (spill, particle) order. An event is complete when
/// every source delivered it; it is released incomplete, with the mask of
/// missing sources and a reason, when a source has moved past it, closed the
/// spill, is lost, or sent nothing for `timeout` (that source is then lost
/// until it delivers again). Before each spill begins, the builder waits up
/// to `timeout` for lost sources to reach it, so a board that stalled rejoins
/// at the next spill. A fragment for an event already released is dropped
/// and counted as late. Nothing is allocated after construction.
///
/// Thread safety: poll() from one thread only; it is the consumer of every
/// input ring and the producer of the output ring.
class EventBuilder {
 public:
  /// Throws std::invalid_argument for 0 or more than 32 inputs, or an output
  /// slot smaller than built_slot_words(inputs).
  EventBuilder(std::vector<FragmentRing*> inputs, BuiltRing& output, BuilderConfig config);

  /// Builds up to config.batch records; returns how many it published.
  std::size_t poll(std::chrono::steady_clock::time_point now) noexcept;
  /// The builder thread's loop: polls on the steady clock until RunEnd is
  /// published or `stop` is requested, backing off while there is nothing to do.
  void run(const std::stop_token& stop) noexcept;
  /// True once RunEnd has been published.
  [[nodiscard]] bool finished() const noexcept { return finished_; }
  /// Counters summed over every spill closed so far.
  [[nodiscard]] const BuilderSpillCounters& totals() const noexcept { return totals_; }

 private:
  [[nodiscard]] std::uint64_t head_key(std::size_t s) noexcept;
  void emit_data(std::uint64_t key, std::uint32_t present_candidates, std::uint32_t timed_out, std::size_t out_k) noexcept;

  std::vector<FragmentRing*> in_;
  BuiltRing& out_;
  BuilderConfig config_;
  std::uint32_t all_mask_ = 0;
  std::uint32_t lost_mask_ = 0;
  std::uint32_t done_mask_ = 0;  ///< sources that sent RunEnd
  std::array<std::size_t, kMaxSources> taken_{};  ///< slots read this poll, consumed at its end
  std::array<std::uint64_t, kMaxSources> keys_{};
  std::uint64_t last_key_ = 0;
  bool waiting_ = false;
  std::chrono::steady_clock::time_point waiting_since_{};
  std::uint64_t resync_target_ = 0;  ///< SpillBegin key at which lost sources were last awaited
  std::chrono::steady_clock::time_point resync_since_{};
  bool finished_ = false;
  BuilderSpillCounters spill_{};
  BuilderSpillCounters totals_{};
};

}  // namespace na64::eventbuilder
