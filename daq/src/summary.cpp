// SPDX-License-Identifier: Apache-2.0
#include <boost/json.hpp>

#include "na64/daq/pipeline.hpp"

namespace na64::daq {

namespace json = boost::json;

namespace {

json::object counts(const SpillSummary& s) {
  json::object o;
  if (s.spill != 0) o["spill"] = s.spill;
  o["particles"] = s.builder.particles;
  o["built"] = s.builder.complete;
  o["incomplete"] = s.builder.incomplete;
  json::object reasons;
  for (std::size_t r = 1; r < eventbuilder::kNumIncompleteReasons; ++r) {
    reasons[eventbuilder::to_string(static_cast<eventbuilder::IncompleteReason>(r))] = s.builder.by_reason[r];
  }
  o["incomplete_by_reason"] = std::move(reasons);
  o["late_fragments"] = s.builder.late_fragments;
  o["lost_sources_mask"] = s.builder.lost_sources;
  o["decode_errors"] = s.decode_errors;
  json::object accepted;
  for (std::size_t l = 0; l < trigger::kNumLines; ++l) {
    accepted[trigger::to_string(static_cast<trigger::TriggerLine>(l))] = s.accepted[l];
  }
  o["accepted"] = std::move(accepted);
  o["accepted_events"] = s.accepted_events;
  o["written"] = s.written;
  o["not_written"] = s.not_written;
  o["bytes"] = s.bytes;
  o["seconds"] = s.seconds;
  // The two-level readout's completion of accepted events (zeros in the direct readout).
  json::object completion;
  completion["requested"] = s.completion.requested;
  completion["completed"] = s.completion.completed;
  completion["incomplete"] = s.completion.incomplete;
  json::object missing;
  for (std::size_t r = 1; r < firmware::kNumMissingReasons; ++r) {
    missing[firmware::to_string(static_cast<firmware::MissingReason>(r))] = s.completion.by_reason[r];
  }
  completion["incomplete_by_reason"] = std::move(missing);
  completion["late_answers"] = s.completion.late_answers;
  o["completion"] = std::move(completion);
  if (s.spill != 0) {
    o["dead_time"] = s.dead_time;
    o["threshold_set"] = s.threshold_set;
    if (s.shadow_set != 0) {
      json::object shadow;
      shadow["set"] = s.shadow_set;
      json::object fired;
      json::object overlap;
      for (std::size_t l = 0; l < trigger::kNumLines; ++l) {
        const char* name = trigger::to_string(static_cast<trigger::TriggerLine>(l));
        fired[name] = s.shadow_accepted[l];
        overlap[name] = s.shadow_overlap[l];
      }
      shadow["accepted"] = std::move(fired);
      shadow["overlap"] = std::move(overlap);
      o["shadow"] = std::move(shadow);
    }
  }
  return o;
}

}  // namespace

std::string summary_json(const RunSummary& summary) {
  json::object root;
  root["run"] = summary.run;
  json::array spills;
  for (const auto& s : summary.spills) spills.push_back(counts(s));
  root["spills"] = std::move(spills);
  json::object total = counts(summary.total);
  total["seconds"] = summary.seconds;
  root["total"] = std::move(total);
  json::array files;
  for (const auto& f : summary.files) files.push_back(json::string(f));
  root["files"] = std::move(files);
  root["map"] = summary.map_file;
  return json::serialize(root) + "\n";
}

}  // namespace na64::daq
