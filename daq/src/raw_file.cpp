// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/raw_file.hpp"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>

namespace na64::daq {

namespace fw = na64::firmware;

FileCheck check_date_file(const std::filesystem::path& path, const ChannelVisitor& visit) {
  FileCheck out;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    out.errors.push_back(fmt::format("{}: cannot open", path.string()));
    return out;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  out.bytes = bytes.size();
  std::vector<std::uint32_t> words(bytes.size() / 4);
  std::memcpy(words.data(), bytes.data(), words.size() * 4);
  if (bytes.size() % 4 != 0) {
    out.errors.push_back(fmt::format("{}: size {} is not a multiple of 4", path.string(), bytes.size()));
  }
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
