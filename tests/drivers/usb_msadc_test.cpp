// SPDX-License-Identifier: Apache-2.0
// UsbMsadcDriver through the real libusb code path, against an
// EmulatedReadoutBoard behind an emulated USB device (umockdev). The binary
// re-executes itself under libumockdev-preload.so.0.
#include "na64/drivers/usb_msadc.hpp"

#include <gtest/gtest.h>
#include <libusb.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "na64/drivers/readout_host.hpp"
#include "na64/firmware/msadc.hpp"
#include "usb_device_emulator.hpp"

namespace na64::drivers {
namespace {

namespace fw = na64::firmware;
namespace ro = na64::firmware::msadc_readout;
using namespace std::chrono_literals;
using testing::UsbMsadcModel;
using testing::UsbTestbed;

constexpr std::uint32_t kSource = 620;
constexpr std::uint32_t kSpill = 5;
constexpr std::uint32_t kParticles = 300;
constexpr std::uint32_t kCapacity = 100;
constexpr auto kWait = 5s;

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

testing::UsbDeviceIdentity identity() {
  return {usb_msadc::kVendorId, usb_msadc::kProductId, usb_msadc::kEndpointIn, usb_msadc::kEndpointOut};
}

/// The host side behind the driver: a ReadoutHost walking every buffer,
/// requesting the particles in `wanted`, keeping what came back.
///
/// Thread safety: on_words() and on_state() run on the driver's threads;
/// everything else takes mu.
class HostSink final : public UsbMsadcSink, public ReadoutSink {
 public:
  HostSink() : host(host_parameters()) {}

  static ReadoutHostParameters host_parameters() {
    ReadoutHostParameters p;
    p.source_id = kSource;
    return p;
  }

  void on_words(std::span<const std::uint32_t> words) override {
    std::lock_guard lock(mu);
    walked += host.consume(words, *this);
    ++buffers;
    cv.notify_all();
  }
  void on_state(UsbSourceState state, std::string_view why) override {
    std::lock_guard lock(mu);
    states.emplace_back(state, std::string(why));
    cv.notify_all();
  }
  bool on_particle(const ro::ParticleSummary& p) override { return wanted.contains(p.particle); }
  void on_event(const ro::EventAnswer& answer) override {
    events.emplace_back(answer.ref, std::vector<std::uint32_t>(answer.block.begin(), answer.block.end()));
  }
  void on_lost(const ro::EventRef& ref, RequestOutcome outcome) override { lost.emplace_back(ref, outcome); }

  template <class Pred>
  bool wait(Pred pred) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, kWait, pred);
  }
  /// The pending requests as one message.
  std::vector<std::uint32_t> take_requests() {
    std::lock_guard lock(mu);
    std::vector<std::uint32_t> out(ro::event_requests_words(64));
    out.resize(host.take_requests(out, 0));
    return out;
  }

  std::mutex mu;
  std::condition_variable cv;
  ReadoutHost host;
  std::set<std::uint32_t> wanted;
  std::size_t walked = 0;
  std::size_t buffers = 0;
  std::vector<std::pair<UsbSourceState, std::string>> states;
  std::vector<std::pair<ro::EventRef, std::vector<std::uint32_t>>> events;
  std::vector<std::pair<ro::EventRef, RequestOutcome>> lost;
};

class UsbMsadcTest : public ::testing::Test {
 protected:
  UsbMsadcTest() : map_(ecal_map()), beam_(beam_parameters()) {}

  void SetUp() override {
    try {
      testbed_ = std::make_unique<UsbTestbed>();
    } catch (const std::exception& e) {
      GTEST_SKIP() << e.what();
    }
    board_ = &plug(1, 2);
  }
  void TearDown() override { driver_.reset(); }

  /// A board at power-up, plugged at bus/address.
  UsbMsadcModel& plug(int bus, int address, std::uint32_t particles_per_packet = 64) {
    ReadoutBoardParameters p;
    p.latency_capacity = kCapacity;
    p.particles_per_packet = particles_per_packet;
    models_.push_back(std::make_unique<UsbMsadcModel>(
        std::make_unique<EmulatedReadoutBoard>(kSource, map_, beam_, EmulatorParameters{}, p)));
    devices_.push_back(&testbed_->plug(identity(), *models_.back(), bus, address));
    return *models_.back();
  }
  UsbMsadcDriver& driver(UsbMsadcOptions options = {}) {
    driver_ = std::make_unique<UsbMsadcDriver>(options, sink_);
    return *driver_;
  }
  /// Opens the board and configures it as a run would.
  void open_and_configure(UsbMsadcDriver& d) {
    auto r = d.open();
    ASSERT_TRUE(r) << r.error().message;
    for (auto [address, value] : {std::pair{ro::reg::kSourceId.address, kSource},
                                  std::pair{ro::reg::kReadoutMode.address, ro::readout_mode_register(
                                                                                ro::ReadoutMode::Summary,
                                                                                ro::SummaryValue::Amplitude)},
                                  std::pair{ro::reg::kLatencyDepth.address, kCapacity}}) {
      auto w = d.write_register(address, value);
      ASSERT_TRUE(w) << w.error().message;
    }
  }
  std::vector<std::uint32_t> block_of(std::uint32_t spill, std::uint32_t particle) const {
    EmulatedMsadcBoard reference(kSource, map_, beam_, EmulatorParameters{});
    std::vector<std::uint32_t> block(reference.max_fragment_words());
    block.resize(reference.read_event(spill, particle, block));
    return block;
  }
  bool spill_ended(std::uint32_t spill) {
    return sink_.wait([&] { return sink_.host.spill(spill).ended; });
  }

  fw::ChannelMap map_;
  NA64Beam beam_;
  std::vector<std::unique_ptr<UsbMsadcModel>> models_;  // outlive the testbed
  std::unique_ptr<UsbTestbed> testbed_;
  std::vector<UsbTestbed::Device*> devices_;
  UsbMsadcModel* board_ = nullptr;
  HostSink sink_;
  std::unique_ptr<UsbMsadcDriver> driver_;  // goes first
};

TEST_F(UsbMsadcTest, FindsOpensAndClosesTheBoard) {
  auto& d = driver();
  EXPECT_EQ(d.state(), UsbSourceState::Closed);
  auto r = d.open();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(d.state(), UsbSourceState::Open);
  EXPECT_EQ(d.device_address(), (UsbDeviceAddress{1, 2}));
  d.close();
  EXPECT_EQ(d.state(), UsbSourceState::Closed);
  EXPECT_EQ(d.device_address(), std::nullopt);
  ASSERT_EQ(sink_.states.size(), 2u);
  EXPECT_EQ(sink_.states[0], std::pair(UsbSourceState::Open, std::string("USB MSADC 1209:0001 bus 1 address 2: opened")));
  EXPECT_EQ(sink_.states[1], std::pair(UsbSourceState::Closed, std::string("USB MSADC 1209:0001 bus 1 address 2: closed")));
}

TEST_F(UsbMsadcTest, ReportsAMissingBoardWithWhatAndWhere) {
  UsbMsadcOptions o;
  o.product_id = 0x0002;
  auto& d = driver(o);
  auto r = d.open();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, LIBUSB_ERROR_NOT_FOUND);
  EXPECT_EQ(r.error().message, "USB MSADC 1209:0002: no such board among 1 USB devices: LIBUSB_ERROR_NOT_FOUND");
  EXPECT_EQ(d.state(), UsbSourceState::Closed);

  UsbMsadcOptions at;
  at.bus = 1;
  at.address = 7;
  auto& d2 = driver(at);
  auto r2 = d2.open();
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().message,
            "USB MSADC 1209:0001: no such board on bus 1 at address 7 among 1 USB devices: LIBUSB_ERROR_NOT_FOUND");
  auto r3 = d2.read_register(ro::reg::kStatus.address);
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error().message, "USB MSADC 1209:0001: reading register STATUS (0x44): the source is closed: "
                                "LIBUSB_ERROR_NO_DEVICE");
}

TEST_F(UsbMsadcTest, SetsUpRegistersAndReadsThemBack) {
  auto& d = driver();
  open_and_configure(d);
  ASSERT_TRUE(d.write_register(ro::reg::kZsThreshold.address, 25));
  const std::pair<std::uint32_t, std::uint32_t> expected[] = {
      {ro::reg::kSourceId.address, kSource},      {ro::reg::kReadoutMode.address, 1},
      {ro::reg::kLatencyDepth.address, kCapacity}, {ro::reg::kZsThreshold.address, 25},
      {ro::reg::kFirmwareVersion.address, 0x0001'0001}, {ro::reg::kLatencyCapacity.address, kCapacity}};
  for (auto [address, value] : expected) {
    auto r = d.read_register(address);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, value) << "register 0x" << std::hex << address;
    EXPECT_EQ(board_->read_register(address), value);  // the board itself
  }

  auto ro_write = d.write_register(ro::reg::kStatus.address, 1);
  ASSERT_FALSE(ro_write);
  EXPECT_EQ(ro_write.error().code, LIBUSB_ERROR_PIPE);
  EXPECT_EQ(ro_write.error().message,
            "USB MSADC 1209:0001 bus 1 address 2: writing register STATUS (0x44) = 0x1 "
            "(the board refused it: STATUS is read-only): LIBUSB_ERROR_PIPE");
  EXPECT_EQ(board_->read_register(ro::reg::kStatus.address), 0u);

  auto unknown = d.read_register(0x20);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, LIBUSB_ERROR_PIPE);
  EXPECT_EQ(unknown.error().message,
            "USB MSADC 1209:0001 bus 1 address 2: reading register 0x20 (no register) "
            "(the board refused it: no register at 0x20): LIBUSB_ERROR_PIPE");
  // A refusal leaves the link working.
  EXPECT_TRUE(d.read_register(ro::reg::kSourceId.address));
  EXPECT_EQ(d.state(), UsbSourceState::Open);
}

TEST_F(UsbMsadcTest, StreamsAWholeSpillWithExactCounts) {
  auto& d = driver();
  open_and_configure(d);
  auto s = d.start_streaming();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(d.state(), UsbSourceState::Streaming);
  ASSERT_TRUE(board_->begin_spill(kSpill));
  ASSERT_TRUE(spill_ended(kSpill));

  const ro::SpillCounters board = board_->spill_counters();
  std::lock_guard lock(sink_.mu);
  const HostSpillCounts& host = sink_.host.spill(kSpill);
  EXPECT_TRUE(host.begun);
  EXPECT_EQ(host.particles, kParticles);
  EXPECT_EQ(board.particles, kParticles);
  EXPECT_GT(board.summaries_sent, 0u);
  EXPECT_EQ(host.summaries, board.summaries_sent);
  EXPECT_EQ(host.missing_particles, 0u);
  EXPECT_EQ(host.decode_errors, 0u);
  ASSERT_TRUE(host.board.has_value());
  EXPECT_EQ(*host.board, board);
  EXPECT_EQ(sink_.host.counts().framing_errors, 0u);
  EXPECT_EQ(sink_.host.counts().decode_errors, 0u);

  const UsbMsadcCounters c = d.counters();
  EXPECT_EQ(c.buffers, sink_.buffers);
  EXPECT_EQ(c.bytes_in, sink_.walked * 4);
  EXPECT_EQ(c.odd_lengths, 0u);
  EXPECT_EQ(c.in_errors, 0u);
  EXPECT_EQ(c.lost, 0u);
  // Every bulk IN transfer was in flight at once.
  EXPECT_EQ(devices_[0]->emulator->stats().max_in_flight_in, UsbMsadcOptions{}.transfers_in_flight);
}

TEST_F(UsbMsadcTest, IdleTransfersTimeOutAndTheStreamGoesOn) {
  UsbMsadcOptions o;
  o.in_timeout = 20ms;
  auto& d = driver(o);
  open_and_configure(d);
  ASSERT_TRUE(d.start_streaming());
  // Between spills the board is silent: the transfers time out and are resubmitted.
  const auto t0 = std::chrono::steady_clock::now();
  while (d.counters().in_timeouts < 2 * o.transfers_in_flight && std::chrono::steady_clock::now() - t0 < kWait) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GE(d.counters().in_timeouts, 2 * o.transfers_in_flight);
  EXPECT_EQ(d.state(), UsbSourceState::Streaming);
  EXPECT_GT(devices_[0]->emulator->stats().discarded, 0u);

  ASSERT_TRUE(board_->begin_spill(kSpill));
  ASSERT_TRUE(spill_ended(kSpill));
  std::lock_guard lock(sink_.mu);
  EXPECT_EQ(sink_.host.spill(kSpill).particles, kParticles);
  EXPECT_EQ(sink_.host.spill(kSpill).summaries, board_->spill_counters().summaries_sent);
  EXPECT_EQ(sink_.host.counts().framing_errors, 0u);
  EXPECT_EQ(d.counters().in_errors, 0u);
  EXPECT_EQ(d.counters().lost, 0u);
}

TEST_F(UsbMsadcTest, AnswersWaveformRequestsByteIdentically) {
  auto& d = driver();
  open_and_configure(d);
  sink_.wanted = {250, 251, 260, 300};  // 300: the last particle
  ASSERT_TRUE(d.start_streaming());
  ASSERT_TRUE(board_->begin_spill(kSpill));
  ASSERT_TRUE(spill_ended(kSpill));

  const auto message = sink_.take_requests();
  ASSERT_EQ(message.size(), ro::event_requests_words(4));
  auto r = d.send_requests(message);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(sink_.wait([&] { return sink_.events.size() == 4; }));

  std::lock_guard lock(sink_.mu);
  const std::uint32_t particles[] = {250, 251, 260, 300};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(sink_.events[i].first.spill, kSpill);
    EXPECT_EQ(sink_.events[i].first.particle, particles[i]);
    EXPECT_EQ(sink_.events[i].second, block_of(kSpill, particles[i])) << "particle " << particles[i];
  }
  EXPECT_TRUE(sink_.lost.empty());
  EXPECT_EQ(sink_.host.spill(kSpill).completed, 4u);
  EXPECT_EQ(sink_.host.in_flight(), 0u);
  EXPECT_EQ(d.counters().request_messages, 1u);
  EXPECT_EQ(d.counters().bytes_out, message.size() * 4);
  EXPECT_EQ(board_->request_messages(), 1u);
  EXPECT_EQ(board_->board_status().requests_served, 4u);
}

TEST_F(UsbMsadcTest, AnswersALateRequestTooLate) {
  auto& d = driver();
  open_and_configure(d);
  sink_.wanted = {3, 280};  // the buffer holds the last 100 particles: 201-300
  ASSERT_TRUE(d.start_streaming());
  ASSERT_TRUE(board_->begin_spill(kSpill));
  ASSERT_TRUE(spill_ended(kSpill));
  ASSERT_TRUE(d.send_requests(sink_.take_requests()));
  ASSERT_TRUE(sink_.wait([&] { return sink_.events.size() + sink_.lost.size() == 2; }));

  std::lock_guard lock(sink_.mu);
  ASSERT_EQ(sink_.lost.size(), 1u);
  EXPECT_EQ(sink_.lost[0].first.particle, 3u);
  EXPECT_EQ(sink_.lost[0].second, RequestOutcome::TooLate);
  ASSERT_EQ(sink_.events.size(), 1u);
  EXPECT_EQ(sink_.events[0].second, block_of(kSpill, 280));
  EXPECT_EQ(sink_.host.spill(kSpill).too_late, 1u);
  EXPECT_EQ(sink_.host.spill(kSpill).completed, 1u);
  const auto status = board_->board_status();
  EXPECT_EQ(status.requests_received, 2u);
  EXPECT_EQ(status.requests_too_late, 1u);
  EXPECT_EQ(status.requests_served, 1u);
}

TEST_F(UsbMsadcTest, UnplugMidSpillLosesTheSourceAndReplugReopensIt) {
  // A board that stops sending at particle 100 (packets of 8 particles), so
  // that the cable goes mid-spill with every transfer in flight: particles
  // 1-99 go out, and maybe a few more of the last packet.
  UsbMsadcModel& slow = plug(2, 2, 8);
  slow.hold_from(100);
  UsbMsadcOptions o;
  o.bus = 2;
  auto& d = driver(o);
  open_and_configure(d);
  EXPECT_EQ(d.device_address(), (UsbDeviceAddress{2, 2}));
  ASSERT_TRUE(d.start_streaming());
  ASSERT_TRUE(slow.begin_spill(kSpill));
  ASSERT_TRUE(sink_.wait([&] {
    const auto seen = sink_.host.spill(kSpill).particles;
    return seen >= 99 && seen == slow.particles_streamed();
  }));

  testbed_->unplug(*devices_[1]);
  ASSERT_TRUE(d.wait_for_state(UsbSourceState::Lost, kWait));
  // Which of the board's ways of going is seen first depends on the threads.
  const std::set<std::string> reasons = {
      "USB MSADC 1209:0001 bus 2 address 2: source lost: bulk IN transfer ended with LIBUSB_TRANSFER_NO_DEVICE",
      "USB MSADC 1209:0001 bus 2 address 2: source lost: resubmitting a bulk IN transfer: LIBUSB_ERROR_NO_DEVICE",
      "USB MSADC 1209:0001 bus 2 address 2: source lost: hotplug: the board left the bus"};
  ASSERT_TRUE(sink_.wait([&] { return sink_.states.size() == 3; }));
  {
    std::lock_guard lock(sink_.mu);
    EXPECT_EQ(sink_.states[2].first, UsbSourceState::Lost);
    EXPECT_TRUE(reasons.contains(sink_.states[2].second)) << sink_.states[2].second;
  }
  EXPECT_EQ(d.counters().lost, 1u);
  EXPECT_FALSE(slow.spill_done());
  {
    std::lock_guard lock(sink_.mu);
    EXPECT_LT(sink_.host.spill(kSpill).particles, kParticles);
    EXPECT_FALSE(sink_.host.spill(kSpill).ended);
  }
  auto read = d.read_register(ro::reg::kStatus.address);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, LIBUSB_ERROR_NO_DEVICE);
  EXPECT_EQ(read.error().message, "USB MSADC 1209:0001 bus 2 address 2: reading register STATUS (0x44): the "
                                  "source is lost: LIBUSB_ERROR_NO_DEVICE");
  EXPECT_FALSE(d.send_requests(std::vector<std::uint32_t>(4, 0)));

  // The board comes back, at a new address and at power-up: the hotplug
  // ARRIVED event reopens it, writes its configuration again and resumes
  // the stream.
  UsbMsadcModel& back = plug(2, 3);
  ASSERT_TRUE(d.wait_for_state(UsbSourceState::Streaming, kWait));
  EXPECT_EQ(d.device_address(), (UsbDeviceAddress{2, 3}));
  EXPECT_EQ(d.counters().reopened, 1u);
  EXPECT_EQ(back.read_register(ro::reg::kSourceId.address), kSource);
  EXPECT_EQ(back.read_register(ro::reg::kLatencyDepth.address), kCapacity);
  ASSERT_TRUE(back.begin_spill(kSpill + 1));
  ASSERT_TRUE(spill_ended(kSpill + 1));
  std::lock_guard lock(sink_.mu);
  EXPECT_EQ(sink_.host.spill(kSpill + 1).particles, kParticles);
  EXPECT_EQ(*sink_.host.spill(kSpill + 1).board, back.spill_counters());
}

TEST_F(UsbMsadcTest, ReopensAtTheNextSpillWithoutHotplug) {
  UsbMsadcOptions o;
  o.reopen_on_arrival = false;
  auto& d = driver(o);
  open_and_configure(d);
  ASSERT_TRUE(d.start_streaming());
  testbed_->unplug(*devices_[0]);
  ASSERT_TRUE(d.wait_for_state(UsbSourceState::Lost, kWait));

  auto early = d.reopen();
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, LIBUSB_ERROR_NOT_FOUND);
  EXPECT_EQ(d.state(), UsbSourceState::Lost);

  UsbMsadcModel& back = plug(1, 3);
  // No reopen without asking: the hotplug event is not used.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(d.state(), UsbSourceState::Lost);
  auto r = d.reopen();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(d.state(), UsbSourceState::Streaming);
  EXPECT_EQ(back.read_register(ro::reg::kSourceId.address), kSource);
  ASSERT_TRUE(back.begin_spill(kSpill));
  ASSERT_TRUE(spill_ended(kSpill));
  EXPECT_EQ(d.counters().reopened, 1u);
  EXPECT_EQ(d.counters().lost, 1u);
}

TEST(UsbMsadcDriver, RejectsBadOptions) {
  struct Quiet : UsbMsadcSink {
    void on_words(std::span<const std::uint32_t>) override {}
  } sink;
  UsbMsadcOptions o;
  o.transfer_bytes = 1000;
  try {
    UsbMsadcDriver d(o, sink);
    FAIL() << "accepted transfer_bytes 1000";
  } catch (const UsbSetupError& e) {
    EXPECT_STREQ(e.what(), "USB MSADC: transfer_bytes 1000 is not a multiple of 512 up to 16 MiB");
  }
}

}  // namespace
}  // namespace na64::drivers

int main(int argc, char** argv) {
  na64::testing::reexec_under_umockdev(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
