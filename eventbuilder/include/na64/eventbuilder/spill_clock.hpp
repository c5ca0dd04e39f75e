// SPDX-License-Identifier: Apache-2.0
// The spill signal every readout source follows, as the SPS spill gate is
// distributed to all boards: a source reads spill n out only once the clock
// has announced it, and the clock announces spill n + 1 only after every
// source has finished spill n. So all sources read the same spills, whole,
// and a stop or a pause takes effect between spills.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <vector>

namespace na64::eventbuilder {

/// Thread safety: every member from any thread.
class SpillClock {
 public:
  using Clock = std::chrono::steady_clock;

  /// `sources` readout threads; spills are numbered from 1 up to `max_spills`.
  SpillClock(std::size_t sources, std::uint32_t max_spills)
      : sources_(sources),
        max_spills_(max_spills),
        busy_(std::size_t{max_spills} + 1),
        announced_at_(std::size_t{max_spills} + 1),
        last_done_at_(std::size_t{max_spills} + 1) {}

  // --- readout sources ---

  /// Waits until `spill` is announced (true) or the run has ended before it
  /// (false). `abort` also returns false.
  [[nodiscard]] bool wait_for_spill(std::uint32_t spill, const std::stop_token& abort) {
    std::unique_lock lock(m_);
    cv_.wait(lock, abort, [&] { return announced_ >= spill || ended_; });
    return announced_ >= spill;
  }
  /// A source has read `spill` out whole; `busy` is the time it could not
  /// take data (waiting for buffer space) during the spill.
  void spill_done(std::uint32_t spill, Clock::duration busy) {
    {
      std::lock_guard lock(m_);
      if (spill != announced_) return;
      ++done_;
      if (busy > busy_[spill]) busy_[spill] = busy;
      last_done_at_[spill] = Clock::now();
    }
    cv_.notify_all();
  }

  // --- the run's driver ---

  /// Announces the next spill once every source has finished the current
  /// one, no earlier than `not_before`, and not while paused. Returns the
  /// spill announced, or 0 when the run ends instead: on `stop`, or after
  /// max_spills.
  [[nodiscard]] std::uint32_t next_spill(const std::stop_token& stop, Clock::time_point not_before = {}) {
    std::unique_lock lock(m_);
    cv_.wait(lock, stop, [&] { return announced_ == 0 || done_ == sources_; });
    while (!stop.stop_requested() && (paused_ || Clock::now() < not_before)) {
      if (paused_) {
        cv_.wait(lock, stop, [&] { return !paused_; });
      } else {
        cv_.wait_until(lock, stop, not_before, [&] { return paused_; });
      }
    }
    if (stop.stop_requested() || announced_ == max_spills_) {
      ended_ = true;
      lock.unlock();
      cv_.notify_all();
      return 0;
    }
    ++announced_;
    done_ = 0;
    announced_at_[announced_] = Clock::now();
    lock.unlock();
    cv_.notify_all();
    return announced_;
  }
  /// The longest busy time any source reported for `spill` so far.
  [[nodiscard]] Clock::duration busy(std::uint32_t spill) const {
    std::lock_guard lock(m_);
    return spill < busy_.size() ? busy_[spill] : Clock::duration{};
  }
  /// From the announcement of `spill` to the last source reporting it done
  /// so far: how long its readout took.
  [[nodiscard]] Clock::duration readout_time(std::uint32_t spill) const {
    std::lock_guard lock(m_);
    if (spill >= busy_.size() || last_done_at_[spill] < announced_at_[spill]) return {};
    return last_done_at_[spill] - announced_at_[spill];
  }

  /// Spills announced so far.
  [[nodiscard]] std::uint32_t announced() const {
    std::lock_guard lock(m_);
    return announced_;
  }

  /// True when the run has ended with `spill` the last spill announced:
  /// nothing follows it. For a reader that follows spills without taking
  /// part in them (the host side of a link whose board the beam gates).
  [[nodiscard]] bool over_after(std::uint32_t spill) const {
    std::lock_guard lock(m_);
    return ended_ && announced_ <= spill;
  }

  // --- run control ---

  /// No spill is announced while paused; the spill in progress goes on.
  void pause() {
    std::lock_guard lock(m_);
    paused_ = true;
  }
  void resume() {
    {
      std::lock_guard lock(m_);
      paused_ = false;
    }
    cv_.notify_all();
  }

 private:
  const std::size_t sources_;
  const std::uint32_t max_spills_;
  mutable std::mutex m_;
  std::condition_variable_any cv_;
  std::uint32_t announced_ = 0;
  std::size_t done_ = 0;
  // Per spill, allocated up front.
  std::vector<Clock::duration> busy_;
  std::vector<Clock::time_point> announced_at_;
  std::vector<Clock::time_point> last_done_at_;
  bool paused_ = false;
  bool ended_ = false;
};

}  // namespace na64::eventbuilder
