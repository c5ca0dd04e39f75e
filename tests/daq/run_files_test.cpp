// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/run_files.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "na64/daq/error.hpp"
#include "na64/testing/temp_dir.hpp"

namespace na64::daq {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(RunFiles, NamesFilesAsAtTheExperiment) {
  EXPECT_EQ(chunk_file_name(1, 1, 3661), "cdr01001-003661.dat");
  EXPECT_EQ(chunk_file_name(12, 345, 7), "cdr12345-000007.dat");
  EXPECT_EQ(map_file_name(3661), "run-003661.map.xml");
  EXPECT_EQ(summary_file_name(3661), "run-003661.summary.json");
}

TEST(RunFiles, WriteFileOnceNeverReplaces) {
  testing::TempDir dir;
  write_file_once(dir.path(), "a.txt", "first");
  EXPECT_EQ(read_all(dir.path() / "a.txt"), "first");
  try {
    write_file_once(dir.path(), "a.txt", "second");
    FAIL() << "replaced an existing file";
  } catch (const RunError& e) {
    EXPECT_EQ(std::string(e.what()), "refusing to replace existing file " + (dir.path() / "a.txt").string() +
                                         ": File exists");
  }
  EXPECT_EQ(read_all(dir.path() / "a.txt"), "first");
  EXPECT_FALSE(fs::exists(dir.path() / ".a.txt.part"));
}

TEST(RunFiles, NextRunNumberFollowsTheLargest) {
  testing::TempDir dir;
  EXPECT_EQ(next_run_number(dir.path()), 1u);
  write_file_once(dir.path(), "cdr01001-000041.dat", "x");
  write_file_once(dir.path(), "run-000007.summary.json", "{}");
  write_file_once(dir.path(), "notes.txt", "");
  EXPECT_EQ(next_run_number(dir.path()), 42u);
}

TEST(ChunkWriter, WritesUnderTemporaryNameUntilClosed) {
  testing::TempDir dir;
  ChunkWriter w(dir.path(), 1, 5, 1u << 20);
  auto out = w.reserve(4);
  out[0] = 1;
  out[1] = 2;
  w.commit(2);
  w.sync();
  EXPECT_TRUE(fs::exists(dir.path() / ".cdr01001-000005.dat.part"));
  EXPECT_FALSE(fs::exists(dir.path() / "cdr01001-000005.dat"));
  w.close();
  EXPECT_FALSE(fs::exists(dir.path() / ".cdr01001-000005.dat.part"));
  EXPECT_EQ(fs::file_size(dir.path() / "cdr01001-000005.dat"), 8u);
  EXPECT_EQ(w.files(), std::vector<std::string>{"cdr01001-000005.dat"});
  EXPECT_EQ(w.bytes_written(), 8u);
}

TEST(ChunkWriter, RollsToNewChunkOnEventBoundary) {
  testing::TempDir dir;
  // 40-byte chunks, a small buffer, 12-byte events: three events per chunk.
  ChunkWriter w(dir.path(), 2, 9, 40, 64);
  for (std::uint32_t e = 0; e < 7; ++e) {
    auto out = w.reserve(3);
    out[0] = out[1] = out[2] = e;
    w.commit(3);
  }
  w.close();
  EXPECT_EQ(w.files(), (std::vector<std::string>{"cdr02001-000009.dat", "cdr02002-000009.dat", "cdr02003-000009.dat"}));
  EXPECT_EQ(fs::file_size(dir.path() / "cdr02001-000009.dat"), 36u);
  EXPECT_EQ(fs::file_size(dir.path() / "cdr02003-000009.dat"), 12u);
  const std::string second = read_all(dir.path() / "cdr02002-000009.dat");
  ASSERT_EQ(second.size(), 36u);
  std::uint32_t first_word = 0;
  std::memcpy(&first_word, second.data(), 4);
  EXPECT_EQ(first_word, 3u);
}

TEST(ChunkWriter, RefusesAThousandthChunk) {
  testing::TempDir dir;
  ChunkWriter w(dir.path(), 1, 3, 4, 64);  // a 4-byte chunk holds one 1-word event
  for (std::uint32_t e = 0; e < ChunkWriter::kMaxChunks; ++e) {
    w.reserve(1)[0] = e;
    w.commit(1);
  }
  w.reserve(1)[0] = 999;
  try {
    w.commit(1);
    FAIL() << "opened chunk 1000";
  } catch (const RunError& e) {
    EXPECT_STREQ(e.what(), "run 3: more than 999 chunk files; raise run.max_chunk_bytes");
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "cdr01999-000003.dat"));
}

TEST(ChunkWriter, RemovesItsEmptyTemporaryFileWhenNotClosed) {
  testing::TempDir dir;
  {
    ChunkWriter w(dir.path(), 1, 4, 1u << 20);
    EXPECT_TRUE(fs::exists(dir.path() / ".cdr01001-000004.dat.part"));
  }
  EXPECT_FALSE(fs::exists(dir.path() / ".cdr01001-000004.dat.part"));
}

TEST(ChunkWriter, RefusesRunThatAlreadyHasData) {
  testing::TempDir dir;
  write_file_once(dir.path(), "cdr01001-000005.dat", "old");
  try {
    ChunkWriter w(dir.path(), 1, 5, 1u << 20);
    FAIL() << "opened a run that has data";
  } catch (const RunError& e) {
    EXPECT_EQ(std::string(e.what()), "run 5 already has data in " + dir.path().string() +
                                         " (cdr01001-000005.dat); a run file is never overwritten");
  }
  EXPECT_EQ(read_all(dir.path() / "cdr01001-000005.dat"), "old");
}

TEST(ChunkWriter, RefusesUnwritableDirectory) {
  if (::geteuid() == 0) {
    // root writes anywhere; use a path under a regular file instead.
    testing::TempDir dir;
    write_file_once(dir.path(), "file", "");
    EXPECT_THROW(ChunkWriter(dir.path() / "file" / "sub", 1, 1, 1u << 20), RunError);
    return;
  }
  EXPECT_THROW(ChunkWriter("/proc/na64", 1, 1, 1u << 20), RunError);
}

}  // namespace
}  // namespace na64::daq
