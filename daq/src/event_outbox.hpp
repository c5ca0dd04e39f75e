// SPDX-License-Identifier: Apache-2.0
// Events (state changes, spills, alarms) queued under their owner's state
// lock and delivered to one listener in the order they happened, without
// that lock held. Internal to na64_control.
#pragma once

#include <fmt/format.h>

#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <utility>

#include "control.pb.h"

namespace na64::daq {

class EventOutbox {
 public:
  using Listener = std::function<void(const control::Event&)>;

  /// `who` names the owner in the message of a listener that throws.
  explicit EventOutbox(const char* who) : who_(who) {}

  /// Waits for a delivery in progress.
  void set_listener(Listener listener) {
    std::lock_guard lock(listener_m_);
    listener_ = std::move(listener);
  }

  /// The owner's state lock held: queues an event and returns it to fill.
  control::Event& queue() { return events_.emplace_back(); }

  /// The owner's state lock `state_m` NOT held: delivers what is queued, in
  /// order. The queue is taken under `state_m` while the listener lock is
  /// held, so a later emitter cannot overtake. Lock order: the listener
  /// lock, then `state_m`.
  void emit(std::mutex& state_m) {
    std::lock_guard lock(listener_m_);
    std::deque<control::Event> events;
    {
      std::lock_guard state_lock(state_m);
      events.swap(events_);
    }
    if (!listener_) return;
    for (const auto& e : events) {
      try {
        listener_(e);
      } catch (const std::exception& ex) {
        fmt::print(stderr, "na64daq: {} listener failed: {}\n", who_, ex.what());
      }
    }
  }

 private:
  const char* who_;
  std::deque<control::Event> events_;  ///< under the owner's state lock
  std::mutex listener_m_;              ///< held while the listener runs
  Listener listener_;
};

}  // namespace na64::daq
