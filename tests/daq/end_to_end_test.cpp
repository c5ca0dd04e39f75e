// SPDX-License-Identifier: Apache-2.0
// Three spills through the whole chain, the files read back with the
// project's decoder and compared with the emulator and its truth.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "config_text.hpp"
#include "na64/daq/config.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/daq/raw_file.hpp"
#include "na64/drivers/emulated_msadc.hpp"
#include "na64/drivers/emulated_trackers.hpp"
#include "na64/firmware/date_event.hpp"
#include "na64/testing/temp_dir.hpp"
#include "na64/trigger/menu.hpp"

namespace na64::daq {
namespace {

namespace fw = na64::firmware;
using trigger::TriggerLine;

constexpr std::uint32_t kSpills = 3;
constexpr std::uint32_t kParticles = 6000;
constexpr std::uint32_t kRun = 3661;

struct Written {
  std::uint32_t trigger_mask = 0;
  std::uint32_t event_in_spill = 0;
  std::set<std::uint32_t> sources;
};
using Key = std::pair<std::uint32_t, std::uint32_t>;  // (spill, particle)

// One run per readout mode, made once and shared by the tests.
struct ModeRun {
  testing::TempDir dir;
  DaqConfig config;
  RunSummary summary;
  std::vector<std::uint32_t> reported;
};

// Two-level runs also read the three tracker front-ends.
constexpr std::string_view kTwoLevel = R"(
readout {
  mode: TWO_LEVEL completion_timeout_ms: 10000
  tracker { kind: "MM" source: 400 }
  tracker { kind: "GEM" source: 401 }
  tracker { kind: "STRAW" source: 402 }
}
)";

class EndToEndTest : public ::testing::TestWithParam<ReadoutMode> {
 protected:
  void SetUp() override {
    auto& slot = runs_[GetParam()];
    if (!slot) {
      const std::string text = GetParam() == ReadoutMode::TwoLevel ? testing_config::default_with_readout(kTwoLevel)
                                                                   : testing_config::direct_default();
      auto r = std::make_unique<ModeRun>();
      r->config = load_config(text, "embedded default");
      r->config.beam.particles_per_spill = kParticles;
      r->config.beam.signal_fraction = 0.01;  // about 60 signal-like electrons per spill
      RunOptions options;
      options.output = r->dir.path();
      options.run = kRun;
      options.spills = kSpills;
      auto* reported = &r->reported;
      r->summary = run_simulated(r->config, options, [reported](const SpillSummary& s) { reported->push_back(s.spill); });
      slot = std::move(r);
    }
    run_ = slot.get();
    dir_ = &run_->dir;
    config_ = &run_->config;
    summary_ = &run_->summary;
  }

  static inline std::map<ReadoutMode, std::unique_ptr<ModeRun>> runs_;
  ModeRun* run_ = nullptr;
  testing::TempDir* dir_ = nullptr;
  DaqConfig* config_ = nullptr;
  RunSummary* summary_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(Readout, EndToEndTest, ::testing::Values(ReadoutMode::Direct, ReadoutMode::TwoLevel),
                         [](const ::testing::TestParamInfo<ReadoutMode>& i) {
                           return i.param == ReadoutMode::Direct ? std::string("Direct") : std::string("TwoLevel");
                         });

TEST_P(EndToEndTest, WritesChunkMapAndSummary) {
  EXPECT_EQ(summary_->files, std::vector<std::string>{"cdr01001-003661.dat"});
  EXPECT_TRUE(std::filesystem::exists(dir_->path() / "run-003661.map.xml"));
  EXPECT_TRUE(std::filesystem::exists(dir_->path() / "run-003661.summary.json"));
  EXPECT_EQ(run_->reported, (std::vector<std::uint32_t>{1, 2, 3}));
  for (const auto& entry : std::filesystem::directory_iterator(dir_->path())) {
    EXPECT_NE(entry.path().extension(), ".part") << entry.path();
  }
}

TEST_P(EndToEndTest, SummaryCountsAddUp) {
  std::ifstream in(dir_->path() / "run-003661.summary.json");
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const auto root = boost::json::parse(text).as_object();
  EXPECT_EQ(root.at("run").as_int64(), kRun);
  const auto& spills = root.at("spills").as_array();
  ASSERT_EQ(spills.size(), kSpills);
  std::int64_t written = 0;
  for (const auto& sv : spills) {
    const auto& s = sv.as_object();
    EXPECT_EQ(s.at("particles").as_int64(), kParticles);
    EXPECT_EQ(s.at("built").as_int64() + s.at("incomplete").as_int64(), kParticles);
    EXPECT_EQ(s.at("incomplete").as_int64(), 0);
    EXPECT_EQ(s.at("accepted_events").as_int64(), s.at("written").as_int64());
    EXPECT_EQ(s.at("accepted").as_object().at("beam").as_int64(), kParticles / 1000);
    EXPECT_EQ(s.at("accepted").as_object().at("random").as_int64(), kParticles / 5000);
    written += s.at("written").as_int64();
  }
  const auto& total = root.at("total").as_object();
  EXPECT_EQ(total.at("written").as_int64(), written);
  EXPECT_EQ(total.at("accepted_events").as_int64(), written);
  EXPECT_EQ(total.at("particles").as_int64(), kSpills * kParticles);
  EXPECT_EQ(static_cast<std::uint64_t>(total.at("bytes").as_int64()),
            std::filesystem::file_size(dir_->path() / "cdr01001-003661.dat"));
}

TEST_P(EndToEndTest, FileDecodesAndHoldsExactlyTheAcceptedEventsAsEmulated) {
  const drivers::NA64Beam beam(config_->beam);
  std::map<std::uint32_t, std::unique_ptr<drivers::EmulatedMsadcBoard>> boards;
  for (std::uint32_t s : config_->channel_map.sources()) {
    boards[s] = std::make_unique<drivers::EmulatedMsadcBoard>(s, config_->channel_map, beam, config_->emulator);
  }
  std::map<Key, Written> written;
  std::uint64_t samples_compared = 0;
  std::uint64_t mismatches = 0;
  std::vector<std::uint32_t> block(4096);
  std::tuple<std::uint32_t, std::uint32_t, std::uint32_t> cached{0, 0, 0};
  std::map<std::uint32_t, std::vector<std::uint16_t>> expected;  // (port, chip channel) -> samples

  const FileCheck check = check_date_file(
      dir_->path() / "cdr01001-003661.dat",
      [&](const fw::DateHeader& h, std::uint32_t source, const fw::MsadcChannel& ch) {
        if (h.type != fw::EventType::Physics) return;
        const std::uint32_t particle = h.detector_pattern;
        auto& w = written[{h.spill, particle}];
        w.trigger_mask = h.trigger_mask;
        w.event_in_spill = h.event_in_spill;
        w.sources.insert(source);
        if (cached != std::make_tuple(h.spill, particle, source)) {
          cached = {h.spill, particle, source};
          expected.clear();
          const std::size_t n = boards.at(source)->read_event(h.spill, particle, block);
          auto r = fw::decode_msadc(std::span<const std::uint32_t>(block.data(), n), particle, 0,
                                    [&](const fw::MsadcChannel& e) {
                                      auto& v = expected[e.port * 64 + e.chip_channel()];
                                      for (std::size_t k = 0; k < e.n_samples; ++k) v.push_back(e.sample(k));
                                    });
          ASSERT_TRUE(r.ok());
        }
        const auto& want = expected.at(ch.port * 64 + ch.chip_channel());
        ASSERT_EQ(ch.n_samples, want.size());
        for (std::size_t k = 0; k < ch.n_samples; ++k) {
          ++samples_compared;
          if (ch.sample(k) != want[k]) ++mismatches;
        }
      });
  EXPECT_EQ(check.errors, std::vector<std::string>{});
  EXPECT_EQ(check.by_type[1], 1u);
  EXPECT_EQ(check.by_type[5], kSpills);
  EXPECT_EQ(check.by_type[6], kSpills);
  EXPECT_EQ(check.by_type[2], 1u);
  EXPECT_EQ(check.by_type[7], summary_->total.written);
  EXPECT_EQ(written.size(), summary_->total.accepted_events);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(samples_compared, written.size() * 120u * config_->emulator.n_samples);

  // Every written event is complete and numbered 1, 2, ... in its spill.
  std::map<std::uint32_t, std::uint32_t> last_in_spill;
  for (const auto& [key, w] : written) {
    EXPECT_EQ(w.sources, (std::set<std::uint32_t>{620, 621, 622}));
    EXPECT_NE(w.trigger_mask, 0u);
    EXPECT_EQ(w.event_in_spill, ++last_in_spill[key.first]) << "spill " << key.first << " particle " << key.second;
  }

  // The invisible-mode line fired exactly on the signal-like electrons the
  // SRD tagged, and on nothing else: every ordinary electron, hadron and
  // muon was rejected.
  drivers::CellDeposits dep;
  std::set<Key> want_invisible;
  std::uint64_t signal = 0;
  std::uint64_t ordinary_electrons = 0;
  for (std::uint32_t spill = 1; spill <= kSpills; ++spill) {
    for (std::uint32_t p = 1; p <= kParticles; ++p) {
      const auto t = beam.generate(spill, p, dep);
      if (t.signal) ++signal;
      if (t.kind == drivers::ParticleKind::Electron && !t.signal) ++ordinary_electrons;
      if (t.signal && t.srd_tagged) want_invisible.insert({spill, p});
    }
  }
  std::set<Key> got_invisible;
  for (const auto& [key, w] : written) {
    if (w.trigger_mask & trigger::bit(TriggerLine::Invisible)) got_invisible.insert(key);
  }
  EXPECT_GT(signal, 100u);
  EXPECT_GT(ordinary_electrons, 17000u);
  EXPECT_EQ(got_invisible, want_invisible);
  EXPECT_EQ(summary_->total.accepted[0], want_invisible.size());
}

// Two-level readout: every accepted event was completed with every board's
// waveforms and every tracker front-end's block, exactly as emulated.
TEST_P(EndToEndTest, TwoLevelEventsCarryTheTrackersBlocksAsEmulated) {
  if (GetParam() != ReadoutMode::TwoLevel) {
    EXPECT_EQ(summary_->total.completion.requested, 0u);  // the direct readout completes nothing
    return;
  }
  const drivers::NA64Beam beam(config_->beam);
  const drivers::EmulatedTrackers trackers(beam, drivers::TrackerParameters{});
  std::vector<std::uint32_t> want(trackers.max_apv_words(drivers::ApvSource::Micromegas) +
                                  trackers.max_apv_words(drivers::ApvSource::Gem) + trackers.max_straw_words());
  std::vector<std::string> errors;
  const std::vector<std::uint32_t> words = read_date_words(dir_->path() / "cdr01001-003661.dat", errors);
  ASSERT_EQ(errors, std::vector<std::string>{});
  std::span<const std::uint32_t> rest(words);
  std::size_t offset = 0;
  std::uint64_t physics = 0;
  std::uint64_t blocks = 0;
  std::uint64_t mismatches = 0;
  while (!rest.empty()) {
    auto h = fw::walk_date_event(rest, offset, [&](const fw::DateHeader& hdr, const fw::EquipmentView& eq) {
      if (hdr.type != fw::EventType::Physics || eq.slink.source_id < 400 || eq.slink.source_id > 402) return;
      EXPECT_EQ(eq.equipment.attributes[0], 0u);  // not flagged missing
      std::size_t n = 0;
      switch (eq.slink.source_id) {
        case 400: n = trackers.write_apv(hdr.spill, hdr.detector_pattern, drivers::ApvSource::Micromegas, want); break;
        case 401: n = trackers.write_apv(hdr.spill, hdr.detector_pattern, drivers::ApvSource::Gem, want); break;
        default: n = trackers.write_straw(hdr.spill, hdr.detector_pattern, want); break;
      }
      ++blocks;
      if (!std::equal(eq.payload.begin(), eq.payload.end(), want.begin(), want.begin() + static_cast<std::ptrdiff_t>(n)) ||
          eq.payload.size() != n) {
        ++mismatches;
      }
    });
    ASSERT_TRUE(h.ok()) << h.error().message();
    physics += h->type == fw::EventType::Physics;
    rest = rest.subspan(h->size_bytes / 4);
    offset += h->size_bytes;
  }
  EXPECT_EQ(physics, summary_->total.written);
  EXPECT_EQ(blocks, 3 * physics);
  EXPECT_EQ(mismatches, 0u);
  const CompletionCounters& c = summary_->total.completion;
  EXPECT_EQ(c.requested, summary_->total.accepted_events);
  EXPECT_EQ(c.completed, summary_->total.written);
  EXPECT_EQ(c.incomplete, 0u);
  EXPECT_EQ(c.late_answers, 0u);
}

}  // namespace
}  // namespace na64::daq
