// SPDX-License-Identifier: Apache-2.0
// The run-control state machine on the real chain and a real run database.
#include "na64/daq/run_control.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <cstring>
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "na64/daq/config.hpp"
#include "na64/daq/raw_file.hpp"
#include "na64/daq/run_db.hpp"
#include "na64/firmware/date_event.hpp"
#include "na64/firmware/run_record.hpp"
#include "na64/testing/temp_dir.hpp"

namespace na64::daq {
namespace {

namespace fw = na64::firmware;
using namespace std::chrono_literals;
using control::RunState;

/// The embedded default with fields replaced (a regex on "name: value").
std::string config_text(const std::map<std::string, std::string>& fields = {}) {
  std::string text(default_config_text());
  for (const auto& [name, value] : fields) {
    const std::regex field(name + ": [^ \n]+");
    EXPECT_TRUE(std::regex_search(text, field)) << name;
    text = std::regex_replace(text, field, name + ": " + value, std::regex_constants::format_first_only);
  }
  return text;
}

std::string fast_config() { return config_text({{"particles_per_spill", "2000"}}); }

/// A run database and run control writing into a temporary directory.
struct Daemon {
  testing::TempDir dir;
  RunDatabase db{dir.path() / "runs.sqlite"};
  RunControl rc{db, RunControlOptions{"", dir.path() / "data"}};

  RunState state() const { return rc.status().state(); }
  void configure(const std::string& text = fast_config()) {
    const auto r = rc.configure(text);
    ASSERT_EQ(r.code(), control::OK) << r.message();
  }
  void wait_spill(std::uint32_t spill) {
    for (int i = 0; i < 3000 && rc.status().spill() < spill; ++i) std::this_thread::sleep_for(5ms);
    ASSERT_GE(rc.status().spill(), spill);
  }
};

// --- every command in every state ---

enum class Cmd { Configure, Start, Stop, Pause, Resume, Reset, Comment };
constexpr Cmd kAllCommands[] = {Cmd::Configure, Cmd::Start, Cmd::Stop, Cmd::Pause,
                                Cmd::Resume,    Cmd::Reset, Cmd::Comment};

const char* name(Cmd c) {
  switch (c) {
    case Cmd::Configure: return "configure";
    case Cmd::Start: return "start";
    case Cmd::Stop: return "stop";
    case Cmd::Pause: return "pause";
    case Cmd::Resume: return "resume";
    case Cmd::Reset: return "reset";
    case Cmd::Comment: return "comment";
  }
  return "?";
}

control::Reply apply(RunControl& rc, Cmd c) {
  switch (c) {
    case Cmd::Configure: return rc.configure(fast_config());
    case Cmd::Start: return rc.start("state test");
    case Cmd::Stop: return rc.stop();
    case Cmd::Pause: return rc.pause();
    case Cmd::Resume: return rc.resume();
    case Cmd::Reset: return rc.reset();
    case Cmd::Comment: return rc.comment("a remark");
  }
  return {};
}

// A first spill that lasts about 1.5 s: source 620 stalls at its 10th particle.
std::string slow_first_spill() {
  return fast_config() + "\nemulator { stall { source: 620 spill: 1 particle: 10 ms: 1500 } }\n";
}

// Brings `d` into `s`.
void enter(Daemon& d, RunState s) {
  switch (s) {
    case control::IDLE: return;
    case control::CONFIGURED: d.configure(); return;
    case control::RUNNING:
      d.configure(slow_first_spill());
      ASSERT_EQ(d.rc.start("").code(), control::OK);
      std::this_thread::sleep_for(200ms);  // inside spill 1, which lasts 1.5 s
      ASSERT_EQ(d.rc.status().spill(), 0u) << "spill 1 ended early: the stall did not hold it";
      return;
    case control::PAUSED:
      enter(d, control::RUNNING);
      ASSERT_EQ(d.rc.pause().code(), control::OK);
      return;
    case control::STOPPING:
      enter(d, control::RUNNING);
      ASSERT_EQ(d.rc.stop().code(), control::OK);
      return;
    case control::ERROR: {
      // The run fails when its files cannot be closed: the output directory is gone.
      d.configure();
      ASSERT_EQ(d.rc.start("").code(), control::OK);
      d.wait_spill(1);
      std::filesystem::remove_all(d.dir.path() / "data");
      ASSERT_EQ(d.rc.stop().code(), control::OK);
      ASSERT_TRUE(d.rc.wait_for(control::ERROR, 20s)) << to_string(d.state());
      return;
    }
    default: FAIL();
  }
}

struct Expect {
  RunState from;
  Cmd cmd;
  control::Code code;
  RunState to;
};

constexpr Expect kTable[] = {
    {control::IDLE, Cmd::Configure, control::OK, control::CONFIGURED},
    {control::IDLE, Cmd::Start, control::CONFLICT, control::IDLE},
    {control::IDLE, Cmd::Stop, control::CONFLICT, control::IDLE},
    {control::IDLE, Cmd::Pause, control::CONFLICT, control::IDLE},
    {control::IDLE, Cmd::Resume, control::CONFLICT, control::IDLE},
    {control::IDLE, Cmd::Reset, control::CONFLICT, control::IDLE},
    {control::IDLE, Cmd::Comment, control::CONFLICT, control::IDLE},
    {control::CONFIGURED, Cmd::Configure, control::OK, control::CONFIGURED},
    {control::CONFIGURED, Cmd::Start, control::OK, control::RUNNING},
    {control::CONFIGURED, Cmd::Stop, control::CONFLICT, control::CONFIGURED},
    {control::CONFIGURED, Cmd::Pause, control::CONFLICT, control::CONFIGURED},
    {control::CONFIGURED, Cmd::Resume, control::CONFLICT, control::CONFIGURED},
    {control::CONFIGURED, Cmd::Reset, control::OK, control::IDLE},
    {control::CONFIGURED, Cmd::Comment, control::CONFLICT, control::CONFIGURED},
    {control::RUNNING, Cmd::Configure, control::CONFLICT, control::RUNNING},
    {control::RUNNING, Cmd::Start, control::CONFLICT, control::RUNNING},
    {control::RUNNING, Cmd::Stop, control::OK, control::STOPPING},
    {control::RUNNING, Cmd::Pause, control::OK, control::PAUSED},
    {control::RUNNING, Cmd::Resume, control::CONFLICT, control::RUNNING},
    {control::RUNNING, Cmd::Reset, control::CONFLICT, control::RUNNING},
    {control::RUNNING, Cmd::Comment, control::OK, control::RUNNING},
    {control::PAUSED, Cmd::Configure, control::CONFLICT, control::PAUSED},
    {control::PAUSED, Cmd::Start, control::CONFLICT, control::PAUSED},
    {control::PAUSED, Cmd::Stop, control::OK, control::STOPPING},
    {control::PAUSED, Cmd::Pause, control::CONFLICT, control::PAUSED},
    {control::PAUSED, Cmd::Resume, control::OK, control::RUNNING},
    {control::PAUSED, Cmd::Reset, control::CONFLICT, control::PAUSED},
    {control::PAUSED, Cmd::Comment, control::OK, control::PAUSED},
    {control::STOPPING, Cmd::Configure, control::CONFLICT, control::STOPPING},
    {control::STOPPING, Cmd::Start, control::CONFLICT, control::STOPPING},
    {control::STOPPING, Cmd::Stop, control::CONFLICT, control::STOPPING},
    {control::STOPPING, Cmd::Pause, control::CONFLICT, control::STOPPING},
    {control::STOPPING, Cmd::Resume, control::CONFLICT, control::STOPPING},
    {control::STOPPING, Cmd::Reset, control::CONFLICT, control::STOPPING},
    {control::STOPPING, Cmd::Comment, control::OK, control::STOPPING},
    {control::ERROR, Cmd::Configure, control::CONFLICT, control::ERROR},
    {control::ERROR, Cmd::Start, control::CONFLICT, control::ERROR},
    {control::ERROR, Cmd::Stop, control::CONFLICT, control::ERROR},
    {control::ERROR, Cmd::Pause, control::CONFLICT, control::ERROR},
    {control::ERROR, Cmd::Resume, control::CONFLICT, control::ERROR},
    {control::ERROR, Cmd::Reset, control::OK, control::IDLE},
    {control::ERROR, Cmd::Comment, control::CONFLICT, control::ERROR},
};

class EveryCommandInEveryState : public ::testing::TestWithParam<Expect> {};

TEST_P(EveryCommandInEveryState, IsDoneWholeOrRefusedWithTheStateAndChangesNothing) {
  const Expect e = GetParam();
  Daemon d;
  enter(d, e.from);
  ASSERT_EQ(d.state(), e.from);
  const control::Status before = d.rc.status();
  const control::Reply r = apply(d.rc, e.cmd);
  EXPECT_EQ(r.code(), e.code) << r.message();
  EXPECT_EQ(r.status().state(), e.to) << r.message();
  if (e.code == control::CONFLICT) {
    EXPECT_NE(r.message().find(std::string(name(e.cmd)) + ": not valid in state " + to_string(e.from)),
              std::string::npos)
        << r.message();
    control::Status after = d.rc.status();
    // A refused command changes nothing (a run in progress may only have advanced its spill counts).
    after.set_spill(before.spill());
    after.set_events_written(before.events_written());
    after.set_bytes_written(before.bytes_written());
    EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
  }
  d.rc.stop();  // leaves no run behind, whatever the state
}

std::string case_name(const ::testing::TestParamInfo<Expect>& info) {
  return std::string(to_string(info.param.from)) + "_" + name(info.param.cmd);
}

INSTANTIATE_TEST_SUITE_P(RunControl, EveryCommandInEveryState, ::testing::ValuesIn(kTable), case_name);

// --- whole runs ---

TEST(RunControl, TwoClientsRacingToStartExactlyOneWins) {
  for (int trial = 0; trial < 10; ++trial) {
    Daemon d;
    d.configure();
    control::Reply a;
    control::Reply b;
    {
      std::jthread t1([&] { a = d.rc.start("client a"); });
      std::jthread t2([&] { b = d.rc.start("client b"); });
    }
    EXPECT_EQ((a.code() == control::OK) + (b.code() == control::OK), 1) << a.message() << " / " << b.message();
    EXPECT_EQ((a.code() == control::CONFLICT) + (b.code() == control::CONFLICT), 1);
    ASSERT_EQ(d.rc.stop().code(), control::OK);
    ASSERT_TRUE(d.rc.wait_for(control::CONFIGURED, 20s));
    EXPECT_EQ(d.db.runs(10).size(), 1u);
  }
}

TEST(RunControl, StopFinishesTheSpillDrainsAndRecordsTheRun) {
  Daemon d;
  d.configure();
  ASSERT_EQ(d.rc.start("beam tuning").code(), control::OK);
  const std::uint32_t run = d.rc.status().run();
  d.wait_spill(3);
  ASSERT_EQ(d.rc.comment("ECAL HV nominal").code(), control::OK);
  ASSERT_EQ(d.rc.stop().code(), control::OK);
  ASSERT_TRUE(d.rc.wait_for(control::CONFIGURED, 20s));

  const auto rec = d.db.run(run);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->ended, "stopped");
  EXPECT_EQ(rec->comment, "beam tuning");
  EXPECT_EQ(rec->comments, std::vector<std::string>{"ECAL HV nominal"});
  EXPECT_EQ(rec->config_text, fast_config());
  EXPECT_EQ(rec->config_hash, d.rc.status().config_hash());
  const auto spills = d.db.spills(run);
  ASSERT_GE(spills.size(), 3u);
  std::uint64_t written = 0;
  for (std::size_t i = 0; i < spills.size(); ++i) {
    EXPECT_EQ(spills[i].spill, i + 1);
    EXPECT_EQ(spills[i].particles, 2000u) << "spill " << spills[i].spill << " not read out whole";
    EXPECT_EQ(spills[i].incomplete, 0u);
    written += spills[i].written;
  }
  EXPECT_EQ(d.rc.status().events_written(), written);
  // The end-of-run record is there: the file ends with it.
  const auto file = d.dir.path() / "data" / fmt::format("cdr01001-{:06}.dat", run);
  ASSERT_TRUE(std::filesystem::exists(file)) << file;
}

TEST(RunControl, PauseTakesNoSpillUntilResume) {
  Daemon d;
  d.configure();
  ASSERT_EQ(d.rc.start("").code(), control::OK);
  d.wait_spill(1);
  ASSERT_EQ(d.rc.pause().code(), control::OK);
  // The spill in progress ends and reaches disk; then nothing more begins.
  for (int i = 0; i < 3000; ++i) {
    const auto s = d.rc.status();
    if (s.spill() == s.spills_begun()) break;
    std::this_thread::sleep_for(5ms);
  }
  const auto held = d.rc.status();
  ASSERT_EQ(held.spill(), held.spills_begun());
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(d.rc.status().spills_begun(), held.spills_begun()) << "a spill began while paused";
  EXPECT_EQ(d.rc.status().spill(), held.spill());
  ASSERT_EQ(d.rc.resume().code(), control::OK);
  d.wait_spill(held.spill() + 2);
  ASSERT_EQ(d.rc.stop().code(), control::OK);
  ASSERT_TRUE(d.rc.wait_for(control::CONFIGURED, 20s));
}

TEST(RunControl, RunNumbersOnlyIncreaseAcrossRunsAndRestarts) {
  testing::TempDir dir;
  std::uint32_t last = 0;
  for (int daemon = 0; daemon < 2; ++daemon) {
    RunDatabase db(dir.path() / "runs.sqlite");
    RunControl rc(db, RunControlOptions{"", dir.path() / "data"});
    ASSERT_EQ(rc.configure(fast_config()).code(), control::OK);
    for (int i = 0; i < 2; ++i) {
      ASSERT_EQ(rc.start("").code(), control::OK);
      EXPECT_GT(rc.status().run(), last);
      last = rc.status().run();
      ASSERT_EQ(rc.stop().code(), control::OK);
      ASSERT_TRUE(rc.wait_for(control::CONFIGURED, 20s));
    }
  }
  EXPECT_EQ(last, 4u);
}

TEST(RunControl, BadConfigurationIsRefusedWithTheFieldPathAndChangesNothing) {
  Daemon d;
  d.configure();
  const std::string hash = d.rc.status().config_hash();
  const auto r = d.rc.configure(config_text({{"ecal_max_gev", "-1"}}));
  EXPECT_EQ(r.code(), control::BAD_REQUEST);
  EXPECT_NE(r.message().find("trigger.ecal_max_gev: -1 is out of range"), std::string::npos) << r.message();
  EXPECT_EQ(d.rc.status().config_hash(), hash);
  const auto unknown = d.rc.configure(config_text({{"particles_per_spill", "2000"}, {"seed", "1 colour: 3"}}));
  EXPECT_EQ(unknown.code(), control::BAD_REQUEST);
  EXPECT_NE(unknown.message().find("colour"), std::string::npos) << unknown.message();
}

TEST(RunControl, UnwritableOutputDirectoryIsRefusedAtConfigure) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "plain-file") << "x";
  RunDatabase db(dir.path() / "runs.sqlite");
  // sysfs refuses new files even to root; a path below a plain file cannot be created.
  const std::pair<std::string, std::string> cases[] = {
      {"/sys/kernel", "/sys/kernel: not writable"},
      {(dir.path() / "plain-file" / "data").string(), "cannot create"},
  };
  for (const auto& [path, why] : cases) {
    RunControl rc(db, RunControlOptions{"", path});
    const auto r = rc.configure(fast_config());
    EXPECT_EQ(r.code(), control::BAD_REQUEST);
    EXPECT_NE(r.message().find("run.output_dir: " + path.substr(0, 11)), std::string::npos) << r.message();
    EXPECT_NE(r.message().find(why), std::string::npos) << r.message();
    EXPECT_EQ(rc.status().state(), control::IDLE);
  }
}

TEST(RunControl, ThresholdsOutOfRangeAreRefusedWithTheField) {
  Daemon d;
  d.configure();
  control::Thresholds t = to_proto(trigger::ThresholdSet{});
  t.set_srd_max_gev(0.0001);  // below srd_min_gev
  const auto r = d.rc.set_thresholds(t, "", false, "expert");
  EXPECT_EQ(r.code(), control::BAD_REQUEST);
  EXPECT_NE(r.message().find("thresholds.srd_max_gev"), std::string::npos) << r.message();
}

// Physics events of a run file: (spill, trigger record) per event.
std::vector<std::pair<std::uint32_t, fw::TriggerRecord>> trigger_records(const std::filesystem::path& file,
                                                                          std::string* config) {
  std::vector<std::string> errors;
  const std::vector<std::uint32_t> words = read_date_words(file, errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  std::vector<std::pair<std::uint32_t, fw::TriggerRecord>> out;
  std::span<const std::uint32_t> rest(words);
  while (!rest.empty()) {
    const auto h = fw::walk_date_event(rest, 0, [](const fw::DateHeader&, const fw::EquipmentView&) {});
    if (!h) {
      ADD_FAILURE() << h.error().message();
      break;
    }
    if (h->type == fw::EventType::Physics) out.emplace_back(h->spill, fw::trigger_record(*h));
    if (h->type == fw::EventType::StartOfRun && config) {
      const auto rec = fw::read_config_record(rest.subspan(fw::kDateHeaderWords, h->size_bytes / 4 - fw::kDateHeaderWords), 68);
      if (rec) *config = std::string(rec->text);
      else ADD_FAILURE() << rec.error().message();
    }
    rest = rest.subspan(h->size_bytes / 4);
  }
  return out;
}

TEST(RunControl, HundredRandomThresholdChangesNeverMixInASpill) {
  Daemon d;
  d.configure(config_text({{"particles_per_spill", "1000"}, {"beam_prescale", "7"}}));
  ASSERT_EQ(d.rc.start("threshold changes").code(), control::OK);
  const std::uint32_t run = d.rc.status().run();
  std::mt19937 rng(4);
  std::map<std::uint32_t, std::uint32_t> prescale_of;  // set id -> its beam prescale
  prescale_of[d.rc.status().thresholds().active_id()] = 7;
  std::uint32_t shadow_id = 0;
  for (int change = 0; change < 100; ++change) {
    trigger::ThresholdSet t;
    t.beam_prescale = static_cast<std::uint32_t>(2 + rng() % 50);
    t.ecal_max_gev = static_cast<float>(20 + rng() % 60);
    const bool shadow = change % 10 == 9;
    const auto r = d.rc.set_thresholds(to_proto(t), fmt::format("change {}", change), shadow, "expert");
    ASSERT_EQ(r.code(), control::OK) << r.message();
    const std::uint32_t id = r.threshold_set();
    ASSERT_NE(id, 0u);
    if (shadow) shadow_id = id;
    prescale_of[id] = t.beam_prescale;
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
  }
  d.wait_spill(std::max(6u, d.rc.status().spill() + 1));
  ASSERT_EQ(d.rc.stop().code(), control::OK);
  ASSERT_TRUE(d.rc.wait_for(control::CONFIGURED, 30s));

  const auto spills = d.db.spills(run);
  ASSERT_GE(spills.size(), 6u);
  std::map<std::uint32_t, std::uint32_t> set_of_spill;
  std::set<std::uint32_t> sets_used;
  bool shadow_seen = false;
  for (const auto& s : spills) {
    ASSERT_TRUE(prescale_of.contains(s.threshold_set)) << "spill " << s.spill << " names set " << s.threshold_set;
    set_of_spill[s.spill] = s.threshold_set;
    sets_used.insert(s.threshold_set);
    // The whole spill was triggered with one prescale: exactly floor(decided / prescale) beam triggers.
    const std::uint64_t decided = s.built - s.decode_errors;
    EXPECT_EQ(s.accepted[1], decided / prescale_of[s.threshold_set]) << "spill " << s.spill;
    if (s.shadow_set != 0) {
      shadow_seen = true;
      EXPECT_EQ(s.shadow_accepted[1], decided / prescale_of[s.shadow_set]) << "spill " << s.spill;
      EXPECT_LE(s.shadow_overlap[1], std::min(s.shadow_accepted[1], s.accepted[1]));
    }
  }
  EXPECT_GE(sets_used.size(), 3u) << "the changes should span several spills";
  EXPECT_TRUE(shadow_seen);
  (void)shadow_id;

  // Every written event's trigger record names its spill's set.
  std::size_t events = 0;
  std::string config;
  for (const auto& f : std::filesystem::directory_iterator(d.dir.path() / "data")) {
    if (f.path().extension() != ".dat") continue;
    for (const auto& [spill, rec] : trigger_records(f.path(), &config)) {
      ++events;
      ASSERT_EQ(rec.threshold_set, set_of_spill.at(spill)) << "spill " << spill << " mixes threshold sets";
    }
  }
  EXPECT_GT(events, 100u);
  EXPECT_EQ(config, config_text({{"particles_per_spill", "1000"}, {"beam_prescale", "7"}}))
      << "the start of run carries the configuration";

  const auto history = d.db.threshold_history(run);
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.front().first_spill, 1u);
}

}  // namespace
}  // namespace na64::daq
