// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: arbitrary words as an APV block. The first word is the
// expected event number.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "na64/firmware/apv.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  std::uint32_t event = 0;
  std::memcpy(&event, data, 4);
  std::vector<std::uint32_t> words((size - 4) / 4);
  if (!words.empty()) std::memcpy(words.data(), data + 4, words.size() * 4);
  std::uint64_t sum = 0;
  (void)na64::firmware::decode_apv(words, event, 4, [&](const na64::firmware::ApvHit& hit) {
    sum += hit.channel + hit.samples[0] + hit.samples[1] + hit.samples[2];
  });
  return sum == 1 ? 1 : 0;  // keeps the visitor's work; libFuzzer ignores the value
}
