// SPDX-License-Identifier: Apache-2.0
// The two-level chain reading its three MSADC boards over USB: the real
// libusb code path against boards emulated with umockdev (one bus each),
// whose spill gates follow the run's beam clock. The binary re-executes
// itself under libumockdev-preload.so.0.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "../drivers/usb_device_emulator.hpp"
#include "config_text.hpp"
#include "na64/daq/config.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/daq/raw_file.hpp"
#include "na64/drivers/emulated_readout_board.hpp"
#include "na64/drivers/usb_msadc.hpp"
#include "na64/firmware/date_event.hpp"
#include "na64/firmware/run_record.hpp"
#include "na64/testing/temp_dir.hpp"
#include "na64/trigger/menu.hpp"

namespace na64::daq {
namespace {

namespace fw = na64::firmware;
namespace ro = na64::firmware::msadc_readout;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kParticles = 3000;
constexpr std::array<std::uint32_t, 3> kBoards{620, 621, 622};

std::string config_text(bool usb) {
  std::string t = testing_config::default_with_readout("");
  t += "readout {\n  mode: TWO_LEVEL completion_timeout_ms: 10000\n  tracker { kind: \"MM\" source: 400 }\n";
  if (usb) {
    for (std::size_t i = 0; i < kBoards.size(); ++i) t += fmt::format("  usb {{ source: {} bus: {} }}\n", kBoards[i], i + 1);
  }
  return t + "}\n";
}

DaqConfig make_config(bool usb) {
  DaqConfig c = load_config(config_text(usb), usb ? "usb chain" : "in-process chain");
  c.builder.timeout = std::chrono::milliseconds(300);
  c.beam.particles_per_spill = kParticles;
  c.beam.signal_fraction = 0.01;
  return c;
}

testing::UsbDeviceIdentity identity() {
  return {drivers::usb_msadc::kVendorId, drivers::usb_msadc::kProductId, drivers::usb_msadc::kEndpointIn,
          drivers::usb_msadc::kEndpointOut};
}

template <class Pred>
bool wait_until(Pred p, std::chrono::milliseconds timeout = 10s) {
  const auto end = Clock::now() + timeout;
  while (!p()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// One emulated board's hardware side: its model, and a gate that opens at
/// each spill the beam clock announces once the host has configured the
/// board, and reports the spill read out when the board has sent it all
/// (or at once while the board is unplugged).
struct Board {
  std::uint32_t source = 0;
  int bus = 0;
  std::unique_ptr<testing::UsbMsadcModel> model;
  std::atomic<testing::UsbMsadcModel*> current{nullptr};
  std::atomic<int> unplugs{0};  ///< times the cable went
  testing::UsbTestbed::Device* device = nullptr;
};

std::unique_ptr<testing::UsbMsadcModel> make_model(const DaqConfig& c, const drivers::NA64Beam& beam, std::uint32_t source) {
  return std::make_unique<testing::UsbMsadcModel>(std::make_unique<drivers::EmulatedReadoutBoard>(
      source, c.channel_map, beam, c.emulator, drivers::ReadoutBoardParameters{.latency_capacity = c.readout.latency_depth}));
}

void run_gate(Board& b, eventbuilder::SpillClock& clock, const std::stop_token& stop) {
  for (std::uint32_t spill = 1; clock.wait_for_spill(spill, stop); ++spill) {
    // A board is configured by the host before it is gated (SOURCE_ID written).
    testing::UsbMsadcModel* model = nullptr;
    (void)wait_until([&] {
      model = b.current.load();
      return stop.stop_requested() || model->read_register(ro::reg::kSourceId.address) == b.source;
    });
    const int unplugs = b.unplugs.load();
    if (model->begin_spill(spill)) {
      // Read out, or its cable went.
      (void)wait_until([&] { return stop.stop_requested() || b.unplugs.load() != unplugs || model->spill_done(); }, 60s);
    }
    clock.spill_done(spill, {});
  }
}

/// An MSADC block with its ADC headers' event field set to 0: written blocks
/// are renumbered by the written event number, which differs between runs
/// that write different events.
std::vector<std::uint32_t> unnumbered(std::vector<std::uint32_t> block) {
  (void)fw::restamp_msadc_event(block, 0);
  return block;
}

/// The DATE events of a file, each as its words.
std::vector<std::vector<std::uint32_t>> events_of(const std::filesystem::path& file) {
  std::vector<std::string> errors;
  const std::vector<std::uint32_t> words = read_date_words(file, errors);
  EXPECT_EQ(errors, std::vector<std::string>{});
  std::vector<std::vector<std::uint32_t>> out;
  std::size_t pos = 0;
  while (pos < words.size()) {
    const std::size_t n = words[pos] / 4;
    if (n == 0 || pos + n > words.size()) {
      ADD_FAILURE() << "bad event size at word " << pos;
      break;
    }
    out.emplace_back(words.begin() + static_cast<std::ptrdiff_t>(pos), words.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  }
  return out;
}

constexpr std::size_t kTimeWord = 16;

class UsbChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testbed_ = std::make_unique<testing::UsbTestbed>();
    config_ = make_config(true);
    beam_ = std::make_unique<drivers::NA64Beam>(config_.beam);
    for (std::size_t i = 0; i < kBoards.size(); ++i) {
      auto& b = boards_[i];
      b.source = kBoards[i];
      b.bus = static_cast<int>(i + 1);
      b.model = make_model(config_, *beam_, b.source);
      b.current = b.model.get();
      b.device = &testbed_->plug(identity(), *b.model, b.bus, 2);
    }
  }

  /// Runs `spills` spills over USB into `dir`, `during` called on the test
  /// thread while the run goes on.
  RunSummary run_usb(const std::filesystem::path& dir, std::uint32_t spills, const std::function<void()>& during) {
    RunOptions options;
    options.output = dir;
    options.run = 11;
    options.spills = spills;
    auto clock = make_spill_clock(config_, options);
    options.clock = clock.get();
    std::vector<std::jthread> gates;
    for (auto& b : boards_) gates.emplace_back([&b, &clock](std::stop_token st) { run_gate(b, *clock, st); });
    RunSummary summary;
    std::exception_ptr error;
    std::jthread run([&] {
      try {
        summary = run_simulated(config_, options, {});
      } catch (...) {
        error = std::current_exception();
      }
    });
    if (during) during();
    run.join();
    gates.clear();
    if (error) std::rethrow_exception(error);
    return summary;
    // The clock outlives the gate threads (joined above).
  }

  static RunSummary run_in_process(const std::filesystem::path& dir, std::uint32_t spills) {
    RunOptions options;
    options.output = dir;
    options.run = 11;
    options.spills = spills;
    return run_simulated(make_config(false), options, {});
  }

  // The models outlive the testbed, which is destroyed first.
  DaqConfig config_;
  std::unique_ptr<drivers::NA64Beam> beam_;
  std::array<Board, 3> boards_;
  std::unique_ptr<testing::UsbMsadcModel> back_;  ///< the board plugged back in
  std::unique_ptr<testing::UsbTestbed> testbed_;
};

// Over USB the run writes what the in-process emulation writes, word for
// word (but for the times and the configuration text in the start of run).
TEST_F(UsbChainTest, UsbRunWritesExactlyWhatTheInProcessRunWrites) {
  testing::TempDir usb_dir;
  testing::TempDir ref_dir;
  const RunSummary usb = run_usb(usb_dir.path(), 2, {});
  const RunSummary ref = run_in_process(ref_dir.path(), 2);
  ASSERT_EQ(usb.files.size(), 1u);
  const auto got = events_of(usb_dir.path() / usb.files[0]);
  const auto want = events_of(ref_dir.path() / ref.files[0]);
  ASSERT_EQ(got.size(), want.size());
  ASSERT_GT(got.size(), 2u + 2 * 2 + 20);
  std::size_t differing = 0;
  for (std::size_t e = 1; e < got.size(); ++e) {  // event 0: the start of run
    auto a = got[e];
    auto b = want[e];
    a[kTimeWord] = b[kTimeWord] = 0;
    differing += a != b;
  }
  EXPECT_EQ(differing, 0u);
  EXPECT_EQ(usb.total.written, ref.total.written);
  EXPECT_EQ(usb.total.completion.completed, usb.total.written);
  EXPECT_EQ(usb.total.completion.incomplete, 0u) << summary_json(usb);
  EXPECT_EQ(usb.total.builder.incomplete, 0u);
  const FileCheck check = check_date_file(usb_dir.path() / usb.files[0]);
  EXPECT_EQ(check.errors, std::vector<std::string>{});
  EXPECT_GT(check.tracker_hits, 0u);
}

// Board 622 is unplugged mid-spill 2 and comes back for spill 3. The run
// goes on; from where the board stopped, spill 2's events are decided on
// the other boards (never by the missing-energy line) and written with 622
// flagged lost; every event of the other boards is there, as the
// in-process emulation of the same beam writes it; spill 3 is whole again.
TEST_F(UsbChainTest, UnplugMidSpillFlagsTheLostBoardAndKeepsEveryOtherSourcesEvents) {
  constexpr std::uint32_t kHold = 1500;
  testing::TempDir usb_dir;
  testing::TempDir ref_dir;
  Board& lost = boards_[2];
  config_.run.spill_cycle_s = 0.4;  // time to reach into spill 2 as it starts
  const RunSummary usb = run_usb(usb_dir.path(), 3, [&] {
    // Spill 2: the board stops sending at particle 1500 and its cable goes.
    ASSERT_TRUE(wait_until([&] { return lost.model->spill_done(); }, 30s));  // spill 1 read out
    lost.model->hold_from(kHold);
    ASSERT_TRUE(wait_until([&] { return !lost.model->spill_done() && lost.model->particles_streamed() >= kHold - 64; },
                           30s));
    // The host reads what went out, the builder gives up waiting for the
    // rest (its timeout is 300 ms), and the events before get their answers.
    std::this_thread::sleep_for(800ms);
    // It comes back at power-up, at a new address, for spill 3: the gate
    // takes the new board once the host has configured it.
    back_ = make_model(config_, *beam_, lost.source);
    testbed_->unplug(*lost.device);
    lost.current = back_.get();
    lost.device = &testbed_->plug(identity(), *back_, lost.bus, 3);
    ++lost.unplugs;
  });
  const RunSummary ref = run_in_process(ref_dir.path(), 3);
  ASSERT_EQ(usb.spills.size(), 3u);

  struct Event {
    std::uint32_t mask = 0;
    std::map<std::uint32_t, std::vector<std::uint32_t>> blocks;  // source -> payload (empty: flagged)
    std::map<std::uint32_t, std::uint32_t> flags;
  };
  auto read = [](const std::filesystem::path& file) {
    std::map<std::pair<std::uint32_t, std::uint32_t>, Event> events;
    for (const auto& words : events_of(file)) {
      auto h = fw::walk_date_event(words, 0, [&](const fw::DateHeader& hdr, const fw::EquipmentView& eq) {
        if (hdr.type != fw::EventType::Physics) return;
        Event& e = events[{hdr.spill, hdr.detector_pattern}];
        e.mask = hdr.trigger_mask;
        // MSADC blocks are renumbered by the written event number: compare
        // without the ADC headers' event field.
        std::vector<std::uint32_t> payload(eq.payload.begin(), eq.payload.end());
        e.blocks[eq.slink.source_id] = eq.slink.source_id == 400 ? payload : unnumbered(payload);
        e.flags[eq.slink.source_id] = eq.equipment.attributes[0];
      });
      EXPECT_TRUE(h.ok());
    }
    return events;
  };
  const auto got = read(usb_dir.path() / usb.files.at(0));
  const auto want = read(ref_dir.path() / ref.files.at(0));

  // Where 622 stopped: spill 2's events are complete up to there, and
  // incomplete (622 lost) from there on.
  const std::uint64_t complete = usb.spills[1].builder.complete;
  EXPECT_EQ(usb.spills[1].builder.incomplete, kParticles - complete);
  const auto cut = static_cast<std::uint32_t>(complete + 1);
  ASSERT_GE(cut, kHold - 64) << summary_json(usb);
  ASSERT_LE(cut, kHold);

  const std::uint32_t invisible = trigger::bit(trigger::TriggerLine::Invisible);
  std::size_t flagged = 0;
  std::size_t in_flight = 0;
  std::size_t dropped_invisible_only = 0;
  const auto lost_source = static_cast<std::uint32_t>(fw::MissingReason::LostSource);
  for (const auto& [key, w] : want) {
    const bool after_cut = key.first == 2 && key.second >= cut;
    const auto it = got.find(key);
    if (!after_cut) {
      ASSERT_NE(it, got.end()) << "spill " << key.first << " particle " << key.second << summary_json(usb);
      EXPECT_EQ(it->second.mask, w.mask);
      // Accepted just before the cable went: 622's summary came, but its
      // answer did not (the request was in flight).
      const bool answer_lost = key.first == 2 && it->second.flags.at(622) == lost_source;
      in_flight += answer_lost;
      for (std::uint32_t s : {620u, 621u, 622u, 400u}) {
        if (s == 622 && answer_lost) {
          EXPECT_TRUE(it->second.blocks.at(s).empty());
          continue;
        }
        EXPECT_EQ(it->second.flags.at(s), 0u) << "spill " << key.first << " particle " << key.second;
        EXPECT_EQ(it->second.blocks.at(s), w.blocks.at(s)) << "source " << s;
      }
      continue;
    }
    if ((w.mask & ~invisible) == 0) {  // only the missing-energy line took it: not decided without 622
      EXPECT_EQ(it, got.end()) << "particle " << key.second;
      ++dropped_invisible_only;
      continue;
    }
    ASSERT_NE(it, got.end()) << "spill 2 particle " << key.second;
    EXPECT_EQ(it->second.mask, w.mask & ~invisible);
    EXPECT_EQ(it->second.flags.at(622), static_cast<std::uint32_t>(fw::MissingReason::LostSource));
    EXPECT_TRUE(it->second.blocks.at(622).empty());
    for (std::uint32_t s : {620u, 621u, 400u}) {
      EXPECT_EQ(it->second.flags.at(s), 0u);
      EXPECT_EQ(it->second.blocks.at(s), w.blocks.at(s)) << "source " << s;
    }
    ++flagged;
  }
  EXPECT_EQ(got.size(), want.size() - dropped_invisible_only);
  EXPECT_GT(flagged, 0u);
  EXPECT_EQ(in_flight, 0u);  // every request was answered before the cable went
  EXPECT_EQ(usb.spills[1].completion.by_reason[static_cast<std::size_t>(fw::MissingReason::LostSource)],
            flagged + in_flight);
  EXPECT_EQ(usb.spills[1].builder.particles, kParticles);
  EXPECT_EQ(usb.spills[2].completion.incomplete, 0u);
  EXPECT_EQ(usb.spills[2].written, ref.spills[2].written);
  const FileCheck check = check_date_file(usb_dir.path() / usb.files[0]);
  EXPECT_EQ(check.errors, std::vector<std::string>{});
  EXPECT_EQ(check.missing[static_cast<std::size_t>(fw::MissingReason::LostSource)], flagged + in_flight);
}

}  // namespace
}  // namespace na64::daq

int main(int argc, char** argv) {
  na64::testing::reexec_under_umockdev(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
