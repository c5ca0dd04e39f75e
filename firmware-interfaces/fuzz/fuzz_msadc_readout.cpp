// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: arbitrary words as a stream of board messages of the
// MSADC readout protocol, walked as the host driver walks it; the same
// words are also tried as a host request message.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "na64/firmware/msadc_readout.hpp"

namespace rd = na64::firmware::msadc_readout;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint32_t> words(size / 4);
  if (!words.empty()) std::memcpy(words.data(), data, words.size() * 4);
  std::uint64_t seen = 0;
  std::span<const std::uint32_t> rest(words);
  std::size_t offset = 0;
  while (!rest.empty()) {
    const auto n = rd::decode_board_message(rest, offset, [&](const auto&) { ++seen; });
    if (!n || *n == 0 || *n > rest.size()) break;
    rest = rest.subspan(*n);
    offset += *n * 4;
  }
  (void)rd::decode_event_requests(words, 0, [&](const rd::EventRef& r) { seen += r.particle; });
  return seen == 1 ? 1 : 0;  // keeps the visitors' work; libFuzzer ignores the value
}
