// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/event_display.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "na64/firmware/date_event.hpp"
#include "na64/firmware/msadc.hpp"
#include "na64/trigger/features.hpp"

namespace na64::daq {

namespace fw = na64::firmware;
namespace eb = na64::eventbuilder;

std::optional<DisplayEvent> decode_display_event(std::span<const std::uint32_t> words, const DaqConfig& config,
                                                 std::string& error) {
  const fw::ChannelMap& map = config.channel_map;
  const auto sources = map.sources();
  std::vector<std::uint32_t> slot;  // the fragments as the builder lays them out
  std::vector<DisplayCell> cells;
  std::optional<fw::DecodeError> bad;
  std::uint32_t bad_source = 0;
  const auto h = fw::walk_date_event(words, 0, [&](const fw::DateHeader& head, const fw::EquipmentView& eq) {
    const auto at = std::find(sources.begin(), sources.end(), eq.slink.source_id);
    if (at == sources.end() || eq.payload.empty() || bad) return;
    const auto slot_index = static_cast<std::uint32_t>(at - sources.begin());
    slot.push_back(slot_index);
    slot.push_back(static_cast<std::uint32_t>(eq.payload.size()));
    slot.insert(slot.end(), eq.payload.begin(), eq.payload.end());
    const auto r = fw::decode_msadc(eq.payload, head.event_in_spill, eq.payload_offset_bytes,
                                    [&](const fw::MsadcChannel& ch) {
                                      const std::int16_t cell = map.cell_of(slot_index, ch.port, ch.chip_channel());
                                      if (cell < 0) return;
                                      DisplayCell c;
                                      c.cell = static_cast<std::uint16_t>(cell);
                                      c.samples.resize(ch.n_samples);
                                      for (std::size_t k = 0; k < ch.n_samples; ++k) c.samples[k] = ch.sample(k);
                                      cells.push_back(std::move(c));
                                    });
    if (!r) {
      bad = r.error();
      bad_source = eq.slink.source_id;
    }
  });
  if (!h) {
    error = fmt::format("the DATE event does not decode: {}", h.error().message());
    return std::nullopt;
  }
  if (h->type != fw::EventType::Physics) {
    error = fmt::format("DATE event type {} is not a physics event", static_cast<unsigned>(h->type));
    return std::nullopt;
  }
  if (bad) {
    error = fmt::format("source {}: {}", bad_source, bad->message());
    return std::nullopt;
  }
  // The energies exactly as the trigger computed them, by its own extractor.
  auto features = std::make_unique<trigger::EventFeatures>();
  const trigger::FeatureExtractor extractor(map, config.extraction);
  const eb::BuiltDesc desc{eb::RecordKind::Data, eb::IncompleteReason::None, h->spill, h->event_in_spill, 0, 0,
                           static_cast<std::uint32_t>(slot.size())};
  if (const auto ok = extractor.extract(desc, slot, *features, bad_source); !ok) {
    error = fmt::format("source {}: {}", sources[bad_source], ok.error().message());
    return std::nullopt;
  }
  for (auto& c : cells) c.energy_gev = features->energy_gev[c.cell];
  std::sort(cells.begin(), cells.end(), [](const DisplayCell& a, const DisplayCell& b) { return a.cell < b.cell; });

  DisplayEvent e;
  e.run = h->run;
  e.spill = h->spill;
  e.event = h->event_in_spill;
  e.particle = h->detector_pattern;
  e.trigger_mask = h->trigger_mask;
  e.cells = std::move(cells);
  return e;
}

}  // namespace na64::daq
