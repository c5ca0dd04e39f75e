// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/emulated_msadc.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "na64/firmware/msadc.hpp"

namespace na64::drivers {

namespace fw = na64::firmware;

EmulatedMsadcBoard::EmulatedMsadcBoard(std::uint32_t source_id, const fw::ChannelMap& map, const NA64Beam& beam,
                                       EmulatorParameters params)
    : source_id_(source_id), beam_(&beam), params_(params) {
  const auto slot = map.slot_of(source_id);
  if (!slot) throw std::invalid_argument(fmt::format("emulated MSADC: source {} is not in the channel map", source_id));
  if (params.n_samples == 0 || params.n_samples > fw::kMaxSamples) {
    throw std::invalid_argument(fmt::format("emulated MSADC: sample count {} is not 1-511", params.n_samples));
  }
  for (const auto& e : map.channels_of(*slot)) {
    Channel c;
    c.port = e.port;
    c.adc_id = e.chip_channel / fw::kChannelsPerAdc;
    c.channel = e.chip_channel % fw::kChannelsPerAdc;
    c.cell = e.cell;
    c.counts_per_gev = 1.0f / e.gev_per_count;
    c.pedestal = params.pedestal_base + (e.source_id * 131u + e.port * 64u + e.chip_channel) * 37u % 100u;
    channels_.push_back(c);
  }
  // channels_of() is ordered by (port, chip channel), hence by (port, adc, channel).
  std::size_t adc_blocks = 0;
  for (std::size_t i = 0; i < channels_.size(); ++i) {
    if (i == 0 || channels_[i].port != channels_[i - 1].port || channels_[i].adc_id != channels_[i - 1].adc_id) {
      ++adc_blocks;
    }
  }
  max_words_ = adc_blocks + channels_.size() * fw::msadc_channel_words(params.n_samples);

  Rng rng(0x6E6F697365ull ^ source_id);
  noise_.resize(kNoiseTableSize);
  for (auto& v : noise_) v = static_cast<float>(rng.gauss() * params.noise_adc);

  // Pulse (t/tau)^2 exp(2 (1 - t/tau)): 0 at t = 0, peak 1 at t = tau, then a slow tail.
  const std::size_t steps = (params.n_samples + 1) * kShapeStepsPerSample;
  shape_.resize(steps);
  for (std::size_t i = 0; i < steps; ++i) {
    const double t = static_cast<double>(i) * kSamplePeriodNs / kShapeStepsPerSample / kPulseRiseNs;
    shape_[i] = static_cast<float>(t * t * std::exp(2.0 * (1.0 - t)));
  }
}

bool EmulatedMsadcBoard::loses(std::uint32_t spill, std::uint32_t particle) const noexcept {
  if (params_.fragment_loss <= 0.0) return false;
  Rng rng(beam_->parameters().seed ^ 0x6C6F7373ull, spill, particle, source_id_);
  return rng.uniform() < params_.fragment_loss;
}

std::size_t EmulatedMsadcBoard::read_event(std::uint32_t spill, std::uint32_t particle, std::span<std::uint32_t> out,
                                           ParticleTruth* truth) const noexcept {
  CellDeposits dep;
  const ParticleTruth t = beam_->generate(spill, particle, dep);
  if (truth != nullptr) *truth = t;
  if (out.size() < max_words_) return 0;

  Rng rng(beam_->parameters().seed, spill, particle, source_id_);
  // Pulse start in shape steps: the peak (t = tau) falls on sample peak_sample.
  const double start_samples = t.peak_sample - kPulseRiseNs / kSamplePeriodNs;
  const auto start_step = static_cast<std::ptrdiff_t>(std::lround(start_samples * kShapeStepsPerSample));
  const std::uint32_t n = params_.n_samples;
  std::array<std::uint16_t, fw::kMaxSamples> samples{};

  fw::MsadcBlockWriter w(out, particle);
  std::uint32_t open_port = ~0u;
  std::uint32_t open_adc = ~0u;
  for (const Channel& c : channels_) {
    if (c.port != open_port || c.adc_id != open_adc) {
      (void)w.begin_adc(c.port, c.adc_id);
      open_port = c.port;
      open_adc = c.adc_id;
    }
    const float amplitude = dead(c.cell, spill) ? 0.0f : dep[c.cell] * c.counts_per_gev;
    std::uint64_t r = rng.next();
    for (std::uint32_t k = 0; k < n; ++k) {
      if (k % 5 == 0) r = rng.next();
      const float noise = noise_[(r >> (12 * (k % 5))) & (kNoiseTableSize - 1)];
      const std::ptrdiff_t step = static_cast<std::ptrdiff_t>(k * kShapeStepsPerSample) - start_step;
      const float pulse = step > 0 && static_cast<std::size_t>(step) < shape_.size() ? shape_[step] : 0.0f;
      const float v = static_cast<float>(c.pedestal) + noise + amplitude * pulse;
      samples[k] = static_cast<std::uint16_t>(std::clamp(std::lround(v), 0L, long{fw::kMaxSampleValue}));
    }
    (void)w.add_channel(c.channel, std::span<const std::uint16_t>(samples.data(), n));
  }
  return w.finish();
}

}  // namespace na64::drivers
