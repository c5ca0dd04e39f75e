// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/emulated_readout_board.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "na64/firmware/msadc.hpp"
#include "na64/firmware/slink.hpp"

namespace na64::drivers {

namespace fw = na64::firmware;
namespace ro = na64::firmware::msadc_readout;

namespace {

// Index of each R/W register in config_, which is kRegisterMap's order.
constexpr std::size_t kModeIndex = 0;
constexpr std::size_t kThresholdIndex = 1;
constexpr std::size_t kDepthIndex = 2;
constexpr std::size_t kSamplesIndex = 3;
constexpr std::size_t kSourceIndex = 4;
constexpr std::size_t kPortsIndex = 5;
constexpr std::size_t kGateIndex = 6;
static_assert(ro::kRegisterMap[kGateIndex].address == ro::reg::kSpillGate.address &&
              ro::kRegisterMap[kGateIndex + 1].access == ro::Access::ReadOnly);

[[nodiscard]] std::optional<std::size_t> register_index(std::uint32_t address) noexcept {
  for (std::size_t i = 0; i < ro::kRegisterMap.size(); ++i) {
    if (ro::kRegisterMap[i].address == address) return i;
  }
  return std::nullopt;
}

[[nodiscard]] std::uint32_t to_ticks(double time_ns) noexcept {
  if (!(time_ns > 0.0)) return 0;
  const double ticks = std::round(time_ns * 1000.0 / ro::kTickPs);
  return ticks >= 4294967295.0 ? 0xFFFF'FFFFu : static_cast<std::uint32_t>(ticks);
}

/// Removes the ADC blocks of ports not in `ports` from a valid block, in
/// place; returns the words left.
[[nodiscard]] std::size_t drop_disabled_ports(std::span<std::uint32_t> block, std::uint32_t ports) noexcept {
  std::size_t read = 0;
  std::size_t write = 0;
  while (read < block.size()) {
    const std::uint32_t h = block[read];
    const std::size_t size = (h >> 12) & 0xFFFu;
    if (size == 0 || size > block.size() - read) break;  // read_event never writes this
    if (((ports >> ((h >> 27) & 0x7u)) & 1u) != 0) {
      std::copy(block.begin() + static_cast<std::ptrdiff_t>(read),
                block.begin() + static_cast<std::ptrdiff_t>(read + size),
                block.begin() + static_cast<std::ptrdiff_t>(write));
      write += size;
    }
    read += size;
  }
  return write;
}

}  // namespace

const char* to_string(RegisterWrite r) noexcept {
  switch (r) {
    case RegisterWrite::Done: return "done";
    case RegisterWrite::ReadOnly: return "read-only register";
    case RegisterWrite::UnknownAddress: return "no register at this address";
  }
  return "unknown";
}

EmulatedReadoutBoard::EmulatedReadoutBoard(std::uint32_t source_id, const fw::ChannelMap& map, const NA64Beam& beam,
                                           EmulatorParameters emulator, ReadoutBoardParameters params)
    : msadc_source_(source_id), map_(&map), beam_(&beam), emulator_(emulator), params_(params) {
  if (params.latency_capacity == 0 || params.latency_capacity > ro::reg::kDepthEvents.max()) {
    throw std::invalid_argument(
        fmt::format("readout board {}: latency capacity {} is not 1-16777215", source_id, params.latency_capacity));
  }
  if (ro::reg::kFwProtocol.get(params.firmware_version) != ro::kProtocolVersion) {
    throw std::invalid_argument(fmt::format("readout board {}: firmware version {:#x} is not protocol version {}",
                                            source_id, params.firmware_version, ro::kProtocolVersion));
  }
  if (params.particles_per_packet == 0 || params.particles_per_packet > ro::kMaxParticlesPerPacket) {
    throw std::invalid_argument(fmt::format("readout board {}: particles per packet {} is not 1-65535", source_id,
                                            params.particles_per_packet));
  }
  if (params.request_queue_depth == 0) {
    throw std::invalid_argument(fmt::format("readout board {}: request queue depth 0", source_id));
  }
  for (std::size_t i = 0; i < config_.size(); ++i) config_[i] = ro::kRegisterMap[i].reset;
  active_samples_ = config_[kSamplesIndex];
  active_ports_ = config_[kPortsIndex];
  rebuild_msadc();
  const std::size_t channels = msadc_->channel_count();
  block_.resize(channels * (1 + fw::msadc_channel_words(fw::kMaxSamples)));
  ring_.resize(params.latency_capacity);
}

void EmulatedReadoutBoard::rebuild_msadc() {
  EmulatorParameters p = emulator_;
  p.n_samples = active_samples_;
  msadc_.emplace(msadc_source_, *map_, *beam_, p);
}

void EmulatedReadoutBoard::empty_buffer() noexcept {
  ring_head_ = 0;
  ring_size_ = 0;
  const std::uint32_t ordinal = spill_ordinal_[spill_number_];
  const std::uint32_t recorded = spill_recorded_[spill_number_];
  spill_ordinal_.fill(0);
  spill_recorded_.fill(0);
  if (gate_open_) {  // the open spill's earlier particles were recorded: too late, not unknown
    spill_ordinal_[spill_number_] = ordinal;
    spill_recorded_[spill_number_] = recorded;
  }
}

bool EmulatedReadoutBoard::sending() const noexcept { return config_[kSourceIndex] <= fw::kMaxSourceId; }

std::uint32_t EmulatedReadoutBoard::depth() const noexcept {
  return std::min(config_[kDepthIndex], params_.latency_capacity);
}

ro::ReadoutMode EmulatedReadoutBoard::mode() const noexcept {
  return static_cast<ro::ReadoutMode>(ro::reg::kMode.get(config_[kModeIndex]));
}

std::optional<std::uint32_t> EmulatedReadoutBoard::read_register(std::uint32_t address) const noexcept {
  const auto i = register_index(address);
  if (!i) return std::nullopt;
  switch (address) {
    case ro::reg::kLatencyDepth.address: return depth();
    case ro::reg::kSampleCount.address: return std::max<std::uint32_t>(config_[kSamplesIndex], 1);
    case ro::reg::kFirmwareVersion.address: return params_.firmware_version;
    case ro::reg::kStatus.address: return board_status().status;
    case ro::reg::kParticles.address: return particles_total_;
    case ro::reg::kSummariesSent.address: return summaries_total_;
    case ro::reg::kRequestsReceived.address: return requests_received_;
    case ro::reg::kRequestsServed.address: return requests_served_;
    case ro::reg::kRequestsTooLate.address: return requests_too_late_;
    case ro::reg::kRequestsNotFound.address: return requests_not_found_;
    case ro::reg::kRequestsBad.address: return requests_bad_;
    case ro::reg::kBufferOverflows.address: return buffer_overflows_;
    case ro::reg::kLatencyCapacity.address: return params_.latency_capacity;
    default: return config_[*i];
  }
}

RegisterWrite EmulatedReadoutBoard::write_register(std::uint32_t address, std::uint32_t value) noexcept {
  const auto i = register_index(address);
  if (!i) return RegisterWrite::UnknownAddress;
  const ro::Register& r = ro::kRegisterMap[*i];
  if (r.access == ro::Access::ReadOnly) return RegisterWrite::ReadOnly;
  config_[*i] = value & r.defined_bits;
  if (*i == kDepthIndex) empty_buffer();
  return RegisterWrite::Done;
}

std::size_t EmulatedReadoutBoard::min_stream_words() const noexcept {
  const std::size_t summary = ro::kSummaryPacketHeadWords + ro::kParticleHeaderWords + msadc_->channel_count();
  const std::size_t full = ro::kEventAnswerHeadWords + msadc_->max_fragment_words();
  switch (mode()) {
    case ro::ReadoutMode::Off: return 0;
    case ro::ReadoutMode::Summary: return summary;
    case ro::ReadoutMode::Full: return full;
    case ro::ReadoutMode::Both: return summary + full;
  }
  return summary + full;
}

std::size_t EmulatedReadoutBoard::answer_words_bound(std::size_t requests) const noexcept {
  const std::size_t one = std::max(ro::fixed_length_words(ro::MessageType::TooLate),
                                   ro::kEventAnswerHeadWords + msadc_->max_fragment_words());
  return std::max<std::size_t>(requests, 1) * one;
}

std::optional<std::size_t> EmulatedReadoutBoard::begin_spill(std::uint32_t spill, std::span<std::uint32_t> out) {
  const std::size_t words = ro::fixed_length_words(ro::MessageType::SpillBegin);
  if (gate_open_ || spill > ro::kMaxSpill || out.size() < words) return std::nullopt;
  const std::uint32_t samples = std::max<std::uint32_t>(config_[kSamplesIndex], 1);
  if (samples != active_samples_) {
    active_samples_ = samples;
    rebuild_msadc();
    empty_buffer();
  }
  if (config_[kPortsIndex] != active_ports_) {
    active_ports_ = config_[kPortsIndex];
    empty_buffer();
  }
  const bool gated = ro::reg::kGateEnable.get(config_[kGateIndex]) != 0;
  const std::uint32_t n = beam_->parameters().particles_per_spill;
  // An endless spill 0 goes on from where the previous begin_spill() left it.
  const bool continues = !gated && !last_gated_ && ordinal_ != 0 && spill_number_ == 0;
  if (!continues) {
    ++ordinal_;
    spill_number_ = gated ? spill : 0;
    next_particle_ = 1;
    spill_ordinal_[spill_number_] = ordinal_;
    spill_recorded_[spill_number_] = 0;
  }
  last_gated_ = gated;
  spill_end_ = static_cast<std::uint32_t>(std::min<std::uint64_t>(std::uint64_t{next_particle_} + n, ro::kMaxParticle + 1ull));
  spill_ = ro::SpillCounters{};
  gate_open_ = true;
  if (!gated || !sending()) return 0;
  return ro::encode(ro::SpillBegin{config_[kSourceIndex], spill_number_}, out);
}

std::optional<std::size_t> EmulatedReadoutBoard::end_spill(std::span<std::uint32_t> out) noexcept {
  const std::size_t words = ro::fixed_length_words(ro::MessageType::SpillEnd);
  if (!gate_open_ || out.size() < words) return std::nullopt;
  gate_open_ = false;
  const double ticks = beam_->parameters().spill_duration_s * 1e12 / ro::kTickPs;
  spill_.gate_ticks = ticks >= 4294967295.0 ? 0xFFFF'FFFFu : static_cast<std::uint32_t>(std::lround(ticks));
  if (!last_gated_ || !sending()) return 0;
  return ro::encode(ro::SpillEnd{config_[kSourceIndex], spill_number_, spill_}, out);
}

std::size_t EmulatedReadoutBoard::read_block(std::uint32_t spill, std::uint32_t particle, std::span<std::uint32_t> out,
                                             ParticleTruth* truth) const noexcept {
  const std::size_t n = msadc_->read_event(spill, particle, out, truth);
  if (active_ports_ == ro::reg::kPorts.max()) return n;
  return drop_disabled_ports(out.first(n), active_ports_);
}

std::uint32_t EmulatedReadoutBoard::summarise(std::span<const std::uint32_t> block, std::uint32_t particle) noexcept {
  const auto value = ro::reg::kSummaryValue.get(config_[kModeIndex]) != 0 ? ro::SummaryValue::Integral
                                                                          : ro::SummaryValue::Amplitude;
  const auto n = ro::summarise_block(block, particle, ro::reg::kThreshold.get(config_[kThresholdIndex]), value,
                                     summaries_);
  return n ? static_cast<std::uint32_t>(*n) : 0u;
}

void EmulatedReadoutBoard::record(std::uint32_t particle, bool lost) noexcept {
  ++particles_total_;
  ++spill_.particles;
  spill_recorded_[spill_number_] = particle + 1;
  const std::uint32_t d = depth();
  if (d == 0) return;
  if (lost) {
    ++buffer_overflows_;
    ++spill_.buffer_overflows;
    return;
  }
  if (ring_size_ == d) {  // the oldest event is overwritten
    ring_head_ = (ring_head_ + 1) % ring_.size();
    --ring_size_;
  }
  ring_[(ring_head_ + ring_size_) % ring_.size()] =
      Held{(std::uint64_t{ordinal_} << 24) | particle, spill_number_, particle};
  ++ring_size_;
}

StreamResult EmulatedReadoutBoard::stream(std::span<std::uint32_t> out) noexcept {
  StreamResult r;
  if (!gate_open_ || next_particle_ >= spill_end_) return r;
  const ro::ReadoutMode m = mode();
  const std::uint32_t source = config_[kSourceIndex];
  if (m == ro::ReadoutMode::Off || !sending()) {
    const std::uint32_t n = std::min(params_.particles_per_packet, spill_end_ - next_particle_);
    for (std::uint32_t k = 0; k < n; ++k, ++next_particle_) {
      record(next_particle_, msadc_->loses(spill_number_, next_particle_));
    }
    r.particles = n;
    return r;
  }
  const bool summaries = m == ro::ReadoutMode::Summary || m == ro::ReadoutMode::Both;
  const bool full = m == ro::ReadoutMode::Full || m == ro::ReadoutMode::Both;
  const std::size_t particle_words = ro::kParticleHeaderWords + msadc_->channel_count();
  const std::size_t event_words = ro::kEventAnswerHeadWords + msadc_->max_fragment_words();

  auto write_full_event = [&](std::uint32_t particle) {
    auto dst = out.subspan(r.words);
    const std::size_t n = read_block(spill_number_, particle, dst.subspan(ro::kEventAnswerHeadWords), nullptr);
    r.words += ro::encode(
        ro::FullEvent{source, spill_number_, particle,
                      std::span<const std::uint32_t>(dst.data() + ro::kEventAnswerHeadWords, n)},
        dst);
  };

  if (!summaries) {
    while (next_particle_ < spill_end_ && out.size() - r.words >= event_words) {
      const std::uint32_t p = next_particle_++;
      record(p, msadc_->loses(spill_number_, p));
      write_full_event(p);
      ++r.particles;
    }
    return r;
  }

  while (next_particle_ < spill_end_) {
    // A packet, then (mode both) its particles' full events after it.
    const std::size_t room = out.size() - r.words;
    if (room < ro::kSummaryPacketHeadWords + particle_words + (full ? event_words : 0)) break;
    ro::SummaryPacketWriter w(out.subspan(r.words), source, spill_number_);
    const std::uint32_t first = next_particle_;
    std::size_t used = ro::kSummaryPacketHeadWords;
    std::uint32_t in_packet = 0;
    while (next_particle_ < spill_end_ && in_packet < params_.particles_per_packet &&
           room - used >= particle_words + (full ? event_words * (in_packet + 1) : 0)) {
      const std::uint32_t p = next_particle_++;
      ParticleTruth truth;
      const std::size_t n = read_block(spill_number_, p, block_, &truth);
      const std::uint32_t count = summarise(std::span<const std::uint32_t>(block_.data(), n), p);
      const bool lost = msadc_->loses(spill_number_, p);
      record(p, lost);
      (void)w.begin_particle(p, to_ticks(truth.time_ns), lost && depth() != 0);
      for (std::uint32_t k = 0; k < count; ++k) (void)w.add_summary(ro::channel_summary(summaries_[k]));
      used += ro::kParticleHeaderWords + count;
      summaries_total_ += count;
      spill_.summaries_sent += count;
      ++in_packet;
    }
    r.words += w.finish();
    r.particles += in_packet;
    if (full) {
      for (std::uint32_t p = first; p < first + in_packet; ++p) write_full_event(p);
    }
  }
  return r;
}

EmulatedReadoutBoard::Lookup EmulatedReadoutBoard::lookup(const ro::EventRef& ref) const noexcept {
  const std::uint32_t ordinal = spill_ordinal_[ref.spill];
  if (ordinal == 0 || ref.particle == 0 || ref.particle >= spill_recorded_[ref.spill]) return Lookup::NeverRecorded;
  if (ring_size_ == 0) return Lookup::Left;
  const std::uint64_t key = (std::uint64_t{ordinal} << 24) | ref.particle;
  if (key < ring_[ring_head_].key) return Lookup::Left;
  // Every event recorded after the oldest held one is held, unless it was never stored.
  return msadc_->loses(ref.spill, ref.particle) ? Lookup::Left : Lookup::Held;
}

std::size_t EmulatedReadoutBoard::answer(const ro::EventRef& ref, std::span<std::uint32_t> out) noexcept {
  const std::uint32_t source = config_[kSourceIndex];
  const bool this_spill = gate_open_ && ref.spill == spill_number_;
  switch (lookup(ref)) {
    case Lookup::Held: {
      const std::size_t n = read_block(ref.spill, ref.particle, out.subspan(ro::kEventAnswerHeadWords), nullptr);
      ++requests_served_;
      if (this_spill) ++spill_.requests_served;
      return ro::encode(ro::EventAnswer{source, ref,
                                        std::span<const std::uint32_t>(out.data() + ro::kEventAnswerHeadWords, n)},
                        out);
    }
    case Lookup::Left: {
      ++requests_too_late_;
      if (this_spill) ++spill_.requests_too_late;
      ro::TooLate m{source, ref, 0, 0};
      if (ring_size_ != 0) {
        m.oldest_spill = ring_[ring_head_].spill;
        m.oldest_particle = ring_[ring_head_].particle;
      }
      return ro::encode(m, out);
    }
    case Lookup::NeverRecorded: {
      ++requests_not_found_;
      return ro::encode(ro::NotFound{source, ref}, out);
    }
  }
  return 0;
}

std::size_t EmulatedReadoutBoard::bad_request(const ro::EventRef& ref, ro::BadRequestReason reason,
                                              std::span<std::uint32_t> out) noexcept {
  ++requests_bad_;
  return ro::encode(ro::BadRequest{config_[kSourceIndex], ref, reason}, out);
}

RequestsResult EmulatedReadoutBoard::handle_requests(std::span<const std::uint32_t> words,
                                                     std::span<std::uint32_t> out) noexcept {
  RequestsResult r;
  if (!sending()) return r;
  std::size_t n = 0;
  auto counted = ro::decode_event_requests(words, 0, [&](const ro::EventRef&) { ++n; });
  if (!counted) {
    if (out.size() < ro::fixed_length_words(ro::MessageType::BadRequest)) {
      r.taken = false;
      return r;
    }
    ro::EventRef first;
    if (words.size() >= ro::kMessageHeaderWords + ro::kEventRefWords) {
      first = ro::EventRef{ro::field::kSpill.get(words[3]), ro::field::kParticle.get(words[2]),
                           ro::field::kRequestId.get(words[3])};
    }
    ++requests_received_;
    r.words = bad_request(first, ro::BadRequestReason::MalformedMessage, out);
    r.answers = 1;
    return r;
  }
  if (out.size() < answer_words_bound(n)) {
    r.taken = false;
    return r;
  }
  const bool wrong_source = counted->source_id != config_[kSourceIndex];
  (void)ro::decode_event_requests(words, 0, [&](const ro::EventRef& ref) {
    ++requests_received_;
    auto dst = out.subspan(r.words);
    if (wrong_source) {
      r.words += bad_request(ref, ro::BadRequestReason::WrongSource, dst);
    } else if (r.answers >= params_.request_queue_depth) {
      r.words += bad_request(ref, ro::BadRequestReason::QueueFull, dst);
    } else if (depth() == 0) {
      r.words += bad_request(ref, ro::BadRequestReason::LatencyBufferOff, dst);
    } else {
      r.words += answer(ref, dst);
    }
    ++r.answers;
  });
  return r;
}

ro::BoardStatus EmulatedReadoutBoard::board_status() const noexcept {
  ro::BoardStatus s;
  s.source_id = config_[kSourceIndex];
  s.firmware_version = params_.firmware_version;
  const std::uint32_t d = depth();
  s.status = ro::reg::kGateOpen.put(gate_open_ ? 1 : 0) | ro::reg::kBufferFull.put(d != 0 && ring_size_ == d ? 1 : 0) |
             ro::reg::kCurrentSpill.put(spill_number_);
  s.particles = particles_total_;
  s.summaries_sent = summaries_total_;
  s.requests_received = requests_received_;
  s.requests_served = requests_served_;
  s.requests_too_late = requests_too_late_;
  s.requests_not_found = requests_not_found_;
  s.requests_bad = requests_bad_;
  s.buffer_overflows = buffer_overflows_;
  s.latency_capacity = params_.latency_capacity;
  return s;
}

std::size_t EmulatedReadoutBoard::status(std::span<std::uint32_t> out) const noexcept {
  if (!sending()) return 0;
  return ro::encode(board_status(), out);
}

}  // namespace na64::drivers
