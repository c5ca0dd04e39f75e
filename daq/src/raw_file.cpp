// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/raw_file.hpp"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>

namespace na64::daq {

namespace fw = na64::firmware;

std::vector<std::uint32_t> read_date_words(const std::filesystem::path& path, std::vector<std::string>& errors,
                                           std::uint64_t* bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    errors.push_back(fmt::format("{}: cannot open", path.string()));
    return {};
  }
  const std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes) *bytes = raw.size();
  std::vector<std::uint32_t> words(raw.size() / 4);
  std::memcpy(words.data(), raw.data(), words.size() * 4);
  if (raw.size() % 4 != 0) {
    errors.push_back(fmt::format("{}: size {} is not a multiple of 4", path.string(), raw.size()));
  }
  return words;
}

FileCheck check_date_file(const std::filesystem::path& path, const ChannelVisitor& visit) {
  FileCheck out;
  const std::vector<std::uint32_t> words = read_date_words(path, out.errors, &out.bytes);
  std::span<const std::uint32_t> rest(words);
  std::size_t offset = 0;
  while (!rest.empty()) {
    auto h = fw::walk_date_event(rest, offset, [&](const fw::DateHeader& hdr, const fw::EquipmentView& eq) {
      ++out.equipments;
      auto r = fw::decode_msadc(eq.payload, hdr.event_in_spill, eq.payload_offset_bytes,
                                [&](const fw::MsadcChannel& ch) {
                                  ++out.channels;
                                  if (visit) visit(hdr, eq.slink.source_id, ch);
                                });
      if (!r) {
        out.errors.push_back(fmt::format("{}: spill {} event {} source {}: {}", path.string(), hdr.spill,
                                         hdr.event_in_spill, eq.slink.source_id, r.error().message()));
      }
    });
    if (!h) {
      out.errors.push_back(fmt::format("{}: {}", path.string(), h.error().message()));
      break;
    }
    ++out.events;
    ++out.by_type[static_cast<std::uint32_t>(h->type) & 0xFu];
    const std::size_t n = h->size_bytes / 4;
    rest = rest.subspan(n);
    offset += n * 4;
  }
  return out;
}

}  // namespace na64::daq
