// SPDX-License-Identifier: Apache-2.0
#include "na64/eventbuilder/event_builder.hpp"

#include "na64/eventbuilder/backoff.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

namespace na64::eventbuilder {

namespace {

constexpr std::uint64_t kNoHead = 0;
constexpr std::uint64_t kRunEndKey = std::numeric_limits<std::uint64_t>::max();

// Stream order within a spill: begin marker, data by particle number, end marker.
// Spill 0 is never used, so a real key is never 0 (kNoHead).
constexpr std::uint64_t key_of(const FragmentDesc& d) noexcept {
  const std::uint64_t spill = std::uint64_t{d.spill} << 34;
  switch (d.kind) {
    case RecordKind::SpillBegin: return spill;
    case RecordKind::Data: return spill | (std::uint64_t{1} << 32) | d.event;
    case RecordKind::SpillEnd: return spill | (std::uint64_t{2} << 32);
    case RecordKind::RunEnd: return kRunEndKey;
  }
  return kRunEndKey;
}
constexpr std::uint32_t spill_of(std::uint64_t key) noexcept { return static_cast<std::uint32_t>(key >> 34); }
constexpr std::uint32_t phase_of(std::uint64_t key) noexcept { return static_cast<std::uint32_t>(key >> 32) & 3u; }

static_assert(std::is_trivially_copyable_v<BuilderSpillCounters>);
constexpr std::size_t kCounterWords = (sizeof(BuilderSpillCounters) + 3) / 4;

}  // namespace

const char* to_string(IncompleteReason r) noexcept {
  switch (r) {
    case IncompleteReason::None: return "none";
    case IncompleteReason::Timeout: return "timeout";
    case IncompleteReason::SourceLost: return "source_lost";
    case IncompleteReason::Skipped: return "skipped";
    case IncompleteReason::EndOfSpill: return "end_of_spill";
  }
  return "unknown";
}

std::size_t built_slot_words(std::span<FragmentRing* const> inputs) noexcept {
  std::size_t words = 0;
  for (const FragmentRing* r : inputs) words += 2 + r->slot_words();
  return std::max(words, kCounterWords);
}

EventBuilder::EventBuilder(std::vector<FragmentRing*> inputs, BuiltRing& output, BuilderConfig config)
    : in_(std::move(inputs)), out_(output), config_(config) {
  if (in_.empty() || in_.size() > kMaxSources) {
    throw std::invalid_argument("event builder: between 1 and 32 sources");
  }
  if (out_.slot_words() < built_slot_words(in_)) {
    throw std::invalid_argument("event builder: output slot smaller than all fragments together");
  }
  if (config_.batch == 0) config_.batch = 1;
  all_mask_ = in_.size() == 32 ? ~0u : (1u << in_.size()) - 1;
}

std::uint64_t EventBuilder::head_key(std::size_t s) noexcept {
  FragmentRing& r = *in_[s];
  // Drop what is late: anything at or before the last record released.
  while (r.readable(taken_[s] + 1) > taken_[s]) {
    const FragmentDesc& d = r.read_desc(taken_[s]);
    const std::uint64_t k = key_of(d);
    if (k > last_key_ || (k == kRunEndKey && last_key_ != kRunEndKey)) return k;
    ++taken_[s];
    ++spill_.late_fragments;
  }
  return kNoHead;
}

void EventBuilder::run(const std::stop_token& stop) noexcept {
  Backoff backoff;
  while (!finished_ && !stop.stop_requested()) {
    if (poll(std::chrono::steady_clock::now()) != 0) {
      backoff.reset();
    } else {
      backoff.pause();
    }
  }
}

std::size_t EventBuilder::poll(std::chrono::steady_clock::time_point now) noexcept {
  std::size_t produced = 0;
  const std::size_t n = in_.size();
  taken_.fill(0);
  while (produced < config_.batch && !finished_ && out_.writable(produced + 1) > produced) {
    std::uint64_t target = kRunEndKey;
    bool any_head = false;
    std::uint32_t waiting = 0;
    for (std::size_t s = 0; s < n; ++s) {
      const std::uint32_t bit = 1u << s;
      if ((done_mask_ & bit) != 0) continue;
      keys_[s] = head_key(s);
      if (keys_[s] == kNoHead) {
        if ((lost_mask_ & bit) == 0) waiting |= bit;
        continue;
      }
      any_head = true;
      target = std::min(target, keys_[s]);
    }
    if (!any_head) {
      // Nothing waits to be built (between spills, before the run): idle time
      // is no source's silence and must not start or feed the timeout.
      waiting_ = false;
      break;
    }
    std::uint32_t timed_out = 0;
    if (waiting != 0) {
      if (!waiting_) {
        waiting_ = true;
        waiting_since_ = now;
        break;
      }
      if (now - waiting_since_ < config_.timeout) break;
      timed_out = waiting;
      lost_mask_ |= waiting;
      spill_.lost_sources |= waiting;
    }
    waiting_ = false;

    // Sources delivering the target now; a lost source that delivers is back.
    std::uint32_t present = 0;
    for (std::size_t s = 0; s < n; ++s) {
      if ((done_mask_ & (1u << s)) == 0 && keys_[s] == target) present |= 1u << s;
    }
    // A lost source may come back at a spill boundary: before a spill
    // begins, wait up to the timeout for it to reach the same SpillBegin (its
    // stale fragments are dropped as late meanwhile, and the other sources
    // are held back), so that a board that stalled rejoins the next spill.
    const std::uint32_t behind = lost_mask_ & ~present & ~done_mask_;
    if (phase_of(target) == 0 && target != kRunEndKey && behind != 0) {
      if (resync_target_ != target) {
        resync_target_ = target;
        resync_since_ = now;
        break;
      }
      if (now - resync_since_ < config_.timeout) break;
    }
    lost_mask_ &= ~present;

    if (target == kRunEndKey) {
      for (std::size_t s = 0; s < n; ++s) {
        if ((present >> s) & 1u) ++taken_[s];
      }
      done_mask_ |= present;
      // Lost sources will not be waited for at the end of the run.
      if ((done_mask_ | lost_mask_) != all_mask_) continue;
      BuiltDesc& d = out_.write_desc(produced);
      d = BuiltDesc{RecordKind::RunEnd, IncompleteReason::None, 0, 0, present, all_mask_ & ~done_mask_, 0};
      ++produced;
      finished_ = true;
      last_key_ = target;
      // Fragments dropped since the last SpillEnd belong to no spill.
      totals_.late_fragments += spill_.late_fragments;
      spill_.late_fragments = 0;
      break;
    }

    const std::uint32_t phase = phase_of(target);
    const std::uint32_t spill = spill_of(target);
    BuiltDesc& d = out_.write_desc(produced);
    if (phase == 1) {
      emit_data(target, present, timed_out, produced);
    } else if (phase == 0) {
      // Fragments dropped as late since the last SpillEnd count in this spill.
      const std::uint64_t late = spill_.late_fragments;
      spill_ = BuilderSpillCounters{};
      spill_.late_fragments = late;
      spill_.lost_sources = lost_mask_;
      d = BuiltDesc{RecordKind::SpillBegin, IncompleteReason::None, spill, 0, present, all_mask_ & ~present, 0};
    } else {
      for (std::size_t s = 0; s < n; ++s) {
        if ((present >> s) & 1u) {
          spill_.particles = std::max<std::uint64_t>(spill_.particles, in_[s]->read_desc(taken_[s]).event);
        }
      }
      auto words = out_.write_words(produced);
      std::memcpy(words.data(), &spill_, sizeof(spill_));
      d = BuiltDesc{RecordKind::SpillEnd, IncompleteReason::None, spill, static_cast<std::uint32_t>(spill_.particles),
                    present, all_mask_ & ~present, static_cast<std::uint32_t>(kCounterWords)};
      totals_.add(spill_);
      spill_.late_fragments = 0;
    }
    for (std::size_t s = 0; s < n; ++s) {
      if ((present >> s) & 1u) ++taken_[s];
    }
    last_key_ = target;
    ++produced;
  }
  for (std::size_t s = 0; s < n; ++s) {
    if (taken_[s] != 0) in_[s]->consume(taken_[s]);
  }
  if (produced != 0) out_.commit(produced);
  return produced;
}

void EventBuilder::emit_data(std::uint64_t key, std::uint32_t present, std::uint32_t timed_out,
                             std::size_t out_k) noexcept {
  const std::size_t n = in_.size();
  auto slot = out_.write_words(out_k);
  std::size_t pos = 0;
  for (std::size_t s = 0; s < n; ++s) {
    if (((present >> s) & 1u) == 0) continue;
    const FragmentRing& r = *in_[s];
    const FragmentDesc& f = r.read_desc(taken_[s]);
    const std::uint32_t words = std::min<std::uint32_t>(f.n_words, static_cast<std::uint32_t>(r.slot_words()));
    slot[pos] = static_cast<std::uint32_t>(s);
    slot[pos + 1] = words;
    std::memcpy(slot.data() + pos + 2, r.read_words(taken_[s]).data(), words * sizeof(std::uint32_t));
    pos += 2 + words;
  }
  const std::uint32_t missing = all_mask_ & ~present;
  IncompleteReason reason = IncompleteReason::None;
  if (missing != 0) {
    if ((missing & timed_out) != 0) {
      reason = IncompleteReason::Timeout;
    } else if ((missing & lost_mask_) != 0) {
      reason = IncompleteReason::SourceLost;
    } else {
      reason = IncompleteReason::Skipped;
      for (std::size_t s = 0; s < n; ++s) {
        if (((missing >> s) & 1u) != 0 && phase_of(keys_[s]) == 2 && spill_of(keys_[s]) == spill_of(key)) {
          reason = IncompleteReason::EndOfSpill;
        }
      }
    }
    ++spill_.incomplete;
  } else {
    ++spill_.complete;
  }
  ++spill_.by_reason[static_cast<std::size_t>(reason)];
  out_.write_desc(out_k) = BuiltDesc{RecordKind::Data, reason, spill_of(key), static_cast<std::uint32_t>(key),
                                     present, missing, static_cast<std::uint32_t>(pos)};
}

}  // namespace na64::eventbuilder
