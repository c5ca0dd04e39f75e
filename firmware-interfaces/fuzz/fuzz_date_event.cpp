// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: a byte stream read as DATE events back to back, as a file
// reader would, decoding every equipment payload as data_format3.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "na64/firmware/date_event.hpp"
#include "na64/firmware/msadc.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint32_t> words(size / 4);
  if (!words.empty()) std::memcpy(words.data(), data, words.size() * 4);
  std::span<const std::uint32_t> rest(words);
  std::size_t offset = 0;
  std::uint64_t samples = 0;
  while (!rest.empty()) {
    auto h = na64::firmware::walk_date_event(
        rest, offset, [&](const na64::firmware::DateHeader& hdr, const na64::firmware::EquipmentView& eq) {
          auto r = na64::firmware::decode_msadc(eq.payload, hdr.event_in_spill, eq.payload_offset_bytes,
                                                [&](const na64::firmware::MsadcChannel& ch) {
                                                  for (std::size_t k = 0; k < ch.n_samples; ++k) {
                                                    samples += ch.sample(k);
                                                  }
                                                });
          (void)r;
        });
    if (!h) break;
    const std::size_t n = h->size_bytes / 4;
    rest = rest.subspan(n);
    offset += n * 4;
  }
  return samples == 0xFFFFFFFFFFFFFFFFull ? 1 : 0;
}
