// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/readout_host.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "na64/firmware/slink.hpp"

namespace na64::drivers {

namespace fw = na64::firmware;
namespace ro = na64::firmware::msadc_readout;

const char* to_string(RequestOutcome o) noexcept {
  switch (o) {
    case RequestOutcome::Completed: return "completed";
    case RequestOutcome::TooLate: return "too-late";
    case RequestOutcome::NotFound: return "not-found";
    case RequestOutcome::BadRequest: return "bad-request";
    case RequestOutcome::Unanswered: return "unanswered";
  }
  return "unknown";
}

std::string HostDecodeError::message() const {
  return fmt::format("buffer {}, spill {}: {}", buffer, spill, error.message());
}

ReadoutHost::ReadoutHost(ReadoutHostParameters p) : p_(p) {
  if (p.source_id > fw::kMaxSourceId) {
    throw std::invalid_argument(fmt::format("readout host: source id {} is not < 896", p.source_id));
  }
  if (p.requests_per_message == 0 || p.requests_per_message > 0xFFFF) {
    throw std::invalid_argument(
        fmt::format("readout host {}: requests per message {} is not 1-65535", p.source_id, p.requests_per_message));
  }
  if (p.max_in_flight == 0 || p.max_in_flight >= ro::kMaxRequestId) {
    throw std::invalid_argument(
        fmt::format("readout host {}: max in flight {} is not 1-2097150", p.source_id, p.max_in_flight));
  }
  slots_.resize(p.max_in_flight);
  batch_.resize(p.requests_per_message);
  errors_.resize(p.errors_kept);
  for (std::uint32_t s = 0; s < spills_.size(); ++s) spills_[s].spill = s;
}

void ReadoutHost::error(const fw::DecodeError& e) noexcept {
  ++spills_[current_spill_].decode_errors;
  if (errors_count_ < errors_.size()) errors_[errors_count_++] = HostDecodeError{e, buffers_, current_spill_};
}

void ReadoutHost::on_particle(const ro::ParticleSummary& p, ReadoutSink& sink) noexcept {
  HostSpillCounts& c = spills_[p.spill];
  ++c.particles;
  c.summaries += p.summaries.size();
  if (p.spill != current_spill_) {  // no spill-begin seen (gate disabled, or it was lost)
    current_spill_ = p.spill;
    expected_particle_ = 1;
  }
  if (p.particle > expected_particle_) c.missing_particles += p.particle - expected_particle_;
  expected_particle_ = p.particle + 1;
  if (sink.on_particle(p)) (void)request(p.spill, p.particle);
}

bool ReadoutHost::request(std::uint32_t spill, std::uint32_t particle) noexcept {
  HostSpillCounts& c = spills_[spill & ro::kMaxSpill];
  if (next_seq_ - oldest_seq_ == slots_.size()) {
    ++c.not_requested;
    return false;
  }
  const std::uint64_t seq = next_seq_++;
  Slot& s = slot(seq);
  s.ref = ro::EventRef{spill & ro::kMaxSpill, particle, id_of(seq)};
  s.state = SlotState::Pending;
  ++c.requested;
  return true;
}

std::size_t ReadoutHost::take_requests(std::span<std::uint32_t> out, std::uint64_t now_ns) noexcept {
  if (out.size() < ro::event_requests_words(1)) return 0;
  const std::size_t fit = (out.size() - ro::kMessageHeaderWords) / ro::kEventRefWords;
  const std::size_t n = std::min({pending(), fit, batch_.size()});
  if (n == 0) return 0;
  for (std::size_t k = 0; k < n; ++k) batch_[k] = slot(next_pending_seq_ + k).ref;
  const std::size_t words =
      ro::encode_event_requests(p_.source_id, std::span<const ro::EventRef>(batch_.data(), n), out);
  if (words == 0) return 0;
  for (std::size_t k = 0; k < n; ++k) {
    Slot& s = slot(next_pending_seq_++);
    s.state = SlotState::Sent;
    s.sent_ns = now_ns;
    s.message = messages_sent_;
  }
  ++messages_sent_;
  in_flight_count_ += n;
  return words;
}

void ReadoutHost::end(Slot& s, RequestOutcome outcome, ReadoutSink& sink) noexcept {
  HostSpillCounts& c = spills_[s.ref.spill];
  switch (outcome) {
    case RequestOutcome::Completed: ++c.completed; break;
    case RequestOutcome::TooLate: ++c.too_late; break;
    case RequestOutcome::NotFound: ++c.not_found; break;
    case RequestOutcome::BadRequest: ++c.bad_request; break;
    case RequestOutcome::Unanswered: ++c.unanswered; break;
  }
  s.state = SlotState::Free;
  --in_flight_count_;
  if (outcome != RequestOutcome::Completed) sink.on_lost(s.ref, outcome);
  while (oldest_seq_ < next_pending_seq_ && slot(oldest_seq_).state == SlotState::Free) ++oldest_seq_;
}

std::size_t ReadoutHost::expire(std::uint64_t now_ns, ReadoutSink& sink) noexcept {
  std::size_t n = 0;
  // Sent requests are in the order they were sent, so the first one still
  // young ends the walk (end() moves oldest_seq_ past the ended ones).
  while (oldest_seq_ < next_pending_seq_) {
    Slot& s = slot(oldest_seq_);
    if (s.sent_ns + p_.timeout_ns > now_ns) break;
    end(s, RequestOutcome::Unanswered, sink);
    ++n;
  }
  return n;
}

ReadoutHost::Slot* ReadoutHost::match(const ro::EventRef& ref) noexcept {
  if (ref.request_id == 0 || ref.request_id > ro::kMaxRequestId) return nullptr;
  const std::uint64_t base = oldest_seq_ % ro::kMaxRequestId;
  const std::uint64_t off = (ref.request_id - 1 + ro::kMaxRequestId - base) % ro::kMaxRequestId;
  const std::uint64_t seq = oldest_seq_ + off;
  if (seq >= next_pending_seq_) return nullptr;
  Slot& s = slot(seq);
  if (s.state != SlotState::Sent || !(s.ref == ref)) return nullptr;
  return &s;
}

std::size_t ReadoutHost::consume(std::span<const std::uint32_t> words, ReadoutSink& sink) noexcept {
  auto answered = [&](const ro::EventRef& ref, RequestOutcome outcome) {
    if (Slot* s = match(ref)) {
      end(*s, outcome, sink);
    } else {
      ++counts_.unexpected_answers;
    }
  };
  auto visitor = [&](const auto& m) {
    using T = std::decay_t<decltype(m)>;
    if (m.source_id != p_.source_id) {
      ++counts_.wrong_source;
      return;
    }
    if constexpr (std::is_same_v<T, ro::ParticleSummary>) {
      on_particle(m, sink);
    } else if constexpr (std::is_same_v<T, ro::SpillBegin>) {
      spills_[m.spill] = HostSpillCounts{};
      spills_[m.spill].spill = m.spill;
      spills_[m.spill].begun = true;
      current_spill_ = m.spill;
      expected_particle_ = 1;
      sink.on_spill_begin(m);
    } else if constexpr (std::is_same_v<T, ro::SpillEnd>) {
      spills_[m.spill].ended = true;
      spills_[m.spill].board = m.counters;
      sink.on_spill_end(m);
    } else if constexpr (std::is_same_v<T, ro::EventAnswer>) {
      if (Slot* s = match(m.ref)) {
        sink.on_event(m);
        end(*s, RequestOutcome::Completed, sink);
      } else {
        ++counts_.unexpected_answers;
      }
    } else if constexpr (std::is_same_v<T, ro::FullEvent>) {
      ++counts_.full_events;
    } else if constexpr (std::is_same_v<T, ro::TooLate>) {
      answered(m.ref, RequestOutcome::TooLate);
    } else if constexpr (std::is_same_v<T, ro::NotFound>) {
      answered(m.ref, RequestOutcome::NotFound);
    } else if constexpr (std::is_same_v<T, ro::BadRequest>) {
      if (m.reason != ro::BadRequestReason::MalformedMessage) {
        answered(m.ref, RequestOutcome::BadRequest);
        return;
      }
      // One answer for a whole message: every request still sent in it ends.
      Slot* first = match(m.ref);
      if (first == nullptr) {
        ++counts_.unexpected_answers;
        return;
      }
      const std::uint64_t message = first->message;
      for (std::uint64_t seq = oldest_seq_; seq < next_pending_seq_; ++seq) {
        Slot& s = slot(seq);
        if (s.state == SlotState::Sent && s.message == message) end(s, RequestOutcome::BadRequest, sink);
      }
    } else if constexpr (std::is_same_v<T, ro::BoardStatus>) {
      ++counts_.status_messages;
      status_ = m;
    }
  };

  std::size_t pos = 0;
  while (pos < words.size()) {
    const auto rest = words.subspan(pos);
    const std::size_t offset_bytes = pos * 4;
    const auto header = ro::decode_message_header(rest, offset_bytes);
    if (!header) {  // no length to trust: the rest of the buffer cannot be walked
      ++counts_.framing_errors;
      error(header.error());
      break;
    }
    const auto r = ro::decode_board_message(rest, offset_bytes, visitor);
    if (r) {
      ++counts_.messages;
    } else {
      ++counts_.decode_errors;
      error(r.error());
    }
    pos += header->length_words;
  }
  ++buffers_;
  return pos;
}

}  // namespace na64::drivers
