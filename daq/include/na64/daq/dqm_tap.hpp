// SPDX-License-Identifier: Apache-2.0
// Where the data path hands its data-quality histograms over: the trigger
// thread fills one set per event (sampled, nothing locked), and at each
// spill end swaps it for a spare under a mutex, once per spill. Whoever
// watches the run takes the spill's set after the spill reached disk.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

#include "na64/monitoring/dqm.hpp"

namespace na64::daq {

class DqmTap {
 public:
  DqmTap(const firmware::ChannelMap& map, monitoring::DqmConfig config)
      : filling_(map, config), published_(map, config) {}

  /// The set being filled. Trigger thread only.
  [[nodiscard]] monitoring::DqmHistograms& filling() noexcept { return filling_; }

  /// Trigger thread, at the end of `spill`: publishes the set filled during
  /// it (replacing one not taken) and starts an empty one.
  void publish(std::uint32_t spill) {
    {
      std::lock_guard lock(m_);
      std::swap(filling_, published_);
      spill_ = spill;
    }
    filling_.reset();
  }

  /// Any thread: the last published spill's set, merged into `out` (which
  /// must have the same binning); its spill, or nullopt when nothing new
  /// was published since the last take.
  [[nodiscard]] std::optional<std::uint32_t> take(monitoring::DqmHistograms& out) {
    std::lock_guard lock(m_);
    if (!spill_) return std::nullopt;
    out.reset();
    published_.merge_into(out);
    const auto s = spill_;
    spill_.reset();
    return s;
  }

 private:
  monitoring::DqmHistograms filling_;
  std::mutex m_;
  monitoring::DqmHistograms published_;
  std::optional<std::uint32_t> spill_;
};

}  // namespace na64::daq
