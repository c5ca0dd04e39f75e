// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/raw_file.hpp"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

#include "na64/daq/config.hpp"
#include "na64/daq/error.hpp"
#include "na64/firmware/apv.hpp"
#include "na64/firmware/straw_tdc.hpp"

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

namespace {

// The tracker sources of the configuration a start of run carries.
void read_trackers(const std::filesystem::path& path, std::span<const std::uint32_t> event, std::size_t offset,
                   std::map<std::uint32_t, TrackerKind>& trackers, std::vector<std::string>& errors) {
  const auto body = event.subspan(fw::kDateHeaderWords);
  if (body.empty()) return;
  auto record = fw::read_config_record(body, offset + fw::kDateHeaderBytes);
  if (!record) {
    errors.push_back(fmt::format("{}: start of run: {}", path.string(), record.error().message()));
    return;
  }
  try {
    const DaqConfig config = load_config(record->text, fmt::format("{} (start of run)", path.string()));
    for (const TrackerSettings& t : config.readout.trackers) trackers[t.source] = t.kind;
  } catch (const ConfigError& e) {
    errors.push_back(e.what());
  }
}

}  // namespace

FileCheck check_date_file(const std::filesystem::path& path, const ChannelVisitor& visit) {
  FileCheck out;
  const std::vector<std::uint32_t> words = read_date_words(path, out.errors, &out.bytes);
  std::map<std::uint32_t, TrackerKind> trackers;
  std::span<const std::uint32_t> rest(words);
  std::size_t offset = 0;
  while (!rest.empty()) {
    auto h = fw::walk_date_event(rest, offset, [&](const fw::DateHeader& hdr, const fw::EquipmentView& eq) {
      ++out.equipments;
      const std::uint32_t flag = eq.equipment.attributes[0];
      if (flag != 0) {
        if (flag < out.missing.size() && eq.payload.empty()) {
          ++out.missing[flag];
        } else {
          out.errors.push_back(fmt::format("{}: spill {} event {} source {}: missing-source flag {} on {} payload words",
                                           path.string(), hdr.spill, hdr.event_in_spill, eq.slink.source_id, flag,
                                           eq.payload.size()));
        }
        return;
      }
      fw::Decoded<fw::Checked> r = fw::Checked{};
      const auto tracker = trackers.find(eq.slink.source_id);
      if (tracker == trackers.end()) {
        r = fw::decode_msadc(eq.payload, hdr.event_in_spill, eq.payload_offset_bytes, [&](const fw::MsadcChannel& ch) {
          ++out.channels;
          if (visit) visit(hdr, eq.slink.source_id, ch);
        });
      } else if (eq.payload.empty()) {
        // The end of burst's empty block.
      } else if (tracker->second == TrackerKind::Straw) {
        r = fw::decode_straw_tdc(eq.payload, hdr.detector_pattern, hdr.spill, eq.payload_offset_bytes,
                                 [&](const auto&) { ++out.tracker_hits; });
      } else {
        r = fw::decode_apv(eq.payload, hdr.detector_pattern, eq.payload_offset_bytes,
                           [&](const auto&) { ++out.tracker_hits; });
      }
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
    if (h->type == fw::EventType::StartOfRun) read_trackers(path, rest.first(h->size_bytes / 4), offset, trackers, out.errors);
    const std::size_t n = h->size_bytes / 4;
    rest = rest.subspan(n);
    offset += n * 4;
  }
  return out;
}

}  // namespace na64::daq
