// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

namespace na64::eventbuilder {

/// Waiting strategy for a stage with nothing to do: spin briefly, then yield,
/// then sleep, so that idle stages leave the two cores to the busy ones.
/// Call reset() after progress.
class Backoff {
 public:
  void pause() noexcept {
    if (n_ < 32) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else if (n_ < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    if (n_ < 64) ++n_;
  }
  void reset() noexcept { n_ = 0; }

 private:
  std::uint32_t n_ = 0;
};

}  // namespace na64::eventbuilder
