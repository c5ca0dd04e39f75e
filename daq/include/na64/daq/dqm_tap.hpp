// SPDX-License-Identifier: Apache-2.0
// Where the data path hands its data-quality histograms over: the trigger
// thread fills one set per event (sampled, nothing locked), and at each
// spill end swaps it into a queue of published sets under a mutex, once per
// spill. Whoever watches the run takes a spill's set after that spill
// reached disk; by then the trigger may have published a few more, which
// wait in the queue.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "na64/monitoring/dqm.hpp"

namespace na64::daq {

/// Thread safety: filling() and publish() from the trigger thread only;
/// take() and dropped() from any thread.
class DqmTap {
 public:
  /// Published sets held for the watcher. When it falls this many spills
  /// behind, the oldest set is dropped (and counted).
  static constexpr std::size_t kDepth = 8;

  /// All sets are built here, so that publishing allocates nothing.
  DqmTap(const firmware::ChannelMap& map, const monitoring::DqmConfig& config)
      : filling_(map, config), published_(kDepth, monitoring::DqmHistograms(map, config)) {}

  /// The set being filled. Trigger thread only.
  [[nodiscard]] monitoring::DqmHistograms& filling() noexcept { return filling_; }

  /// Trigger thread, at the end of `spill`: publishes the set filled during
  /// it and starts an empty one.
  void publish(std::uint32_t spill) {
    {
      std::lock_guard lock(m_);
      if (count_ == kDepth) {
        head_ = (head_ + 1) % kDepth;
        --count_;
        ++dropped_;
      }
      const std::size_t slot = (head_ + count_) % kDepth;
      std::swap(filling_, published_[slot]);  // moves the histograms' buffers: no allocation
      spills_[slot] = spill;
      ++count_;
    }
    filling_.reset();
  }

  /// Any thread: the set of `spill` merged into `out` (which must have the
  /// same binning), true; false when it is not published (yet, or dropped).
  /// Sets of earlier spills still held are dropped.
  [[nodiscard]] bool take(std::uint32_t spill, monitoring::DqmHistograms& out) {
    std::lock_guard lock(m_);
    while (count_ > 0 && spills_[head_] < spill) {
      head_ = (head_ + 1) % kDepth;
      --count_;
      ++dropped_;
    }
    if (count_ == 0 || spills_[head_] != spill) return false;
    out.reset();
    published_[head_].merge_into(out);
    head_ = (head_ + 1) % kDepth;
    --count_;
    return true;
  }

  /// Sets dropped because nobody took them in time.
  [[nodiscard]] std::uint64_t dropped() const {
    std::lock_guard lock(m_);
    return dropped_;
  }

 private:
  monitoring::DqmHistograms filling_;
  mutable std::mutex m_;
  std::vector<monitoring::DqmHistograms> published_;  ///< a ring of kDepth, from head_
  std::array<std::uint32_t, kDepth> spills_{};
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace na64::daq
