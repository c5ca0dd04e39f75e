// SPDX-License-Identifier: Apache-2.0
// The tracker front-end link end to end on loopback TCP: TrackerLink against
// EmulatedTrackerFrontEnd (and, for a well-framed corrupt message, a peer
// writing raw words).
#include "na64/drivers/tracker_link.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "na64/drivers/emulated_trackers.hpp"
#include "na64/drivers/tracker_frontend.hpp"
#include "na64/firmware/frontend_link.hpp"

// Every allocation of the process is counted, so that a test can check that
// the link and the front-end allocate nothing per request once running.
namespace {
std::atomic<std::uint64_t> g_allocations{0};
}  // namespace

// Not inlined, so that GCC does not see malloc and free meet in its callers (-Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace na64::drivers {
namespace {

namespace fl = na64::firmware::frontend_link;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = 3s;  // deadline of every wait; a passing test waits far less

struct SeenEvent {
  ParticleRef ref;
  fl::BlockKind kind = fl::BlockKind::Apv;
  std::vector<std::uint32_t> block;
};
struct SeenLost {
  ParticleRef ref;
  LinkOutcome outcome = LinkOutcome::Unanswered;
  std::optional<ParticleRef> oldest_held;
  Clock::time_point when;
};
struct SeenSpill {
  SpillEdge edge = SpillEdge::Begin;
  std::uint32_t spill = 0;
  std::uint32_t events_held = 0;
  bool operator==(const SeenSpill&) const = default;
};
struct SeenState {
  LinkState state = LinkState::Idle;
  std::string why;
};

/// Everything the link hands on, in order.
struct Record {
  std::vector<SeenEvent> events;
  std::vector<SeenLost> lost;
  std::vector<SeenSpill> spills;
  std::vector<SeenState> states;

  [[nodiscard]] std::size_t ended() const { return events.size() + lost.size(); }
  [[nodiscard]] std::size_t lost_as(LinkOutcome o) const {
    return static_cast<std::size_t>(
        std::count_if(lost.begin(), lost.end(), [o](const SeenLost& l) { return l.outcome == o; }));
  }
  [[nodiscard]] std::size_t states_as(LinkState s) const {
    return static_cast<std::size_t>(
        std::count_if(states.begin(), states.end(), [s](const SeenState& x) { return x.state == s; }));
  }
};

class RecordingSink : public TrackerLinkSink {
 public:
  void on_event(const ParticleRef& ref, fl::BlockKind kind, std::span<const std::uint32_t> block) override {
    std::lock_guard lock(mutex_);
    record_.events.push_back({ref, kind, {block.begin(), block.end()}});
    changed_.notify_all();
  }
  void on_lost(const ParticleRef& ref, LinkOutcome outcome, std::optional<ParticleRef> oldest_held) override {
    std::lock_guard lock(mutex_);
    record_.lost.push_back({ref, outcome, oldest_held, Clock::now()});
    changed_.notify_all();
  }
  void on_spill(SpillEdge edge, std::uint32_t spill, std::uint32_t events_held) override {
    std::lock_guard lock(mutex_);
    record_.spills.push_back({edge, spill, events_held});
    changed_.notify_all();
  }
  void on_state(LinkState state, std::string_view why) override {
    std::lock_guard lock(mutex_);
    record_.states.push_back({state, std::string(why)});
    changed_.notify_all();
  }

  /// Waits until `done(record)` holds, at most kWait; false on timeout.
  template <class Done>
  bool wait(Done done) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kWait, [&] { return done(record_); });
  }

  [[nodiscard]] Record record() const {
    std::lock_guard lock(mutex_);
    return record_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  Record record_;
};

/// Waits until `done()` holds, polling, at most kWait; for state kept by a
/// class with no notification of its own (the front-end's counters).
template <class Done>
bool eventually(Done done) {
  const auto deadline = Clock::now() + kWait;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::vector<ParticleRef> particles(std::uint32_t spill, std::uint32_t first, std::uint32_t count,
                                   std::uint32_t step = 1) {
  std::vector<ParticleRef> refs;
  for (std::uint32_t k = 0; k < count; ++k) refs.push_back({spill, first + k * step});
  return refs;
}

class TrackerLinkTest : public ::testing::Test {
 protected:
  TrackerLinkTest() : beam_(BeamParameters{}), trackers_(beam_, TrackerParameters{}) {}

  std::vector<std::uint32_t> expected_block(TrackerKind kind, const ParticleRef& r) const {
    std::vector<std::uint32_t> out(kind == TrackerKind::Straw ? trackers_.max_straw_words()
                                                              : trackers_.max_apv_words(ApvSource::Gem) +
                                                                    trackers_.max_apv_words(ApvSource::Micromegas));
    std::size_t n = 0;
    switch (kind) {
      case TrackerKind::Micromegas: n = trackers_.write_apv(r.spill, r.particle, ApvSource::Micromegas, out); break;
      case TrackerKind::Gem: n = trackers_.write_apv(r.spill, r.particle, ApvSource::Gem, out); break;
      case TrackerKind::Straw: n = trackers_.write_straw(r.spill, r.particle, out); break;
    }
    EXPECT_GT(n, 0u);
    out.resize(n);
    return out;
  }

  std::unique_ptr<EmulatedTrackerFrontEnd> front_end(TrackerKind kind = TrackerKind::Micromegas,
                                                     FrontEndFaults faults = {}) {
    TrackerFrontEndParameters p;
    p.source_id = kSource;
    p.kind = kind;
    p.faults = faults;
    return std::make_unique<EmulatedTrackerFrontEnd>(trackers_, p);
  }

  static TrackerLinkParameters link_parameters() {
    TrackerLinkParameters p;
    p.source_id = kSource;
    return p;
  }

  /// Connects and runs the gate of `spill` with `count` particles, waiting
  /// for the front-end's spill begin and end.
  static void connect_and_gate(TrackerLink& link, RecordingSink& sink, const EmulatedTrackerFrontEnd& fe,
                               std::uint32_t spill, std::uint32_t count) {
    if (link.state() != LinkState::Connected) {
      ASSERT_EQ(link.connect("127.0.0.1", fe.port(), 1s), std::error_code());
    }
    gate(link, sink, spill, count);
  }

  static void gate(TrackerLink& link, RecordingSink& sink, std::uint32_t spill, std::uint32_t count) {
    const std::size_t before = sink.record().spills.size();
    ASSERT_TRUE(link.gate(spill, true, 0));
    ASSERT_TRUE(link.gate(spill, false, count));
    ASSERT_TRUE(sink.wait([&](const Record& r) { return r.spills.size() == before + 2; }));
    const auto spills = sink.record().spills;
    EXPECT_EQ(spills[before], (SeenSpill{SpillEdge::Begin, spill, 0}));
    EXPECT_EQ(spills[before + 1], (SeenSpill{SpillEdge::End, spill, count}));
  }

  static constexpr std::uint32_t kSource = 700;
  NA64Beam beam_;
  EmulatedTrackers trackers_;
};

class TrackerLinkBlocks : public TrackerLinkTest, public ::testing::WithParamInterface<TrackerKind> {};

TEST_P(TrackerLinkBlocks, FiftyRequestsOfAGatedSpillGetFiftyBlocksByteIdenticalToTheEmulator) {
  const TrackerKind kind = GetParam();
  const auto fe = front_end(kind);
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  connect_and_gate(link, sink, *fe, 3, 200);

  const auto refs = particles(3, 1, 50, 4);  // 1, 5, ..., 197
  ASSERT_EQ(link.request(refs), 50u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 50; }));

  const Record r = sink.record();
  EXPECT_TRUE(r.lost.empty());
  ASSERT_EQ(r.events.size(), 50u);
  const auto want_kind = kind == TrackerKind::Straw ? fl::BlockKind::StrawTdc : fl::BlockKind::Apv;
  for (std::size_t k = 0; k < refs.size(); ++k) {
    EXPECT_EQ(r.events[k].ref, refs[k]) << "answers come in the order of the requests";
    EXPECT_EQ(r.events[k].kind, want_kind);
    EXPECT_EQ(r.events[k].block, expected_block(kind, refs[k])) << "particle " << refs[k].particle;
  }
  const auto c = link.counters();
  EXPECT_EQ(c.taken, 50u);
  EXPECT_EQ(c.requests_sent, 50u);
  EXPECT_EQ(c.request_messages, 1u);
  EXPECT_EQ(c.completed, 50u);
  EXPECT_EQ(c.in_flight(), 0u);
  EXPECT_EQ(c.decode_errors, 0u);
  EXPECT_EQ(c.unexpected, 0u);
  EXPECT_EQ(c.gates_sent, 2u);
  EXPECT_EQ(c.messages, 2u + 50u);
  const auto f = fe->counters();
  EXPECT_EQ(f.requests, 50u);
  EXPECT_EQ(f.served, 50u);
  EXPECT_EQ(f.spills, 1u);
  EXPECT_EQ(f.in_progress(), 0u);
}

INSTANTIATE_TEST_SUITE_P(AllSources, TrackerLinkBlocks,
                         ::testing::Values(TrackerKind::Micromegas, TrackerKind::Gem, TrackerKind::Straw),
                         [](const ::testing::TestParamInfo<TrackerKind>& kind) {
                           return std::string(kind.param == TrackerKind::Micromegas ? "Micromegas"
                                              : kind.param == TrackerKind::Gem      ? "Gem"
                                                                                    : "Straw");
                         });

TEST_F(TrackerLinkTest, InProcessGateIsAnnouncedAndBoundsTheSpill) {
  const auto fe = front_end(TrackerKind::Straw);
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  ASSERT_EQ(link.connect("127.0.0.1", fe->port(), 1s), std::error_code());
  // The connection is up once the front-end has accepted it: spill messages go to the client it has.
  ASSERT_TRUE(eventually([&] { return fe->connected(); }));
  ASSERT_TRUE(fe->begin_spill(5, 10));
  EXPECT_FALSE(fe->begin_spill(6, 10)) << "a gate is open";
  ASSERT_TRUE(fe->end_spill());
  EXPECT_FALSE(fe->end_spill());
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.spills.size() == 2; }));
  EXPECT_EQ(sink.record().spills,
            (std::vector<SeenSpill>{{SpillEdge::Begin, 5, 0}, {SpillEdge::End, 5, 10}}));

  const std::vector<ParticleRef> refs{{5, 10}, {5, 11}};  // the last particle of the 10, one beyond
  ASSERT_EQ(link.request(refs), 2u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 2; }));
  const Record r = sink.record();
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].ref, (ParticleRef{5, 10}));
  EXPECT_EQ(r.events[0].block, expected_block(TrackerKind::Straw, {5, 10}));
  ASSERT_EQ(r.lost.size(), 1u);
  EXPECT_EQ(r.lost[0].ref, (ParticleRef{5, 11}));
  EXPECT_EQ(r.lost[0].outcome, LinkOutcome::NotFound);
}

TEST_F(TrackerLinkTest, ASpillOlderThanTheHeldOnesIsTooLateNamingTheOldestHeld) {
  const auto fe = front_end();  // hold_spills 2
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  connect_and_gate(link, sink, *fe, 1, 100);
  gate(link, sink, 2, 100);
  gate(link, sink, 3, 100);

  const std::vector<ParticleRef> refs{{1, 5}, {2, 5}, {3, 100}, {1, 1}};
  ASSERT_EQ(link.request(refs), 4u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 4; }));
  const Record r = sink.record();
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[0].ref, (ParticleRef{2, 5}));
  EXPECT_EQ(r.events[1].ref, (ParticleRef{3, 100}));
  ASSERT_EQ(r.lost.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(r.lost[k].outcome, LinkOutcome::TooLate);
    EXPECT_EQ(r.lost[k].oldest_held, (ParticleRef{2, 1})) << "particle 1 of spill 2, the oldest held";
  }
  EXPECT_EQ(r.lost[0].ref, (ParticleRef{1, 5}));
  EXPECT_EQ(r.lost[1].ref, (ParticleRef{1, 1}));
  const auto c = link.counters();
  EXPECT_EQ(c.too_late, 2u);
  EXPECT_EQ(c.completed, 2u);
  EXPECT_EQ(fe->counters().too_late, 2u);
}

TEST_F(TrackerLinkTest, AParticleBeyondTheSpillOrASpillNeverGatedIsNotFound) {
  const auto fe = front_end(TrackerKind::Gem);
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  connect_and_gate(link, sink, *fe, 7, 200);

  const std::vector<ParticleRef> refs{{7, 200}, {7, 201}, {7, 0xFFFFFF}, {8, 1}};
  ASSERT_EQ(link.request(refs), 4u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 4; }));
  const Record r = sink.record();
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].ref, (ParticleRef{7, 200}));
  ASSERT_EQ(r.lost.size(), 3u);
  EXPECT_EQ(r.lost[0].ref, (ParticleRef{7, 201}));
  EXPECT_EQ(r.lost[1].ref, (ParticleRef{7, 0xFFFFFF}));
  EXPECT_EQ(r.lost[2].ref, (ParticleRef{8, 1}));
  for (const auto& l : r.lost) {
    EXPECT_EQ(l.outcome, LinkOutcome::NotFound);
    EXPECT_FALSE(l.oldest_held.has_value());
  }
  EXPECT_EQ(link.counters().not_found, 3u);
  EXPECT_EQ(fe->counters().not_found, 3u);
}

TEST_F(TrackerLinkTest, ParticleZeroIsNotFoundParticlesCountFromOne) {
  const auto fe = front_end(TrackerKind::Micromegas);
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  connect_and_gate(link, sink, *fe, 6, 10);

  const std::vector<ParticleRef> refs{{6, 0}, {6, 1}};
  ASSERT_EQ(link.request(refs), 2u) << "the link takes particle 0: the front-end answers it";
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 2; }));
  const Record r = sink.record();
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].ref, (ParticleRef{6, 1}));
  ASSERT_EQ(r.lost.size(), 1u);
  EXPECT_EQ(r.lost[0].ref, (ParticleRef{6, 0}));
  EXPECT_EQ(r.lost[0].outcome, LinkOutcome::NotFound);
  EXPECT_FALSE(r.lost[0].oldest_held.has_value());
  EXPECT_EQ(link.counters().not_found, 1u);
  EXPECT_EQ(fe->counters().not_found, 1u);
  EXPECT_EQ(fe->counters().served, 1u);
}

TEST_F(TrackerLinkTest, ASilentFrontEndLeavesExactlyTheUnsentRequestsUnansweredAfterTheTimeout) {
  FrontEndFaults faults;
  faults.silent_after = 30;
  const auto fe = front_end(TrackerKind::Micromegas, faults);
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);  // request timeout 200 ms
  connect_and_gate(link, sink, *fe, 4, 200);

  const auto refs = particles(4, 1, 50);
  const auto taken_at = Clock::now();
  ASSERT_EQ(link.request(refs), 50u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 50; })) << "none waits forever";

  const Record r = sink.record();
  ASSERT_EQ(r.events.size(), 30u);
  for (std::size_t k = 0; k < 30; ++k) EXPECT_EQ(r.events[k].ref, refs[k]);
  ASSERT_EQ(r.lost.size(), 20u);
  for (std::size_t k = 0; k < 20; ++k) {
    EXPECT_EQ(r.lost[k].ref, refs[30 + k]);
    EXPECT_EQ(r.lost[k].outcome, LinkOutcome::Unanswered);
    EXPECT_GE(r.lost[k].when - taken_at, 200ms);
  }
  const auto c = link.counters();
  EXPECT_EQ(c.completed, 30u);
  EXPECT_EQ(c.unanswered, 20u);
  EXPECT_EQ(c.in_flight(), 0u);
  EXPECT_EQ(link.state(), LinkState::Connected) << "a silent front-end is not a lost connection";
  const auto f = fe->counters();
  EXPECT_EQ(f.served, 30u);
  EXPECT_EQ(f.dropped, 20u);
}

TEST_F(TrackerLinkTest, AnAnswerAfterTheTimeoutIsCountedAndEndsNothingTwice) {
  FrontEndFaults faults;
  faults.answer_delay = 300ms;
  const auto fe = front_end(TrackerKind::Straw, faults);
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  connect_and_gate(link, sink, *fe, 4, 200);

  ASSERT_EQ(link.request(particles(4, 10, 5)), 5u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 5; }));
  EXPECT_EQ(sink.record().lost_as(LinkOutcome::Unanswered), 5u);
  ASSERT_TRUE(eventually([&] { return link.counters().unexpected == 5; }));
  const auto c = link.counters();
  EXPECT_EQ(c.completed, 0u);
  EXPECT_EQ(c.unanswered, 5u);
  EXPECT_EQ(sink.record().ended(), 5u);
}

TEST_F(TrackerLinkTest, TheFrontEndClosingEndsTheRequestsInFlightDisconnectedAndTheNextGateReconnects) {
  FrontEndFaults faults;
  faults.close_after = 20;
  const auto fe = front_end(TrackerKind::Micromegas, faults);
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  connect_and_gate(link, sink, *fe, 9, 200);

  const auto refs = particles(9, 100, 50);
  ASSERT_EQ(link.request(refs), 50u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 50; }));
  Record r = sink.record();
  ASSERT_EQ(r.events.size(), 20u);
  ASSERT_EQ(r.lost.size(), 30u);
  for (std::size_t k = 0; k < 30; ++k) {
    EXPECT_EQ(r.lost[k].ref, refs[20 + k]);
    EXPECT_EQ(r.lost[k].outcome, LinkOutcome::Disconnected);
  }
  EXPECT_EQ(link.state(), LinkState::Lost);
  ASSERT_EQ(r.states.back().state, LinkState::Lost);
  EXPECT_EQ(r.states.back().why, fmt::format("127.0.0.1:{} closed the connection", fe->port()));
  EXPECT_EQ(link.request(refs), 0u) << "nothing is taken while lost";
  EXPECT_EQ(link.counters().refused_lost, 50u);
  EXPECT_FALSE(link.gate(9, false, 200)) << "a close cannot wait for a connection";

  gate(link, sink, 10, 200);  // the opening gate reconnects
  ASSERT_EQ(link.request(particles(10, 1, 10)), 10u);
  ASSERT_TRUE(sink.wait([](const Record& x) { return x.ended() == 60; }));
  r = sink.record();
  EXPECT_EQ(r.events.size(), 30u);
  EXPECT_EQ(r.events.back().ref, (ParticleRef{10, 10}));
  EXPECT_EQ(r.states_as(LinkState::Connected), 2u);
  const auto c = link.counters();
  EXPECT_EQ(c.connections, 2u);
  EXPECT_EQ(c.reconnects, 1u);
  EXPECT_EQ(c.disconnected, 30u);
  EXPECT_EQ(c.completed, 30u);
  EXPECT_EQ(c.gates_dropped, 1u);
  EXPECT_EQ(c.in_flight(), 0u);
  EXPECT_EQ(fe->counters().dropped, 30u);
}

TEST_F(TrackerLinkTest, ReconnectAfterTheLinkWasLost) {
  FrontEndFaults faults;
  faults.close_after = 0;
  const auto fe = front_end(TrackerKind::Gem, faults);
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  connect_and_gate(link, sink, *fe, 1, 10);
  ASSERT_EQ(link.request(particles(1, 1, 3)), 3u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.lost_as(LinkOutcome::Disconnected) == 3; }));
  EXPECT_EQ(link.state(), LinkState::Lost);

  link.reconnect();
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.states_as(LinkState::Connected) == 2; }));
  ASSERT_EQ(link.request(particles(1, 1, 3)), 3u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.events.size() == 3; }));
  EXPECT_EQ(link.counters().reconnects, 1u);
}

TEST_F(TrackerLinkTest, AGarbledStreamIsCountedWhereItWasAndTheConnectionIsMadeAgain) {
  FrontEndFaults faults;
  faults.garbage_after = 5;
  const auto fe = front_end(TrackerKind::Micromegas, faults);
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  connect_and_gate(link, sink, *fe, 2, 200);

  const auto refs = particles(2, 1, 10);
  ASSERT_EQ(link.request(refs), 10u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 10 && r.states_as(LinkState::Connected) == 2; }));
  const Record r = sink.record();
  ASSERT_EQ(r.events.size(), 5u);
  ASSERT_EQ(r.lost.size(), 5u);
  for (std::size_t k = 0; k < 5; ++k) {
    EXPECT_EQ(r.lost[k].ref, refs[5 + k]);
    EXPECT_EQ(r.lost[k].outcome, LinkOutcome::Disconnected);
  }

  const auto c = link.counters();
  EXPECT_EQ(c.decode_errors, 1u);
  EXPECT_EQ(c.framing_errors, 1u);
  EXPECT_EQ(c.reconnects, 1u);
  EXPECT_EQ(c.connections, 2u);
  // The garbage came after spill begin (3 words), spill end (4) and five answers.
  std::size_t offset = (3 + 4) * 4;
  for (std::size_t k = 0; k < 5; ++k) {
    offset += (fl::kEventDataHeadWords + expected_block(TrackerKind::Micromegas, refs[k]).size()) * 4;
  }
  const auto errors = link.errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].connection, 1u);
  EXPECT_EQ(errors[0].error.code, firmware::DecodeErrc::LinkBadKey);
  EXPECT_EQ(errors[0].error.offset_bytes, offset);
  EXPECT_EQ(errors[0].error.found, 0xBEEFu);
  EXPECT_EQ(errors[0].message(kSource),
            fmt::format("source 700, connection 1: offset {} (0x{:x}): message key: found 48879 (0xbeef), expected "
                        "19526 (0x4c46) [link-bad-key]",
                        offset, offset));
  EXPECT_EQ(r.states[1].state, LinkState::Lost);
  EXPECT_EQ(r.states[1].why.rfind("framing lost reading 127.0.0.1:", 0), 0u) << r.states[1].why;

  ASSERT_EQ(link.request(particles(2, 100, 10)), 10u);
  ASSERT_TRUE(sink.wait([](const Record& x) { return x.ended() == 20; }));
  EXPECT_EQ(sink.record().events.size(), 15u);
  EXPECT_EQ(link.counters().completed, 15u);
}

TEST_F(TrackerLinkTest, AFullTableTakesFewerRequestsAndCountsTheRest) {
  const auto fe = front_end(TrackerKind::Straw);
  RecordingSink sink;
  auto p = link_parameters();
  p.max_in_flight = 8;
  TrackerLink link(p, sink);
  connect_and_gate(link, sink, *fe, 1, 200);

  const auto refs = particles(1, 1, 20);
  EXPECT_EQ(link.request(refs), 8u);
  auto c = link.counters();
  EXPECT_EQ(c.taken, 8u);
  EXPECT_EQ(c.refused_full, 12u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 8; }));
  EXPECT_EQ(link.request(std::span<const ParticleRef>(refs).subspan(8)), 8u) << "the table has room again";
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 16; }));
  const Record r = sink.record();
  ASSERT_EQ(r.events.size(), 16u);
  for (std::size_t k = 0; k < 16; ++k) EXPECT_EQ(r.events[k].ref, refs[k]);
  c = link.counters();
  EXPECT_EQ(c.refused_full, 12u + 4u);
  EXPECT_EQ(c.completed, 16u);
}

TEST_F(TrackerLinkTest, RequestsOutOfRangeOrBeforeConnectingAreRefusedAndCounted) {
  const auto fe = front_end();
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  const std::vector<ParticleRef> refs{{1, 1}, {2048, 1}, {1, 2}};
  EXPECT_EQ(link.request(refs), 0u);
  EXPECT_EQ(link.counters().refused_lost, 3u);
  EXPECT_FALSE(link.gate(1, true, 0)) << "never connected";
  EXPECT_FALSE(link.gate(2048, true, 0));
  EXPECT_FALSE(link.gate(1, true, 5)) << "an opening gate carries no count";

  ASSERT_EQ(link.connect("127.0.0.1", fe->port(), 1s), std::error_code());
  EXPECT_TRUE(link.connect("127.0.0.1", fe->port(), 1s) == std::errc::already_connected);
  EXPECT_EQ(link.request(refs), 1u);
  EXPECT_EQ(link.counters().refused_invalid, 2u);
  EXPECT_EQ(link.request(std::vector<ParticleRef>{{1, 0x1000000}}), 0u);
  EXPECT_EQ(link.counters().refused_invalid, 3u);
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.ended() == 1; }));
  EXPECT_EQ(sink.record().lost.at(0).outcome, LinkOutcome::NotFound) << "spill 1 was never gated";
}

TEST_F(TrackerLinkTest, ConnectingToNothingFailsAndSaysWhy) {
  std::uint16_t port = 0;
  {
    const auto fe = front_end();
    port = fe->port();
  }
  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  const std::error_code ec = link.connect("127.0.0.1", port, 1s);
  EXPECT_TRUE(ec == std::errc::connection_refused) << ec.message();
  EXPECT_EQ(link.state(), LinkState::Lost);
  const Record r = sink.record();
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].state, LinkState::Lost);
  EXPECT_EQ(r.states[0].why.rfind(fmt::format("connecting to 127.0.0.1:{}: ", port), 0), 0u) << r.states[0].why;
}

TEST_F(TrackerLinkTest, ASecondConnectionReplacesTheFirst) {
  const auto fe = front_end();
  RecordingSink first_sink;
  RecordingSink second_sink;
  TrackerLink first(link_parameters(), first_sink);
  TrackerLink second(link_parameters(), second_sink);
  connect_and_gate(first, first_sink, *fe, 1, 10);
  ASSERT_EQ(second.connect("127.0.0.1", fe->port(), 1s), std::error_code());
  ASSERT_TRUE(first_sink.wait([](const Record& r) { return r.states_as(LinkState::Lost) == 1; }));
  EXPECT_EQ(first.state(), LinkState::Lost);
  ASSERT_TRUE(eventually([&] { return fe->counters().replaced == 1; }));

  ASSERT_EQ(second.request(particles(1, 1, 2)), 2u);
  ASSERT_TRUE(second_sink.wait([](const Record& r) { return r.events.size() == 2; }));
  EXPECT_EQ(fe->counters().connections, 2u);
}

/// Counts what the link hands on, allocating nothing.
class CountingSink : public TrackerLinkSink {
 public:
  void on_event(const ParticleRef&, fl::BlockKind, std::span<const std::uint32_t> block) override {
    std::lock_guard lock(mutex_);
    ++ended_;
    words_ += block.size();
    changed_.notify_all();
  }
  void on_lost(const ParticleRef& ref, LinkOutcome outcome, std::optional<ParticleRef>) override {
    std::lock_guard lock(mutex_);
    if (lost_ == 0) first_lost_ = {ref, outcome, std::nullopt, {}};
    ++ended_;
    ++lost_;
    changed_.notify_all();
  }
  bool wait_ended(std::size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kWait, [&] { return ended_ >= n; });
  }
  [[nodiscard]] std::size_t lost() const {
    std::lock_guard lock(mutex_);
    return lost_;
  }
  [[nodiscard]] SeenLost first_lost() const {
    std::lock_guard lock(mutex_);
    return first_lost_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t ended_ = 0;
  std::size_t lost_ = 0;
  std::size_t words_ = 0;
  SeenLost first_lost_;
};

TEST_F(TrackerLinkTest, OnceRunningNothingIsAllocatedPerRequest) {
  const auto fe = front_end(TrackerKind::Micromegas);
  CountingSink sink;
  TrackerLink link(link_parameters(), sink);
  ASSERT_EQ(link.connect("127.0.0.1", fe->port(), 1s), std::error_code());
  ASSERT_TRUE(link.gate(1, true, 0));
  ASSERT_TRUE(link.gate(1, false, 10000));
  const auto refs = particles(1, 1, 2000);
  const std::span<const ParticleRef> all(refs);
  // Warm-up: Asio keeps the memory of its completed operations for the next ones.
  ASSERT_EQ(link.request(all.first(100)), 100u);
  ASSERT_TRUE(sink.wait_ended(100));

  const std::uint64_t before = g_allocations.load(std::memory_order_relaxed);
  std::size_t sent = 100;
  while (sent < refs.size()) {  // one request at a time, then batches of 10, 100
    const std::size_t n = sent < 200 ? 1 : sent < 1000 ? 10 : 100;
    ASSERT_EQ(link.request(all.subspan(sent, n)), n);
    sent += n;
    ASSERT_TRUE(sink.wait_ended(sent));
  }
  const std::uint64_t after = g_allocations.load(std::memory_order_relaxed);
  EXPECT_EQ(after - before, 0u) << "allocations while 1900 requests were answered";
  EXPECT_EQ(sink.lost(), 0u) << "the first: spill " << sink.first_lost().ref.spill << " particle "
                            << sink.first_lost().ref.particle << ", " << to_string(sink.first_lost().outcome);
  EXPECT_EQ(link.counters().completed, 2000u);
}

/// A peer on 127.0.0.1 that accepts one connection, writes `words` to it and
/// keeps it open until destroyed.
class RawPeer {
 public:
  explicit RawPeer(std::vector<std::uint32_t> words) : words_(std::move(words)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 1) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "raw peer: cannot listen";
      return;
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::jthread([this](const std::stop_token& stop) { serve(stop); });
  }
  ~RawPeer() {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
    if (conn_fd_ >= 0) ::close(conn_fd_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  void serve(const std::stop_token& stop) {
    pollfd p{listen_fd_, POLLIN, 0};
    while (!stop.stop_requested()) {
      if (::poll(&p, 1, 10) != 1) continue;
      conn_fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn_fd_ < 0) return;
      const auto* bytes = reinterpret_cast<const char*>(words_.data());
      std::size_t left = words_.size() * 4;
      while (left > 0) {
        const ssize_t n = ::send(conn_fd_, bytes, left, MSG_NOSIGNAL);
        if (n <= 0) return;
        bytes += n;
        left -= static_cast<std::size_t>(n);
      }
      return;
    }
  }

  std::vector<std::uint32_t> words_;
  int listen_fd_ = -1;
  int conn_fd_ = -1;
  std::uint16_t port_ = 0;
  std::jthread thread_;
};

TEST_F(TrackerLinkTest, AWellFramedCorruptMessageIsCountedAndSkippedAndTheConnectionStays) {
  std::vector<std::uint32_t> words;
  std::vector<std::uint32_t> buf(16);
  auto append = [&](std::size_t n) { words.insert(words.end(), buf.begin(), buf.begin() + static_cast<long>(n)); };
  append(fl::encode(fl::SpillBegin{kSource, 4}, buf));
  append(fl::encode(fl::EventData{kSource, {4, 1, 1}, fl::BlockKind::Apv, {}}, buf));
  words[3 + 4] = 7;  // block kind 7, at byte 12 + 16 of the stream
  append(fl::encode(fl::SpillBegin{kSource + 1, 5}, buf));
  append(fl::encode(fl::SpillEnd{kSource, 4, 3}, buf));
  RawPeer peer(words);

  RecordingSink sink;
  TrackerLink link(link_parameters(), sink);
  ASSERT_EQ(link.connect("127.0.0.1", peer.port(), 1s), std::error_code());
  ASSERT_TRUE(sink.wait([](const Record& r) { return r.spills.size() == 2; }));
  EXPECT_EQ(sink.record().spills,
            (std::vector<SeenSpill>{{SpillEdge::Begin, 4, 0}, {SpillEdge::End, 4, 3}}));
  const auto c = link.counters();
  EXPECT_EQ(c.messages, 4u);
  EXPECT_EQ(c.bytes, words.size() * 4);
  EXPECT_EQ(c.decode_errors, 1u);
  EXPECT_EQ(c.framing_errors, 0u);
  EXPECT_EQ(c.wrong_source, 1u);
  EXPECT_EQ(c.connections, 1u);
  EXPECT_EQ(link.state(), LinkState::Connected);
  const auto errors = link.errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].error.code, firmware::DecodeErrc::LinkBadBlockKind);
  EXPECT_EQ(errors[0].error.offset_bytes, 28u);
}

/// A host on a plain socket: writes raw words to a front-end and reads what
/// comes back until the front-end closes the connection.
class RawHost {
 public:
  explicit RawHost(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ADD_FAILURE() << "raw host: cannot connect";
    }
  }
  ~RawHost() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawHost(const RawHost&) = delete;
  RawHost& operator=(const RawHost&) = delete;

  bool send(const std::vector<std::uint32_t>& words) {
    return ::send(fd_, words.data(), words.size() * 4, MSG_NOSIGNAL) == static_cast<ssize_t>(words.size() * 4);
  }
  /// Bytes read until the peer closed; nullopt if it did not close within kWait.
  std::optional<std::size_t> read_until_closed() {
    std::size_t total = 0;
    const auto deadline = Clock::now() + kWait;
    std::array<char, 4096> buf{};
    while (Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10) != 1) continue;
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n <= 0) return total;
      total += static_cast<std::size_t>(n);
    }
    return std::nullopt;
  }

 private:
  int fd_ = -1;
};

TEST_F(TrackerLinkTest, TheFrontEndCountsBadHostMessagesAndClosesWhenTheFramingIsLost) {
  const auto fe = front_end();
  std::vector<std::uint32_t> words;
  std::vector<std::uint32_t> buf(16);
  auto append = [&](std::size_t n) { words.insert(words.end(), buf.begin(), buf.begin() + static_cast<long>(n)); };
  append(fl::encode(fl::SpillGate{kSource + 1, 1, true, 0}, buf));  // another front-end's
  const std::array<fl::EventRef, 2> two{fl::EventRef{1, 1, 1}, fl::EventRef{1, 2, 2}};
  append(fl::encode_event_requests(kSource, two, buf));
  words[words.size() - 4] |= 1u << 24;  // the first request's reserved bits: well framed, not decodable
  append(fl::encode(fl::SpillGate{kSource, 1, false, 5}, buf));  // a close with no gate open
  words.push_back(0xDEAD'BEEFu);  // a header that does not decode
  words.push_back(6);

  RawHost host(fe->port());
  ASSERT_TRUE(host.send(words));
  EXPECT_EQ(host.read_until_closed(), std::optional<std::size_t>(0)) << "nothing answered, then closed";
  ASSERT_TRUE(eventually([&] { return !fe->connected(); }));
  const auto c = fe->counters();
  EXPECT_EQ(c.connections, 1u);
  EXPECT_EQ(c.wrong_source, 1u);
  EXPECT_EQ(c.host_errors, 2u);
  EXPECT_EQ(c.gate_errors, 1u);
  EXPECT_EQ(c.requests, 0u);
  EXPECT_EQ(c.spills, 0u);
}

}  // namespace
}  // namespace na64::drivers
