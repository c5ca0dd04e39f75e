// SPDX-License-Identifier: Apache-2.0
// na64daq as the shift crew runs it: a real process, real files.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "na64/testing/command.hpp"
#include "na64/testing/temp_dir.hpp"

namespace {

using na64::testing::Outcome;

Outcome na64daq(const std::string& args) { return na64::testing::run_command(std::string(NA64DAQ_PATH) + " " + args); }

TEST(Na64daqCli, RunWritesFilesAndPrintsALinePerSpill) {
  na64::testing::TempDir dir;
  const auto o = na64daq("run --spills 2 --particles 3000 --run 12 --output " + dir.path().string());
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_NE(o.output.find("spill    1 | particles     3000 | built     3000"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("spill    2 | particles     3000 | built     3000"), std::string::npos) << o.output;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "cdr01001-000012.dat"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "run-000012.map.xml"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "run-000012.summary.json"));

  const auto check = na64daq("check " + (dir.path() / "cdr01001-000012.dat").string());
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("start-of-run 1, start-of-burst 2"), std::string::npos) << check.output;
  EXPECT_NE(check.output.find(", 0 errors"), std::string::npos) << check.output;

  // Same run again: refused, and the first files are untouched.
  const auto size = std::filesystem::file_size(dir.path() / "cdr01001-000012.dat");
  const auto again = na64daq("run --spills 1 --particles 100 --run 12 --output " + dir.path().string());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("run 12 already has run-000012.map.xml in " + dir.path().string() +
                              "; a run file is never overwritten"),
            std::string::npos)
      << again.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / ".cdr01001-000012.dat.part"));
  EXPECT_EQ(std::filesystem::file_size(dir.path() / "cdr01001-000012.dat"), size);

  // Without --run: the next free number.
  const auto next = na64daq("run --spills 1 --particles 100 --output " + dir.path().string());
  EXPECT_EQ(next.exit_code, 0) << next.output;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "cdr01001-000013.dat"));
}

TEST(Na64daqCli, BadArgumentsExitTwoWithTheReason) {
  EXPECT_EQ(na64daq("").exit_code, 2);
  const auto no_spills = na64daq("run --output /tmp/x");
  EXPECT_EQ(no_spills.exit_code, 2);
  EXPECT_NE(no_spills.output.find("na64daq: --spills is required"), std::string::npos) << no_spills.output;
  const auto bad = na64daq("run --spills 3x --output /tmp/x");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.output.find("--spills: \"3x\" is not a whole number in [1, 2047]"), std::string::npos) << bad.output;
  const auto unknown = na64daq("run --spills 1 --output /tmp/x --fast yes");
  EXPECT_NE(unknown.output.find("unknown option --fast"), std::string::npos) << unknown.output;
  const auto command = na64daq("launch");
  EXPECT_EQ(command.exit_code, 2);
  EXPECT_NE(command.output.find("unknown command \"launch\""), std::string::npos) << command.output;
}

TEST(Na64daqCli, BadConfigExitsTwoWithFieldPath) {
  na64::testing::TempDir dir;
  const auto cfg = dir.path() / "bad.textproto";
  std::ofstream(cfg) << "source { id: 620 block { detector: \"ECAL1\" port: 9 gev_per_count: 0.02 } }\n";
  const auto o = na64daq("run --spills 1 --output " + (dir.path() / "out").string() + " --config " + cfg.string());
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.output.find("bad configuration: " + cfg.string() + ": source[0].block[0].port: 9 is out of range [0, 7]"),
            std::string::npos)
      << o.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "out"));
}

TEST(Na64daqCli, ConfigThatIsADirectoryIsRefused) {
  na64::testing::TempDir dir;
  const auto o = na64daq("run --spills 1 --output " + (dir.path() / "out").string() + " --config " + dir.path().string());
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.output.find("bad configuration: " + dir.path().string() + ": not a readable configuration file"),
            std::string::npos)
      << o.output;
}

TEST(Na64daqCli, CheckReportsCorruptFile) {
  na64::testing::TempDir dir;
  const auto file = dir.path() / "bad.dat";
  std::ofstream(file, std::ios::binary) << std::string(68, '\x01');
  const auto o = na64daq("check " + file.string());
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_NE(o.output.find("offset 4 (0x4): DATE magic: found 16843009 (0x1010101), expected 3659422462 (0xda1e5afe) "
                          "[bad-magic]"),
            std::string::npos)
      << o.output;
}

TEST(Na64daqCli, DefaultConfigRoundTrips) {
  na64::testing::TempDir dir;
  const auto o = na64daq("default-config");
  EXPECT_EQ(o.exit_code, 0);
  const auto cfg = dir.path() / "default.textproto";
  std::ofstream(cfg) << o.output;
  const auto run = na64daq("run --spills 1 --particles 200 --output " + dir.path().string() + " --config " + cfg.string());
  EXPECT_EQ(run.exit_code, 0) << run.output;
}

}  // namespace

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A tracker front-end started by its documented command, in its own
// process, read by a run over TCP.
TEST(Na64daqCli, RunReadsATrackerFrontEndStartedByTheFrontendCommand) {
  na64::testing::TempDir dir;
  const auto log = dir.path() / "frontend.log";
  const std::string cmd =
      std::string("exec ") + NA64DAQ_PATH + " frontend --kind GEM --source 401 --port 0 > " + log.string() + " 2>&1";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string port;
  for (int i = 0; i < 500 && port.empty(); ++i) {
    const std::string out = slurp(log);
    const auto at = out.find("tracker front-end GEM source 401 on 127.0.0.1:");
    if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
      port = out.substr(at + 46, out.find('\n', at) - at - 46);
    }
    if (port.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(port.empty()) << slurp(log);

  std::string config = na64daq("default-config").output;
  const std::string gem = "tracker { kind: \"GEM\" source: 401 }";
  const auto at = config.find(gem);
  ASSERT_NE(at, std::string::npos);
  config.replace(at, gem.size(), "tracker { kind: \"GEM\" source: 401 port: " + port + " }");
  std::ofstream(dir.path() / "remote.textproto") << config;
  const auto run = na64daq("run --spills 2 --particles 3000 --run 3 --output " + (dir.path() / "out").string() +
                           " --config " + (dir.path() / "remote.textproto").string());
  EXPECT_EQ(run.exit_code, 0) << run.output;
  const auto check = na64daq("check " + (dir.path() / "out" / "cdr01001-000003.dat").string());
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find(", 0 errors"), std::string::npos) << check.output;
  EXPECT_NE(check.output.find(" tracker hits, 0 equipments flagged missing"), std::string::npos) << check.output;

  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const std::string out = slurp(log);
  // Every event the run wrote was asked for once and served.
  const auto written_at = run.output.find("written ");
  ASSERT_NE(written_at, std::string::npos);
  EXPECT_NE(out.find("signal 2: 2 spills gated, "), std::string::npos) << out;
  EXPECT_NE(out.find(" too late, 0 not found, 0 dropped"), std::string::npos) << out;
}

// A tracker front-end that goes silent after 5 answers: every later event
// is written without its straw block, flagged late, and none waits longer
// than the completion timeout.
TEST(Na64daqCli, EventsASilentFrontEndDoesNotAnswerAreFlaggedLate) {
  na64::testing::TempDir dir;
  const auto log = dir.path() / "frontend.log";
  const std::string cmd = std::string("exec ") + NA64DAQ_PATH +
                          " frontend --kind STRAW --source 402 --port 0 --silent-after 5 > " + log.string() + " 2>&1";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string port;
  for (int i = 0; i < 500 && port.empty(); ++i) {
    const std::string out = slurp(log);
    const auto at = out.find("tracker front-end STRAW source 402 on 127.0.0.1:");
    if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
      port = out.substr(at + 48, out.find('\n', at) - at - 48);
    }
    if (port.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(port.empty()) << slurp(log);
  std::string config = na64daq("default-config").output;
  auto replace = [&](const std::string& from, const std::string& to) {
    const auto at = config.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    config.replace(at, from.size(), to);
  };
  replace("tracker { kind: \"STRAW\" source: 402 }", "tracker { kind: \"STRAW\" source: 402 port: " + port + " }");
  replace("mode: TWO_LEVEL", "mode: TWO_LEVEL completion_timeout_ms: 300");
  std::ofstream(dir.path() / "silent.textproto") << config;
  const auto run = na64daq("run --spills 2 --particles 6000 --run 4 --output " + (dir.path() / "out").string() +
                           " --config " + (dir.path() / "silent.textproto").string());
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_EQ(run.exit_code, 0) << run.output;

  const std::string summary = slurp(dir.path() / "out" / "run-000004.summary.json");
  const auto total = summary.find("\"total\"");
  ASSERT_NE(total, std::string::npos);
  auto number_after = [&](const std::string& key) {
    const auto at = summary.find("\"" + key + "\":", total);
    EXPECT_NE(at, std::string::npos) << key;
    return std::stoull(summary.substr(at + key.size() + 3));
  };
  const auto written = number_after("written");
  ASSERT_GT(written, 5u);
  EXPECT_EQ(number_after("completed"), 5u);
  EXPECT_EQ(number_after("incomplete"), 0u);  // the builder's: every particle built
  EXPECT_EQ(number_after("late"), written - 5);
  const auto check = na64daq("check " + (dir.path() / "out" / "cdr01001-000004.dat").string());
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find(fmt::format("{} equipments flagged missing, {} late", written - 5, written - 5)),
            std::string::npos)
      << check.output;
  EXPECT_NE(slurp(log).find(fmt::format("{} served", 5)), std::string::npos) << slurp(log);
}

TEST(Na64daqCli, FrontendRefusesABadKind) {
  const auto o = na64daq("frontend --kind PIXEL --source 400");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.output.find("na64daq: --kind: \"PIXEL\" is not MM, GEM or STRAW"), std::string::npos) << o.output;
}

}  // namespace
