// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/readout_host.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "na64/drivers/emulated_readout_board.hpp"

namespace na64::drivers {
namespace {

namespace fw = na64::firmware;
namespace ro = na64::firmware::msadc_readout;

constexpr std::uint32_t kSource = 620;
constexpr std::uint32_t kSpill = 5;
constexpr std::uint32_t kParticles = 300;
constexpr std::uint64_t kTimeoutNs = 10'000;

fw::ChannelMap ecal_map() {
  std::vector<fw::ChannelMapEntry> e;
  for (std::uint16_t c = 0; c < 36; ++c) {
    e.push_back({kSource, 0, c, fw::cell_index(fw::Detector::Ecal0, c % 6, c / 6), 0.005f});
    e.push_back({kSource, 1, c, fw::cell_index(fw::Detector::Ecal1, c % 6, c / 6), 0.025f});
  }
  return fw::ChannelMap(std::move(e));
}

/// Accepts every tenth particle (10, 20, ..., particles counting from 1);
/// records what the host hands on.
struct EveryTenth : ReadoutSink {
  bool on_particle(const ro::ParticleSummary& p) override {
    particles.push_back(p.particle);
    summaries += p.summaries.size();
    return p.particle % 10 == 0;
  }
  void on_event(const ro::EventAnswer& a) override {
    events.push_back(a.ref);
    blocks.emplace_back(a.block.begin(), a.block.end());
  }
  void on_lost(const ro::EventRef& ref, RequestOutcome outcome) override { lost.emplace_back(ref, outcome); }

  std::vector<std::uint32_t> particles;
  std::size_t summaries = 0;
  std::vector<ro::EventRef> events;
  std::vector<std::vector<std::uint32_t>> blocks;
  std::vector<std::pair<ro::EventRef, RequestOutcome>> lost;
};

/// Accepts no particle; records the spill messages and the requests' ends,
/// and how many particles it had seen when each spill message came.
struct SpillRecorder : ReadoutSink {
  bool on_particle(const ro::ParticleSummary&) override {
    ++particles;
    return false;
  }
  void on_spill_begin(const ro::SpillBegin& m) override { begins.emplace_back(m, particles); }
  void on_spill_end(const ro::SpillEnd& m) override { ends.emplace_back(m, particles); }
  void on_event(const ro::EventAnswer& a) override {
    events.push_back(a.ref);
    blocks.emplace_back(a.block.begin(), a.block.end());
  }
  void on_lost(const ro::EventRef& ref, RequestOutcome outcome) override { lost.emplace_back(ref, outcome); }

  std::size_t particles = 0;
  std::vector<std::pair<ro::SpillBegin, std::size_t>> begins;
  std::vector<std::pair<ro::SpillEnd, std::size_t>> ends;
  std::vector<ro::EventRef> events;
  std::vector<std::vector<std::uint32_t>> blocks;
  std::vector<std::pair<ro::EventRef, RequestOutcome>> lost;
};

ReadoutHostParameters host_parameters() {
  ReadoutHostParameters p;
  p.source_id = kSource;
  p.requests_per_message = 8;
  p.timeout_ns = kTimeoutNs;
  return p;
}

class ReadoutHostTest : public ::testing::Test {
 protected:
  ReadoutHostTest() : map_(ecal_map()), beam_(beam_parameters()), board_(kSource, map_, beam_, {}, board_parameters()) {
    EXPECT_EQ(board_.write_register(ro::reg::kSourceId.address, kSource), RegisterWrite::Done);
  }
  static BeamParameters beam_parameters() {
    BeamParameters p;
    p.particles_per_spill = kParticles;
    return p;
  }
  static ReadoutBoardParameters board_parameters() {
    ReadoutBoardParameters p;
    p.latency_capacity = 100;
    return p;
  }

  /// The board's answers to one request message, as the link would carry them.
  std::vector<std::uint32_t> answers(std::span<const std::uint32_t> message) {
    std::vector<std::uint32_t> out(board_.answer_words_bound(64));
    const auto r = board_.handle_requests(message, out);
    EXPECT_TRUE(r.taken);
    out.resize(r.words);
    return out;
  }
  std::vector<std::uint32_t> take(ReadoutHost& host, std::uint64_t now_ns) {
    std::vector<std::uint32_t> out(ro::event_requests_words(64));
    out.resize(host.take_requests(out, now_ns));
    return out;
  }
  /// Begins the spill and streams it whole through the host.
  void run_spill(ReadoutHost& host, ReadoutSink& sink) {
    std::vector<std::uint32_t> out(2000);
    const auto begun = board_.begin_spill(kSpill, out);
    ASSERT_EQ(begun, 3u);
    EXPECT_EQ(host.consume(std::span<const std::uint32_t>(out.data(), 3), sink), 3u);
    while (board_.particles_left() > 0) {
      const auto r = board_.stream(out);
      ASSERT_GT(r.particles, 0u);
      EXPECT_EQ(host.consume(std::span<const std::uint32_t>(out.data(), r.words), sink), r.words);
    }
  }
  std::vector<std::uint32_t> block_of(std::uint32_t particle) const {
    std::vector<std::uint32_t> block(board_.msadc().max_fragment_words());
    block.resize(board_.msadc().read_event(kSpill, particle, block));
    return block;
  }

  fw::ChannelMap map_;
  NA64Beam beam_;
  EmulatedReadoutBoard board_;
};

TEST_F(ReadoutHostTest, MatchesEveryAnswerToItsRequestAndCountsExactly) {
  ReadoutHost host(host_parameters());
  EveryTenth sink;
  run_spill(host, sink);
  ASSERT_EQ(sink.particles.size(), kParticles);
  EXPECT_EQ(host.pending(), 30u);  // particles 10, 20, ..., 300

  // Requests sent after the whole spill: the board holds particles 201-300.
  // Message 1 (10-80): too late. Message 2 (90-160): lost on the link.
  // Message 3 (170-240): 4 too late, 4 events. Message 4 (250-300), after the
  // board's buffer was emptied: not found.
  const auto m1 = take(host, 0);
  ASSERT_EQ(m1.size(), ro::event_requests_words(8));
  const auto m2 = take(host, 1000);
  ASSERT_EQ(m2.size(), ro::event_requests_words(8));
  const auto m3 = take(host, 2000);
  ASSERT_EQ(m3.size(), ro::event_requests_words(8));
  EXPECT_EQ(host.in_flight(), 24u);
  EXPECT_EQ(host.pending(), 6u);
  const auto a1 = answers(m1);
  EXPECT_EQ(host.consume(a1, sink), a1.size());
  const auto a3 = answers(m3);
  EXPECT_EQ(host.consume(a3, sink), a3.size());

  std::vector<std::uint32_t> end(9);
  ASSERT_EQ(board_.end_spill(end), 9u);
  EXPECT_EQ(host.consume(end, sink), 9u);
  ASSERT_EQ(board_.write_register(ro::reg::kLatencyDepth.address, 100), RegisterWrite::Done);  // empties it
  const auto m4 = take(host, 3000);
  ASSERT_EQ(m4.size(), ro::event_requests_words(6));
  EXPECT_EQ(take(host, 3000).size(), 0u);
  const auto a4 = answers(m4);
  EXPECT_EQ(host.consume(a4, sink), a4.size());

  EXPECT_EQ(host.expire(kTimeoutNs + 999, sink), 0u);
  EXPECT_EQ(host.in_flight(), 8u);
  EXPECT_EQ(host.expire(kTimeoutNs + 1000, sink), 8u);
  EXPECT_EQ(host.in_flight(), 0u);

  const HostSpillCounts& c = host.spill(kSpill);
  EXPECT_TRUE(c.begun);
  EXPECT_TRUE(c.ended);
  EXPECT_EQ(c.particles, kParticles);
  EXPECT_EQ(c.summaries, sink.summaries);
  EXPECT_EQ(c.missing_particles, 0u);
  EXPECT_EQ(c.requested, 30u);
  EXPECT_EQ(c.completed, 4u);
  EXPECT_EQ(c.too_late, 12u);
  EXPECT_EQ(c.not_found, 6u);
  EXPECT_EQ(c.unanswered, 8u);
  EXPECT_EQ(c.bad_request, 0u);
  EXPECT_EQ(c.requested, c.completed + c.too_late + c.not_found + c.unanswered);
  EXPECT_EQ(c.in_flight(), 0u);
  EXPECT_EQ(c.decode_errors, 0u);
  // The board's own count of the spill agrees.
  ASSERT_TRUE(c.board.has_value());
  EXPECT_EQ(c.board->particles, kParticles);
  EXPECT_EQ(c.board->summaries_sent, sink.summaries);
  EXPECT_EQ(c.board->requests_served, 4u);
  EXPECT_EQ(c.board->requests_too_late, 12u);

  ASSERT_EQ(sink.events.size(), 4u);
  for (std::size_t k = 0; k < 4; ++k) {
    const std::uint32_t particle = 210 + 10 * static_cast<std::uint32_t>(k);
    EXPECT_EQ(sink.events[k].particle, particle);
    EXPECT_EQ(sink.events[k].spill, kSpill);
    EXPECT_EQ(sink.blocks[k], block_of(particle));
  }
  ASSERT_EQ(sink.lost.size(), 26u);
  EXPECT_EQ(sink.lost[0].first.particle, 10u);
  EXPECT_EQ(sink.lost[0].second, RequestOutcome::TooLate);
  EXPECT_EQ(sink.lost[11].first.particle, 200u);  // the last too late: the buffer starts at 201
  EXPECT_EQ(sink.lost[11].second, RequestOutcome::TooLate);
  EXPECT_EQ(sink.lost[12].first.particle, 250u);
  EXPECT_EQ(sink.lost[12].second, RequestOutcome::NotFound);
  EXPECT_EQ(sink.lost[18].first.particle, 90u);
  EXPECT_EQ(sink.lost[18].second, RequestOutcome::Unanswered);
  EXPECT_EQ(host.counts().unexpected_answers, 0u);
  EXPECT_EQ(host.counts().decode_errors, 0u);
  EXPECT_EQ(host.counts().framing_errors, 0u);

  // The lost message's answers arriving after the timeout match nothing.
  const auto a2 = answers(m2);
  EXPECT_EQ(host.consume(a2, sink), a2.size());
  EXPECT_EQ(host.counts().unexpected_answers, 8u);
  EXPECT_EQ(host.spill(kSpill).too_late, 12u);
}

TEST_F(ReadoutHostTest, MalformedRequestMessageEndsAllItsRequests) {
  ReadoutHost host(host_parameters());
  EveryTenth sink;
  run_spill(host, sink);
  auto m1 = take(host, 0);
  ASSERT_EQ(m1.size(), ro::event_requests_words(8));
  m1[4] |= 0x0100'0000u;  // the link flips a reserved bit of the second request
  const auto a1 = answers(m1);
  ASSERT_EQ(a1.size(), 5u);  // one bad-request answer
  EXPECT_EQ(host.consume(a1, sink), 5u);
  EXPECT_EQ(host.spill(kSpill).bad_request, 8u);
  EXPECT_EQ(host.in_flight(), 0u);
  ASSERT_EQ(sink.lost.size(), 8u);
  EXPECT_EQ(sink.lost[7].first.particle, 80u);  // message 1: particles 10-80
  EXPECT_EQ(sink.lost[7].second, RequestOutcome::BadRequest);
  // A duplicate of the same answer matches nothing.
  EXPECT_EQ(host.consume(a1, sink), 5u);
  EXPECT_EQ(host.counts().unexpected_answers, 1u);
}

TEST_F(ReadoutHostTest, CorruptMessageIsCountedAndTheWalkGoesOn) {
  ReadoutHost host(host_parameters());
  EveryTenth sink;
  std::vector<std::uint32_t> out(2000);
  ASSERT_EQ(board_.begin_spill(kSpill, out), 3u);
  std::vector<std::uint32_t> words(out.begin(), out.begin() + 3);
  const auto r = board_.stream(out);
  ASSERT_GT(r.particles, 64u);  // more than the first packet
  words.insert(words.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(r.words));
  std::vector<std::uint32_t> status(13);
  ASSERT_EQ(board_.status(status), 13u);
  words.insert(words.end(), status.begin(), status.end());
  std::size_t messages = 0;
  for (std::size_t pos = 0; pos < words.size(); ++messages) pos += words[pos + 1] & 0x3F'FFFFu;
  // Particle 1's header word 2 (summary packet at word 3, particle at word 3 + 3):
  // a reserved bit, inside a well-framed message.
  words[3 + 3 + 2] |= 0x0000'0400u;

  EXPECT_EQ(host.consume(words, sink), words.size());
  EXPECT_EQ(host.counts().decode_errors, 1u);
  EXPECT_EQ(host.counts().framing_errors, 0u);
  EXPECT_EQ(host.counts().messages, messages - 1);  // all but the corrupt packet
  EXPECT_EQ(host.counts().status_messages, 1u);
  ASSERT_TRUE(host.board_status().has_value());
  EXPECT_EQ(host.board_status()->particles, r.particles);
  EXPECT_EQ(host.spill(kSpill).decode_errors, 1u);
  // The first packet's 64 particles (1-64) are lost; the packets after it are read.
  EXPECT_EQ(host.spill(kSpill).particles, r.particles - 64);
  EXPECT_EQ(host.spill(kSpill).missing_particles, 64u);
  ASSERT_EQ(sink.particles.size(), r.particles - 64);
  EXPECT_EQ(sink.particles.front(), 65u);
  ASSERT_EQ(host.errors().size(), 1u);
  EXPECT_EQ(host.errors()[0].error.code, fw::DecodeErrc::ReadoutReservedBits);
  EXPECT_EQ(host.errors()[0].error.offset_bytes, 32u);
  EXPECT_EQ(host.errors()[0].message(),
            "buffer 0, spill 5: offset 32 (0x20): particle header word 2 bits 10-30: found 1024 (0x400), "
            "expected 0 (0x0) [readout-reserved-bits]");
}

TEST_F(ReadoutHostTest, FramingErrorEndsTheBufferOnly) {
  ReadoutHost host(host_parameters());
  EveryTenth sink;
  std::vector<std::uint32_t> out(2000);
  ASSERT_EQ(board_.begin_spill(kSpill, out), 3u);
  std::vector<std::uint32_t> words(out.begin(), out.begin() + 3);
  std::vector<std::uint32_t> status(13);
  ASSERT_EQ(board_.status(status), 13u);
  words.insert(words.end(), status.begin(), status.end());
  words.insert(words.end(), status.begin(), status.end());
  words[3] ^= 0x1u;  // the status message's key
  EXPECT_EQ(host.consume(words, sink), 3u);
  EXPECT_EQ(host.counts().framing_errors, 1u);
  EXPECT_EQ(host.counts().messages, 1u);
  ASSERT_EQ(host.errors().size(), 1u);
  EXPECT_EQ(host.errors()[0].error.code, fw::DecodeErrc::ReadoutBadKey);
  EXPECT_EQ(host.errors()[0].error.offset_bytes, 12u);
  // A message cut at the end of a buffer is a framing error too.
  EXPECT_EQ(host.consume(std::span<const std::uint32_t>(status).first(12), sink), 0u);
  EXPECT_EQ(host.counts().framing_errors, 2u);
  EXPECT_EQ(host.errors()[1].error.code, fw::DecodeErrc::Truncated);
  // The next buffer is walked.
  EXPECT_EQ(host.consume(status, sink), 13u);
  EXPECT_EQ(host.counts().status_messages, 1u);
  EXPECT_EQ(host.errors()[1].buffer, 1u);
}

TEST_F(ReadoutHostTest, MessagesOfAnotherSourceAreCountedNotUsed) {
  ReadoutHostParameters p = host_parameters();
  p.source_id = kSource + 1;
  ReadoutHost host(p);
  EveryTenth sink;
  run_spill(host, sink);
  EXPECT_TRUE(sink.particles.empty());
  EXPECT_EQ(host.pending(), 0u);
  EXPECT_GE(host.counts().wrong_source, kParticles + 1);
}

TEST_F(ReadoutHostTest, FullRequestTableCountsNotRequested) {
  ReadoutHostParameters p = host_parameters();
  p.max_in_flight = 20;
  ReadoutHost host(p);
  EveryTenth sink;
  run_spill(host, sink);
  EXPECT_EQ(host.pending(), 20u);
  EXPECT_EQ(host.spill(kSpill).requested, 20u);
  EXPECT_EQ(host.spill(kSpill).not_requested, 10u);
}

TEST_F(ReadoutHostTest, RequestDecidedLaterIsSentAndAnswered) {
  ReadoutHost host(host_parameters());
  SpillRecorder sink;
  run_spill(host, sink);
  ASSERT_EQ(sink.particles, kParticles);
  EXPECT_EQ(host.pending(), 0u);  // the sink accepted nothing
  EXPECT_EQ(host.spill(kSpill).requested, 0u);

  // A trigger that sees every board decides after the summaries: particle 250.
  ASSERT_TRUE(host.request(kSpill, 250));
  EXPECT_EQ(host.pending(), 1u);
  EXPECT_EQ(host.spill(kSpill).requested, 1u);
  const auto m = take(host, 0);
  ASSERT_EQ(m.size(), ro::event_requests_words(1));
  EXPECT_EQ(host.pending(), 0u);
  EXPECT_EQ(host.in_flight(), 1u);
  const auto a = answers(m);
  EXPECT_EQ(host.consume(a, sink), a.size());
  ASSERT_EQ(sink.events.size(), 1u);
  EXPECT_EQ(sink.events[0].spill, kSpill);
  EXPECT_EQ(sink.events[0].particle, 250u);
  EXPECT_EQ(sink.blocks[0], block_of(250));
  EXPECT_TRUE(sink.lost.empty());
  EXPECT_EQ(host.in_flight(), 0u);
  const HostSpillCounts& c = host.spill(kSpill);
  EXPECT_EQ(c.requested, 1u);
  EXPECT_EQ(c.completed, 1u);
  EXPECT_EQ(c.not_requested, 0u);
  EXPECT_EQ(c.in_flight(), 0u);
  EXPECT_EQ(host.counts().unexpected_answers, 0u);
}

TEST_F(ReadoutHostTest, RequestIntoAFullTableIsRefusedAndCounted) {
  ReadoutHostParameters p = host_parameters();
  p.max_in_flight = 2;
  ReadoutHost host(p);
  ASSERT_TRUE(host.request(kSpill, 250));
  ASSERT_TRUE(host.request(kSpill, 251));
  EXPECT_FALSE(host.request(kSpill + 1, 7));  // counted in the spill it names
  EXPECT_FALSE(host.request(kSpill, 252));
  EXPECT_EQ(host.pending(), 2u);
  EXPECT_EQ(host.spill(kSpill).requested, 2u);
  EXPECT_EQ(host.spill(kSpill).not_requested, 1u);
  EXPECT_EQ(host.spill(kSpill + 1).requested, 0u);
  EXPECT_EQ(host.spill(kSpill + 1).not_requested, 1u);
  // Sent, the requests still hold their slots until answered.
  const auto m = take(host, 0);
  ASSERT_EQ(m.size(), ro::event_requests_words(2));
  EXPECT_FALSE(host.request(kSpill, 253));
  EXPECT_EQ(host.spill(kSpill).not_requested, 2u);
  // Answered (the board saw no spill: not found), they free their slots.
  SpillRecorder sink;
  const auto a = answers(m);
  EXPECT_EQ(host.consume(a, sink), a.size());
  ASSERT_EQ(sink.lost.size(), 2u);
  EXPECT_EQ(sink.lost[0].second, RequestOutcome::NotFound);
  EXPECT_EQ(host.in_flight(), 0u);
  EXPECT_TRUE(host.request(kSpill, 253));
  EXPECT_EQ(host.spill(kSpill).requested, 3u);
  EXPECT_EQ(host.spill(kSpill).not_requested, 2u);
}

TEST_F(ReadoutHostTest, SinkHearsTheSpillBeginAndEndOnce) {
  ReadoutHost host(host_parameters());
  SpillRecorder sink;
  run_spill(host, sink);
  std::vector<std::uint32_t> end(9);
  ASSERT_EQ(board_.end_spill(end), 9u);
  EXPECT_EQ(host.consume(end, sink), 9u);

  ASSERT_EQ(sink.begins.size(), 1u);
  EXPECT_EQ(sink.begins[0].first.spill, kSpill);
  EXPECT_EQ(sink.begins[0].first.source_id, kSource);
  EXPECT_EQ(sink.begins[0].second, 0u);  // before the spill's particles
  ASSERT_EQ(sink.ends.size(), 1u);
  EXPECT_EQ(sink.ends[0].first.spill, kSpill);
  EXPECT_EQ(sink.ends[0].first.source_id, kSource);
  EXPECT_EQ(sink.ends[0].first.counters, board_.spill_counters());
  EXPECT_EQ(sink.ends[0].first.counters.particles, kParticles);
  EXPECT_EQ(sink.ends[0].second, kParticles);  // after them
  EXPECT_TRUE(host.spill(kSpill).begun);
  EXPECT_TRUE(host.spill(kSpill).ended);
}

TEST(ReadoutHost, RejectsBadParameters) {
  ReadoutHostParameters p;
  p.source_id = 896;
  EXPECT_THROW(ReadoutHost{p}, std::invalid_argument);
  p.source_id = 1;
  p.requests_per_message = 0;
  EXPECT_THROW(ReadoutHost{p}, std::invalid_argument);
  p.requests_per_message = 1;
  p.max_in_flight = 0;
  EXPECT_THROW(ReadoutHost{p}, std::invalid_argument);
}

}  // namespace
}  // namespace na64::drivers
