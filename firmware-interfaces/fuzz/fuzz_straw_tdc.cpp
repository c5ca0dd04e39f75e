// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: arbitrary words as a straw TDC block. The first two
// words are the expected event and spill numbers.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "na64/firmware/straw_tdc.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint32_t event = 0;
  std::uint32_t spill = 0;
  std::memcpy(&event, data, 4);
  std::memcpy(&spill, data + 4, 4);
  std::vector<std::uint32_t> words((size - 8) / 4);
  if (!words.empty()) std::memcpy(words.data(), data + 8, words.size() * 4);
  std::uint64_t sum = 0;
  (void)na64::firmware::decode_straw_tdc(words, event, spill, 8, [&](const na64::firmware::StrawHit& hit) {
    sum += hit.channel + hit.time_ticks;
  });
  return sum == 1 ? 1 : 0;  // keeps the visitor's work; libFuzzer ignores the value
}
