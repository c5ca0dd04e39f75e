// SPDX-License-Identifier: Apache-2.0
// The two-level readout's completion of accepted events: what cannot be
// completed is written with the source flagged and counted by reason,
// exactly where the emulation says it must be.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>

#include "config_text.hpp"
#include "na64/daq/config.hpp"
#include "na64/daq/error.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/daq/raw_file.hpp"
#include "na64/drivers/emulated_msadc.hpp"
#include "na64/firmware/date_event.hpp"
#include "na64/firmware/run_record.hpp"
#include "na64/testing/temp_dir.hpp"

namespace na64::daq {
namespace {

namespace fw = na64::firmware;

constexpr std::string_view kTwoLevel = R"(
readout {
  mode: TWO_LEVEL completion_timeout_ms: 10000
  tracker { kind: "MM" source: 400 }
}
)";

DaqConfig two_level_config(std::uint32_t particles) {
  DaqConfig c = load_config(testing_config::default_with_readout(kTwoLevel), "two-level test");
  c.beam.particles_per_spill = particles;
  return c;
}

/// (spill, particle) -> per equipment source, the missing-source flag (0: data present).
using Flags = std::map<std::pair<std::uint32_t, std::uint32_t>, std::map<std::uint32_t, std::uint32_t>>;

Flags read_flags(const std::filesystem::path& file) {
  std::vector<std::string> errors;
  const std::vector<std::uint32_t> words = read_date_words(file, errors);
  EXPECT_EQ(errors, std::vector<std::string>{});
  Flags flags;
  std::span<const std::uint32_t> rest(words);
  std::size_t offset = 0;
  while (!rest.empty()) {
    auto h = fw::walk_date_event(rest, offset, [&](const fw::DateHeader& hdr, const fw::EquipmentView& eq) {
      if (hdr.type != fw::EventType::Physics) return;
      flags[{hdr.spill, hdr.detector_pattern}][eq.slink.source_id] = eq.equipment.attributes[0];
      if (eq.equipment.attributes[0] != 0) {
        EXPECT_TRUE(eq.payload.empty());
      }
    });
    if (!h) {
      ADD_FAILURE() << h.error().message();
      break;
    }
    rest = rest.subspan(h->size_bytes / 4);
    offset += h->size_bytes;
  }
  return flags;
}

// A board whose latency buffer was full when a particle came says so in its
// summary; an accepted event of that particle is written with that board
// flagged buffer_overflow, and everything else present.
TEST(TwoLevelReadout, FullLatencyBufferIsFlaggedOnExactlyTheParticlesItMissed) {
  testing::TempDir dir;
  DaqConfig config = two_level_config(5000);
  config.emulator.fragment_loss = 0.05;
  config.thresholds.beam_prescale = 10;  // enough accepted events to see the losses
  RunOptions options;
  options.output = dir.path();
  options.run = 7;
  options.spills = 2;
  const RunSummary summary = run_simulated(config, options, {});

  const drivers::NA64Beam beam(config.beam);
  std::map<std::uint32_t, std::unique_ptr<drivers::EmulatedMsadcBoard>> boards;
  for (std::uint32_t s : config.channel_map.sources()) {
    boards[s] = std::make_unique<drivers::EmulatedMsadcBoard>(s, config.channel_map, beam, config.emulator);
  }
  const Flags flags = read_flags(dir.path() / summary.files.at(0));
  ASSERT_EQ(flags.size(), summary.total.written);
  std::uint64_t want_incomplete = 0;
  std::uint64_t flagged = 0;
  for (const auto& [key, sources] : flags) {
    ASSERT_EQ(sources.size(), 4u);  // three boards and the tracker, always
    bool any = false;
    for (const auto& [source, flag] : sources) {
      const bool lost = source != 400 && boards.at(source)->loses(key.first, key.second);
      EXPECT_EQ(flag, lost ? static_cast<std::uint32_t>(fw::MissingReason::BufferOverflow) : 0u)
          << "spill " << key.first << " particle " << key.second << " source " << source;
      flagged += lost;
      any |= lost;
    }
    want_incomplete += any;
  }
  const CompletionCounters& c = summary.total.completion;
  EXPECT_GT(flagged, 20u);
  EXPECT_EQ(c.requested, summary.total.written);
  EXPECT_EQ(c.incomplete, want_incomplete);
  EXPECT_EQ(c.completed + c.incomplete, c.requested);
  EXPECT_EQ(c.by_reason[static_cast<std::size_t>(fw::MissingReason::BufferOverflow)], want_incomplete);
  EXPECT_EQ(c.late_answers, 0u);

  const FileCheck check = check_date_file(dir.path() / summary.files.at(0));
  EXPECT_EQ(check.errors, std::vector<std::string>{});
  EXPECT_EQ(check.missing[static_cast<std::size_t>(fw::MissingReason::BufferOverflow)], flagged);
}

// Each readout field out of range or out of place is refused, naming it.
TEST(TwoLevelReadout, ConfigurationRefusesWhatNeedsTheTwoLevelReadout) {
  const std::string base = testing_config::default_with_readout("");
  auto error_of = [&](const std::string& extra) {
    try {
      (void)load_config(base + extra, "t");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(error_of("readout { tracker { kind: \"MM\" source: 400 } }"),
            "t: readout.tracker[0]: needs readout.mode: TWO_LEVEL");
  EXPECT_EQ(error_of("readout { mode: TWO_LEVEL tracker { kind: \"PIXEL\" source: 400 } }"),
            "t: readout.tracker[0].kind: \"PIXEL\" is not MM, GEM or STRAW");
  EXPECT_EQ(error_of("readout { mode: TWO_LEVEL tracker { kind: \"MM\" source: 620 } }"),
            "t: readout.tracker[0].source: 620 is an MSADC source");
  EXPECT_EQ(error_of("readout { mode: TWO_LEVEL tracker { kind: \"MM\" source: 400 } tracker { kind: \"GEM\" source: 400 } }"),
            "t: readout.tracker[1].source: source 400 is listed twice");
  EXPECT_EQ(error_of("readout { mode: TWO_LEVEL usb { source: 999 } }"), "t: readout.usb[0].source: 999 is not a source of the map");
  EXPECT_EQ(error_of("readout { mode: TWO_LEVEL latency_depth: 0 }"),
            "t: readout.latency_depth: 0 is out of range [1, 16777215]");
  EXPECT_EQ(error_of("readout { mode: TWO_LEVEL tracker { kind: \"MM\" source: 400 port: 70000 } }"),
            "t: readout.tracker[0].port: 70000 is out of range [0, 65535]");
  EXPECT_EQ(error_of("readout { mode: TWO_LEVEL replay_dir: \"\" }"), "t: readout.replay_dir: must not be empty");
  EXPECT_EQ(error_of("readout { mode: TWO_LEVEL }"), "accepted");
}

}  // namespace
}  // namespace na64::daq

namespace na64::daq {
namespace {

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every source's stream recorded, then the run replayed from the recording:
// the DATE file and the map are the same bytes.
TEST(RecordAndReplay, ReplayedRunWritesByteIdenticalFiles) {
  testing::TempDir dir;
  const std::string extra = fmt::format(R"(
readout {{
  mode: TWO_LEVEL completion_timeout_ms: 10000
  record_dir: "{}"
  tracker {{ kind: "MM" source: 400 }}
  tracker {{ kind: "GEM" source: 401 }}
  tracker {{ kind: "STRAW" source: 402 }}
}}
)", (dir.path() / "rec").string());
  // Everything in the text: a replay runs with the recorded configuration text.
  std::string text = testing_config::default_with_readout("");
  auto set = [&](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  };
  set("particles_per_spill: 20000", "particles_per_spill: 4000");
  set("beam_prescale: 1000", "beam_prescale: 20");
  // Some buffer overflows too, to be replayed as they were.
  const DaqConfig config = load_config(text + "emulator { fragment_loss: 0.03 }\n" + extra, "record");
  RunOptions options;
  options.output = dir.path() / "taken";
  options.run = 21;
  options.spills = 3;
  const RunSummary taken = run_simulated(config, options, {});
  for (std::uint32_t s : {400u, 401u, 402u, 620u, 621u, 622u}) {
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "rec" / fmt::format("run-000021-source-{}.na64rec", s))) << s;
  }

  DaqConfig replay = load_config(testing_config::default_with_readout("") +
                                     fmt::format("readout {{ mode: TWO_LEVEL completion_timeout_ms: 10000 replay_dir: \"{}\" }}\n",
                                                 (dir.path() / "rec").string()),
                                 "replay");
  options.output = dir.path() / "replayed";
  options.spills = 0;  // as many as recorded
  const RunSummary replayed = run_simulated(replay, options, {});
  ASSERT_EQ(replayed.files, taken.files);
  ASSERT_EQ(replayed.spills.size(), 3u);
  EXPECT_GT(taken.total.completion.by_reason[static_cast<std::size_t>(fw::MissingReason::BufferOverflow)], 0u);
  const std::string a = file_bytes(dir.path() / "taken" / taken.files[0]);
  const std::string b = file_bytes(dir.path() / "replayed" / replayed.files[0]);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b);
  EXPECT_TRUE(file_bytes(dir.path() / "taken" / taken.map_file) == file_bytes(dir.path() / "replayed" / replayed.map_file));
  EXPECT_EQ(replayed.total.written, taken.total.written);
  EXPECT_EQ(replayed.total.completion.incomplete, taken.total.completion.incomplete);

  // A recording is never overwritten: recording run 21 again is refused.
  options.output = dir.path() / "again";
  options.spills = 1;
  try {
    (void)run_simulated(config, options, {});
    ADD_FAILURE() << "recorded over an existing recording";
  } catch (const RunError& e) {
    EXPECT_EQ(std::string(e.what()), fmt::format("{}: exists already; a recording is never overwritten",
                                                 (dir.path() / "rec" / "run-000021-source-620.na64rec").string()));
  }
}

TEST(RecordAndReplay, DamagedRecordingIsRefusedSayingWhere) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "rec");
  {
    std::ofstream out(dir.path() / "rec" / "run-000021-source-620.na64rec", std::ios::binary);
    out << "NA64REC1";
    const std::uint32_t version = 9;
    out.write(reinterpret_cast<const char*>(&version), 4);
  }
  DaqConfig replay = load_config(testing_config::default_with_readout("") +
                                     fmt::format("readout {{ mode: TWO_LEVEL completion_timeout_ms: 10000 replay_dir: \"{}\" }}\n",
                                                 (dir.path() / "rec").string()),
                                 "replay");
  RunOptions options;
  options.output = dir.path() / "out";
  options.run = 21;
  try {
    (void)run_simulated(replay, options, {});
    ADD_FAILURE() << "replayed a damaged recording";
  } catch (const RunError& e) {
    EXPECT_EQ(std::string(e.what()), fmt::format("{}: offset 8: the recording ends inside a record",
                                                 (dir.path() / "rec" / "run-000021-source-620.na64rec").string()));
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "out" / "run-000021.map.xml"));
}

}  // namespace
}  // namespace na64::daq

namespace na64::daq {
namespace {

// Corrupt data from a board: a buffer whose first message header does not
// decode. The host reports it with where it was, drops that buffer only, and
// the run goes on: the particles in it are missing from that board (the
// builder counts them incomplete), everything else is as recorded.
TEST(RecordAndReplay, CorruptBoardDataIsReportedAndLosesOnlyItsOwnParticles) {
  testing::TempDir dir;
  std::string text = testing_config::default_with_readout(
      fmt::format("readout {{ mode: TWO_LEVEL completion_timeout_ms: 10000 record_dir: \"{}\" }}", (dir.path() / "rec").string()));
  const auto at = text.find("particles_per_spill: 20000");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 27, "particles_per_spill: 3000");
  RunOptions options;
  options.output = dir.path() / "taken";
  options.run = 31;
  options.spills = 1;
  const RunSummary taken = run_simulated(load_config(text, "record"), options, {});
  ASSERT_EQ(taken.total.builder.incomplete, 0u);

  // Break the key of the second message of source 621's first buffer of
  // summaries: the first message (64 particles) is read, the rest of that
  // buffer cannot be framed and is dropped.
  const auto file = dir.path() / "rec" / "run-000031-source-621.na64rec";
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::uint32_t text_bytes = 0;
  std::memcpy(&text_bytes, bytes.data() + 8 + 5 * 4, 4);
  std::size_t pos = 8 + 6 * 4 + text_bytes + (4 - text_bytes % 4) % 4;
  std::uint32_t dropped_words = 0;
  std::uint32_t dropped_particles = 0;
  while (pos + 12 <= bytes.size()) {
    std::uint32_t n = 0;
    std::memcpy(&n, bytes.data() + pos + 8, 4);
    if (n > 1000) {
      std::uint32_t length = 0;
      std::memcpy(&length, bytes.data() + pos + 12 + 4, 4);
      length &= 0x3FFFFF;  // the first message's length in words
      // The particles in the messages that follow: summary packets (type
      // 0x01) give their count in word 2 bits 16-31.
      for (std::size_t w = length; w + 3 <= n;) {
        std::array<std::uint32_t, 3> head{};
        std::memcpy(head.data(), bytes.data() + pos + 12 + w * 4, 12);
        if ((head[0] >> 24) == 0x01) dropped_particles += head[2] >> 16;
        w += head[1] & 0x3FFFFF;
      }
      bytes[pos + 12 + length * 4] = static_cast<char>(bytes[pos + 12 + length * 4] ^ 0x5A);
      dropped_words = n - length;
      break;
    }
    pos += 12 + std::size_t{n} * 4;
  }
  ASSERT_GT(dropped_words, 100u);  // a buffer of summaries
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  options.output = dir.path() / "replayed";
  options.spills = 0;
  ::testing::internal::CaptureStderr();
  const RunSummary replayed = run_simulated(
      load_config(testing_config::default_with_readout(
                      fmt::format("readout {{ mode: TWO_LEVEL completion_timeout_ms: 10000 replay_dir: \"{}\" }}", (dir.path() / "rec").string())),
                  "replay"),
      options, {});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("na64daq: source 621: 0 corrupt messages, 1 unframed buffers, 0 answers matching no request, "
                     "0 messages of another source, 0 particles outside a spill\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("message key"), std::string::npos) << err;
  ASSERT_EQ(replayed.spills.size(), 1u);
  EXPECT_EQ(replayed.total.builder.particles, 3000u);
  EXPECT_GT(dropped_particles, 0u);
  EXPECT_EQ(replayed.total.builder.incomplete, dropped_particles);
  EXPECT_EQ(replayed.total.builder.complete + replayed.total.builder.incomplete, 3000u);
  const FileCheck check = check_date_file(dir.path() / "replayed" / replayed.files.at(0));
  EXPECT_EQ(check.errors, std::vector<std::string>{});
}

}  // namespace
}  // namespace na64::daq
