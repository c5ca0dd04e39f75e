// SPDX-License-Identifier: Apache-2.0
// Trigger lines and the thresholds trigger experts tune.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "na64/trigger/features.hpp"

namespace na64::trigger {

enum class TriggerLine : std::uint8_t {
  Invisible,  ///< missing energy: SRD tag, ECAL < 50 GeV with a preshower, no veto, HCAL < 1 GeV
  Beam,       ///< minimum bias, prescaled
  Random,     ///< periodic in particle number
};
inline constexpr std::size_t kNumLines = 3;
/// "invisible", "beam", "random": the names in summaries and configuration.
[[nodiscard]] const char* to_string(TriggerLine line) noexcept;
[[nodiscard]] constexpr std::uint32_t bit(TriggerLine line) noexcept {
  return 1u << static_cast<std::uint32_t>(line);
}

/// Thresholds in GeV; prescale and period in events. Defaults: DOMAIN.md 3.
struct ThresholdSet {
  float ecal_max_gev = 50.0f;
  float preshower_min_gev = 0.3f;
  float hcal_max_gev = 1.0f;
  float srd_min_gev = 0.001f;
  float srd_max_gev = 0.080f;
  float veto_max_gev = 0.005f;       ///< 0.5 MIP at 10 MeV per MIP
  std::uint32_t beam_prescale = 1000;  ///< every Nth complete event; 0 disables
  std::uint32_t random_period = 5000;  ///< particles whose number is a multiple; 0 disables
};

/// Evaluates every line on one event and returns the mask of lines fired.
///
/// Thread safety: not shared; one instance per trigger thread. The
/// thresholds are replaced only between spills (set_thresholds()).
class TriggerMenu {
 public:
  explicit TriggerMenu(ThresholdSet t) noexcept : t_(t) {}

  [[nodiscard]] const ThresholdSet& thresholds() const noexcept { return t_; }
  void set_thresholds(const ThresholdSet& t) noexcept { t_ = t; }
  /// Resets the prescale counter; call at each spill start.
  void begin_spill() noexcept { complete_in_spill_ = 0; }

  /// The invisible-mode condition alone.
  [[nodiscard]] bool missing_energy(const EventFeatures& f) const noexcept;
  /// Mask of lines fired for a complete event with this particle number.
  [[nodiscard]] std::uint32_t decide(const EventFeatures& f, std::uint32_t particle) noexcept;

 private:
  ThresholdSet t_;
  std::uint64_t complete_in_spill_ = 0;
};

}  // namespace na64::trigger
