// SPDX-License-Identifier: Apache-2.0
#include "na64/trigger/features.hpp"

#include <algorithm>

#include "na64/firmware/msadc.hpp"
#include "na64/firmware/msadc_readout.hpp"

namespace na64::trigger {

namespace fw = na64::firmware;
namespace ro = na64::firmware::msadc_readout;

namespace {

void clear(EventFeatures& out) noexcept {
  out.energy_gev.fill(0.0f);
  out.amplitude_adc.fill(0.0f);
  out.pedestal_adc.fill(0.0f);
  out.peak_time_ns.fill(0.0f);
  out.channels = 0;
  out.unmapped = 0;
  out.missing_channels = 0;
  out.first_missing_source = 0;
}

// The detector sums the trigger lines use, from the cell energies.
void detector_sums(EventFeatures& out) noexcept {
  const auto sum = [&](fw::Detector d) {
    const auto& g = fw::geometry(d);
    float s = 0;
    for (std::size_t i = 0; i < std::size_t{g.nx} * g.ny; ++i) s += out.energy_gev[g.first_cell + i];
    return s;
  };
  out.preshower_gev = sum(fw::Detector::Ecal0);
  out.ecal_gev = out.preshower_gev + sum(fw::Detector::Ecal1);
  out.hcal_gev = sum(fw::Detector::Hcal0) + sum(fw::Detector::Hcal1) + sum(fw::Detector::Hcal2) +
                 sum(fw::Detector::Hcal3);
  for (std::uint32_t m = 0; m < 3; ++m) out.srd_gev[m] = out.energy_gev[fw::cell_index(fw::Detector::Srd, m, 0)];
  for (std::uint32_t c = 0; c < 3; ++c) {
    out.veto_gev[c] = 0.5f * (out.energy_gev[fw::cell_index(fw::Detector::Veto, c, 0)] +
                              out.energy_gev[fw::cell_index(fw::Detector::Veto, c, 1)]);
  }
}

}  // namespace

fw::Decoded<fw::Checked> FeatureExtractor::extract(const eventbuilder::BuiltDesc& desc,
                                                   std::span<const std::uint32_t> slot, EventFeatures& out,
                                                   std::uint32_t& bad_source) const noexcept {
  clear(out);
  const float zs = static_cast<float>(config_.zero_suppression_adc);
  fw::Decoded<fw::Checked> status = fw::Checked{};
  eventbuilder::for_each_fragment(desc, slot, [&](const eventbuilder::BuiltFragment& frag) {
    if (!status) return;
    // A source with no line in the map (slot beyond its sources) has only
    // unmapped channels; cell_of() must not be asked about it.
    const bool source_mapped = frag.source_slot < map_->sources().size();
    std::size_t mapped_seen = 0;
    auto r = fw::decode_msadc(frag.words, desc.event, 0, [&](const fw::MsadcChannel& ch) {
      ++out.channels;
      const std::int16_t cell =
          source_mapped ? map_->cell_of(frag.source_slot, ch.port, ch.chip_channel()) : fw::ChannelMap::kUnmapped;
      if (cell == fw::ChannelMap::kUnmapped) {
        ++out.unmapped;
        return;
      }
      ++mapped_seen;
      const std::size_t n = ch.n_samples;
      const std::size_t n_ped = n < kPedestalSamples ? n : kPedestalSamples;
      std::uint32_t ped_sum = 0;
      for (std::size_t k = 0; k < n_ped; ++k) ped_sum += ch.sample(k);
      // Maximum over the packed words first (a branch-free loop the compiler
      // vectorises; the pad sample of an odd count is 0 and changes nothing),
      // then the first sample holding it.
      const std::uint32_t* words = ch.data;
      const std::size_t n_words = (n + 1) / 2;
      std::uint32_t max = 0;
      for (std::size_t k = 0; k < n_words; ++k) {
        const std::uint32_t lo = words[k] & 0xFFFu;
        const std::uint32_t hi = (words[k] >> 12) & 0xFFFu;
        max = std::max(max, std::max(lo, hi));
      }
      std::size_t arg = 0;
      while (arg + 1 < n && ch.sample(arg) != max) ++arg;
      const float ped = static_cast<float>(ped_sum) / static_cast<float>(n_ped);
      const float amp = static_cast<float>(max) - ped;
      const auto c = static_cast<std::size_t>(cell);
      out.pedestal_adc[c] = ped;
      out.amplitude_adc[c] = amp;
      out.peak_time_ns[c] = static_cast<float>(static_cast<double>(arg) * kSamplePeriodNs);
      out.energy_gev[c] = amp >= zs ? amp * map_->gev_per_count(static_cast<std::uint16_t>(c)) : 0.0f;
    });
    if (!r) {
      status = r.error();
      bad_source = frag.source_slot;
    } else if (source_mapped && mapped_seen < map_->channel_count(frag.source_slot)) {
      if (out.missing_channels == 0) out.first_missing_source = frag.source_slot;
      out.missing_channels += static_cast<std::uint32_t>(map_->channel_count(frag.source_slot) - mapped_seen);
    }
  });

  detector_sums(out);
  return status;
}

std::uint32_t SummaryExtractor::extract(const eventbuilder::BuiltDesc& desc, std::span<const std::uint32_t> slot,
                                        EventFeatures& out) const noexcept {
  clear(out);
  const float zs = static_cast<float>(config_.zero_suppression_adc);
  std::uint32_t not_buffered = 0;
  eventbuilder::for_each_fragment(desc, slot, [&](const eventbuilder::BuiltFragment& frag) {
    if (frag.words.size() < kSummaryHeadWords) return;
    if ((frag.words[1] & kSummaryNotBuffered) != 0) not_buffered |= 1u << frag.source_slot;
    const bool source_mapped = frag.source_slot < map_->sources().size();
    for (const std::uint32_t w : frag.words.subspan(kSummaryHeadWords)) {
      const ro::ChannelSummary cs = ro::channel_summary(w);
      ++out.channels;
      const std::uint32_t chip_channel = cs.adc_id * 16 + cs.channel;
      const std::int16_t cell =
          source_mapped ? map_->cell_of(frag.source_slot, cs.port, chip_channel) : fw::ChannelMap::kUnmapped;
      if (cell == fw::ChannelMap::kUnmapped) {
        ++out.unmapped;
        continue;
      }
      const auto c = static_cast<std::size_t>(cell);
      const float amp = static_cast<float>(cs.value);
      out.amplitude_adc[c] = amp;
      out.peak_time_ns[c] = static_cast<float>(cs.time_samples() * kSamplePeriodNs);
      out.energy_gev[c] = amp >= zs ? amp * map_->gev_per_count(static_cast<std::uint16_t>(c)) : 0.0f;
    }
  });
  detector_sums(out);
  return not_buffered;
}

}  // namespace na64::trigger
