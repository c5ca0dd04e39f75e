// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: arbitrary words as a stream of front-end messages of the
// front-end link protocol, framed as a stream reader frames them (header
// first, then the length it gives); the same words are also walked as a
// stream of host messages.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "na64/firmware/frontend_link.hpp"

namespace fl = na64::firmware::frontend_link;

namespace {

template <class Decode>
std::uint64_t walk(std::span<const std::uint32_t> rest, Decode&& decode) {
  std::uint64_t messages = 0;
  std::size_t offset = 0;
  while (rest.size() >= fl::kMessageHeaderWords) {
    const auto frame = fl::decode_frame_header(rest.first<fl::kMessageHeaderWords>(), offset);
    if (!frame || frame->length_words > rest.size()) break;
    const auto n = decode(rest, offset);
    // A message that frames but does not decode is skipped by its length.
    if (n && *n != frame->length_words) __builtin_trap();
    rest = rest.subspan(frame->length_words);
    offset += frame->length_words * 4;
    ++messages;
  }
  return messages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint32_t> words(size / 4);
  if (!words.empty()) std::memcpy(words.data(), data, words.size() * 4);
  std::uint64_t seen = 0;
  seen += walk(words, [&](std::span<const std::uint32_t> w, std::size_t offset) {
    return fl::decode_frontend_message(w, offset, [&](const auto&) { ++seen; });
  });
  seen += walk(words, [&](std::span<const std::uint32_t> w, std::size_t offset) {
    return fl::decode_host_message(w, offset, [&](const auto&) { ++seen; });
  });
  return seen == 1 ? 1 : 0;  // keeps the visitors' work; libFuzzer ignores the value
}
