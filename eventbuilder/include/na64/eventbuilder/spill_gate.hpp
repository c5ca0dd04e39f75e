// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <stop_token>

namespace na64::eventbuilder {

/// Makes the readout threads of all sources agree on the last spill of a run
/// that is stopped early, so that every source reads the same spills out
/// whole and the last spill ends with no event left incomplete.
///
/// Each source calls may_begin(s, stop) before beginning spill s. The first
/// call that sees the stop fixes the last spill as the highest any source has
/// announced; sources behind it go on up to that spill, none goes beyond.
///
/// Thread safety: may_begin() from any number of threads. Every operation is
/// sequentially consistent: a source announces its spill before it looks at
/// the decision, and the decision is taken after reading the announcements,
/// so either the announcement is seen (and that spill is included) or the
/// decision is (and that source stops before the spill).
class SpillGate {
 public:
  [[nodiscard]] bool may_begin(std::uint32_t spill, const std::stop_token& stop) noexcept {
    std::uint32_t seen = highest_.load();
    while (seen < spill && !highest_.compare_exchange_weak(seen, spill)) {
    }
    std::uint32_t last = last_.load();
    if (last == kOpen && stop.stop_requested()) {
      std::uint32_t expected = kOpen;
      last_.compare_exchange_strong(expected, highest_.load());
      last = last_.load();
    }
    return last == kOpen || spill <= last;
  }

 private:
  static constexpr std::uint32_t kOpen = 0;  ///< spills are numbered from 1
  std::atomic<std::uint32_t> highest_{0};
  std::atomic<std::uint32_t> last_{kOpen};
};

}  // namespace na64::eventbuilder
