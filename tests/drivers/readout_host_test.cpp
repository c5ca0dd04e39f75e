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

/// Accepts every tenth particle; records what the host hands on.
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
  EXPECT_EQ(host.pending(), 30u);  // particles 0, 10, ..., 290

  // Requests sent after the whole spill: the board holds particles 200-299.
  // Message 1 (0-70): too late. Message 2 (80-150): lost on the link.
  // Message 3 (160-230): 4 too late, 4 events. Message 4 (240-290), after the
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
    const std::uint32_t particle = 200 + 10 * static_cast<std::uint32_t>(k);
    EXPECT_EQ(sink.events[k].particle, particle);
    EXPECT_EQ(sink.events[k].spill, kSpill);
    EXPECT_EQ(sink.blocks[k], block_of(particle));
  }
  ASSERT_EQ(sink.lost.size(), 26u);
  EXPECT_EQ(sink.lost[0].first.particle, 0u);
  EXPECT_EQ(sink.lost[0].second, RequestOutcome::TooLate);
  EXPECT_EQ(sink.lost[12].first.particle, 240u);
  EXPECT_EQ(sink.lost[12].second, RequestOutcome::NotFound);
  EXPECT_EQ(sink.lost[18].first.particle, 80u);
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
  EXPECT_EQ(sink.lost[7].first.particle, 70u);
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
  // Particle 0's header word 2 (summary packet at word 3, particle at word 3 + 3):
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
  // The first packet's 64 particles are lost; the packets after it are read.
  EXPECT_EQ(host.spill(kSpill).particles, r.particles - 64);
  EXPECT_EQ(host.spill(kSpill).missing_particles, 64u);
  ASSERT_EQ(sink.particles.size(), r.particles - 64);
  EXPECT_EQ(sink.particles.front(), 64u);
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
