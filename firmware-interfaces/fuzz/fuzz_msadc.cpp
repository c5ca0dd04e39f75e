// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: arbitrary words as a data_format3 block. The first word
// is the expected event number.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "na64/firmware/msadc.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  std::uint32_t event = 0;
  std::memcpy(&event, data, 4);
  std::vector<std::uint32_t> words((size - 4) / 4);
  if (!words.empty()) std::memcpy(words.data(), data + 4, words.size() * 4);
  std::uint64_t samples = 0;
  auto r = na64::firmware::decode_msadc(words, event, 4, [&](const na64::firmware::MsadcChannel& ch) {
    for (std::size_t k = 0; k < ch.n_samples; ++k) samples += ch.sample(k);
  });
  if (r) {
    // A block the decoder accepts must also survive restamping.
    (void)na64::firmware::restamp_msadc_event(words, event + 1);
  }
  return 0;
}
