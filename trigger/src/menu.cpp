// SPDX-License-Identifier: Apache-2.0
#include "na64/trigger/menu.hpp"

namespace na64::trigger {

const char* to_string(TriggerLine line) noexcept {
  switch (line) {
    case TriggerLine::Invisible: return "invisible";
    case TriggerLine::Beam: return "beam";
    case TriggerLine::Random: return "random";
  }
  return "unknown";
}

bool TriggerMenu::missing_energy(const EventFeatures& f) const noexcept {
  for (float e : f.srd_gev) {
    if (e < t_.srd_min_gev || e > t_.srd_max_gev) return false;
  }
  for (float e : f.veto_gev) {
    if (e >= t_.veto_max_gev) return false;
  }
  return f.ecal_gev < t_.ecal_max_gev && f.preshower_gev > t_.preshower_min_gev && f.hcal_gev < t_.hcal_max_gev;
}

std::uint32_t TriggerMenu::decide(const EventFeatures& f, std::uint32_t particle) noexcept {
  ++complete_in_spill_;
  std::uint32_t mask = 0;
  if (missing_energy(f)) mask |= bit(TriggerLine::Invisible);
  if (t_.beam_prescale != 0 && complete_in_spill_ % t_.beam_prescale == 0) mask |= bit(TriggerLine::Beam);
  if (t_.random_period != 0 && particle % t_.random_period == 0) mask |= bit(TriggerLine::Random);
  return mask;
}

}  // namespace na64::trigger
