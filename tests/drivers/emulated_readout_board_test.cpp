// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/emulated_readout_board.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

#include "na64/firmware/msadc.hpp"

namespace na64::drivers {
namespace {

namespace fw = na64::firmware;
namespace ro = na64::firmware::msadc_readout;

constexpr std::uint32_t kSource = 620;
constexpr std::uint32_t kSpill = 5;
constexpr std::uint32_t kParticles = 300;
constexpr std::uint32_t kCapacity = 100;

fw::ChannelMap ecal_map() {
  std::vector<fw::ChannelMapEntry> e;
  for (std::uint16_t c = 0; c < 36; ++c) {
    e.push_back({kSource, 0, c, fw::cell_index(fw::Detector::Ecal0, c % 6, c / 6), 0.005f});
    e.push_back({kSource, 1, c, fw::cell_index(fw::Detector::Ecal1, c % 6, c / 6), 0.025f});
  }
  return fw::ChannelMap(std::move(e));
}

BeamParameters beam_parameters() {
  BeamParameters p;
  p.particles_per_spill = kParticles;
  return p;
}

/// The summaries of one particle, computed here from read_event's waveforms
/// with the protocol's rules, independently of the board.
std::vector<ro::ChannelSummary> expected_summaries(const EmulatedMsadcBoard& msadc, std::uint32_t spill,
                                                   std::uint32_t particle, std::uint32_t threshold) {
  std::vector<std::uint32_t> block(msadc.max_fragment_words());
  const std::size_t n = msadc.read_event(spill, particle, block);
  std::vector<ro::ChannelSummary> out;
  auto r = fw::decode_msadc(std::span<const std::uint32_t>(block.data(), n), particle, 0,
                            [&](const fw::MsadcChannel& ch) {
                              std::vector<int> s(ch.n_samples);
                              for (std::size_t k = 0; k < s.size(); ++k) s[k] = ch.sample(k);
                              const int pedestal = (s[0] + s[1] + s[2] + s[3]) / 4;
                              const auto peak = std::max_element(s.begin(), s.end());
                              const int amplitude = std::max(*peak - pedestal, 0);
                              if (amplitude < static_cast<int>(threshold)) return;
                              const auto time = std::min<std::uint32_t>(
                                  4 * static_cast<std::uint32_t>(peak - s.begin()), 127);
                              out.push_back({ch.port, ch.adc_id, ch.channel, static_cast<std::uint32_t>(amplitude),
                                             time});
                            });
  EXPECT_TRUE(r.ok());
  return out;
}

std::vector<std::uint32_t> block_of(const EmulatedMsadcBoard& msadc, std::uint32_t spill, std::uint32_t particle) {
  std::vector<std::uint32_t> block(msadc.max_fragment_words());
  block.resize(msadc.read_event(spill, particle, block));
  return block;
}

/// Every message of a stream, decoded, in order.
struct Walked {
  std::vector<ro::ParticleSummary> particles;
  std::vector<std::vector<std::uint32_t>> particle_summaries;  // copies: the spans die with the stream
  std::vector<ro::EventAnswer> answers;
  std::vector<std::vector<std::uint32_t>> answer_blocks;
  std::vector<ro::FullEvent> full_events;
  std::vector<std::vector<std::uint32_t>> full_blocks;
  std::vector<ro::TooLate> too_late;
  std::vector<ro::NotFound> not_found;
  std::vector<ro::BadRequest> bad;
  std::vector<ro::SpillBegin> begins;
  std::vector<ro::SpillEnd> ends;
  std::vector<ro::BoardStatus> status;
  std::size_t messages = 0;
  std::vector<ro::MessageType> types;
};

Walked walk(std::span<const std::uint32_t> words) {
  Walked w;
  std::size_t pos = 0;
  while (pos < words.size()) {
    auto h = ro::decode_message_header(words.subspan(pos), pos * 4);
    EXPECT_TRUE(h.ok()) << h.error().message();
    if (!h) break;
    w.types.push_back(h->type);
    auto r = ro::decode_board_message(words.subspan(pos), pos * 4, [&](const auto& m) {
      using T = std::decay_t<decltype(m)>;
      if constexpr (std::is_same_v<T, ro::ParticleSummary>) {
        w.particles.push_back(m);
        w.particle_summaries.emplace_back(m.summaries.begin(), m.summaries.end());
      } else if constexpr (std::is_same_v<T, ro::EventAnswer>) {
        w.answers.push_back(m);
        w.answer_blocks.emplace_back(m.block.begin(), m.block.end());
      } else if constexpr (std::is_same_v<T, ro::FullEvent>) {
        w.full_events.push_back(m);
        w.full_blocks.emplace_back(m.block.begin(), m.block.end());
      } else if constexpr (std::is_same_v<T, ro::TooLate>) {
        w.too_late.push_back(m);
      } else if constexpr (std::is_same_v<T, ro::NotFound>) {
        w.not_found.push_back(m);
      } else if constexpr (std::is_same_v<T, ro::BadRequest>) {
        w.bad.push_back(m);
      } else if constexpr (std::is_same_v<T, ro::SpillBegin>) {
        w.begins.push_back(m);
      } else if constexpr (std::is_same_v<T, ro::SpillEnd>) {
        w.ends.push_back(m);
      } else if constexpr (std::is_same_v<T, ro::BoardStatus>) {
        w.status.push_back(m);
      }
    });
    EXPECT_TRUE(r.ok()) << r.error().message();
    if (!r) break;
    ++w.messages;
    pos += *r;
  }
  EXPECT_EQ(pos, words.size());
  return w;
}

std::vector<std::uint32_t> requests(std::uint32_t source, std::vector<ro::EventRef> refs) {
  std::vector<std::uint32_t> out(ro::event_requests_words(refs.size()));
  EXPECT_EQ(ro::encode_event_requests(source, refs, out), out.size());
  return out;
}

class EmulatedReadoutBoardTest : public ::testing::Test {
 protected:
  EmulatedReadoutBoardTest() : map_(ecal_map()), beam_(beam_parameters()) {}

  /// A board with its SOURCE_ID written, as a run control configures it.
  EmulatedReadoutBoard& board(EmulatorParameters ep = {}, ReadoutBoardParameters rp = with_capacity()) {
    board_.emplace(kSource, map_, beam_, ep, rp);
    EXPECT_EQ(board_->write_register(ro::reg::kSourceId.address, kSource), RegisterWrite::Done);
    return *board_;
  }
  static ReadoutBoardParameters with_capacity() {
    ReadoutBoardParameters p;
    p.latency_capacity = kCapacity;
    return p;
  }
  EmulatedMsadcBoard reference(EmulatorParameters ep = {}) const {
    return EmulatedMsadcBoard(kSource, map_, beam_, ep);
  }

  /// Streams particles until `until` of them are done (all by default), in
  /// buffers of `chunk` words; returns the words.
  std::vector<std::uint32_t> stream(EmulatedReadoutBoard& b, std::uint32_t until = kParticles,
                                    std::size_t chunk = 2000) {
    std::vector<std::uint32_t> all;
    std::vector<std::uint32_t> out(chunk);
    while (b.particles_left() > kParticles - until) {
      const auto r = b.stream(out);
      EXPECT_GT(r.particles, 0u);
      if (r.particles == 0) break;
      all.insert(all.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(r.words));
    }
    return all;
  }
  std::vector<std::uint32_t> answers(EmulatedReadoutBoard& b, std::span<const std::uint32_t> message,
                                     std::size_t n_requests) {
    std::vector<std::uint32_t> out(b.answer_words_bound(n_requests));
    const auto r = b.handle_requests(message, out);
    EXPECT_TRUE(r.taken);
    out.resize(r.words);
    return out;
  }

  fw::ChannelMap map_;
  NA64Beam beam_;
  std::optional<EmulatedReadoutBoard> board_;
};

TEST_F(EmulatedReadoutBoardTest, WholeSpillSummariesMatchTheWaveforms) {
  auto& b = board();
  std::array<std::uint32_t, 3> begin{};
  ASSERT_EQ(b.begin_spill(kSpill, begin), 3u);
  const auto began = walk(begin);
  ASSERT_EQ(began.begins.size(), 1u);
  EXPECT_EQ(began.begins[0].spill, kSpill);
  EXPECT_EQ(began.begins[0].source_id, kSource);

  const auto words = stream(b);
  EXPECT_EQ(b.particles_left(), 0u);
  std::vector<std::uint32_t> more(2000);
  EXPECT_EQ(b.stream(more).particles, 0u);
  const auto w = walk(words);
  ASSERT_EQ(w.particles.size(), kParticles);
  // 64 particles a packet at most: 300 particles need at least 5 packets.
  EXPECT_GE(w.messages, 5u);
  for (auto t : w.types) EXPECT_EQ(t, ro::MessageType::SummaryPacket);

  const auto msadc = reference();
  std::uint64_t summaries = 0;
  std::uint32_t quiet = 0;
  for (std::uint32_t p = 1; p <= kParticles; ++p) {  // particles count from 1
    const auto& got = w.particles[p - 1];
    ASSERT_EQ(got.particle, p);
    EXPECT_EQ(got.spill, kSpill);
    EXPECT_EQ(got.source_id, kSource);
    EXPECT_FALSE(got.not_buffered);
    ParticleTruth truth;
    std::vector<std::uint32_t> scratch(msadc.max_fragment_words());
    (void)msadc.read_event(kSpill, p, scratch, &truth);
    EXPECT_EQ(got.time_ticks, static_cast<std::uint32_t>(std::lround(truth.time_ns / 12.5))) << p;
    std::vector<ro::ChannelSummary> summary;
    for (auto word : w.particle_summaries[p - 1]) summary.push_back(ro::channel_summary(word));
    EXPECT_EQ(summary, expected_summaries(msadc, kSpill, p, 16)) << "particle " << p;
    summaries += summary.size();
    if (summary.empty()) ++quiet;
  }
  // The beam hits several ECAL cells per particle: the comparison is not vacuous.
  EXPECT_GT(summaries, 3u * kParticles);

  std::array<std::uint32_t, 9> end{};
  ASSERT_EQ(b.end_spill(end), 9u);
  const auto ended = walk(end);
  ASSERT_EQ(ended.ends.size(), 1u);
  EXPECT_EQ(ended.ends[0].spill, kSpill);
  EXPECT_EQ(ended.ends[0].counters,
            (ro::SpillCounters{kParticles, static_cast<std::uint32_t>(summaries), 0, 0, 0, 384'000'000}));
  EXPECT_EQ(b.read_register(ro::reg::kParticles.address), kParticles);
  EXPECT_EQ(b.read_register(ro::reg::kSummariesSent.address), summaries);
  EXPECT_FALSE(b.end_spill(end).has_value());
}

TEST_F(EmulatedReadoutBoardTest, SmallBuffersGiveTheSameStream) {
  auto& b = board();
  std::array<std::uint32_t, 3> begin{};
  ASSERT_EQ(b.begin_spill(kSpill, begin), 3u);
  const auto big = stream(b);
  auto& c = board();
  ASSERT_EQ(c.begin_spill(kSpill, begin), 3u);
  std::vector<std::uint32_t> short_buffer(c.min_stream_words() - 1);
  EXPECT_EQ(c.stream(short_buffer).particles, 0u);
  const auto small = stream(c, kParticles, c.min_stream_words());
  const auto wb = walk(big);
  const auto ws = walk(small);
  ASSERT_EQ(ws.particles.size(), kParticles);
  EXPECT_GT(ws.messages, wb.messages);
  EXPECT_EQ(ws.particle_summaries, wb.particle_summaries);
}

TEST_F(EmulatedReadoutBoardTest, RequestedEventsGetTheirExactBlockAndLateOnesTooLate) {
  auto& b = board();
  std::array<std::uint32_t, 9> msg{};
  ASSERT_EQ(b.begin_spill(kSpill, msg), 3u);
  (void)stream(b);
  // The buffer holds the last 100 particles: 201-300.
  const auto message = requests(kSource, {{kSpill, 250, 11},
                                          {kSpill, 300, 12},
                                          {kSpill, 200, 13},
                                          {kSpill, 301, 14},
                                          {7, 1, 15},
                                          {kSpill, 201, 16}});
  const auto w = walk(answers(b, message, 6));
  ASSERT_EQ(w.types, (std::vector<ro::MessageType>{ro::MessageType::EventAnswer, ro::MessageType::EventAnswer,
                                                    ro::MessageType::TooLate, ro::MessageType::NotFound,
                                                    ro::MessageType::NotFound, ro::MessageType::EventAnswer}));
  const auto msadc = reference();
  EXPECT_EQ(w.answers[0].ref, (ro::EventRef{kSpill, 250, 11}));
  EXPECT_EQ(w.answer_blocks[0], block_of(msadc, kSpill, 250));
  EXPECT_EQ(w.answers[1].ref, (ro::EventRef{kSpill, 300, 12}));
  EXPECT_EQ(w.answer_blocks[1], block_of(msadc, kSpill, 300));
  EXPECT_EQ(w.answers[2].ref, (ro::EventRef{kSpill, 201, 16}));
  EXPECT_EQ(w.answer_blocks[2], block_of(msadc, kSpill, 201));
  EXPECT_EQ(w.answers[0].source_id, kSource);
  EXPECT_EQ(w.too_late[0].ref, (ro::EventRef{kSpill, 200, 13}));
  EXPECT_EQ(w.too_late[0].oldest_spill, kSpill);
  EXPECT_EQ(w.too_late[0].oldest_particle, 201u);
  EXPECT_EQ(w.not_found[0].ref, (ro::EventRef{kSpill, 301, 14}));
  EXPECT_EQ(w.not_found[1].ref, (ro::EventRef{7, 1, 15}));

  EXPECT_EQ(b.read_register(ro::reg::kRequestsReceived.address), 6u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsServed.address), 3u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsTooLate.address), 1u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsNotFound.address), 2u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsBad.address), 0u);
  ASSERT_EQ(b.end_spill(msg), 9u);
  EXPECT_EQ(walk(msg).ends.at(0).counters.requests_served, 3u);
  EXPECT_EQ(walk(msg).ends.at(0).counters.requests_too_late, 1u);

  // After the gate closed the events are still served, and counted in the
  // status registers only.
  const auto late = walk(answers(b, requests(kSource, {{kSpill, 250, 17}}), 1));
  ASSERT_EQ(late.answers.size(), 1u);
  EXPECT_EQ(late.answer_blocks[0], block_of(msadc, kSpill, 250));
  std::array<std::uint32_t, 13> status{};
  ASSERT_EQ(b.status(status), 13u);
  const auto s = walk(status);
  ASSERT_EQ(s.status.size(), 1u);
  EXPECT_EQ(s.status[0].requests_received, 7u);
  EXPECT_EQ(s.status[0].requests_served, 4u);
  EXPECT_EQ(s.status[0].requests_too_late, 1u);
  EXPECT_EQ(s.status[0].requests_not_found, 2u);
  EXPECT_EQ(s.status[0].particles, kParticles);
  EXPECT_EQ(s.status[0].latency_capacity, kCapacity);
  // Gate closed, buffer full (100 of 100), current spill 5.
  EXPECT_EQ(s.status[0].status, 0x2u | (kSpill << 16));
}

TEST_F(EmulatedReadoutBoardTest, RequestDuringTheSpillForAFutureParticleIsNotFound) {
  auto& b = board();
  std::array<std::uint32_t, 9> msg{};
  ASSERT_EQ(b.begin_spill(kSpill, msg), 3u);
  (void)stream(b, 128);
  // Particles count from 1: the last one streamed is numbered as many as were streamed.
  const std::uint32_t last = kParticles - b.particles_left();
  ASSERT_GE(last, 128u);
  const std::uint32_t next = last + 1;
  const auto w = walk(answers(b, requests(kSource, {{kSpill, last, 1}, {kSpill, next, 2}}), 2));
  ASSERT_EQ(w.answers.size(), 1u);
  EXPECT_EQ(w.answers[0].ref, (ro::EventRef{kSpill, last, 1}));
  EXPECT_EQ(w.answer_blocks[0], block_of(reference(), kSpill, last));
  ASSERT_EQ(w.not_found.size(), 1u);
  EXPECT_EQ(w.not_found[0].ref, (ro::EventRef{kSpill, next, 2}));
  // Once streamed (one more packet, within the buffer's 100), it is served.
  (void)stream(b, next, b.min_stream_words());
  ASSERT_GE(kParticles - b.particles_left(), next);
  ASSERT_LT(kParticles - b.particles_left(), next + kCapacity);
  const auto again = walk(answers(b, requests(kSource, {{kSpill, next, 3}}), 1));
  ASSERT_EQ(again.answers.size(), 1u);
  EXPECT_EQ(again.answer_blocks[0], block_of(reference(), kSpill, next));
}

TEST_F(EmulatedReadoutBoardTest, ParticleZeroIsNoParticleAndNotFound) {
  auto& b = board();
  std::array<std::uint32_t, 9> msg{};
  ASSERT_EQ(b.begin_spill(kSpill, msg), 3u);
  (void)stream(b, 10, b.min_stream_words());
  ASSERT_LE(kParticles - b.particles_left(), kCapacity);  // particle 1 is still in the buffer
  const auto w = walk(answers(b, requests(kSource, {{kSpill, 0, 1}, {kSpill, 1, 2}}), 2));
  ASSERT_EQ(w.types, (std::vector<ro::MessageType>{ro::MessageType::NotFound, ro::MessageType::EventAnswer}));
  EXPECT_EQ(w.not_found[0].ref, (ro::EventRef{kSpill, 0, 1}));
  EXPECT_EQ(w.not_found[0].source_id, kSource);
  EXPECT_EQ(w.answers[0].ref, (ro::EventRef{kSpill, 1, 2}));
  EXPECT_EQ(w.answer_blocks[0], block_of(reference(), kSpill, 1));
  EXPECT_EQ(b.read_register(ro::reg::kRequestsReceived.address), 2u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsNotFound.address), 1u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsServed.address), 1u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsTooLate.address), 0u);
}

TEST_F(EmulatedReadoutBoardTest, CorruptedRequestGetsOneBadRequest) {
  auto& b = board();
  std::array<std::uint32_t, 9> msg{};
  ASSERT_EQ(b.begin_spill(kSpill, msg), 3u);
  (void)stream(b);
  auto message = requests(kSource, {{kSpill, 250, 1}, {kSpill, 251, 2}, {kSpill, 252, 3}});
  message[4] |= 0x0100'0000u;  // reserved bit of the second request's particle word
  const auto w = walk(answers(b, message, 3));
  ASSERT_EQ(w.messages, 1u);
  ASSERT_EQ(w.bad.size(), 1u);
  EXPECT_EQ(w.bad[0].reason, ro::BadRequestReason::MalformedMessage);
  EXPECT_EQ(w.bad[0].ref, (ro::EventRef{kSpill, 250, 1}));  // its first request as read
  EXPECT_EQ(b.read_register(ro::reg::kRequestsReceived.address), 1u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsBad.address), 1u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsServed.address), 0u);

  // Too short to carry a request: zeros.
  const std::array<std::uint32_t, 1> stub{0x12345678u};
  const auto z = walk(answers(b, stub, 1));
  ASSERT_EQ(z.bad.size(), 1u);
  EXPECT_EQ(z.bad[0].ref, (ro::EventRef{}));
  EXPECT_EQ(z.bad[0].reason, ro::BadRequestReason::MalformedMessage);

  // Another source: each request is refused.
  const auto other = walk(answers(b, requests(kSource + 1, {{kSpill, 250, 4}, {kSpill, 251, 5}}), 2));
  ASSERT_EQ(other.bad.size(), 2u);
  EXPECT_EQ(other.bad[0].reason, ro::BadRequestReason::WrongSource);
  EXPECT_EQ(other.bad[1].ref, (ro::EventRef{kSpill, 251, 5}));
  EXPECT_EQ(other.bad[1].source_id, kSource);

  // Buffer off.
  ASSERT_EQ(b.write_register(ro::reg::kLatencyDepth.address, 0), RegisterWrite::Done);
  const auto off = walk(answers(b, requests(kSource, {{kSpill, 250, 6}}), 1));
  ASSERT_EQ(off.bad.size(), 1u);
  EXPECT_EQ(off.bad[0].reason, ro::BadRequestReason::LatencyBufferOff);

  EXPECT_EQ(b.read_register(ro::reg::kRequestsReceived.address), 5u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsBad.address), 5u);

  // An answer buffer too small for the answers: nothing taken, nothing counted.
  std::vector<std::uint32_t> tiny(4);
  const auto refused = b.handle_requests(requests(kSource, {{kSpill, 250, 7}}), tiny);
  EXPECT_FALSE(refused.taken);
  EXPECT_EQ(refused.words, 0u);
  EXPECT_EQ(b.read_register(ro::reg::kRequestsReceived.address), 5u);
}

TEST_F(EmulatedReadoutBoardTest, RequestsBeyondTheQueueAreRefused) {
  ReadoutBoardParameters rp = with_capacity();
  rp.request_queue_depth = 2;
  auto& b = board({}, rp);
  std::array<std::uint32_t, 9> msg{};
  ASSERT_EQ(b.begin_spill(kSpill, msg), 3u);
  (void)stream(b);
  const auto w = walk(answers(b, requests(kSource, {{kSpill, 250, 1}, {kSpill, 251, 2}, {kSpill, 252, 3}}), 3));
  ASSERT_EQ(w.answers.size(), 2u);
  ASSERT_EQ(w.bad.size(), 1u);
  EXPECT_EQ(w.bad[0].ref, (ro::EventRef{kSpill, 252, 3}));
  EXPECT_EQ(w.bad[0].reason, ro::BadRequestReason::QueueFull);
}

TEST_F(EmulatedReadoutBoardTest, RegistersResetReadBackAndRefuseReadOnlyWrites) {
  auto b = EmulatedReadoutBoard(kSource, map_, beam_, {}, with_capacity());
  for (const auto& r : ro::kRegisterMap) {
    std::uint32_t expected = r.reset;
    if (r.address == ro::reg::kLatencyDepth.address) expected = kCapacity;  // 0x1000 reads back as the capacity
    if (r.address == ro::reg::kFirmwareVersion.address) expected = 0x0001'0001;
    if (r.address == ro::reg::kLatencyCapacity.address) expected = kCapacity;
    EXPECT_EQ(b.read_register(r.address), expected) << r.name;
  }
  // Reset SOURCE_ID 0x3FF: the board sends nothing.
  std::array<std::uint32_t, 13> out{};
  EXPECT_EQ(b.begin_spill(kSpill, out), 0u);
  EXPECT_EQ(b.stream(out).words, 0u);
  EXPECT_EQ(b.status(out), 0u);
  EXPECT_EQ(b.end_spill(out), 0u);

  EXPECT_EQ(b.write_register(ro::reg::kZsThreshold.address, 0xFFFF'FFFFu), RegisterWrite::Done);
  EXPECT_EQ(b.read_register(ro::reg::kZsThreshold.address), 0xFFFu);
  EXPECT_EQ(b.write_register(ro::reg::kReadoutMode.address, 0xFFFF'FFFFu), RegisterWrite::Done);
  EXPECT_EQ(b.read_register(ro::reg::kReadoutMode.address), 0x13u);
  EXPECT_EQ(b.write_register(ro::reg::kSampleCount.address, 0), RegisterWrite::Done);
  EXPECT_EQ(b.read_register(ro::reg::kSampleCount.address), 1u);
  EXPECT_EQ(b.write_register(ro::reg::kLatencyDepth.address, 40), RegisterWrite::Done);
  EXPECT_EQ(b.read_register(ro::reg::kLatencyDepth.address), 40u);

  EXPECT_EQ(b.write_register(ro::reg::kParticles.address, 7), RegisterWrite::ReadOnly);
  // The particles the silent board went through above: one packet's worth.
  EXPECT_EQ(b.read_register(ro::reg::kParticles.address), 64u);
  EXPECT_EQ(b.write_register(ro::reg::kLatencyCapacity.address, 7), RegisterWrite::ReadOnly);
  EXPECT_EQ(b.read_register(ro::reg::kLatencyCapacity.address), kCapacity);
  EXPECT_EQ(b.write_register(ro::reg::kFirmwareVersion.address, 7), RegisterWrite::ReadOnly);
  EXPECT_EQ(b.write_register(0x1C, 1), RegisterWrite::UnknownAddress);
  EXPECT_EQ(b.write_register(0x02, 1), RegisterWrite::UnknownAddress);
  EXPECT_EQ(b.write_register(0x6C, 1), RegisterWrite::UnknownAddress);
  EXPECT_FALSE(b.read_register(0x1C).has_value());
  EXPECT_STREQ(to_string(RegisterWrite::ReadOnly), "read-only register");
  EXPECT_STREQ(to_string(RegisterWrite::UnknownAddress), "no register at this address");
}

TEST_F(EmulatedReadoutBoardTest, SpillCallsOutOfOrderAreRefused) {
  auto& b = board();
  std::array<std::uint32_t, 9> out{};
  EXPECT_FALSE(b.end_spill(out).has_value());
  EXPECT_EQ(b.stream(out).particles, 0u);
  EXPECT_FALSE(b.begin_spill(2048, out).has_value());
  EXPECT_FALSE(b.begin_spill(kSpill, std::span<std::uint32_t>(out).first(2)).has_value());
  ASSERT_EQ(b.begin_spill(kSpill, out), 3u);
  EXPECT_FALSE(b.begin_spill(kSpill + 1, out).has_value());
  EXPECT_TRUE(b.gate_open());
}

TEST_F(EmulatedReadoutBoardTest, GateDisabledIsOneEndlessSpillZero) {
  auto& b = board();
  ASSERT_EQ(b.write_register(ro::reg::kSpillGate.address, 0), RegisterWrite::Done);
  std::array<std::uint32_t, 9> msg{};
  ASSERT_EQ(b.begin_spill(kSpill, msg), 0u);  // no spill message
  const auto first = walk(stream(b));
  ASSERT_EQ(b.end_spill(msg), 0u);
  ASSERT_EQ(b.begin_spill(kSpill + 1, msg), 0u);
  const auto second = walk(stream(b));
  ASSERT_EQ(first.particles.size(), kParticles);
  ASSERT_EQ(second.particles.size(), kParticles);
  EXPECT_EQ(first.particles.front().spill, 0u);
  EXPECT_EQ(second.particles.front().spill, 0u);
  EXPECT_EQ(first.particles.front().particle, 1u);
  EXPECT_EQ(first.particles.back().particle, kParticles);
  EXPECT_EQ(second.particles.front().particle, kParticles + 1);  // numbering goes on
  EXPECT_EQ(second.particles.back().particle, 2 * kParticles);
  EXPECT_TRUE(first.begins.empty());
}

TEST_F(EmulatedReadoutBoardTest, LostFragmentsAreNotBufferedAndTooLate) {
  EmulatorParameters ep;
  ep.fragment_loss = 0.1;
  auto& b = board(ep);
  std::array<std::uint32_t, 9> msg{};
  ASSERT_EQ(b.begin_spill(kSpill, msg), 3u);
  const auto w = walk(stream(b));
  const auto msadc = reference(ep);
  std::uint32_t lost = 0;
  std::uint32_t last_lost = 0;
  ASSERT_EQ(w.particles.size(), kParticles);
  for (std::uint32_t p = 1; p <= kParticles; ++p) {
    ASSERT_EQ(w.particles[p - 1].particle, p);
    EXPECT_EQ(w.particles[p - 1].not_buffered, msadc.loses(kSpill, p)) << p;
    if (msadc.loses(kSpill, p)) {
      ++lost;
      last_lost = p;
    }
  }
  ASSERT_GT(lost, 10u);
  ASSERT_GE(last_lost, 250u);
  EXPECT_EQ(b.read_register(ro::reg::kBufferOverflows.address), lost);
  const auto a = walk(answers(b, requests(kSource, {{kSpill, last_lost, 9}}), 1));
  ASSERT_EQ(a.too_late.size(), 1u);
  EXPECT_EQ(a.too_late[0].ref, (ro::EventRef{kSpill, last_lost, 9}));
  ASSERT_EQ(b.end_spill(msg), 9u);
  EXPECT_EQ(walk(msg).ends.at(0).counters.buffer_overflows, lost);
  EXPECT_EQ(walk(msg).ends.at(0).counters.requests_too_late, 1u);
}

TEST_F(EmulatedReadoutBoardTest, FullModePushesEveryEvent) {
  auto& b = board();
  ASSERT_EQ(b.write_register(ro::reg::kReadoutMode.address,
                             ro::readout_mode_register(ro::ReadoutMode::Both, ro::SummaryValue::Amplitude)),
            RegisterWrite::Done);
  std::array<std::uint32_t, 9> msg{};
  ASSERT_EQ(b.begin_spill(kSpill, msg), 3u);
  const auto w = walk(stream(b, kParticles, 20000));
  ASSERT_EQ(w.particles.size(), kParticles);
  ASSERT_EQ(w.full_events.size(), kParticles);
  const auto msadc = reference();
  for (std::uint32_t p = 1; p <= kParticles; p += 37) {
    EXPECT_EQ(w.full_events[p - 1].particle, p);
    EXPECT_EQ(w.full_blocks[p - 1], block_of(msadc, kSpill, p));
  }
  // Each summary packet comes before the full events of its particles.
  EXPECT_EQ(w.types.front(), ro::MessageType::SummaryPacket);
}

TEST_F(EmulatedReadoutBoardTest, DisabledPortIsInNoSummaryAndNoAnswer) {
  auto& b = board();
  ASSERT_EQ(b.write_register(ro::reg::kPortEnable.address, 0x01), RegisterWrite::Done);
  std::array<std::uint32_t, 9> msg{};
  ASSERT_EQ(b.begin_spill(kSpill, msg), 3u);
  const auto w = walk(stream(b));
  std::size_t summaries = 0;
  for (const auto& s : w.particle_summaries) {
    for (auto word : s) EXPECT_EQ(ro::channel_summary(word).port, 0u);
    summaries += s.size();
  }
  EXPECT_GT(summaries, 0u);
  const auto a = walk(answers(b, requests(kSource, {{kSpill, 250, 1}}), 1));
  ASSERT_EQ(a.answer_blocks.size(), 1u);
  // Port 0 alone: its 3 ADC blocks of the full block, 36 channels of 17 words.
  const auto full = block_of(reference(), kSpill, 250);
  EXPECT_EQ(a.answer_blocks[0], std::vector<std::uint32_t>(full.begin(), full.begin() + 3 + 36 * 17));
}

TEST_F(EmulatedReadoutBoardTest, ThresholdAndIntegralFollowTheRegisters) {
  auto& b = board();
  ASSERT_EQ(b.write_register(ro::reg::kZsThreshold.address, 200), RegisterWrite::Done);
  ASSERT_EQ(b.write_register(ro::reg::kReadoutMode.address,
                             ro::readout_mode_register(ro::ReadoutMode::Summary, ro::SummaryValue::Integral)),
            RegisterWrite::Done);
  std::array<std::uint32_t, 9> msg{};
  ASSERT_EQ(b.begin_spill(kSpill, msg), 3u);
  const auto w = walk(stream(b, 64));
  const auto msadc = reference();
  ASSERT_GE(w.particles.size(), 64u);
  for (std::uint32_t p = 1; p <= 64; ++p) {
    const auto expected = expected_summaries(msadc, kSpill, p, 200);
    ASSERT_EQ(w.particles[p - 1].particle, p);
    ASSERT_EQ(w.particle_summaries[p - 1].size(), expected.size()) << p;
    std::vector<std::uint32_t> block(msadc.max_fragment_words());
    const std::size_t n = msadc.read_event(kSpill, p, block);
    std::size_t k = 0;
    (void)fw::decode_msadc(std::span<const std::uint32_t>(block.data(), n), p, 0, [&](const fw::MsadcChannel& ch) {
      if (k == expected.size() || ch.chip_channel() != expected[k].adc_id * 16 + expected[k].channel ||
          ch.port != expected[k].port) {
        return;
      }
      const int pedestal = (ch.sample(0) + ch.sample(1) + ch.sample(2) + ch.sample(3)) / 4;
      long area = 0;
      for (std::size_t i = 0; i < ch.n_samples; ++i) area += ch.sample(i) - pedestal;
      EXPECT_EQ(ro::channel_summary(w.particle_summaries[p - 1][k]).value,
                static_cast<std::uint32_t>(std::clamp(area, 0L, 0xFFFFL)));
      EXPECT_EQ(ro::channel_summary(w.particle_summaries[p - 1][k]).time, expected[k].time);
      ++k;
    });
    EXPECT_EQ(k, expected.size());
  }
}

}  // namespace
}  // namespace na64::drivers
