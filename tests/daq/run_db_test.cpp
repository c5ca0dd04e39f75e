// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/run_db.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "na64/testing/temp_dir.hpp"

namespace na64::daq {
namespace {

namespace fs = std::filesystem;

// The first column of the first row of `sql`, through a connection of the
// test's own, not the one under test.
std::string query(const fs::path& file, const char* sql) {
  sqlite3* db = nullptr;
  std::string out = "(error)";
  if (::sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_stmt* s = nullptr;
    if (::sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK) {
      const int rc = ::sqlite3_step(s);
      if (rc == SQLITE_ROW) {
        const auto* text = ::sqlite3_column_text(s, 0);
        out = text != nullptr ? reinterpret_cast<const char*>(text) : "(null)";
      } else if (rc == SQLITE_DONE) {
        out = "(no row)";
      }
    }
    ::sqlite3_finalize(s);
  }
  ::sqlite3_close_v2(db);
  return out;
}

// The message of the DatabaseError that `f` throws, or a note that it threw
// nothing or something else.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const DatabaseError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a DatabaseError: ") + e.what();
  }
  return "(no exception)";
}

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::uint32_t begin(RunDatabase& db, std::uint32_t at_least = 0) {
  return db.begin_run(at_least, 1'000, "", std::string(64, 'a'), "run {}\n");
}

class RunDatabaseTest : public ::testing::Test {
 protected:
  na64::testing::TempDir dir_;
  fs::path file_ = dir_.path() / "runs.sqlite";
};

TEST_F(RunDatabaseTest, CreatesSchemaInWalMode) {
  const RunDatabase db(file_);
  EXPECT_EQ(db.file(), file_);
  EXPECT_EQ(query(file_, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(query(file_, "PRAGMA user_version"), "2");
  EXPECT_EQ(query(file_,
                  "SELECT group_concat(name, ' ') FROM "
                  "(SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name)"),
            "alarms run_comments run_counter runs spills sqlite_sequence threshold_activations threshold_sets");
  EXPECT_EQ(query(file_, "SELECT last_number FROM run_counter WHERE id = 0"), "0");
}

TEST_F(RunDatabaseTest, RecordsRunStartAndEnd) {
  RunDatabase db(file_);
  const std::uint32_t n = db.begin_run(0, 1'700'000'000'123, "cosmics", std::string(64, 'f'), "run { spills: 3 }\n");
  ASSERT_EQ(n, 1u);

  auto r = db.run(1);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->number, 1u);
  EXPECT_EQ(r->start_unix_ms, 1'700'000'000'123);
  EXPECT_EQ(r->stop_unix_ms, 0);
  EXPECT_EQ(r->comment, "cosmics");
  EXPECT_EQ(r->config_hash, std::string(64, 'f'));
  EXPECT_EQ(r->config_text, "run { spills: 3 }\n");
  EXPECT_EQ(r->ended, "");
  EXPECT_TRUE(r->comments.empty());

  db.end_run(1, 1'700'000'060'456, "spill limit");
  r = db.run(1);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->stop_unix_ms, 1'700'000'060'456);
  EXPECT_EQ(r->ended, "spill limit");
  EXPECT_EQ(r->start_unix_ms, 1'700'000'000'123);

  EXPECT_FALSE(db.run(2).has_value());
}

TEST_F(RunDatabaseTest, RunNumbersIncreaseAndRespectAtLeast) {
  RunDatabase db(file_);
  EXPECT_EQ(begin(db), 1u);
  EXPECT_EQ(begin(db), 2u);
  EXPECT_EQ(begin(db, 10), 10u);
  EXPECT_EQ(begin(db, 5), 11u);
  EXPECT_EQ(begin(db, 12), 12u);
  EXPECT_EQ(begin(db), 13u);
  EXPECT_FALSE(db.run(3).has_value());
}

// Runs are never deleted, but the guarantee does not rest on that: the
// counter remembers the highest number given.
TEST_F(RunDatabaseTest, RunNumberNeverReusedEvenIfItsRowIsGone) {
  RunDatabase db(file_);
  ASSERT_EQ(begin(db, 20), 20u);
  ASSERT_EQ(query(file_, "DELETE FROM runs WHERE number = 20 RETURNING number"), "20");
  EXPECT_EQ(begin(db), 21u);
}

TEST_F(RunDatabaseTest, ReopenContinuesNumbering) {
  {
    RunDatabase db(file_);
    EXPECT_EQ(begin(db, 40), 40u);
    db.end_run(40, 2'000, "stopped");
  }
  RunDatabase db(file_);
  EXPECT_EQ(begin(db), 41u);
  const auto r = db.run(40);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ended, "stopped");
  EXPECT_EQ(r->stop_unix_ms, 2'000);
}

TEST_F(RunDatabaseTest, RunNotEndedIsInterruptedAfterReopen) {
  {
    RunDatabase db(file_);
    ASSERT_EQ(begin(db), 1u);
    db.end_run(1, 2'000, "stopped");
    ASSERT_EQ(begin(db), 2u);
  }
  RunDatabase db(file_);
  const auto stopped = db.run(1);
  const auto left = db.run(2);
  ASSERT_TRUE(stopped.has_value());
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(stopped->ended, "stopped");
  EXPECT_EQ(stopped->stop_unix_ms, 2'000);
  EXPECT_EQ(left->ended, "interrupted");
  EXPECT_EQ(left->stop_unix_ms, 0);
  EXPECT_EQ(error_of([&] { db.end_run(2, 3'000, "stopped"); }),
            "run database " + file_.string() + ": end run 2: run 2 has already ended (interrupted)");
}

TEST_F(RunDatabaseTest, SurvivesKillDuringRun) {
  const pid_t child = ::fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    // Nothing here may return into the test runner: the child ends by
    // SIGKILL with the database open, or by _exit on a failure.
    try {
      RunDatabase db(file_);
      const std::uint32_t n = db.begin_run(7, 5'000, "killed", std::string(64, 'b'), "cfg");
      SpillRecord s;
      s.run = n;
      s.spill = 1;
      s.particles = 123'456;
      db.add_spill(s);
      std::raise(SIGKILL);
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(2);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);
  // The committed data is still only in the write-ahead log.
  EXPECT_TRUE(fs::exists(fs::path(file_.string() + "-wal")));

  RunDatabase db(file_);
  const auto r = db.run(7);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ended, "interrupted");
  EXPECT_EQ(r->stop_unix_ms, 0);
  EXPECT_EQ(r->start_unix_ms, 5'000);
  EXPECT_EQ(r->comment, "killed");
  const auto spills = db.spills(7);
  ASSERT_EQ(spills.size(), 1u);
  EXPECT_EQ(spills[0].spill, 1u);
  EXPECT_EQ(spills[0].particles, 123'456u);
  EXPECT_EQ(begin(db), 8u);
}

TEST_F(RunDatabaseTest, SpillRoundTripsEveryField) {
  RunDatabase db(file_);
  const std::uint32_t run = begin(db);
  SpillRecord s;
  s.run = run;
  s.spill = 3;
  s.threshold_set = 4;
  s.particles = 5;
  s.built = 6;
  s.incomplete = 7;
  s.accepted = {8, 9, 10};
  s.accepted_events = 11;
  s.written = 12;
  s.bytes = 5'000'000'000'013;
  s.decode_errors = std::numeric_limits<std::uint64_t>::max();  // beyond int64: stored as its bit pattern
  s.seconds = 15.25;
  s.dead_time = 0.125;
  s.shadow_set = 17;
  s.shadow_accepted = {18, 19, 20};
  s.shadow_overlap = {21, 22, 23};
  s.verdict = "bad";
  s.verdict_reasons = {"ECAL1 cell (3,4) dead: 0 hits, 2500 expected", "SRD rate 30 % low: two\nlines"};
  db.add_spill(s);
  SpillRecord earlier;
  earlier.run = run;
  earlier.spill = 2;
  earlier.particles = 99;
  db.add_spill(earlier);

  const auto got = db.spills(run);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].spill, 2u);
  EXPECT_EQ(got[0].particles, 99u);
  const SpillRecord& g = got[1];
  EXPECT_EQ(g.run, run);
  EXPECT_EQ(g.spill, 3u);
  EXPECT_EQ(g.threshold_set, 4u);
  EXPECT_EQ(g.particles, 5u);
  EXPECT_EQ(g.built, 6u);
  EXPECT_EQ(g.incomplete, 7u);
  EXPECT_EQ(g.accepted, s.accepted);
  EXPECT_EQ(g.accepted_events, 11u);
  EXPECT_EQ(g.written, 12u);
  EXPECT_EQ(g.bytes, 5'000'000'000'013u);
  EXPECT_EQ(g.decode_errors, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(g.seconds, 15.25);
  EXPECT_EQ(g.dead_time, 0.125);
  EXPECT_EQ(g.shadow_set, 17u);
  EXPECT_EQ(g.shadow_accepted, s.shadow_accepted);
  EXPECT_EQ(g.shadow_overlap, s.shadow_overlap);
  EXPECT_EQ(g.verdict, "bad");
  // One reason per line: a line break inside a reason becomes a space.
  EXPECT_EQ(g.verdict_reasons,
            (std::vector<std::string>{"ECAL1 cell (3,4) dead: 0 hits, 2500 expected", "SRD rate 30 % low: two lines"}));
  EXPECT_EQ(got[0].verdict, "");
  EXPECT_TRUE(got[0].verdict_reasons.empty());
  // The per-line columns in TriggerLine order, by name.
  EXPECT_EQ(query(file_, "SELECT accepted_invisible || ' ' || accepted_beam || ' ' || accepted_random || ' ' || "
                         "shadow_overlap_random FROM spills WHERE spill = 3"),
            "8 9 10 23");

  EXPECT_TRUE(db.spills(run + 1).empty());
}

TEST_F(RunDatabaseTest, ThresholdSetRoundTripsEveryField) {
  RunDatabase db(file_);
  trigger::ThresholdSet t;
  t.ecal_max_gev = 41.5f;
  t.preshower_min_gev = 0.25f;
  t.hcal_max_gev = 1.75f;
  t.srd_min_gev = 0.002f;
  t.srd_max_gev = 0.07f;
  t.veto_max_gev = 0.004f;
  t.beam_prescale = 999;
  t.random_period = 4999;
  const std::uint32_t id = db.add_threshold_set(t, 1'234, "expert", "lower ECAL cut");
  EXPECT_EQ(id, 1u);

  const auto check = [&](const ThresholdSetRecord& r) {
    EXPECT_EQ(r.id, id);
    EXPECT_EQ(r.created_unix_ms, 1'234);
    EXPECT_EQ(r.author, "expert");
    EXPECT_EQ(r.comment, "lower ECAL cut");
    EXPECT_EQ(r.set.ecal_max_gev, 41.5f);
    EXPECT_EQ(r.set.preshower_min_gev, 0.25f);
    EXPECT_EQ(r.set.hcal_max_gev, 1.75f);
    EXPECT_EQ(r.set.srd_min_gev, 0.002f);
    EXPECT_EQ(r.set.srd_max_gev, 0.07f);
    EXPECT_EQ(r.set.veto_max_gev, 0.004f);
    EXPECT_EQ(r.set.beam_prescale, 999u);
    EXPECT_EQ(r.set.random_period, 4999u);
  };
  const auto one = db.threshold_set(id);
  ASSERT_TRUE(one.has_value());
  check(*one);
  const auto all = db.threshold_sets();
  ASSERT_EQ(all.size(), 1u);
  check(all[0]);
  EXPECT_FALSE(db.threshold_set(id + 1).has_value());
}

TEST_F(RunDatabaseTest, ThresholdSetIdsIncreaseAndAreNeverReused) {
  RunDatabase db(file_);
  trigger::ThresholdSet t;
  EXPECT_EQ(db.add_threshold_set(t, 1, "config", "a"), 1u);
  t.beam_prescale = 10;
  EXPECT_EQ(db.add_threshold_set(t, 2, "expert", "b"), 2u);
  EXPECT_EQ(db.add_threshold_set(t, 3, "expert", "c"), 3u);

  const auto all = db.threshold_sets();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, 1u);
  EXPECT_EQ(all[0].comment, "a");
  EXPECT_EQ(all[0].set.beam_prescale, 1000u);
  EXPECT_EQ(all[1].id, 2u);
  EXPECT_EQ(all[1].set.beam_prescale, 10u);
  EXPECT_EQ(all[2].id, 3u);

  // Even if the newest row went away, its id is not handed out again.
  ASSERT_EQ(query(file_, "DELETE FROM threshold_sets WHERE id = 3 RETURNING id"), "3");
  EXPECT_EQ(db.add_threshold_set(t, 4, "expert", "d"), 4u);
}

TEST_F(RunDatabaseTest, CommentsOldestFirstAndRunsNewestFirst) {
  RunDatabase db(file_);
  ASSERT_EQ(begin(db), 1u);
  ASSERT_EQ(begin(db), 2u);
  ASSERT_EQ(db.begin_run(0, 3'000, "third", "h3", "cfg3"), 3u);
  db.add_comment(1, 30, "first");
  db.add_comment(1, 10, "second, with an earlier clock");
  db.add_comment(2, 20, "other run");
  db.add_comment(1, 40, "third");

  const auto r1 = db.run(1);
  ASSERT_TRUE(r1.has_value());
  EXPECT_EQ(r1->comments, (std::vector<std::string>{"first", "second, with an earlier clock", "third"}));

  const auto two = db.runs(2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].number, 3u);
  EXPECT_EQ(two[0].comment, "third");
  EXPECT_EQ(two[0].config_text, "cfg3");
  EXPECT_EQ(two[1].number, 2u);
  EXPECT_EQ(two[1].comments, std::vector<std::string>{"other run"});

  const auto all = db.runs(100);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].number, 1u);
  EXPECT_EQ(all[2].comments.size(), 3u);
  EXPECT_TRUE(db.runs(0).empty());
}

TEST_F(RunDatabaseTest, ThresholdHistoryByFirstSpillThenInsertion) {
  RunDatabase db(file_);
  const std::uint32_t run = begin(db);
  const std::uint32_t other = begin(db);
  const trigger::ThresholdSet t;
  const std::uint32_t a = db.add_threshold_set(t, 1, "config", "");
  const std::uint32_t b = db.add_threshold_set(t, 2, "expert", "");
  const std::uint32_t c = db.add_threshold_set(t, 3, "expert", "");
  db.add_threshold_activation({run, 5, b, false});
  db.add_threshold_activation({run, 1, a, false});
  db.add_threshold_activation({other, 2, c, false});
  db.add_threshold_activation({run, 5, c, true});

  const auto h = db.threshold_history(run);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].run, run);
  EXPECT_EQ(h[0].first_spill, 1u);
  EXPECT_EQ(h[0].set_id, a);
  EXPECT_FALSE(h[0].shadow);
  EXPECT_EQ(h[1].first_spill, 5u);
  EXPECT_EQ(h[1].set_id, b);
  EXPECT_FALSE(h[1].shadow);
  EXPECT_EQ(h[2].first_spill, 5u);
  EXPECT_EQ(h[2].set_id, c);
  EXPECT_TRUE(h[2].shadow);

  EXPECT_EQ(error_of([&] { db.add_threshold_activation({run, 7, 9, false}); }),
            "run database " + file_.string() + ": activate threshold set 9 in run 1 from spill 7: "
            "threshold set 9 is unknown");
  EXPECT_EQ(db.threshold_history(run).size(), 3u);
}

TEST_F(RunDatabaseTest, RefusesFileThatIsNotADatabase) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "run 42 was a good run\n";
  { std::ofstream(file_) << text; }

  EXPECT_EQ(error_of([&] { RunDatabase db(file_); }),
            "run database " + file_.string() + ": read schema version: file is not a database");
  EXPECT_EQ(read_all(file_), text);
}

TEST_F(RunDatabaseTest, RefusesOtherSchemaVersion) {
  { RunDatabase db(file_); }
  ASSERT_EQ(query(file_, "PRAGMA user_version = 7"), "(no row)");

  EXPECT_EQ(error_of([&] { RunDatabase db(file_); }),
            "run database " + file_.string() + " has schema version 7, this program reads and writes version 2");
  EXPECT_EQ(query(file_, "PRAGMA user_version"), "7");
}

TEST_F(RunDatabaseTest, UpgradesAVersionOneFileKeepingItsRuns) {
  std::uint32_t run = 0;
  {
    RunDatabase db(file_);
    run = begin(db);
    SpillRecord s;
    s.run = run;
    s.spill = 1;
    s.particles = 2000;
    db.add_spill(s);
  }
  // Back to the version-1 layout: no verdict columns, no alarms.
  ASSERT_EQ(query(file_, "ALTER TABLE spills DROP COLUMN verdict"), "(no row)");
  ASSERT_EQ(query(file_, "ALTER TABLE spills DROP COLUMN verdict_reasons"), "(no row)");
  ASSERT_EQ(query(file_, "DROP TABLE alarms"), "(no row)");
  ASSERT_EQ(query(file_, "PRAGMA user_version = 1"), "(no row)");

  RunDatabase db(file_);
  EXPECT_EQ(query(file_, "PRAGMA user_version"), "2");
  const auto spills = db.spills(run);
  ASSERT_EQ(spills.size(), 1u);
  EXPECT_EQ(spills[0].particles, 2000u);
  EXPECT_EQ(spills[0].verdict, "");
  EXPECT_TRUE(db.alarms(false, 10).empty());
  EXPECT_EQ(begin(db), run + 1);
}

TEST_F(RunDatabaseTest, AlarmsFromRaiseToAcknowledgement) {
  RunDatabase db(file_);
  AlarmRecord a;
  a.run = 3;
  a.condition = "verdict";
  a.level = "error";
  a.text = "run 3 spill 2: verdict bad: ECAL1 cell (3,4) dead: 0 hits, 250 expected";
  a.first_spill = 2;
  a.last_spill = 2;
  a.raised_unix_ms = 1'000;
  a.last_unix_ms = 1'000;
  const std::uint64_t first = db.add_alarm(a);
  EXPECT_EQ(first, 1u);
  a.condition = "disk";
  a.level = "warning";
  a.first_spill = 0;
  a.last_spill = 0;
  EXPECT_EQ(db.add_alarm(a), 2u);

  db.update_alarm(first, 4, 5'000);
  db.acknowledge_alarm(2, "shift", 6'000);
  const auto open = db.alarms(true, 100);
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].id, 1u);
  EXPECT_EQ(open[0].run, 3u);
  EXPECT_EQ(open[0].condition, "verdict");
  EXPECT_EQ(open[0].level, "error");
  EXPECT_EQ(open[0].text, "run 3 spill 2: verdict bad: ECAL1 cell (3,4) dead: 0 hits, 250 expected");
  EXPECT_EQ(open[0].first_spill, 2u);
  EXPECT_EQ(open[0].last_spill, 4u);
  EXPECT_EQ(open[0].raised_unix_ms, 1'000);
  EXPECT_EQ(open[0].last_unix_ms, 5'000);
  EXPECT_EQ(open[0].acknowledged_by, "");
  EXPECT_EQ(open[0].acknowledged_unix_ms, 0);

  const auto all = db.alarms(false, 100);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].id, 2u);
  EXPECT_EQ(all[1].acknowledged_by, "shift");
  EXPECT_EQ(all[1].acknowledged_unix_ms, 6'000);
  EXPECT_EQ(db.alarms(false, 1).at(0).id, 2u) << "the newest when limited";

  const std::string prefix = "run database " + file_.string() + ": ";
  EXPECT_EQ(error_of([&] { db.acknowledge_alarm(2, "shift", 7'000); }),
            prefix + "acknowledge alarm 2: alarm 2 is already acknowledged (by shift)");
  EXPECT_EQ(error_of([&] { db.acknowledge_alarm(9, "shift", 7'000); }), prefix + "acknowledge alarm 9: alarm 9 is unknown");
  EXPECT_EQ(error_of([&] { db.update_alarm(9, 1, 7'000); }), prefix + "update alarm 9: alarm 9 is unknown");
  a.level = "fatal";
  EXPECT_EQ(error_of([&] { db.add_alarm(a); }).rfind(prefix + "add alarm \"disk\" of run 3: CHECK constraint failed", 0), 0u);
}

TEST_F(RunDatabaseTest, RefusesDatabaseOfAnotherProgram) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(::sqlite3_open_v2(file_.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr), SQLITE_OK);
  ASSERT_EQ(::sqlite3_exec(raw, "CREATE TABLE calibration (channel INTEGER)", nullptr, nullptr, nullptr), SQLITE_OK);
  ::sqlite3_close_v2(raw);

  EXPECT_EQ(error_of([&] { RunDatabase db(file_); }),
            "run database " + file_.string() + " has schema version 0, this program reads and writes version 2");
  EXPECT_EQ(query(file_, "PRAGMA journal_mode"), "delete");
  EXPECT_EQ(query(file_, "SELECT count(*) FROM sqlite_master"), "1");
}

TEST_F(RunDatabaseTest, RefusesOpeningADirectory) {
  const std::string msg = error_of([&] { RunDatabase db(dir_.path()); });
  EXPECT_EQ(msg.rfind("run database " + dir_.path().string() + ": ", 0), 0u) << msg;
}

TEST_F(RunDatabaseTest, EndRunTwiceIsRefused) {
  RunDatabase db(file_);
  ASSERT_EQ(begin(db), 1u);
  db.end_run(1, 2'000, "stopped");
  EXPECT_EQ(error_of([&] { db.end_run(1, 3'000, "error: disk full"); }),
            "run database " + file_.string() + ": end run 1: run 1 has already ended (stopped)");
  const auto r = db.run(1);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ended, "stopped");
  EXPECT_EQ(r->stop_unix_ms, 2'000);
}

TEST_F(RunDatabaseTest, EndRunWithoutHowIsRefused) {
  RunDatabase db(file_);
  ASSERT_EQ(begin(db), 1u);
  EXPECT_EQ(error_of([&] { db.end_run(1, 2'000, ""); }),
            "run database " + file_.string() + ": end run 1: how the run ended must not be empty");
  const auto r = db.run(1);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->stop_unix_ms, 0);
}

TEST_F(RunDatabaseTest, UnknownRunIsRefused) {
  RunDatabase db(file_);
  ASSERT_EQ(begin(db), 1u);
  const std::string prefix = "run database " + file_.string() + ": ";
  EXPECT_EQ(error_of([&] { db.end_run(42, 2'000, "stopped"); }), prefix + "end run 42: run 42 is unknown");
  SpillRecord s;
  s.run = 42;
  s.spill = 1;
  EXPECT_EQ(error_of([&] { db.add_spill(s); }), prefix + "add spill 1 of run 42: run 42 is unknown");
  EXPECT_EQ(error_of([&] { db.add_comment(42, 1, "x"); }), prefix + "add comment to run 42: run 42 is unknown");
  const std::uint32_t set = db.add_threshold_set({}, 1, "config", "");
  EXPECT_EQ(error_of([&] { db.add_threshold_activation({42, 1, set, true}); }),
            prefix + "activate threshold set 1 as shadow in run 42 from spill 1: run 42 is unknown");
  EXPECT_FALSE(db.run(42).has_value());
  EXPECT_TRUE(db.spills(42).empty());
  EXPECT_TRUE(db.threshold_history(42).empty());
}

TEST_F(RunDatabaseTest, DuplicateSpillIsRefused) {
  RunDatabase db(file_);
  ASSERT_EQ(begin(db), 1u);
  SpillRecord s;
  s.run = 1;
  s.spill = 3;
  s.particles = 100;
  db.add_spill(s);
  s.particles = 200;
  EXPECT_EQ(error_of([&] { db.add_spill(s); }),
            "run database " + file_.string() + ": add spill 3 of run 1: spill 3 of run 1 is already recorded");
  const auto got = db.spills(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].particles, 100u);
}

TEST_F(RunDatabaseTest, RunNumberBeyondSixDigitsIsRefused) {
  RunDatabase db(file_);
  const std::string refused = "run database " + file_.string() +
                              ": begin run: run number 1000000 is above 999999, the largest that six-digit file "
                              "names allow";
  EXPECT_EQ(error_of([&] { begin(db, 1'000'000); }), refused);
  EXPECT_TRUE(db.runs(10).empty());
  EXPECT_EQ(begin(db, 999'999), 999'999u);
  EXPECT_EQ(error_of([&] { begin(db); }), refused);
  EXPECT_EQ(error_of([&] { begin(db, 4'000'000'000u); }),
            "run database " + file_.string() +
                ": begin run: run number 4000000000 is above 999999, the largest that six-digit file names allow");
  const auto all = db.runs(10);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].number, 999'999u);
}

// Calls begin_run `count` times; an exception ends the loop and is kept,
// so that a failure shows as a test failure, not as std::terminate.
struct RunNumberDrawer {
  std::vector<std::uint32_t> numbers;
  std::string error;
  void draw(RunDatabase& db, int count) {
    try {
      for (int i = 0; i < count; ++i) numbers.push_back(begin(db));
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
};

TEST_F(RunDatabaseTest, ConcurrentBeginRunGivesDistinctNumbers) {
  RunDatabase db(file_);
  constexpr int kThreads = 4;
  constexpr int kRunsPerThread = 50;
  std::vector<RunNumberDrawer> drawers(kThreads);
  {
    std::vector<std::jthread> threads;
    for (auto& d : drawers) threads.emplace_back([&db, &d] { d.draw(db, kRunsPerThread); });
  }
  std::set<std::uint32_t> numbers;
  for (const auto& d : drawers) {
    EXPECT_EQ(d.error, "");
    numbers.insert(d.numbers.begin(), d.numbers.end());
  }
  EXPECT_EQ(numbers.size(), std::size_t{kThreads * kRunsPerThread});
  EXPECT_EQ(*numbers.begin(), 1u);
  EXPECT_EQ(*numbers.rbegin(), std::uint32_t{kThreads * kRunsPerThread});
}

// Two connections, as two processes would have: the write lock taken at
// BEGIN IMMEDIATE keeps them from handing out the same number.
TEST_F(RunDatabaseTest, TwoConnectionsNeverShareANumber) {
  RunDatabase first(file_);
  RunDatabase second(file_);
  constexpr int kRunsPerThread = 50;
  RunNumberDrawer a;
  RunNumberDrawer b;
  {
    const std::jthread ta([&] { a.draw(first, kRunsPerThread); });
    const std::jthread tb([&] { b.draw(second, kRunsPerThread); });
  }
  EXPECT_EQ(a.error, "");
  EXPECT_EQ(b.error, "");
  std::set<std::uint32_t> numbers(a.numbers.begin(), a.numbers.end());
  numbers.insert(b.numbers.begin(), b.numbers.end());
  EXPECT_EQ(numbers.size(), std::size_t{2 * kRunsPerThread});
  EXPECT_EQ(*numbers.rbegin(), std::uint32_t{2 * kRunsPerThread});
}

}  // namespace
}  // namespace na64::daq
