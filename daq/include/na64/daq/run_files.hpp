// SPDX-License-Identifier: Apache-2.0
// The files of a run: DATE chunks named as at the experiment, the decoder's
// map and the summary, each written under a temporary name, synced, and
// renamed without ever replacing an existing file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace na64::daq {

/// "cdr01001-003661.dat": GDC 01, chunk 001, run 3661.
[[nodiscard]] std::string chunk_file_name(std::uint32_t gdc_id, std::uint32_t chunk, std::uint32_t run);
[[nodiscard]] std::string map_file_name(std::uint32_t run);      ///< "run-003661.map.xml"
[[nodiscard]] std::string summary_file_name(std::uint32_t run);  ///< "run-003661.summary.json"

/// The next free run number in `dir`: one more than the largest run with any
/// file there, or 1.
[[nodiscard]] std::uint32_t next_run_number(const std::filesystem::path& dir);

/// Writes `content` to dir/name through a temporary file, fsync, a rename
/// that refuses to replace an existing file, and an fsync of the directory.
/// Throws RunError naming the file and the system error.
void write_file_once(const std::filesystem::path& dir, const std::string& name, std::string_view content);

/// Appends DATE events to the run's chunk files.
///
/// Events are laid out by the caller directly in the writer's buffer
/// (reserve() then commit()), so an event is copied once, into the buffer,
/// and reaches the file in large writes. A chunk is open under a temporary
/// name ".cdr...dat.part" until close() or a roll-over: then it is fsynced
/// and renamed, never replacing a file. A chunk always ends on an event
/// boundary, so a file handed on never holds a partial event.
///
/// Thread safety: one thread (the writer stage).
class ChunkWriter {
 public:
  /// The chunk number has three digits in the file name.
  static constexpr std::uint32_t kMaxChunks = 999;

  /// Creates `dir` if needed. Throws RunError if it is not writable or if
  /// any chunk of this run already exists there.
  ChunkWriter(std::filesystem::path dir, std::uint32_t gdc_id, std::uint32_t run, std::uint64_t max_chunk_bytes,
              std::size_t buffer_bytes = 8u << 20);
  ~ChunkWriter();
  ChunkWriter(const ChunkWriter&) = delete;
  ChunkWriter& operator=(const ChunkWriter&) = delete;

  /// Space for one event of at most `max_words`. Throws RunError on I/O failure.
  [[nodiscard]] std::span<std::uint32_t> reserve(std::size_t max_words);
  /// Adds the first `words` of the last reserve() as one event.
  void commit(std::size_t words);
  /// Writes what is buffered and fdatasyncs (spill boundaries).
  void sync();
  /// Syncs, closes and renames the open chunk. Idempotent.
  void close();

  [[nodiscard]] std::uint64_t bytes_written() const noexcept { return bytes_total_; }
  [[nodiscard]] const std::vector<std::string>& files() const noexcept { return files_; }

 private:
  void open_chunk();
  void flush();
  void finish_chunk();

  std::filesystem::path dir_;
  std::uint32_t gdc_id_;
  std::uint32_t run_;
  std::uint64_t max_chunk_bytes_;
  std::unique_ptr<std::uint32_t[]> buffer_;
  std::size_t buffer_words_;
  std::size_t used_ = 0;          ///< words in the buffer
  int fd_ = -1;
  std::uint32_t chunk_ = 0;
  std::uint64_t chunk_bytes_ = 0;  ///< bytes of the open chunk, buffered included
  std::uint64_t bytes_total_ = 0;
  std::vector<std::string> files_;
};

}  // namespace na64::daq
