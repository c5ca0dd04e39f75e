// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/what_if.hpp"

#include <fmt/format.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <map>
#include <optional>

#include "control.pb.h"
#include "na64/daq/config.hpp"
#include "na64/daq/error.hpp"
#include "na64/daq/raw_file.hpp"
#include "na64/daq/run_control.hpp"
#include "na64/firmware/date_event.hpp"
#include "na64/firmware/msadc_readout.hpp"
#include "na64/firmware/run_record.hpp"
#include "na64/trigger/features.hpp"

namespace na64::daq {

namespace fw = na64::firmware;
namespace eb = na64::eventbuilder;

namespace {

double ratio(std::uint64_t a, std::uint64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); }

}  // namespace

double WhatIfReport::candidate_rate() const { return ratio(total.unbiased_candidate_invisible, total.unbiased); }
double WhatIfReport::recorded_rate() const { return ratio(total.unbiased_recorded_invisible, total.unbiased); }
double WhatIfReport::efficiency_vs_recorded() const { return ratio(total.both_invisible, total.recorded_invisible); }

trigger::ThresholdSet thresholds_with(const trigger::ThresholdSet& base, const std::string& overrides) {
  control::Thresholds t = to_proto(base);
  google::protobuf::TextFormat::Parser parser;
  if (!parser.MergeFromString(overrides, &t)) {
    throw ConfigError(fmt::format("thresholds \"{}\": not Protobuf text of na64.control.Thresholds (fields: "
                                  "ecal_max_gev preshower_min_gev hcal_max_gev srd_min_gev srd_max_gev "
                                  "veto_max_gev beam_prescale random_period)",
                                  overrides));
  }
  const trigger::ThresholdSet set = from_proto(t);
  check_thresholds(set, "what-if thresholds", "thresholds");
  return set;
}

WhatIfReport what_if(const std::vector<std::filesystem::path>& files, const std::string& overrides) {
  WhatIfReport report;
  std::optional<DaqConfig> config;
  std::optional<trigger::FeatureExtractor> extractor;
  // Two-level runs were decided on the boards' summaries: the same are
  // computed from the written blocks (msadc_readout::summarise_block).
  std::optional<trigger::SummaryExtractor> summary_extractor;
  std::vector<std::uint32_t> summaries(fw::msadc_readout::kMaxSummariesPerParticle);
  std::optional<trigger::TriggerMenu> menu;
  std::map<std::uint32_t, WhatIfCounts> by_spill;
  std::vector<std::uint32_t> slot;  // one event's fragments as the builder lays them out
  trigger::EventFeatures features;

  for (const auto& file : files) {
    const std::vector<std::uint32_t> words = read_date_words(file, report.errors);
    std::span<const std::uint32_t> rest(words);
    std::size_t offset = 0;
    while (!rest.empty()) {
      slot.clear();
      std::size_t bad_equipment = 0;
      auto h = fw::walk_date_event(rest, offset, [&](const fw::DateHeader& hdr, const fw::EquipmentView& eq) {
        const auto sources = config ? config->channel_map.sources() : std::span<const std::uint32_t>{};
        if (config && std::any_of(config->readout.trackers.begin(), config->readout.trackers.end(),
                                  [&](const TrackerSettings& t) { return t.source == eq.slink.source_id; })) {
          return;  // tracker data: not in the trigger
        }
        std::uint32_t slot_index = 0;
        while (slot_index < sources.size() && sources[slot_index] != eq.slink.source_id) ++slot_index;
        if (slot_index == sources.size() || eq.equipment.attributes[0] != 0) {  // unknown, or flagged missing
          ++bad_equipment;
          return;
        }
        slot.push_back(slot_index);
        if (!summary_extractor) {
          slot.push_back(static_cast<std::uint32_t>(eq.payload.size()));
          slot.insert(slot.end(), eq.payload.begin(), eq.payload.end());
          return;
        }
        const auto n = fw::msadc_readout::summarise_block(
            eq.payload, hdr.event_in_spill, std::min<std::uint32_t>(config->extraction.zero_suppression_adc, 0xFFF),
            fw::msadc_readout::SummaryValue::Amplitude, summaries);
        if (!n) {
          ++bad_equipment;
          slot.pop_back();
          return;
        }
        slot.push_back(static_cast<std::uint32_t>(trigger::kSummaryHeadWords + *n));
        slot.push_back(0);  // board time stamp: not in the written event, not used by the trigger
        slot.push_back(0);
        slot.insert(slot.end(), summaries.begin(), summaries.begin() + static_cast<std::ptrdiff_t>(*n));
      });
      if (!h) {
        report.errors.push_back(fmt::format("{}: {}", file.string(), h.error().message()));
        break;
      }
      const std::size_t n = h->size_bytes / 4;
      if (h->type == fw::EventType::StartOfRun) {
        const auto rec = fw::read_config_record(rest.subspan(fw::kDateHeaderWords, n - fw::kDateHeaderWords),
                                                offset + fw::kDateHeaderBytes);
        if (!rec) {
          report.errors.push_back(fmt::format("{}: start of run: {}", file.string(), rec.error().message()));
        } else if (!config) {
          try {
            config = load_config(rec->text, file.string() + " (start-of-run configuration)");
            if (config->hash != rec->sha256) {
              report.errors.push_back(fmt::format("{}: start of run: the configuration text does not match its "
                                                  "recorded SHA-256 {}",
                                                  file.string(), to_hex(rec->sha256)));
              return report;
            }
            report.config_hash = to_hex(rec->sha256);
            report.recorded = config->thresholds;
            report.candidate = thresholds_with(config->thresholds, overrides);
            extractor.emplace(config->channel_map, config->extraction);
            if (config->readout.mode == ReadoutMode::TwoLevel) {
              summary_extractor.emplace(config->channel_map, config->extraction);
            }
            menu.emplace(report.candidate);
          } catch (const ConfigError& e) {
            report.errors.push_back(e.what());
            return report;
          }
        } else if (to_hex(rec->sha256) != report.config_hash) {
          report.errors.push_back(fmt::format("{}: another run's configuration (hash {}); files of one run only",
                                              file.string(), to_hex(rec->sha256)));
          return report;
        }
      } else if (h->type == fw::EventType::Physics) {
        if (!config) {
          report.errors.push_back(fmt::format("{}: physics event before any start-of-run record; the first file "
                                              "of the run is needed for its configuration",
                                              file.string()));
          return report;
        }
        WhatIfCounts& c = by_spill[h->spill];
        ++c.events;
        eb::BuiltDesc d{eb::RecordKind::Data, eb::IncompleteReason::None, h->spill, h->event_in_spill, 0, 0,
                        static_cast<std::uint32_t>(slot.size())};
        std::uint32_t bad_source = 0;
        bool ok = true;
        if (summary_extractor) {
          (void)summary_extractor->extract(d, slot, features);
        } else {
          ok = extractor->extract(d, slot, features, bad_source).ok();
        }
        if (!ok || bad_equipment != 0 || features.missing_channels != 0) {
          ++c.undecodable;
        } else {
          const bool unbiased = (h->trigger_mask & trigger::bit(trigger::TriggerLine::Beam)) != 0;
          const bool recorded = (h->trigger_mask & trigger::bit(trigger::TriggerLine::Invisible)) != 0;
          const bool candidate = menu->missing_energy(features);
          c.unbiased += unbiased;
          c.recorded_invisible += recorded;
          c.candidate_invisible += candidate;
          c.both_invisible += recorded && candidate;
          c.unbiased_recorded_invisible += unbiased && recorded;
          c.unbiased_candidate_invisible += unbiased && candidate;
        }
      }
      rest = rest.subspan(n);
      offset += n * 4;
    }
  }
  for (const auto& [spill, c] : by_spill) {
    report.spills.emplace_back(spill, c);
    auto& t = report.total;
    t.events += c.events;
    t.unbiased += c.unbiased;
    t.recorded_invisible += c.recorded_invisible;
    t.candidate_invisible += c.candidate_invisible;
    t.both_invisible += c.both_invisible;
    t.unbiased_recorded_invisible += c.unbiased_recorded_invisible;
    t.unbiased_candidate_invisible += c.unbiased_candidate_invisible;
    t.undecodable += c.undecodable;
  }
  if (!config && report.errors.empty()) report.errors.push_back("no start-of-run record in the files given");
  return report;
}

std::string format_report(const WhatIfReport& r) {
  std::string out = fmt::format("recorded configuration {}\n", r.config_hash);
  const auto line = [&](const char* what, const trigger::ThresholdSet& t) {
    out += fmt::format("{:9} ecal_max_gev {} preshower_min_gev {} hcal_max_gev {} srd {}-{} GeV veto_max_gev {}\n",
                       what, t.ecal_max_gev, t.preshower_min_gev, t.hcal_max_gev, t.srd_min_gev, t.srd_max_gev,
                       t.veto_max_gev);
  };
  line("recorded", r.recorded);
  line("candidate", r.candidate);
  out += fmt::format("{:>6} {:>8} {:>8} {:>10} {:>10} {:>8} {:>12} {:>12}\n", "spill", "events", "unbiased",
                     "invis.rec", "invis.cand", "both", "unb.rec", "unb.cand");
  const auto row = [&](const std::string& label, const WhatIfCounts& c) {
    out += fmt::format("{:>6} {:>8} {:>8} {:>10} {:>10} {:>8} {:>12} {:>12}\n", label, c.events, c.unbiased,
                       c.recorded_invisible, c.candidate_invisible, c.both_invisible, c.unbiased_recorded_invisible,
                       c.unbiased_candidate_invisible);
  };
  for (const auto& [spill, c] : r.spills) row(std::to_string(spill), c);
  row("total", r.total);
  out += fmt::format(
      "invisible line on the unbiased sample ({} beam-line events): recorded set {:.3g} per particle, candidate "
      "{:.3g} per particle\n",
      r.total.unbiased, r.recorded_rate(), r.candidate_rate());
  out += fmt::format("candidate keeps {:.4f} of the {} events the recorded invisible line took\n",
                     r.efficiency_vs_recorded(), r.total.recorded_invisible);
  if (r.total.undecodable != 0) out += fmt::format("{} events did not decode and are not counted\n", r.total.undecodable);
  for (const auto& e : r.errors) out += fmt::format("error: {}\n", e);
  return out;
}

}  // namespace na64::daq
