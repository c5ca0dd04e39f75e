// SPDX-License-Identifier: Apache-2.0
// A sampled accepted event for the event display: the writer offers every
// event it writes; one is copied (whole DATE event) at most every `period`,
// without ever making the writer wait (try_lock).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

namespace na64::daq {

class EventSampler {
 public:
  using Clock = std::chrono::steady_clock;
  /// `max_words`: the largest event kept (bigger ones are skipped).
  explicit EventSampler(std::chrono::milliseconds period = std::chrono::milliseconds(1000),
                        std::size_t max_words = 1 << 16)
      : period_(period) {
    words_.reserve(max_words);
  }

  /// Writer thread: one written DATE event. Cheap when not sampling.
  void offer(std::span<const std::uint32_t> event) {
    const auto now = Clock::now();
    if (now < next_) return;
    std::unique_lock lock(m_, std::try_to_lock);
    if (!lock.owns_lock() || event.size() > words_.capacity()) return;
    words_.assign(event.begin(), event.end());  // within the reserved capacity: no allocation
    ++serial_;
    next_ = now + period_;
  }

  /// Any thread: the last sampled event and its serial number (0: none yet).
  std::uint64_t latest(std::vector<std::uint32_t>& out) {
    std::lock_guard lock(m_);
    out.assign(words_.begin(), words_.end());
    return serial_;
  }

 private:
  std::chrono::milliseconds period_;
  Clock::time_point next_{};
  std::mutex m_;
  std::vector<std::uint32_t> words_;
  std::uint64_t serial_ = 0;
};

}  // namespace na64::daq
